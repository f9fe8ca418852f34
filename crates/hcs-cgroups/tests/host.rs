//! Integration tests against the real cgroup hierarchies of the machine.
//!
//! They need root and `/sys/fs/cgroup`; without them each test records
//! `SKIPPED <test>: <reason>` (see `hcs_test_support::skip`) and returns. Every test works under its own
//! top directory `hcs-test-<pid>-<test>` and a guard removes it (killing
//! whatever is inside) even when an assertion fails.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcs_cgroups::{
    join_procs_files, Cgroup, CgroupError, CgroupVersion, CpuQuota, Hierarchies, Layout, Resources,
};

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if !Path::new("/sys/fs/cgroup").is_dir() {
        return Some("/sys/fs/cgroup is missing".into());
    }
    if let Err(e) = Hierarchies::detect() {
        return Some(format!("no usable cgroup hierarchy: {e}"));
    }
    None
}

macro_rules! require_root {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            hcs_test_support::skip(concat!("host::", $name), &reason);
            return;
        }
    };
}

/// The per-test top directory in every hierarchy; dropping it kills and
/// removes everything under it.
struct Scratch {
    top: String,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let s = Scratch {
            top: format!("hcs-test-{}-{test}", std::process::id()),
        };
        s.cleanup(); // leftovers of an earlier run with the same pid
        s
    }

    /// `<top>/<rest>`.
    fn rel(&self, rest: &str) -> PathBuf {
        Path::new(&self.top).join(rest)
    }

    /// Where `<top>` would be in each hierarchy on this host.
    fn top_dirs(&self) -> Vec<PathBuf> {
        let Ok(h) = Hierarchies::detect() else {
            return Vec::new();
        };
        h.hierarchies()
            .iter()
            .map(|x| match x.version() {
                CgroupVersion::V1 => x.process_dir().join(&self.top),
                CgroupVersion::V2 => x.mount_point().join(&self.top),
            })
            .collect()
    }

    fn cleanup(&self) {
        let existing: Vec<PathBuf> = self.top_dirs().into_iter().filter(|p| p.exists()).collect();
        if !existing.is_empty() {
            if let Err(e) = Cgroup::from_paths(existing).destroy() {
                eprintln!("cleanup of {}: {e}", self.top);
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A child process that is killed and reaped when dropped.
struct Reap(Child);

impl Reap {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits (bounded) for the child to exit and returns the signal that killed it.
    fn wait_signal(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.0.try_wait().expect("try_wait") {
                Some(status) => return status.signal(),
                None if Instant::now() > deadline => panic!("child {} did not exit", self.pid()),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        // Bounded: a child stuck in a frozen cgroup must not hang the test run.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.0.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

fn spawn(cmd: &mut Command) -> Reap {
    Reap(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn"),
    )
}

fn busy_loop() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "while :; do :; done"]);
    c
}

fn sleeper() -> Command {
    let mut c = Command::new("sleep");
    c.arg("1000");
    c
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `D`, `Z`, ...); `None` when the process is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.chars().next()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(file).display()))
        .trim()
        .to_owned()
}

/// The directory of `cg` in the hierarchy mounted at `mount`.
fn dir_under<'a>(paths: &'a [PathBuf], mount: &Path) -> Option<&'a PathBuf> {
    paths.iter().find(|p| p.starts_with(mount))
}

/// Makes `cmd` join `cg` through `open_procs_files` before exec; the
/// returned descriptors must stay open until the command is spawned.
fn join_before_exec(cg: &Cgroup, cmd: &mut Command) -> Vec<std::os::fd::OwnedFd> {
    let fds = cg.open_procs_files().expect("open_procs_files");
    // SAFETY: the caller keeps the OwnedFds in `fds` open until the spawn
    // returns, which is the only time the borrowed copies are used (in the
    // child).
    let borrowed: Vec<BorrowedFd<'static>> = fds
        .iter()
        .map(|f| unsafe { BorrowedFd::borrow_raw(f.as_raw_fd()) })
        .collect();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // join_procs_files, which performs write(2) calls and allocates nothing.
    unsafe {
        cmd.pre_exec(move || join_procs_files(&borrowed).map_err(std::io::Error::from));
    }
    fds
}

/// Spawns `cmd` so that it joins `cg` before exec.
fn spawn_inside(cg: &Cgroup, cmd: &mut Command) -> Reap {
    let fds = join_before_exec(cg, cmd);
    let child = spawn(cmd);
    drop(fds);
    child
}

#[test]
fn lifecycle_limits_freeze_stats_kill() {
    require_root!("lifecycle_limits_freeze_stats_kill");
    let h = Hierarchies::detect().unwrap();
    let scratch = Scratch::new("lifecycle");
    let rel = scratch.rel("ns/id");
    let cg = Cgroup::create(&rel).unwrap();
    let paths = cg.paths();
    assert!(!paths.is_empty());
    for p in &paths {
        assert!(p.is_dir(), "{} missing", p.display());
        assert!(p.ends_with(&rel));
    }

    // Placement: under our own cgroup on v1; nothing in the unified hierarchy
    // of a hybrid host unless one of our controllers lives only there.
    for x in h
        .hierarchies()
        .iter()
        .filter(|x| x.version() == CgroupVersion::V1)
    {
        let d = dir_under(&paths, x.mount_point()).expect("a dir in every v1 hierarchy we keep");
        assert_eq!(d, &x.process_dir().join(&rel));
    }
    if let (Layout::Hybrid, Some(v2)) = (h.layout(), h.v2()) {
        let ours = ["cpu", "cpuset", "memory", "pids", "io"];
        let only_there = v2
            .controllers()
            .unwrap()
            .iter()
            .any(|c| ours.contains(&c.as_str()) && h.v1(c).is_none());
        if !only_there && h.v1("freezer").is_some() {
            assert!(
                dir_under(&paths, v2.mount_point()).is_none(),
                "created in the unified hierarchy: {paths:?}"
            );
        }
    }
    if let Some(m) = h.v1("memory") {
        assert!(dir_under(&paths, m.mount_point())
            .unwrap()
            .starts_with(m.process_dir()));
    }

    // Limits, read back from the kernel.
    let r = Resources {
        memory_limit_bytes: Some(64 << 20),
        cpu_weight: Some(100),
        cpu_quota: Some(CpuQuota {
            quota_us: 50_000,
            period_us: 100_000,
        }),
        cpuset_cpus: Some("0".into()),
        pids_max: Some(64),
        devices: None,
        memory_swap_bytes: Some(96 << 20),
        memory_reservation_bytes: Some(32 << 20),
        disable_oom_killer: None,
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    match h.layout() {
        Layout::Unified => {
            let d = dir_under(&paths, h.v2().unwrap().mount_point()).unwrap();
            assert_eq!(read(d, "memory.max"), "67108864");
            assert_eq!(read(d, "memory.swap.max"), "33554432", "swap alone");
            assert_eq!(read(d, "memory.low"), "33554432");
            assert_eq!(read(d, "cpu.weight"), "100");
            assert_eq!(read(d, "cpu.max"), "50000 100000");
            assert_eq!(read(d, "pids.max"), "64");
            assert_eq!(read(d, "cpuset.cpus"), "0");
        }
        Layout::Hybrid | Layout::Legacy => {
            let d = |c| dir_under(&paths, h.v1(c).unwrap().mount_point()).unwrap();
            assert_eq!(read(d("memory"), "memory.limit_in_bytes"), "67108864");
            assert_eq!(
                read(d("memory"), "memory.memsw.limit_in_bytes"),
                "100663296"
            );
            assert_eq!(read(d("cpu"), "cpu.shares"), "1024");
            assert_eq!(read(d("cpu"), "cpu.cfs_period_us"), "100000");
            assert_eq!(read(d("cpu"), "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(d("pids"), "pids.max"), "64");
            assert_eq!(read(d("cpuset"), "cpuset.cpus"), "0");
            assert!(
                !read(d("cpuset"), "cpuset.mems").is_empty(),
                "cpuset.mems was not copied from the parent"
            );
        }
    }
    // The rarer limits: swappiness (v1 only), memory nodes, burst, idle
    // (v2 only) and raw v2 files, each written or refused by name.
    let v2_in_use = paths
        .iter()
        .any(|p| h.v2().is_some_and(|v2| p.starts_with(v2.mount_point())));
    let mems = fs::read_to_string("/sys/devices/system/node/online")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into());
    let more = Resources {
        cpuset_mems: Some(mems.clone()),
        cpu_burst_us: Some(1000),
        ..Default::default()
    };
    cg.apply(&more).unwrap();
    let swappiness = cg.apply(&Resources {
        memory_swappiness: Some(30),
        ..Default::default()
    });
    let idle = cg.apply(&Resources {
        cpu_idle: Some(true),
        ..Default::default()
    });
    let unified = cg.apply(&Resources {
        unified: vec![("pids.max".into(), "32".into())],
        ..Default::default()
    });
    match h.layout() {
        Layout::Unified => {
            let d = dir_under(&paths, h.v2().unwrap().mount_point()).unwrap();
            assert_eq!(read(d, "cpuset.mems"), mems);
            assert_eq!(read(d, "cpu.max.burst"), "1000");
            assert!(
                matches!(swappiness, Err(CgroupError::ControllerUnavailable { .. })),
                "{swappiness:?}"
            );
            idle.unwrap();
            assert_eq!(read(d, "cpu.idle"), "1");
            unified.unwrap();
            assert_eq!(read(d, "pids.max"), "32");
        }
        Layout::Hybrid | Layout::Legacy => {
            let d = |c| dir_under(&paths, h.v1(c).unwrap().mount_point()).unwrap();
            assert_eq!(read(d("cpuset"), "cpuset.mems"), mems);
            assert_eq!(read(d("cpu"), "cpu.cfs_burst_us"), "1000");
            swappiness.unwrap();
            assert_eq!(read(d("memory"), "memory.swappiness"), "30");
            assert!(
                matches!(idle, Err(CgroupError::ControllerUnavailable { .. })),
                "{idle:?}"
            );
            if !v2_in_use {
                assert!(
                    matches!(unified, Err(CgroupError::ControllerUnavailable { .. })),
                    "{unified:?}"
                );
            }
        }
    }
    let control = cg.apply(&Resources {
        unified: vec![("cgroup.procs".into(), "1".into())],
        ..Default::default()
    });
    assert!(
        control.is_err(),
        "a unified write to cgroup.procs was accepted"
    );
    let bad = cg.apply(&Resources {
        cpuset_cpus: Some("not-a-cpu-list".into()),
        ..Default::default()
    });
    match bad {
        Err(e @ CgroupError::Write { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("cpuset.cpus") && msg.contains("not-a-cpu-list"),
                "{msg}"
            );
        }
        other => panic!("expected a write error, got {other:?}"),
    }

    // One process joins through the pre-opened cgroup.procs files before exec,
    // one is added by pid.
    let mut busy = spawn_inside(&cg, &mut busy_loop());
    let mut sleep = spawn(&mut sleeper());
    cg.add_pid(sleep.pid()).unwrap();
    let pids = cg.pids().unwrap();
    assert!(
        pids.contains(&busy.pid()) && pids.contains(&sleep.pid()),
        "{pids:?}"
    );
    let own = fs::read_to_string(format!("/proc/{}/cgroup", busy.pid())).unwrap();
    let joined = own
        .lines()
        .filter(|l| Path::new(l.splitn(3, ':').nth(2).unwrap_or("")).ends_with(&rel))
        .count();
    assert_eq!(
        joined,
        paths.len(),
        "the pre-exec join did not reach every hierarchy:\n{own}"
    );

    // Freeze: the busy loop, always runnable before, must stop running.
    assert_eq!(proc_state(busy.pid()), Some('R'));
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let state = proc_state(busy.pid()).unwrap();
    assert!(
        state == 'D' || state == 'S',
        "busy loop in state {state} while frozen"
    );
    let ticks = |pid: i32| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = ticks(busy.pid());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ticks(busy.pid()), before, "a frozen process used CPU time");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    wait_for("the busy loop to run again", || {
        proc_state(busy.pid()) == Some('R')
    });

    // Usage.
    let mut stats = cg.stats().unwrap();
    wait_for("memory and cpu usage", || {
        stats = cg.stats().unwrap();
        stats.memory_usage_bytes.unwrap_or(0) > 0 && stats.cpu_usage_ns.unwrap_or(0) > 0
    });
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));
    assert!(
        stats.memory_peak_bytes.unwrap_or(0) >= stats.memory_usage_bytes.unwrap_or(0)
            || stats.memory_peak_bytes.is_none()
    );
    assert_eq!(stats.pids_current, Some(2), "{stats:?}");
    assert!(
        stats.cpu_user_ns.is_some() && stats.cpu_system_ns.is_some(),
        "{stats:?}"
    );
    eprintln!("stats: {stats:?}");

    // Destroy kills both and removes every directory up to the base.
    cg.destroy().unwrap();
    assert_eq!(busy.wait_signal(), Some(libc::SIGKILL));
    assert_eq!(sleep.wait_signal(), Some(libc::SIGKILL));
    for p in &paths {
        assert!(!p.exists(), "{} left behind", p.display());
        let ns = p.parent().unwrap();
        let top = ns.parent().unwrap();
        assert!(
            !ns.exists() && !top.exists(),
            "empty parents of {} left behind",
            p.display()
        );
        assert!(
            top.parent().unwrap().is_dir(),
            "the base itself was removed"
        );
    }
    cg.destroy().expect("destroy is idempotent");
}

#[test]
fn already_exists_and_rollback() {
    require_root!("already_exists_and_rollback");
    let scratch = Scratch::new("exists");
    let rel = scratch.rel("ns/id");
    let cg = Cgroup::create(&rel).unwrap();
    let paths = cg.paths();

    let err = Cgroup::create(&rel).unwrap_err();
    assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err:?}");
    let hcs: hcs_errors::HcsError = err.into();
    assert_eq!(
        hcs.hresult,
        hcs_errors::HResult::HCS_E_SYSTEM_ALREADY_EXISTS
    );
    for p in &paths {
        assert!(
            p.is_dir(),
            "the failed second create removed {}",
            p.display()
        );
    }

    if paths.len() >= 2 {
        // The leaf exists in every hierarchy but the first: the second create
        // makes the first one, then fails and must take only that one away.
        fs::remove_dir(&paths[0]).unwrap();
        let err = Cgroup::create(&rel).unwrap_err();
        assert!(
            matches!(&err, CgroupError::AlreadyExists { path } if path == &paths[1]),
            "{err:?}"
        );
        assert!(!paths[0].exists(), "rollback left {}", paths[0].display());
        for p in &paths[1..] {
            assert!(p.is_dir());
        }
    }

    cg.destroy().unwrap();
    cg.destroy().unwrap();
    for p in &paths {
        assert!(!p.exists() && !p.parent().unwrap().exists());
    }
    // And the name is free again.
    let again = Cgroup::create(&rel).unwrap();
    again.destroy().unwrap();
}

#[test]
fn destroy_kills_a_running_fork_loop_and_child_cgroups() {
    require_root!("destroy_kills_a_running_fork_loop_and_child_cgroups");
    let scratch = Scratch::new("forkloop");
    let rel = scratch.rel("ns/id");
    let cg = Cgroup::create(&rel).unwrap();
    let paths = cg.paths();
    // High enough that the fork loop never hits it during the test (dash
    // gives up on a failed fork and would exit by itself).
    cg.apply(&Resources {
        pids_max: Some(5000),
        ..Default::default()
    })
    .unwrap();

    // A nested cgroup in every hierarchy, as a payload with delegation would make.
    let mut sub = Vec::new();
    for p in &paths {
        let s = p.join("sub");
        fs::create_dir(&s).unwrap();
        if s.join("cpuset.cpus").exists() {
            fs::write(s.join("cpuset.cpus"), read(p, "cpuset.cpus")).unwrap();
            fs::write(s.join("cpuset.mems"), read(p, "cpuset.mems")).unwrap();
        }
        sub.push(s);
    }
    let mut nested = spawn(&mut sleeper());
    for s in &sub {
        fs::write(s.join("cgroup.procs"), nested.pid().to_string()).unwrap();
    }
    assert!(
        cg.pids().unwrap().contains(&nested.pid()),
        "pids() must include child cgroups"
    );

    // A shell that keeps forking sleepers, still forking while destroy runs:
    // only a freeze before the kill makes sure no child escapes.
    let mut forker = spawn_inside(
        &cg,
        Command::new("sh")
            .args(["-c", "while :; do sleep 1000 & done"])
            .stderr(Stdio::null()),
    );
    wait_for("the fork loop to fill the cgroup", || {
        cg.pids().map(|p| p.len() >= 20).unwrap_or(false)
    });
    let victims = cg.pids().unwrap();
    assert!(victims.len() >= 20);

    cg.destroy().unwrap();
    assert_eq!(forker.wait_signal(), Some(libc::SIGKILL));
    assert_eq!(nested.wait_signal(), Some(libc::SIGKILL));
    for pid in victims {
        // Grandchildren are reaped by init; dead or a zombie either way.
        assert!(
            matches!(proc_state(pid), None | Some('Z') | Some('X')),
            "process {pid} survived"
        );
    }
    for p in paths.iter().chain(&sub) {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn from_paths_recovers_after_a_crash() {
    require_root!("from_paths_recovers_after_a_crash");
    let scratch = Scratch::new("recover");
    let rel = scratch.rel("ns/id");
    let recorded = {
        let cg = Cgroup::create(&rel).unwrap();
        cg.apply(&Resources {
            memory_limit_bytes: Some(32 << 20),
            ..Default::default()
        })
        .unwrap();
        cg.paths()
        // The creator "crashes": the Cgroup value is gone, the directories are not.
    };
    let mut sleep = spawn(&mut sleeper());
    let cg = Cgroup::from_paths(recorded.clone());
    assert_eq!(cg.paths(), recorded);
    cg.add_pid(sleep.pid()).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![sleep.pid()]);
    assert_eq!(cg.stats().unwrap().memory_limit_bytes, Some(32 << 20));
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.destroy().unwrap();
    assert_eq!(sleep.wait_signal(), Some(libc::SIGKILL));
    for p in &recorded {
        assert!(
            !p.exists() && !p.parent().unwrap().exists(),
            "{} or its parent left behind",
            p.display()
        );
    }

    // With the relative path, the base is known even for unknown placements.
    let cg = Cgroup::create(&rel).unwrap();
    let again = Cgroup::from_paths_with_relative(cg.paths(), &rel);
    again.destroy().unwrap();
    for p in cg.paths() {
        assert!(!p.parent().unwrap().parent().unwrap().exists());
    }
}

/// Runs [`v2_child_helper`] in a child process (a re-exec of this test
/// binary) so that its private mount namespace never touches this one.
/// Device rules are enforced: with everything denied but /dev/null, a
/// process in `cg` writes /dev/null, cannot open /dev/zero, and cannot make
/// a node for a block device (what `CAP_MKNOD` would otherwise allow).
fn check_device_rules(cg: &Cgroup) {
    use hcs_cgroups::devices::{access, DeviceKind, DeviceRule};
    let rules = vec![
        DeviceRule {
            allow: false,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: access::ALL,
        },
        DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), access::ALL),
    ];
    cg.apply(&Resources {
        devices: Some(rules),
        ..Default::default()
    })
    .expect("device rules");
    let node = tempfile::tempdir().unwrap();
    let script = format!(
        "echo x > /dev/null && echo null-ok; \
         head -c1 /dev/zero >/dev/null 2>&1 && echo zero-opened || echo zero-denied; \
         mknod {n}/sda b 8 0 2>/dev/null && echo mknod-ok || echo mknod-denied",
        n = node.path().display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).stdout(Stdio::piped());
    let fds = join_before_exec(cg, &mut cmd);
    let out = cmd.output().expect("sh");
    drop(fds);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["null-ok", "zero-denied", "mknod-denied"], "{text}");
}

#[test]
fn device_rules_deny_what_they_do_not_allow() {
    require_root!("device_rules_deny_what_they_do_not_allow");
    let h = Hierarchies::detect().unwrap();
    let scratch = Scratch::new("devices");
    let cg = Cgroup::create_in(h, &scratch.rel("ns/id")).unwrap();
    check_device_rules(&cg);
    cg.destroy().unwrap();
}

#[test]
fn pure_v2_in_private_mount_namespace() {
    require_root!("pure_v2_in_private_mount_namespace");
    let scratch = Scratch::new("v2");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "v2_child_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HCS_CGROUPS_V2_CHILD", &scratch.top)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("HCS_V2_CHILD_OK"),
        "the helper did not run to the end:\n{stdout}\n{stderr}"
    );
    if let Some(v2) = Hierarchies::detect().unwrap().v2() {
        assert!(
            !v2.mount_point().join(&scratch.top).exists(),
            "the child left its cgroup behind"
        );
    }
}

/// Unmounts a private mount when dropped.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes a v2 test cgroup tree (killing what is inside) when dropped.
struct V2Tree(PathBuf);

impl Drop for V2Tree {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = Cgroup::from_paths(vec![self.0.clone()]).destroy() {
                eprintln!("cleanup of {}: {e}", self.0.display());
            }
        }
    }
}

#[test]
#[ignore = "helper of pure_v2_in_private_mount_namespace: only does something in the child process it starts"]
fn v2_child_helper() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    use nix::sched::{unshare, CloneFlags};

    let Ok(top) = std::env::var("HCS_CGROUPS_V2_CHILD") else {
        println!(
            "v2_child_helper: not started by pure_v2_in_private_mount_namespace; nothing to do"
        );
        return;
    };
    // The mount namespace is per thread: this test thread gets its own, and
    // /proc/thread-self shows its view.
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    // Hide the host's v1 (or hybrid) mounts: this namespace is to look like a pure v2 host.
    let _ = umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH);
    let dir = tempfile::tempdir().unwrap();
    mount(
        Some("cgroup2"),
        dir.path(),
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount cgroup2");
    let _unmount = Unmount(dir.path().to_owned());
    let _tree = V2Tree(dir.path().join(&top));

    let mountinfo = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let own = fs::read_to_string("/proc/thread-self/cgroup").unwrap();
    let h = Hierarchies::from_mountinfo(&mountinfo, &own).unwrap();
    assert_eq!(h.layout(), Layout::Unified, "{mountinfo}");
    assert_eq!(h.hierarchies().len(), 1);
    let v2 = h.v2().unwrap();
    assert_eq!(v2.mount_point(), dir.path());
    let controllers = v2.controllers().unwrap().to_vec();
    println!("cgroup2 controllers here: {controllers:?}");

    let rel = Path::new(&top).join("ns/id");
    let cg = Cgroup::create_in(&h, &rel).unwrap();
    let leaf = dir.path().join(&rel);
    assert_eq!(cg.paths(), vec![leaf.clone()]);
    assert!(matches!(
        Cgroup::create_in(&h, &rel),
        Err(CgroupError::AlreadyExists { .. })
    ));

    // Limits whose controller is not in cgroup.controllers are refused, by name.
    for (r, name, file, want) in [
        (
            Resources {
                memory_limit_bytes: Some(64 << 20),
                ..Default::default()
            },
            "memory",
            "memory.max",
            "67108864",
        ),
        (
            Resources {
                pids_max: Some(50),
                ..Default::default()
            },
            "pids",
            "pids.max",
            "50",
        ),
    ] {
        match cg.apply(&r) {
            Ok(()) => {
                assert!(
                    controllers.iter().any(|c| c == name),
                    "{name} applied without the controller"
                );
                assert_eq!(read(&leaf, file), want);
            }
            Err(CgroupError::ControllerUnavailable { controller, .. }) => {
                assert!(
                    !controllers.iter().any(|c| c == name),
                    "{name} is available but refused"
                );
                assert_eq!(controller, name);
            }
            Err(e) => panic!("apply {name}: {e}"),
        }
    }

    // The BPF device program, in a cgroup of its own (the check's shell
    // stays inside until it exits).
    let dev = Cgroup::create_in(&h, &Path::new(&top).join("ns/devices")).unwrap();
    check_device_rules(&dev);
    dev.destroy().unwrap();

    let mut busy = spawn(&mut busy_loop());
    let mut sleep = spawn_inside(&cg, &mut sleeper());
    cg.add_pid(busy.pid()).unwrap();
    assert_eq!(cg.pids().unwrap(), {
        let mut v = vec![busy.pid(), sleep.pid()];
        v.sort();
        v
    });

    assert_eq!(proc_state(busy.pid()), Some('R'));
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert!(read(&leaf, "cgroup.events").contains("frozen 1"));
    let state = proc_state(busy.pid()).unwrap();
    assert!(
        state == 'S' || state == 'D',
        "busy loop in state {state} while frozen"
    );
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    wait_for("the busy loop to run again", || {
        proc_state(busy.pid()) == Some('R')
    });

    let mut stats = cg.stats().unwrap();
    wait_for("cpu usage from cpu.stat", || {
        stats = cg.stats().unwrap();
        stats.cpu_usage_ns.unwrap_or(0) > 0
    });
    assert!(stats.cpu_user_ns.is_some());
    println!("v2 stats: {stats:?}");

    // Destroy while frozen: cgroup.kill reaches frozen processes too.
    cg.freeze().unwrap();
    cg.destroy().unwrap();
    assert_eq!(busy.wait_signal(), Some(libc::SIGKILL));
    assert_eq!(sleep.wait_signal(), Some(libc::SIGKILL));
    assert!(
        !leaf.exists() && !dir.path().join(&top).exists(),
        "v2 directories left behind"
    );
    cg.destroy().unwrap();
    println!("HCS_V2_CHILD_OK");
}

#[test]
#[ignore = "benchmark: cargo test -p hcs-cgroups --release -- --ignored --nocapture"]
fn bench_create_apply_destroy() {
    require_root!("bench_create_apply_destroy");
    let h = Hierarchies::detect().unwrap();
    let scratch = Scratch::new("bench");
    let r = Resources {
        memory_limit_bytes: Some(256 << 20),
        cpu_weight: Some(100),
        cpu_quota: Some(CpuQuota {
            quota_us: 50_000,
            period_us: 100_000,
        }),
        cpuset_cpus: None,
        pids_max: Some(1024),
        devices: None,
        memory_swap_bytes: None,
        memory_reservation_bytes: None,
        disable_oom_killer: None,
        ..Default::default()
    };
    const N: usize = 100;
    for warm_parents in [false, true] {
        // With warm parents a sibling keeps <top>/ns alive, as other running
        // containers of the namespace would.
        let keeper = warm_parents.then(|| Cgroup::create_in(h, &scratch.rel("ns/keeper")).unwrap());
        let mut t = vec![[Duration::ZERO; 4]; N];
        let mut dirs = 0;
        for (i, row) in (0..N + 5).map(|i| (i, i.checked_sub(5))) {
            let rel = scratch.rel(&format!("ns/c{i}"));
            let t0 = Instant::now();
            let cg = Cgroup::create_in(h, &rel).unwrap();
            let t1 = Instant::now();
            dirs = cg.paths().len();
            cg.apply(&r).unwrap();
            let t2 = Instant::now();
            let fds = cg.open_procs_files().unwrap();
            let t3 = Instant::now();
            drop(fds);
            let t4 = Instant::now();
            cg.destroy().unwrap();
            let t5 = Instant::now();
            if let Some(j) = row {
                t[j] = [t1 - t0, t2 - t1, t3 - t2, t5 - t4];
            }
        }
        if let Some(k) = keeper {
            k.destroy().unwrap();
        }
        let stat = |f: &dyn Fn(&[Duration; 4]) -> Duration| {
            let mut v: Vec<Duration> = t.iter().map(f).collect();
            v.sort();
            let mean = v.iter().sum::<Duration>() / N as u32;
            (v[N / 2], mean, v[N * 9 / 10])
        };
        println!(
            "{} directories per cgroup, layout {:?}, parents {}:",
            dirs,
            h.layout(),
            if warm_parents {
                "existing"
            } else {
                "created and removed every time"
            }
        );
        for (name, f) in [
            (
                "create",
                &(|x: &[Duration; 4]| x[0]) as &dyn Fn(&[Duration; 4]) -> Duration,
            ),
            ("apply", &|x| x[1]),
            ("open_procs_files", &|x| x[2]),
            ("create+apply+open", &|x| x[0] + x[1] + x[2]),
            ("destroy (empty)", &|x| x[3]),
            ("create+apply+destroy", &|x| x[0] + x[1] + x[3]),
        ] {
            let (median, mean, p90) = stat(f);
            println!("  {name:<22} median {median:>10.1?}  mean {mean:>10.1?}  p90 {p90:>10.1?}  (n={N})");
        }
    }
}

#[test]
fn single_threads_join_and_leave_the_cpu_controller() {
    require_root!("single_threads_join_and_leave_the_cpu_controller");
    let h = Hierarchies::detect().unwrap();
    let scratch = Scratch::new("threads");
    let cg = Cgroup::create(&scratch.rel("t")).unwrap();
    // A thread of this process that waits until told to end.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = end_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    if h.v1("cpu").is_none() {
        assert!(
            matches!(cg.add_thread(tid), Err(CgroupError::ThreadPlacement { .. })),
            "v2 cannot hold one thread apart from its process"
        );
    } else {
        cg.add_thread(tid).unwrap();
        assert_eq!(cg.threads().unwrap(), [tid], "only that thread moved");
        let own = fs::read_to_string(format!("/proc/self/task/{tid}/cgroup")).unwrap();
        assert!(own.contains(&scratch.top), "{own}");
        // Its process is still elsewhere, so destroy must not kill it...
        assert!(matches!(
            cg.destroy(),
            Err(CgroupError::CallerInside { .. })
        ));
        // ...until it is moved back home.
        cg.release_threads().unwrap();
        assert!(cg.threads().unwrap().is_empty());
        cg.destroy().unwrap();
    }
    assert!(matches!(
        cg.add_thread(0),
        Err(CgroupError::InvalidValue { .. })
    ));
    end_tx.send(()).unwrap();
    worker.join().unwrap();
}
