//! The HCS guest agent (skeleton; see issue 4).
