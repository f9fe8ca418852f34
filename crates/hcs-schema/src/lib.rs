//! serde types for the JSON documents of the Host Compute System (HCS) API,
//! schema 2.x, with parsing that names the bad field.
//!
//! * Every JSON name is written out exactly as HCS spells it (`SizeInMB`,
//!   `KernelCmdLine`, `UserTime100ns`); every member is optional (the
//!   published schema has no required lists) and absent members are not
//!   serialised; unknown members are rejected.
//! * Enumerations are JSON strings (`"Running"`), never numbers.
//! * [`from_json`] turns any syntax or type error into `HCS_E_INVALID_JSON`
//!   with the document kind, the JSON path, the position and what was
//!   expected; `validate()` on [`ComputeSystem`], [`ProcessParameters`],
//!   [`ProcessModifyRequest`] and [`ModifySettingRequest`] checks the rules
//!   serde cannot express. [`from_value`] parses a free-form member
//!   (`Settings`, `HostedSystem`, `GuestRequest`) into its type with errors
//!   at paths such as `$.Settings.Path`.
//! * Undocumented members that Microsoft's own clients send (hcsshim, WSL,
//!   the official samples) are accepted; where their shape is not known
//!   they are kept as [`serde_json::Value`].
//! * Linux extensions, not in Microsoft's schema: `Container.UserNamespace`
//!   ([`UserNamespace`], [`IdMapping`]) and `ShutdownOptions.TimeoutInMs`.
//!
//! ```
//! use hcs_schema::{from_json, ComputeSystem};
//!
//! let doc = r#"{"SchemaVersion":{"Major":2,"Minor":1},
//!              "VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMB":"lots"}}}}"#;
//! let err = from_json::<ComputeSystem>(doc, "ComputeSystem").unwrap_err();
//! assert!(err.message.contains("$.VirtualMachine.ComputeTopology.Memory.SizeInMB"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

mod object;

pub mod cmdline;
pub mod compute_system;
pub mod container;
pub mod enums;
pub mod fields;
pub mod parse;
pub mod process;
pub mod properties;
pub mod requests;
pub mod results;
pub mod service;
pub mod storage;
pub mod time_zone;
pub mod validate;
pub mod version;
pub mod virtual_machine;

pub use cmdline::split_command_line;
pub use compute_system::{ComputeSystem, HostedSystem};
pub use container::{Container, ContainerMemory, ContainerProcessor, IdMapping, UserNamespace};
pub use parse::{from_json, from_value, to_json, try_to_json};
pub use process::{ProcessDetails, ProcessParameters, ProcessStatus};
pub use properties::{Properties, Statistics, SystemPropertyQuery};
pub use requests::{
    CrashOptions, ModifySettingRequest, PauseOptions, ProcessModifyRequest, SaveOptions,
    ShutdownOptions, Signal, SignalProcessOptions, StartOptions,
};
pub use results::{AttributionRecord, CrashReport, ResultError, SystemExitStatus};
pub use service::{BasicInformation, ModificationRequest, ServiceProperties, ServicePropertyQuery};
pub use validate::Validate;
pub use version::{Version, SUPPORTED_SCHEMA_VERSIONS};
pub use virtual_machine::{VirtualMachine, VirtualMachineMemory, VirtualMachineProcessor};
