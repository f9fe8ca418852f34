//! Nothing a document asks for is silently ignored (issue 12, item 11): a
//! member that `hcs_schema::fields::TABLE` refuses is refused through the
//! API with `ERROR_NOT_SUPPORTED` and its JSON path, and the options of the
//! system operations must be JSON that sets nothing refused.

use hcs::{HResult, HcsError, Operation, System};
use hcs_integration_tests::*;
use serde_json::json;

/// `err` is `code` and its message names `needle`.
fn is(err: &HcsError, code: HResult, needle: &str) {
    assert_eq!(err.hresult, code, "{err}");
    assert!(
        err.message.contains(needle),
        "{needle:?} not in {:?}",
        err.message
    );
}

/// Creating `doc` fails with ERROR_NOT_SUPPORTED naming `path`, and leaves
/// nothing behind.
fn refused_create(test: &str, doc: &str, path: &str) {
    let ns = unique_namespace(test);
    let op = Operation::new();
    let err = match System::create_in_namespace(&ns, "f", doc, &op) {
        Err(e) => e,
        Ok(s) => {
            let e = op.wait(WAIT_MS).expect_err("create must fail");
            drop(s);
            e
        }
    };
    is(
        &err,
        HResult::ERROR_NOT_SUPPORTED,
        &format!("`{path}` is not supported"),
    );
    let l = leftovers(&ns);
    assert!(l.is_empty(), "left behind: {l:?}");
}

fn vm_doc(extra: serde_json::Value) -> String {
    let mut agent = json!({ "VirtualMachine": { "GuestConnection": { "UseVsock": true } } });
    merge_into(&mut agent, extra);
    test_guest_vm_doc("console=ttyS0 hcs.agent=1", agent)
}

#[test]
fn create_documents_that_set_refused_members_are_refused_with_the_path() {
    // Each of these used to be accepted and then ignored.
    refused_create(
        "fhosting",
        &container_doc(json!({ "HostingSystemId": "no-such-vm" })),
        "$.HostingSystemId",
    );
    refused_create(
        "fdns",
        &container_doc(
            json!({ "Container": { "Networking": { "AllowUnqualifiedDnsQuery": false } } }),
        ),
        "$.Container.Networking.AllowUnqualifiedDnsQuery",
    );
    refused_create(
        "fcache",
        &container_doc(json!({ "Container": { "Storage": { "Layers": [
            { "Path": rootfs(), "Cache": "Enabled" }
        ] } } })),
        "$.Container.Storage.Layers[0].Cache",
    );
    refused_create(
        "fcloud",
        &container_doc(json!({ "Container": { "MappedDirectories": [
            { "HostPath": rootfs(), "ContainerPath": "/mnt", "SupportCloudFiles": true }
        ] } })),
        "$.Container.MappedDirectories[0].SupportCloudFiles",
    );
    refused_create(
        "fqos",
        &vm_doc(json!({ "VirtualMachine": { "Version": { "Major": 9, "Minor": 0 } } })),
        "$.VirtualMachine.Version",
    );
    refused_create(
        "flimit",
        &vm_doc(
            json!({ "VirtualMachine": { "ComputeTopology": { "Processor": { "MaximumFrequencyMHz": 2000 } } } }),
        ),
        "$.VirtualMachine.ComputeTopology.Processor.MaximumFrequencyMHz",
    );
    refused_create(
        "fflush",
        &vm_doc(
            json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": { "0": {
            "Path": hcs_test_guest::test_guest_elf(), "SupportCompressedVolumes": true
        } } } } } } }),
        ),
        r#"$.VirtualMachine.Devices.Scsi["0"].Attachments["0"].SupportCompressedVolumes"#,
    );
    refused_create(
        "fpipe",
        &vm_doc(
            json!({ "VirtualMachine": { "Devices": { "ComPorts": { "0": { "NamedPipe": r"\\.\pipe\vm" } } } } }),
        ),
        r#"$.VirtualMachine.Devices.ComPorts["0"].NamedPipe"#,
    );
}

#[test]
fn operation_options_must_be_json_and_set_nothing_refused() {
    let ns = unique_namespace("foptions");
    let s = create(&ns, "c", &container_doc(json!({}))).expect("create");

    let e = call(|op| s.start(op, Some("start it now"))).unwrap_err();
    is(&e, HResult::HCS_E_INVALID_JSON, "StartOptions");
    let e = call(|op| s.start(op, Some(r#"{"DestinationMigrationOptions":{}}"#))).unwrap_err();
    is(
        &e,
        HResult::ERROR_NOT_SUPPORTED,
        "`$.DestinationMigrationOptions`",
    );
    call(|op| s.start(op, Some("{}"))).expect("start with empty options");

    let e = call(|op| s.pause(op, Some(r#"{"SuspensionLevel":"MemoryLow"}"#))).unwrap_err();
    is(&e, HResult::ERROR_NOT_SUPPORTED, "`$.SuspensionLevel`");
    call(|op| s.pause(op, Some(r#"{"SuspensionLevel":"Suspend"}"#))).expect("pause");
    let e = call(|op| s.resume(op, Some(r#"{"Now":true}"#))).unwrap_err();
    is(&e, HResult::HCS_E_INVALID_JSON, "$.Now");
    call(|op| s.resume(op, None)).expect("resume");

    let q = r#"{"PropertyTypes":[],"Queries":{"Memory":{}}}"#;
    let e = call(|op| s.get_properties(op, Some(q))).unwrap_err();
    is(&e, HResult::ERROR_NOT_SUPPORTED, "`$.Queries`");
    let e = call(|op| s.shutdown(op, Some(r#"{"Mechanism":"GuestConnection"}"#))).unwrap_err();
    is(&e, HResult::ERROR_NOT_SUPPORTED, "Mechanism");

    let e = call(|op| s.terminate(op, Some("now"))).unwrap_err();
    is(
        &e,
        HResult::HCS_E_INVALID_JSON,
        "HcsTerminateComputeSystem options",
    );
    let e = call(|op| s.terminate(op, Some(r#"{"Force":true}"#))).unwrap_err();
    is(&e, HResult::HCS_E_INVALID_JSON, "$.Force");
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Running");
    call(|op| s.terminate(op, Some("{}"))).expect("terminate with empty options");
    s.wait_for_exit(WAIT_MS).expect("exit status");
    drop(s);
    eventually(
        "the container is gone",
        std::time::Duration::from_secs(10),
        || leftovers(&ns).is_empty(),
    );
}

#[test]
fn oci_process_members_the_agent_cannot_honour_are_refused_in_a_vm() {
    let ns = unique_namespace("fociproc");
    let s = create_started(&ns, "vm", &vm_doc(json!({})));
    let mut c = Console::attach(&ns, "vm");
    c.expect("AGENT CONNECTED");
    // The agent takes the whole OciProcess but has no AppArmor.
    let params = json!({ "OciProcess": {
        "args": ["echo", "x"], "env": ["SECRET=1"], "cwd": "/",
        "user": { "uid": 0, "gid": 0 }, "apparmorProfile": "unconfined"
    } });
    let op = Operation::new();
    let e = s
        .create_process(&params.to_string(), &op)
        .and_then(|_| op.wait_process_info(WAIT_MS).map(|_| ()))
        .unwrap_err();
    is(&e, HResult::ERROR_NOT_SUPPORTED, "apparmorProfile");
    let status = terminate(&s);
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
}
