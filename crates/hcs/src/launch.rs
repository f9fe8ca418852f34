//! Starting a compute system's monitor.
//!
//! The monitor is a separate executable, `hcs-monitor`, found (in order) at
//! `$HCS_MONITOR`, next to the current executable (or one directory up, for
//! test binaries in `target/*/deps`), in `/usr/local/libexec/hcs/`, or on
//! `PATH`. It gets one end of a socket pair as its stdin: that is the
//! creating handle's connection and carries the Create request.
//!
//! Passing the socket as stdin (rather than an inherited descriptor number)
//! lets `std::process::Command` use `posix_spawn`, and no other child forked
//! concurrently by this program can inherit the socket by accident, which
//! would keep the handle "open" after its owner closed it.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hcs_errors::{HResult, HcsError, HcsResult};

/// Name of the monitor executable.
pub const MONITOR_EXE: &str = "hcs-monitor";

/// Where the monitor executable is.
pub(crate) fn monitor_path() -> HcsResult<PathBuf> {
    if let Some(p) = std::env::var_os("HCS_MONITOR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(MONITOR_EXE));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(MONITOR_EXE));
            }
        }
    }
    candidates.push(PathBuf::from("/usr/local/libexec/hcs").join(MONITOR_EXE));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(MONITOR_EXE)));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        HcsError::new(
            HResult::HCS_E_SERVICE_NOT_AVAILABLE,
            format!(
                "the compute system monitor `{MONITOR_EXE}` was not found next to this program, \
                 in /usr/local/libexec/hcs or on PATH; set HCS_MONITOR to its path"
            ),
        )
    })
}

/// Spawn a monitor and return our end of its socket pair.
pub(crate) fn spawn_monitor() -> HcsResult<OwnedFd> {
    let exe = monitor_path()?;
    let (ours, theirs) = hcs_protocol::wire::socketpair()
        .map_err(|e| HcsError::from_io("creating the monitor's socket pair", &e))?;
    let mut child = Command::new(&exe)
        .arg("--bootstrap-stdin")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| HcsError::from_io(format!("starting {}", exe.display()), &e))?;
    // The monitor runs on after we return; a small thread reaps it so it
    // never lingers as a zombie of a long-lived client.
    let _ = std::thread::Builder::new()
        .name("hcs-monitor-reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = child.wait();
        });
    Ok(ours)
}
