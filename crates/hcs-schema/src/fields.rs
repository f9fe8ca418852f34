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
    /// Sample values of the member (see [`Fields::samples`]).
    pub samples: fn() -> Vec<Value>,
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

    /// Values of this type in JSON, used by the tests to set each member
    /// (every enumeration value, `true` and `false`, ...).
    fn samples() -> Vec<Value>
    where
        Self: Sized;

    /// Fails on the first member set in `self` (at `path`) that the table
    /// refuses in `cx`.
    fn refuse_unsupported(&self, cx: &Context<'_>, path: &str) -> Result<(), HcsError> {
        let _ = (cx, path);
        Ok(())
    }
}

macro_rules! leaf {
    ($($t:ty => [$($sample:expr),*]),* $(,)?) => {
        $(impl Fields for $t {
            fn samples() -> Vec<Value> {
                vec![$(Value::from($sample)),*]
            }
        })*
    };
}
leaf!(
    String => ["x"],
    bool => [true, false],
    u8 => [1u8],
    u16 => [1u16],
    u32 => [1u32],
    u64 => [1u64],
    i32 => [1i32],
    i64 => [1i64],
);

impl Fields for Value {
    fn samples() -> Vec<Value> {
        vec![serde_json::json!({"x": 1})]
    }
}

impl<T: Fields> Fields for Vec<T> {
    fn info() -> Option<&'static TypeInfo> {
        T::info()
    }

    fn shape() -> String {
        format!("[i]{}", T::shape())
    }

    fn samples() -> Vec<Value> {
        T::samples()
            .into_iter()
            .map(|v| Value::Array(vec![v]))
            .collect()
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

    fn samples() -> Vec<Value> {
        T::samples()
            .into_iter()
            .map(|v| Value::Array(vec![v; N]))
            .collect()
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

    fn samples() -> Vec<Value> {
        T::samples()
            .into_iter()
            .map(|v| serde_json::json!({ "0": v }))
            .collect()
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

impl From<crate::enums::SystemType> for On {
    fn from(t: crate::enums::SystemType) -> On {
        match t {
            crate::enums::SystemType::Container => On::Container,
            crate::enums::SystemType::VirtualMachine => On::VirtualMachine,
        }
    }
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

/// A kind of document clients send: what the API parses with
/// [`crate::from_json`].
#[derive(Debug, Clone, Copy)]
pub struct Root {
    /// Name of the document in errors.
    pub document: &'static str,
    /// Its type.
    pub info: fn() -> Option<&'static TypeInfo>,
    /// Parses a document of this kind and runs [`refuse_unsupported`] on it.
    pub check: fn(&str, On) -> Result<(), HcsError>,
}

/// [`crate::from_json`] of a `T`, then [`refuse_unsupported`].
fn check_root<T: serde::de::DeserializeOwned + Fields>(
    document: &'static str,
) -> impl Fn(&str, On) -> Result<(), HcsError> {
    move |json, on| {
        let parsed: T = crate::from_json(json, document)?;
        refuse_unsupported(&parsed, Context { document, on })
    }
}

macro_rules! roots {
    ($($ty:ty => $doc:literal),* $(,)?) => {
        /// Every kind of document clients send (the roots of the walk).
        pub static ROOTS: &[Root] = &[$(
            Root {
                document: $doc,
                info: <$ty as Fields>::info,
                check: |json, on| check_root::<$ty>($doc)(json, on),
            },
        )*];
    };
}

roots! {
    crate::ComputeSystem => "ComputeSystem",
    crate::process::ProcessParameters => "ProcessParameters",
    crate::requests::ModifySettingRequest => "ModifySettingRequest",
    crate::container::ContainerMemory => "Container_Memory",
    crate::container::ContainerProcessor => "Container_Processor",
    crate::requests::ProcessModifyRequest => "ProcessModifyRequest",
    crate::requests::StartOptions => "StartOptions",
    crate::requests::PauseOptions => "PauseOptions",
    crate::requests::ResumeOptions => "ResumeOptions",
    crate::requests::SaveOptions => "SaveOptions",
    crate::requests::ShutdownOptions => "ShutdownOptions",
    crate::requests::TerminateOptions => "TerminateOptions",
    crate::requests::CrashOptions => "CrashOptions",
    crate::requests::SignalProcessOptions => "SignalProcessOptions",
    crate::properties::SystemPropertyQuery => "System_PropertyQuery",
    crate::properties::SystemQuery => "SystemQuery",
    crate::service::ServicePropertyQuery => "Service_PropertyQuery",
    crate::process::ProcessStatus => "ProcessStatus",
}

/// Parses the options document of an operation (`HcsPauseComputeSystem`'s
/// `PauseOptions`, ...): no options, an empty string or only white space is
/// `None`; anything else must be a JSON document of that kind
/// (`HCS_E_INVALID_JSON` otherwise) that sets no member the table refuses
/// (`ERROR_NOT_SUPPORTED` with its JSON path).
pub fn parse_options<T: serde::de::DeserializeOwned + Fields>(
    options: Option<&str>,
    document: &str,
    on: On,
) -> Result<Option<T>, HcsError> {
    let Some(text) = options.filter(|o| !o.trim().is_empty()) else {
        return Ok(None);
    };
    let parsed: T = crate::from_json(text, document)?;
    refuse_unsupported(&parsed, Context { document, on })?;
    Ok(Some(parsed))
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
#[rustfmt::skip] // one row per line: the table reads as a table
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
    refused("Container", "RegistryChanges", "Linux has no registry; write the files into a layer instead"),
    refused_unless("Container", "AssignedDevices", &["[]"], "device assignment to containers is not supported yet"),
    refused("Container", "AdditionalDeviceNamespace", WINDOWS_CONTAINER),
    refused("Container", "IsolationType", "HostProcess containers are Windows-only"),
    honoured("Container", "UserNamespace"),
    honoured("Container", "PidsLimit"),
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
    refused_unless("Chipset", "UseUtc", &["true"], "there is no RTC holding local time: the guest's wall clock (kvmclock) is always UTC"),
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
    hint("VirtualMachineMemory", "HostingProcessNameSuffix", "names the Windows host process (`vmmem` and the suffix); the process running the VM is hcs-monitor"),
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
    refused_unless("GuestConnection", "UseVsock", &["true"], "the guest agent is reached over AF_VSOCK; Hyper-V sockets do not exist here"),
    refused_unless("GuestConnection", "UseConnectedSuspend", &["true"], "the guest connection stays up across a pause (the host keeps watching guest processes); closing it at pause is not supported"),
    honoured("GuestConnection", "UseHostTimeZone"),
    // VirtualMachine.Devices
    honoured("Devices", "ComPorts"),
    refused("Devices", "VirtioSerial", NO_DEVICE),
    honoured("Devices", "Scsi"),
    refused("Devices", "VirtualPMem", NO_DEVICE),
    honoured("Devices", "NetworkAdapters"),
    refused("Devices", "VideoMonitor", NO_DEVICE),
    hint("Devices", "Keyboard", "no keyboard for the guest: the i8042 is there for its reset line only"),
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
    refused_unless("ProcessParameters", "RestrictedToken", &["false"], "Windows tokens do not exist on Linux"),
    honoured("ProcessParameters", "EmulateConsole"),
    honoured("ProcessParameters", "CreateStdInPipe"),
    honoured("ProcessParameters", "CreateStdOutPipe"),
    honoured("ProcessParameters", "CreateStdErrPipe"),
    honoured("ProcessParameters", "ConsoleSize"),
    refused_unless("ProcessParameters", "UseExistingLogin", &["false"], "Windows logon sessions do not exist on Linux"),
    refused_unless("ProcessParameters", "UseLegacyConsole", &["false"], "the Windows legacy console does not exist on Linux"),
    refused_unless("ProcessParameters", "CreateInUtilityVM", &["false"], "utility VMs hosting containers are not available yet"),
    honoured("ProcessParameters", "OciProcess"),
    refused("ProcessParameters", "OciSpecification", "a container's OCI spec belongs in its compute system document (Container.OciSpecification); a process takes only its `process` part, as OciProcess"),
    honoured("ProcessParameters", "TerminateWithCreator"),
    honoured("ProcessModifyRequest", "Operation"),
    honoured("ProcessModifyRequest", "ConsoleSize"),
    honoured("ProcessModifyRequest", "CloseHandle"),
    honoured("ConsoleSize", "Height"),
    honoured("ConsoleSize", "Width"),
    honoured("CloseHandle", "Handle"),
    honoured("SignalProcessOptions", "Signal"),
    // HcsGetProcessProperties' query: each member present selects that
    // member of the result (its value is not looked at).
    honoured("ProcessStatus", "ProcessId"),
    honoured("ProcessStatus", "Exited"),
    honoured("ProcessStatus", "ExitCode"),
    honoured("ProcessStatus", "LastWaitResult"),
    // ModifySettingRequest
    honoured("ModifySettingRequest", "ResourcePath"),
    honoured("ModifySettingRequest", "RequestType"),
    honoured("ModifySettingRequest", "Settings"),
    refused("ModifySettingRequest", "GuestRequest", "requests to a utility VM's guest are not supported"),
    // Options of the system operations
    refused("StartOptions", "DestinationMigrationOptions", "live migration is not supported"),
    // `Suspend` is what a pause does (vCPUs stopped, cgroup frozen).
    refused_unless("PauseOptions", "SuspensionLevel", &["\"Suspend\""], "only `Suspend` is available: a paused system keeps its memory"),
    hint("PauseOptions", "HostedNotification", "tells the systems a utility VM hosts why it pauses; no system is hosted here"),
    hint("PauseNotification", "Reason", "part of HostedNotification, which has no one to notify"),
    honoured("SaveOptions", "SaveType"),
    honoured("SaveOptions", "SaveStateFilePath"),
    honoured("ShutdownOptions", "Mechanism"),
    honoured("ShutdownOptions", "Type"),
    honoured("ShutdownOptions", "Force"),
    hint("ShutdownOptions", "Reason", "logged by the monitor; no guest component takes a reason for a shutdown"),
    honoured("ShutdownOptions", "TimeoutInMs"),
    honoured("CrashOptions", "Type"),
    // Queries
    honoured("SystemPropertyQuery", "PropertyTypes"),
    refused_unless("SystemPropertyQuery", "Queries", &["{}"], "property queries are not supported yet"),
    honoured("ServicePropertyQuery", "PropertyTypes"),
    honoured("ServicePropertyQuery", "PropertyQueries"),
    honoured("SystemQuery", "Ids"),
    honoured("SystemQuery", "Names"),
    honoured("SystemQuery", "Types"),
    honoured("SystemQuery", "Owners"),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    use hcs_errors::HResult;

    use super::*;

    /// Members the walk of the tests does not descend through: refused
    /// whatever their value, so nothing inside can be set.
    fn closed(entry: Option<&Entry>) -> bool {
        match entry.map(|e| e.class) {
            Some(Class::Refused(r)) if r.on == On::Any => {
                !r.accepted
                    .iter()
                    .any(|text| match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(m)) => !m.is_empty(),
                        Ok(Value::Array(a)) => !a.is_empty(),
                        _ => false,
                    })
            }
            _ => false,
        }
    }

    /// One step from a root to a member.
    #[derive(Clone)]
    struct Step {
        member: &'static Member,
    }

    /// Every type reachable from the roots through members that are not
    /// closed, with the first (shortest) route to it: root index and steps.
    fn reachable() -> BTreeMap<&'static str, (&'static TypeInfo, usize, Vec<Step>)> {
        let mut found: BTreeMap<&'static str, (&'static TypeInfo, usize, Vec<Step>)> =
            BTreeMap::new();
        let mut queue = VecDeque::new();
        for (r, root) in ROOTS.iter().enumerate() {
            if let Some(info) = (root.info)() {
                queue.push_back((info, r, Vec::new()));
            }
        }
        while let Some((info, r, steps)) = queue.pop_front() {
            if found.contains_key(info.name) {
                continue;
            }
            found.insert(info.name, (info, r, steps.clone()));
            for m in info.members {
                if closed(lookup(info.name, m.json)) {
                    continue;
                }
                if let Some(inner) = (m.info)() {
                    let mut next = steps.clone();
                    next.push(Step { member: m });
                    queue.push_back((inner, r, next));
                }
            }
        }
        found
    }

    /// Every type reachable from the roots through any member.
    fn all_reachable() -> BTreeSet<&'static str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&'static TypeInfo> = ROOTS.iter().filter_map(|r| (r.info)()).collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t.name) {
                stack.extend(t.members.iter().filter_map(|m| (m.info)()));
            }
        }
        seen
    }

    /// Schema types that are not part of any client document, and why.
    const NOT_CLIENT_INPUT: &[(&str, &str)] = &[
        (
            "HostedSystem",
            "parsed only from ComputeSystem.HostedSystem, which is refused",
        ),
        (
            "CombinedLayers",
            "guest request body; guest requests are refused",
        ),
        (
            "MappedVirtualDisk",
            "guest request body; guest requests are refused",
        ),
        ("CimMount", "Windows layer API, not implemented"),
        (
            "RegistryFlushState",
            "modify body of a resource path that is refused",
        ),
        (
            "GuestModifySettingRequest",
            "ModifySettingRequest.GuestRequest is refused",
        ),
        (
            "IdleProcessorsRequest",
            "modify body of a resource path that is refused",
        ),
        (
            "ProcessorLimits",
            "modify body of a resource path that is refused",
        ),
        (
            "SystemProcessorModificationRequest",
            "modify body of a resource path that is refused",
        ),
        (
            "KvpQuery",
            "property query body; property queries are refused",
        ),
        (
            "ConsoleImageQuery",
            "property query body; property queries are refused",
        ),
        (
            "ModificationRequest",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "HostProcessorModificationRequest",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "CreateGroupOperation",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "DeleteGroupOperation",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "SetPropertyOperation",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "ContainerCredentialGuardOperationRequest",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "ContainerCredentialGuardAddInstanceRequest",
            "HcsModifyServiceSettings is not implemented",
        ),
        (
            "ContainerCredentialGuardRemoveInstanceRequest",
            "HcsModifyServiceSettings is not implemented",
        ),
        ("LayerData", "Windows layer API, not implemented"),
        ("OsLayerOptions", "Windows layer API, not implemented"),
        ("ExportLayerOptions", "Windows layer API, not implemented"),
        (
            "TimeZoneInformation",
            "not part of any document this API reads",
        ),
        ("SystemTime", "not part of any document this API reads"),
        (
            "GpuConfiguration",
            "modify body of a resource path that is refused",
        ),
        ("HvSocketAddress", "not part of any document this API reads"),
        // Results this system writes, never reads from a client.
        ("ProcessDetails", "a result"),
        ("Properties", "a result"),
        ("ComputeSystemProperties", "a result"),
        ("PropertyResponse", "a result"),
        ("Statistics", "a result"),
        ("VmStatistics", "a result"),
        ("ProcessorStats", "a result"),
        ("MemoryStats", "a result"),
        ("StorageStats", "a result"),
        ("MemoryInformationForVm", "a result"),
        ("VmMemory", "a result"),
        ("VirtualNodeInfo", "a result"),
        ("GuestConnectionInfo", "a result"),
        ("SharedMemoryRegionInfo", "a result"),
        ("IntegrationComponentStatus", "a result"),
        ("ConsoleImage", "a result"),
        ("ResultError", "a result"),
        ("ErrorEvent", "a result"),
        ("EventData", "a result"),
        ("SystemExitStatus", "a result"),
        ("AttributionRecord", "a result"),
        ("VirtualMachineExit", "a result"),
        ("WorkerExit", "a result"),
        ("GuestCrash", "a result"),
        ("TripleFault", "a result"),
        ("InjectNonMaskableInterrupt", "a result"),
        ("OperationFailure", "a result"),
        ("SystemExit", "a result"),
        ("VirtualDeviceFailure", "a result"),
        ("CrashReport", "a result"),
        ("WindowsCrashReport", "a result"),
        ("OperationInfo", "a result"),
        ("OperationFailureInfo", "a result"),
        ("OperationNotificationInfo", "a result"),
        ("OperationProgress", "a result"),
        ("ServiceProperties", "a result"),
        ("BasicInformation", "a result"),
        ("CpuGroupConfigurations", "a result"),
        ("CpuGroupConfig", "a result"),
        ("CpuGroupAffinity", "a result"),
        ("CpuGroupProperty", "a result"),
        ("ProcessorTopology", "a result"),
        ("LogicalProcessor", "a result"),
        ("Subnode", "a result"),
        ("QoSCapabilities", "a result"),
        ("ProcessorCapabilitiesInfo", "a result"),
        ("VmProcessorRequirements", "a result"),
        ("ContainerCredentialGuardSystemInfo", "a result"),
        ("ContainerCredentialGuardInstance", "a result"),
        ("ContainerCredentialGuardHvSocketServiceConfig", "a result"),
    ];

    /// The names of all `hcs_struct!` types, read from the crate's source.
    fn declared_types() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src is readable").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("macros.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("source is readable");
                for block in text.split("hcs_struct! {").skip(1) {
                    let name = block.split("pub struct ").nth(1).and_then(|rest| {
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                    });
                    if let Some(name) = name.filter(|n| !n.is_empty()) {
                        out.insert(name.to_string());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_member_of_every_client_document_is_classified() {
        let mut unclassified = Vec::new();
        let mut members = BTreeSet::new();
        for (name, (info, _, _)) in reachable() {
            for m in info.members {
                members.insert((name, m.json));
                if lookup(name, m.json).is_none() {
                    unclassified.push(format!("{name}.{}", m.json));
                }
            }
        }
        assert!(
            unclassified.is_empty(),
            "members with no class in fields::TABLE (Honoured, Refused or Hint): {unclassified:?}"
        );
        let stale: Vec<String> = TABLE
            .iter()
            .filter(|e| !members.contains(&(e.ty, e.member)))
            .map(|e| format!("{}.{}", e.ty, e.member))
            .collect();
        assert!(
            stale.is_empty(),
            "fields::TABLE classifies members that do not exist (or that no client document can \
             reach any more): {stale:?}"
        );
        let mut rows = BTreeSet::new();
        let twice: Vec<String> = TABLE
            .iter()
            .filter(|e| !rows.insert((e.ty, e.member)))
            .map(|e| format!("{}.{}", e.ty, e.member))
            .collect();
        assert!(twice.is_empty(), "classified twice: {twice:?}");
    }

    #[test]
    fn every_schema_type_is_a_client_document_part_or_listed_as_not_one() {
        let reachable = all_reachable();
        let declared = declared_types();
        assert!(
            declared.len() > 100,
            "found only {} hcs_struct! types",
            declared.len()
        );
        let listed: BTreeMap<&str, &str> = NOT_CLIENT_INPUT.iter().copied().collect();
        let unplaced: Vec<&String> = declared
            .iter()
            .filter(|t| !reachable.contains(t.as_str()) && !listed.contains_key(t.as_str()))
            .collect();
        assert!(
            unplaced.is_empty(),
            "schema types neither reachable from a client document (fields::ROOTS) nor listed in \
             NOT_CLIENT_INPUT: {unplaced:?}"
        );
        let wrong: Vec<&&str> = listed
            .keys()
            .filter(|t| reachable.contains(**t) || !declared.contains(**t))
            .collect();
        assert!(
            wrong.is_empty(),
            "NOT_CLIENT_INPUT lists types that a client document reaches or that do not exist: {wrong:?}"
        );
    }

    /// A document of root `r` that sets the member at the end of `steps`
    /// to `value`, and that member's JSON path.
    fn document_setting(steps: &[Step], last: &Member, value: Value) -> (String, String) {
        let mut path = String::from("$");
        let mut keys: Vec<(String, String)> = Vec::new(); // (key, shape)
        for step in steps.iter().map(|s| s.member).chain(std::iter::once(last)) {
            path = member(&path, step.json);
            let shape = if std::ptr::eq(step, last) {
                String::new()
            } else {
                (step.shape)()
            };
            for part in shape.split_inclusive(['>', ']']) {
                match part {
                    "[i]" => path = index(&path, 0),
                    ".<key>" => path = member(&path, "0"),
                    _ => {}
                }
            }
            keys.push((step.json.to_string(), shape));
        }
        let mut doc = value;
        for (key, shape) in keys.iter().rev() {
            let parts: Vec<&str> = shape.split_inclusive(['>', ']']).collect();
            for part in parts.iter().rev() {
                doc = match *part {
                    "[i]" => Value::Array(vec![doc]),
                    ".<key>" => serde_json::json!({ "0": doc }),
                    _ => doc,
                };
            }
            doc = serde_json::json!({ key.as_str(): doc });
        }
        (doc.to_string(), path)
    }

    #[test]
    fn every_refused_member_is_refused_with_its_json_path() {
        let mut checked = 0;
        for (name, (info, r, steps)) in reachable() {
            let root = &ROOTS[r];
            for m in info.members {
                let Some(Class::Refused(refusal)) = lookup(name, m.json).map(|e| e.class) else {
                    continue;
                };
                let accepted: Vec<Value> = refusal
                    .accepted
                    .iter()
                    .map(|t| serde_json::from_str(t).expect("accepted values are JSON"))
                    .collect();
                let samples = (m.samples)();
                let value = samples
                    .iter()
                    .find(|v| !accepted.contains(v))
                    .unwrap_or_else(|| panic!("{name}.{}: every sample value is accepted", m.json))
                    .clone();
                let (doc, path) = document_setting(&steps, m, value);
                let on = refusal.on;
                let err = match (root.check)(&doc, on) {
                    Ok(()) => panic!("{name}.{} is Refused but {doc} was accepted", m.json),
                    Err(e) => e,
                };
                assert_eq!(
                    err.hresult,
                    HResult::ERROR_NOT_SUPPORTED,
                    "{doc}: {}",
                    err.message
                );
                assert!(
                    err.message.contains(&format!("`{path}`")),
                    "{doc}: the error should name {path}: {}",
                    err.message
                );
                if refusal.on != On::Any {
                    (root.check)(&doc, On::Container).unwrap_or_else(|e| {
                        panic!("{doc} is refused only on {:?}: {}", refusal.on, e.message)
                    });
                }
                for ok in &accepted {
                    let (doc, _) = document_setting(&steps, m, ok.clone());
                    (root.check)(&doc, on).unwrap_or_else(|e| {
                        panic!("{doc}: an accepted value was refused: {}", e.message)
                    });
                }
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} refused members were checked");
    }

    #[test]
    fn honoured_and_hinted_members_pass_the_walk() {
        for (name, (info, r, steps)) in reachable() {
            for m in info.members {
                if !matches!(
                    lookup(name, m.json).map(|e| e.class),
                    Some(Class::Honoured | Class::Hint(_))
                ) {
                    continue;
                }
                for value in (m.samples)() {
                    let (doc, _) = document_setting(&steps, m, value);
                    let (_, path) = document_setting(&steps, m, Value::Null);
                    if let Err(e) = (ROOTS[r].check)(&doc, On::Any) {
                        // An object sample may set a refused member inside;
                        // only a refusal of this member itself is wrong.
                        assert!(
                            !e.message.contains(&format!("`{path}` is not supported")),
                            "{doc}: {}",
                            e.message
                        );
                    }
                }
            }
        }
    }

    fn refused_at(result: Result<(), HcsError>, path: &str) {
        let e = result.expect_err("refused");
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{}", e.message);
        assert!(
            e.message.contains(&format!("`{path}` is not supported")),
            "{}",
            e.message
        );
    }

    #[test]
    fn validate_refuses_what_the_table_refuses() {
        let vm: crate::ComputeSystem = crate::from_json(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"ResourcePartitionId":"0"}}"#,
            "ComputeSystem",
        )
        .expect("parses");
        refused_at(vm.validate(), "$.VirtualMachine.ResourcePartitionId");
        let nested: crate::ComputeSystem = crate::from_json(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Devices":{"Scsi":{"0":{"Attachments":{"1":{"Path":"/d.img","SupportCompressedVolumes":true}}}}}}}"#,
            "ComputeSystem",
        )
        .expect("parses");
        refused_at(
            nested.validate(),
            r#"$.VirtualMachine.Devices.Scsi["0"].Attachments["1"].SupportCompressedVolumes"#,
        );
        let hosted: crate::HostedSystem = crate::from_json(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"QoS":{}}}}"#,
            "HostedSystem",
        )
        .expect("parses");
        refused_at(hosted.validate(), "$.Container.Storage.QoS");

        // OciProcess is honoured for containers and in VMs (the guest agent
        // takes the whole of it).
        let p: crate::ProcessParameters = crate::from_json(
            r#"{"OciProcess":{"args":["/bin/true"],"env":["A=1"]}}"#,
            "ProcessParameters",
        )
        .expect("parses");
        p.validate().expect("valid where the system is not known");
        p.validate_on(On::Container).expect("valid in a container");
        p.validate_on(On::VirtualMachine).expect("valid in a VM");
        let p: crate::ProcessParameters = crate::from_json(
            r#"{"CommandLine":"x","RestrictedToken":true}"#,
            "ProcessParameters",
        )
        .expect("parses");
        refused_at(p.validate(), "$.RestrictedToken");

        // A value this system cannot honour: a Windows named pipe.
        let pipe: crate::ComputeSystem = crate::from_json(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Devices":{"ComPorts":{"0":{"NamedPipe":"\\\\.\\pipe\\vmpipe"}}}}}"#,
            "ComputeSystem",
        )
        .expect("parses");
        refused_at(
            pipe.validate(),
            r#"$.VirtualMachine.Devices.ComPorts["0"].NamedPipe"#,
        );

        let m: crate::ModifySettingRequest = crate::from_json(
            r#"{"GuestRequest":{"ResourceType":"Network"}}"#,
            "ModifySettingRequest",
        )
        .expect("parses");
        refused_at(m.validate(), "$.GuestRequest");
    }

    #[test]
    fn options_documents_must_be_json_and_supported() {
        use crate::requests::{PauseOptions, StartOptions, TerminateOptions};
        for none in [None, Some(""), Some("  \n")] {
            assert_eq!(
                parse_options::<StartOptions>(none, "StartOptions", On::Any).ok(),
                Some(None)
            );
        }
        assert!(
            parse_options::<TerminateOptions>(Some("{}"), "TerminateOptions", On::Any)
                .is_ok_and(|o| o.is_some())
        );
        for (text, path) in [("now please", "$"), (r#"{"Force":true}"#, "$")] {
            let e = parse_options::<TerminateOptions>(Some(text), "TerminateOptions", On::Any)
                .expect_err("refused");
            assert_eq!(
                e.hresult,
                HResult::HCS_E_INVALID_JSON,
                "{text}: {}",
                e.message
            );
            assert!(
                e.message.contains(&format!("`{path}`")) || e.message.contains("line 1"),
                "{}",
                e.message
            );
        }
        let e = parse_options::<StartOptions>(Some("not json"), "StartOptions", On::Any)
            .expect_err("refused");
        assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{}", e.message);
        let e = parse_options::<StartOptions>(Some(r#"{"Bogus":1}"#), "StartOptions", On::Any)
            .expect_err("refused");
        assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{}", e.message);
        assert!(e.message.contains("unknown field `Bogus`"), "{}", e.message);
        refused_at(
            parse_options::<PauseOptions>(
                Some(r#"{"SuspensionLevel":"MemoryLow"}"#),
                "PauseOptions",
                On::VirtualMachine,
            )
            .map(|_| ()),
            "$.SuspensionLevel",
        );
    }

    /// The README's table of accepted hints, as generated from [`TABLE`].
    fn hints_table() -> String {
        let mut rows = Vec::new();
        for (info, r, steps) in reachable().into_values() {
            for m in info.members {
                if let Some(Class::Hint(why)) = lookup(info.name, m.json).map(|e| e.class) {
                    let mut path = String::from("$");
                    for step in steps.iter().map(|s| s.member) {
                        path.push('.');
                        path.push_str(step.json);
                        path.push_str(
                            &(step.shape)().replace("[i]", "[*]").replace(".<key>", ".*"),
                        );
                    }
                    path.push('.');
                    path.push_str(m.json);
                    rows.push((r, path, why));
                }
            }
        }
        rows.sort();
        let mut out =
            String::from("| Document | Member | Why it may be ignored |\n|---|---|---|\n");
        for (r, path, why) in rows {
            out.push_str(&format!("| {} | `{path}` | {why} |\n", ROOTS[r].document));
        }
        out
    }

    #[test]
    fn readme_lists_exactly_the_accepted_hints() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md is readable");
        let begin = "<!-- accepted-hints:begin -->\n";
        let end = "<!-- accepted-hints:end -->";
        let expected = hints_table();
        let found = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table);
        assert_eq!(
            found,
            Some(expected.as_str()),
            "README.md's table of accepted hints (between {begin:?} and {end:?}) differs from \
             crates/hcs-schema/src/fields.rs; it should read:\n{expected}"
        );
    }
}
