//! Processes in virtual machines, end to end, with the test guest's agent
//! (guest/test-guest: a virtio-vsock driver and hcs-agent-protocol with
//! built-in programs): HcsCreateProcess through the agent, stdio as file
//! descriptors, exit codes, signals, many processes, ProcessList, shutdown
//! through the agent, and losing the agent.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hcs::{EventOptions, EventType, HResult, Operation, System};
use hcs_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

fn vm_doc(cmdline: &str, extra: serde_json::Value) -> String {
    let mut agent =
        serde_json::json!({ "VirtualMachine": { "GuestConnection": { "UseVsock": true } } });
    merge_into(&mut agent, extra);
    test_guest_vm_doc(cmdline, agent)
}

/// Create and start a VM with the test guest; wait until its agent is connected.
fn booted(test: &str, cmdline: &str) -> (String, System, Console) {
    let ns = unique_namespace(test);
    let s = create_started(&ns, "vm", &vm_doc(cmdline, serde_json::json!({})));
    let mut c = Console::attach(&ns, "vm");
    c.expect("HCS-TEST-GUEST READY");
    (ns, s, c)
}

fn with_agent(test: &str) -> (String, System, Console) {
    let (ns, s, mut c) = booted(test, "console=ttyS0 hcs.agent=1");
    c.expect("AGENT STARTED");
    c.expect("AGENT CONNECTED");
    (ns, s, c)
}

fn finish(ns: &str, s: &System) {
    let status = terminate(s);
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
    assert!(leftovers(ns).is_empty(), "{:?}", leftovers(ns));
}

#[test]
fn echo_exit_codes_and_missing_programs_through_the_agent() {
    let (ns, s, _c) = with_agent("vmagentecho");
    let r = run_params(
        &s,
        serde_json::json!({ "CommandArgs": ["echo", "hello", "world"], "Environment": { "A": "1" } }),
    );
    assert_eq!(r.exit_code, 0);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("hello world"), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l == "A=1"), "{}", r.stdout);
    assert_eq!(r.stderr, "");
    for (code, want) in [("0", 0), ("3", 3), ("255", 255)] {
        assert_eq!(run(&s, &["exit", code]).exit_code, want);
    }
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["no-such-program"]}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_FILE_NOT_FOUND, "{e:?}");
    // Memory: touch writes its pages; more than the guest has is an error.
    let r = run(&s, &["touch", "16"]);
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "ok\n"));
    let r = run(&s, &["touch", "4096"]);
    assert_eq!(r.exit_code, 1);
    assert!(r.stderr.starts_with("touch: only "), "{}", r.stderr);
    // The agent round trip: create a process and wait for its exit.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(run(&s, &["true"]).exit_code, 0);
    }
    eprintln!(
        "agent round trip (create + exit, stdout/stderr piped): {:?} each",
        t.elapsed() / 20
    );
    finish(&ns, &s);
}

#[test]
fn stdin_to_stdout_with_cat_and_close_handle() {
    let (ns, s, _c) = with_agent("vmagentcat");
    let (p, info) = start_process(
        &s,
        serde_json::json!({ "CommandArgs": ["cat"], "CreateStdInPipe": true, "CreateStdOutPipe": true }),
    );
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut stdin = std::fs::File::from(info.std_input.unwrap());
    let mut stdout = std::fs::File::from(info.std_output.unwrap());
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    let t = Instant::now();
    stdin.write_all(&data).unwrap();
    drop(stdin);
    close_stdin(&p);
    let out = reader.join().unwrap();
    eprintln!("cat: 1 MiB through the guest in {:?}", t.elapsed());
    assert_eq!(out.len(), data.len());
    assert!(out == data, "cat changed the bytes");
    assert_eq!(exit_of(&p), 0);
    finish(&ns, &s);
}

#[test]
fn signals_many_processes_and_the_process_list() {
    let (ns, s, _c) = with_agent("vmagentsig");
    let op = Operation::new();
    let sleeper = s
        .create_process(r#"{"CommandArgs":["sleep","100000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    let p = properties(&s, &["ProcessList"]).unwrap();
    let list = p["ProcessList"].as_array().expect("ProcessList").clone();
    assert!(
        list.iter()
            .any(|e| e["ImageName"].as_str().unwrap_or("").contains("sleep")
                || e["CommandLine"].as_str().unwrap_or("").contains("sleep")),
        "{p}"
    );
    call(|op| sleeper.signal(op, Some(r#"{"Signal":15}"#))).unwrap();
    assert_eq!(exit_of(&sleeper), 128 + 15);
    let e = call(|op| sleeper.signal(op, Some(r#"{"Signal":15}"#))).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_PROCESS_ALREADY_STOPPED);

    // Ten at once, each with its three streams.
    let handles: Vec<_> = (0..10)
        .map(|k| {
            start_process(
                &s,
                serde_json::json!({ "CommandArgs": ["echo", format!("n{k}")], "CreateStdInPipe": true,
                                     "CreateStdOutPipe": true, "CreateStdErrPipe": true }),
            )
        })
        .collect();
    for (k, (p, info)) in handles.into_iter().enumerate() {
        let out = read_all(info.std_output);
        assert_eq!(out, format!("n{k}\n"));
        assert_eq!(exit_of(&p), 0);
    }
    let r = run(&s, &["sleep", "30"]);
    assert_eq!(r.exit_code, 0);
    finish(&ns, &s);
}

#[test]
fn shutdown_goes_through_the_agent() {
    let (_ns, s, mut c) = with_agent("vmagentshut");
    // The host has the agent once a process ran (the guest says CONNECTED
    // before the host's handshake).
    assert_eq!(run(&s, &["exit", "0"]).exit_code, 0);
    call(|op| s.shutdown(op, Some(r#"{"TimeoutInMs":30000}"#))).unwrap();
    c.expect("AGENT SHUTDOWN");
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
}

#[test]
fn the_agent_command_starts_it_from_the_console() {
    let (ns, s, mut c) = booted("vmagentcmd", "console=ttyS0");
    c.command("agent");
    c.expect("AGENT STARTED cid=");
    c.expect("AGENT CONNECTED");
    c.command("agent");
    c.expect("AGENT RUNNING");
    assert_eq!(run(&s, &["echo", "via", "console"]).stdout, "via console\n");
    finish(&ns, &s);
}

#[test]
fn sector_writes_and_reads_the_virtio_blk_disk() {
    let dir = std::env::temp_dir().join(format!("hcs-vmagent-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    let mut image = vec![0u8; 1 << 20];
    let host_sector: Vec<u8> = b"written by the host\n"
        .iter()
        .copied()
        .cycle()
        .take(512)
        .collect();
    image[7 * 512..8 * 512].copy_from_slice(&host_sector);
    std::fs::write(&disk, &image).unwrap();
    let ro = dir.join("ro.img");
    std::fs::write(&ro, &image).unwrap();

    let ns = unique_namespace("vmagentdisk");
    let doc = vm_doc(
        "console=ttyS0 hcs.agent=1",
        serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
            "0": { "Type": "VirtualDisk", "Path": disk },
            "1": { "Type": "VirtualDisk", "Path": ro, "ReadOnly": true }
        } } } } } }),
    );
    let s = create_started(&ns, "vm", &doc);
    let mut c = Console::attach(&ns, "vm");
    c.expect("AGENT CONNECTED");

    let r = run(&s, &["sector", "write", "5"]);
    assert_eq!(
        (r.exit_code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "ok\n", "")
    );
    let r = run(&s, &["sector", "read", "7"]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.as_bytes(), host_sector.as_slice());
    let r = run(&s, &["sector", "read", "2048"]);
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.stderr, "sector: LBA beyond the end of the disk\n");
    // Written by the guest, read back by the host (the device wrote through).
    let back = std::fs::read(&disk).unwrap();
    assert!(
        back[5 * 512..].starts_with(b"HCS-SECTOR 5\n"),
        "{:?}",
        &back[5 * 512..5 * 512 + 16]
    );
    assert_eq!(back[5 * 512 + 100], 100);
    finish(&ns, &s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn agent_stop_resets_its_connections_and_agent_restarts_it() {
    let (ns, s, mut c) = with_agent("vmagentstop");
    let op = Operation::new();
    let p = s
        .create_process(
            r#"{"CommandArgs":["sleep","100000"],"CreateStdOutPipe":true}"#,
            &op,
        )
        .unwrap();
    let info = op.wait_process_info(WAIT_MS).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    s.set_callback(EventOptions::NONE, move |ev| {
        let _ = tx.send(ev.event_type);
    })
    .unwrap();
    c.command("agent stop");
    c.expect("AGENT STOPPED");
    // The host hears that its agent is gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(EventType::SystemGuestConnectionClosed) => break,
            Ok(_) => {}
            Err(e) => panic!("no SystemGuestConnectionClosed: {e}"),
        }
    }
    // The process's stream was reset with the rest.
    assert_eq!(read_all(info.std_output), "");
    let _ = p;
    c.command("agent");
    c.expect("AGENT STARTED");
    c.expect("AGENT CONNECTED");
    let deadline = Instant::now() + WAIT;
    loop {
        let op = Operation::new();
        let r = s
            .create_process(
                r#"{"CommandArgs":["echo","again"],"CreateStdOutPipe":true}"#,
                &op,
            )
            .and_then(|p| op.wait_process_info(WAIT_MS).map(|i| (p, i)));
        match r {
            Ok((p, info)) => {
                assert_eq!(read_all(info.std_output), "again\n");
                assert_eq!(exit_of(&p), 0);
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no process after the agent came back: {e:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    finish(&ns, &s);
}

#[test]
fn terminate_during_the_agent_handshake_does_not_wait_for_the_guest() {
    // No agent in the guest: the test plays a guest that connects to the
    // agent port (the hybrid vsock socket in the run directory) and never
    // answers the host's Hello.
    let (ns, s, _c) = booted("vmhandshake", "console=ttyS0");
    let rundir = hcs::console_socket(&ns, "vm", 0)
        .parent()
        .expect("run directory")
        .to_path_buf();
    // AGENT_CONTROL_PORT (0x4843) behind the hybrid vsock device.
    let port = rundir.join(format!("vsock.sock_{}", 0x4843));
    let mut guest = std::os::unix::net::UnixStream::connect(&port)
        .unwrap_or_else(|e| panic!("{}: {e}", port.display()));
    guest.set_read_timeout(Some(WAIT)).unwrap();
    // The Hello frame's 24-byte header arrives: the monitor is in the
    // handshake, waiting for a reply that never comes.
    let mut header = [0u8; 24];
    guest.read_exact(&mut header).expect("the host's Hello");
    let started = Instant::now();
    let status = terminate(&s);
    let took = started.elapsed();
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
    // The handshake's own timeout is 30 s.
    assert!(took < Duration::from_secs(10), "terminate took {took:?}");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn a_process_waits_for_the_agent_without_holding_up_other_requests_or_terminate() {
    // No agent yet: the creation waits for it to connect, while the
    // monitor keeps serving requests; started from the console, the agent
    // connects and the process runs.
    let (ns, s, mut c) = booted("vmagentlate", "console=ttyS0");
    let op = Operation::new();
    let params = serde_json::json!({ "CommandArgs": ["echo", "late"], "CreateStdOutPipe": true });
    let p = s.create_process(&params.to_string(), &op).expect("sent");
    // Served while the creation waits (was: blocked until the agent came).
    let started = Instant::now();
    properties(&s, &["Memory"]).expect("properties while a creation waits");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "properties took {:?}",
        started.elapsed()
    );
    c.command("agent");
    c.expect("AGENT CONNECTED");
    let info = op
        .wait_process_info(60_000)
        .expect("created once the agent connected");
    assert_eq!(read_all(info.std_output), "late\n");
    assert_eq!(exit_of(&p), 0);
    finish(&ns, &s);

    // Terminate while a creation waits for an agent that never comes: at
    // once (was: after the 30 s the creation waited), and the creation
    // fails at once too.
    let (ns, s, _c) = booted("vmagentnone", "console=ttyS0");
    let op = Operation::new();
    let _p = s
        .create_process(r#"{"CommandArgs":["echo"]}"#, &op)
        .expect("sent");
    let started = Instant::now();
    let status = terminate(&s);
    let took = started.elapsed();
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
    assert!(took < Duration::from_secs(10), "terminate took {took:?}");
    let e = op
        .wait_process_info(10_000)
        .expect_err("no process in a terminated VM");
    assert_ne!(e.hresult, HResult::HCS_E_OPERATION_TIMEOUT, "{e}");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn terminate_while_the_guest_owes_a_reply_does_not_wait_for_it() {
    use hcs_agent_protocol as proto;
    // No agent in the guest: the test plays an agent that connects,
    // answers Hello, then reads requests and answers none of them.
    let (ns, s, _c) = booted("vmagenthung", "console=ttyS0");
    let rundir = hcs::console_socket(&ns, "vm", 0)
        .parent()
        .expect("run directory")
        .to_path_buf();
    let port = rundir.join(format!("vsock.sock_{}", proto::AGENT_CONTROL_PORT));
    let mut guest = std::os::unix::net::UnixStream::connect(&port)
        .unwrap_or_else(|e| panic!("{}: {e}", port.display()));
    guest.set_read_timeout(Some(WAIT)).unwrap();
    let mut payload = Vec::new();
    let hello = proto::read_frame(&mut guest, &mut payload)
        .expect("reading the host's Hello")
        .expect("the host's Hello");
    let reply = proto::Message::HelloReply(proto::HelloReply {
        version: proto::PROTOCOL_VERSION,
        agent: b"hung test agent",
    });
    proto::write_frame(
        &mut guest,
        &reply,
        proto::PROTOCOL_VERSION,
        hello.request_id,
    )
    .expect("answering Hello");
    let op = Operation::new();
    let _p = s
        .create_process(r#"{"CommandArgs":["echo"],"CreateStdOutPipe":true}"#, &op)
        .expect("sent");
    // The request reaches the agent, which never answers it.
    let header = proto::read_frame(&mut guest, &mut payload)
        .expect("reading the host's request")
        .expect("the host's request");
    assert!(
        matches!(
            proto::Message::decode(&header, &payload),
            Ok(proto::Message::CreateProcess(_))
        ),
        "expected CreateProcess"
    );
    // The monitor serves other requests meanwhile (was: blocked for 30 s).
    let started = Instant::now();
    properties(&s, &["Memory"]).expect("properties while the guest owes a reply");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "properties took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let status = terminate(&s);
    let took = started.elapsed();
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
    // The request's own timeout is 30 s.
    assert!(took < Duration::from_secs(10), "terminate took {took:?}");
    let e = op
        .wait_process_info(10_000)
        .expect_err("no process in a terminated VM");
    assert_ne!(e.hresult, HResult::HCS_E_OPERATION_TIMEOUT, "{e}");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}
