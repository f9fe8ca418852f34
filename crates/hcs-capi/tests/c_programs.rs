//! C programs built against libcomputecore.so and run against real
//! containers (as root, on the busybox root filesystem of
//! scripts/build-rootfs.sh), under valgrind when it is installed and with
//! AddressSanitizer otherwise: no failed check, no invalid access, no leak.

mod common;

use std::path::PathBuf;
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

fn run_c_program(name: &str) {
    assert!(
        nix_is_root(),
        "the C programs create real containers and must run as root (sudo ./scripts/test.sh)"
    );
    let src = common::crate_dir().join(format!("tests/c/{name}.c"));
    let valgrind = common::have("valgrind");
    let out = common::out_dir().join(name);
    let extra: Vec<String> = if valgrind {
        vec![]
    } else {
        vec![
            "-fsanitize=address".into(),
            "-fno-omit-frame-pointer".into(),
        ]
    };
    common::compile(&src, &out, false, &extra);
    let namespace = format!("capi{}-{name}", std::process::id()).replace('_', "-");
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
        .arg(&out);
        c
    } else {
        Command::new(&out)
    };
    cmd.arg(&namespace)
        .arg(rootfs())
        .env("HCS_MONITOR", monitor());
    let output = cmd.output().expect("running the C program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} ({}) failed with {:?}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
        if valgrind {
            "valgrind"
        } else {
            "AddressSanitizer"
        },
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
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
