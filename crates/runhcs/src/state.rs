//! The container records in `--root`: `<root>/<id>/state.json`, written by
//! `create` and updated by `start`, read by every other command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result, RunhcsError};

/// The HCS id namespace of every compute system runhcs creates.
pub const NAMESPACE: &str = "runhcs";

/// What runhcs remembers about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// OCI version of the bundle's config.json.
    pub oci_version: String,
    /// Container id (also the compute system id).
    pub id: String,
    /// Absolute bundle path.
    pub bundle: String,
    /// Absolute root filesystem path.
    pub rootfs: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Owner (the user that created it).
    pub owner: String,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: serde_json::Map<String, serde_json::Value>,
    /// The init process's ProcessParameters, created by `start`.
    pub process: serde_json::Value,
    /// Pid of the init process once started (inside the compute system).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Host pid of the process that stands for the container's process
    /// (the holder, or `runhcs run` in the foreground): what `state` and
    /// `--pid-file` report, as runc reports its init's host pid.
    #[serde(default)]
    pub holder: Option<u32>,
}

/// `<root>/<id>`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Check a container id: a non-empty name without `/`, as HCS accepts.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RunhcsError::Usage(format!(
            "invalid container id {id:?}: use letters, digits and . _ - + (at most 128)"
        )))
    }
}

/// An exclusive lock on a container's record, held while a command changes
/// it (start, delete), so two runhcs processes cannot both act on it.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Take the lock of container `id` (waits for another holder to finish).
pub fn lock(root: &Path, id: &str) -> Result<Lock> {
    check_id(id)?;
    let d = dir(root, id);
    let f = match std::fs::File::open(&d) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunhcsError::NotFound(id.to_string()))
        }
        Err(e) => return Err(e).context(|| format!("opening {}", d.display())),
    };
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| std::io::Error::from(e))
        .context(|| format!("locking {}", d.display()))
}

impl Record {
    /// Read a container's record.
    pub fn load(root: &Path, id: &str) -> Result<Record> {
        check_id(id)?;
        let path = dir(root, id).join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RunhcsError::NotFound(id.to_string()))
            }
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map_err(|e| RunhcsError::State(format!("{} is damaged: {e}", path.display())))
    }

    /// Write the record atomically (temp file + rename).
    pub fn save(&self, root: &Path) -> Result<()> {
        let d = dir(root, &self.id);
        let tmp = d.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| RunhcsError::State(format!("encoding the state: {e}")))?;
        std::fs::write(&tmp, text).context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, d.join("state.json"))
            .context(|| format!("renaming {} into place", tmp.display()))
    }

    /// All records in `root`, sorted by id.
    pub fn all(root: &Path) -> Result<Vec<Record>> {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context(|| format!("reading {}", root.display())),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if let Some(id) = entry.file_name().to_str() {
                if let Ok(r) = Record::load(root, id) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// The current time as RFC 3339 UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        super::check_id("abc-1.2_x").unwrap();
        assert!(super::check_id("../x").is_err());
        assert!(super::check_id("").is_err());
    }

    #[test]
    fn timestamp_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
