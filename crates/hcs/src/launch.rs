//! Starting a compute system's monitor.
//!
//! The monitor is a separate executable, `hcs-monitor`, found (in order) at
//! `$HCS_MONITOR`, next to the current executable (or one directory up, for
//! test binaries in `target/*/deps`), in `/usr/local/libexec/hcs/`, or on
//! `PATH`. It gets one end of a socket pair as its stdin: that is the
//! creating handle's connection and carries the Create request.
//!
//! Passing the socket as stdin (rather than an inherited descriptor number)
//! lets `std::process::Command` use `posix_spawn`, and no other child forked
//! concurrently by this program can inherit the socket by accident, which
//! would keep the handle "open" after its owner closed it.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hcs_errors::{HResult, HcsError, HcsResult};

/// Name of the monitor executable.
pub const MONITOR_EXE: &str = "hcs-monitor";

/// Where the monitor executable is.
pub(crate) fn monitor_path() -> HcsResult<PathBuf> {
    if let Some(p) = std::env::var_os("HCS_MONITOR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(MONITOR_EXE));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(MONITOR_EXE));
            }
        }
    }
    candidates.push(PathBuf::from("/usr/local/libexec/hcs").join(MONITOR_EXE));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(MONITOR_EXE)));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        HcsError::new(
            HResult::HCS_E_SERVICE_NOT_AVAILABLE,
            format!(
                "the compute system monitor `{MONITOR_EXE}` was not found next to this program, \
                 in /usr/local/libexec/hcs or on PATH; set HCS_MONITOR to its path"
            ),
        )
    })
}

/// Spawn a monitor and return our end of its socket pair.
pub(crate) fn spawn_monitor() -> HcsResult<OwnedFd> {
    let exe = monitor_path()?;
    let (ours, theirs) = hcs_protocol::wire::socketpair()
        .map_err(|e| HcsError::from_io("creating the monitor's socket pair", &e))?;
    let child = Command::new(&exe)
        .arg("--bootstrap-stdin")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| HcsError::from_io(format!("starting {}", exe.display()), &e))?;
    reaper::watch(child);
    Ok(ours)
}

/// How long a client waits for `hcs-monitor reap`. Destroying a cgroup
/// gives up after 5 s of killing, so this is only a guard against a hang.
const REAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Have a monitor in reap mode clean up after the dead monitors of
/// `namespace` (or of `<namespace>/<id>`) and wait for it. The client itself
/// never touches what a dead monitor's record names.
pub(crate) fn reap(namespace: &str, id: Option<&str>) -> HcsResult<()> {
    let exe = monitor_path()?;
    let mut cmd = Command::new(&exe);
    cmd.arg("reap").arg(namespace);
    if let Some(id) = id {
        cmd.arg(id);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| HcsError::from_io(format!("starting {} reap", exe.display()), &e))?;
    let deadline = std::time::Instant::now() + REAP_TIMEOUT;
    let fd = reaper::pidfd_open(child.id());
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(HcsError::new(
                    HResult::E_FAIL,
                    format!("{} reap {namespace}: {status}", exe.display()),
                ))
            }
            Ok(None) => {}
            Err(e) => return Err(HcsError::from_io("waiting for hcs-monitor reap", &e)),
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // Leave it to finish on its own; the reaper thread collects it.
            reaper::watch(child);
            return Err(HcsError::new(
                HResult::HCS_E_CONNECTION_TIMEOUT,
                format!(
                    "{} reap {namespace} did not finish within {REAP_TIMEOUT:?}",
                    exe.display()
                ),
            ));
        }
        match &fd {
            Some(fd) => {
                let mut pfd = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(fd),
                    nix::poll::PollFlags::POLLIN,
                )];
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms));
            }
            // No pidfds: poll the child's status now and then.
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// One library thread reaps every monitor this process started, whenever
/// it exits, so a long-lived client collects no zombies and keeps no thread
/// per compute system. It waits on pidfds with `poll`.
mod reaper {
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::process::Child;
    use std::sync::{Mutex, OnceLock};

    struct Reaper {
        children: Mutex<Vec<(Child, OwnedFd)>>,
        wake: OwnedFd,
    }

    pub(super) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: a non-negative result is a descriptor nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// The reaper, started on first use; `None` if it cannot run here.
    fn reaper() -> Option<&'static Reaper> {
        static REAPER: OnceLock<Option<&'static Reaper>> = OnceLock::new();
        *REAPER.get_or_init(|| {
            let wake = nix::sys::eventfd::EventFd::from_value_and_flags(
                0,
                nix::sys::eventfd::EfdFlags::EFD_CLOEXEC
                    | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
            )
            .ok()?;
            // Lives for the rest of the process, like its thread.
            let r: &'static Reaper = Box::leak(Box::new(Reaper {
                children: Mutex::new(Vec::new()),
                wake: OwnedFd::from(wake),
            }));
            std::thread::Builder::new()
                .name("hcs-reaper".into())
                .stack_size(128 * 1024)
                .spawn(move || serve(r))
                .ok()?;
            Some(r)
        })
    }

    /// Reap `child` when it exits.
    pub(super) fn watch(mut child: Child) {
        let (Some(r), Some(fd)) = (reaper(), pidfd_open(child.id())) else {
            // No pidfds or no thread: fall back to a thread of its own.
            let _ = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _ = child.wait();
                });
            return;
        };
        crate::callback::lock(&r.children).push((child, fd));
        let _ = nix::unistd::write(&r.wake, &1u64.to_ne_bytes());
    }

    fn serve(r: &'static Reaper) {
        loop {
            let raws: Vec<i32> = crate::callback::lock(&r.children)
                .iter()
                .map(|(_, f)| f.as_raw_fd())
                .collect();
            let mut fds: Vec<libc::pollfd> = std::iter::once(r.wake.as_raw_fd())
                .chain(raws)
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of pollfd of the length we pass.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(r.wake.as_fd(), &mut buf);
            }
            let exited: Vec<i32> = fds[1..]
                .iter()
                .filter(|p| p.revents != 0)
                .map(|p| p.fd)
                .collect();
            if !exited.is_empty() {
                let mut children = crate::callback::lock(&r.children);
                children.retain_mut(|(child, fd)| {
                    if exited.contains(&fd.as_raw_fd()) {
                        let _ = child.wait();
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
}
