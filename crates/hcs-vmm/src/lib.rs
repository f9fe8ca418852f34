//! The virtual machine monitor of HCS VM compute systems, built on the
//! rust-vmm crates (kvm-ioctls, kvm-bindings, vm-memory, linux-loader,
//! vm-superio, vmm-sys-util, acpi_tables). It runs inside a system's
//! monitor process, one VM per process.

pub mod acpi;
pub mod boot;
pub mod devices;
pub mod host;
pub mod layout;
pub mod memory;
pub mod snapshot;
pub mod vcpu;
pub mod vcpu_state;
pub mod vm;

#[cfg(test)]
mod testing;

pub use boot::BootSource;
pub use devices::serial::{SerialBackend, SerialError};
pub use vm::{Vm, VmConfig, VmExit, VmStats, VmmError};
