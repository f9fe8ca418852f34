//! Helpers shared by the end-to-end tests of runhcs with a busybox bundle
//! (lifecycle, hooks, rootfs, security): the binaries, the root
//! filesystem, container ids, bundles and the guard that deletes a
//! container.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn runhcs_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runhcs"))
}

/// The `hcs` CLI of the same target directory (built by `cargo build --workspace`).
pub fn hcs_exe() -> PathBuf {
    let p = runhcs_exe().with_file_name("hcs");
    assert!(
        p.exists(),
        "{} is missing: run cargo build --workspace first",
        p.display()
    );
    p
}

pub fn rootfs() -> PathBuf {
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

/// A unique container id for this test process, named after the test
/// binary (`lifecycle-<pid>-<n>-<name>`).
pub fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the shared busybox root filesystem at `dest`: a container
/// writes into its bundle's rootfs (as with runc), so no two tests share one.
pub fn copy_rootfs(dest: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(dest)
        .output()
        .expect("cp");
    assert!(
        out.status.success(),
        "copying the rootfs: {}",
        text(&out.stderr)
    );
}

/// A bundle (with its own copy of the busybox rootfs) and a state root in a
/// temporary directory.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// `runhcs spec` with no terminal, then `edit` applied to the config.
    pub fn new(edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_rootfs(&dir.path().join("rootfs"));
        let b = Bundle::at(dir);
        let out = b.runhcs(&["spec", "--bundle", &b.bundle_arg()]);
        assert!(out.status.success(), "runhcs spec: {}", text(&out.stderr));
        b.edit(|v| {
            v["process"]["terminal"] = json!(false);
            edit(v);
        });
        b
    }

    /// A bundle in `dir`, which holds its rootfs and config.json already.
    pub fn at(dir: tempfile::TempDir) -> Bundle {
        Bundle { dir }
    }

    /// Apply `edit` to the bundle's config.json.
    pub fn edit(&self, edit: impl FnOnce(&mut Value)) {
        let cfg = self.path().join("config.json");
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(&cfg).expect("config.json")).expect("json");
        edit(&mut v);
        std::fs::write(&cfg, v.to_string()).expect("write config.json");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle's path as a `--bundle` argument.
    pub fn bundle_arg(&self) -> String {
        self.path().to_str().expect("utf-8").to_string()
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Run runhcs with `--root` given after the command, as runc allows.
    /// Its stdout and stderr go to files, not pipes: `create` leaves a
    /// holder process with them (as runc leaves its init), so a pipe would
    /// not end before the container does.
    pub fn runhcs(&self, args: &[&str]) -> Output {
        let root = self.root();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--root", root.to_str().expect("utf-8")]);
        run_to_files(Command::new(runhcs_exe()).args(&all))
    }

    /// `runhcs --root <root> exec <args>`: `--root` comes before the
    /// command here, since after it it would be the executed command's.
    /// Output to files, as with [`Bundle::runhcs`].
    pub fn exec(&self, args: &[&str]) -> Output {
        run_to_files(
            Command::new(runhcs_exe())
                .arg("--root")
                .arg(self.root())
                .arg("exec")
                .args(args),
        )
    }

    /// Run runhcs, asserting it succeeds; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.runhcs(args);
        assert!(
            out.status.success(),
            "runhcs {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// Create `id` from this bundle; the guard deletes it at the end.
    pub fn create(&self, id: &str) -> Guard<'_> {
        self.ok(&["create", id, "--bundle", &self.bundle_arg()]);
        Guard {
            bundle: self,
            id: id.to_string(),
        }
    }

    /// `runhcs run` in the foreground of a container with a unique id made
    /// of `name`, deleted afterwards: the process's output and exit code.
    pub fn run(&self, name: &str) -> Output {
        let id = unique(name);
        let _guard = Guard {
            bundle: self,
            id: id.clone(),
        };
        self.runhcs(&["run", &id, "--bundle", &self.bundle_arg()])
    }
}

/// Deletes the container (and so terminates its compute system) on drop.
pub struct Guard<'a> {
    pub bundle: &'a Bundle,
    pub id: String,
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

/// Assert that `out` failed and its stderr names `needle`.
pub fn assert_refused(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "succeeded; stderr: {err}");
    assert!(err.contains(needle), "{needle:?} missing from: {err}");
}

/// Run a command with stdin from /dev/null and stdout/stderr into
/// temporary files, and collect them once it exits.
pub fn run_to_files(cmd: &mut Command) -> Output {
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

/// Whether `hcs list -n runhcs` shows the compute system `id`.
pub fn hcs_list_has(id: &str) -> bool {
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

/// Wait up to 10 s for `id` to reach status `want`; its state.
pub fn wait_status(b: &Bundle, id: &str, want: &str) -> Value {
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

/// The outcome of a bounded command.
pub struct Bounded {
    /// None when it was killed for taking too long.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl std::fmt::Display for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} exited with {s}", self.what)?,
            None => write!(f, "{} timed out (killed)", self.what)?,
        }
        write!(
            f,
            "\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Run `cmd` with stdin from /dev/null and its output in temporary files (a
/// process it leaves behind holding a pipe cannot block us), killing it
/// after `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Bounded {
    run_bounded_with_input(cmd, limit, None)
}

/// [`run_bounded`] with `input` written to the command's stdin, which is
/// then closed (stdin is /dev/null without input).
pub fn run_bounded_with_input(cmd: &mut Command, limit: Duration, input: Option<&[u8]>) -> Bounded {
    let what = format!("{cmd:?}");
    let out = tempfile::tempfile().expect("stdout file");
    let err = tempfile::tempfile().expect("stderr file");
    let stdin = if input.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let (Some(bytes), Some(mut pipe)) = (input, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(bytes).expect("write stdin");
        // Dropped here: the command sees end of file.
    }
    let deadline = Instant::now() + limit;
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
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut v).expect("read");
        text(&v)
    };
    Bounded {
        status,
        stdout: read(out),
        stderr: read(err),
        what,
    }
}
