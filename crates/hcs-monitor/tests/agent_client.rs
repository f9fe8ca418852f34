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
    assert_eq!(c.version(), 1);
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
