//! PID 1 mode, tested in fresh pid, mount and UTS namespaces
//! (`unshare --pid --fork --mount --uts`), serving a unix socket directory:
//! mounts, host name, orphan reaping, and Shutdown ending the namespace
//! through reboot(2). Needs root and util-linux's unshare; skips otherwise.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hcs_agent_protocol::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Starts `hcs-agent --init --unix <dir>` as PID 1 of new namespaces; the
/// directory is outside /tmp and /run, which the agent mounts over.
/// `None` (recorded as a skip of `test`) only where this machine lacks what
/// the test needs; an agent that does not come up is a failure.
fn start_init_agent(test: &str) -> Option<AgentProc> {
    if !is_root() {
        hcs_test_support::skip(test, "needs root to make PID and mount namespaces");
        return None;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        hcs_test_support::skip(test, "needs unshare(1) from util-linux");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("init-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
        ])
        .arg(agent_bin())
        .args(["--init", "--unix"])
        .arg(dir.path())
        .env("HCS_HOSTNAME", "hcs-init-test")
        .stdin(Stdio::null())
        .spawn()
        .expect("start unshare");
    let mut agent = AgentProc::from_parts(child, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(agent.dir.path().join("agent.sock")).is_err() {
        assert!(
            agent.alive(),
            "{test}: the agent in --init mode exited before it listened on {}",
            agent.dir.path().join("agent.sock").display()
        );
        assert!(
            Instant::now() < deadline,
            "{test}: the agent in --init mode did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(agent)
}

fn run_output(agent: &mut AgentProc, c: &mut Client, args: &[&str]) -> String {
    let mut p = create(agent, c, &Spec::new(args)).unwrap();
    let out = read_all(&mut p.stdout);
    assert_eq!(c.wait(p.pid).exit_code, 0, "{args:?}");
    out
}

fn listed_pids(c: &mut Client) -> Vec<(u32, String)> {
    match c.call(&Message::ProcessList) {
        Reply::List(l) => l,
        other => panic!("{other:?}"),
    }
}

#[test]
fn init_mode_mounts_reaps_and_powers_off() {
    let Some(mut agent) = start_init_agent("init::init_mode_mounts_reaps_and_powers_off") else {
        return;
    };
    let mut c = agent.connect();

    // PID 1 is the agent, and /proc is the namespace's own.
    let list = listed_pids(&mut c);
    assert!(
        list.iter()
            .any(|(pid, cmd)| *pid == 1 && cmd.contains("--init")),
        "{list:?}"
    );

    let mounts = run_output(&mut agent, &mut c, &["cat", "/proc/self/mounts"]);
    for needle in [
        "proc /proc proc",
        "sysfs /sys sysfs",
        "devtmpfs /dev devtmpfs",
        "devpts /dev/pts devpts",
        "tmpfs /tmp tmpfs",
        "tmpfs /run tmpfs",
    ] {
        assert!(mounts.contains(needle), "{needle:?} not mounted:\n{mounts}");
    }

    // The host name comes from HCS_HOSTNAME (set below), in the agent's own UTS namespace.
    assert_eq!(
        run_output(&mut agent, &mut c, &["cat", "/proc/sys/kernel/hostname"]).trim(),
        "hcs-init-test"
    );

    // An orphan is reparented to the agent and reaped (a zombie would stay listed).
    let orphan: u32 = run_output(
        &mut agent,
        &mut c,
        &["sh", "-c", "sleep 0.2 >/dev/null 2>&1 & echo $!"],
    )
    .trim()
    .parse()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed_pids(&mut c).iter().any(|(pid, _)| *pid == orphan) {
        assert!(Instant::now() < deadline, "orphan {orphan} was not reaped");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Shutdown: a running process is killed and the namespace's init ends
    // the way reboot(RB_POWER_OFF) ends a pid namespace: by SIGINT.
    let mut spec = Spec::new(&["sleep", "100"]);
    spec.stdout = false;
    spec.stderr = false;
    create(&mut agent, &mut c, &spec).unwrap();
    assert_eq!(
        c.call(&Message::Shutdown(Shutdown {
            action: ShutdownAction::PowerOff
        })),
        Reply::Ok
    );
    let status = agent.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc_sigint()), "{status:?}");
}

#[test]
fn init_mode_reboot_ends_the_namespace_with_sighup() {
    let Some(mut agent) = start_init_agent("init::init_mode_reboot_ends_the_namespace_with_sighup")
    else {
        return;
    };
    let mut c = agent.connect();
    assert_eq!(
        c.call(&Message::Shutdown(Shutdown {
            action: ShutdownAction::Reboot
        })),
        Reply::Ok
    );
    let status = agent.child.wait().unwrap();
    assert_eq!(status.signal(), Some(1), "SIGHUP: {status:?}");
}

fn libc_sigint() -> i32 {
    2
}
