//! Helpers of the C tests: where the library, headers and monitor are, and
//! compiling C/C++ against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `include/`.
pub fn include_dir() -> PathBuf {
    crate_dir().join("include")
}

/// The cargo profile directory (`<target>/debug`): the test executable is
/// in its `deps/`. The monitor executable is here.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable in <target>/<profile>/deps")
        .to_path_buf()
}

/// The directory holding libcomputecore.so: `deps/` (where `cargo test`
/// leaves it) or the profile directory (`cargo build`).
pub fn lib_dir() -> PathBuf {
    let profile = profile_dir();
    [profile.join("deps"), profile.clone()]
        .into_iter()
        .find(|d| d.join("libcomputecore.so").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no libcomputecore.so in {0}/deps or {0} (cargo builds it with the tests)",
                profile.display()
            )
        })
}

/// A scratch directory for compiled programs.
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hcs-capi");
    std::fs::create_dir_all(&d).expect("creating the scratch directory");
    d
}

/// Compile `source` (C, or C++ with `cxx`) with -Wall -Wextra -Werror,
/// linked to libcomputecore.so, into `out`. Panics with the compiler's output.
pub fn compile(source: &Path, out: &Path, cxx: bool, extra: &[String]) {
    let lib = lib_dir();
    let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
    if cxx {
        cmd.args(["-x", "c++", "-std=c++17"]);
    } else {
        cmd.arg("-std=c11");
    }
    cmd.args(["-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg("-I")
        .arg(include_dir())
        .args(extra)
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lcomputecore");
    let output = cmd
        .output()
        .expect("running the C compiler (install gcc/g++)");
    assert!(
        output.status.success(),
        "{:?} failed:\n{}{}",
        cmd,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// True if `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}
