//! Bad documents and bad paths: a clear error naming what is wrong, and
//! nothing left behind.

use hcs::{HResult, Operation, System};
use hcs_integration_tests::*;

/// Create `doc`, expect failure with `code` and a message containing
/// `needle`; check the operation carries the same error as a ResultError and
/// that nothing was left on the host.
fn refused(test: &str, doc: &str, code: HResult, needle: &str) {
    let ns = unique_namespace(test);
    let op = Operation::new();
    let err = match System::create_in_namespace(&ns, "bad", doc, &op) {
        Err(e) => e,
        Ok(s) => {
            let e = op.wait(WAIT_MS).expect_err("create must fail");
            // The handle of a failed create is unusable, with a clear reason.
            let again = call(|o| s.start(o, None)).unwrap_err();
            assert_eq!(again.hresult, HResult::HCS_E_SYSTEM_NOT_FOUND);
            e
        }
    };
    assert_eq!(err.hresult, code, "{err}");
    assert!(
        err.message.contains(needle),
        "message {:?} should mention {needle:?}",
        err.message
    );
    let (hr, doc) = op.result_raw();
    assert_eq!(hr, code);
    let result_error: serde_json::Value =
        serde_json::from_str(&doc.expect("a ResultError document")).unwrap();
    assert_eq!(result_error["Error"], code.0);
    assert!(result_error["ErrorMessage"]
        .as_str()
        .unwrap()
        .contains(needle));
    let l = leftovers(&ns);
    assert!(l.is_empty(), "left behind: {l:?}");
}

#[test]
fn malformed_documents() {
    let json = HResult::HCS_E_INVALID_JSON;
    refused("empty", "", json, "ComputeSystem");
    refused("notjson", "{ nope", json, "line 1");
    refused("null", "null", json, "ComputeSystem");
    refused(
        "major",
        r#"{"SchemaVersion":{"Major":1,"Minor":0},"Container":{}}"#,
        json,
        "$.SchemaVersion.Major",
    );
    refused(
        "typo",
        &container_doc(serde_json::json!({ "Container": { "Memory": { "SizeInMb": 5 } } })),
        json,
        "$.Container.Memory",
    );
    refused(
        "type",
        &container_doc(serde_json::json!({ "Container": { "Memory": { "SizeInMB": "five" } } })),
        json,
        "$.Container.Memory.SizeInMB",
    );
    refused(
        "both",
        &container_doc(
            serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Memory": { "SizeInMB": 64 } } } }),
        ),
        json,
        "exactly one",
    );
    refused("deep", &"[".repeat(10_000), json, "ComputeSystem");
    refused(
        "nostorage",
        r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{}}"#,
        json,
        "Storage",
    );
}

#[test]
fn bad_paths_and_unsupported_features() {
    refused(
        "layer",
        r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Layers":[{"Id":"x","Path":"/no/such/layer"}]}}}"#,
        HResult::ERROR_PATH_NOT_FOUND,
        "/no/such/layer",
    );
    refused(
        "relative",
        r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Layers":[{"Id":"x","Path":"rootfs"}]}}}"#,
        HResult::ERROR_BAD_PATHNAME,
        "absolute",
    );
    refused(
        "mapped",
        &container_doc(
            serde_json::json!({ "Container": { "MappedDirectories": [ { "HostPath": "/no/such/dir", "ContainerPath": "/x" } ] } }),
        ),
        HResult::ERROR_PATH_NOT_FOUND,
        "MappedDirectories[0].HostPath",
    );
    // runc's rule for mounts over /proc: a bind of the host's / there, or a
    // writable bind of the host's /proc/sys, is refused.
    for (i, (host, dest)) in [("/", "/proc"), ("/proc/sys", "/proc/sys")]
        .into_iter()
        .enumerate()
    {
        refused(
            &format!("proc{i}"),
            &container_doc(
                serde_json::json!({ "Container": { "MappedDirectories": [ { "HostPath": host, "ContainerPath": dest } ] } }),
            ),
            HResult::HCS_E_INVALID_JSON,
            "MappedDirectories[0].ContainerPath",
        );
    }
    refused(
        "registry",
        &container_doc(
            serde_json::json!({ "Container": { "RegistryChanges": { "AddValues": [ { "Name": "x" } ] } } }),
        ),
        HResult::ERROR_NOT_SUPPORTED,
        "RegistryChanges",
    );
    refused(
        "vm",
        r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMB":64},"Processor":{"Count":1}}}}"#,
        HResult::HCS_E_INVALID_JSON,
        "LinuxKernelDirect is required",
    );
}

#[test]
fn bad_ids_are_refused_before_anything_happens() {
    let doc = container_doc(serde_json::json!({}));
    for id in ["", "a/b", "..", ".hidden", "sp ace", &"x".repeat(200)] {
        let op = Operation::new();
        let e = System::create_in_namespace(&unique_namespace("ids"), id, &doc, &op).unwrap_err();
        assert_eq!(e.hresult, HResult::E_INVALIDARG, "{id:?}");
    }
}

#[test]
fn a_container_in_a_hosting_system_is_refused_not_run_on_the_host() {
    // Whether or not the id names a VM: containers in VMs do not exist yet.
    let mut doc: serde_json::Value =
        serde_json::from_str(&container_doc(serde_json::json!({}))).unwrap();
    doc["HostingSystemId"] = "no-such-vm".into();
    refused(
        "hostingid",
        &doc.to_string(),
        HResult::ERROR_NOT_SUPPORTED,
        "$.HostingSystemId",
    );
}
