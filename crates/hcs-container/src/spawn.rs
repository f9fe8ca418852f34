//! Starting a process inside a running container.
//!
//! The monitor enters the container's pid namespace for its children only
//! (`setns(CLONE_NEWPID)` changes where the *next* fork lands), forks, and
//! steps back out; the child joins the cgroup and the other namespaces,
//! sets up its stdio, identity and directory, and execs. The child is
//! therefore the monitor's own child, so the monitor reaps it and learns
//! its exit code directly, and it is a member of the container's pid
//! namespace, so it dies with the container.
//!
//! The child reports back over a close-on-exec pipe: first its pid inside
//! the container, then, only if something failed, the stage and errno. EOF
//! right after the pid means the exec happened.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use hcs_errors::{HResult, HcsError, HcsResult};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;

use crate::security::{self, CapabilitySets, ProcessSecurity, OCI_PROCESS};
use crate::sys::{self, Forked};
use crate::users::Identity;

/// Console size (rows, columns) of a terminal whose size nobody gave.
pub const DEFAULT_CONSOLE_SIZE: (u16, u16) = (25, 80);

/// A process to start, in Linux terms.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// Arguments; `argv[0]` is searched on `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// Executable to run instead of searching `argv[0]` (Windows `ApplicationName`).
    pub executable: Option<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Working directory (default `/`).
    pub cwd: Option<String>,
    /// User (`name`, `uid`, `uid:gid`, ...; default root).
    pub user: Option<String>,
    /// Create a pipe for stdin.
    pub stdin: bool,
    /// Create a pipe for stdout.
    pub stdout: bool,
    /// Create a pipe for stderr.
    pub stderr: bool,
    /// Run on a pseudo-terminal of this size (rows, columns) instead of pipes.
    pub console: Option<(u16, u16)>,
    /// This is the OCI spec's own `process` of a container described by an
    /// OCI spec (its first `OciProcess`): its start runs the spec's
    /// startContainer and poststart hooks.
    pub container_process: bool,
    /// Capabilities, rlimits, seccomp, ... of an OCI process (see
    /// [`ProcessSecurity`]); `None` gives the [`DEFAULT_CAPABILITIES`].
    pub security: Option<Arc<ProcessSecurity>>,
}

impl ProcessSpec {
    /// The process of an OCI runtime-spec `process` object
    /// (`ProcessParameters.OciProcess`): args, env, cwd, `uid:gid`, terminal
    /// and its size, and the security part, with the container's seccomp
    /// profile `seccomp`. Errors name the JSON path from `OciProcess.`.
    /// Stdio pipes are left to the caller.
    pub fn from_oci(process: &Value, seccomp: Option<&LinuxSeccomp>) -> HcsResult<ProcessSpec> {
        let p = OCI_PROCESS;
        security::check_process_json(process, p)?;
        let oci: oci_spec::runtime::Process = serde_json::from_value(process.clone())
            .map_err(|e| HcsError::invalid_arg(format!("{p}: {e}")))?;
        let argv = oci.args().clone().unwrap_or_default();
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(HcsError::invalid_arg(format!(
                "{p}.args: missing or empty; its first element names the program to run"
            )));
        }
        let mut env = Vec::new();
        for (i, e) in oci.env().iter().flatten().enumerate() {
            let (k, v) = e
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    HcsError::invalid_arg(format!("{p}.env[{i}]: {e:?} is not NAME=value"))
                })?;
            env.push((k.to_string(), v.to_string()));
        }
        let cwd = oci
            .cwd()
            .to_str()
            .ok_or_else(|| HcsError::invalid_arg(format!("{p}.cwd: not UTF-8")))?
            .to_string();
        let user = oci.user();
        let console = oci.terminal().unwrap_or(false).then(|| {
            oci.console_size()
                .map(|b| {
                    let clamp = |n: u64| n.clamp(1, u16::MAX as u64) as u16;
                    (clamp(b.height()), clamp(b.width()))
                })
                .unwrap_or(DEFAULT_CONSOLE_SIZE)
        });
        Ok(ProcessSpec {
            argv,
            executable: None,
            env,
            cwd: Some(cwd).filter(|c| !c.is_empty()),
            user: Some(format!("{}:{}", user.uid(), user.gid())),
            stdin: false,
            stdout: false,
            stderr: false,
            console,
            container_process: false,
            security: Some(Arc::new(ProcessSecurity::from_oci(&oci, seccomp)?)),
        })
    }
}

/// A started process and the caller's ends of its stdio.
#[derive(Debug)]
pub struct SpawnedProcess {
    /// Pid on the host (the monitor's child).
    pub host_pid: i32,
    /// Pid inside the container.
    pub pid: u32,
    /// Write end of stdin.
    pub stdin: Option<OwnedFd>,
    /// Read end of stdout.
    pub stdout: Option<OwnedFd>,
    /// Read end of stderr.
    pub stderr: Option<OwnedFd>,
    /// The pty master, with a console.
    pub console: Option<OwnedFd>,
}

/// Descriptors of a running container's namespaces.
pub(crate) struct Namespaces {
    pub user: Option<OwnedFd>,
    pub ipc: OwnedFd,
    pub uts: OwnedFd,
    pub net: OwnedFd,
    pub pid: OwnedFd,
    pub mnt: OwnedFd,
    pub cgroup: OwnedFd,
}

impl Namespaces {
    /// Join all of them (in a child after fork: no allocation). The user
    /// namespace comes first, for the rights to join the others; the mount
    /// one last, as it also moves our root and cwd to the container's root.
    pub(crate) fn enter(&self) -> nix::Result<()> {
        let joins: [(Option<&OwnedFd>, CloneFlags); 6] = [
            (self.user.as_ref(), CloneFlags::CLONE_NEWUSER),
            (Some(&self.ipc), CloneFlags::CLONE_NEWIPC),
            (Some(&self.uts), CloneFlags::CLONE_NEWUTS),
            (Some(&self.net), CloneFlags::CLONE_NEWNET),
            (Some(&self.cgroup), CloneFlags::CLONE_NEWCGROUP),
            (Some(&self.mnt), CloneFlags::CLONE_NEWNS),
        ];
        for (fd, flag) in joins {
            if let Some(fd) = fd {
                nix::sched::setns(fd, flag)?;
            }
        }
        Ok(())
    }
    pub(crate) fn open(pid: i32, user: bool) -> HcsResult<Namespaces> {
        let open = |ns: &str| -> HcsResult<OwnedFd> {
            let path = format!("/proc/{pid}/ns/{ns}");
            std::fs::File::open(&path)
                .map(OwnedFd::from)
                .map_err(|e| HcsError::from_io(format!("opening {path}"), &e))
        };
        Ok(Namespaces {
            user: if user { Some(open("user")?) } else { None },
            ipc: open("ipc")?,
            uts: open("uts")?,
            net: open("net")?,
            pid: open("pid")?,
            mnt: open("mnt")?,
            cgroup: open("cgroup")?,
        })
    }
}

/// The capabilities a container's processes keep when their document names
/// none: Docker's and runc's default set without `CAP_MKNOD` (an HCS
/// container has no use for making nodes; its device rules would let it make
/// them but open none but its own). Everything else,
/// `CAP_SYS_ADMIN` first, is dropped from the bounding set as well, so no
/// process of the container can regain it.
pub const DEFAULT_CAPABILITIES: &[caps::Capability] = &[
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_NET_RAW,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETFCAP,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_AUDIT_WRITE,
];

/// [`DEFAULT_CAPABILITIES`] as a mask.
fn default_capabilities() -> security::CapMask {
    DEFAULT_CAPABILITIES
        .iter()
        .fold(0, |m, c| m | (1 << c.index()))
        & security::all_caps()
}

/// Stages the child reports failures of.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Stage {
    Cgroup = 1,
    Namespaces = 2,
    Stdio = 3,
    Identity = 4,
    Chdir = 5,
    Exec = 6,
    /// Detail: the index of the rlimit.
    Rlimit = 7,
    OomScoreAdj = 8,
    /// Detail: the capability.
    Bounding = 9,
    Capset = 10,
    /// Detail: the capability.
    Ambient = 11,
    NoNewPrivs = 12,
    Seccomp = 13,
    Personality = 14,
}

/// What the parent prepared for the child; all allocation happens before fork.
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    candidates: Vec<CString>,
    cwd: CString,
    identity: Identity,
    /// Supplementary groups.
    groups: Vec<nix::unistd::Gid>,
    /// The capability sets the process gets.
    caps: CapabilitySets,
    /// The highest capability number of the kernel.
    last_cap: u8,
    security: Option<Arc<ProcessSecurity>>,
    stdio: [OwnedFd; 3],
    console: bool,
    /// personality(2) domain to set, from the container's spec.
    personality: Option<u64>,
}

pub(crate) fn spawn(
    init_pid: i32,
    ns: &Namespaces,
    own_pid_ns: &OwnedFd,
    cgroup_procs: &[OwnedFd],
    spec: &ProcessSpec,
    personality: Option<u64>,
) -> HcsResult<SpawnedProcess> {
    if spec.argv.is_empty() && spec.executable.is_none() {
        return Err(HcsError::invalid_json(
            "ProcessParameters: no command to run",
        ));
    }
    let root = Path::new("/proc").join(init_pid.to_string()).join("root");
    let identity = crate::users::resolve(&root, spec.user.as_deref())?;
    let security = spec.security.clone();
    if let Some(sec) = &security {
        // Joining a user namespace grants every capability inside it;
        // otherwise the process can only get what the monitor holds.
        if ns.user.is_none() {
            sec.check_grantable(security::own_permitted()?)?;
        }
    }
    let groups: Vec<nix::unistd::Gid> = security
        .as_ref()
        .and_then(|s| s.additional_gids.as_ref())
        .unwrap_or(&identity.groups)
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    let caps = security.as_ref().map_or_else(
        || CapabilitySets::uniform(default_capabilities()),
        |s| s.capabilities,
    );

    let mut env: Vec<(String, String)> = spec.env.clone();
    let has = |env: &Vec<(String, String)>, k: &str| env.iter().any(|(n, _)| n == k);
    if !has(&env, "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    if !has(&env, "HOME") {
        env.push(("HOME".into(), identity.home.clone()));
    }
    if spec.console.is_some() && !has(&env, "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| {
            HcsError::invalid_json(format!("ProcessParameters: {what} contains a NUL byte"))
        })
    };
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a, "an argument"))
        .collect::<HcsResult<_>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}"), "the environment"))
        .collect::<HcsResult<_>>()?;
    let program = spec
        .executable
        .clone()
        .or_else(|| spec.argv.first().cloned())
        .unwrap_or_default();
    let candidates: Vec<CString> = if program.contains('/') {
        vec![cstr(&program, "the executable")?]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstr(&format!("{}/{program}", d.trim_end_matches('/')), "PATH"))
            .collect::<HcsResult<_>>()?
    };
    let cwd = cstr(
        spec.cwd.as_deref().filter(|c| !c.is_empty()).unwrap_or("/"),
        "WorkingDirectory",
    )?;

    // Stdio: the child's ends go in `stdio`, the caller's ends are returned.
    let io = |what: &str, e: nix::errno::Errno| HcsError::from_io(what, &std::io::Error::from(e));
    // Not the host's /dev/null: the process could change that node's owner
    // and mode through /proc/self/fd/N.
    let devnull = || -> HcsResult<OwnedFd> {
        sys::private_null().map_err(|e| HcsError::from_io("creating a null device", &e))
    };
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe", e));
    let (mut out_stdin, mut out_stdout, mut out_stderr, mut console) = (None, None, None, None);
    let stdio: [OwnedFd; 3] = if let Some((rows, cols)) = spec.console {
        let master = open_console_master(&root)?;
        let _ = sys::set_window_size(master.as_fd(), rows, cols);
        let slave = sys::pty_peer(master.as_fd())
            .map_err(|e| HcsError::from_io("opening the console's terminal", &e))?;
        let dup = |f: &OwnedFd| {
            f.try_clone()
                .map_err(|e| HcsError::from_io("duplicating the console", &e))
        };
        out_stdin = Some(dup(&master)?);
        out_stdout = Some(dup(&master)?);
        console = Some(master);
        [dup(&slave)?, dup(&slave)?, slave]
    } else {
        let i = if spec.stdin {
            let (r, w) = pipe()?;
            out_stdin = Some(w);
            r
        } else {
            devnull()?
        };
        let o = if spec.stdout {
            let (r, w) = pipe()?;
            out_stdout = Some(r);
            w
        } else {
            devnull()?
        };
        let e = if spec.stderr {
            let (r, w) = pipe()?;
            out_stderr = Some(r);
            w
        } else {
            devnull()?
        };
        [i, o, e]
    };
    let prepared = Prepared {
        argv,
        envp,
        candidates,
        cwd,
        identity,
        groups,
        caps,
        last_cap: security::last_cap(),
        security,
        stdio,
        console: console.is_some(),
        personality,
    };
    let (report_r, report_w) = pipe()?;

    nix::sched::setns(&ns.pid, CloneFlags::CLONE_NEWPID)
        .map_err(|e| io("entering the container's pid namespace", e))?;
    let forked = sys::fork();
    // Step back out before anything else can fork (the monitor is single-threaded).
    let restored = nix::sched::setns(own_pid_ns, CloneFlags::CLONE_NEWPID);
    match forked {
        Err(e) => Err(HcsError::from_io("fork", &e)),
        Ok(Forked::Child) => {
            drop(report_r);
            child(&prepared, ns, cgroup_procs, report_w)
        }
        Ok(Forked::Parent(host_pid)) => {
            if let Err(e) = restored {
                // Should never happen; if it did, later containers would nest.
                tracing::error!("leaving the container's pid namespace: {e}");
            }
            drop(report_w);
            drop(prepared);
            let mut bytes = Vec::new();
            let _ = std::fs::File::from(report_r).read_to_end(&mut bytes);
            let pid = bytes
                .get(0..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            if let Some(rest) = bytes.get(4..13) {
                let stage = rest[0];
                let errno = i32::from_ne_bytes([rest[1], rest[2], rest[3], rest[4]]);
                let detail = u32::from_ne_bytes([rest[5], rest[6], rest[7], rest[8]]);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(host_pid), None);
                return Err(spawn_error(stage, errno, detail, &program, &path_var, spec));
            }
            let Some(pid) = pid else {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(host_pid), None);
                return Err(HcsError::new(
                    HResult::E_FAIL,
                    "the new process died before it could exec",
                ));
            };
            Ok(SpawnedProcess {
                host_pid,
                pid,
                stdin: out_stdin,
                stdout: out_stdout,
                stderr: out_stderr,
                console,
            })
        }
    }
}

fn spawn_error(
    stage: u8,
    errno: i32,
    detail: u32,
    program: &str,
    path: &str,
    spec: &ProcessSpec,
) -> HcsError {
    let err = std::io::Error::from_raw_os_error(errno);
    let hr = HResult::from_errno(errno);
    let oci = spec.security.as_ref().is_some_and(|s| s.from_oci);
    let (user_field, cwd_field) = if oci {
        ("OciProcess.user", "OciProcess.cwd")
    } else {
        (
            "ProcessParameters.User",
            "ProcessParameters.WorkingDirectory",
        )
    };
    let p = OCI_PROCESS;
    // Plain processes get the default capabilities, not an OciProcess's.
    let caps_field = if oci {
        "OciProcess.capabilities"
    } else {
        "the default capabilities"
    };
    let cap = || security::capability_name(detail as u8);
    let msg = match stage {
        s if s == Stage::Cgroup as u8 => format!("joining the container's cgroup: {err}"),
        s if s == Stage::Namespaces as u8 => format!("entering the container's namespaces: {err}"),
        s if s == Stage::Stdio as u8 => format!("setting up stdio: {err}"),
        s if s == Stage::Identity as u8 => format!(
            "{user_field} {:?}: switching user: {err}",
            spec.user.as_deref().unwrap_or("root")
        ),
        s if s == Stage::Chdir as u8 => format!(
            "{cwd_field} {:?}: {err}",
            spec.cwd.as_deref().unwrap_or("/")
        ),
        s if s == Stage::Rlimit as u8 => rlimit_error(spec, detail as usize, errno, &err),
        s if s == Stage::OomScoreAdj as u8 => format!(
            "{p}.oomScoreAdj {}: writing /proc/self/oom_score_adj: {err}{}",
            spec.security
                .as_ref()
                .and_then(|s| s.oom_score_adj)
                .unwrap_or_default(),
            if errno == libc::EACCES || errno == libc::EPERM {
                format!(
                    " (lowering it below the runtime's own needs CAP_SYS_RESOURCE{})",
                    lacking_sys_resource()
                )
            } else {
                String::new()
            }
        ),
        s if s == Stage::Bounding as u8 => format!(
            "{caps_field}: dropping {} from the bounding set: {err}",
            cap()
        ),
        s if s == Stage::Capset as u8 => {
            format!("{caps_field}: setting the effective, permitted and inheritable sets: {err}")
        }
        s if s == Stage::Ambient as u8 => {
            format!("{p}.capabilities.ambient: raising {}: {err}", cap())
        }
        s if s == Stage::NoNewPrivs as u8 => format!("{p}.noNewPrivileges: {err}"),
        s if s == Stage::Seccomp as u8 => format!(
            "{}: installing the seccomp filter: {err}",
            security::OCI_SECCOMP
        ),
        s if s == Stage::Personality as u8 => {
            format!("Container.OciSpecification.linux.personality: {err}")
        }
        _ if errno == libc::ENOENT && !program.contains('/') => {
            format!("executable {program:?} was not found in the container (searched PATH={path})")
        }
        _ if errno == libc::ENOENT => {
            format!("executable {program:?} does not exist in the container")
        }
        _ if errno == libc::EACCES => format!("executing {program:?}: permission denied"),
        _ if errno == libc::ENOEXEC => format!("executing {program:?}: not an executable format"),
        _ => format!("executing {program:?}: {err}"),
    };
    HcsError::new(hr, msg)
}

/// ", which this host does not grant" when the monitor lacks CAP_SYS_RESOURCE.
fn lacking_sys_resource() -> &'static str {
    let bit = 1u64 << caps::Capability::CAP_SYS_RESOURCE.index();
    match security::own_permitted() {
        Ok(own) if own & bit == 0 => ", which this host does not grant to the runtime",
        _ => "",
    }
}

/// Why an rlimit could not be set, with what the runtime itself may set.
fn rlimit_error(spec: &ProcessSpec, i: usize, errno: i32, err: &std::io::Error) -> String {
    let Some(r) = spec.security.as_ref().and_then(|s| s.rlimits.get(i)) else {
        return format!("{OCI_PROCESS}.rlimits[{i}]: {err}");
    };
    let mut msg = format!(
        "{OCI_PROCESS}.rlimits[{i}]: setting {} to soft {} hard {}: {err}",
        r.name, r.soft, r.hard
    );
    if errno == libc::EPERM {
        let mut own = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit64 on ourselves writes our current limit into `own`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                r.resource as libc::c_long,
                std::ptr::null::<libc::rlimit64>(),
                &mut own as *mut libc::rlimit64,
            )
        };
        let own = if rc == 0 {
            format!(" ({})", own.rlim_max)
        } else {
            String::new()
        };
        msg.push_str(&format!(
            " (raising a hard limit above the runtime's own{own} needs CAP_SYS_RESOURCE{})",
            lacking_sys_resource()
        ));
    }
    msg
}

fn open_console_master(root: &Path) -> HcsResult<OwnedFd> {
    // The container's own devpts instance, so the terminal exists inside it.
    let container_ptmx = root.join("dev/pts/ptmx");
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(p)
            .map(OwnedFd::from)
    };
    use std::os::unix::fs::OpenOptionsExt;
    let master = open(&container_ptmx)
        .or_else(|_| open(Path::new("/dev/ptmx")))
        .map_err(|e| HcsError::from_io("opening a pseudo-terminal", &e))?;
    sys::pty_unlock(master.as_fd())
        .map_err(|e| HcsError::from_io("unlocking the pseudo-terminal", &e))?;
    Ok(master)
}

/// In the forked child: never returns.
fn child(p: &Prepared, ns: &Namespaces, cgroup_procs: &[OwnedFd], report: OwnedFd) -> ! {
    let fail_with = |stage: Stage, e: Errno, detail: u32| -> ! {
        let mut rec = [0u8; 9];
        rec[0] = stage as u8;
        rec[1..5].copy_from_slice(&(e as i32).to_ne_bytes());
        rec[5..9].copy_from_slice(&detail.to_ne_bytes());
        let _ = nix::unistd::write(&report, &rec);
        sys::exit_now(127)
    };
    let fail = |stage: Stage, e: Errno| -> ! { fail_with(stage, e, 0) };
    // Our pid as the container sees it (we were forked into its pid
    // namespace), first: the parent reads any failure record after it.
    let _ = nix::unistd::write(
        &report,
        &(nix::unistd::getpid().as_raw() as u32).to_ne_bytes(),
    );
    for fd in cgroup_procs {
        if let Err(e) = nix::unistd::write(fd, b"0") {
            fail(Stage::Cgroup, e);
        }
    }
    let sec = p.security.as_deref();
    // runc's order: rlimits and oom_score_adj first, here still with the
    // host's /proc and outside any user namespace.
    if let Some(sec) = sec {
        if let Err((i, e)) = sec.set_rlimits() {
            fail_with(Stage::Rlimit, e, i as u32);
        }
        if let Err(e) = sec.write_oom_score_adj() {
            fail(Stage::OomScoreAdj, e);
        }
    }
    if let Err(e) = ns.enter() {
        fail(Stage::Namespaces, e);
    }
    let _ = nix::unistd::setsid();
    for (i, fd) in p.stdio.iter().enumerate() {
        if let Err(e) = sys::dup_onto(fd.as_fd(), i as RawFd) {
            fail(
                Stage::Stdio,
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
            );
        }
    }
    if p.console {
        if let Err(e) = sys::set_controlling_tty(0) {
            fail(
                Stage::Stdio,
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            );
        }
        // The terminal belongs to the process's user, its group stays the
        // devpts one (tty), as runc leaves it.
        // SAFETY: descriptor 0 is the terminal, dup'ed onto it just above
        // and open for the rest of this process.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        if let Err(e) = nix::unistd::fchown(stdin, Some(p.identity.uid.into()), None) {
            fail(Stage::Stdio, e);
        }
    }
    if let Some(persona) = p.personality {
        // SAFETY: personality(2) takes a plain number and changes only
        // this process's execution domain.
        if unsafe { libc::personality(persona as libc::c_ulong) } == -1 {
            fail(Stage::Personality, Errno::last());
        }
    }
    // The bounding set first, while CAP_SETPCAP is still effective.
    if let Err((cap, e)) = security::drop_bounding(p.caps.bounding, p.last_cap) {
        fail_with(Stage::Bounding, e, cap as u32);
    }
    let seccomp = sec.and_then(|s| s.seccomp.as_ref());
    let nnp = sec.is_some_and(|s| s.no_new_privileges);
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
    // now, before the capabilities go (as runc does).
    if let (Some(filter), false) = (seccomp, nnp) {
        if let Err(e) = filter.install() {
            fail(Stage::Seccomp, e);
        }
    }
    if sec.is_some() {
        // Keep the permitted set through setuid; capset below sets exactly
        // the requested sets.
        if let Err(e) = security::set_keep_caps(true) {
            fail(Stage::Identity, e);
        }
    } else if let Err(e) = security::capset(&p.caps) {
        // Only the default capabilities; setuid to a non-root user below
        // clears what is left of them, as for any exec.
        fail(Stage::Identity, e);
    }
    let id = &p.identity;
    if let Err(e) = nix::unistd::setgroups(&p.groups)
        .and_then(|_| nix::unistd::setresgid(id.gid.into(), id.gid.into(), id.gid.into()))
        .and_then(|_| nix::unistd::setresuid(id.uid.into(), id.uid.into(), id.uid.into()))
    {
        fail(Stage::Identity, e);
    }
    if let Err(e) = nix::unistd::chdir(p.cwd.as_c_str()) {
        fail(Stage::Chdir, e);
    }
    if let Some(sec) = sec {
        let _ = security::set_keep_caps(false);
        if let Err(e) = security::capset(&p.caps) {
            fail(Stage::Capset, e);
        }
        if let Err((cap, e)) = security::raise_ambient(p.caps.ambient, p.last_cap) {
            fail_with(Stage::Ambient, e, cap as u32);
        }
        if let Some(mask) = sec.umask {
            security::set_umask(mask);
        }
        if nnp {
            if let Err(e) = security::set_no_new_privs() {
                fail(Stage::NoNewPrivs, e);
            }
        }
    }
    // The monitor blocks and ignores signals for itself; the process starts clean.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    for sig in nix::sys::signal::Signal::iterator() {
        if sig != nix::sys::signal::Signal::SIGKILL && sig != nix::sys::signal::Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    sys::cloexec_from(3);
    // With no_new_privs the filter goes on last, so it sees as few of our
    // own system calls as possible.
    if let (Some(filter), true) = (seccomp, nnp) {
        if let Err(e) = filter.install() {
            fail(Stage::Seccomp, e);
        }
    }
    let mut last = nix::errno::Errno::ENOENT;
    for path in &p.candidates {
        let Err(e) = nix::unistd::execve(path, &p.argv, &p.envp);
        {
            // Like execvp: a permission problem beats "not found" elsewhere on PATH.
            if last != nix::errno::Errno::EACCES || e != nix::errno::Errno::ENOENT {
                last = e;
            }
        }
    }
    fail(Stage::Exec, last)
}

/// The raw descriptor numbers a child must keep when it closes the rest.
#[allow(dead_code)]
pub(crate) fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(|f| f.as_raw_fd()).collect()
}
