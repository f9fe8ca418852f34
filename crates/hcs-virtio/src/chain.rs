//! Walking a guest descriptor chain with limits.
//!
//! `virtio-queue`'s [`DescriptorChain`] iterator stops silently on a loop,
//! a bad `next` index or a bad indirect table. [`collect`] turns that into
//! an error (the last descriptor it saw still had `NEXT`), bounds the
//! number of descriptors and their total length, checks every buffer
//! against guest memory and the readable-then-writable order, and keeps
//! the buffers it saw so a device can still report an error status.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory as _};

use crate::GuestMemoryMmap;

/// One buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes (may be 0).
    pub len: u32,
    /// The device may write it (`VRING_DESC_F_WRITE`).
    pub writable: bool,
    /// The whole buffer lies in guest memory.
    pub in_memory: bool,
}

/// Limits on one chain.
#[derive(Debug, Clone, Copy)]
pub struct ChainLimits {
    /// At most this many descriptors.
    pub max_descriptors: usize,
    /// At most this many bytes in all.
    pub max_bytes: u64,
}

/// What is wrong with a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain has no descriptor (a bad head index or indirect table).
    #[error("empty or unreadable descriptor chain")]
    Empty,
    /// The chain ended early: a loop, a bad `next` index, an unreadable
    /// descriptor or a bad indirect table.
    #[error("descriptor chain is truncated (loop, bad next index or bad indirect table)")]
    Truncated,
    /// More descriptors than allowed.
    #[error("descriptor chain longer than {0} descriptors")]
    TooManyDescriptors(usize),
    /// More bytes than allowed.
    #[error("descriptor chain larger than {0} bytes")]
    TooLarge(u64),
    /// A buffer outside guest memory.
    #[error("buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideMemory {
        /// Guest physical address of the buffer.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A device-readable buffer after a device-writable one.
    #[error("readable descriptor after a writable one")]
    BadOrder,
}

/// A walked chain: the buffers seen and the first problem found.
#[derive(Debug, Default)]
pub struct Chain {
    /// The buffers, in chain order (up to the first structural problem).
    pub segments: Vec<Segment>,
    /// The first problem, if any.
    pub error: Option<ChainError>,
}

impl Chain {
    /// The device-readable buffers.
    pub fn readable(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| !s.writable)
    }

    /// The device-writable buffers.
    pub fn writable(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.writable)
    }

    /// Total length of the readable (or writable) buffers.
    pub fn total_len(&self, writable: bool) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.writable == writable)
            .map(|s| u64::from(s.len))
            .sum()
    }
}

/// Walk `chain` within `limits`.
pub fn collect<M>(chain: DescriptorChain<M>, mem: &GuestMemoryMmap, limits: ChainLimits) -> Chain
where
    M: Deref,
    M::Target: vm_memory::GuestMemory,
{
    let mut out = Chain::default();
    let mut total: u64 = 0;
    let mut last_had_next = false;
    let mut seen_writable = false;
    for desc in chain {
        if out.segments.len() >= limits.max_descriptors {
            out.error = Some(ChainError::TooManyDescriptors(limits.max_descriptors));
            return out;
        }
        total += u64::from(desc.len());
        if total > limits.max_bytes {
            out.error = Some(ChainError::TooLarge(limits.max_bytes));
            return out;
        }
        let seg = segment(mem, desc.addr(), desc.len(), desc.is_write_only());
        if !seg.in_memory {
            note(
                &mut out.error,
                ChainError::OutsideMemory {
                    addr: seg.addr.raw_value(),
                    len: seg.len,
                },
            );
        }
        if seg.writable {
            seen_writable = true;
        } else if seen_writable {
            note(&mut out.error, ChainError::BadOrder);
        }
        last_had_next = desc.has_next();
        out.segments.push(seg);
    }
    if out.segments.is_empty() {
        out.error = Some(ChainError::Empty);
    } else if last_had_next {
        note(&mut out.error, ChainError::Truncated);
    }
    out
}

fn note(slot: &mut Option<ChainError>, e: ChainError) {
    slot.get_or_insert(e);
}

fn segment(mem: &GuestMemoryMmap, addr: GuestAddress, len: u32, writable: bool) -> Segment {
    let in_memory = len == 0 || mem.check_range(addr, len as usize, vm_memory::Permissions::Read);
    Segment {
        addr,
        len,
        writable,
        in_memory,
    }
}

/// Copies between host buffers and a run of guest buffers, skipping a
/// number of leading bytes. The buffers must be in guest memory.
pub(crate) struct SegmentCursor<'a> {
    segments: Vec<&'a Segment>,
    index: usize,
    offset: u32,
}

impl<'a> SegmentCursor<'a> {
    /// A cursor over `segments`, starting `skip` bytes in.
    pub(crate) fn new(segments: impl Iterator<Item = &'a Segment>, skip: u64) -> Self {
        let mut c = SegmentCursor {
            segments: segments.filter(|s| s.len > 0).collect(),
            index: 0,
            offset: 0,
        };
        c.advance(skip);
        c
    }

    fn advance(&mut self, mut n: u64) {
        while n > 0 && self.index < self.segments.len() {
            let left = u64::from(self.segments[self.index].len - self.offset);
            if n < left {
                self.offset += n as u32; // n < left <= u32::MAX
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
    }

    /// The next piece: its address and length, at most `max` bytes.
    fn piece(&self, max: usize) -> Option<(GuestAddress, usize)> {
        let seg = self.segments.get(self.index)?;
        let left = (seg.len - self.offset) as usize;
        let addr = seg.addr.checked_add(u64::from(self.offset))?;
        Some((addr, left.min(max)))
    }

    /// Fill `buf` from guest memory; returns the bytes copied.
    pub(crate) fn read(
        &mut self,
        mem: &GuestMemoryMmap,
        buf: &mut [u8],
    ) -> Result<usize, vm_memory::GuestMemoryError> {
        let mut done = 0;
        while done < buf.len() {
            let Some((addr, n)) = self.piece(buf.len() - done) else {
                break;
            };
            mem.read_slice(&mut buf[done..done + n], addr)?;
            done += n;
            self.advance(n as u64);
        }
        Ok(done)
    }

    /// Copy `buf` into guest memory; returns the bytes copied.
    pub(crate) fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        buf: &[u8],
    ) -> Result<usize, vm_memory::GuestMemoryError> {
        let mut done = 0;
        while done < buf.len() {
            let Some((addr, n)) = self.piece(buf.len() - done) else {
                break;
            };
            mem.write_slice(&buf[done..done + n], addr)?;
            done += n;
            self.advance(n as u64);
        }
        Ok(done)
    }
}
