//! The host side of the agent protocol against the real agent,
//! `hcs-agent --unix <dir>`, on this host: handshake, processes with their
//! stdio streams, exit events, signals, errors from the guest side, the
//! process list, and the loss of the connection.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use hcs_errors::HResult;
use hcs_monitor::agent::{AgentClient, AgentEvent};

/// A started agent and a client connected to it.
struct Fixture {
    agent: Agent,
    _dir: tempfile::TempDir,
    waker: Waker,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            agent: Agent::start(dir.path()),
            _dir: dir,
            waker: Waker::new(),
        }
    }

    fn client(&self) -> AgentClient {
        let dir = self.agent.dir.clone();
        AgentClient::connect(
            self.agent.stream(),
            Box::new(move |p| dir.join(format!("port_{p}"))),
            self.waker.wake(),
        )
        .unwrap()
    }
}

/// Waits (with a deadline) for the exit event of `pid`.
fn exit_of(f: &Fixture, c: &AgentClient, pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for e in c.take_events() {
            if let AgentEvent::ProcessExited { pid: p, exit_code } = e {
                if p == pid {
                    return exit_code;
                }
            }
        }
        assert!(Instant::now() < deadline, "no exit event for {pid}");
        f.waker.wait();
    }
}

#[test]
fn a_process_runs_with_its_stdio_and_its_exit_is_an_event() {
    let agent = Fixture::start();
    let c = agent.client();
    assert_eq!(c.version(), hcs_agent_protocol::PROTOCOL_VERSION);
    let p = c
        .create_process(&params(serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "echo out $GREETING; echo err >&2; exit 7"],
            "Environment": { "GREETING": "hello", "PATH": "/usr/bin:/bin" },
            "CreateStdOutPipe": true, "CreateStdErrPipe": true
        })))
        .unwrap();
    assert!(p.stdin.is_none());
    assert_eq!(read_all(p.stdout), "out hello\n");
    assert_eq!(read_all(p.stderr), "err\n");
    assert_eq!(exit_of(&agent, &c, p.pid), 7);
}

#[test]
fn stdin_reaches_the_process_and_closing_it_ends_cat() {
    let agent = Fixture::start();
    let c = agent.client();
    let p = c
        .create_process(&params(serde_json::json!({
            "CommandArgs": ["/bin/cat"], "CreateStdInPipe": true, "CreateStdOutPipe": true
        })))
        .unwrap();
    let mut stdin = std::fs::File::from(p.stdin.unwrap());
    stdin.write_all(b"through the guest\n").unwrap();
    drop(stdin);
    assert_eq!(read_all(p.stdout), "through the guest\n");
    assert_eq!(exit_of(&agent, &c, p.pid), 0);
}

#[test]
fn signals_list_and_guest_errors() {
    let agent = Fixture::start();
    let c = agent.client();
    let p = c
        .create_process(&params(
            serde_json::json!({ "CommandArgs": ["/bin/sleep", "30"] }),
        ))
        .unwrap();
    let list = c.process_list().unwrap();
    assert!(
        list.iter().any(|d| d.process_id == Some(p.pid)
            && d.image_name
                .as_deref()
                .is_some_and(|n| n.contains("sleep 30"))),
        "{list:?}"
    );
    c.signal(p.pid, 15).unwrap();
    assert_eq!(exit_of(&agent, &c, p.pid), 128 + 15);

    let e = c
        .create_process(&params(
            serde_json::json!({ "CommandArgs": ["/no/such/program"] }),
        ))
        .err()
        .expect("a missing program fails");
    assert_eq!(e.hresult, HResult::ERROR_FILE_NOT_FOUND, "{e}");
    assert!(e.message.contains("/no/such/program"), "{e}");
    // The connection is still good.
    c.process_list().unwrap();
}

#[test]
fn losing_the_agent_is_an_event_and_fails_requests() {
    let mut agent = Fixture::start();
    let c = agent.client();
    agent.agent.child.kill().unwrap();
    agent.agent.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while !events.contains(&AgentEvent::ConnectionClosed) {
        assert!(
            Instant::now() < deadline,
            "no ConnectionClosed; saw {events:?}"
        );
        agent.waker.wait();
        events.extend(c.take_events());
    }
    assert!(c.is_closed());
    let e = c.process_list().unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_CONNECTION_CLOSED, "{e}");
}

/// The value of `key:` in /proc/self/status text.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
}

#[test]
fn the_whole_oci_process_reaches_the_guest_process() {
    let agent = Fixture::start();
    let c = agent.client();
    let p = c
        .create_process(&params(serde_json::json!({
            "OciProcess": {
                "args": ["/bin/sh", "-c", "echo \"$GREETING in $(pwd)\"; cat /proc/self/status; \
                         grep 'Max processes' /proc/self/limits; cat /proc/self/oom_score_adj"],
                "env": ["PATH=/usr/bin:/bin", "GREETING=hello from the client"],
                "cwd": "/proc",
                "user": { "uid": 4321, "gid": 4322, "additionalGids": [4323], "umask": 63 },
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_KILL"],
                    "effective": ["CAP_KILL"],
                    "permitted": ["CAP_KILL"],
                    "inheritable": ["CAP_KILL"],
                    "ambient": ["CAP_KILL"]
                },
                "rlimits": [{ "type": "RLIMIT_NPROC", "soft": 77, "hard": 88 }],
                "noNewPrivileges": true,
                "oomScoreAdj": 321
            },
            "CreateStdOutPipe": true, "CreateStdErrPipe": true
        })))
        .unwrap();
    let out = read_all(p.stdout);
    assert_eq!(exit_of(&agent, &c, p.pid), 0, "{out}{}", read_all(p.stderr));
    assert!(out.starts_with("hello from the client in /proc\n"), "{out}");
    assert_eq!(field(&out, "Uid"), "4321\t4321\t4321\t4321", "{out}");
    assert_eq!(field(&out, "Gid"), "4322\t4322\t4322\t4322", "{out}");
    assert_eq!(field(&out, "Groups"), "4323", "{out}");
    assert_eq!(field(&out, "Umask"), "0077", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    let cap_kill = 1u64 << 5;
    let caps = |key| u64::from_str_radix(field(&out, key), 16).unwrap();
    assert_eq!(caps("CapBnd"), 1 | cap_kill, "{out}");
    assert_eq!(caps("CapEff"), cap_kill, "{out}");
    assert_eq!(caps("CapAmb"), cap_kill, "{out}");
    let nproc = out
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .unwrap();
    assert_eq!(
        nproc.split_whitespace().collect::<Vec<_>>()[2..4],
        ["77", "88"],
        "{nproc}"
    );
    assert!(out.ends_with("\n321\n"), "{out}");
}

#[test]
fn application_name_is_the_program_and_command_line_its_argv() {
    let agent = Fixture::start();
    let c = agent.client();
    let p = c
        .create_process(&params(serde_json::json!({
            "ApplicationName": "/bin/sh",
            "CommandLine": "my-shell -c \"echo $0\"",
            "CreateStdOutPipe": true
        })))
        .unwrap();
    assert_eq!(read_all(p.stdout), "my-shell\n");
    assert_eq!(exit_of(&agent, &c, p.pid), 0);
}

#[test]
fn application_name_is_the_program_and_command_args_its_argv() {
    let agent = Fixture::start();
    let c = agent.client();
    // argv[0] is no program: only ApplicationName can run this.
    let p = c
        .create_process(&params(serde_json::json!({
            "ApplicationName": "/bin/sh",
            "CommandArgs": ["my-shell", "-c", "echo $0"],
            "CreateStdOutPipe": true
        })))
        .unwrap();
    assert_eq!(read_all(p.stdout), "my-shell\n");
    assert_eq!(exit_of(&agent, &c, p.pid), 0);
}

#[test]
fn a_console_has_no_separate_stderr_handle() {
    let agent = Fixture::start();
    let c = agent.client();
    // As in HCS: CreateStdErrPipe with EmulateConsole gives no stderr
    // handle; the process's stderr is the console, which is stdout.
    let p = c
        .create_process(&params(serde_json::json!({
            "CommandArgs": ["sh", "-c", "echo err >&2"],
            "EmulateConsole": true,
            "CreateStdOutPipe": true,
            "CreateStdErrPipe": true
        })))
        .unwrap();
    assert!(p.stderr.is_none(), "a console has no separate stderr");
    assert!(read_all(p.stdout).contains("err"));
    assert_eq!(exit_of(&agent, &c, p.pid), 0);
}

#[test]
fn what_the_agent_cannot_honour_is_refused_with_its_path() {
    let agent = Fixture::start();
    let c = agent.client();
    for (doc, hresult, path) in [
        (
            serde_json::json!({ "OciProcess": { "args": ["true"], "apparmorProfile": "p" } }),
            HResult::ERROR_NOT_SUPPORTED,
            "OciProcess.apparmorProfile",
        ),
        (
            serde_json::json!({ "OciProcess": { "args": ["true"], "selinuxLabel": "l" } }),
            HResult::ERROR_NOT_SUPPORTED,
            "OciProcess.selinuxLabel",
        ),
        (
            serde_json::json!({ "OciProcess": { "args": ["true"], "ioPriority": { "class": "IOPRIO_CLASS_IDLE", "priority": 1 } } }),
            HResult::ERROR_NOT_SUPPORTED,
            "OciProcess.ioPriority",
        ),
        (
            serde_json::json!({ "OciProcess": { "args": ["true"], "scheduler": { "policy": "SCHED_OTHER" } } }),
            HResult::ERROR_NOT_SUPPORTED,
            "OciProcess.scheduler",
        ),
        (
            serde_json::json!({ "OciProcess": { "args": ["true"], "rlimits": [{ "type": "RLIMIT_NOPE", "soft": 1, "hard": 1 }] } }),
            HResult::E_INVALIDARG,
            "OciProcess.rlimits[0].type",
        ),
        (
            serde_json::json!({ "OciProcess": { "args": ["true"] }, "Environment": { "A": "b" } }),
            HResult::E_INVALIDARG,
            "ProcessParameters.Environment",
        ),
    ] {
        let e = c
            .create_process(&params(doc.clone()))
            .err()
            .expect("refused");
        assert_eq!(e.hresult, hresult, "{doc}: {e}");
        assert!(e.message.contains(path), "{doc}: {e}");
    }
}

#[test]
fn windows_only_process_fields_are_refused_as_for_containers() {
    let agent = Fixture::start();
    let c = agent.client();
    for field in [
        "RestrictedToken",
        "UseExistingLogin",
        "UseLegacyConsole",
        "CreateInUtilityVM",
    ] {
        let mut doc = serde_json::json!({ "CommandArgs": ["true"] });
        doc[field] = serde_json::Value::Bool(true);
        let e = c.create_process(&params(doc)).err().expect("refused");
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{field}: {e}");
        assert!(
            e.message.contains(&format!("ProcessParameters.{field}")),
            "{e}"
        );
    }
    let e = c
        .create_process(&params(serde_json::json!({
            "CommandArgs": ["true"], "OciSpecification": { "ociVersion": "1.0.2" }
        })))
        .err()
        .expect("refused");
    assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED, "{e}");
    assert!(
        e.message.contains("ProcessParameters.OciSpecification"),
        "{e}"
    );
    // The connection is still good.
    c.process_list().unwrap();
}
