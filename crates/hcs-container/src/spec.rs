//! What a container needs on Linux, checked and derived from its HCS
//! `Container` document.
//!
//! Everything that can be checked before a single namespace exists is checked
//! here, so a bad document fails its create with a message naming the field
//! and leaves nothing behind.

use std::path::{Component, Path, PathBuf};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::Container;

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

/// Everything the container backend needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// UTS host name.
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
    pub oci: Option<std::sync::Arc<OciConfig>>,
    /// DNS search suffixes for a generated resolv.conf.
    pub dns_search: Vec<String>,
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
    pub fn from_document(id: &str, doc: &Container, rundir: &Path) -> HcsResult<ContainerSpec> {
        reject_windows_only(doc)?;
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
            mappings.push(Mapping {
                host: host_path,
                container,
                read_only: m.read_only.unwrap_or(false),
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
        })
    }
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
    Ok(r)
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

    fn doc(json: &str) -> Container {
        hcs_schema::from_json(json, "Container").unwrap()
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
}
