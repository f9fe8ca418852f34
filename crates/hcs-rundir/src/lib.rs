//! Runtime directories: where a compute system's monitor keeps its state.
//!
//! Layout: `<root>/<namespace>/<id>/` (root `/run/hcs`, mode 0700) holding
//! - `lock`: `flock`ed by the monitor for its whole life. A directory whose
//!   lock can be taken belongs to a dead monitor and is *stale*;
//! - `control.sock`: the monitor's control socket;
//! - `record.json`: a [`Record`] of what must be released if the monitor dies
//!   (cgroups), written before those resources exist;
//! - whatever the backend keeps (mount points, an ephemeral scratch layer).
//!
//! A directory appears atomically, with its lock already held: it is built
//! under a dot-name and renamed into place with `RENAME_NOREPLACE`, so nobody
//! ever sees an unlocked live directory and mistakes it for a stale one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hcs_errors::{HResult, HcsError, HcsResult};
use serde::{Deserialize, Serialize};

/// Default root of all runtime directories.
pub const DEFAULT_ROOT: &str = "/run/hcs";
/// Namespace used by the calls that take none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";
/// Name of the record file.
pub const RECORD_FILE: &str = "record.json";
/// Longest id or namespace accepted.
pub const MAX_NAME_LEN: usize = 128;
/// The cgroup every compute system's cgroup lives in, in every hierarchy
/// (kept between systems). Cleanup after a dead monitor touches nothing
/// outside `<hierarchy>/…/hcs/<leaf>`.
pub const CGROUP_PARENT: &str = "hcs";

/// The runtime root: `$HCS_RUNTIME_ROOT` if set, else [`DEFAULT_ROOT`].
pub fn root() -> PathBuf {
    std::env::var_os("HCS_RUNTIME_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// Check a compute system id or namespace: it names a directory, so it must
/// be 1..=128 characters of `A-Z a-z 0-9 . _ - { }` and not start with a dot.
/// GUIDs (with or without braces) and ordinary names pass.
pub fn validate_name(what: &str, name: &str) -> HcsResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '{' | '}');
    if name.is_empty() {
        return Err(HcsError::invalid_arg(format!("the {what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HcsError::invalid_arg(format!(
            "the {what} is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !ok_char(*c)) {
        return Err(HcsError::invalid_arg(format!(
            "the {what} {name:?} contains {bad:?}; only letters, digits and . _ - {{ }} are allowed"
        )));
    }
    if name.starts_with('.') {
        return Err(HcsError::invalid_arg(format!(
            "the {what} {name:?} must not start with a dot"
        )));
    }
    Ok(())
}

/// Directory of one system.
pub fn system_dir(root: &Path, namespace: &str, id: &str) -> PathBuf {
    root.join(namespace).join(id)
}

/// What a monitor leaves for whoever cleans up after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Compute system id.
    pub id: String,
    /// Id namespace.
    pub namespace: String,
    /// `Container` or `VirtualMachine`.
    pub system_type: String,
    /// Owner from the document.
    pub owner: Option<String>,
    /// Pid of the monitor.
    pub monitor_pid: u32,
    /// Cgroup directories to kill and remove.
    pub cgroups: Vec<PathBuf>,
    /// The last component(s) of the cgroup paths that belong to this system
    /// alone; cleanup removes nothing above them.
    #[serde(default)]
    pub cgroup_leaf: Option<String>,
    /// The shared levels above `cgroup_leaf`, from each hierarchy's root,
    /// when the cgroup was placed there (an OCI spec's absolute
    /// cgroupsPath) instead of below `hcs/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_rooted_parent: Option<String>,
    /// The shared levels above `cgroup_leaf` when they are not `hcs/`
    /// (an OCI spec's relative cgroupsPath; possibly empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Host pid of the system's main process (a container's init) while it runs.
    #[serde(default)]
    pub main_pid: Option<i32>,
    /// Unix sockets the system bound on the host (a VM's `ComPorts` named
    /// pipes). A cleanup removes one only while the path is still that very
    /// socket (same device and inode): a killed monitor cannot remove its
    /// own, and the path would then be refused to every later system.
    #[serde(default)]
    pub sockets: Vec<OwnedSocket>,
}

/// A socket file a system created, as [`Record::sockets`] lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnedSocket {
    /// Where it was bound.
    pub path: PathBuf,
    /// `st_dev` of the socket file when bound.
    pub dev: u64,
    /// `st_ino` of the socket file when bound.
    pub ino: u64,
    /// `st_ctime` (seconds) when bound: a freed inode number is soon reused
    /// by the next file made at the same place.
    #[serde(default)]
    pub ctime: i64,
    /// `st_ctime` (nanoseconds) when bound.
    #[serde(default)]
    pub ctime_nsec: i64,
}

/// Remove `s.path` if it is still the socket the system bound there (same
/// device, inode and change time); any other file at that path (a socket
/// bound since, anything else) stays.
fn remove_owned_socket(s: &OwnedSocket) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match fs::symlink_metadata(&s.path) {
        Ok(m)
            if m.file_type().is_socket()
                && (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
                    == (s.dev, s.ino, s.ctime, s.ctime_nsec) =>
        {
            if let Err(e) = fs::remove_file(&s.path) {
                tracing::warn!("removing the socket {}: {e}", s.path.display());
            }
        }
        _ => {}
    }
}

/// A runtime directory owned by the running monitor, lock held.
pub struct RunDir {
    path: PathBuf,
    // Held for the monitor's life; closing it releases the lock.
    lock: File,
}

impl RunDir {
    /// Create `<root>/<namespace>/<id>` with its lock held. An existing
    /// directory of a live monitor gives `HCS_E_SYSTEM_ALREADY_EXISTS`; a
    /// stale one is cleaned up first.
    pub fn create(root: &Path, namespace: &str, id: &str) -> HcsResult<RunDir> {
        validate_name("namespace", namespace)?;
        validate_name("compute system id", id)?;
        ensure_private_dir(root)?;
        let ns_dir = root.join(namespace);
        let target = ns_dir.join(id);
        let tmp = ns_dir.join(format!(".{id}.creating-{}", std::process::id()));
        // A concurrent cleanup may remove the namespace directory between our
        // mkdir and our use of it; a few retries settle that race.
        for _ in 0..16 {
            ensure_private_dir(&ns_dir)?;
            match fs::DirBuilder::new().mode(0o700).create(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    remove_tree(&tmp)?;
                    continue;
                }
                Err(e) => return Err(HcsError::from_io(format!("creating {}", tmp.display()), &e)),
            }
            let lock = open_lock(&tmp.join(LOCK_FILE), true)?;
            lock_exclusive(&lock, &tmp)?;
            match rename_noreplace(&tmp, &target) {
                Ok(()) => return Ok(RunDir { path: target, lock }),
                Err(e) if e == nix::errno::Errno::EEXIST || e == nix::errno::Errno::ENOTEMPTY => {
                    remove_tree(&tmp)?;
                    drop(lock);
                    match cleanup_if_stale(&target)? {
                        Cleanup::Alive => {
                            return Err(HcsError::new(
                                HResult::HCS_E_SYSTEM_ALREADY_EXISTS,
                                format!("a compute system with id {id:?} already exists in namespace {namespace:?}"),
                            ))
                        }
                        Cleanup::Removed | Cleanup::Missing => continue,
                    }
                }
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => {
                    let _ = remove_tree(&tmp);
                    return Err(HcsError::from_io(
                        format!("moving {} into place", target.display()),
                        &std::io::Error::from(e),
                    ));
                }
            }
        }
        Err(HcsError::new(
            HResult::E_FAIL,
            format!("could not create {} (it keeps changing)", target.display()),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw descriptor of the lock, which children must not inherit.
    pub fn lock_fd(&self) -> i32 {
        self.lock.as_raw_fd()
    }

    /// Write the record atomically.
    pub fn write_record(&self, record: &Record) -> HcsResult<()> {
        write_atomic(
            &self.path.join(RECORD_FILE),
            &serde_json::to_vec_pretty(record).unwrap_or_default(),
        )
    }

    /// Remove the directory (while still holding the lock, so nobody else
    /// cleans it concurrently), then try to remove the empty namespace dir.
    pub fn remove(self) -> HcsResult<()> {
        let result = remove_tree(&self.path);
        if let Some(ns) = self.path.parent() {
            let _ = fs::remove_dir(ns);
        }
        drop(self.lock);
        result
    }
}

/// What [`cleanup_if_stale`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// A live monitor owns it.
    Alive,
    /// It was stale and has been removed.
    Removed,
    /// It does not exist.
    Missing,
}

/// If `dir`'s monitor is dead, release what its record lists (killing any
/// process left in its cgroups) and remove the directory.
pub fn cleanup_if_stale(dir: &Path) -> HcsResult<Cleanup> {
    // Only ever a real directory of ours: never follow a link out of the
    // root, neither at the system's directory nor at its namespace's.
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        match fs::symlink_metadata(d) {
            Ok(m) if !m.is_dir() => {
                return Err(HcsError::new(
                    HResult::E_FAIL,
                    format!("{} is not a directory; leaving it alone", d.display()),
                ))
            }
            _ => {}
        }
    }
    let lock = match open_lock(&dir.join(LOCK_FILE), false) {
        Ok(f) => f,
        Err(e) if e.hresult == HResult::ERROR_FILE_NOT_FOUND => {
            if !dir.exists() {
                return Ok(Cleanup::Missing);
            }
            // A directory without a lock file is debris of a creation that
            // died before it locked anything.
            remove_tree(dir)?;
            return Ok(Cleanup::Removed);
        }
        Err(e) => return Err(e),
    };
    match try_lock(&lock) {
        Ok(()) => {}
        Err(nix::errno::Errno::EWOULDBLOCK) => return Ok(Cleanup::Alive),
        Err(e) => {
            return Err(HcsError::from_io(
                format!("locking {}", dir.display()),
                &std::io::Error::from(e),
            ))
        }
    }
    if let Ok(text) = fs::read(dir.join(RECORD_FILE)) {
        if let Ok(record) = serde_json::from_slice::<Record>(&text) {
            tracing::info!(id = %record.id, "cleaning up after dead monitor {}", record.monitor_pid);
            record.sockets.iter().for_each(remove_owned_socket);
            if !record.cgroups.is_empty() {
                // The record is only as trustworthy as whoever could write
                // the directory: touch nothing it names outside our parent.
                let mounts = cgroup_mounts();
                match checked_cgroups(dir, &record, &mounts) {
                    Ok((paths, leaf)) if !paths.is_empty() => {
                        hcs_cgroups::Cgroup::from_paths_with_relative(paths, &leaf)
                            .destroy()
                            .map_err(HcsError::from)?;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "not cleaning the cgroups recorded in {}: {e}",
                        dir.join(RECORD_FILE).display()
                    ),
                }
            }
        }
    }
    remove_tree(dir)?;
    if let Some(ns) = dir.parent() {
        let _ = fs::remove_dir(ns);
    }
    drop(lock);
    Ok(Cleanup::Removed)
}

/// Why a record's cgroups are left alone.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The record names another system than the directory it is in.
    #[error("the record is for {found:?}, but it lies in the directory of {expected:?}")]
    WrongSystem {
        /// `<namespace>/<id>` of the directory.
        expected: String,
        /// `<namespace>/<id>` of the record.
        found: String,
    },
    /// `cgroup_leaf` is not a plain relative path.
    #[error("cgroup_leaf {0:?} is not a relative path of plain names")]
    BadLeaf(PathBuf),
    /// A cgroup path is outside `<hierarchy>/…/hcs/<leaf>`.
    #[error("cgroups.{index} ({path:?}) {reason}")]
    BadCgroup {
        /// Index in `cgroups`.
        index: usize,
        /// The recorded path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Mount points of the cgroup hierarchies of this host.
fn cgroup_mounts() -> Vec<PathBuf> {
    hcs_cgroups::Hierarchies::detect()
        .map(|h| {
            h.hierarchies()
                .iter()
                .filter_map(|h| fs::canonicalize(h.mount_point()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup paths of `record` that cleanup may destroy, with the leaf
/// below which nothing is removed. Every path must be
/// `<mount>/…/hcs/<leaf>` for one of the cgroup `mounts`, free of `.`, `..`
/// and symlinks, and a directory of a cgroup filesystem; paths that no longer
/// exist are dropped. Any other path refuses the whole record.
pub fn checked_cgroups(
    dir: &Path,
    record: &Record,
    mounts: &[PathBuf],
) -> Result<(Vec<PathBuf>, PathBuf), RecordError> {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let expected = format!("{}/{}", name(dir.parent()), name(Some(dir)));
    let found = format!("{}/{}", record.namespace, record.id);
    if expected != found {
        return Err(RecordError::WrongSystem { expected, found });
    }
    // Records written before `cgroup_leaf` existed used `<namespace>@<id>`.
    let leaf = PathBuf::from(
        record
            .cgroup_leaf
            .clone()
            .unwrap_or_else(|| format!("{}@{}", record.namespace, record.id)),
    );
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if leaf.as_os_str().is_empty() || !plain(&leaf) {
        return Err(RecordError::BadLeaf(leaf));
    }
    // Where the leaf hangs: below hcs/ anywhere in a hierarchy, or exactly
    // at <mount>/<rooted parent>/<leaf> for a rooted cgroup.
    let rooted = match &record.cgroup_rooted_parent {
        Some(p) if !p.is_empty() && !plain(Path::new(p)) => {
            return Err(RecordError::BadLeaf(PathBuf::from(p)))
        }
        Some(p) => Some(Path::new(p).join(&leaf)),
        None => None,
    };
    let parent = record.cgroup_parent.as_deref().unwrap_or(CGROUP_PARENT);
    if !parent.is_empty() && !plain(Path::new(parent)) {
        return Err(RecordError::BadLeaf(PathBuf::from(parent)));
    }
    let tail = Path::new(parent).join(&leaf);
    let mut paths = Vec::new();
    for (index, path) in record.cgroups.iter().enumerate() {
        let bad = |reason| RecordError::BadCgroup {
            index,
            path: path.clone(),
            reason,
        };
        let mut parts = path.components();
        if parts.next() != Some(std::path::Component::RootDir) || !plain(parts.as_path()) {
            return Err(bad("is not an absolute path of plain names"));
        }
        match &rooted {
            None if !path.ends_with(&tail) => {
                return Err(bad(
                    "does not end in the system's own <cgroup_parent>/<cgroup_leaf>",
                ))
            }
            Some(below_root) if !mounts.iter().any(|m| *path == m.join(below_root)) => {
                return Err(bad(
                    "is not <hierarchy>/<cgroup_rooted_parent>/<cgroup_leaf> of this host",
                ))
            }
            _ => {}
        }
        if !mounts.iter().any(|m| path.starts_with(m) && path != m) {
            return Err(bad("is not inside a cgroup hierarchy of this host"));
        }
        match fs::canonicalize(path) {
            Ok(real) if &real == path => {}
            Ok(_) => return Err(bad("goes through a symbolic link")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return Err(bad("cannot be resolved")),
        }
        let on_cgroupfs = nix::sys::statfs::statfs(path)
            .map(|s| {
                let t = s.filesystem_type();
                t == nix::sys::statfs::CGROUP2_SUPER_MAGIC
                    || t == nix::sys::statfs::CGROUP_SUPER_MAGIC
            })
            .unwrap_or(false);
        if !on_cgroupfs {
            return Err(bad("is not on a cgroup filesystem"));
        }
        paths.push(path.clone());
    }
    Ok((paths, leaf))
}

/// What [`scan`] found in a namespace, without changing anything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Ids of the systems whose monitors are alive, sorted.
    pub live: Vec<String>,
    /// Ids of directories left by dead monitors (or half-made ones).
    pub stale: Vec<String>,
}

/// List a namespace like [`list_live`], but only look: stale directories are
/// reported, not cleaned (clients leave that to `hcs-monitor reap`).
pub fn scan(root: &Path, namespace: &str) -> HcsResult<Scan> {
    let ns_dir = root.join(namespace);
    let entries = match fs::read_dir(&ns_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => {
            return Err(HcsError::from_io(
                format!("listing {}", ns_dir.display()),
                &e,
            ))
        }
    };
    let mut out = Scan::default();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix('.') {
            let dead = rest
                .rsplit("creating-")
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|pid| !process_exists(pid));
            if dead {
                out.stale.push(name);
            }
            continue;
        }
        match is_alive(&entry.path()) {
            Ok(true) => out.live.push(name),
            Ok(false) => out.stale.push(name),
            Err(e) => tracing::warn!("inspecting {}: {e}", entry.path().display()),
        }
    }
    out.live.sort();
    out.stale.sort();
    Ok(out)
}

/// True if a monitor holds `dir`'s lock. Taking the lock of a stale
/// directory to find out releases it again at once.
fn is_alive(dir: &Path) -> HcsResult<bool> {
    let lock = match open_lock(&dir.join(LOCK_FILE), false) {
        Ok(f) => f,
        Err(e) if e.hresult == HResult::ERROR_FILE_NOT_FOUND => return Ok(false),
        Err(e) => return Err(e),
    };
    match try_lock(&lock) {
        Ok(()) => Ok(false),
        Err(nix::errno::Errno::EWOULDBLOCK) => Ok(true),
        Err(e) => Err(HcsError::from_io(
            format!("locking {}", dir.display()),
            &std::io::Error::from(e),
        )),
    }
}

/// Ids of the systems of a namespace whose monitors are alive; stale
/// directories met on the way are cleaned up.
pub fn list_live(root: &Path, namespace: &str) -> HcsResult<Vec<String>> {
    let ns_dir = root.join(namespace);
    // Cleanup removes debris found here: never through a link out of the root.
    if fs::symlink_metadata(&ns_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(HcsError::new(
            HResult::E_FAIL,
            format!("{} is not a directory; leaving it alone", ns_dir.display()),
        ));
    }
    let entries = match fs::read_dir(&ns_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(HcsError::from_io(
                format!("listing {}", ns_dir.display()),
                &e,
            ))
        }
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(rest) = name.strip_prefix('.') {
            // A half-made directory whose creator died.
            if let Some(pid) = rest
                .rsplit("creating-")
                .next()
                .and_then(|p| p.parse::<i32>().ok())
            {
                if !process_exists(pid) {
                    let _ = remove_tree(&path);
                }
            }
            continue;
        }
        match cleanup_if_stale(&path) {
            Ok(Cleanup::Alive) => ids.push(name),
            Ok(_) => {}
            Err(e) => tracing::warn!("cleaning {}: {e}", path.display()),
        }
    }
    ids.sort();
    Ok(ids)
}

/// Namespaces present under the root.
pub fn list_namespaces(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn process_exists(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn ensure_private_dir(dir: &Path) -> HcsResult<()> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(HcsError::from_io(format!("creating {}", dir.display()), &e)),
    }
}

fn open_lock(path: &Path, create: bool) -> HcsResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| HcsError::from_io(format!("opening {}", path.display()), &e))
}

fn lock_exclusive(lock: &File, dir: &Path) -> HcsResult<()> {
    try_lock(lock).map_err(|e| {
        HcsError::from_io(
            format!("locking {}", dir.display()),
            &std::io::Error::from(e),
        )
    })
}

/// `flock(LOCK_EX | LOCK_NB)`. (nix's `Flock` wrapper takes ownership of the
/// file, which does not fit a lock kept inside a struct with other fields.)
fn try_lock(lock: &File) -> Result<(), nix::errno::Errno> {
    // SAFETY: flock only reads the descriptor number, which `lock` keeps open.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<(), nix::errno::Errno> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
}

/// Write a file by writing a sibling and renaming it over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> HcsResult<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| HcsError::from_io(format!("writing {}", path.display()), &e))
}

/// Remove a directory tree without ever following a mount out of it: a
/// mount point met on the way (a crashed container's rootfs, say) is
/// detached first, so nothing of what was mounted there is deleted.
pub fn remove_tree(path: &Path) -> HcsResult<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(HcsError::from_io(
                format!("inspecting {}", path.display()),
                &e,
            ))
        }
    };
    remove_tree_on(path, meta.dev(), &meta)
}

fn remove_tree_on(path: &Path, dev: u64, meta: &fs::Metadata) -> HcsResult<()> {
    let io =
        |what: &str, e: std::io::Error| HcsError::from_io(format!("{what} {}", path.display()), &e);
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", e)),
            _ => Ok(()),
        };
    }
    if meta.dev() != dev {
        // Another filesystem is mounted here: detach it, then treat what is
        // under it (the original directory) normally.
        let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
        let meta = fs::symlink_metadata(path).map_err(|e| io("inspecting", e))?;
        if meta.dev() != dev {
            return Err(HcsError::new(
                HResult::E_FAIL,
                format!(
                    "{} is still a mount point after unmounting it",
                    path.display()
                ),
            ));
        }
        return remove_tree_on(path, dev, &meta);
    }
    match fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let child = entry.path();
                if let Ok(m) = fs::symlink_metadata(&child) {
                    remove_tree_on(&child, dev, &m)?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("listing", e)),
    }
    match fs::remove_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        validate_name("id", "Test").unwrap();
        validate_name("id", "{0b2e1bd4-1b3c-4f2b-9d4e-1a2b3c4d5e6f}").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", ".hidden", &"x".repeat(129)] {
            let e = validate_name("id", bad).unwrap_err();
            assert_eq!(e.hresult, HResult::E_INVALIDARG, "{bad:?}");
        }
    }

    #[test]
    fn records_naming_other_paths_are_refused() {
        let mounts = [PathBuf::from("/sys/fs/cgroup/pids")];
        let dir = Path::new("/run/hcs/ns/sys");
        let rec = |id: &str, leaf: &str, path: &str| Record {
            id: id.into(),
            namespace: "ns".into(),
            cgroups: vec![PathBuf::from(path)],
            cgroup_leaf: Some(leaf.into()),
            ..Default::default()
        };
        let check = |r: &Record| checked_cgroups(dir, r, &mounts).err();
        assert!(matches!(
            check(&rec("other", "ns@sys", "/sys/fs/cgroup/pids/hcs/ns@sys")),
            Some(RecordError::WrongSystem { .. })
        ));
        for leaf in ["", "../x", "/abs", "a/../b"] {
            assert_eq!(
                check(&rec("sys", leaf, "/sys/fs/cgroup/pids/hcs/x")),
                Some(RecordError::BadLeaf(PathBuf::from(leaf))),
                "{leaf:?}"
            );
        }
        for path in [
            "sys/fs/cgroup/pids/hcs/ns@sys",
            "/sys/fs/cgroup/pids/x/../hcs/ns@sys",
            "/sys/fs/cgroup/pids/ns@sys",
            "/sys/fs/cgroup/pids/other/ns@sys",
            "/tmp/hcs/ns@sys",
            "/sys/fs/cgroup/memory/hcs/ns@sys",
        ] {
            assert!(
                matches!(
                    check(&rec("sys", "ns@sys", path)),
                    Some(RecordError::BadCgroup { index: 0, .. })
                ),
                "{path:?}"
            );
        }
    }

    #[test]
    fn a_rooted_record_names_exactly_its_place_from_a_hierarchy_root() {
        let mounts = [PathBuf::from("/sys/fs/cgroup/pids")];
        let dir = Path::new("/run/hcs/ns/sys");
        let rec = |parent: &str, path: &str| Record {
            id: "sys".into(),
            namespace: "ns".into(),
            cgroups: vec![PathBuf::from(path)],
            cgroup_leaf: Some("sys".into()),
            cgroup_rooted_parent: Some(parent.into()),
            ..Default::default()
        };
        let check = |r: &Record| checked_cgroups(dir, r, &mounts).err();
        // Gone paths are dropped, so only the shape is checked here.
        for (parent, path) in [
            ("docker", "/sys/fs/cgroup/pids/docker/sys"),
            ("", "/sys/fs/cgroup/pids/sys"),
            ("a/b", "/sys/fs/cgroup/pids/a/b/sys"),
        ] {
            assert!(check(&rec(parent, path)).is_none(), "{parent:?} {path:?}");
        }
        for (parent, path) in [
            ("docker", "/sys/fs/cgroup/pids/other/docker/sys"),
            ("docker", "/sys/fs/cgroup/pids/hcs/sys"),
            ("docker", "/sys/fs/cgroup/pids/docker"),
            ("", "/sys/fs/cgroup/pids/x/sys"),
        ] {
            assert!(
                matches!(
                    check(&rec(parent, path)),
                    Some(RecordError::BadCgroup { .. })
                ),
                "{parent:?} {path:?}"
            );
        }
        for parent in ["../x", "/abs", "a/../b"] {
            assert!(
                matches!(
                    check(&rec(parent, "/sys/fs/cgroup/pids/sys")),
                    Some(RecordError::BadLeaf(_))
                ),
                "{parent:?}"
            );
        }
    }

    #[test]
    fn links_out_of_the_root_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        // A stale-looking system directory elsewhere, reached through links.
        let victim = outside.path().join("sys");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join(LOCK_FILE), "").unwrap();
        fs::write(victim.join("precious"), "keep").unwrap();
        // Shaped like the debris of a creator that died.
        let debris = outside.path().join(".sys.creating-2147483646");
        fs::create_dir(&debris).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("linkns")).unwrap();
        fs::create_dir(root.path().join("ns")).unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join("ns").join("sys")).unwrap();
        for dir in [root.path().join("linkns/sys"), root.path().join("ns/sys")] {
            assert!(cleanup_if_stale(&dir).is_err(), "{}", dir.display());
            assert!(victim.join("precious").exists(), "{}", dir.display());
        }
        list_live(root.path(), "linkns").unwrap_err();
        list_live(root.path(), "ns").unwrap();
        assert!(victim.join("precious").exists());
        assert!(debris.exists());
    }

    #[test]
    fn create_is_exclusive_and_stale_dirs_are_reclaimed() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "ns", "sys").unwrap();
        assert!(a.path().join(LOCK_FILE).exists());
        let e = RunDir::create(root.path(), "ns", "sys").err().unwrap();
        assert_eq!(e.hresult, HResult::HCS_E_SYSTEM_ALREADY_EXISTS);
        assert_eq!(
            list_live(root.path(), "ns").unwrap(),
            vec!["sys".to_string()]
        );
        // Simulate a dead monitor: the lock is released but the dir stays.
        let path = a.path().to_path_buf();
        std::mem::forget(a.path().to_path_buf());
        drop(a.lock);
        assert!(path.exists());
        assert_eq!(list_live(root.path(), "ns").unwrap(), Vec::<String>::new());
        assert!(!path.exists(), "stale directory should be removed");
        let b = RunDir::create(root.path(), "ns", "sys").unwrap();
        b.remove().unwrap();
        assert!(!root.path().join("ns").exists());
    }
}
