//! HcsSaveComputeSystem and RestoreState with the test guest: a paused VM
//! is saved to a state file and a sparse memory file; new systems created
//! from them carry on where it stopped (its tick counter goes on from its
//! saved value), more than once from one file; damaged files are refused
//! with a clear error and leave nothing behind.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use hcs::{HResult, Operation, System};
use hcs_integration_tests::*;

const MEM_MB: u64 = 128;

fn vm_doc(extra: serde_json::Value) -> String {
    let mut sized = serde_json::json!({ "VirtualMachine": {
        "ComputeTopology": { "Memory": { "SizeInMB": MEM_MB }, "Processor": { "Count": 2 } }
    } });
    merge_into(&mut sized, extra);
    test_guest_vm_doc("console=ttyS0", sized)
}

fn ticks(c: &mut Console) -> u64 {
    c.ask("ticks", "TICKS")
        .trim_start_matches("TICKS ")
        .parse()
        .unwrap()
}

/// Ask for ticks until they exceed `floor` (the guest's 100 Hz timer runs).
fn ticks_above(c: &mut Console, floor: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = ticks(c);
        if t > floor {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "ticks stuck at {t} (want > {floor})"
        );
    }
}

/// A VM saved to a file stops, as in HCS: GracefulExit, WorkerExit Saved.
fn saved_and_stopped(s: &System) {
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).expect("the saved VM stops")).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    let worker = status["Attribution"]
        .as_array()
        .and_then(|a| a.iter().find_map(|r| r.get("WorkerExit")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(worker["Type"], "Saved", "{status}");
}

fn restore_doc(state: &std::path::Path) -> String {
    vm_doc(serde_json::json!({ "VirtualMachine": {
        "RestoreState": { "SaveStateFilePath": state }
    } }))
}

fn create_fails(ns: &str, doc: &str) -> hcs::HcsError {
    let op = Operation::new();
    match System::create_in_namespace(ns, "bad", doc, &op) {
        Err(e) => e,
        Ok(_) => op.wait(WAIT_MS).expect_err("create must fail"),
    }
}

#[test]
fn a_saved_vm_carries_on_in_new_systems_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("vm.state");
    let ns = unique_namespace("vmsave");
    let s = create_started(&ns, "vm", &vm_doc(serde_json::json!({})));
    let mut c = Console::attach(&ns, "vm");
    c.expect("HCS-TEST-GUEST READY");
    let before = ticks_above(&mut c, 20);

    let opts = serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": state }).to_string();
    let e = call(|op| s.save(op, Some(&opts))).unwrap_err();
    assert_eq!(
        e.hresult,
        HResult::HCS_E_INVALID_STATE,
        "a running VM is not saved: {e}"
    );
    call(|op| s.pause(op, None)).unwrap();
    call(|op| s.save(op, Some(&opts))).unwrap();
    saved_and_stopped(&s);

    // The memory file is sparse: its size is the guest's, its blocks are
    // only the pages the guest touched.
    let memory = dir.path().join("vm.state.memory");
    let m = std::fs::metadata(&memory).unwrap();
    assert_eq!(
        m.len(),
        (MEM_MB << 20) + 4096,
        "the guest's size and a page for the tag"
    );
    let allocated = m.blocks() * 512;
    assert!(
        allocated < 16 << 20,
        "{allocated} bytes allocated for a {MEM_MB} MiB guest"
    );

    // Two systems from one file: each goes on from the saved counter.
    let mut restored = Vec::new();
    for id in ["r1", "r2"] {
        let r = create_started(&ns, id, &restore_doc(&state));
        let mut rc = Console::attach(&ns, id);
        let t = ticks(&mut rc);
        assert!(
            t >= before,
            "{id}: ticks {t} after restore, {before} before the save"
        );
        ticks_above(&mut rc, t);
        assert_eq!(rc.ask("echo restored", "restored"), "restored");
        restored.push(r);
    }
    // A second save (of the first restored system), for the pairing check
    // below.
    let other = dir.path().join("other.state");
    let other_opts =
        serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": other }).to_string();
    call(|op| restored[0].pause(op, None)).unwrap();
    call(|op| restored[0].save(op, Some(&other_opts))).unwrap();
    saved_and_stopped(&restored[0]);
    terminate(&restored[1]);

    // Damaged files: refused, clearly, with nothing left behind.
    let good = std::fs::read(&state).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "saved state"),
        (
            "flipped",
            {
                let mut b = good.clone();
                let i = b.len() - 7;
                b[i] ^= 0x10;
                b
            },
            "CRC",
        ),
        (
            "version",
            {
                let mut b = good.clone();
                b[8] = 0xee;
                b
            },
            "version",
        ),
    ];
    for (name, bytes, needle) in cases {
        let bad = dir.path().join(format!("{name}.state"));
        std::fs::write(&bad, bytes).unwrap();
        std::fs::copy(&memory, dir.path().join(format!("{name}.state.memory"))).unwrap();
        let e = create_fails(&ns, &restore_doc(&bad));
        assert_eq!(e.hresult, HResult::ERROR_INVALID_DATA, "{name}: {e}");
        assert!(
            e.message.contains(needle),
            "{name}: {:?} should mention {needle:?}",
            e.message
        );
    }
    // Another save's memory file beside this state file (what a save cut
    // short between its two renames leaves): refused by the tag, instead of
    // running this state's vCPUs on that memory.
    std::fs::rename(dir.path().join("other.state.memory"), &memory).unwrap();
    let e = create_fails(&ns, &restore_doc(&state));
    assert_eq!(e.hresult, HResult::ERROR_INVALID_DATA, "{e}");
    assert!(e.message.contains("does not belong"), "{e}");
    // A missing memory file.
    std::fs::remove_file(&memory).unwrap();
    let e = create_fails(&ns, &restore_doc(&state));
    assert_eq!(e.hresult, HResult::ERROR_INVALID_DATA, "{e}");
    assert!(e.message.contains("memory"), "{e}");
    // A different machine.
    let e = create_fails(
        &ns,
        &vm_doc(serde_json::json!({ "VirtualMachine": {
            "RestoreState": { "SaveStateFilePath": state },
            "ComputeTopology": { "Processor": { "Count": 1 } }
        } })),
    );
    assert!(e.message.contains("vCPUs"), "{e}");
    // A FIFO as the memory file: refused at once (it used to hang the
    // monitor in open(), invisible to list and terminate). Bounded wait, so
    // the test fails rather than hangs.
    nix::unistd::mkfifo(&memory, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (fifo_ns, doc) = (ns.clone(), restore_doc(&state));
    std::thread::spawn(move || {
        let _ = tx.send(create_fails(&fifo_ns, &doc));
    });
    let e = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("restoring from a FIFO memory file answers within 20 s");
    assert_eq!(e.hresult, HResult::ERROR_INVALID_DATA, "{e}");
    assert!(e.message.contains("FIFO"), "{e}");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}

#[test]
fn vsock_and_disks_survive_save_and_the_agent_reconnects_after_restore() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let state = dir.path().join("vm.state");
    let extra = serde_json::json!({ "VirtualMachine": {
        "GuestConnection": { "UseVsock": true },
        "Chipset": { "LinuxKernelDirect": { "KernelCmdLine": "console=ttyS0 hcs.agent=1" } },
        "Devices": { "Scsi": { "0": { "Attachments": {
            "0": { "Type": "VirtualDisk", "Path": disk } } } } }
    } });
    let ns = unique_namespace("vmsaveagent");
    let s = create_started(&ns, "vm", &vm_doc(extra.clone()));
    let r = run(&s, &["echo", "before", "save"]);
    assert_eq!(
        (r.exit_code, r.stdout.lines().next()),
        (0, Some("before save"))
    );
    let r = run(&s, &["sector", "write", "3"]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);

    call(|op| s.pause(op, None)).unwrap();
    let opts = serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": state }).to_string();
    call(|op| s.save(op, Some(&opts))).unwrap();
    saved_and_stopped(&s);

    let mut doc: serde_json::Value = serde_json::from_str(&vm_doc(extra)).unwrap();
    doc["VirtualMachine"]["RestoreState"] = serde_json::json!({ "SaveStateFilePath": state });
    let r1 = create_started(&ns, "r1", &doc.to_string());
    let mut c = Console::attach(&ns, "r1");
    // The vsock device resets its connections; the agent connects again by
    // itself, and processes run at once.
    let r = run(&r1, &["echo", "after", "restore"]);
    assert_eq!(
        (r.exit_code, r.stdout.lines().next()),
        (0, Some("after restore")),
        "{}",
        r.stderr
    );
    c.expect("AGENT TRANSPORT RESET");
    // The disk still works after restore: what the guest writes lands in
    // the image, beside what it wrote before the save.
    let r = run(&r1, &["sector", "write", "5"]);
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    let image = std::fs::read(&disk).unwrap();
    for lba in [3usize, 5] {
        let want = format!("HCS-SECTOR {lba}\n");
        assert_eq!(
            &image[lba * 512..lba * 512 + want.len()],
            want.as_bytes(),
            "sector {lba}"
        );
    }
    terminate(&r1);
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}
