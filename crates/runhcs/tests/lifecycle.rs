//! End-to-end tests of runhcs with a busybox bundle: real compute systems,
//! so they run as root (`sudo ./scripts/test.sh`) and fail otherwise.
//!
//! The bundle's `rootfs` is a symlink to the repository's busybox root
//! filesystem (scripts/build-rootfs.sh). Nothing is written to it: a
//! writable root is an overlay over it, and a read-only root (runc spec's
//! default) is used directly, so tests that mount somewhere it lacks a
//! mountpoint ask for a writable root. Every container is deleted
//! with `delete --force` by a drop guard, also when a test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{
    assert_refused, hcs_exe, hcs_list_has, run_to_files, runhcs_exe, text, unique, wait_status,
    Bundle, Guard,
};

/// Whether `pid` is a live runhcs holder process (not gone, not a zombie).
fn is_live_holder(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__hold"))
}

#[test]
fn lifecycle_create_start_kill_delete() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("life");
    let guard = b.create(&id);

    let s = b.state(&id);
    assert_eq!(s["status"], json!("created"), "{s}");
    assert_eq!(s["id"], json!(id));
    assert_eq!(
        s["bundle"],
        json!(b.path().canonicalize().expect("bundle").to_str())
    );
    assert!(
        s["created"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{s}"
    );
    assert!(hcs_list_has(&id), "hcs list -n runhcs does not show {id}");

    // From create on, the pid is the host process standing for the
    // container's process (as runc's init), and the pid file says so.
    let created_pid = s["pid"].as_u64().expect("pid");
    assert!(
        is_live_holder(created_pid),
        "pid {created_pid} is not a live holder"
    );
    b.ok(&["start", &id]);
    let s = b.state(&id);
    assert_eq!(s["status"], json!("running"), "{s}");
    assert_eq!(s["pid"].as_u64(), Some(created_pid), "{s}");
    assert!(is_live_holder(created_pid));

    let ps: Value = serde_json::from_str(&b.ok(&["ps", &id, "--format", "json"])).expect("ps JSON");
    assert!(
        ps.as_array().is_some_and(|a| !a.is_empty()),
        "ps {ps} lists no process"
    );
    // Host pids, as runc gives: each is a process of the host in a pid
    // namespace of its own (NSpid has the inner pid too).
    for pid in ps.as_array().into_iter().flatten() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("a host pid");
        let nspid = status
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .unwrap_or("");
        assert!(nspid.split_whitespace().count() >= 3, "{pid}: {nspid}");
    }
    // The table is ps(1)'s, as runc gives it: its header, and the lines of
    // the container's processes only, for the options given.
    // --root first: after the id, everything is ps(1)'s.
    let ps_with = |args: &[&str]| {
        run_to_files(
            std::process::Command::new(runhcs_exe())
                .arg("--root")
                .arg(b.root())
                .arg("ps")
                .args(args),
        )
    };
    let out = ps_with(&[&id, "-o", "pid,comm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>),
        Some(vec!["PID", "COMMAND"]),
        "{table}"
    );
    let listed: Vec<u64> = lines
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let mut want: Vec<u64> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let mut got = listed.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "{table}");
    assert!(table.contains("sleep"), "{table}");
    let out = ps_with(&["--format", "json", &id, "-o", "pid"]);
    assert!(!out.status.success(), "ps options were accepted with json");

    // A running container is not deleted without --force.
    let out = b.runhcs(&["delete", &id]);
    assert!(
        !out.status.success(),
        "delete of a running container succeeded"
    );
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );

    b.ok(&["kill", &id, "KILL"]);
    let s = wait_status(&b, &id, "stopped");
    assert_eq!(s["pid"], json!(0));
    // The holder exits with the process.
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_live_holder(created_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !is_live_holder(created_pid),
        "the holder outlived the process"
    );

    b.ok(&["delete", &id]);
    let out = b.runhcs(&["state", &id]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(!hcs_list_has(&id), "{id} still listed after delete");
    drop(guard);
}

#[test]
fn kill_by_number_and_list() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("list");
    let _guard = b.create(&id);
    b.ok(&["start", &id]);
    let list: Value =
        serde_json::from_str(&b.ok(&["list", "--format", "json"])).expect("list JSON");
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == json!(id)))
        .cloned();
    assert_eq!(
        entry.map(|e| e["status"].clone()),
        Some(json!("running")),
        "{list}"
    );
    b.ok(&["kill", &id, "15"]);
    wait_status(&b, &id, "stopped");
}

#[test]
fn run_passes_output_and_exit_code() {
    let b =
        Bundle::new(|c| c["process"]["args"] = json!(["sh", "-c", "echo hello-$HOSTNAME; exit 7"]));
    let id = unique("run");
    let bundle = b.bundle_arg();
    let out = b.runhcs(&["run", &id, "--bundle", &bundle]);
    let _ = b.runhcs(&["delete", "--force", &id]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hello-runhcs");
    // run deletes the container afterwards.
    assert!(!b.root().join(&id).exists());
    assert!(!hcs_list_has(&id));
}

#[test]
fn pause_and_resume_show_in_state() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("pause");
    let _guard = b.create(&id);
    b.ok(&["start", &id]);
    b.ok(&["pause", &id]);
    assert_eq!(b.state(&id)["status"], json!("paused"));
    // Pausing twice is refused.
    assert!(!b.runhcs(&["pause", &id]).status.success());
    b.ok(&["resume", &id]);
    assert_eq!(b.state(&id)["status"], json!("running"));
    b.ok(&["delete", "--force", &id]);
    assert!(!hcs_list_has(&id));
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        c["linux"]["intelRdt"] = json!({"closID": "guaranteed"});
        // Empty values are fine.
        c["linux"]["sysctl"] = json!({});
    });
    let id = unique("unsup");
    let bundle = b.bundle_arg();
    let out = b.runhcs(&["create", &id, "--bundle", &bundle]);
    let _ = b.runhcs(&["delete", "--force", &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "create accepted unsupported fields");
    assert!(
        err.contains("Container.OciSpecification.linux.intelRdt"),
        "the field is not named in: {err}"
    );
    assert!(
        !err.contains("sysctl"),
        "an empty field was reported: {err}"
    );
    assert!(!b.root().join(&id).exists());
    assert!(!hcs_list_has(&id));
}

#[test]
fn bind_mount_is_mapped_read_only() {
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::write(shared.path().join("file"), "from-the-host").expect("write");
    let src = shared.path().to_str().expect("utf-8").to_string();
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /mnt/file; echo x > /mnt/new && echo writable"
        ]);
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]
        }));
        // Writable: the mountpoint is made in the bundle's own rootfs.
        c["root"]["readonly"] = json!(false);
    });
    let id = unique("bind");
    let bundle = b.bundle_arg();
    let out = b.runhcs(&["run", &id, "--bundle", &bundle]);
    let _ = b.runhcs(&["delete", "--force", &id]);
    assert_eq!(
        text(&out.stdout).trim(),
        "from-the-host",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "the read-only bind was writable"
    );
}

/// The host cgroup directory of a runhcs container in a v1 hierarchy (or the
/// v2 one), found by name: `hcs/runhcs@<id>`.
fn find_cgroup(hierarchy: &Path, id: &str, depth: usize) -> Option<PathBuf> {
    let want = format!("runhcs@{id}");
    for e in std::fs::read_dir(hierarchy).ok()?.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_str() == Some(want.as_str()) {
            return Some(p);
        }
        if depth > 0 {
            if let Some(found) = find_cgroup(&p, id, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn resources_reach_the_cgroup_and_options_go_anywhere() {
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["resources"] = json!({"memory": {"limit": 48 << 20}, "cpu": {"shares": 512}});
    });
    let id = unique("res");
    let bundle = b.bundle_arg();
    // Options before the id, and global options after the command.
    b.ok(&[
        "create",
        "--bundle",
        &bundle,
        &id,
        "--debug",
        "--systemd-cgroup",
        "--log-format",
        "json",
    ]);
    let _guard = Guard {
        bundle: &b,
        id: id.clone(),
    };
    let memory = find_cgroup(Path::new("/sys/fs/cgroup/memory"), &id, 6)
        .map(|d| d.join("memory.limit_in_bytes"))
        .or_else(|| find_cgroup(Path::new("/sys/fs/cgroup"), &id, 6).map(|d| d.join("memory.max")))
        .expect("the container's memory cgroup");
    let limit = std::fs::read_to_string(&memory).expect("memory limit");
    assert_eq!(
        limit.trim(),
        (48u64 << 20).to_string(),
        "{}",
        memory.display()
    );
    if let Some(cpu) = find_cgroup(Path::new("/sys/fs/cgroup/cpu"), &id, 6) {
        // Shares go through cpu.weight, so they come back close, not exact.
        let shares: u64 = std::fs::read_to_string(cpu.join("cpu.shares"))
            .expect("cpu.shares")
            .trim()
            .parse()
            .expect("a number");
        assert!((480..=544).contains(&shares), "cpu.shares {shares} for 512");
    }
}

#[test]
fn errors_go_to_the_log_as_json() {
    let b = Bundle::new(|_| {});
    let log = b.path().join("runhcs.log");
    let out = Command::new(runhcs_exe())
        .args([
            "--log",
            log.to_str().expect("utf-8"),
            "--log-format",
            "json",
            "--root",
        ])
        .arg(b.root())
        .args(["state", "no-such-container"])
        .output()
        .expect("runs runhcs");
    assert!(!out.status.success());
    let line = std::fs::read_to_string(&log).expect("the log file");
    let v: Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("JSON log line");
    assert_eq!(v["level"], json!("error"));
    assert!(
        v["msg"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{v}"
    );
}

/// Receive one descriptor sent with SCM_RIGHTS on `stream`.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg on the console socket");
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
            }
        }
    }
    panic!("no descriptor came with the console message");
}

#[test]
fn terminal_goes_to_the_console_socket() {
    let b = Bundle::new(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "[ -t 1 ] && echo hello-from-a-tty"]);
    });
    let id = unique("tty");
    let bundle = b.bundle_arg();
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind the console socket");
    let sock = sock.to_str().expect("utf-8").to_string();

    // Without --console-socket a terminal is refused, as by runc.
    let out = b.runhcs(&["create", &id, "--bundle", &bundle]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("--console-socket"),
        "{}",
        text(&out.stderr)
    );

    b.ok(&[
        "create",
        &id,
        "--bundle",
        &bundle,
        "--console-socket",
        &sock,
    ]);
    let _guard = Guard {
        bundle: &b,
        id: id.clone(),
    };
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept the console connection");
        receive_fd(&stream)
    });
    b.ok(&["start", &id]);
    let console = receiver.join().expect("console receiver");
    let mut output = String::new();
    let mut f = std::fs::File::from(console);
    let mut chunk = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    // The pty answers EIO once the process has gone and its output is read.
    while !output.contains("hello-from-a-tty") && Instant::now() < deadline {
        match std::io::Read::read(&mut f, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => output.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    assert!(
        output.contains("hello-from-a-tty"),
        "console output: {output:?}"
    );
}

#[test]
fn features_say_what_is_supported() {
    let out = Command::new(runhcs_exe()).arg("features").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It is a runtime-spec features document.
    let f: oci_spec::runtime::Features = serde_json::from_slice(&out.stdout).unwrap();
    let hooks = f.hooks().clone().unwrap_or_default();
    for want in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(
            hooks.iter().any(|h| h == want),
            "{want} missing from {hooks:?}"
        );
    }
    let linux = f.linux().clone().unwrap();
    assert_eq!(
        linux.seccomp().as_ref().and_then(|s| *s.enabled()),
        Some(true)
    );
    let ns: Vec<String> = linux
        .namespaces()
        .clone()
        .unwrap()
        .iter()
        .map(|n| format!("{n:?}").to_lowercase())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        assert!(ns.iter().any(|n| n == want), "{want} missing from {ns:?}");
    }
    // Every mount option it lists is one a bind mount may carry.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "ro"));
}

#[test]
fn exec_runs_processes_in_a_running_container() {
    let b = Bundle::new(|v| v["process"]["args"] = json!(["sleep", "60"]));
    let id = unique("exec");
    let _g = b.create(&id);
    b.ok(&["start", &id]);
    // A command line: stdout, stderr and the exit code come back.
    let o = b.exec(&[&id, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(
        (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
        ("out\n", "err\n")
    );

    // An OCI process document.
    let pfile = b.path().join("process.json");
    let mut process = json!({
        "args": ["sh", "-c", "echo $GREETING from $(pwd)"],
        "env": ["GREETING=hello", "PATH=/bin:/usr/bin"],
        "cwd": "/tmp",
        "user": { "uid": 0, "gid": 0 },
        "terminal": false
    });
    std::fs::write(&pfile, process.to_string()).unwrap();
    let o = b.exec(&["--process", pfile.to_str().unwrap(), &id]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "hello from /tmp\n");
    // What it cannot honour is refused by name (there is no AppArmor here).
    process["apparmorProfile"] = json!("docker-default");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let o = b.exec(&["--process", pfile.to_str().unwrap(), &id]);
    assert_refused(&o, "apparmorProfile");

    // Detached, with a pid file: the pid is the holder standing for the
    // process, which joins the container's list.
    let before: Vec<u32> = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    let pid_file = b.path().join("exec.pid");
    let o = b.exec(&[
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "30",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        is_live_holder(u64::from(pid)),
        "pid file names {pid}, not a live holder"
    );
    let pids: Vec<u32> = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), before.len() + 1, "{before:?} -> {pids:?}");
    // An engine killing the holder (containerd kills an exec's pid itself)
    // kills the process with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the holder we started");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now: Vec<u32> = pids.clone();
    while now.len() != before.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    }
    assert_eq!(now, before, "the process outlived its killed holder");

    // A detached process's terminal needs a console socket (in the
    // foreground runhcs relays it, see a_foreground_exec_with_a_terminal_relays_it).
    let o = b.exec(&["-d", "-t", &id, "sh"]);
    assert_refused(&o, "console-socket");
}

#[test]
fn events_and_the_hcs_cli_see_an_ordinary_compute_system() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("events");
    let _g = b.create(&id);
    b.ok(&["start", &id]);

    // One stats event: runc's shape, with the container's processes counted.
    let e: Value = serde_json::from_str(&b.ok(&["events", "--stats", &id])).expect("event JSON");
    assert_eq!(e["type"], json!("stats"), "{e}");
    assert_eq!(e["id"], json!(id));
    assert!(
        e["data"]["pids"]["current"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{e}"
    );
    assert!(e["data"]["cpu"]["usage"]["total"].is_u64(), "{e}");

    // The HCS CLI opens it like any compute system: properties and a process.
    let hcs =
        |args: &[&str]| run_to_files(Command::new(hcs_exe()).args(["-n", "runhcs"]).args(args));
    let o = hcs(&["properties", &id]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let p: Value = serde_json::from_slice(&o.stdout).expect("properties JSON");
    assert_eq!(p["Owner"], json!("runhcs"), "{p}");
    let o = hcs(&["exec", &id, "--", "sh", "-c", "echo from-hcs; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "from-hcs\n");

    // A stream of events ends when the container stops.
    let root = b.root();
    let mut stream = Command::new(runhcs_exe())
        .args([
            "--root",
            root.to_str().expect("utf-8"),
            "events",
            "--interval",
            "100ms",
            &id,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runhcs events");
    let mut first = String::new();
    let mut out = std::io::BufReader::new(stream.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut out, &mut first).expect("first event");
    assert!(first.contains("\"stats\""), "{first}");
    b.ok(&["kill", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = stream.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = stream.kill();
            let _ = stream.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "events did not end with the container: {status:?}"
    );
}

#[test]
fn an_absolute_cgroups_path_is_placed_from_each_hierarchy_root() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("cgpath");
    let group = format!("ns-{id}");
    // As containerd gives it: /<namespace>/<id>; the runtime spec places an
    // absolute path relative to the cgroups mount point, as runc does.
    b.edit(|v| v["linux"]["cgroupsPath"] = json!(format!("/{group}/{id}")));
    let roots: Vec<PathBuf> = hcs_cgroups::Hierarchies::detect()
        .expect("cgroup hierarchies")
        .hierarchies()
        .iter()
        .map(|h| h.mount_point().to_path_buf())
        .collect();
    assert!(!roots.is_empty());
    let guard = b.create(&id);
    let found = roots
        .iter()
        .filter(|r| r.join(&group).join(&id).is_dir())
        .count();
    assert!(found > 0, "no hierarchy has {group}/{id} at its root");
    // The cgroup is the container's: its processes are in it.
    let memory = roots
        .iter()
        .map(|r| r.join(&group).join(&id))
        .find(|d| d.join("memory.limit_in_bytes").exists() || d.join("memory.max").exists())
        .expect("the memory controller's directory");
    let procs = std::fs::read_to_string(memory.join("cgroup.procs")).unwrap();
    assert!(
        !procs.trim().is_empty(),
        "{} holds no process",
        memory.display()
    );
    // The pid engines get (state, --pid-file) is in it too: they read the
    // container's statistics and OOM events from that pid's cgroup.
    let pid = b.state(&id)["pid"].as_u64().expect("a pid");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wanted = format!("/{group}/{id}");
    // v1's memory hierarchy, or the v2 one where memory is not v1 (the
    // holder stays out of v1 pids, so that its threads do not use up the
    // container's process limit).
    let v1 = own.contains(":memory:");
    let ours = |l: &&str| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
            || (!v1 && l.starts_with("0::"))
    };
    assert!(
        own.lines().filter(ours).count() > 0
            && own.lines().filter(ours).all(|l| l.ends_with(&wanted)),
        "pid {pid} is not in the container's memory cgroup:\n{own}"
    );
    b.ok(&["delete", "--force", &id]);
    drop(guard);
    for root in &roots {
        assert!(
            !root.join(&group).join(&id).exists(),
            "{group}/{id} left in {}",
            root.display()
        );
        // The shared parent stays, as with runc; the test made its name and removes it.
        let _ = std::fs::remove_dir(root.join(&group));
    }
}

#[test]
fn the_process_is_checked_at_create() {
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        // Parses as OCI, but there is no AppArmor here.
        c["process"]["apparmorProfile"] = json!("docker-default");
    });
    let id = unique("badproc");
    let bundle = b.bundle_arg();
    let out = b.runhcs(&["create", &id, "--bundle", &bundle]);
    let _ = b.runhcs(&["delete", "--force", &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "create accepted an AppArmor profile");
    assert!(
        err.contains("Container.OciSpecification.process.apparmorProfile"),
        "{err}"
    );
    assert!(!b.root().join(&id).exists());
    assert!(!hcs_list_has(&id));
}

#[test]
fn exec_with_a_terminal_through_the_console_socket() {
    let b = Bundle::new(|v| v["process"]["args"] = json!(["sleep", "60"]));
    let id = unique("exectty");
    let _g = b.create(&id);
    b.ok(&["start", &id]);
    for detach in [true, false] {
        let sock = b.path().join(format!("exec-{detach}.sock"));
        let listener =
            std::os::unix::net::UnixListener::bind(&sock).expect("bind the console socket");
        let receiver = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept the console connection");
            receive_fd(&stream)
        });
        let mut args = vec!["-t", "--console-socket", sock.to_str().expect("utf-8")];
        if detach {
            args.push("-d");
        }
        args.extend([
            id.as_str(),
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo exec-on-a-tty",
        ]);
        let out = b.exec(&args);
        assert!(
            out.status.success(),
            "exec (detach {detach}): {}",
            text(&out.stderr)
        );
        let console = receiver.join().expect("console receiver");
        let mut f = std::fs::File::from(console);
        let mut output = String::new();
        let mut chunk = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !output.contains("exec-on-a-tty") && Instant::now() < deadline {
            match std::io::Read::read(&mut f, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => output.push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
        assert!(
            output.contains("exec-on-a-tty"),
            "detach {detach}: console output {output:?}"
        );
    }
}

#[test]
fn a_holder_ends_when_its_system_is_terminated_before_start() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("orphan");
    let _g = b.create(&id);
    let holder = b.state(&id)["pid"].as_u64().expect("pid");
    assert!(is_live_holder(holder), "{holder} is not a live holder");
    // Another client ends the compute system; nobody will run `start`.
    let out = run_to_files(Command::new(hcs_exe()).args(["-n", "runhcs", "terminate", &id]));
    assert!(out.status.success(), "hcs terminate: {}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_live_holder(holder) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !is_live_holder(holder),
        "the holder outlived its compute system"
    );
    assert_eq!(b.state(&id)["status"], json!("stopped"));
}

#[test]
fn kill_all_signals_every_process_of_the_container() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("killall");
    let _g = b.create(&id);
    b.ok(&["start", &id]);
    let out = b.exec(&["-d", &id, "sleep", "999"]);
    assert!(out.status.success(), "exec -d: {}", text(&out.stderr));
    let ps = |b: &Bundle| -> Vec<u64> {
        serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).expect("ps JSON")
    };
    // HCS's init, the container's process and the exec'd one.
    assert_eq!(ps(&b).len(), 3, "{:?}", ps(&b));
    b.ok(&["kill", "--all", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ps(&b).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Only HCS's own init is left (the exec'd process too is gone).
    assert_eq!(ps(&b).len(), 1, "{:?}", ps(&b));
    wait_status(&b, &id, "stopped");
}

/// Standard input from a pipe reaches end of file when the pipe's writer
/// closes it: `cat` ends (it hung for ever, as `echo x | docker run -i img
/// cat` did). runc, with the same config.json, is the control.
#[test]
fn stdin_from_a_pipe_reaches_end_of_file() {
    use std::io::Write;
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sh", "-c", "cat; echo eof-seen"]));
    let run_with = |cmd: &mut std::process::Command| {
        let out = tempfile::tempfile().unwrap();
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        child.stdin.take().unwrap().write_all(b"line\n").unwrap();
        // The writer is gone now: end of file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut text = String::new();
        use std::io::{Read, Seek};
        let mut out = out;
        out.rewind().unwrap();
        out.read_to_string(&mut text).unwrap();
        (status.map(|s| s.code()), text)
    };
    let id = unique("stdin");
    let (status, out) = run_with(
        std::process::Command::new(common::runhcs_exe())
            .arg("--root")
            .arg(b.root())
            .args(["run", "--bundle", &b.bundle_arg(), &id]),
    );
    let _ = b.runhcs(&["delete", "--force", &id]);
    assert_eq!(status, Some(Some(0)), "runhcs run never ended: {out}");
    assert_eq!(out, "line\neof-seen\n");

    b.edit(|c| c["root"]["path"] = json!(common::rootfs()));
    let (status, out) = run_with(
        std::process::Command::new("runc")
            .arg("--root")
            .arg(b.path().join("runc-state"))
            .args(["run", "--bundle", &b.bundle_arg(), &unique("stdin-runc")]),
    );
    assert_eq!(
        (status, out.as_str()),
        (Some(Some(0)), "line\neof-seen\n"),
        "runc"
    );
}

/// `runhcs features` tells the truth about mount options: a container with
/// a mount using each option it lists is created and runs (bind options on
/// a bind mount, newinstance on devpts, the rest on a tmpfs).
#[test]
fn every_mount_option_features_lists_is_accepted() {
    let out = Bundle::new(|_| {}).runhcs(&["features"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let features: serde_json::Value = serde_json::from_slice(&out.stdout).expect("features JSON");
    let options: Vec<String> = features["mountOptions"]
        .as_array()
        .expect("mountOptions")
        .iter()
        .map(|o| o.as_str().expect("string").to_string())
        .collect();
    assert!(options.len() > 10, "{options:?}");
    let data = tempfile::tempdir().unwrap();
    let mut refused = Vec::new();
    for o in &options {
        let bind_only = [
            "bind",
            "rbind",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "unbindable",
            "runbindable",
        ];
        // rro, rnosuid, ...: the recursive forms of bind options.
        let recursive = o.starts_with('r') && options.iter().any(|x| *x == o[1..]);
        let mount = if bind_only.contains(&o.as_str()) || recursive {
            let mut opts = vec![o.as_str()];
            if !o.ends_with("bind") {
                opts.push("rbind");
            }
            json!({"destination": "/mnt", "type": "bind", "source": data.path(), "options": opts})
        } else if o == "newinstance" {
            json!({"destination": "/mnt", "type": "devpts", "source": "devpts", "options": [o]})
        } else {
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": [o]})
        };
        let b = Bundle::new(|c| {
            c["process"]["args"] = json!(["true"]);
            c["mounts"].as_array_mut().unwrap().push(mount);
        });
        let out = b.run("mountopt");
        if !out.status.success() {
            refused.push(format!("{o}: {}", text(&out.stderr)));
        }
    }
    assert!(
        refused.is_empty(),
        "listed but refused:\n{}",
        refused.join("\n")
    );
}

/// Signal 0 asks whether the container is there, as kill(2) and runc do:
/// success while created or running (and nothing is signalled or
/// terminated), "container not running" once it stopped.
#[test]
fn kill_with_signal_0_only_checks_the_container() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("kill0");
    let _guard = b.create(&id);
    b.ok(&["kill", &id, "0"]);
    assert_eq!(b.state(&id)["status"], json!("created"));
    b.ok(&["start", &id]);
    b.ok(&["kill", &id, "0"]);
    assert_eq!(b.state(&id)["status"], json!("running"));
    b.ok(&["kill", &id, "KILL"]);
    wait_status(&b, &id, "stopped");
    let out = b.runhcs(&["kill", &id, "0"]);
    assert_refused(&out, "container not running");
}

/// A foreground `run --pid-file` writes the pid that stands for the
/// container's process (runhcs itself, which relays its stdio and exits
/// with its code), as runc writes its init's; and `-v` prints the version.
#[test]
fn foreground_run_writes_its_pid_file_and_v_is_the_version() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["true"]));
    let id = unique("runpid");
    let pid_file = b.path().join("run.pid");
    let child = std::process::Command::new(runhcs_exe())
        .arg("--root")
        .arg(b.root())
        .args(["run", "--bundle", &b.bundle_arg(), "--pid-file"])
        .arg(&pid_file)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("runhcs run");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let written = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(written.trim(), pid.to_string());

    let v = b.runhcs(&["-v"]);
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert!(
        text(&v.stdout).starts_with("runhcs "),
        "{}",
        text(&v.stdout)
    );
}

/// `exec -t` in the foreground needs no --console-socket: the process gets
/// a terminal and runhcs relays it to its own stdio (runc does the same);
/// its exit code is passed on.
#[test]
fn a_foreground_exec_with_a_terminal_relays_it() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique("exectty");
    let _guard = b.create(&id);
    b.ok(&["start", &id]);
    let out = b.exec(&["-t", &id, "sh", "-c", "tty; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
}

/// A pod's way: a second container joins the first's IPC and UTS
/// namespaces by path (containerd's CRI gives the sandbox's), and sees its
/// host name and its IPC namespace; a path to another kind of namespace is
/// refused at create, named.
#[test]
fn ipc_and_uts_namespaces_are_joined_by_path() {
    let group = format!("pod-{}", unique("joinns"));
    let a = Bundle::new(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["hostname"] = json!("sandbox-a");
    });
    let a_id = unique("sandbox");
    a.edit(|v| v["linux"]["cgroupsPath"] = json!(format!("/{group}/{a_id}")));
    let _ga = a.create(&a_id);
    // A process of the sandbox (any: they share its namespaces), found in
    // its cgroup, which the absolute cgroupsPath put at a known place.
    let procs = hcs_cgroups::Hierarchies::detect()
        .expect("cgroup hierarchies")
        .hierarchies()
        .iter()
        .map(|h| {
            h.mount_point()
                .join(&group)
                .join(&a_id)
                .join("cgroup.procs")
        })
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .filter(|t| !t.trim().is_empty())
        })
        .expect("the sandbox's processes");
    let pid: u32 = procs.lines().next().unwrap().trim().parse().unwrap();
    let ns = |kind: &str| format!("/proc/{pid}/ns/{kind}");
    let link = |p: &str| {
        std::fs::read_link(p)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    assert_ne!(
        link(&ns("ipc")),
        link("/proc/self/ns/ipc"),
        "the sandbox has the host's ipc namespace"
    );

    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["sh", "-c", "hostname; readlink /proc/self/ns/ipc"]);
        c["hostname"] = json!(null);
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            let kind = n["type"].as_str().unwrap().to_string();
            if kind == "ipc" || kind == "uts" {
                n["path"] = json!(ns(&kind));
            }
        }
    });
    let out = b.run("joiner");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["sandbox-a", link(&ns("ipc")).as_str()], "{stdout}");

    // The uts namespace's file where the ipc one belongs.
    let bad = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        c["hostname"] = json!(null);
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "ipc" {
                n["path"] = json!(ns("uts"));
            }
        }
    });
    let out = bad.run("badjoin");
    assert_refused(&out, "is not an ipc namespace");

    // The host's own uts namespace with a host name: refused, the host's
    // name unchanged.
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = Bundle::new(|c| {
        c["process"]["args"] = json!(["true"]);
        c["hostname"] = json!("renamed-host");
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "uts" {
                n["path"] = json!(format!("/proc/{}/ns/uts", std::process::id()));
            }
        }
    });
    let out = host.run("hostuts");
    assert_refused(&out, "would rename the host");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
    drop(_ga);
    for h in hcs_cgroups::Hierarchies::detect().unwrap().hierarchies() {
        let _ = std::fs::remove_dir(h.mount_point().join(&group));
    }
}

/// runc's exec rules: a created container takes execs (its namespaces
/// exist), --env replaces the spec's value, --additional-gids adds groups,
/// and a paused one is refused with a reason.
#[test]
fn exec_before_start_with_env_override_groups_and_paused_rules() {
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["process"]["env"] = json!(["PATH=/bin:/sbin:/usr/bin:/usr/sbin", "FOO=spec"]);
    });
    let id = unique("execrules");
    let _g = b.create(&id);
    assert_eq!(b.state(&id)["status"], "created");
    let out = b.exec(&[
        "-e",
        "FOO=cli",
        "-g",
        "1234",
        &id,
        "sh",
        "-c",
        "echo $FOO; id -G",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"cli"), "{stdout}");
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.split(' ').any(|g| g == "1234")),
        "{stdout}"
    );
    b.ok(&["start", &id]);
    b.ok(&["pause", &id]);
    let out = b.exec(&[&id, "true"]);
    assert_refused(&out, "paused");
    b.ok(&["resume", &id]);
    let out = b.exec(&[&id, "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A start whose process cannot be created fails, and the container is
/// stopped at once: its compute system does not run on until delete.
#[test]
fn a_failed_start_stops_the_container() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["/no/such/program"]));
    let id = unique("badstart");
    let _g = b.create(&id);
    assert!(hcs_list_has(&id));
    let out = b.runhcs(&["start", &id]);
    assert_refused(&out, "/no/such/program");
    assert_eq!(b.state(&id)["status"], "stopped");
    assert!(
        !hcs_list_has(&id),
        "the compute system runs on after the failed start"
    );
    b.ok(&["delete", &id]);
}

/// A process's terminal belongs to its user, in the devpts tty group (5),
/// as runc's does.
#[test]
fn a_terminal_is_owned_by_the_process_s_user() {
    let b = Bundle::new(|v| v["process"]["args"] = json!(["sleep", "60"]));
    let id = unique("ttyowner");
    let _g = b.create(&id);
    b.ok(&["start", &id]);
    for (user, want) in [("0:0", "0:5"), ("1000:100", "1000:5")] {
        let out = b.exec(&["-t", "-u", user, &id, "sh", "-c", "stat -c %u:%g $(tty)"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.trim_end(), want, "user {user}: {stdout:?}");
    }
}

/// linux.personality: a LINUX32 container sees a 32-bit machine, as with
/// runc; flags are refused by path.
#[test]
fn the_personality_domain_is_the_container_s() {
    let b = Bundle::new(|c| {
        c["process"]["args"] = json!(["uname", "-m"]);
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let out = b.run("persona");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "i686");
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["x"]}));
    let out = b.run("personaflags");
    assert_refused(&out, "linux.personality.flags");
}

/// run --keep leaves the stopped container for state and delete, as runc.
#[test]
fn run_keep_leaves_the_stopped_container() {
    let b = Bundle::new(|c| c["process"]["args"] = json!(["sh", "-c", "exit 4"]));
    let id = unique("keep");
    let bundle = b.bundle_arg();
    let out = b.runhcs(&["run", "--keep", &id, "--bundle", &bundle]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(b.state(&id)["status"], "stopped");
    assert!(
        !hcs_list_has(&id),
        "the compute system outlived its process"
    );
    b.ok(&["delete", &id]);
    assert!(!b.root().join(&id).exists());
    let out = b.runhcs(&["run", "--keep", "--detach", &id, "--bundle", &bundle]);
    assert!(!out.status.success(), "--keep with --detach was accepted");
}

/// rootfsPropagation is the container root's own, as with runc:
/// runbindable makes "/" unbindable inside the container.
#[test]
fn root_propagation_applies_to_the_container_root() {
    let b = Bundle::new(|c| {
        // The line of the mount at "/" (its fifth field).
        c["process"]["args"] = json!(["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
        c["linux"]["rootfsPropagation"] = json!("runbindable");
    });
    let out = b.run("rootprop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains(" unbindable "),
        "the root is not unbindable: {line}"
    );
    b.edit(|c| c["linux"]["rootfsPropagation"] = json!("rprivate"));
    let out = b.run("rootpriv");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        !line.contains("unbindable") && !line.contains(" shared:"),
        "{line}"
    );
}

/// A writable root is the bundle's rootfs itself, as with runc: what the
/// container writes is there after it exits.
#[test]
fn writes_to_a_writable_root_land_in_the_bundle_rootfs() {
    let b = Bundle::new(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["args"] = json!(["sh", "-c", "echo kept > /written-by-the-container"]);
    });
    let out = b.run("writethrough");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = b.path().join("rootfs/written-by-the-container");
    assert_eq!(
        std::fs::read_to_string(&written).expect("the file in the bundle's rootfs"),
        "kept\n"
    );
}
