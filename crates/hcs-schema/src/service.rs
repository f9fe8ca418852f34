//! Service-level documents of HcsGetServiceProperties and
//! HcsModifyServiceSettings (reference section 5.11).

use std::collections::BTreeMap;

use serde_json::Value;

pub use crate::container::ContainerCredentialGuardState;
use crate::enums::{
    ContainerCredentialGuardModifyOperation, ContainerCredentialGuardTransport, GetPropertyType,
    ModifyPropertyType, ModifyServiceOperation, NonArchitecturalCoreSharing, ProcessorFeature,
    SubnodeType, XsaveProcessorFeature,
};
use crate::properties::PropertyResponse;
use crate::version::Version;
use crate::virtual_machine::devices::HvSocketServiceConfig;

hcs_struct! {
    /// Query of HcsGetServiceProperties (`Service_PropertyQuery`).
    pub struct ServicePropertyQuery {
        /// Property types; `Properties` of the answer follows this order, 2.1.
        "PropertyTypes" => property_types: Vec<GetPropertyType>,
        /// Property name to query object, e.g. `{"ProcessorCapabilities":{}}`, 2.5.
        "PropertyQueries" => property_queries: BTreeMap<String, Value>,
    }
}

hcs_struct! {
    /// Result of HcsGetServiceProperties.
    pub struct ServiceProperties {
        /// One object per requested type, in order (e.g. a [`BasicInformation`]), 2.1.
        "Properties" => properties: Vec<Value>,
        /// Answers to `PropertyQueries`, 2.5.
        "PropertyResponses" => property_responses: BTreeMap<String, PropertyResponse>,
    }
}

hcs_struct! {
    /// Service property `Basic`: the schema versions the service accepts.
    pub struct BasicInformation {
        /// Supported versions (entry A.X means A.0..A.X), 2.1.
        "SupportedSchemaVersions" => supported_schema_versions: Vec<Version>,
    }
}

hcs_struct! {
    /// Document of HcsModifyServiceSettings.
    pub struct ModificationRequest {
        /// `CpuGroup` or `ContainerCredentialGuard`.
        "PropertyType" => property_type: ModifyPropertyType,
        /// A [`HostProcessorModificationRequest`] or a [`ContainerCredentialGuardOperationRequest`].
        "Settings" => settings: Value,
    }
}

hcs_struct! {
    /// CPU group modification (settings of a `CpuGroup` [`ModificationRequest`]).
    pub struct HostProcessorModificationRequest {
        /// Operation.
        "Operation" => operation: ModifyServiceOperation,
        /// A [`CreateGroupOperation`], [`DeleteGroupOperation`] or [`SetPropertyOperation`].
        "OperationDetails" => operation_details: Value,
    }
}

hcs_struct! {
    /// Create a CPU group (Linux: cpuset partition).
    pub struct CreateGroupOperation {
        /// Group GUID.
        "GroupId" => group_id: String,
        /// Number of logical processors.
        "LogicalProcessorCount" => logical_processor_count: u32,
        /// Logical processor indexes.
        "LogicalProcessors" => logical_processors: Vec<u32>,
    }
}

hcs_struct! {
    /// Delete a CPU group.
    pub struct DeleteGroupOperation {
        /// Group GUID.
        "GroupId" => group_id: String,
    }
}

hcs_struct! {
    /// Set a property of a CPU group.
    pub struct SetPropertyOperation {
        /// Group GUID.
        "GroupId" => group_id: String,
        /// Property code.
        "PropertyCode" => property_code: u32,
        /// Property value.
        "PropertyValue" => property_value: u64,
    }
}

hcs_struct! {
    /// Service property `CpuGroup`.
    pub struct CpuGroupConfigurations {
        /// Groups.
        "CpuGroups" => cpu_groups: Vec<CpuGroupConfig>,
    }
}

hcs_struct! {
    /// One CPU group.
    pub struct CpuGroupConfig {
        /// Group GUID.
        "GroupId" => group_id: String,
        /// Processors.
        "Affinity" => affinity: CpuGroupAffinity,
        /// Properties.
        "GroupProperties" => group_properties: Vec<CpuGroupProperty>,
        /// Hypervisor group id, 2.5.
        "HypervisorGroupId" => hypervisor_group_id: u64,
    }
}

hcs_struct! {
    /// Processors of a CPU group.
    pub struct CpuGroupAffinity {
        /// Count.
        "LogicalProcessorCount" => logical_processor_count: u32,
        /// Indexes.
        "LogicalProcessors" => logical_processors: Vec<u32>,
    }
}

hcs_struct! {
    /// A property of a CPU group.
    pub struct CpuGroupProperty {
        /// Code.
        "PropertyCode" => property_code: u32,
        /// Value.
        "PropertyValue" => property_value: u64,
    }
}

hcs_struct! {
    /// Service property `ProcessorTopology`.
    pub struct ProcessorTopology {
        /// Count.
        "LogicalProcessorCount" => logical_processor_count: u32,
        /// Processors.
        "LogicalProcessors" => logical_processors: Vec<LogicalProcessor>,
    }
}

hcs_struct! {
    /// A host logical processor.
    pub struct LogicalProcessor {
        /// Index.
        "LpIndex" => lp_index: u32,
        /// NUMA node.
        "NodeNumber" => node_number: u8,
        /// Package.
        "PackageId" => package_id: u32,
        /// Core.
        "CoreId" => core_id: u32,
        /// Root VP index.
        "RootVpIndex" => root_vp_index: i32,
        /// Subnodes, 2.4.
        "Subnodes" => subnodes: Vec<Subnode>,
    }
}

hcs_struct! {
    /// A processor subnode, 2.4.
    pub struct Subnode {
        /// Kind.
        "Type" => subnode_type: SubnodeType,
        /// Id.
        "Id" => id: u64,
    }
}

hcs_struct! {
    /// Service property `QoSCapabilities`.
    pub struct QoSCapabilities {
        /// Processor QoS supported.
        "ProcessorQoSSupported" => processor_qos_supported: bool,
    }
}

hcs_struct! {
    /// Processor capabilities of the host (query `ProcessorCapabilities`), 2.5.
    pub struct ProcessorCapabilitiesInfo {
        /// Features.
        "ProcessorFeatures" => processor_features: Vec<ProcessorFeature>,
        /// XSAVE features.
        "XsaveProcessorFeatures" => xsave_processor_features: Vec<XsaveProcessorFeature>,
        /// Cache line flush size.
        "CacheLineFlushSize" => cache_line_flush_size: u64,
        /// Physical address bits.
        "ImplementedPhysicalAddressBits" => implemented_physical_address_bits: u64,
        /// Core sharing.
        "NonArchitecturalCoreSharing" => non_architectural_core_sharing: NonArchitecturalCoreSharing,
    }
}

hcs_struct! {
    /// Processor requirements of a VM, 2.5.
    pub struct VmProcessorRequirements {
        /// Features.
        "ProcessorFeatures" => processor_features: Vec<ProcessorFeature>,
        /// XSAVE features.
        "XsaveProcessorFeatures" => xsave_processor_features: Vec<XsaveProcessorFeature>,
        /// Cache line flush size.
        "CacheLineFlushSize" => cache_line_flush_size: u64,
        /// Physical address bits.
        "ImplementedPhysicalAddressBits" => implemented_physical_address_bits: u64,
        /// Core sharing.
        "NonArchitecturalCoreSharing" => non_architectural_core_sharing: NonArchitecturalCoreSharing,
    }
}

hcs_struct! {
    /// Service property `ContainerCredentialGuard` (Windows-only).
    pub struct ContainerCredentialGuardSystemInfo {
        /// Instances.
        "Instances" => instances: Vec<ContainerCredentialGuardInstance>,
    }
}

hcs_struct! {
    /// A container credential guard instance (Windows-only).
    pub struct ContainerCredentialGuardInstance {
        /// Id.
        "Id" => id: String,
        /// State.
        "CredentialGuard" => credential_guard: ContainerCredentialGuardState,
        /// Socket settings.
        "HvSocketConfig" => hv_socket_config: ContainerCredentialGuardHvSocketServiceConfig,
    }
}

hcs_struct! {
    /// Socket settings of a credential guard instance (Windows-only).
    pub struct ContainerCredentialGuardHvSocketServiceConfig {
        /// Service GUID.
        "ServiceId" => service_id: String,
        /// ACLs.
        "ServiceConfig" => service_config: HvSocketServiceConfig,
    }
}

hcs_struct! {
    /// Settings of a `ContainerCredentialGuard` [`ModificationRequest`] (Windows-only).
    pub struct ContainerCredentialGuardOperationRequest {
        /// Operation.
        "Operation" => operation: ContainerCredentialGuardModifyOperation,
        /// Add or remove request.
        "OperationDetails" => operation_details: Value,
    }
}

hcs_struct! {
    /// Add a credential guard instance (Windows-only).
    pub struct ContainerCredentialGuardAddInstanceRequest {
        /// Id.
        "Id" => id: String,
        /// Credential spec JSON.
        "CredentialSpec" => credential_spec: String,
        /// Transport.
        "Transport" => transport: ContainerCredentialGuardTransport,
    }
}

hcs_struct! {
    /// Remove a credential guard instance (Windows-only).
    pub struct ContainerCredentialGuardRemoveInstanceRequest {
        /// Id.
        "Id" => id: String,
    }
}
