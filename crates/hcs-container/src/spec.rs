//! What a container needs on Linux, checked and derived from its HCS
//! `Container` document.
//!
//! Everything that can be checked before a single namespace exists is checked
//! here, so a bad document fails its create with a message naming the field
//! and leaves nothing behind.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use hcs_cgroups::devices::{access, DeviceKind, DeviceRule};
use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::Container;
use nix::mount::MsFlags;
use serde_json::Value;

/// CFS period used for every quota we set, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// One bind mount into the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Host path (directory, file or socket).
    pub host: PathBuf,
    /// Absolute path inside the container, without `..`.
    pub container: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
    /// The JSON path of the container path, for errors found at setup.
    pub field: String,
}

/// How the root filesystem is made.
#[derive(Debug, Clone, PartialEq)]
pub enum RootFs {
    /// overlayfs: `lower` (top first) under a writable `upper`/`work` pair.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A directory used as it is (`Storage.Path` without layers).
    Directory(PathBuf),
}

/// The network namespace of the container.
#[derive(Debug, Clone, PartialEq)]
pub enum Network {
    /// A new, empty one with loopback up.
    New,
    /// An existing one (`/run/netns/<name>` or a path).
    Join(PathBuf),
    /// The one of another container of the same namespace (resolved by the monitor).
    SharedWith(String),
    /// The monitor's own (an OCI spec without a network namespace).
    Host,
}

/// A uid or gid mapping line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdMap {
    /// First id inside.
    pub inside: u32,
    /// First id outside.
    pub outside: u32,
    /// How many.
    pub count: u32,
}

/// An OCI runtime spec given as `Container.OciSpecification`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct OciConfig {
    /// The spec (config.json).
    pub spec: oci_spec::runtime::Spec,
    /// The bundle directory (`Container.OciBundlePath`); relative paths resolve here.
    pub bundle: PathBuf,
}

/// How one mount of the container is made.
#[derive(Debug, Clone, PartialEq)]
pub enum MountKind {
    /// A bind mount of a host path: built by the monitor as a detached
    /// mount tree (with the host's credentials) and attached by the init.
    Bind {
        /// The host path.
        source: PathBuf,
        /// `rbind`: with the mounts below `source`.
        recursive: bool,
    },
    /// A new instance of a filesystem (`tmpfs`, `proc`, ...), made by the init.
    Fs {
        /// The filesystem type.
        fstype: String,
        /// The mount's source name (`tmpfs`, `shm`, ...).
        source: String,
    },
    /// The container's own cgroups (OCI type `cgroup`), bound from the
    /// host's hierarchies so that only the container's subtree shows.
    Cgroup,
}

/// One mount of the container, made in order.
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// What is mounted.
    pub kind: MountKind,
    /// Flags set: `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC`, atime flags.
    pub flags: MsFlags,
    /// Flags cleared (`rw`, `suid`, `dev`, `exec`, `diratime` on a bind mount).
    pub clear: MsFlags,
    /// `MS_PRIVATE`, `MS_SLAVE` or `MS_UNBINDABLE` (with `MS_REC` for the
    /// r-forms); `None` leaves the mount private.
    pub propagation: Option<MsFlags>,
    /// Filesystem options, passed as the mount's data (`size=64m`).
    pub data: Vec<String>,
    /// A failure to mount is ignored (the default /dev/mqueue: kernels
    /// without POSIX message queues have no mqueue filesystem).
    pub optional: bool,
    /// `tmpcopyup` (crun's, which Podman sends for `--tmpfs` and
    /// `--read-only`): the new tmpfs starts with a copy of what the
    /// directory it covers held.
    pub copy_up: bool,
    /// Where the mount comes from, for errors found at setup
    /// (`mounts[2].destination`, or which default mount).
    pub field: String,
}

/// A device node to create in the container (`linux.devices`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNode {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// `c` (character), `b` (block) or `p` (fifo).
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner (inside the container).
    pub uid: u32,
    /// Group (inside the container).
    pub gid: u32,
}

/// Which namespaces, besides mount and pid (always new), the init gets new.
/// Network and user namespaces are [`Network`] and `user_namespace`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNamespaces {
    /// IPC namespace.
    pub ipc: bool,
    /// UTS namespace (host and domain name).
    pub uts: bool,
    /// cgroup namespace.
    pub cgroup: bool,
    /// Existing IPC namespace to join (`linux.namespaces[].path`), instead
    /// of a new one or the host's.
    pub join_ipc: Option<PathBuf>,
    /// Existing UTS namespace to join, as `join_ipc` (a pod's containers
    /// share their sandbox's).
    pub join_uts: Option<PathBuf>,
}

impl NewNamespaces {
    /// The init has a UTS namespace of its own or joined, so the spec's
    /// host and domain names apply (runc sets them in a joined one too).
    pub fn names_settable(&self) -> bool {
        self.uts || self.join_uts.is_some()
    }
}

/// Paths runc masks by default (and every HCS container gets).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths runc makes read-only by default (and every HCS container gets).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything the container backend needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// UTS host name (empty: a joined UTS namespace keeps its own).
    pub hostname: String,
    /// The root filesystem.
    pub rootfs: RootFs,
    /// Whether the scratch layer was made up by us (and must be removed).
    pub ephemeral_scratch: Option<PathBuf>,
    /// Bind mounts.
    pub mappings: Vec<Mapping>,
    /// cgroup limits.
    pub resources: hcs_cgroups::Resources,
    /// User namespace id maps, if one is asked for.
    pub user_namespace: Option<(Vec<IdMap>, Vec<IdMap>)>,
    /// Network namespace.
    pub network: Network,
    /// The OCI runtime spec the container was described by
    /// (`Container.OciSpecification`), kept for what is applied later:
    /// hooks, seccomp and the defaults of its processes.
    pub oci: Option<Arc<OciConfig>>,
    /// DNS search suffixes for a generated resolv.conf.
    pub dns_search: Vec<String>,
    /// The mounts made before the bind mounts of `mappings`, in order: the
    /// standard /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue and /sys, or
    /// those of the OCI spec.
    pub mounts: Vec<MountSpec>,
    /// Namespaces created new (besides mount, pid, network and user).
    pub namespaces: NewNamespaces,
    /// Remount the root read-only once it is built.
    pub read_only_root: bool,
    /// Paths hidden: /dev/null over files, an empty read-only tmpfs over
    /// directories. Absent paths are skipped.
    pub masked_paths: Vec<PathBuf>,
    /// Paths made read-only (bind remount). Absent paths are skipped.
    pub readonly_paths: Vec<PathBuf>,
    /// Namespaced sysctls, written in the container's namespaces.
    pub sysctl: Vec<(String, String)>,
    /// Device nodes created in the container besides the default ones.
    pub devices: Vec<DeviceNode>,
    /// Propagation of the container's mount tree (`MS_REC | MS_PRIVATE` by default).
    pub rootfs_propagation: MsFlags,
    /// NIS domain name (UTS namespace), when given.
    pub domainname: Option<String>,
    /// The execution domain of the container's processes
    /// (`linux.personality`, personality(2)); `None` leaves the runtime's.
    pub personality: Option<u64>,
    /// The cgroup path the OCI spec asks for (`linux.cgroupsPath`) instead
    /// of the default `<namespace>@<id>` below the compute systems' parent.
    pub cgroups_path: Option<CgroupsPath>,
}

/// An OCI spec's `linux.cgroupsPath`, as the runtime spec reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// An absolute path: relative to each hierarchy's root ("the cgroups
    /// mount point"), as runc places it. `parent` (possibly empty) is shared
    /// with other containers and never removed; `leaf` is this container's.
    Rooted { parent: PathBuf, leaf: PathBuf },
    /// A relative path: the runtime chooses where, so it goes below the
    /// compute systems' own parent, like every HCS container.
    Relative(PathBuf),
}

fn not_supported(field: &str, why: &str) -> HcsError {
    HcsError::not_supported(format!("Container.{field}: {why}"))
}

fn path_error(field: &str, path: &str, why: &str) -> HcsError {
    HcsError::new(
        HResult::ERROR_PATH_NOT_FOUND,
        format!("Container.{field}: {path:?} {why}"),
    )
}

/// Check that `path` is absolute and names an existing directory.
fn existing_dir(field: &str, path: &str) -> HcsResult<PathBuf> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(HcsError::new(
            HResult::ERROR_BAD_PATHNAME,
            format!("Container.{field}: {path:?} is not an absolute path"),
        ));
    }
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(path_error(field, path, "is not a directory")),
        Err(_) => Err(path_error(field, path, "does not exist")),
    }
}

/// An absolute container path without `..`, normalised.
fn container_path(field: &str, path: &str) -> HcsResult<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(HcsError::new(
            HResult::ERROR_BAD_PATHNAME,
            format!("Container.{field}: {path:?} must be an absolute path inside the container"),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!("Container.{field}: {path:?} must not contain \"..\""),
                ))
            }
        }
    }
    if out == Path::new("/") {
        return Err(HcsError::new(
            HResult::ERROR_BAD_PATHNAME,
            format!("Container.{field}: mapping onto the container's root is not allowed"),
        ));
    }
    Ok(out)
}

fn host_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

impl ContainerSpec {
    /// Derive the spec of container `id` from its document. `rundir` is the
    /// system's runtime directory, which holds an ephemeral scratch layer
    /// when the document names none.
    ///
    /// With `OciSpecification` the container is described by that OCI
    /// runtime spec instead (see `from_oci`): its root directory becomes the
    /// read-only layer of an overlay with an ephemeral scratch, so a bundle's
    /// rootfs is never written to; what cannot be honoured is refused with
    /// `ERROR_NOT_SUPPORTED` naming its JSON path.
    pub fn from_document(id: &str, doc: &Container, rundir: &Path) -> HcsResult<ContainerSpec> {
        reject_windows_only(doc)?;
        if doc.oci_specification.is_some() {
            return from_oci(id, doc);
        }
        if doc.oci_bundle_path.is_some() {
            return Err(HcsError::invalid_json(
                "Container.OciBundlePath: given without Container.OciSpecification",
            ));
        }
        let hostname = doc
            .guest_os
            .as_ref()
            .and_then(|g| g.host_name.clone())
            .unwrap_or_else(|| id.chars().take(63).collect());
        if hostname.is_empty() || hostname.len() > 64 {
            return Err(HcsError::invalid_json(format!(
                "Container.GuestOs.HostName: {hostname:?} must be 1 to 64 bytes long"
            )));
        }

        let storage = doc.storage.clone().unwrap_or_default();
        if storage.qos.is_some() {
            return Err(not_supported(
                "Storage.QoS",
                "storage QoS limits are not supported for containers on Linux",
            ));
        }
        if storage.privileged_container_root_path.is_some() {
            return Err(not_supported(
                "Storage.PrivilegedContainerRootPath",
                "HostProcess containers are Windows-only",
            ));
        }
        let mut lower = Vec::new();
        for (i, layer) in storage.layers.iter().flatten().enumerate() {
            if matches!(
                layer.path_type,
                Some(hcs_schema::enums::PathType::VirtualSmbShareName)
            ) {
                return Err(not_supported(
                    &format!("Storage.Layers[{i}].PathType"),
                    "VirtualSmbShareName layers need a Windows guest; use AbsolutePath",
                ));
            }
            let path = layer.path.as_deref().unwrap_or_default();
            lower.push(existing_dir(&format!("Storage.Layers[{i}].Path"), path)?);
        }
        let scratch = match storage.path.as_deref() {
            Some(p) => Some(existing_dir("Storage.Path", p)?),
            None => None,
        };
        let mut ephemeral_scratch = None;
        let rootfs =
            match (lower.is_empty(), scratch) {
                (true, Some(dir)) => RootFs::Directory(dir),
                (true, None) => return Err(HcsError::invalid_json(
                    "Container.Storage: a container needs a root filesystem: give Storage.Layers \
                     (read-only layers, top first), Storage.Path (the writable layer, or the \
                     root directory itself when there are no layers), or both",
                )),
                (false, Some(dir)) => RootFs::Overlay {
                    lower,
                    upper: dir.join("upper"),
                    work: dir.join("work"),
                },
                (false, None) => {
                    let dir = rundir.join("scratch");
                    ephemeral_scratch = Some(dir.clone());
                    RootFs::Overlay {
                        lower,
                        upper: dir.join("upper"),
                        work: dir.join("work"),
                    }
                }
            };

        let mut mappings = Vec::new();
        for (i, m) in doc.mapped_directories.iter().flatten().enumerate() {
            let field = format!("MappedDirectories[{i}]");
            if matches!(
                m.host_path_type,
                Some(hcs_schema::enums::PathType::VirtualSmbShareName)
            ) {
                return Err(not_supported(
                    &format!("{field}.HostPathType"),
                    "VirtualSmbShareName needs a Windows guest",
                ));
            }
            let host = m.host_path.as_deref().unwrap_or_default();
            let host_path = PathBuf::from(host);
            if !host_path.is_absolute() {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!("Container.{field}.HostPath: {host:?} is not an absolute path"),
                ));
            }
            if std::fs::metadata(&host_path).is_err() {
                return Err(path_error(
                    &format!("{field}.HostPath"),
                    host,
                    "does not exist",
                ));
            }
            let container = container_path(
                &format!("{field}.ContainerPath"),
                m.container_path.as_deref().unwrap_or_default(),
            )?;
            check_proc_mount(&container, None, Some(&host_path)).map_err(|why| {
                HcsError::invalid_json(format!("Container.{field}.ContainerPath: {why}"))
            })?;
            mappings.push(Mapping {
                host: host_path,
                container,
                read_only: m.read_only.unwrap_or(false),
                field: format!("Container.{field}.ContainerPath"),
            });
        }
        for (i, p) in doc.mapped_pipes.iter().flatten().enumerate() {
            let field = format!("MappedPipes[{i}]");
            let host = p.host_path.as_deref().unwrap_or_default();
            if matches!(
                p.host_path_type,
                Some(hcs_schema::enums::MappedPipePathType::VirtualSmbPipeName)
            ) {
                return Err(not_supported(
                    &format!("{field}.HostPathType"),
                    "VirtualSmbPipeName needs a Windows guest",
                ));
            }
            if !Path::new(host).is_absolute() || std::fs::metadata(host).is_err() {
                return Err(path_error(
                    &format!("{field}.HostPath"),
                    host,
                    "is not an existing absolute path (a unix socket or fifo on Linux)",
                ));
            }
            let container = container_path(
                &format!("{field}.ContainerPipeName"),
                p.container_pipe_name.as_deref().unwrap_or_default(),
            )?;
            mappings.push(Mapping {
                host: PathBuf::from(host),
                container,
                read_only: false,
                field: format!("Container.{field}.ContainerPipeName"),
            });
        }

        let resources = resources_of(doc)?;

        let user_namespace = match &doc.user_namespace {
            None => None,
            Some(u) => {
                let conv = |v: &Option<Vec<hcs_schema::IdMapping>>| -> Vec<IdMap> {
                    v.iter()
                        .flatten()
                        .map(|m| IdMap {
                            inside: m.container_id.unwrap_or(0),
                            outside: m.host_id.unwrap_or(0),
                            count: m.size.unwrap_or(0),
                        })
                        .collect()
                };
                let (uids, gids) = (conv(&u.uid_mappings), conv(&u.gid_mappings));
                for (what, maps) in [("UidMappings", &uids), ("GidMappings", &gids)] {
                    if !maps.iter().any(|m| m.inside == 0 && m.count > 0) {
                        return Err(HcsError::invalid_json(format!(
                            "Container.UserNamespace.{what}: id 0 inside the container must be mapped \
                             (the container's init runs as root in its user namespace)"
                        )));
                    }
                }
                Some((uids, gids))
            }
        };

        let net = doc.networking.clone().unwrap_or_default();
        if net.network_adapters.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(not_supported(
                "Networking.NetworkAdapters",
                "HNS endpoints do not exist on Linux; create the interfaces in a network namespace \
                 and name it in Networking.Namespace",
            ));
        }
        let network = match (&net.namespace, &net.network_shared_container_name) {
            (Some(_), Some(_)) => {
                return Err(HcsError::invalid_json(
                    "Container.Networking: Namespace and NetworkSharedContainerName are mutually exclusive",
                ))
            }
            (Some(ns), None) => {
                let path = if ns.contains('/') { PathBuf::from(ns) } else { Path::new("/run/netns").join(ns) };
                if std::fs::metadata(&path).is_err() {
                    return Err(path_error("Networking.Namespace", ns, &format!("names no network namespace ({} does not exist)", path.display())));
                }
                Network::Join(path)
            }
            (None, Some(other)) => Network::SharedWith(other.clone()),
            (None, None) => Network::New,
        };
        if user_namespace.is_some() && network != Network::New {
            return Err(not_supported(
                "Networking",
                "a container with a UserNamespace can only have a new network namespace; joining \
                 one owned by the host's user namespace is not allowed from inside a user namespace",
            ));
        }
        let dns_search = net
            .dns_search_list
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();

        Ok(ContainerSpec {
            hostname,
            rootfs,
            ephemeral_scratch,
            mappings,
            resources,
            user_namespace,
            network,
            oci: None,
            dns_search,
            mounts: default_mounts(user_namespace_in(doc)),
            namespaces: NewNamespaces {
                ipc: true,
                uts: true,
                cgroup: true,
                join_ipc: None,
                join_uts: None,
            },
            read_only_root: false,
            masked_paths: DEFAULT_MASKED_PATHS.iter().map(PathBuf::from).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS.iter().map(PathBuf::from).collect(),
            sysctl: Vec::new(),
            devices: Vec::new(),
            rootfs_propagation: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            domainname: None,
            personality: None,
            cgroups_path: None,
        })
    }
}

fn user_namespace_in(doc: &Container) -> bool {
    doc.user_namespace.is_some()
}

/// The mounts every HCS container gets (those of `runc spec` but the cgroup
/// one). devpts gets `gid=5` only without a user namespace, where group 5
/// (tty) may not be mapped.
pub fn default_mounts(in_userns: bool) -> Vec<MountSpec> {
    let fs = |dest: &str, fstype: &str, source: &str, flags: MsFlags, data: &[&str]| MountSpec {
        destination: PathBuf::from(dest),
        kind: MountKind::Fs {
            fstype: fstype.into(),
            source: source.into(),
        },
        flags,
        clear: MsFlags::empty(),
        propagation: None,
        data: data.iter().map(|s| s.to_string()).collect(),
        optional: false,
        copy_up: false,
        field: format!("the default {fstype} mount on {dest}"),
    };
    let nne = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let devpts: &[&str] = if in_userns {
        &["newinstance", "ptmxmode=0666", "mode=0620"]
    } else {
        &["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    };
    let mut mqueue = fs("/dev/mqueue", "mqueue", "mqueue", nne, &[]);
    mqueue.optional = true;
    vec![
        fs("/proc", "proc", "proc", nne, &[]),
        fs(
            "/dev",
            "tmpfs",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            &["mode=755", "size=65536k"],
        ),
        fs(
            "/dev/pts",
            "devpts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            devpts,
        ),
        fs(
            "/dev/shm",
            "tmpfs",
            "shm",
            nne,
            &["mode=1777", "size=65536k"],
        ),
        mqueue,
        fs("/sys", "sysfs", "sysfs", nne | MsFlags::MS_RDONLY, &[]),
    ]
}

/// The cgroup resources of `Memory` and `Processor`.
pub fn resources_of(doc: &Container) -> HcsResult<hcs_cgroups::Resources> {
    let mut r = hcs_cgroups::Resources::default();
    if let Some(mb) = doc.memory.as_ref().and_then(|m| m.size_in_mb) {
        r.memory_limit_bytes = Some(memory_bytes(mb)?);
    }
    if let Some(p) = &doc.processor {
        processor_resources(p, &mut r)?;
    }
    r.pids_max = Some(pids_max(doc.pids_limit)?);
    Ok(r)
}

/// `Container.PidsLimit` as `pids.max` (`u64::MAX` for none): the default
/// when absent, no limit only when asked for with 0 or -1.
pub fn pids_max(limit: Option<i64>) -> HcsResult<u64> {
    match limit {
        None => Ok(hcs_schema::container::DEFAULT_PIDS_LIMIT),
        Some(0 | -1) => Ok(u64::MAX),
        Some(n) if (1..=hcs_schema::container::MAX_PIDS_LIMIT).contains(&n) => Ok(n as u64),
        Some(n) => Err(HcsError::invalid_json(format!(
            "Container.PidsLimit: {n} is out of range; expected 1..={}, or 0 or -1 for no limit",
            hcs_schema::container::MAX_PIDS_LIMIT
        ))),
    }
}

/// `Container_Memory.SizeInMB` in bytes.
pub fn memory_bytes(mb: u64) -> HcsResult<u64> {
    if mb == 0 {
        return Err(HcsError::invalid_json(
            "Container.Memory.SizeInMB: 0 is not a usable memory limit",
        ));
    }
    mb.checked_mul(1024 * 1024).ok_or_else(|| {
        HcsError::invalid_json(format!("Container.Memory.SizeInMB: {mb} is too large"))
    })
}

/// Map `Container_Processor` onto cgroup limits:
/// `Count` n → a quota of n CPUs; `Maximum` m (of 10 000) → m/10 000 of all
/// host CPUs; `Weight` w (1..=10 000) → cpu.weight w.
pub fn processor_resources(
    p: &hcs_schema::ContainerProcessor,
    r: &mut hcs_cgroups::Resources,
) -> HcsResult<()> {
    let set = [p.count.is_some(), p.weight.is_some(), p.maximum.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        return Err(HcsError::invalid_json(
            "Container.Processor: Count, Weight and Maximum are mutually exclusive; give one",
        ));
    }
    if let Some(count) = p.count {
        if count == 0 {
            return Err(HcsError::invalid_json(
                "Container.Processor.Count: 0 CPUs cannot run anything",
            ));
        }
        let count = u64::from(count).min(host_cpus());
        r.cpu_quota = Some(hcs_cgroups::CpuQuota {
            quota_us: count * CPU_PERIOD_US,
            period_us: CPU_PERIOD_US,
        });
    }
    if let Some(max) = p.maximum {
        if !(1..=10_000).contains(&max) {
            return Err(HcsError::invalid_json(format!(
                "Container.Processor.Maximum: {max} is out of range 1..=10000"
            )));
        }
        let quota = (max as u64 * host_cpus() * CPU_PERIOD_US / 10_000).max(1000);
        r.cpu_quota = Some(hcs_cgroups::CpuQuota {
            quota_us: quota,
            period_us: CPU_PERIOD_US,
        });
    }
    if let Some(w) = p.weight {
        if !(0..=10_000).contains(&w) {
            return Err(HcsError::invalid_json(format!(
                "Container.Processor.Weight: {w} is out of range 0..=10000"
            )));
        }
        if w > 0 {
            r.cpu_weight = Some(w as u64);
        }
    }
    Ok(())
}

// ---- Container.OciSpecification -------------------------------------------
//
// An OCI runtime spec describes the same things as Storage, GuestOs,
// MappedDirectories, Memory, Processor and UserNamespace, so it replaces
// them. Every member is either mapped or refused by its JSON path (never
// ignored): the object walks below list what each level understands.
// `process`, `hooks` and `linux.seccomp` are accepted here and applied by
// the process and hook code.

const OCI: &str = "Container.OciSpecification";

fn oci_unsupported(path: &str, why: &str) -> HcsError {
    HcsError::not_supported(format!("{OCI}.{path}: {why}"))
}

fn oci_invalid(path: &str, why: impl std::fmt::Display) -> HcsError {
    HcsError::invalid_json(format!("{OCI}.{path}: {why}"))
}

/// Whether a JSON value counts as absent: null, false, "", [] or {}.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(_) => false,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

/// Refuse the first non-empty member of `obj` (at `path`) not in `known`.
fn known_members(obj: &Value, path: &str, known: &[&str]) -> HcsResult<()> {
    if let Some(o) = obj.as_object() {
        for (k, v) in o {
            if !known.contains(&k.as_str()) && !is_empty(v) {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                return Err(oci_unsupported(
                    &at,
                    "is not supported by this container host",
                ));
            }
        }
    }
    Ok(())
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An absolute path inside the container, at JSON `path`.
fn oci_container_path(path: &str, p: &str) -> HcsResult<PathBuf> {
    container_path("", p).map_err(|e| {
        HcsError::new(
            e.hresult,
            format!(
                "{OCI}.{path}: {}",
                e.message.trim_start_matches("Container.: ")
            ),
        )
    })
}

/// An existing path, relative ones resolved in the bundle.
fn bundle_path(path: &str, p: &str, bundle: Option<&Path>) -> HcsResult<PathBuf> {
    let full = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        match bundle {
            Some(b) => b.join(p),
            None => {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!(
                        "{OCI}.{path}: {p:?} is relative, and Container.OciBundlePath (which it \
                         would be relative to) is not given"
                    ),
                ))
            }
        }
    };
    if std::fs::metadata(&full).is_err() {
        return Err(HcsError::new(
            HResult::ERROR_PATH_NOT_FOUND,
            format!("{OCI}.{path}: {} does not exist", full.display()),
        ));
    }
    Ok(full)
}

fn from_oci(id: &str, doc: &Container) -> HcsResult<ContainerSpec> {
    let raw = doc.oci_specification.clone().unwrap_or(Value::Null);
    if !raw.is_object() {
        return Err(HcsError::invalid_json(format!(
            "{OCI}: must be an OCI runtime spec (a JSON object)"
        )));
    }
    let replaced = [
        ("Storage", doc.storage.is_some()),
        ("MappedDirectories", doc.mapped_directories.is_some()),
        ("GuestOs", doc.guest_os.is_some()),
        ("Memory", doc.memory.is_some()),
        ("Processor", doc.processor.is_some()),
        ("UserNamespace", doc.user_namespace.is_some()),
        ("PidsLimit", doc.pids_limit.is_some()),
        ("MappedPipes", doc.mapped_pipes.is_some()),
        ("Networking", doc.networking.is_some()),
    ];
    let given: Vec<&str> = replaced
        .iter()
        .filter(|(_, g)| *g)
        .map(|(n, _)| *n)
        .collect();
    if !given.is_empty() {
        return Err(HcsError::invalid_json(format!(
            "Container.{}: not allowed with {OCI}, which describes the same (root.path, mounts, \
             hostname, linux.resources (pids.limit too), linux.uidMappings/gidMappings, \
             linux.namespaces)",
            given.join(", Container.")
        )));
    }
    let spec: oci_spec::runtime::Spec = serde_json::from_value(raw.clone())
        .map_err(|e| HcsError::invalid_json(format!("{OCI}: not a valid OCI runtime spec: {e}")))?;

    let bundle = match doc.oci_bundle_path.as_deref() {
        None => None,
        Some(b) => Some(existing_dir("OciBundlePath", b)?),
    };

    // The runtime spec's own top-level members that this host cannot honour
    // (solaris, windows, vm, zos) are refused; members the spec does not
    // define are ignored, as it requires ("MUST ignore unknown
    // properties"), and named in the log.
    const SUPPORTED: [&str; 9] = [
        "ociVersion",
        "process",
        "root",
        "hostname",
        "domainname",
        "mounts",
        "hooks",
        "annotations",
        "linux",
    ];
    const SPEC_ONLY: [&str; 4] = ["solaris", "windows", "vm", "zos"];
    if let Some(o) = raw.as_object() {
        for (k, v) in o {
            if SUPPORTED.contains(&k.as_str()) || is_empty(v) {
                continue;
            }
            if SPEC_ONLY.contains(&k.as_str()) {
                return Err(oci_unsupported(
                    k,
                    "is not supported by this container host",
                ));
            }
            tracing::warn!(
                "{OCI}.{k}: not a member of the OCI runtime spec; ignored, as the spec requires"
            );
        }
    }
    let empty = Value::Null;
    let linux = raw.get("linux").unwrap_or(&empty);
    known_members(
        linux,
        "linux",
        &[
            "namespaces",
            "uidMappings",
            "gidMappings",
            "sysctl",
            "resources",
            "cgroupsPath",
            "devices",
            "rootfsPropagation",
            "maskedPaths",
            "readonlyPaths",
            "seccomp",
            "personality",
        ],
    )?;
    let personality = oci_personality(linux.get("personality"))?;

    // root: the bundle's directory (see below).
    let root = raw.get("root").unwrap_or(&empty);
    known_members(root, "root", &["path", "readonly"])?;
    let root_path = str_at(root, "path").unwrap_or_default();
    if root_path.is_empty() {
        return Err(oci_invalid(
            "root.path",
            "a container needs a root filesystem directory",
        ));
    }
    let root_dir = bundle_path("root.path", root_path, bundle.as_deref())?;
    if !root_dir.is_dir() {
        return Err(HcsError::new(
            HResult::ERROR_PATH_NOT_FOUND,
            format!("{OCI}.root.path: {} is not a directory", root_dir.display()),
        ));
    }
    let read_only_root = root
        .get("readonly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // The bundle's root directory itself is the container's root, bound and
    // made read-only at the end when the spec says so, as runc does: what a
    // container writes lands in its rootfs, where engines look for it
    // (docker diff and commit, podman cp of a stopped container). Missing
    // mountpoints are created in it, as runc creates them.
    let (rootfs, ephemeral_scratch) = (RootFs::Directory(root_dir.clone()), None);

    // Namespaces.
    let mut new = std::collections::BTreeSet::new();
    let mut network = Network::Host;
    let (mut join_ipc, mut join_uts) = (None, None);
    for (i, ns) in linux
        .get("namespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("linux.namespaces[{i}]");
        known_members(ns, &at, &["type", "path"])?;
        let typ = str_at(ns, "type").unwrap_or_default();
        if !matches!(
            typ,
            "pid" | "network" | "ipc" | "uts" | "mount" | "cgroup" | "user"
        ) {
            return Err(oci_unsupported(
                &format!("{at}.type"),
                &format!("{typ:?} namespaces are not supported"),
            ));
        }
        if !new.insert(typ.to_string()) {
            return Err(oci_invalid(&at, format!("a second {typ} namespace")));
        }
        let path = str_at(ns, "path").filter(|p| !p.is_empty());
        if let Some(p) = path {
            if !Path::new(p).is_absolute() || std::fs::metadata(p).is_err() {
                return Err(HcsError::new(
                    HResult::ERROR_PATH_NOT_FOUND,
                    format!("{OCI}.{at}.path: {p:?} is not an existing absolute path"),
                ));
            }
        }
        match (typ, path) {
            ("network", None) => network = Network::New,
            (_, None) => {}
            ("network", Some(p)) => {
                network = Network::Join(PathBuf::from(p));
                new.remove(typ);
            }
            ("ipc", Some(p)) => {
                join_ipc = Some(PathBuf::from(p));
                new.remove(typ);
            }
            ("uts", Some(p)) => {
                join_uts = Some(PathBuf::from(p));
                new.remove(typ);
            }
            (_, Some(p)) => {
                return Err(oci_unsupported(
                    &format!("{at}.path"),
                    &format!(
                        "joining an existing {typ} namespace ({p:?}) is not supported; network, \
                         ipc and uts namespaces can be joined"
                    ),
                ))
            }
        }
    }
    for required in ["mount", "pid"] {
        if !new.contains(required) {
            return Err(oci_unsupported(
                "linux.namespaces",
                &format!(
                    "a new {required} namespace is required: the container's init is PID 1 of \
                     its own pid namespace and builds the root in its own mount namespace"
                ),
            ));
        }
    }
    let namespaces = NewNamespaces {
        ipc: new.contains("ipc"),
        uts: new.contains("uts"),
        cgroup: new.contains("cgroup"),
        join_ipc,
        join_uts,
    };

    // User namespace and id mappings.
    let id_maps = |key: &str| -> HcsResult<Vec<IdMap>> {
        let mut out = Vec::new();
        for (i, m) in linux
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("linux.{key}[{i}]");
            known_members(m, &at, &["containerID", "hostID", "size"])?;
            let num = |k: &str| {
                m.get(k)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| oci_invalid(&format!("{at}.{k}"), "must be a 32-bit id"))
            };
            let (inside, outside, count) = (num("containerID")?, num("hostID")?, num("size")?);
            if count == 0 {
                return Err(oci_invalid(&format!("{at}.size"), "is 0"));
            }
            out.push(IdMap {
                inside,
                outside,
                count,
            });
        }
        Ok(out)
    };
    let (uids, gids) = (id_maps("uidMappings")?, id_maps("gidMappings")?);
    let user_namespace = if new.contains("user") {
        for (what, maps) in [("uidMappings", &uids), ("gidMappings", &gids)] {
            if !maps.iter().any(|m| m.inside == 0 && m.count > 0) {
                return Err(oci_invalid(
                    &format!("linux.{what}"),
                    "id 0 inside the container must be mapped (the container's init runs as \
                     root in its user namespace)",
                ));
            }
        }
        Some((uids, gids))
    } else {
        if !uids.is_empty() || !gids.is_empty() {
            return Err(oci_invalid(
                "linux.uidMappings",
                "id mappings need a user namespace in linux.namespaces",
            ));
        }
        None
    };
    if user_namespace.is_some() {
        // Processes enter the user namespace first, and from inside it may
        // not join namespaces owned by the host's user namespace.
        let shared: Vec<&str> = [
            ("network", network != Network::New),
            ("ipc", !new.contains("ipc")),
            ("uts", !new.contains("uts")),
            ("cgroup", !new.contains("cgroup")),
        ]
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
        if !shared.is_empty() {
            return Err(oci_unsupported(
                "linux.namespaces",
                &format!(
                    "a container with a user namespace needs new network, ipc, uts and cgroup                      namespaces too; missing or joined: {}",
                    shared.join(", ")
                ),
            ));
        }
    }

    // Host and domain name.
    let hostname = match str_at(&raw, "hostname").filter(|h| !h.is_empty()) {
        Some(h) if !namespaces.names_settable() => {
            return Err(oci_invalid(
                "hostname",
                format!("{h:?} cannot be set without a uts namespace of the container's"),
            ))
        }
        Some(h) if h.len() > 64 => {
            return Err(oci_invalid("hostname", "must be at most 64 bytes long"))
        }
        Some(h) => Some(h.to_string()),
        // A new namespace gets the id; a joined one keeps its name.
        None if namespaces.uts => Some(id.chars().take(63).collect()),
        None => None,
    };
    let domainname = match str_at(&raw, "domainname").filter(|h| !h.is_empty()) {
        Some(_) if !namespaces.names_settable() => {
            return Err(oci_invalid(
                "domainname",
                "cannot be set without a uts namespace of the container's",
            ))
        }
        Some(d) if d.len() > 64 => {
            return Err(oci_invalid("domainname", "must be at most 64 bytes long"))
        }
        d => d.map(str::to_string),
    };

    let mut mounts = Vec::new();
    for (i, m) in raw
        .get("mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        mounts.push(oci_mount(i, m, bundle.as_deref())?);
    }

    let paths = |key: &str| -> HcsResult<Vec<PathBuf>> {
        linux
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| {
                let at = format!("linux.{key}[{i}]");
                let p = p.as_str().unwrap_or_default();
                oci_container_path(&at, p)
            })
            .collect()
    };
    // Given lists replace the defaults; an absent one means none (as in runc).
    let masked_paths = paths("maskedPaths")?;
    let readonly_paths = paths("readonlyPaths")?;

    let mut sysctl = Vec::new();
    if let Some(map) = linux.get("sysctl").and_then(Value::as_object) {
        for (k, v) in map {
            let at = format!("linux.sysctl.{k}");
            let value = v
                .as_str()
                .ok_or_else(|| oci_invalid(&at, "must be a string"))?;
            check_sysctl(&at, k, &namespaces, &network)?;
            sysctl.push((k.clone(), value.to_string()));
        }
    }

    let mut devices = Vec::new();
    for (i, d) in linux
        .get("devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        devices.push(oci_device(i, d)?);
    }

    let resources = oci_resources(linux.get("resources").unwrap_or(&empty))?;
    let cgroups_path = str_at(linux, "cgroupsPath")
        .filter(|p| !p.is_empty())
        .map(oci_cgroups_path)
        .transpose()?;
    let rootfs_propagation = match str_at(linux, "rootfsPropagation").unwrap_or_default() {
        "" | "rprivate" => MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        "private" => MsFlags::MS_PRIVATE,
        "rslave" => MsFlags::MS_REC | MsFlags::MS_SLAVE,
        "slave" => MsFlags::MS_SLAVE,
        "runbindable" => MsFlags::MS_REC | MsFlags::MS_UNBINDABLE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        other => {
            return Err(oci_unsupported(
                "linux.rootfsPropagation",
                &format!(
                    "{other:?} is not supported (shared propagation would let the container's \
                     mounts reach the host); use private, rprivate, slave, rslave, unbindable \
                     or runbindable"
                ),
            ))
        }
    };

    let bundle = bundle
        .or_else(|| root_dir.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    Ok(ContainerSpec {
        hostname: hostname.unwrap_or_default(),
        rootfs,
        ephemeral_scratch,
        mappings: Vec::new(),
        resources,
        user_namespace,
        network,
        oci: Some(Arc::new(OciConfig { spec, bundle })),
        dns_search: Vec::new(),
        mounts,
        namespaces,
        read_only_root,
        masked_paths,
        readonly_paths,
        sysctl,
        devices,
        rootfs_propagation,
        domainname,
        personality,
        cgroups_path,
    })
}

/// `linux.personality`: the domain as personality(2) takes it. Flags have
/// no defined names in the runtime spec and are refused.
fn oci_personality(p: Option<&Value>) -> HcsResult<Option<u64>> {
    const AT: &str = "linux.personality";
    let Some(p) = p.filter(|p| !p.is_null()) else {
        return Ok(None);
    };
    known_members(p, AT, &["domain", "flags"])?;
    if p.get("flags").is_some_and(|f| !is_empty(f)) {
        return Err(oci_unsupported(
            &format!("{AT}.flags"),
            "personality flags are not supported",
        ));
    }
    match str_at(p, "domain") {
        Some("LINUX") => Ok(Some(0)),
        // PER_LINUX32 (linux/personality.h).
        Some("LINUX32") => Ok(Some(0x0008)),
        other => Err(oci_invalid(
            &format!("{AT}.domain"),
            format!("{other:?} is not LINUX or LINUX32"),
        )),
    }
}

/// `linux.cgroupsPath`: an absolute path is placed at each hierarchy's root
/// (engines read statistics and OOM events there: Docker gives
/// `/docker/<id>`, containerd `/<namespace>/<id>`), a relative one below the
/// compute systems' parent. The systemd form (`slice:prefix:name`) needs
/// the systemd driver, which is not implemented.
fn oci_cgroups_path(p: &str) -> HcsResult<CgroupsPath> {
    const FIELD: &str = "linux.cgroupsPath";
    if p.contains(':') {
        return Err(oci_unsupported(
            FIELD,
            &format!("{p:?}: the systemd form slice:prefix:name needs the systemd cgroup driver, which is not implemented"),
        ));
    }
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(oci_invalid(FIELD, format!("{p:?} must not contain \"..\"")))
            }
        }
    }
    if out.as_os_str().is_empty() || p.contains('\0') {
        return Err(oci_invalid(FIELD, format!("{p:?} names no cgroup")));
    }
    if !p.starts_with('/') {
        return Ok(CgroupsPath::Relative(out));
    }
    let leaf = PathBuf::from(out.file_name().unwrap_or_default());
    let parent = out.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(CgroupsPath::Rooted { parent, leaf })
}

/// Flag options of mounts: (name, set, clear).
const MOUNT_FLAGS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("rw", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("suid", MsFlags::empty(), MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("dev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("exec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("relatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("noatime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("strictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nodiratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("diratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("defaults", MsFlags::empty(), MsFlags::empty()),
];

/// The flag behind a bind mount's recursive option (`rro` is `ro` on every
/// mount of the tree, as runc's mount_setattr options are).
fn recursive_bind_flag(
    bind: bool,
    option: &str,
) -> Option<&'static (&'static str, MsFlags, MsFlags)> {
    let base = option.strip_prefix('r').filter(|_| bind)?;
    MOUNT_FLAGS
        .iter()
        .find(|(n, _, _)| *n == base && *n != "defaults")
}

/// Flag options that only make sense for a new filesystem instance: they
/// undo an atime mode that a fresh mount does not have anyway.
const FS_ONLY_FLAGS: &[&str] = &["atime", "norelatime", "nostrictatime"];

/// Propagation options.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Filesystem types a mount may have, with the `key=value` (or bare)
/// options each understands.
const FS_TYPES: &[(&str, &[&str])] = &[
    (
        "tmpfs",
        &[
            "size=",
            "mode=",
            "uid=",
            "gid=",
            "nr_inodes=",
            "nr_blocks=",
            "huge=",
        ],
    ),
    ("proc", &["hidepid=", "subset=", "gid="]),
    ("sysfs", &[]),
    (
        "devpts",
        &["newinstance", "ptmxmode=", "mode=", "gid=", "uid=", "max="],
    ),
    ("mqueue", &[]),
    ("cgroup", &[]),
    ("cgroup2", &[]),
];

/// One entry of `mounts`.
/// What may be mounted below /proc besides a procfs on /proc itself: the
/// files lxcfs emulates (runc's list, in its checkProcMount).
const PROC_MOUNTS_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// runc's rule for mounts at or below /proc: on /proc itself only a proc
/// file system (a new one, or a bind of one); below it only the files of
/// [`PROC_MOUNTS_ALLOWED`]. Anything else would hide or replace the
/// container's view of /proc (a bind of the host's / there, a writable bind
/// of the host's /proc/sys). `dest` is normalised; `fstype` is the type of
/// a new mount, `bind_source` the source of a bind mount. Returns why not.
pub fn check_proc_mount(
    dest: &Path,
    fstype: Option<&str>,
    bind_source: Option<&Path>,
) -> Result<(), String> {
    let Ok(below) = dest.strip_prefix("/proc") else {
        return Ok(());
    };
    if below.as_os_str().is_empty() {
        let is_proc = match bind_source {
            Some(src) => nix::sys::statfs::statfs(src)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC),
            None => fstype == Some("proc"),
        };
        return if is_proc {
            Ok(())
        } else {
            Err(
                "\"/proc\": only a proc file system (new, or a bind of one) may be mounted here"
                    .into(),
            )
        };
    }
    if PROC_MOUNTS_ALLOWED.iter().any(|a| dest == Path::new(a)) {
        return Ok(());
    }
    Err(format!(
        "{dest:?} is inside /proc, where only {} may be mounted",
        PROC_MOUNTS_ALLOWED.join(", ")
    ))
}

fn oci_mount(i: usize, m: &Value, bundle: Option<&Path>) -> HcsResult<MountSpec> {
    let at = format!("mounts[{i}]");
    known_members(m, &at, &["destination", "type", "source", "options"])?;
    let destination = oci_container_path(
        &format!("{at}.destination"),
        str_at(m, "destination").unwrap_or_default(),
    )?;
    let typ = str_at(m, "type").unwrap_or_default();
    let options: Vec<&str> = m
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|o| o.as_str().unwrap_or_default())
        .collect();
    let bind = typ == "bind" || options.iter().any(|o| *o == "bind" || *o == "rbind");
    let fs_options: &[&str] = if bind {
        &[]
    } else {
        match FS_TYPES.iter().find(|(t, _)| *t == typ) {
            Some((_, opts)) => opts,
            None => {
                return Err(oci_unsupported(
                    &format!("{at}.type"),
                    &format!(
                        "{typ:?} mounts are not supported; use bind mounts or one of {}",
                        FS_TYPES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    };
    let mut spec = MountSpec {
        destination,
        kind: MountKind::Cgroup,
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: None,
        data: Vec::new(),
        optional: false,
        copy_up: false,
        field: format!("{at}.destination"),
    };
    let mut recursive = false;
    for (j, o) in options.iter().enumerate() {
        let oat = format!("{at}.options[{j}]");
        if let Some((_, set, clear)) = MOUNT_FLAGS.iter().find(|(n, _, _)| n == o) {
            spec.flags = (spec.flags - *clear) | *set;
            spec.clear = (spec.clear - *set) | *clear;
        } else if let Some((_, p)) = PROPAGATION.iter().find(|(n, _)| n == o) {
            spec.propagation = Some(*p);
        } else if bind && (*o == "bind" || *o == "rbind") {
            recursive |= *o == "rbind";
        } else if let Some((_, set, clear)) = recursive_bind_flag(bind, o) {
            // rro, rnosuid, ...: a bind's options already reach every mount
            // below it (mount_setattr with AT_RECURSIVE for an rbind; a
            // plain bind has none below), so these mean what they say.
            spec.flags = (spec.flags - *clear) | *set;
            spec.clear = (spec.clear - *set) | *clear;
        } else if typ == "tmpfs" && (*o == "tmpcopyup" || *o == "notmpcopyup") {
            spec.copy_up = *o == "tmpcopyup";
        } else if !bind && FS_ONLY_FLAGS.contains(o) {
        } else if !bind
            && fs_options.iter().any(|k| {
                if k.ends_with('=') {
                    o.starts_with(k)
                } else {
                    o == k
                }
            })
        {
            spec.data.push(o.to_string());
        } else {
            let why = match *o {
                "shared" | "rshared" => {
                    "shared propagation would let the container's mounts reach the host".to_string()
                }
                _ if bind => "is not a supported bind-mount option".to_string(),
                _ => format!("is not a supported option of a {typ} mount"),
            };
            return Err(oci_unsupported(&oat, &format!("{o:?} {why}")));
        }
    }
    spec.kind = if bind {
        let source = str_at(m, "source").unwrap_or_default();
        if source.is_empty() {
            return Err(oci_invalid(
                &format!("{at}.source"),
                "a bind mount needs a source",
            ));
        }
        MountKind::Bind {
            source: bundle_path(&format!("{at}.source"), source, bundle)?,
            recursive,
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        MountKind::Cgroup
    } else {
        MountKind::Fs {
            fstype: typ.to_string(),
            source: str_at(m, "source")
                .filter(|s| !s.is_empty())
                .unwrap_or(typ)
                .to_string(),
        }
    };
    let proc_check = match &spec.kind {
        MountKind::Bind { source, .. } => check_proc_mount(&spec.destination, None, Some(source)),
        MountKind::Cgroup => check_proc_mount(&spec.destination, Some(typ), None),
        MountKind::Fs { fstype, .. } => check_proc_mount(&spec.destination, Some(fstype), None),
    };
    proc_check.map_err(|why| oci_invalid(&format!("{at}.destination"), why))?;
    Ok(spec)
}

/// runc's rule: only sysctls that belong to a namespace the container has
/// its own of may be set.
fn check_sysctl(at: &str, key: &str, ns: &NewNamespaces, net: &Network) -> HcsResult<()> {
    if key.is_empty() || key.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
        return Err(oci_invalid(at, "is not a sysctl name"));
    }
    let ipc = matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.");
    if ipc {
        if !ns.ipc {
            return Err(oci_unsupported(
                at,
                "needs a new ipc namespace (linux.namespaces)",
            ));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if matches!(net, Network::Host) {
            return Err(oci_unsupported(
                at,
                "needs a network namespace of the container's own (linux.namespaces)",
            ));
        }
        return Ok(());
    }
    Err(oci_unsupported(
        at,
        "is not a namespaced sysctl; only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and \
         net.* can be set for a container",
    ))
}

/// One entry of `linux.devices`.
fn oci_device(i: usize, d: &Value) -> HcsResult<DeviceNode> {
    let at = format!("linux.devices[{i}]");
    known_members(
        d,
        &at,
        &["path", "type", "major", "minor", "fileMode", "uid", "gid"],
    )?;
    let path = oci_container_path(&format!("{at}.path"), str_at(d, "path").unwrap_or_default())?;
    let kind = match str_at(d, "type").unwrap_or_default() {
        "c" | "u" => 'c',
        "b" => 'b',
        "p" => 'p',
        other => {
            return Err(oci_unsupported(
                &format!("{at}.type"),
                &format!("{other:?} is not a device type (c, u, b or p)"),
            ))
        }
    };
    let num = |k: &str| -> HcsResult<u64> {
        match d.get(k) {
            None | Some(Value::Null) if kind == 'p' => Ok(0),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or_else(|| oci_invalid(&format!("{at}.{k}"), "must be a device number")),
            None => Err(oci_invalid(&format!("{at}.{k}"), "is required")),
        }
    };
    let id = |k: &str| -> HcsResult<u32> {
        match d.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| oci_invalid(&format!("{at}.{k}"), "must be a 32-bit id")),
        }
    };
    // Podman sends the file type's bits too (0o20666 for a character
    // device), as stat reports them; runc ORs the type in anyway. They are
    // accepted when they are the declared type's, refused otherwise.
    let type_bits = match kind {
        'c' => u64::from(libc::S_IFCHR),
        'b' => u64::from(libc::S_IFBLK),
        _ => u64::from(libc::S_IFIFO),
    };
    let mode = match d.get("fileMode") {
        None | Some(Value::Null) => 0o666,
        Some(v) => v
            .as_u64()
            .map(|m| {
                if m & u64::from(libc::S_IFMT) == type_bits {
                    m & 0o7777
                } else {
                    m
                }
            })
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                oci_invalid(
                    &format!("{at}.fileMode"),
                    "must be permission bits, with at most the file type's own bits",
                )
            })? as u32,
    };
    Ok(DeviceNode {
        path,
        kind,
        major: num("major")?,
        minor: num("minor")?,
        mode,
        uid: id("uid")?,
        gid: id("gid")?,
    })
}

/// `linux.resources` onto cgroup limits.
fn oci_resources(r: &Value) -> HcsResult<hcs_cgroups::Resources> {
    let mut out = hcs_cgroups::Resources::default();
    known_members(
        r,
        "linux.resources",
        &["memory", "cpu", "pids", "devices", "blockIO", "unified"],
    )?;
    if let Some(u) = r.get("unified").filter(|u| !u.is_null()) {
        let Some(map) = u.as_object() else {
            return Err(oci_invalid(
                "linux.resources.unified",
                "must be an object of file: value",
            ));
        };
        for (file, value) in map {
            let at = format!("linux.resources.unified.{file}");
            let Some(value) = value.as_str() else {
                return Err(oci_invalid(&at, "must be a string"));
            };
            if file.is_empty() || file.contains('/') || file.starts_with('.') {
                return Err(oci_invalid(
                    &at,
                    "must name a file of the container's cgroup",
                ));
            }
            if file.starts_with("cgroup.") {
                return Err(oci_unsupported(
                    &at,
                    "the cgroup's own control files (membership, freezing, controllers) are the runtime's",
                ));
            }
            out.unified.push((file.clone(), value.to_string()));
        }
    }
    if let Some(b) = r.get("blockIO") {
        // A weight of 0 is no weight (runc writes blkio.weight only when it
        // is not 0), and Docker sends {"weight": 0} with every container.
        let at = "linux.resources.blockIO";
        for key in ["weight", "leafWeight"] {
            if b.get(key).and_then(Value::as_u64).is_some_and(|w| w != 0) {
                return Err(oci_unsupported(
                    &format!("{at}.{key}"),
                    "block I/O weights are not supported by this container host",
                ));
            }
        }
        known_members(b, at, &["weight", "leafWeight"])?;
    }
    if let Some(m) = r.get("memory") {
        known_members(
            m,
            "linux.resources.memory",
            &[
                "limit",
                "swap",
                "reservation",
                "disableOOMKiller",
                "kernel",
                "kernelTCP",
                "swappiness",
            ],
        )?;
        match m.get("swappiness") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64().filter(|v| *v <= 100) {
                Some(v) => out.memory_swappiness = Some(v),
                None => {
                    return Err(oci_invalid(
                        "linux.resources.memory.swappiness",
                        format!("{v} is not in 0..=100"),
                    ))
                }
            },
        }
        // Kernel memory limits went with cgroup v1's kmem accounting (runc
        // ignores them); only "none" (0, as Docker sends on update) is
        // accepted.
        for key in ["kernel", "kernelTCP"] {
            if m.get(key).and_then(Value::as_i64).is_some_and(|v| v != 0) {
                return Err(oci_unsupported(
                    &format!("linux.resources.memory.{key}"),
                    "kernel memory limits are not supported (the kernel deprecated them)",
                ));
            }
        }
        match m.get("reservation").and_then(Value::as_i64) {
            Some(-1) => out.memory_reservation_bytes = Some(u64::MAX),
            Some(r) if r > 0 => out.memory_reservation_bytes = Some(r as u64),
            // 0: none.
            _ => {}
        }
        match m.get("disableOOMKiller") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => out.disable_oom_killer = Some(*b),
            Some(v) => {
                return Err(oci_invalid(
                    "linux.resources.memory.disableOOMKiller",
                    format!("{v} is not true or false"),
                ))
            }
        }
        match m.get("limit").and_then(Value::as_i64) {
            Some(l) if l > 0 => out.memory_limit_bytes = Some(l as u64),
            // 0 and -1: no limit.
            _ => {}
        }
        match m.get("swap").and_then(Value::as_i64) {
            Some(-1) => out.memory_swap_bytes = Some(u64::MAX),
            Some(s) if s > 0 => {
                if out.memory_limit_bytes.is_some_and(|l| (s as u64) < l) {
                    return Err(oci_invalid(
                        "linux.resources.memory.swap",
                        format!("{s} is below memory.limit (swap counts memory and swap)"),
                    ));
                }
                out.memory_swap_bytes = Some(s as u64);
            }
            // 0: no swap limit.
            _ => {}
        }
    }
    if let Some(c) = r.get("cpu") {
        let at = "linux.resources.cpu";
        known_members(
            c,
            at,
            &[
                "shares",
                "quota",
                "period",
                "cpus",
                "mems",
                "idle",
                "burst",
                "realtimeRuntime",
                "realtimePeriod",
            ],
        )?;
        // Docker sends the real-time budget as 0 (none); a real one needs
        // real-time group scheduling, which is not offered.
        for key in ["realtimeRuntime", "realtimePeriod"] {
            if c.get(key).and_then(Value::as_i64).is_some_and(|v| v != 0) {
                return Err(oci_unsupported(
                    &format!("{at}.{key}"),
                    "real-time CPU budgets are not supported",
                ));
            }
        }
        match c.get("idle").and_then(Value::as_i64) {
            None => {}
            Some(i @ (0 | 1)) => out.cpu_idle = Some(i == 1),
            Some(i) => {
                return Err(oci_invalid(
                    &format!("{at}.idle"),
                    format!("{i} is not 0 or 1"),
                ))
            }
        }
        if let Some(b) = c.get("burst").filter(|b| !b.is_null()) {
            out.cpu_burst_us = Some(
                b.as_u64()
                    .ok_or_else(|| oci_invalid(&format!("{at}.burst"), "must be microseconds"))?,
            );
        }
        out.cpuset_mems = kernel_list(c, at, "mems", "a node list such as 0-1")?;
        if let Some(shares) = c.get("shares").and_then(Value::as_u64).filter(|s| *s > 0) {
            out.cpu_weight = Some(hcs_cgroups::cpu_shares_to_weight(shares));
        }
        let period = c.get("period").and_then(Value::as_u64).filter(|p| *p > 0);
        match c.get("quota").and_then(Value::as_i64).filter(|q| *q > 0) {
            Some(q) => {
                let period = period.unwrap_or(CPU_PERIOD_US);
                if !(1000..=1_000_000).contains(&period) {
                    return Err(oci_invalid(
                        &format!("{at}.period"),
                        format!("{period} is out of range 1000..=1000000"),
                    ));
                }
                if q < 1000 {
                    return Err(oci_invalid(
                        &format!("{at}.quota"),
                        format!("{q} is below the kernel's minimum of 1000"),
                    ));
                }
                out.cpu_quota = Some(hcs_cgroups::CpuQuota {
                    quota_us: q as u64,
                    period_us: period,
                });
            }
            None if period.is_some() => {
                return Err(oci_unsupported(
                    &format!("{at}.period"),
                    "a period without a quota is not supported",
                ))
            }
            None => {}
        }
        out.cpuset_cpus = kernel_list(c, at, "cpus", "a CPU list such as 0-3,6")?;
    }
    if let Some(p) = r.get("pids") {
        known_members(p, "linux.resources.pids", &["limit"])?;
        if let Some(l) = p.get("limit").and_then(Value::as_i64).filter(|l| *l > 0) {
            out.pids_max = Some(l as u64);
        }
    }
    // Absent: the defaults alone at create (Container::create), and no
    // change on an update.
    let Some(devices) = r.get("devices") else {
        return Ok(out);
    };
    let mut rules = Vec::new();
    for (i, d) in Some(devices)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        rules.push(oci_device_rule(
            d,
            &format!("linux.resources.devices[{i}]"),
        )?);
    }
    out.devices = Some(rules);
    Ok(out)
}

/// `cpu.<key>` as the kernel's list format (digits, commas and ranges), if
/// given; `what` names the list in the refusal.
fn kernel_list(c: &Value, at: &str, key: &str, what: &str) -> HcsResult<Option<String>> {
    let Some(list) = str_at(c, key).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !list
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
    {
        return Err(oci_invalid(
            &format!("{at}.{key}"),
            format!("{list:?} is not {what}"),
        ));
    }
    Ok(Some(list.to_string()))
}

/// An update of a running container's `linux.resources` (runhcs update,
/// the modify ResourcePath `Container/OciResources`): the same mapping as at
/// create; device rules cannot change (as with runc update).
pub fn oci_resources_update(r: &Value) -> HcsResult<hcs_cgroups::Resources> {
    if r.get("devices").is_some_and(|d| !is_empty(d)) {
        return Err(oci_unsupported(
            "linux.resources.devices",
            "device rules are set at create and cannot be updated",
        ));
    }
    oci_resources(r)
}

/// One `linux.resources.devices` rule.
fn oci_device_rule(d: &Value, at: &str) -> HcsResult<DeviceRule> {
    known_members(d, at, &["allow", "type", "major", "minor", "access"])?;
    let allow = match d.get("allow") {
        Some(Value::Bool(b)) => *b,
        _ => return Err(oci_invalid(&format!("{at}.allow"), "must be true or false")),
    };
    let kind = match str_at(d, "type") {
        None | Some("a") => DeviceKind::All,
        Some("c") => DeviceKind::Char,
        Some("b") => DeviceKind::Block,
        Some(t) => {
            return Err(oci_invalid(
                &format!("{at}.type"),
                format!("{t:?} is not a, b or c"),
            ))
        }
    };
    let number = |key: &str| -> HcsResult<Option<u32>> {
        match d.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) if v.as_i64() == Some(-1) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    oci_invalid(
                        &format!("{at}.{key}"),
                        format!("{v} is not a device number"),
                    )
                }),
        }
    };
    let mut bits = 0;
    for c in str_at(d, "access").unwrap_or("rwm").chars() {
        bits |= match c {
            'r' => access::READ,
            'w' => access::WRITE,
            'm' => access::MKNOD,
            _ => {
                return Err(oci_invalid(
                    &format!("{at}.access"),
                    format!("{c:?} is not r, w or m"),
                ))
            }
        };
    }
    if bits == 0 {
        return Err(oci_invalid(
            &format!("{at}.access"),
            "an empty access list matches nothing",
        ));
    }
    Ok(DeviceRule {
        allow,
        kind,
        major: number("major")?,
        minor: number("minor")?,
        access: bits,
    })
}

/// The device rules a container's cgroup gets: the document's own (none
/// for an HCS Container document), then what every container may use,
/// appended as runc appends its defaults so that no rule takes them away:
/// making any node (`mknod` alone opens nothing), the default nodes of its
/// /dev, its terminals, and the nodes of `linux.devices`. Everything else
/// is denied.
pub fn device_rules(own: &[DeviceRule], devices: &[DeviceNode]) -> Vec<DeviceRule> {
    use DeviceKind::{Block, Char};
    let rwm = access::ALL;
    let mut rules = own.to_vec();
    rules.push(DeviceRule::allow(Char, None, None, access::MKNOD));
    rules.push(DeviceRule::allow(Block, None, None, access::MKNOD));
    for (_, major, minor) in DEFAULT_DEVICES {
        rules.push(DeviceRule::allow(Char, Some(major), Some(minor), rwm));
    }
    // /dev/console and /dev/ptmx, and the pseudo-terminals of its devpts.
    rules.push(DeviceRule::allow(Char, Some(5), Some(1), rwm));
    rules.push(DeviceRule::allow(Char, Some(5), Some(2), rwm));
    rules.push(DeviceRule::allow(Char, Some(136), None, rwm));
    for d in devices {
        let kind = match d.kind {
            'c' | 'u' => Char,
            'b' => Block,
            _ => continue, // fifos are not devices
        };
        if let (Ok(major), Ok(minor)) = (u32::try_from(d.major), u32::try_from(d.minor)) {
            rules.push(DeviceRule::allow(kind, Some(major), Some(minor), rwm));
        }
    }
    rules
}

/// The default nodes of a container's /dev: name, major, minor.
pub const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn reject_windows_only(doc: &Container) -> HcsResult<()> {
    if doc.registry_changes.as_ref().is_some_and(|r| {
        r.add_values.as_ref().is_some_and(|v| !v.is_empty())
            || r.delete_keys.as_ref().is_some_and(|v| !v.is_empty())
    }) {
        return Err(not_supported(
            "RegistryChanges",
            "Linux has no registry; write the files into a layer instead",
        ));
    }
    if doc.container_credential_guard.is_some() {
        return Err(not_supported(
            "ContainerCredentialGuard",
            "gMSA credential forwarding is Windows-only",
        ));
    }
    if doc.hv_socket.is_some() {
        return Err(not_supported(
            "HvSocket",
            "Hyper-V sockets do not exist for Linux containers",
        ));
    }
    if doc.assigned_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(not_supported(
            "AssignedDevices",
            "device assignment to containers is not supported yet",
        ));
    }
    if doc.additional_device_namespace.is_some() {
        return Err(not_supported(
            "AdditionalDeviceNamespace",
            "device-extension namespaces are Windows-only",
        ));
    }
    if doc.isolation_type.is_some() {
        return Err(not_supported(
            "IsolationType",
            "HostProcess containers are Windows-only",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(json: &str) -> Container {
        hcs_schema::from_json(json, "Container").unwrap()
    }

    #[test]
    fn a_device_file_mode_may_carry_its_own_type_bits_only() {
        let dev = |t: &str, mode: u64| {
            oci_device(
                0,
                &json!({"path": "/dev/x", "type": t, "major": 1, "minor": 3, "fileMode": mode}),
            )
        };
        // As Podman sends them: S_IFCHR | 0666, S_IFBLK | 0660.
        assert_eq!(dev("c", 0o20666).unwrap().mode, 0o666);
        assert_eq!(dev("b", 0o60660).unwrap().mode, 0o660);
        assert_eq!(dev("c", 0o644).unwrap().mode, 0o644);
        for (t, mode) in [
            ("c", 0o60666),
            ("b", 0o20666),
            ("c", 0o100644),
            ("p", 0o20600),
        ] {
            let e = dev(t, mode).unwrap_err();
            assert!(
                e.message.contains("linux.devices[0].fileMode"),
                "{t} {mode:o}: {}",
                e.message
            );
        }
    }

    #[test]
    fn rarer_resources_map_onto_their_limits() {
        let r = oci_resources(&json!({
            "memory": {"swappiness": 30},
            "cpu": {"mems": "0", "idle": 1, "burst": 500, "realtimeRuntime": 0, "realtimePeriod": 0},
            "unified": {"memory.high": "max"}
        }))
        .unwrap();
        assert_eq!(r.memory_swappiness, Some(30));
        assert_eq!(r.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(r.cpu_idle, Some(true));
        assert_eq!(r.cpu_burst_us, Some(500));
        assert_eq!(
            r.unified,
            vec![("memory.high".to_string(), "max".to_string())]
        );
        for (bad, path) in [
            (
                json!({"memory": {"swappiness": 101}}),
                "linux.resources.memory.swappiness",
            ),
            (json!({"cpu": {"idle": 2}}), "linux.resources.cpu.idle"),
            (json!({"cpu": {"mems": "a"}}), "linux.resources.cpu.mems"),
            (
                json!({"cpu": {"realtimeRuntime": 950000}}),
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                json!({"unified": {"../x": "1"}}),
                "linux.resources.unified.../x",
            ),
            (
                json!({"unified": {"pids.max": 3}}),
                "linux.resources.unified.pids.max",
            ),
        ] {
            let e = oci_resources(&bad).unwrap_err();
            assert!(e.message.contains(path), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn recursive_bind_options_are_their_flags_and_only_for_binds() {
        let bind = |opts: serde_json::Value| {
            oci_mount(
                0,
                &json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": opts}),
                None,
            )
        };
        let m = bind(json!(["rbind", "rro", "rnosuid", "rnoexec"])).unwrap();
        assert!(m
            .flags
            .contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC));
        let m = bind(json!(["rbind", "ro", "rrw"])).unwrap();
        assert!(!m.flags.contains(MsFlags::MS_RDONLY) && m.clear.contains(MsFlags::MS_RDONLY));
        for bad in [json!(["rdefaults"]), json!(["rbogus"])] {
            assert!(bind(bad.clone()).is_err(), "{bad}");
        }
        let tmpfs = oci_mount(
            0,
            &json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]}),
            None,
        );
        assert!(tmpfs.is_err(), "rro accepted on a tmpfs");
    }

    #[test]
    fn an_absolute_cgroups_path_is_rooted_and_a_relative_one_is_not() {
        let rooted = |parent: &str, leaf: &str| CgroupsPath::Rooted {
            parent: PathBuf::from(parent),
            leaf: PathBuf::from(leaf),
        };
        assert_eq!(
            oci_cgroups_path("/docker/abc").unwrap(),
            rooted("docker", "abc")
        );
        assert_eq!(
            oci_cgroups_path("/k8s.io/x/y/").unwrap(),
            rooted("k8s.io/x", "y")
        );
        assert_eq!(oci_cgroups_path("/solo").unwrap(), rooted("", "solo"));
        assert_eq!(
            oci_cgroups_path("a/b").unwrap(),
            CgroupsPath::Relative(PathBuf::from("a/b"))
        );
        for bad in ["/", "/a/../b", "slice:prefix:name"] {
            assert!(oci_cgroups_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layers_and_scratch_make_an_overlay() {
        let t = tempfile::tempdir().unwrap();
        let l = t.path().join("l0");
        std::fs::create_dir(&l).unwrap();
        let s = t.path().join("s");
        std::fs::create_dir(&s).unwrap();
        let c = doc(&format!(
            r#"{{"Storage":{{"Layers":[{{"Id":"x","Path":"{}"}}],"Path":"{}"}}}}"#,
            l.display(),
            s.display()
        ));
        let spec = ContainerSpec::from_document("demo", &c, t.path()).unwrap();
        assert_eq!(
            spec.rootfs,
            RootFs::Overlay {
                lower: vec![l],
                upper: s.join("upper"),
                work: s.join("work")
            }
        );
        assert_eq!(spec.hostname, "demo");
        assert_eq!(spec.network, Network::New);
    }

    #[test]
    fn bad_paths_name_the_field() {
        let t = tempfile::tempdir().unwrap();
        let c = doc(r#"{"Storage":{"Layers":[{"Id":"x","Path":"/does/not/exist"}]}}"#);
        let e = ContainerSpec::from_document("demo", &c, t.path()).unwrap_err();
        assert_eq!(e.hresult, HResult::ERROR_PATH_NOT_FOUND);
        assert!(
            e.message.contains("Storage.Layers[0].Path"),
            "{}",
            e.message
        );
        let c = doc(&format!(
            r#"{{"Storage":{{"Path":"{}"}},"MappedDirectories":[{{"HostPath":"/tmp","ContainerPath":"../x"}}]}}"#,
            t.path().display()
        ));
        let e = ContainerSpec::from_document("demo", &c, t.path()).unwrap_err();
        assert!(
            e.message.contains("MappedDirectories[0].ContainerPath"),
            "{}",
            e.message
        );
    }

    #[test]
    fn mounts_over_proc_are_refused_as_runc_does() {
        let t = tempfile::tempdir().unwrap();
        // HCS: a bind of the host's / over /proc, a writable /proc/sys.
        for (host, dest) in [
            ("/", "/proc"),
            ("/proc/sys", "/proc/sys"),
            ("/tmp", "/proc/self/"),
        ] {
            let c = doc(&format!(
                r#"{{"Storage":{{"Path":"{}"}},"MappedDirectories":[{{"HostPath":"/tmp","ContainerPath":"/x"}},{{"HostPath":"{host}","ContainerPath":"{dest}"}}]}}"#,
                t.path().display()
            ));
            let e = ContainerSpec::from_document("demo", &c, t.path()).unwrap_err();
            assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{}", e.message);
            assert!(
                e.message
                    .contains("Container.MappedDirectories[1].ContainerPath"),
                "{}",
                e.message
            );
        }
        // What runc allows: a procfs on /proc, lxcfs-like files below it.
        assert_eq!(
            check_proc_mount(Path::new("/proc"), Some("proc"), None),
            Ok(())
        );
        assert_eq!(
            check_proc_mount(Path::new("/proc"), None, Some(Path::new("/proc"))),
            Ok(())
        );
        assert_eq!(
            check_proc_mount(Path::new("/proc/meminfo"), None, Some(Path::new("/tmp"))),
            Ok(())
        );
        assert_eq!(
            check_proc_mount(Path::new("/procfs"), Some("tmpfs"), None),
            Ok(())
        );
        assert!(check_proc_mount(Path::new("/proc"), Some("tmpfs"), None).is_err());
        assert!(check_proc_mount(Path::new("/proc/sys"), Some("proc"), None).is_err());
        // OCI: the same, naming mounts[i].destination.
        let (b, mut spec) = runc_bundle();
        spec["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/proc", "type": "bind", "source": "/", "options": ["rbind"]}),
        );
        let e = oci_err(&spec, b.path());
        assert!(
            e.message.contains("OciSpecification.mounts[7].destination"),
            "{}",
            e.message
        );
        let (b, mut spec) = runc_bundle();
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/proc/sys", "type": "bind", "source": "/proc/sys", "options": ["rbind", "rw"]}));
        let e = oci_err(&spec, b.path());
        assert!(
            e.message.contains("OciSpecification.mounts[7].destination"),
            "{}",
            e.message
        );
    }

    #[test]
    fn pids_limit_has_a_default_and_no_limit_only_when_asked() {
        assert_eq!(
            pids_max(None).unwrap(),
            hcs_schema::container::DEFAULT_PIDS_LIMIT
        );
        assert_eq!(pids_max(Some(0)).unwrap(), u64::MAX);
        assert_eq!(pids_max(Some(-1)).unwrap(), u64::MAX);
        assert_eq!(pids_max(Some(100_000)).unwrap(), 100_000);
        for bad in [-2, hcs_schema::container::MAX_PIDS_LIMIT + 1] {
            let e = pids_max(Some(bad)).unwrap_err();
            assert!(e.message.contains("Container.PidsLimit"), "{}", e.message);
        }
        let t = tempfile::tempdir().unwrap();
        let c = doc(&format!(
            r#"{{"Storage":{{"Path":"{}"}}}}"#,
            t.path().display()
        ));
        let spec = ContainerSpec::from_document("demo", &c, t.path()).unwrap();
        assert_eq!(
            spec.resources.pids_max,
            Some(hcs_schema::container::DEFAULT_PIDS_LIMIT)
        );
        // With an OCI spec, its linux.resources.pids says it.
        let (b, spec) = runc_bundle();
        let mut d = oci_doc(&spec, b.path());
        d.pids_limit = Some(10);
        let e = ContainerSpec::from_document("demo", &d, b.path()).unwrap_err();
        assert!(e.message.contains("Container.PidsLimit"), "{}", e.message);
    }

    #[test]
    fn processor_mapping() {
        let mut r = hcs_cgroups::Resources::default();
        processor_resources(
            &hcs_schema::ContainerProcessor {
                count: Some(1),
                ..Default::default()
            },
            &mut r,
        )
        .unwrap();
        assert_eq!(r.cpu_quota.map(|q| q.quota_us), Some(CPU_PERIOD_US));
        let both = hcs_schema::ContainerProcessor {
            count: Some(1),
            weight: Some(5),
            ..Default::default()
        };
        assert!(processor_resources(&both, &mut r).is_err());
    }

    #[test]
    fn windows_only_fields_are_refused_clearly() {
        let c =
            doc(r#"{"Storage":{"Path":"/tmp"},"RegistryChanges":{"AddValues":[{"Name":"x"}]}}"#);
        let e = ContainerSpec::from_document("demo", &c, Path::new("/tmp")).unwrap_err();
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
        assert!(e.message.contains("RegistryChanges"));
    }

    /// `runc spec` (runc 1.1.5) verbatim.
    const RUNC_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}"#;

    fn oci_doc(spec: &Value, bundle: &Path) -> Container {
        doc(&serde_json::json!({
            "OciBundlePath": bundle.to_str().unwrap(),
            "OciSpecification": spec,
        })
        .to_string())
    }

    fn runc_bundle() -> (tempfile::TempDir, Value) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("rootfs")).unwrap();
        (t, serde_json::from_str(RUNC_SPEC).unwrap())
    }

    fn oci_err(spec: &Value, bundle: &Path) -> HcsError {
        ContainerSpec::from_document("demo", &oci_doc(spec, bundle), bundle).unwrap_err()
    }

    #[test]
    fn unknown_top_level_members_are_ignored_as_the_runtime_spec_requires() {
        let (t, mut spec) = runc_bundle();
        spec["org.example.extension"] = json!({"anything": [1, 2]});
        ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        // The spec's own members this host cannot honour stay refused.
        spec["windows"] = json!({"layerFolders": ["c:\\l"]});
        let e = oci_err(&spec, t.path());
        assert!(
            e.message.contains("Container.OciSpecification.windows"),
            "{}",
            e.message
        );
    }

    #[test]
    fn memory_reservation_and_the_oom_killer_are_mapped() {
        let (t, mut spec) = runc_bundle();
        spec["linux"]["resources"]["memory"] =
            json!({"limit": 64 << 20, "reservation": 32 << 20, "disableOOMKiller": true});
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        assert_eq!(c.resources.memory_reservation_bytes, Some(32 << 20));
        assert_eq!(c.resources.disable_oom_killer, Some(true));
    }

    #[test]
    fn memory_swap_counts_memory_and_swap() {
        let (t, mut spec) = runc_bundle();
        let map = |spec: &Value| {
            ContainerSpec::from_document("demo", &oci_doc(spec, t.path()), t.path()).map(|c| {
                (
                    c.resources.memory_limit_bytes,
                    c.resources.memory_swap_bytes,
                )
            })
        };
        spec["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": 128 << 20});
        assert_eq!(map(&spec).unwrap(), (Some(64 << 20), Some(128 << 20)));
        spec["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": -1});
        assert_eq!(map(&spec).unwrap(), (Some(64 << 20), Some(u64::MAX)));
        spec["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": 0});
        assert_eq!(map(&spec).unwrap(), (Some(64 << 20), None));
        spec["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": 32 << 20});
        let e = map(&spec).unwrap_err();
        assert!(
            e.message.contains("linux.resources.memory.swap"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_zero_block_io_weight_is_no_weight_and_others_are_refused_by_path() {
        let (t, mut spec) = runc_bundle();
        spec["linux"]["resources"]["blockIO"] = json!({"weight": 0});
        ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        for (bad, path) in [
            (json!({"weight": 500}), "blockIO.weight"),
            (
                json!({"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}),
                "blockIO.throttleReadBpsDevice",
            ),
        ] {
            spec["linux"]["resources"]["blockIO"] = bad;
            let e = oci_err(&spec, t.path());
            let want = format!("Container.OciSpecification.linux.resources.{path}");
            assert!(e.message.contains(&want), "{want}: {}", e.message);
        }
    }

    #[test]
    fn device_rules_are_mapped_in_order_and_bad_ones_named() {
        let (t, mut spec) = runc_bundle();
        spec["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "b", "major": -1, "minor": null, "access": "m"}
        ]);
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        let rules = c.resources.devices.clone().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[1],
            DeviceRule::allow(
                DeviceKind::Char,
                Some(1),
                Some(3),
                access::READ | access::WRITE
            )
        );
        assert!(!rules[2].allow);
        assert_eq!(
            rules[3],
            DeviceRule::allow(DeviceKind::Block, None, None, access::MKNOD)
        );
        // With the defaults: /dev/zero and the linux.devices node open, a
        // disk does not, and the spec's deny of /dev/fuse holds.
        let fuse = DeviceNode {
            path: "/dev/fuse".into(),
            kind: 'c',
            major: 10,
            minor: 230,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let all = device_rules(&rules, &[fuse]);
        use hcs_cgroups::devices::allowed;
        assert!(allowed(&all, DeviceKind::Char, 1, 5, access::READ));
        assert!(allowed(&all, DeviceKind::Char, 10, 230, access::WRITE));
        assert!(!allowed(&all, DeviceKind::Char, 10, 229, access::READ));
        assert!(!allowed(&all, DeviceKind::Block, 8, 0, access::READ));
        assert!(allowed(&all, DeviceKind::Block, 8, 0, access::MKNOD));
        for (i, key, bad) in [
            (1, "access", json!("rx")),
            (1, "type", json!("p")),
            (1, "major", json!(-5)),
        ] {
            let mut s = spec.clone();
            s["linux"]["resources"]["devices"][i][key] = bad;
            let e = oci_err(&s, t.path());
            let want = format!("Container.OciSpecification.linux.resources.devices[{i}].{key}");
            assert!(e.message.contains(&want), "{want}: {}", e.message);
        }
    }

    #[test]
    fn runc_spec_is_accepted_and_mapped() {
        let (t, spec) = runc_bundle();
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        assert_eq!(c.hostname, "runc");
        // runc spec's root is read-only: the directory itself, no overlay.
        assert!(c.read_only_root);
        assert_eq!(c.rootfs, RootFs::Directory(t.path().join("rootfs")));
        assert_eq!(c.ephemeral_scratch, None);
        assert_eq!(c.network, Network::New);
        assert_eq!(
            c.namespaces,
            NewNamespaces {
                ipc: true,
                uts: true,
                cgroup: false,
                join_ipc: None,
                join_uts: None,
            }
        );
        assert_eq!(c.user_namespace, None);
        let dests: Vec<_> = c.mounts.iter().map(|m| m.destination.clone()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
            .map(PathBuf::from)
        );
        let dev = &c.mounts[1];
        assert_eq!(dev.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(dev.data, ["mode=755", "size=65536k"]);
        assert_eq!(
            c.mounts[5].flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(c.mounts[6].kind, MountKind::Cgroup);
        assert_eq!(c.masked_paths.len(), 10);
        assert!(c.masked_paths.contains(&PathBuf::from("/proc/asound")));
        assert_eq!(c.readonly_paths.len(), 5);
        // runc's spec denies every device; the defaults come on top at create.
        let deny_all = DeviceRule {
            allow: false,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: access::ALL,
        };
        assert_eq!(
            c.resources,
            hcs_cgroups::Resources {
                devices: Some(vec![deny_all]),
                ..Default::default()
            }
        );
        let oci = c.oci.as_ref().expect("oci kept");
        assert_eq!(oci.bundle, t.path());

        // A writable root is the bundle's directory too, written through
        // (as runc does), with no scratch of its own.
        let mut writable = spec.clone();
        writable["root"]["readonly"] = json!(false);
        let c =
            ContainerSpec::from_document("demo", &oci_doc(&writable, t.path()), t.path()).unwrap();
        assert_eq!(c.rootfs, RootFs::Directory(t.path().join("rootfs")));
        assert!(!c.read_only_root);
        assert_eq!(c.ephemeral_scratch, None);
    }

    #[test]
    fn oci_replaces_the_other_fields() {
        let (t, spec) = runc_bundle();
        let mut d = oci_doc(&spec, t.path());
        d.storage = Some(Default::default());
        d.memory = Some(Default::default());
        d.networking = Some(Default::default());
        let e = ContainerSpec::from_document("demo", &d, t.path()).unwrap_err();
        assert!(
            e.message.contains("Container.Storage")
                && e.message.contains("Container.Memory")
                && e.message.contains("Container.Networking"),
            "{}",
            e.message
        );
    }

    #[test]
    fn oci_mapping_of_linux_members() {
        let (t, mut spec) = runc_bundle();
        std::fs::create_dir(t.path().join("data")).unwrap();
        spec["root"]["readonly"] = json!(false);
        spec["hostname"] = json!("box");
        spec["mounts"] = json!([
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid", "rslave"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777", "noexec"]}
        ]);
        spec["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "user"}, {"type": "cgroup"},
            {"type": "network"}, {"type": "ipc"}, {"type": "uts"}
        ]);
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 10}]);
        spec["linux"]["sysctl"] = json!({"kernel.shmmax": "1000000", "net.ipv4.ip_forward": "1"});
        spec["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1, "gid": 2}]);
        spec["linux"]["resources"] = json!({
            "memory": {"limit": 1048576},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 42},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]
        });
        spec["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
        spec["linux"]["readonlyPaths"] = json!([]);
        spec["linux"]["rootfsPropagation"] = json!("rslave");
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        assert_eq!(c.hostname, "box");
        assert!(!c.read_only_root);
        assert_eq!(
            c.mounts[0].kind,
            MountKind::Bind {
                source: t.path().join("data"),
                recursive: true
            }
        );
        assert_eq!(c.mounts[0].flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(
            c.mounts[0].propagation,
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(c.mounts[1].data, ["size=1m", "mode=1777"]);
        assert_eq!(c.mounts[1].flags, MsFlags::MS_NOEXEC);
        assert_eq!(
            c.user_namespace,
            Some((
                vec![IdMap {
                    inside: 0,
                    outside: 100000,
                    count: 65536
                }],
                vec![IdMap {
                    inside: 0,
                    outside: 200000,
                    count: 10
                }]
            ))
        );
        assert!(c.namespaces.cgroup);
        assert_eq!(c.sysctl.len(), 2);
        assert!(c
            .sysctl
            .contains(&("kernel.shmmax".into(), "1000000".into())));
        assert_eq!(
            c.devices,
            [DeviceNode {
                path: "/dev/fuse".into(),
                kind: 'c',
                major: 10,
                minor: 229,
                mode: 0o600,
                uid: 1,
                gid: 2
            }]
        );
        assert_eq!(c.resources.memory_limit_bytes, Some(1048576));
        assert_eq!(
            c.resources.cpu_weight,
            Some(hcs_cgroups::cpu_shares_to_weight(1024))
        );
        assert_eq!(
            c.resources.cpu_quota,
            Some(hcs_cgroups::CpuQuota {
                quota_us: 50000,
                period_us: 100000
            })
        );
        assert_eq!(c.resources.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(c.resources.pids_max, Some(42));
        assert_eq!(c.masked_paths, [PathBuf::from("/proc/kcore")]);
        assert!(c.readonly_paths.is_empty());
        assert_eq!(c.rootfs_propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }

    #[test]
    fn oci_network_namespace_path_and_host_network() {
        let (t, mut spec) = runc_bundle();
        spec["linux"]["namespaces"][1] = json!({"type": "network", "path": "/proc/self/ns/net"});
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        assert_eq!(c.network, Network::Join("/proc/self/ns/net".into()));
        let (t, mut spec) = runc_bundle();
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .remove(1);
        let c = ContainerSpec::from_document("demo", &oci_doc(&spec, t.path()), t.path()).unwrap();
        assert_eq!(c.network, Network::Host);
        // ... where net.* sysctls would change the host's.
        spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        let e = oci_err(&spec, t.path());
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
        assert!(
            e.message
                .contains("Container.OciSpecification.linux.sysctl.net.ipv4.ip_forward"),
            "{}",
            e.message
        );
    }

    /// A change to a spec, and the start of the error it must cause.
    type Case = (&'static str, Box<dyn Fn(&mut Value)>);

    #[test]
    fn oci_refusals_name_the_json_path() {
        let cases: Vec<Case> = vec![
            (
                "Container.OciSpecification.mounts[1].options[0]",
                Box::new(|s| s["mounts"][1]["options"][0] = json!("bogus")),
            ),
            (
                "Container.OciSpecification.mounts[0].type",
                Box::new(|s| s["mounts"][0]["type"] = json!("ext4")),
            ),
            (
                "Container.OciSpecification.mounts[0].options[0]",
                Box::new(
                    |s| s["mounts"][0] = json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rshared"]}),
                ),
            ),
            (
                "Container.OciSpecification.linux.sysctl.kernel.hostname",
                Box::new(|s| s["linux"]["sysctl"] = json!({"kernel.hostname": "x"})),
            ),
            (
                "Container.OciSpecification.linux.intelRdt",
                Box::new(|s| s["linux"]["intelRdt"] = json!({"closID": "x"})),
            ),
            (
                "Container.OciSpecification.linux.resources.unified.cgroup.procs",
                Box::new(|s| s["linux"]["resources"]["unified"] = json!({"cgroup.procs": "1"})),
            ),
            (
                "Container.OciSpecification.linux.resources.cpu.realtimePeriod",
                Box::new(|s| s["linux"]["resources"]["cpu"] = json!({"realtimePeriod": 1000000})),
            ),
            (
                "Container.OciSpecification.linux.cgroupsPath",
                Box::new(|s| s["linux"]["cgroupsPath"] = json!("system.slice:runhcs:mine")),
            ),
            (
                "Container.OciSpecification.linux.namespaces[0].path",
                Box::new(|s| {
                    assert_eq!(s["linux"]["namespaces"][0]["type"], "pid");
                    s["linux"]["namespaces"][0]["path"] = json!("/proc/self/ns/pid")
                }),
            ),
            (
                "Container.OciSpecification.linux.namespaces[5].type",
                Box::new(|s| {
                    s["linux"]["namespaces"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"type": "time"}))
                }),
            ),
            (
                "Container.OciSpecification.linux.namespaces",
                Box::new(|s| {
                    s["linux"]["namespaces"].as_array_mut().unwrap().remove(0);
                }),
            ),
            (
                "Container.OciSpecification.linux.rootfsPropagation",
                Box::new(|s| s["linux"]["rootfsPropagation"] = json!("rshared")),
            ),
            (
                // A user namespace with the host's cgroup namespace.
                "Container.OciSpecification.linux.namespaces: a container with a user namespace",
                Box::new(|s| {
                    let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
                    ns.push(json!({"type": "user"}));
                    s["linux"]["uidMappings"] =
                        json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
                    s["linux"]["gidMappings"] =
                        json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
                }),
            ),
            (
                "Container.OciSpecification.solaris",
                Box::new(|s| s["solaris"] = json!({"milestone": "x"})),
            ),
            (
                "Container.OciSpecification.linux.devices[0].type",
                Box::new(|s| {
                    s["linux"]["devices"] =
                        json!([{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}])
                }),
            ),
        ];
        for (want, edit) in cases {
            let (t, mut spec) = runc_bundle();
            edit(&mut spec);
            let e = oci_err(&spec, t.path());
            assert_eq!(
                e.hresult,
                HResult::ERROR_NOT_SUPPORTED,
                "{want}: {}",
                e.message
            );
            assert!(
                e.message.starts_with(want),
                "want {want}, got {}",
                e.message
            );
        }
    }

    #[test]
    fn oci_invalid_values() {
        // A relative root without a bundle.
        let (t, spec) = runc_bundle();
        let d = doc(&json!({"OciSpecification": spec}).to_string());
        let e = ContainerSpec::from_document("demo", &d, t.path()).unwrap_err();
        assert!(
            e.message.contains("Container.OciSpecification.root.path"),
            "{}",
            e.message
        );
        // A hostname without a uts namespace.
        let (t, mut spec) = runc_bundle();
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .remove(3);
        let e = oci_err(&spec, t.path());
        assert!(
            e.message.contains("Container.OciSpecification.hostname"),
            "{}",
            e.message
        );
        // Not a spec at all.
        let (t, mut spec) = runc_bundle();
        spec["mounts"] = json!("nope");
        let e = oci_err(&spec, t.path());
        assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON);
        // A missing bind source.
        let (t, mut spec) = runc_bundle();
        spec["mounts"][0] = json!({"destination": "/x", "type": "bind", "source": "/does/not/exist", "options": ["rbind"]});
        let e = oci_err(&spec, t.path());
        assert_eq!(e.hresult, HResult::ERROR_PATH_NOT_FOUND);
        assert!(e.message.contains("mounts[0].source"), "{}", e.message);
    }
}
