//! The messages clients and monitors exchange.

use serde::{Deserialize, Serialize};

use hcs_errors::{HResult, HcsError};

/// A client request and the id its response will carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client, unique per connection.
    pub id: u64,
    /// What is asked.
    pub request: Request,
}

/// What a connection stands for, given in [`Request::Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionKind {
    /// Holds an `HCS_SYSTEM` handle: counts for `ShouldTerminateOnLastHandleClosed`
    /// and receives events.
    Handle,
    /// A short query (enumeration): no handle, no events.
    Query,
}

/// Requests a client sends to a monitor. Documents are the caller's JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// First message on a connection to `control.sock`.
    Hello {
        version: u32,
        kind: ConnectionKind,
        client_pid: u32,
    },
    /// First message on the socket pair of a freshly spawned monitor: create
    /// the system. Implies `Hello` with [`ConnectionKind::Handle`].
    Create {
        version: u32,
        namespace: String,
        id: String,
        document: String,
        client_pid: u32,
    },
    /// HcsStartComputeSystem.
    Start { options: Option<String> },
    /// HcsShutDownComputeSystem.
    Shutdown { options: Option<String> },
    /// HcsTerminateComputeSystem.
    Terminate { options: Option<String> },
    /// HcsCrashComputeSystem.
    Crash { options: Option<String> },
    /// HcsPauseComputeSystem.
    Pause { options: Option<String> },
    /// HcsResumeComputeSystem.
    Resume { options: Option<String> },
    /// HcsSaveComputeSystem.
    Save { options: Option<String> },
    /// HcsGetComputeSystemProperties.
    GetProperties { query: Option<String> },
    /// HcsModifyComputeSystem.
    Modify { settings: String },
    /// HcsWaitForComputeSystemExit: answered when the system has exited.
    WaitForExit,
    /// HcsCreateProcess.
    CreateProcess { parameters: String },
    /// HcsOpenProcess.
    OpenProcess { pid: u32 },
    /// HcsTerminateProcess.
    TerminateProcess {
        process: ProcessRef,
        options: Option<String>,
    },
    /// HcsSignalProcess.
    SignalProcess {
        process: ProcessRef,
        options: Option<String>,
    },
    /// HcsGetProcessInfo.
    GetProcessInfo { process: ProcessRef },
    /// HcsGetProcessProperties.
    GetProcessProperties {
        process: ProcessRef,
        query: Option<String>,
    },
    /// HcsModifyProcess.
    ModifyProcess {
        process: ProcessRef,
        settings: String,
    },
    /// The client closed its `HCS_SYSTEM` handle but keeps the connection for
    /// process handles. The monitor stops counting it as a system handle.
    ReleaseSystemHandle,
}

impl Request {
    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "Hello",
            Request::Create { .. } => "Create",
            Request::Start { .. } => "Start",
            Request::Shutdown { .. } => "Shutdown",
            Request::Terminate { .. } => "Terminate",
            Request::Crash { .. } => "Crash",
            Request::Pause { .. } => "Pause",
            Request::Resume { .. } => "Resume",
            Request::Save { .. } => "Save",
            Request::GetProperties { .. } => "GetProperties",
            Request::Modify { .. } => "Modify",
            Request::WaitForExit => "WaitForExit",
            Request::CreateProcess { .. } => "CreateProcess",
            Request::OpenProcess { .. } => "OpenProcess",
            Request::TerminateProcess { .. } => "TerminateProcess",
            Request::SignalProcess { .. } => "SignalProcess",
            Request::GetProcessInfo { .. } => "GetProcessInfo",
            Request::GetProcessProperties { .. } => "GetProcessProperties",
            Request::ModifyProcess { .. } => "ModifyProcess",
            Request::ReleaseSystemHandle => "ReleaseSystemHandle",
        }
    }
}

/// Names one process of a system: its pid inside the system and a token the
/// monitor gave it, so a handle never reaches a later process that reused the pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessRef {
    /// Pid inside the compute system.
    pub pid: u32,
    /// Unique per monitor.
    pub token: u64,
}

/// Which standard handles came with a response, in this order as descriptors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioPresent {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Process information of CreateProcess, OpenProcess and GetProcessInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The process.
    pub process: ProcessRef,
    /// Which descriptors are attached to the response.
    pub stdio: StdioPresent,
}

/// The outcome of a request: an HRESULT and an optional result document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// S_OK or the failure.
    pub hresult: HResult,
    /// The call's result document, or a `ResultError` on failure.
    pub document: Option<String>,
    /// For process requests.
    pub process: Option<ProcessInfo>,
}

impl Outcome {
    /// Success with an optional document.
    pub fn ok(document: Option<String>) -> Outcome {
        Outcome {
            hresult: HResult::S_OK,
            document,
            process: None,
        }
    }

    /// Failure with its `ResultError` document.
    pub fn error(err: &HcsError) -> Outcome {
        Outcome {
            hresult: err.hresult,
            document: Some(result_error_json(err)),
            process: None,
        }
    }
}

/// A `ResultError` document for an error: `{"Error":..,"ErrorMessage":..}`.
pub fn result_error_json(err: &HcsError) -> String {
    serde_json::json!({ "Error": err.hresult.0, "ErrorMessage": err.message }).to_string()
}

/// Events a monitor pushes to every handle connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EventMessage {
    /// The system stopped; `status` is a `SystemExitStatus` document.
    SystemExited { status: String },
    /// A process exited; `status` is a `ProcessStatus` document.
    ProcessExited { process: ProcessRef, status: String },
    /// The guest connection closed (VMs with an agent).
    GuestConnectionClosed,
    /// The guest began to crash; `report` is a `CrashReport` document.
    CrashInitiated { report: String },
    /// The guest crash report is ready.
    CrashReport { report: String },
}

/// What a monitor sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The answer to request `id`. Descriptors, if any, ride on this message.
    Response { id: u64, outcome: Outcome },
    /// An event.
    Event(EventMessage),
}
