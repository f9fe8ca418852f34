//! Compute system lifecycle through the API, with real containers.

use std::sync::mpsc;
use std::time::Duration;

use hcs::{EventOptions, EventType, HResult, Operation, System, GENERIC_ALL};
use hcs_integration_tests::*;

const EVENT_WAIT: Duration = Duration::from_secs(20);

fn freezer_state(ns: &str, id: &str) -> String {
    let leaf = format!("{ns}@{id}");
    for c in leftovers(ns)
        .cgroups
        .into_iter()
        .filter(|c| c.ends_with(&leaf))
    {
        if let Ok(s) = std::fs::read_to_string(c.join("freezer.state")) {
            return s.trim().to_string();
        }
        if let Ok(s) = std::fs::read_to_string(c.join("cgroup.events")) {
            return if s.contains("frozen 1") {
                "FROZEN".into()
            } else {
                "THAWED".into()
            };
        }
    }
    panic!("no freezer for {leaf}");
}

#[test]
fn create_start_pause_resume_terminate() {
    let ns = unique_namespace("lifecycle");
    let s = create(&ns, "c1", &container_doc(serde_json::json!({}))).unwrap();
    let p = properties(&s, &[]).unwrap();
    assert_eq!(p["Id"], "c1");
    assert_eq!(p["SystemType"], "Container");
    assert_eq!(p["State"], "Created");
    assert_eq!(p["RuntimeOsType"], "Linux");
    assert_eq!(p["Owner"], "hcs-tests");

    let (tx, rx) = mpsc::channel();
    s.set_callback(EventOptions::NONE, move |ev| {
        tx.send((ev.event_type, ev.data.clone())).unwrap()
    })
    .unwrap();

    call(|op| s.start(op, None)).unwrap();
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Running");
    let e = call(|op| s.start(op, None)).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_STATE);

    call(|op| {
        s.pause(
            op,
            Some(r#"{"SuspensionLevel":"Suspend","HostedNotification":{"Reason":"Save"}}"#),
        )
    })
    .unwrap();
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Paused");
    assert_eq!(freezer_state(&ns, "c1"), "FROZEN");
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["true"]}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_STATE, "{e}");
    call(|op| s.resume(op, None)).unwrap();
    assert_eq!(freezer_state(&ns, "c1"), "THAWED");
    assert_eq!(run(&s, &["echo", "alive"]).stdout, "alive\n");

    let status = terminate(&s);
    assert_eq!(status["ExitType"], "ForcedExit");
    assert_eq!(
        status["Attribution"][0]["SystemExit"]["Detail"],
        "Terminate"
    );
    let (t, data) = rx.recv_timeout(EVENT_WAIT).unwrap();
    assert_eq!(t, EventType::SystemExited);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data.unwrap()).unwrap(),
        status
    );

    // Stopped: only the exit status remains.
    let p = properties(&s, &[]).unwrap();
    assert_eq!(
        (
            p["State"].as_str(),
            p["Stopped"].as_bool(),
            p["ExitType"].as_str()
        ),
        (Some("Stopped"), Some(true), Some("ForcedExit"))
    );
    assert_eq!(
        properties(&s, &["Statistics"]).unwrap_err().hresult,
        HResult::HCS_E_SYSTEM_ALREADY_STOPPED
    );
    assert_eq!(
        call(|op| s.terminate(op, None)).unwrap_err().hresult,
        HResult::HCS_E_SYSTEM_ALREADY_STOPPED
    );
    assert_eq!(
        call(|op| s.shutdown(op, None)).unwrap_err().hresult,
        HResult::HCS_E_SYSTEM_ALREADY_STOPPED
    );
    assert_eq!(
        System::open_in_namespace(&ns, "c1", GENERIC_ALL)
            .unwrap_err()
            .hresult,
        HResult::HCS_E_SYSTEM_NOT_FOUND
    );
    s.close();
    let l = leftovers(&ns);
    assert!(l.is_empty(), "left behind: {l:?}");
}

#[test]
fn one_operation_reused_for_every_call() {
    // The Tutorial's pattern: one operation for create, start, properties, terminate.
    let ns = unique_namespace("reuse");
    let op = Operation::new();
    let s =
        System::create_in_namespace(&ns, "t", &container_doc(serde_json::json!({})), &op).unwrap();
    assert!(
        op.wait(WAIT_MS).unwrap().is_none(),
        "create has no result document"
    );
    assert_eq!(op.operation_type(), hcs::OperationType::Create);
    s.start(&op, None).unwrap();
    op.wait(WAIT_MS).unwrap();
    assert_eq!(op.operation_type(), hcs::OperationType::Start);
    s.get_properties(&op, Some(r#"{"PropertyTypes":["Memory"]}"#))
        .unwrap();
    let doc = op.wait(WAIT_MS).unwrap().expect("properties document");
    let p: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert!(
        p["Memory"]["VirtualMachineMemory"]["AssignedMemory"]
            .as_u64()
            .unwrap()
            > 0,
        "{p}"
    );
    assert_eq!(
        op.system().map(|x| x.id().to_string()),
        Some("t".to_string())
    );
    s.terminate(&op, None).unwrap();
    op.wait(WAIT_MS).unwrap();
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn terminate_a_system_that_never_started() {
    let ns = unique_namespace("neverstarted");
    let s = create(&ns, "idle", &container_doc(serde_json::json!({}))).unwrap();
    assert!(
        !leftovers(&ns).cgroups.is_empty(),
        "a created container already has its cgroup"
    );
    let status = terminate(&s);
    assert_eq!(status["ExitType"], "ForcedExit");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn duplicate_ids_are_refused() {
    let ns = unique_namespace("dup");
    let doc = container_doc(serde_json::json!({}));
    let s = create(&ns, "same", &doc).unwrap();
    let e = create(&ns, "same", &doc).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_SYSTEM_ALREADY_EXISTS, "{e}");
    terminate(&s);
    // Once it is gone the id is free again.
    let s = create(&ns, "same", &doc).unwrap();
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn graceful_shutdown_and_shutdown_that_times_out() {
    let ns = unique_namespace("shutdown");
    let doc = container_doc(serde_json::json!({}));
    // A container whose processes stop on SIGTERM.
    let s = create_started(&ns, "polite", &doc);
    let op = Operation::new();
    let sleeper = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    call(|op| s.shutdown(op, Some(r#"{"TimeoutInMs":20000}"#))).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert_eq!(status["Status"], 0);
    assert_eq!(status["Attribution"][0]["SystemExit"]["Detail"], "Shutdown");
    assert_eq!(
        exit_of(&sleeper),
        128 + 15,
        "sleep dies of the SIGTERM passed on by init"
    );

    // One that ignores SIGTERM: terminated when the timeout runs out.
    let s = create_started(&ns, "stubborn", &doc);
    let op = Operation::new();
    let p = s.create_process(r#"{"CommandArgs":["sh","-c","trap '' TERM; echo ready; sleep 1000 & wait"],"CreateStdOutPipe":true}"#, &op).unwrap();
    let info = op.wait_process_info(WAIT_MS).unwrap();
    // Wait until the trap is installed: the shell says so.
    let mut out = std::fs::File::from(info.std_output.unwrap());
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    let shutdown = Operation::new();
    s.shutdown(&shutdown, Some(r#"{"TimeoutInMs":300}"#))
        .unwrap();
    // The wait must time out while the shutdown is still pending, and the work goes on.
    assert_eq!(shutdown.wait_raw(0).0, HResult::HCS_E_OPERATION_TIMEOUT);
    assert_eq!(shutdown.wait_raw(WAIT_MS).0, HResult::S_OK);
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
    let details: Vec<&str> = status["Attribution"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["SystemExit"]["Detail"].as_str())
        .collect();
    assert_eq!(details, ["Shutdown", "Terminate"]);
    assert_eq!(exit_of(&p), 128 + 9);
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn open_and_enumerate_from_a_second_client() {
    let ns = unique_namespace("second");
    let s = create_started(
        &ns,
        "shared",
        &container_doc(serde_json::json!({ "Owner": "owner-a" })),
    );
    let _other = create(
        &ns,
        "other",
        &container_doc(serde_json::json!({ "Owner": "owner-b" })),
    )
    .unwrap();

    // A second handle in this process.
    let h2 = System::open_in_namespace(&ns, "shared", GENERIC_ALL).unwrap();
    assert_eq!(run(&h2, &["hostname"]).exit_code, 0);
    assert_eq!(
        System::open_in_namespace(&ns, "shared", 0)
            .unwrap_err()
            .hresult,
        HResult::E_INVALIDARG
    );
    assert_eq!(
        System::open_in_namespace(&ns, "missing", GENERIC_ALL)
            .unwrap_err()
            .hresult,
        HResult::HCS_E_SYSTEM_NOT_FOUND
    );

    // Enumerate, whole and filtered.
    let op = Operation::new();
    hcs::enumerate_compute_systems_in_namespace(&ns, None, &op).unwrap();
    let all: serde_json::Value = serde_json::from_str(&op.wait(WAIT_MS).unwrap().unwrap()).unwrap();
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["other", "shared"]);
    hcs::enumerate_compute_systems_in_namespace(&ns, Some(r#"{"Owners":["owner-b"]}"#), &op)
        .unwrap();
    let some: serde_json::Value =
        serde_json::from_str(&op.wait(WAIT_MS).unwrap().unwrap()).unwrap();
    assert_eq!(some.as_array().unwrap().len(), 1);
    assert_eq!(some[0]["Id"], "other");
    assert_eq!(some[0]["State"], "Created");

    // Another program (the CLI) sees the same systems and controls them.
    let out = std::process::Command::new(hcs_cli())
        .args(["-n", &ns, "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let out = std::process::Command::new(hcs_cli())
        .args(["-n", &ns, "terminate", "other"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&_other.wait_for_exit(WAIT_MS).unwrap()).unwrap()
            ["ExitType"],
        "ForcedExit"
    );

    terminate(&s);
    // The second handle's connection hears of the exit on its own reader
    // thread, so wait for it (bounded) rather than read it at once.
    assert_eq!(
        h2.wait_for_exit(10_000)
            .ok()
            .map(|d| d.contains("ForcedExit")),
        Some(true),
        "every handle learns the exit"
    );
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn a_system_outlives_its_handle_unless_asked_not_to() {
    let ns = unique_namespace("lasthandle");
    // Without the flag: closing the only handle leaves it running.
    let s = create_started(
        &ns,
        "stays",
        &container_doc(serde_json::json!({ "ShouldTerminateOnLastHandleClosed": false })),
    );
    s.close();
    drop(s);
    let s = System::open_in_namespace(&ns, "stays", GENERIC_ALL).expect("still there");
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Running");
    terminate(&s);

    // With it: closing the last system handle terminates it. A process handle
    // (which is not a system handle) watches it go.
    let s = create_started(
        &ns,
        "goes",
        &container_doc(serde_json::json!({ "ShouldTerminateOnLastHandleClosed": true })),
    );
    let op = Operation::new();
    let p = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    s.close();
    assert_eq!(exit_of(&p), 128 + 9, "the process dies with the system");
    p.close();
    eventually("the system to be cleaned up", EVENT_WAIT, || {
        leftovers(&ns).is_empty()
    });
    assert_eq!(
        System::open_in_namespace(&ns, "goes", GENERIC_ALL)
            .unwrap_err()
            .hresult,
        HResult::HCS_E_SYSTEM_NOT_FOUND
    );
}

#[test]
fn a_killed_monitor_is_reported_and_cleaned_up() {
    let ns = unique_namespace("killmon");
    let s = create_started(&ns, "victim", &container_doc(serde_json::json!({})));
    let op = Operation::new();
    let p = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    s.set_callback(EventOptions::NONE, move |ev| {
        tx.send(("system", ev.event_type, ev.data.clone())).unwrap()
    })
    .unwrap();
    p.set_callback(EventOptions::NONE, move |ev| {
        tx2.send(("process", ev.event_type, ev.data.clone()))
            .unwrap()
    })
    .unwrap();
    assert!(!leftovers(&ns).processes.is_empty());

    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hcs_rundir::root().join(&ns).join("victim/record.json")).unwrap(),
    )
    .unwrap();
    let monitor = record["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();

    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(
            rx.recv_timeout(EVENT_WAIT)
                .expect("events after the monitor died"),
        );
    }
    let exited = got
        .iter()
        .find(|(w, t, _)| *w == "system" && *t == EventType::SystemExited)
        .expect("SystemExited");
    let status: serde_json::Value = serde_json::from_str(exited.2.as_deref().unwrap()).unwrap();
    assert_eq!(status["ExitType"], "UnexpectedExit");
    assert_eq!(status["Status"], HResult::HCS_E_UNEXPECTED_EXIT.0);
    assert!(got
        .iter()
        .any(|(w, t, _)| *w == "system" && *t == EventType::ServiceDisconnect));
    assert!(got
        .iter()
        .any(|(w, t, _)| *w == "process" && *t == EventType::ServiceDisconnect));
    assert_eq!(
        p.wait_for_exit(0).unwrap_err().hresult,
        HResult::HCS_E_SERVICE_DISCONNECT
    );
    assert_eq!(
        call(|op| s.start(op, None)).unwrap_err().hresult,
        HResult::HCS_E_SERVICE_DISCONNECT
    );

    // The container died with its monitor; the next enumeration removes the rest.
    eventually("the container's processes to die", EVENT_WAIT, || {
        leftovers(&ns).processes.is_empty()
    });
    assert!(
        !leftovers(&ns).runtime_dirs.is_empty(),
        "nobody has cleaned up yet"
    );
    let op = Operation::new();
    hcs::enumerate_compute_systems_in_namespace(&ns, None, &op).unwrap();
    assert_eq!(op.wait(WAIT_MS).unwrap().as_deref(), Some("[]"));
    let l = leftovers(&ns);
    assert!(l.is_empty(), "left behind after cleanup: {l:?}");
}

#[test]
fn operation_callbacks_through_the_system_callback() {
    // OperationCompletionSample, pattern C, on a real system.
    let ns = unique_namespace("opcb");
    let op = Operation::new();
    let s =
        System::create_in_namespace(&ns, "c", &container_doc(serde_json::json!({})), &op).unwrap();
    drop(op);
    let (tx, rx) = mpsc::channel();
    s.set_callback(EventOptions::ENABLE_OPERATION_CALLBACKS, move |ev| {
        if ev.event_type == EventType::OperationCallback {
            let op = ev.operation.as_ref().unwrap();
            tx.send((op.operation_type(), op.result_raw().0)).unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(EVENT_WAIT).unwrap(),
        (hcs::OperationType::Create, HResult::S_OK)
    );
    let with_callback = Operation::with_callback(|_| {});
    assert_eq!(
        s.start(&with_callback, None).unwrap_err().hresult,
        HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET
    );
    s.start(&Operation::new(), None).unwrap();
    assert_eq!(
        rx.recv_timeout(EVENT_WAIT).unwrap(),
        (hcs::OperationType::Start, HResult::S_OK)
    );
    terminate(&s);
}

#[test]
fn garbage_on_the_control_socket_harms_nobody() {
    use std::os::fd::AsFd;
    let ns = unique_namespace("garbage");
    let s = create_started(&ns, "g", &container_doc(serde_json::json!({})));
    let sock = hcs_rundir::root().join(&ns).join("g/control.sock");
    let junk: [&[u8]; 5] = [
        b"",
        b"\x00not json",
        b"\x01{\"id\":",
        b"\x00{\"id\":1,\"request\":{\"Start\":{}}}",
        &[0xff; 4000],
    ];
    for bytes in junk {
        let fd = hcs_protocol_connect(&sock);
        let _ = nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            bytes,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        );
        drop(fd);
    }
    // A request before Hello is refused and the connection dropped.
    let fd = hcs_protocol_connect(&sock);
    let mut ch = hcs_protocol::Channel::new(fd);
    ch.send(
        &serde_json::json!({"id": 7, "request": {"Terminate": {"options": null}}}),
        Vec::new(),
    )
    .unwrap();
    let (reply, _): (serde_json::Value, _) = ch.recv().unwrap().unwrap();
    assert_eq!(
        reply["Response"]["outcome"]["hresult"],
        hcs::HResult::HCS_E_PROTOCOL_ERROR.0
    );
    let _ = ch.fd().as_fd();
    // The system is untouched and still answers.
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Running");
    assert_eq!(run(&s, &["true"]).exit_code, 0);
    terminate(&s);
}

fn hcs_protocol_connect(path: &std::path::Path) -> std::os::fd::OwnedFd {
    hcs_protocol::wire::connect(path).expect("connect to the control socket")
}

#[test]
fn save_needs_a_paused_system_and_containers_cannot_be_saved_yet() {
    let ns = unique_namespace("save");
    let s = create_started(&ns, "c1", &container_doc(serde_json::json!({})));
    let opts = r#"{"SaveType":"ToFile","SaveStateFilePath":"/tmp/never-written.vmrs"}"#;
    let e = call(|op| s.save(op, Some(opts))).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_STATE, "{e}");
    assert!(e.message.contains("pause"), "{e}");
    call(|op| s.pause(op, None)).unwrap();
    let e = call(|op| s.save(op, Some(opts))).unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{e}");
    assert!(e.message.contains("not supported"), "{e}");
    assert!(!std::path::Path::new("/tmp/never-written.vmrs").exists());
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
}
