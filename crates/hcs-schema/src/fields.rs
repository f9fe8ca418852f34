//! What this system does with every member of every document a client sends:
//! one table ([`TABLE`]), keyed by schema type and JSON member name.
//!
//! * [`Class::Honoured`]: the code acts on the member.
//! * [`Class::Refused`]: a document that sets it (to anything but the values
//!   listed as accepted, which are what happens anyway) is refused with
//!   `ERROR_NOT_SUPPORTED` naming its JSON path. The refusal is generic:
//!   [`refuse_unsupported`] walks the parsed document and consults the
//!   table, so a new Refused entry is enforced with no other code.
//! * [`Class::Hint`]: accepted and without effect, only for pure hints that
//!   change nothing about isolation, resources or data; each has its reason,
//!   and the README lists them (a test keeps the two the same).
//!
//! Every member of every type reachable from a client document ([`ROOTS`])
//! must be classified, and the table may name no member that does not
//! exist: the tests below walk the types mechanically through the member
//! lists that `hcs_struct!` records.

use std::collections::BTreeMap;
use std::fmt::Display;

use hcs_errors::HcsError;
use serde::Serialize;
use serde_json::Value;

use crate::validate::{index, member};

/// The members of one schema type, as `hcs_struct!` declares them.
#[derive(Debug)]
pub struct TypeInfo {
    /// Rust name of the type (also its name in the schema).
    pub name: &'static str,
    /// Its members, in declaration order.
    pub members: &'static [Member],
}

/// One member of a schema type.
#[derive(Debug)]
pub struct Member {
    /// JSON name.
    pub json: &'static str,
    /// Other JSON names accepted for it.
    pub aliases: &'static [&'static str],
    /// The schema type inside the member's value (through arrays and maps),
    /// `None` for strings, numbers, enumerations and free-form JSON.
    pub info: fn() -> Option<&'static TypeInfo>,
    /// How the value's path continues to that type: `""`, `"[i]"` for an
    /// array, `".<key>"` for a map.
    pub shape: fn() -> String,
}

/// Implemented by every schema type (by `hcs_struct!` and `string_enum!`)
/// and by the leaf and container types members are made of.
pub trait Fields {
    /// The member list of a schema object, `None` for anything else.
    fn info() -> Option<&'static TypeInfo>
    where
        Self: Sized,
    {
        None
    }

    /// See [`Member::shape`].
    fn shape() -> String
    where
        Self: Sized,
    {
        String::new()
    }

    /// Fails on the first member set in `self` (at `path`) that the table
    /// refuses in `cx`.
    fn refuse_unsupported(&self, cx: &Context<'_>, path: &str) -> Result<(), HcsError> {
        let _ = (cx, path);
        Ok(())
    }
}

macro_rules! leaf {
    ($($t:ty),*) => { $(impl Fields for $t {})* };
}
leaf!(String, bool, u8, u16, u32, u64, i32, i64, Value);

impl<T: Fields> Fields for Vec<T> {
    fn info() -> Option<&'static TypeInfo> {
        T::info()
    }

    fn shape() -> String {
        format!("[i]{}", T::shape())
    }

    fn refuse_unsupported(&self, cx: &Context<'_>, path: &str) -> Result<(), HcsError> {
        for (i, item) in self.iter().enumerate() {
            item.refuse_unsupported(cx, &index(path, i))?;
        }
        Ok(())
    }
}

impl<T: Fields, const N: usize> Fields for [T; N] {
    fn info() -> Option<&'static TypeInfo> {
        T::info()
    }

    fn shape() -> String {
        format!("[i]{}", T::shape())
    }

    fn refuse_unsupported(&self, cx: &Context<'_>, path: &str) -> Result<(), HcsError> {
        for (i, item) in self.iter().enumerate() {
            item.refuse_unsupported(cx, &index(path, i))?;
        }
        Ok(())
    }
}

impl<K: Display, T: Fields> Fields for BTreeMap<K, T> {
    fn info() -> Option<&'static TypeInfo> {
        T::info()
    }

    fn shape() -> String {
        format!(".<key>{}", T::shape())
    }

    fn refuse_unsupported(&self, cx: &Context<'_>, path: &str) -> Result<(), HcsError> {
        for (key, item) in self {
            item.refuse_unsupported(cx, &member(path, &key.to_string()))?;
        }
        Ok(())
    }
}

/// Where a document is used, for members refused only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Not known (or any system): only refusals that hold everywhere apply.
    Any,
    /// Sent to a container.
    Container,
    /// Sent to a virtual machine.
    VirtualMachine,
}

/// The document being checked and where it is used.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Kind of document named in errors (`ComputeSystem`, `PauseOptions`...).
    pub document: &'a str,
    /// The system it is sent to.
    pub on: On,
}

/// What the system does with a member; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The code acts on it.
    Honoured,
    /// Accepted without effect: a pure hint. The text says why that is safe.
    Hint(&'static str),
    /// Refused when set.
    Refused(Refusal),
}

/// How a Refused member is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Why, shown to the client after the JSON path.
    pub reason: &'static str,
    /// Values (JSON text) that are accepted because they are what happens
    /// anyway, e.g. `false` for a feature that is off.
    pub accepted: &'static [&'static str],
    /// Refused only in documents sent to this kind of system ([`On::Any`]:
    /// everywhere). Elsewhere the member is honoured.
    pub on: On,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Schema type (Rust name).
    pub ty: &'static str,
    /// JSON member name.
    pub member: &'static str,
    /// What is done with it.
    pub class: Class,
}

/// The entry of a member, if the table has one.
pub fn lookup(ty: &str, member: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.ty == ty && e.member == member)
}

/// Called by the walk for each member that is set: fails when the table
/// refuses it here (or does not know it: nothing may be silently ignored).
pub fn check_member<T: Serialize>(
    cx: &Context<'_>,
    ty: &str,
    json: &str,
    path: &str,
    value: &T,
) -> Result<(), HcsError> {
    let refusal = match lookup(ty, json).map(|e| e.class) {
        Some(Class::Honoured | Class::Hint(_)) => return Ok(()),
        Some(Class::Refused(r)) => r,
        None => {
            return Err(HcsError::not_supported(format!(
                "{} document: `{path}` is not supported: this system does not know what to do with it",
                cx.document
            )))
        }
    };
    let applies = match (refusal.on, cx.on) {
        (On::Any, _) => true,
        (wanted, on) => wanted == on,
    };
    if !applies {
        return Ok(());
    }
    if !refusal.accepted.is_empty() {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        let accepted = refusal
            .accepted
            .iter()
            .filter_map(|text| serde_json::from_str::<Value>(text).ok())
            .any(|ok| ok == value);
        if accepted {
            return Ok(());
        }
    }
    let allowed = match refusal.accepted {
        [] => String::new(),
        values => format!(" (accepted: {})", values.join(", ")),
    };
    Err(HcsError::not_supported(format!(
        "{} document: `{path}` is not supported: {}{allowed}",
        cx.document, refusal.reason
    )))
}

/// Refuses `document` (a parsed client document of kind `cx.document`)
/// when it sets a member that [`TABLE`] refuses in `cx`. `ERROR_NOT_SUPPORTED`
/// with the member's JSON path.
pub fn refuse_unsupported<T: Fields>(document: &T, cx: Context<'_>) -> Result<(), HcsError> {
    document.refuse_unsupported(&cx, "$")
}

/// The types clients send documents of (the roots of the walk test): what
/// the API parses with [`crate::from_json`] or [`crate::from_value`].
pub fn roots() -> Vec<&'static TypeInfo> {
    use crate::{container, process, properties, requests, service};
    [
        <crate::ComputeSystem as Fields>::info(),
        <process::ProcessParameters as Fields>::info(),
        <requests::ModifySettingRequest as Fields>::info(),
        <container::ContainerMemory as Fields>::info(),
        <container::ContainerProcessor as Fields>::info(),
        <requests::ProcessModifyRequest as Fields>::info(),
        <requests::StartOptions as Fields>::info(),
        <requests::PauseOptions as Fields>::info(),
        <requests::ResumeOptions as Fields>::info(),
        <requests::SaveOptions as Fields>::info(),
        <requests::ShutdownOptions as Fields>::info(),
        <requests::TerminateOptions as Fields>::info(),
        <requests::CrashOptions as Fields>::info(),
        <requests::SignalProcessOptions as Fields>::info(),
        <properties::SystemPropertyQuery as Fields>::info(),
        <properties::SystemQuery as Fields>::info(),
        <service::ServicePropertyQuery as Fields>::info(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

const fn honoured(ty: &'static str, member: &'static str) -> Entry {
    Entry {
        ty,
        member,
        class: Class::Honoured,
    }
}

const fn hint(ty: &'static str, member: &'static str, why: &'static str) -> Entry {
    Entry {
        ty,
        member,
        class: Class::Hint(why),
    }
}

const fn refused(ty: &'static str, member: &'static str, reason: &'static str) -> Entry {
    refused_unless(ty, member, &[], reason)
}

const fn refused_unless(
    ty: &'static str,
    member: &'static str,
    accepted: &'static [&'static str],
    reason: &'static str,
) -> Entry {
    Entry {
        ty,
        member,
        class: Class::Refused(Refusal {
            reason,
            accepted,
            on: On::Any,
        }),
    }
}

const fn refused_on_vm(ty: &'static str, member: &'static str, reason: &'static str) -> Entry {
    Entry {
        ty,
        member,
        class: Class::Refused(Refusal {
            reason,
            accepted: &[],
            on: On::VirtualMachine,
        }),
    }
}

/// Reason shared by the flags that ask for a Windows storage feature.
const WINDOWS_STORAGE: &str = "a Windows storage-stack feature; images are plain files here";
/// Reason shared by the flags that tune Hyper-V's memory manager.
const HYPERV_MEMORY: &str = "a Hyper-V memory-manager setting with no KVM counterpart here";
/// Reason shared by the processor features KVM guests do not get here.
const CPU_FEATURE: &str = "this processor feature is not exposed to guests";
/// Reason shared by Windows-only container features.
const WINDOWS_CONTAINER: &str = "a Windows-only container feature";
/// Reason of the devices the VMM does not have.
const NO_DEVICE: &str = "the VMM has no such device";

/// The classification of every member of every client document.
pub static TABLE: &[Entry] = &[
    // ComputeSystem
    honoured("ComputeSystem", "Owner"),
    honoured("ComputeSystem", "SchemaVersion"),
    refused("ComputeSystem", "HostingSystemId", "containers inside utility VMs are not available yet; omit it to run the container on the host"),
    refused("ComputeSystem", "HostedSystem", "systems hosted in a utility VM are not available yet"),
    honoured("ComputeSystem", "Container"),
    honoured("ComputeSystem", "VirtualMachine"),
    honoured("ComputeSystem", "ShouldTerminateOnLastHandleClosed"),
    honoured("Version", "Major"),
    hint("Version", "Minor", "says which 2.x members the client may use; every 2.x document is read the same way"),
    // Container
    honoured("Container", "GuestOs"),
    honoured("Container", "Storage"),
    honoured("Container", "MappedDirectories"),
    honoured("Container", "MappedPipes"),
    honoured("Container", "Memory"),
    honoured("Container", "Processor"),
    honoured("Container", "Networking"),
    refused("Container", "HvSocket", "Hyper-V sockets do not exist for Linux containers"),
    refused("Container", "ContainerCredentialGuard", "gMSA credential forwarding is Windows-only"),
    refused_unless("Container", "RegistryChanges", &["{}", r#"{"AddValues":[]}"#, r#"{"DeleteKeys":[]}"#, r#"{"AddValues":[],"DeleteKeys":[]}"#], "Linux has no registry; write the files into a layer instead"),
    refused_unless("Container", "AssignedDevices", &["[]"], "device assignment to containers is not supported yet"),
    refused("Container", "AdditionalDeviceNamespace", WINDOWS_CONTAINER),
    refused("Container", "IsolationType", "HostProcess containers are Windows-only"),
    honoured("Container", "UserNamespace"),
    honoured("Container", "OciBundlePath"),
    honoured("Container", "OciSpecification"),
    honoured("GuestOs", "HostName"),
    honoured("Storage", "Layers"),
    honoured("Storage", "Path"),
    refused("Storage", "QoS", "storage QoS limits are not supported for containers on Linux"),
    refused("Storage", "PrivilegedContainerRootPath", "HostProcess containers are Windows-only"),
    hint("Layer", "Id", "names the layer; the layer used is the one at `Path`"),
    honoured("Layer", "Path"),
    honoured("Layer", "PathType"),
    refused_unless("Layer", "Cache", &["\"Unspecified\""], "layer caching modes are a Windows storage feature"),
    honoured("MappedDirectory", "HostPath"),
    honoured("MappedDirectory", "HostPathType"),
    honoured("MappedDirectory", "ContainerPath"),
    honoured("MappedDirectory", "ReadOnly"),
    refused_unless("MappedDirectory", "SupportCloudFiles", &["false"], "Windows cloud files (placeholders) do not exist on Linux"),
    honoured("MappedPipe", "ContainerPipeName"),
    honoured("MappedPipe", "HostPath"),
    honoured("MappedPipe", "HostPathType"),
    honoured("ContainerMemory", "SizeInMB"),
    honoured("ContainerProcessor", "Count"),
    honoured("ContainerProcessor", "Weight"),
    honoured("ContainerProcessor", "Maximum"),
    refused_unless("Networking", "AllowUnqualifiedDnsQuery", &["true"], "the Linux resolver always sends single-label names; they cannot be refused"),
    honoured("Networking", "DnsSearchList"),
    honoured("Networking", "NetworkSharedContainerName"),
    honoured("Networking", "Namespace"),
    refused_unless("Networking", "NetworkAdapters", &["[]"], "HNS endpoints do not exist on Linux; create the interfaces in a network namespace and name it in Networking.Namespace"),
    honoured("UserNamespace", "UidMappings"),
    honoured("UserNamespace", "GidMappings"),
    honoured("IdMapping", "ContainerId"),
    honoured("IdMapping", "HostId"),
    honoured("IdMapping", "Size"),
    // VirtualMachine
    refused("VirtualMachine", "Version", "VM configuration versions select a Hyper-V device level; this VMM has one device model"),
    honoured("VirtualMachine", "StopOnReset"),
    honoured("VirtualMachine", "Chipset"),
    honoured("VirtualMachine", "ComputeTopology"),
    honoured("VirtualMachine", "Devices"),
    refused("VirtualMachine", "Services", "integration services (heartbeat, shutdown, time sync, KVP) are not available; the guest agent is reached through GuestConnection"),
    refused("VirtualMachine", "GuestState", "persistent guest state files (.vmgs/.vmrs) are not supported"),
    honoured("VirtualMachine", "RestoreState"),
    refused("VirtualMachine", "RegistryChanges", "a Windows registry feature"),
    honoured("VirtualMachine", "StorageQoS"),
    honoured("VirtualMachine", "GuestConnection"),
    honoured("StorageQoS", "IopsMaximum"),
    honoured("StorageQoS", "BandwidthMaximum"),
    refused("VirtualMachine", "DebugOptions", "crash dump files are not written"),
    refused("VirtualMachine", "SecuritySettings", "TPM and isolated (SNP/VBS) VMs are not supported"),
    refused("VirtualMachine", "ResourcePartitionId", "Windows resource partitions do not exist here"),
    refused("VirtualMachine", "MigrationOptions", "live migration is not supported"),
    refused("Chipset", "Uefi", "booting through UEFI firmware is not available; use Chipset.LinuxKernelDirect"),
    hint("Chipset", "IsNumLockDisabled", "firmware keyboard LED state; there is no firmware"),
    hint("Chipset", "BaseBoardSerialNumber", "an SMBIOS string; no SMBIOS tables are built"),
    hint("Chipset", "ChassisSerialNumber", "an SMBIOS string; no SMBIOS tables are built"),
    hint("Chipset", "ChassisAssetTag", "an SMBIOS string; no SMBIOS tables are built"),
    refused_unless("Chipset", "EnableHibernation", &["false"], "S4 (hibernation) is not offered to guests"),
    refused_unless("Chipset", "UseUtc", &["true"], "the guest's RTC always holds UTC"),
    honoured("Chipset", "LinuxKernelDirect"),
    refused("Chipset", "FirmwareFile", "there is no firmware to replace; the kernel is booted directly"),
    refused("Chipset", "Pcat", "PC/AT BIOS boot is not available; use Chipset.LinuxKernelDirect"),
    hint("Chipset", "SystemInformation", "SMBIOS strings; no SMBIOS tables are built"),
    hint("Chipset", "MemoryDeviceSerialNumber", "an SMBIOS string; no SMBIOS tables are built"),
    honoured("LinuxKernelDirect", "KernelFilePath"),
    honoured("LinuxKernelDirect", "InitRdPath"),
    honoured("LinuxKernelDirect", "KernelCmdLine"),
    honoured("Topology", "Memory"),
    honoured("Topology", "Processor"),
    refused("Topology", "Numa", "virtual NUMA topologies are not supported; the guest sees one node"),
    honoured("VirtualMachineMemory", "SizeInMB"),
    honoured("VirtualMachineMemory", "AllowOvercommit"),
    honoured("VirtualMachineMemory", "BackingPageSize"),
    refused("VirtualMachineMemory", "FaultClusterSizeShift", HYPERV_MEMORY),
    refused("VirtualMachineMemory", "DirectMapFaultClusterSizeShift", HYPERV_MEMORY),
    honoured("VirtualMachineMemory", "PinBackingPages"),
    honoured("VirtualMachineMemory", "ForbidSmallBackingPages"),
    refused_unless("VirtualMachineMemory", "EnableHotHint", &["false"], HYPERV_MEMORY),
    refused_unless("VirtualMachineMemory", "EnableColdHint", &["false"], HYPERV_MEMORY),
    refused_unless("VirtualMachineMemory", "EnableColdDiscardHint", &["false"], "free page reporting is not offered to guests"),
    honoured("VirtualMachineMemory", "EnableDeferredCommit"),
    // The layout is fixed: the monitor accepts the values it already has
    // (a 1024 MiB low gap; a high window clear of RAM) and refuses others.
    honoured("VirtualMachineMemory", "LowMmioGapInMB"),
    honoured("VirtualMachineMemory", "HighMmioBaseInMB"),
    honoured("VirtualMachineMemory", "HighMmioGapInMB"),
    refused_unless("VirtualMachineMemory", "Backing", &["\"Virtual\""], "guest RAM is ordinary pageable host memory (`Virtual`)"),
    refused("VirtualMachineMemory", "SlitType", "virtual NUMA topologies are not supported"),
    hint("VirtualMachineMemory", "HostingProcessNameSuffix", "names the Windows host process (vmmem<suffix>); the process running the VM is hcs-monitor"),
    refused_unless("VirtualMachineMemory", "EnableEpf", &["false"], HYPERV_MEMORY),
    honoured("VirtualMachineProcessor", "Count"),
    honoured("VirtualMachineProcessor", "Limit"),
    honoured("VirtualMachineProcessor", "Weight"),
    refused_unless("VirtualMachineProcessor", "Reservation", &["0"], "Linux's scheduler cannot guarantee CPU time to the vCPUs (only weights and caps); use Weight"),
    refused("VirtualMachineProcessor", "MaximumFrequencyMHz", "vCPU frequency caps are not supported"),
    refused_unless("VirtualMachineProcessor", "ExposeVirtualizationExtensions", &["false"], "nested virtualization is not offered to guests"),
    refused_unless("VirtualMachineProcessor", "EnablePerfmonPmu", &["false"], CPU_FEATURE),
    refused_unless("VirtualMachineProcessor", "EnablePerfmonArchPmu", &["false"], CPU_FEATURE),
    refused_unless("VirtualMachineProcessor", "EnablePerfmonPebs", &["false"], CPU_FEATURE),
    refused_unless("VirtualMachineProcessor", "EnablePerfmonLbr", &["false"], CPU_FEATURE),
    refused_unless("VirtualMachineProcessor", "EnablePerfmonIpt", &["false"], CPU_FEATURE),
    refused_unless("VirtualMachineProcessor", "EnablePageShattering", &["false"], "a Hyper-V mitigation with no KVM counterpart here"),
    refused_unless("VirtualMachineProcessor", "DisableSpeculationControls", &["false"], "speculation controls are always those KVM gives the guest"),
    refused("VirtualMachineProcessor", "ProcessorFeatureSet", "CPUID feature sets are not configurable"),
    refused("VirtualMachineProcessor", "CpuGroup", "host CPU groups are not supported"),
    refused("VirtualMachineProcessor", "NumaProcessorsSettings", "virtual NUMA topologies are not supported"),
    honoured("RestoreState", "SaveStateFilePath"),
    refused("RestoreState", "TemplateSystemId", "cloning from a template is not supported; restore from a SaveStateFilePath"),
    refused_unless("GuestConnection", "UseVsock", &["true"], "the guest agent is reached over AF_VSOCK; Hyper-V sockets do not exist here"), // TODO(vmproc)
    refused("GuestConnection", "UseConnectedSuspend", "not honoured yet"), // TODO(vmproc)
    refused_unless("GuestConnection", "UseHostTimeZone", &["false"], "the host's time zone is not passed to the guest yet"), // TODO(vmproc)
    // VirtualMachine.Devices
    honoured("Devices", "ComPorts"),
    refused("Devices", "VirtioSerial", NO_DEVICE),
    honoured("Devices", "Scsi"),
    refused("Devices", "VirtualPMem", NO_DEVICE),
    honoured("Devices", "NetworkAdapters"),
    refused("Devices", "VideoMonitor", NO_DEVICE),
    hint("Devices", "Keyboard", "an i8042 keyboard controller is always present"),
    hint("Devices", "Mouse", "a pointing device only serves a graphical console, which does not exist here"),
    honoured("Devices", "HvSocket"),
    refused("Devices", "EnhancedModeVideo", NO_DEVICE),
    refused("Devices", "GuestCrashReporting", "guest crash dumps are not collected"),
    refused("Devices", "VirtualSmb", NO_DEVICE),
    refused("Devices", "Plan9", NO_DEVICE),
    hint("Devices", "Battery", "a battery only reports the host's power state to the guest"),
    refused("Devices", "FlexibleIov", NO_DEVICE),
    refused("Devices", "SharedMemory", NO_DEVICE),
    refused("Devices", "VirtualPci", "PCI device assignment is not supported"),
    honoured("ComPort", "NamedPipe"),
    hint("ComPort", "OptimizeForDebugger", "tunes a Windows named pipe for a kernel debugger; the port behaves the same"),
    honoured("Scsi", "Attachments"),
    honoured("Scsi", "DisableInterruptBatching"),
    honoured("Attachment", "Type"),
    honoured("Attachment", "Path"),
    honoured("Attachment", "CachingMode"),
    honoured("Attachment", "ReadOnly"),
    refused_unless("Attachment", "SupportCompressedVolumes", &["false"], WINDOWS_STORAGE),
    refused_unless("Attachment", "AlwaysAllowSparseFiles", &["false"], WINDOWS_STORAGE),
    refused_unless("Attachment", "SupportEncryptedFiles", &["false"], WINDOWS_STORAGE),
    honoured("Attachment", "IgnoreFlushes"),
    refused_unless("Attachment", "NoWriteHardening", &["false"], WINDOWS_STORAGE),
    refused_unless("Attachment", "DisableExpansionOptimization", &["false"], WINDOWS_STORAGE),
    refused_unless("Attachment", "IgnoreRelativeLocator", &["false"], "differencing VHDs are not supported"),
    refused_unless("Attachment", "CaptureIoAttributionContext", &["false"], WINDOWS_STORAGE),
    refused("Attachment", "ExtensibleVirtualDiskType", "extensible virtual disks are not supported"),
    honoured("NetworkAdapter", "EndpointId"),
    honoured("NetworkAdapter", "MacAddress"),
    hint("NetworkAdapter", "InstanceId", "names the adapter's Hyper-V device instance; a virtio-net device has no instance id"),
    refused_unless("NetworkAdapter", "DisableInterruptBatching", &["false"], "interrupt batching is not configurable"),
    refused("NetworkAdapter", "IovSettings", "SR-IOV offload is not supported"),
    refused_unless("NetworkAdapter", "ConnectionState", &["\"Default\"", "\"Enabled\""], "an adapter is always connected to its tap"),
    refused_unless("NetworkAdapter", "IsConnected", &["true"], "an adapter is always connected to its tap"),
    refused("NetworkAdapter", "SwitchId", "Hyper-V switches do not exist here; EndpointId names the tap"),
    refused("NetworkAdapter", "PortId", "Hyper-V switch ports do not exist here; EndpointId names the tap"),
    honoured("VirtualMachineHvSocket", "HvSocketConfig"),
    // The descriptors are honoured where Linux can tell (root only, or
    // nobody); the monitor refuses the others with their path.
    honoured("HvSocketSystemConfig", "DefaultBindSecurityDescriptor"),
    honoured("HvSocketSystemConfig", "DefaultConnectSecurityDescriptor"),
    honoured("HvSocketSystemConfig", "ServiceTable"),
    honoured("HvSocketServiceConfig", "BindSecurityDescriptor"),
    honoured("HvSocketServiceConfig", "ConnectSecurityDescriptor"),
    hint("HvSocketServiceConfig", "AllowWildcardBinds", "host listeners are per VM (<socket>_<port>); there is no wildcard bind to allow or forbid"),
    honoured("HvSocketServiceConfig", "Disabled"),
    // ProcessParameters
    honoured("ProcessParameters", "ApplicationName"),
    honoured("ProcessParameters", "CommandLine"),
    honoured("ProcessParameters", "CommandArgs"),
    honoured("ProcessParameters", "User"),
    honoured("ProcessParameters", "WorkingDirectory"),
    honoured("ProcessParameters", "Environment"),
    refused_unless("ProcessParameters", "RestrictedToken", &["false"], "Windows tokens do not exist on Linux"), // TODO(vmproc)
    honoured("ProcessParameters", "EmulateConsole"),
    honoured("ProcessParameters", "CreateStdInPipe"),
    honoured("ProcessParameters", "CreateStdOutPipe"),
    honoured("ProcessParameters", "CreateStdErrPipe"),
    honoured("ProcessParameters", "ConsoleSize"),
    refused_unless("ProcessParameters", "UseExistingLogin", &["false"], "Windows logon sessions do not exist on Linux"), // TODO(vmproc)
    refused_unless("ProcessParameters", "UseLegacyConsole", &["false"], "the Windows legacy console does not exist on Linux"), // TODO(vmproc)
    refused_unless("ProcessParameters", "CreateInUtilityVM", &["false"], "utility VMs hosting containers are not available yet"), // TODO(vmproc)
    refused_on_vm("ProcessParameters", "OciProcess", "only `args` reaches a VM's guest agent today"), // TODO(vmproc)
    refused("ProcessParameters", "OciSpecification", "a container's OCI spec belongs in its compute system document (Container.OciSpecification); a process takes only its `process` part, as OciProcess"), // TODO(vmproc)
    honoured("ProcessParameters", "TerminateWithCreator"),
    honoured("ProcessModifyRequest", "Operation"),
    honoured("ProcessModifyRequest", "ConsoleSize"),
    honoured("ProcessModifyRequest", "CloseHandle"),
    honoured("ConsoleSize", "Height"),
    honoured("ConsoleSize", "Width"),
    honoured("CloseHandle", "Handle"),
    honoured("SignalProcessOptions", "Signal"),
    // ModifySettingRequest
    honoured("ModifySettingRequest", "ResourcePath"),
    honoured("ModifySettingRequest", "RequestType"),
    honoured("ModifySettingRequest", "Settings"),
    refused("ModifySettingRequest", "GuestRequest", "requests to a utility VM's guest are not supported"),
    // Options of the system operations
    refused("StartOptions", "DestinationMigrationOptions", "live migration is not supported"), // TODO(vmproc)
    refused("PauseOptions", "SuspensionLevel", "not honoured yet"), // TODO(vmproc)
    refused("PauseOptions", "HostedNotification", "not honoured yet"), // TODO(vmproc)
    honoured("SaveOptions", "SaveType"),
    honoured("SaveOptions", "SaveStateFilePath"),
    refused("ShutdownOptions", "Mechanism", "not honoured yet"), // TODO(vmproc)
    honoured("ShutdownOptions", "Type"),
    honoured("ShutdownOptions", "Force"),
    refused("ShutdownOptions", "Reason", "not honoured yet"), // TODO(vmproc)
    honoured("ShutdownOptions", "TimeoutInMs"),
    honoured("CrashOptions", "Type"),
    // Queries
    honoured("SystemPropertyQuery", "PropertyTypes"),
    refused("SystemPropertyQuery", "Queries", "property queries are not supported yet"), // TODO(vmproc)
    honoured("ServicePropertyQuery", "PropertyTypes"),
    refused("ServicePropertyQuery", "PropertyQueries", "property queries are not supported yet"), // TODO(vmproc)
    honoured("SystemQuery", "Ids"),
    honoured("SystemQuery", "Names"),
    honoured("SystemQuery", "Types"),
    honoured("SystemQuery", "Owners"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump() {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = roots();
        while let Some(t) = stack.pop() {
            if !seen.insert(t.name) {
                continue;
            }
            for m in t.members {
                println!("{}\t{}\t{}", t.name, m.json, (m.shape)());
                if let Some(i) = (m.info)() {
                    stack.push(i);
                }
            }
        }
    }
}
