//! Errors of the saved-state file: each says what is wrong and where
//! (byte offset, section name).

use std::path::PathBuf;

/// Why a saved-state file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// A file operation failed.
    #[error("cannot {op} state file {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write", "rename", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a regular file.
    #[error("state file {} is a {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Reading from a caller's reader failed.
    #[error("cannot read the state at offset {offset}: {source}")]
    Read {
        /// Where the read started.
        offset: u64,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file ends before a structure it declares.
    #[error("state file is truncated: the {what} needs bytes {start}..{end} but the file ends at offset {len}")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        start: u64,
        /// Where it should end.
        end: u64,
        /// Where the data ended.
        len: u64,
    },
    /// The first eight bytes are not [`crate::MAGIC`].
    #[error("not an HCS saved-state file: bytes 0..8 are {found:02x?}, expected \"HCSSTATE\"")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The file was written by a newer format version.
    #[error("state file format version {found} (offset 8) is newer than this reader, which reads versions up to {supported}; restore it with a newer HCS")]
    NewerVersion {
        /// The file's version.
        found: u32,
        /// The newest this reader knows.
        supported: u32,
    },
    /// The file's format version is older than any this reader knows.
    #[error("state file format version {found} (offset 8) is older than the oldest this reader knows ({min})")]
    OlderVersion {
        /// The file's version.
        found: u32,
        /// The oldest this reader knows.
        min: u32,
    },
    /// The header checksum does not match.
    #[error("state file header (bytes 0..44) is corrupt: its CRC32 at offset 44 is {stored:#010x}, the bytes give {computed:#010x}")]
    HeaderCrc {
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Header flags this reader does not know.
    #[error("state file header has unknown flags {flags:#x} at offset 12")]
    UnknownFlags {
        /// The flags.
        flags: u32,
    },
    /// A reserved header byte is not zero.
    #[error("state file header has a non-zero reserved byte at offset {offset}")]
    Reserved {
        /// Its offset.
        offset: u64,
    },
    /// More sections than the limit.
    #[error("state file declares {count} sections (offset 16), more than the limit of {max}")]
    TooManySections {
        /// Declared count.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// The total length cannot hold the declared section headers.
    #[error("state file declares a total length of {declared} bytes (offset 24), but {count} sections need at least {min}")]
    TotalTooSmall {
        /// Declared total length.
        declared: u64,
        /// Declared section count.
        count: u32,
        /// Smallest possible total for that count.
        min: u64,
    },
    /// The total length exceeds the limit.
    #[error("state file declares a total length of {declared} bytes (offset 24), more than the limit of {max}")]
    FileTooLarge {
        /// Declared total length.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// Data continues after the declared total length.
    #[error("state file has data after its declared end at offset {offset}")]
    DataAfterEnd {
        /// The declared end.
        offset: u64,
    },
    /// The body checksum does not match.
    #[error("state file body (bytes 48..{end}) is corrupt: its CRC32 at offset 32 is {stored:#010x}, the bytes give {computed:#010x}")]
    BodyCrc {
        /// End of the body.
        end: u64,
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A section header is malformed (bad name, unknown flags).
    #[error("section #{index} at offset {offset}: {reason}")]
    BadSection {
        /// Index of the section.
        index: u32,
        /// Offset of its header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A section's encoding is unknown.
    #[error("section {name:?} at offset {offset}: unknown encoding {encoding}")]
    UnknownEncoding {
        /// Section name.
        name: String,
        /// Offset of its header.
        offset: u64,
        /// The value found.
        encoding: u16,
    },
    /// A section's payload is larger than the per-section limit.
    #[error("section {name:?} at offset {offset}: its payload of {len} bytes is larger than the limit of {max}")]
    SectionTooLarge {
        /// Section name.
        name: String,
        /// Offset of its header.
        offset: u64,
        /// Declared payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A section's payload runs past the end of the file.
    #[error("section {name:?} at offset {offset}: its payload of {len} bytes runs past the end of the file ({remaining} bytes left)")]
    SectionOverrun {
        /// Section name.
        name: String,
        /// Offset of its header.
        offset: u64,
        /// Declared payload length.
        len: u64,
        /// Bytes left after its header.
        remaining: u64,
    },
    /// The payloads add up to more than the total limit.
    #[error("section {name:?} at offset {offset}: the payloads add up to {total} bytes, more than the limit of {max}")]
    PayloadTotalTooLarge {
        /// Section where the limit was crossed.
        name: String,
        /// Offset of its header.
        offset: u64,
        /// Sum so far.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// Two sections share a name.
    #[error("section {name:?} at offset {offset} appears twice (first at offset {first})")]
    DuplicateSection {
        /// Section name.
        name: String,
        /// Offset of the second one.
        offset: u64,
        /// Offset of the first one.
        first: u64,
    },
    /// Bytes left between the last section and the declared end.
    #[error("state file has {count} stray bytes at offset {offset}, after its last section")]
    TrailingBytes {
        /// Where they start.
        offset: u64,
        /// How many.
        count: u64,
    },
    /// No section has the requested name.
    #[error("state file has no section {name:?}")]
    SectionNotFound {
        /// The name asked for.
        name: String,
    },
    /// A section is newer than its reader understands.
    #[error(
        "section {name:?} has version {found}, newer than this build understands ({supported})"
    )]
    SectionVersionNewer {
        /// Section name.
        name: String,
        /// The section's version.
        found: u32,
        /// Newest version the caller understands.
        supported: u32,
    },
    /// A section has a different encoding than the caller expects.
    #[error("section {name:?} is encoded as {found}, expected {expected}")]
    WrongEncoding {
        /// Section name.
        name: String,
        /// The section's encoding.
        found: crate::Encoding,
        /// The encoding asked for.
        expected: crate::Encoding,
    },
    /// A postcard payload does not decode into the requested type.
    #[error("section {name:?} (payload at offset {offset}): cannot decode: {source}")]
    Decode {
        /// Section name.
        name: String,
        /// Offset of the payload.
        offset: u64,
        /// The decoder's error.
        #[source]
        source: postcard::Error,
    },
    /// A postcard payload has bytes after the decoded value.
    #[error("section {name:?}: {count} bytes are left over after decoding its payload")]
    DecodeTrailing {
        /// Section name.
        name: String,
        /// Bytes left over.
        count: usize,
    },
    /// A value could not be encoded.
    #[error("section {name:?}: cannot encode: {source}")]
    Encode {
        /// Section name.
        name: String,
        /// The encoder's error.
        #[source]
        source: postcard::Error,
    },
    /// The writer was given a name it cannot store.
    #[error("invalid section name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The writer was given the same name twice.
    #[error("section {name:?} was added twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The writer would exceed a limit the reader enforces.
    #[error("section {name:?}: {reason}")]
    WriterLimit {
        /// Section being added.
        name: String,
        /// Which limit.
        reason: String,
    },
}
