//! Containers (reference section 5.6) and the Linux user-namespace extension.

use hcs_errors::HcsError;
use serde_json::Value;

use crate::enums::{
    CacheMode, ContainerCredentialGuardTransport, ContainerIsolationType, DeviceType,
    MappedPipePathType, PathType, RegistryHive, RegistryValueType,
};
use crate::validate::{self, error, index, member};
use crate::virtual_machine::devices::HvSocketSystemConfig;
use crate::virtual_machine::StorageQoS;

hcs_struct! {
    /// A container (Windows: silo; Linux: namespaces + cgroup + overlayfs).
    pub struct Container {
        /// Guest OS settings (host name).
        "GuestOs" => guest_os: GuestOs,
        /// Layer chain and scratch directory (Linux: overlayfs).
        "Storage" => storage: Storage,
        /// Bind mounts from the host.
        "MappedDirectories" => mapped_directories: Vec<MappedDirectory>,
        /// Host pipes projected into the container (Linux: unix sockets).
        "MappedPipes" => mapped_pipes: Vec<MappedPipe>,
        /// Memory limit (Linux: cgroup `memory.max`).
        "Memory" => memory: ContainerMemory,
        /// CPU limits (Linux: `cpu.max` / `cpu.weight` / cpuset).
        "Processor" => processor: ContainerProcessor,
        /// Network namespace, endpoints and DNS.
        "Networking" => networking: Networking,
        /// Hyper-V socket ACLs (Windows-only).
        "HvSocket" => hv_socket: ContainerHvSocket,
        /// gMSA credential forwarding (Windows-only), 2.1.
        "ContainerCredentialGuard" => container_credential_guard: ContainerCredentialGuardState,
        /// Registry edits (Windows-only).
        "RegistryChanges" => registry_changes: RegistryChanges,
        /// Devices assigned by interface class or instance path, 2.1.
        "AssignedDevices" => assigned_devices: Vec<Device>,
        /// Windows-only device-extension namespace (`ContainersDef_Device`, 2.3), kept opaque.
        "AdditionalDeviceNamespace" => additional_device_namespace: Value,
        /// Undocumented (hcsshim): `HostProcess` for privileged containers.
        "IsolationType" => isolation_type: ContainerIsolationType,
        /// Linux extension, not in Microsoft's schema: when present the
        /// container gets a user namespace with these id mappings.
        "UserNamespace" => user_namespace: UserNamespace,
        /// Linux extension, not in Microsoft's schema: the most processes
        /// (and threads) the container may have at once, its cgroup's
        /// `pids.max`. Absent: [`DEFAULT_PIDS_LIMIT`]; `0` or `-1`: no limit
        /// (only when asked for); otherwise 1 to [`MAX_PIDS_LIMIT`]. Changed on
        /// a running container by the modify ResourcePath `Container/PidsLimit`.
        "PidsLimit" => pids_limit: i64,
        /// LCOW extension (hcsshim's Linux container document): the OCI
        /// bundle directory; relative paths of `OciSpecification` resolve here.
        "OciBundlePath" => oci_bundle_path: String,
        /// LCOW extension (hcsshim's Linux container document): a whole OCI
        /// runtime spec (config.json) describing the container. When present
        /// it replaces `Storage`, `MappedDirectories`, `MappedPipes`,
        /// `GuestOs`, `Memory`, `Processor`, `UserNamespace` and `Networking`
        /// (which must then be absent); its `process` is started by
        /// HcsCreateProcess with `OciProcess`.
        "OciSpecification" => oci_specification: Value,
    }
}

/// `Container.PidsLimit` when the document gives none. Bounded, so a fork
/// bomb in a container cannot exhaust the host's pids (32768 by default on
/// many hosts); twice podman's default of 2048, since threads count too and
/// a JVM or a parallel build can have thousands.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// The largest `Container.PidsLimit`: the kernel's `PID_MAX_LIMIT` on 64-bit
/// hosts (`pids.max` refuses more).
pub const MAX_PIDS_LIMIT: i64 = 4_194_304;

hcs_struct! {
    /// Guest OS settings of a container.
    pub struct GuestOs {
        /// Host name (Linux: UTS namespace).
        "HostName" => host_name: String,
    }
}

hcs_struct! {
    /// Storage of a container: read-only layers plus the writable scratch.
    pub struct Storage {
        /// Read-only layers, top-most parent first and base layer last (the order of overlayfs `lowerdir=`).
        "Layers" => layers: Vec<Layer>,
        /// Scratch (writable) layer directory.
        "Path" => path: String,
        /// Storage QoS limits.
        "QoS" => qos: StorageQoS,
        /// Undocumented (hcsshim): root path of a HostProcess container.
        "PrivilegedContainerRootPath" => privileged_container_root_path: String,
    }
}

hcs_struct! {
    /// One read-only layer.
    pub struct Layer {
        /// Layer GUID.
        "Id" => id: String,
        /// Layer root directory (or, for LCOW, a VHD file).
        "Path" => path: String,
        /// How `Path` is interpreted, 2.1.
        "PathType" => path_type: PathType,
        /// Cache policy.
        "Cache" => cache: CacheMode,
    }
}

hcs_struct! {
    /// A host directory bind-mounted into the container.
    pub struct MappedDirectory {
        /// Host directory.
        "HostPath" => host_path: String,
        /// How `HostPath` is interpreted, 2.1.
        "HostPathType" => host_path_type: PathType,
        /// Destination inside the container.
        "ContainerPath" => container_path: String,
        /// Read-only bind.
        "ReadOnly" => read_only: bool,
        /// Cloud-files support, 2.3.
        "SupportCloudFiles" => support_cloud_files: bool,
    }
}

hcs_struct! {
    /// A host pipe projected into the container.
    pub struct MappedPipe {
        /// Pipe name inside the container.
        "ContainerPipeName" => container_pipe_name: String,
        /// Host pipe path.
        "HostPath" => host_path: String,
        /// How `HostPath` is interpreted, 2.1.
        "HostPathType" => host_path_type: MappedPipePathType,
    }
}

hcs_struct! {
    /// Memory of a container (`Container_Memory`).
    pub struct ContainerMemory {
        /// Memory limit in MiB, 2.1.
        "SizeInMB" => size_in_mb: u64,
    }
}

hcs_struct! {
    /// CPU limits of a container (`Container_Processor`); the three members are mutually exclusive.
    pub struct ContainerProcessor {
        /// Fraction of the host expressed as a CPU count.
        "Count" => count: u32,
        /// Relative weight 0..=10000.
        "Weight" => weight: i64,
        /// Cycles per 10 000 (percent × 100), 0..=10000.
        "Maximum" => maximum: i64,
    }
}

hcs_struct! {
    /// Networking of a container.
    pub struct Networking {
        /// Allow single-label DNS names.
        "AllowUnqualifiedDnsQuery" => allow_unqualified_dns_query: bool,
        /// Comma-separated DNS suffixes.
        "DnsSearchList" => dns_search_list: String,
        /// Share the network stack of another container.
        "NetworkSharedContainerName" => network_shared_container_name: String,
        /// Network namespace id (Windows: HNS namespace GUID; Linux: netns name or path).
        "Namespace" => namespace: String,
        /// Endpoint GUIDs to attach.
        "NetworkAdapters" => network_adapters: Vec<String>,
    }
}

hcs_struct! {
    /// Hyper-V socket settings of a container (`Container_HvSocket`, Windows-only).
    pub struct ContainerHvSocket {
        /// Socket ACLs.
        "Config" => config: HvSocketSystemConfig,
        /// Enable PowerShell Direct.
        "EnablePowerShellDirect" => enable_power_shell_direct: bool,
    }
}

hcs_struct! {
    /// A device assigned to a container.
    pub struct Device {
        /// How the device is identified, 2.2.
        "Type" => device_type: DeviceType,
        /// Interface class GUID, 2.1.
        "InterfaceClassGuid" => interface_class_guid: String,
        /// Location path, 2.2.
        "LocationPath" => location_path: String,
    }
}

hcs_struct! {
    /// Guest request combining layers and scratch at a container root.
    pub struct CombinedLayers {
        /// Read-only layers.
        "Layers" => layers: Vec<Layer>,
        /// Scratch path (ignored for Windows guests).
        "ScratchPath" => scratch_path: String,
        /// Where the combined root appears.
        "ContainerRootPath" => container_root_path: String,
    }
}

hcs_struct! {
    /// A virtual disk mapped into a container (guest request), 2.1.
    pub struct MappedVirtualDisk {
        /// Mount path in the container.
        "ContainerPath" => container_path: String,
        /// SCSI LUN.
        "Lun" => lun: u8,
    }
}

hcs_struct! {
    /// A CimFS image mount (Windows), 2.3.
    pub struct CimMount {
        /// Image path.
        "ImagePath" => image_path: String,
        /// File system name.
        "FileSystemName" => file_system_name: String,
        /// Volume GUID.
        "VolumeGuid" => volume_guid: String,
        /// Mount flags, 2.5.
        "MountFlags" => mount_flags: u32,
    }
}

hcs_struct! {
    /// Registry edits applied at start (Windows-only).
    pub struct RegistryChanges {
        /// Values to add.
        "AddValues" => add_values: Vec<RegistryValue>,
        /// Keys to delete.
        "DeleteKeys" => delete_keys: Vec<RegistryKey>,
    }
}

hcs_struct! {
    /// A registry key (Windows-only).
    pub struct RegistryKey {
        /// Hive.
        "Hive" => hive: RegistryHive,
        /// Key name.
        "Name" => name: String,
        /// Volatile key.
        "Volatile" => volatile: bool,
    }
}

hcs_struct! {
    /// A registry value (Windows-only).
    pub struct RegistryValue {
        /// Key of the value.
        "Key" => key: RegistryKey,
        /// Value name.
        "Name" => name: String,
        /// Value type.
        "Type" => value_type: RegistryValueType,
        /// String data.
        "StringValue" => string_value: String,
        /// Binary data (base64).
        "BinaryValue" => binary_value: String,
        /// DWORD data.
        "DWordValue" => dword_value: u32,
        /// QWORD data.
        "QWordValue" => qword_value: u64,
        /// Custom type code.
        "CustomType" => custom_type: u32,
    }
}

hcs_struct! {
    /// Registry flush state (Windows-only), 2.1.
    pub struct RegistryFlushState {
        /// Whether flushing is enabled.
        "Enabled" => enabled: bool,
    }
}

hcs_struct! {
    /// Container credential guard state (Windows gMSA), 2.1.
    pub struct ContainerCredentialGuardState {
        /// Authentication cookie.
        "Cookie" => cookie: String,
        /// RPC endpoint name.
        "RpcEndpoint" => rpc_endpoint: String,
        /// Transport.
        "Transport" => transport: ContainerCredentialGuardTransport,
        /// Credential spec JSON.
        "CredentialSpec" => credential_spec: String,
    }
}

hcs_struct! {
    /// Linux extension, not in Microsoft's schema: the id mappings of the
    /// container's user namespace (written to `/proc/<pid>/uid_map` and `gid_map`).
    pub struct UserNamespace {
        /// User id mappings.
        "UidMappings" => uid_mappings: Vec<IdMapping>,
        /// Group id mappings.
        "GidMappings" => gid_mappings: Vec<IdMapping>,
    }
}

hcs_struct! {
    /// Linux extension, not in Microsoft's schema: one line of a uid/gid map:
    /// `Size` ids starting at `ContainerId` inside map to ids starting at `HostId` outside.
    pub struct IdMapping {
        /// First id inside the container.
        "ContainerId" => container_id: u32,
        /// First id on the host.
        "HostId" => host_id: u32,
        /// Number of ids, at least 1.
        "Size" => size: u32,
    }
}

/// Most CPUs a container's `Processor.Count` may name: Linux's largest
/// `NR_CPUS` (the quota is capped at the host's CPUs anyway).
pub const MAX_CONTAINER_PROCESSOR_COUNT: u32 = 8192;

impl Container {
    /// Checks of a container found at `path` of a `document`: layers and
    /// mapped directories have paths, processor limits are in range, user
    /// namespace mappings are complete, non-empty, in range and do not overlap.
    pub(crate) fn validate_at(&self, document: &str, path: &str) -> Result<(), HcsError> {
        if let Some(storage) = &self.storage {
            let storage_path = member(path, "Storage");
            for (i, layer) in storage.layers.iter().flatten().enumerate() {
                let layer_path = member(&index(&member(&storage_path, "Layers"), i), "Path");
                validate::require_non_empty(
                    document,
                    &layer_path,
                    layer.path.as_deref(),
                    "every layer needs a path",
                )?;
                validate::check_no_nul(
                    document,
                    &layer_path,
                    layer.path.as_deref().unwrap_or_default(),
                )?;
            }
            if let Some(p) = &storage.path {
                validate::check_no_nul(document, &member(&storage_path, "Path"), p)?;
            }
        }
        for (i, dir) in self.mapped_directories.iter().flatten().enumerate() {
            let base = index(&member(path, "MappedDirectories"), i);
            for (name, value) in [
                ("HostPath", &dir.host_path),
                ("ContainerPath", &dir.container_path),
            ] {
                let p = member(&base, name);
                validate::require_non_empty(
                    document,
                    &p,
                    value.as_deref(),
                    "a mapped directory needs both paths",
                )?;
                validate::check_no_nul(document, &p, value.as_deref().unwrap_or_default())?;
            }
        }
        if let Some(name) = self.guest_os.as_ref().and_then(|g| g.host_name.as_deref()) {
            validate::check_host_name(
                document,
                &member(&member(path, "GuestOs"), "HostName"),
                name,
            )?;
        }
        if let Some(cpu) = &self.processor {
            let base = member(path, "Processor");
            if let Some(count) = cpu.count {
                validate::check_range(
                    document,
                    &member(&base, "Count"),
                    count.into(),
                    1..=MAX_CONTAINER_PROCESSOR_COUNT.into(),
                    "CPUs of the host, at most the most Linux supports",
                )?;
            }
            for (name, value) in [("Weight", cpu.weight), ("Maximum", cpu.maximum)] {
                if let Some(v) = value {
                    if !(0..=10_000).contains(&v) {
                        return Err(error(
                            document,
                            &member(&base, name),
                            format!("{v} is out of range; expected 0..=10000"),
                        ));
                    }
                }
            }
        }
        if let Some(spec) = &self.oci_specification {
            if !spec.is_object() {
                return Err(error(
                    document,
                    &member(path, "OciSpecification"),
                    "must be an OCI runtime spec (a JSON object)",
                ));
            }
        }
        if let Some(bundle) = &self.oci_bundle_path {
            let p = member(path, "OciBundlePath");
            validate::require_non_empty(
                document,
                &p,
                Some(bundle.as_str()),
                "the bundle directory of OciSpecification",
            )?;
            validate::check_no_nul(document, &p, bundle)?;
        }
        if let Some(n) = self.pids_limit {
            if !(n == -1 || (0..=MAX_PIDS_LIMIT).contains(&n)) {
                return Err(error(
                    document,
                    &member(path, "PidsLimit"),
                    format!(
                        "{n} is out of range; expected 1..={MAX_PIDS_LIMIT}, or 0 or -1 for no limit"
                    ),
                ));
            }
        }
        if let Some(userns) = &self.user_namespace {
            let base = member(path, "UserNamespace");
            check_id_mappings(
                document,
                &member(&base, "UidMappings"),
                userns.uid_mappings.as_deref(),
            )?;
            check_id_mappings(
                document,
                &member(&base, "GidMappings"),
                userns.gid_mappings.as_deref(),
            )?;
        }
        Ok(())
    }
}

/// Every mapping complete, `Size >= 1`, ranges within u32 and not overlapping
/// on either side (the kernel refuses overlapping maps).
fn check_id_mappings(
    document: &str,
    path: &str,
    mappings: Option<&[IdMapping]>,
) -> Result<(), HcsError> {
    let mappings = mappings.unwrap_or_default();
    let mut ranges: Vec<(usize, u64, u64, u64)> = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        let at = index(path, i);
        let (Some(inside), Some(outside), Some(size)) = (m.container_id, m.host_id, m.size) else {
            let missing: Vec<&str> = [
                ("ContainerId", m.container_id),
                ("HostId", m.host_id),
                ("Size", m.size),
            ]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
            return Err(error(
                document,
                &at,
                format!(
                    "missing {}; every mapping needs ContainerId, HostId and Size",
                    missing.join(", ")
                ),
            ));
        };
        if size == 0 {
            return Err(error(
                document,
                &member(&at, "Size"),
                "is 0; a mapping must cover at least one id",
            ));
        }
        for (name, start) in [("ContainerId", inside), ("HostId", outside)] {
            if u64::from(start) + u64::from(size) > 1u64 << 32 {
                return Err(error(
                    document,
                    &at,
                    format!("{name} {start} + Size {size} goes past the largest id 4294967295"),
                ));
            }
        }
        ranges.push((i, u64::from(inside), u64::from(outside), u64::from(size)));
    }
    for (a_pos, a) in ranges.iter().enumerate() {
        for b in ranges.iter().skip(a_pos + 1) {
            let overlap = |x: u64, y: u64| x < y + b.3 && y < x + a.3;
            if overlap(a.1, b.1) {
                return Err(error(
                    document,
                    &index(path, b.0),
                    format!("container ids overlap those of mapping [{}]", a.0),
                ));
            }
            if overlap(a.2, b.2) {
                return Err(error(
                    document,
                    &index(path, b.0),
                    format!("host ids overlap those of mapping [{}]", a.0),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), HcsError> {
        let c: Container = serde_json::from_str(json).expect("parses");
        c.validate_at("ComputeSystem", "$.Container")
    }

    #[test]
    fn oci_specification_must_be_an_object() {
        check(r#"{"OciSpecification": {"ociVersion": "1.0.2"}, "OciBundlePath": "/b"}"#).unwrap();
        let e = check(r#"{"OciSpecification": "config.json"}"#).unwrap_err();
        assert!(
            e.message.contains("$.Container.OciSpecification"),
            "{}",
            e.message
        );
        let e = check(r#"{"OciSpecification": {}, "OciBundlePath": ""}"#).unwrap_err();
        assert!(
            e.message.contains("$.Container.OciBundlePath"),
            "{}",
            e.message
        );
    }
}
