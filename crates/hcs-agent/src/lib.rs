//! The HCS guest agent, the equivalent of hcsshim's GCS.
//!
//! It serves the control protocol of [`hcs_agent_protocol`]: a version
//! handshake, CreateProcess (args, env, cwd, user, pipes or a pty, each
//! stdio stream its own connection to a host port), ResizeConsole, Signal,
//! WaitProcess, ProcessList, SetTimeZone, SetTime and Shutdown.
//!
//! Modes (see [`cli::Mode`]): `--unix <dir>` serves a unix socket on the
//! host (how its process handling is tested), `--vsock` connects to the
//! host over AF_VSOCK, and as PID 1 of a guest's initramfs it first mounts
//! the usual filesystems, loads kernel modules and sets the host name
//! ([`init`]), and powers off when the ACPI power button is pressed
//! ([`power_button`]).

#![warn(missing_docs)]

pub mod cli;
pub mod echo;
pub mod error;
pub mod init;
#[macro_use]
pub mod log;
pub mod power_button;
pub mod process;
pub mod proclist;
pub mod server;
pub mod spawn;
pub mod stdio;
pub mod timezone;
pub mod transport;
pub mod user;

pub use error::{AgentError, Result};
pub use server::Agent;
