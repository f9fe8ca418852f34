//! The virtio-net backend: frames between the queues and the tap.
//!
//! An epoll loop over the tap (edge-triggered), the two queue notification
//! eventfds and a control eventfd, in the way Firecracker's and Cloud
//! Hypervisor's net devices work:
//! - transmit: every chain the driver offers is walked with bounds, its
//!   virtio-net header stripped and the frame written to the tap; a bad
//!   chain drops only its frame, and the buffer always goes back;
//! - receive: frames are read from the tap only while the driver has
//!   receive buffers (one frame is held back when it has none, and the
//!   kernel queues the rest); each frame goes into one buffer chain after
//!   a virtio-net header. A chain too small for the frame drops the frame;
//!   a malformed chain is returned unused and the frame tries the next.

use std::io::ErrorKind;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use virtio_queue::{DescriptorChain, Queue, QueueT};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::tap::Tap;
use super::{NetError, MAX_BUFFER_LEN, QUEUE_SIZE, VNET_HDR_LEN};
use crate::chain::{self, ChainLimits, SegmentCursor};
use crate::device::{drain_available, notify_used, Served};
use crate::{GuestMemoryMmap, Interrupt};

/// Index of the receive queue (device to driver).
pub const RX_QUEUE: usize = 0;
/// Index of the transmit queue (driver to device).
pub const TX_QUEUE: usize = 1;

/// Shortest frame accepted from the guest: an Ethernet header.
const ETH_HLEN: usize = 14;
/// Frames moved from the tap per round before other work gets a turn.
const RX_BUDGET: usize = 256;
/// `gso_type` of a frame without segmentation offload.
const GSO_NONE: u8 = 0;

const TX_LIMITS: ChainLimits = ChainLimits {
    max_descriptors: QUEUE_SIZE as usize,
    max_bytes: MAX_BUFFER_LEN as u64,
};
/// Receive chains may be larger than a frame needs (drivers that expect
/// big packets post up to ~68 KiB); anything beyond 1 MiB is nonsense.
const RX_LIMITS: ChainLimits = ChainLimits {
    max_descriptors: QUEUE_SIZE as usize,
    max_bytes: 1 << 20,
};

const TOKEN_TAP: u64 = 0;
const TOKEN_RX: u64 = 1;
const TOKEN_TX: u64 = 2;
const TOKEN_CONTROL: u64 = 3;

/// The queues the backend works on, with their memory and interrupt.
pub struct NetQueues {
    /// Guest memory.
    pub mem: GuestMemoryMmap,
    /// Receive queue (frames to the guest).
    pub rx: Queue,
    /// Transmit queue (frames from the guest).
    pub tx: Queue,
    /// The transport's interrupt.
    pub interrupt: Arc<Interrupt>,
}

/// Requests to the worker's thread.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) evt: EventFd,
    pub(crate) stop: AtomicBool,
}

impl crate::worker_thread::StopSignal for Control {
    fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    fn wake(&self) -> &EventFd {
        &self.evt
    }
}

/// Frame counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames from the guest written to the tap.
    pub tx_frames: u64,
    /// Frames from the guest dropped (malformed chain, too short, too
    /// large, offload asked for, tap write failed).
    pub tx_dropped: u64,
    /// Frames from the tap delivered to the guest.
    pub rx_frames: u64,
    /// Frames from the tap dropped (the guest's buffer was too small).
    pub rx_dropped: u64,
    /// Receive chains returned unused because they were malformed.
    pub rx_bad_chains: u64,
}

/// The virtio-net backend over one tap.
pub struct NetWorker {
    tap: Tap,
    epoll: Epoll,
    queue_evts: [EventFd; 2],
    control: Arc<Control>,
    queues: Option<NetQueues>,
    /// A virtio-net header (written once) followed by the frame held for
    /// the guest.
    rx_buf: Vec<u8>,
    /// Length of the frame in `rx_buf` waiting for a receive buffer.
    rx_pending: Option<usize>,
    /// The budget ran out with frames perhaps still in the tap.
    rx_more: bool,
    tx_buf: Vec<u8>,
    stats: NetStats,
}

impl std::fmt::Debug for NetWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetWorker")
            .field("tap", &self.tap.name())
            .field("attached", &self.queues.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn eventfd() -> Result<EventFd, NetError> {
    EventFd::new(libc::EFD_NONBLOCK).map_err(NetError::Setup)
}

impl NetWorker {
    /// A backend moving frames through `tap`.
    pub fn new(tap: Tap) -> Result<NetWorker, NetError> {
        let control = Arc::new(Control {
            evt: eventfd()?,
            stop: AtomicBool::new(false),
        });
        let mut rx_buf = vec![0u8; MAX_BUFFER_LEN];
        // virtio_net_hdr_v1: no checksum or segmentation offload, and
        // num_buffers = 1 (no VIRTIO_NET_F_MRG_RXBUF).
        rx_buf[..VNET_HDR_LEN].fill(0);
        rx_buf[10..12].copy_from_slice(&1u16.to_le_bytes());
        let w = NetWorker {
            tap,
            epoll: Epoll::new().map_err(NetError::Setup)?,
            queue_evts: [eventfd()?, eventfd()?],
            control,
            queues: None,
            rx_buf,
            rx_pending: None,
            rx_more: false,
            tx_buf: vec![0u8; MAX_BUFFER_LEN],
            stats: NetStats::default(),
        };
        let add = |fd, set, token| {
            w.epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(set, token))
                .map_err(NetError::Setup)
        };
        add(
            w.tap.as_raw_fd(),
            EventSet::IN | EventSet::EDGE_TRIGGERED,
            TOKEN_TAP,
        )?;
        add(w.queue_evts[RX_QUEUE].as_raw_fd(), EventSet::IN, TOKEN_RX)?;
        add(w.queue_evts[TX_QUEUE].as_raw_fd(), EventSet::IN, TOKEN_TX)?;
        add(w.control.evt.as_raw_fd(), EventSet::IN, TOKEN_CONTROL)?;
        Ok(w)
    }

    /// The tap's name.
    pub fn tap_name(&self) -> &str {
        self.tap.name()
    }

    /// The eventfd that stands for a notification of queue `index`.
    pub fn queue_eventfd(&self, index: usize) -> Option<&EventFd> {
        self.queue_evts.get(index)
    }

    pub(crate) fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Frame counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Start working on `queues` (the driver set DRIVER_OK).
    pub fn attach(&mut self, queues: NetQueues) {
        self.queues = Some(queues);
    }

    /// Stop working on the queues (device reset). A frame held for the
    /// guest is dropped; the tap stays attached.
    pub fn detach(&mut self) {
        self.queues = None;
        if self.rx_pending.take().is_some() {
            self.stats.rx_dropped += 1;
        }
        self.rx_more = false;
    }

    /// Run until asked to stop; returns the backend for a later activation.
    fn run_loop(mut self) -> NetWorker {
        while !self.control.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.poll(Duration::from_secs(1)) {
                tracing::error!(tap = self.tap.name(), "virtio-net: event loop failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self
    }

    /// One round of the event loop: wait up to `timeout` for events, then
    /// move frames both ways.
    pub fn poll(&mut self, timeout: Duration) -> std::io::Result<()> {
        let wait = if self.rx_more {
            Duration::ZERO
        } else {
            timeout
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let mut events = [EpollEvent::default(); 8];
        let n = match self.epoll.wait(ms, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        let mut tx = false;
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_RX => {
                    let _ = self.queue_evts[RX_QUEUE].read();
                }
                TOKEN_TX => {
                    let _ = self.queue_evts[TX_QUEUE].read();
                    tx = true;
                }
                TOKEN_CONTROL => {
                    let _ = self.control.evt.read();
                }
                _ => {}
            }
        }
        if tx {
            self.process_tx();
        }
        // Cheap when there is nothing: one read that would block.
        self.process_rx();
        Ok(())
    }

    /// Send every frame the driver queued.
    pub fn process_tx(&mut self) {
        let Some(mut q) = self.queues.take() else {
            return;
        };
        let mut used_any = false;
        drain_available(&mut q.tx, &q.mem, "virtio-net TX", |tx, chain| {
            let head = chain.head_index();
            if self.transmit(chain, &q.mem) {
                self.stats.tx_frames += 1;
            } else {
                self.stats.tx_dropped += 1;
            }
            if let Err(e) = tx.add_used(&q.mem, head, 0) {
                tracing::debug!(head, "virtio-net: returning a TX buffer failed: {e}");
            }
            used_any = true;
            Served::Next
        });
        if used_any {
            notify_used(&mut q.tx, &q.mem, &q.interrupt);
        }
        self.queues = Some(q);
    }

    /// Write the frame of one TX chain to the tap; false if it was dropped.
    fn transmit<M>(&mut self, chain: DescriptorChain<M>, mem: &GuestMemoryMmap) -> bool
    where
        M: std::ops::Deref,
        M::Target: vm_memory::GuestMemory,
    {
        let c = chain::collect(chain, mem, TX_LIMITS);
        if let Some(e) = c.error {
            tracing::debug!("virtio-net: malformed TX chain dropped: {e}");
            return false;
        }
        if c.writable().next().is_some() {
            tracing::debug!("virtio-net: TX chain with a device-writable buffer dropped");
            return false;
        }
        // collect() bounded the total by MAX_BUFFER_LEN.
        let len = c.total_len(false) as usize;
        if len < VNET_HDR_LEN + ETH_HLEN {
            tracing::debug!(len, "virtio-net: TX frame shorter than its headers dropped");
            return false;
        }
        let buf = &mut self.tx_buf[..len];
        match SegmentCursor::new(c.readable(), 0).read(mem, buf) {
            Ok(n) if n == len => {}
            _ => {
                tracing::debug!("virtio-net: reading a TX frame from guest memory failed");
                return false;
            }
        }
        // virtio_net_hdr_v1: flags, gso_type, ... We offered no offloads.
        if buf[1] != GSO_NONE {
            tracing::debug!(
                gso_type = buf[1],
                "virtio-net: TX frame asks for segmentation offload (not offered); dropped"
            );
            return false;
        }
        match self.tap.write_frame(&buf[VNET_HDR_LEN..]) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(tap = self.tap.name(), "virtio-net: tap write failed: {e}");
                false
            }
        }
    }

    /// Take the next frame from the tap into `rx_buf`, if any.
    fn read_frame(&mut self) -> Option<usize> {
        match self.tap.read_frame(&mut self.rx_buf[VNET_HDR_LEN..]) {
            Ok(Some(n)) if n > 0 => Some(n),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(tap = self.tap.name(), "virtio-net: tap read failed: {e}");
                None
            }
        }
    }

    /// Move frames from the tap into the driver's receive buffers.
    pub fn process_rx(&mut self) {
        let Some(mut q) = self.queues.take() else {
            return;
        };
        let mut used_any = false;
        let mut budget = RX_BUDGET;
        self.rx_more = false;
        loop {
            let len = match self.rx_pending {
                Some(len) => len,
                None => {
                    if budget == 0 {
                        self.rx_more = true;
                        break;
                    }
                    budget -= 1;
                    match self.read_frame() {
                        Some(len) => {
                            self.rx_pending = Some(len);
                            len
                        }
                        None => break,
                    }
                }
            };
            let chain = match q.rx.pop_descriptor_chain(&q.mem) {
                Some(c) => c,
                None => {
                    // Out of buffers: ask the driver to tell us when it adds
                    // some, and look once more in case it just did.
                    let more = matches!(q.rx.enable_notification(&q.mem), Ok(true));
                    match more.then(|| q.rx.pop_descriptor_chain(&q.mem)).flatten() {
                        Some(c) => c,
                        None => break,
                    }
                }
            };
            let head = chain.head_index();
            let used = self.deliver(chain, &q.mem, len);
            if let Err(e) = q.rx.add_used(&q.mem, head, used) {
                tracing::debug!(head, "virtio-net: returning an RX buffer failed: {e}");
            }
            used_any = true;
        }
        if used_any {
            notify_used(&mut q.rx, &q.mem, &q.interrupt);
        }
        self.queues = Some(q);
    }

    /// Put the pending frame (`len` bytes) in one receive chain; returns
    /// the used length (0 when the chain was not used for it).
    fn deliver<M>(&mut self, chain: DescriptorChain<M>, mem: &GuestMemoryMmap, len: usize) -> u32
    where
        M: std::ops::Deref,
        M::Target: vm_memory::GuestMemory,
    {
        let c = chain::collect(chain, mem, RX_LIMITS);
        let malformed = match c.error {
            Some(e) => Some(e.to_string()),
            None if c.readable().next().is_some() => {
                Some("a device-readable buffer in a receive chain".to_string())
            }
            None => None,
        };
        if let Some(why) = malformed {
            // The chain fails; the frame waits for the next one.
            tracing::debug!("virtio-net: malformed RX chain returned unused: {why}");
            self.stats.rx_bad_chains += 1;
            return 0;
        }
        self.rx_pending = None;
        let total = VNET_HDR_LEN + len;
        if c.total_len(true) < total as u64 {
            tracing::debug!(
                len,
                room = c.total_len(true),
                "virtio-net: RX buffer too small; frame dropped"
            );
            self.stats.rx_dropped += 1;
            return 0;
        }
        match SegmentCursor::new(c.writable(), 0).write(mem, &self.rx_buf[..total]) {
            Ok(n) if n == total => {
                self.stats.rx_frames += 1;
                // total <= MAX_BUFFER_LEN.
                total as u32
            }
            _ => {
                tracing::debug!("virtio-net: writing an RX frame to guest memory failed");
                self.stats.rx_dropped += 1;
                0
            }
        }
    }
}

impl crate::worker_thread::EventLoop for NetWorker {
    fn run(self) -> Self {
        self.run_loop()
    }

    fn detach(&mut self) {
        NetWorker::detach(self);
    }
}
