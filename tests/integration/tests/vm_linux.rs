//! A real Linux guest under our VMM: Debian's cloud kernel with the guest
//! image's initramfs (scripts/build-guest-image.sh), whose /init is the
//! guest agent. It loads the virtio-mmio and vsock modules, finds the
//! transports in ACPI, connects to the host over vsock, and then processes
//! run in it through HcsCreateProcess. Needs a hypervisor that can run
//! Linux: on kvm_pvm the tests defer to the nested-KVM stage
//! (scripts/nested-stage.sh), which runs them.

use std::io::{BufRead, BufReader, Read, Write};

use hcs::{Operation, Process, System};
use hcs_integration_tests::linux_guest::{
    boot_to_agent, linux_vm_doc, pattern, sh, sh_ok, shut_down,
};
use hcs_integration_tests::*;

#[test]
fn processes_run_in_a_linux_guest_through_its_agent() {
    let doc = linux_vm_doc(serde_json::json!({}));
    if !real_linux_guest_here("vm_linux::processes_run_in_a_linux_guest_through_its_agent") {
        return;
    }
    let ns = unique_namespace("vmlinuxagent");
    let (s, _console) = boot_to_agent(&ns, &doc);
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
    let info = op.wait_process_info(WAIT_MS).unwrap();
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

    pipes_and_exit_codes(&s);
    large_stdin_to_eof(&s);
    console_with_size_and_resize(&s);
    signals_and_terminate(&s);
    many_processes_at_once(&s);

    // HcsShutDownComputeSystem goes through the agent: a clean power-off.
    shut_down(&s);
    assert!(leftovers(&ns).is_empty());
}

/// stdout and stderr are separate pipes; exit codes pass through whole,
/// and a death by signal is 128 + the signal.
fn pipes_and_exit_codes(s: &System) {
    let out = sh(
        s,
        "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3",
    );
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("out1\nout2\n", "err1\nerr2\n", 3)
    );
    for code in [0u32, 1, 2, 42, 128, 254, 255] {
        let out = sh(s, &format!("echo {code}; exit {code}"));
        assert_eq!(out.exit_code, code, "stderr: {}", out.stderr);
        assert_eq!(out.stdout, format!("{code}\n"));
    }
    // The shell kills itself: the agent reports 128 + the signal.
    for (sig, name) in [(9, "KILL"), (15, "TERM"), (11, "SEGV"), (6, "ABRT")] {
        let out = sh(s, &format!("kill -{name} $$; echo survived"));
        assert_eq!(out.exit_code, 128 + sig, "SIG{name}: {:?}", out.stdout);
        assert_eq!(out.stdout, "", "SIG{name}");
    }
    // Environment and working directory reach the process.
    let out = run_params(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "echo $HCS_TEST_VAR; pwd"],
            "Environment": { "HCS_TEST_VAR": "from the host" },
            "WorkingDirectory": "/sys/kernel"
        }),
    );
    assert_eq!(out.stdout, "from the host\n/sys/kernel\n", "{}", out.stderr);
    // User from the guest's /etc/passwd; CommandLine as Windows callers send it.
    let out = run_params(
        s,
        serde_json::json!({ "CommandLine": "sh -c \"echo $(id -u):$(id -g) 'a  b'\"", "User": "nobody" }),
    );
    assert_eq!(out.stdout, "65534:65534 a  b\n", "{}", out.stderr);
    // What cannot start fails the call, with the guest's reason.
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["true"],"User":"nobody-here"}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert_eq!(e.hresult, hcs::HResult::ERROR_NOT_FOUND, "{e}");
    let e = call(|op| {
        s.create_process(r#"{"CommandArgs":["/no/such/binary"]}"#, op)
            .map(|_| ())
    })
    .unwrap_err();
    assert!(e.message.contains("/no/such/binary"), "{e}");
    // 2 MiB on stdout and stderr at once: neither stream waits for the other.
    let out = sh(
        s,
        "(yes out | head -c 2097152) & (yes err | head -c 2097152 >&2) & wait; wait",
    );
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), 2 << 20);
    assert_eq!(out.stderr.len(), 2 << 20);
    assert!(out.stdout.lines().all(|l| l == "out"));
    assert!(out.stderr.lines().all(|l| l == "err"));
    // A process that stops reading its stdin and exits: its exit comes,
    // whatever the caller still writes.
    let (p, info) = start_process(
        s,
        serde_json::json!({ "CommandArgs": ["head", "-c", "5"], "CreateStdInPipe": true, "CreateStdOutPipe": true }),
    );
    let mut stdin = std::fs::File::from(info.std_input.expect("stdin"));
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        // Ends with EPIPE once the guest's side is gone.
        for _ in 0..64 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    assert_eq!(read_all(info.std_output), "xxxxx");
    assert_eq!(exit_of(&p), 0);
    writer.join().unwrap();
    // A program that does not exist: the shell's 127, its message on stderr.
    let out = sh(s, "/no/such/program");
    assert_eq!(out.exit_code, 127);
    assert!(out.stderr.contains("/no/such/program"), "{}", out.stderr);
}

/// 4 MiB through `cat`: stdin written while stdout is read, EOF after
/// CloseHandle, every byte back in order.
fn large_stdin_to_eof(s: &System) {
    let data = pattern(13, 4 << 20);
    let started = std::time::Instant::now();
    let (p, info) = start_process(
        s,
        serde_json::json!({ "CommandArgs": ["/bin/cat"], "CreateStdInPipe": true, "CreateStdOutPipe": true }),
    );
    let mut stdin = std::fs::File::from(info.std_input.expect("stdin"));
    let sent = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&sent));
    let mut back = Vec::new();
    let reader = std::thread::spawn(move || {
        std::fs::File::from(info.std_output.expect("stdout"))
            .read_to_end(&mut back)
            .map(|_| back)
    });
    writer.join().unwrap().expect("writing stdin");
    close_stdin(&p);
    let back = reader.join().unwrap().expect("reading stdout");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "cat gave other bytes back");
    assert_eq!(exit_of(&p), 0);
    eprintln!(
        "stdio: 4 MiB through cat in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// EmulateConsole: one pty for stdin and stdout, its size from ConsoleSize
/// and from HcsModifyProcess ConsoleSize, `tty` a /dev/pts device, stderr
/// on the console too.
fn console_with_size_and_resize(s: &System) {
    let (p, info) = start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "tty; stty size; echo to-stderr >&2; read x; echo got $x; stty size; exit 4"],
            "EmulateConsole": true, "ConsoleSize": [30, 100],
            "CreateStdInPipe": true, "CreateStdOutPipe": true, "CreateStdErrPipe": true
        }),
    );
    assert!(info.std_error.is_none(), "a console has no separate stderr");
    let mut console_in = std::fs::File::from(info.std_input.expect("console input"));
    let mut console = std::fs::File::from(info.std_output.expect("console output"));
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("to-stderr") {
        let n = console.read(&mut buf).expect("reading the console");
        assert!(n > 0, "console closed early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // A terminal turns "\n" into "\r\n".
    let lines: Vec<&str> = seen.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{seen:?}");
    assert_eq!(lines[1], "30 100", "{seen:?}");
    call(|op| {
        p.modify(
            op,
            r#"{"Operation":"ConsoleSize","ConsoleSize":{"Height":40,"Width":120}}"#,
        )
    })
    .expect("resizing the console");
    console_in.write_all(b"go\n").unwrap();
    let mut rest = Vec::new();
    loop {
        match console.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the terminal's last user exited
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("got go\r\n"), "{rest:?}");
    assert!(rest.contains("40 120"), "{rest:?}");
    assert_eq!(exit_of(&p), 4);

    // 20000 lines through a console, every one of them in order.
    let (p, info) = start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["seq", "1", "20000"],
            "EmulateConsole": true, "CreateStdOutPipe": true
        }),
    );
    let mut console = std::fs::File::from(info.std_output.expect("console output"));
    let mut all = Vec::new();
    loop {
        match console.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let want: String = (1..=20000).map(|i| format!("{i}\r\n")).collect();
    assert!(
        all == want.as_bytes(),
        "{} bytes through the console, {} expected",
        all.len(),
        want.len()
    );
    assert_eq!(exit_of(&p), 0);
}

/// Read `reader` line by line until a line equal to `want`.
fn wait_for_line(reader: &mut impl BufRead, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("reading a process's output");
        assert!(n > 0, "the output ended before {want:?}");
        if line.trim_end() == want {
            return;
        }
    }
}

/// HcsSignalProcess and HcsTerminateProcess reach processes in the guest:
/// a plain process dies of the signal, a shell that traps it runs its
/// handler, one that ignores everything dies of HcsTerminateProcess.
fn signals_and_terminate(s: &System) {
    let (a, _) = start_process(
        s,
        serde_json::json!({ "CommandArgs": ["/bin/sleep", "1000"] }),
    );
    call(|op| a.signal(op, Some(r#"{"Signal":15}"#))).expect("signal 15");
    assert_eq!(exit_of(&a), 128 + 15);
    let e = call(|op| a.signal(op, Some(r#"{"Signal":15}"#))).unwrap_err();
    assert_eq!(e.hresult, hcs::HResult::HCS_E_PROCESS_ALREADY_STOPPED);

    let (b, _) = start_process(
        s,
        serde_json::json!({ "CommandArgs": ["/bin/sleep", "1000"] }),
    );
    call(|op| b.signal(op, Some(r#"{"Signal":"CtrlC"}"#))).expect("CtrlC");
    assert_eq!(exit_of(&b), 128 + 2, "CtrlC is SIGINT");

    // The trap is set before "ready"; `wait` returns when a trapped signal
    // arrives, and the handler's output and exit code come back.
    let (c, info) = start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c",
                "trap 'kill $!; echo got-TERM; exit 7' TERM; trap 'echo got-USR1' USR1; \
                 sleep 1000 >/dev/null 2>&1 & echo ready; while :; do wait; done"],
            "CreateStdOutPipe": true
        }),
    );
    let mut out = BufReader::new(std::fs::File::from(info.std_output.expect("stdout")));
    wait_for_line(&mut out, "ready");
    call(|op| c.signal(op, Some(r#"{"Signal":10}"#))).expect("signal 10");
    wait_for_line(&mut out, "got-USR1");
    call(|op| c.signal(op, Some(r#"{"Signal":15}"#))).expect("signal 15");
    wait_for_line(&mut out, "got-TERM");
    assert_eq!(exit_of(&c), 7);

    let (d, info) = start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "trap '' TERM INT HUP; echo ready; sleep 1000 >/dev/null 2>&1 & wait"],
            "CreateStdOutPipe": true
        }),
    );
    let mut out = BufReader::new(std::fs::File::from(info.std_output.expect("stdout")));
    wait_for_line(&mut out, "ready");
    call(|op| d.signal(op, Some(r#"{"Signal":15}"#))).expect("signal 15");
    call(|op| d.terminate(op, None)).expect("terminate");
    assert_eq!(
        exit_of(&d),
        128 + 9,
        "the ignored TERM did nothing; terminate is SIGKILL"
    );
    assert_eq!(
        call(|op| d.terminate(op, None)).unwrap_err().hresult,
        hcs::HResult::HCS_E_PROCESS_ALREADY_STOPPED
    );
}

/// 32 processes at once: all of them in ProcessList while they wait for a
/// go, then each one's stdout, stderr and exit code intact and its own.
fn many_processes_at_once(s: &System) {
    const N: u32 = 32;
    const LINES: u32 = 2000;
    // They poll for the go twice a second: 32 shells forking `sleep 0.05`
    // (640 forks a second) ran into the intermittent triple fault under the
    // nested stage's emulation twice in seven runs.
    let started: Vec<(Process, hcs::ProcessInformation)> = (1..=N)
        .map(|i| {
            start_process(
                s,
                serde_json::json!({
                    "CommandArgs": ["/bin/sh", "-c", format!(
                        ": many-{i}; while [ ! -e /tmp/go ]; do sleep 0.5; done; \
                         seq 1 {LINES} | sed s/^/{i}:/; echo err-{i} >&2; exit {i}")],
                    "CreateStdOutPipe": true, "CreateStdErrPipe": true
                }),
            )
        })
        .collect();
    let props = properties(s, &["ProcessList"]).expect("ProcessList");
    let list = props["ProcessList"].as_array().expect("a process list");
    for (i, (_, info)) in (1..=N).zip(&started) {
        let marker = format!(": many-{i};");
        let entry = list
            .iter()
            .find(|p| p["ImageName"].as_str().is_some_and(|n| n.contains(&marker)))
            .unwrap_or_else(|| panic!("process {i} is not in the ProcessList: {props}"));
        assert_eq!(entry["ProcessId"], info.process_id, "{entry}");
    }
    sh_ok(s, "touch /tmp/go");
    let readers: Vec<_> = started
        .into_iter()
        .map(|(p, info)| {
            let out = std::thread::spawn(move || read_all(info.std_output));
            let err = std::thread::spawn(move || read_all(info.std_error));
            (p, out, err)
        })
        .collect();
    for (i, (p, out, err)) in (1..=N).zip(readers) {
        let want: String = (1..=LINES).map(|l| format!("{i}:{l}\n")).collect();
        let got = out.join().unwrap();
        assert!(
            got == want,
            "process {i}: {} bytes of stdout, {} expected",
            got.len(),
            want.len()
        );
        assert_eq!(err.join().unwrap(), format!("err-{i}\n"));
        assert_eq!(exit_of(&p), i);
    }
    sh_ok(s, "rm /tmp/go");
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
        serde_json::from_str(&s.wait_for_exit(WAIT_MS).unwrap()).unwrap();
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert!(status.to_string().contains("StoppedOnReset"), "{status}");
    assert!(leftovers(&ns).is_empty());
}
