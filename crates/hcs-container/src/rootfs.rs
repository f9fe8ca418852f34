//! The container's filesystem view, built by its init process inside the
//! new mount namespace (so nothing of it is visible on the host, and all of
//! it vanishes with the namespace).
//!
//! Paths inside the root are resolved with `openat2(RESOLVE_IN_ROOT)` and
//! mounted through `/proc/self/fd/N`, so a symlink in an image cannot make a
//! mount land outside the container's root.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::spec::{ContainerSpec, Mapping, RootFs};
use crate::sys;

/// Error text sent back to the monitor.
pub(crate) type SetupResult<T> = Result<T, String>;

fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> SetupResult<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// What a path inside the root must be when it does not exist yet.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dir,
    File,
}

/// Open (creating what is missing) `path` inside `root`, resolving symlinks as
/// if `root` were `/`. Returns an `O_PATH` descriptor.
fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, kind: Kind) -> io::Result<OwnedFd> {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let opath = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    let mut prefix = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        prefix.push(comp);
        let c = CString::new(prefix.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match sys::openat2_in_root(root, &c, opath, 0) {
            Ok(fd) => {
                if i + 1 == comps.len() {
                    return Ok(fd);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Create the missing component in its (safely resolved) parent.
                let parent = match prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(p) => {
                        let pc = CString::new(p.as_os_str().as_bytes())
                            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                        sys::openat2_in_root(
                            root,
                            &pc,
                            (libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
                            0,
                        )?
                    }
                    None => sys::openat2_in_root(
                        root,
                        c".",
                        (libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
                        0,
                    )?,
                };
                let name = CString::new(comp.as_os_str().as_bytes())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let last = i + 1 == comps.len();
                if last && kind == Kind::File {
                    let f = nix::fcntl::openat(
                        parent.as_fd(),
                        name.as_c_str(),
                        nix::fcntl::OFlag::O_CREAT
                            | nix::fcntl::OFlag::O_WRONLY
                            | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::from_bits_truncate(0o644),
                    );
                    match f {
                        Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    match nix::sys::stat::mkdirat(
                        parent.as_fd(),
                        name.as_c_str(),
                        nix::sys::stat::Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let fd = sys::openat2_in_root(root, &c, opath, 0)?;
                if last {
                    return Ok(fd);
                }
            }
            Err(e) => return Err(e),
        }
    }
    // `path` was "/": the root itself.
    sys::openat2_in_root(root, c".", opath, 0)
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mount_at(
    root: BorrowedFd<'_>,
    target: &str,
    kind: Kind,
    source: Option<&Path>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> SetupResult<()> {
    let fd = ctx(ensure_in_root(root, Path::new(target), kind), || {
        format!("creating {target} in the container")
    })?;
    ctx(mount(source, &fd_path(&fd), fstype, flags, data), || {
        format!(
            "mounting {} on {target}",
            fstype.or(source.and_then(|s| s.to_str())).unwrap_or("?")
        )
    })
}

/// Escape a path for an overlayfs option list.
fn overlay_escape(p: &Path) -> String {
    let mut s = String::new();
    for ch in p.to_string_lossy().chars() {
        if matches!(ch, ':' | ',' | '\\') {
            s.push('\\');
        }
        s.push(ch);
    }
    s
}

/// Mounts the monitor builds with the host's credentials before the init
/// exists, for the init to attach: the root and every mapping, in order.
pub(crate) struct DetachedMounts {
    pub root: OwnedFd,
    pub mappings: Vec<(Mapping, OwnedFd)>,
    /// The generated resolv.conf, when DNS suffixes were given.
    pub resolv: Option<OwnedFd>,
}

impl DetachedMounts {
    /// Their raw descriptors (the init must keep them open).
    pub(crate) fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        std::iter::once(self.root.as_raw_fd())
            .chain(self.mappings.iter().map(|(_, f)| f.as_raw_fd()))
            .chain(self.resolv.as_ref().map(|f| f.as_raw_fd()))
            .collect()
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Build the container's root (an overlay of its layers, or its directory)
/// and its bind mounts as detached mounts.
pub(crate) fn build_mounts(spec: &ContainerSpec, rundir: &Path) -> SetupResult<DetachedMounts> {
    let root = match &spec.rootfs {
        RootFs::Overlay { lower, upper, work } => {
            let fs = ctx(sys::FsContext::open(c"overlay"), || {
                "opening an overlay file system".to_string()
            })?;
            // One `lowerdir+` per layer: no 4 KiB limit on the option string
            // and no escaping of ':' or ',' in paths (Linux 6.5+); older
            // kernels get the classic colon-separated list.
            let mut layers_done = true;
            for l in lower {
                if let Err(e) = fs.set(c"lowerdir+", &ctx(cpath(l), || "layer path".into())?) {
                    if e.raw_os_error() == Some(libc::EINVAL) && l == &lower[0] {
                        layers_done = false;
                        break;
                    }
                    return Err(format!("overlay layer {}: {e}", l.display()));
                }
            }
            if !layers_done {
                let joined: Vec<String> = lower.iter().map(|p| overlay_escape(p)).collect();
                let joined = joined.join(":");
                let c = CString::new(joined)
                    .map_err(|_| "a layer path contains a NUL byte".to_string())?;
                ctx(fs.set(c"lowerdir", &c), || {
                    "setting the overlay's layers".to_string()
                })?;
            }
            ctx(
                fs.set(c"upperdir", &ctx(cpath(upper), || "upperdir".into())?),
                || format!("overlay upperdir {}", upper.display()),
            )?;
            ctx(
                fs.set(c"workdir", &ctx(cpath(work), || "workdir".into())?),
                || format!("overlay workdir {}", work.display()),
            )?;
            ctx(fs.mount(), || {
                format!("creating the overlay root of {} layers", lower.len())
            })?
        }
        RootFs::Directory(dir) => ctx(
            sys::clone_tree(&ctx(cpath(dir), || "root path".into())?),
            || format!("binding the root directory {}", dir.display()),
        )?,
    };
    let mut mappings = Vec::with_capacity(spec.mappings.len());
    for m in &spec.mappings {
        let fd = ctx(
            sys::clone_tree(&ctx(cpath(&m.host), || "host path".into())?),
            || format!("binding {}", m.host.display()),
        )?;
        if m.read_only {
            ctx(sys::make_read_only(fd.as_fd()), || {
                format!("making {} read-only", m.host.display())
            })?;
        }
        mappings.push((m.clone(), fd));
    }
    let resolv = if spec.dns_search.is_empty() {
        None
    } else {
        let p = rundir.join("resolv.conf");
        Some(ctx(
            sys::clone_tree(&ctx(cpath(&p), || "resolv.conf".into())?),
            || format!("binding {}", p.display()),
        )?)
    };
    Ok(DetachedMounts {
        root,
        mappings,
        resolv,
    })
}

/// Prepare on the host, before the namespaces exist: the mount point and the
/// writable layer's directories (owned by the container's root when it has
/// a user namespace).
pub(crate) fn prepare_host_dirs(spec: &ContainerSpec, rundir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(rundir.join("rootfs"))?;
    if let RootFs::Overlay { upper, work, .. } = &spec.rootfs {
        for d in [upper, work] {
            fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(d)?;
        }
        if let Some((uids, gids)) = &spec.user_namespace {
            let host = |maps: &Vec<crate::spec::IdMap>| {
                maps.iter().find(|m| m.inside == 0).map(|m| m.outside)
            };
            let (uid, gid) = (host(uids), host(gids));
            for d in [upper, work] {
                std::os::unix::fs::chown(d, uid, gid)?;
            }
        }
    }
    if !spec.dns_search.is_empty() {
        let mut text = String::from("# written by hcs from Container.Networking.DnsSearchList\n");
        if let Ok(host) = fs::read_to_string("/etc/resolv.conf") {
            for line in host
                .lines()
                .filter(|l| l.trim_start().starts_with("nameserver"))
            {
                text.push_str(line);
                text.push('\n');
            }
        }
        text.push_str(&format!("search {}\n", spec.dns_search.join(" ")));
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(rundir.join("resolv.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))?;
    }
    Ok(())
}

/// Build the root and switch to it. Runs in the init child, in the new
/// mount namespace, before anything of the container runs.
pub(crate) fn setup(
    spec: &ContainerSpec,
    in_userns: bool,
    mounts: &DetachedMounts,
) -> SetupResult<()> {
    // Nothing we mount may propagate back to the host.
    ctx(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
        || "making the mount namespace private".to_string(),
    )?;
    // The monitor cloned us with the mount point as our working directory:
    // clone(CLONE_NEWNS) carried it over into this namespace, and a
    // user-namespaced init could not have looked its path up.
    let mount_point: OwnedFd = ctx(
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open("."),
        || "opening the mount point".to_string(),
    )?
    .into();
    ctx(
        sys::attach(mounts.root.as_fd(), mount_point.as_fd()),
        || "attaching the container's root".to_string(),
    )?;
    drop(mount_point);
    // Once attached, the mount's own descriptor names the container's root.
    let r = mounts.root.as_fd();

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(
        r,
        "/proc",
        Kind::Dir,
        Some(Path::new("proc")),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;
    mount_at(
        r,
        "/dev",
        Kind::Dir,
        Some(Path::new("tmpfs")),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = PathBuf::from("/dev").join(dev);
        mount_at(
            r,
            &format!("/dev/{dev}"),
            Kind::File,
            Some(&host),
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    let devpts_opts = if in_userns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    mount_at(
        r,
        "/dev/pts",
        Kind::Dir,
        Some(Path::new("devpts")),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(devpts_opts),
    )?;
    mount_at(
        r,
        "/dev/shm",
        Kind::Dir,
        Some(Path::new("shm")),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )?;
    // mqueue is optional: kernels without POSIX message queues lack it.
    let _ = mount_at(
        r,
        "/dev/mqueue",
        Kind::Dir,
        Some(Path::new("mqueue")),
        Some("mqueue"),
        nosuid_nodev_noexec,
        None,
    );
    let devdir = ctx(ensure_in_root(r, Path::new("/dev"), Kind::Dir), || {
        "opening /dev".to_string()
    })?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let dev_path = fd_path(&devdir).join(link);
        let _ = std::os::unix::fs::symlink(to, dev_path);
    }
    let sys_flags = nosuid_nodev_noexec | MsFlags::MS_RDONLY;
    if mount_at(
        r,
        "/sys",
        Kind::Dir,
        Some(Path::new("sysfs")),
        Some("sysfs"),
        sys_flags,
        None,
    )
    .is_err()
    {
        // sysfs refuses a new instance when the network namespace is not
        // ours (a joined one); show the host's read-only instead.
        mount_at(
            r,
            "/sys",
            Kind::Dir,
            Some(Path::new("/sys")),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        let sysfd = ctx(ensure_in_root(r, Path::new("/sys"), Kind::Dir), || {
            "opening /sys".to_string()
        })?;
        let _ = mount(
            None::<&str>,
            &fd_path(&sysfd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nosuid_nodev_noexec,
            None::<&str>,
        );
    }

    for (m, fd) in &mounts.mappings {
        attach_mapping(r, m, fd)?;
    }
    if let Some(resolv) = &mounts.resolv {
        let target = ctx(
            ensure_in_root(r, Path::new("/etc/resolv.conf"), Kind::File),
            || "creating /etc/resolv.conf".to_string(),
        )?;
        ctx(sys::attach(resolv.as_fd(), target.as_fd()), || {
            "mounting /etc/resolv.conf".to_string()
        })?;
    }

    ctx(nix::unistd::sethostname(&spec.hostname), || {
        format!("setting the host name to {:?}", spec.hostname)
    })?;

    // pivot_root(".", ".") stacks the old root under the new one; detaching
    // it leaves only the container's root (the runc idiom, no temp dir).
    ctx(nix::unistd::fchdir(r), || "entering the root".to_string())?;
    ctx(nix::unistd::pivot_root(".", "."), || {
        "pivot_root into the container root".to_string()
    })?;
    ctx(
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH),
        || "detaching the host root".to_string(),
    )?;
    ctx(nix::unistd::chdir("/"), || "chdir /".to_string())?;
    protect_proc_and_sys();
    Ok(())
}

fn attach_mapping(root: BorrowedFd<'_>, m: &Mapping, mnt: &OwnedFd) -> SetupResult<()> {
    let is_dir = fs::metadata(&m.host).map(|md| md.is_dir()).unwrap_or(false);
    let kind = if is_dir { Kind::Dir } else { Kind::File };
    let target = ctx(ensure_in_root(root, &m.container, kind), || {
        format!("creating {} in the container", m.container.display())
    })?;
    ctx(sys::attach(mnt.as_fd(), target.as_fd()), || {
        format!("mounting {} on {}", m.host.display(), m.container.display())
    })
}

/// Hide the kernel interfaces a container has no business with, as runc's
/// default masked and read-only paths do. Absent paths are fine.
fn protect_proc_and_sys() {
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
    ] {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = mount(
                    Some("tmpfs"),
                    p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None::<&str>,
                );
            }
            Ok(_) => {
                let _ = mount(
                    Some("/dev/null"),
                    p,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                );
            }
            Err(_) => {}
        }
    }
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        if fs::symlink_metadata(p).is_ok()
            && mount(
                Some(p),
                p,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .is_ok()
        {
            let _ = mount(
                None::<&str>,
                p,
                None::<&str>,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None::<&str>,
            );
        }
    }
}
