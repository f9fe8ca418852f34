//! Building a saved-state file from sections.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::StateFileError;
use crate::format::{
    name_problem, Encoding, Header, Limits, SectionHeader, FORMAT_VERSION, HEADER_LEN,
    SECTION_HEADER_LEN,
};

/// A section waiting to be written.
#[derive(Debug)]
struct Pending {
    header: SectionHeader,
    payload: Vec<u8>,
}

/// Collects sections and writes them as one saved-state file. It enforces
/// the same names and caps as the reader, so it never writes a file the
/// reader refuses.
#[derive(Debug, Default)]
pub struct StateWriter {
    limits: Limits,
    sections: Vec<Pending>,
    names: BTreeSet<String>,
    payload_total: u64,
}

impl StateWriter {
    /// A writer with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer with other limits (the reader must use the same or larger).
    pub fn with_limits(limits: Limits) -> Self {
        StateWriter {
            limits,
            ..Self::default()
        }
    }

    /// Adds a section with a payload the caller produced.
    pub fn add_section(
        &mut self,
        name: &str,
        version: u32,
        encoding: Encoding,
        payload: Vec<u8>,
    ) -> Result<(), StateFileError> {
        self.check_new(name, payload.len() as u64)?;
        self.payload_total += payload.len() as u64;
        self.names.insert(name.to_string());
        let header = SectionHeader {
            name: name.to_string(),
            version,
            encoding: encoding as u16,
            flags: 0,
            payload_len: payload.len() as u64,
        };
        self.sections.push(Pending { header, payload });
        Ok(())
    }

    /// Adds a section of raw bytes.
    pub fn add_raw(
        &mut self,
        name: &str,
        version: u32,
        payload: Vec<u8>,
    ) -> Result<(), StateFileError> {
        self.add_section(name, version, Encoding::Raw, payload)
    }

    /// Adds a section holding `value` encoded with postcard (see
    /// [`crate::codec`]).
    pub fn add_serde<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        version: u32,
        value: &T,
    ) -> Result<(), StateFileError> {
        let payload = crate::codec::encode(name, value)?;
        self.add_section(name, version, Encoding::Postcard, payload)
    }

    /// Refuses a bad or duplicate name and a payload over the caps.
    fn check_new(&self, name: &str, len: u64) -> Result<(), StateFileError> {
        if let Some(reason) = name_problem(name) {
            return Err(StateFileError::InvalidName {
                name: name.to_string(),
                reason,
            });
        }
        if self.names.contains(name) {
            return Err(StateFileError::DuplicateName {
                name: name.to_string(),
            });
        }
        let limit = |reason: String| StateFileError::WriterLimit {
            name: name.to_string(),
            reason,
        };
        if self.sections.len() >= self.limits.max_sections as usize {
            return Err(limit(format!(
                "more than {} sections",
                self.limits.max_sections
            )));
        }
        if len > self.limits.max_section_len {
            return Err(limit(format!(
                "payload of {len} bytes is larger than the limit of {}",
                self.limits.max_section_len
            )));
        }
        if self.payload_total.saturating_add(len) > self.limits.max_payload_total {
            return Err(limit(format!(
                "payloads would add up to {} bytes, more than the limit of {}",
                self.payload_total.saturating_add(len),
                self.limits.max_payload_total
            )));
        }
        Ok(())
    }

    /// Length of the file this writer produces.
    pub fn total_len(&self) -> u64 {
        let headers = (self.sections.len() * SECTION_HEADER_LEN) as u64;
        HEADER_LEN as u64 + headers + self.payload_total
    }

    /// The whole file: header, then every section in the order added.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.total_len() as usize);
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        for s in &self.sections {
            out.extend_from_slice(&s.header.encode());
            out.extend_from_slice(&s.payload);
        }
        let header = Header {
            version: FORMAT_VERSION,
            flags: 0,
            section_count: self.sections.len() as u32,
            total_len: out.len() as u64,
            body_crc: crc32fast::hash(&out[HEADER_LEN..]),
        };
        out[..HEADER_LEN].copy_from_slice(&header.encode());
        out
    }

    /// Writes the file to `path` atomically: a temporary file beside it is
    /// written, synced and renamed over `path`, so a crash leaves either the
    /// old file or the whole new one.
    /// Only a regular file at `path` is replaced; anything else there (a
    /// device node, FIFO, symlink, directory) is refused and left alone.
    pub fn write_to_path(&self, path: &Path) -> Result<(), StateFileError> {
        crate::file::check_replaceable(path).map_err(|e| match e {
            crate::file::OpenError::Io(source) => StateFileError::Io {
                op: "stat",
                path: path.to_path_buf(),
                source,
            },
            crate::file::OpenError::NotRegular(kind) => StateFileError::NotRegular {
                path: path.to_path_buf(),
                kind,
            },
        })?;
        let tmp = temp_path(path);
        let io = |op, p: &Path| {
            let p = p.to_path_buf();
            move |source| StateFileError::Io {
                op,
                path: p,
                source,
            }
        };
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            f.write_all(&self.to_bytes()).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("sync", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io("rename", path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// `<path>.tmp-<pid>` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
