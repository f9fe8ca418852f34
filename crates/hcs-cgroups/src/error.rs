//! The one error type of this crate and its mapping to HRESULTs.

use std::io;
use std::path::PathBuf;

use hcs_errors::{HResult, HcsError};

/// Everything that can go wrong while finding, creating, driving or removing
/// a cgroup. Every variant names the file or directory involved.
#[derive(thiserror::Error, Debug)]
pub enum CgroupError {
    /// The device access program (cgroup v2) could not be loaded or attached.
    #[error("{step} of the device access program for {path}: {source}{verifier}")]
    DeviceProgram {
        /// The cgroup directory.
        path: PathBuf,
        /// `BPF_PROG_LOAD`, `BPF_PROG_ATTACH` or opening the directory.
        step: &'static str,
        /// The verifier's log, when it refused the program (with a leading "; ").
        verifier: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// A procfs or cgroupfs file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },

    /// A cgroupfs file refused a value.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// A file could not be opened (for example `cgroup.procs` for a child to join).
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },

    /// `mkdir` of a cgroup directory failed.
    #[error("creating cgroup directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },

    /// `rmdir` of a cgroup directory failed for a reason other than "still in use".
    #[error("removing cgroup directory {path}: {source}")]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },

    /// The leaf directory already exists in at least one hierarchy.
    #[error("cgroup {path} already exists")]
    AlreadyExists {
        /// The existing directory.
        path: PathBuf,
    },

    /// A kernel file did not have the expected format.
    #[error("parsing {path}: {reason} (in {text:?})")]
    Parse {
        /// The file (or pseudo-file such as `/proc/self/mountinfo`).
        path: PathBuf,
        /// What was wrong.
        reason: String,
        /// The offending line or value.
        text: String,
    },

    /// Neither a cgroup v1 controller hierarchy nor a cgroup2 file system is mounted.
    #[error("no cgroup hierarchy is mounted (checked {checked})")]
    NoHierarchy {
        /// Where we looked.
        checked: String,
    },

    /// A resource was asked for but its controller is not mounted (v1) or not
    /// available in the cgroup (v2, not in `cgroup.controllers`).
    #[error("the {controller} controller is not available{}", match path {
        Some(p) => format!(" in {}", p.display()),
        None => " on this host".to_string(),
    })]
    ControllerUnavailable {
        /// The controller (`memory`, `cpu`, ...).
        controller: &'static str,
        /// The cgroup directory where it was looked for, if there was one.
        path: Option<PathBuf>,
    },

    /// The relative cgroup path given to [`crate::Cgroup::create`] is unusable.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it was refused.
        reason: &'static str,
    },

    /// Threads of one process cannot be put in this cgroup apart from their
    /// process (its `cpu` controller is on cgroup v2, outside a threaded subtree).
    #[error("threads cannot be placed apart from their process in {path}: its cpu controller is on cgroup v2, which allows that only in a threaded subtree of the process's own cgroup")]
    ThreadPlacement {
        /// The cgroup directory.
        path: PathBuf,
    },

    /// A resource value is outside what the kernel accepts.
    #[error("invalid {what} {value}: {reason}")]
    InvalidValue {
        /// The field (`cpu_weight`, `pid`, ...).
        what: &'static str,
        /// The value as given.
        value: String,
        /// The accepted range or rule.
        reason: &'static str,
    },

    /// Neither a v1 freezer hierarchy nor a v2 cgroup holds this cgroup.
    #[error("no freezer is available for this cgroup (no v1 freezer hierarchy and no cgroup2 directory)")]
    FreezerUnavailable,

    /// The freezer file reported a state we do not know.
    #[error("unexpected freezer state {state:?} in {path}")]
    UnexpectedState {
        /// `freezer.state` or `cgroup.events`.
        path: PathBuf,
        /// What it said.
        state: String,
    },

    /// The kernel did not report the cgroup frozen (or thawed) in time. The
    /// cgroup has been thawed again so that it is not left half frozen.
    #[error("cgroup {path} did not reach {wanted} within {timeout_ms} ms (last state {state:?})")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// `frozen` or `thawed`.
        wanted: &'static str,
        /// The bound that elapsed.
        timeout_ms: u64,
        /// The last state read.
        state: String,
    },

    /// Processes were still in the cgroup when the kill deadline passed.
    #[error("processes {pids:?} were still in {path} after {timeout_ms} ms of SIGKILL")]
    KillTimeout {
        /// The cgroup directory that stayed busy.
        path: PathBuf,
        /// The processes seen last.
        pids: Vec<i32>,
        /// The bound that elapsed.
        timeout_ms: u64,
    },

    /// The calling process itself is inside the cgroup it was asked to kill.
    #[error("refusing to kill the calling process {pid}, which is inside {path}")]
    CallerInside {
        /// The cgroup directory.
        path: PathBuf,
        /// Our own pid.
        pid: i32,
    },

    /// Sending SIGKILL failed for a reason other than "already gone".
    #[error("sending SIGKILL to process {pid}: {source}")]
    Signal {
        /// The target.
        pid: i32,
        /// What the kernel said.
        source: io::Error,
    },
}

impl CgroupError {
    /// The underlying system error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Open { source, .. }
            | CgroupError::CreateDir { source, .. }
            | CgroupError::RemoveDir { source, .. }
            | CgroupError::Signal { source, .. }
            | CgroupError::DeviceProgram { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The HRESULT this error is reported with at the HCS API.
    pub fn hresult(&self) -> HResult {
        match self {
            CgroupError::AlreadyExists { .. } => HResult::HCS_E_SYSTEM_ALREADY_EXISTS,
            CgroupError::InvalidPath { .. } | CgroupError::InvalidValue { .. } => {
                HResult::E_INVALIDARG
            }
            CgroupError::NoHierarchy { .. }
            | CgroupError::ControllerUnavailable { .. }
            | CgroupError::ThreadPlacement { .. }
            | CgroupError::FreezerUnavailable => HResult::ERROR_NOT_SUPPORTED,
            CgroupError::Parse { .. } | CgroupError::UnexpectedState { .. } => {
                HResult::ERROR_INVALID_DATA
            }
            CgroupError::FreezeTimeout { .. } | CgroupError::KillTimeout { .. } => {
                HResult::ERROR_TIMEOUT
            }
            CgroupError::CallerInside { .. } => HResult::HCS_E_INVALID_STATE,
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Open { source, .. }
            | CgroupError::CreateDir { source, .. }
            | CgroupError::RemoveDir { source, .. }
            | CgroupError::Signal { source, .. }
            | CgroupError::DeviceProgram { source, .. } => source
                .raw_os_error()
                .map(HResult::from_errno)
                .unwrap_or(HResult::E_FAIL),
        }
    }
}

impl From<CgroupError> for HcsError {
    fn from(err: CgroupError) -> HcsError {
        HcsError::new(err.hresult(), err.to_string())
    }
}
