//! The resource controls of a VM document, end to end with the test guest:
//! `ComputeTopology.Processor` Limit and Weight as a CPU cgroup holding the
//! monitor's vCPU threads.

use std::path::{Path, PathBuf};

use hcs::{HResult, Operation};
use hcs_integration_tests::*;

fn vm_doc(extra: serde_json::Value) -> String {
    test_guest_vm_doc("console=ttyS0 hcs.test=1", extra)
}

/// The v1 `cpu` hierarchy's mount point, when the host has one (v2 hosts
/// cannot hold single threads of a process in a cgroup of their own).
fn v1_cpu_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let fstype = r.next()?;
        let opts = r.nth(1)?;
        if fstype != "cgroup" || !opts.split(',').any(|o| o == "cpu") {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// Every thread (`/proc/<pid>/task/<tid>`) whose cgroup names `marker`, with its name.
fn threads_in(marker: &str) -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(tid) = t.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_to_string(t.path().join("cgroup")).is_ok_and(|c| c.contains(marker)) {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                out.push((pid, tid, comm.trim().to_string()));
            }
        }
    }
    out.sort();
    out
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

#[test]
fn processor_limit_and_weight_are_a_cpu_cgroup_of_the_vcpu_threads() {
    require_root();
    let doc = vm_doc(serde_json::json!({ "VirtualMachine": { "ComputeTopology": {
        "Processor": { "Count": 2, "Limit": 25000, "Weight": 200 } } } }));
    let Some(mount) = v1_cpu_mount() else {
        skip(
            "vm_resources::processor_limit_and_weight_are_a_cpu_cgroup_of_the_vcpu_threads",
            "no cgroup v1 cpu hierarchy: cgroup_v2::a_vm_s_processor_limit_and_weight_hold_its_vcpu_threads_on_cgroup_v2_alone covers cgroup v2",
        );
        return;
    };
    let ns = unique_namespace("vmcpu");
    let s = create_started(&ns, "vm", &doc);
    let marker = format!("{ns}@vm");
    // The cgroup the monitor made: `<own cpu cgroup>/hcs/<ns>@vm`.
    let l = leftovers(&ns);
    let dir = l
        .cgroups
        .iter()
        .find(|p| p.starts_with(&mount))
        .unwrap_or_else(|| panic!("no cpu cgroup for {marker} in {:?}", l.cgroups))
        .clone();
    // 25% of a host CPU for each of 2 vCPUs: 50 ms every 100 ms.
    assert_eq!(read(&dir, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&dir, "cpu.cfs_quota_us"), "50000");
    assert_eq!(
        read(&dir, "cpu.shares"),
        hcs_cgroups::cpu_weight_to_shares(200).to_string()
    );
    // The vCPU threads are in it, and nothing else of the monitor but KVM's
    // own worker for the VM (kvm-nx-lpage-recovery), which joins the cgroup
    // of the thread that first runs a vCPU, so it is charged here too. (The
    // worker may appear between two reads: compare by name, not by count.)
    let threads = threads_in(&marker);
    let vcpus: Vec<&(i32, i32, String)> =
        threads.iter().filter(|t| t.2.starts_with("vcpu")).collect();
    let names: Vec<&str> = vcpus.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(names, ["vcpu0", "vcpu1"], "{threads:?}");
    let monitor = vcpus[0].0;
    assert!(
        threads.iter().all(|t| t.0 == monitor),
        "one monitor process: {threads:?}"
    );
    let tasks: Vec<i32> = read(&dir, "tasks")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for v in &vcpus {
        assert!(tasks.contains(&v.1), "{v:?} not in {tasks:?}");
    }
    for tid in &tasks {
        let comm = std::fs::read_to_string(format!("/proc/{monitor}/task/{tid}/comm"))
            .unwrap_or_else(|e| panic!("task {tid} in the VM's cgroup is not the monitor's: {e}"));
        let comm = comm.trim();
        assert!(
            comm.starts_with("vcpu") || comm.starts_with("kvm-"),
            "{tid} {comm}"
        );
    }
    assert!(
        !tasks.contains(&monitor),
        "the monitor's main thread stays out"
    );
    terminate(&s);
    drop(s);
    eventually(
        "the VM's cgroup to go",
        std::time::Duration::from_secs(10),
        || leftovers(&ns).is_empty(),
    );
}

#[test]
fn processor_controls_out_of_range_or_without_linux_meaning_are_refused() {
    let cases: Vec<(serde_json::Value, HResult, &str)> = vec![
        (
            serde_json::json!({ "Reservation": 5000 }),
            HResult::ERROR_NOT_SUPPORTED,
            "VirtualMachine.ComputeTopology.Processor.Reservation",
        ),
        (
            serde_json::json!({ "Limit": 0 }),
            HResult::HCS_E_INVALID_JSON,
            "VirtualMachine.ComputeTopology.Processor.Limit",
        ),
        (
            serde_json::json!({ "Limit": 100001 }),
            HResult::HCS_E_INVALID_JSON,
            "VirtualMachine.ComputeTopology.Processor.Limit",
        ),
        (
            serde_json::json!({ "Weight": 10001 }),
            HResult::HCS_E_INVALID_JSON,
            "VirtualMachine.ComputeTopology.Processor.Weight",
        ),
    ];
    for (processor, code, needle) in cases {
        let ns = unique_namespace("vmcpubad");
        let extra = serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Processor": processor } } });
        let op = Operation::new();
        let e = match hcs::System::create_in_namespace(&ns, "bad", &vm_doc(extra.clone()), &op) {
            Err(e) => e,
            Ok(_) => op.wait(WAIT_MS).expect_err("create must fail"),
        };
        assert_eq!(e.hresult, code, "{extra}: {e}");
        assert!(
            e.message.contains(needle),
            "{extra}: {:?} should mention {needle:?}",
            e.message
        );
        assert!(leftovers(&ns).is_empty(), "{extra}");
    }
}

/// `Statistics.VirtualMachine.GuestResidentBytes` of a created VM.
fn resident(s: &hcs::System) -> u64 {
    let p = properties(s, &["Statistics"]).unwrap();
    p["Statistics"]["VirtualMachine"]["GuestResidentBytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{p}"))
}

#[test]
fn without_overcommit_guest_memory_is_populated_before_it_runs() {
    require_root();
    let ns = unique_namespace("vmmem");
    let create = |id: &str, memory: serde_json::Value| {
        let doc = vm_doc(
            serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Memory": memory } } }),
        );
        create(&ns, id, &doc).unwrap_or_else(|e| panic!("{id}: {e}"))
    };
    // Created, not started: only what loading the guest wrote is resident.
    let lazy = create("lazy", serde_json::json!({ "SizeInMB": 64 }));
    assert!(resident(&lazy) < 32 << 20, "{}", resident(&lazy));
    let eager = create(
        "eager",
        serde_json::json!({ "SizeInMB": 64, "AllowOvercommit": false }),
    );
    assert_eq!(resident(&eager), 64 << 20);
    let pinned = create(
        "pinned",
        serde_json::json!({ "SizeInMB": 64, "PinBackingPages": true }),
    );
    assert_eq!(resident(&pinned), 64 << 20);
    drop((lazy, eager, pinned));
    eventually("the VMs to go", std::time::Duration::from_secs(10), || {
        leftovers(&ns).is_empty()
    });
}

#[test]
fn memory_options_that_cannot_be_honoured_are_refused_with_their_path() {
    let cases: Vec<(serde_json::Value, HResult, &str)> = vec![
        (
            serde_json::json!({ "AllowOvercommit": false, "EnableDeferredCommit": true }),
            HResult::HCS_E_INVALID_JSON,
            "Memory.EnableDeferredCommit",
        ),
        (
            serde_json::json!({ "ForbidSmallBackingPages": true }),
            HResult::HCS_E_INVALID_JSON,
            "Memory.ForbidSmallBackingPages",
        ),
        (
            serde_json::json!({ "LowMmioGapInMB": 512 }),
            HResult::ERROR_NOT_SUPPORTED,
            "Memory.LowMmioGapInMB",
        ),
        (
            serde_json::json!({ "HighMmioBaseInMB": 1024, "HighMmioGapInMB": 1024 }),
            HResult::ERROR_NOT_SUPPORTED,
            "Memory.HighMmioBaseInMB",
        ),
        (
            // More huge pages than any test host reserves.
            serde_json::json!({ "BackingPageSize": "Large", "ForbidSmallBackingPages": true, "SizeInMB": 1024 }),
            HResult::E_OUTOFMEMORY,
            "huge pages",
        ),
    ];
    for (memory, code, needle) in cases {
        let ns = unique_namespace("vmmembad");
        let mut m = serde_json::json!({ "SizeInMB": 64 });
        merge_into(&mut m, memory);
        let extra = serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Memory": m } } });
        let op = Operation::new();
        let e = match hcs::System::create_in_namespace(&ns, "bad", &vm_doc(extra.clone()), &op) {
            Err(e) => e,
            Ok(_) => op.wait(WAIT_MS).expect_err("create must fail"),
        };
        assert_eq!(e.hresult, code, "{extra}: {e}");
        assert!(
            e.message.contains(needle),
            "{extra}: {:?} should mention {needle:?}",
            e.message
        );
        assert!(leftovers(&ns).is_empty(), "{extra}");
    }
}
