//! The wire protocol between HCS and its guest agent (skeleton; see issue 4).
