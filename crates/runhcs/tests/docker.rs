//! Docker end to end: Debian's dockerd with runhcs registered as a runtime
//! beside runc, which is the control: every check runs the same `docker`
//! command with `--runtime runc` and `--runtime runhcs` and expects the same
//! output and exit code.
//!
//! The test starts a private dockerd (its data root, exec root, socket and
//! config in a temporary directory; no bridge and no iptables rules, so the
//! host's network is untouched; its own containerd), imports an image made
//! from the busybox root filesystem (scripts/build-rootfs.sh; nothing is
//! pulled), and stops dockerd by its pid at the end, also when a check
//! fails. scripts/install-deps.sh installs docker.io.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_bounded, Bounded};

/// How long one docker command may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// The image the checks run.
const IMAGE: &str = "hcs-busybox:1";

/// Directories outside its temporary directory that dockerd, its
/// containerd and the runc shim make (dockerd's plugin directory, the
/// shim's sockets and fifos at fixed paths): removed at the end, deepest
/// first, if they did not exist before and are empty by then.
const SHARED_DIRS: [&str; 5] = [
    "/run/docker/plugins",
    "/run/docker",
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd",
];

/// A private dockerd, stopped (by pid) when dropped.
struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    /// Those of [`SHARED_DIRS`] that did not exist before.
    created_dirs: Vec<&'static str>,
    /// The cgroup parent of its containers (`--cgroup-parent`), ours alone.
    cgroup_parent: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dockerd = Path::new("/usr/sbin/dockerd");
        assert!(
            dockerd.exists(),
            "dockerd is missing: scripts/install-deps.sh installs docker.io"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("daemon.json");
        let runtimes = serde_json::json!({
            "runtimes": { "runhcs": { "path": common::runhcs_exe() } }
        });
        std::fs::write(&config, runtimes.to_string()).expect("daemon.json");
        let created_dirs = SHARED_DIRS
            .into_iter()
            .filter(|d| !Path::new(d).exists())
            .collect();
        let cgroup_parent = format!("hcs-docker-test-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("log");
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .arg("--config-file")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("dockerd");
        let d = Dockerd {
            dir,
            child,
            created_dirs,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = run_bounded(d.docker().arg("version"), DOCKER_TIMEOUT);
            if v.status.is_some_and(|s| s.success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s: {v}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// The docker client of this daemon (Debian's, of the same version).
    fn docker(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H").arg(format!(
            "unix://{}",
            self.dir.path().join("docker.sock").display()
        ));
        c
    }

    fn run(&self, args: &[&str]) -> Bounded {
        run_bounded(self.docker().args(args), DOCKER_TIMEOUT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.is_some_and(|s| s.success()), "{out}");
        out.stdout
    }

    /// `docker import` of the busybox root filesystem as [`IMAGE`].
    fn import_busybox(&self) {
        let rootfs = common::rootfs();
        let tar = self.dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar of {}", rootfs.display());
        let tar = tar.to_str().expect("utf-8").to_string();
        self.ok(&["import", &tar, IMAGE]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
        // SAFETY: kill(2) of the dockerd we started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for dir in &self.created_dirs {
            let _ = std::fs::remove_dir(dir);
        }
        // The containers' cgroup parent, in every hierarchy (empty now).
        for base in ["/sys/fs/cgroup"].into_iter().map(PathBuf::from).chain(
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        ) {
            let _ = std::fs::remove_dir(base.join(&self.cgroup_parent));
        }
    }
}

/// What one docker command gave: exit code and stdout.
fn outcome(b: &Bounded) -> (Option<i32>, String) {
    (b.status.and_then(|s| s.code()), b.stdout.clone())
}

/// Run `args` (after `run --rm --runtime <rt>`, with stdin from `input`)
/// with runc and runhcs; both must give the same exit code and output,
/// which `check` also looks at.
fn same_as_runc(
    d: &Dockerd,
    input: Option<&str>,
    args: &[&str],
    check: impl Fn(&(Option<i32>, String)),
) {
    let mut seen = Vec::new();
    for rt in ["runc", "runhcs"] {
        let mut all = vec!["run", "--rm", "--runtime", rt];
        if input.is_some() {
            all.push("-i");
        }
        all.extend_from_slice(args);
        let out = match input {
            None => d.run(&all),
            Some(text) => run_with_input(d.docker().args(&all), text),
        };
        let o = outcome(&out);
        check(&o);
        seen.push((rt, o, out.to_string()));
    }
    assert_eq!(
        seen[0].1, seen[1].1,
        "runhcs differs from runc for docker {args:?}:\n{}\n{}",
        seen[0].2, seen[1].2
    );
}

/// Run `cmd` with `input` on its stdin (then closed), bounded.
fn run_with_input(cmd: &mut Command, input: &str) -> Bounded {
    use std::io::Write;
    let out = tempfile::NamedTempFile::new().expect("out");
    let err = tempfile::NamedTempFile::new().expect("err");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"))
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Bounded {
        status,
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        what: format!("{cmd:?}"),
    }
}

#[test]
fn docker_runs_containers_with_runhcs_as_with_runc() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "dockerd needs root (sudo ./scripts/test.sh)"
    );
    let d = Dockerd::start();
    d.import_busybox();

    // Output and exit codes.
    same_as_runc(
        &d,
        None,
        &[IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"],
        |o| {
            assert_eq!(o, &(Some(3), "out\n".to_string()));
        },
    );
    // Standard input to its end.
    same_as_runc(
        &d,
        Some("x\ny\n"),
        &[IMAGE, "sh", "-c", "wc -l; echo done"],
        |o| {
            assert_eq!(o, &(Some(0), "2\ndone\n".to_string()));
        },
    );
    // Limits, read back inside (cgroup v1 or v2 files, whichever there are).
    let cg = |v1: &str, v2: &str| {
        format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
    };
    let limits = [
        cg("memory/memory.limit_in_bytes", "memory.max"),
        cg("memory/memory.memsw.limit_in_bytes", "memory.swap.max"),
        cg("cpu/cpu.cfs_quota_us", "cpu.max"),
        cg("pids/pids.max", "pids.max"),
    ]
    .join("; ");
    same_as_runc(
        &d,
        None,
        &[
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            IMAGE,
            "sh",
            "-c",
            &limits,
        ],
        |o| assert!(o.1.contains("67108864") && o.1.contains("50"), "{o:?}"),
    );
    let memory = [
        cg("memory/memory.soft_limit_in_bytes", "memory.low"),
        "grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || true".into(),
        cg("cpuset/cpuset.cpus", "cpuset.cpus"),
    ]
    .join("; ");
    same_as_runc(
        &d,
        None,
        &[
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--oom-kill-disable",
            "--cpuset-cpus",
            "0",
            IMAGE,
            "sh",
            "-c",
            &memory,
        ],
        |o| assert!(o.1.contains("33554432"), "{o:?}"),
    );
    // Capabilities, user, network, a read-only root with a tmpfs.
    same_as_runc(
        &d,
        None,
        &[
            "--cap-drop",
            "ALL",
            IMAGE,
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
        |o| {
            assert_eq!(o, &(Some(0), "CapEff:\t0000000000000000\n".to_string()));
        },
    );
    same_as_runc(&d, None, &["--user", "1000:1000", IMAGE, "id", "-u"], |o| {
        assert_eq!(o, &(Some(0), "1000\n".to_string()));
    });
    same_as_runc(
        &d,
        None,
        &["--network", "none", IMAGE, "sh", "-c", "ls /sys/class/net"],
        |o| {
            assert_eq!(o, &(Some(0), "lo\n".to_string()));
        },
    );
    same_as_runc(
        &d,
        None,
        &[
            "--read-only",
            "--tmpfs",
            "/scratch",
            IMAGE,
            "sh",
            "-c",
            "touch /scratch/a && echo tmpfs-ok; touch /a 2>/dev/null || echo root-ro",
        ],
        |o| assert_eq!(o, &(Some(0), "tmpfs-ok\nroot-ro\n".to_string())),
    );
    // A disk of the host stays out of reach though Docker grants CAP_MKNOD.
    same_as_runc(
        &d,
        None,
        &[
            IMAGE,
            "sh",
            "-c",
            "mknod /dev/d b 7 0 && echo made; head -c1 /dev/d >/dev/null 2>&1 || echo denied",
        ],
        |o| assert_eq!(o, &(Some(0), "made\ndenied\n".to_string())),
    );

    // Detached: exec, logs, pause and unpause, stop (SIGTERM to its process).
    let mut seen = Vec::new();
    for rt in ["runc", "runhcs"] {
        let name = format!("hcs-docker-{rt}");
        let script =
            "echo started; trap 'echo got-term; exit 7' TERM; while true; do sleep 1; done";
        d.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            rt,
            IMAGE,
            "sh",
            "-c",
            script,
        ]);
        let exec = d.ok(&["exec", &name, "sh", "-c", "echo in-exec"]);
        // docker update: raised past the old memory+swap (written in the
        // right order), then read back inside.
        d.ok(&[
            "update",
            "--memory",
            "96m",
            "--memory-swap",
            "192m",
            "--pids-limit",
            "80",
            &name,
        ]);
        let updated = d.ok(&["exec", &name, "sh", "-c", &limits]);
        d.ok(&["pause", &name]);
        let paused = d.ok(&["inspect", "-f", "{{.State.Status}}", &name]);
        d.ok(&["unpause", &name]);
        d.ok(&["stop", "-t", "20", &name]);
        let code = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
        let logs = d.ok(&["logs", &name]);
        d.ok(&["rm", &name]);
        seen.push((exec, paused, code, logs, updated));
    }
    assert_eq!(
        (&seen[0].0, &seen[0].1, &seen[0].2, &seen[0].3),
        (
            &"in-exec\n".to_string(),
            &"paused\n".to_string(),
            &"7\n".to_string(),
            &"started\ngot-term\n".to_string()
        ),
        "runc"
    );
    for want in [96u64 << 20, 192 << 20, 80] {
        assert!(
            seen[0].4.lines().any(|l| l == want.to_string()),
            "runc's update: {want} missing from\n{}",
            seen[0].4
        );
    }
    assert_eq!(seen[1], seen[0], "runhcs differs from runc");
}
