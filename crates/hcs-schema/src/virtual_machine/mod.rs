//! Virtual machines (reference section 5.4); devices are in [`devices`].

pub mod devices;

use std::collections::BTreeMap;

use hcs_errors::HcsError;
use serde_json::Value;

use crate::container::RegistryChanges;
use crate::enums::{
    ApplySecureBootTemplateType, MemoryBackingPageSize, MemoryBackingType, ProcessorFeature,
    ProcessorFeatureSetMode, SerialConsole, SlitType, StateOverride, UefiBootDevice,
    XsaveProcessorFeature,
};
use crate::validate::{self, error, member};
use crate::version::Version;

pub use devices::Devices;

hcs_struct! {
    /// Configuration of a virtual machine.
    pub struct VirtualMachine {
        /// VM configuration version (device/feature level), 2.5; latest if omitted.
        "Version" => version: Version,
        /// Treat a guest reset as a stop.
        "StopOnReset" => stop_on_reset: bool,
        /// Firmware / boot source.
        "Chipset" => chipset: Chipset,
        /// Memory and processors.
        "ComputeTopology" => compute_topology: Topology,
        /// Devices.
        "Devices" => devices: Devices,
        /// Integration services, 2.5.
        "Services" => services: Services,
        /// Files of persistent guest/runtime state, 2.1.
        "GuestState" => guest_state: GuestState,
        /// Start from a saved state or a template.
        "RestoreState" => restore_state: RestoreState,
        /// Registry edits of a Windows guest.
        "RegistryChanges" => registry_changes: RegistryChanges,
        /// Storage QoS limits, 2.1.
        "StorageQoS" => storage_qos: StorageQoS,
        /// If present, Start completes only once the guest agent connected, 2.1.
        "GuestConnection" => guest_connection: GuestConnection,
        /// Undocumented (hcsshim): files written on bugcheck / triple fault.
        "DebugOptions" => debug_options: DebugOptions,
        /// Undocumented (hcsshim): TPM and isolation (SNP/VBS) settings, kept opaque.
        "SecuritySettings" => security_settings: Value,
        /// Undocumented (hcsshim): resource partition GUID.
        "ResourcePartitionId" => resource_partition_id: String,
        /// Undocumented (hcsshim): destination side of a live migration, kept opaque.
        "MigrationOptions" => migration_options: Value,
    }
}

hcs_struct! {
    /// Firmware and boot selection; one of `Uefi` or `LinuxKernelDirect`.
    pub struct Chipset {
        /// Boot through UEFI firmware (Linux/KVM: OVMF).
        "Uefi" => uefi: Uefi,
        /// Firmware NumLock state.
        "IsNumLockDisabled" => is_num_lock_disabled: bool,
        /// SMBIOS base board serial number.
        "BaseBoardSerialNumber" => base_board_serial_number: String,
        /// SMBIOS chassis serial number.
        "ChassisSerialNumber" => chassis_serial_number: String,
        /// SMBIOS chassis asset tag.
        "ChassisAssetTag" => chassis_asset_tag: String,
        /// Expose S4 to the guest, 2.5.
        "EnableHibernation" => enable_hibernation: bool,
        /// The RTC holds UTC, 2.1.
        "UseUtc" => use_utc: bool,
        /// Direct kernel boot, 2.2.
        "LinuxKernelDirect" => linux_kernel_direct: LinuxKernelDirect,
        /// Undocumented pre-release firmware file (hcsshim), kept opaque.
        "FirmwareFile" => firmware_file: Value,
        /// Undocumented (hcsshim, build 20348): PC/AT BIOS settings, kept opaque.
        "Pcat" => pcat: Value,
        /// Undocumented (hcsshim, build 20348): SMBIOS system information, kept opaque.
        "SystemInformation" => system_information: Value,
        /// Undocumented (hcsshim, build 20348): SMBIOS memory device serial number.
        "MemoryDeviceSerialNumber" => memory_device_serial_number: String,
    }
}

hcs_struct! {
    /// UEFI firmware settings.
    pub struct Uefi {
        /// Enable the firmware debugger.
        "EnableDebugger" => enable_debugger: bool,
        /// GUID of the secure-boot template.
        "SecureBootTemplateId" => secure_boot_template_id: String,
        /// Apply or skip the secure-boot template, 2.3.
        "ApplySecureBootTemplate" => apply_secure_boot_template: ApplySecureBootTemplateType,
        /// The single boot entry to use.
        "BootThis" => boot_this: UefiBootEntry,
        /// Firmware console target.
        "Console" => console: SerialConsole,
        /// Stop instead of looping when nothing boots, 2.2.
        "StopOnBootFailure" => stop_on_boot_failure: bool,
    }
}

hcs_struct! {
    /// A UEFI boot entry.
    pub struct UefiBootEntry {
        /// Kind of boot device.
        "DeviceType" => device_type: UefiBootDevice,
        /// SCSI controller key (`ScsiDrive`) or file path (`VmbFs`).
        "DevicePath" => device_path: String,
        /// LUN on the SCSI controller.
        "DiskNumber" => disk_number: u16,
        /// Load options passed to the EFI image (kernel command line in EFI-stub mode).
        "OptionalData" => optional_data: String,
        /// Host directory of `VmbFs` boot files.
        "VmbFsRootPath" => vmb_fs_root_path: String,
    }
}

hcs_struct! {
    /// Direct kernel boot (no firmware), 2.2.
    pub struct LinuxKernelDirect {
        /// Host path of the kernel image.
        "KernelFilePath" => kernel_file_path: String,
        /// Host path of the initrd.
        "InitRdPath" => init_rd_path: String,
        /// Kernel command line (init arguments after `--`).
        "KernelCmdLine" => kernel_cmd_line: String,
    }
}

hcs_struct! {
    /// Memory and processors of a VM (`VirtualMachine.ComputeTopology`).
    pub struct Topology {
        /// Memory.
        "Memory" => memory: VirtualMachineMemory,
        /// Processors.
        "Processor" => processor: VirtualMachineProcessor,
        /// Undocumented (hcsshim): virtual NUMA topology, kept opaque.
        "Numa" => numa: Value,
    }
}

hcs_struct! {
    /// Memory of a VM (`VirtualMachine_Memory`).
    pub struct VirtualMachineMemory {
        /// Guest RAM in MiB (required in practice), 2.1.
        "SizeInMB" => size_in_mb: u64,
        /// Back RAM with pageable host memory, 2.1.
        "AllowOvercommit" => allow_overcommit: bool,
        /// `Small` (4 KiB) or `Large` (2 MiB) backing pages, 2.2.
        "BackingPageSize" => backing_page_size: MemoryBackingPageSize,
        /// 2.4.
        "FaultClusterSizeShift" => fault_cluster_size_shift: u32,
        /// 2.4.
        "DirectMapFaultClusterSizeShift" => direct_map_fault_cluster_size_shift: u32,
        /// 2.2.
        "PinBackingPages" => pin_backing_pages: bool,
        /// 2.2.
        "ForbidSmallBackingPages" => forbid_small_backing_pages: bool,
        /// Hot hint.
        "EnableHotHint" => enable_hot_hint: bool,
        /// Cold hint.
        "EnableColdHint" => enable_cold_hint: bool,
        /// Free page reporting, 2.2.
        "EnableColdDiscardHint" => enable_cold_discard_hint: bool,
        /// Charge commit on first touch (Linux: `MAP_NORESERVE`), 2.1.
        "EnableDeferredCommit" => enable_deferred_commit: bool,
        /// MMIO hole below 4 GiB, 2.3.
        "LowMmioGapInMB" => low_mmio_gap_in_mb: u64,
        /// Base of the MMIO window above 4 GiB, 2.3.
        "HighMmioBaseInMB" => high_mmio_base_in_mb: u64,
        /// Size of the MMIO window above 4 GiB, 2.3.
        "HighMmioGapInMB" => high_mmio_gap_in_mb: u64,
        /// Undocumented, used by the official samples: `Physical`, `Virtual`, `Hybrid`.
        "Backing" => backing: MemoryBackingType,
        /// Undocumented (hcsshim): NUMA distance table source.
        "SlitType" => slit_type: SlitType,
        /// Undocumented (WSL): suffix of the `vmmem` process name.
        "HostingProcessNameSuffix" => hosting_process_name_suffix: String,
        /// Undocumented (hcsshim): enable EPF.
        "EnableEpf" => enable_epf: bool,
    }
}

hcs_struct! {
    /// Processors of a VM (`VirtualMachine_Processor`).
    pub struct VirtualMachineProcessor {
        /// Number of vCPUs (required in practice).
        "Count" => count: u32,
        /// Cap on host CPU use, 1..=100000 where 100000 = 100%, 2.1.
        "Limit" => limit: u64,
        /// Relative scheduling weight, 2.1.
        "Weight" => weight: u64,
        /// Guaranteed CPU share, 2.4.
        "Reservation" => reservation: u64,
        /// 2.4.
        "MaximumFrequencyMHz" => maximum_frequency_mhz: u32,
        /// Nested virtualization.
        "ExposeVirtualizationExtensions" => expose_virtualization_extensions: bool,
        /// 2.2.
        "EnablePerfmonPmu" => enable_perfmon_pmu: bool,
        /// 2.5.
        "EnablePerfmonArchPmu" => enable_perfmon_arch_pmu: bool,
        /// 2.2.
        "EnablePerfmonPebs" => enable_perfmon_pebs: bool,
        /// 2.2.
        "EnablePerfmonLbr" => enable_perfmon_lbr: bool,
        /// 2.2.
        "EnablePerfmonIpt" => enable_perfmon_ipt: bool,
        /// 2.5.
        "EnablePageShattering" => enable_page_shattering: bool,
        /// 2.5.
        "DisableSpeculationControls" => disable_speculation_controls: bool,
        /// CPUID feature set, 2.5.
        "ProcessorFeatureSet" => processor_feature_set: ProcessorFeatureSet,
        /// Host CPU group to run on (Linux: cpuset), 2.5.
        "CpuGroup" => cpu_group: CpuGroup,
        /// Undocumented (hcsshim): NUMA processor settings, kept opaque.
        "NumaProcessorsSettings" => numa_processors_settings: Value,
    }
}

hcs_struct! {
    /// Processor features exposed to a VM, 2.5.
    pub struct ProcessorFeatureSet {
        /// Features.
        "ProcessorFeatures" => processor_features: Vec<ProcessorFeature>,
        /// XSAVE features.
        "XsaveProcessorFeatures" => xsave_processor_features: Vec<XsaveProcessorFeature>,
        /// Strict or permissive.
        "ProcessorFeatureSetMode" => processor_feature_set_mode: ProcessorFeatureSetMode,
    }
}

hcs_struct! {
    /// A host CPU group.
    pub struct CpuGroup {
        /// Group GUID, 2.1.
        "Id" => id: String,
    }
}

hcs_struct! {
    /// How the HCS connects to the guest agent, 2.1.
    pub struct GuestConnection {
        /// Use AF_VSOCK instead of Hyper-V sockets.
        "UseVsock" => use_vsock: bool,
        /// Keep the connection across pause.
        "UseConnectedSuspend" => use_connected_suspend: bool,
        /// Push the host time zone into the guest, 2.4.
        "UseHostTimeZone" => use_host_time_zone: bool,
    }
}

hcs_struct! {
    /// Files backing persistent guest state, 2.1.
    pub struct GuestState {
        /// `.vmgs` file (firmware/TPM state).
        "GuestStateFilePath" => guest_state_file_path: String,
        /// `.vmrs` file (runtime state).
        "RuntimeStateFilePath" => runtime_state_file_path: String,
        /// Use the files as templates only.
        "ForceTransientState" => force_transient_state: bool,
        /// Undocumented (hcsshim): file or block storage for isolated VMs.
        "GuestStateFileType" => guest_state_file_type: String,
    }
}

hcs_struct! {
    /// Start from saved state or a template.
    pub struct RestoreState {
        /// Saved-state file produced by Save `ToFile`.
        "SaveStateFilePath" => save_state_file_path: String,
        /// Clone from a system saved `AsTemplate`, 2.1.
        "TemplateSystemId" => template_system_id: String,
    }
}

hcs_struct! {
    /// Storage QoS limits.
    pub struct StorageQoS {
        /// Maximum IOPS.
        "IopsMaximum" => iops_maximum: u64,
        /// Maximum bytes per second.
        "BandwidthMaximum" => bandwidth_maximum: u64,
    }
}

hcs_struct! {
    /// Integration services, 2.5.
    pub struct Services {
        /// Heartbeat service.
        "Heartbeat" => heartbeat: Heartbeat,
        /// Shutdown service.
        "Shutdown" => shutdown: Shutdown,
        /// Time sync service.
        "Timesync" => timesync: Timesync,
        /// KVP exchange.
        "KvpExchange" => kvp_exchange: KvpExchange,
    }
}

hcs_struct! {
    /// Heartbeat integration service; `{}` enables it.
    pub struct Heartbeat {}
}

hcs_struct! {
    /// Shutdown integration service; `{}` enables it.
    pub struct Shutdown {}
}

hcs_struct! {
    /// Time synchronisation integration service; `{}` enables it.
    pub struct Timesync {}
}

hcs_struct! {
    /// KVP exchange integration service, 2.5.
    pub struct KvpExchange {
        /// Host OS info items.
        "EnableHostOSInfoKvpItems" => enable_host_os_info_kvp_items: StateOverride,
        /// Items to add.
        "EntriesToBeAdded" => entries_to_be_added: BTreeMap<String, String>,
        /// Items to remove.
        "EntriesToBeRemoved" => entries_to_be_removed: Vec<String>,
    }
}

hcs_struct! {
    /// Undocumented (hcsshim): files written when the guest crashes.
    pub struct DebugOptions {
        /// Saved state written on bugcheck.
        "BugcheckSavedStateFileName" => bugcheck_saved_state_file_name: String,
        /// Saved state written on bugcheck without crash dump.
        "BugcheckNoCrashdumpSavedStateFileName" => bugcheck_no_crashdump_saved_state_file_name: String,
        /// Saved state written on triple fault.
        "TripleFaultSavedStateFileName" => triple_fault_saved_state_file_name: String,
        /// Firmware dump file.
        "FirmwareDumpFileName" => firmware_dump_file_name: String,
    }
}

/// Most vCPUs a VM's `ComputeTopology.Processor.Count` may name: what the
/// VMM's ACPI tables describe (`hcs_vmm::vm::MAX_VCPUS`, checked equal by a
/// test of the monitor).
pub const MAX_VM_PROCESSOR_COUNT: u32 = 254;

impl VirtualMachine {
    /// Checks of a VM found at `path` of a `document`: not both boot sources,
    /// a direct-boot kernel path, non-zero memory and vCPU count, paths on SCSI
    /// attachments and virtual PMem devices.
    pub(crate) fn validate_at(&self, document: &str, path: &str) -> Result<(), HcsError> {
        if let Some(chipset) = &self.chipset {
            let chipset_path = member(path, "Chipset");
            if chipset.uefi.is_some() && chipset.linux_kernel_direct.is_some() {
                return Err(error(
                    document,
                    &chipset_path,
                    "`Uefi` and `LinuxKernelDirect` are mutually exclusive; choose one boot source",
                ));
            }
            if let Some(direct) = &chipset.linux_kernel_direct {
                let base = member(&chipset_path, "LinuxKernelDirect");
                let kernel = member(&base, "KernelFilePath");
                validate::require_non_empty(
                    document,
                    &kernel,
                    direct.kernel_file_path.as_deref(),
                    "direct boot needs a kernel",
                )?;
                for (name, value) in [
                    ("KernelFilePath", &direct.kernel_file_path),
                    ("InitRdPath", &direct.init_rd_path),
                    ("KernelCmdLine", &direct.kernel_cmd_line),
                ] {
                    if let Some(v) = value {
                        validate::check_no_nul(document, &member(&base, name), v)?;
                    }
                }
            }
        }
        if let Some(topology) = &self.compute_topology {
            let base = member(path, "ComputeTopology");
            if let Some(0) = topology.memory.as_ref().and_then(|m| m.size_in_mb) {
                return Err(error(
                    document,
                    &member(&member(&base, "Memory"), "SizeInMB"),
                    "is 0; a VM needs memory",
                ));
            }
            if let Some(0) = topology.processor.as_ref().and_then(|p| p.count) {
                return Err(error(
                    document,
                    &member(&member(&base, "Processor"), "Count"),
                    "is 0; a VM needs at least one processor",
                ));
            }
            if let Some(count) = topology.processor.as_ref().and_then(|p| p.count) {
                validate::check_range(
                    document,
                    &member(&member(&base, "Processor"), "Count"),
                    count.into(),
                    1..=MAX_VM_PROCESSOR_COUNT.into(),
                    "the vCPUs this VMM can describe to a guest",
                )?;
            }
        }
        if let Some(devices) = &self.devices {
            devices.validate_at(document, &member(path, "Devices"))?;
        }
        Ok(())
    }
}
