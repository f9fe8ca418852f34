//! One compute system's cgroup: a directory in every hierarchy used.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::CgroupError;
use crate::fsio::{self, NumBuf, SmallBuf};
use crate::hierarchy::{CgroupVersion, Ctl, Hierarchies, Placement};
use crate::resources::{cpu_weight_to_shares, Resources, CPU_WEIGHT_MAX, CPU_WEIGHT_MIN};
use crate::stats::{self, Stats};

/// How long [`Cgroup::freeze`] and [`Cgroup::thaw`] wait for the kernel.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`Cgroup::destroy`] keeps killing before it gives up.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`Cgroup::create`] retries when a concurrent [`Cgroup::destroy`]
/// removes an empty intermediate directory under it.
const CREATE_RETRIES: u32 = 8;

/// One directory of the cgroup.
#[derive(Debug, Clone)]
struct Dir {
    path: PathBuf,
    v2: bool,
    /// The controllers used through this directory.
    ctl: Ctl,
    /// The directory it was created under; [`Cgroup::destroy`] removes empty
    /// parents up to, not including, this one.
    base: Option<PathBuf>,
}

/// Where a new cgroup's relative path starts in each hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// HCS's own placement: the calling process's cgroup on v1 (so compute
    /// systems stay inside the caller's limits), the root on v2.
    Own,
    /// Every hierarchy's root (its mount point).
    Root,
}

/// The directories of one compute system's cgroup, one per hierarchy used.
///
/// A `Cgroup` is only a list of paths: dropping it removes nothing (call
/// [`Cgroup::destroy`]), and it can be rebuilt from recorded paths with
/// [`Cgroup::from_paths`].
#[derive(Debug, Clone)]
pub struct Cgroup {
    dirs: Vec<Dir>,
}

/// What happened to one process we sent SIGKILL.
enum Killed {
    /// Signalled; the pidfd becomes readable when it has exited.
    Pidfd(OwnedFd),
    /// It had already exited.
    Gone,
    /// Signalled with `kill(2)` (no pidfd support); its exit cannot be waited for.
    NoPidfd,
}

impl Cgroup {
    /// Creates `<base>/<relative>` in every hierarchy used on this host (see
    /// [`Cgroup::create_in`]), using the cached [`Hierarchies::detect`].
    pub fn create(relative: &Path) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(Hierarchies::detect()?, relative)
    }

    /// Creates `<base>/<relative>` in every hierarchy of `h` that is used
    /// (e.g. `relative = "hcs/<namespace>/<id>"`).
    ///
    /// Placement: on v1 hierarchies `<base>` is the calling process's own cgroup
    /// of that hierarchy (from `/proc/self/cgroup`), so containers stay inside
    /// the caller's limits; on a v2 hierarchy it is the hierarchy root, and the
    /// controllers we need are enabled in `cgroup.subtree_control` of each
    /// ancestor from the root down (the no-internal-processes rule forbids that
    /// under a populated cgroup, so a v2 base must not hold processes). On a
    /// hybrid host the v2 hierarchy is used only when one of our controllers
    /// lives there alone, or no v1 freezer is mounted.
    ///
    /// Missing intermediate directories are created. On v1 `cpuset`,
    /// `cpuset.cpus` and `cpuset.mems` are copied from the parent into every
    /// new level, since a new cpuset starts empty and refuses tasks.
    ///
    /// Fails with [`CgroupError::AlreadyExists`] if the leaf exists in any
    /// hierarchy; whatever this call created is removed again on any failure.
    pub fn create_in(h: &Hierarchies, relative: &Path) -> Result<Cgroup, CgroupError> {
        Cgroup::create_anchored(h, relative, Anchor::Own)
    }

    /// [`Cgroup::create_in`] with the base of each hierarchy chosen by `anchor`.
    pub fn create_anchored(
        h: &Hierarchies,
        relative: &Path,
        anchor: Anchor,
    ) -> Result<Cgroup, CgroupError> {
        validate_relative(relative)?;
        let plan = h.plan()?;
        if plan.is_empty() {
            return Err(CgroupError::NoHierarchy {
                checked: "mounted hierarchies for cpu, cpuacct, cpuset, memory, pids, freezer, blkio or cgroup2".into(),
            });
        }
        let mut created = Vec::new();
        let mut dirs = Vec::with_capacity(plan.len());
        for p in plan {
            let p = &match anchor {
                Anchor::Own => p.clone(),
                Anchor::Root => Placement {
                    base: p.root.clone(),
                    ..p.clone()
                },
            };
            let leaf = p.base.join(relative);
            if let Err(e) = make_leaf(p, relative, &leaf, &mut created) {
                for dir in created.iter().rev() {
                    if let Err(err) = fsio::rmdir(dir) {
                        tracing::warn!(dir = %dir.display(), %err, "rolling back cgroup creation");
                    }
                }
                return Err(e);
            }
            dirs.push(Dir {
                path: leaf,
                v2: p.v2,
                ctl: p.ctl,
                base: Some(p.base.clone()),
            });
        }
        tracing::debug!(relative = %relative.display(), dirs = dirs.len(), "created cgroup");
        Ok(Cgroup { dirs })
    }

    /// Creates `<base>/<parent>/<leaf>` like [`Cgroup::create`], but treats
    /// `<parent>` as permanent: [`Cgroup::destroy`] removes only `<leaf>` (and
    /// its empty ancestors below `<parent>`), never `<parent>` itself. Keeping
    /// a shared parent such as `hcs` saves creating and removing it in every
    /// hierarchy for each compute system (about 0.2 ms a level here).
    pub fn create_under(parent: &Path, leaf: &Path) -> Result<Cgroup, CgroupError> {
        let mut cg = Cgroup::create(&parent.join(leaf))?;
        cg.keep_above(leaf);
        Ok(cg)
    }

    /// Creates `<root>/<parent>/<leaf>` in every hierarchy used, where
    /// `<root>` is the hierarchy's mount point whatever cgroup the caller is
    /// in: the runtime spec's reading of an absolute `cgroupsPath` ("relative
    /// to the cgroups mount point"). As with [`Cgroup::create_under`],
    /// [`Cgroup::destroy`] removes `<leaf>` and never `<parent>`, which other
    /// containers may share (runc leaves it too).
    pub fn create_rooted(parent: &Path, leaf: &Path) -> Result<Cgroup, CgroupError> {
        let mut cg =
            Cgroup::create_anchored(Hierarchies::detect()?, &parent.join(leaf), Anchor::Root)?;
        cg.keep_above(leaf);
        Ok(cg)
    }

    /// Stop [`Cgroup::destroy`] from removing anything above the last
    /// `leaf.components()` levels of each directory.
    fn keep_above(&mut self, leaf: &Path) {
        let depth = leaf.components().count();
        for d in &mut self.dirs {
            if depth > 0 && d.path.ends_with(leaf) {
                d.base = d.path.ancestors().nth(depth).map(Path::to_path_buf);
            }
        }
    }

    /// Re-opens a cgroup from recorded [`Cgroup::paths`] (for cleanup after a
    /// crash of the process that created it). Each path is matched against the
    /// detected hierarchies to learn its version and controllers (or, failing
    /// that, probed with `statfs` and its control files). Empty parents are
    /// removed by [`Cgroup::destroy`] only where the path lies under the
    /// current process's placement base; use [`Cgroup::from_paths_with_relative`]
    /// when the creator sat in a different cgroup.
    pub fn from_paths(paths: Vec<PathBuf>) -> Cgroup {
        let h = Hierarchies::detect().ok();
        let plan = h.and_then(|h| h.plan().ok());
        let dirs = paths.into_iter().map(|p| classify(p, h, plan)).collect();
        Cgroup { dirs }
    }

    /// Like [`Cgroup::from_paths`], with the relative path given to
    /// [`Cgroup::create`], so that [`Cgroup::destroy`] knows each base exactly.
    pub fn from_paths_with_relative(paths: Vec<PathBuf>, relative: &Path) -> Cgroup {
        let mut cg = Cgroup::from_paths(paths);
        let depth = relative.components().count();
        for d in &mut cg.dirs {
            d.base = if depth > 0 && d.path.ends_with(relative) {
                d.path.ancestors().nth(depth).map(Path::to_path_buf)
            } else {
                None
            };
        }
        cg
    }

    /// The leaf directory in every hierarchy, in a stable order (record these
    /// to find the cgroup again with [`Cgroup::from_paths`]).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Writes the limits that are `Some`. A failure names the file and value.
    /// A limit whose controller is not mounted (v1) or not in the cgroup's
    /// `cgroup.controllers` (v2) is [`CgroupError::ControllerUnavailable`]:
    /// a limit is never silently dropped.
    pub fn apply(&self, r: &Resources) -> Result<(), CgroupError> {
        // v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at
        // every step: raising both (an update) writes the swap limit first.
        let swap_first = match (r.memory_limit_bytes, r.memory_swap_bytes) {
            (Some(m), Some(_)) => self.find(Ctl::MEMORY).is_some_and(|d| {
                !d.v2
                    && fsio::read_opt_u64(&d.path, "memory.memsw.limit_in_bytes")
                        .ok()
                        .flatten()
                        .is_some_and(|current| m > current)
            }),
            _ => false,
        };
        if let (true, Some(total)) = (swap_first, r.memory_swap_bytes) {
            self.apply_swap(total, r.memory_limit_bytes)?;
        }
        if let Some(v) = r.memory_limit_bytes {
            let d = self.dir_for(Ctl::MEMORY, "memory")?;
            if d.v2 {
                write_ctl(d, "memory", "memory.max", max_or(v, b"max").as_bytes())?;
            } else {
                write_ctl(
                    d,
                    "memory",
                    "memory.limit_in_bytes",
                    max_or(v, b"-1").as_bytes(),
                )?;
            }
        }
        if let (false, Some(total)) = (swap_first, r.memory_swap_bytes) {
            self.apply_swap(total, r.memory_limit_bytes)?;
        }
        if let Some(v) = r.memory_reservation_bytes {
            let d = self.dir_for(Ctl::MEMORY, "memory")?;
            let (file, unlimited): (_, &'static [u8]) = if d.v2 {
                ("memory.low", b"0")
            } else {
                ("memory.soft_limit_in_bytes", b"-1")
            };
            write_ctl(d, "memory", file, max_or(v, unlimited).as_bytes())?;
        }
        if let Some(disable) = r.disable_oom_killer {
            let d = self.dir_for(Ctl::MEMORY, "memory")?;
            if d.v2 {
                if disable {
                    return Err(CgroupError::ControllerUnavailable {
                        controller: "memory.oom_control (cgroup v2 cannot disable the OOM killer)",
                        path: Some(d.path.clone()),
                    });
                }
            } else {
                write_ctl(
                    d,
                    "memory",
                    "memory.oom_control",
                    if disable { b"1" } else { b"0" },
                )?;
            }
        }
        if let Some(w) = r.cpu_weight {
            if !(CPU_WEIGHT_MIN..=CPU_WEIGHT_MAX).contains(&w) {
                return Err(CgroupError::InvalidValue {
                    what: "cpu_weight",
                    value: w.to_string(),
                    reason: "must be in 1..=10000",
                });
            }
            let d = self.dir_for(Ctl::CPU, "cpu")?;
            if d.v2 {
                write_ctl(d, "cpu", "cpu.weight", NumBuf::new(w).as_bytes())?;
            } else {
                write_ctl(
                    d,
                    "cpu",
                    "cpu.shares",
                    NumBuf::new(cpu_weight_to_shares(w)).as_bytes(),
                )?;
            }
        }
        if let Some(q) = r.cpu_quota {
            if !(1_000..=1_000_000).contains(&q.period_us) {
                return Err(CgroupError::InvalidValue {
                    what: "cpu_quota.period_us",
                    value: q.period_us.to_string(),
                    reason: "must be in 1000..=1000000",
                });
            }
            if q.quota_us < 1_000 {
                return Err(CgroupError::InvalidValue {
                    what: "cpu_quota.quota_us",
                    value: q.quota_us.to_string(),
                    reason: "must be at least 1000 (or u64::MAX for no limit)",
                });
            }
            let d = self.dir_for(Ctl::CPU, "cpu")?;
            let period = NumBuf::new(q.period_us);
            if d.v2 {
                let mut line = Vec::with_capacity(41);
                line.extend_from_slice(max_or(q.quota_us, b"max").as_bytes());
                line.push(b' ');
                line.extend_from_slice(period.as_bytes());
                write_ctl(d, "cpu", "cpu.max", &line)?;
            } else {
                let quota = max_or(q.quota_us, b"-1");
                // Period first, as runc does; if the kernel refuses the new period
                // against the old quota (a parent's bandwidth check), set the quota
                // first and the period again.
                if let Err(e) = write_ctl(d, "cpu", "cpu.cfs_period_us", period.as_bytes()) {
                    if e.io_error().and_then(io::Error::raw_os_error) != Some(libc::EINVAL) {
                        return Err(e);
                    }
                    write_ctl(d, "cpu", "cpu.cfs_quota_us", quota.as_bytes())?;
                    write_ctl(d, "cpu", "cpu.cfs_period_us", period.as_bytes())?;
                }
                write_ctl(d, "cpu", "cpu.cfs_quota_us", quota.as_bytes())?;
            }
        }
        if let Some(cpus) = &r.cpuset_cpus {
            let d = self.dir_for(Ctl::CPUSET, "cpuset")?;
            write_ctl(d, "cpuset", "cpuset.cpus", cpus.as_bytes())?;
        }
        if let Some(mems) = &r.cpuset_mems {
            let d = self.dir_for(Ctl::CPUSET, "cpuset")?;
            write_ctl(d, "cpuset", "cpuset.mems", mems.as_bytes())?;
        }
        if let Some(v) = r.memory_swappiness {
            if v > 100 {
                return Err(CgroupError::InvalidValue {
                    what: "memory_swappiness",
                    value: v.to_string(),
                    reason: "must be in 0..=100",
                });
            }
            let d = self.dir_for(Ctl::MEMORY, "memory")?;
            if d.v2 {
                return Err(CgroupError::ControllerUnavailable {
                    controller: "memory.swappiness (cgroup v2 has no per-cgroup swappiness)",
                    path: Some(d.path.clone()),
                });
            }
            write_ctl(d, "memory", "memory.swappiness", NumBuf::new(v).as_bytes())?;
        }
        if let Some(idle) = r.cpu_idle {
            let d = self.dir_for(Ctl::CPU, "cpu")?;
            if !d.v2 {
                return Err(CgroupError::ControllerUnavailable {
                    controller: "cpu.idle (cgroup v1 has no idle cgroups)",
                    path: Some(d.path.clone()),
                });
            }
            write_ctl(d, "cpu", "cpu.idle", if idle { b"1" } else { b"0" })?;
        }
        if let Some(burst) = r.cpu_burst_us {
            let d = self.dir_for(Ctl::CPU, "cpu")?;
            let file = if d.v2 {
                "cpu.max.burst"
            } else {
                "cpu.cfs_burst_us"
            };
            write_ctl(d, "cpu", file, NumBuf::new(burst).as_bytes())?;
        }
        if let Some(v) = r.pids_max {
            let d = self.dir_for(Ctl::PIDS, "pids")?;
            write_ctl(d, "pids", "pids.max", max_or(v, b"max").as_bytes())?;
        }
        if let Some(rules) = &r.devices {
            let d = self.dir_for(Ctl::DEVICES, "devices")?;
            if d.v2 {
                crate::devices::attach_v2(&d.path, rules)?;
            } else {
                crate::devices::apply_v1(&d.path, rules)?;
            }
        }
        self.apply_unified(&r.unified)
    }

    /// The OCI `unified` map: each value written to the file of that name
    /// in the v2 directory. The cgroup's own control files (`cgroup.*`:
    /// membership, freezing, killing, controllers) stay the monitor's, and a
    /// file the kernel does not offer there is an error, never skipped.
    fn apply_unified(&self, files: &[(String, String)]) -> Result<(), CgroupError> {
        if files.is_empty() {
            return Ok(());
        }
        let Some(d) = self.dirs.iter().find(|d| d.v2) else {
            return Err(CgroupError::ControllerUnavailable {
                controller: "unified (no cgroup v2 hierarchy is in use)",
                path: None,
            });
        };
        for (name, value) in files {
            let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
            if !plain || name.starts_with("cgroup.") {
                return Err(CgroupError::InvalidValue {
                    what: "unified",
                    value: name.clone(),
                    reason: "must name a controller's file of the cgroup (not cgroup.*)",
                });
            }
            if !d.path.join(name).exists() {
                return Err(CgroupError::ControllerUnavailable {
                    controller: "a unified file the cgroup does not have",
                    path: Some(d.path.join(name)),
                });
            }
            fsio::write_file(&d.path, name, value.as_bytes())?;
        }
        Ok(())
    }

    /// Memory plus swap (`total`), after the memory limit (v1 refuses a
    /// memsw limit below the memory limit).
    fn apply_swap(&self, total: u64, memory: Option<u64>) -> Result<(), CgroupError> {
        let invalid = |reason| CgroupError::InvalidValue {
            what: "memory_swap_bytes",
            value: total.to_string(),
            reason,
        };
        if memory.is_some_and(|m| total < m) {
            return Err(invalid(
                "must be at least the memory limit (it counts memory and swap)",
            ));
        }
        let d = self.dir_for(Ctl::MEMORY, "memory")?;
        if d.v2 {
            let swap = match (total, memory) {
                (u64::MAX, _) => u64::MAX,
                (_, Some(m)) if m != u64::MAX => total - m,
                _ => {
                    return Err(invalid(
                        "needs a memory limit on cgroup v2 (memory.swap.max is swap alone)",
                    ))
                }
            };
            write_ctl(
                d,
                "memory",
                "memory.swap.max",
                max_or(swap, b"max").as_bytes(),
            )
        } else {
            write_ctl(
                d,
                "memory swap accounting (swapaccount=1)",
                "memory.memsw.limit_in_bytes",
                max_or(total, b"-1").as_bytes(),
            )
        }
    }

    /// Opens every `cgroup.procs` for writing (close-on-exec), so that a freshly
    /// forked child can join with [`join_procs_files`] (`write(fd, "0")`) before
    /// exec without touching paths: the child may already be in another mount
    /// namespace.
    pub fn open_procs_files(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.dirs
            .iter()
            .map(|d| {
                let path = d.path.join("cgroup.procs");
                File::options()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|source| CgroupError::Open { path, source })
            })
            .collect()
    }

    /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            // 0 would move the calling process itself.
            return Err(CgroupError::InvalidValue {
                what: "pid",
                value: pid.to_string(),
                reason: "must be a positive process id",
            });
        }
        let pid = NumBuf::new(pid as u64);
        for d in &self.dirs {
            fsio::write_file(&d.path, "cgroup.procs", pid.as_bytes())?;
        }
        Ok(())
    }

    /// Like [`Cgroup::add_pid`], but not into a v1 `pids` hierarchy, so
    /// that the process (and its threads) do not count against the
    /// cgroup's process limit. cgroup v2 cannot keep them apart: there it
    /// joins everything, its tasks counted.
    pub fn add_pid_outside_pids_limit(&self, pid: i32) -> Result<(), CgroupError> {
        let only = Cgroup {
            dirs: self
                .dirs
                .iter()
                .filter(|d| d.v2 || !d.ctl.contains(Ctl::PIDS))
                .cloned()
                .collect(),
        };
        only.add_pid(pid)
    }

    /// Moves thread `tid` of the calling process (alone, not its whole
    /// process) under the cgroup's CPU control: v1 `tasks` of the `cpu` and
    /// `cpuacct` hierarchies, where threads of one process may sit in
    /// different cgroups. cgroup v2 allows that only inside a threaded
    /// subtree of the process's own cgroup, which a compute system's cgroup
    /// is not, so a v2 `cpu` controller is [`CgroupError::ThreadPlacement`].
    pub fn add_thread(&self, tid: i32) -> Result<(), CgroupError> {
        if tid <= 0 {
            // 0 would move the calling thread, which is not what was named.
            return Err(CgroupError::InvalidValue {
                what: "tid",
                value: tid.to_string(),
                reason: "must be a positive thread id",
            });
        }
        let d = self.dir_for(Ctl::CPU, "cpu")?;
        if d.v2 {
            // Only a threaded cgroup (see `create_threaded_child`) takes
            // single threads, through `cgroup.threads`.
            if fsio::read_trimmed(&d.path, "cgroup.type")? != "threaded" {
                return Err(CgroupError::ThreadPlacement {
                    path: d.path.clone(),
                });
            }
            return fsio::write_file(
                &d.path,
                "cgroup.threads",
                NumBuf::new(tid as u64).as_bytes(),
            );
        }
        let tid = NumBuf::new(tid as u64);
        for d in self
            .dirs
            .iter()
            .filter(|d| !d.v2 && (d.ctl.contains(Ctl::CPU) || d.ctl.contains(Ctl::CPUACCT)))
        {
            fsio::write_file(&d.path, "tasks", tid.as_bytes())?;
        }
        Ok(())
    }

    /// On cgroup v2, a threaded child `name` of this cgroup for the `cpu`
    /// controller alone: single threads of a process in this cgroup can be
    /// put in it ([`Cgroup::add_thread`]), which v2 allows only inside a
    /// threaded subtree. This cgroup becomes the subtree's root ("domain
    /// threaded"); it must hold the process whose threads go below it, and
    /// `cpu` is enabled in its `cgroup.subtree_control`. The child is
    /// removed with this cgroup ([`Cgroup::destroy`] removes children).
    pub fn create_threaded_child(&self, name: &str) -> Result<Cgroup, CgroupError> {
        let d = self.dir_for(Ctl::CPU, "cpu")?;
        if !d.v2 || name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(CgroupError::ThreadPlacement {
                path: d.path.join(name),
            });
        }
        let child = d.path.join(name);
        match std::fs::create_dir(&child) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::CreateDir {
                    path: child,
                    source,
                })
            }
        }
        let made = fsio::write_file(&child, "cgroup.type", b"threaded")
            .and_then(|()| fsio::write_file(&d.path, "cgroup.subtree_control", b"+cpu"));
        if let Err(e) = made {
            let _ = fsio::rmdir(&child);
            return Err(e);
        }
        Ok(Cgroup {
            dirs: vec![Dir {
                path: child,
                v2: true,
                ctl: Ctl::CPU,
                base: Some(d.path.clone()),
            }],
        })
    }

    /// On cgroup v2, moves the calling process out of this cgroup back to
    /// its own cgroup (where it was when the hierarchies were first
    /// detected), and with it any single thread of another process left in
    /// the subtree: KVM's per-VM worker joins the cgroup of the thread that
    /// first runs a vCPU. Afterwards [`Cgroup::destroy`] finds it empty and
    /// cannot hit the caller (its `cgroup.kill` would).
    pub fn move_self_home(&self) -> Result<(), CgroupError> {
        let h = Hierarchies::detect()?;
        let Some(home) = h
            .hierarchies()
            .iter()
            .find(|x| x.version() == CgroupVersion::V2)
            .map(|x| x.process_dir())
        else {
            return Ok(());
        };
        let mine = std::process::id();
        for d in self.dirs.iter().filter(|d| d.v2) {
            let mut dirs = vec![d.path.clone()];
            dirs.extend(fsio::child_dirs(&d.path).unwrap_or_default());
            for dir in dirs {
                let text = match fsio::read_trimmed(&dir, "cgroup.threads") {
                    Ok(t) => t,
                    Err(e)
                        if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                for tid in text.lines().map(str::trim).filter(|t| !t.is_empty()) {
                    // Our own threads move with the process below.
                    if Path::new("/proc/self/task").join(tid).exists() {
                        continue;
                    }
                    match fsio::write_file(&home, "cgroup.procs", tid.as_bytes()) {
                        Ok(()) => {}
                        Err(e)
                            if e.io_error().and_then(io::Error::raw_os_error)
                                == Some(libc::ESRCH) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        fsio::write_file(
            &home,
            "cgroup.procs",
            NumBuf::new(u64::from(mine)).as_bytes(),
        )
    }

    /// Moves the calling process's threads that are still in the cgroup
    /// (see [`Cgroup::add_thread`]) back to the process's own cgroup of each
    /// v1 hierarchy, so that [`Cgroup::destroy`] finds it empty. Threads the
    /// process did not start itself can be among them: KVM's per-VM worker
    /// joins the cgroup of the thread that first runs a vCPU. Threads of
    /// other processes are left where they are.
    pub fn release_threads(&self) -> Result<(), CgroupError> {
        let h = Hierarchies::detect()?;
        for d in self.dirs.iter().filter(|d| !d.v2) {
            let Some(home) = h
                .hierarchies()
                .iter()
                .filter(|x| x.version() == CgroupVersion::V1)
                .find(|x| d.path.starts_with(x.mount_point()))
                .map(|x| x.process_dir())
            else {
                continue;
            };
            let text = match fsio::read_trimmed(&d.path, "tasks") {
                Ok(t) => t,
                Err(e) if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            for tid in text.lines().map(str::trim).filter(|t| !t.is_empty()) {
                if !Path::new("/proc/self/task").join(tid).exists() {
                    continue;
                }
                match fsio::write_file(&home, "tasks", tid.as_bytes()) {
                    Ok(()) => {}
                    // It ended meanwhile.
                    Err(e)
                        if e.io_error().and_then(io::Error::raw_os_error) == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The threads under the cgroup's CPU control (v1 `tasks` of the `cpu`
    /// hierarchy, v2 `cgroup.threads`), sorted.
    pub fn threads(&self) -> Result<Vec<i32>, CgroupError> {
        let d = self.dir_for(Ctl::CPU, "cpu")?;
        let name = if d.v2 { "cgroup.threads" } else { "tasks" };
        let text = fsio::read_trimmed(&d.path, name)?;
        let mut out = text
            .lines()
            .map(|l| {
                l.trim()
                    .parse::<i32>()
                    .map_err(|_| fsio::parse_error(&d.path.join(name), "not a thread id", l))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        Ok(out)
    }

    /// Every process in the cgroup, including its child cgroups, read from one
    /// hierarchy (v2 if used, else the v1 freezer, else the first), sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let d = self
            .dirs
            .iter()
            .find(|d| d.v2)
            .or_else(|| self.dirs.iter().find(|d| d.ctl.contains(Ctl::FREEZER)))
            .or_else(|| self.dirs.first());
        let mut out = Vec::new();
        if let Some(d) = d {
            collect_pids(&d.path, &mut out, false)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Freezes every process: v1 `freezer.state` = `FROZEN`, or v2
    /// `cgroup.freeze` = 1. Returns once the kernel reports the cgroup frozen
    /// (v1 `freezer.state` reads `FROZEN`; v2 `cgroup.events` says `frozen 1`,
    /// waited for with `poll(POLLPRI)`), or fails after [`FREEZE_TIMEOUT`] with
    /// the cgroup thawed again.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let d = self.freezer_dir()?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        if d.v2 {
            set_v2_frozen(&d.path, true, deadline)
        } else {
            freeze_v1(&d.path, deadline)
        }
    }

    /// Thaws the cgroup and checks that the kernel reports it thawed.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        let d = self.freezer_dir()?;
        if d.v2 {
            set_v2_frozen(&d.path, false, Instant::now() + FREEZE_TIMEOUT)
        } else {
            thaw_v1(&d.path)
        }
    }

    /// Whether the kernel reports the cgroup frozen (v1 `FREEZING` counts as not frozen).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let d = self.freezer_dir()?;
        if d.v2 {
            let path = d.path.join("cgroup.events");
            let text = fsio::read_string(&path).map_err(|source| CgroupError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(stats::events_value(&path, &text, "frozen")? == 1)
        } else {
            Ok(fsio::read_trimmed(&d.path, "freezer.state")? == "FROZEN")
        }
    }

    /// Usage statistics; whatever is not available is `None`.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        if let Some(d) = self.find(Ctl::MEMORY) {
            if d.v2 {
                s.memory_usage_bytes = fsio::read_opt_u64(&d.path, "memory.current")?;
                s.memory_peak_bytes = fsio::read_opt_u64(&d.path, "memory.peak")?;
                s.memory_limit_bytes = fsio::read_opt_u64(&d.path, "memory.max")?;
            } else {
                s.memory_usage_bytes = fsio::read_opt_u64(&d.path, "memory.usage_in_bytes")?;
                s.memory_peak_bytes = fsio::read_opt_u64(&d.path, "memory.max_usage_in_bytes")?;
                s.memory_limit_bytes =
                    fsio::read_opt_u64(&d.path, "memory.limit_in_bytes")?.map(stats::v1_limit);
            }
        }

        if let Some(d) = self
            .dirs
            .iter()
            .find(|d| !d.v2 && d.ctl.contains(Ctl::CPUACCT))
        {
            s.cpu_usage_ns = fsio::read_opt_u64(&d.path, "cpuacct.usage")?;
            s.cpu_user_ns = fsio::read_opt_u64(&d.path, "cpuacct.usage_user")?;
            s.cpu_system_ns = fsio::read_opt_u64(&d.path, "cpuacct.usage_sys")?;
            if s.cpu_user_ns.is_none() || s.cpu_system_ns.is_none() {
                // Kernels before 4.7 only have cpuacct.stat, in USER_HZ ticks.
                if let Some((path, text)) = read_opt_string(&d.path, "cpuacct.stat")? {
                    let [user, system] = stats::parse_cpuacct_stat(&path, &text)?;
                    let ns_per_tick = 1_000_000_000 / clock_ticks_per_second();
                    s.cpu_user_ns = user.map(|t| t.saturating_mul(ns_per_tick));
                    s.cpu_system_ns = system.map(|t| t.saturating_mul(ns_per_tick));
                }
            }
        } else if let Some(d) = self.dirs.iter().find(|d| d.v2) {
            // cpu.stat is a core file of every v2 cgroup, controller or not.
            if let Some((path, text)) = read_opt_string(&d.path, "cpu.stat")? {
                let [usage, user, system] = stats::parse_cpu_stat(&path, &text)?;
                s.cpu_usage_ns = usage.map(|u| u.saturating_mul(1000));
                s.cpu_user_ns = user.map(|u| u.saturating_mul(1000));
                s.cpu_system_ns = system.map(|u| u.saturating_mul(1000));
            }
        }

        if let Some(d) = self.find(Ctl::PIDS) {
            s.pids_current = fsio::read_opt_u64(&d.path, "pids.current")?;
        }

        if let Some(d) = self.dirs.iter().find(|d| d.v2 && d.ctl.contains(Ctl::IO)) {
            if let Some((path, text)) = read_opt_string(&d.path, "io.stat")? {
                let [rb, wb, ro, wo] = stats::parse_io_stat(&path, &text)?;
                (
                    s.io_read_bytes,
                    s.io_write_bytes,
                    s.io_read_ops,
                    s.io_write_ops,
                ) = (Some(rb), Some(wb), Some(ro), Some(wo));
            }
        } else if let Some(d) = self
            .dirs
            .iter()
            .find(|d| !d.v2 && d.ctl.contains(Ctl::BLKIO))
        {
            for (file, slot) in [
                ("blkio.throttle.io_service_bytes_recursive", 0),
                ("blkio.throttle.io_serviced_recursive", 1),
            ] {
                if let Some((path, text)) = read_opt_string(&d.path, file)? {
                    let [r, w] = stats::parse_blkio(&path, &text)?;
                    if slot == 0 {
                        (s.io_read_bytes, s.io_write_bytes) = (Some(r), Some(w));
                    } else {
                        (s.io_read_ops, s.io_write_ops) = (Some(r), Some(w));
                    }
                }
            }
        }
        Ok(s)
    }

    /// Kills every process in the cgroup, then removes it.
    ///
    /// Killing: v2 `cgroup.kill` when present (the kernel kills the whole
    /// subtree, racing forks included), then waiting for `populated 0` in
    /// `cgroup.events`; otherwise, in rounds: freeze, list every process
    /// (all hierarchies, child cgroups included), SIGKILL each through a pidfd,
    /// thaw, and wait on the pidfds until each process has exited. Frozen
    /// processes cannot fork, so a round leaves no survivor that was not seen.
    /// Gives up with [`CgroupError::KillTimeout`] after [`KILL_TIMEOUT`].
    ///
    /// Removal: the leaf (and any child cgroups) in every hierarchy, then
    /// empty parents up to, not including, the base it was created under
    /// (`EBUSY`/`ENOTEMPTY` there means another compute system uses the parent
    /// and ends the climb). Idempotent: a missing directory is fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        // The freezer (and v2) directories go last so that they are still
        // there for a kill round if another hierarchy turns out to be busy.
        let mut order: Vec<&Dir> = self
            .dirs
            .iter()
            .filter(|d| !d.v2 && !d.ctl.contains(Ctl::FREEZER))
            .collect();
        order.extend(
            self.dirs
                .iter()
                .filter(|d| d.v2 || d.ctl.contains(Ctl::FREEZER)),
        );
        let mut rounds = 0u32;
        loop {
            let mut busy = None;
            for d in &order {
                if !remove_tree(&d.path)? {
                    busy.get_or_insert(&d.path);
                }
            }
            let Some(busy) = busy else { break };
            if Instant::now() >= deadline {
                let mut pids = Vec::new();
                let _ = collect_pids(busy, &mut pids, true);
                return Err(CgroupError::KillTimeout {
                    path: busy.clone(),
                    pids,
                    timeout_ms: KILL_TIMEOUT.as_millis() as u64,
                });
            }
            self.kill_round(deadline)?;
            rounds += 1;
            if rounds > 1 {
                // Normally one round empties the cgroup; if the kernel still
                // calls it busy, do not spin while it finishes tearing down.
                let pause = Duration::from_micros(100) * rounds.min(100);
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        for d in &self.dirs {
            remove_parents(d)?;
        }
        tracing::debug!(dirs = self.dirs.len(), "destroyed cgroup");
        Ok(())
    }

    /// One attempt at killing everything (see [`Cgroup::destroy`]).
    fn kill_round(&self, deadline: Instant) -> Result<(), CgroupError> {
        if let Some(d) = self.dirs.iter().find(|d| d.v2) {
            let path = d.path.join("cgroup.kill");
            match fsio::write_raw(&path, b"1") {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), "cgroup.kill");
                    match wait_event(&d.path, "populated", 0, deadline) {
                        Ok(_) => {}
                        Err(e)
                            if e.io_error().map(io::Error::kind)
                                == Some(io::ErrorKind::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                // No cgroup.kill (kernel < 5.14), or the directory is gone already.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CgroupError::Write {
                        path,
                        value: "1".into(),
                        source,
                    })
                }
            }
        }

        let mut pids = self.all_pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        let me = std::process::id() as i32;
        if pids.contains(&me) {
            let path = self
                .dirs
                .first()
                .map(|d| d.path.clone())
                .unwrap_or_default();
            return Err(CgroupError::CallerInside { path, pid: me });
        }

        let freezer = self.freezer_dir().ok().filter(|d| d.path.exists());
        let frozen = match freezer {
            Some(d) => {
                let until = deadline.min(Instant::now() + FREEZE_TIMEOUT);
                let r = if d.v2 {
                    set_v2_frozen(&d.path, true, until)
                } else {
                    freeze_v1(&d.path, until)
                };
                match r {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(%err, "could not freeze before killing; killing unfrozen");
                        false
                    }
                }
            }
            None => false,
        };
        if frozen {
            // Anything forked between the first listing and the freeze is seen now.
            pids = self.all_pids()?;
        }

        let mut waiting = Vec::with_capacity(pids.len());
        let mut unwaitable = false;
        let mut result = Ok(());
        for &pid in &pids {
            match kill_process(pid) {
                Ok(Killed::Pidfd(fd)) => waiting.push(fd),
                Ok(Killed::Gone) => {}
                Ok(Killed::NoPidfd) => unwaitable = true,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        tracing::debug!(count = pids.len(), frozen, "sent SIGKILL");

        // Thaw even after an error: a frozen cgroup must not be left behind.
        // Killed tasks only die once thawed (v1 holds them in the refrigerator).
        if let Some(d) = freezer {
            let r = if d.v2 {
                set_v2_frozen(&d.path, false, deadline)
            } else {
                thaw_v1(&d.path)
            };
            if let Err(err) = r {
                tracing::warn!(%err, "thawing after kill");
            }
        }
        result?;

        wait_exited(waiting, deadline);
        if unwaitable {
            // Without pidfds there is nothing to wait on; pace the rounds.
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// The union of `cgroup.procs` over every hierarchy (child cgroups
    /// included), skipping directories that are gone.
    fn all_pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        for d in &self.dirs {
            collect_pids(&d.path, &mut out, true)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The first directory (v1 before v2) carrying `ctl`.
    fn find(&self, ctl: Ctl) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| !d.v2 && d.ctl.contains(ctl))
            .or_else(|| self.dirs.iter().find(|d| d.v2 && d.ctl.contains(ctl)))
    }

    fn dir_for(&self, ctl: Ctl, name: &'static str) -> Result<&Dir, CgroupError> {
        self.find(ctl).ok_or(CgroupError::ControllerUnavailable {
            controller: name,
            path: None,
        })
    }

    fn freezer_dir(&self) -> Result<&Dir, CgroupError> {
        self.find(Ctl::FREEZER)
            .ok_or(CgroupError::FreezerUnavailable)
    }
}

/// The async-signal-safe half of [`Cgroup::open_procs_files`]: writes `"0"`
/// (the calling process) to each file. Meant for a forked child before exec;
/// it allocates nothing and makes only `write(2)` calls.
pub fn join_procs_files<Fd: AsFd>(fds: &[Fd]) -> Result<(), Errno> {
    for fd in fds {
        let n = nix::unistd::write(fd.as_fd(), b"0")?;
        if n != 1 {
            return Err(Errno::EIO);
        }
    }
    Ok(())
}

/// Refuses empty, absolute and `.`/`..`-carrying relative paths.
fn validate_relative(relative: &Path) -> Result<(), CgroupError> {
    let bad = |reason| CgroupError::InvalidPath {
        path: relative.to_path_buf(),
        reason,
    };
    if relative.as_os_str().is_empty() {
        return Err(bad("it is empty"));
    }
    for c in relative.components() {
        match c {
            Component::Normal(_) => {}
            Component::RootDir | Component::Prefix(_) => return Err(bad("it must be relative")),
            Component::CurDir | Component::ParentDir => {
                return Err(bad("it must not contain . or .."))
            }
        }
    }
    Ok(())
}

/// Creates the leaf of one placement (and missing parents), enabling v2
/// controllers on the way and filling v1 cpusets. Records what it created.
fn make_leaf(
    p: &Placement,
    relative: &Path,
    leaf: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let enable = (p.v2 && !p.enable.is_empty()).then_some(p.enable.as_bytes());
    let mut attempts = 0;
    loop {
        // With controllers to enable every ancestor needs a write anyway, so
        // walk down from the root; otherwise try the leaf first (the common
        // case: the parents exist from an earlier compute system).
        let parents_ready = match enable {
            Some(line) => prepare_v2_parents(&p.base, relative, line, created)?,
            None => true,
        };
        if parents_ready {
            match std::fs::create_dir(leaf) {
                Ok(()) => {
                    created.push(leaf.to_path_buf());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CgroupError::AlreadyExists {
                        path: leaf.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CgroupError::CreateDir {
                        path: leaf.to_path_buf(),
                        source,
                    })
                }
            }
        }
        attempts += 1;
        if attempts > CREATE_RETRIES {
            return Err(CgroupError::CreateDir {
                path: leaf.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "parent directories kept disappearing while creating the cgroup",
                ),
            });
        }
        if enable.is_none() {
            make_parents(&p.base, relative, created)?;
        }
    }
    if !p.v2 && p.ctl.contains(Ctl::CPUSET) {
        fill_cpuset(leaf, &p.base)?;
    }
    Ok(())
}

/// `mkdir` of every missing intermediate level. A level vanishing under us
/// (`ENOENT`) is left to the caller's retry.
fn make_parents(
    base: &Path,
    relative: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    let mut dir = base.to_path_buf();
    for c in parent.components() {
        dir.push(c);
        match std::fs::create_dir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(CgroupError::CreateDir { path: dir, source }),
        }
    }
    Ok(())
}

/// Enables `line` in `cgroup.subtree_control` of the base and of every
/// intermediate level, creating levels as needed. `Ok(false)` when a level
/// disappeared under us (retry).
fn prepare_v2_parents(
    base: &Path,
    relative: &Path,
    line: &[u8],
    created: &mut Vec<PathBuf>,
) -> Result<bool, CgroupError> {
    let enable = |dir: &Path| -> Result<bool, CgroupError> {
        let path = dir.join("cgroup.subtree_control");
        match fsio::write_raw(&path, line) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CgroupError::Write {
                path,
                value: String::from_utf8_lossy(line).into_owned(),
                source,
            }),
        }
    };
    if !enable(base)? {
        return Ok(false);
    }
    let Some(parent) = relative.parent() else {
        return Ok(true);
    };
    let mut dir = base.to_path_buf();
    for c in parent.components() {
        dir.push(c);
        match std::fs::create_dir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(CgroupError::CreateDir { path: dir, source }),
        }
        if !enable(&dir)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies `cpuset.cpus` and `cpuset.mems` from the parent, first filling any
/// empty ancestor below `base` the same way (it may have been created by a
/// concurrent caller that has not filled it yet).
fn fill_cpuset(dir: &Path, base: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut value = fsio::read_trimmed(parent, file)?;
        if value.is_empty() && parent != base && parent.starts_with(base) {
            fill_cpuset(parent, base)?;
            value = fsio::read_trimmed(parent, file)?;
        }
        fsio::write_file(dir, file, value.as_bytes())?;
    }
    Ok(())
}

/// Writes a controller file; a missing file in an existing directory means
/// the controller is not enabled there.
fn write_ctl(
    d: &Dir,
    controller: &'static str,
    file: &str,
    value: &[u8],
) -> Result<(), CgroupError> {
    match fsio::write_file(&d.path, file, value) {
        Err(CgroupError::Write { source, .. })
            if source.kind() == io::ErrorKind::NotFound && d.path.is_dir() =>
        {
            Err(CgroupError::ControllerUnavailable {
                controller,
                path: Some(d.path.clone()),
            })
        }
        r => r,
    }
}

/// `v` as decimal, or `unlimited` when `v` is `u64::MAX`.
fn max_or(v: u64, unlimited: &'static [u8]) -> Value {
    if v == u64::MAX {
        Value::Static(unlimited)
    } else {
        Value::Num(NumBuf::new(v))
    }
}

enum Value {
    Static(&'static [u8]),
    Num(NumBuf),
}

impl Value {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Value::Static(s) => s,
            Value::Num(n) => n.as_bytes(),
        }
    }
}

/// Appends the pids of `dir/cgroup.procs` and of every child cgroup's. With
/// `lenient`, a directory that disappeared contributes nothing.
fn collect_pids(dir: &Path, out: &mut Vec<i32>, lenient: bool) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match fsio::read_string(&path) {
        Ok(t) => t,
        Err(e) if lenient && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Read { path, source }),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let pid = line
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| fsio::parse_error(&path, "not a process id", line))?;
        out.push(pid);
    }
    let children = match fsio::child_dirs(dir) {
        Ok(c) => c,
        // The cgroup (or a child) was removed while we were reading it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for child in children {
        collect_pids(&child, out, true)?;
    }
    Ok(())
}

/// v1: writes `FROZEN` and polls `freezer.state` with short, growing sleeps
/// (v1 has no change notification) until it reads `FROZEN`, re-asserting
/// `FROZEN` each time as runc does. Thaws again on failure.
fn freeze_v1(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let path = dir.join("freezer.state");
    let start = Instant::now();
    let write = |value: &'static str| {
        fsio::write_raw(&path, value.as_bytes()).map_err(|source| CgroupError::Write {
            path: path.clone(),
            value: value.into(),
            source,
        })
    };
    write("FROZEN")?;
    let mut pause = Duration::from_micros(20);
    let mut buf = SmallBuf::new();
    loop {
        let state = fsio::read_small(&path, &mut buf).map_err(|source| CgroupError::Read {
            path: path.clone(),
            source,
        })?;
        match state {
            "FROZEN" => return Ok(()),
            "FREEZING" | "THAWED" => {}
            other => {
                let state = other.to_owned();
                let _ = write("THAWED");
                return Err(CgroupError::UnexpectedState { path, state });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let state = state.to_owned();
            let _ = write("THAWED");
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                wanted: "frozen",
                timeout_ms: (now - start).as_millis() as u64,
                state,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
        write("FROZEN")?;
    }
}

/// v1: writes `THAWED` and checks that the state reads `THAWED` (v1 thawing is synchronous).
fn thaw_v1(dir: &Path) -> Result<(), CgroupError> {
    fsio::write_file(dir, "freezer.state", b"THAWED")?;
    let state = fsio::read_trimmed(dir, "freezer.state")?;
    if state != "THAWED" {
        return Err(CgroupError::UnexpectedState {
            path: dir.join("freezer.state"),
            state,
        });
    }
    Ok(())
}

/// v2: writes `cgroup.freeze` and waits for `frozen <0|1>` in `cgroup.events`.
fn set_v2_frozen(dir: &Path, frozen: bool, deadline: Instant) -> Result<(), CgroupError> {
    let start = Instant::now();
    fsio::write_file(dir, "cgroup.freeze", if frozen { b"1" } else { b"0" })?;
    match wait_event(dir, "frozen", frozen as u64, deadline)? {
        Ok(()) => Ok(()),
        Err(last) => {
            if frozen {
                let _ = fsio::write_file(dir, "cgroup.freeze", b"0");
            }
            Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                wanted: if frozen { "frozen" } else { "thawed" },
                timeout_ms: start.elapsed().as_millis() as u64,
                state: format!("frozen {last}"),
            })
        }
    }
}

/// Waits until `key` in `dir/cgroup.events` equals `want`, sleeping in
/// `poll(POLLPRI)`: kernfs wakes pollers of a file when its content changes
/// after their last read. `Ok(Err(last))` when the deadline passed first.
fn wait_event(
    dir: &Path,
    key: &str,
    want: u64,
    deadline: Instant,
) -> Result<Result<(), u64>, CgroupError> {
    let path = dir.join("cgroup.events");
    let file = File::open(&path).map_err(|source| CgroupError::Open {
        path: path.clone(),
        source,
    })?;
    let mut buf = [0u8; 256];
    loop {
        // Reading (from offset 0) also re-arms the poll notification.
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|source| CgroupError::Read {
                path: path.clone(),
                source,
            })?;
        let text = std::str::from_utf8(&buf[..n]).map_err(|_| {
            fsio::parse_error(&path, "not UTF-8", &String::from_utf8_lossy(&buf[..n]))
        })?;
        let value = stats::events_value(&path, text, key)?;
        if value == want {
            return Ok(Ok(()));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Err(value));
        }
        let ms = (deadline - now).as_millis().clamp(1, u16::MAX as u128) as u16;
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(CgroupError::Read {
                    path,
                    source: e.into(),
                })
            }
        }
    }
}

/// SIGKILL through a pidfd, so that the signal cannot hit a recycled pid and
/// the exit can be waited for even though the process is not our child.
fn kill_process(pid: i32) -> Result<Killed, CgroupError> {
    // SAFETY: pidfd_open(2) takes a pid and a flags word and returns a new file
    // descriptor or -1; no memory is passed to the kernel.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(Killed::Gone),
            Some(libc::ENOSYS) => match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::SIGKILL,
            ) {
                Ok(()) => Ok(Killed::NoPidfd),
                Err(Errno::ESRCH) => Ok(Killed::Gone),
                Err(e) => Err(CgroupError::Signal {
                    pid,
                    source: e.into(),
                }),
            },
            _ => Err(CgroupError::Signal { pid, source: err }),
        };
    }
    let Ok(raw) = i32::try_from(fd) else {
        return Err(CgroupError::Signal {
            pid,
            source: io::Error::other("pidfd_open returned an out-of-range fd"),
        });
    };
    // SAFETY: `raw` was just returned by pidfd_open and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: pidfd_send_signal(2) takes a pidfd we own, a signal number, a
    // siginfo pointer that may be null (then it behaves like kill(2)) and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Ok(Killed::Gone);
        }
        return Err(CgroupError::Signal { pid, source: err });
    }
    Ok(Killed::Pidfd(pidfd))
}

/// Waits until every pidfd is readable (its process has exited, which is
/// after it left its cgroups) or the deadline passes.
fn wait_exited(mut fds: Vec<OwnedFd>, deadline: Instant) {
    while !fds.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let ms = (deadline - now).as_millis().clamp(1, u16::MAX as u128) as u16;
        let ready: Vec<bool> = {
            let mut polled: Vec<PollFd> = fds
                .iter()
                .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut polled, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(err) => {
                    tracing::warn!(%err, "poll on pidfds");
                    return;
                }
            }
            polled
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut i = 0;
        fds.retain(|_| {
            let keep = !ready[i];
            i += 1;
            keep
        });
    }
}

/// Removes `path` and any child cgroups under it. `Ok(true)` when it is gone
/// (or was never there), `Ok(false)` when processes still hold it.
fn remove_tree(path: &Path) -> Result<bool, CgroupError> {
    match fsio::rmdir(path) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) if is_busy(&e) => {}
        Err(source) => {
            return Err(CgroupError::RemoveDir {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let children = match fsio::child_dirs(path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(source) => {
            return Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if children.is_empty() {
        return Ok(false);
    }
    let mut all = true;
    for child in children {
        all &= remove_tree(&child)?;
    }
    if !all {
        return Ok(false);
    }
    match fsio::rmdir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if is_busy(&e) => Ok(false),
        Err(source) => Err(CgroupError::RemoveDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY))
}

/// Removes empty parents of `d` up to, not including, its base.
fn remove_parents(d: &Dir) -> Result<(), CgroupError> {
    let Some(base) = &d.base else { return Ok(()) };
    let mut cur = d.path.parent();
    while let Some(p) = cur {
        if p == base.as_path() || !p.starts_with(base) {
            break;
        }
        match fsio::rmdir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Another compute system lives under this parent.
            Err(e) if is_busy(&e) => break,
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: p.to_path_buf(),
                    source,
                })
            }
        }
        cur = p.parent();
    }
    Ok(())
}

/// Reads `dir/name` whole; `Ok(None)` when the file does not exist.
fn read_opt_string(dir: &Path, name: &str) -> Result<Option<(PathBuf, String)>, CgroupError> {
    let path = dir.join(name);
    match fsio::read_string(&path) {
        Ok(t) => Ok(Some((path, t))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `cpuacct.stat` (100 on Linux unless configured otherwise).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Works out version, controllers and base of a recorded path.
fn classify(path: PathBuf, h: Option<&Hierarchies>, plan: Option<&[Placement]>) -> Dir {
    if let Some(p) = plan.and_then(|plan| {
        plan.iter()
            .filter(|p| path.starts_with(&p.base) && path != p.base)
            .max_by_key(|p| p.base.components().count())
    }) {
        return Dir {
            v2: p.v2,
            ctl: p.ctl,
            base: Some(p.base.clone()),
            path,
        };
    }
    if let Some(hier) = h.and_then(|h| {
        h.hierarchies()
            .iter()
            .filter(|x| path.starts_with(x.mount_point()))
            .max_by_key(|x| x.mount_point().components().count())
    }) {
        let v2 = hier.version() == CgroupVersion::V2;
        let ctl = if v2 { Ctl::ALL_V2 } else { probe_v1(&path) };
        return Dir {
            path,
            v2,
            ctl,
            base: None,
        };
    }
    let v2 = matches!(
        nix::sys::statfs::statfs(&path).map(|s| s.filesystem_type()),
        Ok(t) if t == nix::sys::statfs::CGROUP2_SUPER_MAGIC
    );
    let ctl = if v2 { Ctl::ALL_V2 } else { probe_v1(&path) };
    Dir {
        path,
        v2,
        ctl,
        base: None,
    }
}

/// Which of our v1 controllers a directory has, from its control files.
fn probe_v1(dir: &Path) -> Ctl {
    [
        ("cpu.shares", Ctl::CPU),
        ("cpuacct.usage", Ctl::CPUACCT),
        ("cpuset.cpus", Ctl::CPUSET),
        ("memory.limit_in_bytes", Ctl::MEMORY),
        ("pids.max", Ctl::PIDS),
        ("freezer.state", Ctl::FREEZER),
        ("blkio.throttle.io_serviced", Ctl::BLKIO),
        ("devices.allow", Ctl::DEVICES),
    ]
    .into_iter()
    .filter(|(f, _)| dir.join(f).exists())
    .fold(Ctl::NONE, |acc, (_, c)| acc | c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked() {
        validate_relative(Path::new("hcs/ns/id")).unwrap();
        for bad in ["", "/abs", "a/../b", "./a", ".."] {
            assert!(
                matches!(
                    validate_relative(Path::new(bad)),
                    Err(CgroupError::InvalidPath { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_paths_with_relative_finds_the_base() {
        let cg = Cgroup::from_paths_with_relative(
            vec![PathBuf::from("/nonexistent/cg/x/hcs/ns/id")],
            Path::new("hcs/ns/id"),
        );
        assert_eq!(
            cg.dirs[0].base.as_deref(),
            Some(Path::new("/nonexistent/cg/x"))
        );
        let cg = Cgroup::from_paths_with_relative(
            vec![PathBuf::from("/other/id")],
            Path::new("hcs/ns/id"),
        );
        assert_eq!(cg.dirs[0].base, None);
    }

    #[test]
    fn destroy_of_missing_dirs_is_ok() {
        let cg = Cgroup::from_paths_with_relative(
            vec![PathBuf::from("/nonexistent/hcs-cgroups-test/a/b")],
            Path::new("a/b"),
        );
        cg.destroy().unwrap();
        cg.destroy().unwrap();
    }

    #[test]
    fn apply_checks_values_before_writing() {
        let cg = Cgroup {
            dirs: vec![Dir {
                path: "/nonexistent".into(),
                v2: true,
                ctl: Ctl::ALL_V2,
                base: None,
            }],
        };
        let bad = |r: Resources| matches!(cg.apply(&r), Err(CgroupError::InvalidValue { .. }));
        assert!(bad(Resources {
            cpu_weight: Some(0),
            ..Default::default()
        }));
        assert!(bad(Resources {
            cpu_weight: Some(10001),
            ..Default::default()
        }));
        use crate::resources::CpuQuota;
        assert!(bad(Resources {
            cpu_quota: Some(CpuQuota {
                quota_us: 10,
                period_us: 100_000
            }),
            ..Default::default()
        }));
        assert!(bad(Resources {
            cpu_quota: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 10
            }),
            ..Default::default()
        }));
        assert!(matches!(
            cg.add_pid(0),
            Err(CgroupError::InvalidValue { .. })
        ));
        assert!(matches!(
            cg.add_pid(-5),
            Err(CgroupError::InvalidValue { .. })
        ));
    }

    #[test]
    fn missing_controller_is_reported() {
        let cg = Cgroup {
            dirs: vec![Dir {
                path: "/nonexistent".into(),
                v2: false,
                ctl: Ctl::FREEZER,
                base: None,
            }],
        };
        let r = Resources {
            memory_limit_bytes: Some(1 << 20),
            ..Default::default()
        };
        assert!(matches!(
            cg.apply(&r),
            Err(CgroupError::ControllerUnavailable {
                controller: "memory",
                path: None
            })
        ));
        let cg = Cgroup { dirs: vec![] };
        assert!(matches!(cg.freeze(), Err(CgroupError::FreezerUnavailable)));
    }
}
