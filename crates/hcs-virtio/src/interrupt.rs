//! Interrupt delivery from devices to the guest.
//!
//! A virtio-mmio transport has one interrupt line and an interrupt status
//! register saying why it fired (used buffers, configuration change). The
//! [`Interrupt`] holds that status, shared between the transport (which the
//! guest reads and acknowledges) and the device (which may run on its own
//! thread), and pulls the line through the integrator's [`IrqTrigger`].

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::EventFd;

/// Interrupt status bit: the device used buffers in a queue.
pub const INT_VRING: u32 = 1;
/// Interrupt status bit: the device configuration changed.
pub const INT_CONFIG: u32 = 2;

/// Pulls the device's interrupt line. The integrator provides it: a KVM
/// irqfd (an [`EventFd`]) or, in tests, any closure.
pub trait IrqTrigger: Send + Sync {
    /// Raise the interrupt (an edge; the status register says why).
    fn trigger(&self) -> io::Result<()>;
}

impl IrqTrigger for EventFd {
    fn trigger(&self) -> io::Result<()> {
        self.write(1)
    }
}

impl<F> IrqTrigger for F
where
    F: Fn() -> io::Result<()> + Send + Sync,
{
    fn trigger(&self) -> io::Result<()> {
        self()
    }
}

/// The interrupt of one transport: its status register and its line.
pub struct Interrupt {
    status: AtomicU32,
    trigger: Box<dyn IrqTrigger>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Interrupt {
    /// An interrupt with a clear status that fires through `trigger`.
    pub fn new(trigger: impl IrqTrigger + 'static) -> Interrupt {
        Interrupt {
            status: AtomicU32::new(0),
            trigger: Box::new(trigger),
        }
    }

    /// Tell the driver the device used buffers in a queue.
    pub fn signal_used_queue(&self) {
        self.signal(INT_VRING);
    }

    /// Tell the driver the device configuration (or status) changed.
    pub fn signal_config_change(&self) {
        self.signal(INT_CONFIG);
    }

    fn signal(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::SeqCst);
        if let Err(e) = self.trigger.trigger() {
            tracing::warn!("virtio: raising an interrupt failed: {e}");
        }
    }

    /// The interrupt status register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// The driver acknowledges the bits in `bits`.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clear the status (device reset).
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }
}
