//! The fixed frame header.

use crate::wire::{Reader, Writer};
use crate::{DecodeError, EncodeError, MessageType, HEADER_LEN, MAGIC, MAX_PAYLOAD};

/// The 24-byte header in front of every payload (all fields little-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `b"HCSA"` |
/// | 4 | 2 | protocol version the payload is encoded in |
/// | 6 | 2 | message type ([`MessageType`]) |
/// | 8 | 8 | request id (a response carries its request's id; 0 = none) |
/// | 16 | 4 | payload length (at most [`MAX_PAYLOAD`]) |
/// | 20 | 4 | flags, reserved, must be 0 |
///
/// The header layout is the same in every protocol version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// Protocol version of the payload.
    pub version: u16,
    /// Raw message type (see [`MessageType::from_u16`]).
    pub msg_type: u16,
    /// Request id.
    pub request_id: u64,
    /// Payload length in bytes.
    pub payload_len: u32,
}

impl Header {
    /// Decodes a header from the first [`HEADER_LEN`] bytes of `input`.
    /// Checks the magic, the reserved flags and the payload limit; the
    /// version and type are checked when the payload is decoded, so that a
    /// peer can still answer with the right request id.
    pub fn decode(input: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(input);
        if r.take(4)? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u16()?;
        let msg_type = r.u16()?;
        let request_id = r.u64()?;
        let payload_len = r.u32()?;
        if r.u32()? != 0 {
            return Err(DecodeError::ReservedNotZero);
        }
        if payload_len > MAX_PAYLOAD {
            return Err(DecodeError::PayloadTooLarge);
        }
        Ok(Header {
            version,
            msg_type,
            request_id,
            payload_len,
        })
    }

    /// The known message type, if any.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_u16(self.msg_type)
    }

    /// Payload length as `usize`.
    pub fn payload_usize(&self) -> usize {
        // MAX_PAYLOAD fits every usize this crate builds for.
        usize::try_from(self.payload_len).unwrap_or(usize::MAX)
    }

    /// Total frame length (header plus payload).
    pub fn frame_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_usize())
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.put(&MAGIC)?;
        w.u16(self.version)?;
        w.u16(self.msg_type)?;
        w.u64(self.request_id)?;
        w.u32(self.payload_len)?;
        w.u32(0)
    }
}
