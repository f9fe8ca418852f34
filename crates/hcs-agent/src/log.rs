//! Logging to stderr and, as PID 1, to the kernel log.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

static KMSG: Mutex<Option<File>> = Mutex::new(None);

/// Also send log lines to `/dev/kmsg` from now on (once devtmpfs is mounted).
pub fn enable_kmsg() {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        if let Ok(mut guard) = KMSG.lock() {
            *guard = Some(file);
        }
    }
}

/// Writes one log line.
pub fn write(args: std::fmt::Arguments<'_>) {
    let line = format!("hcs-agent: {args}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Ok(mut guard) = KMSG.lock() {
        if let Some(kmsg) = guard.as_mut() {
            let _ = kmsg.write_all(format!("<6>{line}").as_bytes());
        }
    }
}

/// Logs a formatted line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::write(format_args!($($arg)*)) };
}
