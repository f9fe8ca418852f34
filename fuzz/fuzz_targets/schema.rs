//! HCS documents: every kind the monitor and the client library parse,
//! through `from_json` and, where it exists, `validate()`, exactly as the
//! monitor does (`ComputeSystem` on create, `ProcessParameters` on
//! CreateProcess, `ModifySettingRequest` / `ProcessModifyRequest` on modify,
//! and the option documents). Whatever parses must serialise and parse back.
#![no_main]

use hcs_schema::requests::{
    CrashOptions, PauseOptions, SaveOptions, ShutdownOptions, SignalProcessOptions, StartOptions,
};
use hcs_schema::{
    from_json, from_value, to_json, ComputeSystem, HostedSystem, ModifySettingRequest,
    ProcessModifyRequest, ProcessParameters, SystemPropertyQuery, Validate,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parse, validate, and check that what parsed survives a round trip.
fn check<T: DeserializeOwned + Serialize + Validate>(json: &str, kind: &str) {
    if let Ok(doc) = from_json::<T>(json, kind) {
        let _ = doc.validate();
        let again = to_json(&doc);
        if let Err(e) = from_json::<T>(&again, kind) {
            panic!("{kind}: {again} was serialised from a parsed document but does not parse: {e}");
        }
    }
}

/// Parse only (documents without semantic rules).
fn parse<T: DeserializeOwned>(json: &str, kind: &str) {
    let _ = from_json::<T>(json, kind);
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    check::<ComputeSystem>(json, "ComputeSystem");
    check::<ProcessParameters>(json, "ProcessParameters");
    check::<ModifySettingRequest>(json, "ModifySettingRequest");
    check::<ProcessModifyRequest>(json, "ProcessModifyRequest");
    check::<HostedSystem>(json, "HostedSystem");
    parse::<ShutdownOptions>(json, "ShutdownOptions");
    parse::<PauseOptions>(json, "PauseOptions");
    parse::<SaveOptions>(json, "SaveOptions");
    parse::<CrashOptions>(json, "CrashOptions");
    parse::<StartOptions>(json, "StartOptions");
    parse::<SignalProcessOptions>(json, "SignalProcessOptions");
    parse::<SystemPropertyQuery>(json, "System_PropertyQuery");
    // Free-form members are parsed again at their path, as the monitor does
    // with a modify request's Settings.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
        let _ = from_value::<hcs_schema::virtual_machine::devices::Attachment>(
            &value,
            "ModifySettingRequest",
            "$.Settings",
        );
        let _ = from_value::<hcs_schema::ContainerMemory>(&value, "Container_Memory", "$.Settings");
    }
});
