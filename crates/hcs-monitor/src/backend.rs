//! What a kind of compute system must provide to the monitor: containers
//! ([`crate::container::ContainerBackend`]) and virtual machines
//! ([`crate::vm::VmBackend`]), behind the same monitor, socket and events.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use hcs_errors::{HcsError, HcsResult};
use hcs_schema::enums::SystemPropertyType;
use hcs_schema::{ModifySettingRequest, ProcessParameters, Properties};

/// A process a backend started.
pub struct StartedProcess {
    /// Pid inside the system.
    pub pid: u32,
    /// Host pid, when the process is a child of the monitor (containers).
    pub host_pid: Option<i32>,
    /// The caller's stdio ends (stdin write end, stdout and stderr read ends).
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The console (pty master), with `EmulateConsole`.
    pub console: Option<OwnedFd>,
}

/// How a system stopped by itself, as its backend saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Cleanly (a guest power-off or reset).
    Clean,
    /// Because the backend killed it.
    Killed,
    /// By a failure or crash.
    Unexpected,
}

/// A backend's report of how its system stopped.
#[derive(Debug, Clone)]
pub struct StopInfo {
    /// The kind of stop.
    pub kind: StopKind,
    /// Attribution records for the SystemExitStatus.
    pub attribution: Vec<hcs_schema::AttributionRecord>,
    /// A `CrashReport` document, when the guest crashed.
    pub crash_report: Option<String>,
}

/// News a backend reports through [`Backend::poll_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    /// A process that is not the monitor's child (one in a VM) exited.
    ProcessExited {
        /// Its pid in the system.
        pid: u32,
        /// Its exit code (128 + signal when killed).
        exit_code: u32,
    },
    /// The connection to the guest agent closed.
    GuestConnectionClosed,
}

/// Work that waits on the guest (a VM's agent owes a reply).
pub type GuestWork<T> = Box<dyn FnOnce() -> HcsResult<T> + Send>;

/// An operation's result: here now, or work that waits on the guest,
/// which the monitor runs on a thread of its own so that its loop (and a
/// terminate above all) never waits for a guest that does not answer.
/// A stop cancels the work's waits (see `GuestLink`).
pub enum Served<T> {
    /// Done.
    Now(T),
    /// To run off the loop.
    Later(GuestWork<T>),
}

impl<T: Send + 'static> Served<T> {
    /// Continue with `f` (on the worker thread, for work).
    pub fn then<U>(
        self,
        f: impl FnOnce(T) -> HcsResult<U> + Send + 'static,
    ) -> HcsResult<Served<U>> {
        match self {
            Served::Now(t) => f(t).map(Served::Now),
            Served::Later(w) => Ok(Served::Later(Box::new(move || f(w()?)))),
        }
    }
}

/// How long a process creation waits for a VM's guest agent to connect.
pub const GUEST_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The operations of one kind of compute system.
pub trait Backend {
    /// `Properties.SystemType`.
    fn system_type(&self) -> hcs_schema::enums::SystemType;
    /// Resources to release if the monitor dies (cgroup directories).
    fn cgroup_paths(&self) -> Vec<PathBuf>;
    /// Sockets bound on the host, to remove if the monitor dies (a VM's
    /// COM port named pipes).
    fn owned_sockets(&self) -> Vec<hcs_rundir::OwnedSocket> {
        Vec::new()
    }
    /// The trailing levels of [`Backend::cgroup_paths`] that belong to this
    /// system alone (cleanup removes nothing above them), when they are not
    /// the default `<namespace>@<id>`.
    fn cgroup_leaf(&self) -> Option<PathBuf> {
        None
    }
    /// The shared levels above [`Backend::cgroup_leaf`] when they are not
    /// the default `hcs`, and whether they start at each hierarchy's root
    /// (an OCI spec's absolute cgroupsPath) rather than at the monitor's
    /// placement base (a relative one).
    fn cgroup_parent(&self) -> Option<(PathBuf, bool)> {
        None
    }
    /// Start it. Returns the host pid whose exit means the system stopped,
    /// if its end is a process exit (containers); otherwise the backend
    /// reports the end through [`Backend::event_fds`] and [`Backend::poll_stop`].
    fn start(&mut self) -> HcsResult<Option<i32>>;
    /// Descriptors that become readable when the backend has news.
    fn event_fds(&self) -> Vec<std::os::fd::RawFd> {
        Vec::new()
    }
    /// After one of [`Backend::event_fds`] became readable: did the system stop?
    fn poll_stop(&mut self) -> Option<StopInfo> {
        None
    }
    /// After one of [`Backend::event_fds`] became readable: other news.
    fn poll_events(&mut self) -> Vec<BackendEvent> {
        Vec::new()
    }
    /// Whether creating a process must first wait for the guest (a VM
    /// whose agent has not connected yet). The monitor then waits, up to
    /// [`GUEST_CONNECT_WAIT`], without blocking its loop, so a terminate
    /// meanwhile is handled at once.
    fn waiting_for_guest(&self) -> bool {
        false
    }
    /// Ask it to stop by itself (graceful shutdown), through `mechanism`
    /// (`ShutdownOptions.Mechanism`) when one is given.
    fn request_shutdown(
        &mut self,
        mechanism: Option<hcs_schema::enums::ShutdownMechanism>,
    ) -> HcsResult<()>;
    /// Stop it now. The main process's exit is then reported as usual.
    fn kill(&mut self);
    /// The main process was reaped.
    fn main_exited(&mut self);
    /// Freeze it.
    fn pause(&mut self) -> HcsResult<()>;
    /// Thaw it.
    fn resume(&mut self) -> HcsResult<()>;
    /// HcsSaveComputeSystem.
    fn save(&mut self, _options: Option<&str>) -> HcsResult<()> {
        Err(HcsError::not_supported(
            "saving this kind of compute system is not supported",
        ))
    }
    /// HcsCrashComputeSystem.
    fn crash(&mut self, _options: Option<&str>) -> HcsResult<()> {
        Err(HcsError::not_supported(
            "crashing this kind of compute system is not supported",
        ))
    }
    /// HcsModifyComputeSystem.
    fn modify(&mut self, request: &ModifySettingRequest) -> HcsResult<()>;
    /// Fill the requested property types into `props`.
    fn properties(&self, types: &[SystemPropertyType], props: &mut Properties) -> HcsResult<()>;
    /// The guest's process list, when it must come from the guest
    /// (`ProcessList` of a VM): filled into the properties by the work.
    fn guest_process_list(&self) -> HcsResult<Option<GuestWork<Vec<hcs_schema::ProcessDetails>>>> {
        Ok(None)
    }
    /// HcsCreateProcess.
    fn create_process(&mut self, params: &ProcessParameters) -> HcsResult<Served<StartedProcess>>;
    /// Resize the console of a process whose pty the monitor does not hold
    /// (one in a VM).
    fn resize_console(&mut self, _pid: u32, _rows: u16, _cols: u16) -> HcsResult<Served<()>> {
        Err(HcsError::invalid_state("this process has no console"))
    }
    /// Send a signal to one of its processes.
    fn signal_process(
        &mut self,
        pid: u32,
        host_pid: Option<i32>,
        signal: i32,
    ) -> HcsResult<Served<()>>;
    /// Release everything it holds after it stopped.
    fn release(&mut self) -> HcsResult<()>;
}
