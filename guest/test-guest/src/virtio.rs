//! virtio-mmio (modern, version 2) split virtqueues and the virtio-vsock
//! driver (device id 19). Runs in ring 3 (MMIO works there; see main.rs).
//!
//! Each queue is one 4 KiB page: descriptors at 0, the available ring at
//! 0x400, the used ring at 0x800 (16/2/4-byte alignment as the spec and
//! Firecracker require). Every buffer is one descriptor of 4 KiB: receive
//! buffers hold the 44-byte header and up to 4052 bytes of data (the device
//! may use one descriptor for both, virtio 1.2 §5.10.6), transmit buffers the
//! same. The used ring is written by the host: ids and lengths are checked.

use crate::vsock::{Hdr, Stack, Wire, HDR_LEN, MAX_PAYLOAD};
use core::sync::atomic::{compiler_fence, Ordering};

pub const MAGIC: u32 = 0x7472_6976;
pub const DEVICE_VSOCK: u32 = 19;
pub const DEVICE_BLOCK: u32 = 2;

pub const R_MAGIC: u64 = 0x000;
pub const R_VERSION: u64 = 0x004;
pub const R_DEVICE_ID: u64 = 0x008;
const R_DEVICE_FEATURES: u64 = 0x010;
const R_DEVICE_FEATURES_SEL: u64 = 0x014;
const R_DRIVER_FEATURES: u64 = 0x020;
const R_DRIVER_FEATURES_SEL: u64 = 0x024;
const R_QUEUE_SEL: u64 = 0x030;
const R_QUEUE_NUM_MAX: u64 = 0x034;
const R_QUEUE_NUM: u64 = 0x038;
const R_QUEUE_READY: u64 = 0x044;
const R_QUEUE_NOTIFY: u64 = 0x050;
const R_STATUS: u64 = 0x070;
const R_QUEUE_DESC: u64 = 0x080;
const R_QUEUE_DRIVER: u64 = 0x090;
const R_QUEUE_DEVICE: u64 = 0x0a0;
const R_CONFIG: u64 = 0x100;

const S_ACK: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_FAILED: u32 = 0x80;

const DESC_F_WRITE: u16 = 2;

/// Entries per queue (a power of two; less if the device offers less).
pub const QSIZE: usize = 64;
const BUF: usize = 4096;
const AVAIL_OFF: usize = 0x400;
const USED_OFF: usize = 0x800;

#[inline]
fn rd32(addr: u64) -> u32 {
    // SAFETY: `addr` is a register of a mapped virtio-mmio window (checked
    // by the caller to be the device's), accessed with a volatile 32-bit read.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

#[inline]
fn wr32(addr: u64, v: u32) {
    // SAFETY: as `rd32`, a volatile 32-bit write to a device register.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// One queue's ring page.
#[repr(C, align(4096))]
pub struct RingPage(pub [u8; 4096]);

/// Memory of the vsock driver: three ring pages and the buffers.
#[repr(C, align(4096))]
pub struct VsockMem {
    pub rings: [RingPage; 3],
    pub rx: [[u8; BUF]; QSIZE],
    pub tx: [[u8; BUF]; QSIZE],
    pub ev: [[u8; 8]; 4],
}

/// A split virtqueue over a ring page.
pub struct Vq {
    page: *mut u8,
    size: u16,
    avail_idx: u16,
    last_used: u16,
}

impl Vq {
    const fn empty() -> Vq {
        Vq {
            page: core::ptr::null_mut(),
            size: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }

    fn w16(&self, off: usize, v: u16) {
        if off + 2 > 4096 || self.page.is_null() {
            return;
        }
        // SAFETY: `page` is a live 4 KiB ring page and `off + 2 <= 4096`.
        unsafe { core::ptr::write_volatile(self.page.add(off) as *mut u16, v) }
    }

    fn r16(&self, off: usize) -> u16 {
        if off + 2 > 4096 || self.page.is_null() {
            return 0;
        }
        // SAFETY: as `w16`; the device may write it concurrently (volatile).
        unsafe { core::ptr::read_volatile(self.page.add(off) as *const u16) }
    }

    fn r32(&self, off: usize) -> u32 {
        if off + 4 > 4096 || self.page.is_null() {
            return 0;
        }
        // SAFETY: as `r16`.
        unsafe { core::ptr::read_volatile(self.page.add(off) as *const u32) }
    }

    fn w64(&self, off: usize, v: u64) {
        if off + 8 > 4096 || self.page.is_null() {
            return;
        }
        // SAFETY: as `w16`, 8-byte aligned (descriptors are 16 bytes).
        unsafe { core::ptr::write_volatile(self.page.add(off) as *mut u64, v) }
    }

    /// Sets descriptor `id` to one buffer.
    fn set_desc(&self, id: usize, addr: u64, len: u32, flags: u16) {
        let off = id * 16;
        self.w64(off, addr);
        self.w16(off + 8, (len & 0xffff) as u16);
        self.w16(off + 10, (len >> 16) as u16);
        self.w16(off + 12, flags);
        self.w16(off + 14, 0);
    }

    /// Makes descriptor `id` available (the caller notifies).
    fn push(&mut self, id: u16) {
        let slot = (self.avail_idx as usize) & (self.size as usize - 1);
        self.w16(AVAIL_OFF + 4 + 2 * slot, id);
        compiler_fence(Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.w16(AVAIL_OFF + 2, self.avail_idx);
    }

    /// Has the device returned buffers we have not seen?
    fn has_used(&self) -> bool {
        !self.page.is_null() && self.r16(USED_OFF + 2) != self.last_used
    }

    /// The next used element: (descriptor id, length). Ids out of range are
    /// returned as they are; the caller checks them.
    fn pop(&mut self) -> Option<(usize, u32)> {
        if self.page.is_null() || self.size == 0 {
            return None;
        }
        let idx = self.r16(USED_OFF + 2);
        if idx == self.last_used {
            return None;
        }
        compiler_fence(Ordering::SeqCst);
        let slot = (self.last_used as usize) & (self.size as usize - 1);
        let id = self.r32(USED_OFF + 4 + 8 * slot);
        let len = self.r32(USED_OFF + 8 + 8 * slot);
        self.last_used = self.last_used.wrapping_add(1);
        Some((id as usize, len))
    }
}

/// Why the device could not be started.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    NotVirtio,
    WrongDevice,
    NoVersion1,
    FeaturesRefused,
    QueueUnavailable,
    Failed,
}

impl InitError {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            InitError::NotVirtio => b"not a virtio-mmio v2 device",
            InitError::WrongDevice => b"not a vsock device",
            InitError::NoVersion1 => b"no VIRTIO_F_VERSION_1",
            InitError::FeaturesRefused => b"FEATURES_OK refused",
            InitError::QueueUnavailable => b"queue unavailable",
            InitError::Failed => b"DRIVER_OK refused",
        }
    }
}

/// The vsock device.
pub struct VsockDev {
    pub base: u64,
    mem: *mut VsockMem,
    q: [Vq; 3],
    /// Free transmit descriptors, one bit each.
    tx_free: u64,
    kick: [bool; 3],
    pub guest_cid: u64,
    pub transport_resets: u64,
    pub bad_used: u64,
}

impl VsockDev {
    pub const fn empty() -> VsockDev {
        VsockDev {
            base: 0,
            mem: core::ptr::null_mut(),
            q: [Vq::empty(), Vq::empty(), Vq::empty()],
            tx_free: 0,
            kick: [false; 3],
            guest_cid: 0,
            transport_resets: 0,
            bad_used: 0,
        }
    }

    /// Resets and starts the device at `base` with `mem` (identity-mapped:
    /// its addresses are guest-physical).
    pub fn init(&mut self, base: u64, mem: *mut VsockMem) -> Result<(), InitError> {
        self.base = base;
        self.mem = mem;
        let r = |off: u64| rd32(base + off);
        let w = |off: u64, v: u32| wr32(base + off, v);
        if r(R_MAGIC) != MAGIC || r(R_VERSION) != 2 {
            return Err(InitError::NotVirtio);
        }
        if r(R_DEVICE_ID) != DEVICE_VSOCK {
            return Err(InitError::WrongDevice);
        }
        w(R_STATUS, 0);
        w(R_STATUS, S_ACK);
        w(R_STATUS, S_ACK | S_DRIVER);
        w(R_DEVICE_FEATURES_SEL, 1);
        let hi = r(R_DEVICE_FEATURES);
        if hi & 1 == 0 {
            w(R_STATUS, S_FAILED);
            return Err(InitError::NoVersion1);
        }
        w(R_DRIVER_FEATURES_SEL, 0);
        w(R_DRIVER_FEATURES, 0);
        w(R_DRIVER_FEATURES_SEL, 1);
        w(R_DRIVER_FEATURES, 1);
        w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
        if r(R_STATUS) & S_FEATURES_OK == 0 {
            w(R_STATUS, S_FAILED);
            return Err(InitError::FeaturesRefused);
        }
        for qi in 0..3usize {
            w(R_QUEUE_SEL, qi as u32);
            let max = r(R_QUEUE_NUM_MAX) as usize;
            if max == 0 || r(R_QUEUE_READY) != 0 {
                w(R_STATUS, S_FAILED);
                return Err(InitError::QueueUnavailable);
            }
            let mut size = QSIZE;
            while size > max {
                size /= 2;
            }
            if qi == 2 && size > 4 {
                size = 4;
            }
            // SAFETY: `mem` points to the driver's memory (a static of this
            // image); only the address of one ring page is taken.
            let page = unsafe { (core::ptr::addr_of_mut!((*mem).rings) as *mut u8).add(qi * 4096) };
            // SAFETY: zeroing the 4 KiB ring page before the device sees it.
            unsafe { core::ptr::write_bytes(page, 0, 4096) };
            let Some(q) = self.q.get_mut(qi) else {
                return Err(InitError::QueueUnavailable);
            };
            *q = Vq {
                page,
                size: size as u16,
                avail_idx: 0,
                last_used: 0,
            };
            let a = page as u64;
            w(R_QUEUE_NUM, size as u32);
            for (reg, addr) in [
                (R_QUEUE_DESC, a),
                (R_QUEUE_DRIVER, a + AVAIL_OFF as u64),
                (R_QUEUE_DEVICE, a + USED_OFF as u64),
            ] {
                w(reg, addr as u32);
                w(reg + 4, (addr >> 32) as u32);
            }
            w(R_QUEUE_READY, 1);
        }
        self.guest_cid = r(R_CONFIG) as u64 | ((r(R_CONFIG + 4) as u64) << 32);
        w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        if r(R_STATUS) & (S_DRIVER_OK | 0x40) != S_DRIVER_OK {
            return Err(InitError::Failed);
        }
        // Receive and event buffers, all of them; every transmit slot free.
        let rx_size = self.q[0].size as usize;
        for id in 0..rx_size {
            self.post_rx(id);
        }
        for id in 0..self.q[2].size as usize {
            self.post_ev(id);
        }
        let tx_size = self.q[1].size as usize;
        self.tx_free = if tx_size >= 64 {
            u64::MAX
        } else {
            (1u64 << tx_size) - 1
        };
        self.kick = [true, false, true];
        self.notify();
        Ok(())
    }

    fn rx_buf(&self, id: usize) -> Option<*mut u8> {
        if id >= QSIZE || self.mem.is_null() {
            return None;
        }
        // SAFETY: `id < QSIZE`: the address of one receive buffer of the driver's memory.
        Some(unsafe { (core::ptr::addr_of_mut!((*self.mem).rx) as *mut u8).add(id * BUF) })
    }

    fn post_rx(&mut self, id: usize) {
        let Some(buf) = self.rx_buf(id) else { return };
        let q = &mut self.q[0];
        if id >= q.size as usize {
            return;
        }
        q.set_desc(id, buf as u64, BUF as u32, DESC_F_WRITE);
        q.push(id as u16);
        self.kick[0] = true;
    }

    fn post_ev(&mut self, id: usize) {
        if id >= 4 || self.mem.is_null() {
            return;
        }
        // SAFETY: `id < 4`: the address of one event buffer.
        let buf =
            unsafe { (core::ptr::addr_of_mut!((*self.mem).ev) as *mut u8).add(id * 8) } as u64;
        let q = &mut self.q[2];
        if id >= q.size as usize {
            return;
        }
        q.set_desc(id, buf, 8, DESC_F_WRITE);
        q.push(id as u16);
        self.kick[2] = true;
    }

    /// Notifies the queues that got new buffers.
    pub fn notify(&mut self) {
        for (qi, k) in self.kick.iter_mut().enumerate() {
            if *k {
                wr32(self.base + R_QUEUE_NOTIFY, qi as u32);
                *k = false;
            }
        }
    }

    /// Anything returned by the device?
    pub fn has_work(&self) -> bool {
        self.q.iter().any(|q| q.has_used())
    }

    /// Transmit buffers still held by the device.
    pub fn tx_in_flight(&self) -> bool {
        let size = self.q[1].size as usize;
        let all = if size >= 64 {
            u64::MAX
        } else {
            (1u64 << size) - 1
        };
        self.tx_free != all
    }

    /// Takes back transmit buffers, hands received packets to `stack`,
    /// reposts their buffers; returns true on a transport reset event.
    pub fn service(&mut self, stack: &mut Stack) -> bool {
        while let Some((id, _)) = self.q[1].pop() {
            if id < self.q[1].size as usize && id < 64 {
                self.tx_free |= 1 << id;
            } else {
                self.bad_used += 1;
            }
        }
        while let Some((id, len)) = self.q[0].pop() {
            let Some(buf) = self.rx_buf(id).filter(|_| id < self.q[0].size as usize) else {
                self.bad_used += 1;
                continue;
            };
            let len = (len as usize).min(BUF);
            // SAFETY: `buf` is a 4 KiB receive buffer of ours and `len <= 4096`;
            // the device is done with it (it is in the used ring).
            let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
            if let Some(h) = Hdr::decode(bytes) {
                let data = bytes.get(HDR_LEN..).unwrap_or(&[]);
                stack.receive(&h, data);
            } else {
                self.bad_used += 1;
            }
            self.post_rx(id);
        }
        let mut reset = false;
        while let Some((id, len)) = self.q[2].pop() {
            if id >= 4 || id >= self.q[2].size as usize || self.mem.is_null() {
                self.bad_used += 1;
                continue;
            }
            // SAFETY: `id < 4`: one 8-byte event buffer.
            let ev = unsafe {
                core::ptr::read_volatile(
                    (core::ptr::addr_of!((*self.mem).ev) as *const [u8; 8]).add(id),
                )
            };
            if len >= 4 && u32::from_le_bytes([ev[0], ev[1], ev[2], ev[3]]) == 0 {
                reset = true;
            }
            self.post_ev(id);
        }
        if reset {
            self.transport_resets += 1;
            self.guest_cid =
                rd32(self.base + R_CONFIG) as u64 | ((rd32(self.base + R_CONFIG + 4) as u64) << 32);
        }
        reset
    }
}

impl Wire for VsockDev {
    fn send(&mut self, hdr: &Hdr, data: &[u8]) -> bool {
        if data.len() > MAX_PAYLOAD || self.mem.is_null() || self.tx_free == 0 {
            return false;
        }
        let id = self.tx_free.trailing_zeros() as usize;
        if id >= QSIZE || id >= self.q[1].size as usize {
            return false;
        }
        // SAFETY: `id < QSIZE`: one transmit buffer of ours, not in the
        // device's hands (its bit was free).
        let Some(buf) = (unsafe { &mut *core::ptr::addr_of_mut!((*self.mem).tx) }).get_mut(id)
        else {
            return false;
        };
        if !hdr.encode(buf) {
            return false;
        }
        let Some(dst) = buf.get_mut(HDR_LEN..HDR_LEN + data.len()) else {
            return false;
        };
        crate::vsock::copy(dst, data);
        self.tx_free &= !(1u64 << id);
        let addr = buf.as_ptr() as u64;
        self.q[1].set_desc(id, addr, (HDR_LEN + data.len()) as u32, 0);
        self.q[1].push(id as u16);
        self.kick[1] = true;
        true
    }
}

/// Memory of the block driver: its ring page and one request.
#[repr(C, align(4096))]
pub struct BlkMem {
    pub ring: RingPage,
    /// type u32, reserved u32, sector u64.
    pub hdr: [u8; 16],
    pub data: [u8; 512],
    pub status: [u8; 16],
}

/// virtio-blk (device id 2), one synchronous 512-byte request at a time,
/// polled (its interrupt is not routed).
pub struct BlkDev {
    pub base: u64,
    mem: *mut BlkMem,
    q: Vq,
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    pub read_only: bool,
}

const BLK_T_IN: u32 = 0;
const BLK_T_OUT: u32 = 1;
const BLK_F_RO: u32 = 1 << 5;
const DESC_F_NEXT: u16 = 1;

impl BlkDev {
    pub const fn empty() -> BlkDev {
        BlkDev {
            base: 0,
            mem: core::ptr::null_mut(),
            q: Vq::empty(),
            capacity: 0,
            read_only: false,
        }
    }

    pub fn ready(&self) -> bool {
        !self.mem.is_null()
    }

    pub fn init(&mut self, base: u64, mem: *mut BlkMem) -> Result<(), InitError> {
        let r = |off: u64| rd32(base + off);
        let w = |off: u64, v: u32| wr32(base + off, v);
        if r(R_MAGIC) != MAGIC || r(R_VERSION) != 2 {
            return Err(InitError::NotVirtio);
        }
        if r(R_DEVICE_ID) != DEVICE_BLOCK {
            return Err(InitError::WrongDevice);
        }
        w(R_STATUS, 0);
        w(R_STATUS, S_ACK);
        w(R_STATUS, S_ACK | S_DRIVER);
        w(R_DEVICE_FEATURES_SEL, 0);
        let lo = r(R_DEVICE_FEATURES);
        w(R_DEVICE_FEATURES_SEL, 1);
        if r(R_DEVICE_FEATURES) & 1 == 0 {
            w(R_STATUS, S_FAILED);
            return Err(InitError::NoVersion1);
        }
        w(R_DRIVER_FEATURES_SEL, 0);
        w(R_DRIVER_FEATURES, lo & BLK_F_RO);
        w(R_DRIVER_FEATURES_SEL, 1);
        w(R_DRIVER_FEATURES, 1);
        w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
        if r(R_STATUS) & S_FEATURES_OK == 0 {
            w(R_STATUS, S_FAILED);
            return Err(InitError::FeaturesRefused);
        }
        w(R_QUEUE_SEL, 0);
        let max = r(R_QUEUE_NUM_MAX) as usize;
        if max < 4 || r(R_QUEUE_READY) != 0 {
            w(R_STATUS, S_FAILED);
            return Err(InitError::QueueUnavailable);
        }
        // SAFETY: `mem` is the driver's own memory; only its ring page's address is taken.
        let page = unsafe { core::ptr::addr_of_mut!((*mem).ring) } as *mut u8;
        // SAFETY: zeroing our 4 KiB ring page before the device sees it.
        unsafe { core::ptr::write_bytes(page, 0, 4096) };
        self.q = Vq {
            page,
            size: 4,
            avail_idx: 0,
            last_used: 0,
        };
        let a = page as u64;
        w(R_QUEUE_NUM, 4);
        for (reg, addr) in [
            (R_QUEUE_DESC, a),
            (R_QUEUE_DRIVER, a + AVAIL_OFF as u64),
            (R_QUEUE_DEVICE, a + USED_OFF as u64),
        ] {
            w(reg, addr as u32);
            w(reg + 4, (addr >> 32) as u32);
        }
        w(R_QUEUE_READY, 1);
        self.capacity = r(R_CONFIG) as u64 | ((r(R_CONFIG + 4) as u64) << 32);
        self.read_only = lo & BLK_F_RO != 0;
        w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        if r(R_STATUS) & (S_DRIVER_OK | 0x40) != S_DRIVER_OK {
            return Err(InitError::Failed);
        }
        self.base = base;
        self.mem = mem;
        Ok(())
    }

    /// Reads or writes sector `lba` (512 bytes) and waits for the answer.
    pub fn rw(&mut self, write: bool, lba: u64, buf: &mut [u8; 512]) -> Result<(), &'static [u8]> {
        if self.mem.is_null() {
            return Err(b"no virtio-blk disk");
        }
        if lba >= self.capacity {
            return Err(b"LBA beyond the end of the disk");
        }
        if write && self.read_only {
            return Err(b"the disk is read-only");
        }
        let mem = self.mem;
        // SAFETY: the driver's request memory; the device does not hold it
        // (no request is outstanding between calls).
        let (hdr, data, status) = unsafe {
            (
                &mut *core::ptr::addr_of_mut!((*mem).hdr),
                &mut *core::ptr::addr_of_mut!((*mem).data),
                &mut *core::ptr::addr_of_mut!((*mem).status),
            )
        };
        let t = if write { BLK_T_OUT } else { BLK_T_IN };
        hdr[0..4].copy_from_slice(&t.to_le_bytes());
        hdr[4..8].copy_from_slice(&0u32.to_le_bytes());
        hdr[8..16].copy_from_slice(&lba.to_le_bytes());
        if write {
            *data = *buf;
        }
        status[0] = 0xff;
        compiler_fence(Ordering::SeqCst);
        let q = &mut self.q;
        q.set_desc(0, hdr.as_ptr() as u64, 16, DESC_F_NEXT);
        q.w16(14, 1);
        q.set_desc(
            1,
            data.as_ptr() as u64,
            512,
            DESC_F_NEXT | if write { 0 } else { DESC_F_WRITE },
        );
        q.w16(16 + 14, 2);
        q.set_desc(2, status.as_ptr() as u64, 1, DESC_F_WRITE);
        q.push(0);
        wr32(self.base + R_QUEUE_NOTIFY, 0);
        let mut spins = 0u64;
        loop {
            if let Some((id, _)) = self.q.pop() {
                if id == 0 {
                    break;
                }
                continue;
            }
            spins += 1;
            if spins > 2_000_000_000 {
                return Err(b"the disk did not answer");
            }
            core::hint::spin_loop();
        }
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the device is done with the status byte (the chain is used).
        let st = unsafe { core::ptr::read_volatile(status.as_ptr()) };
        match st {
            0 => {
                if !write {
                    // SAFETY: as above, for the data buffer.
                    *buf = unsafe { core::ptr::read_volatile(data as *const [u8; 512]) };
                }
                Ok(())
            }
            1 => Err(b"I/O error (VIRTIO_BLK_S_IOERR)"),
            2 => Err(b"unsupported (VIRTIO_BLK_S_UNSUPP)"),
            _ => Err(b"bad status from the device"),
        }
    }
}
