//! virtio-blk over a raw image or a fixed VHD.
//!
//! Requests are served synchronously when the driver notifies the queue
//! (on the vCPU thread that wrote `QueueNotify`). Supported: read, write
//! (refused with `IOERR` on a read-only disk, which also offers
//! `VIRTIO_BLK_F_RO`), flush (`fdatasync`) and GET_ID. Every request is
//! checked against the disk's capacity; a malformed chain fails only its
//! own request, with `IOERR` written to its status byte when it has one.

mod disk;
pub mod limiter;

pub use limiter::{IoLimiter, IoLimits};

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes};

pub use disk::{
    fixed_vhd_footer, CacheMode, DiskError, DiskFormat, DiskImage, SECTOR_SIZE, VHD_FOOTER_SIZE,
};

use crate::chain::{self, Chain, ChainLimits, SegmentCursor};
use crate::device::{
    drain_available, notify_used, ActivateError, DeviceQueues, Served, VirtioDevice,
};
use crate::{device_type, GuestMemoryMmap, Interrupt};

/// Request type: read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: device id string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: I/O error (also: malformed request).
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Feature: `seg_max` in the configuration space is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// Feature: the disk is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// Feature: the device has a flush command.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

/// Length of a GET_ID answer.
pub const ID_BYTES: usize = 20;
/// Queue size offered to the driver.
pub const QUEUE_SIZE: u16 = 256;
/// Data buffers per request the driver may use (`seg_max`).
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Largest request accepted (bytes of data); larger ones fail with IOERR.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// Header of every request: type, reserved, sector.
const HEADER_LEN: u64 = 16;
/// Bytes moved per read/write system call.
const CHUNK: usize = 256 << 10;

const LIMITS: ChainLimits = ChainLimits {
    max_descriptors: SEG_MAX as usize + 2,
    max_bytes: MAX_REQUEST_BYTES + HEADER_LEN + 1,
};

/// How to build a block device.
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// The image file (raw, or a fixed VHD).
    pub path: std::path::PathBuf,
    /// Open it read-only and tell the guest so.
    pub read_only: bool,
    /// The id the guest reads with GET_ID (`/sys/block/vdX/serial`); at
    /// most 20 bytes are used.
    pub id: String,
    /// Caching, flushes, interrupts.
    pub options: BlockOptions,
}

/// How a disk serves its requests beyond reading and writing.
#[derive(Debug, Clone, Default)]
pub struct BlockOptions {
    /// Host caching of the image.
    pub cache: CacheMode,
    /// Complete flush requests at once, without `fdatasync` (the guest
    /// still sees a volatile write cache and sends them).
    pub ignore_flushes: bool,
    /// Interrupt the guest after every completed request instead of once
    /// per batch of requests served together.
    pub interrupt_per_request: bool,
    /// I/O limits, shared by every disk given the same limiter.
    pub limiter: Option<Arc<IoLimiter>>,
}

impl PartialEq for BlockOptions {
    fn eq(&self, other: &Self) -> bool {
        self.cache == other.cache
            && self.ignore_flushes == other.ignore_flushes
            && self.interrupt_per_request == other.interrupt_per_request
            && match (&self.limiter, &other.limiter) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for BlockOptions {}

struct Active {
    mem: GuestMemoryMmap,
    queue: Queue,
    interrupt: Arc<Interrupt>,
}

/// What serving requests needs; shared with the thread that serves
/// throttled requests once the limiter allows them.
struct Core {
    disk: Arc<DiskImage>,
    id: [u8; ID_BYTES],
    active: Option<Active>,
    bounce: Vec<u8>,
    options: BlockOptions,
    /// Saving: nothing may touch guest memory.
    paused: bool,
}

/// A virtio-blk device.
pub struct Block {
    disk: Arc<DiskImage>,
    core: Arc<Mutex<Core>>,
    /// Serves throttled requests later (started when first needed).
    retry: Option<Retry>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("disk", &self.disk)
            .field("active", &lock(&self.core).active.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Block {
    /// Open the image `config` names.
    pub fn open(config: &BlockConfig) -> Result<Block, DiskError> {
        let disk = DiskImage::open_with(&config.path, config.read_only, config.options.cache)?;
        let b = Block::new(disk, &config.id);
        lock(&b.core).options = config.options.clone();
        Ok(b)
    }

    /// A device over an open image.
    pub fn new(disk: DiskImage, id: &str) -> Block {
        let mut id_bytes = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        let disk = Arc::new(disk);
        Block {
            disk: disk.clone(),
            core: Arc::new(Mutex::new(Core {
                disk,
                id: id_bytes,
                active: None,
                bounce: Vec::new(),
                options: BlockOptions::default(),
                paused: false,
            })),
            retry: None,
        }
    }

    /// The image behind the device.
    pub fn disk(&self) -> &DiskImage {
        &self.disk
    }

    /// The queue's next available and next used positions, once active.
    #[cfg(test)]
    fn queue_positions(&self) -> Option<(u16, u16)> {
        let c = lock(&self.core);
        let q = &c.active.as_ref()?.queue;
        Some((q.next_avail(), q.next_used()))
    }

    fn config_space(&self) -> [u8; 24] {
        let mut c = [0u8; 24];
        c[0..8].copy_from_slice(&self.disk.sectors().to_le_bytes());
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        c
    }

    /// Serve every available request the limits allow; the rest are served
    /// later by the retry thread, without another notification.
    pub fn process_queue(&mut self) {
        let wait = lock(&self.core).process_queue();
        if let Some(wait) = wait {
            let core = self.core.clone();
            self.retry
                .get_or_insert_with(|| Retry::start(core))
                .arm(Instant::now() + wait);
        }
    }
}

impl Core {
    /// Serve every available request; `Some(wait)` when the limiter held
    /// some back (they stay in the available ring) for that long.
    fn process_queue(&mut self) -> Option<Duration> {
        if self.paused {
            return None;
        }
        let active = self.active.as_mut()?;
        let mut server = Server {
            disk: &self.disk,
            id: &self.id,
            bounce: &mut self.bounce,
            ignore_flushes: self.options.ignore_flushes,
        };
        let per_request = self.options.interrupt_per_request;
        let limiter = self.options.limiter.as_deref();
        let mem = &active.mem;
        let mut used_any = false;
        let mut throttled = None;
        let interrupt = &active.interrupt;
        drain_available(&mut active.queue, mem, "virtio-blk", |queue, chain| {
            if let Some(l) = limiter {
                if let Err(wait) = l.try_take(data_bytes(&chain)) {
                    // Leave it in the ring for the retry.
                    queue.go_to_previous_position();
                    throttled = Some(wait);
                    return Served::Stop;
                }
            }
            let head = chain.head_index();
            let used = server.serve(chain, mem);
            if let Err(e) = queue.add_used(mem, head, used) {
                tracing::warn!(head, "virtio-blk: returning a request failed: {e}");
            }
            if per_request {
                notify_used(queue, mem, interrupt);
            } else {
                used_any = true;
            }
            Served::Next
        });
        if used_any {
            notify_used(&mut active.queue, mem, &active.interrupt);
        }
        throttled
    }
}

/// Bytes of data a request moves (what the bandwidth limit counts): its
/// buffers less the 16-byte header and the status byte.
fn data_bytes<M>(chain: &DescriptorChain<M>) -> u64
where
    M: std::ops::Deref + Clone,
    M::Target: vm_memory::GuestMemory,
{
    let total: u64 = chain
        .clone()
        .take(LIMITS.max_descriptors)
        .map(|d| u64::from(d.len()))
        .fold(0, u64::saturating_add);
    total.saturating_sub(HEADER_LEN + 1)
}

/// When the retry thread should next serve the queue.
#[derive(Default)]
struct RetryState {
    at: Option<Instant>,
    stop: bool,
}

/// A thread that serves a throttled queue when its deadline passes.
struct Retry {
    state: Arc<(Mutex<RetryState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Retry {
    fn start(core: Arc<Mutex<Core>>) -> Retry {
        let state = Arc::new((Mutex::new(RetryState::default()), Condvar::new()));
        let s = state.clone();
        let thread = std::thread::Builder::new()
            .name("virtio-blk-retry".into())
            .spawn(move || retry_loop(&s, &core))
            .map_err(|e| tracing::error!("starting the virtio-blk retry thread: {e}"))
            .ok();
        Retry { state, thread }
    }

    /// Serve the queue at `at` (or earlier, if already armed earlier).
    fn arm(&self, at: Instant) {
        let (m, cv) = &*self.state;
        let mut s = lock(m);
        s.at = Some(s.at.map_or(at, |old| old.min(at)));
        cv.notify_all();
    }
}

impl Drop for Retry {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.state;
            lock(m).stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn retry_loop(state: &(Mutex<RetryState>, Condvar), core: &Mutex<Core>) {
    let (m, cv) = state;
    let mut s = lock(m);
    loop {
        if s.stop {
            return;
        }
        match s.at {
            None => s = cv.wait(s).unwrap_or_else(|e| e.into_inner()),
            Some(at) if Instant::now() < at => {
                s = cv
                    .wait_timeout(s, at - Instant::now())
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            Some(_) => {
                s.at = None;
                drop(s);
                let wait = lock(core).process_queue();
                s = lock(m);
                if let Some(wait) = wait {
                    let at = Instant::now() + wait;
                    s.at = Some(s.at.map_or(at, |old| old.min(at)));
                }
            }
        }
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        let ro = if self.disk.read_only() {
            VIRTIO_BLK_F_RO
        } else {
            0
        };
        // A write-through image has no volatile cache for the guest to flush.
        let flush = match self.disk.cache_mode() {
            CacheMode::WriteBack => VIRTIO_BLK_F_FLUSH,
            CacheMode::WriteThrough | CacheMode::Uncached => 0,
        };
        VIRTIO_BLK_F_SEG_MAX | flush | ro
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config_space(), offset, data);
    }

    fn activate(&mut self, q: DeviceQueues) -> Result<(), ActivateError> {
        let queue = q
            .queues
            .into_iter()
            .next()
            .ok_or(ActivateError::QueueCount {
                expected: 1,
                got: 0,
            })?;
        if !queue.ready() {
            return Err(ActivateError::QueueNotReady(0));
        }
        lock(&self.core).active = Some(Active {
            mem: q.mem,
            queue,
            interrupt: q.interrupt,
        });
        Ok(())
    }

    fn queue_notify(&mut self, index: u16) {
        if index == 0 {
            self.process_queue();
        }
    }

    fn pause(&mut self) {
        // Once the lock is ours no request is being served, and the retry
        // thread serves none until resume.
        lock(&self.core).paused = true;
    }

    fn resume(&mut self) {
        lock(&self.core).paused = false;
        self.process_queue();
    }

    fn restored(&mut self) {
        // Requests the limiter held back at the save are in the ring again.
        self.process_queue();
    }

    fn reset(&mut self) {
        lock(&self.core).active = None;
    }
}

/// Copy the part of `space` at `offset` into `data` (zeros beyond it).
pub(crate) fn copy_config(space: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = space.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}

/// What a request produced: bytes written to the driver's data buffers,
/// and the status.
type Outcome = (u32, u8);

struct Server<'a> {
    disk: &'a DiskImage,
    id: &'a [u8; ID_BYTES],
    bounce: &'a mut Vec<u8>,
    ignore_flushes: bool,
}

impl Server<'_> {
    /// Serve one request; returns the used length (data written plus the
    /// status byte, or 0 when there is nowhere to put a status).
    fn serve<M>(&mut self, chain: DescriptorChain<M>, mem: &GuestMemoryMmap) -> u32
    where
        M: std::ops::Deref,
        M::Target: vm_memory::GuestMemory,
    {
        let c = chain::collect(chain, mem, LIMITS);
        let Some(status) = status_byte(&c) else {
            tracing::debug!(error = ?c.error, "virtio-blk: request without a status byte dropped");
            return 0;
        };
        let (written, code) = match c.error {
            Some(e) => {
                tracing::debug!("virtio-blk: malformed request: {e}");
                (0, VIRTIO_BLK_S_IOERR)
            }
            None => self.execute(&c, mem),
        };
        if mem.write_obj(code, status).is_err() {
            return 0;
        }
        written.saturating_add(1)
    }

    fn execute(&mut self, c: &Chain, mem: &GuestMemoryMmap) -> Outcome {
        let mut header = [0u8; HEADER_LEN as usize];
        match SegmentCursor::new(c.readable(), 0).read(mem, &mut header) {
            Ok(n) if n == header.len() => {}
            _ => return (0, VIRTIO_BLK_S_IOERR),
        }
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut sector = [0u8; 8];
        sector.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(sector);
        // The last writable byte is the status.
        let writable = c.total_len(true).saturating_sub(1);
        let readable = c.total_len(false).saturating_sub(HEADER_LEN);
        match kind {
            VIRTIO_BLK_T_IN => self.read(c, mem, sector, writable),
            VIRTIO_BLK_T_OUT => self.write(c, mem, sector, readable),
            // `IgnoreFlushes`: the document trades durability for speed.
            VIRTIO_BLK_T_FLUSH if self.ignore_flushes => (0, VIRTIO_BLK_S_OK),
            VIRTIO_BLK_T_FLUSH => match self.disk.flush() {
                Ok(()) => (0, VIRTIO_BLK_S_OK),
                Err(e) => {
                    tracing::warn!(path = %self.disk.path().display(), "virtio-blk: flush failed: {e}");
                    (0, VIRTIO_BLK_S_IOERR)
                }
            },
            VIRTIO_BLK_T_GET_ID => self.get_id(c, mem, writable),
            other => {
                tracing::debug!(kind = other, "virtio-blk: unsupported request");
                (0, VIRTIO_BLK_S_UNSUPP)
            }
        }
    }

    /// The byte offset of a transfer of `len` bytes at `sector`, if it is
    /// whole sectors inside the disk.
    fn check_range(&self, sector: u64, len: u64) -> Option<u64> {
        if len % SECTOR_SIZE != 0 {
            return None;
        }
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        let end = offset.checked_add(len)?;
        (end <= self.disk.sectors() * SECTOR_SIZE).then_some(offset)
    }

    fn chunk_buffer(&mut self, len: u64) -> &mut [u8] {
        let n = (len as usize).min(CHUNK);
        if self.bounce.len() < n {
            self.bounce.resize(n, 0);
        }
        &mut self.bounce[..n]
    }

    fn read(&mut self, c: &Chain, mem: &GuestMemoryMmap, sector: u64, len: u64) -> Outcome {
        let Some(mut offset) = self.check_range(sector, len) else {
            tracing::debug!(
                sector,
                len,
                "virtio-blk: read beyond the disk or not whole sectors"
            );
            return (0, VIRTIO_BLK_S_IOERR);
        };
        let mut out = SegmentCursor::new(c.writable(), 0);
        let mut left = len;
        let disk = self.disk;
        while left > 0 {
            let buf = self.chunk_buffer(left);
            let n = buf.len();
            if let Err(e) = disk.read_at(buf, offset) {
                tracing::warn!(path = %disk.path().display(), offset, "virtio-blk: read failed: {e}");
                return (0, VIRTIO_BLK_S_IOERR);
            }
            if !matches!(out.write(mem, buf), Ok(w) if w == n) {
                return (0, VIRTIO_BLK_S_IOERR);
            }
            offset += n as u64;
            left -= n as u64;
        }
        // len <= MAX_REQUEST_BYTES, well inside u32.
        (len as u32, VIRTIO_BLK_S_OK)
    }

    fn write(&mut self, c: &Chain, mem: &GuestMemoryMmap, sector: u64, len: u64) -> Outcome {
        if self.disk.read_only() {
            tracing::debug!(sector, "virtio-blk: write to a read-only disk refused");
            return (0, VIRTIO_BLK_S_IOERR);
        }
        let Some(mut offset) = self.check_range(sector, len) else {
            tracing::debug!(
                sector,
                len,
                "virtio-blk: write beyond the disk or not whole sectors"
            );
            return (0, VIRTIO_BLK_S_IOERR);
        };
        let mut input = SegmentCursor::new(c.readable(), HEADER_LEN);
        let mut left = len;
        let disk = self.disk;
        while left > 0 {
            let buf = self.chunk_buffer(left);
            let n = buf.len();
            if !matches!(input.read(mem, buf), Ok(r) if r == n) {
                return (0, VIRTIO_BLK_S_IOERR);
            }
            if let Err(e) = disk.write_at(buf, offset) {
                tracing::warn!(path = %disk.path().display(), offset, "virtio-blk: write failed: {e}");
                return (0, VIRTIO_BLK_S_IOERR);
            }
            offset += n as u64;
            left -= n as u64;
        }
        (0, VIRTIO_BLK_S_OK)
    }

    fn get_id(&mut self, c: &Chain, mem: &GuestMemoryMmap, len: u64) -> Outcome {
        let n = (len as usize).min(ID_BYTES);
        match SegmentCursor::new(c.writable(), 0).write(mem, &self.id[..n]) {
            Ok(w) if w == n => (n as u32, VIRTIO_BLK_S_OK),
            _ => (0, VIRTIO_BLK_S_IOERR),
        }
    }
}

/// Where the status byte goes: the last byte of the last writable buffer,
/// if that buffer is in guest memory.
fn status_byte(c: &Chain) -> Option<vm_memory::GuestAddress> {
    let last = c.writable().filter(|s| s.len > 0).last()?;
    if !last.in_memory || last.len == 0 {
        return None;
    }
    last.addr.checked_add(u64::from(last.len) - 1)
}

#[cfg(test)]
mod tests;
