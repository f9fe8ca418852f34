//! Test helpers: guest memory, mock driver queues, a counting interrupt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use crate::{GuestMemoryMmap, Interrupt};

/// 16 MiB of guest memory at 0.
pub const MEM_SIZE: u64 = 16 << 20;

pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

/// An interrupt that counts how often it fired.
pub fn counting_interrupt() -> (Arc<Interrupt>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let irq = Interrupt::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    (Arc::new(irq), count)
}

/// A buffer of a chain: address, length, device-writable.
#[derive(Clone, Copy, Debug)]
pub struct Buf(pub u64, pub u32, pub bool);

/// A mock driver queue at `base` with `size` entries, plus a bump
/// allocator for chains.
pub struct Driver<'a> {
    pub vq: MockSplitQueue<'a, GuestMemoryMmap>,
    next_desc: u16,
    size: u16,
}

impl<'a> Driver<'a> {
    pub fn new(mem: &'a GuestMemoryMmap, base: u64, size: u16) -> Self {
        Driver {
            vq: MockSplitQueue::create(mem, GuestAddress(base), size),
            next_desc: 0,
            size,
        }
    }

    pub fn queue(&self) -> Queue {
        self.vq.create_queue().unwrap()
    }

    /// Offer a chain of `bufs`; returns its head index.
    pub fn add(&mut self, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        let mut descs = Vec::new();
        for (i, b) in bufs.iter().enumerate() {
            let idx = (head + i as u16) % self.size;
            let mut flags = if b.2 { VRING_DESC_F_WRITE as u16 } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            let next = (idx + 1) % self.size;
            descs.push((idx, Descriptor::new(b.0, b.1, flags, next)));
        }
        self.next_desc = (head + bufs.len() as u16) % self.size;
        for (idx, d) in descs {
            self.vq
                .desc_table()
                .store(idx, RawDescriptor::from(d))
                .unwrap();
        }
        self.offer(head);
        head
    }

    /// Put `head` in the available ring.
    pub fn offer(&mut self, head: u16) {
        let avail = self.vq.avail();
        let idx = avail.idx().load();
        avail
            .ring()
            .ref_at((idx % self.size) as usize)
            .unwrap()
            .store(head.to_le());
        avail.idx().store(idx.wrapping_add(1));
    }

    /// The used ring's flags (`VRING_USED_F_NO_NOTIFY`: the device asks
    /// the driver not to kick), the ring's first field.
    pub fn used_flags(&self, mem: &GuestMemoryMmap) -> u16 {
        use vm_memory::Bytes;
        mem.read_obj::<u16>(self.vq.used_addr()).unwrap_or(u16::MAX)
    }

    /// The used ring's index.
    pub fn used_idx(&self) -> u16 {
        self.vq.used().idx().load()
    }

    /// Used element `n`: (head, len).
    pub fn used(&self, n: u16) -> (u32, u32) {
        let e = self
            .vq
            .used()
            .ring()
            .ref_at((n % self.size) as usize)
            .unwrap()
            .load();
        (e.id(), e.len())
    }
}

pub fn read_bytes(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
    v
}

/// A deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub use hcs_test_support::skip;

/// Whether `path` is on tmpfs (whose pages are the files: nothing to cache).
pub fn on_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: libc::statfs is plain integers, for which all zeros is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a live statfs to fill.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == libc::TMPFS_MAGIC
}
