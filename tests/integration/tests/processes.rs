//! Processes in containers: stdio, exit codes, consoles, signals, handles.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use hcs::{EventOptions, EventType, HResult, Operation, System, GENERIC_ALL};
use hcs_integration_tests::*;

const WAIT: Duration = Duration::from_secs(20);

fn started(test: &str) -> (String, System) {
    let ns = unique_namespace(test);
    let s = create_started(
        &ns,
        "c",
        &container_doc(serde_json::json!({ "Container": { "GuestOs": { "HostName": "box" } } })),
    );
    (ns, s)
}

fn finish(ns: &str, s: &System) {
    terminate(s);
    let l = leftovers(ns);
    assert!(l.is_empty(), "left behind: {l:?}");
}

#[test]
fn stdout_stderr_exit_code_environment_directory_and_user() {
    let (ns, s) = started("stdio");
    let r = run(&s, &["sh", "-c", "echo out; echo err >&2; exit 42"]);
    assert_eq!(
        (r.exit_code, r.stdout.as_str(), r.stderr.as_str()),
        (42, "out\n", "err\n")
    );

    let r = run_params(
        &s,
        serde_json::json!({
            "CommandArgs": ["sh", "-c", "echo $GREETING:$(pwd):$(id -u):$(id -g):$(hostname):$HOME"],
            "Environment": { "GREETING": "hello world" },
            "WorkingDirectory": "/home/tester",
            "User": "tester"
        }),
    );
    assert_eq!(
        r.stdout, "hello world:/home/tester:1000:1000:box:/home/tester\n",
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.exit_code, 0);

    // Windows callers send a single CommandLine.
    let r = run_params(
        &s,
        serde_json::json!({ "CommandLine": "sh -c \"echo 'a b'\"" }),
    );
    assert_eq!(r.stdout, "a b\n");

    // The process runs as PID 2+ in its own pid namespace, under our init.
    let r = run(&s, &["sh", "-c", "cat /proc/1/comm; echo $$"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "hcs-init");
    assert!(lines[1].parse::<u32>().unwrap() > 1);
    finish(&ns, &s);
}

#[test]
fn application_name_is_the_program_and_command_args_its_argv() {
    let (ns, s) = started("appname");
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "printf '#!/bin/sh\\necho \"$0:$1\"\\n' >/tmp/prog && chmod +x /tmp/prog",
        ],
    );
    assert_eq!(r.exit_code, 0, "writing /tmp/prog: {}", r.stderr);
    // argv[0] names no program: only ApplicationName can run this (it
    // was ignored beside CommandArgs, and "not-a-program" not found).
    let r = run_params(
        &s,
        serde_json::json!({
            "ApplicationName": "/tmp/prog",
            "CommandArgs": ["not-a-program", "one"]
        }),
    );
    assert_eq!(
        (r.exit_code, r.stdout.as_str()),
        (0, "/tmp/prog:one\n"),
        "stderr: {}",
        r.stderr
    );
    // Beside CommandLine, as before.
    let r = run_params(
        &s,
        serde_json::json!({ "ApplicationName": "/tmp/prog", "CommandLine": "not-a-program two" }),
    );
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "/tmp/prog:two\n"));
    finish(&ns, &s);
}

#[test]
fn clear_errors_for_processes_that_cannot_start() {
    let (ns, s) = started("badproc");
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["no-such-program"]}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_FILE_NOT_FOUND);
    assert!(
        e.message.contains("no-such-program") && e.message.contains("PATH"),
        "{}",
        e.message
    );
    let e = call(|op| {
        s.create_process(
            r#"{"CommandArgs":["true"],"WorkingDirectory":"/nowhere"}"#,
            op,
        )
        .map(|_| ())
    })
    .unwrap_err();
    assert!(
        e.message.contains("WorkingDirectory") && e.message.contains("/nowhere"),
        "{}",
        e.message
    );
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["true"],"User":"nobody-here"}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_NOT_FOUND);
    let e = call(|op| s.create_process(r#"{"CommandArgs":[]}"#, op).map(|_| ())).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON);
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":"true"}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON);
    assert!(e.message.contains("CommandArgs"), "{}", e.message);
    finish(&ns, &s);
}

#[test]
fn stdin_reaches_the_process_and_close_handle_delivers_eof() {
    let (ns, s) = started("stdin");
    let op = Operation::new();
    let p = s
        .create_process(r#"{"CommandArgs":["sh","-c","cat; echo done"],"CreateStdInPipe":true,"CreateStdOutPipe":true}"#, &op)
        .unwrap();
    let info = op.wait_process_info(WAIT_MS).unwrap();
    let mut stdin = std::fs::File::from(info.std_input.unwrap());
    stdin.write_all(b"line one\nline two\n").unwrap();
    drop(stdin);
    // HCS keeps its own copy until asked: EOF needs CloseHandle, as on Windows.
    close_stdin(&p);
    let mut out = String::new();
    std::fs::File::from(info.std_output.unwrap())
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "line one\nline two\ndone\n");
    assert_eq!(exit_of(&p), 0);
    let e = call(|op| {
        p.modify(
            op,
            r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"StdIn"}}"#,
        )
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_PROCESS_ALREADY_STOPPED);
    finish(&ns, &s);
}

#[test]
fn console_with_size_and_resize() {
    let (ns, s) = started("console");
    let op = Operation::new();
    let p = s
        .create_process(
            r#"{"CommandArgs":["sh","-c","tty; stty size; read x; stty size"],"EmulateConsole":true,"ConsoleSize":[30,100],"CreateStdInPipe":true,"CreateStdOutPipe":true,"CreateStdErrPipe":true}"#,
            &op,
        )
        .unwrap();
    let info = op.wait_process_info(WAIT_MS).unwrap();
    assert!(info.std_error.is_none(), "a console has no separate stderr");
    let mut console_in = std::fs::File::from(info.std_input.unwrap());
    let mut console = std::fs::File::from(info.std_output.unwrap());
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("30 100") {
        let n = console.read(&mut buf).unwrap();
        assert!(n > 0, "console closed early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("/dev/pts/"), "{seen:?}");
    call(|op| {
        p.modify(
            op,
            r#"{"Operation":"ConsoleSize","ConsoleSize":{"Height":40,"Width":120}}"#,
        )
    })
    .unwrap();
    console_in.write_all(b"go\n").unwrap();
    let mut rest = Vec::new();
    loop {
        match console.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the terminal's last user exited
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("40 120"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(exit_of(&p), 0);
    finish(&ns, &s);
}

#[test]
fn signals_terminate_and_already_stopped() {
    let (ns, s) = started("signals");
    let op = Operation::new();
    let a = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    call(|op| a.signal(op, Some(r#"{"Signal":15}"#))).unwrap();
    assert_eq!(exit_of(&a), 128 + 15);
    let e = call(|op| a.signal(op, Some(r#"{"Signal":15}"#))).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_PROCESS_ALREADY_STOPPED);

    let b = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    call(|op| b.signal(op, Some(r#"{"Signal":"CtrlC"}"#))).unwrap();
    assert_eq!(exit_of(&b), 128 + 2, "CtrlC is SIGINT");

    let c = s
        .create_process(
            r#"{"CommandArgs":["sh","-c","trap '' TERM INT; sleep 1000 & wait"]}"#,
            &op,
        )
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    call(|op| c.terminate(op, None)).unwrap();
    assert_eq!(exit_of(&c), 128 + 9);
    assert_eq!(
        call(|op| c.terminate(op, None)).unwrap_err().hresult,
        HResult::HCS_E_PROCESS_ALREADY_STOPPED
    );
    let e = call(|op| a.signal(op, Some(r#"{"Signal":"Hangup"}"#))).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON);
    finish(&ns, &s);
}

#[test]
fn process_handles_events_and_info() {
    let (ns, s) = started("prochandles");
    let op = Operation::new();
    let p = s
        .create_process(r#"{"CommandArgs":["sh","-c","read x; echo got $x"],"CreateStdInPipe":true,"CreateStdOutPipe":true}"#, &op)
        .unwrap();
    let info = op.wait_process_info(WAIT_MS).unwrap();
    assert_eq!(op.operation_type(), hcs::OperationType::CreateProcess);
    assert_eq!(p.process_id(), Some(info.process_id));
    // The descriptors are handed over once.
    let (hr, again, _) = op.result_and_process_info_raw();
    assert_eq!(hr, HResult::S_OK);
    let again = again.unwrap();
    assert!(again.std_input.is_none() && again.std_output.is_none());

    // A second client opens it by pid, from its own system handle.
    let other = System::open_in_namespace(&ns, "c", GENERIC_ALL).unwrap();
    let p2 = other.open_process(info.process_id, GENERIC_ALL).unwrap();
    assert_eq!(
        other.open_process(99999, GENERIC_ALL).unwrap_err().hresult,
        HResult::ERROR_NOT_FOUND
    );
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    p2.set_callback(EventOptions::NONE, move |ev| {
        tx.send(("p2", ev.event_type, ev.data.clone())).unwrap()
    })
    .unwrap();
    other
        .set_callback(EventOptions::NONE, move |ev| {
            tx2.send(("sys", ev.event_type, ev.data.clone())).unwrap()
        })
        .unwrap();

    // GetProcessInfo hands out fresh descriptors of the same pipes.
    let info_op = Operation::new();
    p2.get_info(&info_op).unwrap();
    let fresh = info_op.wait_process_info(WAIT_MS).unwrap();
    std::fs::File::from(fresh.std_input.unwrap())
        .write_all(b"hi\n")
        .unwrap();
    let mut out = String::new();
    drop(info.std_output);
    std::fs::File::from(fresh.std_output.unwrap())
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "got hi\n");

    let (who, t, data) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!((who, t), ("p2", EventType::ProcessExited));
    let status: serde_json::Value = serde_json::from_str(&data.unwrap()).unwrap();
    assert_eq!(
        status,
        serde_json::json!({ "ProcessId": info.process_id, "Exited": true, "ExitCode": 0, "LastWaitResult": 0 })
    );
    let props = call(|op| p.get_properties(op, None)).unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&props).unwrap(),
        status
    );
    // The query is a ProcessStatus document: its members choose those of
    // the result; an empty one asks for all; anything else is refused.
    let query = |q: &str| {
        call(|op| p.get_properties(op, Some(q)))
            .map(|d| serde_json::from_str::<serde_json::Value>(&d.expect("a document")).unwrap())
    };
    assert_eq!(query("{}").unwrap(), status);
    assert_eq!(
        query(r#"{"Exited":false,"ExitCode":0}"#).unwrap(),
        serde_json::json!({ "Exited": true, "ExitCode": 0 })
    );
    let e = query("Exited").unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{e}");
    let e = query(r#"{"Exited":true,"Handles":true}"#).unwrap_err();
    assert!(e.message.contains("Handles"), "{e}");
    // ProcessExited never arrives on a system callback, and is delivered once.
    rx.recv_timeout(Duration::from_millis(200)).unwrap_err();
    finish(&ns, &s);
    let (who, t, _) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!((who, t), ("sys", EventType::SystemExited));
}

#[test]
fn output_is_complete_when_the_exit_arrives() {
    let (ns, s) = started("output");
    // 1 MiB of output, more than any pipe buffer.
    let r = run(
        &s,
        &["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' 'x'"],
    );
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout.len(), 1 << 20);
    assert!(r.stdout.bytes().all(|b| b == b'x'));
    finish(&ns, &s);
}

#[test]
fn processes_die_with_their_system() {
    let (ns, s) = started("diewith");
    let op = Operation::new();
    let mut procs = Vec::new();
    for _ in 0..3 {
        procs.push(
            s.create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
                .unwrap(),
        );
        op.wait(WAIT_MS).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let watched = procs.clone();
    s.set_callback(EventOptions::NONE, move |ev| {
        if ev.event_type == EventType::SystemExited {
            // Every ProcessExited was in before SystemExited.
            let known: Vec<bool> = watched.iter().map(|p| p.wait_for_exit(0).is_ok()).collect();
            tx.send(known).unwrap();
        }
    })
    .unwrap();
    finish(&ns, &s);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), vec![true, true, true]);
    for p in &procs {
        assert_eq!(exit_of(p), 128 + 9);
    }
}

#[test]
fn processes_run_with_the_default_capabilities_only() {
    let (ns, s) = started("caps");
    let r = run(
        &s,
        &["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
    );
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
    // NET_RAW SYS_CHROOT AUDIT_WRITE SETFCAP
    let expected = "00000000a00425fb";
    for line in r.stdout.lines() {
        assert!(line.ends_with(expected), "{line} (all: {})", r.stdout);
    }
    // Without CAP_SYS_ADMIN there is no mounting, without CAP_MKNOD no devices.
    assert_ne!(run(&s, &["mount", "-t", "tmpfs", "x", "/mnt"]).exit_code, 0);
    assert_ne!(run(&s, &["mknod", "/tmp/sda", "b", "8", "0"]).exit_code, 0);
    // A non-root user has none.
    let r = run_params(
        &s,
        serde_json::json!({ "CommandArgs": ["grep", "CapEff", "/proc/self/status"], "User": "tester" }),
    );
    assert!(
        r.stdout.trim().ends_with("0000000000000000"),
        "{}",
        r.stdout
    );
    finish(&ns, &s);
}
