//! The generated part of `include/computedefs.h`: every HRESULT the Rust
//! side knows (from [`hcs_errors::HResult::ALL`]) and the values of the
//! enumerations, rendered from the Rust definitions. The test
//! `tests/header.rs` fails when the header's block differs from
//! [`render`] (run it with `HCS_CAPI_BLESS=1` to rewrite the block).

use std::fmt::Write;

use hcs::{EventOptions, EventType, OperationType};
use hcs_errors::HResult;

/// First line of the generated block in computedefs.h.
pub const BEGIN: &str =
    "/* BEGIN GENERATED: rendered from the Rust definitions by hcs-capi (src/header.rs); do not edit */";
/// Last line of the generated block.
pub const END: &str = "/* END GENERATED */";

/// Every `HCS_OPERATION_TYPE` with its C name.
pub fn operation_types() -> Vec<(&'static str, i32)> {
    use OperationType as T;
    fn name(t: OperationType) -> &'static str {
        // Exhaustive: a new Rust variant fails to compile until named here.
        match t {
            T::None => "HcsOperationTypeNone",
            T::Enumerate => "HcsOperationTypeEnumerate",
            T::Create => "HcsOperationTypeCreate",
            T::Start => "HcsOperationTypeStart",
            T::Shutdown => "HcsOperationTypeShutdown",
            T::Pause => "HcsOperationTypePause",
            T::Resume => "HcsOperationTypeResume",
            T::Save => "HcsOperationTypeSave",
            T::Terminate => "HcsOperationTypeTerminate",
            T::Modify => "HcsOperationTypeModify",
            T::GetProperties => "HcsOperationTypeGetProperties",
            T::CreateProcess => "HcsOperationTypeCreateProcess",
            T::SignalProcess => "HcsOperationTypeSignalProcess",
            T::GetProcessInfo => "HcsOperationTypeGetProcessInfo",
            T::GetProcessProperties => "HcsOperationTypeGetProcessProperties",
            T::ModifyProcess => "HcsOperationTypeModifyProcess",
            T::Crash => "HcsOperationTypeCrash",
            T::LiveMigration => "HcsOperationTypeLiveMigration",
        }
    }
    let all = [
        T::None,
        T::Enumerate,
        T::Create,
        T::Start,
        T::Shutdown,
        T::Pause,
        T::Resume,
        T::Save,
        T::Terminate,
        T::Modify,
        T::GetProperties,
        T::CreateProcess,
        T::SignalProcess,
        T::GetProcessInfo,
        T::GetProcessProperties,
        T::ModifyProcess,
        T::Crash,
        T::LiveMigration,
    ];
    let mut v: Vec<(&'static str, i32)> = all.iter().map(|t| (name(*t), *t as i32)).collect();
    // In Microsoft's header only (no Rust counterpart: no call has them).
    v.extend([
        ("HcsOperationTypeReserved1", 16),
        ("HcsOperationTypeReserved2", 17),
        ("HcsOperationTypeReserved3", 18),
    ]);
    v.sort_by_key(|(_, n)| *n);
    v
}

/// Every `HCS_EVENT_TYPE` with its C name.
pub fn event_types() -> Vec<(&'static str, u32)> {
    use EventType as E;
    fn name(e: EventType) -> &'static str {
        match e {
            E::Invalid => "HcsEventInvalid",
            E::SystemExited => "HcsEventSystemExited",
            E::SystemCrashInitiated => "HcsEventSystemCrashInitiated",
            E::SystemCrashReport => "HcsEventSystemCrashReport",
            E::SystemRdpEnhancedModeStateChanged => "HcsEventSystemRdpEnhancedModeStateChanged",
            E::SystemSiloJobCreated => "HcsEventSystemSiloJobCreated",
            E::SystemGuestConnectionClosed => "HcsEventSystemGuestConnectionClosed",
            E::ProcessExited => "HcsEventProcessExited",
            E::OperationCallback => "HcsEventOperationCallback",
            E::ServiceDisconnect => "HcsEventServiceDisconnect",
            E::GroupVmLifecycle => "HcsEventGroupVmLifecycle",
            E::GroupLiveMigration => "HcsEventGroupLiveMigration",
            E::GroupOperationInfo => "HcsEventGroupOperationInfo",
        }
    }
    [
        E::Invalid,
        E::SystemExited,
        E::SystemCrashInitiated,
        E::SystemCrashReport,
        E::SystemRdpEnhancedModeStateChanged,
        E::SystemSiloJobCreated,
        E::SystemGuestConnectionClosed,
        E::ProcessExited,
        E::OperationCallback,
        E::ServiceDisconnect,
        E::GroupVmLifecycle,
        E::GroupLiveMigration,
        E::GroupOperationInfo,
    ]
    .iter()
    .map(|e| (name(*e), *e as u32))
    .collect()
}

/// Every `HCS_EVENT_OPTIONS` flag with its C name.
pub fn event_options() -> Vec<(&'static str, u32)> {
    vec![
        ("HcsEventOptionNone", EventOptions::NONE.0),
        (
            "HcsEventOptionEnableOperationCallbacks",
            EventOptions::ENABLE_OPERATION_CALLBACKS.0,
        ),
        (
            "HcsEventOptionEnableVmLifecycle",
            EventOptions::ENABLE_VM_LIFECYCLE.0,
        ),
        (
            "HcsEventOptionEnableLiveMigrationEvents",
            EventOptions::ENABLE_LIVE_MIGRATION_EVENTS.0,
        ),
    ]
}

/// The HRESULT constants, by name: every code of [`HResult::ALL`] plus
/// `E_HANDLE`. `ERROR_*` names are Win32 error codes in C (as in
/// winerror.h), so they are rendered as such; their HRESULT is
/// `HRESULT_FROM_WIN32(ERROR_...)`.
pub fn hresults() -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = HResult::ALL
        .iter()
        .map(|(code, name)| (name.to_string(), code.as_u32()))
        .collect();
    v.push((
        "E_HANDLE".to_string(),
        HResult::ERROR_INVALID_HANDLE.as_u32(),
    ));
    v
}

/// The generated block, markers included, ending with a newline.
pub fn render() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s);
    let _ = writeln!(s, "/* HRESULTs (winerror.h values). */");
    for (name, value) in hresults() {
        if let Some(win32) = name.strip_prefix("ERROR_").map(|_| value & 0xFFFF) {
            let _ = writeln!(
                s,
                "#ifndef {name}\n#define {name} {win32}L /* HRESULT_FROM_WIN32: 0x{value:08X} */\n#endif"
            );
        } else {
            let _ = writeln!(
                s,
                "#ifndef {name}\n#define {name} ((HRESULT)0x{value:08X})\n#endif"
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "typedef enum HCS_OPERATION_TYPE {{");
    for (name, value) in operation_types() {
        let _ = writeln!(s, "    {name} = {value},");
    }
    let _ = writeln!(s, "}} HCS_OPERATION_TYPE;");
    let _ = writeln!(s);
    let _ = writeln!(s, "typedef enum HCS_EVENT_TYPE {{");
    for (name, value) in event_types() {
        let _ = writeln!(s, "    {name} = 0x{value:08X},");
    }
    let _ = writeln!(s, "}} HCS_EVENT_TYPE;");
    let _ = writeln!(s);
    let _ = writeln!(s, "typedef enum HCS_EVENT_OPTIONS {{");
    for (name, value) in event_options() {
        let _ = writeln!(s, "    {name} = 0x{value:08X},");
    }
    let _ = writeln!(s, "}} HCS_EVENT_OPTIONS;");
    let _ = writeln!(s);
    let _ = writeln!(s, "{END}");
    s
}
