//! Serialising result documents gives exactly the HCS member names, and
//! absent members are left out.

use std::collections::BTreeMap;

use hcs_schema::enums::*;
use hcs_schema::properties::*;
use hcs_schema::results::*;
use hcs_schema::*;

#[test]
fn process_status() {
    let status = ProcessStatus {
        process_id: Some(42),
        exited: Some(true),
        exit_code: Some(3),
        last_wait_result: Some(0),
    };
    assert_eq!(
        to_json(&status),
        r#"{"ProcessId":42,"Exited":true,"ExitCode":3,"LastWaitResult":0}"#
    );
    let running = ProcessStatus {
        process_id: Some(7),
        exited: Some(false),
        ..Default::default()
    };
    assert_eq!(to_json(&running), r#"{"ProcessId":7,"Exited":false}"#);
}

#[test]
fn system_exit_status() {
    let status = SystemExitStatus {
        status: Some(0x8037_0106_u32 as i32),
        exit_type: Some(NotificationType::UnexpectedExit),
        attribution: Some(vec![
            AttributionRecord {
                worker_exit: Some(WorkerExit {
                    exit_code: Some(137),
                    exit_type: Some(WorkerExitType::UnexpectedStop),
                    detail: Some(WorkerExitDetail::ProcessUnexpectedExit),
                    initiator: Some(ExitInitiator::Internal),
                }),
                ..Default::default()
            },
            AttributionRecord {
                inject_non_maskable_interrupt: Some(InjectNonMaskableInterrupt {}),
                ..Default::default()
            },
        ]),
    };
    assert_eq!(
        to_json(&status),
        r#"{"Status":-2143878906,"ExitType":"UnexpectedExit","Attribution":[{"WorkerExit":{"ExitCode":137,"Type":"UnexpectedStop","Detail":"ProcessUnexpectedExit","Initiator":"Internal"}},{"InjectNonMaskableInterrupt":{}}]}"#
    );
    let graceful = SystemExitStatus {
        status: Some(0),
        exit_type: Some(NotificationType::GracefulExit),
        attribution: None,
    };
    assert_eq!(
        to_json(&graceful),
        r#"{"Status":0,"ExitType":"GracefulExit"}"#
    );
}

#[test]
fn properties() {
    let props = Properties {
        id: Some("Sample".into()),
        system_type: Some(SystemType::VirtualMachine),
        runtime_os_type: Some(OsType::Linux),
        owner: Some("Sample".into()),
        runtime_id: Some("3f09a1b2-0000-4000-8000-00000000001f".into()),
        state: Some(State::Running),
        stopped: Some(false),
        memory: Some(MemoryInformationForVm {
            virtual_node_count: Some(1),
            virtual_machine_memory: Some(VmMemory {
                available_memory: Some(1536),
                available_memory_buffer: Some(0),
                reserved_memory: Some(0),
                assigned_memory: Some(2048),
                slp_active: Some(false),
                balancing_enabled: Some(false),
                dm_operation_in_progress: Some(false),
            }),
            virtual_nodes: Some(vec![VirtualNodeInfo {
                virtual_node_index: Some(0),
                physical_node_number: Some(0),
                virtual_processor_count: Some(2),
                memory_usage_in_pages: Some(524_288),
            }]),
        }),
        statistics: Some(Statistics {
            timestamp: Some("2024-05-01T12:00:00Z".into()),
            container_start_time: Some("2024-05-01T11:59:00Z".into()),
            uptime_100ns: Some(600_000_000),
            processor: Some(ProcessorStats {
                total_runtime_100ns: Some(30),
                runtime_user_100ns: Some(20),
                runtime_kernel_100ns: Some(10),
            }),
            memory: Some(MemoryStats {
                memory_usage_commit_bytes: Some(4096),
                memory_usage_commit_peak_bytes: Some(8192),
                memory_usage_private_working_set_bytes: Some(2048),
            }),
            storage: Some(StorageStats {
                read_count_normalized: Some(1),
                read_size_bytes: Some(512),
                write_count_normalized: Some(2),
                write_size_bytes: Some(1024),
            }),
            virtual_machine: None,
        }),
        process_list: Some(vec![ProcessDetails {
            process_id: Some(1),
            image_name: Some("init".into()),
            create_timestamp: Some("2024-05-01T11:59:00Z".into()),
            user_time_100ns: Some(5),
            kernel_time_100ns: Some(6),
            memory_commit_bytes: Some(7),
            memory_working_set_private_bytes: Some(8),
            memory_working_set_shared_bytes: Some(9),
            host_process_id: Some(4242),
        }]),
        guest_connection_info: Some(GuestConnectionInfo {
            supported_schema_versions: Some(vec![Version::new(2, 6)]),
            protocol_version: Some(4),
            guest_defined_capabilities: None,
        }),
        property_responses: Some(BTreeMap::from([(
            "ICHeartbeatStatus".to_string(),
            PropertyResponse {
                error: Some(ResultError {
                    error: Some(-2147467263),
                    error_message: Some("Not implemented.".into()),
                    ..Default::default()
                }),
                response: None,
            },
        )])),
        ..Default::default()
    };
    let expected = concat!(
        r#"{"Id":"Sample","SystemType":"VirtualMachine","RuntimeOsType":"Linux","Owner":"Sample","#,
        r#""RuntimeId":"3f09a1b2-0000-4000-8000-00000000001f","State":"Running","Stopped":false,"#,
        r#""Memory":{"VirtualNodeCount":1,"VirtualMachineMemory":{"AvailableMemory":1536,"AvailableMemoryBuffer":0,"#,
        r#""ReservedMemory":0,"AssignedMemory":2048,"SlpActive":false,"BalancingEnabled":false,"DmOperationInProgress":false},"#,
        r#""VirtualNodes":[{"VirtualNodeIndex":0,"PhysicalNodeNumber":0,"VirtualProcessorCount":2,"MemoryUsageInPages":524288}]},"#,
        r#""Statistics":{"Timestamp":"2024-05-01T12:00:00Z","ContainerStartTime":"2024-05-01T11:59:00Z","Uptime100ns":600000000,"#,
        r#""Processor":{"TotalRuntime100ns":30,"RuntimeUser100ns":20,"RuntimeKernel100ns":10},"#,
        r#""Memory":{"MemoryUsageCommitBytes":4096,"MemoryUsageCommitPeakBytes":8192,"MemoryUsagePrivateWorkingSetBytes":2048},"#,
        r#""Storage":{"ReadCountNormalized":1,"ReadSizeBytes":512,"WriteCountNormalized":2,"WriteSizeBytes":1024}},"#,
        r#""ProcessList":[{"ProcessId":1,"ImageName":"init","CreateTimestamp":"2024-05-01T11:59:00Z","UserTime100ns":5,"#,
        r#""KernelTime100ns":6,"MemoryCommitBytes":7,"MemoryWorkingSetPrivateBytes":8,"MemoryWorkingSetSharedBytes":9,"HostProcessId":4242}],"#,
        r#""GuestConnectionInfo":{"SupportedSchemaVersions":[{"Major":2,"Minor":6}],"ProtocolVersion":4},"#,
        r#""PropertyResponses":{"ICHeartbeatStatus":{"Error":{"Error":-2147467263,"ErrorMessage":"Not implemented."}}}}"#
    );
    assert_eq!(to_json(&props), expected);
    let back: Properties = from_json(expected, "Properties").expect("parses");
    assert_eq!(back, props);
}

#[test]
fn basic_properties_of_enumerate() {
    let list = vec![Properties {
        id: Some("Sample".into()),
        system_type: Some(SystemType::Container),
        owner: Some("hcs-cli".into()),
        state: Some(State::Created),
        ..Default::default()
    }];
    assert_eq!(
        to_json(&list),
        r#"[{"Id":"Sample","SystemType":"Container","Owner":"hcs-cli","State":"Created"}]"#
    );
}

#[test]
fn basic_information_lists_supported_versions() {
    let basic = service::BasicInformation {
        supported_schema_versions: Some(SUPPORTED_SCHEMA_VERSIONS.to_vec()),
    };
    assert_eq!(
        to_json(&basic),
        r#"{"SupportedSchemaVersions":[{"Major":2,"Minor":0},{"Major":2,"Minor":1},{"Major":2,"Minor":2},{"Major":2,"Minor":3},{"Major":2,"Minor":4},{"Major":2,"Minor":5},{"Major":2,"Minor":6}]}"#
    );
}

#[test]
fn create_document_member_names() {
    let cs = ComputeSystem {
        schema_version: Some(Version::new(2, 1)),
        virtual_machine: Some(VirtualMachine {
            chipset: Some(virtual_machine::Chipset {
                linux_kernel_direct: Some(virtual_machine::LinuxKernelDirect {
                    kernel_file_path: Some("/boot/vmlinux".into()),
                    init_rd_path: Some("/boot/initrd".into()),
                    kernel_cmd_line: Some("console=ttyS0".into()),
                }),
                ..Default::default()
            }),
            compute_topology: Some(virtual_machine::Topology {
                memory: Some(VirtualMachineMemory {
                    size_in_mb: Some(512),
                    low_mmio_gap_in_mb: Some(256),
                    ..Default::default()
                }),
                processor: Some(VirtualMachineProcessor {
                    count: Some(1),
                    maximum_frequency_mhz: Some(2000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        should_terminate_on_last_handle_closed: Some(true),
        ..Default::default()
    };
    assert_eq!(
        to_json(&cs),
        r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Chipset":{"LinuxKernelDirect":{"KernelFilePath":"/boot/vmlinux","InitRdPath":"/boot/initrd","KernelCmdLine":"console=ttyS0"}},"ComputeTopology":{"Memory":{"SizeInMB":512,"LowMmioGapInMB":256},"Processor":{"Count":1,"MaximumFrequencyMHz":2000}}},"ShouldTerminateOnLastHandleClosed":true}"#
    );
    // Well formed, but it sets members this system refuses (fields::TABLE).
    let refused = cs.validate().unwrap_err();
    assert_eq!(refused.hresult, hcs_errors::HResult::ERROR_NOT_SUPPORTED);
    assert!(
        refused
            .message
            .contains("`$.VirtualMachine.ComputeTopology.Processor.MaximumFrequencyMHz`")
            || refused
                .message
                .contains("`$.VirtualMachine.ComputeTopology.Memory.LowMmioGapInMB`"),
        "{}",
        refused.message
    );
}

#[test]
fn signals_serialise_as_string_or_number() {
    let s = requests::SignalProcessOptions {
        signal: Some(Signal::Console(ProcessSignal::CtrlBreak)),
    };
    assert_eq!(to_json(&s), r#"{"Signal":"CtrlBreak"}"#);
    let s = requests::SignalProcessOptions {
        signal: Signal::number(9),
    };
    assert_eq!(to_json(&s), r#"{"Signal":9}"#);
    assert_eq!(Signal::number(0), None);
    assert_eq!(Signal::number(65), None);
    let expected = [
        (ProcessSignal::CtrlC, 2),
        (ProcessSignal::CtrlBreak, 3),
        (ProcessSignal::CtrlClose, 1),
        (ProcessSignal::CtrlLogOff, 1),
        (ProcessSignal::CtrlShutdown, 15),
    ];
    for (signal, number) in expected {
        assert_eq!(Signal::Console(signal).posix_number(), number, "{signal}");
    }
}

#[test]
fn v1_spelling_create_in_utility_vm_is_accepted_and_written_in_v2_spelling() {
    let p: ProcessParameters = from_json(
        r#"{"CommandLine":"ls","CreateInUtilityVm":true}"#,
        "ProcessParameters",
    )
    .expect("parses");
    assert_eq!(p.create_in_utility_vm, Some(true));
    assert_eq!(
        to_json(&p),
        r#"{"CommandLine":"ls","CreateInUtilityVM":true}"#
    );
}

#[test]
fn user_namespace_member_names() {
    let c = Container {
        user_namespace: Some(UserNamespace {
            uid_mappings: Some(vec![IdMapping {
                container_id: Some(0),
                host_id: Some(1000),
                size: Some(1),
            }]),
            gid_mappings: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        to_json(&c),
        r#"{"UserNamespace":{"UidMappings":[{"ContainerId":0,"HostId":1000,"Size":1}]}}"#
    );
    let s = ShutdownOptions {
        timeout_in_ms: Some(5000),
        ..Default::default()
    };
    assert_eq!(to_json(&s), r#"{"TimeoutInMs":5000}"#);
}
