//! Container compute systems on Linux.
//!
//! A container is: a cgroup (limits, freezer, statistics), an init process
//! cloned into new mount, pid, uts, ipc, cgroup, network (and, when asked,
//! user) namespaces, and a root filesystem of overlayfs layers that the init
//! builds inside its own mount namespace and `pivot_root`s into. Processes
//! are started into the running container by the monitor ([`spawn`]).
//!
//! Why this is written on nix/libc rather than on youki's `libcontainer`:
//! libcontainer is a whole OCI runtime (bundle on disk, its own state
//! directory, an intermediate process and a re-exec per container, exec
//! through a "tenant" builder), while HCS needs processes that are children
//! of the monitor with pipes handed to remote clients, a long-lived init,
//! and a start path measured against crun (youki's own benchmark puts it at
//! 2x crun). What we need of it is a few hundred lines of namespace and
//! mount code, kept here; cgroups live in `hcs-cgroups` (see its notes).

mod hooks;
mod init;
mod procfs;
mod rootfs;
pub mod security;
pub mod spawn;
pub mod spec;
mod sys;
pub mod users;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hcs_cgroups::Cgroup;
use hcs_errors::{HResult, HcsError, HcsResult};

pub use procfs::{process_details, rfc3339};
pub use spawn::{ProcessSpec, SpawnedProcess};
pub use spec::{CgroupsPath, ContainerSpec, Network};
pub use sys::set_window_size;

/// A container, from create to destroy.
pub struct Container {
    /// The compute system's id (the OCI state's `id` its hooks are told).
    id: String,
    spec: ContainerSpec,
    rundir: PathBuf,
    cgroup: Cgroup,
    cgroup_procs: Vec<OwnedFd>,
    own_pid_ns: OwnedFd,
    netns: Option<OwnedFd>,
    /// Existing IPC and UTS namespaces the init joins.
    joined_ns: Vec<(nix::sched::CloneFlags, OwnedFd)>,
    init: Option<(i32, spawn::Namespaces)>,
    started_at: Option<SystemTime>,
    /// The OCI poststop hooks ran (destroy runs them once).
    poststop_done: bool,
}

/// Open the namespaces the spec names for joining, each checked to be of
/// its kind (a path to another kind of namespace, or to no namespace, is
/// refused here rather than failing the start). The host's own UTS
/// namespace is refused when the spec would name it: that would rename
/// the host.
fn open_joined_namespaces(
    spec: &ContainerSpec,
) -> HcsResult<Vec<(nix::sched::CloneFlags, OwnedFd)>> {
    use nix::sched::CloneFlags;
    let ns = &spec.namespaces;
    let mut out = Vec::new();
    for (kind, flag, path) in [
        ("ipc", CloneFlags::CLONE_NEWIPC, &ns.join_ipc),
        ("uts", CloneFlags::CLONE_NEWUTS, &ns.join_uts),
    ] {
        let Some(path) = path else { continue };
        let fd = std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
            HcsError::from_io(
                format!("opening the {kind} namespace {}", path.display()),
                &e,
            )
        })?;
        if sys::namespace_type(&fd) != Some(flag.bits()) {
            return Err(HcsError::new(
                hcs_errors::HResult::E_INVALIDARG,
                format!("{} is not an {kind} namespace", path.display()),
            ));
        }
        let renames = !spec.hostname.is_empty() || spec.domainname.is_some();
        if flag == CloneFlags::CLONE_NEWUTS && renames && is_own_namespace(&fd, kind) {
            return Err(HcsError::new(
                hcs_errors::HResult::E_INVALIDARG,
                format!(
                    "{} is the host's own uts namespace: setting the container's host or \
                     domain name there would rename the host",
                    path.display()
                ),
            ));
        }
        out.push((flag, fd));
    }
    Ok(out)
}

/// `fd` is the namespace this process (the monitor, on the host) is in.
fn is_own_namespace(fd: &OwnedFd, kind: &str) -> bool {
    let id = |m: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    };
    let theirs = nix::sys::stat::fstat(fd).map(|st| (st.st_dev, st.st_ino));
    let ours = std::fs::metadata(format!("/proc/self/ns/{kind}")).map(|m| id(&m));
    matches!((theirs, ours), (Ok(a), Ok(b)) if a == b)
}

impl Container {
    /// Create the container `id`: its cgroup `<parent>/<leaf>` (with its
    /// limits; `<parent>` is shared with other containers and stays), below
    /// each hierarchy's base as `cgroup_anchor` says, and its
    /// directories. Nothing runs yet. The OCI hooks of the spec, if any, are
    /// checked here (hooks.rs says when each list runs).
    pub fn create(
        id: &str,
        spec: ContainerSpec,
        cgroup_anchor: hcs_cgroups::Anchor,
        cgroup_parent: &Path,
        cgroup_leaf: &Path,
        rundir: &Path,
    ) -> HcsResult<Container> {
        if let Some(oci) = &spec.oci {
            hooks::validate(oci)?;
        }
        let own_pid_ns = std::fs::File::open("/proc/self/ns/pid")
            .map(OwnedFd::from)
            .map_err(|e| HcsError::from_io("opening /proc/self/ns/pid", &e))?;
        let netns = match &spec.network {
            spec::Network::Join(path) => {
                Some(std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
                    HcsError::from_io(format!("opening network namespace {}", path.display()), &e)
                })?)
            }
            _ => None,
        };
        let joined_ns = open_joined_namespaces(&spec)?;
        let cgroup = match cgroup_anchor {
            hcs_cgroups::Anchor::Own => Cgroup::create_under(cgroup_parent, cgroup_leaf),
            hcs_cgroups::Anchor::Root => Cgroup::create_rooted(cgroup_parent, cgroup_leaf),
        }
        .map_err(HcsError::from)?;
        tracing::debug!("cgroup created");
        let prepared = (|| -> HcsResult<Vec<OwnedFd>> {
            // Every container's device access is confined (a process with
            // CAP_MKNOD could otherwise make and open a node for a host disk).
            let own = spec.resources.devices.as_deref().unwrap_or_default();
            let resources = hcs_cgroups::Resources {
                devices: Some(spec::device_rules(own, &spec.devices)),
                ..spec.resources.clone()
            };
            cgroup.apply(&resources).map_err(HcsError::from)?;
            rootfs::prepare_host_dirs(&spec, rundir)
                .map_err(|e| HcsError::from_io("preparing the container's directories", &e))?;
            cgroup.open_procs_files().map_err(HcsError::from)
        })();
        match prepared {
            Ok(cgroup_procs) => Ok(Container {
                id: id.to_string(),
                spec,
                rundir: rundir.to_path_buf(),
                cgroup,
                cgroup_procs,
                own_pid_ns,
                netns,
                joined_ns,
                init: None,
                started_at: None,
                poststop_done: false,
            }),
            Err(e) => {
                let _ = cgroup.destroy();
                Err(e)
            }
        }
    }

    /// The cgroup directories, for the runtime record.
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.paths()
    }

    /// Use the network namespace at `path` (another container's) instead of a new one.
    pub fn join_network(&mut self, path: &Path) -> HcsResult<()> {
        let fd = std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
            HcsError::from_io(format!("opening network namespace {}", path.display()), &e)
        })?;
        self.netns = Some(fd);
        self.spec.network = spec::Network::Join(path.to_path_buf());
        Ok(())
    }

    /// The spec it was created from.
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// Start the init; returns its host pid. With an OCI spec, its
    /// prestart, createRuntime and createContainer hooks run once the
    /// namespaces and root exist; if one fails, the init is killed and the
    /// error names the hook.
    pub fn start(&mut self) -> HcsResult<i32> {
        if self.init.is_some() {
            return Err(HcsError::invalid_state("the container is already started"));
        }
        let pid = init::start(
            &self.spec,
            &self.rundir,
            &self.cgroup_procs,
            self.netns.as_ref(),
            &self.joined_ns,
        )?;
        tracing::debug!("init ready");
        let opened = spawn::Namespaces::open(pid, self.spec.user_namespace.is_some());
        match opened.and_then(|ns| self.run_create_hooks(pid, &ns).map(|_| ns)) {
            Ok(ns) => {
                self.init = Some((pid, ns));
                self.started_at = Some(SystemTime::now());
                Ok(pid)
            }
            Err(e) => {
                // The init (and any hook left in its pid namespace) dies; the
                // monitor's SIGCHLD loop reaps it like any unknown child.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
                Err(e)
            }
        }
    }

    /// The OCI hooks of create, in the runtime namespace then in the container's.
    fn run_create_hooks(&self, pid: i32, ns: &spawn::Namespaces) -> HcsResult<()> {
        let Some(oci) = &self.spec.oci else {
            return Ok(());
        };
        for kind in [hooks::HookKind::Prestart, hooks::HookKind::CreateRuntime] {
            hooks::run(kind, oci, &self.id, Some(pid), None)?;
        }
        let place = hooks::ContainerNs {
            ns,
            own_pid_ns: &self.own_pid_ns,
            cgroup_procs: &self.cgroup_procs,
        };
        hooks::run(
            hooks::HookKind::CreateContainer,
            oci,
            &self.id,
            Some(pid),
            Some(&place),
        )?;
        tracing::debug!("create hooks ran");
        Ok(())
    }

    /// Host pid of the init, once started.
    pub fn init_pid(&self) -> Option<i32> {
        self.init.as_ref().map(|(p, _)| *p)
    }

    /// When it started.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.started_at
    }

    /// The init exited: forget it (its namespaces go with it).
    pub fn init_exited(&mut self) {
        self.init = None;
    }

    /// Start a process in the running container. For the OCI spec's own
    /// process (`process.container_process`), the startContainer hooks run
    /// first, in the container (a failure stops the container and fails the
    /// spawn), and the poststart hooks after it (failures are logged).
    pub fn spawn(&self, process: &ProcessSpec) -> HcsResult<SpawnedProcess> {
        let (pid, ns) = self
            .init
            .as_ref()
            .ok_or_else(|| HcsError::invalid_state("the container is not running"))?;
        let oci = self.spec.oci.as_ref().filter(|_| process.container_process);
        if let Some(oci) = oci {
            let place = hooks::ContainerNs {
                ns,
                own_pid_ns: &self.own_pid_ns,
                cgroup_procs: &self.cgroup_procs,
            };
            let kind = hooks::HookKind::StartContainer;
            if let Err(e) = hooks::run(kind, oci, &self.id, Some(*pid), Some(&place)) {
                // runtime.md: a failed startContainer hook stops the container.
                self.kill();
                return Err(e);
            }
        }
        let spawned = spawn::spawn(
            *pid,
            ns,
            &self.own_pid_ns,
            &self.cgroup_procs,
            process,
            self.spec.personality,
        )?;
        if let Some(oci) = oci {
            // Never fails: poststart failures are only logged.
            let _ = hooks::run(hooks::HookKind::Poststart, oci, &self.id, Some(*pid), None);
        }
        Ok(spawned)
    }

    /// Send a signal to the init.
    pub fn signal_init(&self, signal: nix::sys::signal::Signal) -> HcsResult<()> {
        if let Some((pid, _)) = &self.init {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), signal).map_err(|e| {
                HcsError::from_io("signalling the container's init", &std::io::Error::from(e))
            })?;
        }
        Ok(())
    }

    /// Kill the init (and so, by the kernel, every process of the
    /// container), thawing it first if it is frozen.
    pub fn kill(&self) {
        let _ = self.signal_init(nix::sys::signal::Signal::SIGKILL);
        if self.cgroup.is_frozen().unwrap_or(false) {
            let _ = self.cgroup.thaw();
        }
    }

    /// Freeze every process.
    pub fn pause(&self) -> HcsResult<()> {
        self.cgroup.freeze().map_err(HcsError::from)
    }

    /// Thaw every process.
    pub fn resume(&self) -> HcsResult<()> {
        self.cgroup.thaw().map_err(HcsError::from)
    }

    /// Change limits at run time.
    pub fn update_resources(&mut self, r: &hcs_cgroups::Resources) -> HcsResult<()> {
        self.cgroup.apply(r).map_err(HcsError::from)
    }

    /// cgroup statistics.
    pub fn stats(&self) -> HcsResult<hcs_cgroups::Stats> {
        self.cgroup.stats().map_err(HcsError::from)
    }

    /// Host pids of every process of the container: those of its cgroup
    /// that are in its pid namespace (runhcs's holder shares the cgroup, so
    /// that engines read the container's statistics, but it is a host
    /// process, not one of the container's).
    pub fn pids(&self) -> HcsResult<Vec<i32>> {
        let pids = self.cgroup.pids().map_err(HcsError::from)?;
        let Some((_, ns)) = &self.init else {
            return Ok(pids);
        };
        let Ok(theirs) = nix::sys::stat::fstat(&ns.pid) else {
            return Ok(pids);
        };
        let in_container = |pid: &i32| {
            std::fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino()) == (theirs.st_dev, theirs.st_ino)
            })
        };
        Ok(pids.into_iter().filter(in_container).collect())
    }

    /// Release everything: kill what is left, remove the cgroup, the
    /// ephemeral scratch layer and the mount point; then run the OCI
    /// poststop hooks, once (their failures are logged).
    pub fn destroy(&mut self) -> HcsResult<()> {
        self.kill();
        self.init = None;
        self.cgroup_procs.clear();
        let result = self.cgroup.destroy().map_err(HcsError::from);
        tracing::debug!("cgroup destroyed");
        if let Some(dir) = &self.spec.ephemeral_scratch {
            if let Err(e) = remove_dir_all_same_fs(dir) {
                tracing::warn!("removing {}: {e}", dir.display());
            }
        }
        let _ = std::fs::remove_dir(self.rundir.join("rootfs"));
        if let Some(oci) = self.spec.oci.as_ref().filter(|_| !self.poststop_done) {
            self.poststop_done = true;
            let _ = hooks::run(hooks::HookKind::Poststop, oci, &self.id, None, None);
        }
        result
    }
}

/// Remove a tree, refusing to descend into other filesystems.
fn remove_dir_all_same_fs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::symlink_metadata(dir) {
        Ok(m) => m.dev(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    fn walk(p: &Path, dev: u64) -> std::io::Result<()> {
        let m = std::fs::symlink_metadata(p)?;
        if m.dev() != dev {
            return Err(std::io::Error::other(format!(
                "{} is a mount point",
                p.display()
            )));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), dev)?;
            }
            std::fs::remove_dir(p)
        } else {
            std::fs::remove_file(p)
        }
    }
    walk(dir, dev)
}

/// Map an HCS `SignalProcessOptions.Signal` number onto a nix signal.
pub fn signal_from_number(n: i32) -> HcsResult<nix::sys::signal::Signal> {
    nix::sys::signal::Signal::try_from(n).map_err(|_| {
        HcsError::new(
            HResult::E_INVALIDARG,
            format!("SignalProcessOptions.Signal: {n} is not a signal"),
        )
    })
}
