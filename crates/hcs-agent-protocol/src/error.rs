//! Decode and encode errors.

use crate::hresult;

/// Why bytes could not be decoded. Small, `Copy`, and free of `core::fmt`
/// on the decode path: [`DecodeError::as_str`] gives a static description,
/// `Display` exists only with the `std` feature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// The input ends before the header, the payload or a field does.
    Truncated,
    /// The frame does not start with [`crate::MAGIC`].
    BadMagic,
    /// The header's reserved flags are not zero.
    ReservedNotZero,
    /// The header announces a payload longer than [`crate::MAX_PAYLOAD`].
    PayloadTooLarge,
    /// The header's protocol version is not one this side speaks.
    UnsupportedVersion,
    /// The header's message type is unknown.
    UnknownMessageType,
    /// A tag or boolean byte has a value that is not defined.
    InvalidTag,
    /// A list announces more elements than its bytes could hold.
    InvalidLength,
    /// The payload has bytes after the message's last field.
    TrailingBytes,
}

impl DecodeError {
    /// A static, human-readable description (no formatting machinery).
    pub const fn as_str(self) -> &'static str {
        match self {
            DecodeError::Truncated => "message truncated",
            DecodeError::BadMagic => "bad frame magic",
            DecodeError::ReservedNotZero => "reserved header flags are not zero",
            DecodeError::PayloadTooLarge => "payload longer than the protocol's limit",
            DecodeError::UnsupportedVersion => "unsupported protocol version",
            DecodeError::UnknownMessageType => "unknown message type",
            DecodeError::InvalidTag => "invalid tag or boolean value",
            DecodeError::InvalidLength => "list count exceeds the message size",
            DecodeError::TrailingBytes => "trailing bytes after the message",
        }
    }

    /// The HRESULT an agent answers with when a request fails to decode.
    pub const fn hresult(self) -> u32 {
        match self {
            DecodeError::UnsupportedVersion => hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::UnknownMessageType => hresult::HCS_E_UNKNOWN_MESSAGE,
            _ => hresult::HCS_E_PROTOCOL_ERROR,
        }
    }

    /// Can the stream still be read after this error? Header errors lose
    /// the framing; payload errors do not (the payload length was valid).
    pub const fn is_fatal(self) -> bool {
        matches!(
            self,
            DecodeError::BadMagic | DecodeError::ReservedNotZero | DecodeError::PayloadTooLarge
        )
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// The output buffer is smaller than the frame.
    BufferTooSmall,
    /// The payload would exceed [`crate::MAX_PAYLOAD`] (or a length field).
    TooLarge,
}

impl EncodeError {
    /// A static, human-readable description.
    pub const fn as_str(self) -> &'static str {
        match self {
            EncodeError::BufferTooSmall => "output buffer too small for the frame",
            EncodeError::TooLarge => "message larger than the protocol's limit",
        }
    }
}

#[cfg(feature = "std")]
mod std_impls {
    use super::{DecodeError, EncodeError};

    impl std::fmt::Display for DecodeError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    impl std::error::Error for DecodeError {}

    impl std::fmt::Display for EncodeError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    impl std::error::Error for EncodeError {}
}
