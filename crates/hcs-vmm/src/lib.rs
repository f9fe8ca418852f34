//! The virtual machine monitor of HCS VM compute systems.

pub mod acpi;
pub mod layout;
