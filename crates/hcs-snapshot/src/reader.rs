//! Reading a saved-state file: everything is validated before any payload
//! is handed out.
//!
//! Order of checks: header (magic, version, header CRC, reserved bytes,
//! flags, section count and total length against [`Limits`]), then the
//! data really is that long (no more, no less), then the body CRC, then
//! every section header against the caps and the end of the file. The CRC
//! only catches corruption: a hostile file can carry a valid CRC, so the
//! section walk bounds-checks everything again. Memory used is bounded by
//! the bytes actually present and by [`Limits::max_file_len`], never by a
//! length the file claims.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::StateFileError;
use crate::format::{Encoding, Header, Limits, SectionHeader, HEADER_LEN, SECTION_HEADER_LEN};

/// First buffer reserved for a body read from a stream; it grows only as
/// data arrives.
const INITIAL_READ: u64 = 1 << 20;

/// Where one section is in the file.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    version: u32,
    encoding: Encoding,
    header_offset: u64,
    payload: Range<usize>,
}

/// A validated saved-state file held in memory.
#[derive(Debug)]
pub struct StateFile {
    data: Vec<u8>,
    header: Header,
    entries: Vec<Entry>,
    by_name: BTreeMap<String, usize>,
}

/// One section of a [`StateFile`].
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its version, as its writer set it.
    pub version: u32,
    /// How its payload is encoded.
    pub encoding: Encoding,
    /// Offset of the payload in the file.
    pub offset: u64,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Section<'a> {
    /// Refuses a section newer than `supported`, the newest version the
    /// caller can read.
    pub fn check_version(&self, supported: u32) -> Result<(), StateFileError> {
        if self.version > supported {
            return Err(StateFileError::SectionVersionNewer {
                name: self.name.to_string(),
                found: self.version,
                supported,
            });
        }
        Ok(())
    }

    /// Decodes a postcard payload into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, StateFileError> {
        if self.encoding != Encoding::Postcard {
            return Err(StateFileError::WrongEncoding {
                name: self.name.to_string(),
                found: self.encoding,
                expected: Encoding::Postcard,
            });
        }
        crate::codec::decode(self.name, self.offset, self.payload)
    }
}

impl StateFile {
    /// Reads and validates the file at `path` with the default limits.
    pub fn open(path: &Path) -> Result<StateFile, StateFileError> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// Reads and validates the file at `path`.
    pub fn open_with_limits(path: &Path, limits: &Limits) -> Result<StateFile, StateFileError> {
        // Never blocks on a FIFO; symlinks are followed (the path is the
        // client's, and reading through one harms nothing).
        let file = crate::file::open_regular(path, false).map_err(|e| match e {
            crate::file::OpenError::Io(source) => StateFileError::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            },
            crate::file::OpenError::NotRegular(kind) => StateFileError::NotRegular {
                path: path.to_path_buf(),
                kind,
            },
        })?;
        Self::read_from(file, limits)
    }

    /// Reads and validates a file from `reader`. It reads the header first
    /// and then at most the length the (valid) header declares.
    pub fn read_from<R: Read>(mut reader: R, limits: &Limits) -> Result<StateFile, StateFileError> {
        let mut hbuf = [0u8; HEADER_LEN];
        let got = read_full(&mut reader, &mut hbuf, 0)?;
        if got < HEADER_LEN {
            return Err(truncated("file header", 0, HEADER_LEN as u64, got as u64));
        }
        let header = Header::decode(&hbuf, limits)?;
        let body_len = header.total_len - HEADER_LEN as u64;
        let mut data = Vec::with_capacity(HEADER_LEN + body_len.min(INITIAL_READ) as usize);
        data.extend_from_slice(&hbuf);
        (&mut reader)
            .take(body_len)
            .read_to_end(&mut data)
            .map_err(|source| StateFileError::Read {
                offset: HEADER_LEN as u64,
                source,
            })?;
        check_length(&header, data.len() as u64)?;
        let mut probe = [0u8; 1];
        if read_full(&mut reader, &mut probe, header.total_len)? != 0 {
            return Err(StateFileError::DataAfterEnd {
                offset: header.total_len,
            });
        }
        Self::index(data, header, limits)
    }

    /// Validates a whole file already in memory.
    pub fn from_bytes(data: Vec<u8>, limits: &Limits) -> Result<StateFile, StateFileError> {
        let hbuf: [u8; HEADER_LEN] = match data.get(..HEADER_LEN).map(<[u8; HEADER_LEN]>::try_from)
        {
            Some(Ok(h)) => h,
            _ => {
                return Err(truncated(
                    "file header",
                    0,
                    HEADER_LEN as u64,
                    data.len() as u64,
                ))
            }
        };
        let header = Header::decode(&hbuf, limits)?;
        check_length(&header, data.len() as u64)?;
        Self::index(data, header, limits)
    }

    /// Checks the body CRC and walks the sections.
    fn index(data: Vec<u8>, header: Header, limits: &Limits) -> Result<StateFile, StateFileError> {
        let body = data.get(HEADER_LEN..).unwrap_or_default();
        let computed = crc32fast::hash(body);
        if computed != header.body_crc {
            return Err(StateFileError::BodyCrc {
                end: header.total_len,
                stored: header.body_crc,
                computed,
            });
        }
        let entries = walk_sections(&data, header.section_count, limits)?;
        let by_name = name_index(&entries)?;
        Ok(StateFile {
            data,
            header,
            entries,
            by_name,
        })
    }

    /// The file's format version.
    pub fn format_version(&self) -> u32 {
        self.header.version
    }

    /// Number of sections.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no sections.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every section, in file order.
    pub fn sections(&self) -> impl Iterator<Item = Section<'_>> {
        self.entries.iter().map(|e| self.view(e))
    }

    /// The section called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Section<'_>> {
        self.by_name
            .get(name)
            .and_then(|i| self.entries.get(*i))
            .map(|e| self.view(e))
    }

    /// The section called `name`, or [`StateFileError::SectionNotFound`].
    pub fn section(&self, name: &str) -> Result<Section<'_>, StateFileError> {
        self.get(name)
            .ok_or_else(|| StateFileError::SectionNotFound {
                name: name.to_string(),
            })
    }

    /// Decodes section `name` (postcard), refusing a version newer than
    /// `supported`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        name: &str,
        supported: u32,
    ) -> Result<T, StateFileError> {
        let section = self.section(name)?;
        section.check_version(supported)?;
        section.decode()
    }

    fn view<'a>(&'a self, e: &'a Entry) -> Section<'a> {
        Section {
            name: &e.name,
            version: e.version,
            encoding: e.encoding,
            offset: e.payload.start as u64,
            payload: self.data.get(e.payload.clone()).unwrap_or_default(),
        }
    }
}

fn truncated(what: &str, start: u64, end: u64, len: u64) -> StateFileError {
    StateFileError::Truncated {
        what: what.to_string(),
        start,
        end,
        len,
    }
}

/// The data must be exactly as long as the header says.
fn check_length(header: &Header, actual: u64) -> Result<(), StateFileError> {
    if actual < header.total_len {
        return Err(truncated(
            "state body",
            HEADER_LEN as u64,
            header.total_len,
            actual,
        ));
    }
    if actual > header.total_len {
        return Err(StateFileError::DataAfterEnd {
            offset: header.total_len,
        });
    }
    Ok(())
}

/// Reads until `buf` is full or the end of the data; returns the count.
fn read_full<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    offset: u64,
) -> Result<usize, StateFileError> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(StateFileError::Read {
                    offset: offset + got as u64,
                    source,
                })
            }
        }
    }
    Ok(got)
}

/// Walks `count` sections after the header, checking each against the
/// limits and the end of `data`; the last must end exactly at the end.
fn walk_sections(data: &[u8], count: u32, limits: &Limits) -> Result<Vec<Entry>, StateFileError> {
    // `count` is at most `limits.max_sections` (checked with the header).
    let mut entries = Vec::with_capacity(count.min(limits.max_sections) as usize);
    let mut offset = HEADER_LEN;
    let mut total = 0u64;
    for index in 0..count {
        let entry = read_section(data, index, offset, limits, &mut total)?;
        offset = entry.payload.end;
        entries.push(entry);
    }
    if offset < data.len() {
        return Err(StateFileError::TrailingBytes {
            offset: offset as u64,
            count: (data.len() - offset) as u64,
        });
    }
    Ok(entries)
}

/// Reads the section whose header starts at `offset`.
fn read_section(
    data: &[u8],
    index: u32,
    offset: usize,
    limits: &Limits,
    total: &mut u64,
) -> Result<Entry, StateFileError> {
    let len = data.len() as u64;
    let what = || format!("header of section #{index}");
    let end = offset + SECTION_HEADER_LEN;
    let raw = data
        .get(offset..end)
        .ok_or_else(|| truncated(&what(), offset as u64, end as u64, len))?;
    let sh = SectionHeader::decode(raw).map_err(|reason| StateFileError::BadSection {
        index,
        offset: offset as u64,
        reason,
    })?;
    let encoding = check_section_header(&sh, index, offset as u64)?;
    let payload = payload_range(&sh, offset, data.len(), limits, total)?;
    Ok(Entry {
        name: sh.name,
        version: sh.version,
        encoding,
        header_offset: offset as u64,
        payload,
    })
}

/// Flags must be zero and the encoding known.
fn check_section_header(
    sh: &SectionHeader,
    index: u32,
    offset: u64,
) -> Result<Encoding, StateFileError> {
    if sh.flags != 0 {
        return Err(StateFileError::BadSection {
            index,
            offset,
            reason: format!(
                "section {:?} has unknown flags {:#x} at offset {}",
                sh.name,
                sh.flags,
                offset + 38
            ),
        });
    }
    Encoding::from_u16(sh.encoding).ok_or_else(|| StateFileError::UnknownEncoding {
        name: sh.name.clone(),
        offset,
        encoding: sh.encoding,
    })
}

/// The payload's byte range, after checking its length against the caps
/// and the bytes that are really there.
fn payload_range(
    sh: &SectionHeader,
    header_offset: usize,
    data_len: usize,
    limits: &Limits,
    total: &mut u64,
) -> Result<Range<usize>, StateFileError> {
    let name = || sh.name.clone();
    let offset = header_offset as u64;
    if sh.payload_len > limits.max_section_len {
        return Err(StateFileError::SectionTooLarge {
            name: name(),
            offset,
            len: sh.payload_len,
            max: limits.max_section_len,
        });
    }
    let start = header_offset + SECTION_HEADER_LEN;
    let remaining = (data_len - start) as u64;
    if sh.payload_len > remaining {
        return Err(StateFileError::SectionOverrun {
            name: name(),
            offset,
            len: sh.payload_len,
            remaining,
        });
    }
    *total += sh.payload_len;
    if *total > limits.max_payload_total {
        return Err(StateFileError::PayloadTotalTooLarge {
            name: name(),
            offset,
            total: *total,
            max: limits.max_payload_total,
        });
    }
    Ok(start..start + sh.payload_len as usize)
}

/// Name → index; refuses duplicate names.
fn name_index(entries: &[Entry]) -> Result<BTreeMap<String, usize>, StateFileError> {
    let mut map = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(first) = map.insert(e.name.clone(), i) {
            let first = entries.get(first).map(|f| f.header_offset).unwrap_or(0);
            return Err(StateFileError::DuplicateSection {
                name: e.name.clone(),
                offset: e.header_offset,
                first,
            });
        }
    }
    Ok(map)
}
