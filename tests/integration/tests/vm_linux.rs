//! A real Linux guest under our VMM: Debian's cloud kernel with the guest
//! image's initramfs (scripts/build-guest-image.sh), whose /init is the
//! guest agent. It loads the virtio-mmio and vsock modules, finds the
//! transports in ACPI, connects to the host over vsock, and then processes
//! run in it through HcsCreateProcess. Needs a hypervisor that can run
//! Linux: on kvm_pvm the test says why it skips.

use std::io::{Read, Write};

use hcs::{Operation, INFINITE};
use hcs_integration_tests::*;

fn linux_vm_doc() -> String {
    linux_guest_vm_doc(serde_json::json!({}))
}

#[test]
fn processes_run_in_a_linux_guest_through_its_agent() {
    let doc = linux_vm_doc();
    if !real_linux_guest_here("vm_linux::processes_run_in_a_linux_guest_through_its_agent") {
        return;
    }
    let ns = unique_namespace("vmlinuxagent");
    let s = create_started(&ns, "vm", &doc);
    // HcsCreateProcess waits for the agent to connect while the guest boots.
    let out = run(
        &s,
        &[
            "/bin/sh",
            "-c",
            "uname -s; cat /proc/cpuinfo | grep -c ^processor; exit 5",
        ],
    );
    assert_eq!(out.stdout, "Linux\n2\n", "stderr: {}", out.stderr);
    assert_eq!(out.exit_code, 5);

    // stdin through the agent: EOF once the caller and HCS's copy are closed.
    let op = Operation::new();
    let p = s
        .create_process(
            r#"{"CommandArgs":["/bin/cat"],"CreateStdInPipe":true,"CreateStdOutPipe":true}"#,
            &op,
        )
        .unwrap();
    let info = op.wait_process_info(INFINITE).unwrap();
    let mut stdin = std::fs::File::from(info.std_input.unwrap());
    stdin.write_all(b"through vsock\n").unwrap();
    drop(stdin);
    close_stdin(&p);
    let mut echoed = String::new();
    std::fs::File::from(info.std_output.unwrap())
        .read_to_string(&mut echoed)
        .unwrap();
    assert_eq!(echoed, "through vsock\n");
    assert_eq!(exit_of(&p), 0);

    let props = properties(&s, &["ProcessList"]).unwrap();
    let list = props["ProcessList"].as_array().expect("a process list");
    assert!(
        list.iter().any(|p| p["ImageName"]
            .as_str()
            .is_some_and(|n| n.contains("hcs-agent") || n.contains("/init"))),
        "{props}"
    );

    // HcsShutDownComputeSystem goes through the agent: a clean power-off.
    call(|op| s.shutdown(op, None)).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(INFINITE).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert!(leftovers(&ns).is_empty());
}

/// Debian's cloud kernel with no initramfs boots to the point where it looks
/// for a root file system: it finds every vCPU in the MADT, its console on
/// the 16550, and panics with no root; `panic=-1` makes it reboot at once,
/// which stops the VM (StopOnReset).
#[test]
fn debian_s_kernel_boots_to_its_root_mount() {
    let kernel = guest_kernel();
    if !real_linux_guest_here("vm_linux::debian_s_kernel_boots_to_its_root_mount") {
        return;
    }
    let ns = unique_namespace("vmlinux");
    let doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-tests",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "StopOnReset": true,
            "Chipset": { "LinuxKernelDirect": {
                "KernelFilePath": kernel,
                "KernelCmdLine": "console=ttyS0 panic=-1 reboot=k"
            } },
            "ComputeTopology": { "Memory": { "SizeInMB": 512 }, "Processor": { "Count": 2 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    })
    .to_string();
    let s = create_started(&ns, "vm", &doc);
    let mut c = Console::attach(&ns, "vm");
    c.expect_containing("Linux version");
    // "smp: Brought up 1 node, 2 CPUs": both MADT entries came online.
    let smp = c.expect_containing("smp: Brought up");
    assert!(smp.contains("2 CPUs"), "{smp}");
    c.expect_containing("VFS: Unable to mount root fs");
    let status: serde_json::Value =
        serde_json::from_str(&s.wait_for_exit(INFINITE).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert!(status.to_string().contains("StoppedOnReset"), "{status}");
    assert!(leftovers(&ns).is_empty());
}
