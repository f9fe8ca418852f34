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

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::spec::{ContainerSpec, DeviceNode, Mapping, MountKind, MountSpec, RootFs};
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

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// `path` resolved inside `root` as if `root` were `/` (what runc's
/// securejoin does): symlinks are followed, absolute ones from the root and
/// `..` never above it; the part that does not exist yet is kept as written.
/// Returns the absolute path inside the root, free of symlinks, so checks on
/// a destination see where the mount will really land.
fn resolve_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<PathBuf> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    let comps = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut pending: VecDeque<OsString> = comps(path).into();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    // Once a component is missing, the rest cannot be symlinks.
    let mut missing = false;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        if missing {
            done.push(c);
            continue;
        }
        let candidate: PathBuf = done.iter().chain(std::iter::once(&c)).collect();
        let fd = match sys::openat2_in_root(
            root,
            &cpath(&candidate)?,
            (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                missing = true;
                done.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        let st = nix::sys::stat::fstat(&fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            done.push(c);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        // An O_PATH descriptor of a symlink reads it with an empty name.
        let target = PathBuf::from(nix::fcntl::readlinkat(&fd, "")?);
        if target.is_absolute() {
            done.clear();
        }
        for t in comps(&target).into_iter().rev() {
            pending.push_front(t);
        }
    }
    Ok(Path::new("/").join(done.iter().collect::<PathBuf>()))
}

/// Resolve a mount's destination inside the root and apply runc's /proc
/// rule to where it really lands: a symlink in the image (`/myproc` ->
/// `/proc`, or `/x` -> `/proc/sys`) must not carry a bind of the host's `/`
/// over the container's /proc. A proc or sysfs mount must be on the path as
/// written (runc: "must be mounted on ordinary directory"), so a /proc that
/// is itself a symlink cannot move the container's procfs elsewhere.
fn checked_destination(
    root: BorrowedFd<'_>,
    field: &str,
    dest: &Path,
    fstype: Option<&str>,
    bind_source: Option<&Path>,
) -> SetupResult<PathBuf> {
    let resolved = ctx(resolve_in_root(root, dest), || {
        format!(
            "{field}: resolving {} in the container's root",
            dest.display()
        )
    })?;
    if matches!(fstype, Some("proc" | "sysfs")) && resolved != dest {
        return Err(format!(
            "{field}: {} is a symlink in the container's root (to {}); a {} file system \
             must be mounted on an ordinary directory",
            dest.display(),
            resolved.display(),
            fstype.unwrap_or_default()
        ));
    }
    crate::spec::check_proc_mount(&resolved, fstype, bind_source).map_err(|why| {
        if resolved == dest {
            format!("{field}: {why}")
        } else {
            format!(
                "{field}: {} resolves to {} in the container's root: {why}",
                dest.display(),
                resolved.display()
            )
        }
    })?;
    Ok(resolved)
}

/// A host directory bound into the container: mount points below it would
/// be made in the host's directory.
struct HostBind {
    /// Where it is mounted, resolved in the root.
    dest: PathBuf,
    /// The JSON path of that destination.
    field: String,
    /// The host directory.
    host: PathBuf,
}

/// Refuse a mount whose mount point would have to be created inside a host
/// directory bound earlier (a mapping onto /data/sub after one onto /data):
/// the container's setup creates nothing in a host directory. A mount
/// point that already exists there is used as it is.
fn check_not_nested(
    root: BorrowedFd<'_>,
    binds: &[HostBind],
    field: &str,
    dest: &Path,
) -> SetupResult<()> {
    // The innermost (latest) bind that contains the destination.
    let Some(outer) = binds
        .iter()
        .rev()
        .find(|b| dest != b.dest && dest.starts_with(&b.dest))
    else {
        return Ok(());
    };
    let exists = cpath(dest).and_then(|c| {
        sys::openat2_in_root(
            root,
            &c,
            (libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
            0,
        )
    });
    match exists {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let below = dest.strip_prefix(&outer.dest).unwrap_or(dest);
            Err(format!(
                "{field}: {} is inside {} ({}, the host directory {}), where it does not \
                 exist; the container's setup creates nothing in a host directory: create {} \
                 on the host first",
                dest.display(),
                outer.field,
                outer.dest.display(),
                outer.host.display(),
                outer.host.join(below).display()
            ))
        }
        Err(e) => Err(format!("{field}: looking up {}: {e}", dest.display())),
    }
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
    /// The bind mounts of `spec.mounts`, at the same indices (`None` for
    /// the other kinds, which the init makes itself).
    /// The flag is whether the source is a directory (looked up here: a
    /// user-namespaced init may not be allowed to).
    pub binds: Vec<Option<(OwnedFd, bool)>>,
    /// The generated resolv.conf, when DNS suffixes were given.
    pub resolv: Option<OwnedFd>,
}

impl DetachedMounts {
    /// Their raw descriptors (the init must keep them open).
    pub(crate) fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        std::iter::once(self.root.as_raw_fd())
            .chain(self.mappings.iter().map(|(_, f)| f.as_raw_fd()))
            .chain(self.binds.iter().flatten().map(|(f, _)| f.as_raw_fd()))
            .chain(self.resolv.as_ref().map(|f| f.as_raw_fd()))
            .collect()
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A detached recursive bind of `path`, private. A clone of a shared mount
/// would join its peer group: what the container mounts below it (its /proc,
/// /dev, ... below its root) would appear in the host's mount namespace,
/// and pivot_root refuses a shared root.
fn private_clone(path: &Path) -> SetupResult<OwnedFd> {
    let fd = ctx(
        sys::clone_tree(&ctx(cpath(path), || "a path".into())?),
        || format!("binding {}", path.display()),
    )?;
    ctx(
        sys::set_mount_attr(fd.as_fd(), 0, 0, libc::MS_PRIVATE, true),
        || format!("making the bind mount of {} private", path.display()),
    )?;
    Ok(fd)
}

/// An overlay of `lower` (top layer first) with `upper` and `work`, as a
/// detached mount: the layers as one `lowerdir+` each when `per_layer`, else
/// as one escaped, colon-separated `lowerdir`.
fn overlay_mount(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    per_layer: bool,
) -> io::Result<OwnedFd> {
    let fs = sys::FsContext::open(c"overlay")?;
    if per_layer {
        for l in lower {
            fs.set(c"lowerdir+", &cpath(l)?)?;
        }
    } else {
        let joined: Vec<String> = lower.iter().map(|p| overlay_escape(p)).collect();
        let c = CString::new(joined.join(":"))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        fs.set(c"lowerdir", &c)?;
    }
    fs.set(c"upperdir", &cpath(upper)?)?;
    fs.set(c"workdir", &cpath(work)?)?;
    fs.mount()
}

/// Build the container's root (an overlay of its layers, or its directory)
/// and its bind mounts as detached mounts.
pub(crate) fn build_mounts(spec: &ContainerSpec, rundir: &Path) -> SetupResult<DetachedMounts> {
    let root = match &spec.rootfs {
        RootFs::Overlay { lower, upper, work } => {
            // One `lowerdir+` per layer: no 4 KiB limit on the option string
            // and no escaping of ':' or ',' in paths (Linux 6.5+). Older
            // kernels get the classic colon-separated list. Which one works
            // shows only at the mount: before 6.5 overlayfs takes its options
            // through the legacy path, whose fsconfig accepts any key and
            // whose mount then fails with EINVAL (Linux 6.1 logs
            // `unrecognized mount option "lowerdir+=..."`).
            match overlay_mount(lower, upper, work, true) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    ctx(overlay_mount(lower, upper, work, false), || {
                        format!("creating the overlay root of {} layers", lower.len())
                    })?
                }
                r => ctx(r, || {
                    format!("creating the overlay root of {} layers", lower.len())
                })?,
            }
        }
        RootFs::Directory(dir) => private_clone(dir)?,
    };
    let mut mappings = Vec::with_capacity(spec.mappings.len());
    for m in &spec.mappings {
        let fd = private_clone(&m.host)?;
        if m.read_only {
            ctx(sys::make_read_only(fd.as_fd()), || {
                format!("making {} read-only", m.host.display())
            })?;
        }
        mappings.push((m.clone(), fd));
    }
    let mut binds = Vec::with_capacity(spec.mounts.len());
    for m in &spec.mounts {
        binds.push(match &m.kind {
            MountKind::Bind { source, recursive } => {
                Some((detached_bind(m, source, *recursive)?, source.is_dir()))
            }
            _ => None,
        });
    }
    let resolv = if spec.dns_search.is_empty() {
        None
    } else {
        Some(private_clone(&rundir.join("resolv.conf"))?)
    };
    Ok(DetachedMounts {
        root,
        mappings,
        binds,
        resolv,
    })
}

/// The `MOUNT_ATTR_*` bits to set and clear for a mount's flags.
fn mount_attrs(m: &MountSpec) -> (u64, u64) {
    let mut set = 0;
    let mut clear = 0;
    for (flag, attr) in [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
    ] {
        if m.flags.contains(flag) {
            set |= attr;
        }
        if m.clear.contains(flag) {
            clear |= attr;
        }
    }
    // An atime mode replaces the previous one as a whole.
    for (flag, attr) in [
        (MsFlags::MS_RELATIME, sys::MOUNT_ATTR_RELATIME),
        (MsFlags::MS_NOATIME, sys::MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, sys::MOUNT_ATTR_STRICTATIME),
    ] {
        if m.flags.contains(flag) {
            set = (set & !sys::MOUNT_ATTR_ATIME_MASK) | attr;
            clear |= sys::MOUNT_ATTR_ATIME_MASK;
        }
    }
    (set, clear)
}

/// A bind mount of an OCI spec as a detached mount, with its options.
fn detached_bind(m: &MountSpec, source: &Path, recursive: bool) -> SetupResult<OwnedFd> {
    let c = ctx(cpath(source), || "bind source".into())?;
    let fd = if recursive {
        sys::clone_tree(&c)
    } else {
        sys::clone_mount(&c)
    };
    let fd = ctx(fd, || format!("binding {}", source.display()))?;
    let (set, clear) = mount_attrs(m);
    // Private unless asked otherwise (see the mappings above).
    let propagation = m.propagation.unwrap_or(MsFlags::MS_PRIVATE);
    let prop = (propagation - MsFlags::MS_REC).bits();
    ctx(
        sys::set_mount_attr(fd.as_fd(), set, clear, prop, recursive),
        || {
            format!(
                "setting the options of the bind mount of {} on {}",
                source.display(),
                m.destination.display()
            )
        },
    )?;
    Ok(fd)
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
    cgroups: Option<&hcs_cgroups::Hierarchies>,
) -> SetupResult<()> {
    // Nothing we mount or unmount may propagate back to the host: every
    // mount of the new namespace a slave first, whatever the OCI spec asks
    // for (a non-recursive "slave" or "private" would leave the others
    // peers of the host's, and detaching the old root would unmount the
    // host's). The propagation the spec asks for is the new root's, set
    // after pivot_root (on this tree, "unbindable" would break the binds).
    ctx(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ),
        || "making the container's mounts slaves".to_string(),
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

    // Host directories bound so far, in order.
    let mut host_binds: Vec<HostBind> = Vec::new();
    for (m, bind) in spec.mounts.iter().zip(&mounts.binds) {
        // Checked and mounted where the destination really is.
        let (fstype, source) = match (&m.kind, bind) {
            (MountKind::Bind { .. }, Some((fd, _))) => (None, Some(fd_path(fd))),
            (MountKind::Bind { source, .. }, None) => (None, Some(source.clone())),
            (MountKind::Fs { fstype, .. }, _) => (Some(fstype.as_str()), None),
            (MountKind::Cgroup, _) => (Some("cgroup"), None),
        };
        let destination =
            checked_destination(r, &m.field, &m.destination, fstype, source.as_deref())?;
        let m = &MountSpec {
            destination,
            ..m.clone()
        };
        if let Err(e) = check_not_nested(r, &host_binds, &m.field, &m.destination) {
            if m.optional {
                continue;
            }
            return Err(e);
        }
        let made = match (&m.kind, bind) {
            (MountKind::Bind { source, .. }, Some((fd, is_dir))) => {
                if *is_dir {
                    host_binds.push(HostBind {
                        dest: m.destination.clone(),
                        field: m.field.clone(),
                        host: source.clone(),
                    });
                }
                let kind = if *is_dir { Kind::Dir } else { Kind::File };
                let target = ctx(ensure_in_root(r, &m.destination, kind), || {
                    format!("creating {} in the container", m.destination.display())
                })?;
                ctx(sys::attach(fd.as_fd(), target.as_fd()), || {
                    format!(
                        "mounting {} on {}",
                        source.display(),
                        m.destination.display()
                    )
                })
            }
            (MountKind::Fs { fstype, source }, _) => mount_fs(r, m, fstype, source, in_userns),
            (MountKind::Cgroup, _) => mount_cgroups(r, m, cgroups),
            (MountKind::Bind { .. }, None) => Err("a bind mount was not prepared".to_string()),
        };
        match made {
            Ok(()) => {}
            Err(_) if m.optional => {}
            Err(e) => return Err(e),
        }
    }
    // Device nodes, unless /dev is the host's (or some other bind mount),
    // and resolv.conf, before the mapped directories: nothing made here may
    // land in a host directory mapped onto /dev, /etc or below.
    let dev_is_bound =
        spec.mounts.iter().any(|m| {
            m.destination == Path::new("/dev") && matches!(m.kind, MountKind::Bind { .. })
        }) || host_binds.iter().any(|b| b.dest == Path::new("/dev"));
    if !dev_is_bound {
        make_devices(r, spec, in_userns)?;
    }
    // Masked files are covered with this /dev/null, which a mapping onto
    // /dev may hide by the time they are masked.
    let null = sys::openat2_in_root(
        r,
        c"dev/null",
        (libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
        0,
    )
    .ok();

    if let Some(resolv) = &mounts.resolv {
        let target = ctx(
            ensure_in_root(r, Path::new("/etc/resolv.conf"), Kind::File),
            || "creating /etc/resolv.conf".to_string(),
        )?;
        ctx(sys::attach(resolv.as_fd(), target.as_fd()), || {
            "mounting /etc/resolv.conf".to_string()
        })?;
    }

    for (m, fd) in &mounts.mappings {
        attach_mapping(r, m, fd, &mut host_binds)?;
    }

    if spec.namespaces.names_settable() {
        if !spec.hostname.is_empty() {
            ctx(nix::unistd::sethostname(&spec.hostname), || {
                format!("setting the host name to {:?}", spec.hostname)
            })?;
        }
        if let Some(d) = &spec.domainname {
            ctx(sys::set_domainname(d), || {
                format!("setting the domain name to {d:?}")
            })?;
        }
    }

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

    // runc's order: sysctls (while /proc/sys is writable), read-only and
    // masked paths, then the read-only root.
    for (key, value) in &spec.sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        ctx(fs::write(&path, value.as_bytes()), || {
            format!("setting sysctl {key} to {value:?}")
        })?;
    }
    for p in &spec.readonly_paths {
        read_only_path(p)?;
    }
    for p in &spec.masked_paths {
        mask_path(p, null.as_ref())?;
    }
    if spec.read_only_root {
        remount_read_only(Path::new("/"), false)
            .map_err(|e| format!("making the root read-only: {e}"))?;
    }
    // The spec's rootfsPropagation is the container root's (runc sets it
    // after pivot_root): the new root is a private clone. Last, so that
    // "unbindable" does not stop the binds of read-only and masked paths.
    ctx(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            spec.rootfs_propagation,
            None::<&str>,
        ),
        || "setting the propagation of the container's root".to_string(),
    )?;
    Ok(())
}

/// Mount a new instance of a filesystem (`mounts[i]` of type tmpfs, proc, ...).
fn mount_fs(
    r: BorrowedFd<'_>,
    m: &MountSpec,
    fstype: &str,
    source: &str,
    in_userns: bool,
) -> SetupResult<()> {
    let target = m.destination.to_string_lossy();
    // What the tmpfs will cover, for tmpcopyup: opened before it is covered.
    let covered = if m.copy_up {
        Some(ctx(ensure_in_root(r, &m.destination, Kind::Dir), || {
            format!("opening {target} to copy it into its tmpfs")
        })?)
    } else {
        None
    };
    let data = m.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let result = mount_at(
        r,
        &target,
        Kind::Dir,
        Some(Path::new(source)),
        Some(fstype),
        m.flags,
        data,
    );
    let result = match result {
        // Group 5 (tty) or the uid may not be mapped in a user namespace:
        // devpts then refuses them; its nodes belong to the caller instead.
        Err(_) if fstype == "devpts" && in_userns => {
            let data: Vec<&str> = m
                .data
                .iter()
                .map(String::as_str)
                .filter(|o| !o.starts_with("gid=") && !o.starts_with("uid="))
                .collect();
            let data = data.join(",");
            mount_at(
                r,
                &target,
                Kind::Dir,
                Some(Path::new(source)),
                Some(fstype),
                m.flags,
                Some(&data),
            )
        }
        // sysfs refuses a new instance when the network namespace is not
        // ours (a joined one, or the host's); show the host's read-only.
        Err(_) if fstype == "sysfs" => {
            mount_at(
                r,
                &target,
                Kind::Dir,
                Some(Path::new("/sys")),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            let fd = ctx(ensure_in_root(r, &m.destination, Kind::Dir), || {
                format!("opening {target}")
            })?;
            let _ = mount(
                None::<&str>,
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None::<&str>,
            );
            Ok(())
        }
        other => other,
    };
    result?;
    if let Some(old) = covered {
        let new = ctx(ensure_in_root(r, &m.destination, Kind::Dir), || {
            format!("opening the tmpfs on {target}")
        })?;
        let from = ctx(reopen_dir(&old), || format!("opening {target}"))?;
        ctx(copy_tree(from.as_fd(), new.as_fd(), 0), || {
            format!("copying {target} into its tmpfs (tmpcopyup)")
        })?;
    }
    if let Some(p) = m.propagation {
        let fd = ctx(ensure_in_root(r, &m.destination, Kind::Dir), || {
            format!("opening {target}")
        })?;
        ctx(
            mount(None::<&str>, &fd_path(&fd), None::<&str>, p, None::<&str>),
            || format!("setting the propagation of {target}"),
        )?;
    }
    Ok(())
}

/// A readable descriptor of the directory `fd` (an `O_PATH` one) names.
fn reopen_dir(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        &fd_path(fd),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// How deep tmpcopyup copies (a guard against a pathological tree).
const COPY_UP_DEPTH: usize = 64;

/// Copy what directory `from` holds into directory `to`: directories,
/// files, symlinks and special files, with their modes and owners. Every
/// name is opened relative to its directory without following symlinks, so
/// nothing outside the container's tree is read or written.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, depth: usize) -> nix::Result<()> {
    use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, SFlag};
    use nix::unistd::{fchownat, Gid, Uid};
    if depth > COPY_UP_DEPTH {
        return Err(nix::errno::Errno::ELOOP);
    }
    let mut dir = nix::dir::Dir::from_fd(
        from.try_clone_to_owned()
            .map_err(|_| nix::errno::Errno::EBADF)?,
    )?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let name = name.as_c_str();
        let st = fstatat(from, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        if kind == SFlag::S_IFDIR {
            mkdirat(to, name, Mode::from_bits_truncate(0o700))?;
            let open = |at: BorrowedFd<'_>| {
                nix::fcntl::openat(
                    at,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
            };
            let (sub_from, sub_to) = (open(from)?, open(to)?);
            copy_tree(sub_from.as_fd(), sub_to.as_fd(), depth + 1)?;
        } else if kind == SFlag::S_IFREG {
            let src = nix::fcntl::openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dst = nix::fcntl::openat(
                to,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let (mut src, mut dst) = (fs::File::from(src), fs::File::from(dst));
            std::io::copy(&mut src, &mut dst)
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        } else if kind == SFlag::S_IFLNK {
            let target = nix::fcntl::readlinkat(from, name)?;
            nix::unistd::symlinkat(target.as_os_str(), to, name)?;
        } else {
            mknodat(to, name, kind, mode, st.st_rdev)?;
        }
        fchownat(
            to,
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind != SFlag::S_IFLNK {
            // After chown, which clears set-id bits.
            fchmodat(to, name, mode, FchmodatFlags::NoFollowSymlink)?;
        }
    }
    Ok(())
}

/// An OCI `cgroup` mount: the container's own cgroup of every hierarchy,
/// bound from the host (as runc does on cgroup v1; with a cgroup namespace
/// this is also what a new cgroup2 mount would show). On a unified host the
/// v2 directory is bound at the destination; otherwise a tmpfs there holds
/// one directory per hierarchy, named like the host's.
fn mount_cgroups(
    r: BorrowedFd<'_>,
    m: &MountSpec,
    cgroups: Option<&hcs_cgroups::Hierarchies>,
) -> SetupResult<()> {
    let cgroups = cgroups.ok_or_else(|| "the host's cgroup hierarchies are unknown".to_string())?;
    let dest = m.destination.clone();
    let bind_flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    let ro = m.flags.contains(MsFlags::MS_RDONLY);
    let fixed = (m.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
        & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let bind = |src: &Path, at: &Path| -> SetupResult<()> {
        let fd = ctx(ensure_in_root(r, at, Kind::Dir), || {
            format!("creating {} in the container", at.display())
        })?;
        ctx(
            mount(
                Some(src),
                &fd_path(&fd),
                None::<&str>,
                bind_flags,
                None::<&str>,
            ),
            || format!("binding {} on {}", src.display(), at.display()),
        )?;
        // Reopen: the descriptor from before names the directory under the mount.
        let fd = ctx(ensure_in_root(r, at, Kind::Dir), || {
            format!("opening {}", at.display())
        })?;
        ctx(
            mount(
                None::<&str>,
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | fixed,
                None::<&str>,
            ),
            || format!("setting the options of {}", at.display()),
        )
    };
    let list = cgroups.hierarchies();
    if cgroups.layout() == hcs_cgroups::Layout::Unified && list.len() == 1 {
        return bind(&list[0].process_dir(), &dest);
    }
    mount_at(
        r,
        &dest.to_string_lossy(),
        Kind::Dir,
        Some(Path::new("tmpfs")),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )?;
    for h in list {
        let Some(name) = h.mount_point().file_name() else {
            continue;
        };
        bind(&h.process_dir(), &dest.join(name))?;
    }
    if ro {
        let fd = ctx(ensure_in_root(r, &dest, Kind::Dir), || {
            format!("opening {}", dest.display())
        })?;
        ctx(
            mount(
                None::<&str>,
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_REMOUNT | fixed,
                Some("mode=755"),
            ),
            || format!("making {} read-only", dest.display()),
        )?;
    }
    Ok(())
}

/// The default device nodes, those of `linux.devices`, and the standard
/// symlinks. Nodes are made with mknod in the container's own /dev (as runc
/// does), so the container's root can chmod, chown or remove only its own
/// copies; in a user namespace, where mknod is not allowed, the host's nodes
/// are bound instead (the container's root cannot change those).
fn make_devices(r: BorrowedFd<'_>, spec: &ContainerSpec, in_userns: bool) -> SetupResult<()> {
    for (name, major, minor) in crate::spec::DEFAULT_DEVICES {
        let path = PathBuf::from("/dev").join(name);
        if spec.devices.iter().any(|d| d.path == path) {
            continue;
        }
        let node = DeviceNode {
            path,
            kind: 'c',
            major: u64::from(major),
            minor: u64::from(minor),
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        make_device(r, &node, in_userns)?;
    }
    for d in &spec.devices {
        make_device(r, d, in_userns)?;
    }
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
    Ok(())
}

/// One node of `linux.devices`: made with mknod, or in a user namespace
/// (where mknod is not allowed) bound from the host's node of that path.
fn make_device(r: BorrowedFd<'_>, d: &DeviceNode, in_userns: bool) -> SetupResult<()> {
    let shown = d.path.display();
    if in_userns {
        let shown_err =
            |e: String| format!("{e} (in a user namespace devices are bound from the host's)");
        mount_at(
            r,
            &d.path.to_string_lossy(),
            Kind::File,
            Some(&d.path),
            None,
            MsFlags::MS_BIND,
            None,
        )
        .map_err(shown_err)?;
        // Read-only: the node still reads and writes, but its timestamps (the
        // one thing of the host's node a mapped root could change, as
        // touch does on a 0666 node) cannot be.
        let fd = ctx(ensure_in_root(r, &d.path, Kind::File), || {
            format!("opening {shown}")
        })?;
        let at = fd_path(&fd);
        return ctx(
            mount(
                None::<&str>,
                &at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | mount_flags_of(&at),
                None::<&str>,
            ),
            || format!("making the bind mount of the host's {shown} read-only"),
        );
    }
    let parent = d.path.parent().unwrap_or(Path::new("/"));
    let name = d
        .path
        .file_name()
        .ok_or_else(|| format!("device path {shown} has no name"))?;
    let dir = ctx(ensure_in_root(r, parent, Kind::Dir), || {
        format!("creating {} in the container", parent.display())
    })?;
    let kind = match d.kind {
        'b' => nix::sys::stat::SFlag::S_IFBLK,
        'p' => nix::sys::stat::SFlag::S_IFIFO,
        _ => nix::sys::stat::SFlag::S_IFCHR,
    };
    // A node already there (from the image) is replaced, as runc does.
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let perm = nix::sys::stat::Mode::from_bits_truncate(d.mode);
    ctx(
        nix::sys::stat::mknodat(
            &dir,
            name,
            kind,
            perm,
            nix::sys::stat::makedev(d.major, d.minor),
        ),
        || format!("creating device {shown}"),
    )?;
    // mknod's mode went through the umask.
    ctx(
        nix::sys::stat::fchmodat(
            &dir,
            name,
            perm,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        ),
        || format!("setting the mode of {shown}"),
    )?;
    ctx(
        nix::unistd::fchownat(
            &dir,
            name,
            Some(d.uid.into()),
            Some(d.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        || format!("setting the owner of {shown}"),
    )
}

/// The flags of the mount `p` is on, as mount flags (a bind remount must
/// repeat them: in a user namespace the locked ones cannot be cleared).
fn mount_flags_of(p: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(p) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (from, to) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(from) {
            out |= to;
        }
    }
    out
}

/// Remount the mount at `p` read-only, keeping its other flags; first bind
/// it onto itself when it is not a mount point of its own.
fn remount_read_only(p: &Path, bind_first: bool) -> nix::Result<()> {
    if bind_first {
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
    }
    let flags = mount_flags_of(p);
    mount(
        None::<&str>,
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
}

/// A `linux.readonlyPaths` entry (after pivot_root): skipped when absent.
fn read_only_path(p: &Path) -> SetupResult<()> {
    if fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    remount_read_only(p, true).map_err(|e| format!("making {} read-only: {e}", p.display()))
}

/// A `linux.maskedPaths` entry (after pivot_root): the container's /dev/null
/// (`null`, opened before any mapping could hide it) over a file, an
/// empty read-only tmpfs over a directory; skipped when absent.
fn mask_path(p: &Path, null: Option<&OwnedFd>) -> SetupResult<()> {
    let null = null.map_or_else(|| PathBuf::from("/dev/null"), fd_path);
    let r = match fs::symlink_metadata(p) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        ),
        Ok(_) => mount(Some(&null), p, None::<&str>, MsFlags::MS_BIND, None::<&str>),
    };
    r.map_err(|e| format!("masking {}: {e}", p.display()))
}

fn attach_mapping(
    root: BorrowedFd<'_>,
    m: &Mapping,
    mnt: &OwnedFd,
    host_binds: &mut Vec<HostBind>,
) -> SetupResult<()> {
    let is_dir = fs::metadata(&m.host).map(|md| md.is_dir()).unwrap_or(false);
    let kind = if is_dir { Kind::Dir } else { Kind::File };
    let dest = checked_destination(root, &m.field, &m.container, None, Some(&fd_path(mnt)))?;
    check_not_nested(root, host_binds, &m.field, &dest)?;
    if is_dir {
        host_binds.push(HostBind {
            dest: dest.clone(),
            field: m.field.clone(),
            host: m.host.clone(),
        });
    }
    let target = ctx(ensure_in_root(root, &dest, kind), || {
        format!("creating {} in the container", m.container.display())
    })?;
    ctx(sys::attach(mnt.as_fd(), target.as_fd()), || {
        format!("mounting {} on {}", m.host.display(), m.container.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        fs::File::open(dir).expect("root").into()
    }

    #[test]
    fn destinations_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("proc/sys")).unwrap();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/proc", root.join("myproc")).unwrap();
        symlink("proc/sys", root.join("mysys")).unwrap();
        symlink("../../../../../../etc", root.join("escape")).unwrap();
        symlink("/real/../real", root.join("indirect")).unwrap();
        symlink("indirect/dir", root.join("chain")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let fd = root_fd(root);
        let r = |p: &str| resolve_in_root(fd.as_fd(), Path::new(p));
        assert_eq!(r("/myproc").unwrap(), Path::new("/proc"));
        assert_eq!(r("/mysys/kernel").unwrap(), Path::new("/proc/sys/kernel"));
        // Out of the root: stays inside it, never the host's /etc.
        assert_eq!(r("/escape/passwd").unwrap(), Path::new("/etc/passwd"));
        assert_eq!(r("/chain/x/y").unwrap(), Path::new("/real/dir/x/y"));
        assert_eq!(r("/plain/missing").unwrap(), Path::new("/plain/missing"));
        assert_eq!(r("/").unwrap(), Path::new("/"));
        assert_eq!(
            r("/loop").unwrap_err().raw_os_error(),
            Some(libc::ELOOP),
            "a symlink loop"
        );
    }

    #[test]
    fn a_symlink_cannot_carry_a_mount_over_proc() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        symlink("/proc", root.join("myproc")).unwrap();
        symlink("/proc/sys", root.join("mysys")).unwrap();
        let fd = root_fd(root);
        let check = |dest: &str, fstype: Option<&str>, src: Option<&str>| {
            checked_destination(
                fd.as_fd(),
                "mounts[7].destination",
                Path::new(dest),
                fstype,
                src.map(Path::new),
            )
        };
        let e = check("/myproc", None, Some("/")).unwrap_err();
        assert!(
            e.contains("mounts[7].destination") && e.contains("resolves to /proc in"),
            "{e}"
        );
        let e = check("/mysys", None, Some("/proc/sys")).unwrap_err();
        assert!(e.contains("mounts[7].destination"), "{e}");
        // The normal cases still pass, mounted where they really land.
        assert_eq!(check("/data", None, Some("/")).unwrap(), Path::new("/data"));
        assert_eq!(
            check("/proc", Some("proc"), None).unwrap(),
            Path::new("/proc")
        );
        assert_eq!(
            check("/myproc", None, Some("/proc")).unwrap(),
            Path::new("/proc")
        );
        // A procfs on a symlink: refused, wherever it points.
        let e = check("/myproc", Some("proc"), None).unwrap_err();
        assert!(e.contains("ordinary directory"), "{e}");
    }

    #[test]
    fn mount_points_are_not_made_in_host_directories() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("data/there")).unwrap();
        let fd = root_fd(root);
        let binds = [HostBind {
            dest: PathBuf::from("/data"),
            field: "Container.MappedDirectories[0].ContainerPath".into(),
            host: PathBuf::from("/srv/data"),
        }];
        let check = |dest: &str| {
            check_not_nested(
                fd.as_fd(),
                &binds,
                "Container.MappedDirectories[1].ContainerPath",
                Path::new(dest),
            )
        };
        let e = check("/data/sub").unwrap_err();
        for want in [
            "MappedDirectories[1].ContainerPath",
            "MappedDirectories[0].ContainerPath",
            "create /srv/data/sub on the host first",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(!root.join("data/sub").exists());
        // Already there, the bind itself, or outside it: fine.
        check("/data/there").unwrap();
        check("/data").unwrap();
        check("/database").unwrap();
        check("/other/sub").unwrap();
    }
}

#[cfg(test)]
mod copy_up_tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// tmpcopyup's copy: files with their bytes and modes, directories,
    /// symlinks left as links (not followed), owners kept.
    #[test]
    fn copy_tree_copies_what_the_directory_holds_without_following_links() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"host").unwrap();
        fs::create_dir(from.path().join("sub")).unwrap();
        fs::write(from.path().join("sub/f"), b"data").unwrap();
        fs::set_permissions(from.path().join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(outside.path(), from.path().join("link")).unwrap();
        let open = |p: &Path| {
            nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
        };
        let (f, t) = (open(from.path()), open(to.path()));
        copy_tree(f.as_fd(), t.as_fd(), 0).unwrap();
        assert_eq!(fs::read(to.path().join("sub/f")).unwrap(), b"data");
        let m = fs::metadata(to.path().join("sub/f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            m.uid(),
            fs::metadata(from.path().join("sub/f")).unwrap().uid()
        );
        let link = to.path().join("link");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_link(&link).unwrap(), outside.path());
    }
}
