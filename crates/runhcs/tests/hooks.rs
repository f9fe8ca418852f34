//! End-to-end tests of the OCI hooks through runhcs with a busybox bundle:
//! real compute systems, so they run as root (`sudo ./scripts/test.sh`)
//! and fail otherwise.
//!
//! Every hook is one small `/bin/sh` script that appends its name and the
//! `status` and `pid` of the state it reads on stdin to a log. The script
//! and the log live in a host temporary directory that is bind-mounted at
//! the same path into the container, so the hooks that run in the
//! container (createContainer, startContainer: busybox's /bin/sh there)
//! write to the same log as those in the runtime namespace (the host's
//! /bin/sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn runhcs_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runhcs"))
}

/// The `hcs` CLI of the same target directory (built by `cargo build --workspace`).
fn hcs_exe() -> PathBuf {
    let p = runhcs_exe().with_file_name("hcs");
    assert!(
        p.exists(),
        "{} is missing: run cargo build --workspace first",
        p.display()
    );
    p
}

fn rootfs() -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runhcs tests create real containers and must run as root"
    );
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/rootfs/busybox");
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run scripts/build-rootfs.sh",
        p.display()
    );
    p.canonicalize().expect("rootfs path")
}

/// A unique container id for this test process.
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "hk-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bundle and a state root in a temporary directory.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// `runhcs spec`, then `edit` applied to the config.
    fn new(edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(rootfs(), dir.path().join("rootfs")).expect("rootfs symlink");
        let b = Bundle { dir };
        let out = b.runhcs(&["spec", "--bundle", b.path().to_str().expect("utf-8")]);
        assert!(out.status.success(), "runhcs spec: {}", text(&out.stderr));
        let cfg = b.path().join("config.json");
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(&cfg).expect("config.json")).expect("json");
        v["process"]["terminal"] = json!(false);
        edit(&mut v);
        std::fs::write(&cfg, v.to_string()).expect("write config.json");
        b
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Run runhcs with `--root` given after the command, as runc allows.
    /// Its stdout and stderr go to files, not pipes: `create` leaves a
    /// holder process with them, so a pipe would not end before the
    /// container does.
    fn runhcs(&self, args: &[&str]) -> Output {
        let root = self.root();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--root", root.to_str().expect("utf-8")]);
        run_to_files(Command::new(runhcs_exe()).args(&all))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.runhcs(args);
        assert!(
            out.status.success(),
            "runhcs {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    fn bundle_arg(&self) -> String {
        self.path().to_str().expect("utf-8").to_string()
    }
}

/// Deletes the container (and so terminates its compute system) on drop.
struct Guard<'a> {
    bundle: &'a Bundle,
    id: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.bundle.runhcs(&["delete", "--force", &self.id]);
        // Belt and braces: the compute system itself, should the record be gone.
        let _ = Command::new(hcs_exe())
            .args(["-n", "runhcs", "terminate", &self.id])
            .output();
    }
}

/// Run a command with stdin from /dev/null and stdout/stderr into
/// temporary files, and collect them once it exits.
fn run_to_files(cmd: &mut Command) -> Output {
    let out = tempfile::tempfile().expect("stdout file");
    let err = tempfile::tempfile().expect("stderr file");
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .status()
        .expect("runs runhcs");
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut v).expect("read");
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hcs_list_has(id: &str) -> bool {
    let out = Command::new(hcs_exe())
        .args(["list", "-n", "runhcs", "--json"])
        .output()
        .expect("hcs list");
    assert!(out.status.success(), "hcs list: {}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("hcs list JSON");
    v.as_array()
        .into_iter()
        .flatten()
        .any(|s| s["Id"] == json!(id))
}

fn wait_status(b: &Bundle, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = b.state(id);
        if s["status"] == json!(want) || Instant::now() > deadline {
            assert_eq!(s["status"], json!(want), "state of {id}: {s}");
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host directory the container sees at the same path, with the logging
/// hook script in it.
struct Shared {
    dir: tempfile::TempDir,
}

impl Shared {
    fn new() -> Shared {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // World-readable and searchable: the container may see it through
        // another uid, and the path must be the same on both sides.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let s = Shared { dir };
        // $1: the hook's name. Status and pid are cut out of the state with
        // sed, which both the host and busybox have.
        let script = format!(
            "#!/bin/sh\n\
             state=$(cat)\n\
             status=$(echo \"$state\" | sed -n 's/.*\"status\":\"\\([a-z]*\\)\".*/\\1/p')\n\
             pid=$(echo \"$state\" | sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p')\n\
             echo \"$1 ${{status:-?}} ${{pid:-none}}\" >> {}\n\
             exit ${{2:-0}}\n",
            s.log().display()
        );
        std::fs::write(s.script(), script).expect("write hook");
        std::fs::set_permissions(s.script(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod hook");
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self) -> PathBuf {
        self.path().join("hook.sh")
    }

    fn log(&self) -> PathBuf {
        self.path().join("log")
    }

    /// The log's lines, split into words.
    fn lines(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }

    /// A hook running the script as `name` (exiting with `code`).
    fn hook(&self, name: &str, code: u8) -> Value {
        let path = self.script().to_str().expect("utf-8").to_string();
        json!({"path": path, "args": [name, name, code.to_string()], "timeout": 30})
    }

    /// Bind-mount it into the container at the same path. The root is
    /// made writable (an overlay): with a read-only root the mountpoint
    /// would be created in the shared busybox rootfs itself, as runc does.
    fn add_mount(&self, cfg: &mut Value) {
        cfg["root"]["readonly"] = json!(false);
        let p = self.path().to_str().expect("utf-8");
        if let Some(mounts) = cfg["mounts"].as_array_mut() {
            mounts.push(json!({
                "destination": p, "source": p, "type": "bind", "options": ["rbind", "rw"]
            }));
        }
    }
}

/// Names of the log lines.
fn names(lines: &[Vec<String>]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l.first().map(String::as_str).unwrap_or(""))
        .collect()
}

#[test]
fn all_six_hooks_run_in_order_with_the_state() {
    let shared = Shared::new();
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        shared.add_mount(c);
        c["hooks"] = json!({
            "prestart": [shared.hook("prestart", 0)],
            "createRuntime": [shared.hook("createRuntime", 0)],
            "createContainer": [shared.hook("createContainer", 0)],
            "startContainer": [shared.hook("startContainer", 0)],
            "poststart": [shared.hook("poststart", 0)],
            "poststop": [shared.hook("poststop", 0)],
        });
    });
    let id = unique("order");
    b.ok(&["create", &id, "--bundle", &b.bundle_arg()]);
    let guard = Guard {
        bundle: &b,
        id: id.clone(),
    };

    // create: the create-time hooks, in the runtime namespace then the
    // container's, told "creating" and the pid of the container's init.
    let after_create = shared.lines();
    assert_eq!(
        names(&after_create),
        ["prestart", "createRuntime", "createContainer"],
        "{after_create:?}"
    );
    let pid = after_create[0][2].clone();
    pid.parse::<i32>().expect("a pid in the state");
    for l in &after_create {
        assert_eq!(
            l[1..],
            ["creating".to_string(), pid.clone()],
            "{after_create:?}"
        );
    }
    // The pid is the init's as the runtime namespace sees it: a live
    // process in another pid namespace than ours.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    assert!(ns(&pid).is_some(), "no process {pid}");
    assert_ne!(ns(&pid), ns("self"), "pid {pid} is not in the container");

    b.ok(&["start", &id]);
    wait_status(&b, &id, "stopped");
    let after_start = shared.lines();
    assert_eq!(
        names(&after_start),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ],
        "{after_start:?}"
    );
    assert_eq!(after_start[3][1..], ["created".to_string(), pid.clone()]);
    assert_eq!(after_start[4][1..], ["running".to_string(), pid.clone()]);

    // poststop: only once the container is deleted, and without a pid.
    b.ok(&["delete", &id]);
    let after_delete = shared.lines();
    assert_eq!(
        names(&after_delete).last(),
        Some(&"poststop"),
        "{after_delete:?}"
    );
    assert_eq!(after_delete.len(), 6, "{after_delete:?}");
    assert_eq!(
        after_delete[5][1..],
        ["stopped".to_string(), "none".to_string()]
    );
    assert!(!hcs_list_has(&id));
    drop(guard);
}

#[test]
fn a_failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let shared = Shared::new();
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        shared.add_mount(c);
        c["hooks"] = json!({
            "createRuntime": [shared.hook("createRuntime", 3)],
            "createContainer": [shared.hook("createContainer", 0)],
            "poststop": [shared.hook("poststop", 0)],
        });
    });
    // Its stderr is the first line of the error.
    let script = std::fs::read_to_string(shared.script()).expect("script");
    std::fs::write(
        shared.script(),
        script.replace(
            "exit ${2:-0}",
            "[ \"$2\" = 0 ] || echo \"no network for $1\" >&2\nexit ${2:-0}",
        ),
    )
    .expect("write hook");
    let id = unique("fail");
    let out = b.runhcs(&["create", &id, "--bundle", &b.bundle_arg()]);
    let _guard = Guard {
        bundle: &b,
        id: id.clone(),
    };
    let err = text(&out.stderr);
    assert!(!out.status.success(), "create succeeded: {err}");
    assert!(
        err.contains(&format!(
            "OciSpecification.hooks.createRuntime[0]: {} exited with status 3: no network for createRuntime",
            shared.script().display()
        )),
        "{err}"
    );
    assert!(!hcs_list_has(&id), "the compute system {id} is left");
    let list = b.ok(&["list", "--quiet"]);
    assert!(!list.lines().any(|l| l == id), "runhcs list: {list}");
    // The container was stopped and destroyed: no createContainer, and the
    // poststop hooks ran (runtime.md lifecycle steps 4, 12, 13).
    let lines = shared.lines();
    assert_eq!(names(&lines), ["createRuntime", "poststop"], "{lines:?}");
}
