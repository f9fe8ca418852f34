//! Result, exit and crash documents (reference sections 3.3 and 5.10).

use crate::enums::{
    EventDataType, ExitInitiator, NotificationType, OperationFailureDetail, OperationType,
    SystemExitDetail, VirtualDeviceFailureDetail, WindowsCrashPhase, WorkerExitDetail,
    WorkerExitType,
};

hcs_struct! {
    /// Error document returned as the result of a failed operation or service call.
    pub struct ResultError {
        /// HRESULT as a signed 32-bit integer, 2.1.
        "Error" => error: i32,
        /// Message for a person, 2.1.
        "ErrorMessage" => error_message: String,
        /// Events that explain the error, 2.4.
        "ErrorEvents" => error_events: Vec<ErrorEvent>,
        /// Causes, 2.4.
        "Attribution" => attribution: Vec<AttributionRecord>,
    }
}

hcs_struct! {
    /// An event explaining an error.
    pub struct ErrorEvent {
        /// Message.
        "Message" => message: String,
        /// Stack trace.
        "StackTrace" => stack_trace: String,
        /// Provider GUID.
        "Provider" => provider: String,
        /// Event id.
        "EventId" => event_id: u16,
        /// Flags.
        "Flags" => flags: u32,
        /// Source.
        "Source" => source: String,
        /// Event data.
        "Data" => data: Vec<EventData>,
    }
}

hcs_struct! {
    /// One value of an `ErrorEvent`.
    pub struct EventData {
        /// Type of the value.
        "Type" => data_type: EventDataType,
        /// The value as a string.
        "Value" => value: String,
    }
}

hcs_struct! {
    /// EventData of HcsEventSystemExited and result of HcsWaitForComputeSystemExit.
    pub struct SystemExitStatus {
        /// HRESULT describing the exit (S_OK for clean exits), 2.1.
        "Status" => status: i32,
        /// `GracefulExit`, `ForcedExit`, `UnexpectedExit`, `Unknown` or `None`, 2.2.
        "ExitType" => exit_type: NotificationType,
        /// Causes, 2.4.
        "Attribution" => attribution: Vec<AttributionRecord>,
    }
}

hcs_struct! {
    /// One cause record; exactly one member is set, 2.4.
    pub struct AttributionRecord {
        /// The VM worker (Linux: VMM process) exited.
        "WorkerExit" => worker_exit: WorkerExit,
        /// The guest crashed.
        "GuestCrash" => guest_crash: GuestCrash,
        /// A vCPU triple-faulted.
        "TripleFault" => triple_fault: TripleFault,
        /// An NMI was injected.
        "InjectNonMaskableInterrupt" => inject_non_maskable_interrupt: InjectNonMaskableInterrupt,
        /// An operation failed.
        "OperationFailure" => operation_failure: OperationFailure,
        /// The system exited.
        "SystemExit" => system_exit: SystemExit,
        /// A virtual device failed.
        "VirtualDeviceFailure" => virtual_device_failure: VirtualDeviceFailure,
        /// Linux extension, not in Microsoft's schema: how KVM stopped the VM
        /// (exit reason, vCPU, instruction pointer).
        "VirtualMachineExit" => virtual_machine_exit: VirtualMachineExit,
    }
}

hcs_struct! {
    /// Linux extension, not in Microsoft's schema: the KVM exit that stopped
    /// a virtual machine.
    pub struct VirtualMachineExit {
        /// `TripleFault`, `InternalError`, `FailEntry`, `VcpuError`, `PowerOff`, `Reset`, `Panic`,
        /// `PowerButton` (the guest powered off after the VMM pressed its power button).
        "Reason" => reason: String,
        /// The vCPU that stopped it.
        "Vcpu" => vcpu: u32,
        /// Its instruction pointer at the exit.
        "Rip" => rip: u64,
        /// KVM's internal-error suberror, or the hardware entry failure reason.
        "Code" => code: u64,
        /// A sentence for a person.
        "Detail" => detail: String,
    }
}

hcs_struct! {
    /// The VM worker process exited, 2.4.
    pub struct WorkerExit {
        /// Exit code.
        "ExitCode" => exit_code: u32,
        /// Outcome.
        "Type" => exit_type: WorkerExitType,
        /// Detail.
        "Detail" => detail: WorkerExitDetail,
        /// Who initiated it.
        "Initiator" => initiator: ExitInitiator,
    }
}

hcs_struct! {
    /// The guest crashed, 2.4.
    pub struct GuestCrash {
        /// Crash parameters (bugcheck code and arguments).
        "CrashParameters" => crash_parameters: Vec<u64>,
    }
}

hcs_struct! {
    /// A vCPU triple-faulted, 2.4.
    pub struct TripleFault {
        /// Error type.
        "ErrorType" => error_type: u64,
    }
}

hcs_struct! {
    /// An NMI was injected (HcsCrashComputeSystem); `{}`, 2.4.
    pub struct InjectNonMaskableInterrupt {}
}

hcs_struct! {
    /// An operation failed, 2.4.
    pub struct OperationFailure {
        /// Which operation.
        "Detail" => detail: OperationFailureDetail,
    }
}

hcs_struct! {
    /// The system exited, 2.4.
    pub struct SystemExit {
        /// Why.
        "Detail" => detail: SystemExitDetail,
        /// Who initiated it.
        "Initiator" => initiator: ExitInitiator,
    }
}

hcs_struct! {
    /// A virtual device failed, 2.4.
    pub struct VirtualDeviceFailure {
        /// In which phase.
        "Detail" => detail: VirtualDeviceFailureDetail,
        /// Device name.
        "Name" => name: String,
        /// Device GUID.
        "DeviceId" => device_id: String,
        /// Instance GUID.
        "InstanceId" => instance_id: String,
    }
}

hcs_struct! {
    /// EventData of the crash events; input of HcsSubmitWerReport.
    pub struct CrashReport {
        /// System id.
        "SystemId" => system_id: String,
        /// Activity GUID.
        "ActivityId" => activity_id: String,
        /// Windows crash details.
        "WindowsCrashInfo" => windows_crash_info: WindowsCrashReport,
        /// Crash parameters, 2.3.
        "CrashParameters" => crash_parameters: Vec<u64>,
        /// Guest-provided text (Linux guests: kernel panic log), 2.3.
        "CrashLog" => crash_log: String,
        /// Status, 2.4.
        "Status" => status: i32,
        /// Pre-OS id, 2.4.
        "PreOSId" => pre_os_id: u32,
        /// Stack unavailable, 2.4.
        "CrashStackUnavailable" => crash_stack_unavailable: bool,
    }
}

hcs_struct! {
    /// Windows crash details of a `CrashReport`.
    pub struct WindowsCrashReport {
        /// Dump file.
        "DumpFile" => dump_file: String,
        /// OS major version.
        "OsMajorVersion" => os_major_version: u32,
        /// OS minor version.
        "OsMinorVersion" => os_minor_version: u32,
        /// OS build.
        "OsBuildNumber" => os_build_number: u32,
        /// Service pack major.
        "OsServicePackMajorVersion" => os_service_pack_major_version: u32,
        /// Service pack minor.
        "OsServicePackMinorVersion" => os_service_pack_minor_version: u32,
        /// Suite mask.
        "OsSuiteMask" => os_suite_mask: u32,
        /// Product type.
        "OsProductType" => os_product_type: u32,
        /// Status.
        "Status" => status: i32,
        /// Dump phase reached.
        "FinalPhase" => final_phase: WindowsCrashPhase,
    }
}

hcs_struct! {
    /// What an operation tracked, 2.6.
    pub struct OperationInfo {
        /// Which API.
        "Operation" => operation: OperationType,
        /// Start, RFC 3339.
        "StartTimestamp" => start_timestamp: String,
        /// End, RFC 3339.
        "EndTimestamp" => end_timestamp: String,
        /// Failure, if any.
        "FailureInfo" => failure_info: OperationFailureInfo,
    }
}

hcs_struct! {
    /// Failure of an operation, 2.6.
    pub struct OperationFailureInfo {
        /// HRESULT.
        "Result" => result: i32,
    }
}

hcs_struct! {
    /// Operation notification info; `{}`.
    pub struct OperationNotificationInfo {}
}

hcs_struct! {
    /// Operation progress; `{}`.
    pub struct OperationProgress {}
}
