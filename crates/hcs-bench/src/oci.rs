//! `hcs-bench oci`: the OCI runtime command lines side by side.
//!
//! Each iteration runs `<runtime> --root <dir> run --bundle <bundle> <id>`
//! of a busybox bundle whose process is `/bin/true` (stdio: null stdin and
//! stdout, stderr captured for the error message), for runhcs, runc and
//! crun in turn (interleaved, so drift in the machine's load affects them
//! alike), after unmeasured warm-up iterations. The time is the wall time
//! of the whole command: spawn, create, start, wait, delete, exit.
//!
//! The bundle's config.json comes from `runc spec` with
//! `process.args = ["/bin/true"]`, `process.terminal = false` and
//! `root.path` the busybox root filesystem's absolute path. A runtime that
//! refuses that config (runhcs refuses fields it does not implement) gets
//! its own `<runtime> spec` config with the same edits instead, and the
//! table says so. Every runtime has its own `--root` in a temporary
//! directory. A runtime that fails is reported with its error, never
//! dropped silently.
//!
//! crun 1.8 refuses a cgroup "hybrid" host whose cgroup2 hierarchy holds a
//! controller ("cgroups in hybrid mode not supported"). With
//! `--crun-hugetlb-workaround` the bench mounts a v1 hierarchy for hugetlb
//! (the controller this machine leaves on cgroup2) at
//! /sys/fs/cgroup/hugetlb for the run, and unmounts it afterwards, only if
//! it mounted it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{have, ms, run_peer, Sample};

/// Options of `hcs-bench oci`.
pub struct Options<'a> {
    pub iterations: usize,
    pub warmup: usize,
    pub rootfs: &'a Path,
    pub runhcs: Option<PathBuf>,
    pub runc: &'a str,
    pub crun: &'a str,
    pub hugetlb_workaround: bool,
    /// Where the bundles and the runtimes' --root directories go (default:
    /// the system's temporary directory).
    pub tmpdir: Option<PathBuf>,
    /// Idle time before each run (not measured): lets the kernel's
    /// cgroup_threadgroup_rwsem go back to its fast-reader state, so that
    /// every run pays the RCU grace period of its first cgroup.procs write
    /// (back to back, one runtime's write keeps it warm for the next).
    pub pause: Duration,
}

/// The runhcs next to this executable (build/dist/bin, target/release),
/// else the one on PATH.
pub fn default_runhcs() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("runhcs")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("runhcs"))
}

const UNIFIED: &str = "/sys/fs/cgroup/unified";
const HUGETLB_DIR: &str = "/sys/fs/cgroup/hugetlb";

/// The controllers enabled on the cgroup2 hierarchy of a hybrid host
/// (empty on a pure v1 or v2 host, or when nothing is left on v2).
fn hybrid_v2_controllers() -> Vec<String> {
    std::fs::read_to_string(Path::new(UNIFIED).join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Child cgroups of the unified hierarchy (what makes the v1 mount EBUSY).
fn unified_children() -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(UNIFIED)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path().display().to_string());
                stack.push(e.path());
            }
        }
    }
    out
}

/// The opt-in hugetlb workaround: a v1 hierarchy for hugetlb, mounted for
/// the run. Dropping it unmounts it (and removes the directory) only if
/// this bench mounted (created) it.
struct Hugetlb {
    mounted: bool,
    created_dir: bool,
    /// What was done, for the report.
    note: String,
}

impl Hugetlb {
    fn apply() -> Result<Hugetlb, String> {
        let on_v2 = hybrid_v2_controllers();
        if !on_v2.iter().any(|c| c == "hugetlb") {
            return Ok(Hugetlb {
                mounted: false,
                created_dir: false,
                note: format!(
                    "hugetlb workaround not needed: {UNIFIED}/cgroup.controllers is {:?}",
                    on_v2.join(" ")
                ),
            });
        }
        let dir = Path::new(HUGETLB_DIR);
        let created_dir = !dir.exists();
        if created_dir {
            std::fs::create_dir(dir).map_err(|e| format!("mkdir {HUGETLB_DIR}: {e}"))?;
        }
        let r = nix::mount::mount(
            Some("cgroup"),
            dir,
            Some("cgroup"),
            nix::mount::MsFlags::empty(),
            Some("hugetlb"),
        );
        if let Err(errno) = r {
            if created_dir {
                let _ = std::fs::remove_dir(dir);
            }
            if errno == nix::errno::Errno::EBUSY {
                let kids = unified_children();
                return Err(format!(
                    "hugetlb workaround: mount -t cgroup -o hugetlb cgroup {HUGETLB_DIR}: EBUSY: \
                     the controller cannot leave cgroup2 while child cgroups exist in {UNIFIED} \
                     ({} of them{}); remove them (rmdir, deepest first) and retry",
                    kids.len(),
                    if kids.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", kids.join(", "))
                    }
                ));
            }
            return Err(format!(
                "hugetlb workaround: mount -t cgroup -o hugetlb cgroup {HUGETLB_DIR}: {errno}"
            ));
        }
        Ok(Hugetlb {
            mounted: true,
            created_dir,
            note: format!(
                "hugetlb workaround: mounted a v1 hugetlb hierarchy on {HUGETLB_DIR} for the run"
            ),
        })
    }

    /// Undo the mount; the outcome for the report.
    fn undo(&mut self) -> Option<String> {
        if !self.mounted {
            return None;
        }
        self.mounted = false;
        let dir = Path::new(HUGETLB_DIR);
        // Cgroups left in the v1 hierarchy keep it alive after the unmount
        // (and hugetlb off cgroup2): say so.
        let leftovers: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut msg = match nix::mount::umount(dir) {
            Ok(()) => format!("hugetlb workaround undone: unmounted {HUGETLB_DIR}"),
            Err(e) => format!("hugetlb workaround: umount {HUGETLB_DIR} failed: {e}"),
        };
        // The unmounted hierarchy lingers while the cgroups the runtimes
        // removed are still dying, and hugetlb comes back to cgroup2 only
        // when the kernel frees it (seen: within minutes).
        if !hybrid_v2_controllers().iter().any(|c| c == "hugetlb") {
            msg += "; hugetlb is not back on cgroup2 yet (the kernel returns it when the \
                     unmounted hierarchy's dying cgroups are freed)";
        }
        if self.created_dir {
            if let Err(e) = std::fs::remove_dir(dir) {
                msg += &format!("; rmdir {HUGETLB_DIR}: {e}");
            }
        }
        if !leftovers.is_empty() {
            msg += &format!(
                "; cgroups left in the v1 hugetlb hierarchy keep it alive: {}",
                leftovers.join(", ")
            );
        }
        Some(msg)
    }
}

impl Drop for Hugetlb {
    fn drop(&mut self) {
        if let Some(m) = self.undo() {
            eprintln!("hcs-bench: {m}");
        }
    }
}

/// Write a bundle in `dir`: `<bin> spec`, then /bin/true without a
/// terminal, on the root filesystem `rootfs` (absolute).
fn make_bundle(bin: &str, dir: &Path, rootfs: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = Command::new(bin)
        .args(["spec", "--bundle"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{bin} spec: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{bin} spec: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    // runc wants the real path (it refuses a symlink).
    cfg["root"]["path"] = serde_json::json!(rootfs);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&cfg).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// The file system type of `p` (statfs magic), for the report.
fn fs_type(p: &Path) -> String {
    match nix::sys::statfs::statfs(p) {
        Ok(s) => {
            let t = s.filesystem_type();
            if t == nix::sys::statfs::TMPFS_MAGIC {
                "tmpfs".into()
            } else if t == nix::sys::statfs::EXT4_SUPER_MAGIC {
                "ext4".into()
            } else if t == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC {
                "overlayfs".into()
            } else {
                format!("fs magic {:#x}", t.0)
            }
        }
        Err(e) => format!("statfs: {e}"),
    }
}

/// Delete whatever a failed iteration left in `root` (best effort).
fn clean_root(bin: &str, root: &Path) {
    let Ok(out) = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["delete", "-f", id.trim()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The `q` quantile (nearest rank) of sorted times.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

struct Runtime {
    sample: Sample,
    bin: String,
    root: PathBuf,
    bundle: PathBuf,
    /// The config fell back to `<bin> spec` (set on the first iteration).
    fallback: Option<PathBuf>,
    failed: Option<String>,
}

/// Removes `/run/crun` at the end if it was not there before: crun makes
/// its default state directory even when given `--root` (seen with crun
/// 1.8), and the benchmark leaves nothing behind.
struct CrunDefaultRoot(bool);

impl Drop for CrunDefaultRoot {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::fs::remove_dir("/run/crun");
        }
    }
}

pub fn run(o: Options) -> Result<(), String> {
    let _crun_root = CrunDefaultRoot(!std::path::Path::new("/run/crun").exists());
    let rootfs = o
        .rootfs
        .canonicalize()
        .map_err(|e| format!("{}: {e} (run scripts/build-rootfs.sh)", o.rootfs.display()))?;
    if !have(o.runc) {
        return Err(format!(
            "the bundle's config comes from `runc spec`, and {:?} is not installed",
            o.runc
        ));
    }
    let tmp = match &o.tmpdir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let bundle = tmp.path().join("bundle-runc-spec");
    make_bundle(o.runc, &bundle, &rootfs)?;

    let runhcs = o.runhcs.clone().unwrap_or_else(default_runhcs);
    let runhcs = runhcs.to_string_lossy().to_string();
    let mut runtimes: Vec<Runtime> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (name, bin) in [
        ("runhcs", runhcs.as_str()),
        ("runc", o.runc),
        ("crun", o.crun),
    ] {
        let mut rt = Runtime {
            sample: Sample {
                name: name.into(),
                times: Vec::new(),
                note: String::new(),
            },
            bin: bin.to_string(),
            root: tmp.path().join(format!("{name}-root")),
            bundle: bundle.clone(),
            fallback: None,
            failed: None,
        };
        if bin.is_empty() {
            rt.failed = Some("skipped (empty binary name)".into());
        } else if !have(bin) {
            rt.failed = Some(format!(
                "{bin:?} is not installed (`{bin} --version` failed)"
            ));
        } else if name != "runc" {
            // Used only if the runc spec config is refused.
            let own = tmp.path().join(format!("bundle-{name}-spec"));
            if make_bundle(bin, &own, &rootfs).is_ok() {
                rt.fallback = Some(own);
            }
        }
        runtimes.push(rt);
    }

    let mut workaround = None;
    if o.hugetlb_workaround && runtimes[2].failed.is_none() {
        match Hugetlb::apply() {
            Ok(w) => {
                notes.push(w.note.clone());
                workaround = Some(w);
            }
            Err(e) => runtimes[2].failed = Some(e),
        }
    } else if !hybrid_v2_controllers().is_empty() {
        notes.push(format!(
            "cgroup hybrid host with {:?} on cgroup2 ({UNIFIED}); crun 1.8 refuses that: try --crun-hugetlb-workaround",
            hybrid_v2_controllers().join(" ")
        ));
    }

    for i in 0..o.warmup + o.iterations {
        for rt in runtimes.iter_mut() {
            if rt.failed.is_some() {
                continue;
            }
            let id = format!("bench-{}-{}-{i}", rt.sample.name, std::process::id());
            if !o.pause.is_zero() {
                std::thread::sleep(o.pause);
            }
            let t = Instant::now();
            let mut r = run_peer(&rt.bin, &rt.root, &rt.bundle, &id);
            let mut elapsed = t.elapsed();
            if i == 0 && r.is_err() {
                // The first iteration tells whether the runc spec config is
                // accepted; otherwise use the runtime's own spec.
                if let (Err(e), Some(own)) = (&r, rt.fallback.take()) {
                    clean_root(&rt.bin, &rt.root);
                    let t = Instant::now();
                    let again = run_peer(&rt.bin, &rt.root, &own, &format!("{id}-own"));
                    elapsed = t.elapsed();
                    if again.is_ok() {
                        let first = e.lines().next().unwrap_or("").to_string();
                        let short: String = first.chars().take(160).collect();
                        rt.sample.note = format!(
                            "`{} spec` config: the `runc spec` one is refused ({short}{})",
                            rt.sample.name,
                            if short.len() < first.len() { "..." } else { "" }
                        );
                        rt.bundle = own;
                    }
                    r = again;
                }
            }
            match r {
                Ok(()) if i >= o.warmup => rt.sample.times.push(elapsed),
                Ok(()) => {}
                Err(e) => {
                    rt.failed = Some(format!("iteration {i}: {e}"));
                    clean_root(&rt.bin, &rt.root);
                }
            }
        }
    }
    if let Some(mut w) = workaround.take() {
        if let Some(m) = w.undo() {
            notes.push(m);
        }
    }

    println!(
        "OCI runtime `run` of /bin/true (busybox bundle), {} iterations after {} warm-up, runtimes interleaved{}",
        o.iterations,
        o.warmup,
        if o.pause.is_zero() {
            String::new()
        } else {
            format!(", {} ms idle before each run", o.pause.as_millis())
        }
    );
    println!(
        "{:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  note",
        "", "median ms", "p10 ms", "p90 ms", "mean ms", "min ms", "max ms"
    );
    for rt in &runtimes {
        if let Some(e) = &rt.failed {
            println!(
                "{:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  FAILED: {e}",
                rt.sample.name, "-", "-", "-", "-", "-", "-"
            );
            continue;
        }
        let mut t = rt.sample.times.clone();
        t.sort();
        let mean = t.iter().sum::<Duration>() / t.len().max(1) as u32;
        println!(
            "{:<7} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {} {}",
            rt.sample.name,
            ms(rt.sample.median()),
            ms(quantile(&t, 0.1)),
            ms(quantile(&t, 0.9)),
            ms(mean),
            ms(t.first().copied().unwrap_or_default()),
            ms(t.last().copied().unwrap_or_default()),
            rt.bin,
            rt.sample.note
        );
    }
    if runtimes[0].failed.is_none() {
        let ours = ms(runtimes[0].sample.median());
        for rt in runtimes.iter().skip(1).filter(|r| r.failed.is_none()) {
            let theirs = ms(rt.sample.median());
            println!(
                "ratio runhcs/{}: {:.2} (median {:.2} vs {:.2} ms; below 1 means runhcs is faster)",
                rt.sample.name,
                ours / theirs,
                ours,
                theirs
            );
        }
    }
    notes.push(format!(
        "bundles and --root directories in {} ({}); HCS run directory {}",
        tmp.path().display(),
        fs_type(tmp.path()),
        match std::env::var_os("HCS_RUNTIME_ROOT") {
            Some(r) => format!("$HCS_RUNTIME_ROOT = {}", Path::new(&r).display()),
            None => "/run/hcs".to_string(),
        }
    ));
    for n in &notes {
        println!("note: {n}");
    }
    Ok(())
}
