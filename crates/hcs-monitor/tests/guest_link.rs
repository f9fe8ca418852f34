//! GuestLink, the VM side of the agent connection, against the real agent.
//! In a VM the agent connects out to host port 0x4843, which the hybrid
//! vsock device delivers to `<vsock.sock>_18499`, and stdio ports to
//! `<vsock.sock>_<port>`. Here `hcs-agent --unix <dir>` stands in for the
//! guest: with the link's base at `<dir>/port`, its stdio sockets
//! `<dir>/port_<N>` are exactly where the agent connects, and a bridge
//! thread carries the control connection from the agent's socket to the
//! link's, as the vsock device would.

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use hcs_errors::HResult;
use hcs_monitor::agent::{AgentEvent, HostTimeZone};
use hcs_monitor::guest_link::GuestLink;

/// Connects the agent's control socket to the link's, copying both ways
/// until either side closes.
fn bridge(agent: &Agent, link_socket: &std::path::Path) {
    let a = agent.stream();
    let l = UnixStream::connect(link_socket).expect("the link listens");
    let (a2, l2) = (a.try_clone().unwrap(), l.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut &a, &mut &l);
        let _ = l.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut &l2, &mut &a2);
        let _ = a2.shutdown(std::net::Shutdown::Both);
    });
}

fn events_until(link: &GuestLink, want: impl Fn(&AgentEvent) -> bool) -> Vec<AgentEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        seen.extend(link.take_events());
        if seen.iter().any(&want) {
            return seen;
        }
        assert!(Instant::now() < deadline, "saw only {seen:?}");
        wait_readable(link.event_fd());
    }
}

#[test]
fn the_agent_connects_runs_processes_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("port");
    let link = GuestLink::listen(&base, None, false).unwrap();
    let control = dir.path().join("port_18499");
    assert!(control.exists(), "the link listens on <base>_18499");

    // No agent yet: a bounded wait, then a clear error.
    let e = link
        .client(Duration::from_millis(50))
        .err()
        .expect("no agent yet");
    assert_eq!(e.hresult, HResult::HCS_E_CONNECT_FAILED, "{e}");

    let agent = Agent::start(dir.path());
    bridge(&agent, &control);
    let client = link.client(Duration::from_secs(20)).unwrap();
    let p = client
        .create_process(&params(serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "echo via the link; exit 3"],
            "CreateStdOutPipe": true
        })))
        .unwrap();
    assert_eq!(read_all(p.stdout), "via the link\n");
    let seen = events_until(&link, |e| {
        *e == AgentEvent::ProcessExited {
            pid: p.pid,
            exit_code: 3,
        }
    });
    assert!(!seen.contains(&AgentEvent::ConnectionClosed), "{seen:?}");

    // The agent goes away (a guest reboot, a restore): the link says so...
    drop(agent);
    events_until(&link, |e| *e == AgentEvent::ConnectionClosed);
    assert!(link.current().is_none());

    // ...and a new agent's connection replaces the old one.
    let agent = Agent::start(dir.path());
    bridge(&agent, &control);
    let client = link.client(Duration::from_secs(20)).unwrap();
    client.process_list().unwrap();
    drop(link);
    assert!(!control.exists(), "the link removes its socket");
}

#[test]
fn use_host_time_zone_gives_each_agent_the_host_zone_before_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("port");
    let tz = HostTimeZone {
        name: "Europe/Paris".into(),
        tzif: b"TZif2\0\0\0paris".to_vec(),
    };
    let link = GuestLink::listen(&base, Some(tz.clone()), false).unwrap();
    let agent = Agent::start(dir.path());
    bridge(&agent, &dir.path().join("port_18499"));
    link.client(Duration::from_secs(20)).unwrap();
    // hcs-agent --unix keeps its /etc under its directory.
    let etc = dir.path().join("etc");
    assert_eq!(std::fs::read(etc.join("localtime")).unwrap(), tz.tzif);
    assert_eq!(
        std::fs::read_to_string(etc.join("timezone")).unwrap(),
        "Europe/Paris\n"
    );
}

#[test]
fn the_host_time_zone_is_read_from_localtime_and_named_by_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zoneinfo/America/Argentina");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("Buenos_Aires"), b"TZif3 ba").unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    // No localtime at all is UTC.
    assert_eq!(
        HostTimeZone::of_host(&etc).unwrap(),
        HostTimeZone {
            name: "UTC".into(),
            tzif: Vec::new()
        }
    );
    std::os::unix::fs::symlink(zone.join("Buenos_Aires"), etc.join("localtime")).unwrap();
    let tz = HostTimeZone::of_host(&etc).unwrap();
    assert_eq!(tz.name, "America/Argentina/Buenos_Aires");
    assert_eq!(tz.tzif, b"TZif3 ba");
    // /etc/timezone, when there is one, names it.
    std::fs::write(etc.join("timezone"), "Local/Name\n").unwrap();
    assert_eq!(HostTimeZone::of_host(&etc).unwrap().name, "Local/Name");
}
