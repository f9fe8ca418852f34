//! Starting a process: resolving what to run, stdio (pipes or a pty),
//! fork and exec, and reporting a failed exec precisely.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hcs_agent_protocol::{Capabilities, ConsoleSize, CreateProcess, ProcessSecurity};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag};

use crate::error::{AgentError, Result};
use crate::process::Processes;
use crate::stdio;
use crate::transport::{Stream, Transport};
use crate::user::{self, Credentials};

/// PATH used when the process's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to exec, all converted before fork.
struct Plan {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    creds: Option<Credentials>,
    terminal: Option<ConsoleSize>,
    security: Security,
}

/// Highest Linux resource number (`RLIMIT_RTTIME`).
const MAX_RLIMIT_RESOURCE: u32 = 15;

/// The request's [`ProcessSecurity`], checked and prepared for the child.
#[derive(Default)]
struct Security {
    umask: Option<libc::mode_t>,
    no_new_privileges: bool,
    /// Capability sets limited to what the kernel knows.
    capabilities: Option<Capabilities>,
    /// The kernel's highest capability number.
    last_cap: u32,
    rlimits: Vec<(u32, libc::rlimit)>,
    /// `/proc/self/oom_score_adj` and what is written to it.
    oom_score_adj: Option<(CString, Vec<u8>)>,
}

/// The running kernel's highest capability number (`cap_last_cap`).
fn last_cap() -> Result<u32> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .map_err(|e| AgentError::io("reading /proc/sys/kernel/cap_last_cap", e))?;
    text.trim()
        .parse()
        .map_err(|_| AgentError::InvalidArgument(format!("cap_last_cap is not a number: {text:?}")))
}

impl Security {
    fn from_request(s: &ProcessSecurity<'_>) -> Result<Security> {
        let umask = s
            .umask
            .map(|m| {
                if m > 0o777 {
                    return Err(AgentError::InvalidArgument(format!(
                        "umask {m:#o} is not a file mode mask"
                    )));
                }
                Ok(m as libc::mode_t)
            })
            .transpose()?;
        let mut rlimits = Vec::new();
        for r in s.rlimits.iter() {
            if r.resource > MAX_RLIMIT_RESOURCE {
                return Err(AgentError::InvalidArgument(format!(
                    "unknown rlimit resource {}",
                    r.resource
                )));
            }
            if r.soft > r.hard {
                return Err(AgentError::InvalidArgument(format!(
                    "rlimit {}: the soft limit {} exceeds the hard limit {}",
                    r.resource, r.soft, r.hard
                )));
            }
            let limit = libc::rlimit {
                rlim_cur: r.soft as libc::rlim_t,
                rlim_max: r.hard as libc::rlim_t,
            };
            rlimits.push((r.resource, limit));
        }
        let oom_score_adj = s
            .oom_score_adj
            .map(|n| {
                if !(-1000..=1000).contains(&n) {
                    return Err(AgentError::InvalidArgument(format!(
                        "oom_score_adj {n} is outside -1000..1000"
                    )));
                }
                Ok((
                    cstring("a path", b"/proc/self/oom_score_adj")?,
                    n.to_string().into_bytes(),
                ))
            })
            .transpose()?;
        let (capabilities, last_cap) = match s.capabilities {
            None => (None, 0),
            Some(c) => {
                let last = last_cap()?;
                // Capabilities this kernel does not know are left out, as runc does.
                let known = if last >= 63 {
                    u64::MAX
                } else {
                    (1u64 << (last + 1)) - 1
                };
                let c = Capabilities {
                    bounding: c.bounding & known,
                    effective: c.effective & known,
                    permitted: c.permitted & known,
                    inheritable: c.inheritable & known,
                    ambient: c.ambient & known,
                };
                if c.effective & !c.permitted != 0
                    || c.ambient & !(c.permitted & c.inheritable) != 0
                {
                    return Err(AgentError::InvalidArgument(
                        "capabilities: effective must be within permitted, ambient within permitted and inheritable"
                            .into(),
                    ));
                }
                (Some(c), last)
            }
        };
        Ok(Security {
            umask,
            no_new_privileges: s.no_new_privileges,
            capabilities,
            last_cap,
            rlimits,
            oom_score_adj,
        })
    }
}

fn cstring(what: &str, bytes: &[u8]) -> Result<CString> {
    CString::new(bytes)
        .map_err(|_| AgentError::InvalidArgument(format!("{what} contains a NUL byte")))
}

impl Plan {
    fn from_request(req: &CreateProcess<'_>) -> Result<Plan> {
        let argv = req
            .args
            .iter()
            .map(|a| cstring("an argument", a))
            .collect::<Result<Vec<_>>>()?;
        let envp = req
            .env
            .iter()
            .map(|e| cstring("an environment string", e))
            .collect::<Result<Vec<_>>>()?;
        let arg0 = argv
            .first()
            .ok_or_else(|| AgentError::InvalidArgument("no command (args is empty)".into()))?;
        let cwd = if req.cwd.is_empty() {
            b"/".as_slice()
        } else {
            req.cwd
        };
        let path_var = envp
            .iter()
            .rev()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="));
        // Windows ApplicationName: the program, with args[0] only its name.
        let program = if req.executable.is_empty() {
            arg0.as_bytes()
        } else {
            req.executable
        };
        let path = resolve_executable(program, path_var, Path::new(OsStr::from_bytes(cwd)))?;
        if req.terminal.is_some() && req.stderr_port.is_some() {
            return Err(AgentError::InvalidArgument(
                "stderr cannot be a separate stream with a terminal".into(),
            ));
        }
        Ok(Plan {
            path: cstring("the executable path", path.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd: cstring("the working directory", cwd)?,
            creds: user::resolve(
                &req.user,
                req.security.additional_gids.map(|g| g.iter().collect()),
            )?,
            terminal: req.terminal,
            security: Security::from_request(&req.security)?,
        })
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `arg0`: as a path when it has a `/` (relative to `cwd`), else in
/// `PATH` (the process's own, or [`DEFAULT_PATH`]).
pub fn resolve_executable(arg0: &[u8], path_var: Option<&[u8]>, cwd: &Path) -> Result<PathBuf> {
    let name = String::from_utf8_lossy(arg0).into_owned();
    if arg0.is_empty() {
        return Err(AgentError::InvalidArgument(
            "the command (args[0]) is empty".into(),
        ));
    }
    if arg0.contains(&b'/') {
        let path = cwd.join(OsStr::from_bytes(arg0));
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(AgentError::ExecutableNotFound {
                name,
                searched: "no such file".into(),
            });
        }
        return Ok(path);
    }
    let path_var = path_var.unwrap_or(DEFAULT_PATH.as_bytes());
    for dir in path_var.split(|b| *b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = cwd
            .join(OsStr::from_bytes(dir))
            .join(OsStr::from_bytes(arg0));
        if is_executable_file(&candidate) {
            return Ok(candidate);
        }
    }
    let searched = format!("searched PATH={}", String::from_utf8_lossy(path_var));
    Err(AgentError::ExecutableNotFound { name, searched })
}

/// The child's descriptors 0, 1, 2 and the parent's ends.
struct Wiring {
    child: [OwnedFd; 3],
    /// Parent ends: stdin writer, stdout reader, stderr reader (pipes), or
    /// the terminal's master for stdin and stdout.
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    pty_master: Option<Arc<OwnedFd>>,
}

fn cloexec(fd: &OwnedFd) -> Result<()> {
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(|e| AgentError::sys("fcntl(FD_CLOEXEC)", e))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| AgentError::sys("pipe2", e))
}

fn dev_null() -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| AgentError::io("opening /dev/null", e))?;
    Ok(OwnedFd::from(f))
}

fn dup_file(fd: &OwnedFd) -> Result<File> {
    fd.try_clone()
        .map(File::from)
        .map_err(|e| AgentError::io("dup", e))
}

fn winsize(size: ConsoleSize) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sets a terminal's size (`TIOCSWINSZ` on its master).
pub fn set_window_size(master: &OwnedFd, size: ConsoleSize) -> Result<()> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points
    // to a live local; the fd is owned and open.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(AgentError::sys("ioctl(TIOCSWINSZ)", Errno::last()));
    }
    Ok(())
}

impl Wiring {
    fn pty(size: ConsoleSize) -> Result<Wiring> {
        let pty = nix::pty::openpty(Some(&winsize(size)), None)
            .map_err(|e| AgentError::sys("openpty", e))?;
        cloexec(&pty.master)?;
        cloexec(&pty.slave)?;
        let child = [dup_owned(&pty.slave)?, dup_owned(&pty.slave)?, pty.slave];
        Ok(Wiring {
            child,
            stdin: Some(dup_file(&pty.master)?),
            stdout: Some(dup_file(&pty.master)?),
            stderr: None,
            pty_master: Some(Arc::new(pty.master)),
        })
    }

    fn pipes(stdin: bool, stdout: bool, stderr: bool) -> Result<Wiring> {
        let (child_in, parent_in) = if stdin {
            split(pipe()?, false)
        } else {
            (dev_null()?, None)
        };
        let (child_out, parent_out) = if stdout {
            split(pipe()?, true)
        } else {
            (dev_null()?, None)
        };
        let (child_err, parent_err) = if stderr {
            split(pipe()?, true)
        } else {
            (dev_null()?, None)
        };
        Ok(Wiring {
            child: [child_in, child_out, child_err],
            stdin: parent_in,
            stdout: parent_out,
            stderr: parent_err,
            pty_master: None,
        })
    }
}

/// Splits a pipe `(read, write)` into the child's end and the parent's.
fn split((read, write): (OwnedFd, OwnedFd), child_writes: bool) -> (OwnedFd, Option<File>) {
    if child_writes {
        (write, Some(File::from(read)))
    } else {
        (read, Some(File::from(write)))
    }
}

fn dup_owned(fd: &OwnedFd) -> Result<OwnedFd> {
    // try_clone uses F_DUPFD_CLOEXEC.
    fd.try_clone().map_err(|e| AgentError::io("dup", e))
}

/// Steps of the child, reported back through the exec-error pipe.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Stage {
    Setsid,
    Tiocsctty,
    Dup2,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    Execve,
    Setrlimit,
    OomScoreAdj,
    CapbsetDrop,
    KeepCaps,
    Capset,
    AmbientRaise,
    NoNewPrivs,
}

/// Names of the [`Stage`]s, by number.
const STAGES: [&str; 15] = [
    "setsid",
    "ioctl(TIOCSCTTY)",
    "dup2",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "execve",
    "setrlimit",
    "writing /proc/self/oom_score_adj",
    "prctl(PR_CAPBSET_DROP)",
    "prctl(PR_SET_KEEPCAPS)",
    "capset",
    "prctl(PR_CAP_AMBIENT_RAISE)",
    "prctl(PR_SET_NO_NEW_PRIVS)",
];

/// Everything the child touches, as raw pointers prepared before fork.
struct ChildArgs<'a> {
    path: *const libc::c_char,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    cwd: *const libc::c_char,
    creds: Option<&'a Credentials>,
    security: &'a Security,
    fds: [RawFd; 3],
    terminal: bool,
    report: RawFd,
}

/// `capset(2)`'s header (`_LINUX_CAPABILITY_VERSION_3`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One 32-bit half of `capset(2)`'s data.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Fails with `stage` when a system call returned a negative value.
fn check(rc: libc::c_long, stage: Stage) -> std::result::Result<(), Stage> {
    if rc < 0 {
        Err(stage)
    } else {
        Ok(())
    }
}

/// The child's steps up to exec; returns the stage that failed.
///
/// # Safety
/// Must be called in a freshly forked child; the pointers in `a` must be
/// valid NUL-terminated strings and NULL-terminated arrays.
unsafe fn child_steps(a: &ChildArgs<'_>) -> std::result::Result<(), Stage> {
    // SAFETY: an all-zero sigset_t is a valid (empty) set to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is a valid set; the old mask is not wanted (null).
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    for sig in 1..=64 {
        // SAFETY: resetting a disposition to the default; invalid numbers just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: setsid has no memory arguments.
    check(unsafe { libc::setsid() }.into(), Stage::Setsid)?;
    if a.terminal {
        // SAFETY: TIOCSCTTY takes an integer argument; fds[0] is the pty slave.
        let rc = unsafe { libc::ioctl(a.fds[0], libc::TIOCSCTTY, 0) };
        check(rc.into(), Stage::Tiocsctty)?;
    }
    for (target, fd) in a.fds.iter().enumerate() {
        // SAFETY: dup2 on descriptors the parent opened for the child.
        let rc = unsafe { libc::dup2(*fd, target as libc::c_int) };
        check(rc.into(), Stage::Dup2)?;
    }
    let sec = a.security;
    // Limits and the OOM score first, while the child may still raise them.
    for (resource, limit) in &sec.rlimits {
        // SAFETY: `limit` is a live rlimit; the resource was checked before fork.
        let rc = unsafe { libc::setrlimit(*resource as _, limit) };
        check(rc.into(), Stage::Setrlimit)?;
    }
    if let Some((path, text)) = &sec.oom_score_adj {
        // SAFETY: `path` is a NUL-terminated string prepared before fork.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        check(fd.into(), Stage::OomScoreAdj)?;
        // SAFETY: `text` is a live buffer of `text.len()` bytes; fd is open.
        let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        check(n as libc::c_long, Stage::OomScoreAdj)?;
    }
    if let Some(mask) = sec.umask {
        // SAFETY: umask only sets the process's mask.
        unsafe { libc::umask(mask) };
    }
    if let Some(caps) = &sec.capabilities {
        for cap in 0..=sec.last_cap {
            if caps.bounding & (1u64 << cap) == 0 {
                // SAFETY: prctl with integer arguments only.
                let rc = unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
                };
                check(rc.into(), Stage::CapbsetDrop)?;
            }
        }
        // Keep the permitted set across setuid; capset below trims it.
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0) };
        check(rc.into(), Stage::KeepCaps)?;
    }
    if let Some(c) = a.creds {
        // SAFETY: `groups` is a live slice of gid_t of the given length.
        let rc = unsafe { libc::setgroups(c.groups.len(), c.groups.as_ptr()) };
        check(rc.into(), Stage::Setgroups)?;
        // SAFETY: no memory arguments.
        check(unsafe { libc::setgid(c.gid) }.into(), Stage::Setgid)?;
        // SAFETY: no memory arguments.
        check(unsafe { libc::setuid(c.uid) }.into(), Stage::Setuid)?;
    }
    if let Some(caps) = &sec.capabilities {
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let half = |shift: u32| CapData {
            effective: (caps.effective >> shift) as u32,
            permitted: (caps.permitted >> shift) as u32,
            inheritable: (caps.inheritable >> shift) as u32,
        };
        let data = [half(0), half(32)];
        // SAFETY: capset reads a version-3 header and two data structs, both live.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        check(rc, Stage::Capset)?;
        for cap in 0..=sec.last_cap {
            if caps.ambient & (1u64 << cap) != 0 {
                // SAFETY: prctl with integer arguments only.
                let rc = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        libc::c_ulong::from(cap),
                        0,
                        0,
                    )
                };
                check(rc.into(), Stage::AmbientRaise)?;
            }
        }
    }
    if sec.no_new_privileges {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
        check(rc.into(), Stage::NoNewPrivs)?;
    }
    // SAFETY: `cwd` is a NUL-terminated string prepared before fork.
    check(unsafe { libc::chdir(a.cwd) }.into(), Stage::Chdir)?;
    // SAFETY: path, argv and envp are NUL-terminated strings and
    // NULL-terminated arrays prepared before fork; execve returns only on failure.
    unsafe { libc::execve(a.path, a.argv.as_ptr(), a.envp.as_ptr()) };
    Err(Stage::Execve)
}

/// Runs in the forked child: only async-signal-safe calls, no allocation.
///
/// # Safety
/// Must be called in a freshly forked child; the pointers in `a` must be
/// valid NUL-terminated strings and NULL-terminated arrays.
unsafe fn child_main(a: &ChildArgs<'_>) -> ! {
    // SAFETY: the caller's contract is this function's.
    let stage = match unsafe { child_steps(a) } {
        Ok(()) => Stage::Execve,
        Err(stage) => stage,
    };
    let errno = Errno::last_raw();
    let mut msg = [0u8; 8];
    let (head, tail) = msg.split_at_mut(4);
    head.copy_from_slice(&(stage as u32).to_le_bytes());
    tail.copy_from_slice(&errno.to_le_bytes());
    // SAFETY: `report` is the open write end of the exec-error pipe and
    // `msg` a live 8-byte buffer.
    unsafe { libc::write(a.report, msg.as_ptr().cast(), msg.len()) };
    // SAFETY: ends the child without running the parent's exit handlers.
    unsafe { libc::_exit(127) }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Forks and execs `plan` with `wiring`; returns the pid once exec succeeded.
fn fork_exec(plan: &Plan, wiring: &Wiring, procs: &Processes) -> Result<u32> {
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.envp);
    let (report_read, report_write) = pipe()?;
    let args = ChildArgs {
        path: plan.path.as_ptr(),
        argv: &argv,
        envp: &envp,
        cwd: plan.cwd.as_ptr(),
        creds: plan.creds.as_ref(),
        security: &plan.security,
        fds: [
            wiring.child[0].as_raw_fd(),
            wiring.child[1].as_raw_fd(),
            wiring.child[2].as_raw_fd(),
        ],
        terminal: plan.terminal.is_some(),
        report: report_write.as_raw_fd(),
    };
    let mut registration = procs.register();
    // SAFETY: fork in a multithreaded process: the child runs only
    // `child_main`, which makes async-signal-safe calls on data prepared
    // above and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: we are the freshly forked child; `args` points into live data.
        unsafe { child_main(&args) }
    }
    if pid < 0 {
        return Err(AgentError::sys("fork", Errno::last()));
    }
    let pid = pid as u32;
    registration.insert(pid, wiring.pty_master.clone());
    drop(registration);
    drop(report_write);
    match read_exec_report(report_read) {
        None => Ok(pid),
        Some((stage, errno)) => {
            procs.remove(pid);
            Err(AgentError::Exec {
                path: String::from_utf8_lossy(plan.path.as_bytes()).into_owned(),
                stage: STAGES.get(stage as usize).copied().unwrap_or("start"),
                source: Errno::from_raw(errno),
            })
        }
    }
}

/// Reads the child's failure report; `None` when exec succeeded (the pipe
/// closed on exec without data).
fn read_exec_report(fd: OwnedFd) -> Option<(u32, i32)> {
    let mut file = File::from(fd);
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        match file.read(&mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got < msg.len() {
        return None;
    }
    let (stage, errno) = msg.split_at(4);
    Some((
        u32::from_le_bytes(stage.try_into().ok()?),
        i32::from_le_bytes(errno.try_into().ok()?),
    ))
}

fn connect(
    transport: &Transport,
    stream: &'static str,
    port: Option<u32>,
) -> Result<Option<Stream>> {
    port.map(|port| {
        transport
            .connect_port(port)
            .map_err(|source| AgentError::StdioConnect {
                stream,
                port,
                source,
            })
    })
    .transpose()
}

/// Handles CreateProcess: returns the new pid once it has exec'd.
pub fn create_process(
    req: &CreateProcess<'_>,
    transport: &Transport,
    procs: &Arc<Processes>,
) -> Result<u32> {
    let plan = Plan::from_request(req)?;
    let stdin = connect(transport, "stdin", req.stdin_port)?;
    let stdout = connect(transport, "stdout", req.stdout_port)?;
    let stderr = connect(transport, "stderr", req.stderr_port)?;
    let wiring = match plan.terminal {
        Some(size) => Wiring::pty(size)?,
        None => Wiring::pipes(stdin.is_some(), stdout.is_some(), stderr.is_some())?,
    };
    let pid = fork_exec(&plan, &wiring, procs)?;
    let Wiring {
        child,
        stdin: w_in,
        stdout: w_out,
        stderr: w_err,
        ..
    } = wiring;
    drop(child);
    let stdin_ctl = stdin.as_ref().and_then(|s| s.try_clone().ok());
    let mut outputs = 0;
    let pairs = [(stdout, w_out, "stdout"), (stderr, w_err, "stderr")];
    let started: Vec<_> = pairs
        .into_iter()
        .filter_map(|(stream, file, name)| Some((stream?, file?, name)))
        .collect();
    outputs += started.len();
    procs.attach_stdio(pid, stdin_ctl, outputs);
    for (stream, file, name) in started {
        stdio::spawn_output(Arc::clone(procs), pid, name, file, stream);
    }
    if let (Some(stream), Some(file)) = (stdin, w_in) {
        stdio::spawn_input(pid, file, stream, plan.terminal.is_some());
    }
    Ok(pid)
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if not), so
/// no socket or pipe of ours ever takes those numbers.
pub fn ensure_standard_fds() {
    fill_standard_fds(Path::new("/dev/null"));
}

/// Opens `path` on each of descriptors 0, 1 and 2 that is closed.
pub fn fill_standard_fds(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path);
        if let Ok(file) = opened {
            // Opened on the lowest free number, which is `fd`: keep it open.
            if file.as_raw_fd() == fd {
                std::mem::forget(file);
            }
        }
    }
}
