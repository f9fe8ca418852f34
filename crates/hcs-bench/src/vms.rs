//! `hcs-bench vms`: one test guest under each VMM, side by side.
//!
//! The guest is the repo's test guest built with a PVH note (the one ELF
//! every VMM here can boot: QEMU's microvm boots ELFs only through PVH).
//! Per iteration and VMM: spawn → the guest's READY line on the serial port
//! ("first output"), the VMM's memory beside guest RAM, a pause + resume
//! round trip through the VMM's API, then `poweroff` typed on the console
//! and spawn → the VMM process/system gone ("exit").

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcs::{Operation, System};

use crate::wait::{step, step_ms, wait_child, wait_line, Timed};

/// What one iteration measured.
#[derive(Default, Clone, Copy)]
pub struct VmSample {
    pub first_output: Duration,
    pub exit: Duration,
    pub rss_bytes: u64,
    pub pause_resume: Duration,
}

const READY: &str = "HCS-TEST-GUEST READY";
const MEM_MB: u64 = 256;

/// RSS of `pid` outside the guest-RAM mapping (the anonymous mapping of
/// `mem_bytes` or more): the VMM's own memory.
pub(crate) fn vmm_rss(pid: u32, mem_bytes: u64) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut total, mut guest) = (0u64, 0u64);
    let mut size = 0u64;
    for line in smaps.lines() {
        if let Some(v) = line.strip_prefix("Size:") {
            size = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0)
                * 1024;
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let rss = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
            total += rss;
            if size >= mem_bytes {
                guest += rss;
            }
        }
    }
    total - guest
}

/// One HCS iteration.
pub fn hcs_once(elf: &Path, i: usize) -> Result<VmSample, String> {
    let doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-bench",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "Chipset": { "LinuxKernelDirect": { "KernelFilePath": elf, "KernelCmdLine": "console=ttyS0" } },
            "ComputeTopology": { "Memory": { "SizeInMB": MEM_MB }, "Processor": { "Count": 1 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    })
    .to_string();
    let id = format!("vmbench-{}-{i}", std::process::id());
    let e = |e: hcs::HcsError| e.to_string();
    let t0 = Instant::now();
    let op = Operation::new();
    let system = System::create_in_namespace("bench", &id, &doc, &op).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let console =
        UnixStream::connect(hcs::console_socket("bench", &id, 0)).map_err(|e| e.to_string())?;
    console
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    system.start(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let mut reader = Timed::lines(console.try_clone().map_err(|e| e.to_string())?);
    wait_line(&mut reader, READY, step())?;
    let first_output = t0.elapsed();
    let rss_bytes = match crate::snapshots::monitor_pid("bench", &id) {
        0 => 0,
        pid => vmm_rss(pid, MEM_MB << 20),
    };
    let t = Instant::now();
    system.pause(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    system.resume(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let pause_resume = t.elapsed();
    (&console)
        .write_all(b"poweroff\n")
        .map_err(|e| e.to_string())?;
    let status = system.wait_for_exit(step_ms()).map_err(|e| {
        format!(
            "the guest did not stop within {:?} of poweroff: {e}",
            step()
        )
    })?;
    let exit = t0.elapsed();
    if !status.contains("GracefulExit") {
        return Err(format!("the guest did not power off cleanly: {status}"));
    }
    Ok(VmSample {
        first_output,
        exit,
        rss_bytes,
        pause_resume,
    })
}

/// A QMP connection (QEMU's JSON monitor).
pub(crate) struct Qmp(BufReader<UnixStream>, UnixStream);

impl Qmp {
    pub(crate) fn connect(path: &Path) -> Result<Qmp, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(format!("QMP {}: {e}", path.display())),
            }
        };
        // Every answer within step(): a QEMU that stops answering fails the run.
        s.set_read_timeout(Some(step()))
            .map_err(|e| e.to_string())?;
        let mut q = Qmp(BufReader::new(s.try_clone().map_err(|e| e.to_string())?), s);
        q.line()?; // greeting
        q.exec("qmp_capabilities")?;
        Ok(q)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        self.0
            .read_line(&mut l)
            .map_err(|e| format!("reading QMP's answer: {e}"))?;
        Ok(l)
    }

    pub(crate) fn exec(&mut self, cmd: &str) -> Result<(), String> {
        self.call(cmd, None).map(|_| ())
    }

    /// Run `cmd` with `args` (a JSON object); the `return` line.
    pub(crate) fn call(&mut self, cmd: &str, args: Option<&str>) -> Result<String, String> {
        match args {
            Some(a) => writeln!(self.1, "{{\"execute\":\"{cmd}\",\"arguments\":{a}}}"),
            None => writeln!(self.1, "{{\"execute\":\"{cmd}\"}}"),
        }
        .map_err(|e| e.to_string())?;
        loop {
            let l = self.line()?;
            if l.contains("\"return\"") {
                return Ok(l);
            }
            if l.contains("\"error\"") || l.is_empty() {
                return Err(format!("QMP {cmd}: {l}"));
            }
        }
    }
}

/// One QEMU microvm iteration.
pub fn qemu_once(qemu: &str, elf: &Path, dir: &Path, i: usize) -> Result<VmSample, String> {
    let qmp_path = dir.join(format!("qmp-{i}.sock"));
    let t0 = Instant::now();
    let child = Command::new(qemu)
        .args([
            "-M",
            "microvm,acpi=on",
            "-enable-kvm",
            "-cpu",
            "host,-arch-capabilities",
        ])
        .args([
            "-m",
            &MEM_MB.to_string(),
            "-smp",
            "1",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args(["-serial", "stdio", "-append", "console=ttyS0"])
        .arg("-kernel")
        .arg(elf)
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let pause_resume = |_: &mut Child| -> Result<(), String> {
        let mut qmp = Qmp::connect(&qmp_path)?;
        qmp.exec("stop")?;
        qmp.exec("cont")
    };
    // microvm has ACPI (acpi=on): the guest's ACPI power-off ends QEMU.
    drive_child(child, t0, b"poweroff\n", true, pause_resume)
}

/// The measured part of one run of a VMM that is our child with the
/// guest's console on its stdio: READY, RSS, pause + resume (`pause_resume`),
/// `stop` typed on the console (the way this VMM lets its guest end it),
/// exit. Every wait is bounded by [`step()`]; the child is killed and reaped
/// if anything fails. `clean_exit`: whether the VMM's exit status must be
/// success.
fn drive_child(
    mut child: Child,
    t0: Instant,
    stop: &[u8],
    clean_exit: bool,
    pause_resume: impl Fn(&mut Child) -> Result<(), String>,
) -> Result<VmSample, String> {
    let run = (|| -> Result<VmSample, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        wait_line(&mut out, READY, step())?;
        let first_output = t0.elapsed();
        let rss_bytes = vmm_rss(child.id(), MEM_MB << 20);
        let t = Instant::now();
        pause_resume(&mut child)?;
        let pause_resume = t.elapsed();
        child
            .stdin
            .as_mut()
            .ok_or("no stdin")?
            .write_all(stop)
            .map_err(|e| e.to_string())?;
        let st = wait_child(&mut child, step(), "the VMM")?;
        let exit = t0.elapsed();
        if clean_exit && !st.success() {
            return Err(format!("the VMM exited with {st}"));
        }
        Ok(VmSample {
            first_output,
            exit,
            rss_bytes,
            pause_resume,
        })
    })();
    if run.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    run
}

/// One request to Firecracker's API socket; Ok on a 2xx answer.
pub(crate) fn fc_request(api: &Path, method: &str, path: &str, body: &str) -> Result<(), String> {
    let mut s = UnixStream::connect(api).map_err(|e| format!("{}: {e}", api.display()))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut resp = [0u8; 1024];
    let n = s.read(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp[..n]);
    if text.starts_with("HTTP/1.1 2") {
        Ok(())
    } else {
        Err(format!("firecracker {method} {path}: {text}"))
    }
}

/// One Firecracker iteration (binary from $HCS_BENCH_FIRECRACKER). The
/// default ELF (no PVH note) takes Firecracker's Linux boot path.
pub fn firecracker_once(fc: &str, elf: &Path, dir: &Path, i: usize) -> Result<VmSample, String> {
    let api = dir.join(format!("fc-{i}.sock"));
    let cfg = dir.join(format!("fc-{i}.json"));
    let config = serde_json::json!({
        "boot-source": { "kernel_image_path": elf, "boot_args": "console=ttyS0" },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": MEM_MB }
    });
    std::fs::write(&cfg, config.to_string()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let child = Command::new(fc)
        .arg("--api-sock")
        .arg(&api)
        .arg("--config-file")
        .arg(&cfg)
        .args(["--level", "Error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{fc}: {e}"))?;
    let patch =
        |state: &str| fc_request(&api, "PATCH", "/vm", &format!("{{\"state\":\"{state}\"}}"));
    // Firecracker has no ACPI: a guest's ACPI power-off leaves it running
    // (the bench hung there). What ends a Firecracker VM from inside is a
    // reset through the i8042 (its only legacy device besides the serial
    // port), which the test guest's `reset` does (outb 0xfe to port 0x64).
    // Its exit status on that path is not required: no Firecracker binary
    // is available on these machines to confirm it.
    drive_child(child, t0, b"reset\n", false, |_: &mut Child| {
        patch("Paused")?;
        patch("Resumed")
    })
}

/// Where the PVH build of the test guest is.
pub fn guest_pvh() -> PathBuf {
    PathBuf::from(hcs_test_guest::TEST_GUEST_PVH_ELF)
}

/// Where the plain build is.
pub fn guest_plain() -> PathBuf {
    hcs_test_guest::test_guest_elf()
}
