//! OCI hooks of a container described by an OCI runtime spec
//! (runtime-spec config.md "POSIX-platform Hooks", runtime.md "Lifecycle").
//!
//! When each list runs, where, and the `status` of the state it reads on stdin:
//!
//! | hooks           | when                                              | namespaces | status   |
//! |-----------------|---------------------------------------------------|------------|----------|
//! | prestart        | end of `Container::start` (the init is running)   | runtime    | creating |
//! | createRuntime   | right after prestart                              | runtime    | creating |
//! | createContainer | right after createRuntime                         | container  | creating |
//! | startContainer  | before the container's own process is spawned     | container  | created  |
//! | poststart       | right after it was spawned                        | runtime    | running  |
//! | poststop        | at the end of `Container::destroy`                | runtime    | stopped  |
//!
//! A failing prestart, createRuntime, createContainer or startContainer
//! hook fails its operation with an error naming it
//! (`OciSpecification.hooks.createRuntime[0]: /path exited with status 3:
//! <first line of its stderr>`), and the container is stopped; the
//! remaining hooks of the list do not run. A failing poststart or poststop
//! hook is logged as a warning and the rest continue, as the spec says.
//!
//! `pid` in the state is the host pid of the container's init (the reaping
//! init of this crate, whose namespaces are the container's), absent once
//! stopped, as runc does.
//!
//! Deviation from the spec: createContainer hooks are meant to run "before
//! pivot_root". Our init builds the root and pivots into it before the
//! monitor gets control back, so they run afterwards, seeing the
//! container's final root. Their path still resolves in the runtime
//! namespace, as the spec asks: the executable is opened there and run by
//! descriptor (`execveat(fd, "", AT_EMPTY_PATH)`) from inside the
//! container's namespaces. What the executable itself looks up (the `#!`
//! interpreter of a script, a dynamic loader and its libraries) therefore
//! resolves in the container, and a script sees `$0` = `/dev/fd/N`.
//! startContainer paths resolve in the container, as the spec says.
//! Hooks in the container also join its cgroup.
//!
//! Hooks run with exactly the environment given (nothing of the monitor's),
//! `args` as argv (argv\[0\] included; only `path` when there are none),
//! the state JSON on stdin, stdout and stderr captured (the first 4 KiB of
//! each are kept for messages and the debug log), in a session of their
//! own, and, in the runtime namespace, in the bundle directory. A hook
//! running past its `timeout` is killed (its process group too). Each hook
//! is the monitor's child and is waited for by its pid through a pidfd
//! before the call returns; the monitor is single-threaded, so its SIGCHLD
//! loop (`waitpid(-1)`) cannot run meanwhile and never sees a hook's exit.
//! For the same reason the monitor serves nothing else while a hook runs: a
//! hook without a `timeout` that never ends hangs its operation, as with runc.

use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcs_errors::{HResult, HcsError, HcsResult};
use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks};

use crate::spawn::Namespaces;
use crate::spec::OciConfig;
use crate::sys::{self, Forked};

/// How much of a hook's stdout and of its stderr is kept.
const KEEP_OUTPUT: usize = 4096;

/// The hook lists of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    /// `prestart` (deprecated; runs with createRuntime).
    Prestart,
    /// `createRuntime`.
    CreateRuntime,
    /// `createContainer`.
    CreateContainer,
    /// `startContainer`.
    StartContainer,
    /// `poststart`.
    Poststart,
    /// `poststop`.
    Poststop,
}

impl HookKind {
    /// Every list, in lifecycle order.
    pub(crate) const ALL: [HookKind; 6] = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ];

    /// The list's name in config.json.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    #[allow(deprecated)] // prestart is deprecated by the spec, not by us: it still runs.
    fn list(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }

    /// The container's `status` the hooks are told (as runc tells them).
    fn status(self) -> &'static str {
        match self {
            HookKind::Prestart | HookKind::CreateRuntime | HookKind::CreateContainer => "creating",
            HookKind::StartContainer => "created",
            HookKind::Poststart => "running",
            HookKind::Poststop => "stopped",
        }
    }

    /// Whether the hooks run in the container's namespaces.
    pub(crate) fn in_container(self) -> bool {
        matches!(self, HookKind::CreateContainer | HookKind::StartContainer)
    }

    /// Whether the path is looked up in the container (otherwise in the runtime namespace).
    fn path_in_container(self) -> bool {
        self == HookKind::StartContainer
    }

    /// Whether a failure fails the operation (otherwise it is only logged).
    fn fatal(self) -> bool {
        !matches!(self, HookKind::Poststart | HookKind::Poststop)
    }
}

/// The container's namespaces and cgroup, for hooks that run inside it.
pub(crate) struct ContainerNs<'a> {
    /// The init's namespaces.
    pub ns: &'a Namespaces,
    /// The monitor's own pid namespace, to step back into after forking.
    pub own_pid_ns: &'a OwnedFd,
    /// The container's `cgroup.procs` files.
    pub cgroup_procs: &'a [OwnedFd],
}

/// Check the hooks of `oci` before anything is made: absolute paths that
/// exist in the runtime namespace (startContainer paths resolve in the
/// container, which has no root yet, so only their form is checked),
/// positive timeouts, no NUL bytes.
pub(crate) fn validate(oci: &OciConfig) -> HcsResult<()> {
    let Some(hooks) = oci.spec.hooks() else {
        return Ok(());
    };
    for kind in HookKind::ALL {
        for (i, hook) in kind.list(hooks).iter().enumerate() {
            let field = format!("Container.OciSpecification.hooks.{}[{i}]", kind.name());
            let path = hook.path();
            if !path.is_absolute() {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!("{field}.path: {path:?} is not an absolute path"),
                ));
            }
            if !kind.path_in_container() {
                check_executable(&field, path)?;
            }
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    return Err(HcsError::invalid_json(format!(
                        "{field}.timeout: {t} must be greater than zero"
                    )));
                }
            }
            HookCommand::from_hook(hook, &field, None)?;
        }
    }
    Ok(())
}

fn check_executable(field: &str, path: &Path) -> HcsResult<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(HcsError::new(
            HResult::ERROR_PATH_NOT_FOUND,
            format!("{field}.path: {path:?} is not a file"),
        )),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(HcsError::invalid_arg(format!(
            "{field}.path: {path:?} is not executable"
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(HcsError::new(
            HResult::ERROR_PATH_NOT_FOUND,
            format!("{field}.path: {path:?}: {e}"),
        )),
    }
}

/// The state document a hook reads on stdin (runtime.md "State").
pub(crate) fn state_json(oci: &OciConfig, id: &str, status: &str, pid: Option<i32>) -> Vec<u8> {
    let annotations: BTreeMap<&String, &String> = oci
        .spec
        .annotations()
        .iter()
        .flat_map(|a| a.iter())
        .collect();
    let mut state = serde_json::json!({
        "ociVersion": oci.spec.version(),
        "id": id,
        "status": status,
        "bundle": oci.bundle.to_string_lossy(),
        "annotations": annotations,
    });
    if let Some(pid) = pid {
        state["pid"] = serde_json::json!(pid);
    }
    state.to_string().into_bytes()
}

/// Run the `kind` hooks of `oci` in order, for the container `id` whose
/// init has host pid `pid` (None once stopped). Hooks that run in the
/// container need `container`. A fatal kind stops at the first failure and
/// returns it; the others log failures and carry on.
pub(crate) fn run(
    kind: HookKind,
    oci: &OciConfig,
    id: &str,
    pid: Option<i32>,
    container: Option<&ContainerNs<'_>>,
) -> HcsResult<()> {
    let Some(hooks) = oci.spec.hooks() else {
        return Ok(());
    };
    let list = kind.list(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let place = match (kind.in_container(), container) {
        (false, _) => Place::Runtime,
        (true, Some(c)) => Place::Container {
            ns: c,
            path_in_container: kind.path_in_container(),
        },
        (true, None) => {
            return Err(HcsError::invalid_state(format!(
                "OciSpecification.hooks.{}: the container is not running",
                kind.name()
            )))
        }
    };
    let state = state_json(oci, id, kind.status(), pid);
    for (i, hook) in list.iter().enumerate() {
        let name = format!("OciSpecification.hooks.{}[{i}]", kind.name());
        let cwd = (!kind.in_container()).then_some(oci.bundle.as_path());
        let result = HookCommand::from_hook(hook, &name, cwd).and_then(|c| c.run(&state, &place));
        match result {
            Ok(out) => {
                tracing::debug!(
                    hook = %name,
                    stdout = %String::from_utf8_lossy(&out.stdout),
                    stderr = %String::from_utf8_lossy(&out.stderr),
                    "hook ran"
                );
            }
            Err(e) if kind.fatal() => return Err(e),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(())
}

/// Where a hook runs.
pub(crate) enum Place<'a> {
    /// In the monitor's namespaces.
    Runtime,
    /// In the container's namespaces and cgroup.
    Container {
        /// The container.
        ns: &'a ContainerNs<'a>,
        /// Look the path up in the container instead of opening it here first.
        path_in_container: bool,
    },
}

/// What a hook wrote, truncated to [`KEEP_OUTPUT`] bytes each.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// The start of its stdout.
    pub stdout: Vec<u8>,
    /// The start of its stderr.
    pub stderr: Vec<u8>,
}

/// One hook, checked and ready to run.
#[derive(Debug, Clone)]
pub(crate) struct HookCommand {
    /// `OciSpecification.hooks.<list>[i]`, for messages.
    name: String,
    path: PathBuf,
    argv: Vec<CString>,
    envp: Vec<CString>,
    timeout: Option<Duration>,
    cwd: Option<CString>,
}

/// Stages the child reports failures of.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Stage {
    Cgroup = 1,
    Namespaces = 2,
    Stdio = 3,
    Exec = 4,
}

/// What the child needs, all allocated before the fork.
struct Prepared<'a> {
    path: CString,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    exec_fd: Option<OwnedFd>,
    cwd: Option<&'a CString>,
    stdio: [OwnedFd; 3],
}

impl HookCommand {
    /// From the spec's hook; `name` prefixes every message. Runtime hooks
    /// start in `cwd` (the bundle).
    pub(crate) fn from_hook(hook: &Hook, name: &str, cwd: Option<&Path>) -> HcsResult<HookCommand> {
        let cstr = |s: &[u8], what: &str| {
            CString::new(s)
                .map_err(|_| HcsError::invalid_json(format!("{name}.{what} contains a NUL byte")))
        };
        let path = hook.path().clone();
        let argv = match hook.args() {
            Some(args) if !args.is_empty() => args
                .iter()
                .map(|a| cstr(a.as_bytes(), "args"))
                .collect::<HcsResult<Vec<_>>>()?,
            // execv semantics need an argv[0]; the path is the usual one (runc too).
            _ => vec![cstr(path.as_os_str().as_bytes(), "path")?],
        };
        let envp = hook
            .env()
            .iter()
            .flatten()
            .map(|e| cstr(e.as_bytes(), "env"))
            .collect::<HcsResult<Vec<_>>>()?;
        cstr(path.as_os_str().as_bytes(), "path")?;
        let timeout = match hook.timeout() {
            Some(t) if t <= 0 => {
                return Err(HcsError::invalid_json(format!(
                    "{name}.timeout: {t} must be greater than zero"
                )))
            }
            Some(t) => Some(Duration::from_secs(t as u64)),
            None => None,
        };
        Ok(HookCommand {
            name: name.to_string(),
            path,
            argv,
            envp,
            timeout,
            cwd: cwd.and_then(|c| CString::new(c.as_os_str().as_bytes()).ok()),
        })
    }

    fn error(&self, hr: HResult, what: impl std::fmt::Display) -> HcsError {
        HcsError::new(hr, format!("{}: {} {what}", self.name, self.path.display()))
    }

    fn io_error(&self, what: &str, e: &io::Error) -> HcsError {
        self.error(
            HResult::from_errno(e.raw_os_error().unwrap_or(libc::EIO)),
            format_args!("could not be run: {what}: {e}"),
        )
    }

    /// Run it with `stdin` as its input, wait for it (at most its timeout),
    /// and return what it wrote; exiting other than with status 0 is an error.
    pub(crate) fn run(&self, stdin: &[u8], place: &Place<'_>) -> HcsResult<Captured> {
        let io = |what: &str, e: nix::errno::Errno| self.io_error(what, &io::Error::from(e));
        // Resolved here, in the runtime namespace, unless the spec says otherwise.
        let exec_fd = match place {
            Place::Container {
                path_in_container: false,
                ..
            } => Some(
                nix::fcntl::open(
                    &self.path,
                    OFlag::O_PATH | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| io("opening it", e))?,
            ),
            _ => None,
        };
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe", e));
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (report_r, report_w) = pipe()?;
        let null_terminated = |v: &[CString]| -> Vec<*const c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let prepared = Prepared {
            path: CString::new(self.path.as_os_str().as_bytes())
                .map_err(|_| self.error(HResult::E_INVALIDARG, "contains a NUL byte"))?,
            argv: null_terminated(&self.argv),
            envp: null_terminated(&self.envp),
            exec_fd,
            cwd: self.cwd.as_ref(),
            stdio: [in_r, out_w, err_w],
        };

        let forked = match place {
            Place::Runtime => sys::fork(),
            Place::Container { ns, .. } => {
                // As in spawn.rs: the next fork lands in the container's pid
                // namespace; step back out at once.
                nix::sched::setns(&ns.ns.pid, CloneFlags::CLONE_NEWPID)
                    .map_err(|e| io("entering the container's pid namespace", e))?;
                let forked = sys::fork();
                let restored = nix::sched::setns(ns.own_pid_ns, CloneFlags::CLONE_NEWPID);
                if let (Err(e), Ok(Forked::Parent(_)) | Err(_)) = (restored, &forked) {
                    // Should never happen; if it did, later forks would land in the container.
                    tracing::error!("leaving the container's pid namespace: {e}");
                }
                forked
            }
        };
        let pid = match forked {
            Err(e) => return Err(self.io_error("fork", &e)),
            Ok(Forked::Child) => {
                drop(report_r);
                child(&prepared, place, report_w)
            }
            Ok(Forked::Parent(pid)) => pid,
        };
        drop(prepared);
        drop(report_w);
        let child = Child::new(pid);
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                child.kill_and_reap();
                return Err(self.io_error("watching it (pidfd_open)", &e));
            }
        };
        for fd in [&in_w, &out_r, &err_r, &report_r] {
            if let Err(e) = set_nonblocking(fd.as_fd()) {
                child.kill_and_reap();
                return Err(io("setting up its pipes", e));
            }
        }
        let watched = Watch {
            pidfd,
            stdin: Some((in_w, stdin, 0)),
            stdout: Some(out_r),
            stderr: Some(err_r),
            report: Some(report_r),
            captured: Captured::default(),
            report_bytes: Vec::new(),
        }
        .until_exit(
            &child,
            // A timeout too large for the clock is no timeout.
            self.timeout.and_then(|t| Instant::now().checked_add(t)),
        );
        let (status, captured, report) = match watched {
            Ok(done) => done,
            Err(WatchError::TimedOut(captured)) => {
                let secs = self.timeout.map(|t| t.as_secs()).unwrap_or(0);
                return Err(self.error(
                    HResult::ERROR_TIMEOUT,
                    format_args!(
                        "did not finish within its timeout of {secs} s and was killed{}",
                        first_line(&captured)
                    ),
                ));
            }
            Err(WatchError::Poll(e)) => return Err(io("waiting for it", e)),
        };
        if let Some(rec) = report.get(0..5) {
            let errno = i32::from_ne_bytes([rec[1], rec[2], rec[3], rec[4]]);
            return Err(self.child_error(rec[0], errno, matches!(place, Place::Container { .. })));
        }
        match status {
            WaitStatus::Exited(_, 0) => Ok(captured),
            WaitStatus::Exited(_, code) => Err(self.error(
                HResult::E_FAIL,
                format_args!("exited with status {code}{}", first_line(&captured)),
            )),
            WaitStatus::Signaled(_, sig, _) => Err(self.error(
                HResult::E_FAIL,
                format_args!("was killed by {}{}", sig.as_str(), first_line(&captured)),
            )),
            other => Err(self.error(
                HResult::E_FAIL,
                format_args!("ended unexpectedly ({other:?})"),
            )),
        }
    }

    fn child_error(&self, stage: u8, errno: i32, in_container: bool) -> HcsError {
        let err = io::Error::from_raw_os_error(errno);
        let hr = HResult::from_errno(errno);
        let what = match stage {
            s if s == Stage::Cgroup as u8 => {
                format!("could not join the container's cgroup: {err}")
            }
            s if s == Stage::Namespaces as u8 => {
                format!("could not enter the container's namespaces: {err}")
            }
            s if s == Stage::Stdio as u8 => format!("could not set up its stdio: {err}"),
            _ if errno == libc::ENOENT => {
                let place = if in_container {
                    " in the container"
                } else {
                    ""
                };
                format!(
                    "could not be executed: {err} (a missing file, \
                     or a #! interpreter or dynamic loader missing{place})"
                )
            }
            _ => format!("could not be executed: {err}"),
        };
        self.error(hr, what)
    }
}

/// `": <first non-empty line of stderr (else stdout)>"`, or nothing.
fn first_line(c: &Captured) -> String {
    [&c.stderr, &c.stdout]
        .iter()
        .find_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| format!(": {l}"))
        })
        .unwrap_or_default()
}

/// A forked hook that has not been reaped yet.
struct Child(Pid);

impl Child {
    fn new(pid: i32) -> Child {
        Child(Pid::from_raw(pid))
    }

    /// Kill it and its process group (it is a session leader), then reap it.
    fn kill_and_reap(&self) -> Option<WaitStatus> {
        let _ = nix::sys::signal::killpg(self.0, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(self.0, Signal::SIGKILL);
        self.reap()
    }

    /// Wait for it by its pid (never any other child).
    fn reap(&self) -> Option<WaitStatus> {
        loop {
            match nix::sys::wait::waitpid(self.0, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(s) => return Some(s),
                Err(_) => return None,
            }
        }
    }
}

enum WatchError {
    TimedOut(Captured),
    Poll(nix::errno::Errno),
}

/// The parent's side of a running hook.
struct Watch<'a> {
    pidfd: OwnedFd,
    /// Write end of its stdin, the data, and how much was written.
    stdin: Option<(OwnedFd, &'a [u8], usize)>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// The child's failure report (EOF without data once it has exec'd).
    report: Option<OwnedFd>,
    captured: Captured,
    report_bytes: Vec<u8>,
}

impl Watch<'_> {
    /// Feed stdin and collect output until the hook exits (or its deadline
    /// passes: then it is killed). Returns its wait status, its output and
    /// the child's report.
    fn until_exit(
        mut self,
        child: &Child,
        deadline: Option<Instant>,
    ) -> Result<(WaitStatus, Captured, Vec<u8>), WatchError> {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        child.kill_and_reap();
                        self.drain();
                        return Err(WatchError::TimedOut(self.captured));
                    }
                    // Rounded up, so we never spin on a 0 ms poll.
                    let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128);
                    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
                }
            };
            let (exited, stdin_ready, readable) = {
                let mut fds = vec![PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
                let stdin_at = self.stdin.as_ref().map(|(fd, _, _)| {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
                    fds.len() - 1
                });
                let mut read_at = [None; 3];
                for (slot, fd) in [&self.stdout, &self.stderr, &self.report]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(fd) = fd {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        read_at[slot] = Some(fds.len() - 1);
                    }
                }
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        child.kill_and_reap();
                        return Err(WatchError::Poll(e));
                    }
                }
                let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
                (
                    ready(0),
                    stdin_at.is_some_and(ready),
                    read_at.map(|i| i.is_some_and(ready)),
                )
            };
            if stdin_ready {
                self.feed_stdin();
            }
            if readable[0] {
                read_into(&mut self.stdout, &mut self.captured.stdout);
            }
            if readable[1] {
                read_into(&mut self.stderr, &mut self.captured.stderr);
            }
            if readable[2] {
                read_into(&mut self.report, &mut self.report_bytes);
            }
            if exited {
                let status = child
                    .reap()
                    .ok_or(WatchError::Poll(nix::errno::Errno::ECHILD))?;
                // Whatever it wrote before exiting; a background process it
                // left holding its stdout is not waited for.
                self.drain();
                return Ok((status, self.captured, self.report_bytes));
            }
        }
    }

    fn feed_stdin(&mut self) {
        let Some((fd, data, written)) = &mut self.stdin else {
            return;
        };
        match nix::unistd::write(&*fd, &data[*written..]) {
            Ok(n) => {
                *written += n;
                if *written >= data.len() {
                    // All of it: close, so the hook reads EOF.
                    self.stdin = None;
                }
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // EPIPE: it closed its stdin without reading it all, which is its business.
            Err(_) => self.stdin = None,
        }
    }

    fn drain(&mut self) {
        self.stdin = None;
        read_into(&mut self.stdout, &mut self.captured.stdout);
        read_into(&mut self.stderr, &mut self.captured.stderr);
        read_into(&mut self.report, &mut self.report_bytes);
    }
}

/// Read what `fd` has now (non-blocking), keeping at most [`KEEP_OUTPUT`]
/// bytes in `buf`; at EOF or on an error, close it.
fn read_into(fd: &mut Option<OwnedFd>, buf: &mut Vec<u8>) {
    let Some(f) = fd else {
        return;
    };
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(f.as_fd(), &mut chunk) {
            Ok(0) => {
                *fd = None;
                return;
            }
            Ok(n) => {
                let room = KEEP_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return,
            Err(_) => {
                *fd = None;
                return;
            }
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), nix::errno::Errno> {
    let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(fd, FcntlArg::F_GETFL)?);
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}

/// `pidfd_open(pid, 0)`: a descriptor that becomes readable when `pid` exits.
fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor owned by nobody else
    // (pidfds are close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// In the forked child: never returns. Only async-signal-safe calls on
/// what was prepared before the fork (the test harness has other threads).
fn child(p: &Prepared<'_>, place: &Place<'_>, report: OwnedFd) -> ! {
    let fail = |stage: Stage, e: i32| -> ! {
        let mut rec = [0u8; 5];
        rec[0] = stage as u8;
        rec[1..5].copy_from_slice(&e.to_ne_bytes());
        let _ = nix::unistd::write(&report, &rec);
        sys::exit_now(127)
    };
    if let Place::Container { ns, .. } = place {
        for fd in ns.cgroup_procs {
            if let Err(e) = nix::unistd::write(fd, b"0") {
                fail(Stage::Cgroup, e as i32);
            }
        }
        // The mount namespace last moves our root and cwd to the container's.
        if let Err(e) = ns.ns.enter() {
            fail(Stage::Namespaces, e as i32);
        }
    }
    // Its own session and process group, so a timeout can kill what it started.
    let _ = nix::unistd::setsid();
    for (i, fd) in p.stdio.iter().enumerate() {
        if let Err(e) = sys::dup_onto(fd.as_fd(), i as RawFd) {
            fail(Stage::Stdio, e.raw_os_error().unwrap_or(libc::EBADF));
        }
    }
    if let Some(cwd) = p.cwd {
        if nix::unistd::chdir(cwd.as_c_str()).is_err() {
            let _ = nix::unistd::chdir(c"/");
        }
    }
    // The monitor blocks and ignores signals for itself; the hook starts clean.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    sys::cloexec_from(3);
    let errno = match &p.exec_fd {
        Some(fd) => {
            // Inherited, so that a script's interpreter can open /dev/fd/N.
            let _ = nix::fcntl::fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()));
            // SAFETY: argv and envp are NULL-terminated arrays of pointers to
            // NUL-terminated strings that live until exec; "" is NUL-terminated.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    p.argv.as_ptr(),
                    p.envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            }
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOEXEC)
        }
        None => {
            // SAFETY: as above, with a NUL-terminated path.
            unsafe { libc::execve(p.path.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) };
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOEXEC)
        }
    };
    fail(Stage::Exec, errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Written by a child process: were it written here, a fork by a test
    /// running alongside could inherit the open descriptor, and executing
    /// the script while that child holds it fails with ETXTBSY (seen).
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::io::Write as _;
        let p = dir.join(name);
        let mut cat = std::process::Command::new("sh")
            .args(["-c", "cat > \"$1\"", "sh"])
            .arg(&p)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        cat.stdin
            .take()
            .expect("stdin")
            .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .expect("write script");
        assert!(
            cat.wait().expect("wait").success(),
            "writing {}",
            p.display()
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    fn hook(path: &Path, args: &[&str], env: &[&str], timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path(path.to_path_buf());
        if !args.is_empty() {
            h.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        }
        if !env.is_empty() {
            h.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        }
        h.set_timeout(timeout);
        h
    }

    fn oci(bundle: &Path, edit: impl FnOnce(&mut Hooks)) -> OciConfig {
        let mut hooks = Hooks::default();
        edit(&mut hooks);
        let mut spec = oci_spec::runtime::Spec::default();
        spec.set_hooks(Some(hooks));
        let mut ann = std::collections::HashMap::new();
        ann.insert("org.example.key".to_string(), "value".to_string());
        spec.set_annotations(Some(ann));
        OciConfig {
            spec,
            bundle: bundle.to_path_buf(),
        }
    }

    fn run_one(h: &Hook, stdin: &[u8]) -> HcsResult<Captured> {
        HookCommand::from_hook(h, "OciSpecification.hooks.createRuntime[0]", None)?
            .run(stdin, &Place::Runtime)
    }

    #[test]
    fn hook_reads_the_state_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("state.json");
        let s = script(dir.path(), "h", &format!("cat > {}", out.display()));
        let cfg = oci(dir.path(), |h| {
            h.set_create_runtime(Some(vec![hook(&s, &[], &[], None)]));
        });
        run(HookKind::CreateRuntime, &cfg, "c1", Some(42), None).expect("hook runs");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("hook wrote")).expect("json");
        assert_eq!(state["id"], "c1");
        assert_eq!(state["status"], "creating");
        assert_eq!(state["pid"], 42);
        assert_eq!(state["bundle"], dir.path().to_str().expect("utf-8"));
        assert_eq!(state["annotations"]["org.example.key"], "value");
        assert_eq!(state["ociVersion"], cfg.spec.version().as_str());
    }

    #[test]
    fn stopped_state_has_no_pid_and_runtime_hooks_start_in_the_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let s = script(
            dir.path(),
            "h",
            &format!("cat > {o}.state; pwd > {o}", o = out.display()),
        );
        let cfg = oci(dir.path(), |h| {
            h.set_poststop(Some(vec![hook(&s, &[], &[], None)]));
        });
        run(HookKind::Poststop, &cfg, "c1", None, None).expect("hook runs");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.with_extension("state")).expect("state"))
                .expect("json");
        assert_eq!(state["status"], "stopped");
        assert!(state.get("pid").is_none(), "{state}");
        let cwd = std::fs::read_to_string(&out).expect("pwd");
        assert_eq!(Path::new(cwd.trim()), dir.path());
    }

    #[test]
    fn failure_names_the_hook_status_and_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = script(dir.path(), "h", "echo 'no network for you' >&2; exit 3");
        let cfg = oci(dir.path(), |h| {
            h.set_create_runtime(Some(vec![
                hook(Path::new("/bin/true"), &[], &[], None),
                hook(&s, &[], &[], None),
            ]));
        });
        let e = run(HookKind::CreateRuntime, &cfg, "c1", Some(1), None).expect_err("must fail");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "OciSpecification.hooks.createRuntime[1]: {} exited with status 3: no network for you",
                s.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn poststart_and_poststop_failures_are_not_fatal_and_the_rest_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("ran");
        let bad = script(dir.path(), "bad", "exit 1");
        let good = script(
            dir.path(),
            "good",
            &format!("echo ran >> {}", out.display()),
        );
        let cfg = oci(dir.path(), |h| {
            h.set_poststart(Some(vec![
                hook(&bad, &[], &[], None),
                hook(&good, &[], &[], None),
            ]));
            h.set_poststop(Some(vec![
                hook(&bad, &[], &[], None),
                hook(&good, &[], &[], None),
            ]));
        });
        run(HookKind::Poststart, &cfg, "c1", Some(1), None).expect("not fatal");
        run(HookKind::Poststop, &cfg, "c1", None, None).expect("not fatal");
        assert_eq!(std::fs::read_to_string(&out).expect("ran"), "ran\nran\n");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        // The sleep is its child: killing the process group ends it too.
        let s = script(
            dir.path(),
            "h",
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        );
        let started = Instant::now();
        let e = run_one(&hook(&s, &[], &[], Some(1)), b"{}").expect_err("must time out");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(took >= Duration::from_secs(1), "took {took:?}");
        assert_eq!(e.hresult, HResult::ERROR_TIMEOUT, "{e}");
        assert!(e.to_string().contains("timeout of 1 s"), "{e}");
        let sleep_pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        // The sleep was reparented and reaped elsewhere; give the kernel a moment.
        let gone = (0..100).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{sleep_pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the hook's child {sleep_pid} survived the timeout");
    }

    #[test]
    fn env_and_args_are_exactly_as_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let s = script(
            dir.path(),
            "h",
            &format!("{{ echo \"$0|$1|$2\"; env | sort; }} > {}", out.display()),
        );
        let h = hook(
            &s,
            &["ignored-argv0", "a b", "c"],
            &["FOO=bar", "X=1"],
            None,
        );
        run_one(&h, b"{}").expect("hook runs");
        let text = std::fs::read_to_string(&out).expect("out");
        let mut lines = text.lines();
        // A #! script's $0 is the script path; the args follow.
        assert_eq!(
            lines.next(),
            Some(format!("{}|a b|c", s.display()).as_str())
        );
        let env: Vec<&str> = lines.collect();
        assert!(env.contains(&"FOO=bar") && env.contains(&"X=1"), "{env:?}");
        // Nothing of ours: only what was given and what a shell sets itself.
        let shell_own = ["PWD", "OLDPWD", "SHLVL", "_", "PATH"];
        for line in &env {
            let name = line.split('=').next().unwrap_or_default();
            assert!(
                ["FOO", "X"].contains(&name) || shell_own.contains(&name),
                "{name} leaked into the hook: {env:?}"
            );
        }
    }

    #[test]
    fn argv0_is_passed_to_a_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let h = hook(
            Path::new("/bin/sh"),
            &["my-hook", "-c", &format!("echo \"$0\" > {}", out.display())],
            &[],
            None,
        );
        run_one(&h, b"").expect("hook runs");
        assert_eq!(std::fs::read_to_string(&out).expect("out"), "my-hook\n");
    }

    #[test]
    fn a_missing_executable_and_a_signal_are_errors() {
        let e = run_one(&hook(Path::new("/nonexistent/hook"), &[], &[], None), b"")
            .expect_err("must fail");
        assert!(
            e.message.starts_with(
                "OciSpecification.hooks.createRuntime[0]: /nonexistent/hook could not be executed"
            ),
            "{e}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let s = script(dir.path(), "h", "kill -9 $$");
        let e = run_one(&hook(&s, &[], &[], None), b"").expect_err("must fail");
        assert!(e.to_string().contains("was killed by SIGKILL"), "{e}");
    }

    #[test]
    fn output_is_bounded_and_a_big_stdin_does_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Reads 1 MiB of stdin while writing 1 MiB to each of stdout and stderr.
        let s = script(
            dir.path(),
            "h",
            "head -c 1048576 /dev/zero >&2 & head -c 1048576 /dev/zero; wc -c > /dev/null; wait",
        );
        let big = vec![b'x'; 1 << 20];
        let c = run_one(&hook(&s, &[], &[], Some(20)), &big).expect("hook runs");
        assert_eq!(c.stdout.len(), KEEP_OUTPUT);
        assert_eq!(c.stderr.len(), KEEP_OUTPUT);
    }

    #[test]
    fn validation_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: Vec<(Hook, &str)> = vec![
            (
                hook(Path::new("rel/hook"), &[], &[], None),
                "is not an absolute path",
            ),
            (
                hook(Path::new("/nonexistent/hook"), &[], &[], None),
                "No such file",
            ),
            (hook(dir.path(), &[], &[], None), "is not a file"),
            (
                hook(Path::new("/bin/true"), &[], &[], Some(0)),
                "must be greater than zero",
            ),
        ];
        for (h, want) in cases {
            let cfg = oci(dir.path(), |hs| {
                hs.set_create_container(Some(vec![
                    hook(Path::new("/bin/true"), &[], &[], None),
                    h,
                ]));
            });
            let e = validate(&cfg).expect_err(want);
            assert!(
                e.to_string()
                    .contains("Container.OciSpecification.hooks.createContainer[1]")
                    && e.to_string().contains(want),
                "{e}"
            );
        }
        // startContainer paths resolve in the container: only their form is checked.
        let cfg = oci(dir.path(), |hs| {
            hs.set_start_container(Some(vec![hook(
                Path::new("/only/in/container"),
                &[],
                &[],
                None,
            )]));
        });
        validate(&cfg).expect("valid");
        let cfg = oci(dir.path(), |hs| {
            hs.set_start_container(Some(vec![hook(
                Path::new("only/in/container"),
                &[],
                &[],
                None,
            )]));
        });
        assert!(validate(&cfg).is_err());
    }

    /// The container path (fork into a pid namespace, join the namespaces,
    /// exec by descriptor), with our own namespaces standing in for a
    /// container's. Needs root, as every test that joins namespaces.
    #[test]
    fn container_hooks_run_by_descriptor_in_the_namespaces() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "joining namespaces needs root: run the tests as root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let s = script(
            dir.path(),
            "h",
            &format!(
                "cat > {o}.state; pwd > {o}; echo \"$0\" >> {o}",
                o = out.display()
            ),
        );
        let me = std::process::id() as i32;
        let ns = Namespaces::open(me, false).expect("namespaces");
        let own_pid_ns: OwnedFd = std::fs::File::open("/proc/self/ns/pid")
            .expect("pid ns")
            .into();
        let c = ContainerNs {
            ns: &ns,
            own_pid_ns: &own_pid_ns,
            cgroup_procs: &[],
        };
        let cfg = oci(dir.path(), |h| {
            h.set_create_container(Some(vec![hook(&s, &[], &[], None)]));
        });
        run(HookKind::CreateContainer, &cfg, "c1", Some(me), Some(&c)).expect("hook runs");
        let text = std::fs::read_to_string(&out).expect("out");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("/"),
            "joining the mount namespace moves to its root"
        );
        // Run by descriptor: the interpreter got /dev/fd/N, not the path.
        let zero = lines.next().unwrap_or_default();
        assert!(zero.starts_with("/dev/fd/"), "{text}");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.with_extension("state")).expect("state"))
                .expect("json");
        assert_eq!(state["status"], "creating");
        // startContainer looks the path up in the container (here: the same
        // mount namespace), so the interpreter gets the path itself.
        let cfg = oci(dir.path(), |h| {
            h.set_start_container(Some(vec![hook(&s, &[], &[], None)]));
        });
        run(HookKind::StartContainer, &cfg, "c1", Some(me), Some(&c)).expect("hook runs");
        let text = std::fs::read_to_string(&out).expect("out");
        assert_eq!(text, format!("/\n{}\n", s.display()));
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.with_extension("state")).expect("state"))
                .expect("json");
        assert_eq!(state["status"], "created");
        assert_eq!(state["pid"], me);
        // And without the namespaces, a container hook refuses to run.
        let e = run(HookKind::StartContainer, &cfg, "c1", Some(me), None).expect_err("no ns");
        assert!(e.to_string().contains("not running"), "{e}");
    }
}
