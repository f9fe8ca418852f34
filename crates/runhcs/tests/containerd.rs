//! containerd end to end: `ctr run` through containerd's runc v2 shim
//! (containerd-shim-runc-v2) with runhcs as its runc binary.
//!
//! Each test starts a private containerd (its own root, state and socket
//! in a temporary directory; the CRI plugin disabled; the overlayfs
//! snapshotter, or native where overlay cannot be mounted there), imports
//! an OCI image that it builds from the busybox root filesystem
//! (scripts/build-rootfs.sh) and runs containers from it with `ctr run
//! --rm --runc-binary ...`. The control test runs the same flow with the
//! real runc, so that a failure of the runhcs test can be told apart from a
//! broken harness. containerd is stopped by its pid and everything is
//! removed at the end, also when a test fails.
//!
//! What the shim needs of its runc binary (measured with a logging
//! wrapper): `--root <state>/runc/<ns> --log <bundle>/log.json --log-format
//! json create --bundle <bundle> --pid-file <bundle>/init.pid [--console-socket
//! S] <id>` with stdio pipes; then `start <id>`; the pid in the pid file must
//! be a descendant of `create` (the shim is a child subreaper and learns the
//! exit code by reaping it); then `delete <id>`, and `delete --force <id>`
//! from the shim's cleanup.
//!
//! Skipped (with the reason on stderr and in `$HCS_TEST_SKIP_LOG`) unless
//! we are root and containerd, ctr and containerd-shim-runc-v2 are on PATH.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{run_bounded, Bounded};
use std::time::{Duration, Instant};

/// How long one `ctr` command may take before the test gives up on it.
const CTR_TIMEOUT: Duration = Duration::from_secs(60);

fn runhcs_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runhcs"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Report that `test` did not run its checks, and why (see
/// `hcs_test_support::skip`).
fn skip(test: &str, reason: &str) {
    hcs_test_support::skip(test, reason);
}

/// Where `name` is on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("containerd needs root".into());
    }
    let absent: Vec<&str> = ["containerd", "ctr", "containerd-shim-runc-v2"]
        .into_iter()
        .filter(|b| on_path(b).is_none())
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            "{} not found on PATH (Debian: apt-get install containerd)",
            absent.join(", ")
        ));
    }
    None
}

fn rootfs() -> PathBuf {
    let p = repo().join("build/rootfs/busybox");
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run scripts/build-rootfs.sh",
        p.display()
    );
    p.canonicalize().expect("rootfs path")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The hex sha256 of a file (`sha256sum`: no hash crate in the workspace).
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("runs sha256sum");
    assert!(out.status.success(), "sha256sum: {}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// Move `file` into the layout's blobs; its descriptor (digest, size).
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let hex = sha256(file);
    let size = std::fs::metadata(file).expect("blob size").len();
    std::fs::rename(file, layout.join("blobs/sha256").join(&hex)).expect("move blob");
    (format!("sha256:{hex}"), size)
}

/// An OCI image layout tar (one uncompressed layer: the busybox root) in `dir`.
fn build_image(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    let layer = dir.join("layer.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .args(["--numeric-owner", "-cf"])
        .arg(&layer)
        .arg(".")
        .status()
        .expect("runs tar");
    assert!(st.success(), "tar of the busybox root failed");
    let (layer_digest, layer_size) = add_blob(&layout, &layer);
    let config = dir.join("config.json");
    let cfg = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"]
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] }
    });
    std::fs::write(&config, cfg.to_string()).expect("image config");
    let (config_digest, config_size) = add_blob(&layout, &config);
    let manifest = dir.join("manifest.json");
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest, "size": config_size
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest, "size": layer_size
        }]
    });
    std::fs::write(&manifest, m.to_string()).expect("manifest");
    let (manifest_digest, manifest_size) = add_blob(&layout, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "platform": { "architecture": "amd64", "os": "linux" }
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let tar = dir.join("busybox-oci.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .expect("runs tar");
    assert!(st.success(), "tar of the image layout failed");
    tar
}

/// Whether an overlay mount works in `dir` (else the native snapshotter).
fn overlay_works(dir: &Path) -> bool {
    let t = dir.join("overlay-probe");
    let (lower, upper, work, merged) = (t.join("l"), t.join("u"), t.join("w"), t.join("m"));
    for d in [&lower, &upper, &work, &merged] {
        if std::fs::create_dir_all(d).is_err() {
            return false;
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let ok = nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .is_ok();
    if ok {
        let _ = nix::mount::umount(&merged);
    }
    let _ = std::fs::remove_dir_all(&t);
    ok
}

/// Directories outside the temporary directory that containerd and its shim
/// create: the shim's sockets (`/run/containerd/s`, fixed in containerd
/// 1.6) and ctr's fifos. Removed at the end if they did not exist before
/// and are empty by then.
const SHARED_DIRS: [&str; 3] = [
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd",
];

/// A private containerd; stopped (by its pid) and cleaned up on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    namespace: String,
    snapshotter: &'static str,
    created_dirs: Vec<&'static str>,
    /// The runc binary the tests give the shim (for the final clean-up).
    runtime: Option<PathBuf>,
}

impl Containerd {
    fn start(test: &str, runtime: &Path) -> Containerd {
        let created_dirs = SHARED_DIRS
            .into_iter()
            .filter(|d| !Path::new(d).exists())
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshotter = if overlay_works(dir.path()) {
            "overlayfs"
        } else {
            "native"
        };
        let t = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{debug}"
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = t.join("root").display(),
            state = t.join("state").display(),
            sock = t.join("containerd.sock").display(),
            debug = t.join("debug.sock").display(),
            opt = t.join("opt").display(),
        );
        std::fs::write(t.join("config.toml"), config).expect("config.toml");
        let log = std::fs::File::create(t.join("containerd.log")).expect("containerd.log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(t.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("starts containerd");
        let mut c = Containerd {
            dir,
            child: Some(child),
            namespace: format!("hcs-test-{}-{test}", std::process::id()),
            snapshotter,
            created_dirs,
            runtime: Some(runtime.to_path_buf()),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if c.address().exists() {
                let out = c.ctr(&["version"]);
                if out.status.is_some_and(|s| s.success()) {
                    break;
                }
            }
            if let Some(Ok(Some(st))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                panic!("containerd exited ({st}) at start:\n{}", c.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 20 s:\n{}",
                c.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn address(&self) -> PathBuf {
        self.path().join("containerd.sock")
    }

    /// The end of containerd's log (for failure messages).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `ctr -a <socket> -n <namespace> args...`, bounded by CTR_TIMEOUT.
    fn ctr(&self, args: &[&str]) -> Bounded {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.address())
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .env("CONTAINERD_SNAPSHOTTER", self.snapshotter);
        run_bounded(&mut cmd, CTR_TIMEOUT)
    }

    fn import(&self, tar: &Path) {
        let tar = tar.to_str().expect("utf-8");
        let out = self.ctr(&["images", "import", "--index-name", "busybox:hcs", tar]);
        assert!(
            out.status.is_some_and(|s| s.success()),
            "ctr images import: {out}\ncontainerd log:\n{}",
            self.log_tail()
        );
    }

    /// `ctr run --rm` of the imported image with `runtime` as the runc
    /// binary (its --root in our directory).
    fn run(&self, runtime: &Path, id: &str, args: &[&str]) -> Bounded {
        let root = self.path().join("runc-root");
        let mut all = vec![
            "run",
            "--rm",
            "--runc-binary",
            runtime.to_str().expect("utf-8"),
            "--runc-root",
            root.to_str().expect("utf-8"),
            "busybox:hcs",
            id,
        ];
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    /// Kill and delete whatever tasks and containers are left in our namespace.
    fn remove_leftovers(&self) {
        let ids = |what: &str| -> Vec<String> {
            let out = self.ctr(&[what, "ls", "-q"]);
            out.stdout.lines().map(|l| l.trim().to_string()).collect()
        };
        for id in ids("tasks") {
            if id.is_empty() {
                continue;
            }
            let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
            std::thread::sleep(Duration::from_millis(200));
            let _ = self.ctr(&["tasks", "delete", "-f", &id]);
        }
        for id in ids("containers") {
            if !id.is_empty() {
                let _ = self.ctr(&["containers", "rm", &id]);
            }
        }
        // Containers of the runtime that the shims did not delete.
        if let Some(rt) = &self.runtime {
            let root = self.path().join("runc-root").join(&self.namespace);
            if let Ok(out) = Command::new(rt)
                .arg("--root")
                .arg(&root)
                .args(["list", "-q"])
                .output()
            {
                for id in text(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
                    let _ = Command::new(rt)
                        .arg("--root")
                        .arg(&root)
                        .args(["delete", "--force", id.trim()])
                        .output();
                }
            }
        }
    }

    /// The shims our containerd started (found by its socket on their
    /// command line), killed by pid should any outlive it.
    fn kill_our_shims(&self) {
        let address = self.address();
        let Some(address) = address.to_str() else {
            return;
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_shim = args
                .first()
                .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
            if is_shim && args.contains(&address.as_bytes()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.address().exists() {
            self.remove_leftovers();
        }
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.kill_our_shims();
        // Snapshots may still be mounted if a shim died mid-way.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let mut targets: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|m| m.starts_with(self.path().to_str().unwrap_or("\0")))
                .collect();
            targets.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in targets {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        remove_namespace_cgroups(&self.namespace);
        for d in &self.created_dirs {
            let _ = std::fs::remove_dir(d); // only if empty
        }
    }
}

/// runc (like containerd's default spec) puts a container in the cgroup
/// `/<namespace>/<id>` of every hierarchy, cgroup2 included, and removes
/// only `<id>`: remove the namespace's cgroups, deepest first, in every
/// cgroup hierarchy mounted (rmdir fails, harmlessly, on any still in use).
/// A child cgroup left on the cgroup2 hierarchy of a hybrid host would
/// stop its controllers from moving to v1 (EBUSY).
fn remove_namespace_cgroups(namespace: &str) {
    fn remove_tree(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(fs.split_whitespace().next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        if let Some(point) = mount.split_whitespace().nth(4) {
            remove_tree(&Path::new(point).join(namespace));
        }
    }
}

/// The checks both tests make, with `runtime` as the shim's runc binary:
/// output and exit 0 from /bin/echo, a non-zero exit code passed on, and
/// nothing left behind in the namespace.
fn run_flow(test: &str, runtime: &Path) {
    let c = Containerd::start(test, runtime);
    let id = |name: &str| format!("ctd-{}-{test}-{name}", std::process::id());
    let image = build_image(c.path());
    c.import(&image);

    let out = c.run(runtime, &id("echo"), &["/bin/echo", "hello"]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr run /bin/echo hello: {out}\ncontainerd log:\n{}",
        c.log_tail()
    );
    assert_eq!(
        out.stdout, "hello\n",
        "{test}: the container's output: {out}"
    );

    let out = c.run(
        runtime,
        &id("exit3"),
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(3),
        "{test}: ctr run of `exit 3` should exit 3: {out}\ncontainerd log:\n{}",
        c.log_tail()
    );
    assert_eq!(
        out.stdout, "out\n",
        "{test}: stdout of the container: {out}"
    );
    assert!(
        out.stderr.contains("err"),
        "{test}: the container's stderr should reach ctr's: {out}"
    );

    // A detached task, a process exec'd into it, and kills through the shim.
    let root = c.path().join("runc-root");
    let d = id("detached");
    let out = c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        runtime.to_str().expect("utf-8"),
        "--runc-root",
        root.to_str().expect("utf-8"),
        "busybox:hcs",
        &d,
        "/bin/sleep",
        "1000",
    ]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr run -d: {out}"
    );
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &d,
        "/bin/sh",
        "-c",
        "echo in-exec; exit 5",
    ]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(5),
        "{test}: ctr tasks exec: {out}"
    );
    assert_eq!(out.stdout, "in-exec\n", "{test}: exec output: {out}");
    let out = c.ctr(&["tasks", "ps", &d]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr tasks ps: {out}"
    );
    let out = c.ctr(&["tasks", "kill", "-s", "SIGKILL", &d]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr tasks kill: {out}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ls = c.ctr(&["tasks", "ls"]);
        let line = ls
            .stdout
            .lines()
            .find(|l| l.starts_with(d.as_str()))
            .unwrap_or("")
            .to_string();
        if line.contains("STOPPED") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{test}: the killed task never stopped: {ls}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killing a stopped task is "not found", not an unknown error.
    let out = c.ctr(&["tasks", "kill", "-s", "SIGKILL", &d]);
    assert!(
        !out.stderr.contains("unknown"),
        "{test}: kill of a stopped task: {out}"
    );
    let out = c.ctr(&["tasks", "delete", &d]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr tasks delete: {out}"
    );
    let out = c.ctr(&["containers", "rm", &d]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "{test}: ctr containers rm: {out}"
    );

    for what in ["tasks", "containers"] {
        let left = c.ctr(&[what, "ls", "-q"]);
        assert!(
            left.stdout.trim().is_empty(),
            "{test}: `ctr run --rm` left {what} behind: {left}"
        );
    }
}

/// The harness itself, with Debian's runc: if this fails the machine's
/// containerd setup is at fault, not runhcs.
#[test]
fn ctr_run_with_runc() {
    if let Some(why) = missing() {
        return skip("containerd::ctr_run_with_runc", &why);
    }
    let Some(runc) = on_path("runc") else {
        return skip("containerd::ctr_run_with_runc", "runc not found on PATH");
    };
    run_flow("runc", &runc);
}

/// containerd's runc v2 shim driving runhcs.
#[test]
fn ctr_run_with_runhcs() {
    if let Some(why) = missing() {
        return skip("containerd::ctr_run_with_runhcs", &why);
    }
    let monitor = runhcs_exe().with_file_name("hcs-monitor");
    assert!(
        monitor.exists(),
        "{} is missing: run cargo build --workspace first (the shim runs runhcs, which \
         finds its monitor next to itself)",
        monitor.display()
    );
    run_flow("runhcs", &runhcs_exe());
}
