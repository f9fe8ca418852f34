//! The container's init: PID 1 of its pid namespace.
//!
//! The monitor clones it straight into new namespaces. It builds the root
//! filesystem, reports success or the exact failure to the monitor over a
//! pipe, and then lives as a minimal init: it reaps orphans, and on SIGTERM
//! (a graceful shutdown) passes SIGTERM to every process of the container
//! and exits once it is alone. It dies with the monitor (PR_SET_PDEATHSIG),
//! and the kernel then kills everything else in the namespace, so a killed
//! monitor never leaves a container running unmanaged.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use hcs_errors::{HResult, HcsError, HcsResult};

use crate::rootfs;
use crate::spec::{ContainerSpec, IdMap, Network};
use crate::sys::{self, Forked};

/// How long the monitor waits for the init to build the root.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Clone the init into new namespaces and wait until it has built the root.
/// `cgroup_procs` are open `cgroup.procs` files the child joins first;
/// `netns` is the network namespace to join, if not a new one.
pub(crate) fn start(
    spec: &ContainerSpec,
    rundir: &Path,
    cgroup_procs: &[OwnedFd],
    netns: Option<&OwnedFd>,
    joined: &[(nix::sched::CloneFlags, OwnedFd)],
) -> HcsResult<i32> {
    // The init's stdio: a null device of its own, not the monitor's (the
    // host's /dev/null, or a log), which the container's root could chmod,
    // chown or write through /proc/1/fd/N.
    let null = sys::private_null()
        .map_err(|e| HcsError::from_io("creating the init's null device", &e))?;
    let mounts = rootfs::build_mounts(spec, rundir).map_err(|m| {
        HcsError::new(
            HResult::HCS_E_TERMINATED_DURING_START,
            format!("the container could not start: {m}"),
        )
    })?;
    let io = |what: &str, e: nix::errno::Errno| HcsError::from_io(what, &std::io::Error::from(e));
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe", e))?;
    let (st_r, st_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("creating a pipe", e))?;
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if spec.namespaces.uts {
        flags |= libc::CLONE_NEWUTS;
    }
    if spec.namespaces.ipc {
        flags |= libc::CLONE_NEWIPC;
    }
    if spec.network == Network::New {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.user_namespace.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    let parent_pid = std::process::id() as i32;
    // The child starts in the mount point (see rootfs::setup); the monitor
    // is single-threaded, so changing its directory for the clone is safe.
    let home = std::fs::File::open(".")
        .map_err(|e| HcsError::from_io("opening the working directory", &e))?;
    std::env::set_current_dir(rundir.join("rootfs"))
        .map_err(|e| HcsError::from_io("entering the mount point", &e))?;
    let forked = sys::clone_fork(flags);
    if !matches!(forked, Ok(Forked::Child)) {
        let _ = nix::unistd::fchdir(&home);
    }
    drop(home);
    match forked
        .map_err(|e| HcsError::from_io("creating the container's namespaces (clone)", &e))?
    {
        Forked::Child => {
            drop(go_w);
            drop(st_r);
            let mut keep: Vec<RawFd> = vec![go_r.as_raw_fd(), st_w.as_raw_fd()];
            keep.extend(cgroup_procs.iter().map(|f| f.as_raw_fd()));
            keep.extend(netns.map(|f| f.as_raw_fd()));
            keep.extend(joined.iter().map(|(_, f)| f.as_raw_fd()));
            keep.extend(mounts.raw_fds());
            keep.push(null.as_raw_fd());
            sys::close_all_except(3, &keep);
            let code = child(
                spec,
                ChildFds { go_r, st_w, null },
                cgroup_procs,
                Joins { netns, joined },
                &mounts,
                parent_pid,
            );
            sys::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(go_r);
            drop(st_w);
            let result = parent(spec, pid, go_w, st_r);
            if result.is_err() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            result.map(|()| pid)
        }
    }
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

fn parent(spec: &ContainerSpec, pid: i32, go_w: OwnedFd, st_r: OwnedFd) -> HcsResult<()> {
    if let Some((uids, gids)) = &spec.user_namespace {
        for (file, text) in [("uid_map", map_text(uids)), ("gid_map", map_text(gids))] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, text.as_bytes()).map_err(|e| {
                HcsError::from_io(
                    format!("writing {path} ({})", text.trim().replace('\n', "; ")),
                    &e,
                )
            })?;
        }
    }
    let mut go = std::fs::File::from(go_w);
    go.write_all(b"G")
        .map_err(|e| HcsError::from_io("starting the container's init", &e))?;
    drop(go);

    // Wait for "OK" or an error message, bounded.
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&st_r),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout = nix::poll::PollTimeout::try_from(SETUP_TIMEOUT.as_millis() as i32)
        .unwrap_or(nix::poll::PollTimeout::MAX);
    match nix::poll::poll(&mut fds, timeout) {
        Ok(0) => {
            return Err(HcsError::new(
                HResult::HCS_E_CONNECTION_TIMEOUT,
                format!(
                "the container's init did not finish setting up its root within {SETUP_TIMEOUT:?}"
            ),
            ))
        }
        Ok(_) => {}
        Err(e) => {
            return Err(HcsError::from_io(
                "waiting for the container's init",
                &std::io::Error::from(e),
            ))
        }
    }
    let mut msg = Vec::new();
    let _ = std::fs::File::from(st_r).read_to_end(&mut msg);
    match msg.split_first() {
        Some((b'K', _)) => Ok(()),
        Some((b'E', text)) => Err(HcsError::new(
            HResult::HCS_E_TERMINATED_DURING_START,
            format!(
                "the container could not start: {}",
                String::from_utf8_lossy(text)
            ),
        )),
        _ => Err(HcsError::new(
            HResult::HCS_E_TERMINATED_DURING_START,
            "the container's init exited while setting up its root",
        )),
    }
}

fn report(st_w: &OwnedFd, msg: &[u8]) {
    let _ = nix::unistd::write(st_w, msg);
}

/// The init child's own descriptors: the go pipe, the status pipe and its
/// null device.
struct ChildFds {
    go_r: OwnedFd,
    st_w: OwnedFd,
    null: OwnedFd,
}

/// Existing namespaces the init joins.
struct Joins<'a> {
    netns: Option<&'a OwnedFd>,
    /// IPC and UTS namespaces, with their kinds.
    joined: &'a [(nix::sched::CloneFlags, OwnedFd)],
}

/// The init child, before it becomes init. Returns the exit code on failure;
/// never returns once running as init.
fn child(
    spec: &ContainerSpec,
    fds: ChildFds,
    cgroup_procs: &[OwnedFd],
    joins: Joins<'_>,
    mounts: &rootfs::DetachedMounts,
    parent_pid: i32,
) -> i32 {
    let Joins { netns, joined } = joins;
    let ChildFds { go_r, st_w, null } = fds;
    let fail = |msg: String| {
        report(&st_w, format!("E{msg}").as_bytes());
        1
    };
    for target in 0..3 {
        if let Err(e) = sys::dup_onto(std::os::fd::AsFd::as_fd(&null), target) {
            return fail(format!("replacing the init's stdio: {e}"));
        }
    }
    drop(null);
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
    let _ = parent_pid;
    for fd in cgroup_procs {
        if let Err(e) = nix::unistd::write(fd, b"0") {
            return fail(format!("joining the container's cgroup: {e}"));
        }
    }
    // An OCI cgroup mount binds the container's cgroups from the host's
    // hierarchies: find them while /proc/self/cgroup still shows host paths.
    let cgroups = if spec
        .mounts
        .iter()
        .any(|m| m.kind == crate::spec::MountKind::Cgroup)
    {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("reading {p}: {e}"));
        match read("/proc/self/mountinfo").and_then(|mi| {
            let own = read("/proc/self/cgroup")?;
            hcs_cgroups::Hierarchies::from_mountinfo(&mi, &own)
                .map_err(|e| format!("finding the cgroup hierarchies: {e}"))
        }) {
            Ok(h) => Some(h),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    // A cgroup namespace created after joining is rooted at the container's cgroup.
    if spec.namespaces.cgroup {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP) {
            return fail(format!("creating the cgroup namespace: {e}"));
        }
    }
    let mut go = [0u8; 1];
    match nix::unistd::read(&go_r, &mut go) {
        Ok(1) => {}
        // The monitor died or gave up before letting us go.
        _ => return 1,
    }
    drop(go_r);
    if spec.user_namespace.is_some() {
        if let Err(e) = nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .and_then(|_| nix::unistd::setresuid(0.into(), 0.into(), 0.into()))
        {
            return fail(format!("becoming root in the user namespace: {e}"));
        }
    }
    if let Some(ns) = netns {
        if let Err(e) = nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET) {
            return fail(format!("joining the network namespace: {e}"));
        }
    }
    for (kind, ns) in joined {
        if let Err(e) = nix::sched::setns(ns, *kind) {
            return fail(format!("joining the {kind:?} namespace: {e}"));
        }
    }
    if spec.network == Network::New {
        if let Err(e) = sys::loopback_up() {
            return fail(format!("bringing up loopback: {e}"));
        }
    }
    if let Err(msg) = rootfs::setup(
        spec,
        spec.user_namespace.is_some(),
        mounts,
        cgroups.as_ref(),
    ) {
        return fail(msg);
    }
    let _ = nix::unistd::setsid();
    // Nothing of the monitor's stays open in the container's pid 1 (the
    // cgroup files, the namespace and mount descriptors): its root could
    // reach them through /proc/1/fd. Only the private stdio remains, and
    // the status pipe until the monitor reads its end (so by the time the
    // start is reported, the rest is closed).
    sys::close_all_except(3, &[st_w.as_raw_fd()]);
    report(&st_w, b"K");
    drop(st_w);
    run_init()
}

/// Signals init reacts to.
fn init_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal::*;
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPWR, SIGUSR1, SIGUSR2, SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

fn run_init() -> ! {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"hcs-init".as_ptr(), 0, 0, 0);
    }
    let all = nix::sys::signal::SigSet::all();
    let _ = all.thread_set_mask();
    let set = init_signals();
    let mut shutting_down = false;
    loop {
        let sig = if shutting_down {
            timed_wait(&set, Duration::from_millis(10))
        } else {
            timed_wait(&set, Duration::from_secs(3600))
        };
        match sig {
            Some(libc::SIGTERM) | Some(libc::SIGINT) | Some(libc::SIGPWR) if !shutting_down => {
                shutting_down = true;
                // kill(-1) in a pid namespace reaches every process of it but init.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(-1),
                    nix::sys::signal::SIGTERM,
                );
            }
            _ => {}
        }
        reap();
        if shutting_down && alone() {
            sys::exit_now(0);
        }
    }
}

fn timed_wait(set: &nix::sys::signal::SigSet, d: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: sigtimedwait reads the set and the timeout and may write the
    // (optional, here null) siginfo; both pointers are valid for the call.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    (rc > 0).then_some(rc)
}

fn reap() {
    loop {
        match nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// True when init is the only process left in the namespace.
fn alone() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    !dir.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name != "1" && name.bytes().all(|b| b.is_ascii_digit())
    })
}
