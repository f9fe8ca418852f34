//! vCPU and VM state, read from a running test guest while it is paused,
//! survives serialization, is written back exactly (what is set is what is
//! read), and a guest whose state was rewritten carries on.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hcs_vmm::devices::virtio::VirtioConfig;
use hcs_vmm::vcpu_state::{VcpuState, VmState};
use hcs_vmm::{BootSource, SerialBackend, Vm, VmConfig};

struct Console(BufReader<UnixStream>, UnixStream);

impl Console {
    fn connect(path: &std::path::Path) -> Console {
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("console {}: {e}", path.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Console(BufReader::new(s.try_clone().unwrap()), s)
    }

    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            assert!(
                self.0.read_line(&mut line).unwrap() > 0,
                "console closed before {prefix:?}"
            );
            if line.starts_with(prefix) {
                return line.trim_end().to_string();
            }
        }
    }

    fn ask(&mut self, cmd: &str, prefix: &str) -> String {
        self.1.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        self.expect(prefix)
    }
}

fn ticks(c: &mut Console) -> u64 {
    c.ask("ticks", "TICKS")
        .trim_start_matches("TICKS ")
        .parse()
        .unwrap()
}

/// A serde round trip (JSON: any bug in the field mapping shows).
fn through_json(vm: &VmState, vcpus: &[VcpuState]) -> (VmState, Vec<VcpuState>) {
    let text = serde_json::to_string(&(vm, vcpus)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn state_is_saved_and_written_back_exactly_and_the_guest_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("com1.sock");
    let cfg = VmConfig {
        memory_mb: 64,
        vcpus: 2,
        boot: BootSource {
            kernel: hcs_test_guest::test_guest_elf(),
            initrd: None,
            cmdline: "console=ttyS0".into(),
        },
        serial: vec![(0, vec![SerialBackend::Socket(sock.clone())])],
        virtio: VirtioConfig::default(),
        memory: Default::default(),
    };
    let mut vm = Vm::create(&cfg).unwrap();
    vm.start().unwrap();
    let mut c = Console::connect(&sock);
    c.expect("HCS-TEST-GUEST READY");
    // Wait until the guest's timer runs, so its LAPIC state is worth saving.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = ticks(&mut c);
    while before < 3 && Instant::now() < deadline {
        before = ticks(&mut c);
    }
    assert!(before >= 3, "the guest's timer does not run");

    // Saving needs a paused VM.
    let e = vm.save_cpu_state().unwrap_err();
    assert!(e.to_string().contains("not paused"), "{e}");

    vm.pause().unwrap();
    let (vm_state, vcpus) = vm.save_cpu_state().unwrap();
    assert_eq!(vcpus.len(), 2);
    assert!(vcpus[0].msrs.len() > 5, "{:?}", vcpus[0]);
    let (vm_state, vcpus) = through_json(&vm_state, &vcpus);

    // Write a different RIP into vCPU 1, read it back, then the original.
    let mut changed = through_json(&vm_state, &vcpus);
    changed.1[1].regs.rip ^= 0x10;
    vm.restore_cpu_state(&changed.0, changed.1).unwrap();
    let (_, reread) = vm.save_cpu_state().unwrap();
    assert_eq!(
        reread[1].regs.rip,
        vcpus[1].regs.rip ^ 0x10,
        "set_regs took effect"
    );
    vm.restore_cpu_state(&vm_state, vcpus).unwrap();
    let (vm_again, again) = vm.save_cpu_state().unwrap();
    for (a, b) in again.iter().zip(reread.iter()) {
        assert_eq!(a.sregs.cr3, b.sregs.cr3);
        // The LAPIC timer's current count (0x390) is computed when read.
        let lapic = |s: &VcpuState| {
            let mut r = s.lapic.regs;
            r[0x390..0x394].fill(0);
            r
        };
        assert_eq!(lapic(a), lapic(b));
        assert_eq!(a.msrs.len(), b.msrs.len());
    }
    assert_eq!(vm_again.ioapic.chip_id, vm_state.ioapic.chip_id);

    // Device state: the guest set its COM1 to 8N1 with the receive
    // interrupt on; that survives JSON and loads back.
    let devices = vm.save_devices();
    let com1 = &devices.serial[0];
    assert_eq!(
        (com1.0, com1.1.line_control & 0x7f, com1.1.interrupt_enable),
        (0, 3, 1)
    );
    let text = serde_json::to_string(&devices).unwrap();
    let devices_back: hcs_vmm::vm::DevicesState = serde_json::from_str(&text).unwrap();
    assert_eq!(devices_back, devices);
    vm.restore_devices(&devices_back).unwrap();

    // The guest, its state loaded back, goes on: its timer ticks and it answers.
    vm.resume().unwrap();
    assert_eq!(c.ask("echo after restore", "after"), "after restore");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = ticks(&mut c);
    while after <= before + 5 && Instant::now() < deadline {
        after = ticks(&mut c);
    }
    assert!(
        after > before + 5,
        "ticks {before} -> {after}: the timer stopped"
    );
    vm.kill();
    vm.join();
}
