//! The option documents of the lifecycle calls (start, pause, resume,
//! shut down, terminate), with a real container: each is parsed as JSON,
//! what Linux can do is done, the rest is refused naming its JSON path, and
//! a refused call changes nothing.

use hcs::{HResult, HcsError, System};
use hcs_integration_tests::*;

fn refused(r: hcs::HcsResult<Option<String>>, code: HResult, needle: &str) -> HcsError {
    let e = r.expect_err("the options were accepted");
    assert_eq!(e.hresult, code, "{e}");
    assert!(e.message.contains(needle), "{needle:?} not in: {e}");
    e
}

fn state(s: &System) -> String {
    properties(s, &[]).unwrap()["State"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn lifecycle_options_are_json_honoured_or_refused_with_their_path() {
    let ns = unique_namespace("options");
    let s = create(&ns, "c1", &container_doc(serde_json::json!({}))).unwrap();

    // Start: text that is not JSON, an unknown member, live migration.
    let json = HResult::HCS_E_INVALID_JSON;
    refused(
        call(|op| s.start(op, Some("please start"))),
        json,
        "StartOptions",
    );
    refused(
        call(|op| s.start(op, Some(r#"{"Bogus":1}"#))),
        json,
        "Bogus",
    );
    refused(
        call(|op| s.start(op, Some(r#"{"DestinationMigrationOptions":{}}"#))),
        HResult::ERROR_NOT_SUPPORTED,
        "`$.DestinationMigrationOptions`",
    );
    assert_eq!(state(&s), "Created");
    call(|op| s.start(op, Some("{}"))).unwrap();
    assert_eq!(state(&s), "Running");

    // Pause: only Suspend keeps memory as it is; the reason is accepted.
    refused(call(|op| s.pause(op, Some("now"))), json, "PauseOptions");
    refused(
        call(|op| s.pause(op, Some(r#"{"SuspensionLevel":"MemoryHigh"}"#))),
        HResult::ERROR_NOT_SUPPORTED,
        "`$.SuspensionLevel`",
    );
    assert_eq!(state(&s), "Running");
    call(|op| {
        s.pause(
            op,
            Some(r#"{"SuspensionLevel":"Suspend","HostedNotification":{"Reason":"Template"}}"#),
        )
    })
    .unwrap();
    assert_eq!(state(&s), "Paused");

    // Resume takes no options.
    refused(
        call(|op| s.resume(op, Some("go"))),
        json,
        "HcsResumeComputeSystem",
    );
    refused(
        call(|op| s.resume(op, Some(r#"{"Fast":true}"#))),
        json,
        "$.Fast",
    );
    assert_eq!(state(&s), "Paused");
    call(|op| s.resume(op, Some("{}"))).unwrap();
    assert_eq!(state(&s), "Running");

    // Shut down: not JSON, and a mechanism a container does not have.
    refused(
        call(|op| s.shutdown(op, Some("bye"))),
        json,
        "ShutdownOptions",
    );
    refused(
        call(|op| s.shutdown(op, Some(r#"{"Mechanism":"GuestConnection"}"#))),
        HResult::ERROR_NOT_SUPPORTED,
        "ShutdownOptions.Mechanism",
    );
    assert_eq!(state(&s), "Running");

    // Terminate takes no options.
    refused(
        call(|op| s.terminate(op, Some("kill"))),
        json,
        "HcsTerminateComputeSystem",
    );
    refused(
        call(|op| s.terminate(op, Some(r#"{"Force":true}"#))),
        json,
        "$.Force",
    );
    assert_eq!(state(&s), "Running");
    call(|op| s.terminate(op, Some("{}"))).unwrap();
    s.wait_for_exit(WAIT_MS).unwrap();
}

/// A VM of the test guest, without a guest connection.
fn vm_doc() -> String {
    vm_doc_with(serde_json::json!({}))
}

fn vm_doc_with(extra: serde_json::Value) -> String {
    test_guest_vm_doc("console=ttyS0 hcs.test=1", extra)
}

#[test]
fn guest_connection_transports_linux_lacks_are_refused_with_their_path() {
    let ns = unique_namespace("guestconn");
    for (member, path) in [
        ("UseVsock", "VirtualMachine.GuestConnection.UseVsock"),
        (
            "UseConnectedSuspend",
            "VirtualMachine.GuestConnection.UseConnectedSuspend",
        ),
    ] {
        let doc = vm_doc_with(serde_json::json!({
            "VirtualMachine": { "GuestConnection": { member: false } }
        }));
        let e = create(&ns, "vm", &doc).expect_err("refused");
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{e}");
        assert!(e.message.contains(path), "{e}");
    }
    // What is done (vsock, the connection kept across pause) is accepted.
    let doc = vm_doc_with(serde_json::json!({
        "VirtualMachine": { "GuestConnection": {
            "UseVsock": true, "UseConnectedSuspend": true, "UseHostTimeZone": true
        } }
    }));
    let s = create(&ns, "vm", &doc).unwrap();
    call(|op| s.terminate(op, None)).unwrap();
    s.wait_for_exit(WAIT_MS).unwrap();
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn shutdown_mechanism_picks_the_agent_or_the_power_button() {
    let ns = unique_namespace("shutmech");
    let s = create_started(&ns, "vm", &vm_doc());
    let mut c = Console::attach(&ns, "vm");
    c.expect("HCS-TEST-GUEST READY");
    // No guest connection: GuestConnection cannot be used, and nothing happens.
    refused(
        call(|op| s.shutdown(op, Some(r#"{"Mechanism":"GuestConnection"}"#))),
        HResult::HCS_E_CONNECTION_CLOSED,
        "ShutdownOptions.Mechanism",
    );
    assert_eq!(state(&s), "Running");
    // IntegrationService is the guest's own shutdown: the power button.
    call(|op| {
        s.shutdown(
            op,
            Some(r#"{"Mechanism":"IntegrationService","Reason":"test","TimeoutInMs":30000}"#),
        )
    })
    .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
}
