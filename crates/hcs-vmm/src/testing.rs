//! Test helpers.

/// Report that `test` did not run its checks, and why: on stderr and, when
/// `$HCS_TEST_SKIP_LOG` names a file, appended to it (scripts/test.sh lists
/// those lines; cargo counts a skip as a pass).
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("HCS_TEST_SKIP_LOG") {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            panic!("cannot record the skip in {log:?}: {e}");
        }
    }
}
