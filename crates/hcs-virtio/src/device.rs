//! The interface between the transport and a device.

use std::sync::Arc;

use virtio_queue::{DescriptorChain, Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use crate::{GuestMemoryMmap, Interrupt};

/// Feature bit: the device is a virtio 1.x ("modern") device.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: descriptors may point to indirect tables.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// Feature bit: `used_event` / `avail_event` notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// Everything a device needs to run, handed over when the driver sets
/// `DRIVER_OK`.
pub struct DeviceQueues {
    /// Guest memory (the queues' rings and every buffer are in it).
    pub mem: GuestMemoryMmap,
    /// One queue per entry of [`VirtioDevice::queue_max_sizes`], in order.
    /// A queue the driver did not enable is present but not ready.
    pub queues: Vec<Queue>,
    /// The transport's interrupt.
    pub interrupt: Arc<Interrupt>,
    /// The features the driver accepted (device and transport bits).
    pub acked_features: u64,
}

impl std::fmt::Debug for DeviceQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceQueues")
            .field("queues", &self.queues.len())
            .field(
                "acked_features",
                &format_args!("{:#x}", self.acked_features),
            )
            .finish_non_exhaustive()
    }
}

/// Why a device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// A queue the device cannot work without was not enabled.
    #[error("queue {0} was not enabled by the driver")]
    QueueNotReady(usize),
    /// The transport passed the wrong number of queues.
    #[error("expected {expected} queues, got {got}")]
    QueueCount {
        /// Queues the device has.
        expected: usize,
        /// Queues it was given.
        got: usize,
    },
    /// The device's worker could not be started.
    #[error("starting the device's worker: {0}")]
    Worker(#[source] std::io::Error),
    /// The device was lost (its worker died) and cannot start again.
    #[error("the device is no longer usable: {0}")]
    Unusable(String),
}

/// A virtio device behind a transport.
///
/// The transport owns the register file and the driver's initialisation
/// sequence; the device describes itself (type, features, configuration
/// space, queues) and does the work once activated.
pub trait VirtioDevice: Send {
    /// The virtio device type (see [`crate::device_type`]).
    fn device_type(&self) -> u32;

    /// The maximum size of each queue (powers of two); its length is the
    /// number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// The device's feature bits. The transport adds its own
    /// (`VIRTIO_F_VERSION_1`, `VIRTIO_RING_F_EVENT_IDX`,
    /// `VIRTIO_RING_F_INDIRECT_DESC`).
    fn features(&self) -> u64;

    /// Read `data.len()` bytes of the configuration space at `offset`.
    /// Bytes beyond its end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// The driver writes the configuration space (ignored by default).
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        tracing::debug!(offset, len = data.len(), "virtio: config write ignored");
    }

    /// Start working on `queues`. Called once per `DRIVER_OK`.
    fn activate(&mut self, queues: DeviceQueues) -> Result<(), ActivateError>;

    /// The driver notified queue `index` (a write of `QueueNotify`, or later
    /// an ioeventfd). Out-of-range indices must be ignored.
    fn queue_notify(&mut self, index: u16);

    /// An eventfd the integrator may register as an ioeventfd for queue
    /// `index`, for devices that poll their queues on their own thread.
    /// Writing it has the same effect as [`VirtioDevice::queue_notify`].
    fn queue_eventfd(&self, _index: u16) -> Option<&EventFd> {
        None
    }

    /// Stop touching guest memory and the queues until [`VirtioDevice::resume`]
    /// (for a consistent save). Devices that work only when notified (on the
    /// vCPU thread) need not do anything.
    fn pause(&mut self) {}

    /// Carry on after [`VirtioDevice::pause`].
    fn resume(&mut self) {}

    /// The device was started from saved state (its host-side state, such
    /// as connections, did not survive). vsock resets its connections here.
    fn restored(&mut self) {}

    /// Stop all work and drop the queues (the driver wrote 0 to `Status`).
    /// The device can be activated again afterwards.
    fn reset(&mut self);
}

/// Tell the driver about used buffers in `queue` unless it suppressed the
/// notification (`VIRTIO_RING_F_EVENT_IDX`).
pub(crate) fn notify_used(queue: &mut Queue, mem: &GuestMemoryMmap, interrupt: &Interrupt) {
    match queue.needs_notification(mem) {
        Ok(false) => {}
        Ok(true) => interrupt.signal_used_queue(),
        Err(e) => {
            tracing::debug!("virtio: reading used_event failed ({e}); notifying anyway");
            interrupt.signal_used_queue();
        }
    }
}

/// What a device's handler asks for after one chain in [`drain_available`].
pub(crate) enum Served {
    /// Go on with the next chain.
    Next,
    /// Stop now and leave notifications off: the device comes back on its
    /// own (a rate limiter's retry), and the chain it put back is still in
    /// the available ring.
    Stop,
}

/// Hand every chain the driver made available to `serve`, with the
/// driver's notifications off while the queue drains, and turn them back on
/// before returning so that the driver's next buffer is always heard of.
///
/// Turning them on again reports whether buffers arrived meanwhile (the
/// driver saw notifications off and did not kick); those are served in
/// another round even when the round before found nothing, or they would
/// wait forever. A garbage available index also reads as "more" but never
/// pops: two rounds in a row with nothing served end the loop.
pub(crate) fn drain_available<F>(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    device: &str,
    mut serve: F,
) where
    F: FnMut(&mut Queue, DescriptorChain<&GuestMemoryMmap>) -> Served,
{
    let mut rounds = Rounds::default();
    loop {
        if let Err(e) = queue.disable_notification(mem) {
            tracing::debug!("{device}: disabling notifications failed: {e}");
        }
        let mut progressed = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            progressed = true;
            if let Served::Stop = serve(queue, chain) {
                return;
            }
        }
        let more = queue.enable_notification(mem).unwrap_or_else(|e| {
            tracing::debug!("{device}: enabling notifications failed: {e}");
            false
        });
        match rounds.after(progressed, more) {
            Round::Again => {}
            Round::Done => return,
            Round::GarbageIndex => {
                tracing::warn!("{device}: the driver's available ring index is invalid");
                return;
            }
        }
    }
}

/// The decision [`drain_available`] makes after each round.
#[derive(Default)]
struct Rounds {
    idle: u8,
}

#[derive(Debug, PartialEq, Eq)]
enum Round {
    Again,
    Done,
    GarbageIndex,
}

impl Rounds {
    /// `progressed`: the round served a chain; `more`: buffers are
    /// available now that notifications are back on.
    fn after(&mut self, progressed: bool, more: bool) -> Round {
        if !more {
            return Round::Done;
        }
        if progressed {
            self.idle = 0;
            return Round::Again;
        }
        // Nothing popped, yet there is more: the driver added a buffer just
        // after the round's last look (look again), or its index is garbage
        // (the second idle round says so).
        self.idle += 1;
        if self.idle > 1 {
            Round::GarbageIndex
        } else {
            Round::Again
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Round, Rounds};

    /// A buffer the driver adds between the device's last look and
    /// notifications coming back on is not kicked (they were off): the
    /// device must look again even though its round found nothing, or the
    /// buffer waits forever (seen: a guest process's exit that never
    /// reached the host).
    #[test]
    fn a_buffer_added_while_notifications_were_off_gets_another_round() {
        let mut r = Rounds::default();
        assert_eq!(r.after(false, true), Round::Again);
        assert_eq!(r.after(true, false), Round::Done);
    }

    #[test]
    fn a_garbage_index_ends_the_loop_after_two_idle_rounds() {
        let mut r = Rounds::default();
        assert_eq!(r.after(true, true), Round::Again);
        assert_eq!(r.after(false, true), Round::Again);
        assert_eq!(r.after(false, true), Round::GarbageIndex);
    }

    #[test]
    fn progress_resets_the_idle_count() {
        let mut r = Rounds::default();
        assert_eq!(r.after(false, true), Round::Again);
        assert_eq!(r.after(true, true), Round::Again);
        assert_eq!(r.after(false, true), Round::Again);
        assert_eq!(r.after(false, false), Round::Done);
    }
}
