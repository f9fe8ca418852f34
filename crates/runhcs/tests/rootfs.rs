//! End-to-end tests of what an OCI config.json makes of a container's
//! filesystem and namespaces (root.readonly, mounts, masked and read-only
//! paths, sysctls, devices, host name, resources, id mappings), through the
//! runhcs binary and the HCS container backend, with a busybox bundle. They
//! create real containers, so they run as root.

mod common;

use std::process::Command;

use serde_json::{json, Value};

use common::{rootfs, text, Bundle};

/// [`Bundle::run`]: the exit code and the output of the container's
/// process (stdout, then runhcs's and the process's stderr).
fn run(b: &Bundle, name: &str) -> (Option<i32>, String, String) {
    let out = b.run(name);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Like [`run`], asserting exit code 0; returns stdout.
fn run_ok(b: &Bundle, name: &str) -> String {
    let (code, out, err) = run(b, name);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    out
}

/// A shell script as `process.args`, its stderr merged into stdout.
fn sh(script: &str) -> Value {
    json!(["sh", "-c", format!("exec 2>&1; {script}")])
}

fn push_mount(v: &mut Value, m: Value) {
    v["mounts"].as_array_mut().expect("mounts").push(m);
}

#[test]
fn read_only_root_and_a_tmpfs_mount_with_a_size() {
    let b = Bundle::new(|v| {
        // runc spec's default: root.readonly is true.
        assert_eq!(v["root"]["readonly"], json!(true));
        push_mount(
            v,
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "size=2m", "mode=1777"]}),
        );
        v["process"]["args"] = sh("echo x > /file 2>&1; \
             echo in-tmpfs > /tmp/f && cat /tmp/f; \
             df -k /tmp | tail -n 1 | awk '{print \"size=\" $2}'; \
             stat -c 'mode=%a' /tmp");
    });
    let out = run_ok(&b, "ro");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.lines().any(|l| l == "in-tmpfs"), "{out}");
    assert!(out.lines().any(|l| l == "size=2048"), "{out}");
    assert!(out.lines().any(|l| l == "mode=1777"), "{out}");
}

#[test]
fn masked_and_read_only_paths() {
    let b = Bundle::new(|v| {
        v["root"]["readonly"] = json!(false);
        v["linux"]["maskedPaths"] = json!(["/etc/passwd", "/home", "/does/not/exist"]);
        v["linux"]["readonlyPaths"] = json!(["/root", "/does/not/exist/either"]);
        v["process"]["args"] = sh("echo passwd=$(wc -c < /etc/passwd); \
             echo home=$(ls -A /home | wc -l); \
             touch /home/x 2>&1; \
             touch /root/x 2>&1; \
             touch /x && echo root-writable; \
             echo kcore=$(test -e /proc/kcore && wc -c < /proc/kcore)");
    });
    let out = run_ok(&b, "mask");
    // A masked file reads empty; a masked directory is empty and read-only.
    assert!(out.lines().any(|l| l == "passwd=0"), "{out}");
    assert!(out.lines().any(|l| l == "home=0"), "{out}");
    assert!(
        out.contains("/home/x") && out.contains("Read-only file system"),
        "{out}"
    );
    // A read-only path refuses writes; the rest of the root does not.
    assert!(
        out.lines()
            .any(|l| l.contains("/root/x") && l.contains("Read-only file system")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "root-writable"), "{out}");
}

#[test]
fn sysctls_are_set_in_the_containers_namespaces() {
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").expect("host shmmax");
    let b = Bundle::new(|v| {
        v["linux"]["sysctl"] = json!({
            "kernel.shmmax": "123456789",
            "net.ipv4.ip_forward": "1",
            "net.ipv4.ping_group_range": "0 0"
        });
        v["process"]["args"] = sh("echo shmmax=$(cat /proc/sys/kernel/shmmax); \
             echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); \
             echo ping=$(cat /proc/sys/net/ipv4/ping_group_range | tr '\\t' ' ')");
    });
    let out = run_ok(&b, "sysctl");
    assert!(out.lines().any(|l| l == "shmmax=123456789"), "{out}");
    assert!(out.lines().any(|l| l == "fwd=1"), "{out}");
    assert!(out.lines().any(|l| l == "ping=0 0"), "{out}");
    // The host's are untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").expect("host shmmax"),
        host_shmmax
    );

    // A sysctl of no namespace of the container's is refused by name.
    b.edit(|v| v["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    let (code, out, err) = run(&b, "sysctl-bad");
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("Container.OciSpecification.linux.sysctl.kernel.panic"),
        "{err}"
    );
}

#[test]
fn device_nodes_of_linux_devices() {
    let b = Bundle::new(|v| {
        v["linux"]["devices"] = json!([
            {"path": "/dev/hcs-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o666, "uid": 1, "gid": 2},
            {"path": "/dev/sub/fifo", "type": "p", "fileMode": 0o600}
        ]);
        v["process"]["args"] = sh("stat -c '%F %t:%T %a %u:%g' /dev/hcs-null; \
             echo hi > /dev/hcs-null && echo wrote; \
             stat -c '%F %a' /dev/sub/fifo; \
             test -c /dev/null && test -L /dev/ptmx && test -L /dev/fd && echo defaults");
    });
    let out = run_ok(&b, "dev");
    assert!(
        out.lines()
            .any(|l| l == "character special file 1:3 666 1:2"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "wrote"), "{out}");
    assert!(out.lines().any(|l| l == "fifo 600"), "{out}");
    assert!(out.lines().any(|l| l == "defaults"), "{out}");
}

#[test]
fn host_and_domain_name() {
    let b = Bundle::new(|v| {
        v["hostname"] = json!("oci-host");
        v["domainname"] = json!("example.org");
        v["process"]["args"] = sh("hostname; cat /proc/sys/kernel/domainname");
    });
    let out = run_ok(&b, "host");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["oci-host", "example.org"]);
}

#[test]
fn resources_and_the_cgroup_mount() {
    let b = Bundle::new(|v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        v["linux"]["resources"]["pids"] = json!({"limit": 77});
        v["process"]["args"] = sh(
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null \
                || cat /sys/fs/cgroup/memory.max; \
             cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
             touch /sys/fs/cgroup/x; true",
        );
    });
    let out = run_ok(&b, "cg");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"67108864"), "{out}");
    assert_eq!(lines.get(1), Some(&"77"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn user_namespace_from_id_mappings() {
    let b = Bundle::new(|v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .extend([json!({"type": "user"}), json!({"type": "cgroup"})]);
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        v["process"]["args"] = sh("cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; id -u");
    });
    let out = run_ok(&b, "userns");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0 200000 65536", "0"],
        "{out}"
    );
}

#[test]
fn a_runc_spec_config_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(rootfs(), dir.path().join("rootfs")).expect("rootfs symlink");
    let out = Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .output()
        .expect("runc is installed");
    assert!(out.status.success(), "runc spec: {}", text(&out.stderr));
    let b = Bundle::at(dir);
    // Unchanged but for the command (and no terminal: the test has none).
    b.edit(|v| {
        v["process"]["args"] = json!(["true"]);
        v["process"]["terminal"] = json!(false);
    });
    run_ok(&b, "runc-spec");
}

#[test]
fn unsupported_fields_are_refused_with_their_path() {
    let b = Bundle::new(|v| v["linux"]["intelRdt"] = json!({"closID": "gold"}));
    let (code, _, err) = run(&b, "rdt");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Container.OciSpecification.linux.intelRdt"),
        "{err}"
    );
    assert!(err.contains("0x80070032"), "not ERROR_NOT_SUPPORTED: {err}");

    b.edit(|v| {
        v["linux"]["intelRdt"] = Value::Null;
        push_mount(
            v,
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m", "mand"]}),
        );
    });
    let (code, _, err) = run(&b, "opt");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Container.OciSpecification.mounts[7].options[1]"),
        "{err}"
    );
}

#[test]
fn mounts_over_proc_that_are_not_procfs_are_refused() {
    // A bind of the host's / over /proc, a writable bind of the host's
    // /proc/sys: what runc refuses (its checkProcMount).
    for (i, m) in [
        json!({"destination": "/proc", "type": "bind", "source": "/", "options": ["rbind"]}),
        json!({"destination": "/proc/sys", "type": "bind", "source": "/proc/sys",
               "options": ["rbind", "rw"]}),
    ]
    .into_iter()
    .enumerate()
    {
        let b = Bundle::new(|v| {
            v["process"]["args"] = sh("echo started");
            push_mount(v, m);
        });
        let (code, out, err) = run(&b, &format!("proc{i}"));
        assert_ne!(code, Some(0), "{out}");
        assert!(!out.contains("started"), "{out}");
        assert!(
            err.contains("Container.OciSpecification.mounts[7].destination"),
            "{err}"
        );
        assert!(
            err.contains("inside /proc") || err.contains("proc file system"),
            "{err}"
        );
    }
    // What runc allows: an lxcfs-like file over one of /proc's.
    let b = Bundle::new(|v| {
        v["process"]["args"] = sh("cat /proc/uptime");
        push_mount(
            v,
            json!({"destination": "/proc/uptime", "type": "bind", "source": "/etc/hostname",
                   "options": ["bind", "ro"]}),
        );
    });
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_eq!(run_ok(&b, "procok"), host);
}

#[test]
fn bind_mounts_of_files_and_directories_with_options() {
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("file"), "from-the-host\n").expect("write");
    std::fs::create_dir(host.path().join("dir")).expect("mkdir");
    let file = host.path().join("file");
    let dir = host.path().join("dir");
    let b = Bundle::new(|v| {
        v["root"]["readonly"] = json!(false);
        push_mount(
            v,
            json!({"destination": "/etc/hcs-file", "type": "bind",
                   "source": file.to_str().expect("utf-8"), "options": ["bind", "ro", "nosuid"]}),
        );
        push_mount(
            v,
            json!({"destination": "/mnt/data", "type": "none",
                   "source": dir.to_str().expect("utf-8"),
                   "options": ["rbind", "rw", "noexec", "rprivate"]}),
        );
        v["process"]["args"] = sh("cat /etc/hcs-file; \
             echo x > /etc/hcs-file; \
             echo from-the-container > /mnt/data/new && echo wrote; \
             grep ' /mnt/data ' /proc/self/mountinfo | grep -q noexec && echo noexec");
    });
    let out = run_ok(&b, "bind");
    assert!(out.lines().any(|l| l == "from-the-host"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.lines().any(|l| l == "wrote"), "{out}");
    assert!(out.lines().any(|l| l == "noexec"), "{out}");
    assert_eq!(
        std::fs::read_to_string(host.path().join("dir/new")).expect("written in the container"),
        "from-the-container\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("file")).expect("file"),
        "from-the-host\n"
    );
}

#[test]
fn a_network_namespace_is_joined_by_path() {
    let ours = std::fs::read_link("/proc/self/ns/net").expect("our netns");
    let path = format!("/proc/{}/ns/net", std::process::id());
    let b = Bundle::new(|v| {
        let ns = v["linux"]["namespaces"].as_array_mut().expect("namespaces");
        for n in ns.iter_mut() {
            if n["type"] == json!("network") {
                n["path"] = json!(path);
            }
        }
        v["process"]["args"] = sh("readlink /proc/self/ns/net");
    });
    let out = run_ok(&b, "netns");
    assert_eq!(out.trim(), ours.to_str().expect("utf-8"), "{out}");

    // Without one of its own, a container shares the host's network and
    // may not set its sysctls.
    b.edit(|v| {
        let ns = v["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != json!("network"));
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let (code, _, err) = run(&b, "netns-sysctl");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Container.OciSpecification.linux.sysctl.net.ipv4.ip_forward"),
        "{err}"
    );
}
