//! Requests and operation options (reference sections 5.7 and 5.9): modify,
//! pause, save, shutdown, crash, start, and the process modify/signal requests.

use std::fmt;

use hcs_errors::HcsError;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::enums::{
    CrashType, ModifyOperation, ModifyRequestType, ModifyResourceType, PauseReason,
    PauseSuspensionLevel, ProcessSignal, SaveType, ShutdownMechanism, ShutdownType, StdHandle,
};
use crate::validate::{self, error, Validate};

hcs_struct! {
    /// Document of HcsModifyComputeSystem. See reference section 5.15 for the
    /// `Settings` type of each `ResourcePath`.
    pub struct ModifySettingRequest {
        /// Resource to modify, e.g. `VirtualMachine/ComputeTopology/Memory/SizeInMB`, 2.1.
        "ResourcePath" => resource_path: String,
        /// `Add`, `Remove`, `Update` (hcsshim also `PreAdd`).
        "RequestType" => request_type: ModifyRequestType,
        /// Resource-specific settings (an object, or a scalar such as 4096).
        "Settings" => settings: Value,
        /// Request forwarded to the guest agent (`GuestModifySettingRequest`), 2.1.
        "GuestRequest" => guest_request: Value,
    }
}

hcs_struct! {
    /// Guest-side part of a modify request, 2.1.
    pub struct GuestModifySettingRequest {
        /// Guest resource kind.
        "ResourceType" => resource_type: ModifyResourceType,
        /// `Add`, `Remove`, `Update`.
        "RequestType" => request_type: ModifyRequestType,
        /// Resource-specific settings.
        "Settings" => settings: Value,
    }
}

hcs_struct! {
    /// Options of HcsPauseComputeSystem.
    pub struct PauseOptions {
        /// How deeply to suspend.
        "SuspensionLevel" => suspension_level: PauseSuspensionLevel,
        /// Notification to guest components, 2.1.
        "HostedNotification" => hosted_notification: PauseNotification,
    }
}

hcs_struct! {
    /// Reason for a pause told to guest components, 2.1.
    pub struct PauseNotification {
        /// `None`, `Save` or `Template`.
        "Reason" => reason: PauseReason,
    }
}

hcs_struct! {
    /// Options of HcsSaveComputeSystem (VMs only), 2.1.
    pub struct SaveOptions {
        /// `ToFile` or `AsTemplate`.
        "SaveType" => save_type: SaveType,
        /// Destination `.vmrs` file.
        "SaveStateFilePath" => save_state_file_path: String,
    }
}

hcs_struct! {
    /// Options of HcsShutDownComputeSystem, 2.5.
    pub struct ShutdownOptions {
        /// Guest connection or integration service.
        "Mechanism" => mechanism: ShutdownMechanism,
        /// Shutdown, hibernate or reboot.
        "Type" => shutdown_type: ShutdownType,
        /// Force.
        "Force" => force: bool,
        /// Reason, for logs.
        "Reason" => reason: String,
        /// Linux extension, not in Microsoft's schema: how long (ms) a graceful
        /// shutdown may take before the system is terminated.
        "TimeoutInMs" => timeout_in_ms: u64,
    }
}

hcs_struct! {
    /// Options of HcsCrashComputeSystem (`{"Type":"CrashGuest"}`), 2.3.
    pub struct CrashOptions {
        /// Kind of crash.
        "Type" => crash_type: CrashType,
    }
}

hcs_struct! {
    /// Options of HcsTerminateComputeSystem: HCS defines none, so only an
    /// empty object (or no options at all) is accepted.
    pub struct TerminateOptions {}
}

hcs_struct! {
    /// Options of HcsResumeComputeSystem: HCS defines none, so only an empty
    /// object (or no options at all) is accepted.
    pub struct ResumeOptions {}
}

hcs_struct! {
    /// Options of HcsStartComputeSystem as sent by hcsshim (undocumented).
    pub struct StartOptions {
        /// Live-migration destination options (`{"NetworkSettings":{"SessionId":n}}`), kept opaque.
        "DestinationMigrationOptions" => destination_migration_options: Value,
    }
}

hcs_struct! {
    /// Settings of `VirtualMachine/ComputeTopology/Processor/IdledProcessors`, 2.3.
    pub struct IdleProcessorsRequest {
        /// Number of processors to idle.
        "IdleProcessorCount" => idle_processor_count: u32,
    }
}

hcs_struct! {
    /// Settings of `VirtualMachine/ComputeTopology/Processor/Limits`, 2.4.
    pub struct ProcessorLimits {
        /// Limit, 1..=100000.
        "Limit" => limit: u64,
        /// Weight.
        "Weight" => weight: u64,
        /// Reservation.
        "Reservation" => reservation: u64,
        /// Maximum frequency.
        "MaximumFrequencyMHz" => maximum_frequency_mhz: u32,
    }
}

hcs_struct! {
    /// Processor modification of a system, 2.1.
    pub struct SystemProcessorModificationRequest {
        /// CPU group GUID.
        "GroupId" => group_id: String,
    }
}

hcs_struct! {
    /// Document of HcsModifyProcess.
    pub struct ProcessModifyRequest {
        /// `ConsoleSize` or `CloseHandle`; the member of that name must be set.
        "Operation" => operation: ModifyOperation,
        /// New console size.
        "ConsoleSize" => console_size: ConsoleSize,
        /// Handle(s) to close.
        "CloseHandle" => close_handle: CloseHandle,
    }
}

hcs_struct! {
    /// Console size of a `ProcessModifyRequest` (Linux: TIOCSWINSZ).
    pub struct ConsoleSize {
        /// Rows.
        "Height" => height: u16,
        /// Columns.
        "Width" => width: u16,
    }
}

hcs_struct! {
    /// Handle(s) closed by a `ProcessModifyRequest`.
    pub struct CloseHandle {
        /// `StdIn`, `StdOut`, `StdErr` or `All`.
        "Handle" => handle: StdHandle,
    }
}

hcs_struct! {
    /// Options of HcsSignalProcess.
    pub struct SignalProcessOptions {
        /// A console control event or a POSIX signal number.
        "Signal" => signal: Signal,
    }
}

/// `SignalProcessOptions.Signal`: a Windows console control event
/// (`"CtrlC"`, ...) or, as hcsshim's Linux GCS sends it, a POSIX signal
/// number 1..=64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// A console control event, serialised as its string.
    Console(ProcessSignal),
    /// A POSIX signal number 1..=64, serialised as an integer.
    Number(u8),
}

/// Largest POSIX signal number accepted (`SIGRTMAX` on Linux).
pub const MAX_SIGNAL: u8 = 64;

impl Signal {
    /// A numeric signal, if `n` is in 1..=64.
    pub fn number(n: i64) -> Option<Signal> {
        u8::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_SIGNAL).contains(n))
            .map(Signal::Number)
    }

    /// The POSIX signal to deliver: CtrlC → SIGINT (2), CtrlBreak → SIGQUIT (3),
    /// CtrlClose → SIGHUP (1), CtrlLogOff → SIGHUP (1), CtrlShutdown → SIGTERM (15);
    /// numbers as given.
    pub fn posix_number(self) -> i32 {
        match self {
            Signal::Console(ProcessSignal::CtrlC) => 2,
            Signal::Console(ProcessSignal::CtrlBreak) => 3,
            Signal::Console(ProcessSignal::CtrlClose) => 1,
            Signal::Console(ProcessSignal::CtrlLogOff) => 1,
            Signal::Console(ProcessSignal::CtrlShutdown) => 15,
            Signal::Number(n) => i32::from(n),
        }
    }
}

impl From<ProcessSignal> for Signal {
    fn from(s: ProcessSignal) -> Signal {
        Signal::Console(s)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Console(s) => f.write_str(s.as_str()),
            Signal::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Signal::Console(s) => serializer.serialize_str(s.as_str()),
            Signal::Number(n) => serializer.serialize_u8(*n),
        }
    }
}

/// The values a `Signal` accepts, for error messages.
fn expected_signals() -> String {
    let names: Vec<String> = ProcessSignal::ALL
        .iter()
        .map(|s| format!("`{s}`"))
        .collect();
    format!(
        "one of {} or a POSIX signal number 1..={MAX_SIGNAL}",
        names.join(", ")
    )
}

/// Message for an out-of-range signal number.
fn bad_number(v: impl fmt::Display) -> String {
    let names: Vec<String> = ProcessSignal::ALL
        .iter()
        .map(|s| format!("`{s}`"))
        .collect();
    format!(
        "invalid signal number {v}: POSIX signal numbers are 1..={MAX_SIGNAL} (or use one of {})",
        names.join(", ")
    )
}

struct SignalVisitor;

impl Visitor<'_> for SignalVisitor {
    type Value = Signal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a signal: {}", expected_signals())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Signal, E> {
        v.parse::<ProcessSignal>()
            .map(Signal::Console)
            .map_err(|_| {
                E::custom(format!(
                    "invalid signal \"{v}\": expected {}",
                    expected_signals()
                ))
            })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Signal, E> {
        i64::try_from(v)
            .ok()
            .and_then(Signal::number)
            .ok_or_else(|| E::custom(bad_number(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Signal, E> {
        Signal::number(v).ok_or_else(|| E::custom(bad_number(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Signal, E> {
        Err(E::custom(format!(
            "invalid signal {v}: expected {}",
            expected_signals()
        )))
    }
}

// A signal is a leaf of the classification walk (crate::fields).
impl crate::fields::Fields for Signal {}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Signal, D::Error> {
        deserializer.deserialize_any(SignalVisitor)
    }
}

impl ProcessModifyRequest {
    /// `Operation` present and the member it names present and complete.
    pub fn validate(&self) -> Result<(), HcsError> {
        const DOC: &str = "ProcessModifyRequest";
        match self.operation {
            None => Err(error(
                DOC,
                "$.Operation",
                "missing; expected `ConsoleSize` or `CloseHandle`",
            )),
            Some(ModifyOperation::ConsoleSize) => match &self.console_size {
                None => Err(error(
                    DOC,
                    "$.ConsoleSize",
                    "missing; `Operation` is `ConsoleSize`",
                )),
                Some(size) if size.height.is_none() || size.width.is_none() => Err(error(
                    DOC,
                    "$.ConsoleSize",
                    "needs both `Height` and `Width`",
                )),
                Some(_) => Ok(()),
            },
            Some(ModifyOperation::CloseHandle) => match &self.close_handle {
                None => Err(error(
                    DOC,
                    "$.CloseHandle",
                    "missing; `Operation` is `CloseHandle`",
                )),
                Some(close) if close.handle.is_none() => Err(error(
                    DOC,
                    "$.CloseHandle.Handle",
                    "missing; expected `StdIn`, `StdOut`, `StdErr` or `All`",
                )),
                Some(_) => Ok(()),
            },
        }
    }
}

impl Validate for ProcessModifyRequest {
    fn validate(&self) -> Result<(), HcsError> {
        ProcessModifyRequest::validate(self)
    }
}

impl ModifySettingRequest {
    /// A request must name a `ResourcePath` or carry a `GuestRequest`; the
    /// path may not contain NUL.
    pub fn validate(&self) -> Result<(), HcsError> {
        const DOC: &str = "ModifySettingRequest";
        match (&self.resource_path, &self.guest_request) {
            (None, None) => Err(error(DOC, "$", "neither `ResourcePath` nor `GuestRequest` is set; nothing to modify")),
            (Some(p), _) if p.is_empty() && self.guest_request.is_none() => {
                Err(error(DOC, "$.ResourcePath", "is empty; expected a resource such as `VirtualMachine/Devices/Scsi/0/Attachments/1`"))
            }
            (Some(p), _) => validate::check_no_nul(DOC, "$.ResourcePath", p),
            (None, Some(_)) => Ok(()),
        }
    }
}

impl Validate for ModifySettingRequest {
    fn validate(&self) -> Result<(), HcsError> {
        ModifySettingRequest::validate(self)
    }
}
