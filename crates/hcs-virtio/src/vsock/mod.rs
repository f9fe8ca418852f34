//! virtio-vsock (device type 19) with host-side unix sockets, in the style
//! of Firecracker's hybrid vsock (see [`muxer`]).
//!
//! The device owns a [`VsockMuxer`]; when the driver sets `DRIVER_OK` the
//! muxer moves to a thread of its own (named `vsock-<cid>`) and runs its
//! epoll loop there. Queue notifications reach it through per-queue
//! eventfds ([`VirtioDevice::queue_eventfd`], which an integrator may also
//! register as ioeventfds). A device reset stops the thread, drops every
//! connection and keeps the listening socket.

mod conn;
pub mod muxer;
pub mod packet;
pub mod policy;
mod sock;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

pub use conn::{ConnKey, CONN_BUF_ALLOC};
pub use muxer::{Timeouts, VsockMuxer, VsockQueues, EVENT_QUEUE, RX_QUEUE, TX_QUEUE};
pub use policy::{port_of_service_id, PortRule, VsockPolicy};

use crate::block::copy_config;
use crate::device::{ActivateError, DeviceQueues, VirtioDevice};
use crate::device_type;
use crate::worker_thread::LoopThread;
use muxer::Control;

/// Queue size offered for each of the three queues.
pub const QUEUE_SIZE: u16 = 256;

/// How to build a vsock device.
#[derive(Debug, Clone)]
pub struct VsockConfig {
    /// The guest's context id (3 or more).
    pub guest_cid: u64,
    /// The listening unix socket for host-initiated connections; guest
    /// connections to port P go to `<uds_path>_P`.
    pub uds_path: PathBuf,
    /// Which ports connections may use.
    pub policy: VsockPolicy,
}

/// Why a vsock device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// CIDs 0-2 are reserved and u32::MAX means "any".
    #[error("invalid guest CID {0} (must be 3 ..= 4294967294)")]
    BadCid(u64),
    /// The listening socket could not be bound.
    #[error("binding the vsock socket {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// An eventfd or epoll instance could not be created.
    #[error("setting up the vsock device: {0}")]
    Setup(#[source] std::io::Error),
}

/// Asks a running vsock device for things from another thread (the
/// integrator keeps it after handing the device to its transport).
#[derive(Debug, Clone)]
pub struct VsockHandle {
    control: Arc<Control>,
}

impl VsockHandle {
    /// Drop every connection and post `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`
    /// to the guest, e.g. after restoring a snapshot. If the device is not
    /// running, it happens when the driver next starts it.
    pub fn reset_connections(&self) {
        self.control.reset.store(true, Ordering::SeqCst);
        if let Err(e) = self.control.evt.write(1) {
            tracing::warn!("vsock: waking the device thread failed: {e}");
        }
    }
}

/// A virtio-vsock device.
pub struct Vsock {
    cid: u64,
    thread: LoopThread<VsockMuxer>,
    queue_evts: Vec<EventFd>,
    control: Arc<Control>,
}

impl std::fmt::Debug for Vsock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsock")
            .field("cid", &self.cid)
            .field("active", &self.thread.is_running())
            .finish_non_exhaustive()
    }
}

impl Vsock {
    /// Bind the listening socket and build the device.
    pub fn new(config: &VsockConfig) -> Result<Vsock, VsockError> {
        let mut muxer = VsockMuxer::new(config.guest_cid, &config.uds_path)?;
        muxer.set_policy(config.policy.clone());
        let queue_evts = (0..3)
            .map(|i| {
                muxer
                    .queue_eventfd(i)
                    .ok_or_else(|| {
                        VsockError::Setup(std::io::Error::other("missing queue eventfd"))
                    })?
                    .try_clone()
                    .map_err(VsockError::Setup)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kicks = crate::worker_thread::clone_all(&queue_evts).map_err(VsockError::Setup)?;
        let control = muxer.control();
        Ok(Vsock {
            cid: config.guest_cid,
            thread: LoopThread::new(
                format!("vsock-{}", config.guest_cid),
                muxer,
                control.clone(),
                kicks,
            ),
            control,
            queue_evts,
        })
    }

    /// The guest's CID.
    pub fn guest_cid(&self) -> u64 {
        self.cid
    }

    /// Drop every connection and post `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`
    /// to the guest (e.g. after restoring a snapshot). Does nothing while
    /// the driver has not started the device.
    pub fn reset_connections(&self) {
        if self.thread.is_running() {
            self.handle().reset_connections();
        }
    }

    /// A handle that outlives boxing the device into a transport.
    pub fn handle(&self) -> VsockHandle {
        VsockHandle {
            control: self.control.clone(),
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        device_type::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 3]
    }

    fn features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.cid.to_le_bytes(), offset, data);
    }

    fn activate(&mut self, q: DeviceQueues) -> Result<(), ActivateError> {
        self.thread.stop();
        if q.queues.len() != 3 {
            return Err(ActivateError::QueueCount {
                expected: 3,
                got: q.queues.len(),
            });
        }
        for (i, queue) in q.queues.iter().enumerate().take(2) {
            if !queue.ready() {
                return Err(ActivateError::QueueNotReady(i));
            }
        }
        let Some(muxer) = self.thread.idle_mut() else {
            return Err(ActivateError::Unusable("its thread died".into()));
        };
        let mut queues = q.queues.into_iter();
        let (Some(rx), Some(tx), Some(event)) = (queues.next(), queues.next(), queues.next())
        else {
            return Err(ActivateError::QueueCount {
                expected: 3,
                got: 0,
            });
        };
        muxer.attach(VsockQueues {
            mem: q.mem,
            rx,
            tx,
            event,
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

    fn restored(&mut self) {
        // Host-side connections did not survive the save: tell the guest
        // (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET), so its sockets reset and its
        // agent connects again.
        self.reset_connections();
    }

    fn queue_notify(&mut self, index: u16) {
        if let Some(evt) = self.queue_evts.get(usize::from(index)) {
            if let Err(e) = evt.write(1) {
                tracing::warn!(index, "vsock: signalling a queue notification failed: {e}");
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

impl Drop for Vsock {
    fn drop(&mut self) {
        self.thread.stop();
    }
}

#[cfg(test)]
mod tests;
