//! What a container is given: limits, statistics, mounts, host name, user
//! and network namespaces, the writable layer.

use std::path::PathBuf;

use hcs::HResult;
use hcs_integration_tests::*;

fn cgroup_file(ns: &str, id: &str, controller: &str, file: &str) -> Option<String> {
    let leaf = format!("{ns}@{id}");
    leftovers(ns)
        .cgroups
        .into_iter()
        .filter(|c| c.ends_with(&leaf))
        .find(|c| c.components().any(|p| p.as_os_str() == controller) || c.join(file).exists())
        .and_then(|c| std::fs::read_to_string(c.join(file)).ok())
        .map(|s| s.trim().to_string())
}

#[test]
fn limits_statistics_process_list_and_modify() {
    let ns = unique_namespace("limits");
    let doc = container_doc(
        serde_json::json!({ "Container": { "Memory": { "SizeInMB": 64 }, "Processor": { "Count": 1 } } }),
    );
    let s = create_started(&ns, "c", &doc);
    let limit = cgroup_file(&ns, "c", "memory", "memory.limit_in_bytes")
        .or_else(|| cgroup_file(&ns, "c", "memory", "memory.max"));
    assert_eq!(limit.as_deref(), Some("67108864"));
    let quota = cgroup_file(&ns, "c", "cpu", "cpu.cfs_quota_us")
        .or_else(|| cgroup_file(&ns, "c", "cpu", "cpu.max"));
    assert!(
        quota.as_deref().is_some_and(|q| q.starts_with("100000")),
        "{quota:?}"
    );

    let op = hcs::Operation::new();
    let sleeper = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    let p = properties(&s, &["Statistics", "ProcessList", "Memory"]).unwrap();
    let mem = p["Statistics"]["Memory"]["MemoryUsageCommitBytes"]
        .as_u64()
        .unwrap();
    assert!(mem > 0, "{p}");
    assert!(p["Statistics"]["Uptime100ns"].as_u64().is_some());
    assert!(p["Statistics"]["Processor"]["TotalRuntime100ns"]
        .as_u64()
        .is_some());
    let names: Vec<&str> = p["ProcessList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ImageName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"hcs-init") && names.contains(&"sleep"),
        "{names:?}"
    );
    let sleep = p["ProcessList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ImageName"] == "sleep")
        .unwrap();
    assert_eq!(
        sleep["ProcessId"].as_u64(),
        sleeper.process_id().map(u64::from),
        "ProcessList shows pids inside the container"
    );
    assert_eq!(p["Memory"]["VirtualMachineMemory"]["AssignedMemory"], 64);

    call(|op| {
        s.modify(
            op,
            r#"{"ResourcePath":"Container/Memory/SizeInMB","RequestType":"Update","Settings":128}"#,
        )
    })
    .unwrap();
    let limit = cgroup_file(&ns, "c", "memory", "memory.limit_in_bytes")
        .or_else(|| cgroup_file(&ns, "c", "memory", "memory.max"));
    assert_eq!(limit.as_deref(), Some("134217728"));
    let e = call(|op| {
        s.modify(
            op,
            r#"{"ResourcePath":"Container/Nothing","RequestType":"Update","Settings":1}"#,
        )
    })
    .unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
    assert!(
        e.message.contains("Container/Memory/SizeInMB"),
        "lists what is supported: {}",
        e.message
    );
    let e = call(|op| s.modify(op, r#"{"ResourcePath":"Container/Memory/SizeInMB","RequestType":"Update","Settings":"big"}"#)).unwrap_err();
    assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON);
    let e = properties(&s, &["GuestConnection"]).unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);

    // A memory hog is held to the limit by the kernel.
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "head -c 300000000 /dev/zero | tail > /dev/null; echo survived",
        ],
    );
    assert_eq!(r.exit_code, 0, "tail streams, so this fits: {}", r.stderr);
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn mapped_directories_read_only_and_writable() {
    let ns = unique_namespace("mapped");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello.txt"), "from the host\n").unwrap();
    let rw = tempfile::tempdir().unwrap();
    let doc = container_doc(serde_json::json!({ "Container": { "MappedDirectories": [
        { "HostPath": host.path(), "ContainerPath": "/data/in", "ReadOnly": true },
        { "HostPath": rw.path(), "ContainerPath": "/data/out" }
    ] } }));
    let s = create_started(&ns, "c", &doc);
    assert_eq!(
        run(&s, &["cat", "/data/in/hello.txt"]).stdout,
        "from the host\n"
    );
    let r = run(&s, &["sh", "-c", "echo x > /data/in/new 2>&1"]);
    assert_ne!(r.exit_code, 0, "a read-only mapping refuses writes");
    assert!(!host.path().join("new").exists());
    assert_eq!(
        run(&s, &["sh", "-c", "echo written > /data/out/file"]).exit_code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(rw.path().join("file")).unwrap(),
        "written\n"
    );
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn writes_land_in_the_scratch_layer_and_not_in_the_image() {
    let ns = unique_namespace("scratch");
    let scratch = tempfile::tempdir().unwrap();
    let doc = container_doc(
        serde_json::json!({ "Container": { "Storage": { "Path": scratch.path() } } }),
    );
    let s = create_started(&ns, "c", &doc);
    assert_eq!(
        run(&s, &["sh", "-c", "echo note > /root/note && rm /bin/vi"]).exit_code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("upper/root/note")).unwrap(),
        "note\n"
    );
    assert!(rootfs().join("bin/vi").exists(), "the layer is read-only");
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
    assert!(
        scratch.path().join("upper/root/note").exists(),
        "the writable layer belongs to the caller and stays"
    );
}

#[test]
fn host_name_and_a_private_network() {
    let ns = unique_namespace("uts");
    let s = create_started(
        &ns,
        "c",
        &container_doc(serde_json::json!({ "Container": { "GuestOs": { "HostName": "inside" } } })),
    );
    assert_eq!(run(&s, &["hostname"]).stdout, "inside\n");
    let links = run(&s, &["cat", "/proc/net/dev"]).stdout;
    let ifaces: Vec<&str> = links
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "a new network namespace with only loopback");
    assert_eq!(
        run(&s, &["ping", "-c", "1", "-W", "2", "127.0.0.1"]).exit_code,
        0,
        "loopback is up"
    );
    terminate(&s);
}

/// A network namespace made for one test and removed afterwards.
struct TestNetns(String);

impl TestNetns {
    fn new(name: &str) -> TestNetns {
        let st = std::process::Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip (iproute2) is installed");
        assert!(st.success(), "ip netns add {name}");
        // From here on the guard removes the namespace, whatever fails next.
        let ns = TestNetns(name.to_string());
        let st = std::process::Command::new("ip")
            .args([
                "-n",
                name,
                "link",
                "add",
                "hcsdummy0",
                "type",
                "veth",
                "peer",
                "name",
                "hcsdummy1",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "creating a veth pair in {name}");
        ns
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn joining_a_named_network_namespace_and_sharing_another_containers() {
    let ns = unique_namespace("netns");
    let netns = TestNetns::new(&format!("hcs-test-{}", std::process::id()));
    let a = create_started(
        &ns,
        "a",
        &container_doc(
            serde_json::json!({ "Container": { "Networking": { "Namespace": netns.0 } } }),
        ),
    );
    assert!(run(&a, &["cat", "/proc/net/dev"])
        .stdout
        .contains("hcsdummy0"));
    let b = create_started(
        &ns,
        "b",
        &container_doc(
            serde_json::json!({ "Container": { "Networking": { "NetworkSharedContainerName": "a" } } }),
        ),
    );
    assert!(
        run(&b, &["cat", "/proc/net/dev"])
            .stdout
            .contains("hcsdummy0"),
        "b shares a's network"
    );
    terminate(&b);
    terminate(&a);
    assert!(leftovers(&ns).is_empty());
    let e = create(&ns, "c", &container_doc(serde_json::json!({ "Container": { "Networking": { "Namespace": "hcs-no-such-netns" } } })))
        .unwrap_err();
    assert_eq!(e.hresult, HResult::ERROR_PATH_NOT_FOUND);
    assert!(e.message.contains("Networking.Namespace"), "{}", e.message);
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_id() {
    let ns = unique_namespace("userns");
    let doc = container_doc(serde_json::json!({ "Container": { "UserNamespace": {
        "UidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ],
        "GidMappings": [ { "ContainerId": 0, "HostId": 200000, "Size": 65536 } ]
    } } }));
    let s = create_started(&ns, "c", &doc);
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo ok > /tmp/x && cat /tmp/x",
        ],
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {}", r.stderr);
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    assert_eq!(
        lines[2], "ok",
        "the writable layer works in a user namespace"
    );
    // Seen from the host, the container's root is uid 200000.
    let op = hcs::Operation::new();
    let _p = s
        .create_process(r#"{"CommandArgs":["sleep","1000"]}"#, &op)
        .unwrap();
    op.wait(WAIT_MS).unwrap();
    let host_uids: Vec<String> = leftovers(&ns)
        .processes
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        })
        .collect();
    assert!(
        !host_uids.is_empty() && host_uids.iter().all(|u| u == "200000"),
        "{host_uids:?}"
    );
    terminate(&s);
    assert!(leftovers(&ns).is_empty());
    let _ = PathBuf::new();
}
