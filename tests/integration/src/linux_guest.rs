//! Helpers of the real-Linux-guest tests (tests/integration/tests/vm_linux*.rs):
//! the guest image's VM document, scripts run in the guest, and checksums.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcs::{HResult, Operation, Process, System};

use crate::{merge, repo, Finished, WAIT_MS};

/// A VM document of the real guest image (Debian's cloud kernel, the
/// agent's initramfs from scripts/build-guest-image.sh; 512 MiB, two vCPUs,
/// COM1 kept by the monitor, the agent over vsock), `extra` merged over it.
/// It ends with its last handle, like [`crate::container_doc`].
///
/// The command line says what ACPI cannot: `pci=off` (the platform has no
/// PCI; Linux would probe ports 0xcf8–0xcff for it) and `8250.nr_uarts=1`
/// (only COM1; Linux would probe the other three legacy COM ports), as
/// hcsshim's LCOW command lines do (`pci=off`, `8250_core.nr_uarts=`).
pub fn linux_vm_doc(extra: serde_json::Value) -> String {
    let initrd = repo().join("build/guest/initramfs.cpio.gz");
    assert!(
        initrd.is_file(),
        "{} is missing: run scripts/build-guest-image.sh",
        initrd.display()
    );
    let mut doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-tests",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "StopOnReset": true,
            "GuestConnection": { "UseVsock": true },
            "Chipset": { "LinuxKernelDirect": {
                "KernelFilePath": crate::guest_kernel(),
                "InitRdPath": initrd,
                "KernelCmdLine": "console=ttyS0 panic=-1 reboot=k quiet pci=off 8250.nr_uarts=1"
            } },
            "ComputeTopology": { "Memory": { "SizeInMB": 512 }, "Processor": { "Count": 2 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    });
    merge(&mut doc, extra);
    doc.to_string()
}

/// Everything the guest wrote on COM1, collected by a thread until the VM
/// is gone: shown when the guest does not come up.
#[derive(Clone, Default)]
pub struct GuestConsole(Arc<Mutex<Vec<u8>>>);

/// What a Linux guest prints when one of its CPUs stopped running or
/// stopped getting timer interrupts (RCU's stall detector, the lockup
/// detector); the nested stage retries a binary whose output has it.
pub const GUEST_STALL_SIGNATURES: [&str; 4] = [
    "detected stalls on CPUs",
    "kthread starved for",
    "timer wakeup didn't happen",
    "soft lockup - CPU",
];

/// The first stall report in `console`, if any.
pub fn guest_stall(console: &str) -> Option<&'static str> {
    GUEST_STALL_SIGNATURES
        .into_iter()
        .find(|s| console.contains(s))
}

impl GuestConsole {
    /// Start collecting the console of system `id` of namespace `ns`.
    ///
    /// A guest whose kernel reports a stalled CPU is terminated at once
    /// (its console shown): under the nested stage's emulation a vCPU can
    /// livelock delivering a fault, and a test waiting on such a guest would
    /// otherwise wait out every timeout it has.
    pub fn collect(ns: &str, id: &str) -> GuestConsole {
        let path = hcs::console_socket(ns, id, 0);
        let mut stream = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("console {}: {e}", path.display()));
        let console = GuestConsole::default();
        let text = console.0.clone();
        let (ns, id) = (ns.to_string(), id.to_string());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut reported = false;
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let Ok(mut t) = text.lock() else { break };
                // Only the new bytes and an overlap as long as a signature
                // are searched: the guest's boot log is long.
                let from = t.len().saturating_sub(32);
                t.extend_from_slice(&buf[..n]);
                if reported || guest_stall(&String::from_utf8_lossy(&t[from..])).is_none() {
                    continue;
                }
                let seen = String::from_utf8_lossy(&t).into_owned();
                drop(t);
                if let Some(stall) = guest_stall(&seen) {
                    reported = true;
                    let start = seen.len().saturating_sub(4096);
                    let tail = seen.get(start..).unwrap_or(&seen);
                    eprintln!("--- the guest reported a stalled CPU ({stall}); terminating it. Its console:\n{tail}\n---");
                    if let Ok(sys) = System::open_in_namespace(&ns, &id, hcs::GENERIC_ALL) {
                        let op = Operation::new();
                        if sys.terminate(&op, None).is_ok() {
                            let _ = op.wait(WAIT_MS);
                        }
                    }
                }
            }
        });
        console
    }

    /// What was collected so far.
    pub fn text(&self) -> String {
        let t = self.0.lock().map(|t| t.clone()).unwrap_or_default();
        String::from_utf8_lossy(&t).into_owned()
    }
}

impl Drop for GuestConsole {
    /// A failing test shows what the guest said (its last 8 KiB).
    fn drop(&mut self) {
        if std::thread::panicking() && Arc::strong_count(&self.0) <= 2 {
            let text = self.text();
            let mut start = text.len().saturating_sub(8192);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            let tail = &text[start..];
            eprintln!(
                "--- the guest's console (last {} bytes)\n{tail}\n---",
                tail.len()
            );
        }
    }
}

/// How long a test waits for the agent of a booting guest: boots under the
/// nested stage's emulation took 9-27 s on an idle machine, and more when
/// the machine is loaded.
pub const AGENT_WAIT: Duration = Duration::from_secs(300);

/// Create and start a VM of `doc` as system "vm" of `ns`, and wait until
/// its agent runs a process (HcsCreateProcess itself waits 30 s for the
/// agent; a slower boot is waited for up to [`AGENT_WAIT`]). On failure the
/// guest's console is in the panic message.
pub fn boot_to_agent(ns: &str, doc: &str) -> (System, GuestConsole) {
    let s = crate::create_started(ns, "vm", doc);
    let console = GuestConsole::collect(ns, "vm");
    let start = Instant::now();
    loop {
        let op = Operation::new();
        let r = s
            .create_process(r#"{"CommandArgs":["/bin/true"]}"#, &op)
            .and_then(|p| op.wait_process_info(WAIT_MS).map(|_| p));
        match r {
            Ok(p) => {
                assert_eq!(crate::exit_of(&p), 0, "/bin/true in the guest");
                eprintln!(
                    "guest agent up {:.1} s after start",
                    start.elapsed().as_secs_f64()
                );
                return (s, console);
            }
            Err(e)
                if e.hresult == HResult::HCS_E_CONNECT_FAILED && start.elapsed() < AGENT_WAIT => {}
            Err(e) => panic!(
                "the guest agent did not run a process ({e}) in {:.0} s; the guest's console:\n{}",
                start.elapsed().as_secs_f64(),
                console.text()
            ),
        }
    }
}

/// Run `script` with the guest's `/bin/sh -c`; it must exit 0. Its stdout.
pub fn sh_ok(s: &System, script: &str) -> String {
    let out = sh(s, script);
    assert_eq!(
        out.exit_code, 0,
        "`{script}` exited {}; stdout: {:?}; stderr: {:?}",
        out.exit_code, out.stdout, out.stderr
    );
    out.stdout
}

/// Run `script` with the guest's `/bin/sh -c`.
pub fn sh(s: &System, script: &str) -> Finished {
    let (p, info) = crate::start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", script],
            "CreateStdOutPipe": true, "CreateStdErrPipe": true
        }),
    );
    let out = info.std_output;
    let err = info.std_error;
    let out = std::thread::spawn(move || crate::read_all(out));
    let err = std::thread::spawn(move || crate::read_all(err));
    let exit_code = exit_within(s, &p, script);
    Finished {
        exit_code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// HcsShutDownComputeSystem, then the system's exit status, waiting at
/// most [`COMMAND_WAIT`] for the guest to power off; it must be a
/// GracefulExit. On a hang the guest's console is shown (GuestConsole).
pub fn shut_down(s: &System) -> serde_json::Value {
    crate::call(|op| s.shutdown(op, None)).expect("HcsShutDownComputeSystem");
    let ms = u32::try_from(COMMAND_WAIT.as_millis()).unwrap_or(u32::MAX);
    let status = s.wait_for_exit(ms).unwrap_or_else(|e| {
        panic!("the VM did not stop within {COMMAND_WAIT:?} of the shutdown: {e}")
    });
    let status: serde_json::Value = serde_json::from_str(&status).expect("an exit status");
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    status
}

/// How long one guest command of these tests may take before the test
/// calls it hung (the slowest take about 20 s under the nested stage).
pub const COMMAND_WAIT: Duration = Duration::from_secs(300);

/// The exit code of `p` (a run of `what`), waiting at most
/// [`COMMAND_WAIT`]; a hang fails with the guest's blocked tasks and
/// in-flight disk requests.
pub fn exit_within(s: &System, p: &Process, what: &str) -> u32 {
    let ms = u32::try_from(COMMAND_WAIT.as_millis()).unwrap_or(u32::MAX);
    match p.wait_for_exit(ms) {
        Ok(status) => {
            let status: serde_json::Value = serde_json::from_str(&status).expect("a ProcessStatus");
            assert_eq!(status["Exited"], true, "{status}");
            status["ExitCode"].as_u64().expect("ExitCode") as u32
        }
        Err(e) => panic!(
            "`{what}` did not end within {COMMAND_WAIT:?} ({e}); in the guest:\n{}",
            hang_report(s)
        ),
    }
}

/// What the guest says about its blocked tasks (sysrq w) and its disks'
/// requests in flight, or why it could not say.
fn hang_report(s: &System) -> String {
    let op = Operation::new();
    let params = serde_json::json!({
        "CommandArgs": ["/bin/sh", "-c",
            "echo w > /proc/sysrq-trigger; dmesg | tail -n 200; grep . /sys/block/vd*/inflight /proc/interrupts"],
        "CreateStdOutPipe": true
    });
    let p = match s.create_process(&params.to_string(), &op) {
        Ok(p) => p,
        Err(e) => return format!("(no report: {e})"),
    };
    let info = match op.wait_process_info(60_000) {
        Ok(i) => i,
        Err(e) => return format!("(no report: {e})"),
    };
    let out = info.std_output;
    let reader = std::thread::spawn(move || crate::read_all(out));
    match p.wait_for_exit(60_000) {
        Ok(_) => reader.join().unwrap_or_default(),
        Err(e) => format!("(the report did not end: {e})"),
    }
}

/// SHA-256 of `data` in hex, from the host's `sha256sum` (busybox's inside
/// the nested stage's L1), the same tool the guest uses.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running sha256sum");
    let mut stdin = child.stdin.take().expect("sha256sum stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("sha256sum stdout")
        .read_to_string(&mut out)
        .expect("reading sha256sum");
    writer.join().unwrap().expect("writing to sha256sum");
    assert!(child.wait().expect("sha256sum").success());
    first_word(&out)
}

/// The first word of `text` (the sum of a `sha256sum` line).
pub fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `n` bytes that differ from position to position and from `seed` to
/// `seed` (xorshift), so that a lost, repeated or reordered block shows.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Retry `f` until it gives `Some` or `timeout` passes (then panics with
/// `what`), sleeping `step` between tries: for waits on a condition that has
/// no event to block on (a port that is not listening yet).
pub fn retry<T>(
    what: &str,
    timeout: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(step);
    }
}

/// Run `script` with the guest's `/bin/sh -c`, `stdin` written to its
/// stdin (then EOF) while its stdout and stderr are read.
pub fn sh_stdin(s: &System, script: &str, stdin: Vec<u8>) -> Finished {
    let (p, info) = crate::start_process(
        s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", script],
            "CreateStdInPipe": true, "CreateStdOutPipe": true, "CreateStdErrPipe": true
        }),
    );
    let mut input = std::fs::File::from(info.std_input.expect("stdin"));
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = info.std_output;
    let err = info.std_error;
    let out = std::thread::spawn(move || crate::read_all(out));
    let err = std::thread::spawn(move || crate::read_all(err));
    writer.join().unwrap().expect("writing the process's stdin");
    crate::close_stdin(&p);
    let exit_code = exit_within(s, &p, script);
    Finished {
        exit_code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Shell functions for guest scripts: `disk SERIAL` prints the /dev node of
/// the virtio-blk disk whose serial (virtio-blk GET_ID, `<controller>:<lun>`
/// of the document's Scsi attachment) is SERIAL.
pub const DISK_FN: &str = r#"disk() { for d in /sys/block/vd*; do if [ "$(cat $d/serial)" = "$1" ]; then echo /dev/${d##*/}; return 0; fi; done; echo "no disk with serial $1" >&2; exit 99; }; "#;

#[cfg(test)]
mod tests {
    #[test]
    fn stall_reports_are_recognised() {
        let rcu = "[  162.177489] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:";
        assert_eq!(super::guest_stall(rcu), Some("detected stalls on CPUs"));
        let lockup = "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [khugepaged:36]";
        assert_eq!(super::guest_stall(lockup), Some("soft lockup - CPU"));
        assert_eq!(
            super::guest_stall("[ 1.0] smp: Brought up 1 node, 2 CPUs"),
            None
        );
    }
}
