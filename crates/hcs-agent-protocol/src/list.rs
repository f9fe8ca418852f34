//! Counted lists: a zero-copy view over wire bytes, or a borrowed slice to
//! encode from.

use crate::wire::{add, Reader, Writer};
use crate::{DecodeError, EncodeError};

/// An element of a [`List`]: how it is read, written and sized.
pub trait Item<'a>: Copy + Sized {
    /// The fewest bytes one element takes on the wire (never 0).
    const MIN_WIRE_LEN: usize;
    #[doc(hidden)]
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError>;
    #[doc(hidden)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    /// Bytes this element takes on the wire.
    fn wire_len(&self) -> Result<usize, EncodeError>;
}

impl<'a> Item<'a> for u16 {
    const MIN_WIRE_LEN: usize = 2;
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.u16()
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(*self)
    }
    fn wire_len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
}

impl<'a> Item<'a> for u32 {
    const MIN_WIRE_LEN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.u32()
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(*self)
    }
    fn wire_len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
}

impl<'a> Item<'a> for &'a [u8] {
    const MIN_WIRE_LEN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.bytes()
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.bytes(self)
    }
    fn wire_len(&self) -> Result<usize, EncodeError> {
        crate::wire::bytes_len(self)
    }
}

/// A list of `T`: on the wire a u32 count followed by the elements.
///
/// Decoding yields [`List::Wire`], a validated view over the input bytes;
/// senders build [`List::Slice`]. Both iterate the same way.
#[derive(Clone, Copy, Debug)]
pub enum List<'a, T> {
    /// `count` elements encoded in `data` (already validated).
    Wire {
        /// Number of elements.
        count: u32,
        /// Their encoded bytes, exactly.
        data: &'a [u8],
    },
    /// Elements to encode.
    Slice(&'a [T]),
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            List::Wire { count, .. } => usize::try_from(*count).unwrap_or(usize::MAX),
            List::Slice(s) => s.len(),
        }
    }

    /// Is the list empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        match *self {
            List::Wire { count, data } => ListIter::Wire {
                left: count,
                reader: Reader::new(data),
            },
            List::Slice(s) => ListIter::Slice(s.iter()),
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let count = r.u32()?;
        let max = r.remaining() / T::MIN_WIRE_LEN;
        if usize::try_from(count).map_or(true, |c| c > max) {
            return Err(DecodeError::InvalidLength);
        }
        let start = r.rest();
        let before = r.remaining();
        for _ in 0..count {
            T::read(r)?;
        }
        let used = before.saturating_sub(r.remaining());
        let data = start.get(..used).ok_or(DecodeError::Truncated)?;
        Ok(List::Wire { count, data })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let count = u32::try_from(self.len()).map_err(|_| EncodeError::TooLarge)?;
        w.u32(count)?;
        match self {
            List::Wire { data, .. } => w.put(data),
            List::Slice(s) => s.iter().try_for_each(|item| item.write(w)),
        }
    }

    pub(crate) fn wire_len(&self) -> Result<usize, EncodeError> {
        match self {
            List::Wire { data, .. } => add(4, data.len()),
            List::Slice(s) => s
                .iter()
                .try_fold(4usize, |acc, item| add(acc, item.wire_len()?)),
        }
    }
}

impl<'a, T: Item<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a, T: Item<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: Item<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// Iterator over a [`List`].
#[derive(Clone)]
pub enum ListIter<'a, T> {
    #[doc(hidden)]
    Wire { left: u32, reader: Reader<'a> },
    #[doc(hidden)]
    Slice(core::slice::Iter<'a, T>),
}

impl<'a, T: Item<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            ListIter::Wire { left, reader } => {
                *left = left.checked_sub(1)?;
                T::read(reader).ok()
            }
            ListIter::Slice(it) => it.next().copied(),
        }
    }
}
