//! Every fixture parses into its type, validates where a validator exists
//! (or is refused only for asking for what this system does not support:
//! `ERROR_NOT_SUPPORTED` from the table of `hcs_schema::fields`), and
//! round-trips. Sources of the fixtures (`tests/fixtures/`):
//!
//! Copied exactly from `MicrosoftDocs/Virtualization-Documentation`
//! (`virtualization/api/hcs/...`), C++ raw strings with the `LR"(` / `)"`
//! wrapper stripped:
//! * `tutorial_vm.json` — `Reference/Tutorial.md` `c_VmConfiguration`. The
//!   published text lacks the opening quote of the `Path` value
//!   (`"Path": c:\\HCS_Test\\utilityvm.vhdx"`); the fixture adds it (the
//!   reference, section 6.1, shows the intended document). The text exactly
//!   as published is `invalid/tutorial_vm_as_published.json`, tested in
//!   `bad_documents.rs`.
//! * `tutorial_query.json` — Tutorial.md `c_VmQuery`.
//! * `tutorial_modify_memory.json` — Tutorial.md `c_modifySetting`.
//! * `operation_completion_sample_empty_vm.json` — `Reference/OperationCompletionSample.md` `c_EmptyVM`.
//! * `compute_system_operation_sample_vm.json` — `Reference/ComputeSystemOperationSample.md` `c_VmConfiguration`.
//! * `compute_system_sample_query.json`, `compute_system_sample_pause.json`,
//!   `compute_system_sample_save.json` — `Reference/ComputeSystemSample.md`
//!   `c_VmQuery`, `c_pauseOption`, `c_saveOption`.
//! * `service_sample_query.json` — `Reference/ServiceSample.md` `c_ServicePropertyQuery`
//!   (its `c_ServiceSettings` is unfinished, invalid JSON:
//!   `invalid/service_sample_modify_unfinished.json`).
//!
//! `SchemaSample.md` holds no JSON documents (only generated C# and Go code),
//! and `Reference/HcsCreateComputeSystemJsonSample.md` shows templates with
//! `<string>` placeholders, not JSON; neither yields a fixture.
//!
//! Copied exactly from other public sources:
//! * `claude_code_42888_result_error.json` — the `ResultError` HCS returned
//!   for 0x80370102, quoted in GitHub issue `anthropics/claude-code#42888`.
//!
//! Documents given in the reference (`/work/shared/reference/hcs-api.md`),
//! placeholders filled in:
//! * `reference_modify_scsi_remove_wsl.json` (5.15, WSL remove),
//!   `reference_modify_guest_request_only.json` (5.15),
//!   `reference_process_modify_console_size.json` and
//!   `reference_process_modify_close_stdin.json` (1.4, HcsModifyProcess; h/w = 24/80),
//!   `reference_crash_options.json` (1.2), `reference_service_query_basic_wsl.json`
//!   and `reference_service_query_processor_capabilities_wsl.json` (1.5, WSL),
//!   `reference_modify_service_cpu_group.json` (6.4, ServiceSample),
//!   `reference_start_options_hcsshim_migration.json` (1.2, hcsshim; SessionId = 1),
//!   `reference_shutdown_options.json` (5.9 fields).
//!
//! Built in the exact shape the clients' code produces (structure and member
//! names from the code, example values):
//! * `hcsshim_lcow_uvm_kernel_direct.json`, `hcsshim_lcow_uvm_vhd_uefi_console.json` —
//!   `microsoft/hcsshim` `internal/uvm/create_lcow.go` (`CreateLCOW`: kernel-direct
//!   with initrd; UEFI VmbFs boot of a rootfs VHD on PMem with a COM1 console pipe),
//!   Go `encoding/json` member order, `omitempty` applied.
//! * `hcsshim_lcow_container_hosted_system.json` — hcsshim `linuxComputeSystem` /
//!   `linuxHostedSystem` (`internal/hcsoci/hcsdoc_lcow.go`), with a small OCI spec.
//! * `hcsshim_lcow_process_parameters.json` — hcsshim `lcowProcessParameters`
//!   (`ProcessParameters` + `OciProcess`); `hcsshim_uvm_process_parameters.json` —
//!   `CommandArgs` + `CreateInUtilityVM`; `hcsshim_wcow_process_parameters.json` —
//!   `internal/hcs/schema2/process_parameters.go` with `CommandLine`.
//! * `hcsshim_signal_lcow.json` (`SignalProcessOptionsLCOW`, integer) and
//!   `hcsshim_signal_wcow.json` (`SignalProcessOptionsWCOW`, `CtrlC`) —
//!   `internal/protocol/guestresource/resources.go`.
//! * `hcsshim_wcow_argon_container.json` — a process-isolated container in the
//!   shape of hcsshim's `internal/hcs/schema2/container.go`.
//! * `wsl_vm_reconstructed.json` — `microsoft/WSL` `WslCoreVm::GenerateConfigJson`
//!   serialised through `src/windows/common/hcs_schema.h` (nlohmann, sorted keys).
//! * `wsl_modify_plan9_share_reconstructed.json`, `wsl_modify_network_adapter_reconstructed.json` —
//!   `ModifySettingRequest<Plan9Share>` / `<NetworkAdapter>` of `hcs_schema.h`.
//!
//! Linux extensions of this project:
//! * `linux_container_user_namespace.json` (`Container.UserNamespace`),
//!   `linux_shutdown_options_timeout.json` (`ShutdownOptions.TimeoutInMs`).

mod common;

use std::collections::BTreeSet;

use common::{fixture, round_trip, valid_fixture_names};
use hcs_schema::container::Container;
use hcs_schema::enums::*;
use hcs_schema::process::ProcessParameters;
use hcs_schema::requests::*;
use hcs_schema::results::ResultError;
use hcs_schema::service::{ModificationRequest, ServicePropertyQuery};
use hcs_schema::virtual_machine::devices::{NetworkAdapter, Plan9Share};
use hcs_schema::*;

/// Every fixture a test below reads; `every_fixture_is_covered` checks the list.
const COVERED: &[&str] = &[
    "claude_code_42888_result_error.json",
    "compute_system_operation_sample_vm.json",
    "compute_system_sample_pause.json",
    "compute_system_sample_query.json",
    "compute_system_sample_save.json",
    "hcsshim_lcow_container_hosted_system.json",
    "hcsshim_lcow_process_parameters.json",
    "hcsshim_lcow_uvm_kernel_direct.json",
    "hcsshim_lcow_uvm_vhd_uefi_console.json",
    "hcsshim_signal_lcow.json",
    "hcsshim_signal_wcow.json",
    "hcsshim_uvm_process_parameters.json",
    "hcsshim_wcow_argon_container.json",
    "hcsshim_wcow_process_parameters.json",
    "linux_container_user_namespace.json",
    "linux_shutdown_options_timeout.json",
    "operation_completion_sample_empty_vm.json",
    "reference_crash_options.json",
    "reference_modify_guest_request_only.json",
    "reference_modify_scsi_remove_wsl.json",
    "reference_modify_service_cpu_group.json",
    "reference_process_modify_close_stdin.json",
    "reference_process_modify_console_size.json",
    "reference_service_query_basic_wsl.json",
    "reference_service_query_processor_capabilities_wsl.json",
    "reference_shutdown_options.json",
    "reference_start_options_hcsshim_migration.json",
    "service_sample_query.json",
    "tutorial_modify_memory.json",
    "tutorial_query.json",
    "tutorial_vm.json",
    "wsl_modify_network_adapter_reconstructed.json",
    "wsl_modify_plan9_share_reconstructed.json",
    "wsl_vm_reconstructed.json",
];

#[test]
fn every_fixture_is_covered() {
    let on_disk: BTreeSet<String> = valid_fixture_names().into_iter().collect();
    let covered: BTreeSet<String> = COVERED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, covered,
        "fixtures on disk and fixtures tested differ"
    );
}

/// A document is understood: valid, or refused only because it asks for a
/// member this system does not support (never `HCS_E_INVALID_JSON`).
fn understood(name: &str, checked: Result<(), hcs_errors::HcsError>) {
    if let Err(e) = checked {
        assert!(
            e.hresult == hcs_errors::HResult::ERROR_NOT_SUPPORTED
                && e.message.contains("is not supported"),
            "{name} does not validate: {e}"
        );
    }
}

fn compute_system(name: &str) -> ComputeSystem {
    let cs: ComputeSystem = round_trip(name, "ComputeSystem");
    understood(name, cs.validate());
    cs
}

#[test]
fn tutorial_vm() {
    let cs = compute_system("tutorial_vm.json");
    assert_eq!(cs.owner.as_deref(), Some("Sample"));
    assert_eq!(cs.schema_version, Some(Version::new(2, 1)));
    assert_eq!(cs.should_terminate_on_last_handle_closed, Some(true));
    let vm = cs.virtual_machine.expect("VirtualMachine");
    let boot = vm
        .chipset
        .and_then(|c| c.uefi)
        .and_then(|u| u.boot_this)
        .expect("BootThis");
    assert_eq!(boot.device_type, Some(UefiBootDevice::ScsiDrive));
    assert_eq!(boot.device_path.as_deref(), Some("Primary disk"));
    assert_eq!(boot.disk_number, Some(0));
    let topology = vm.compute_topology.expect("ComputeTopology");
    let memory = topology.memory.expect("Memory");
    assert_eq!(memory.size_in_mb, Some(2048));
    assert_eq!(memory.backing, Some(MemoryBackingType::Virtual));
    assert_eq!(topology.processor.and_then(|p| p.count), Some(2));
    let scsi = vm.devices.and_then(|d| d.scsi).expect("Scsi");
    let attachment = scsi
        .get("Primary disk")
        .and_then(|s| s.attachments.as_ref())
        .and_then(|a| a.get(&0))
        .expect("LUN 0");
    assert_eq!(
        attachment.attachment_type,
        Some(AttachmentType::VirtualDisk)
    );
    assert_eq!(
        attachment.path.as_deref(),
        Some(r"c:\HCS_Test\utilityvm.vhdx")
    );
}

#[test]
fn operation_completion_sample_empty_vm() {
    let cs = compute_system("operation_completion_sample_empty_vm.json");
    let vm = cs.virtual_machine.expect("VirtualMachine");
    assert_eq!(vm.chipset.and_then(|c| c.uefi), Some(Default::default()));
    let memory = vm.compute_topology.and_then(|t| t.memory).expect("Memory");
    assert_eq!(memory.backing, Some(MemoryBackingType::Physical));
    assert_eq!(memory.size_in_mb, Some(1024));
}

#[test]
fn compute_system_operation_sample_vm() {
    let cs = compute_system("compute_system_operation_sample_vm.json");
    let path = cs
        .virtual_machine
        .and_then(|vm| vm.devices)
        .and_then(|d| d.scsi)
        .and_then(|s| s.get("Primary disk").cloned())
        .and_then(|s| s.attachments)
        .and_then(|a| a.get(&0).cloned())
        .and_then(|a| a.path);
    assert_eq!(
        path.as_deref(),
        Some(r"e:\schema-test\image\utilityvm.vhdx")
    );
}

#[test]
fn property_queries() {
    for name in ["tutorial_query.json", "compute_system_sample_query.json"] {
        let q: SystemPropertyQuery = round_trip(name, "System_PropertyQuery");
        assert_eq!(q.property_types, Some(vec![SystemPropertyType::Memory]));
    }
    let q: ServicePropertyQuery = round_trip("service_sample_query.json", "Service_PropertyQuery");
    assert_eq!(q.property_types, Some(vec![GetPropertyType::Memory]));
    let q: ServicePropertyQuery = round_trip(
        "reference_service_query_basic_wsl.json",
        "Service_PropertyQuery",
    );
    assert_eq!(q.property_types, Some(vec![GetPropertyType::Basic]));
    let q: ServicePropertyQuery = round_trip(
        "reference_service_query_processor_capabilities_wsl.json",
        "Service_PropertyQuery",
    );
    assert!(q
        .property_queries
        .is_some_and(|m| m.contains_key("ProcessorCapabilities")));
}

#[test]
fn modify_requests() {
    let m: ModifySettingRequest = round_trip("tutorial_modify_memory.json", "ModifySettingRequest");
    understood("m", m.validate());
    assert_eq!(
        m.resource_path.as_deref(),
        Some("VirtualMachine/ComputeTopology/Memory/SizeInMB")
    );
    assert_eq!(m.request_type, Some(ModifyRequestType::Update));
    assert_eq!(m.settings, Some(serde_json::json!(4096)));

    let m: ModifySettingRequest = round_trip(
        "reference_modify_scsi_remove_wsl.json",
        "ModifySettingRequest",
    );
    understood("m", m.validate());
    assert_eq!(m.request_type, Some(ModifyRequestType::Remove));
    assert_eq!(m.settings, None);

    let m: ModifySettingRequest = round_trip(
        "reference_modify_guest_request_only.json",
        "ModifySettingRequest",
    );
    understood("m", m.validate());
    let guest: GuestModifySettingRequest =
        from_json(&to_json(&m.guest_request), "GuestModifySettingRequest").expect("guest request");
    assert_eq!(
        guest.resource_type,
        Some(ModifyResourceType::MappedVirtualDisk)
    );

    let m: ModifySettingRequest = round_trip(
        "wsl_modify_plan9_share_reconstructed.json",
        "ModifySettingRequest",
    );
    understood("m", m.validate());
    let share: Plan9Share =
        from_json(&to_json(&m.settings), "Plan9Share").expect("Plan9Share settings");
    assert_eq!(share.port, Some(50001));
    assert_eq!(share.flags, Some(100));

    let m: ModifySettingRequest = round_trip(
        "wsl_modify_network_adapter_reconstructed.json",
        "ModifySettingRequest",
    );
    understood("m", m.validate());
    let nic: NetworkAdapter =
        from_json(&to_json(&m.settings), "NetworkAdapter").expect("NetworkAdapter settings");
    assert_eq!(nic.is_connected, Some(true));
    assert_eq!(nic.mac_address.as_deref(), Some("00-15-5D-52-C0-10"));
}

#[test]
fn operation_options() {
    let p: PauseOptions = round_trip("compute_system_sample_pause.json", "PauseOptions");
    assert_eq!(p.suspension_level, Some(PauseSuspensionLevel::Suspend));
    assert_eq!(
        p.hosted_notification.and_then(|n| n.reason),
        Some(PauseReason::Save)
    );

    let s: SaveOptions = round_trip("compute_system_sample_save.json", "SaveOptions");
    assert_eq!(s.save_type, Some(SaveType::ToFile));
    assert_eq!(
        s.save_state_file_path.as_deref(),
        Some(r"c:\HCS_Test\save.vmrs")
    );

    let c: CrashOptions = round_trip("reference_crash_options.json", "CrashOptions");
    assert_eq!(c.crash_type, Some(CrashType::CrashGuest));

    let s: ShutdownOptions = round_trip("reference_shutdown_options.json", "ShutdownOptions");
    assert_eq!(s.mechanism, Some(ShutdownMechanism::GuestConnection));
    assert_eq!(s.shutdown_type, Some(ShutdownType::Shutdown));

    let s: ShutdownOptions = round_trip("linux_shutdown_options_timeout.json", "ShutdownOptions");
    assert_eq!(s.timeout_in_ms, Some(30_000));

    let s: StartOptions = round_trip(
        "reference_start_options_hcsshim_migration.json",
        "StartOptions",
    );
    assert!(s.destination_migration_options.is_some());
}

#[test]
fn process_documents() {
    let m: ProcessModifyRequest = round_trip(
        "reference_process_modify_console_size.json",
        "ProcessModifyRequest",
    );
    understood("m", m.validate());
    assert_eq!(m.console_size.and_then(|c| c.width), Some(80));
    let m: ProcessModifyRequest = round_trip(
        "reference_process_modify_close_stdin.json",
        "ProcessModifyRequest",
    );
    understood("m", m.validate());
    assert_eq!(
        m.close_handle.and_then(|c| c.handle),
        Some(StdHandle::StdIn)
    );

    let s: SignalProcessOptions = round_trip("hcsshim_signal_lcow.json", "SignalProcessOptions");
    assert_eq!(s.signal, Some(Signal::Number(15)));
    assert_eq!(s.signal.map(Signal::posix_number), Some(15));
    let s: SignalProcessOptions = round_trip("hcsshim_signal_wcow.json", "SignalProcessOptions");
    assert_eq!(s.signal, Some(Signal::Console(ProcessSignal::CtrlC)));
    assert_eq!(s.signal.map(Signal::posix_number), Some(2));

    let p: ProcessParameters =
        round_trip("hcsshim_lcow_process_parameters.json", "ProcessParameters");
    understood("p", p.validate());
    assert_eq!(p.argv(), ["/bin/sh"]);
    let p: ProcessParameters =
        round_trip("hcsshim_uvm_process_parameters.json", "ProcessParameters");
    understood("p", p.validate());
    assert_eq!(p.create_in_utility_vm, Some(true));
    assert_eq!(p.argv(), ["ls", "-l", "/run/gcs"]);
    let p: ProcessParameters =
        round_trip("hcsshim_wcow_process_parameters.json", "ProcessParameters");
    understood("p", p.validate());
    assert_eq!(p.console_size, Some([24, 80]));
    assert_eq!(p.argv(), ["cmd", "/c", "echo hello"]);
}

#[test]
fn hcsshim_lcow_documents() {
    let cs = compute_system("hcsshim_lcow_uvm_kernel_direct.json");
    let vm = cs.virtual_machine.expect("VirtualMachine");
    let direct = vm
        .chipset
        .and_then(|c| c.linux_kernel_direct)
        .expect("LinuxKernelDirect");
    assert!(direct
        .kernel_cmd_line
        .as_deref()
        .is_some_and(|c| c.contains("/bin/gcs")));
    assert_eq!(
        direct.init_rd_path.as_deref(),
        Some(r"C:\Program Files\Linux Containers\initrd.img")
    );
    assert_eq!(vm.guest_connection.and_then(|g| g.use_vsock), Some(true));

    let cs = compute_system("hcsshim_lcow_uvm_vhd_uefi_console.json");
    let devices = cs
        .virtual_machine
        .and_then(|vm| vm.devices)
        .expect("Devices");
    assert_eq!(
        devices
            .com_ports
            .and_then(|p| p.get(&0).cloned())
            .and_then(|p| p.named_pipe)
            .as_deref(),
        Some(r"\\.\pipe\vmpipe")
    );
    let pmem = devices.virtual_pmem.expect("VirtualPMem");
    assert_eq!(pmem.maximum_count, Some(64));
    assert_eq!(
        pmem.devices
            .and_then(|d| d.get(&0).cloned())
            .and_then(|d| d.image_format),
        Some(VirtualPMemImageFormat::Vhd1)
    );

    let cs = compute_system("hcsshim_lcow_container_hosted_system.json");
    assert!(cs
        .hosted_system
        .is_some_and(|h| h.get("OciSpecification").is_some()));
}

#[test]
fn hcsshim_wcow_container() {
    let cs = compute_system("hcsshim_wcow_argon_container.json");
    let c: Container = cs.container.expect("Container");
    assert_eq!(c.storage.and_then(|s| s.layers).map(|l| l.len()), Some(2));
}

#[test]
fn wsl_vm() {
    let cs = compute_system("wsl_vm_reconstructed.json");
    let vm = cs.virtual_machine.expect("VirtualMachine");
    let memory = vm.compute_topology.and_then(|t| t.memory).expect("Memory");
    assert_eq!(memory.hosting_process_name_suffix.as_deref(), Some("WSL"));
    assert_eq!(memory.backing_page_size, Some(MemoryBackingPageSize::Small));
    let ports = vm
        .devices
        .and_then(|d| d.virtio_serial)
        .and_then(|v| v.ports)
        .expect("Ports");
    assert_eq!(ports.get(&0).and_then(|p| p.console_support), Some(true));
}

#[test]
fn linux_user_namespace() {
    let cs = compute_system("linux_container_user_namespace.json");
    let userns = cs
        .container
        .and_then(|c| c.user_namespace)
        .expect("UserNamespace");
    let uid = userns.uid_mappings.expect("UidMappings");
    assert_eq!(uid.len(), 1);
    assert_eq!(uid.first().and_then(|m| m.host_id), Some(100_000));
    assert_eq!(uid.first().and_then(|m| m.size), Some(65_536));
}

#[test]
fn result_error_from_hcs() {
    let e: ResultError = round_trip("claude_code_42888_result_error.json", "ResultError");
    assert_eq!(e.error.map(|h| h as u32), Some(0x8037_0102));
    let events = e.error_events.expect("ErrorEvents");
    assert_eq!(events.first().and_then(|ev| ev.event_id), Some(11008));
    let data = events.first().and_then(|ev| ev.data.clone()).expect("Data");
    assert_eq!(data.len(), 3);
    assert!(data
        .iter()
        .all(|d| d.data_type == Some(EventDataType::String)));
}

#[test]
fn service_modify_cpu_group() {
    let m: ModificationRequest = round_trip(
        "reference_modify_service_cpu_group.json",
        "ModificationRequest",
    );
    assert_eq!(m.property_type, Some(ModifyPropertyType::CpuGroup));
    let settings: hcs_schema::service::HostProcessorModificationRequest =
        from_json(&to_json(&m.settings), "HostProcessorModificationRequest").expect("settings");
    assert_eq!(
        settings.operation,
        Some(ModifyServiceOperation::CreateGroup)
    );
    let details: hcs_schema::service::CreateGroupOperation = from_json(
        &to_json(&settings.operation_details),
        "CreateGroupOperation",
    )
    .expect("details");
    assert_eq!(details.logical_processors, Some(vec![0, 1]));
}

#[test]
fn fixtures_are_not_empty() {
    for name in valid_fixture_names() {
        assert!(!fixture(&name).trim().is_empty(), "{name}");
    }
}
