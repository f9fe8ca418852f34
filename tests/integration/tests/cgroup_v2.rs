//! Containers and VMs' CPU controls on a host with cgroup v2 alone (a
//! unified hierarchy, no v1 controller mounted anywhere). This machine has v1 controllers, so here the
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
    if !pure_cgroup_v2_here("cgroup_v2::limits_freeze_statistics_and_cleanup_on_cgroup_v2_alone") {
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

/// Every thread (`/proc/<pid>/task/<tid>`) of process `pid` with its name.
fn threads_of(pid: u32) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_string_lossy().parse().ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            Some((tid, comm.trim().to_string()))
        })
        .collect();
    out.sort();
    out
}

/// A VM's `Processor.Limit`/`Weight` on v2: v2 places single threads only in
/// a threaded subtree, so the monitor moves into `hcs/<ns>@<id>` (the
/// subtree's root) and its vCPU threads into the threaded child `vcpus`,
/// which holds the limits; its other threads stay out of them.
#[test]
fn a_vm_s_processor_limit_and_weight_hold_its_vcpu_threads_on_cgroup_v2_alone() {
    if !pure_cgroup_v2_here(
        "cgroup_v2::a_vm_s_processor_limit_and_weight_hold_its_vcpu_threads_on_cgroup_v2_alone",
    ) {
        return;
    }
    let ns = unique_namespace("vmcpuv2");
    let doc = test_guest_vm_doc(
        "console=ttyS0 hcs.test=1",
        serde_json::json!({ "VirtualMachine": { "ComputeTopology": {
            "Processor": { "Count": 2, "Limit": 25000, "Weight": 200 } } } }),
    );
    let s = create_started(&ns, "vm", &doc);
    let leaf = cgroup_dir(&ns, "vm");
    let vcpus = leaf.join("vcpus");
    assert_eq!(read(&leaf, "cgroup.type"), "domain threaded");
    assert_eq!(read(&vcpus, "cgroup.type"), "threaded");
    // 25% of a host CPU for each of 2 vCPUs: 50 ms every 100 ms.
    assert_eq!(read(&vcpus, "cpu.max"), "50000 100000");
    assert_eq!(read(&vcpus, "cpu.weight"), "200");

    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hcs_rundir::root().join(&ns).join("vm/record.json")).unwrap(),
    )
    .unwrap();
    let monitor = record["monitor_pid"].as_u64().unwrap() as u32;
    // The monitor is the subtree's process; beside it only KVM's worker for
    // the VM (a kernel thread that joins its creator's cgroup).
    let procs = read(&leaf, "cgroup.procs");
    assert!(procs.lines().any(|p| p == monitor.to_string()), "{procs}");
    for p in procs.lines().filter(|p| *p != monitor.to_string()) {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        assert!(comm.starts_with("kvm"), "{p} {comm} in the VM's cgroup");
    }
    let threads = threads_of(monitor);
    let in_vcpus: Vec<i32> = read(&vcpus, "cgroup.threads")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let vcpu_tids: Vec<i32> = threads
        .iter()
        .filter(|t| t.1.starts_with("vcpu"))
        .map(|t| t.0)
        .collect();
    assert_eq!(vcpu_tids.len(), 2, "{threads:?}");
    for tid in &vcpu_tids {
        assert!(
            in_vcpus.contains(tid),
            "vCPU thread {tid} not in {in_vcpus:?}"
        );
    }
    for tid in &in_vcpus {
        match threads.iter().find(|t| t.0 == *tid) {
            Some((_, comm)) => assert!(comm.starts_with("vcpu"), "{tid} {comm} is limited too"),
            // Not the monitor's: only KVM's worker for the VM may be there.
            None => {
                let comm = std::fs::read_to_string(format!("/proc/{tid}/comm")).unwrap_or_default();
                assert!(comm.starts_with("kvm"), "{tid} {comm}");
            }
        }
    }
    assert!(
        !in_vcpus.contains(&(monitor as i32)),
        "the monitor's main thread stays out"
    );

    terminate(&s);
    drop(s);
    eventually(
        "the VM's cgroup to go",
        std::time::Duration::from_secs(10),
        || !leaf.exists(),
    );
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}
