//! Virtual machine devices (reference section 5.5). Integer-keyed maps
//! (`"0"` = COM1, LUN 0, PMem device 0) are `BTreeMap<u32/u8/u64, _>`: the
//! JSON keys are strings, serde_json converts them.

use std::collections::BTreeMap;

use hcs_errors::HcsError;

use crate::enums::{
    AttachmentType, CachingMode, FlexibleIoDeviceHostingModel, GpuAssignmentMode,
    InterruptModerationMode, StateOverride, VirtualPMemBackingType, VirtualPMemImageFormat,
};
use crate::validate::{self, member};

hcs_struct! {
    /// Devices of a VM.
    pub struct Devices {
        /// Serial ports: key `0` = COM1, `1` = COM2, 2.1.
        "ComPorts" => com_ports: BTreeMap<u32, ComPort>,
        /// virtio-serial ports, 2.2.
        "VirtioSerial" => virtio_serial: VirtioSerial,
        /// SCSI controllers by name (the Tutorial uses `"Primary disk"`, WSL `"0"`, hcsshim GUIDs).
        "Scsi" => scsi: BTreeMap<String, Scsi>,
        /// Virtual persistent memory devices.
        "VirtualPMem" => virtual_pmem: VirtualPMemController,
        /// Network adapters by name.
        "NetworkAdapters" => network_adapters: BTreeMap<String, NetworkAdapter>,
        /// Synthetic video.
        "VideoMonitor" => video_monitor: VideoMonitor,
        /// Keyboard; `{}` enables it.
        "Keyboard" => keyboard: Keyboard,
        /// Mouse; `{}` enables it.
        "Mouse" => mouse: Mouse,
        /// Hyper-V socket (Linux: AF_VSOCK) settings, 2.1.
        "HvSocket" => hv_socket: VirtualMachineHvSocket,
        /// RDP enhanced session (Windows-only), 2.1.
        "EnhancedModeVideo" => enhanced_mode_video: EnhancedModeVideo,
        /// Guest crash reporting.
        "GuestCrashReporting" => guest_crash_reporting: GuestCrashReporting,
        /// SMB-over-VMBus shares (Windows-only).
        "VirtualSmb" => virtual_smb: VirtualSmb,
        /// 9P file shares.
        "Plan9" => plan9: Plan9,
        /// Host battery state; `{}` enables it.
        "Battery" => battery: Battery,
        /// Flexible I/O devices by name, 2.1.
        "FlexibleIov" => flexible_iov: BTreeMap<String, FlexibleIoDevice>,
        /// Shared memory regions, 2.1.
        "SharedMemory" => shared_memory: SharedMemoryConfiguration,
        /// PCI pass-through devices by name, 2.3.
        "VirtualPci" => virtual_pci: BTreeMap<String, VirtualPciDevice>,
    }
}

hcs_struct! {
    /// A serial port.
    pub struct ComPort {
        /// Host pipe (Linux: unix socket or pty path); empty = present but disconnected, 2.1.
        "NamedPipe" => named_pipe: String,
        /// Tune for kernel-debugger traffic, 2.1.
        "OptimizeForDebugger" => optimize_for_debugger: bool,
    }
}

hcs_struct! {
    /// virtio-serial controller, 2.2.
    pub struct VirtioSerial {
        /// Ports by number.
        "Ports" => ports: BTreeMap<u32, VirtioSerialPort>,
    }
}

hcs_struct! {
    /// A virtio-serial port, 2.2.
    pub struct VirtioSerialPort {
        /// Host pipe connected to the port.
        "NamedPipe" => named_pipe: String,
        /// Port name seen by the guest.
        "Name" => name: String,
        /// Undocumented (WSL): the port is a console (`hvc`).
        "ConsoleSupport" => console_support: bool,
    }
}

hcs_struct! {
    /// A SCSI controller.
    pub struct Scsi {
        /// Attachments by LUN.
        "Attachments" => attachments: BTreeMap<u32, Attachment>,
        /// 2.4.
        "DisableInterruptBatching" => disable_interrupt_batching: bool,
    }
}

hcs_struct! {
    /// A disk attached to a SCSI controller.
    pub struct Attachment {
        /// `VirtualDisk`, `Iso` or `PassThru`.
        "Type" => attachment_type: AttachmentType,
        /// Host path of the image or physical disk.
        "Path" => path: String,
        /// Host caching, 2.1.
        "CachingMode" => caching_mode: CachingMode,
        /// Attach read-only.
        "ReadOnly" => read_only: bool,
        /// 2.3.
        "SupportCompressedVolumes" => support_compressed_volumes: bool,
        /// 2.6.
        "AlwaysAllowSparseFiles" => always_allow_sparse_files: bool,
        /// 2.6.
        "SupportEncryptedFiles" => support_encrypted_files: bool,
        /// Undocumented (hcsshim).
        "IgnoreFlushes" => ignore_flushes: bool,
        /// Undocumented (hcsshim).
        "NoWriteHardening" => no_write_hardening: bool,
        /// Undocumented (hcsshim).
        "DisableExpansionOptimization" => disable_expansion_optimization: bool,
        /// Undocumented (hcsshim).
        "IgnoreRelativeLocator" => ignore_relative_locator: bool,
        /// Undocumented (hcsshim).
        "CaptureIoAttributionContext" => capture_io_attribution_context: bool,
        /// Undocumented (hcsshim).
        "ExtensibleVirtualDiskType" => extensible_virtual_disk_type: String,
    }
}

hcs_struct! {
    /// Virtual persistent memory controller.
    pub struct VirtualPMemController {
        /// Devices by number.
        "Devices" => devices: BTreeMap<u8, VirtualPMemDevice>,
        /// Number of hot-pluggable slots.
        "MaximumCount" => maximum_count: u8,
        /// Size of the empty slots.
        "MaximumSizeBytes" => maximum_size_bytes: u64,
        /// Backing of the range, 2.1.
        "Backing" => backing: VirtualPMemBackingType,
    }
}

hcs_struct! {
    /// A virtual PMem device.
    pub struct VirtualPMemDevice {
        /// Backing image.
        "HostPath" => host_path: String,
        /// Read-only device.
        "ReadOnly" => read_only: bool,
        /// `Vhdx` or `Vhd1`.
        "ImageFormat" => image_format: VirtualPMemImageFormat,
        /// Device size, 2.2.
        "SizeBytes" => size_bytes: u64,
        /// Additional images by offset, 2.2.
        "Mappings" => mappings: BTreeMap<u64, VirtualPMemMapping>,
    }
}

hcs_struct! {
    /// An image mapped into a PMem device at an offset, 2.2.
    pub struct VirtualPMemMapping {
        /// Image path.
        "HostPath" => host_path: String,
        /// Image format.
        "ImageFormat" => image_format: VirtualPMemImageFormat,
    }
}

hcs_struct! {
    /// A synthetic network adapter.
    pub struct NetworkAdapter {
        /// Endpoint GUID (Linux: tap / CNI result).
        "EndpointId" => endpoint_id: String,
        /// MAC address (`00-15-5D-..`).
        "MacAddress" => mac_address: String,
        /// 2.4.
        "InstanceId" => instance_id: String,
        /// 2.4.
        "DisableInterruptBatching" => disable_interrupt_batching: bool,
        /// SR-IOV settings, 2.4.
        "IovSettings" => iov_settings: IovSettings,
        /// Connect / disconnect on update, 2.4.
        "ConnectionState" => connection_state: StateOverride,
        /// Undocumented (WSL).
        "IsConnected" => is_connected: bool,
        /// Undocumented (WSL).
        "SwitchId" => switch_id: String,
        /// Undocumented (WSL).
        "PortId" => port_id: String,
    }
}

hcs_struct! {
    /// SR-IOV settings of a network adapter, 2.4.
    pub struct IovSettings {
        /// Offload weight.
        "OffloadWeight" => offload_weight: u32,
        /// Queue pairs requested.
        "QueuePairsRequested" => queue_pairs_requested: u32,
        /// Interrupt moderation.
        "InterruptModeration" => interrupt_moderation: InterruptModerationMode,
    }
}

hcs_struct! {
    /// Hyper-V socket settings of a VM (`VirtualMachine_HvSocket`), 2.1.
    pub struct VirtualMachineHvSocket {
        /// ACLs.
        "HvSocketConfig" => hv_socket_config: HvSocketSystemConfig,
    }
}

hcs_struct! {
    /// Hyper-V socket ACLs of a system.
    pub struct HvSocketSystemConfig {
        /// SDDL for binds to unlisted services.
        "DefaultBindSecurityDescriptor" => default_bind_security_descriptor: String,
        /// SDDL for connects to unlisted services.
        "DefaultConnectSecurityDescriptor" => default_connect_security_descriptor: String,
        /// Service GUID to ACLs.
        "ServiceTable" => service_table: BTreeMap<String, HvSocketServiceConfig>,
    }
}

hcs_struct! {
    /// Hyper-V socket ACLs of one service.
    pub struct HvSocketServiceConfig {
        /// SDDL for binds.
        "BindSecurityDescriptor" => bind_security_descriptor: String,
        /// SDDL for connects.
        "ConnectSecurityDescriptor" => connect_security_descriptor: String,
        /// Allow wildcard binds.
        "AllowWildcardBinds" => allow_wildcard_binds: bool,
        /// Undocumented (hcsshim): refuse connections for this service.
        "Disabled" => disabled: bool,
    }
}

hcs_struct! {
    /// A Hyper-V socket address, 2.1.
    pub struct HvSocketAddress {
        /// Local address GUID.
        "LocalAddress" => local_address: String,
        /// Parent address GUID.
        "ParentAddress" => parent_address: String,
    }
}

hcs_struct! {
    /// 9P shares.
    pub struct Plan9 {
        /// Shares, 2.1.
        "Shares" => shares: Vec<Plan9Share>,
    }
}

hcs_struct! {
    /// A 9P share.
    pub struct Plan9Share {
        /// Share name.
        "Name" => name: String,
        /// `aname` the guest mounts, 2.1.
        "AccessName" => access_name: String,
        /// Host directory.
        "Path" => path: String,
        /// vsock port of the server.
        "Port" => port: u32,
        /// Restrict the share to these files, 2.2.
        "AllowedFiles" => allowed_files: Vec<String>,
        /// Undocumented (hcsshim/WSL) bitmask: ReadOnly 0x1, LinuxMetadata 0x4,
        /// CaseSensitive 0x8, UseShareRootIdentity 0x10, AllowOptions 0x20,
        /// AllowSubPaths 0x40, RestrictFileAccess 0x80, UnlimitedConnections 0x100.
        "Flags" => flags: u32,
    }
}

hcs_struct! {
    /// SMB-over-VMBus shares (Windows-only).
    pub struct VirtualSmb {
        /// Shares, 2.1.
        "Shares" => shares: Vec<VirtualSmbShare>,
        /// 2.1.
        "DirectFileMappingInMB" => direct_file_mapping_in_mb: i64,
    }
}

hcs_struct! {
    /// A VSMB share (Windows-only; Linux analogue: virtiofs).
    pub struct VirtualSmbShare {
        /// Share name.
        "Name" => name: String,
        /// Host path.
        "Path" => path: String,
        /// Allowed files.
        "AllowedFiles" => allowed_files: Vec<String>,
        /// Options, 2.1.
        "Options" => options: VirtualSmbShareOptions,
    }
}

hcs_struct! {
    /// Options of a VSMB share, 2.1.
    pub struct VirtualSmbShareOptions {
        /// Read-only share.
        "ReadOnly" => read_only: bool,
        /// Share read access.
        "ShareRead" => share_read: bool,
        /// Cache I/O.
        "CacheIo" => cache_io: bool,
        /// No oplocks.
        "NoOplocks" => no_oplocks: bool,
        /// Take backup privilege.
        "TakeBackupPrivilege" => take_backup_privilege: bool,
        /// Use share root identity.
        "UseShareRootIdentity" => use_share_root_identity: bool,
        /// No direct map.
        "NoDirectmap" => no_directmap: bool,
        /// No locks.
        "NoLocks" => no_locks: bool,
        /// No directory notifications.
        "NoDirnotify" => no_dirnotify: bool,
        /// VM shared memory.
        "VmSharedMemory" => vm_shared_memory: bool,
        /// Restrict file access.
        "RestrictFileAccess" => restrict_file_access: bool,
        /// Force level II oplocks.
        "ForceLevelIIOplocks" => force_level_ii_oplocks: bool,
        /// Reparse base layer.
        "ReparseBaseLayer" => reparse_base_layer: bool,
        /// Pseudo oplocks.
        "PseudoOplocks" => pseudo_oplocks: bool,
        /// Non-cached I/O.
        "NonCacheIo" => non_cache_io: bool,
        /// Pseudo directory notifications.
        "PseudoDirnotify" => pseudo_dirnotify: bool,
        /// Single file mapping.
        "SingleFileMapping" => single_file_mapping: bool,
        /// 2.3.
        "SupportCloudFiles" => support_cloud_files: bool,
        /// 2.4.
        "FilterEncryptionAttributes" => filter_encryption_attributes: bool,
    }
}

hcs_struct! {
    /// Keyboard; `{}` enables it.
    pub struct Keyboard {}
}

hcs_struct! {
    /// Mouse; `{}` enables it.
    pub struct Mouse {}
}

hcs_struct! {
    /// Battery; `{}` forwards host battery state.
    pub struct Battery {}
}

hcs_struct! {
    /// Synthetic video monitor.
    pub struct VideoMonitor {
        /// 2.1.
        "HorizontalResolution" => horizontal_resolution: u16,
        /// 2.1.
        "VerticalResolution" => vertical_resolution: u16,
        /// 2.1.
        "ConnectionOptions" => connection_options: RdpConnectionOptions,
    }
}

hcs_struct! {
    /// RDP enhanced session (Windows-only), 2.1.
    pub struct EnhancedModeVideo {
        /// Connection options.
        "ConnectionOptions" => connection_options: RdpConnectionOptions,
    }
}

hcs_struct! {
    /// RDP connection options, 2.1.
    pub struct RdpConnectionOptions {
        /// SIDs allowed to connect.
        "AccessSids" => access_sids: Vec<String>,
        /// Pipe of the connection.
        "NamedPipe" => named_pipe: String,
    }
}

hcs_struct! {
    /// Guest crash reporting.
    pub struct GuestCrashReporting {
        /// Windows crash dump settings.
        "WindowsCrashSettings" => windows_crash_settings: WindowsCrashReporting,
    }
}

hcs_struct! {
    /// Windows crash dump settings.
    pub struct WindowsCrashReporting {
        /// Dump file.
        "DumpFileName" => dump_file_name: String,
        /// Maximum dump size.
        "MaxDumpSize" => max_dump_size: i64,
    }
}

hcs_struct! {
    /// A flexible I/O (emulated/external) device, 2.1.
    pub struct FlexibleIoDevice {
        /// Emulator GUID.
        "EmulatorId" => emulator_id: String,
        /// Hosting model.
        "HostingModel" => hosting_model: FlexibleIoDeviceHostingModel,
        /// Configuration strings.
        "Configuration" => configuration: Vec<String>,
    }
}

hcs_struct! {
    /// Shared memory regions, 2.1.
    pub struct SharedMemoryConfiguration {
        /// Regions.
        "Regions" => regions: Vec<SharedMemoryRegion>,
    }
}

hcs_struct! {
    /// A host section mapped into guest physical memory.
    pub struct SharedMemoryRegion {
        /// Section name.
        "SectionName" => section_name: String,
        /// Offset in the section.
        "StartOffset" => start_offset: u64,
        /// Length.
        "Length" => length: u64,
        /// Guest may write.
        "AllowGuestWrite" => allow_guest_write: bool,
        /// Hidden from the guest.
        "HiddenFromGuest" => hidden_from_guest: bool,
    }
}

hcs_struct! {
    /// A PCI pass-through device (Linux: VFIO), 2.3.
    pub struct VirtualPciDevice {
        /// Functions.
        "Functions" => functions: Vec<VirtualPciFunction>,
    }
}

hcs_struct! {
    /// A function of a PCI pass-through device, 2.3.
    pub struct VirtualPciFunction {
        /// Host device instance path.
        "DeviceInstancePath" => device_instance_path: String,
        /// Virtual function number.
        "VirtualFunction" => virtual_function: u16,
        /// 2.4.
        "AllowDirectTranslatedP2P" => allow_direct_translated_p2p: bool,
    }
}

hcs_struct! {
    /// GPU assignment (`VirtualMachine/ComputeTopology/Gpu` modify settings).
    pub struct GpuConfiguration {
        /// Assignment mode.
        "AssignmentMode" => assignment_mode: GpuAssignmentMode,
        /// Requested GPUs.
        "AssignmentRequest" => assignment_request: BTreeMap<String, u16>,
        /// Allow vendor extensions.
        "AllowVendorExtension" => allow_vendor_extension: bool,
        /// Undocumented (WSL).
        "DisableGdiAcceleration" => disable_gdi_acceleration: bool,
        /// Undocumented (WSL).
        "DisablePresentation" => disable_presentation: bool,
    }
}

impl Devices {
    /// SCSI attachments and PMem devices of a create document must name their
    /// image; a COM port may not name a Windows named pipe (there are none
    /// on Linux, and the port would silently lose its output).
    pub(crate) fn validate_at(&self, document: &str, path: &str) -> Result<(), HcsError> {
        for (port, com) in self.com_ports.iter().flatten() {
            let pipe = com.named_pipe.as_deref().unwrap_or_default();
            if pipe.starts_with(r"\\") {
                let at = member(
                    &member(&member(path, "ComPorts"), &port.to_string()),
                    "NamedPipe",
                );
                return Err(HcsError::not_supported(format!(
                    "{document} document: `{at}` is not supported: {pipe:?} is a Windows named pipe; \
                     give an absolute unix socket path, a log file (*.log or file:PATH), or nothing \
                     (the port is then reached with `hcs console`)"
                )));
            }
        }
        for (controller, scsi) in self.scsi.iter().flatten() {
            let attachments = member(&member(&member(path, "Scsi"), controller), "Attachments");
            for (lun, attachment) in scsi.attachments.iter().flatten() {
                let p = member(&member(&attachments, &lun.to_string()), "Path");
                validate::require_non_empty(
                    document,
                    &p,
                    attachment.path.as_deref(),
                    "an attachment needs the path of its image or disk",
                )?;
                validate::check_no_nul(
                    document,
                    &p,
                    attachment.path.as_deref().unwrap_or_default(),
                )?;
            }
        }
        if let Some(pmem) = &self.virtual_pmem {
            let devices = member(&member(path, "VirtualPMem"), "Devices");
            for (number, device) in pmem.devices.iter().flatten() {
                let p = member(&member(&devices, &number.to_string()), "HostPath");
                validate::require_non_empty(
                    document,
                    &p,
                    device.host_path.as_deref(),
                    "a PMem device needs its image",
                )?;
                validate::check_no_nul(
                    document,
                    &p,
                    device.host_path.as_deref().unwrap_or_default(),
                )?;
            }
        }
        Ok(())
    }
}
