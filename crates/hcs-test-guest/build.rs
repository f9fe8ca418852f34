//! Builds `guest/test-guest` (a separate cargo project, not a workspace
//! member) for bare metal with the cargo running this script, checks the ELF
//! with the post-link gate, and copies it to `$OUT_DIR/hcs-test-guest.elf`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/bzimage.rs"]
mod bzimage;

#[path = "src/gate.rs"]
#[allow(dead_code)]
mod gate;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const BIN: &str = "test-guest";

/// The guest's rustflags; keep identical to guest/test-guest/.cargo/config.toml.
/// `-sse,-sse2` is what keeps SSE out of ring-0 code (it triggers a
/// future-incompatibility warning, rust-lang/rust#116344; the gate below
/// would catch its absence).
const RUSTFLAGS: &[&str] = &[
    "-C",
    "relocation-model=static",
    "-C",
    "code-model=small",
    "-C",
    "target-feature=-sse,-sse2",
    "-C",
    "link-arg=-nostartfiles",
    "-C",
    "link-arg=-nostdlib",
    "-C",
    "link-arg=-static",
    "-C",
    "link-arg=-Wl,--build-id=none",
];

/// Environment of the outer build that must not reach the inner cargo:
/// everything `CARGO_*` (config overrides such as CARGO_BUILD_TARGET,
/// CARGO_TARGET_DIR, CARGO_PROFILE_*, CARGO_ENCODED_RUSTFLAGS, the
/// CARGO_CFG_*/CARGO_FEATURE_*/CARGO_PKG_* build-script variables, the
/// jobserver in CARGO_MAKEFLAGS) except CARGO_HOME, plus these.
const CLEARED: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
];

fn must_clear(key: &OsString) -> bool {
    let Some(k) = key.to_str() else { return false };
    (k.starts_with("CARGO") && k != "CARGO_HOME")
        || k.starts_with("__CARGO")
        || CLEARED.contains(&k)
}

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let guest = manifest_dir.join("../../guest/test-guest");
    let guest = guest
        .canonicalize()
        .unwrap_or_else(|e| panic!("test guest sources not found at {}: {e}", guest.display()));

    for rel in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "link.ld",
        "link-pvh.ld",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", guest.join(rel).display());
    }
    // The guest links the agent protocol crate (a path dependency).
    let protocol = manifest_dir.join("../hcs-agent-protocol");
    for rel in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", protocol.join(rel).display());
    }
    println!("cargo:rerun-if-env-changed=OBJDUMP");
    println!("cargo:rerun-if-env-changed=NM");

    let report = build_variant(&guest, &out_dir, None, "hcs-test-guest.elf");
    // The same guest with a PVH note and 32-bit entry, for VMMs that boot
    // ELFs only through PVH (QEMU's microvm): the benchmarks use it to run
    // one guest under every VMM.
    build_variant(&guest, &out_dir, Some("pvh"), "hcs-test-guest-pvh.elf");
    // The plain guest wrapped as a bzImage, so the bzImage path of the
    // loader is exercised end to end by a guest that runs here.
    let elf = std::fs::read(out_dir.join("hcs-test-guest.elf"))
        .unwrap_or_else(|e| panic!("cannot read the test guest ELF: {e}"));
    let bz = bzimage::wrap(&elf)
        .unwrap_or_else(|e| panic!("cannot wrap the test guest as a bzImage: {e}"));
    std::fs::write(out_dir.join("hcs-test-guest.bzImage"), bz)
        .unwrap_or_else(|e| panic!("cannot write the test guest bzImage: {e}"));
    std::fs::write(out_dir.join("gate.txt"), report.summary())
        .unwrap_or_else(|e| panic!("cannot write the gate report: {e}"));
}

/// Build the guest (with `feature`, if any), gate it, and copy it to `OUT_DIR/dest`.
fn build_variant(
    guest: &Path,
    out_dir: &Path,
    feature: Option<&str>,
    dest: &str,
) -> gate::GateReport {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out_dir.join(match feature {
        Some(f) => format!("guest-target-{f}"),
        None => "guest-target".to_string(),
    });
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(guest)
        .arg("build")
        .arg("--release")
        .arg("--offline")
        .arg("--locked")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"));
    if let Some(f) = feature {
        cmd.arg("--features").arg(f);
    }
    for (key, _) in std::env::vars_os() {
        if must_clear(&key) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    cmd.env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\u{1f}"));
    let output = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} to build the test guest: {e}",
            Path::new(&cargo).display()
        )
    });
    if !output.status.success() {
        panic!(
            "building the test guest ({}) failed ({}):\n{}\n{}",
            guest.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let elf = target_dir.join(TARGET).join("release").join(BIN);
    let report = match gate::check(&elf) {
        Ok(r) => r,
        Err(e) => panic!("test guest post-link gate could not run: {e}"),
    };
    if !report.passed() {
        panic!(
            "test guest ELF {} is unsafe for kvm_pvm (SSE/XSAVE/CMPXCHG16B/INT3 instructions or \
             core::fmt/core::panicking code):\n{}",
            elf.display(),
            report.details()
        );
    }

    let dest = out_dir.join(dest);
    std::fs::copy(&elf, &dest)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", elf.display(), dest.display()));
    report
}
