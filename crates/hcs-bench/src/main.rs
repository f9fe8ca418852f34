//! `hcs-bench`: measure HCS against its peers in the same run.
//!
//! `hcs-bench containers` times one container's whole life —
//! create + start + run `/bin/true` to exit + terminate/close — through the
//! `hcs` API, and `runc run` / `crun run` of the same busybox root with
//! `/bin/true`, round-robin (one iteration of each in turn) after a
//! warm-up. It prints medians and the ratios to the peers.

mod linux;
mod oci;
mod snapshots;
mod vms;
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hcs::{Operation, System};

#[derive(Parser)]
#[command(
    name = "hcs-bench",
    about = "Benchmarks of HCS against runc and crun, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// create + start + run /bin/true + close, for HCS, runc and crun.
    Containers {
        /// Measured iterations per runtime.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// Unmeasured iterations first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// The busybox root filesystem (scripts/build-rootfs.sh).
        #[arg(long, default_value = "build/rootfs/busybox")]
        rootfs: PathBuf,
        /// runc binary ("" to skip).
        #[arg(long, default_value = "runc")]
        runc: String,
        /// crun binary ("" to skip).
        #[arg(long, default_value = "crun")]
        crun: String,
    },
    /// `run` of /bin/true in a busybox bundle by the OCI runtimes runhcs,
    /// runc and crun, interleaved: medians, p10/p90 and ratios.
    Oci {
        /// Measured iterations per runtime.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// Unmeasured iterations first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// The busybox root filesystem (scripts/build-rootfs.sh).
        #[arg(long, default_value = "build/rootfs/busybox")]
        rootfs: PathBuf,
        /// runhcs binary (default: next to hcs-bench, else on PATH; "" to skip).
        #[arg(long)]
        runhcs: Option<PathBuf>,
        /// runc binary (also writes the config: `runc spec`).
        #[arg(long, default_value = "runc")]
        runc: String,
        /// crun binary ("" to skip).
        #[arg(long, default_value = "crun")]
        crun: String,
        /// On a cgroup hybrid host with hugetlb on cgroup2 (which crun 1.8
        /// refuses), mount a v1 hugetlb hierarchy on /sys/fs/cgroup/hugetlb
        /// for the run and unmount it afterwards.
        #[arg(long)]
        crun_hugetlb_workaround: bool,
        /// Directory for the bundles and the runtimes' --root directories
        /// (default: the system's temporary directory). Removing files on
        /// a slow disk costs every runtime; /dev/shm takes the disk out.
        #[arg(long)]
        tmpdir: Option<PathBuf>,
        /// Idle milliseconds before each run (not measured), so that each
        /// run starts "cold": the first cgroup.procs write after idle waits
        /// for an RCU grace period, which back-to-back runs share.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// The test guest under HCS, QEMU microvm and (with
    /// $HCS_BENCH_FIRECRACKER) Firecracker: first output, exit, VMM memory,
    /// pause + resume.
    Vms {
        /// Measured iterations per VMM.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        /// Unmeasured iterations first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// QEMU binary ("" to skip).
        #[arg(long, default_value = "qemu-system-x86_64")]
        qemu: String,
    },
    /// The Linux guest image under HCS and QEMU microvm (KVM), one run
    /// each: boot to the agent, KVM exits, VMM RSS, pause + resume, save,
    /// restore; one table of ratios. For the nested stage's L1
    /// (scripts/bench-nested.sh).
    LinuxVms {
        /// The guest kernel.
        #[arg(long, default_value = "build/guest/vmlinuz")]
        kernel: PathBuf,
        /// The guest initramfs (/init is hcs-agent).
        #[arg(long, default_value = "build/guest/initramfs.cpio.gz")]
        initrd: PathBuf,
        /// Guest memory, MiB.
        #[arg(long, default_value_t = 512)]
        mem_mb: u64,
        /// vCPUs.
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// QEMU binary.
        #[arg(long, default_value = "qemu-system-x86_64")]
        qemu: String,
    },
    /// Save and restore of the test guest under HCS and QEMU microvm, per
    /// guest size: save time, file sizes, spawn → restored guest's first
    /// output, RSS after restore.
    Snapshots {
        /// Measured iterations per VMM and size.
        #[arg(long, default_value_t = 5)]
        iterations: usize,
        /// Guest sizes in MiB.
        #[arg(long, value_delimiter = ',', default_value = "256,2048")]
        sizes: Vec<u64>,
        /// QEMU binary ("" to skip).
        #[arg(long, default_value = "qemu-system-x86_64")]
        qemu: String,
    },
}

struct Sample {
    name: String,
    times: Vec<Duration>,
    note: String,
}

impl Sample {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time of each phase of one HCS iteration: create, start, process, terminate.
type Phases = [Duration; 4];

fn one_hcs(id: &str, doc: &str) -> hcs::HcsResult<Phases> {
    let mut phases = [Duration::ZERO; 4];
    let mut t = Instant::now();
    let mut lap = |i: usize| {
        phases[i] = t.elapsed();
        t = Instant::now();
    };
    let op = Operation::new();
    let system = System::create_in_namespace("bench", id, doc, &op)?;
    op.wait(wait::step_ms())?;
    lap(0);
    system.start(&op, None)?;
    op.wait(wait::step_ms())?;
    lap(1);
    let process = system.create_process(r#"{"CommandArgs":["/bin/true"]}"#, &op)?;
    op.wait_process_info(wait::step_ms())?;
    let status = process.wait_for_exit(wait::step_ms())?;
    lap(2);
    if !status.contains("\"ExitCode\":0") {
        return Err(hcs::HcsError::new(
            hcs::HResult::E_FAIL,
            format!("/bin/true failed: {status}"),
        ));
    }
    process.close();
    system.terminate(&op, None)?;
    op.wait(wait::step_ms())?;
    system.close();
    lap(3);
    Ok(phases)
}

fn run_peer(bin: &str, state: &Path, bundle: &Path, id: &str) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("--root")
        .arg(state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{bin} run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn have(bin: &str) -> bool {
    !bin.is_empty()
        && Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Write an OCI bundle running /bin/true on `rootfs` (read-only), from `runc spec`.
fn make_bundle(runc: &str, dir: &Path, rootfs: &Path) -> Result<(), String> {
    let st = Command::new(runc)
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("runc spec failed".into());
    }
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&cfg).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// crun 1.8 refuses a hybrid host whose cgroup2 hierarchy holds a controller
/// (hugetlb here). Mounting hugetlb as a v1 hierarchy for the measurement
/// moves it off v2; the guard undoes it.
struct HugetlbWorkaround(Option<PathBuf>);

impl HugetlbWorkaround {
    fn apply() -> Result<HugetlbWorkaround, String> {
        let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "hugetlb") {
            return Ok(HugetlbWorkaround(None));
        }
        let dir = PathBuf::from("/sys/fs/cgroup/hugetlb");
        let created = !dir.exists();
        if created {
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
        let st = Command::new("mount")
            .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            if created {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err("mounting a v1 hugetlb hierarchy failed (a child cgroup exists in the unified hierarchy?)".into());
        }
        Ok(HugetlbWorkaround(Some(dir)))
    }
}

impl Drop for HugetlbWorkaround {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = Command::new("umount").arg(dir).status();
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// One runtime under measurement.
enum Runner<'a> {
    Hcs {
        doc: String,
    },
    Peer {
        bin: &'a str,
        state: PathBuf,
        bundle: PathBuf,
    },
}

fn containers(
    iterations: usize,
    warmup: usize,
    rootfs: &Path,
    runc: &str,
    crun: &str,
) -> Result<(), String> {
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| format!("{}: {e} (run scripts/build-rootfs.sh)", rootfs.display()))?;
    let doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-bench",
        "Container": { "Storage": { "Layers": [ { "Id": "bench", "Path": rootfs } ] } }
    })
    .to_string();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).map_err(|e| e.to_string())?;
    let bundle_ok = if have(runc) {
        make_bundle(runc, &bundle, &rootfs)
    } else {
        Err(format!("{runc:?} not found"))
    };

    let mut runners: Vec<(Sample, Runner)> = vec![(
        Sample {
            name: "hcs".into(),
            times: Vec::new(),
            note: String::new(),
        },
        Runner::Hcs { doc },
    )];
    let mut skipped = Vec::new();
    // crun 1.8 refuses this hybrid layout; the workaround stays mounted for
    // the whole (interleaved) run and is undone when `_workaround` drops.
    let mut _workaround = None;
    for (name, bin) in [("runc", runc), ("crun", crun)] {
        let mut s = Sample {
            name: name.into(),
            times: Vec::new(),
            note: String::new(),
        };
        if let Err(e) = &bundle_ok {
            s.note = format!("skipped: no bundle ({e})");
            skipped.push(s);
            continue;
        }
        if !have(bin) {
            s.note = format!("skipped: {bin:?} is not installed");
            skipped.push(s);
            continue;
        }
        if name == "crun" {
            match HugetlbWorkaround::apply() {
                Ok(w) => {
                    if w.0.is_some() {
                        s.note = "with the hybrid-cgroup hugetlb workaround".into();
                    }
                    _workaround = Some(w);
                }
                Err(e) => {
                    s.note = format!("skipped: {e}");
                    skipped.push(s);
                    continue;
                }
            }
        }
        let state = tmp.path().join(format!("{name}-state"));
        runners.push((
            s,
            Runner::Peer {
                bin,
                state,
                bundle: bundle.clone(),
            },
        ));
    }

    // Round-robin: one iteration of each runtime in turn, so that drift in
    // the machine's load affects them all alike.
    let mut phases: Vec<Phases> = Vec::new();
    let mut failed: Vec<Option<String>> = vec![None; runners.len()];
    for i in 0..warmup + iterations {
        for (k, (sample, runner)) in runners.iter_mut().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let t = Instant::now();
            let r = match runner {
                Runner::Hcs { doc } => one_hcs(&format!("bench-{}-{i}", std::process::id()), doc)
                    .map(|p| {
                        if i >= warmup {
                            phases.push(p);
                        }
                    })
                    .map_err(|e| format!("hcs iteration {i}: {e}")),
                Runner::Peer { bin, state, bundle } => {
                    run_peer(bin, state, bundle, &format!("bench-{}-{i}", sample.name))
                }
            };
            match r {
                Ok(()) if i >= warmup => sample.times.push(t.elapsed()),
                Ok(()) => {}
                Err(e) => failed[k] = Some(e),
            }
        }
    }
    let mut samples = Vec::new();
    for ((mut s, _), f) in runners.into_iter().zip(failed) {
        if let Some(e) = f {
            if s.name == "hcs" {
                return Err(e);
            }
            s.times.clear();
            s.note = format!("failed: {e}");
        }
        samples.push(s);
    }
    let phase_median = |k: usize| {
        let mut v: Vec<Duration> = phases.iter().map(|p| p[k]).collect();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    samples[0].note = format!(
        "median phases: create {:.2}, start {:.2}, process {:.2}, terminate {:.2} ms",
        ms(phase_median(0)),
        ms(phase_median(1)),
        ms(phase_median(2)),
        ms(phase_median(3))
    );
    samples.extend(skipped);

    println!("container create + start + run /bin/true + close, {iterations} iterations after {warmup} warm-up, runtimes interleaved");
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>10}  note",
        "", "median ms", "mean ms", "min ms", "max ms"
    );
    for s in &samples {
        if s.times.is_empty() {
            println!(
                "{:<6} {:>10} {:>10} {:>10} {:>10}  {}",
                s.name, "-", "-", "-", "-", s.note
            );
            continue;
        }
        let mean = s.times.iter().sum::<Duration>() / s.times.len() as u32;
        let min = s.times.iter().min().copied().unwrap_or_default();
        let max = s.times.iter().max().copied().unwrap_or_default();
        println!(
            "{:<6} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}",
            s.name,
            ms(s.median()),
            ms(mean),
            ms(min),
            ms(max),
            s.note
        );
    }
    let ours = samples[0].median();
    for s in samples.iter().skip(1).filter(|s| !s.times.is_empty()) {
        println!(
            "ratio hcs/{}: {:.2} (below 1 means hcs is faster)",
            s.name,
            ms(ours) / ms(s.median())
        );
    }
    Ok(())
}

fn vm_bench(iterations: usize, warmup: usize, qemu: &str) -> Result<(), String> {
    let pvh = vms::guest_pvh();
    let plain = vms::guest_plain();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fc = std::env::var("HCS_BENCH_FIRECRACKER")
        .ok()
        .filter(|s| !s.is_empty());
    let mut names = vec!["hcs"];
    if !qemu.is_empty() && have(qemu) {
        names.push("qemu");
    }
    if fc.is_some() {
        names.push("firecracker");
    }
    let mut results: Vec<Vec<vms::VmSample>> = vec![Vec::new(); names.len()];
    let mut failed: Vec<Option<String>> = vec![None; names.len()];
    for i in 0..warmup + iterations {
        for (k, name) in names.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let r = match *name {
                "hcs" => vms::hcs_once(&pvh, i),
                "qemu" => vms::qemu_once(qemu, &pvh, tmp.path(), i),
                _ => vms::firecracker_once(fc.as_deref().unwrap_or(""), &plain, tmp.path(), i),
            };
            match r {
                Ok(s) if i >= warmup => results[k].push(s),
                Ok(_) => {}
                Err(e) => failed[k] = Some(e),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!("test guest (PVH build, 256 MiB, 1 vCPU): {iterations} iterations after {warmup} warm-up, VMMs interleaved");
    println!(
        "{:<12} {:>16} {:>12} {:>16} {:>18}",
        "", "first output ms", "exit ms", "VMM RSS MiB", "pause+resume ms"
    );
    let mut meds = Vec::new();
    for (k, name) in names.iter().enumerate() {
        if let Some(e) = &failed[k] {
            println!("{name:<12} failed: {e}");
            meds.push(None);
            continue;
        }
        let s = &results[k];
        let m = [
            median(&mut s.iter().map(|x| ms(x.first_output)).collect()),
            median(&mut s.iter().map(|x| ms(x.exit)).collect()),
            median(&mut s.iter().map(|x| x.rss_bytes as f64 / 1048576.0).collect()),
            median(&mut s.iter().map(|x| ms(x.pause_resume)).collect()),
        ];
        println!(
            "{name:<12} {:>16.2} {:>12.2} {:>16.2} {:>18.3}",
            m[0], m[1], m[2], m[3]
        );
        meds.push(Some(m));
    }
    if fc.is_none() {
        println!("firecracker: skipped (set HCS_BENCH_FIRECRACKER to a firecracker binary)");
    }
    if let Some(Some(ours)) = meds.first() {
        for (k, name) in names.iter().enumerate().skip(1) {
            if let Some(Some(p)) = meds.get(k) {
                println!(
                    "ratio hcs/{name}: first output {:.2}, exit {:.2}, VMM RSS {:.2}, pause+resume {:.2} (below 1 means hcs is better)",
                    ours[0] / p[0], ours[1] / p[1], ours[2] / p[2], ours[3] / p[3]
                );
            }
        }
    }
    Ok(())
}

fn snapshot_bench(iterations: usize, sizes: &[u64], qemu: &str) -> Result<(), String> {
    let elf = vms::guest_pvh();
    let tmp = tempfile::tempdir_in("/var/tmp").map_err(|e| e.to_string())?;
    let with_qemu = !qemu.is_empty() && have(qemu);
    let fc = std::env::var("HCS_BENCH_FIRECRACKER")
        .ok()
        .filter(|s| !s.is_empty());
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    const MIB: f64 = 1048576.0;
    println!("test guest (PVH build, 1 vCPU), save after READY, restore to the guest's first answer; {iterations} iterations, VMMs interleaved; files in {}", tmp.path().display());
    println!(
        "{:<6} {:<6} {:>9} {:>11} {:>13} {:>11} {:>12} {:>13}",
        "MiB",
        "",
        "save ms",
        "disk MiB",
        "apparent MiB",
        "restore ms",
        "VMM RSS MiB",
        "guest RSS MiB"
    );
    for &mb in sizes {
        let mut rows: Vec<(&str, Result<Vec<snapshots::SnapSample>, String>)> =
            vec![("hcs", Ok(Vec::new()))];
        if with_qemu {
            rows.push(("qemu", Ok(Vec::new())));
        }
        if fc.is_some() {
            rows.push(("fc", Ok(Vec::new())));
        }
        for i in 0..iterations {
            for (name, acc) in rows.iter_mut() {
                let Ok(v) = acc else { continue };
                let r = match *name {
                    "hcs" => snapshots::hcs_once(&elf, mb, tmp.path(), i),
                    "qemu" => snapshots::qemu_once(qemu, &elf, mb, tmp.path(), i),
                    _ => snapshots::firecracker_once(
                        fc.as_deref().unwrap_or(""),
                        &vms::guest_plain(),
                        mb,
                        tmp.path(),
                        i,
                    ),
                };
                match r {
                    Ok(s) => v.push(s),
                    Err(e) => *acc = Err(e),
                }
            }
        }
        let mut meds = Vec::new();
        for (name, acc) in &rows {
            match acc {
                Err(e) => {
                    println!("{mb:<6} {name:<6} failed: {e}");
                    meds.push(None);
                }
                Ok(v) => {
                    let m = [
                        median(v.iter().map(|s| ms(s.save)).collect()),
                        median(v.iter().map(|s| s.disk_bytes as f64 / MIB).collect()),
                        median(v.iter().map(|s| s.apparent_bytes as f64 / MIB).collect()),
                        median(v.iter().map(|s| ms(s.restore)).collect()),
                        median(v.iter().map(|s| s.vmm_rss as f64 / MIB).collect()),
                        median(v.iter().map(|s| s.guest_rss as f64 / MIB).collect()),
                    ];
                    println!(
                        "{mb:<6} {name:<6} {:>9.2} {:>11.2} {:>13.1} {:>11.2} {:>12.2} {:>13.2}",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    );
                    meds.push(Some(m));
                }
            }
        }
        if let Some(Some(h)) = meds.first() {
            for (k, (name, _)) in rows.iter().enumerate().skip(1) {
                if let Some(Some(q)) = meds.get(k) {
                    println!(
                        "{mb:<6} ratio hcs/{name}: save {:.2}, disk {:.2}, restore {:.2}, VMM RSS {:.2} (below 1 means hcs is better)",
                        h[0] / q[0], h[1] / q[1], h[3] / q[3], h[4] / q[4]
                    );
                }
            }
        }
    }
    if !with_qemu {
        println!(
            "qemu: skipped ({})",
            if qemu.is_empty() {
                "--qemu \"\"".to_string()
            } else {
                format!("{qemu} not found")
            }
        );
    }
    if fc.is_none() {
        println!("firecracker: skipped (set HCS_BENCH_FIRECRACKER to a firecracker binary; its figures on these machines: 210 ms to save 256 MiB, 35 ms spawn to restored output)");
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("hcs-bench: must run as root (containers need it)");
        std::process::exit(2);
    }
    let r = match cli.command {
        Cmd::Containers {
            iterations,
            warmup,
            rootfs,
            runc,
            crun,
        } => containers(iterations, warmup, &rootfs, &runc, &crun),
        Cmd::Oci {
            iterations,
            warmup,
            rootfs,
            runhcs,
            runc,
            crun,
            crun_hugetlb_workaround,
            tmpdir,
            pause_ms,
        } => oci::run(oci::Options {
            tmpdir,
            pause: Duration::from_millis(pause_ms),
            iterations,
            warmup,
            rootfs: &rootfs,
            runhcs,
            runc: &runc,
            crun: &crun,
            hugetlb_workaround: crun_hugetlb_workaround,
        }),
        Cmd::Vms {
            iterations,
            warmup,
            qemu,
        } => vm_bench(iterations, warmup, &qemu),
        Cmd::Snapshots {
            iterations,
            sizes,
            qemu,
        } => snapshot_bench(iterations, &sizes, &qemu),
        Cmd::LinuxVms {
            kernel,
            initrd,
            mem_mb,
            cpus,
            qemu,
        } => linux::run(
            &linux::Guest {
                kernel,
                initrd,
                mem_mb,
                cpus,
            },
            &qemu,
        ),
    };
    if let Err(e) = r {
        eprintln!("hcs-bench: {e}");
        std::process::exit(1);
    }
}
