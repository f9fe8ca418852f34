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

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::{hcs_list_has, text, unique, wait_status, Bundle, Guard};

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

    /// Bind-mount it into the container at the same path (its mountpoint is
    /// made in the bundle's own rootfs, as runc makes it).
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
    let guard = b.create(&id);

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
