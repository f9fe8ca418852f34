//! Nothing a container does, or its setup does, reaches the host: device
//! nodes, mapped directories, mounts over /proc, mount propagation, and a
//! fork bomb's reach.

use std::os::unix::fs::MetadataExt;

use hcs_integration_tests::*;

/// The device nodes every container gets.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// What chmod, chown, rm or touch of a node would change, as seen on the host.
#[derive(Debug, PartialEq, Eq)]
struct NodeStat {
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    ctime: (i64, i64),
}

fn host_nodes() -> Vec<(String, NodeStat)> {
    DEVICES
        .iter()
        .map(|d| {
            let p = format!("/dev/{d}");
            let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
            (
                p,
                NodeStat {
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    ino: m.ino(),
                    ctime: (m.ctime(), m.ctime_nsec()),
                },
            )
        })
        .collect()
}

/// `(st_dev, st_ino)` of the host's /dev nodes, as `stat -c %d:%i` prints them.
fn host_identities() -> Vec<String> {
    DEVICES
        .iter()
        .map(|d| {
            let m = std::fs::metadata(format!("/dev/{d}")).expect("host node");
            format!("{}:{}", m.dev(), m.ino())
        })
        .collect()
}

/// Check, then abuse, every /dev entry of a container created from `doc`.
/// `own_nodes`: whether the container must have its own nodes (no user
/// namespace) or may have the host's bound (then unchangeable by its root).
fn dev_entries_cannot_touch_the_host(test: &str, doc: &str, own_nodes: bool) {
    let ns = unique_namespace(test);
    let before = host_nodes();
    let s = create_started(&ns, "c", doc);

    // The container's nodes are not the host's inodes. Checked before the
    // destructive part, so that a broken build fails here and leaves the
    // host's nodes alone.
    let script = DEVICES
        .iter()
        .map(|d| format!("stat -c %d:%i /dev/{d}"))
        .collect::<Vec<_>>()
        .join("; ");
    let r = run(&s, &["sh", "-c", &script]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    let inside: Vec<&str> = r.stdout.lines().collect();
    if own_nodes {
        for (d, (i, h)) in DEVICES.iter().zip(inside.iter().zip(host_identities())) {
            assert_ne!(*i, h, "/dev/{d} in the container is the host's node");
        }
    }
    // Nor is the stdin the client did not ask for: chmod /dev/stdin would
    // reach it through /proc/self/fd/0.
    let r = run(&s, &["stat", "-L", "-c", "%d:%i", "/dev/stdin"]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    let host = host_identities();
    for line in r.stdout.lines() {
        assert!(
            !host.iter().any(|h| h == line),
            "a descriptor of the container's processes is a host device node ({line})"
        );
    }

    // /dev/null is a null device: 0666 char 1:3, swallows writes, reads empty.
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "stat -c '%a %F %t:%T' /dev/null; echo hello > /dev/null && wc -c < /dev/null",
        ],
    );
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["666 character special file 1:3", "0"],
        "{}",
        r.stderr
    );

    // Everything root can do to a node's metadata, on every entry.
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "for f in /dev/* /dev/.[!.]* /proc/1/fd/*; do chmod 600 $f; chown 1:1 $f; touch $f; done 2>/dev/null; \
             for f in /dev/* /dev/.[!.]*; do rm -f $f; done 2>/dev/null; ls -a /dev",
        ],
    );
    if own_nodes {
        // Its own nodes were its to remove.
        for d in DEVICES {
            assert!(
                !r.stdout.lines().any(|l| l == d),
                "/dev/{d} was not removed in the container: {}",
                r.stdout
            );
        }
    }
    terminate(&s);
    drop(s);
    assert_eq!(host_nodes(), before, "the host's device nodes changed");
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn dev_entries_of_a_container_are_its_own() {
    dev_entries_cannot_touch_the_host("devown", &container_doc(serde_json::json!({})), true);
}

#[test]
fn dev_entries_in_a_user_namespace_leave_the_host_unchanged() {
    let doc = container_doc(serde_json::json!({ "Container": { "UserNamespace": {
        "UidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ],
        "GidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ]
    } } }));
    dev_entries_cannot_touch_the_host("devuserns", &doc, false);
}

/// Names in a host directory.
fn entries(d: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .expect("host directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run a container with `mapped` (host directory, container path) and check
/// that the host directories are as empty afterwards as before.
fn mapped_dirs_stay_empty(test: &str, mapped: &[(&std::path::Path, &str)]) {
    let ns = unique_namespace(test);
    let maps: Vec<serde_json::Value> = mapped
        .iter()
        .map(|(h, c)| serde_json::json!({ "HostPath": h, "ContainerPath": c }))
        .collect();
    let doc = container_doc(serde_json::json!({ "Container": {
        "MappedDirectories": maps,
        "Networking": { "DnsSearchList": "example.test" }
    } }));
    let s = create_started(&ns, "c", &doc);
    let r = run(&s, &["/bin/sh", "-c", "ls -a /dev /etc"]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    terminate(&s);
    drop(s);
    for (h, c) in mapped {
        assert_eq!(
            entries(h),
            Vec::<String>::new(),
            "the container's setup left files in the host directory mapped onto {c}"
        );
    }
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn nothing_of_the_setup_lands_in_mapped_host_directories() {
    let dev = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    mapped_dirs_stay_empty("mapdev", &[(dev.path(), "/dev"), (etc.path(), "/etc")]);
    let devsub = tempfile::tempdir().unwrap();
    mapped_dirs_stay_empty("mapdevsub", &[(devsub.path(), "/dev/xyz")]);
}

/// A runhcs bundle in `dir` on the test root filesystem, its config from
/// `runhcs spec` with `edit` applied.
fn runhcs_bundle(
    runhcs: &std::path::Path,
    dir: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    std::fs::create_dir(dir).unwrap();
    // Its own copy: a container writes into its bundle's rootfs, as with runc.
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(dir.join("rootfs"))
        .status()
        .unwrap();
    assert!(cp.success(), "copying the rootfs");
    let out = std::process::Command::new(runhcs)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = false.into();
    edit(&mut v);
    std::fs::write(&cfg, v.to_string()).unwrap();
}

#[test]
fn nothing_mounted_reaches_a_shared_mount_namespace() {
    require_root();
    let runhcs = hcs_cli().with_file_name("runhcs");
    assert!(
        runhcs.exists(),
        "{} is missing: cargo build -p runhcs",
        runhcs.display()
    );
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // runc's default: a read-only root (the bundle's directory itself), with
    // a bind mount; and a writable one, with a hook and a non-recursive
    // rootfsPropagation.
    runhcs_bundle(&runhcs, &t.path().join("ro"), |v| {
        v["root"]["readonly"] = true.into();
        v["process"]["args"] = serde_json::json!(["sh", "-c", "echo ro-ran"]);
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/home", "type": "bind", "source": data, "options": ["rbind", "ro"]}));
    });
    runhcs_bundle(&runhcs, &t.path().join("rw"), |v| {
        v["root"]["readonly"] = false.into();
        v["process"]["args"] = serde_json::json!(["sh", "-c", "echo rw-ran"]);
        v["hooks"] = serde_json::json!({ "createRuntime": [ { "path": "/bin/sh", "args": ["sh", "-c", "true"] } ] });
        // Not recursive: the other mounts of the namespace must not stay
        // peers of ours all the same.
        v["linux"]["rootfsPropagation"] = "slave".into();
    });
    let ns = unique_namespace("sharedns");
    let doc = container_doc(serde_json::json!({
        "ShouldTerminateOnLastHandleClosed": false,
        "Container": { "MappedDirectories": [ { "HostPath": data, "ContainerPath": "/data" } ] }
    }));
    let doc_path = t.path().join("doc.json");
    std::fs::write(&doc_path, doc).unwrap();
    let state = t.path().join("state");
    let (rid, hid) = (format!("{ns}-ro"), format!("{ns}-rw"));
    // Our own mount namespace, cut from the host's peer groups first and then
    // made shared: as a systemd host's, while the host's stays as it is.
    let script = format!(
        "mount --make-rprivate / && mount --make-rshared / || exit 99; \
         sort /proc/self/mountinfo > {t}/before; \
         {runhcs} --root {state} run --bundle {t}/ro {rid}; echo runhcs-ro=$?; \
         {runhcs} --root {state} delete -f {rid}; \
         {runhcs} --root {state} run --bundle {t}/rw {hid}; echo runhcs-rw=$?; \
         {runhcs} --root {state} delete -f {hid}; \
         {hcs} -n {ns} run c {t}/doc.json && {hcs} -n {ns} exec c -- sh -c 'echo hcs-ran'; \
         {hcs} -n {ns} terminate c; \
         sort /proc/self/mountinfo > {t}/after",
        t = t.path().display(),
        runhcs = runhcs.display(),
        hcs = hcs_cli().display(),
        state = state.display(),
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in ["ro-ran", "runhcs-ro=0", "rw-ran", "runhcs-rw=0", "hcs-ran"] {
        assert!(
            stdout.lines().any(|l| l == want),
            "{want} missing:\n{stdout}\n{stderr}"
        );
    }
    let before = std::fs::read_to_string(t.path().join("before")).unwrap();
    let after = std::fs::read_to_string(t.path().join("after")).unwrap();
    let added: Vec<&str> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    let removed: Vec<&str> = before
        .lines()
        .filter(|l| !after.lines().any(|a| a == *l))
        .collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the shared mount namespace changed:\nadded {added:#?}\nremoved {removed:#?}"
    );
    assert!(leftovers(&ns).is_empty());
}

/// `file` of the pids cgroup of system `id` in `ns`.
fn pids_file(ns: &str, id: &str, file: &str) -> String {
    let leaf = format!("{ns}@{id}");
    let dir = leftovers(ns)
        .cgroups
        .into_iter()
        .filter(|c| c.ends_with(&leaf))
        .find(|c| c.join("pids.max").exists())
        .unwrap_or_else(|| panic!("no pids cgroup for {leaf}"));
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn containers_have_a_process_limit_the_document_can_set() {
    let ns = unique_namespace("pidslimit");
    // The default, bounded.
    let s = create_started(&ns, "default", &container_doc(serde_json::json!({})));
    assert_eq!(
        pids_file(&ns, "default", "pids.max"),
        hcs_schema::container::DEFAULT_PIDS_LIMIT.to_string()
    );
    terminate(&s);
    drop(s);
    // Raised, and no limit when asked for explicitly.
    for (id, limit, want) in [
        ("raised", 10000, "10000"),
        ("none", -1, "max"),
        ("zero", 0, "max"),
    ] {
        let doc = container_doc(serde_json::json!({ "Container": { "PidsLimit": limit } }));
        let s = create_started(&ns, id, &doc);
        assert_eq!(pids_file(&ns, id, "pids.max"), want, "PidsLimit {limit}");
        terminate(&s);
    }
    // A fork loop stops at the limit: of 100 background processes tried,
    // only as many start as fit beside the init and the shell; the shell
    // then dies of the failed fork (busybox ash cannot go on without it).
    let doc = container_doc(serde_json::json!({ "Container": { "PidsLimit": 16 } }));
    let s = create_started(&ns, "bomb", &doc);
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 100 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); echo $i; done",
        ],
    );
    let started: u32 = r
        .stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert_ne!(r.exit_code, 0, "the loop ran to its end: {}", r.stdout);
    assert!(r.stderr.contains("can't fork"), "{}", r.stderr);
    assert!(
        (1..=14).contains(&started),
        "{started} processes started beside the init and the shell under a limit of 16"
    );
    let current: u32 = pids_file(&ns, "bomb", "pids.current").parse().unwrap();
    assert!(current <= 16, "pids.current {current}");
    terminate(&s);
    drop(s);
    // Out of range: refused with its path.
    let Err(e) = create(
        &ns,
        "bad",
        &container_doc(serde_json::json!({ "Container": { "PidsLimit": -2 } })),
    ) else {
        panic!("PidsLimit -2 must be refused");
    };
    assert!(e.message.contains("PidsLimit"), "{}", e.message);
    assert!(leftovers(&ns).is_empty());
}

/// Create and start `doc`; the error of whichever step failed.
fn create_and_start(ns: &str, id: &str, doc: &str) -> hcs::HcsResult<hcs::System> {
    let s = create(ns, id, doc)?;
    call(|op| s.start(op, None))?;
    Ok(s)
}

#[test]
fn mount_destinations_are_resolved_inside_the_root() {
    use std::os::unix::fs::symlink;
    let ns = unique_namespace("symlinkdest");
    // A layer over the test root with symlinks at mount destinations.
    let layer = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    symlink("/proc", layer.path().join("myproc")).unwrap();
    symlink("proc/sys", layer.path().join("mysys")).unwrap();
    let up = "../".repeat(20);
    symlink(
        format!("{up}{}", outside.path().display()),
        layer.path().join("escape"),
    )
    .unwrap();
    let doc = |maps: serde_json::Value| {
        let mut doc: serde_json::Value = serde_json::from_str(&container_doc(serde_json::json!({
            "Container": { "MappedDirectories": maps }
        })))
        .unwrap();
        doc["Container"]["Storage"]["Layers"] = serde_json::json!([
            { "Id": "0a9d0f6e-0000-4000-8000-000000000002", "Path": layer.path() },
            { "Id": "0a9d0f6e-0000-4000-8000-000000000001", "Path": rootfs() }
        ]);
        doc.to_string()
    };
    // The host's / onto a symlink to /proc, the host's /proc/sys onto one
    // to /proc/sys: refused, naming the mapping.
    for (i, (host, dest)) in [("/", "/myproc"), ("/proc/sys", "/mysys")]
        .into_iter()
        .enumerate()
    {
        let d = doc(serde_json::json!([ { "HostPath": host, "ContainerPath": dest } ]));
        let Err(e) = create_and_start(&ns, &format!("proc{i}"), &d) else {
            panic!("{host} onto {dest} (a symlink into /proc) must be refused");
        };
        assert!(
            e.message.contains("MappedDirectories[0].ContainerPath")
                && e.message.contains("resolves to /proc"),
            "{}",
            e.message
        );
    }
    // A symlink out of the root resolves inside it: the mapping lands in the
    // container's own copy of that path, the host's directory stays empty.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("hello"), "hi\n").unwrap();
    let d = doc(serde_json::json!([ { "HostPath": src.path(), "ContainerPath": "/escape" } ]));
    let s = create_and_start(&ns, "escape", &d).expect("a mapping onto /escape");
    let r = run(&s, &["cat", &format!("{}/hello", outside.path().display())]);
    assert_eq!(
        (r.exit_code, r.stdout.as_str()),
        (0, "hi\n"),
        "{}",
        r.stderr
    );
    terminate(&s);
    drop(s);
    assert_eq!(entries(outside.path()), Vec::<String>::new());
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn runhcs_refuses_a_bind_over_proc_through_a_symlink() {
    require_root();
    let runhcs = hcs_cli().with_file_name("runhcs");
    assert!(
        runhcs.exists(),
        "{} is missing: cargo build -p runhcs",
        runhcs.display()
    );
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("b");
    runhcs_bundle(&runhcs, &bundle, |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!(
            {"destination": "/myproc", "type": "bind", "source": "/", "options": ["rbind"]}));
    });
    let index = {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        v["mounts"].as_array().unwrap().len() - 1
    };
    // A bare root of its own: only the symlink matters, the process never runs.
    std::fs::remove_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/proc")).unwrap();
    symlink_in(&bundle.join("rootfs/myproc"), "/proc");
    let id = unique_namespace("runhcsproc");
    let state = t.path().join("state");
    let out = std::process::Command::new(&runhcs)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = std::process::Command::new(&runhcs)
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &id])
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran: {stderr}");
    assert!(
        stderr.contains(&format!("mounts[{index}].destination"))
            && stderr.contains("resolves to /proc"),
        "{stderr}"
    );
}

fn symlink_in(at: &std::path::Path, to: &str) {
    std::os::unix::fs::symlink(to, at).unwrap();
}

/// What a privileged process may do to /proc/1/fd (ptrace access to the
/// init needs CAP_SYS_PTRACE, the rest changes owners and modes).
const PRIVILEGED: [&str; 6] = [
    "CAP_SYS_PTRACE",
    "CAP_CHOWN",
    "CAP_FOWNER",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_ADMIN",
];

fn run_privileged(s: &hcs::System, script: &str) -> Finished {
    run_params(
        s,
        serde_json::json!({ "OciProcess": {
            "args": ["sh", "-c", script],
            "cwd": "/",
            "user": { "uid": 0, "gid": 0 },
            "env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],
            "capabilities": {
                "bounding": PRIVILEGED, "effective": PRIVILEGED, "permitted": PRIVILEGED
            }
        } }),
    )
}

/// `(st_dev, st_ino)` of what every descriptor of host process `pid`
/// names, by descriptor number.
fn descriptors_of(pid: i32) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the init's descriptors")
        .flatten()
        .map(|e| {
            let m = std::fs::metadata(e.path()).expect("a descriptor's file");
            (
                e.file_name().to_string_lossy().into_owned(),
                format!("{}:{}", m.dev(), m.ino()),
            )
        })
        .collect();
    v.sort();
    v
}

/// The container's init and its processes hold no descriptor of the
/// host's: pid 1 has only its stdio, none of which (nor a started process's)
/// is a host device node, and chmod/chown through every one of them leaves
/// the host's nodes as they were. `pid1_reachable`: whether the container's
/// root can open /proc/1/fd (not in a user namespace, where the init is not
/// dumpable to it).
fn no_host_descriptor_is_reachable(test: &str, doc: &str, pid1_reachable: bool) {
    let ns = unique_namespace(test);
    let before = host_nodes();
    let host = host_identities();
    let s = create_started(&ns, "c", doc);
    // Seen from the host: the init's descriptors are its stdio, none of
    // them a host device node.
    let init = leftovers(&ns)
        .processes
        .into_iter()
        .find(|p| {
            // Pid 1 in its own namespace: the last NSpid is 1.
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    == Some("1")
            })
        })
        .expect("the container's init");
    let fds = descriptors_of(init);
    assert_eq!(
        fds.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2"],
        "the init holds descriptors beyond its stdio: {fds:?}"
    );
    for (n, id) in &fds {
        assert!(
            !host.iter().any(|h| h == id),
            "the init's descriptor {n} is a host device node ({id})"
        );
    }
    // Seen from inside. Looked at first: a broken build fails here and
    // leaves the host's nodes alone.
    let r = run_privileged(
        &s,
        "if l=$(ls /proc/1/fd 2>/dev/null); then echo pid1: $l; else echo pid1: unreachable; fi; \
         for f in /proc/1/fd/* /proc/self/fd/[012]; do [ -e $f ] && stat -L -c \"$f %d:%i %F\" $f; done; true",
    );
    assert_eq!(r.exit_code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut lines = r.stdout.lines();
    let pid1 = lines.next().unwrap_or_default();
    if pid1_reachable {
        assert_eq!(pid1, "pid1: 0 1 2", "{}", r.stdout);
    } else {
        assert!(
            ["pid1: 0 1 2", "pid1: unreachable"].contains(&pid1),
            "{}",
            r.stdout
        );
    }
    let stats: Vec<&str> = lines.collect();
    assert!(stats.len() >= 3, "{}", r.stdout);
    for line in &stats {
        let id = line.split(' ').nth(1).unwrap_or_default();
        assert!(
            !host.iter().any(|h| h == id),
            "{line}: a host device node is reachable from the container"
        );
    }
    let r = run_privileged(
        &s,
        "for f in /proc/1/fd/* /proc/self/fd/[012]; do chmod 600 $f; chown 1:1 $f; touch -c $f; done 2>/dev/null; true",
    );
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    terminate(&s);
    drop(s);
    assert_eq!(host_nodes(), before, "the host's device nodes changed");
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn the_init_holds_no_host_descriptor() {
    no_host_descriptor_is_reachable("initfds", &container_doc(serde_json::json!({})), true);
}

#[test]
fn the_init_holds_no_host_descriptor_in_a_user_namespace() {
    let doc = container_doc(serde_json::json!({ "Container": { "UserNamespace": {
        "UidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ],
        "GidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ]
    } } }));
    no_host_descriptor_is_reachable("initfdsuserns", &doc, false);
}

/// A mapping nested in another needs its mount point in the outer host
/// directory already: refused (naming both) while it is missing, used when
/// it is there; the outer host directory is never written to.
#[test]
fn nested_mappings_make_nothing_in_the_outer_host_directory() {
    let ns = unique_namespace("nestedmap");
    for outer_dest in ["/data", "/dev"] {
        let outer = tempfile::tempdir().unwrap();
        let inner = tempfile::tempdir().unwrap();
        std::fs::write(inner.path().join("hello"), "hi\n").unwrap();
        let doc = container_doc(serde_json::json!({ "Container": { "MappedDirectories": [
            { "HostPath": outer.path(), "ContainerPath": outer_dest },
            { "HostPath": inner.path(), "ContainerPath": format!("{outer_dest}/sub") }
        ] } }));
        let Err(e) = create_and_start(&ns, "missing", &doc) else {
            panic!("{outer_dest}/sub missing in the host directory must be refused");
        };
        for want in [
            "MappedDirectories[1].ContainerPath",
            "MappedDirectories[0].ContainerPath",
            "on the host first",
        ] {
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
        assert_eq!(entries(outer.path()), Vec::<String>::new(), "{outer_dest}");
        // Made on the host: used as it is.
        std::fs::create_dir(outer.path().join("sub")).unwrap();
        let s = create_and_start(&ns, "present", &doc).expect("a nested mapping");
        let r = run(&s, &["cat", &format!("{outer_dest}/sub/hello")]);
        assert_eq!(
            (r.exit_code, r.stdout.as_str()),
            (0, "hi\n"),
            "{}",
            r.stderr
        );
        terminate(&s);
        drop(s);
        assert_eq!(entries(outer.path()), ["sub"], "{outer_dest}");
        assert_eq!(entries(&outer.path().join("sub")), Vec::<String>::new());
        assert_eq!(entries(inner.path()), ["hello"]);
    }
    assert!(leftovers(&ns).is_empty());
}

/// The same for OCI bind mounts nested in a bind of a host directory.
#[test]
fn runhcs_nested_binds_make_nothing_in_the_outer_host_directory() {
    require_root();
    let runhcs = hcs_cli().with_file_name("runhcs");
    assert!(
        runhcs.exists(),
        "{} is missing: cargo build -p runhcs",
        runhcs.display()
    );
    let t = tempfile::tempdir().unwrap();
    let outer = t.path().join("outer");
    let inner = t.path().join("inner");
    std::fs::create_dir(&outer).unwrap();
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(inner.join("hello"), "hi\n").unwrap();
    let mut index = 0;
    runhcs_bundle(&runhcs, &t.path().join("b"), |v| {
        v["root"]["readonly"] = false.into();
        v["process"]["args"] = serde_json::json!(["cat", "/data/sub/hello"]);
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!(
            {"destination": "/data", "type": "bind", "source": outer, "options": ["rbind"]}));
        mounts.push(serde_json::json!(
            {"destination": "/data/sub", "type": "bind", "source": inner, "options": ["rbind"]}));
        index = mounts.len() - 1;
    });
    let state = t.path().join("state");
    let run_once = |id: &str| {
        let out = std::process::Command::new(&runhcs)
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(t.path().join("b"))
            .arg(id)
            .output()
            .unwrap();
        let _ = std::process::Command::new(&runhcs)
            .arg("--root")
            .arg(&state)
            .args(["delete", "-f", id])
            .output();
        out
    };
    let id = unique_namespace("runhcsnested");
    let out = run_once(&format!("{id}-a"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran: {stderr}");
    for want in [
        format!("mounts[{index}].destination"),
        format!("mounts[{}].destination", index - 1),
        "on the host first".to_string(),
    ] {
        assert!(stderr.contains(&want), "{want}: {stderr}");
    }
    assert_eq!(entries(&outer), Vec::<String>::new());
    std::fs::create_dir(outer.join("sub")).unwrap();
    let out = run_once(&format!("{id}-b"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(entries(&outer), ["sub"]);
    assert_eq!(entries(&outer.join("sub")), Vec::<String>::new());
}

/// `Container/PidsLimit` through HcsModifyComputeSystem changes a running
/// container's pids.max with the document's values.
#[test]
fn the_process_limit_of_a_running_container_can_be_changed() {
    let ns = unique_namespace("pidsmodify");
    let s = create_started(&ns, "c", &container_doc(serde_json::json!({})));
    let modify = |settings: serde_json::Value| {
        call(|op| {
            s.modify(
                op,
                &serde_json::json!({
                    "ResourcePath": "Container/PidsLimit", "RequestType": "Update", "Settings": settings
                })
                .to_string(),
            )
        })
    };
    modify(16.into()).expect("Container/PidsLimit 16");
    assert_eq!(pids_file(&ns, "c", "pids.max"), "16");
    // Enforced: a fork loop stops below it.
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 100 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); echo $i; done",
        ],
    );
    assert_ne!(r.exit_code, 0, "the loop ran to its end: {}", r.stdout);
    let current: u32 = pids_file(&ns, "c", "pids.current").parse().unwrap();
    assert!(current <= 16, "pids.current {current}");
    modify((-1).into()).expect("Container/PidsLimit -1");
    assert_eq!(pids_file(&ns, "c", "pids.max"), "max");
    for bad in [serde_json::json!(-2), serde_json::json!("many")] {
        let e = modify(bad.clone()).unwrap_err();
        assert_eq!(e.hresult, hcs::HResult::HCS_E_INVALID_JSON, "{bad}: {e}");
        assert!(
            e.message.contains("Container/PidsLimit") || e.message.contains("Settings"),
            "{}",
            e.message
        );
    }
    assert_eq!(pids_file(&ns, "c", "pids.max"), "max");
    terminate(&s);
    drop(s);
    assert!(leftovers(&ns).is_empty());
}
