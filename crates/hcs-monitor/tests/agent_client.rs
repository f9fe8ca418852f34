//! The host side of the agent protocol against the real agent,
//! `hcs-agent --unix <dir>`, on this host: handshake, processes with their
//! stdio streams, exit events, signals, errors from the guest side, the
//! process list, and the loss of the connection.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hcs_errors::HResult;
use hcs_monitor::agent::{AgentClient, AgentEvent};
use hcs_schema::ProcessParameters;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// `hcs-agent`, built by `cargo build --workspace` next to this test's directory.
fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("hcs-agent");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    wake: Arc<EventFd>,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(agent_bin())
            .arg("--unix")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wake = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        Agent {
            child,
            dir,
            wake: Arc::new(wake),
        }
    }

    fn client(&self) -> AgentClient {
        let sock = self.dir.path().join("agent.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("the agent does not listen on {}: {e}", sock.display()),
            }
        };
        let dir = self.dir.path().to_path_buf();
        let wake = self.wake.clone();
        AgentClient::connect(
            stream,
            Box::new(move |p| dir.join(format!("port_{p}"))),
            Arc::new(move || {
                let _ = wake.write(1);
            }),
        )
        .unwrap()
    }

    /// Blocks until the client has woken us (or 1 s passes).
    fn wait_wake(&self) {
        let mut fds = [PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, PollTimeout::from(1000u16)).unwrap_or(0) > 0 {
            let _ = self.wake.read();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Child::kill signals exactly the pid we started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn params(json: serde_json::Value) -> ProcessParameters {
    hcs_schema::from_json(&json.to_string(), "ProcessParameters").unwrap()
}

fn read_all(fd: Option<OwnedFd>) -> String {
    let mut s = String::new();
    std::fs::File::from(fd.expect("a stdio stream"))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Waits (with a deadline) for the exit event of `pid`.
fn exit_of(a: &Agent, c: &AgentClient, pid: u32) -> u32 {
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
        a.wait_wake();
    }
}

#[test]
fn a_process_runs_with_its_stdio_and_its_exit_is_an_event() {
    let agent = Agent::start();
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
    let agent = Agent::start();
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
    let agent = Agent::start();
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
    assert!(c.process_list().is_ok());
}

#[test]
fn losing_the_agent_is_an_event_and_fails_requests() {
    let mut agent = Agent::start();
    let c = agent.client();
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while !events.contains(&AgentEvent::ConnectionClosed) {
        assert!(
            Instant::now() < deadline,
            "no ConnectionClosed; saw {events:?}"
        );
        agent.wait_wake();
        events.extend(c.take_events());
    }
    assert!(c.is_closed());
    let e = c.process_list().unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_CONNECTION_CLOSED, "{e}");
}
