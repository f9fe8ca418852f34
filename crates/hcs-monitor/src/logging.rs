//! The monitor's log: `monitor.log` in its runtime directory while the
//! system exists, or `$HCS_MONITOR_LOG_DIR/<namespace>.<id>.log` when that
//! is set (kept after the system is gone, for tests and debugging).
//! `HCS_LOG` sets the filter (default `info`).

use std::path::Path;
use std::sync::Mutex;

/// Send tracing output to the log file of this system.
pub fn start(rundir: &Path, namespace: &str, id: &str) {
    let path = match std::env::var_os("HCS_MONITOR_LOG_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let _ = std::fs::create_dir_all(&dir);
            Path::new(&dir).join(format!("{namespace}.{id}.log"))
        }
        None => rundir.join("monitor.log"),
    };
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HCS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}

/// Send tracing output (warnings by default) to stderr, for the short-lived
/// modes that have no runtime directory of their own.
pub fn init_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HCS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
