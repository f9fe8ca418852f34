//! virtio devices of HCS virtual machines: a virtio-mmio transport
//! (virtio 1.x, "modern" only) and the devices behind it (block, vsock).
//!
//! The VMM places an [`MmioTransport`] on its MMIO bus (a 4 KiB window) and
//! forwards guest accesses to [`MmioTransport::read`] and
//! [`MmioTransport::write`]. The transport runs the driver's initialisation
//! sequence, builds the virtqueues with rust-vmm's `virtio-queue`, and hands
//! them to its [`VirtioDevice`] when the driver sets `DRIVER_OK`.
//!
//! Interrupts go through an [`IrqTrigger`] the integrator provides (a KVM
//! irqfd [`EventFd`](vmm_sys_util::eventfd::EventFd) implements it), wrapped
//! in an [`Interrupt`] that also holds the transport's interrupt status.
//!
//! Every device treats guest descriptors as hostile: chains are walked with
//! bounds ([`chain`]), every buffer is checked against guest memory, and a
//! malformed chain fails only its own request.
//!
//! # Wiring a device into a VMM
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use hcs_virtio::{Block, BlockConfig, GuestMemoryMmap, Interrupt, MmioTransport};
//! use hcs_virtio::{Vsock, VsockConfig, MMIO_WINDOW_SIZE};
//! use vmm_sys_util::eventfd::EventFd;
//!
//! # fn wire(mem: GuestMemoryMmap) -> Result<(), Box<dyn std::error::Error>> {
//! // One irqfd per transport, registered with KVM for the transport's GSI.
//! let irq = EventFd::new(0)?;
//! let disk = Block::open(&BlockConfig {
//!     path: "/var/lib/hcs/disk.vhd".into(),
//!     read_only: false,
//!     id: "0:0".into(),
//!     options: Default::default(),
//! })?;
//! let blk = MmioTransport::new(Box::new(disk), mem.clone(), Arc::new(Interrupt::new(irq)));
//! let blk = Arc::new(Mutex::new(blk));
//! // The bus device forwards `read(offset, data)` / `write(offset, data)`
//! // for [base, base + MMIO_WINDOW_SIZE) to the transport, and the DSDT
//! // describes the window as an `LNRO0005` device with that GSI.
//! blk.lock().unwrap().write(0x70, &0u32.to_le_bytes());
//!
//! let vsock = Vsock::new(&VsockConfig { guest_cid: 3, uds_path: "/run/hcs/vm/vsock.sock".into(), policy: Default::default() })?;
//! let _vsock = MmioTransport::new(Box::new(vsock), mem, Arc::new(Interrupt::new(EventFd::new(0)?)));
//! # let _ = MMIO_WINDOW_SIZE;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
// `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#![allow(clippy::manual_is_multiple_of)]

pub mod block;
pub mod chain;
pub mod device;
pub mod interrupt;
pub mod mmio;
pub mod net;
pub mod vsock;
mod worker_thread;

#[cfg(test)]
pub(crate) mod testing;

pub use block::{Block, BlockConfig, BlockOptions, CacheMode, DiskError, DiskFormat, DiskImage};
pub use device::{ActivateError, DeviceQueues, VirtioDevice};
pub use interrupt::{Interrupt, IrqTrigger};
pub use mmio::{MmioTransport, MMIO_WINDOW_SIZE};
pub use net::{MacAddress, MacError, Net, NetConfig, NetError, TapError};
pub use vsock::{Vsock, VsockConfig, VsockError, VsockHandle, VsockPolicy};

/// The guest memory type every device works on (`vm-memory`'s, as the VMM
/// creates it).
pub use vm_memory::GuestMemoryMmap;

/// virtio device type ids (virtio 1.2, §5).
pub mod device_type {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Socket device (vsock).
    pub const VSOCK: u32 = 19;
}
