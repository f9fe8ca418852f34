//! `hcs-bench linux-vms`: the Linux guest image (Debian's kernel and the
//! initramfs whose /init is hcs-agent) under HCS and under QEMU's microvm
//! machine with KVM, one run each, and the ratios HCS/QEMU.
//!
//! Made for the nested stage's L1 (scripts/bench-nested.sh), where KVM can
//! run Linux. Measured per VMM:
//! * spawn → the agent's first line about its vsock connection on the
//!   console ("hcs-agent: connect…": connected under HCS; under QEMU, which
//!   has no vsock host here, its first attempt), the boot as far as the
//!   agent;
//! * KVM exits until then, all of them (in-kernel ones too), from KVM's
//!   debugfs (`/sys/kernel/debug/kvm/<pid>-<fd>/exits`) when it is mounted;
//! * the VMM's RSS outside guest RAM, then;
//! * a pause + resume round trip through each VMM's API;
//! * save (paused VM → state files complete) and restore (spawn from the
//!   files → the VM running again).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hcs::{Operation, System};

use crate::snapshots::{end, monitor_pid, poll_until};
use crate::wait::{step, step_ms, wait_line, Timed};

use crate::vms::{vmm_rss, Qmp};

/// The console line both runs wait for.
const MARKER: &str = "hcs-agent: connect";

/// What one boot of one VMM measured.
#[derive(Default, Debug, Clone)]
pub struct LinuxSample {
    /// Spawn → [`MARKER`].
    pub to_agent: Duration,
    /// KVM exits of the VM until then (None: no debugfs).
    pub exits: Option<u64>,
    /// RSS of the VMM outside guest RAM.
    pub vmm_rss: u64,
    /// Pause + resume.
    pub pause_resume: Duration,
    /// Paused → state saved.
    pub save: Duration,
    /// Spawn → restored VM running.
    pub restore: Duration,
}

/// The guest: kernel, initramfs, memory and vCPUs.
pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub mem_mb: u64,
    pub cpus: u32,
}

/// The command line of both runs (the one the tests use).
const CMDLINE: &str = "console=ttyS0 panic=-1 reboot=k quiet pci=off 8250.nr_uarts=1";

/// All KVM exits of the VM of process `pid`, from KVM's debugfs (one
/// directory per VM, `<pid>-<vm fd>`, whose `exits` sums its vCPUs).
fn kvm_exits(pid: u32) -> Option<u64> {
    let prefix = format!("{pid}-");
    let dir = std::fs::read_dir("/sys/kernel/debug/kvm").ok()?;
    let mut total = None;
    for entry in dir.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let n: u64 = std::fs::read_to_string(entry.path().join("exits"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

fn hcs_doc(g: &Guest, restore: Option<&Path>) -> String {
    let mut d = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-bench",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "StopOnReset": true,
            "GuestConnection": { "UseVsock": true },
            "Chipset": { "LinuxKernelDirect": {
                "KernelFilePath": g.kernel, "InitRdPath": g.initrd, "KernelCmdLine": CMDLINE
            } },
            "ComputeTopology": { "Memory": { "SizeInMB": g.mem_mb }, "Processor": { "Count": g.cpus } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    });
    if let Some(p) = restore {
        d["VirtualMachine"]["RestoreState"] = serde_json::json!({ "SaveStateFilePath": p });
    }
    d.to_string()
}

/// One HCS run.
pub fn hcs_once(g: &Guest, dir: &Path) -> Result<LinuxSample, String> {
    let e = |e: hcs::HcsError| e.to_string();
    let ns = "bench";
    let id = format!("linux-{}", std::process::id());
    let op = Operation::new();
    let t0 = Instant::now();
    let s = System::create_in_namespace(ns, &id, &hcs_doc(g, None), &op).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let console =
        UnixStream::connect(hcs::console_socket(ns, &id, 0)).map_err(|e| e.to_string())?;
    s.start(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    wait_line(&mut Timed::lines(console), MARKER, step())?;
    let mut sample = LinuxSample {
        to_agent: t0.elapsed(),
        ..Default::default()
    };
    let pid = monitor_pid(ns, &id);
    sample.exits = kvm_exits(pid);
    sample.vmm_rss = vmm_rss(pid, g.mem_mb << 20);

    let t = Instant::now();
    s.pause(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    s.resume(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    sample.pause_resume = t.elapsed();

    let state = dir.join("hcs.state");
    s.pause(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let opts = serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": state }).to_string();
    let t = Instant::now();
    s.save(&op, Some(&opts)).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    sample.save = t.elapsed();
    s.wait_for_exit(step_ms())
        .map_err(|e| format!("the saved VM did not stop within {:?}: {e}", step()))?;
    drop(s);

    let rid = format!("{id}-r");
    let t = Instant::now();
    let r = System::create_in_namespace(ns, &rid, &hcs_doc(g, Some(&state)), &op).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    r.start(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    sample.restore = t.elapsed();
    r.terminate(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(dir.join("hcs.state.memory"));
    Ok(sample)
}

fn qemu_cmd(qemu: &str, g: &Guest, qmp: &Path) -> Command {
    let mut c = Command::new(qemu);
    c.args(["-M", "microvm,acpi=on", "-enable-kvm", "-cpu", "host"])
        .args(["-m", &g.mem_mb.to_string(), "-smp", &g.cpus.to_string()])
        .args(["-no-reboot", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-append", CMDLINE])
        .arg("-kernel")
        .arg(&g.kernel)
        .arg("-initrd")
        .arg(&g.initrd)
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    c
}

/// One QEMU microvm run.
pub fn qemu_once(qemu: &str, g: &Guest, dir: &Path) -> Result<LinuxSample, String> {
    let qmp_path = dir.join("qmp.sock");
    let file = dir.join("qemu.mig");
    let t0 = Instant::now();
    let mut child = qemu_cmd(qemu, g, &qmp_path)
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let booted = (|| -> Result<LinuxSample, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        wait_line(&mut out, MARKER, step())?;
        let mut sample = LinuxSample {
            to_agent: t0.elapsed(),
            ..Default::default()
        };
        sample.exits = kvm_exits(child.id());
        sample.vmm_rss = vmm_rss(child.id(), g.mem_mb << 20);
        // Keep reading the console so QEMU never blocks on it.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let mut q = Qmp::connect(&qmp_path)?;
        let t = Instant::now();
        q.exec("stop")?;
        q.exec("cont")?;
        sample.pause_resume = t.elapsed();
        q.exec("stop")?;
        let t = Instant::now();
        let uri = format!("{{\"uri\":\"exec:cat > {}\"}}", file.display());
        q.call("migrate", Some(&uri))?;
        poll_until(&mut q, "query-migrate", "\"completed\"", "\"failed\"")?;
        sample.save = t.elapsed();
        Ok(sample)
    })();
    end(child);
    let mut sample = booted?;

    let qmp2 = dir.join("qmp-r.sock");
    let t = Instant::now();
    let child = qemu_cmd(qemu, g, &qmp2)
        .arg("-incoming")
        .arg(format!("exec:cat {}", file.display()))
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let restored = (|| -> Result<Duration, String> {
        let mut q = Qmp::connect(&qmp2)?;
        poll_until(&mut q, "query-status", "\"paused\"", "\"internal-error\"")?;
        q.exec("cont")?;
        poll_until(&mut q, "query-status", "\"running\"", "\"internal-error\"")?;
        Ok(t.elapsed())
    })();
    end(child);
    let _ = std::fs::remove_file(&file);
    sample.restore = restored?;
    Ok(sample)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// Run both and print one table: HCS, QEMU and HCS/QEMU per measure.
pub fn run(g: &Guest, qemu: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let h = hcs_once(g, dir.path()).map_err(|e| format!("hcs: {e}"))?;
    let q = qemu_once(qemu, g, dir.path()).map_err(|e| format!("qemu: {e}"))?;
    let secs = |d: Duration| d.as_secs_f64();
    let exits = |s: &LinuxSample| s.exits.map_or("n/a".to_string(), |n| n.to_string());
    let rows: Vec<(&str, String, String, String)> = vec![
        (
            "spawn -> agent's vsock connect",
            ms(h.to_agent),
            ms(q.to_agent),
            ratio(secs(h.to_agent), secs(q.to_agent)),
        ),
        (
            "KVM exits until then",
            exits(&h),
            exits(&q),
            match (h.exits, q.exits) {
                (Some(a), Some(b)) => ratio(a as f64, b as f64),
                _ => "-".into(),
            },
        ),
        (
            "VMM RSS outside guest RAM",
            format!("{:.1} MiB", h.vmm_rss as f64 / 1048576.0),
            format!("{:.1} MiB", q.vmm_rss as f64 / 1048576.0),
            ratio(h.vmm_rss as f64, q.vmm_rss as f64),
        ),
        (
            "pause + resume",
            ms(h.pause_resume),
            ms(q.pause_resume),
            ratio(secs(h.pause_resume), secs(q.pause_resume)),
        ),
        (
            "save (paused -> files complete)",
            ms(h.save),
            ms(q.save),
            ratio(secs(h.save), secs(q.save)),
        ),
        (
            "restore (spawn -> running)",
            ms(h.restore),
            ms(q.restore),
            ratio(secs(h.restore), secs(q.restore)),
        ),
    ];
    println!(
        "Linux guest ({} MiB, {} vCPUs), one run each: HCS vs QEMU microvm (KVM)",
        g.mem_mb, g.cpus
    );
    println!(
        "{:<34} {:>14} {:>14} {:>10}",
        "measure", "hcs", "qemu", "hcs/qemu"
    );
    for (name, a, b, r) in rows {
        println!("{name:<34} {a:>14} {b:>14} {r:>10}");
    }
    Ok(())
}
