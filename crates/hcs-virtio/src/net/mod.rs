//! virtio-net (device type 1) over an existing tap device.
//!
//! Two queues (receive, transmit), `VIRTIO_NET_F_MAC` with the adapter's
//! MAC address in the configuration space, and `VIRTIO_NET_F_STATUS` with
//! the link always up. No checksum or segmentation offload is offered, so
//! the tap carries plain Ethernet frames; the device adds the 12-byte
//! `virtio_net_hdr_v1` to received frames and strips it from sent ones.
//! Frames are at most [`MAX_FRAME_LEN`] bytes.
//!
//! The tap must exist (see [`Tap::open`]); the device attaches to it when
//! it is built and keeps it for its lifetime. When the driver sets
//! `DRIVER_OK` the [`NetWorker`] moves to a thread of its own (named
//! `net-<tap>`) and runs its epoll loop there; queue notifications reach it
//! through per-queue eventfds ([`VirtioDevice::queue_eventfd`]). A device
//! reset stops the thread and keeps the tap.

mod tap;
mod worker;

use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

pub use tap::{valid_interface_name, Tap, TapError};
pub use worker::{NetQueues, NetStats, NetWorker, RX_QUEUE, TX_QUEUE};

use crate::block::copy_config;
use crate::device::{ActivateError, DeviceQueues, VirtioDevice};
use crate::device_type;
use crate::worker_thread::LoopThread;

/// Queue size offered for both queues.
pub const QUEUE_SIZE: u16 = 256;
/// Feature bit: the configuration space has the device's MAC address.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Feature bit: the configuration space has a link status.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// Link status bit: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// Length of `virtio_net_hdr_v1` (virtio 1.x always has `num_buffers`).
pub const VNET_HDR_LEN: usize = 12;
/// The largest Ethernet frame moved either way (without the header).
pub const MAX_FRAME_LEN: usize = 65550;
/// The largest frame with its virtio-net header (what Firecracker allows).
pub const MAX_BUFFER_LEN: usize = VNET_HDR_LEN + MAX_FRAME_LEN;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

/// Why a MAC address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// Not six pairs of hex digits separated by all `-` or all `:`.
    #[error(
        "MAC address {0:?} is malformed: expected six two-digit hex bytes separated by '-' or ':' \
         (00-15-5D-01-02-03 or 00:15:5d:01:02:03)"
    )]
    Syntax(String),
    /// A group (multicast or broadcast) address.
    #[error("MAC address {0:?} is a multicast address (low bit of the first byte set); a network adapter needs a unicast address")]
    Multicast(String),
    /// All zeros.
    #[error("MAC address {0:?} is all zeros")]
    Zero(String),
}

impl MacAddress {
    /// Parse the Windows form (`00-15-5D-01-02-03`) or the Linux form
    /// (`00:15:5d:01:02:03`), in either case. Group and all-zero addresses
    /// are refused: they cannot name an adapter.
    pub fn parse(s: &str) -> Result<MacAddress, MacError> {
        let syntax = || MacError::Syntax(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut bytes = [0u8; 6];
        let mut parts = s.split(sep);
        for b in &mut bytes {
            let part = parts.next().ok_or_else(syntax)?;
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(syntax());
            }
            *b = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        let mac = MacAddress(bytes);
        if mac.is_multicast() {
            return Err(MacError::Multicast(s.to_string()));
        }
        if bytes == [0; 6] {
            return Err(MacError::Zero(s.to_string()));
        }
        Ok(mac)
    }

    /// A locally administered unicast address derived from `seed` (the
    /// same seed always gives the same address).
    pub fn local_from_seed(seed: &[u8]) -> MacAddress {
        // FNV-1a, 64 bits.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in seed {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let h = h.to_le_bytes();
        // 02: locally administered, unicast.
        MacAddress([0x02, h[0], h[1], h[2], h[3], h[4] ^ h[5] ^ h[6] ^ h[7]])
    }

    /// The six bytes.
    pub fn bytes(&self) -> [u8; 6] {
        self.0
    }

    /// A group (multicast or broadcast) address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// A locally administered address.
    pub fn is_local(&self) -> bool {
        self.0[0] & 2 != 0
    }
}

impl std::fmt::Display for MacAddress {
    /// The Linux form, `00:15:5d:01:02:03`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

impl std::str::FromStr for MacAddress {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MacAddress::parse(s)
    }
}

/// How to build a network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The existing tap device to attach.
    pub tap: String,
    /// The adapter's MAC address, as the guest sees it.
    pub mac: MacAddress,
}

/// Why a network device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The tap could not be attached.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// An eventfd or epoll instance could not be created.
    #[error("setting up the network device: {0}")]
    Setup(#[source] std::io::Error),
}

/// A virtio-net device.
pub struct Net {
    tap_name: String,
    mac: MacAddress,
    thread: LoopThread<NetWorker>,
    queue_evts: Vec<EventFd>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("tap", &self.tap_name)
            .field("mac", &self.mac)
            .field("active", &self.thread.is_running())
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Attach the tap `config` names and build the device.
    pub fn new(config: &NetConfig) -> Result<Net, NetError> {
        let tap = Tap::open(&config.tap)?;
        Net::with_tap(tap, config.mac)
    }

    /// A device over an attached tap.
    pub fn with_tap(tap: Tap, mac: MacAddress) -> Result<Net, NetError> {
        let worker = NetWorker::new(tap)?;
        let queue_evts = (0..2)
            .map(|i| {
                worker
                    .queue_eventfd(i)
                    .ok_or_else(|| NetError::Setup(std::io::Error::other("missing queue eventfd")))?
                    .try_clone()
                    .map_err(NetError::Setup)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tap_name = worker.tap_name().to_string();
        let kicks = crate::worker_thread::clone_all(&queue_evts).map_err(NetError::Setup)?;
        let control = worker.control();
        Ok(Net {
            mac,
            thread: LoopThread::new(format!("net-{tap_name}"), worker, control, kicks),
            tap_name,
            queue_evts,
        })
    }

    /// The tap's name.
    pub fn tap_name(&self) -> &str {
        &self.tap_name
    }

    /// The adapter's MAC address.
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// Frame counters, while the driver has not started the device (its
    /// thread has them otherwise).
    pub fn stats(&self) -> Option<NetStats> {
        self.thread.idle().map(NetWorker::stats)
    }

    fn config_space(&self) -> [u8; 8] {
        let mut c = [0u8; 8];
        c[..6].copy_from_slice(&self.mac.0);
        c[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        c
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 2]
    }

    fn features(&self) -> u64 {
        VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config_space(), offset, data);
    }

    fn activate(&mut self, q: DeviceQueues) -> Result<(), ActivateError> {
        self.thread.stop();
        if q.queues.len() != 2 {
            return Err(ActivateError::QueueCount {
                expected: 2,
                got: q.queues.len(),
            });
        }
        for (i, queue) in q.queues.iter().enumerate() {
            if !queue.ready() {
                return Err(ActivateError::QueueNotReady(i));
            }
        }
        let Some(worker) = self.thread.idle_mut() else {
            return Err(ActivateError::Unusable("its thread died".into()));
        };
        let mut queues = q.queues.into_iter();
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
            return Err(ActivateError::QueueCount {
                expected: 2,
                got: 0,
            });
        };
        worker.attach(NetQueues {
            mem: q.mem,
            rx,
            tx,
            interrupt: q.interrupt,
        });
        self.thread.start()
    }

    fn pause(&mut self) {
        self.thread.pause();
    }

    fn resume(&mut self) {
        self.thread.resume();
    }

    fn queue_notify(&mut self, index: u16) {
        if let Some(evt) = self.queue_evts.get(usize::from(index)) {
            if let Err(e) = evt.write(1) {
                tracing::warn!(
                    index,
                    "virtio-net: signalling a queue notification failed: {e}"
                );
            }
        }
    }

    fn queue_eventfd(&self, index: u16) -> Option<&EventFd> {
        self.queue_evts.get(usize::from(index))
    }

    fn reset(&mut self) {
        self.thread.stop();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.thread.stop();
    }
}

#[cfg(test)]
mod tests;
