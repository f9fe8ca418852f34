//! SetTimeZone: the host's time zone in the guest (`GuestConnection.
//! UseHostTimeZone`), as /etc/localtime (TZif data, which the C library
//! reads) and /etc/timezone (the zone's name).

use std::io::Write;
use std::path::Path;

use crate::error::{AgentError, Result};

/// Is `name` a plausible IANA zone name (`Europe/Paris`, `UTC`, `Etc/GMT+5`)?
fn valid_name(name: &str) -> bool {
    !name.starts_with('/')
        && !name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
}

/// Writes `data` to `dir/name` through a temporary file and a rename, so
/// that a reader sees the old file or the new one, never half of one.
fn replace(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.hcs-agent"));
    let path = dir.join(name);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AgentError::io(format!("writing {}", path.display()), e)
    })
}

/// Sets the time zone under `etc` (the guest's /etc): `tzif` as
/// `localtime` (empty: UTC, the file removed), `name` as `timezone`.
pub fn set(etc: &Path, name: &[u8], tzif: &[u8]) -> Result<()> {
    let name = std::str::from_utf8(name)
        .map_err(|_| AgentError::InvalidArgument("the time zone name is not UTF-8".into()))?;
    if !name.is_empty() && !valid_name(name) {
        return Err(AgentError::InvalidArgument(format!(
            "{name:?} is not a time zone name"
        )));
    }
    if !tzif.is_empty() && !tzif.starts_with(b"TZif") {
        return Err(AgentError::InvalidArgument(
            "the time zone data is not TZif (it does not start with \"TZif\")".into(),
        ));
    }
    std::fs::create_dir_all(etc)
        .map_err(|e| AgentError::io(format!("creating {}", etc.display()), e))?;
    if tzif.is_empty() {
        // No /etc/localtime is UTC to the C library.
        match std::fs::remove_file(etc.join("localtime")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AgentError::io("removing localtime", e))
            }
            _ => {}
        }
    } else {
        replace(etc, "localtime", tzif)?;
    }
    if !name.is_empty() {
        replace(etc, "timezone", format!("{name}\n").as_bytes())?;
    }
    crate::log!(
        "time zone set to {}",
        if name.is_empty() { "(unnamed)" } else { name }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "UTC",
            "Europe/Paris",
            "Etc/GMT+5",
            "America/Argentina/Buenos_Aires",
        ] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["/etc/passwd", "../x", "Europe//Paris", "a b", "Europe/.."] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
