//! C programs built against libcomputecore.so and run against real
//! containers (as root, on the busybox root filesystem of
//! scripts/build-rootfs.sh), under valgrind when it is installed and with
//! AddressSanitizer otherwise: no failed check, no invalid access, no leak.
//!
//! The programs: `container_lifecycle.c`, `operation_completion.c` (the
//! three patterns of OperationCompletionSample), `event_callback.c`
//! (EventCallbackSample), `compute_system.c` (ComputeSystemSample, in two
//! processes) and `tutorial.c` (the Tutorial's flow, on a container and on
//! a VM running the test guest).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    common::crate_dir()
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn rootfs() -> PathBuf {
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

/// The monitor the library spawns: `$HCS_MONITOR`, or the one cargo built
/// next to the library.
fn monitor() -> PathBuf {
    if let Some(p) = std::env::var_os("HCS_MONITOR") {
        return PathBuf::from(p);
    }
    let p = common::profile_dir().join("hcs-monitor");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p hcs-monitor, or scripts/test.sh)",
        p.display()
    );
    p
}

/// Compile `tests/c/<name>.c` (with AddressSanitizer when valgrind is
/// missing) and return the executable.
fn build_c_program(name: &str) -> PathBuf {
    assert!(
        nix_is_root(),
        "the C programs create real containers and must run as root (sudo ./scripts/test.sh)"
    );
    let src = common::crate_dir().join(format!("tests/c/{name}.c"));
    let out = common::out_dir().join(name);
    let extra: Vec<String> = if common::have("valgrind") {
        vec![]
    } else {
        vec![
            "-fsanitize=address".into(),
            "-fno-omit-frame-pointer".into(),
        ]
    };
    common::compile(&src, &out, false, &extra);
    out
}

/// Run `exe args...` under valgrind (leak checking) or as built with
/// AddressSanitizer; assert it succeeded and printed "<what>: all checks
/// passed". Returns its stdout.
fn run_checked(exe: &Path, args: &[&std::ffi::OsStr], what: &str) -> String {
    let valgrind = common::have("valgrind");
    let mut cmd = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-fds=no",
        ])
        .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args).env("HCS_MONITOR", monitor());
    let output = cmd.output().expect("running the C program");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} ({}) failed with {:?}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
        if valgrind {
            "valgrind"
        } else {
            "AddressSanitizer"
        },
        output.status
    );
    assert!(
        stdout.contains(&format!("{what}: all checks passed")),
        "{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// A namespace of this test run for `name`.
fn namespace(name: &str) -> String {
    format!("capi{}-{name}", std::process::id()).replace('_', "-")
}

/// Build and run `tests/c/<name>.c` with `<namespace> <rootfs>`.
fn run_c_program(name: &str) -> String {
    let exe = build_c_program(name);
    let ns = namespace(name);
    let rootfs = rootfs();
    run_checked(&exe, &[ns.as_ref(), rootfs.as_os_str()], name)
}

/// The line of `stdout` starting with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn container_lifecycle_c_program_under_valgrind() {
    run_c_program("container_lifecycle");
}

#[test]
fn operation_completion_patterns_c_program_under_valgrind() {
    run_c_program("operation_completion");
}

#[test]
fn event_callback_sample_c_program_under_valgrind() {
    let out = run_c_program("event_callback");
    let process = line(&out, "ProcessExited EventData: ");
    assert!(
        process.contains("\"Exited\":true") && process.contains("\"ExitCode\":7"),
        "{out}"
    );
    let system = line(&out, "SystemExited EventData: ");
    assert!(system.contains("\"ExitType\":\"ForcedExit\""), "{out}");
    assert!(
        out.contains("system callback events: 1, process callback events: 1"),
        "{out}"
    );
}

/// Terminates a compute system of the default namespace when dropped
/// (even if the test failed), with the `hcs` CLI built next to the monitor.
struct TerminateOnDrop(String);

impl Drop for TerminateOnDrop {
    fn drop(&mut self) {
        let hcs = common::profile_dir().join("hcs");
        if !hcs.is_file() {
            eprintln!(
                "{} is missing: cannot make sure {} is terminated",
                hcs.display(),
                self.0
            );
            return;
        }
        // Fails (not found) when the sample already terminated it.
        let _ = Command::new(hcs).arg("terminate").arg(&self.0).output();
    }
}

#[test]
fn compute_system_sample_opens_the_container_from_a_second_process_under_valgrind() {
    let exe = build_c_program("compute_system");
    // The sample uses the calls without a namespace: the default one.
    let id = format!("capi-compute-system-sample-{}", std::process::id());
    let _cleanup = TerminateOnDrop(id.clone());
    let rootfs = rootfs();
    let created = run_checked(
        &exe,
        &["create".as_ref(), id.as_ref(), rootfs.as_os_str()],
        "compute_system create",
    );
    assert!(created.contains(&format!("created {id}")), "{created}");
    // The creator exited: the container (not terminate-on-close) runs on.
    let save_file = common::out_dir().join(format!("{id}.vmrs"));
    let _ = std::fs::remove_file(&save_file);
    let used = run_checked(
        &exe,
        &["use".as_ref(), id.as_ref(), save_file.as_os_str()],
        "compute_system use",
    );
    for want in [
        format!("opened {id}"),
        format!("enumerated: {id} is listed"),
        "state: Paused".to_string(),
        "save: 0x80070032".to_string(),
        "save refused with ERROR_NOT_SUPPORTED: containers cannot be saved".to_string(),
        "terminated: ".to_string(),
    ] {
        assert!(used.contains(&want), "{want:?} missing from:\n{used}");
    }
    assert!(!save_file.exists());
}

#[test]
fn tutorial_flow_on_a_container_under_valgrind() {
    let exe = build_c_program("tutorial");
    let ns = namespace("tutorial-container");
    let rootfs = rootfs();
    let out = run_checked(
        &exe,
        &["container".as_ref(), ns.as_ref(), rootfs.as_os_str()],
        "tutorial container",
    );
    assert!(
        out.contains("modify (memory limit 256 MB): 0x00000000"),
        "{out}"
    );
    assert!(out.contains("\"AssignedMemory\":256"), "{out}");
    assert!(out.contains("terminated: "), "{out}");
}

#[test]
fn tutorial_flow_on_a_test_guest_vm_under_valgrind() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: the VM tutorial needs KVM"
    );
    let exe = build_c_program("tutorial");
    let ns = namespace("tutorial-vm");
    let elf = hcs_test_guest::test_guest_elf();
    assert!(elf.is_file(), "{} is missing", elf.display());
    let out = run_checked(
        &exe,
        &["vm".as_ref(), ns.as_ref(), elf.as_os_str()],
        "tutorial vm",
    );
    assert!(out.contains("\"SystemType\":\"VirtualMachine\""), "{out}");
    assert!(out.contains("\"AssignedMemory\":64"), "{out}");
    let refused = line(&out, "modify (memory resize) refused: ");
    assert!(
        refused.contains("0x80070032") && refused.contains("balloon"),
        "{out}"
    );
    assert!(out.contains("terminated: "), "{out}");
}
