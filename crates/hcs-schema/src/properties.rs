//! Property queries and their results (reference section 5.8).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::enums::{
    IntegrationComponentOperatingStateReason, IntegrationComponentOperationalState, KvpSource,
    NotificationType, OsType, State, SystemPropertyType, SystemType,
};
use crate::process::ProcessDetails;
use crate::results::ResultError;
use crate::version::Version;

hcs_struct! {
    /// Query of HcsGetComputeSystemProperties (`System_PropertyQuery`); NULL = basic properties.
    pub struct SystemPropertyQuery {
        /// Property types to return, 2.1.
        "PropertyTypes" => property_types: Vec<SystemPropertyType>,
        /// Property name to query object; answers come in `Properties.PropertyResponses`, 2.5.
        "Queries" => queries: BTreeMap<String, Value>,
    }
}

hcs_struct! {
    /// Result of HcsGetComputeSystemProperties and element of the
    /// HcsEnumerateComputeSystems array. `Id` and `SystemType` are always
    /// present; the other members only when their property type was requested.
    pub struct Properties {
        /// Compute system id.
        "Id" => id: String,
        /// Container or virtual machine.
        "SystemType" => system_type: SystemType,
        /// OS running in the system (this implementation reports `Linux`).
        "RuntimeOsType" => runtime_os_type: OsType,
        /// Name.
        "Name" => name: String,
        /// Owner given at create.
        "Owner" => owner: String,
        /// GUID of the running VM (the vsock/hvsocket VM id).
        "RuntimeId" => runtime_id: String,
        /// Template the system was cloned from.
        "RuntimeTemplateId" => runtime_template_id: String,
        /// Lifecycle state.
        "State" => state: State,
        /// Whether the system stopped.
        "Stopped" => stopped: bool,
        /// How it stopped.
        "ExitType" => exit_type: NotificationType,
        /// VM memory (property type `Memory`).
        "Memory" => memory: MemoryInformationForVm,
        /// Runtime counters (property type `Statistics`).
        "Statistics" => statistics: Statistics,
        /// Processes (property type `ProcessList`).
        "ProcessList" => process_list: Vec<ProcessDetails>,
        /// Property type `TerminateOnLastHandleClosed`.
        "TerminateOnLastHandleClosed" => terminate_on_last_handle_closed: bool,
        /// Hosting system of a hosted container.
        "HostingSystemId" => hosting_system_id: String,
        /// Property type `SharedMemoryRegion`.
        "SharedMemoryRegionInfo" => shared_memory_region_info: Vec<SharedMemoryRegionInfo>,
        /// Property type `GuestConnection`.
        "GuestConnectionInfo" => guest_connection_info: GuestConnectionInfo,
        /// Answers to `Queries`, by property name, 2.5.
        "PropertyResponses" => property_responses: BTreeMap<String, PropertyResponse>,
        /// Undocumented (hcsshim): object-manager root.
        "ObRoot" => ob_root: String,
        /// Undocumented (hcsshim).
        "IsDummy" => is_dummy: bool,
        /// Undocumented (hcsshim): property type `SystemGUID`.
        "SystemGUID" => system_guid: String,
        /// Undocumented (hcsshim): property type `CpuGroup`.
        "CpuGroupId" => cpu_group_id: String,
        /// Undocumented (hcsshim): property type `GuestMemory`, kept opaque.
        "GuestMemoryInfo" => guest_memory_info: Value,
        /// Undocumented (hcsshim, LCOW only): cgroup metrics of the guest, kept opaque.
        "LCOWMetrics" => lcow_metrics: Value,
    }
}

hcs_struct! {
    /// Basic properties of a compute system, 2.5.
    pub struct ComputeSystemProperties {
        /// Id.
        "Id" => id: String,
        /// Name.
        "Name" => name: String,
        /// Kind.
        "SystemType" => system_type: SystemType,
        /// State.
        "State" => state: State,
        /// Owner.
        "Owner" => owner: String,
        /// Runtime GUID.
        "RuntimeId" => runtime_id: String,
        /// OS type.
        "RuntimeOsType" => runtime_os_type: OsType,
        /// Hosting system.
        "HostingSystemId" => hosting_system_id: String,
        /// Dummy system.
        "IsDummy" => is_dummy: bool,
        /// Object-manager root.
        "ObRoot" => ob_root: String,
        /// Template id.
        "RuntimeTemplateId" => runtime_template_id: String,
    }
}

hcs_struct! {
    /// Answer to one property query, 2.5.
    pub struct PropertyResponse {
        /// Error if that property failed.
        "Error" => error: ResultError,
        /// The property.
        "Response" => response: Value,
    }
}

hcs_struct! {
    /// Filter of HcsEnumerateComputeSystems (values OR-ed within a member).
    pub struct SystemQuery {
        /// Ids.
        "Ids" => ids: Vec<String>,
        /// Names.
        "Names" => names: Vec<String>,
        /// Kinds.
        "Types" => types: Vec<SystemType>,
        /// Owners.
        "Owners" => owners: Vec<String>,
    }
}

hcs_struct! {
    /// Runtime counters of a system.
    pub struct Statistics {
        /// When sampled, RFC 3339.
        "Timestamp" => timestamp: String,
        /// When the container started, RFC 3339.
        "ContainerStartTime" => container_start_time: String,
        /// Uptime in 100 ns units.
        "Uptime100ns" => uptime_100ns: u64,
        /// CPU counters.
        "Processor" => processor: ProcessorStats,
        /// Memory counters.
        "Memory" => memory: MemoryStats,
        /// Storage counters.
        "Storage" => storage: StorageStats,
        /// Linux extension, not in Microsoft's schema: counters of a virtual machine's VMM.
        "VirtualMachine" => virtual_machine: VmStatistics,
    }
}

hcs_struct! {
    /// Linux extension, not in Microsoft's schema: VMM counters of a virtual machine.
    pub struct VmStatistics {
        /// CPU time of all vCPU threads, in 100 ns units.
        "VcpuTime100ns" => vcpu_time_100ns: u64,
        /// VM exits the VMM handled.
        "Exits" => exits: u64,
        /// Guest memory the host has backed, in bytes.
        "GuestResidentBytes" => guest_resident_bytes: u64,
        /// Guest port and MMIO accesses that reached no device (ignored).
        "UnclaimedAccesses" => unclaimed_accesses: u64,
    }
}

hcs_struct! {
    /// CPU counters.
    pub struct ProcessorStats {
        /// Total CPU time in 100 ns units.
        "TotalRuntime100ns" => total_runtime_100ns: u64,
        /// User CPU time in 100 ns units.
        "RuntimeUser100ns" => runtime_user_100ns: u64,
        /// Kernel CPU time in 100 ns units.
        "RuntimeKernel100ns" => runtime_kernel_100ns: u64,
    }
}

hcs_struct! {
    /// Memory counters.
    pub struct MemoryStats {
        /// Committed bytes.
        "MemoryUsageCommitBytes" => memory_usage_commit_bytes: u64,
        /// Peak committed bytes.
        "MemoryUsageCommitPeakBytes" => memory_usage_commit_peak_bytes: u64,
        /// Private working set bytes.
        "MemoryUsagePrivateWorkingSetBytes" => memory_usage_private_working_set_bytes: u64,
    }
}

hcs_struct! {
    /// Storage counters.
    pub struct StorageStats {
        /// Reads, normalised.
        "ReadCountNormalized" => read_count_normalized: u64,
        /// Bytes read.
        "ReadSizeBytes" => read_size_bytes: u64,
        /// Writes, normalised.
        "WriteCountNormalized" => write_count_normalized: u64,
        /// Bytes written.
        "WriteSizeBytes" => write_size_bytes: u64,
    }
}

hcs_struct! {
    /// Memory of a VM (`Properties.Memory`).
    pub struct MemoryInformationForVm {
        /// Number of virtual NUMA nodes.
        "VirtualNodeCount" => virtual_node_count: u8,
        /// Memory totals.
        "VirtualMachineMemory" => virtual_machine_memory: VmMemory,
        /// Per-node details.
        "VirtualNodes" => virtual_nodes: Vec<VirtualNodeInfo>,
    }
}

hcs_struct! {
    /// Memory totals of a VM.
    pub struct VmMemory {
        /// Available memory.
        "AvailableMemory" => available_memory: i32,
        /// Available memory buffer.
        "AvailableMemoryBuffer" => available_memory_buffer: i32,
        /// Reserved memory.
        "ReservedMemory" => reserved_memory: u64,
        /// Assigned memory.
        "AssignedMemory" => assigned_memory: u64,
        /// SLP active.
        "SlpActive" => slp_active: bool,
        /// Dynamic memory balancing enabled.
        "BalancingEnabled" => balancing_enabled: bool,
        /// Dynamic memory operation in progress.
        "DmOperationInProgress" => dm_operation_in_progress: bool,
    }
}

hcs_struct! {
    /// One virtual NUMA node of a VM.
    pub struct VirtualNodeInfo {
        /// Node index.
        "VirtualNodeIndex" => virtual_node_index: u8,
        /// Host node.
        "PhysicalNodeNumber" => physical_node_number: u8,
        /// vCPUs on the node.
        "VirtualProcessorCount" => virtual_processor_count: u32,
        /// Pages used.
        "MemoryUsageInPages" => memory_usage_in_pages: u64,
    }
}

hcs_struct! {
    /// What the guest agent negotiated (`Properties.GuestConnectionInfo`).
    pub struct GuestConnectionInfo {
        /// Schema versions the guest supports.
        "SupportedSchemaVersions" => supported_schema_versions: Vec<Version>,
        /// Protocol version.
        "ProtocolVersion" => protocol_version: u32,
        /// Guest-defined capabilities.
        "GuestDefinedCapabilities" => guest_defined_capabilities: Value,
    }
}

hcs_struct! {
    /// Where a shared memory region landed in the guest.
    pub struct SharedMemoryRegionInfo {
        /// Section name.
        "SectionName" => section_name: String,
        /// Guest physical address.
        "GuestPhysicalAddress" => guest_physical_address: u64,
    }
}

hcs_struct! {
    /// Status of an integration component, 2.5.
    pub struct IntegrationComponentStatus {
        /// Enabled.
        "IsEnabled" => is_enabled: bool,
        /// State.
        "State" => state: IntegrationComponentOperationalState,
        /// Reason.
        "Reason" => reason: IntegrationComponentOperatingStateReason,
    }
}

hcs_struct! {
    /// KVP query, 2.5.
    pub struct KvpQuery {
        /// Source.
        "Source" => source: KvpSource,
        /// Keys.
        "Keys" => keys: Vec<String>,
    }
}

hcs_struct! {
    /// Console screenshot query, 2.5.
    pub struct ConsoleImageQuery {
        /// Width.
        "Width" => width: u16,
        /// Height.
        "Height" => height: u16,
        /// Flags.
        "Flags" => flags: u32,
    }
}

hcs_struct! {
    /// Console screenshot, 2.5.
    pub struct ConsoleImage {
        /// Image bytes (base64).
        "Image" => image: String,
    }
}
