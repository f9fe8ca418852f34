//! The virtual machine backend: HCS calls on an [`hcs_vmm::Vm`].

use std::path::{Path, PathBuf};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::enums::{
    ExitInitiator, ShutdownMechanism, SystemPropertyType, SystemType, WorkerExitDetail,
    WorkerExitType,
};
use hcs_schema::properties::{
    MemoryInformationForVm, MemoryStats, ProcessorStats, VmMemory, VmStatistics,
};
use hcs_schema::results::{GuestCrash, TripleFault, VirtualMachineExit, WorkerExit};
use hcs_schema::{
    AttributionRecord, ModifySettingRequest, ProcessParameters, Properties, Statistics,
    VirtualMachine,
};
use hcs_vmm::devices::virtio::VirtioConfig;
use hcs_vmm::{BootSource, SerialBackend, Vm, VmConfig, VmExit, VmmError};

use crate::agent::AgentEvent;
use crate::backend::{
    Backend, BackendEvent, GuestWork, Served, StartedProcess, StopInfo, StopKind,
};
use crate::guest_link::GuestLink;

/// A virtual machine compute system.
pub struct VmBackend {
    vm: Vm,
    id: String,
    started_at: Option<std::time::SystemTime>,
    links: Vec<PathBuf>,
    /// The guest agent's connection, when the document asks for one
    /// (`GuestConnection`).
    guest: Option<GuestLink>,
    /// The cgroup the vCPU threads run in, when `cpu` asks for one.
    cgroup: Option<VcpuCgroup>,
    /// Its name under [`crate::container::CGROUP_PARENT`].
    cgroup_leaf: PathBuf,
    /// Set when a shutdown pressed the ACPI power button, so the power-off
    /// that follows is attributed to it.
    power_button_pressed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set when HcsCrashComputeSystem injected an NMI, so the panic that
    /// follows is attributed to it.
    nmi_injected: bool,
}

/// The CPU cgroup of a VM's vCPU threads (`Processor.Limit`/`Weight`).
///
/// cgroup v1: `hcs/<ns>@<id>` in the `cpu` hierarchy, whose `tasks` take
/// single threads. cgroup v2 takes single threads of a process only inside
/// a threaded subtree of the process's own cgroup, so there the monitor
/// process moves into `hcs/<ns>@<id>`, which becomes the root of a threaded
/// subtree, and the vCPU threads go into its threaded child `vcpus`, where
/// the limits are; the monitor's other threads (devices, API) stay out of
/// the limits, as on v1.
struct VcpuCgroup {
    /// `hcs/<ns>@<id>`: recorded for a cleanup, destroyed at the end.
    leaf: hcs_cgroups::Cgroup,
    /// v2: the threaded child the vCPU threads go into.
    threaded: Option<hcs_cgroups::Cgroup>,
}

impl VcpuCgroup {
    fn create(leaf: &Path, r: &hcs_cgroups::Resources) -> HcsResult<VcpuCgroup> {
        let v1 = hcs_cgroups::Hierarchies::detect()?.v1("cpu").is_some();
        let cg =
            hcs_cgroups::Cgroup::create_under(Path::new(crate::container::CGROUP_PARENT), leaf)?;
        let made = if v1 {
            cg.apply(r).map(|()| None)
        } else {
            cg.add_pid(std::process::id() as i32)
                .and_then(|()| cg.create_threaded_child("vcpus"))
                .and_then(|child| child.apply(r).map(|()| Some(child)))
        };
        let made = VcpuCgroup {
            threaded: made.map_err(|e| {
                let _ = (VcpuCgroup {
                    leaf: cg.clone(),
                    threaded: None,
                })
                .release();
                HcsError::new(
                    e.hresult(),
                    format!("VirtualMachine.ComputeTopology.Processor (Limit/Weight): {e}"),
                )
            })?,
            leaf: cg,
        };
        Ok(made)
    }

    /// Where the vCPU threads go.
    fn for_threads(&self) -> &hcs_cgroups::Cgroup {
        self.threaded.as_ref().unwrap_or(&self.leaf)
    }

    /// Once the vCPU threads have ended: take the monitor (v2) and KVM's
    /// worker for the VM out, and remove the cgroup.
    fn release(&self) -> Result<(), hcs_cgroups::CgroupError> {
        if hcs_cgroups::Hierarchies::detect()?.v1("cpu").is_some() {
            self.leaf.release_threads()?;
        } else {
            self.leaf.move_self_home()?;
        }
        self.leaf.destroy()
    }
}

/// CFS period of a VM's `Processor.Limit` (cgroup `cpu.max`), in µs.
const CPU_PERIOD_US: u64 = 100_000;

/// `ComputeTopology.Processor` Limit, Weight and Reservation as cgroup CPU
/// controls on the vCPU threads (`None` when none is set):
///
/// * `Limit` (1..=100000, 100000 = each vCPU may use a whole host CPU) is
///   CFS bandwidth: `Limit × Count` µs of CPU every 100 ms for all vCPUs
///   together (at least the kernel's 1 ms), 100000 = no limit.
/// * `Weight` (0..=10000, relative to other VMs) is `cpu.weight` (v1
///   `cpu.shares` through the runc conversion); 0 is the lowest, 1.
/// * `Reservation` would be a guaranteed share; CFS has no guarantee (the
///   only way to promise CPU time, SCHED_DEADLINE, also caps it), so any
///   value other than 0 is refused rather than pretended.
pub fn cpu_controls(
    processor: &hcs_schema::virtual_machine::VirtualMachineProcessor,
    vcpus: u8,
) -> HcsResult<Option<hcs_cgroups::Resources>> {
    const PATH: &str = "VirtualMachine.ComputeTopology.Processor";
    if let Some(r) = processor.reservation.filter(|r| *r != 0) {
        return Err(HcsError::not_supported(format!(
            "{PATH}.Reservation: {r}: Linux's scheduler cannot guarantee CPU time to the vCPUs \
             (only weights and caps); use Weight, or omit Reservation (or set 0)"
        )));
    }
    let mut r = hcs_cgroups::Resources::default();
    if let Some(limit) = processor.limit {
        if !(1..=100_000).contains(&limit) {
            return Err(HcsError::invalid_json(format!(
                "{PATH}.Limit: {limit} is outside 1..=100000 (100000 = 100% of a host CPU per vCPU)"
            )));
        }
        let quota_us = if limit == 100_000 {
            u64::MAX
        } else {
            (limit * u64::from(vcpus) * CPU_PERIOD_US / 100_000).max(1_000)
        };
        r.cpu_quota = Some(hcs_cgroups::CpuQuota {
            quota_us,
            period_us: CPU_PERIOD_US,
        });
    }
    if let Some(weight) = processor.weight {
        if weight > 10_000 {
            return Err(HcsError::invalid_json(format!(
                "{PATH}.Weight: {weight} is outside 0..=10000"
            )));
        }
        r.cpu_weight = Some(weight.max(1));
    }
    Ok((r != hcs_cgroups::Resources::default()).then_some(r))
}

/// The hybrid vsock device's socket in the runtime directory: host
/// connections to the guest go through it, and the guest's connections to
/// host port P arrive at `<this>_P`.
pub fn vsock_socket(rundir: &Path) -> PathBuf {
    rundir.join("vsock.sock")
}

fn unsupported(field: &str, why: &str) -> HcsError {
    HcsError::not_supported(format!("VirtualMachine.{field}: {why}"))
}

/// The socket `hcs console` attaches to for COM port `index` (0 = COM1).
pub fn console_socket(rundir: &Path, index: u32) -> PathBuf {
    rundir.join(format!("com{}.sock", index + 1))
}

/// Check the document and turn it into a VMM configuration.
fn config(doc: &VirtualMachine, rundir: &Path) -> HcsResult<(VmConfig, Vec<PathBuf>)> {
    if doc.stop_on_reset == Some(false) {
        return Err(unsupported(
            "StopOnReset",
            "restarting the VM in place when the guest resets is not available; a guest reset stops \
             the VM (StopOnReset: true, as hcsshim and WSL set it)",
        ));
    }
    if doc.registry_changes.is_some() {
        return Err(unsupported("RegistryChanges", "a Windows registry feature"));
    }
    if doc.security_settings.is_some() || doc.migration_options.is_some() {
        return Err(unsupported(
            "SecuritySettings/MigrationOptions",
            "not supported on Linux/KVM yet",
        ));
    }
    if let Some(g) = &doc.guest_connection {
        // The agent's connection is vsock (virtio), which is UseVsock: true;
        // Hyper-V sockets do not exist on KVM.
        if g.use_vsock == Some(false) {
            return Err(unsupported(
                "GuestConnection.UseVsock",
                "false asks for Hyper-V sockets, which KVM does not have; the guest connection is \
                 AF_VSOCK (virtio): set it true or leave it out",
            ));
        }
        // A pause stops the vCPUs and keeps the agent's connection open
        // (UseConnectedSuspend: true); closing it would lose the watches on
        // the guest's running processes.
        if g.use_connected_suspend == Some(false) {
            return Err(unsupported(
                "GuestConnection.UseConnectedSuspend",
                "false closes the guest connection at pause, which is not available: the connection \
                 is kept open across pause; set it true or leave it out",
            ));
        }
    }
    let chipset = doc.chipset.clone().unwrap_or_default();
    if chipset.uefi.is_some() {
        return Err(unsupported(
            "Chipset.Uefi",
            "booting through UEFI firmware is not available; use Chipset.LinuxKernelDirect",
        ));
    }
    // A restored VM's kernel is in its saved memory: no boot source needed.
    let restoring = doc.restore_state.is_some();
    let direct = match chipset.linux_kernel_direct {
        Some(d) => d,
        None if restoring => Default::default(),
        None => {
            return Err(HcsError::invalid_json(
                "VirtualMachine.Chipset.LinuxKernelDirect is required (KernelFilePath, InitRdPath, KernelCmdLine)",
            ))
        }
    };
    let kernel = direct.kernel_file_path.filter(|k| !k.is_empty());
    if kernel.is_none() && !restoring {
        return Err(HcsError::invalid_json(
            "VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath is required",
        ));
    }
    let path_check = |field: &str, p: &str| -> HcsResult<PathBuf> {
        let pb = PathBuf::from(p);
        if !pb.is_absolute() {
            return Err(HcsError::new(
                HResult::ERROR_BAD_PATHNAME,
                format!("VirtualMachine.Chipset.LinuxKernelDirect.{field}: {p:?} is not an absolute path"),
            ));
        }
        match std::fs::metadata(&pb) {
            Ok(m) if m.is_file() => Ok(pb),
            Ok(_) => Err(HcsError::new(
                HResult::ERROR_FILE_NOT_FOUND,
                format!("VirtualMachine.Chipset.LinuxKernelDirect.{field}: {p:?} is not a file"),
            )),
            Err(_) => Err(HcsError::new(
                HResult::ERROR_FILE_NOT_FOUND,
                format!("VirtualMachine.Chipset.LinuxKernelDirect.{field}: {p:?} does not exist"),
            )),
        }
    };
    let kernel = match &kernel {
        Some(k) => path_check("KernelFilePath", k)?,
        None => PathBuf::new(),
    };
    let initrd = match direct.init_rd_path.filter(|p| !p.is_empty()) {
        Some(p) => Some(path_check("InitRdPath", &p)?),
        None => None,
    };
    let topo = doc.compute_topology.clone().unwrap_or_default();
    let memory_doc = topo.memory.clone().unwrap_or_default();
    let memory_mb = memory_doc.size_in_mb.ok_or_else(|| {
        HcsError::invalid_json("VirtualMachine.ComputeTopology.Memory.SizeInMB is required")
    })?;
    let memory = memory_backing(&memory_doc)?;
    let count = topo.processor.and_then(|p| p.count).unwrap_or(1);
    let vcpus = u8::try_from(count).map_err(|_| {
        HcsError::invalid_json(format!(
            "VirtualMachine.ComputeTopology.Processor.Count: {count} is more than {} vCPUs",
            hcs_vmm::vm::MAX_VCPUS
        ))
    })?;

    let devices = doc.devices.clone().unwrap_or_default();
    let policy = vsock_policy(
        devices
            .hv_socket
            .as_ref()
            .and_then(|h| h.hv_socket_config.as_ref()),
        doc.guest_connection.is_some(),
    )?;
    let virtio = VirtioConfig {
        vsock: (doc.guest_connection.is_some() || devices.hv_socket.is_some()).then(|| {
            hcs_virtio::VsockConfig {
                guest_cid: GUEST_CID,
                uds_path: vsock_socket(rundir),
                policy: policy.clone(),
            }
        }),
        disks: scsi_disks(&devices, storage_limiter(doc.storage_qos.as_ref()))?,
        nets: network_adapters(&devices, rundir)?,
    };
    let mut refuse = Vec::new();
    for (present, name) in [
        (devices.virtio_serial.is_some(), "VirtioSerial"),
        (devices.virtual_pmem.is_some(), "VirtualPMem"),
        (devices.video_monitor.is_some(), "VideoMonitor"),
        (devices.enhanced_mode_video.is_some(), "EnhancedModeVideo"),
        (devices.virtual_smb.is_some(), "VirtualSmb"),
        (devices.plan9.is_some(), "Plan9"),
        (devices.flexible_iov.is_some(), "FlexibleIov"),
        (devices.shared_memory.is_some(), "SharedMemory"),
        (devices.virtual_pci.is_some(), "VirtualPci"),
        (
            devices.guest_crash_reporting.is_some(),
            "GuestCrashReporting",
        ),
    ] {
        if present {
            refuse.push(name);
        }
    }
    if !refuse.is_empty() {
        return Err(HcsError::not_supported(format!(
            "VirtualMachine.Devices: {} not supported yet; supported devices: ComPorts (16550 serial), \
             Scsi (virtio-blk disks), HvSocket (virtio-vsock), NetworkAdapters (virtio-net on a tap), \
             Keyboard, Mouse and Battery (accepted, \
             nothing to emulate); an i8042 reset line, pvpanic and an ACPI power button are always present",
            refuse.join(", ")
        )));
    }
    let mut serial = Vec::new();
    let mut links = Vec::new();
    for (index, port) in devices.com_ports.iter().flatten() {
        if *index > 3 {
            return Err(HcsError::invalid_json(format!(
                "VirtualMachine.Devices.ComPorts[\"{index}\"]: COM ports are \"0\" to \"3\""
            )));
        }
        let console = console_socket(rundir, *index);
        let pipe = port.named_pipe.clone().unwrap_or_default();
        let mut backends = vec![SerialBackend::Socket(console.clone())];
        if pipe.ends_with(".log") || pipe.starts_with("file:") {
            let file = PathBuf::from(pipe.trim_start_matches("file:"));
            if !file.is_absolute() {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!("VirtualMachine.Devices.ComPorts[\"{index}\"].NamedPipe: {pipe:?} is not an absolute path"),
                ));
            }
            backends.push(SerialBackend::LogFile(file));
        } else if pipe.starts_with('/') {
            backends.push(SerialBackend::Socket(PathBuf::from(&pipe)));
        } else if !pipe.is_empty() && !pipe.starts_with(r"\\.\pipe\") {
            return Err(HcsError::invalid_json(format!(
                "VirtualMachine.Devices.ComPorts[\"{index}\"].NamedPipe: {pipe:?} is neither an absolute unix \
                 socket path, a log file (*.log or file:PATH), a Windows pipe name, nor empty"
            )));
        }
        serial.push((*index as u8, backends));
        links.push(console);
    }
    Ok((
        VmConfig {
            memory_mb,
            vcpus,
            boot: BootSource {
                kernel,
                initrd,
                cmdline: direct.kernel_cmd_line.unwrap_or_default(),
            },
            serial,
            virtio,
            memory,
        },
        links,
    ))
}

/// `RestoreState.SaveStateFilePath`, when the document restores a saved VM.
fn restore_path(doc: &VirtualMachine) -> HcsResult<Option<PathBuf>> {
    let Some(r) = &doc.restore_state else {
        return Ok(None);
    };
    if r.template_system_id.is_some() {
        return Err(unsupported(
            "RestoreState.TemplateSystemId",
            "cloning from a template is not supported; restore from a SaveStateFilePath",
        ));
    }
    let path = absolute_path(
        "VirtualMachine.RestoreState.SaveStateFilePath",
        r.save_state_file_path.as_deref(),
    )?;
    if !path.is_file() {
        return Err(HcsError::new(
            HResult::ERROR_FILE_NOT_FOUND,
            format!(
                "VirtualMachine.RestoreState.SaveStateFilePath: {} does not exist",
                path.display()
            ),
        ));
    }
    Ok(Some(path))
}

/// A required absolute path from a document field.
fn absolute_path(field: &str, value: Option<&str>) -> HcsResult<PathBuf> {
    let v = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| HcsError::invalid_json(format!("{field} is required")))?;
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(HcsError::new(
            HResult::ERROR_BAD_PATHNAME,
            format!("{field}: {v:?} is not an absolute path"),
        ));
    }
    Ok(p)
}

/// Who an SDDL security descriptor of `HvSocketConfig` lets through, as far
/// as this host can tell them apart: the vsock sockets live in the system's
/// runtime directory (mode 0700, root's), so only root reaches them, and root
/// is what LocalSystem (`SY`) and the Administrators (`BA`) are here.
///
/// * empty: not set (`None`);
/// * a DACL granting only `SY`/`BA` (hcsshim's `D:P(A;;FA;;;SY)(A;;FA;;;BA)`):
///   allowed (`Some(true)`), which is what the socket permissions enforce;
/// * a DACL with no entry (`D:P`, or `D:`): nobody, refused (`Some(false)`);
/// * anything else (other accounts, deny entries, owners, audit parts) has no
///   Linux meaning here and is refused with its JSON path.
pub fn sddl_access(path: &str, sddl: &str) -> HcsResult<Option<bool>> {
    let text: String = sddl.chars().filter(|c| !c.is_whitespace()).collect();
    if text.is_empty() {
        return Ok(None);
    }
    let refuse = |why: &str| {
        HcsError::not_supported(format!(
            "{path}: security descriptor {sddl:?} {why}; only a DACL that grants LocalSystem (SY) or \
             Administrators (BA), who are root here and the only ones who can reach the VM's sockets, \
             or an empty DACL (D:P, nobody) can be honoured"
        ))
    };
    let Some(rest) = text.strip_prefix("D:") else {
        return Err(refuse("has no DACL or has owner, group or audit parts"));
    };
    // DACL flags (P, AI, AR, NO_ACCESS_CONTROL...) come before the first entry.
    let (flags, mut aces) = rest.split_at(rest.find('(').unwrap_or(rest.len()));
    if flags.contains("NO_ACCESS_CONTROL") {
        return Err(refuse("turns access control off"));
    }
    if flags.contains(':') {
        return Err(refuse("has parts after the DACL"));
    }
    let mut any = false;
    while !aces.is_empty() {
        let Some(end) = aces.find(')') else {
            return Err(refuse("is malformed"));
        };
        let ace = aces.get(1..end).unwrap_or_default();
        aces = aces.get(end + 1..).unwrap_or_default();
        if !aces.is_empty() && !aces.starts_with('(') {
            return Err(refuse("is malformed or has parts after the DACL"));
        }
        let fields: Vec<&str> = ace.split(';').collect();
        let [kind, _flags, _rights, _object, _inherited, sid] = fields[..] else {
            return Err(refuse("has a malformed entry"));
        };
        if kind != "A" {
            return Err(refuse(&format!(
                "has a {kind:?} entry (only allow entries can be honoured)"
            )));
        }
        if sid != "SY" && sid != "BA" {
            return Err(refuse(&format!("grants access to {sid:?}")));
        }
        any = true;
    }
    Ok(Some(any))
}

/// `Devices.HvSocket.HvSocketConfig` as the vsock device's port policy.
/// Service GUIDs are vsock ports when they follow the vsock template
/// (`XXXXXXXX-facb-11e6-bd58-64006a7986d3`); a service that is `Disabled`
/// refuses both directions; a service's descriptors, or else the defaults,
/// decide each direction (unset: allowed). With a `GuestConnection` the guest
/// agent's ports (its control port and the stdio ports from 65536 up) must
/// stay open to the agent's host listeners.
pub fn vsock_policy(
    config: Option<&hcs_schema::virtual_machine::devices::HvSocketSystemConfig>,
    agent: bool,
) -> HcsResult<hcs_virtio::VsockPolicy> {
    const PATH: &str = "VirtualMachine.Devices.HvSocket.HvSocketConfig";
    let mut policy = hcs_virtio::VsockPolicy::default();
    let Some(config) = config else {
        return Ok(policy);
    };
    if let Some(sd) = &config.default_bind_security_descriptor {
        if let Some(allow) = sddl_access(&format!("{PATH}.DefaultBindSecurityDescriptor"), sd)? {
            policy.default_bind = allow;
        }
    }
    if let Some(sd) = &config.default_connect_security_descriptor {
        if let Some(allow) = sddl_access(&format!("{PATH}.DefaultConnectSecurityDescriptor"), sd)? {
            policy.default_connect = allow;
        }
    }
    if agent && !policy.default_bind {
        return Err(HcsError::not_supported(format!(
            "{PATH}.DefaultBindSecurityDescriptor: refusing every unlisted host listener would cut off \
             the guest agent of VirtualMachine.GuestConnection, whose process streams connect to host \
             ports from 65536 up"
        )));
    }
    for (id, service) in config.service_table.iter().flatten() {
        let at = format!("{PATH}.ServiceTable[\"{id}\"]");
        let port = hcs_virtio::vsock::port_of_service_id(id).ok_or_else(|| {
            HcsError::not_supported(format!(
                "{at}: {id:?} is not a vsock service id (XXXXXXXX-facb-11e6-bd58-64006a7986d3, \
                 XXXXXXXX = the port in hex); other Hyper-V socket services do not exist here"
            ))
        })?;
        let rule = if service.disabled == Some(true) {
            hcs_virtio::vsock::PortRule {
                connect: false,
                bind: false,
            }
        } else {
            let side = |member: &str, sd: &Option<String>, default: bool| -> HcsResult<bool> {
                match sd {
                    Some(sd) => Ok(sddl_access(&format!("{at}.{member}"), sd)?.unwrap_or(default)),
                    None => Ok(default),
                }
            };
            hcs_virtio::vsock::PortRule {
                connect: side(
                    "ConnectSecurityDescriptor",
                    &service.connect_security_descriptor,
                    policy.default_connect,
                )?,
                bind: side(
                    "BindSecurityDescriptor",
                    &service.bind_security_descriptor,
                    policy.default_bind,
                )?,
            }
        };
        if agent
            && !rule.bind
            && (port == hcs_agent_protocol::AGENT_CONTROL_PORT || port >= 0x1_0000)
        {
            return Err(HcsError::not_supported(format!(
                "{at}: vsock port {port} is the guest agent's (VirtualMachine.GuestConnection: its control \
                 port, or the process streams from 65536 up); it cannot be disabled or refused"
            )));
        }
        policy.ports.insert(port, rule);
    }
    Ok(policy)
}

/// `ComputeTopology.Memory`'s backing options as the VMM's (see
/// [`hcs_vmm::memory`]), and its MMIO members checked against the fixed
/// layout: the 32-bit MMIO gap is 1 GiB below 4 GiB, and nothing is placed
/// above RAM, so a high MMIO window is honoured wherever it does not
/// overlap guest RAM.
pub fn memory_backing(
    m: &hcs_schema::virtual_machine::VirtualMachineMemory,
) -> HcsResult<hcs_vmm::memory::MemoryBacking> {
    use hcs_schema::enums::MemoryBackingPageSize;
    use hcs_vmm::memory::{HugePages, MemoryBacking};
    const PATH: &str = "VirtualMachine.ComputeTopology.Memory";
    let low_gap_mb = (hcs_vmm::layout::MMIO_GAP_END - hcs_vmm::layout::MMIO_GAP_START) >> 20;
    if let Some(gap) = m.low_mmio_gap_in_mb.filter(|g| *g != low_gap_mb) {
        return Err(HcsError::not_supported(format!(
            "{PATH}.LowMmioGapInMB: {gap}: the MMIO gap below 4 GiB is fixed at {low_gap_mb} MiB \
             (3 GiB to 4 GiB); omit it or give {low_gap_mb}"
        )));
    }
    if m.high_mmio_base_in_mb.is_some() || m.high_mmio_gap_in_mb.is_some() {
        let (Some(base), Some(gap)) = (m.high_mmio_base_in_mb, m.high_mmio_gap_in_mb) else {
            return Err(HcsError::invalid_json(format!(
                "{PATH}: HighMmioBaseInMB and HighMmioGapInMB go together"
            )));
        };
        let size_mb = m.size_in_mb.unwrap_or(0);
        let four_gib_mb = hcs_vmm::layout::MMIO_GAP_END >> 20;
        let low_ram_mb = hcs_vmm::layout::MMIO_GAP_START >> 20;
        let ram_end_mb = four_gib_mb + size_mb.saturating_sub(low_ram_mb);
        let end = base.checked_add(gap);
        if base < four_gib_mb || base < ram_end_mb || end.is_none() || end > Some(1 << 26) {
            return Err(HcsError::not_supported(format!(
                "{PATH}.HighMmioBaseInMB: {base} (+{gap} MiB): the high MMIO window must start at or above \
                 4 GiB and after guest RAM, which ends at {ram_end_mb} MiB, and end below 64 TiB"
            )));
        }
    }
    let huge_pages = match (m.backing_page_size, m.forbid_small_backing_pages) {
        (None | Some(MemoryBackingPageSize::Small), Some(true)) => {
            return Err(HcsError::invalid_json(format!(
                "{PATH}.ForbidSmallBackingPages: true needs BackingPageSize Large"
            )))
        }
        (None | Some(MemoryBackingPageSize::Small), _) => HugePages::No,
        (Some(MemoryBackingPageSize::Large), Some(true)) => HugePages::Require,
        (Some(MemoryBackingPageSize::Large), _) => HugePages::Prefer,
    };
    let populate = m.allow_overcommit == Some(false);
    // Commit is deferred unless the document asks otherwise or the memory is
    // populated (or in huge pages, which are reserved when mapped) anyway.
    let deferred_commit = match m.enable_deferred_commit {
        Some(true) if populate => {
            return Err(HcsError::invalid_json(format!(
                "{PATH}.EnableDeferredCommit: true contradicts AllowOvercommit false (all memory \
                 populated at creation)"
            )))
        }
        Some(true) if huge_pages != HugePages::No => {
            return Err(HcsError::not_supported(format!(
                "{PATH}.EnableDeferredCommit: true cannot be honoured with BackingPageSize Large: huge \
                 pages are reserved when they are mapped"
            )))
        }
        Some(d) => d,
        None => !populate && huge_pages == HugePages::No && m.pin_backing_pages != Some(true),
    };
    if huge_pages != HugePages::No && m.size_in_mb.is_some_and(|mb| mb % 2 != 0) {
        return Err(HcsError::invalid_json(format!(
            "{PATH}.SizeInMB: BackingPageSize Large needs a whole number of 2 MiB pages"
        )));
    }
    Ok(MemoryBacking {
        populate,
        deferred_commit,
        huge_pages,
        pin: m.pin_backing_pages.unwrap_or(false),
    })
}

/// The guest's vsock context id (the host is 2).
pub const GUEST_CID: u64 = 3;

/// `Devices.Scsi` attachments as virtio-blk disks, controllers and LUNs in
/// order. Images are raw or fixed VHD; an `Iso` is attached read-only.
/// The guest tells them apart by their serial (virtio-blk GET_ID,
/// `/sys/block/vdX/serial`): `<controller>:<lun>`, see [`controller_number`].
/// `CachingMode` picks the host caching; absent is `Uncached`, HCS's
/// default (writes durable before they complete, nothing left in the
/// host's page cache); `IgnoreFlushes` completes flushes without
/// syncing, the controller's `DisableInterruptBatching` interrupts the guest
/// for every request.
fn scsi_disks(
    devices: &hcs_schema::virtual_machine::Devices,
    limiter: Option<std::sync::Arc<hcs_virtio::block::IoLimiter>>,
) -> HcsResult<Vec<hcs_virtio::BlockConfig>> {
    use hcs_schema::enums::{AttachmentType, CachingMode};
    let mut disks = Vec::new();
    for (controller, scsi) in devices.scsi.iter().flatten() {
        for (lun, a) in scsi.attachments.iter().flatten() {
            let field =
                format!("VirtualMachine.Devices.Scsi[\"{controller}\"].Attachments[\"{lun}\"]");
            let read_only = match a.attachment_type {
                Some(AttachmentType::VirtualDisk) | None => a.read_only.unwrap_or(false),
                Some(AttachmentType::Iso) => true,
                Some(AttachmentType::PassThru) => {
                    return Err(HcsError::not_supported(format!(
                    "{field}.Type: PassThru (a host disk handed to the guest) is not supported; \
                         attach an image file as VirtualDisk"
                )))
                }
            };
            let path = a
                .path
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| HcsError::invalid_json(format!("{field}.Path is required")))?;
            let pb = PathBuf::from(path);
            if !pb.is_absolute() {
                return Err(HcsError::new(
                    HResult::ERROR_BAD_PATHNAME,
                    format!("{field}.Path: {path:?} is not an absolute path"),
                ));
            }
            if !pb.is_file() {
                return Err(HcsError::new(
                    HResult::ERROR_FILE_NOT_FOUND,
                    format!("{field}.Path: {path:?} does not exist or is not a file"),
                ));
            }
            // The format is checked now, read-only, so a VHDX, qcow2 or
            // dynamic VHD is refused naming the attachment (the VMM checks
            // again when it opens the disk for the guest).
            hcs_virtio::DiskImage::open(&pb, true).map_err(|e| {
                let code = match e {
                    hcs_virtio::DiskError::Open { ref source, .. } => {
                        HResult::from_errno(source.raw_os_error().unwrap_or(libc::EIO))
                    }
                    _ => HResult::ERROR_INVALID_DATA,
                };
                HcsError::new(code, format!("{field}.Path: {e}"))
            })?;
            let cache = match a.caching_mode {
                Some(CachingMode::Cached) => hcs_virtio::CacheMode::WriteBack,
                Some(CachingMode::ReadOnlyCached) => hcs_virtio::CacheMode::WriteThrough,
                // HCS's default (schema 2.1: `Uncached` when absent).
                None | Some(CachingMode::Uncached) => hcs_virtio::CacheMode::Uncached,
            };
            let id = format!("{}:{lun}", controller_number(controller));
            if id.len() > hcs_virtio::block::ID_BYTES {
                return Err(HcsError::invalid_json(format!(
                    "VirtualMachine.Devices.Scsi[\"{controller}\"]: the guest tells disks apart by their \
                     virtio-blk serial \"<controller>:<lun>\", at most {} bytes; name the controller \
                     \"0\" to \"3\" (or with one of hcsshim's controller GUIDs, or a shorter name)",
                    hcs_virtio::block::ID_BYTES
                )));
            }
            if let Some(other) = disks.iter().find(|d: &&hcs_virtio::BlockConfig| d.id == id) {
                return Err(HcsError::invalid_json(format!(
                    "{field}: its serial {id:?} is also the serial of {}",
                    other.path.display()
                )));
            }
            disks.push(hcs_virtio::BlockConfig {
                path: pb,
                read_only,
                id,
                options: hcs_virtio::BlockOptions {
                    cache,
                    ignore_flushes: a.ignore_flushes.unwrap_or(false),
                    interrupt_per_request: scsi.disable_interrupt_batching.unwrap_or(false),
                    limiter: limiter.clone(),
                },
            });
        }
    }
    Ok(disks)
}

/// `VirtualMachine.StorageQoS` as one limiter shared by all the VM's disks
/// (the limits are the VM's, not each disk's): `IopsMaximum` requests and
/// `BandwidthMaximum` bytes of data per second, a second's worth at once;
/// 0 or absent is no limit.
fn storage_limiter(
    qos: Option<&hcs_schema::virtual_machine::StorageQoS>,
) -> Option<std::sync::Arc<hcs_virtio::block::IoLimiter>> {
    let qos = qos?;
    hcs_virtio::block::IoLimiter::new(hcs_virtio::block::IoLimits {
        iops: qos.iops_maximum,
        bandwidth: qos.bandwidth_maximum,
    })
}

/// hcsshim's SCSI controller GUIDs (`guestrequest.ScsiControllerGuids`),
/// whose position is the controller number its guest looks for.
const HCSSHIM_SCSI_CONTROLLERS: [&str; 4] = [
    "df6d0690-79e5-55b6-a5ec-c1e2f77f580a",
    "0110f83b-de10-5172-a266-78bca56bf50a",
    "b5d2d8d4-3a75-51bf-945b-3444dc6b8579",
    "305891a9-b251-5dfe-91a2-c25d9212275b",
];

/// The controller part of a disk's serial: the number of a numeric key
/// (`"0"`), the number hcsshim gives one of its controller GUIDs, or else
/// the key itself.
fn controller_number(key: &str) -> String {
    if let Ok(n) = key.parse::<u32>() {
        return n.to_string();
    }
    match HCSSHIM_SCSI_CONTROLLERS
        .iter()
        .position(|g| g.eq_ignore_ascii_case(key))
    {
        Some(i) => i.to_string(),
        None => key.to_string(),
    }
}

/// `Devices.NetworkAdapters` as virtio-net devices, in name order. On Linux
/// an adapter's `EndpointId` names the existing tap it is attached to;
/// `MacAddress` (`00-15-5D-01-02-03` or `00:15:5d:01:02:03`) is what the
/// guest sees, and when it is absent a locally administered address is
/// derived from the system's runtime directory and the adapter's name, so
/// it stays the same each time the system is created.
fn network_adapters(
    devices: &hcs_schema::virtual_machine::Devices,
    rundir: &Path,
) -> HcsResult<Vec<hcs_virtio::NetConfig>> {
    let mut nets = Vec::new();
    for (name, nic) in devices.network_adapters.iter().flatten() {
        let field = format!("VirtualMachine.Devices.NetworkAdapters[\"{name}\"]");
        let tap = nic
            .endpoint_id
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                HcsError::invalid_json(format!(
                    "{field}.EndpointId is required: on Linux it names the tap device the adapter \
                     is attached to"
                ))
            })?;
        if !hcs_virtio::net::valid_interface_name(tap) {
            return Err(HcsError::invalid_json(format!(
                "{field}.EndpointId: {tap:?} is not a network interface name (1 to 15 bytes, no '/', \
                 ':' or whitespace); on Linux it names the tap device the adapter is attached to"
            )));
        }
        if nets.iter().any(|n: &hcs_virtio::NetConfig| n.tap == tap) {
            return Err(HcsError::invalid_json(format!(
                "{field}.EndpointId: tap {tap:?} is used by another adapter of this VM"
            )));
        }
        let mac = match nic.mac_address.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => hcs_virtio::MacAddress::parse(m)
                .map_err(|e| HcsError::invalid_json(format!("{field}.MacAddress: {e}")))?,
            None => {
                let mut seed = rundir.as_os_str().as_encoded_bytes().to_vec();
                seed.push(0);
                seed.extend_from_slice(name.as_bytes());
                hcs_virtio::MacAddress::local_from_seed(&seed)
            }
        };
        nets.push(hcs_virtio::NetConfig {
            tap: tap.to_string(),
            mac,
        });
    }
    Ok(nets)
}

/// Map errors building a VM to HRESULTs: a serial port's backend that
/// cannot be set up is the document's `NamedPipe` unless it is the
/// console socket this system makes in its own run directory.
fn create_error(e: VmmError, rundir: &Path) -> HcsError {
    match e {
        VmmError::Serial { port, source } => {
            let code = match &source {
                hcs_vmm::SerialError::Exists { .. }
                | hcs_vmm::SerialError::NotRegularLog { .. } => HResult::ERROR_BAD_PATHNAME,
                hcs_vmm::SerialError::Io { source, .. } => {
                    HResult::from_errno(source.raw_os_error().unwrap_or(libc::EIO))
                }
            };
            if source.path() == console_socket(rundir, u32::from(port)) {
                HcsError::new(
                    code,
                    format!("the console socket of COM{}: {source}", u16::from(port) + 1),
                )
            } else {
                HcsError::new(
                    code,
                    format!("VirtualMachine.Devices.ComPorts[\"{port}\"].NamedPipe: {source}"),
                )
            }
        }
        other => vmm_error(other),
    }
}

/// Map VMM errors to HRESULTs.
fn vmm_error(e: VmmError) -> HcsError {
    match e {
        VmmError::Config(m) => HcsError::invalid_json(format!("VirtualMachine: {m}")),
        VmmError::NoKvm(m) => HcsError::new(HResult::HCS_E_HYPERV_NOT_INSTALLED, m),
        VmmError::Boot(b) => match b {
            hcs_vmm::boot::BootError::KernelFile { .. }
            | hcs_vmm::boot::BootError::InitrdFile { .. } => {
                HcsError::new(HResult::ERROR_FILE_NOT_FOUND, b.to_string())
            }
            hcs_vmm::boot::BootError::NotAKernel(_)
            | hcs_vmm::boot::BootError::Load { .. }
            | hcs_vmm::boot::BootError::No64BitEntry(_) => {
                HcsError::new(HResult::ERROR_INVALID_DATA, b.to_string())
            }
            other => HcsError::invalid_json(other.to_string()),
        },
        VmmError::State(m) => HcsError::invalid_state(m),
        VmmError::Snapshot(m) => {
            HcsError::new(HResult::ERROR_INVALID_DATA, format!("saved state {m}"))
        }
        VmmError::Unsupported(m) => HcsError::not_supported(m),
        VmmError::Memory(m) => {
            use hcs_vmm::memory::MemoryError as M;
            let code = match &m {
                M::Invalid(_) => HResult::HCS_E_INVALID_JSON,
                M::NoHugePages { .. } => HResult::E_OUTOFMEMORY,
                M::Map { source, .. } | M::Populate { source, .. } | M::Lock { source, .. } => {
                    source
                        .raw_os_error()
                        .map(HResult::from_errno)
                        .unwrap_or(HResult::E_FAIL)
                }
            };
            HcsError::new(code, format!("VirtualMachine.ComputeTopology.Memory: {m}"))
        }
        VmmError::Virtio(v) => {
            use hcs_vmm::devices::virtio::VirtioSetupError as V;
            let code = match &v {
                V::Disk { .. } => HResult::ERROR_INVALID_DATA,
                V::Net { source, .. } => {
                    use hcs_virtio::{NetError, TapError};
                    match source {
                        NetError::Tap(TapError::NotFound(_) | TapError::NotATap { .. }) => {
                            HResult::ERROR_NOT_FOUND
                        }
                        NetError::Tap(TapError::InvalidName(_)) => HResult::HCS_E_INVALID_JSON,
                        NetError::Tap(TapError::Permission { .. }) => HResult::E_ACCESSDENIED,
                        _ => HResult::E_FAIL,
                    }
                }
                V::TooMany(_) => HResult::HCS_E_INVALID_JSON,
                _ => HResult::E_FAIL,
            };
            HcsError::new(code, format!("VirtualMachine.Devices: {v}"))
        }
        other => HcsError::new(HResult::E_FAIL, other.to_string()),
    }
}

impl VmBackend {
    /// Build the VM of the document's `VirtualMachine` (nothing runs yet).
    pub fn create(
        id: &str,
        namespace: &str,
        doc: &VirtualMachine,
        rundir: &Path,
    ) -> HcsResult<VmBackend> {
        let (cfg, links) = config(doc, rundir)?;
        let processor = doc
            .compute_topology
            .as_ref()
            .and_then(|t| t.processor.clone())
            .unwrap_or_default();
        let cpu = cpu_controls(&processor, cfg.vcpus)?;
        let cgroup_leaf = PathBuf::from(crate::container::cgroup_leaf(namespace, id));
        // Made now so that its paths are in the record before it exists.
        let cgroup = cpu
            .as_ref()
            .map(|r| VcpuCgroup::create(&cgroup_leaf, r))
            .transpose()?;
        let release_on_error = |e: HcsError| {
            if let Some(cg) = &cgroup {
                if let Err(c) = cg.release() {
                    tracing::warn!("removing the vCPU cgroup after a failed create: {c}");
                }
            }
            e
        };
        let restoring = restore_path(doc).map_err(release_on_error)?;
        let vm = match &restoring {
            Some(state) => {
                Vm::restore(&cfg, state).map_err(|e| release_on_error(create_error(e, rundir)))?
            }
            None => Vm::create(&cfg).map_err(|e| release_on_error(create_error(e, rundir)))?,
        };
        let guest = match &doc.guest_connection {
            Some(g) => {
                let tz = if g.use_host_time_zone == Some(true) {
                    Some(
                        crate::agent::HostTimeZone::of_host(Path::new("/etc"))
                            .map_err(release_on_error)?,
                    )
                } else {
                    None
                };
                Some(
                    GuestLink::listen(&vsock_socket(rundir), tz, restoring.is_some())
                        .map_err(release_on_error)?,
                )
            }
            None => None,
        };
        Ok(VmBackend {
            vm,
            id: id.to_string(),
            started_at: None,
            links,
            guest,
            cgroup,
            cgroup_leaf,
            power_button_pressed: Default::default(),
            nmi_injected: false,
        })
    }

    /// The guest agent, waiting up to `wait` for it to connect.
    fn agent(
        &self,
        wait: std::time::Duration,
    ) -> HcsResult<std::sync::Arc<crate::agent::AgentClient>> {
        match &self.guest {
            Some(g) => g.client(wait),
            None => Err(HcsError::new(
                HResult::HCS_E_CONNECT_FAILED,
                "this virtual machine has no guest connection: processes, signals and the process \
                 list need VirtualMachine.GuestConnection (a guest agent over vsock)",
            )),
        }
    }

    fn stop_info(&self, exit: VmExit) -> StopInfo {
        let vm_exit =
            |reason: &str, vcpu: u8, rip: u64, code: u64, detail: String| AttributionRecord {
                virtual_machine_exit: Some(VirtualMachineExit {
                    reason: Some(reason.into()),
                    vcpu: Some(u32::from(vcpu)),
                    rip: Some(rip),
                    code: Some(code),
                    detail: Some(detail),
                }),
                ..Default::default()
            };
        let worker = |t: WorkerExitType, d: WorkerExitDetail, i: ExitInitiator| AttributionRecord {
            worker_exit: Some(WorkerExit {
                exit_code: Some(0),
                exit_type: Some(t),
                detail: Some(d),
                initiator: Some(i),
            }),
            ..Default::default()
        };
        match exit {
            VmExit::PowerOff => {
                let mut attribution = vec![worker(WorkerExitType::Stopped, WorkerExitDetail::PowerOff, ExitInitiator::GuestOs)];
                if self.power_button_pressed.load(std::sync::atomic::Ordering::SeqCst) {
                    attribution.push(AttributionRecord {
                        virtual_machine_exit: Some(VirtualMachineExit {
                            reason: Some("PowerButton".into()),
                            detail: Some(
                                "the guest powered off after the VMM pressed its ACPI power button (a shutdown without a guest connection)"
                                    .into(),
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                StopInfo { kind: StopKind::Clean, attribution, crash_report: None }
            }
            VmExit::Reset => StopInfo {
                kind: StopKind::Clean,
                attribution: vec![worker(WorkerExitType::StoppedOnReset, WorkerExitDetail::Reset, ExitInitiator::GuestOs)],
                crash_report: None,
            },
            VmExit::Killed => StopInfo { kind: StopKind::Killed, attribution: Vec::new(), crash_report: None },
            VmExit::Saved => StopInfo {
                kind: StopKind::Clean,
                attribution: vec![worker(WorkerExitType::Saved, WorkerExitDetail::Save, ExitInitiator::Client)],
                crash_report: None,
            },
            VmExit::Panic { events } => {
                let log = self.vm.console_history(0).map(|h| {
                    let tail = &h[h.len().saturating_sub(4096)..];
                    String::from_utf8_lossy(tail).into_owned()
                });
                let report = hcs_schema::CrashReport {
                    system_id: Some(self.id.clone()),
                    crash_parameters: Some(vec![u64::from(events)]),
                    crash_log: log,
                    ..Default::default()
                };
                let mut attribution = vec![
                    AttributionRecord {
                        guest_crash: Some(GuestCrash { crash_parameters: Some(vec![u64::from(events)]) }),
                        ..Default::default()
                    },
                    worker(WorkerExitType::UnexpectedStop, WorkerExitDetail::GuestCrash, ExitInitiator::GuestOs),
                ];
                if self.nmi_injected {
                    attribution.push(AttributionRecord {
                        inject_non_maskable_interrupt: Some(Default::default()),
                        ..Default::default()
                    });
                }
                StopInfo { kind: StopKind::Unexpected, attribution, crash_report: Some(hcs_schema::to_json(&report)) }
            }
            VmExit::TripleFault { vcpu, rip } => StopInfo {
                kind: StopKind::Unexpected,
                attribution: vec![
                    AttributionRecord { triple_fault: Some(TripleFault { error_type: Some(0) }), ..Default::default() },
                    worker(WorkerExitType::UnexpectedStop, WorkerExitDetail::TripleFault, ExitInitiator::GuestOs),
                    vm_exit("TripleFault", vcpu, rip, 0, format!("vCPU {vcpu} triple-faulted at RIP {rip:#x} (KVM_EXIT_SHUTDOWN)")),
                ],
                crash_report: None,
            },
            VmExit::InternalError { vcpu, suberror, rip } => StopInfo {
                kind: StopKind::Unexpected,
                attribution: vec![
                    worker(WorkerExitType::UnrecoverableError, WorkerExitDetail::EmulatorError, ExitInitiator::Internal),
                    vm_exit(
                        "InternalError",
                        vcpu,
                        rip,
                        u64::from(suberror),
                        format!("KVM could not run vCPU {vcpu} at RIP {rip:#x} (KVM_EXIT_INTERNAL_ERROR, suberror {suberror})"),
                    ),
                ],
                crash_report: None,
            },
            VmExit::FailEntry { vcpu, reason } => StopInfo {
                kind: StopKind::Unexpected,
                attribution: vec![
                    worker(WorkerExitType::UnrecoverableError, WorkerExitDetail::DeviceFatalError, ExitInitiator::Internal),
                    vm_exit("FailEntry", vcpu, 0, reason, format!("VM entry of vCPU {vcpu} failed (hardware reason {reason:#x})")),
                ],
                crash_report: None,
            },
            VmExit::VcpuError { vcpu, message } => StopInfo {
                kind: StopKind::Unexpected,
                attribution: vec![
                    worker(WorkerExitType::UnrecoverableError, WorkerExitDetail::ProcessUnexpectedExit, ExitInitiator::Internal),
                    vm_exit("VcpuError", vcpu, 0, 0, message),
                ],
                crash_report: None,
            },
        }
    }
}

impl Backend for VmBackend {
    fn system_type(&self) -> SystemType {
        SystemType::VirtualMachine
    }

    fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.leaf.paths())
            .unwrap_or_default()
    }

    fn owned_sockets(&self) -> Vec<hcs_rundir::OwnedSocket> {
        self.vm
            .owned_sockets()
            .into_iter()
            .map(|(path, id)| hcs_rundir::OwnedSocket {
                path,
                dev: id.dev,
                ino: id.ino,
                ctime: id.ctime,
                ctime_nsec: id.ctime_nsec,
            })
            .collect()
    }

    fn cgroup_leaf(&self) -> Option<PathBuf> {
        Some(self.cgroup_leaf.clone())
    }

    fn start(&mut self) -> HcsResult<Option<i32>> {
        match &self.cgroup {
            Some(cg) => {
                // Keep the typed error: its HRESULT says whether the host
                // cannot (v2 without threads) or something failed.
                let failed = std::cell::RefCell::new(None);
                let place = |tids: &[i32]| {
                    for &tid in tids {
                        if let Err(e) = cg.for_threads().add_thread(tid) {
                            let text = e.to_string();
                            *failed.borrow_mut() = Some(e);
                            return Err(text);
                        }
                    }
                    Ok(())
                };
                if let Err(e) = self.vm.start_with(Some(&place)) {
                    return Err(match failed.into_inner() {
                        Some(c) => HcsError::new(
                            c.hresult(),
                            format!("VirtualMachine.ComputeTopology.Processor (Limit/Weight): {c}"),
                        ),
                        None => vmm_error(e),
                    });
                }
            }
            None => self.vm.start().map_err(vmm_error)?,
        }
        self.started_at = Some(std::time::SystemTime::now());
        Ok(None)
    }

    fn event_fds(&self) -> Vec<std::os::fd::RawFd> {
        let mut fds = vec![self.vm.exit_fd()];
        fds.extend(self.guest.as_ref().map(GuestLink::event_fd));
        fds
    }

    fn poll_events(&mut self) -> Vec<BackendEvent> {
        let Some(guest) = &self.guest else {
            return Vec::new();
        };
        guest
            .take_events()
            .into_iter()
            .map(|e| match e {
                AgentEvent::ProcessExited { pid, exit_code } => {
                    BackendEvent::ProcessExited { pid, exit_code }
                }
                AgentEvent::ConnectionClosed => BackendEvent::GuestConnectionClosed,
            })
            .collect()
    }

    fn poll_stop(&mut self) -> Option<StopInfo> {
        let exit = self.vm.exit_reason()?;
        self.vm.join();
        Some(self.stop_info(exit))
    }

    fn request_shutdown(&mut self, mechanism: Option<ShutdownMechanism>) -> HcsResult<()> {
        let agent = self.guest.as_ref().and_then(GuestLink::current);
        if mechanism == Some(ShutdownMechanism::GuestConnection) && agent.is_none() {
            return Err(HcsError::new(
                HResult::HCS_E_CONNECTION_CLOSED,
                "ShutdownOptions.Mechanism \"GuestConnection\": the VM has no connected guest agent \
                 (VirtualMachine.GuestConnection); use \"IntegrationService\" (the ACPI power button) or leave it out",
            ));
        }
        // A paused guest can neither answer its agent nor see its power button.
        self.vm.resume().map_err(vmm_error)?;
        // The agent first (it syncs the guest's disks); the power button
        // when there is none or it fails. "IntegrationService" is the
        // guest's own shutdown service: on Linux, the ACPI power button.
        if let Some(agent) =
            agent.filter(|_| mechanism != Some(ShutdownMechanism::IntegrationService))
        {
            // The agent's answer is waited for on a thread of its own, not
            // in the monitor's loop (a terminate meanwhile is served at
            // once and cancels the wait); the shutdown's timeout
            // (ShutdownOptions.TimeoutInMs) ends a guest that never stops.
            let button = self.vm.power_button_handle();
            let pressed = std::sync::Arc::clone(&self.power_button_pressed);
            let guest_connection_only = mechanism == Some(ShutdownMechanism::GuestConnection);
            std::thread::Builder::new()
                .name("guest-shutdown".into())
                .spawn(move || match agent.shutdown() {
                    Ok(()) => {}
                    Err(e) if guest_connection_only => tracing::warn!(
                        "ShutdownOptions.Mechanism \"GuestConnection\": the guest agent's shutdown \
                         failed ({e}); the shutdown timeout will terminate the VM"
                    ),
                    Err(e) => {
                        tracing::warn!(
                            "guest agent shutdown failed ({e}); pressing the power button"
                        );
                        pressed.store(true, std::sync::atomic::Ordering::SeqCst);
                        button.press();
                    }
                })
                .map_err(|e| HcsError::from_io("starting the guest shutdown thread", &e))?;
            return Ok(());
        }
        self.power_button_pressed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.vm.power_button();
        Ok(())
    }

    fn kill(&mut self) {
        self.vm.kill();
    }

    fn main_exited(&mut self) {}

    fn pause(&mut self) -> HcsResult<()> {
        self.vm.pause().map_err(vmm_error)
    }

    fn resume(&mut self) -> HcsResult<()> {
        self.vm.resume().map_err(vmm_error)
    }

    fn save(&mut self, options: Option<&str>) -> HcsResult<()> {
        let parsed = hcs_schema::fields::parse_options::<hcs_schema::requests::SaveOptions>(
            options,
            "SaveOptions",
            hcs_schema::fields::On::VirtualMachine,
        )?;
        let opts = match parsed {
            Some(o) => o,
            None => {
                return Err(HcsError::invalid_json(
                    "SaveOptions are required: {\"SaveType\":\"ToFile\",\"SaveStateFilePath\":\"/path/to/state\"}",
                ))
            }
        };
        use hcs_schema::enums::SaveType;
        if let Some(SaveType::AsTemplate) = opts.save_type {
            return Err(HcsError::not_supported(
                "SaveOptions.SaveType AsTemplate (clone templates) is not supported; use ToFile",
            ));
        }
        let path = absolute_path(
            "SaveOptions.SaveStateFilePath",
            opts.save_state_file_path.as_deref(),
        )?;
        let report = self.vm.save(&path).map_err(vmm_error)?;
        tracing::info!(
            path = %path.display(),
            pages_written = report.pages_written,
            pages_total = report.pages_total,
            "saved"
        );
        // As HCS does: a VM saved to a file stops (WorkerExit Type Saved).
        self.vm.stop_with(VmExit::Saved);
        Ok(())
    }

    fn crash(&mut self, options: Option<&str>) -> HcsResult<()> {
        hcs_schema::fields::parse_options::<hcs_schema::requests::CrashOptions>(
            options,
            "CrashOptions",
            hcs_schema::fields::On::VirtualMachine,
        )?;
        self.vm.inject_nmi().map_err(vmm_error)?;
        self.nmi_injected = true;
        Ok(())
    }

    fn modify(&mut self, request: &ModifySettingRequest) -> HcsResult<()> {
        let path = request.resource_path.as_deref().unwrap_or_default();
        Err(HcsError::not_supported(match path {
            "VirtualMachine/ComputeTopology/Memory/SizeInMB" => {
                "VirtualMachine/ComputeTopology/Memory/SizeInMB: resizing guest memory needs a balloon or \
                 memory hotplug, which this VMM does not have yet"
                    .to_string()
            }
            other => format!("ModifySettingRequest.ResourcePath {other:?} is not supported for virtual machines yet"),
        }))
    }

    fn properties(&self, types: &[SystemPropertyType], props: &mut Properties) -> HcsResult<()> {
        let stats = self.vm.stats();
        const MIB: u64 = 1024 * 1024;
        for t in types {
            match t {
                SystemPropertyType::Memory => {
                    props.memory = Some(MemoryInformationForVm {
                        virtual_node_count: Some(1),
                        virtual_machine_memory: Some(VmMemory {
                            available_memory: Some(((stats.memory_bytes - stats.guest_rss_bytes.min(stats.memory_bytes)) / MIB) as i32),
                            available_memory_buffer: Some(0),
                            reserved_memory: Some(0),
                            assigned_memory: Some(stats.memory_bytes / MIB),
                            slp_active: Some(false),
                            balancing_enabled: Some(false),
                            dm_operation_in_progress: Some(false),
                        }),
                        virtual_nodes: None,
                    })
                }
                SystemPropertyType::Statistics => {
                    let now = std::time::SystemTime::now();
                    props.statistics = Some(Statistics {
                        timestamp: Some(hcs_container::rfc3339(now)),
                        container_start_time: self.started_at.map(hcs_container::rfc3339),
                        uptime_100ns: self
                            .started_at
                            .and_then(|t| now.duration_since(t).ok())
                            .map(|d| (d.as_nanos() / 100) as u64),
                        processor: Some(ProcessorStats {
                            total_runtime_100ns: Some(stats.vcpu_time_ns / 100),
                            runtime_user_100ns: None,
                            runtime_kernel_100ns: None,
                        }),
                        memory: Some(MemoryStats {
                            memory_usage_commit_bytes: Some(stats.guest_rss_bytes),
                            memory_usage_commit_peak_bytes: None,
                            memory_usage_private_working_set_bytes: Some(stats.guest_rss_bytes),
                        }),
                        storage: None,
                        virtual_machine: Some(VmStatistics {
                            vcpu_time_100ns: Some(stats.vcpu_time_ns / 100),
                            exits: Some(stats.exits),
                            guest_resident_bytes: Some(stats.guest_rss_bytes),
                            unclaimed_accesses: Some(stats.unclaimed_accesses),
                        }),
                    })
                }
                SystemPropertyType::TerminateOnLastHandleClosed => {}
                // From the guest, off the monitor's loop: `guest_process_list`.
                SystemPropertyType::ProcessList => {}
                other => {
                    return Err(HcsError::not_supported(format!(
                        "property type {:?} is not available for virtual machines yet; supported: Memory, \
                         Statistics, ProcessList (with a guest agent), TerminateOnLastHandleClosed",
                        other.as_str()
                    )))
                }
            }
        }
        Ok(())
    }

    fn waiting_for_guest(&self) -> bool {
        self.guest.as_ref().is_some_and(|g| g.current().is_none())
    }

    fn guest_process_list(&self) -> HcsResult<Option<GuestWork<Vec<hcs_schema::ProcessDetails>>>> {
        let agent = self.agent(std::time::Duration::ZERO)?;
        Ok(Some(Box::new(move || agent.process_list())))
    }

    // Every request to the agent waits for its reply: it runs off the
    // monitor's loop (`Served::Later`), and a stop cancels the wait.
    fn create_process(&mut self, params: &ProcessParameters) -> HcsResult<Served<StartedProcess>> {
        // The monitor waited for the agent (`waiting_for_guest`) without
        // blocking its loop; nothing waits here.
        let agent = self.agent(std::time::Duration::ZERO)?;
        let params = params.clone();
        Ok(Served::Later(Box::new(move || {
            agent.create_process(&params)
        })))
    }

    fn signal_process(
        &mut self,
        pid: u32,
        _host_pid: Option<i32>,
        signal: i32,
    ) -> HcsResult<Served<()>> {
        let agent = self.agent(std::time::Duration::ZERO)?;
        Ok(Served::Later(Box::new(move || agent.signal(pid, signal))))
    }

    fn resize_console(&mut self, pid: u32, rows: u16, cols: u16) -> HcsResult<Served<()>> {
        let agent = self.agent(std::time::Duration::ZERO)?;
        Ok(Served::Later(Box::new(move || {
            agent.resize_console(pid, rows, cols)
        })))
    }

    fn release(&mut self) -> HcsResult<()> {
        self.guest = None;
        self.vm.kill();
        self.vm.join();
        self.vm.close_serial_sockets();
        self.vm.reset_devices();
        for l in &self.links {
            let _ = std::fs::remove_file(l);
        }
        // The vCPU threads have ended; KVM's worker for the VM lives as
        // long as the VM and goes back to the monitor's own cgroup.
        if let Some(cg) = self.cgroup.take() {
            cg.release()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::network_adapters;
    use hcs_errors::HResult;
    use hcs_schema::virtual_machine::Devices;
    use std::path::Path;

    fn devices(json: &str) -> Devices {
        hcs_schema::from_json(json, "Devices").expect("valid Devices")
    }

    #[test]
    fn the_schema_bounds_vcpus_where_the_vmm_does() {
        assert_eq!(
            hcs_schema::virtual_machine::MAX_VM_PROCESSOR_COUNT,
            u32::from(hcs_vmm::vm::MAX_VCPUS)
        );
    }

    #[test]
    fn adapters_map_to_taps_and_macs() {
        let d = devices(
            r#"{"NetworkAdapters": {
                "a": {"EndpointId": "tap-a", "MacAddress": "00-15-5D-01-02-03"},
                "b": {"EndpointId": "tap-b", "MacAddress": "00:15:5d:0a:0b:0c"},
                "c": {"EndpointId": "tap-c"}
            }}"#,
        );
        let nets = network_adapters(&d, Path::new("/run/hcs/default/vm1")).unwrap();
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[0].tap, "tap-a");
        assert_eq!(nets[0].mac.bytes(), [0x00, 0x15, 0x5d, 1, 2, 3]);
        assert_eq!(nets[1].tap, "tap-b");
        assert_eq!(nets[1].mac.bytes(), [0x00, 0x15, 0x5d, 0x0a, 0x0b, 0x0c]);
        assert_eq!(nets[2].tap, "tap-c");
        let generated = nets[2].mac;
        assert!(
            generated.is_local() && !generated.is_multicast(),
            "{generated}"
        );
        // Stable for the same system, different for another.
        let again = network_adapters(&d, Path::new("/run/hcs/default/vm1")).unwrap();
        assert_eq!(again[2].mac, generated);
        let other = network_adapters(&d, Path::new("/run/hcs/default/vm2")).unwrap();
        assert_ne!(other[2].mac, generated);
        assert!(network_adapters(&devices("{}"), Path::new("/r"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_adapters_are_refused_clearly() {
        let cases = [
            (
                r#"{"NetworkAdapters": {"a": {"MacAddress": "00-15-5D-01-02-03"}}}"#,
                "EndpointId is required",
            ),
            (
                r#"{"NetworkAdapters": {"a": {"EndpointId": "x/y"}}}"#,
                "not a network interface name",
            ),
            (
                r#"{"NetworkAdapters": {"a": {"EndpointId": "t0", "MacAddress": "00-15-5D-01-02"}}}"#,
                "MacAddress",
            ),
            (
                r#"{"NetworkAdapters": {"a": {"EndpointId": "t0", "MacAddress": "01-00-5E-00-00-01"}}}"#,
                "multicast",
            ),
            (
                r#"{"NetworkAdapters": {"a": {"EndpointId": "t0"}, "b": {"EndpointId": "t0"}}}"#,
                "another adapter",
            ),
        ];
        for (json, want) in cases {
            let e = network_adapters(&devices(json), Path::new("/r")).unwrap_err();
            assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{json}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(want), "{json}: {msg}");
            assert!(
                msg.contains("VirtualMachine.Devices.NetworkAdapters[\"a\"]")
                    || msg.contains("[\"b\"]"),
                "{msg}"
            );
        }
    }

    fn hv_socket(json: &str) -> hcs_schema::virtual_machine::devices::HvSocketSystemConfig {
        hcs_schema::from_json(json, "HvSocketSystemConfig").expect("valid HvSocketSystemConfig")
    }

    #[test]
    fn security_descriptors_granting_root_allow_empty_ones_refuse_others_are_refused() {
        use super::sddl_access;
        assert_eq!(sddl_access("p", "").unwrap(), None);
        assert_eq!(
            sddl_access("p", "D:P(A;;FA;;;SY)(A;;FA;;;BA)").unwrap(),
            Some(true)
        );
        assert_eq!(sddl_access("p", "D:(A;;GA;;;SY)").unwrap(), Some(true));
        assert_eq!(sddl_access("p", "D:P").unwrap(), Some(false));
        for bad in [
            "D:P(A;;FA;;;WD)",
            "D:P(D;;FA;;;SY)",
            "O:SYD:P(A;;FA;;;SY)",
            "D:P(A;;FA;;;SY)S:(AU;;FA;;;WD)",
            "D:NO_ACCESS_CONTROL",
            "D:P(A;;FA;;SY)",
            "D:P(A;;FA;;;SY",
            "D:P(A;;FA;;;SY)x",
        ] {
            let e = sddl_access("$.X.DefaultBindSecurityDescriptor", bad).expect_err(bad);
            assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{bad}");
            assert!(
                e.message.contains("$.X.DefaultBindSecurityDescriptor"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_service_table_becomes_a_port_policy() {
        use super::vsock_policy;
        let p = vsock_policy(
            Some(&hv_socket(
                r#"{"DefaultConnectSecurityDescriptor": "D:P",
                    "DefaultBindSecurityDescriptor": "D:P(A;;FA;;;SY)(A;;FA;;;BA)",
                    "ServiceTable": {
                        "00000034-facb-11e6-bd58-64006a7986d3": { "ConnectSecurityDescriptor": "D:P(A;;FA;;;SY)" },
                        "000004D2-FACB-11E6-BD58-64006A7986D3": { "Disabled": true, "AllowWildcardBinds": true }
                    }}"#,
            )),
            false,
        )
        .unwrap();
        assert!(!p.default_connect && p.default_bind);
        assert!(p.allows_connect(0x34) && p.allows_bind(0x34));
        assert!(!p.allows_connect(1234) && !p.allows_bind(1234));
        assert!(!p.allows_connect(7) && p.allows_bind(7));
        assert_eq!(
            vsock_policy(None, true).unwrap(),
            hcs_virtio::VsockPolicy::default()
        );
    }

    #[test]
    fn service_tables_that_cannot_be_honoured_are_refused_with_their_path() {
        use super::vsock_policy;
        let cases = [
            (
                r#"{"ServiceTable": {"e0e16197-dd56-4a10-9195-5ee7a155a838": {}}}"#,
                false,
                r#"ServiceTable["e0e16197-dd56-4a10-9195-5ee7a155a838"]"#,
            ),
            (
                r#"{"ServiceTable": {"00000001-facb-11e6-bd58-64006a7986d3": {"BindSecurityDescriptor": "D:P(A;;FA;;;WD)"}}}"#,
                false,
                r#"ServiceTable["00000001-facb-11e6-bd58-64006a7986d3"].BindSecurityDescriptor"#,
            ),
            (
                r#"{"DefaultBindSecurityDescriptor": "D:P"}"#,
                true,
                "DefaultBindSecurityDescriptor",
            ),
            (
                r#"{"ServiceTable": {"00004843-facb-11e6-bd58-64006a7986d3": {"Disabled": true}}}"#,
                true,
                "guest agent",
            ),
        ];
        for (json, agent, needle) in cases {
            let e = vsock_policy(Some(&hv_socket(json)), agent).expect_err(json);
            assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{json}");
            assert!(e.message.contains(needle), "{json}: {e}");
            assert!(
                e.message
                    .contains("VirtualMachine.Devices.HvSocket.HvSocketConfig"),
                "{e}"
            );
        }
    }

    #[test]
    fn scsi_disks_carry_controller_and_lun_and_their_options() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("d.img");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let img = img.to_str().unwrap();
        let d = devices(&format!(
            r#"{{"Scsi": {{
                "0": {{"Attachments": {{"0": {{"Path": "{img}"}}, "3": {{"Path": "{img}", "CachingMode": "Uncached", "IgnoreFlushes": true}}}}}},
                "B5D2D8D4-3A75-51BF-945B-3444DC6B8579": {{"DisableInterruptBatching": true, "Attachments": {{"1": {{"Path": "{img}", "CachingMode": "ReadOnlyCached"}}}}}},
                "primary": {{"Attachments": {{"2": {{"Path": "{img}", "CachingMode": "Cached"}}}}}}
            }}}}"#
        ));
        let disks = super::scsi_disks(&d, None).unwrap();
        let got: Vec<(&str, hcs_virtio::BlockOptions)> = disks
            .iter()
            .map(|b| (b.id.as_str(), b.options.clone()))
            .collect();
        use hcs_virtio::{BlockOptions, CacheMode};
        assert_eq!(
            got,
            [
                // Absent CachingMode: HCS's default, Uncached.
                (
                    "0:0",
                    BlockOptions {
                        cache: CacheMode::Uncached,
                        ..BlockOptions::default()
                    }
                ),
                (
                    "0:3",
                    BlockOptions {
                        cache: CacheMode::Uncached,
                        ignore_flushes: true,
                        interrupt_per_request: false,
                        limiter: None
                    }
                ),
                (
                    "2:1",
                    BlockOptions {
                        cache: CacheMode::WriteThrough,
                        ignore_flushes: false,
                        interrupt_per_request: true,
                        limiter: None
                    }
                ),
                ("primary:2", BlockOptions::default()),
            ]
        );
        // Serials must fit GET_ID's 20 bytes and be unique.
        for bad in [
            format!(
                r#"{{"Scsi": {{"e0e16197-dd56-4a10-9195-5ee7a155a838": {{"Attachments": {{"0": {{"Path": "{img}"}}}}}}}}}}"#
            ),
            format!(
                r#"{{"Scsi": {{"0": {{"Attachments": {{"0": {{"Path": "{img}"}}}}}}, "00": {{"Attachments": {{"0": {{"Path": "{img}"}}}}}}}}}}"#
            ),
        ] {
            let e = super::scsi_disks(&devices(&bad), None).expect_err(&bad);
            assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{e}");
            assert!(e.message.contains("VirtualMachine.Devices.Scsi["), "{e}");
        }
    }

    #[test]
    fn storage_qos_is_one_limiter_shared_by_the_vm_s_disks() {
        assert!(super::storage_limiter(None).is_none());
        let qos: hcs_schema::virtual_machine::StorageQoS =
            hcs_schema::from_json(r#"{"IopsMaximum": 0}"#, "StorageQoS").unwrap();
        assert!(
            super::storage_limiter(Some(&qos)).is_none(),
            "0 is no limit"
        );
        let qos: hcs_schema::virtual_machine::StorageQoS = hcs_schema::from_json(
            r#"{"IopsMaximum": 100, "BandwidthMaximum": 1048576}"#,
            "StorageQoS",
        )
        .unwrap();
        let limiter = super::storage_limiter(Some(&qos)).unwrap();
        assert_eq!(
            limiter.limits(),
            hcs_virtio::block::IoLimits {
                iops: Some(100),
                bandwidth: Some(1 << 20)
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("d.img");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let img = img.to_str().unwrap();
        let d = devices(&format!(
            r#"{{"Scsi": {{"0": {{"Attachments": {{"0": {{"Path": "{img}"}}, "1": {{"Path": "{img}"}}}}}}}}}}"#
        ));
        let disks = super::scsi_disks(&d, Some(limiter.clone())).unwrap();
        assert!(disks.iter().all(|b| b
            .options
            .limiter
            .as_ref()
            .is_some_and(|l| std::sync::Arc::ptr_eq(l, &limiter))));
    }

    /// The resource members hcsshim sends (tests/fixtures of hcs-schema)
    /// are honoured as they are.
    #[test]
    fn hcsshim_s_resource_members_are_honoured() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../hcs-schema/tests/fixtures/hcsshim_lcow_uvm_vhd_uefi_console.json"
        ))
        .unwrap();
        let doc: hcs_schema::ComputeSystem = hcs_schema::from_json(&text, "ComputeSystem").unwrap();
        let vm = doc.virtual_machine.unwrap();
        let topo = vm.compute_topology.unwrap();
        let cpu = super::cpu_controls(&topo.processor.unwrap(), 2)
            .unwrap()
            .unwrap();
        assert_eq!(cpu.cpu_weight, Some(200));
        assert_eq!(
            cpu.cpu_quota.map(|q| q.quota_us),
            Some(100_000),
            "50% of 2 vCPUs"
        );
        let m = super::memory_backing(&topo.memory.unwrap()).unwrap();
        assert!(m.deferred_commit && !m.populate && !m.pin);
        let hv = vm.devices.unwrap().hv_socket.unwrap().hv_socket_config;
        let p = super::vsock_policy(hv.as_ref(), true).unwrap();
        assert!(
            p.default_bind && p.default_connect,
            "SYSTEM and Administrators are root here"
        );
        let l = super::storage_limiter(vm.storage_qos.as_ref()).unwrap();
        assert_eq!(l.limits().iops, Some(5000));
    }
}
