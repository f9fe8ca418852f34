//! The virtual machine backend: HCS calls on an [`hcs_vmm::Vm`].

use std::path::{Path, PathBuf};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::enums::{
    ExitInitiator, SystemPropertyType, SystemType, WorkerExitDetail, WorkerExitType,
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
use crate::backend::{Backend, BackendEvent, StartedProcess, StopInfo, StopKind};
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
    let memory_mb = topo.memory.and_then(|m| m.size_in_mb).ok_or_else(|| {
        HcsError::invalid_json("VirtualMachine.ComputeTopology.Memory.SizeInMB is required")
    })?;
    let count = topo.processor.and_then(|p| p.count).unwrap_or(1);
    let vcpus = u8::try_from(count).map_err(|_| {
        HcsError::invalid_json(format!(
            "VirtualMachine.ComputeTopology.Processor.Count: {count} is more than {} vCPUs",
            hcs_vmm::vm::MAX_VCPUS
        ))
    })?;

    let devices = doc.devices.clone().unwrap_or_default();
    let virtio = VirtioConfig {
        vsock: (doc.guest_connection.is_some() || devices.hv_socket.is_some()).then(|| {
            hcs_virtio::VsockConfig {
                guest_cid: GUEST_CID,
                uds_path: vsock_socket(rundir),
            }
        }),
        disks: scsi_disks(&devices)?,
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
             nothing to emulate); an i8042, pvpanic and an ACPI power button are always present",
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

/// The guest's vsock context id (the host is 2).
pub const GUEST_CID: u64 = 3;

/// `Devices.Scsi` attachments as virtio-blk disks, controllers and LUNs in
/// order. Images are raw or fixed VHD; an `Iso` is attached read-only.
fn scsi_disks(
    devices: &hcs_schema::virtual_machine::Devices,
) -> HcsResult<Vec<hcs_virtio::BlockConfig>> {
    use hcs_schema::enums::AttachmentType;
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
            disks.push(hcs_virtio::BlockConfig {
                path: pb,
                read_only,
                id: format!("hcs-{controller}-{lun}"),
            });
        }
    }
    Ok(disks)
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
    pub fn create(id: &str, doc: &VirtualMachine, rundir: &Path) -> HcsResult<VmBackend> {
        let (cfg, links) = config(doc, rundir)?;
        let vm = match restore_path(doc)? {
            Some(state) => Vm::restore(&cfg, &state).map_err(|e| create_error(e, rundir))?,
            None => Vm::create(&cfg).map_err(|e| create_error(e, rundir))?,
        };
        let guest = match doc.guest_connection {
            Some(_) => Some(GuestLink::listen(&vsock_socket(rundir))?),
            None => None,
        };
        Ok(VmBackend {
            vm,
            id: id.to_string(),
            started_at: None,
            links,
            guest,
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
            VmExit::PowerOff => StopInfo {
                kind: StopKind::Clean,
                attribution: vec![worker(WorkerExitType::Stopped, WorkerExitDetail::PowerOff, ExitInitiator::GuestOs)],
                crash_report: None,
            },
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
                StopInfo {
                    kind: StopKind::Unexpected,
                    attribution: vec![
                        AttributionRecord {
                            guest_crash: Some(GuestCrash { crash_parameters: Some(vec![u64::from(events)]) }),
                            ..Default::default()
                        },
                        worker(WorkerExitType::UnexpectedStop, WorkerExitDetail::GuestCrash, ExitInitiator::GuestOs),
                    ],
                    crash_report: Some(hcs_schema::to_json(&report)),
                }
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
        Vec::new()
    }

    fn start(&mut self) -> HcsResult<Option<i32>> {
        self.vm.start().map_err(vmm_error)?;
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

    fn request_shutdown(&mut self) -> HcsResult<()> {
        // A paused guest can neither answer its agent nor see its power button.
        self.vm.resume().map_err(vmm_error)?;
        // The agent first (it syncs the guest's disks); the power button
        // when there is none or it fails.
        if let Some(agent) = self.guest.as_ref().and_then(GuestLink::current) {
            match agent.shutdown() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!("guest agent shutdown failed ({e}); pressing the power button")
                }
            }
        }
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
        let opts: hcs_schema::requests::SaveOptions = match options.filter(|o| !o.trim().is_empty()) {
            Some(o) => hcs_schema::from_json(o, "SaveOptions")?,
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
        if let Some(o) = options.filter(|o| !o.trim().is_empty()) {
            hcs_schema::from_json::<hcs_schema::requests::CrashOptions>(o, "CrashOptions")?;
        }
        self.vm.inject_nmi().map_err(vmm_error)
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
                SystemPropertyType::ProcessList => {
                    props.process_list = Some(self.agent(std::time::Duration::ZERO)?.process_list()?);
                }
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

    fn create_process(&mut self, params: &ProcessParameters) -> HcsResult<StartedProcess> {
        // The monitor waited for the agent (`waiting_for_guest`) without
        // blocking its loop; nothing waits here.
        self.agent(std::time::Duration::ZERO)?
            .create_process(params)
    }

    fn signal_process(&mut self, pid: u32, _host_pid: Option<i32>, signal: i32) -> HcsResult<()> {
        self.agent(std::time::Duration::ZERO)?.signal(pid, signal)
    }

    fn resize_console(&mut self, pid: u32, rows: u16, cols: u16) -> HcsResult<()> {
        self.agent(std::time::Duration::ZERO)?
            .resize_console(pid, rows, cols)
    }

    fn release(&mut self) -> HcsResult<()> {
        self.guest = None;
        self.vm.kill();
        self.vm.join();
        self.vm.close_serial_sockets();
        for l in &self.links {
            let _ = std::fs::remove_file(l);
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
}
