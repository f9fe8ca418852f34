//! The HCS C API (skeleton; see issue 6).
