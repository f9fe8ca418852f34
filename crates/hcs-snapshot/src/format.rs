//! The on-disk layout of a saved-state file: constants, caps and the
//! fixed-size header and section header codecs.
//!
//! ```text
//! offset  size  file header (HEADER_LEN = 48 bytes, little-endian)
//!      0     8  magic "HCSSTATE"
//!      8     4  format version (FORMAT_VERSION); never moves, so any
//!               reader can name the version of a file it cannot read
//!     12     4  flags (none defined: must be 0)
//!     16     4  number of sections
//!     20     4  reserved (0)
//!     24     8  total length of the file, header included
//!     32     4  CRC32 of everything after the header (bytes 48..total)
//!     36     8  reserved (0)
//!     44     4  CRC32 of header bytes 0..44
//!
//!         section header (SECTION_HEADER_LEN = 48 bytes), then its payload
//!     +0    32  name: 1..=32 bytes of [A-Za-z0-9._:/-], NUL padded
//!    +32     4  section version (owned by whoever writes the section)
//!    +36     2  encoding (0 raw bytes, 1 postcard, 2 JSON)
//!    +38     2  flags (none defined: must be 0)
//!    +40     8  payload length
//!    +48     n  payload
//! ```
//!
//! Sections follow one another without padding; the last one ends exactly
//! at the total length.

use crate::error::StateFileError;

/// The first eight bytes of every saved-state file.
pub const MAGIC: [u8; 8] = *b"HCSSTATE";
/// The format version this crate writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The oldest format version this crate reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// Size of the fixed file header.
pub const HEADER_LEN: usize = 48;
/// Size of the fixed header in front of every section payload.
pub const SECTION_HEADER_LEN: usize = 48;
/// Longest section name, in bytes.
pub const SECTION_NAME_MAX: usize = 32;

/// Byte range of the header covered by the header CRC.
const HEADER_CRC_AT: usize = 44;

/// Default cap on the number of sections.
pub const DEFAULT_MAX_SECTIONS: u32 = 4096;
/// Default cap on one section's payload (16 MiB).
pub const DEFAULT_MAX_SECTION_LEN: u64 = 16 << 20;
/// Default cap on all payloads together (64 MiB of device state; guest
/// memory lives in its own file).
pub const DEFAULT_MAX_PAYLOAD_TOTAL: u64 = 64 << 20;

/// Size caps checked by the writer and by the reader before it trusts any
/// length read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most sections a file may have.
    pub max_sections: u32,
    /// Largest payload of one section, in bytes.
    pub max_section_len: u64,
    /// Largest sum of all payloads, in bytes.
    pub max_payload_total: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sections: DEFAULT_MAX_SECTIONS,
            max_section_len: DEFAULT_MAX_SECTION_LEN,
            max_payload_total: DEFAULT_MAX_PAYLOAD_TOTAL,
        }
    }
}

impl Limits {
    /// The largest file these limits allow: header, every section header
    /// and the payload total.
    pub fn max_file_len(&self) -> u64 {
        let headers = u64::from(self.max_sections).saturating_mul(SECTION_HEADER_LEN as u64);
        (HEADER_LEN as u64)
            .saturating_add(headers)
            .saturating_add(self.max_payload_total)
    }
}

/// How a section's payload is encoded. The reader refuses values it does not
/// know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Encoding {
    /// Bytes the caller interprets itself.
    Raw = 0,
    /// postcard 1.x (serde); see [`crate::codec`].
    Postcard = 1,
    /// UTF-8 JSON, e.g. a copy of the compute system document.
    Json = 2,
}

impl Encoding {
    /// The encoding stored as `value`, if it is one this crate knows.
    pub fn from_u16(value: u16) -> Option<Encoding> {
        match value {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::Postcard),
            2 => Some(Encoding::Json),
            _ => None,
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Encoding::Raw => "raw",
            Encoding::Postcard => "postcard",
            Encoding::Json => "json",
        };
        f.write_str(name)
    }
}

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version of the file.
    pub version: u32,
    /// Header flags (none defined).
    pub flags: u32,
    /// Number of sections that follow.
    pub section_count: u32,
    /// Length of the whole file, header included.
    pub total_len: u64,
    /// CRC32 of bytes `HEADER_LEN..total_len`.
    pub body_crc: u32,
}

/// Reads a little-endian u32 at `at`; `None` past the end.
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian u16 at `at`; `None` past the end.
pub(crate) fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian u64 at `at`; `None` past the end.
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

impl Header {
    /// The 48 header bytes, CRC included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..20].copy_from_slice(&self.section_count.to_le_bytes());
        h[24..32].copy_from_slice(&self.total_len.to_le_bytes());
        h[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..HEADER_CRC_AT]);
        h[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and validates a header: magic, version, header CRC, reserved
    /// bytes, flags, and the section count and total length against `limits`.
    pub fn decode(h: &[u8; HEADER_LEN], limits: &Limits) -> Result<Header, StateFileError> {
        check_magic(h)?;
        let version = le_u32(h, 8).unwrap_or(0);
        check_version(version)?;
        check_header_crc(h)?;
        check_reserved(h, 20..24)?;
        check_reserved(h, 36..44)?;
        let flags = le_u32(h, 12).unwrap_or(0);
        if flags != 0 {
            return Err(StateFileError::UnknownFlags { flags });
        }
        let header = Header {
            version,
            flags,
            section_count: le_u32(h, 16).unwrap_or(0),
            total_len: le_u64(h, 24).unwrap_or(0),
            body_crc: le_u32(h, 32).unwrap_or(0),
        };
        header.check_sizes(limits)?;
        Ok(header)
    }

    /// Section count and total length within `limits` and consistent with
    /// each other.
    fn check_sizes(&self, limits: &Limits) -> Result<(), StateFileError> {
        if self.section_count > limits.max_sections {
            return Err(StateFileError::TooManySections {
                count: self.section_count,
                max: limits.max_sections,
            });
        }
        let min = HEADER_LEN as u64 + u64::from(self.section_count) * SECTION_HEADER_LEN as u64;
        if self.total_len < min {
            return Err(StateFileError::TotalTooSmall {
                declared: self.total_len,
                count: self.section_count,
                min,
            });
        }
        let max = limits.max_file_len();
        if self.total_len > max {
            return Err(StateFileError::FileTooLarge {
                declared: self.total_len,
                max,
            });
        }
        Ok(())
    }
}

fn check_magic(h: &[u8; HEADER_LEN]) -> Result<(), StateFileError> {
    let mut found = [0u8; 8];
    found.copy_from_slice(&h[0..8]);
    if found != MAGIC {
        return Err(StateFileError::BadMagic { found });
    }
    Ok(())
}

/// The version is checked before the header CRC: a newer writer may lay
/// out the rest of its header differently, and the user should hear about
/// the version, not about a checksum.
fn check_version(version: u32) -> Result<(), StateFileError> {
    if version > FORMAT_VERSION {
        return Err(StateFileError::NewerVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < MIN_FORMAT_VERSION {
        return Err(StateFileError::OlderVersion {
            found: version,
            min: MIN_FORMAT_VERSION,
        });
    }
    Ok(())
}

fn check_header_crc(h: &[u8; HEADER_LEN]) -> Result<(), StateFileError> {
    let stored = le_u32(h, HEADER_CRC_AT).unwrap_or(0);
    let computed = crc32fast::hash(&h[..HEADER_CRC_AT]);
    if stored != computed {
        return Err(StateFileError::HeaderCrc { stored, computed });
    }
    Ok(())
}

fn check_reserved(
    h: &[u8; HEADER_LEN],
    range: std::ops::Range<usize>,
) -> Result<(), StateFileError> {
    let start = range.start;
    match h[range].iter().position(|b| *b != 0) {
        Some(i) => Err(StateFileError::Reserved {
            offset: (start + i) as u64,
        }),
        None => Ok(()),
    }
}

/// Why `name` is not a valid section name, or `None` when it is.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > SECTION_NAME_MAX {
        return Some(format!(
            "the name is {} bytes long, more than {SECTION_NAME_MAX}",
            name.len()
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
    name.chars()
        .find(|c| !ok(*c))
        .map(|c| format!("the name contains {c:?}; allowed are A-Z a-z 0-9 . _ : / -"))
}

/// One decoded section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionHeader {
    pub name: String,
    pub version: u32,
    pub encoding: u16,
    pub flags: u16,
    pub payload_len: u64,
}

impl SectionHeader {
    /// The 48 bytes of this section header.
    pub fn encode(&self) -> [u8; SECTION_HEADER_LEN] {
        let mut h = [0u8; SECTION_HEADER_LEN];
        let name = self.name.as_bytes();
        let n = name.len().min(SECTION_NAME_MAX);
        h[..n].copy_from_slice(&name[..n]);
        h[32..36].copy_from_slice(&self.version.to_le_bytes());
        h[36..38].copy_from_slice(&self.encoding.to_le_bytes());
        h[38..40].copy_from_slice(&self.flags.to_le_bytes());
        h[40..48].copy_from_slice(&self.payload_len.to_le_bytes());
        h
    }

    /// Decodes a section header; the name must be valid (NUL padding only
    /// after it), everything else is checked by the caller.
    pub fn decode(h: &[u8]) -> Result<SectionHeader, String> {
        let raw = h
            .get(..SECTION_NAME_MAX)
            .ok_or("the section header is short")?;
        let len = raw.iter().position(|b| *b == 0).unwrap_or(SECTION_NAME_MAX);
        if raw[len..].iter().any(|b| *b != 0) {
            return Err("the name field has bytes after its NUL padding".into());
        }
        let name =
            std::str::from_utf8(&raw[..len]).map_err(|_| "the name is not UTF-8".to_string())?;
        if let Some(problem) = name_problem(name) {
            return Err(problem);
        }
        let field = |v: Option<u64>| v.ok_or_else(|| "the section header is short".to_string());
        Ok(SectionHeader {
            name: name.to_string(),
            version: field(le_u32(h, 32).map(u64::from))? as u32,
            encoding: field(le_u16(h, 36).map(u64::from))? as u16,
            flags: field(le_u16(h, 38).map(u64::from))? as u16,
            payload_len: field(le_u64(h, 40))?,
        })
    }
}
