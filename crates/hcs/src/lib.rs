//! The Host Compute System API on Linux.
//!
//! This crate is what a program links to create, open and control compute
//! systems (containers today, virtual machines later) and the processes in
//! them. It follows Microsoft's `computecore.dll` call for call:
//!
//! - every call that does work takes an [`Operation`] and returns at once;
//!   the outcome (an HRESULT and an optional JSON result document) is read
//!   from the operation by waiting on it or in its completion callback;
//! - [`System`] and [`Process`] handles receive [`Event`]s through a callback;
//! - errors are [`HcsError`]s carrying the exact `HCS_E_*` HRESULTs.
//!
//! Each compute system is owned by its own monitor process (`hcs-monitor`),
//! which this crate spawns on create and talks to over a unix socket; a
//! system therefore outlives the program that created it unless its document
//! sets `ShouldTerminateOnLastHandleClosed`.
//!
//! ```no_run
//! use hcs::{Operation, System, INFINITE};
//! let op = Operation::new();
//! let doc = std::fs::read_to_string("container.json").unwrap();
//! let system = System::create("demo", &doc, &op).unwrap();
//! op.wait(INFINITE).unwrap();
//! system.start(&op, None).unwrap();
//! op.wait(INFINITE).unwrap();
//! ```

mod callback;
mod connection;
mod event;
mod handle;
mod launch;
mod operation;
mod process;
mod service;
mod system;

pub use event::{Event, EventOptions, EventType};
pub use hcs_errors::{HResult, HcsError, HcsResult};
pub use operation::{Operation, OperationType, ProcessInformation, HCS_INVALID_OPERATION_ID};
pub use process::Process;
pub use service::{
    enumerate_compute_systems, enumerate_compute_systems_in_namespace, get_service_properties,
};
pub use system::System;

/// Wait without a time limit.
pub const INFINITE: u32 = u32::MAX;

/// `GENERIC_ALL`, the only access right HcsOpenComputeSystem accepts.
pub const GENERIC_ALL: u32 = 0x1000_0000;

/// The namespace used by the calls that take none.
pub const DEFAULT_NAMESPACE: &str = hcs_rundir::DEFAULT_NAMESPACE;

/// The id namespaces that currently hold compute systems.
pub fn namespaces() -> Vec<String> {
    hcs_rundir::list_namespaces(&hcs_rundir::root())
}

/// The unix socket of a virtual machine's serial port `port` (0 = COM1),
/// which `hcs console` attaches to. Only the monitor's side is stable; the
/// path is in the system's root-only runtime directory.
pub fn console_socket(namespace: &str, id: &str, port: u32) -> std::path::PathBuf {
    hcs_rundir::system_dir(&hcs_rundir::root(), namespace, id).join(format!("com{}.sock", port + 1))
}
