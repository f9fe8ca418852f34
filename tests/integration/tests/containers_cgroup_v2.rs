//! Containers on a host with cgroup v2 alone (a unified hierarchy, no v1
//! controller mounted anywhere). This machine has v1 controllers, so here the
//! tests defer to the nested-KVM stage, whose L1 mounts cgroup2 by itself
//! (scripts/nested-stage.sh); on a v2-only host they run directly.

use std::path::PathBuf;

use hcs_integration_tests::*;

/// The container's cgroup directory on the unified hierarchy.
fn cgroup_dir(ns: &str, id: &str) -> PathBuf {
    let leaf = format!("{ns}@{id}");
    let found: Vec<PathBuf> = leftovers(ns)
        .cgroups
        .into_iter()
        .filter(|c| c.ends_with(&leaf))
        .collect();
    assert_eq!(found.len(), 1, "one cgroup for the container: {found:?}");
    found[0].clone()
}

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn limits_freeze_statistics_and_cleanup_on_cgroup_v2_alone() {
    if !pure_cgroup_v2_here(
        "containers_cgroup_v2::limits_freeze_statistics_and_cleanup_on_cgroup_v2_alone",
    ) {
        return;
    }
    let ns = unique_namespace("cgv2");
    let doc = container_doc(serde_json::json!({ "Container": {
        "Memory": { "SizeInMB": 64 }, "Processor": { "Count": 1 } } }));
    let s = create_started(&ns, "c", &doc);
    let dir = cgroup_dir(&ns, "c");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "cpu.max"), "100000 100000");
    assert_eq!(
        read(&dir, "pids.max"),
        "4096",
        "Container.PidsLimit's default"
    );

    // Every process of the container is in its cgroup, and only there: one
    // "0::" line, as a v2-only host has.
    let (_sleeper, info) =
        start_process(&s, serde_json::json!({ "CommandArgs": ["sleep", "1000"] }));
    let _ = info;
    let procs = read(&dir, "cgroup.procs");
    assert!(procs.lines().count() >= 2, "init and sleep: {procs}");
    for pid in procs.lines() {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(own.lines().count(), 1, "{pid}: {own}");
        assert!(
            own.starts_with("0::/") && own.trim_end().ends_with(&format!("{ns}@c")),
            "{pid}: {own}"
        );
    }

    // The v2 freezer: pause freezes the cgroup, resume thaws it.
    call(|op| s.pause(op, None)).unwrap();
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(
        read(&dir, "cgroup.events").contains("frozen 1"),
        "{}",
        read(&dir, "cgroup.events")
    );
    call(|op| s.resume(op, None)).unwrap();
    assert!(
        read(&dir, "cgroup.events").contains("frozen 0"),
        "{}",
        read(&dir, "cgroup.events")
    );

    // Statistics from memory.current / cpu.stat.
    let p = properties(&s, &["Statistics"]).unwrap();
    assert!(
        p["Statistics"]["Memory"]["MemoryUsageCommitBytes"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{p}"
    );
    assert!(
        p["Statistics"]["Processor"]["TotalRuntime100ns"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{p}"
    );

    // Modify goes to memory.max, and the kernel holds a process to it: a
    // 200 MiB buffer cannot be had under 128 MiB.
    call(|op| {
        s.modify(
            op,
            r#"{"ResourcePath":"Container/Memory/SizeInMB","RequestType":"Update","Settings":128}"#,
        )
    })
    .unwrap();
    assert_eq!(read(&dir, "memory.max"), "134217728");
    let r = run(
        &s,
        &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1"],
    );
    assert_ne!(
        r.exit_code, 0,
        "dd with a 200 MiB buffer ran under a 128 MiB limit: {}",
        r.stderr
    );
    assert!(
        read(&dir, "memory.events")
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "{}",
        read(&dir, "memory.events")
    );
    let r = run(
        &s,
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=1M count=8 2>/dev/null; echo fits",
        ],
    );
    assert_eq!(r.stdout, "fits\n");

    terminate(&s);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}
