//! (Internal.) Little-endian readers and writers that never panic.
//!
//! Every access is bounds-checked with `get`/`split_at_checked` and every
//! size computation with `checked_*`, so neither type can reach
//! `core::panicking` (the test guest's build gate rejects it).

use crate::{DecodeError, EncodeError};

/// A cursor over borrowed input.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    /// Bytes not consumed yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// What is left, unconsumed.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array::<1>()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    /// A boolean byte: 0 or 1, anything else is `InvalidTag`.
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidTag),
        }
    }

    /// A u32-length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }

    /// Succeeds only when every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// A cursor over a caller-provided output buffer.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, src: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        // A zip copy cannot panic (copy_from_slice has a length assertion).
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn bool(&mut self, v: bool) -> Result<(), EncodeError> {
        self.u8(u8::from(v))
    }

    /// A u32-length-prefixed byte string.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(v.len()).map_err(|_| EncodeError::TooLarge)?;
        self.u32(len)?;
        self.put(v)
    }
}

/// Size of a u32-length-prefixed byte string.
pub(crate) fn bytes_len(v: &[u8]) -> Result<usize, EncodeError> {
    v.len().checked_add(4).ok_or(EncodeError::TooLarge)
}

/// `a + b`, failing with `TooLarge` on overflow.
pub(crate) fn add(a: usize, b: usize) -> Result<usize, EncodeError> {
    a.checked_add(b).ok_or(EncodeError::TooLarge)
}
