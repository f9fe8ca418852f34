//! The table of processes the agent started, the reaper, and exit waits.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hcs_agent_protocol::ConsoleSize;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{AgentError, Result};
use crate::transport::Stream;

/// How a process ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExitStatus {
    /// Exit code; `128 + signal` when killed by a signal.
    pub exit_code: u32,
    /// The killing signal, or 0.
    pub signal: u32,
}

/// Exited entries kept for late waits before the oldest are dropped.
const KEEP_EXITED: usize = 4096;

/// After exit, how long a wait holds its answer for the output streams to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

struct Entry {
    status: Option<ExitStatus>,
    /// The terminal's master side, for ResizeConsole.
    pty_master: Option<Arc<OwnedFd>>,
    /// The stdin stream, shut down at exit so its copier stops.
    stdin: Option<Stream>,
    /// stdout/stderr copiers still running.
    open_outputs: usize,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u32, Entry>,
    exited: VecDeque<u32>,
}

/// Processes started by the agent, shared by all connections.
#[derive(Default)]
pub struct Processes {
    table: Mutex<Table>,
    changed: Condvar,
}

/// The table lock, held across fork and registration so that the reaper
/// cannot record an exit before the process is known.
pub struct Registration<'a> {
    guard: MutexGuard<'a, Table>,
}

impl Registration<'_> {
    /// Records a freshly forked process.
    pub fn insert(&mut self, pid: u32, pty_master: Option<Arc<OwnedFd>>) {
        let entry = Entry {
            status: None,
            pty_master,
            stdin: None,
            open_outputs: 0,
        };
        self.guard.entries.insert(pid, entry);
    }
}

impl Processes {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means a thread panicked while holding it; the
        // table itself stays consistent (every update is a single step).
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the table lock for a fork.
    pub fn register(&self) -> Registration<'_> {
        Registration { guard: self.lock() }
    }

    /// Forgets a process whose start failed.
    pub fn remove(&self, pid: u32) {
        self.lock().entries.remove(&pid);
    }

    /// Attaches the stdin stream and counts the output copiers.
    pub fn attach_stdio(&self, pid: u32, stdin: Option<Stream>, outputs: usize) {
        let mut t = self.lock();
        let mut exited = false;
        if let Some(e) = t.entries.get_mut(&pid) {
            e.open_outputs += outputs;
            exited = e.status.is_some();
            e.stdin = stdin;
        }
        if exited {
            shutdown_stdin(t.entries.get_mut(&pid));
        }
    }

    /// An output copier of `pid` finished.
    pub fn output_closed(&self, pid: u32) {
        let mut t = self.lock();
        if let Some(e) = t.entries.get_mut(&pid) {
            e.open_outputs = e.open_outputs.saturating_sub(1);
        }
        self.changed.notify_all();
    }

    fn record_exit(&self, pid: u32, status: ExitStatus) {
        let mut t = self.lock();
        let Some(entry) = t.entries.get_mut(&pid) else {
            return; // an orphan reparented to us (PID 1), or a failed start
        };
        entry.status = Some(status);
        shutdown_stdin(Some(entry));
        t.exited.push_back(pid);
        while t.exited.len() > KEEP_EXITED {
            if let Some(old) = t.exited.pop_front() {
                t.entries.remove(&old);
            }
        }
        self.changed.notify_all();
    }

    /// Blocks until `pid` exits (then up to `drain` more for its output to
    /// be copied) and returns its status.
    pub fn wait(&self, pid: u32, drain: Duration) -> Result<ExitStatus> {
        let mut t = self.lock();
        let mut deadline: Option<Instant> = None;
        loop {
            let entry = t
                .entries
                .get(&pid)
                .ok_or(AgentError::ProcessNotFound(pid))?;
            if let Some(status) = entry.status {
                let end = *deadline.get_or_insert_with(|| Instant::now() + drain);
                let now = Instant::now();
                if entry.open_outputs == 0 || now >= end {
                    return Ok(status);
                }
                t = self
                    .changed
                    .wait_timeout(t, end - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            } else {
                t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Fails unless `pid` is known; `Ok(false)` when it has exited.
    pub fn check_running(&self, pid: u32) -> Result<bool> {
        let t = self.lock();
        let entry = t
            .entries
            .get(&pid)
            .ok_or(AgentError::ProcessNotFound(pid))?;
        Ok(entry.status.is_none())
    }

    /// Sends `signal` to a running process started by the agent.
    pub fn signal(&self, pid: u32, signal: u32) -> Result<()> {
        let t = self.lock();
        let entry = t
            .entries
            .get(&pid)
            .ok_or(AgentError::ProcessNotFound(pid))?;
        if entry.status.is_some() {
            return Err(AgentError::ProcessExited(pid));
        }
        let sig = i32::try_from(signal)
            .ok()
            .and_then(|s| Signal::try_from(s).ok())
            .ok_or_else(|| {
                AgentError::InvalidArgument(format!("invalid signal number {signal}"))
            })?;
        // The lock is held, so the pid cannot have been reaped and reused.
        let pid_t = i32::try_from(pid).map_err(|_| AgentError::ProcessNotFound(pid))?;
        nix::sys::signal::kill(Pid::from_raw(pid_t), sig)
            .map_err(|e| AgentError::sys(format!("kill({pid}, {sig})"), e))
    }

    /// Resizes the terminal of `pid`.
    pub fn resize(&self, pid: u32, size: ConsoleSize) -> Result<()> {
        let master = {
            let t = self.lock();
            let entry = t
                .entries
                .get(&pid)
                .ok_or(AgentError::ProcessNotFound(pid))?;
            if entry.status.is_some() {
                return Err(AgentError::ProcessExited(pid));
            }
            entry
                .pty_master
                .clone()
                .ok_or(AgentError::NoTerminal(pid))?
        };
        crate::spawn::set_window_size(&master, size)
    }

    /// Sends SIGKILL to every running process the agent started.
    pub fn kill_all(&self) {
        let t = self.lock();
        for (pid, entry) in &t.entries {
            if entry.status.is_none() {
                if let Ok(p) = i32::try_from(*pid) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
        }
    }

    /// Starts the reaper thread: it reaps every child (and, as PID 1, every
    /// orphan) and records the exits of the agent's processes.
    pub fn start_reaper(self: &Arc<Self>) {
        let procs = Arc::clone(self);
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || procs.reap_forever())
            .map(drop)
            .unwrap_or_else(|e| crate::log!("cannot start the reaper thread: {e}"));
    }

    fn reap_forever(&self) {
        loop {
            match waitpid(None::<Pid>, None) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    let code = u32::try_from(code).unwrap_or(255);
                    self.record_exit(
                        pid_u32(pid),
                        ExitStatus {
                            exit_code: code,
                            signal: 0,
                        },
                    );
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    let sig = sig as i32 as u32;
                    self.record_exit(
                        pid_u32(pid),
                        ExitStatus {
                            exit_code: 128 + sig,
                            signal: sig,
                        },
                    );
                }
                Ok(_) | Err(Errno::EINTR) => {}
                // No children right now: look again shortly.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

fn shutdown_stdin(entry: Option<&mut Entry>) {
    if let Some(stdin) = entry.and_then(|e| e.stdin.take()) {
        stdin.shutdown(nix::sys::socket::Shutdown::Both);
    }
}

fn pid_u32(pid: Pid) -> u32 {
    u32::try_from(pid.as_raw()).unwrap_or(0)
}
