//! Helpers shared by the end-to-end tests: the test root filesystem, unique
//! namespaces, compute system documents, and inventories of what a system can
//! leave behind on the host (mounts, cgroups, processes, runtime directories).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hcs::{HcsResult, Operation, Process, System};

/// The longest any helper here waits for one HCS call or exit, in ms: a
/// guest or monitor that never answers fails its test (with
/// HCS_E_OPERATION_TIMEOUT or ERROR_TIMEOUT) instead of hanging the whole
/// run. Generous, for the nested stage's emulation under load.
pub const WAIT_MS: u32 = 300_000;

pub mod linux_guest;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Fail loudly unless the tests can really run: they create namespaces,
/// mounts and cgroups, which needs root. A test that cannot run is a failure,
/// never a silent pass.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the integration tests create real containers and must run as root (sudo ./scripts/test.sh)"
    );
}

/// The busybox root filesystem built by scripts/build-rootfs.sh.
pub fn rootfs() -> PathBuf {
    require_root();
    let p = std::env::var_os("HCS_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/rootfs/busybox"));
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run scripts/build-rootfs.sh first",
        p.display()
    );
    p
}

/// Debian's cloud kernel (an LZ4 bzImage) fetched by
/// scripts/fetch-guest-kernel.sh, or `$HCS_GUEST_KERNEL`. Missing is a
/// failure, not a skip: the script gets it on any Debian machine.
pub fn guest_kernel() -> PathBuf {
    let p = std::env::var_os("HCS_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/guest/vmlinuz"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-guest-kernel.sh first",
        p.display()
    );
    p
}

/// Report that `test` did not run its checks, and why. The line goes to
/// stderr and, when `$HCS_TEST_SKIP_LOG` names a file, is appended to it so
/// that scripts/test.sh lists every skipped test at the end of the run
/// (cargo itself counts a skipped test as passed).
pub fn skip(test: &str, reason: &str) {
    hcs_test_support::skip(test, reason);
}

/// True when this host can boot a real Linux guest. Otherwise `test` is
/// deferred to the nested-KVM stage (scripts/nested-stage.sh), which runs it
/// inside an L1 that can, and the caller returns without checking anything.
pub fn real_linux_guest_here(test: &str) -> bool {
    match hcs_vmm::host::linux_guest_unsupported_reason() {
        None => true,
        Some(reason) => {
            hcs_test_support::defer_to_nested_stage(test, &reason);
            false
        }
    }
}

/// True when this host has only cgroup v2 (a unified hierarchy). Otherwise
/// `test` is deferred to the nested-KVM stage, whose L1 mounts cgroup2 alone.
pub fn pure_cgroup_v2_here(test: &str) -> bool {
    let layout = hcs_cgroups::Hierarchies::detect().map(|h| h.layout());
    match layout {
        Ok(hcs_cgroups::Layout::Unified) => true,
        other => {
            hcs_test_support::defer_to_nested_stage(
                test,
                &format!("this host's cgroup layout is {other:?}, not cgroup v2 alone"),
            );
            false
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the nested stage keeps its KVM trace (`$HCS_TEST_KVM_TRACE` names
/// tracefs' directory there; unset elsewhere).
const KVM_TRACE_ENV: &str = "HCS_TEST_KVM_TRACE";

/// When a test fails while `$HCS_TEST_KVM_TRACE` is set (the nested stage,
/// where guests have stalled and triple-faulted intermittently), keep the
/// evidence of that moment before anything is torn down: stop the KVM trace
/// (the stage prints its tail) and print where every monitor thread is
/// waiting (its kernel stack), so a stall shows whether the guest's vCPUs
/// were in the guest, halted, or blocked in the monitor.
fn install_failure_snapshot() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let Some(trace) = std::env::var_os(KVM_TRACE_ENV) else {
        return;
    };
    ONCE.call_once(move || {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = std::fs::write(Path::new(&trace).join("tracing_on"), "0");
            eprintln!("--- failure snapshot: KVM trace stopped; monitor threads:");
            eprint!("{}", monitor_threads());
            previous(info);
        }));
    });
}

/// Every hcs-monitor thread's name, state, wait channel and kernel stack.
fn monitor_threads() -> String {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut out = String::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc_dir in procs.flatten().map(|e| e.path()) {
        if read(&proc_dir.join("comm")).trim() != "hcs-monitor" {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(proc_dir.join("task")) else {
            continue;
        };
        for task in tasks.flatten().map(|e| e.path()) {
            let stat = read(&task.join("stat"));
            // The state is the field after the parenthesised name.
            let state = stat.rsplit(") ").next().and_then(|r| r.split(' ').next());
            out.push_str(&format!(
                "{} {} state={} wchan={}\n",
                task.display(),
                read(&task.join("comm")).trim(),
                state.unwrap_or("?"),
                read(&task.join("wchan")).trim(),
            ));
            for frame in read(&task.join("stack")).lines().take(8) {
                out.push_str(&format!("    {frame}\n"));
            }
        }
    }
    out
}

/// A namespace unique to this test run and call, so tests can run in parallel
/// and each can inventory what it left behind.
pub fn unique_namespace(test: &str) -> String {
    install_failure_snapshot();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    format!("t{}-{n}-{t}", std::process::id())
}

/// A container document on the test root filesystem. It is terminated when
/// its last handle closes, so a test that fails half-way (and drops its
/// handles while unwinding) leaves no container running.
pub fn container_doc(extra: serde_json::Value) -> String {
    let mut doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-tests",
        "ShouldTerminateOnLastHandleClosed": true,
        "Container": {
            "Storage": { "Layers": [ { "Id": "0a9d0f6e-0000-4000-8000-000000000001", "Path": rootfs() } ] }
        }
    });
    merge(&mut doc, extra);
    doc.to_string()
}

/// A VM document of the test guest (64 MiB, one vCPU, COM1 kept by the
/// monitor) with `cmdline`, `extra` merged over it. Like [`container_doc`],
/// it ends with its last handle.
pub fn test_guest_vm_doc(cmdline: &str, extra: serde_json::Value) -> String {
    let mut doc = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "hcs-tests",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "Chipset": { "LinuxKernelDirect": {
                "KernelFilePath": hcs_test_guest::test_guest_elf(),
                "KernelCmdLine": cmdline
            } },
            "ComputeTopology": { "Memory": { "SizeInMB": 64 }, "Processor": { "Count": 1 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    });
    merge(&mut doc, extra);
    doc.to_string()
}

pub(crate) fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Create a compute system and wait for the create.
pub fn create(ns: &str, id: &str, doc: &str) -> HcsResult<System> {
    let op = Operation::new();
    let s = System::create_in_namespace(ns, id, doc, &op)?;
    op.wait(WAIT_MS)?;
    Ok(s)
}

/// Create and start.
pub fn create_started(ns: &str, id: &str, doc: &str) -> System {
    let s = create(ns, id, doc).expect("create");
    let op = Operation::new();
    s.start(&op, None).expect("start call");
    op.wait(WAIT_MS).expect("start");
    s
}

/// Wait for an operation-taking call.
pub fn call(f: impl FnOnce(&Operation) -> HcsResult<()>) -> HcsResult<Option<String>> {
    let op = Operation::new();
    f(&op)?;
    op.wait(WAIT_MS)
}

/// Properties of a system as JSON.
pub fn properties(s: &System, types: &[&str]) -> HcsResult<serde_json::Value> {
    let q = serde_json::json!({ "PropertyTypes": types }).to_string();
    let doc = call(|op| s.get_properties(op, Some(&q)))?.unwrap_or_default();
    Ok(serde_json::from_str(&doc).expect("properties are JSON"))
}

/// A process that ran to the end: its exit code and output.
pub struct Finished {
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `args` in the system with piped stdout/stderr and wait for it.
pub fn run(s: &System, args: &[&str]) -> Finished {
    run_params(s, serde_json::json!({ "CommandArgs": args }))
}

/// Run with more ProcessParameters; stdout and stderr are always piped.
pub fn run_params(s: &System, mut params: serde_json::Value) -> Finished {
    params["CreateStdOutPipe"] = true.into();
    params["CreateStdErrPipe"] = true.into();
    let op = Operation::new();
    let p = s
        .create_process(&params.to_string(), &op)
        .expect("create process call");
    let info = op.wait_process_info(WAIT_MS).expect("create process");
    let out = std::thread::spawn(move || read_all(info.std_output));
    let err = std::thread::spawn(move || read_all(info.std_error));
    let status = exit_of(&p);
    Finished {
        exit_code: status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Read a descriptor to EOF.
pub fn read_all(fd: Option<OwnedFd>) -> String {
    let mut s = String::new();
    if let Some(fd) = fd {
        let _ = std::fs::File::from(fd).read_to_string(&mut s);
    }
    s
}

/// Wait for a process and return its exit code, checking the ProcessStatus.
pub fn exit_of(p: &Process) -> u32 {
    let status: serde_json::Value =
        serde_json::from_str(&p.wait_for_exit(WAIT_MS).expect("wait for exit")).unwrap();
    assert_eq!(status["Exited"], true, "{status}");
    assert_eq!(status["LastWaitResult"], 0, "{status}");
    status["ExitCode"].as_u64().expect("ExitCode") as u32
}

/// Terminate and wait until the system is gone.
pub fn terminate(s: &System) -> serde_json::Value {
    call(|op| s.terminate(op, None)).expect("terminate");
    serde_json::from_str(&s.wait_for_exit(WAIT_MS).expect("exit status")).unwrap()
}

/// Everything of a namespace's systems that can exist on the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub mounts: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub processes: Vec<i32>,
    pub runtime_dirs: Vec<PathBuf>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }
}

/// Inventory what systems of namespace `ns` have on the host right now.
pub fn leftovers(ns: &str) -> Leftovers {
    let marker = format!("{ns}@");
    let mut l = Leftovers::default();
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        l.mounts = m
            .lines()
            .filter(|x| x.contains(&format!("/hcs/{ns}/")) || x.contains(&marker))
            .map(str::to_owned)
            .collect();
    }
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&marker))
                {
                    l.cgroups.push(p);
                } else if p.components().count() < 12 {
                    stack.push(p);
                }
            }
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for e in procs.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&marker))
            {
                l.processes.push(pid);
            }
        }
    }
    let nsdir = hcs_rundir::root().join(ns);
    if let Ok(entries) = std::fs::read_dir(&nsdir) {
        l.runtime_dirs = entries.flatten().map(|e| e.path()).collect();
    }
    if nsdir.exists() && l.runtime_dirs.is_empty() {
        l.runtime_dirs.push(nsdir);
    }
    l
}

/// Wait (bounded) until `cond` holds; for effects another process produces
/// asynchronously with no event to wait on. Panics with `what` on timeout.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `hcs` command-line tool of this build.
pub fn hcs_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("hcs");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// Merge JSON `b` into `a` (objects member by member; anything else replaces).
pub fn merge_into(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge_into(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A VM's serial console (COM1), line by line; reads time out after 60 s.
pub struct Console {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Console {
    pub fn attach(ns: &str, id: &str) -> Console {
        let path = hcs::console_socket(ns, id, 0);
        let stream = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("console {}: {e}", path.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Console {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Read lines until one satisfies `wanted` (named `what` in failures);
    /// returns it without the line ending.
    pub fn read_until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading the console for {what} ({e}); saw {seen:?}"));
            assert!(n > 0, "console closed before {what}; saw {seen:?}");
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if wanted(&line) {
                return line;
            }
            // Keep the tail only: a Linux boot prints thousands of lines.
            if seen.len() == 40 {
                seen.remove(0);
            }
            seen.push(line);
        }
    }

    /// Read until the console ends (its VM stopped); what was left unread.
    /// Fails if it stays open for a read timeout.
    pub fn read_to_end(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .unwrap_or_else(|e| panic!("the console did not end ({e}); read {rest:?}"));
        rest
    }

    /// Read lines until one starts with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> String {
        self.read_until(&format!("a line starting {prefix:?}"), |l| {
            l.starts_with(prefix)
        })
    }

    /// Read lines until one contains `text` (Linux prefixes a timestamp).
    pub fn expect_containing(&mut self, text: &str) -> String {
        self.read_until(&format!("a line containing {text:?}"), |l| l.contains(text))
    }

    pub fn command(&mut self, cmd: &str) {
        self.writer
            .write_all(format!("{cmd}\n").as_bytes())
            .unwrap();
    }

    /// Run a command and return its answer line starting with `prefix`.
    pub fn ask(&mut self, cmd: &str, prefix: &str) -> String {
        self.command(cmd);
        self.expect(prefix)
    }
}

/// HcsModifyProcess CloseHandle StdIn: HCS keeps its own copy of the
/// caller's stdin until asked, so EOF needs this (as on Windows).
pub fn close_stdin(p: &Process) {
    call(|op| {
        p.modify(
            op,
            r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"StdIn"}}"#,
        )
    })
    .expect("CloseHandle StdIn");
}

/// HcsCreateProcess with `params`; the process and its stdio.
pub fn start_process(s: &System, params: serde_json::Value) -> (Process, hcs::ProcessInformation) {
    let op = Operation::new();
    let p = s
        .create_process(&params.to_string(), &op)
        .expect("create process call");
    let info = op.wait_process_info(WAIT_MS).expect("create process");
    (p, info)
}
