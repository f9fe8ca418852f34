//! The agent's errors, each with the HRESULT the host receives.

use hcs_agent_protocol::{hresult, FrameError};
use std::io;

/// Why a request (or the agent) failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A request's field is invalid.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// `args[0]` names no executable file.
    #[error("executable \"{name}\" was not found (searched PATH={searched})")]
    ExecutableNotFound {
        /// The name asked for.
        name: String,
        /// The PATH that was searched (or the path tried).
        searched: String,
    },
    /// The child failed between fork and exec.
    #[error("cannot start \"{path}\": {stage} failed: {source}")]
    Exec {
        /// The executable.
        path: String,
        /// Which step failed (setgid, chdir, execve, ...).
        stage: &'static str,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// The user does not exist in the guest.
    #[error("unknown user \"{0}\"")]
    UnknownUser(String),
    /// The agent could not connect a stdio stream.
    #[error("cannot connect the {stream} stream to port {port}: {source}")]
    StdioConnect {
        /// "stdin", "stdout" or "stderr".
        stream: &'static str,
        /// The port.
        port: u32,
        /// Why.
        source: io::Error,
    },
    /// The pid was not started by the agent.
    #[error("process {0} was not started by the agent")]
    ProcessNotFound(u32),
    /// The process has exited already.
    #[error("process {0} has already exited")]
    ProcessExited(u32),
    /// ResizeConsole on a process without a terminal.
    #[error("process {0} has no terminal")]
    NoTerminal(u32),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// The control connection failed.
    #[error("control connection: {0}")]
    Frame(#[from] FrameError),
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// A request this agent does not serve where it runs.
    #[error("{0}")]
    NotSupported(String),
}

impl AgentError {
    /// The HRESULT sent to the host for this error.
    pub fn hresult(&self) -> u32 {
        match self {
            AgentError::InvalidArgument(_) | AgentError::Usage(_) | AgentError::NoTerminal(_) => {
                hresult::E_INVALIDARG
            }
            AgentError::ExecutableNotFound { .. } => hresult::ERROR_FILE_NOT_FOUND,
            // A container's process with an unknown user or group gets
            // ERROR_NOT_FOUND (hcs-container's users.rs): the same here.
            AgentError::UnknownUser(_) => hresult::ERROR_NOT_FOUND,
            AgentError::Exec { source, .. } => errno_hresult(*source),
            AgentError::ProcessNotFound(_) => hresult::ERROR_NOT_FOUND,
            AgentError::ProcessExited(_) => hresult::HCS_E_PROCESS_ALREADY_STOPPED,
            AgentError::Sys { source, .. } => errno_hresult(*source),
            AgentError::StdioConnect { .. } | AgentError::Io { .. } => hresult::E_FAIL,
            AgentError::Frame(_) => hresult::HCS_E_PROTOCOL_ERROR,
            AgentError::NotSupported(_) => hresult::ERROR_NOT_SUPPORTED,
        }
    }

    /// Wraps an errno with context.
    pub fn sys(what: impl Into<String>, source: nix::errno::Errno) -> Self {
        AgentError::Sys {
            what: what.into(),
            source,
        }
    }

    /// Wraps an I/O error with context.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        AgentError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The closest HRESULT for an errno.
fn errno_hresult(e: nix::errno::Errno) -> u32 {
    use nix::errno::Errno;
    match e {
        Errno::ENOENT => hresult::ERROR_FILE_NOT_FOUND,
        Errno::EACCES | Errno::EPERM => hresult::E_ACCESSDENIED,
        Errno::EINVAL | Errno::E2BIG | Errno::ENOEXEC | Errno::ENOTDIR => hresult::E_INVALIDARG,
        _ => hresult::E_FAIL,
    }
}

/// Result with [`AgentError`].
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
