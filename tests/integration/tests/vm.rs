//! Virtual machine compute systems with the test guest (guest/test-guest),
//! end to end: boot through the Linux 64-bit protocol, ACPI, the serial
//! console, pause, shutdown, terminate, crash, and every way a guest stops.

use std::time::Duration;

use hcs::{EventOptions, EventType, HResult, Operation, System};
use hcs_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

fn vm_doc(extra: serde_json::Value) -> String {
    test_guest_vm_doc("console=ttyS0 hcs.test=1", extra)
}

/// Create, start, and wait for the guest's READY line.
fn booted(test: &str, extra: serde_json::Value) -> (String, System, Console, String) {
    let ns = unique_namespace(test);
    let s = create_started(&ns, "vm", &vm_doc(extra));
    let mut c = Console::attach(&ns, "vm");
    let ready = c.expect("HCS-TEST-GUEST READY");
    (ns, s, c, ready)
}

fn exit_status(s: &System) -> serde_json::Value {
    serde_json::from_str(&s.wait_for_exit(WAIT_MS).expect("the VM stops")).unwrap()
}

fn attribution<'a>(status: &'a serde_json::Value, member: &str) -> Option<&'a serde_json::Value> {
    status["Attribution"]
        .as_array()?
        .iter()
        .find_map(|a| a.get(member))
}

#[test]
fn boots_through_the_64_bit_protocol_and_finds_its_devices_in_acpi() {
    let (ns, s, mut c, ready) = booted(
        "vmboot",
        serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Processor": { "Count": 2 } } } }),
    );
    assert!(ready.contains("cpus=2"), "{ready}");
    assert!(ready.contains("com=0x3f8"), "{ready}");
    assert_eq!(c.ask("echo hello there", "hello"), "hello there");
    assert_eq!(c.ask("cpus", "CPUS"), "CPUS 2");
    assert!(c.ask("cmdline", "CMDLINE").contains("hcs.test=1"));
    c.command("devices");
    let mut devices = Vec::new();
    loop {
        let line = c.expect("");
        if line == "END" {
            break;
        }
        if line.starts_with("DEV ") {
            devices.push(line);
        }
    }
    for hid in ["PNP0501", "QEMU0001", "PNP0C0C", "ACPI0013"] {
        assert!(
            devices.iter().any(|d| d.contains(hid)),
            "{hid} missing from {devices:?}"
        );
    }
    // No i8042 and no CMOS RTC for the guest to probe (the FADT says so
    // too); the i8042's reset line still works (the_guest_powers_off_and_resets).
    for hid in ["PNP0303", "PNP0B00"] {
        assert!(
            !devices.iter().any(|d| d.contains(hid)),
            "{hid} in {devices:?}"
        );
    }
    let p = properties(&s, &["Memory", "Statistics"]).unwrap();
    assert_eq!(p["SystemType"], "VirtualMachine");
    assert_eq!(p["Memory"]["VirtualMachineMemory"]["AssignedMemory"], 64);
    let vm = &p["Statistics"]["VirtualMachine"];
    assert!(vm["Exits"].as_u64().unwrap() > 0, "{p}");
    assert!(vm["VcpuTime100ns"].as_u64().unwrap() > 0, "{p}");
    assert!(vm["GuestResidentBytes"].as_u64().unwrap() > 0, "{p}");
    let status = terminate(&s);
    assert_eq!(status["ExitType"], "ForcedExit");
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn the_guest_powers_off_and_resets() {
    let (_ns, s, mut c, _) = booted("vmoff", serde_json::json!({}));
    c.command("poweroff");
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert_eq!(
        attribution(&status, "WorkerExit").unwrap()["Detail"],
        "PowerOff"
    );

    for (cmd, test) in [("reset", "vmreset"), ("acpireset", "vmacpireset")] {
        let (_ns, s, mut c, _) = booted(test, serde_json::json!({}));
        c.command(cmd);
        let status = exit_status(&s);
        assert_eq!(status["ExitType"], "GracefulExit", "{cmd}: {status}");
        let w = attribution(&status, "WorkerExit").unwrap();
        assert_eq!(
            (w["Type"].as_str(), w["Detail"].as_str()),
            (Some("StoppedOnReset"), Some("Reset")),
            "{cmd}"
        );
    }
}

#[test]
fn shutdown_presses_the_power_button_and_terminates_a_guest_that_ignores_it() {
    let (_ns, s, _c, _) = booted("vmshut", serde_json::json!({}));
    call(|op| s.shutdown(op, Some(r#"{"TimeoutInMs":30000}"#))).unwrap();
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert_eq!(
        attribution(&status, "SystemExit").unwrap()["Detail"],
        "Shutdown"
    );

    let (_ns, s, mut c, _) = booted("vmhang", serde_json::json!({}));
    // Wait for the guest to say it stopped listening.
    c.ask("hang", "HANG");
    call(|op| s.shutdown(op, Some(r#"{"TimeoutInMs":300}"#))).unwrap();
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "ForcedExit", "{status}");
}

#[test]
fn pause_stops_the_guest_clock_and_resume_restarts_it() {
    let (_ns, s, mut c, _) = booted("vmpause", serde_json::json!({}));
    let ticks = |c: &mut Console| -> u64 {
        c.ask("ticks", "TICKS")
            .trim_start_matches("TICKS ")
            .parse()
            .unwrap()
    };
    // Running: ticks advance (100 Hz) while we wait.
    let a = ticks(&mut c);
    std::thread::sleep(Duration::from_millis(300));
    let b = ticks(&mut c);
    assert!(b > a, "ticks advance while running: {a} -> {b}");
    call(|op| s.pause(op, None)).unwrap();
    assert_eq!(properties(&s, &[]).unwrap()["State"], "Paused");
    // Paused for 500 ms: a guest that still ran would count ~50 ticks.
    std::thread::sleep(Duration::from_millis(500));
    call(|op| s.resume(op, None)).unwrap();
    let d = ticks(&mut c);
    let running_rate = (b - a) as f64 / 0.3;
    let gained = (d - b) as f64;
    assert!(
        gained < running_rate * 0.5 * 0.5,
        "the guest gained {gained} ticks over a 500 ms pause (running rate {running_rate}/s)"
    );
    terminate(&s);
}

#[test]
fn triple_fault_and_crash_are_unexpected_exits_with_their_cause() {
    let (_ns, s, mut c, _) = booted("vmtf", serde_json::json!({}));
    c.command("triplefault");
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "UnexpectedExit", "{status}");
    assert_eq!(status["Status"], HResult::HCS_E_UNEXPECTED_EXIT.0);
    assert!(attribution(&status, "TripleFault").is_some(), "{status}");
    let exit = attribution(&status, "VirtualMachineExit").unwrap();
    assert_eq!(exit["Reason"], "TripleFault");
    assert!(
        exit["Rip"].as_u64().unwrap() >= 0x200000,
        "RIP inside the guest: {exit}"
    );
    // A console of a stopped VM ends rather than falling silent.
    c.read_to_end();

    // HcsCrashComputeSystem: an NMI; the guest panics through pvpanic.
    let (_ns, s, _c, _) = booted("vmcrash", serde_json::json!({}));
    let (tx, rx) = std::sync::mpsc::channel();
    s.set_callback(EventOptions::NONE, move |ev| {
        let _ = tx.send((ev.event_type, ev.data.clone()));
    })
    .unwrap();
    call(|op| s.crash(op, Some(r#"{"Type":"CrashGuest"}"#))).unwrap();
    let (t, report) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(t, EventType::SystemCrashReport);
    let report: serde_json::Value = serde_json::from_str(&report.unwrap()).unwrap();
    assert!(
        report["CrashLog"].as_str().unwrap().contains("NMI"),
        "{report}"
    );
    let (t, _) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(t, EventType::SystemExited);
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "UnexpectedExit");
    assert!(attribution(&status, "GuestCrash").is_some(), "{status}");
}

#[test]
fn an_instruction_kvm_cannot_run_is_reported_with_its_rip() {
    let (_ns, s, mut c, _) = booted("vmbad", serde_json::json!({}));
    c.command("badinsn");
    if hcs_vmm::host::is_kvm_pvm() {
        // kvm_pvm emulates guest kernel code and cannot emulate SSE.
        let status = exit_status(&s);
        assert_eq!(status["ExitType"], "UnexpectedExit", "{status}");
        let exit = attribution(&status, "VirtualMachineExit").unwrap();
        assert_eq!(exit["Reason"], "InternalError");
        assert!(exit["Rip"].as_u64().unwrap() >= 0x200000, "{exit}");
    } else {
        // Hardware KVM runs it: the guest, which never enabled SSE, takes #UD.
        assert!(c.expect("EXCEPTION").contains("vec=6"));
        terminate(&s);
    }
}

#[test]
fn bad_vm_documents_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("not-a-kernel");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    // A dynamic VHD: a footer with disk type 3, which only fixed VHDs may have.
    let dynamic_vhd = dir.path().join("dynamic.vhd");
    let mut vhd = vec![0u8; 1 << 20];
    vhd.extend_from_slice(&hcs_virtio::block::fixed_vhd_footer(1 << 20, 3));
    std::fs::write(&dynamic_vhd, vhd).unwrap();
    // VHDX and qcow2 images: only their signatures matter.
    let vhdx = dir.path().join("disk.vhdx");
    let mut bytes = b"vhdxfile".to_vec();
    bytes.resize(1 << 20, 0);
    std::fs::write(&vhdx, bytes).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    let mut bytes = b"QFI\xfb\0\0\0\x03".to_vec();
    bytes.resize(1 << 20, 0);
    std::fs::write(&qcow2, bytes).unwrap();
    let cases: Vec<(serde_json::Value, HResult, &str)> = vec![
        (
            serde_json::json!({ "VirtualMachine": { "Chipset": { "LinuxKernelDirect": { "KernelFilePath": "/no/such/kernel" } } } }),
            HResult::ERROR_FILE_NOT_FOUND,
            "KernelFilePath",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Chipset": { "LinuxKernelDirect": { "KernelFilePath": junk } } } }),
            HResult::ERROR_INVALID_DATA,
            "not a kernel",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Memory": { "SizeInMB": 0 } } } }),
            HResult::HCS_E_INVALID_JSON,
            "SizeInMB",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Memory": { "SizeInMB": 1u64 << 40 } } } }),
            HResult::HCS_E_INVALID_JSON,
            "more than this host has",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "ComputeTopology": { "Processor": { "Count": 0 } } } }),
            HResult::HCS_E_INVALID_JSON,
            "Count",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "VirtualDisk", "Path": "/no/such/disk.img" } } } } } } }),
            HResult::ERROR_FILE_NOT_FOUND,
            "Scsi[\"0\"].Attachments[\"0\"].Path",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "PassThru", "Path": "/dev/sda" } } } } } } }),
            HResult::ERROR_NOT_SUPPORTED,
            "PassThru",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "VirtualDisk", "Path": dynamic_vhd } } } } } } }),
            HResult::ERROR_INVALID_DATA,
            "VHD",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "1": { "Type": "VirtualDisk", "Path": vhdx } } } } } } }),
            HResult::ERROR_INVALID_DATA,
            "Scsi[\"0\"].Attachments[\"1\"].Path: disk image",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "VirtualDisk", "Path": vhdx } } } } } } }),
            HResult::ERROR_INVALID_DATA,
            "VHDX",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "Iso", "Path": qcow2 } } } } } } }),
            HResult::ERROR_INVALID_DATA,
            "qcow2",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": { "0": { "Attachments": {
                "2": { "Type": "VirtualDisk", "Path": dynamic_vhd } } } } } } }),
            HResult::ERROR_INVALID_DATA,
            "Attachments[\"2\"].Path: disk image",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "StopOnReset": false } }),
            HResult::ERROR_NOT_SUPPORTED,
            "StopOnReset",
        ),
        (
            serde_json::json!({ "VirtualMachine": { "Devices": { "Floppy": {} } } }),
            HResult::HCS_E_INVALID_JSON,
            "Floppy",
        ),
    ];
    for (extra, code, needle) in cases {
        let ns = unique_namespace("vmbad");
        let op = Operation::new();
        let e = match System::create_in_namespace(&ns, "bad", &vm_doc(extra.clone()), &op) {
            Err(e) => e,
            Ok(_) => op.wait(WAIT_MS).expect_err("create must fail"),
        };
        assert_eq!(e.hresult, code, "{extra}: {e}");
        assert!(
            e.message.contains(needle),
            "{extra}: {:?} should mention {needle:?}",
            e.message
        );
        let l = leftovers(&ns);
        assert!(l.is_empty(), "{extra}: left behind {l:?}");
    }
}

#[test]
fn an_elf_with_a_pvh_note_boots_through_pvh() {
    let ns = unique_namespace("vmpvh");
    let doc = vm_doc(
        serde_json::json!({ "VirtualMachine": { "Chipset": { "LinuxKernelDirect": {
        "KernelFilePath": hcs_test_guest::TEST_GUEST_PVH_ELF
    } } } }),
    );
    let s = create_started(&ns, "vm", &doc);
    let mut c = Console::attach(&ns, "vm");
    c.expect("HCS-TEST-GUEST READY");
    assert_eq!(c.ask("echo via pvh", "via"), "via pvh");
    c.command("poweroff");
    assert_eq!(exit_status(&s)["ExitType"], "GracefulExit");
}

#[test]
fn a_bzimage_boots_through_its_64_bit_entry_with_boot_params() {
    let ns = unique_namespace("vmbz");
    let doc = vm_doc(
        serde_json::json!({ "VirtualMachine": { "Chipset": { "LinuxKernelDirect": {
        "KernelFilePath": hcs_test_guest::TEST_GUEST_BZIMAGE,
        "KernelCmdLine": "console=ttyS0 from=bzimage"
    } } } }),
    );
    let s = create_started(&ns, "vm", &doc);
    let mut c = Console::attach(&ns, "vm");
    c.expect("HCS-TEST-GUEST READY");
    // The command line arrives through boot_params.hdr.cmd_line_ptr.
    assert_eq!(
        c.ask("cmdline", "CMDLINE"),
        "CMDLINE console=ttyS0 from=bzimage"
    );
    c.command("poweroff");
    assert_eq!(exit_status(&s)["ExitType"], "GracefulExit");
}

#[test]
fn accesses_to_nothing_are_ignored_and_counted() {
    let (_ns, s, mut c, _) = booted("vmstray", serde_json::json!({}));
    // Unclaimed reads see all ones; the writes are dropped.
    assert_eq!(c.ask("stray", "STRAY"), "STRAY io=0xff mem=0xffffffff");
    // The guest goes on as if nothing happened.
    assert_eq!(c.ask("echo still here", "still"), "still here");
    let p = properties(&s, &["Statistics"]).unwrap();
    assert_eq!(
        p["Statistics"]["VirtualMachine"]["UnclaimedAccesses"], 4,
        "{p}"
    );
    c.command("poweroff");
    assert_eq!(exit_status(&s)["ExitType"], "GracefulExit");
}

/// A client of a VM's hybrid vsock socket is let go when the VM stops (end
/// of file), even while its handle keeps the system open: a test blocked
/// reading a vsock stream of a guest that triple-faulted waited out the
/// nested stage's 420 s binary timeout.
#[test]
fn a_stopped_vm_lets_its_vsock_clients_go() {
    use std::io::Read;
    let (ns, s, mut c, _) = booted(
        "vmvsockend",
        serde_json::json!({ "VirtualMachine": { "GuestConnection": { "UseVsock": true } } }),
    );
    // The agent drives the vsock device, so the device accepts clients.
    c.command(hcs_test_guest::commands::AGENT);
    c.expect(hcs_test_guest::commands::AGENT_STARTED_PREFIX);
    let rundir = hcs_rundir::system_dir(&hcs_rundir::root(), &ns, "vm");
    // A client in its handshake (no CONNECT line yet): the device would
    // drop it only after its 5 s handshake limit; a stopped VM's devices
    // let it go at once, before the stop is reported.
    let mut client = std::os::unix::net::UnixStream::connect(rundir.join("vsock.sock")).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    c.command("triplefault");
    let status = exit_status(&s);
    assert_eq!(status["ExitType"], "UnexpectedExit", "{status}");
    let mut buf = [0u8; 64];
    let n = client
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("the vsock client was not let go ({e})"));
    assert_eq!(n, 0, "read {:?}", &buf[..n]);
}

#[test]
fn virtio_devices_are_described_in_acpi_where_linux_looks() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let (ns, s, mut c, ready) = booted(
        "vmvirtio",
        serde_json::json!({ "VirtualMachine": {
            "GuestConnection": { "UseVsock": true },
            "Devices": { "Scsi": { "0": { "Attachments": {
                "0": { "Type": "VirtualDisk", "Path": disk },
                "1": { "Type": "Iso", "Path": disk } } } } }
        } }),
    );
    let ready = hcs_test_guest::Ready::parse(&ready).unwrap();
    assert_eq!(ready.virtio, 3, "vsock and two disks");
    c.command("devices");
    let mut virtio = Vec::new();
    loop {
        let line = c.expect("");
        if line == "END" {
            break;
        }
        if line.starts_with("DEV LNRO0005") {
            virtio.push(line);
        }
    }
    // Linux's virtio_mmio driver binds LNRO0005 devices by their _CRS: one
    // 4 KiB window and one interrupt each.
    assert_eq!(
        virtio,
        [
            "DEV LNRO0005 io=- mem=0xd0000000 irq=16",
            "DEV LNRO0005 io=- mem=0xd0001000 irq=17",
            "DEV LNRO0005 io=- mem=0xd0002000 irq=18",
        ]
    );
    // The hybrid vsock socket is in the runtime directory.
    let rundir = hcs_rundir::system_dir(&hcs_rundir::root(), &ns, "vm");
    assert!(rundir.join("vsock.sock").exists());
    let status = terminate(&s);
    assert_eq!(status["ExitType"], "ForcedExit");
    assert!(leftovers(&ns).is_empty());
}

/// (dev, inode, mode, rdev, bytes): what must not change about a host file.
fn fingerprint(p: &std::path::Path) -> (u64, u64, u32, u64, Vec<u8>) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).expect("the file survives");
    let bytes = if m.file_type().is_file() {
        std::fs::read(p).unwrap()
    } else {
        Vec::new()
    };
    (m.dev(), m.ino(), m.mode(), m.rdev(), bytes)
}

#[test]
fn a_com_port_s_named_pipe_never_removes_what_exists_and_removes_its_own_socket() {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let regular = d.join("regular");
    std::fs::write(&regular, b"precious").unwrap();
    // A /dev/null of our own (1:3), in our temp dir: the host's stays out of it.
    let null = d.join("null");
    mknod(
        &null,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    let fifo = d.join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let link_log = d.join("link.log");
    std::os::unix::fs::symlink(&regular, &link_log).unwrap();
    for path in [&regular, &null, &fifo, &link_log] {
        let before = fingerprint(path);
        let ns = unique_namespace("vmpipe");
        let extra = serde_json::json!({ "VirtualMachine": { "Devices": { "ComPorts": {
            "0": { "NamedPipe": path } } } } });
        let op = Operation::new();
        let e = match System::create_in_namespace(&ns, "vm", &vm_doc(extra), &op) {
            Err(e) => e,
            Ok(_) => op.wait(WAIT_MS).expect_err("create must fail"),
        };
        assert_eq!(
            e.hresult,
            HResult::ERROR_BAD_PATHNAME,
            "{}: {e}",
            path.display()
        );
        assert!(
            e.message.contains("ComPorts[\"0\"].NamedPipe")
                && e.message.contains(&path.display().to_string()),
            "{:?}",
            e.message
        );
        assert_eq!(fingerprint(path), before, "{} was touched", path.display());
        let l = leftovers(&ns);
        assert!(l.is_empty(), "left behind {l:?}");
    }
    assert_eq!(std::fs::read(&regular).unwrap(), b"precious");

    // A free path: the VM makes its socket there, and removes it at the end.
    let sock = d.join("com1.sock");
    let (_ns, s, _c, _) = booted(
        "vmpipe",
        serde_json::json!({ "VirtualMachine": { "Devices": { "ComPorts": {
            "0": { "NamedPipe": sock } } } } }),
    );
    let mut console = std::os::unix::net::UnixStream::connect(&sock).expect("the port's socket");
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut console, &mut first).unwrap();
    terminate(&s);
    eventually("the port's socket is removed", WAIT, || !sock.exists());
}

/// A monitor killed with SIGKILL cannot remove its COM port's socket; the
/// cleanup after it (here: creating the same system again) removes it,
/// because record.json names that very socket (path, device, inode). Before,
/// the socket stayed and the path was refused to every later system.
#[test]
fn a_killed_monitor_s_com_socket_is_removed_by_the_cleanup_after_it() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("com1.sock");
    let extra = serde_json::json!({ "VirtualMachine": { "Devices": { "ComPorts": {
        "0": { "NamedPipe": sock } } } } });
    let ns = unique_namespace("vmkilledpipe");
    let s = create_started(&ns, "vm", &vm_doc(extra.clone()));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hcs_rundir::root().join(&ns).join("vm/record.json")).unwrap(),
    )
    .unwrap();
    assert!(
        record["sockets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["path"] == sock.display().to_string())),
        "{record}"
    );
    let monitor = nix::unistd::Pid::from_raw(record["monitor_pid"].as_i64().unwrap() as i32);
    nix::sys::signal::kill(monitor, nix::sys::signal::SIGKILL).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "UnexpectedExit", "{status}");
    drop(s);
    assert!(sock.exists(), "nothing could remove it yet");

    // The same system again: its stale directory is cleaned up first, the
    // socket with it, and the port binds again.
    let s = create_started(&ns, "vm", &vm_doc(extra));
    let mut c = std::os::unix::net::UnixStream::connect(&sock).expect("the new port's socket");
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut c, &mut first).unwrap();
    terminate(&s);
    eventually("the port's socket is removed", WAIT, || !sock.exists());

    // A socket bound at that path by someone else after the kill is theirs:
    // the cleanup leaves it.
    let s = create_started(
        &ns,
        "vm",
        &vm_doc(serde_json::json!({ "VirtualMachine": {
        "Devices": { "ComPorts": { "0": { "NamedPipe": sock } } } } })),
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hcs_rundir::root().join(&ns).join("vm/record.json")).unwrap(),
    )
    .unwrap();
    let monitor = nix::unistd::Pid::from_raw(record["monitor_pid"].as_i64().unwrap() as i32);
    nix::sys::signal::kill(monitor, nix::sys::signal::SIGKILL).unwrap();
    let _ = s.wait_for_exit(WAIT_MS);
    drop(s);
    std::fs::remove_file(&sock).unwrap();
    let _theirs = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let op = Operation::new();
    let e = match System::create_in_namespace(
        &ns,
        "vm",
        &vm_doc(serde_json::json!({ "VirtualMachine": {
        "Devices": { "ComPorts": { "0": { "NamedPipe": sock } } } } })),
        &op,
    ) {
        Err(e) => e,
        Ok(_) => op.wait(WAIT_MS).expect_err("their socket is in the way"),
    };
    assert_eq!(e.hresult, HResult::ERROR_BAD_PATHNAME, "{e}");
    assert!(sock.exists(), "their socket was removed");
    assert!(leftovers(&ns).is_empty(), "{:?}", leftovers(&ns));
}
