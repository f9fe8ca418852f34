//! The container backend: HCS calls on a [`hcs_container::Container`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use hcs_cgroups::Anchor;
use hcs_container::{CgroupsPath, Container, ContainerSpec, ProcessSpec};
use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::enums::{ModifyRequestType, SystemPropertyType, SystemType};
use hcs_schema::properties::{
    MemoryInformationForVm, MemoryStats, ProcessorStats, StorageStats, VmMemory,
};
use hcs_schema::{ModifySettingRequest, ProcessParameters, Properties, Statistics};

use crate::backend::{Backend, Served, StartedProcess};
use crate::process_params;

/// The cgroup every container's cgroup lives in (kept between containers).
pub const CGROUP_PARENT: &str = hcs_rundir::CGROUP_PARENT;

/// A container's cgroup name under [`CGROUP_PARENT`]: `<namespace>@<id>`
/// (`@` appears in neither, so no two systems share a name).
pub fn cgroup_leaf(namespace: &str, id: &str) -> String {
    format!("{namespace}@{id}")
}

/// A container compute system.
pub struct ContainerBackend {
    container: Container,
    /// Another container whose network namespace to join at start.
    shared_network: Option<(PathBuf, String)>,
    /// The OCI spec's own process (the first `OciProcess`) has been started.
    oci_process_started: bool,
    /// The cgroup levels below the parent that are this container's.
    cgroup_leaf: PathBuf,
    /// The shared levels above the leaf (kept when the container goes).
    cgroup_parent: PathBuf,
    /// They start at each hierarchy's root (an OCI spec's absolute
    /// cgroupsPath), not at the monitor's own placement base.
    cgroup_rooted: bool,
}

/// Check an OCI spec's `process` (and its seccomp profile) at create, as
/// runc does, rather than when it is started: what cannot be honoured fails
/// the create, named by its path in the container document.
/// The context in which a container's modify settings are checked
/// against `hcs_schema::fields::TABLE`.
fn container_settings(document: &str) -> hcs_schema::fields::Context<'_> {
    hcs_schema::fields::Context {
        document,
        on: hcs_schema::fields::On::Container,
    }
}

fn check_oci_process(doc: &hcs_schema::Container, spec: &ContainerSpec) -> HcsResult<()> {
    let (Some(oci), Some(process)) = (
        &spec.oci,
        doc.oci_specification
            .as_ref()
            .and_then(|s| s.get("process")),
    ) else {
        return Ok(());
    };
    let seccomp = oci.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    ProcessSpec::from_oci(process, seccomp)
        .map(|_| ())
        .map_err(|mut e| {
            // from_oci names paths from `OciProcess`, the HcsCreateProcess field.
            e.message = e
                .message
                .replacen("OciProcess", "Container.OciSpecification.process", 1);
            e
        })
}

impl ContainerBackend {
    /// Create from the document's `Container`.
    pub fn create(
        id: &str,
        namespace: &str,
        doc: &hcs_schema::Container,
        rundir: &std::path::Path,
        runtime_root: &std::path::Path,
    ) -> HcsResult<ContainerBackend> {
        let spec = ContainerSpec::from_document(id, doc, rundir)?;
        check_oci_process(doc, &spec)?;
        let shared_network = match &spec.network {
            hcs_container::Network::SharedWith(other) => {
                hcs_rundir::validate_name(
                    "Container.Networking.NetworkSharedContainerName",
                    other,
                )?;
                let dir = hcs_rundir::system_dir(runtime_root, namespace, other);
                if hcs_rundir::cleanup_if_stale(&dir)? != hcs_rundir::Cleanup::Alive {
                    return Err(HcsError::new(
                        HResult::HCS_E_SYSTEM_NOT_FOUND,
                        format!("Container.Networking.NetworkSharedContainerName: no compute system {other:?} in namespace {namespace:?}"),
                    ));
                }
                Some((dir, other.clone()))
            }
            _ => None,
        };
        // An OCI spec's absolute cgroupsPath is placed from each hierarchy's
        // root, as the runtime spec says; a relative one names the levels
        // below the compute systems' parent.
        let (anchor, parent, leaf) = match spec.cgroups_path.clone() {
            Some(CgroupsPath::Rooted { parent, leaf }) => (Anchor::Root, parent, leaf),
            // As runc: below the caller's own cgroup (v1), or the root (v2).
            Some(CgroupsPath::Relative(rel)) => (
                Anchor::Own,
                rel.parent().map(PathBuf::from).unwrap_or_default(),
                PathBuf::from(rel.file_name().unwrap_or_default()),
            ),
            None => (
                Anchor::Own,
                PathBuf::from(CGROUP_PARENT),
                PathBuf::from(cgroup_leaf(namespace, id)),
            ),
        };
        let container = Container::create(id, spec, anchor, &parent, &leaf, rundir)?;
        Ok(ContainerBackend {
            container,
            shared_network,
            oci_process_started: false,
            cgroup_leaf: leaf,
            cgroup_parent: parent,
            cgroup_rooted: anchor == Anchor::Root,
        })
    }

    fn resolve_shared_network(&mut self) -> HcsResult<()> {
        let Some((dir, other)) = self.shared_network.clone() else {
            return Ok(());
        };
        let record: hcs_rundir::Record = std::fs::read(dir.join(hcs_rundir::RECORD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                HcsError::new(
                    HResult::HCS_E_SYSTEM_NOT_FOUND,
                    format!("the compute system {other:?} is gone"),
                )
            })?;
        let pid = record.main_pid.ok_or_else(|| {
            HcsError::invalid_state(format!(
                "Container.Networking.NetworkSharedContainerName: {other:?} is not running, so it has no network to share"
            ))
        })?;
        self.container
            .join_network(&PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    fn statistics(&self) -> HcsResult<Statistics> {
        let s = self.container.stats()?;
        let now = SystemTime::now();
        let started = self.container.started_at();
        let to_100ns = |ns: Option<u64>| ns.map(|v| v / 100);
        Ok(Statistics {
            timestamp: Some(rfc3339(now)),
            container_start_time: started.map(rfc3339),
            uptime_100ns: started
                .and_then(|t| now.duration_since(t).ok())
                .map(|d| (d.as_nanos() / 100) as u64),
            processor: Some(ProcessorStats {
                total_runtime_100ns: to_100ns(s.cpu_usage_ns),
                runtime_user_100ns: to_100ns(s.cpu_user_ns),
                runtime_kernel_100ns: to_100ns(s.cpu_system_ns),
            }),
            memory: Some(MemoryStats {
                memory_usage_commit_bytes: s.memory_usage_bytes,
                memory_usage_commit_peak_bytes: s.memory_peak_bytes,
                memory_usage_private_working_set_bytes: s.memory_usage_bytes,
            }),
            storage: Some(StorageStats {
                read_count_normalized: s.io_read_ops,
                read_size_bytes: s.io_read_bytes,
                write_count_normalized: s.io_write_ops,
                write_size_bytes: s.io_write_bytes,
            }),
            virtual_machine: None,
        })
    }

    /// `Properties.Memory` of a container: its limit and use, in MiB
    /// (`AssignedMemory` = limit, `AvailableMemory` = limit - use; without a
    /// limit, the host's memory stands in for it).
    fn memory(&self) -> HcsResult<MemoryInformationForVm> {
        let s = self.container.stats()?;
        const MIB: u64 = 1024 * 1024;
        let host = host_memory_bytes();
        let limit = s.memory_limit_bytes.filter(|l| *l < host).unwrap_or(host);
        let used = s.memory_usage_bytes.unwrap_or(0);
        Ok(MemoryInformationForVm {
            virtual_node_count: Some(1),
            virtual_machine_memory: Some(VmMemory {
                available_memory: Some(
                    (limit.saturating_sub(used) / MIB).min(i32::MAX as u64) as i32
                ),
                available_memory_buffer: Some(0),
                reserved_memory: Some(0),
                assigned_memory: Some(limit / MIB),
                slp_active: Some(false),
                balancing_enabled: Some(false),
                dm_operation_in_progress: Some(false),
            }),
            virtual_nodes: None,
        })
    }
}

fn host_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn rfc3339(t: SystemTime) -> String {
    hcs_container::rfc3339(t)
}

impl ContainerBackend {
    /// A process given by HCS fields (CommandArgs, CommandLine, ...).
    fn plain_process_spec(&self, p: &ProcessParameters) -> HcsResult<ProcessSpec> {
        // In a container described by an OCI spec, every process gets its
        // seccomp filter, so none can run without it.
        let security = hcs_container::security::container_seccomp(self.container.spec())
            .map(|s| {
                hcs_container::security::ProcessSecurity::defaults_with_seccomp(s).map(Arc::new)
            })
            .transpose()?;
        Ok(ProcessSpec {
            security,
            ..process_params::plain_process_spec(p)
        })
    }

    /// A process given as an OCI runtime-spec `process` (`OciProcess`).
    fn oci_process_spec(
        &self,
        p: &ProcessParameters,
        oci: &serde_json::Value,
    ) -> HcsResult<ProcessSpec> {
        let spec = self.container.spec();
        let mut process = process_params::oci_process_spec(
            p,
            oci,
            hcs_container::security::container_seccomp(spec),
        )?;
        process.container_process = spec.oci.is_some() && !self.oci_process_started;
        Ok(process)
    }
}

impl Backend for ContainerBackend {
    fn system_type(&self) -> SystemType {
        SystemType::Container
    }

    fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.container.cgroup_paths()
    }

    fn cgroup_leaf(&self) -> Option<PathBuf> {
        Some(self.cgroup_leaf.clone())
    }

    fn cgroup_parent(&self) -> Option<(PathBuf, bool)> {
        Some((self.cgroup_parent.clone(), self.cgroup_rooted))
    }

    fn start(&mut self) -> HcsResult<Option<i32>> {
        self.resolve_shared_network()?;
        self.container.start().map(Some)
    }

    fn request_shutdown(
        &mut self,
        mechanism: Option<hcs_schema::enums::ShutdownMechanism>,
    ) -> HcsResult<()> {
        if let Some(m) = mechanism {
            return Err(HcsError::not_supported(format!(
                "ShutdownOptions.Mechanism {:?}: a container has neither a guest connection nor \
                 integration services; its init is sent SIGTERM, so leave Mechanism out",
                m.as_str()
            )));
        }
        // A frozen init cannot act on SIGTERM.
        let _ = self.container.resume();
        self.container
            .signal_init(nix::sys::signal::Signal::SIGTERM)
    }

    fn kill(&mut self) {
        self.container.kill();
    }

    fn main_exited(&mut self) {
        self.container.init_exited();
    }

    fn pause(&mut self) -> HcsResult<()> {
        self.container.pause()
    }

    fn resume(&mut self) -> HcsResult<()> {
        self.container.resume()
    }

    fn save(&mut self, _options: Option<&str>) -> HcsResult<()> {
        Err(HcsError::not_supported(
            "saving a container compute system is not supported: containers have no checkpoint support yet",
        ))
    }

    fn crash(&mut self, _options: Option<&str>) -> HcsResult<()> {
        Err(HcsError::not_supported(
            "HcsCrashComputeSystem injects an NMI into a virtual machine; containers have no guest kernel to crash",
        ))
    }

    fn modify(&mut self, request: &ModifySettingRequest) -> HcsResult<()> {
        if request.guest_request.is_some() {
            return Err(HcsError::not_supported(
                "ModifySettingRequest.GuestRequest: containers have no guest agent",
            ));
        }
        if !matches!(request.request_type, None | Some(ModifyRequestType::Update)) {
            return Err(HcsError::not_supported(format!(
                "ModifySettingRequest.RequestType {:?}: container resources can only be updated (\"Update\")",
                request.request_type.map(|t| t.as_str()).unwrap_or("")
            )));
        }
        let path = request.resource_path.as_deref().unwrap_or_default();
        let settings = request.settings.clone().unwrap_or(serde_json::Value::Null);
        let mut resources = hcs_cgroups::Resources::default();
        match path {
            "Container/Memory/SizeInMB" => {
                let mb = settings.as_u64().ok_or_else(|| {
                    HcsError::invalid_json(format!("ModifySettingRequest.Settings: {settings} is not a size in MB (expected an integer)"))
                })?;
                resources.memory_limit_bytes = Some(hcs_container::spec::memory_bytes(mb)?);
            }
            "Container/Memory" => {
                let m: hcs_schema::ContainerMemory = hcs_schema::from_json(&settings.to_string(), "Container_Memory")?;
                hcs_schema::fields::refuse_unsupported(&m, container_settings("Container_Memory"))?;
                let mb = m.size_in_mb.ok_or_else(|| HcsError::invalid_json("ModifySettingRequest.Settings.SizeInMB is missing"))?;
                resources.memory_limit_bytes = Some(hcs_container::spec::memory_bytes(mb)?);
            }
            "Container/Processor" => {
                let p: hcs_schema::ContainerProcessor = hcs_schema::from_json(&settings.to_string(), "Container_Processor")?;
                hcs_schema::fields::refuse_unsupported(&p, container_settings("Container_Processor"))?;
                hcs_container::spec::processor_resources(&p, &mut resources)?;
            }
            // The Linux extension Container.PidsLimit, with the same values
            // as in the document (0 or -1 lifts the limit).
            "Container/PidsLimit" => {
                let limit = settings.as_i64().ok_or_else(|| {
                    HcsError::invalid_json(format!(
                        "ModifySettingRequest.Settings: {settings} is not a process limit (expected an integer)"
                    ))
                })?;
                resources.pids_max = Some(hcs_container::spec::pids_max(Some(limit)).map_err(|e| {
                    HcsError::new(
                        e.hresult,
                        e.message.replacen("Container.PidsLimit", "ModifySettingRequest.Settings (Container/PidsLimit)", 1),
                    )
                })?);
            }
            // The Linux extension Container/OciResources: an OCI
            // linux.resources object, as `runhcs update` (and runc's) takes.
            "Container/OciResources" => {
                resources = hcs_container::spec::oci_resources_update(&settings).map_err(|e| {
                    HcsError::new(
                        e.hresult,
                        e.message.replacen(
                            "Container.OciSpecification.linux.resources",
                            "ModifySettingRequest.Settings (Container/OciResources)",
                            1,
                        ),
                    )
                })?;
            }
            other => {
                return Err(HcsError::not_supported(format!(
                    "ModifySettingRequest.ResourcePath {other:?} is not supported for containers; supported: \
                     \"Container/Memory/SizeInMB\", \"Container/Memory\", \"Container/Processor\", \
                     \"Container/PidsLimit\", \"Container/OciResources\""
                )))
            }
        }
        self.container.update_resources(&resources)
    }

    fn properties(&self, types: &[SystemPropertyType], props: &mut Properties) -> HcsResult<()> {
        for t in types {
            match t {
                SystemPropertyType::Statistics => props.statistics = Some(self.statistics()?),
                SystemPropertyType::Memory => props.memory = Some(self.memory()?),
                SystemPropertyType::ProcessList => {
                    let mut list: Vec<_> = self.container.pids()?.into_iter().filter_map(hcs_container::process_details).collect();
                    list.sort_by_key(|p| p.process_id);
                    props.process_list = Some(list);
                }
                SystemPropertyType::TerminateOnLastHandleClosed => {}
                other => {
                    return Err(HcsError::not_supported(format!(
                        "property type {:?} is not available for containers; supported: Memory, Statistics, \
                         ProcessList, TerminateOnLastHandleClosed",
                        other.as_str()
                    )))
                }
            }
        }
        Ok(())
    }

    fn create_process(&mut self, p: &ProcessParameters) -> HcsResult<Served<StartedProcess>> {
        process_params::refuse_unsupported(
            p,
            "Linux containers",
            "a container's OCI spec belongs in its compute system document \
             (Container.OciSpecification); a process takes only its `process` part, as ProcessParameters.OciProcess",
        )?;
        let mut spec = match &p.oci_process {
            Some(oci) => self.oci_process_spec(p, oci)?,
            None => self.plain_process_spec(p)?,
        };
        spec.stdin = p.create_std_in_pipe == Some(true);
        spec.stdout = p.create_std_out_pipe == Some(true);
        spec.stderr = p.create_std_err_pipe == Some(true);
        let console = spec.console;
        let s = self.container.spawn(&spec)?;
        if spec.container_process {
            self.oci_process_started = true;
        }
        Ok(Served::Now(StartedProcess {
            pid: s.pid,
            host_pid: Some(s.host_pid),
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: if console.is_some() { None } else { s.stderr },
            console: s.console,
        }))
    }

    fn signal_process(
        &mut self,
        _pid: u32,
        host_pid: Option<i32>,
        signal: i32,
    ) -> HcsResult<Served<()>> {
        let host_pid = host_pid
            .ok_or_else(|| HcsError::from_code(HResult::HCS_E_PROCESS_INFO_NOT_AVAILABLE))?;
        let sig = hcs_container::signal_from_number(signal)?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(host_pid), sig)
            .map(Served::Now)
            .map_err(|e| HcsError::from_io("signalling the process", &std::io::Error::from(e)))
    }

    fn release(&mut self) -> HcsResult<()> {
        self.container.destroy()
    }
}
