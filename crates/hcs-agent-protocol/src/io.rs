//! Blocking frame I/O over `std::io` (feature `std`).

use std::io::{self, Read, Write};
use std::vec::Vec;

use crate::{DecodeError, EncodeError, Header, Message, HEADER_LEN};

/// A frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The transport failed (or closed in the middle of a frame).
    Io(io::Error),
    /// The header is invalid; the stream's framing is lost.
    Header(DecodeError),
    /// The message could not be encoded.
    Encode(EncodeError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "transport error: {e}"),
            FrameError::Header(e) => write!(f, "bad frame header: {e}"),
            FrameError::Encode(e) => write!(f, "cannot encode message: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            FrameError::Header(e) => Some(e),
            FrameError::Encode(e) => Some(e),
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Reads one frame: its header, and its payload into `payload` (replacing
/// what was there). Returns `Ok(None)` on a clean end of stream before a
/// header. Decode the payload with [`Message::decode`]; a payload that does
/// not decode leaves the stream usable.
pub fn read_frame<R: Read>(
    reader: &mut R,
    payload: &mut Vec<u8>,
) -> Result<Option<Header>, FrameError> {
    let mut raw = [0u8; HEADER_LEN];
    if !read_exact_or_eof(reader, &mut raw)? {
        return Ok(None);
    }
    let header = Header::decode(&raw).map_err(FrameError::Header)?;
    payload.clear();
    payload.resize(header.payload_usize(), 0);
    reader.read_exact(payload)?;
    Ok(Some(header))
}

/// Fills `buf`; `Ok(false)` when the stream ends before the first byte.
fn read_exact_or_eof<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Encodes `msg` and writes it as one `write_all`.
pub fn write_frame<W: Write>(
    writer: &mut W,
    msg: &Message<'_>,
    version: u16,
    request_id: u64,
) -> Result<(), FrameError> {
    let bytes = msg
        .encode_to_vec(version, request_id)
        .map_err(FrameError::Encode)?;
    writer.write_all(&bytes)?;
    writer.flush()?;
    Ok(())
}
