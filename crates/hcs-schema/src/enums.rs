//! Enumerations of the HCS schema (reference section 5.14). All of them are
//! JSON strings, never numbers; the Rust variant names follow Rust style and
//! the JSON strings are written out exactly.

use std::fmt;

/// Error of `FromStr` on a schema enumeration: the string is not one of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    type_name: &'static str,
    value: String,
    expected: &'static [&'static str],
}

impl ParseEnumError {
    pub(crate) fn new(
        type_name: &'static str,
        value: &str,
        expected: &'static [&'static str],
    ) -> Self {
        ParseEnumError {
            type_name,
            value: value.to_string(),
            expected,
        }
    }

    /// The values that would have been accepted.
    pub fn expected(&self) -> &'static [&'static str] {
        self.expected
    }
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} value `{}`, expected one of ",
            self.type_name, self.value
        )?;
        for (i, v) in self.expected.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{v}`")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseEnumError {}

string_enum! {
    /// Whether to apply the secure-boot template (`Uefi.ApplySecureBootTemplate`, 2.3).
    pub enum ApplySecureBootTemplateType { Skip = "Skip", Apply = "Apply" }
}

string_enum! {
    /// Kind of a SCSI attachment (`Attachment.Type`).
    pub enum AttachmentType {
        /// VHD/VHDX (Linux: raw/qcow2/VHDX image).
        VirtualDisk = "VirtualDisk",
        /// ISO image as CD-ROM.
        Iso = "Iso",
        /// Physical disk pass-through.
        PassThru = "PassThru",
    }
}

string_enum! {
    /// Layer cache policy (`Layer.Cache`).
    pub enum CacheMode {
        Unspecified = "Unspecified",
        Disabled = "Disabled",
        Enabled = "Enabled",
        Private = "Private",
        PrivateAllowSharing = "PrivateAllowSharing",
    }
}

string_enum! {
    /// Host caching of a SCSI attachment (`Attachment.CachingMode`, 2.1).
    pub enum CachingMode { Uncached = "Uncached", Cached = "Cached", ReadOnlyCached = "ReadOnlyCached" }
}

string_enum! {
    /// Operation of a `ContainerCredentialGuardOperationRequest`.
    pub enum ContainerCredentialGuardModifyOperation { AddInstance = "AddInstance", RemoveInstance = "RemoveInstance" }
}

string_enum! {
    /// Transport of container credential guard (Windows gMSA).
    pub enum ContainerCredentialGuardTransport { Lrpc = "LRPC", HvSocket = "HvSocket" }
}

string_enum! {
    /// Kind of crash requested by `CrashOptions.Type` (2.3).
    pub enum CrashType { CrashGuest = "CrashGuest" }
}

string_enum! {
    /// How an assigned container device is identified (`Device.Type`, 2.2).
    pub enum DeviceType { ClassGuid = "ClassGuid", DeviceInstance = "DeviceInstance", GpuMirror = "GpuMirror" }
}

string_enum! {
    /// Enlightenment modifications (2.5).
    pub enum EnlightenmentModifications { Unreported = "Unreported", FavorAutoEoi = "FavorAutoEoi", RsvdZ1 = "RsvdZ1" }
}

string_enum! {
    /// Type of an `EventData` value of an `ErrorEvent`.
    pub enum EventDataType {
        Empty = "Empty",
        String = "String",
        AnsiString = "AnsiString",
        SByte = "SByte",
        Byte = "Byte",
        Int16 = "Int16",
        UInt16 = "UInt16",
        Int32 = "Int32",
        UInt32 = "UInt32",
        Int64 = "Int64",
        UInt64 = "UInt64",
        Single = "Single",
        Double = "Double",
        Boolean = "Boolean",
        Binary = "Binary",
        Guid = "Guid",
    }
}

string_enum! {
    /// Who initiated an exit (`SystemExit.Initiator`, `WorkerExit.Initiator`, 2.4).
    pub enum ExitInitiator { None = "None", GuestOs = "GuestOS", Client = "Client", Internal = "Internal", Unknown = "Unknown" }
}

string_enum! {
    /// Hosting model of a flexible I/O device. `ExternalRestricted` is sent by
    /// WSL (`hcs_schema.h`) but is not in the published schema.
    pub enum FlexibleIoDeviceHostingModel { Internal = "Internal", External = "External", ExternalRestricted = "ExternalRestricted" }
}

string_enum! {
    /// Service property type of `Service_PropertyQuery.PropertyTypes`. The
    /// documented values are `Basic`, `CpuGroup`, `ProcessorTopology`,
    /// `ContainerCredentialGuard`, `QoSCapabilities`; the others come from
    /// hcsshim's build-20348 schema (`Memory` is also what `ServiceSample.md` queries).
    pub enum GetPropertyType {
        Basic = "Basic",
        Memory = "Memory",
        CpuGroup = "CpuGroup",
        ProcessorTopology = "ProcessorTopology",
        CacheAllocation = "CacheAllocation",
        CacheMonitoring = "CacheMonitoring",
        ContainerCredentialGuard = "ContainerCredentialGuard",
        QoSCapabilities = "QoSCapabilities",
        MemoryBwAllocation = "MemoryBwAllocation",
        Processor = "Processor",
        SecureNestedPaging = "SecureNestedPaging",
        Undefined = "Undefined",
    }
}

string_enum! {
    /// GPU assignment mode (`GpuConfiguration.AssignmentMode`).
    pub enum GpuAssignmentMode { Disabled = "Disabled", Default = "Default", List = "List", Mirror = "Mirror" }
}

string_enum! {
    /// Why an integration component is in its state (2.5).
    pub enum IntegrationComponentOperatingStateReason {
        Unknown = "Unknown",
        AppsInCriticalState = "AppsInCriticalState",
        CommunicationTimedOut = "CommunicationTimedOut",
        FailedCommunication = "FailedCommunication",
        HealthyApps = "HealthyApps",
        ProtocolMismatch = "ProtocolMismatch",
    }
}

string_enum! {
    /// Operational state of an integration component (2.5).
    pub enum IntegrationComponentOperationalState {
        Unknown = "Unknown",
        Degraded = "Degraded",
        Dormant = "Dormant",
        Error = "Error",
        LostCommunication = "LostCommunication",
        NonRecoverableError = "NonRecoverableError",
        NoContact = "NoContact",
        Ok = "Ok",
    }
}

string_enum! {
    /// Interrupt moderation of an SR-IOV network adapter (2.4).
    pub enum InterruptModerationMode {
        Default = "Default",
        Adaptive = "Adaptive",
        Off = "Off",
        Low = "Low",
        Medium = "Medium",
        High = "High",
    }
}

string_enum! {
    /// Source of KVP items (`KvpQuery.Source`, 2.5).
    pub enum KvpSource { KvpSetByHost = "KvpSetByHost", KvpSetByGuest = "KvpSetByGuest", GuestOsInfo = "GuestOSInfo" }
}

string_enum! {
    /// How `MappedPipe.HostPath` is interpreted (2.1).
    pub enum MappedPipePathType { AbsolutePath = "AbsolutePath", VirtualSmbPipeName = "VirtualSmbPipeName" }
}

string_enum! {
    /// Backing page size of VM memory (2.2). Linux: hugepages for `Large`.
    pub enum MemoryBackingPageSize { Small = "Small", Large = "Large" }
}

string_enum! {
    /// Undocumented `VirtualMachine_Memory.Backing`, used by the official
    /// samples: `Virtual` = pageable/overcommittable, `Physical` = pinned.
    pub enum MemoryBackingType { Physical = "Physical", Virtual = "Virtual", Hybrid = "Hybrid" }
}

string_enum! {
    /// Undocumented `VirtualMachine_Memory.SlitType` (hcsshim): NUMA distance table source.
    pub enum SlitType { None = "None", Firmware = "Firmware", Measured = "Measured", FirmwareFallbackMeasured = "FirmwareFallbackMeasured" }
}

string_enum! {
    /// Operation of a `ProcessModifyRequest`.
    pub enum ModifyOperation {
        /// Resize the console (PTY).
        ConsoleSize = "ConsoleSize",
        /// Close standard handle(s); closing `StdIn` delivers EOF.
        CloseHandle = "CloseHandle",
    }
}

string_enum! {
    /// Property type of a service `ModificationRequest`.
    pub enum ModifyPropertyType { CpuGroup = "CpuGroup", ContainerCredentialGuard = "ContainerCredentialGuard" }
}

string_enum! {
    /// Request type of a modify request. `PreAdd` is used by hcsshim for network adapters.
    pub enum ModifyRequestType { Add = "Add", Remove = "Remove", Update = "Update", PreAdd = "PreAdd" }
}

string_enum! {
    /// Guest-side resource kind of a `GuestModifySettingRequest`: the
    /// documented values plus those hcsshim's Linux GCS understands.
    pub enum ModifyResourceType {
        Memory = "Memory",
        MappedDirectory = "MappedDirectory",
        MappedPipe = "MappedPipe",
        MappedVirtualDisk = "MappedVirtualDisk",
        CombinedLayers = "CombinedLayers",
        NetworkNamespace = "NetworkNamespace",
        CimMount = "CimMount",
        Network = "Network",
        VpmemDevice = "VPMemDevice",
        VpciDevice = "VPCIDevice",
        ContainerConstraints = "ContainerConstraints",
        HvSocket = "HvSocket",
        ScsiDevice = "SCSIDevice",
        SecurityPolicy = "SecurityPolicy",
        SecurityPolicyFragment = "SecurityPolicyFragment",
        PodCgroupMemoryLimit = "PodCgroupMemoryLimit",
    }
}

string_enum! {
    /// Operation of a `HostProcessorModificationRequest`.
    pub enum ModifyServiceOperation { CreateGroup = "CreateGroup", DeleteGroup = "DeleteGroup", SetProperty = "SetProperty" }
}

string_enum! {
    /// Whether non-architectural core sharing is reported/on (2.5).
    pub enum NonArchitecturalCoreSharing { Unreported = "Unreported", Off = "Off", On = "On" }
}

string_enum! {
    /// Exit classification (`Properties.ExitType`, `SystemExitStatus.ExitType`).
    pub enum NotificationType {
        None = "None",
        /// Guest-initiated shutdown or HcsShutDownComputeSystem.
        GracefulExit = "GracefulExit",
        /// HcsTerminateComputeSystem.
        ForcedExit = "ForcedExit",
        /// Crash or worker died.
        UnexpectedExit = "UnexpectedExit",
        Unknown = "Unknown",
    }
}

string_enum! {
    /// Which API call was running when a failure was attributed (2.4).
    pub enum OperationFailureDetail {
        Invalid = "Invalid",
        CreateInternalError = "CreateInternalError",
        ConstructStateError = "ConstructStateError",
        RuntimeOsTypeMismatch = "RuntimeOsTypeMismatch",
        Construct = "Construct",
        Start = "Start",
        Pause = "Pause",
        Resume = "Resume",
        Shutdown = "Shutdown",
        Terminate = "Terminate",
        Save = "Save",
        GetProperties = "GetProperties",
        Modify = "Modify",
        Crash = "Crash",
        GuestCrash = "GuestCrash",
        LifecycleNotify = "LifecycleNotify",
        ExecuteProcess = "ExecuteProcess",
        GetProcessInfo = "GetProcessInfo",
        WaitForProcess = "WaitForProcess",
        SignalProcess = "SignalProcess",
        ModifyProcess = "ModifyProcess",
        PrepareForHosting = "PrepareForHosting",
        RegisterHostedSystem = "RegisterHostedSystem",
        UnregisterHostedSystem = "UnregisterHostedSystem",
        PrepareForClone = "PrepareForClone",
        GetCloneTemplate = "GetCloneTemplate",
    }
}

string_enum! {
    /// Which API an operation tracked (`OperationInfo.Operation`, 2.6).
    pub enum OperationType {
        None = "None",
        Construct = "Construct",
        Start = "Start",
        Pause = "Pause",
        Resume = "Resume",
        Shutdown = "Shutdown",
        Terminate = "Terminate",
        Save = "Save",
        GetProperties = "GetProperties",
        Modify = "Modify",
        Crash = "Crash",
        ExecuteProcess = "ExecuteProcess",
        GetProcessInfo = "GetProcessInfo",
        SignalProcess = "SignalProcess",
        ModifyProcess = "ModifyProcess",
        CancelOperation = "CancelOperation",
    }
}

string_enum! {
    /// Kind of OS layer (`OsLayerOptions.Type`).
    pub enum OsLayerType { Container = "Container", Vm = "Vm" }
}

string_enum! {
    /// Operating system of a running compute system (`Properties.RuntimeOsType`).
    pub enum OsType { Unknown = "Unknown", Windows = "Windows", Linux = "Linux" }
}

string_enum! {
    /// How `Layer.Path` / `MappedDirectory.HostPath` is interpreted (2.1).
    pub enum PathType { AbsolutePath = "AbsolutePath", VirtualSmbShareName = "VirtualSmbShareName" }
}

string_enum! {
    /// Reason for a pause, told to guest components (2.1).
    pub enum PauseReason { None = "None", Save = "Save", Template = "Template" }
}

string_enum! {
    /// How deeply to suspend on pause.
    pub enum PauseSuspensionLevel { Suspend = "Suspend", MemoryLow = "MemoryLow", MemoryMedium = "MemoryMedium", MemoryHigh = "MemoryHigh" }
}

string_enum! {
    /// A processor feature (2.5).
    pub enum ProcessorFeature {
        Sse3 = "Sse3", LahfSahf = "LahfSahf", Ssse3 = "Ssse3", Sse41 = "Sse4_1", Sse42 = "Sse4_2",
        Sse4A = "Sse4A", Xop = "Xop", Popcnt = "Popcnt", Cmpxchg16B = "Cmpxchg16B", Altmovcr8 = "Altmovcr8",
        Lzcnt = "Lzcnt", Misalignsse = "Misalignsse", MmxExt = "MmxExt", Amd3Dnow = "Amd3Dnow",
        ExtAmd3Dnow = "ExtAmd3Dnow", Page1Gb = "Page1Gb", AmdAes = "AmdAes", Pclmulqdq = "Pclmulqdq",
        Pcid = "Pcid", Fma4 = "Fma4", F16C = "F16C", Rdrand = "Rdrand", Rdwrfsgs = "Rdwrfsgs", Smep = "Smep",
        EnhancedFastString = "EnhancedFastString", Bmi1 = "Bmi1", Bmi2 = "Bmi2", Movbe = "Movbe",
        Npiep1 = "Npiep1", DepX87FpuSave = "DepX87FpuSave", Rdseed = "Rdseed", Adx = "Adx",
        IntelPrefetch = "IntelPrefetch", Smap = "Smap", Hle = "Hle", Rtm = "Rtm", Rdtscp = "Rdtscp",
        Clflushopt = "Clflushopt", Clwb = "Clwb", Sha = "Sha", X87PointersSaved = "X87PointersSaved",
        Invpcid = "Invpcid", Ibrs = "Ibrs", Stibp = "Stibp", Ibpb = "Ibpb", UnrestrictedGuest = "UnrestrictedGuest",
        Mdd = "Mdd", FastShortRepMov = "FastShortRepMov", L1DCacheFlush = "L1DCacheFlush", RdclNo = "RdclNo",
        IbrsAll = "IbrsAll", SkipL1Df = "SkipL1Df", SsbNo = "SsbNo", RsbaNo = "RsbaNo", VirtSpecCtrl = "VirtSpecCtrl",
        Rdpid = "Rdpid", Umip = "Umip", MbsNo = "MbsNo", MbClear = "MbClear", TaaNo = "TaaNo", TsxCtrl = "TsxCtrl",
        AcountMcount = "AcountMcount", TscInvariant = "TscInvariant", Clzero = "Clzero", Rdpru = "Rdpru",
        La57 = "La57", Mbec = "Mbec", NestedVirt = "NestedVirt", Psfd = "Psfd", CetSs = "CetSs", CetIbt = "CetIbt",
        VmxExceptionInject = "VmxExceptionInject", UmwaitTpause = "UmwaitTpause", Movdiri = "Movdiri",
        Movdir64b = "Movdir64b", Cldemote = "Cldemote", Serialize = "Serialize", TscDeadlineTmr = "TscDeadlineTmr",
        TscAdjust = "TscAdjust", FzlRepMovsb = "FZLRepMovsb", FsRepStosb = "FSRepStosb", FsRepCmpsb = "FSRepCmpsb",
        SentinelAmd = "SentinelAmd", Asid16 = "Asid16", TGran16 = "TGran16", TGran64 = "TGran64", Haf = "Haf",
        Hdbs = "Hdbs", Pan = "Pan", AtS1E1 = "AtS1E1", Uao = "Uao", El0Aarch32 = "El0Aarch32", Fp = "Fp",
        FpHp = "FpHp", AdvSimd = "AdvSimd", AdvSimdHp = "AdvSimdHp", GicV3V4 = "GicV3V4", PmuV3 = "PmuV3",
        PmuV3ArmV81 = "PmuV3ArmV81", PmuV3ArmV84 = "PmuV3ArmV84", ArmAes = "ArmAes", PolyMul = "PolyMul",
        Sha1 = "Sha1", Sha256 = "Sha256", Sha512 = "Sha512", Crc32 = "Crc32", Atomic = "Atomic", Rdm = "Rdm",
        Sha3 = "Sha3", Sm3 = "Sm3", Sm4 = "Sm4", Dp = "Dp", Fhm = "Fhm", DcCvap = "DcCvap", DcCvadp = "DcCvadp",
        ApaBase = "ApaBase", ApaEp = "ApaEp", ApaEp2 = "ApaEp2", ApaEp2Fp = "ApaEp2Fp", ApaEp2Fpc = "ApaEp2Fpc",
        Jscvt = "Jscvt", Fcma = "Fcma", RcpcV83 = "RcpcV83", RcpcV84 = "RcpcV84", Gpa = "Gpa", L1ipPipt = "L1ipPipt",
        DzPermitted = "DzPermitted", SentinelArm = "SentinelArm",
    }
}

string_enum! {
    /// How strictly a `ProcessorFeatureSet` is applied (2.5).
    pub enum ProcessorFeatureSetMode { Strict = "Strict", Permissive = "Permissive" }
}

string_enum! {
    /// Windows console control event of `SignalProcessOptions.Signal` (2.1).
    /// See [`crate::requests::Signal::posix_number`] for the POSIX mapping.
    pub enum ProcessSignal {
        /// SIGINT on Linux.
        CtrlC = "CtrlC",
        /// SIGQUIT on Linux.
        CtrlBreak = "CtrlBreak",
        /// SIGHUP on Linux.
        CtrlClose = "CtrlClose",
        /// SIGHUP on Linux.
        CtrlLogOff = "CtrlLogOff",
        /// SIGTERM on Linux.
        CtrlShutdown = "CtrlShutdown",
    }
}

string_enum! {
    /// Registry hive (Windows-only registry changes).
    pub enum RegistryHive { System = "System", Software = "Software", Security = "Security", Sam = "Sam" }
}

string_enum! {
    /// Registry value type (Windows-only registry changes).
    pub enum RegistryValueType {
        None = "None",
        String = "String",
        ExpandedString = "ExpandedString",
        MultiString = "MultiString",
        Binary = "Binary",
        DWord = "DWord",
        QWord = "QWord",
        CustomType = "CustomType",
    }
}

string_enum! {
    /// Kind of save (`SaveOptions.SaveType`, 2.1).
    pub enum SaveType {
        /// Memory and device state to a file; the system then stops.
        ToFile = "ToFile",
        /// Device state only; the system becomes a clone template.
        AsTemplate = "AsTemplate",
    }
}

string_enum! {
    /// Target of the firmware console (`Uefi.Console`).
    pub enum SerialConsole { Default = "Default", Disabled = "Disabled", ComPort1 = "ComPort1", ComPort2 = "ComPort2" }
}

string_enum! {
    /// How a graceful shutdown is delivered (`ShutdownOptions.Mechanism`, 2.5).
    pub enum ShutdownMechanism { GuestConnection = "GuestConnection", IntegrationService = "IntegrationService" }
}

string_enum! {
    /// Kind of graceful shutdown (`ShutdownOptions.Type`, 2.5).
    pub enum ShutdownType { Shutdown = "Shutdown", Hibernate = "Hibernate", Reboot = "Reboot" }
}

string_enum! {
    /// State of a compute system (`Properties.State`).
    pub enum State {
        Created = "Created",
        Running = "Running",
        Paused = "Paused",
        Stopped = "Stopped",
        SavedAsTemplate = "SavedAsTemplate",
        Unknown = "Unknown",
    }
}

string_enum! {
    /// Tri-state override (2.4).
    pub enum StateOverride { Default = "Default", Disabled = "Disabled", Enabled = "Enabled" }
}

string_enum! {
    /// Standard handle(s) closed by a `CloseHandle` request.
    pub enum StdHandle { StdIn = "StdIn", StdOut = "StdOut", StdErr = "StdErr", All = "All" }
}

string_enum! {
    /// Kind of a processor subnode (2.4).
    pub enum SubnodeType { Any = "Any", Socket = "Socket", Cluster = "Cluster", L3 = "L3" }
}

string_enum! {
    /// Compute-system property type (`System_PropertyQuery.PropertyTypes`): the
    /// documented values plus those hcsshim uses (`GuestMemory`,
    /// `ICHeartbeatStatus`, `ProcessorTopology`, `CpuGroup`, `SystemGUID`,
    /// `ContainerCredentialGuard`).
    pub enum SystemPropertyType {
        Memory = "Memory",
        GuestMemory = "GuestMemory",
        Statistics = "Statistics",
        ProcessList = "ProcessList",
        TerminateOnLastHandleClosed = "TerminateOnLastHandleClosed",
        SharedMemoryRegion = "SharedMemoryRegion",
        GuestConnection = "GuestConnection",
        IcHeartbeatStatus = "ICHeartbeatStatus",
        ProcessorTopology = "ProcessorTopology",
        CpuGroup = "CpuGroup",
        SystemGuid = "SystemGUID",
        ContainerCredentialGuard = "ContainerCredentialGuard",
    }
}

string_enum! {
    /// Detail of a `SystemExit` attribution (2.4).
    pub enum SystemExitDetail {
        Invalid = "Invalid",
        HcsApiFatalError = "HcsApiFatalError",
        ServiceStop = "ServiceStop",
        Shutdown = "Shutdown",
        Terminate = "Terminate",
        UnexpectedExit = "UnexpectedExit",
    }
}

string_enum! {
    /// Kind of compute system (`Properties.SystemType`, `SystemQuery.Types`).
    pub enum SystemType { Container = "Container", VirtualMachine = "VirtualMachine" }
}

string_enum! {
    /// Boot device of a UEFI boot entry.
    pub enum UefiBootDevice {
        /// `DevicePath` = SCSI controller key, `DiskNumber` = LUN.
        ScsiDrive = "ScsiDrive",
        /// Boot file from host directory `VmbFsRootPath`.
        VmbFs = "VmbFs",
        Network = "Network",
        File = "File",
    }
}

string_enum! {
    /// Detail of a `VirtualDeviceFailure` attribution (2.4).
    pub enum VirtualDeviceFailureDetail {
        None = "None",
        Create = "Create",
        Initialize = "Initialize",
        StartReservingResources = "StartReservingResources",
        FinishReservingResources = "FinishReservingResources",
        FreeReservedResources = "FreeReservedResources",
        SaveReservedResources = "SaveReservedResources",
        PowerOnCold = "PowerOnCold",
        PowerOnRestore = "PowerOnRestore",
        PowerOff = "PowerOff",
        Save = "Save",
        Resume = "Resume",
        Pause = "Pause",
        EnableOptimizations = "EnableOptimizations",
        StartDisableOptimizations = "StartDisableOptimizations",
        FinishDisableOptimizations = "FinishDisableOptimizations",
        Reset = "Reset",
        PostReset = "PostReset",
        Teardown = "Teardown",
        SaveCompatibilityInfo = "SaveCompatibilityInfo",
        MetricRestore = "MetricRestore",
        MetricEnumerate = "MetricEnumerate",
        MetricEnumerateForSave = "MetricEnumerateForSave",
        MetricReset = "MetricReset",
        MetricEnable = "MetricEnable",
        MetricDisable = "MetricDisable",
    }
}

string_enum! {
    /// Backing of the virtual PMem range (2.1).
    pub enum VirtualPMemBackingType { Virtual = "Virtual", Physical = "Physical" }
}

string_enum! {
    /// Image format of a virtual PMem device.
    pub enum VirtualPMemImageFormat { Vhdx = "Vhdx", Vhd1 = "Vhd1" }
}

string_enum! {
    /// Phase a Windows crash dump reached.
    pub enum WindowsCrashPhase {
        Inactive = "Inactive",
        CrashValues = "CrashValues",
        Starting = "Starting",
        Started = "Started",
        Writing = "Writing",
        Complete = "Complete",
    }
}

string_enum! {
    /// Detail of a `WorkerExit` attribution (2.4; informational only).
    pub enum WorkerExitDetail {
        Invalid = "Invalid",
        PowerOff = "PowerOff",
        PowerOffCritical = "PowerOffCritical",
        Reset = "Reset",
        GuestCrash = "GuestCrash",
        GuestFirmwareCrash = "GuestFirmwareCrash",
        TripleFault = "TripleFault",
        DeviceFatalApicRequest = "DeviceFatalApicRequest",
        DeviceFatalMsrRequest = "DeviceFatalMsrRequest",
        DeviceFatalException = "DeviceFatalException",
        DeviceFatalError = "DeviceFatalError",
        DeviceMachineCheck = "DeviceMachineCheck",
        EmulatorError = "EmulatorError",
        VidTerminate = "VidTerminate",
        ProcessUnexpectedExit = "ProcessUnexpectedExit",
        InitializationFailure = "InitializationFailure",
        InitializationStartTimeout = "InitializationStartTimeout",
        ColdStartFailure = "ColdStartFailure",
        ResetStartFailure = "ResetStartFailure",
        FastRestoreStartFailure = "FastRestoreStartFailure",
        RestoreStartFailure = "RestoreStartFailure",
        FastSavePreservePartition = "FastSavePreservePartition",
        FastSavePreservePartitionHandleTransfer = "FastSavePreservePartitionHandleTransfer",
        FastSave = "FastSave",
        CloneTemplate = "CloneTemplate",
        Save = "Save",
        Migrate = "Migrate",
        MigrateFailure = "MigrateFailure",
        CannotReferenceVm = "CannotReferenceVm",
        MgotUnregister = "MgotUnregister",
        FastSavePreservePartitionHandleTransferStorage = "FastSavePreservePartitionHandleTransferStorage",
        FastSavePreservePartitionHandleTransferNetworking = "FastSavePreservePartitionHandleTransferNetworking",
        FastSavePreservePartitionHandleTransferStorageAndNetworking = "FastSavePreservePartitionHandleTransferStorageAndNetworking",
        FastSavePreservePartitionHsr = "FastSavePreservePartitionHsr",
        FastSavePreservePartitionWithHandleTransfer = "FastSavePreservePartitionWithHandleTransfer",
        FastSaveWithHandleTransfer = "FastSaveWithHandleTransfer",
    }
}

string_enum! {
    /// Outcome of the VM worker process (Linux: the per-VM VMM process), 2.4.
    pub enum WorkerExitType {
        None = "None",
        InitializationFailed = "InitializationFailed",
        Stopped = "Stopped",
        Saved = "Saved",
        StoppedOnReset = "StoppedOnReset",
        UnexpectedStop = "UnexpectedStop",
        ResetFailed = "ResetFailed",
        UnrecoverableError = "UnrecoverableError",
    }
}

string_enum! {
    /// An XSAVE processor feature (2.5).
    pub enum XsaveProcessorFeature {
        Xsave = "Xsave", XsaveOpt = "Xsave_Opt", Avx = "Avx", Avx2 = "Avx2", Fma = "Fma", Mpx = "Mpx",
        Avx512 = "Avx512", Avx512Dq = "Avx512Dq", Avx512Cd = "Avx512Cd", Avx512Bw = "Avx512Bw",
        Avx512Vl = "Avx512Vl", XsaveComp = "Xsave_Comp", XsaveSupervisor = "Xsave_Supervisor", Xcr1 = "Xcr1",
        Avx512Bitalg = "Avx512_Bitalg", Avx512Ifma = "AVX512_Ifma", Avx512Vbmi = "Avx512_Vbmi",
        Avx512Vbmi2 = "Avx512_Vbmi2", Avx512Vnni = "Avx512_Vnni", Gfni = "Gfni", Vaes = "Vaes",
        Avx512Vpopcntdq = "Avx512_Vpopcntdq", Vpclmulqdq = "Vpclmulqdq", Avx512Bf16 = "Avx512_Bf16",
        Avx512Vp2Intersect = "Avx512_Vp2Intersect", Avx512Fp16 = "Avx512Fp16", Xfd = "Xfd", AmxTile = "AmxTile",
        AmxBf16 = "AmxBf16", AmxInt8 = "AmxInt8", AvxVnni = "AvxVnni", SentinelAmdXsave = "SentinelAmdXsave",
    }
}

string_enum! {
    /// Undocumented `Container.IsolationType` (hcsshim): `HostProcess` marks a
    /// privileged container that shares the host namespaces.
    pub enum ContainerIsolationType { Process = "Process", HostProcess = "HostProcess" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_exact_and_round_trip() {
        assert_eq!(
            serde_json::to_string(&State::Running).ok().as_deref(),
            Some("\"Running\"")
        );
        assert_eq!(ProcessorFeature::Sse41.as_str(), "Sse4_1");
        assert_eq!(XsaveProcessorFeature::Avx512Ifma.as_str(), "AVX512_Ifma");
        assert_eq!(
            "GracefulExit".parse::<NotificationType>(),
            Ok(NotificationType::GracefulExit)
        );
        for v in ProcessorFeature::ALL {
            let json = serde_json::to_string(v).unwrap_or_default();
            let back: Option<ProcessorFeature> = serde_json::from_str(&json).ok();
            assert_eq!(back, Some(*v));
            assert_eq!(v.as_str().parse::<ProcessorFeature>().ok(), Some(*v));
        }
    }

    #[test]
    fn numbers_are_refused() {
        serde_json::from_str::<State>("1").unwrap_err();
    }

    #[test]
    fn parse_error_lists_values() {
        let e = "Runing"
            .parse::<State>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unknown State value `Runing`"), "{e}");
        assert!(e.contains("`Running`"), "{e}");
    }
}
