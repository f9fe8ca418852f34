//! `hcs-bench snapshots`: save and restore of the test guest (its PVH
//! build), HCS against QEMU microvm, per guest size.
//!
//! Per iteration and VMM: boot, wait for READY, pause, save (timed until
//! the files are complete), stop the VM; then spawn a new VMM from the
//! files and time spawn → the restored guest's first output (its answer
//! to `ticks` typed on the console), and read the new VMM's RSS.
//! HCS: HcsSaveComputeSystem ToFile, then a system with RestoreState.
//! QEMU: `stop` + `migrate exec:cat > file` (polled until completed), then
//! a new process with `-incoming exec:cat file` + `cont`.

use std::io::{BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcs::{Operation, System};

use crate::vms::{vmm_rss, Qmp};
use crate::wait::{step, step_ms, wait_line, Timed};

const READY: &str = "HCS-TEST-GUEST READY";

/// What one iteration measured.
#[derive(Default, Clone, Copy)]
pub struct SnapSample {
    /// Pause done → files complete.
    pub save: Duration,
    /// Bytes the files take on disk (allocated blocks).
    pub disk_bytes: u64,
    /// Apparent size of the files.
    pub apparent_bytes: u64,
    /// Spawn → first output of the restored guest.
    pub restore: Duration,
    /// The restored VMM's RSS outside guest RAM.
    pub vmm_rss: u64,
    /// The restored VMM's RSS of guest RAM.
    pub guest_rss: u64,
}

fn sizes(paths: &[&Path]) -> (u64, u64) {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .fold((0, 0), |(d, a), m| (d + m.blocks() * 512, a + m.len()))
}

fn total_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn doc(elf: &Path, mem_mb: u64, restore: Option<&Path>) -> String {
    let mut d = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-bench",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "Chipset": { "LinuxKernelDirect": { "KernelFilePath": elf, "KernelCmdLine": "console=ttyS0" } },
            "ComputeTopology": { "Memory": { "SizeInMB": mem_mb }, "Processor": { "Count": 1 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    });
    if let Some(p) = restore {
        d["VirtualMachine"]["RestoreState"] = serde_json::json!({ "SaveStateFilePath": p });
    }
    d.to_string()
}

fn console(ns: &str, id: &str) -> Result<(BufReader<Timed<UnixStream>>, UnixStream), String> {
    let c = UnixStream::connect(hcs::console_socket(ns, id, 0)).map_err(|e| e.to_string())?;
    Ok((Timed::lines(c.try_clone().map_err(|e| e.to_string())?), c))
}

/// The pid of the monitor of `<ns>/<id>` (its record.json), or 0.
pub(crate) fn monitor_pid(ns: &str, id: &str) -> u32 {
    std::fs::read(hcs_rundir::system_dir(&hcs_rundir::root(), ns, id).join("record.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["monitor_pid"].as_u64())
        .unwrap_or(0) as u32
}

/// One HCS iteration.
pub fn hcs_once(elf: &Path, mem_mb: u64, dir: &Path, i: usize) -> Result<SnapSample, String> {
    let e = |e: hcs::HcsError| e.to_string();
    let ns = "bench";
    let id = format!("snap-{}-{i}", std::process::id());
    let state = dir.join(format!("hcs-{i}.state"));
    let memory = dir.join(format!("hcs-{i}.state.memory"));
    let op = Operation::new();
    let s = System::create_in_namespace(ns, &id, &doc(elf, mem_mb, None), &op).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let (mut out, _) = console(ns, &id)?;
    s.start(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    wait_line(&mut out, READY, step())?;
    s.pause(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let opts = serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": state }).to_string();
    let t = Instant::now();
    s.save(&op, Some(&opts)).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let save = t.elapsed();
    // A VM saved to a file stops by itself.
    s.wait_for_exit(step_ms())
        .map_err(|e| format!("the saved VM did not stop within {:?}: {e}", step()))?;
    drop(s);
    let (disk_bytes, apparent_bytes) = sizes(&[&state, &memory]);

    let rid = format!("{id}-r");
    let t0 = Instant::now();
    let r =
        System::create_in_namespace(ns, &rid, &doc(elf, mem_mb, Some(&state)), &op).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let (mut out, mut inp) = console(ns, &rid)?;
    r.start(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    inp.write_all(b"ticks\n").map_err(|e| e.to_string())?;
    wait_line(&mut out, "TICKS", step())?;
    let restore = t0.elapsed();
    let pid = monitor_pid(ns, &rid);
    let vmm = vmm_rss(pid, mem_mb << 20);
    let guest_rss = total_rss(pid).saturating_sub(vmm);
    r.terminate(&op, None).map_err(e)?;
    op.wait(step_ms()).map_err(e)?;
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&memory);
    Ok(SnapSample {
        save,
        disk_bytes,
        apparent_bytes,
        restore,
        vmm_rss: vmm,
        guest_rss,
    })
}

fn qemu_cmd(qemu: &str, elf: &Path, mem_mb: u64, qmp: &Path) -> Command {
    let mut c = Command::new(qemu);
    c.args([
        "-M",
        "microvm,acpi=on",
        "-enable-kvm",
        "-cpu",
        "host,-arch-capabilities",
    ])
    .args(["-m", &mem_mb.to_string(), "-smp", "1", "-no-reboot"])
    .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
    .args(["-append", "console=ttyS0"])
    .arg("-kernel")
    .arg(elf)
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", qmp.display()))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

/// Kill and reap a QEMU we started (by its pid, through its handle).
pub(crate) fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Ask QMP `cmd` until its answer holds `done` (fails on `fail`, or after 120 s).
pub(crate) fn poll_until(q: &mut Qmp, cmd: &str, done: &str, fail: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let l = q.call(cmd, None)?;
        if l.contains(done) {
            return Ok(());
        }
        if l.contains(fail) {
            return Err(format!("QMP {cmd}: {l}"));
        }
        if Instant::now() > deadline {
            return Err(format!("QMP {cmd}: still {l}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// One QEMU microvm iteration.
pub fn qemu_once(
    qemu: &str,
    elf: &Path,
    mem_mb: u64,
    dir: &Path,
    i: usize,
) -> Result<SnapSample, String> {
    let qmp_path = dir.join(format!("qmp-s-{i}.sock"));
    let file = dir.join(format!("qemu-{i}.mig"));
    let mut child = qemu_cmd(qemu, elf, mem_mb, &qmp_path)
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let saved = (|| -> Result<Duration, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        wait_line(&mut out, READY, step())?;
        let mut q = Qmp::connect(&qmp_path)?;
        q.exec("stop")?;
        let t = Instant::now();
        let uri = format!("{{\"uri\":\"exec:cat > {}\"}}", file.display());
        q.call("migrate", Some(&uri))?;
        poll_until(&mut q, "query-migrate", "\"completed\"", "\"failed\"")?;
        Ok(t.elapsed())
    })();
    end(child);
    let save = saved?;
    let (disk_bytes, apparent_bytes) = sizes(&[&file]);

    let qmp2 = dir.join(format!("qmp-r-{i}.sock"));
    let t0 = Instant::now();
    let mut child = qemu_cmd(qemu, elf, mem_mb, &qmp2)
        .arg("-incoming")
        .arg(format!("exec:cat {}", file.display()))
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let restored = (|| -> Result<SnapSample, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        let mut q = Qmp::connect(&qmp2)?;
        poll_until(&mut q, "query-status", "\"paused\"", "\"internal-error\"")?;
        q.exec("cont")?;
        let saved = Saved {
            save,
            disk_bytes,
            apparent_bytes,
        };
        first_answer(&mut child, &mut out, t0, mem_mb, saved)
    })();
    end(child);
    let _ = std::fs::remove_file(&file);
    restored
}

/// What the save of an iteration measured.
struct Saved {
    save: Duration,
    disk_bytes: u64,
    apparent_bytes: u64,
}

/// Type `ticks` on a restored VMM's console (its stdio), wait for the
/// answer, and measure: spawn (`t0`) → answer, and the RSS.
fn first_answer(
    child: &mut Child,
    out: &mut BufReader<Timed<std::process::ChildStdout>>,
    t0: Instant,
    mem_mb: u64,
    saved: Saved,
) -> Result<SnapSample, String> {
    child
        .stdin
        .as_mut()
        .ok_or("no stdin")?
        .write_all(b"ticks\n")
        .map_err(|e| e.to_string())?;
    wait_line(out, "TICKS", step())?;
    let restore = t0.elapsed();
    let vmm = vmm_rss(child.id(), mem_mb << 20);
    Ok(SnapSample {
        save: saved.save,
        disk_bytes: saved.disk_bytes,
        apparent_bytes: saved.apparent_bytes,
        restore,
        vmm_rss: vmm,
        guest_rss: total_rss(child.id()).saturating_sub(vmm),
    })
}

fn firecracker_cmd(fc: &str, api: &Path) -> Command {
    let _ = std::fs::remove_file(api);
    let mut c = Command::new(fc);
    c.arg("--api-sock")
        .arg(api)
        .args(["--level", "Error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

fn wait_socket(p: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(p).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} never listened", p.display()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// One Firecracker iteration (binary from $HCS_BENCH_FIRECRACKER): `PATCH
/// /vm Paused` + `PUT /snapshot/create` (Full), then a new process and `PUT
/// /snapshot/load` with `resume_vm`. No Firecracker binary could be
/// obtained where this was written, so this path has not run here.
pub fn firecracker_once(
    fc: &str,
    elf: &Path,
    mem_mb: u64,
    dir: &Path,
    i: usize,
) -> Result<SnapSample, String> {
    let api = dir.join(format!("fc-s-{i}.sock"));
    let cfg = dir.join(format!("fc-s-{i}.json"));
    let vmstate = dir.join(format!("fc-{i}.vmstate"));
    let mem = dir.join(format!("fc-{i}.mem"));
    let config = serde_json::json!({
        "boot-source": { "kernel_image_path": elf, "boot_args": "console=ttyS0" },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": mem_mb }
    });
    std::fs::write(&cfg, config.to_string()).map_err(|e| e.to_string())?;
    let mut child = firecracker_cmd(fc, &api)
        .arg("--config-file")
        .arg(&cfg)
        .spawn()
        .map_err(|e| format!("{fc}: {e}"))?;
    let saved = (|| -> Result<Duration, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        wait_line(&mut out, READY, step())?;
        crate::vms::fc_request(&api, "PATCH", "/vm", r#"{"state":"Paused"}"#)?;
        let t = Instant::now();
        let body = serde_json::json!({
            "snapshot_type": "Full", "snapshot_path": vmstate, "mem_file_path": mem
        });
        crate::vms::fc_request(&api, "PUT", "/snapshot/create", &body.to_string())?;
        Ok(t.elapsed())
    })();
    end(child);
    let save = saved?;
    let (disk_bytes, apparent_bytes) = sizes(&[&vmstate, &mem]);

    let api2 = dir.join(format!("fc-r-{i}.sock"));
    let t0 = Instant::now();
    let mut child = firecracker_cmd(fc, &api2)
        .spawn()
        .map_err(|e| format!("{fc}: {e}"))?;
    let restored = (|| -> Result<SnapSample, String> {
        let mut out = Timed::lines(child.stdout.take().ok_or("no stdout")?);
        wait_socket(&api2)?;
        let body = serde_json::json!({
            "snapshot_path": vmstate,
            "mem_backend": { "backend_type": "File", "backend_path": mem },
            "resume_vm": true
        });
        crate::vms::fc_request(&api2, "PUT", "/snapshot/load", &body.to_string())?;
        let saved = Saved {
            save,
            disk_bytes,
            apparent_bytes,
        };
        first_answer(&mut child, &mut out, t0, mem_mb, saved)
    })();
    end(child);
    for f in [&vmstate, &mem, &cfg] {
        let _ = std::fs::remove_file(f);
    }
    restored
}
