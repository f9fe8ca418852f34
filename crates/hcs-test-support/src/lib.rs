//! Helpers for the tests of every crate (a dev-dependency only).
//!
//! Cargo counts a test that returns early as passed, so a test that cannot
//! run its checks on this machine must say so with [`skip`]: the line goes to
//! stderr and to `$HCS_TEST_SKIP_LOG`, which scripts/test.sh lists at the end
//! of the run.

use std::io::Write;

/// The line [`skip`] records.
pub fn skip_line(test: &str, reason: &str) -> String {
    // One line per skip: the log is read line by line.
    let flat = |s: &str| s.replace(['\n', '\r'], " ");
    format!("SKIPPED {}: {}", flat(test), flat(reason))
}

/// Report that `test` did not run its checks, and why: to stderr and, when
/// `$HCS_TEST_SKIP_LOG` names a file, appended to it (`O_APPEND`, one write
/// per line, so parallel tests do not interleave). Panics if the log cannot
/// be written, so a skip is never silently lost.
pub fn skip(test: &str, reason: &str) {
    let log = std::env::var_os("HCS_TEST_SKIP_LOG").filter(|l| !l.is_empty());
    skip_to(log.as_deref().map(std::path::Path::new), test, reason);
}

/// [`skip`] with the log named explicitly.
pub fn skip_to(log: Option<&std::path::Path>, test: &str, reason: &str) {
    let line = skip_line(test, reason);
    eprintln!("{line}");
    if let Some(log) = log {
        append_line(log, &line, "skip");
    }
}

/// Append `line` to `log` (`O_APPEND`, one write, so parallel tests do not
/// interleave); panics if it cannot, naming `what` was being recorded.
fn append_line(log: &std::path::Path, line: &str, what: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        panic!("cannot record the {what} in {}: {e}", log.display());
    }
}

/// Report that `test` cannot run its checks on this host and that the
/// nested-KVM stage (scripts/nested-stage.sh) runs it instead. When
/// `$HCS_TEST_DEFER_LOG` names a file (scripts/test.sh sets it), the test's
/// name is appended there, and test.sh fails the run unless the nested stage
/// then passes that very test; without the variable (a plain `cargo test`)
/// this is a [`skip`], so a deferral is never silently lost either.
pub fn defer_to_nested_stage(test: &str, reason: &str) {
    let Some(log) = std::env::var_os("HCS_TEST_DEFER_LOG").filter(|l| !l.is_empty()) else {
        skip(test, &format!("{reason} (scripts/nested-stage.sh runs it)"));
        return;
    };
    let test = test.replace(['\n', '\r', ' '], "_");
    eprintln!("DEFERRED {test}: {reason}; it runs in the nested stage");
    append_line(std::path::Path::new(&log), &test, "deferral");
}

/// True when running as root (uid 0), which most host tests need.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_appended_to_the_log() {
        let log = std::env::temp_dir().join(format!("hcs-skip-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        skip_to(Some(&log), "t::one", "why");
        skip_to(Some(&log), "t::two", "because\nof this");
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert_eq!(
            text,
            "SKIPPED t::one: why\nSKIPPED t::two: because of this\n"
        );
    }

    #[test]
    fn skip_line_is_one_line() {
        assert_eq!(skip_line("a::b", "no\nkvm"), "SKIPPED a::b: no kvm");
    }
}
