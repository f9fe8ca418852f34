//! The saved state of HCS virtual machines (issue 5).
//!
//! Two files make one saved VM:
//! - the **state file**: a fixed header (magic, format version, flags,
//!   section count, total length, CRC32 of the body, CRC32 of the header)
//!   and named, versioned, typed sections. [`StateWriter`] builds it;
//!   [`StateFile`] validates all of it (caps on every count and length,
//!   both CRCs, exact length) before it hands out a payload. See
//!   [`mod@format`] for the byte layout and [`Limits`] for the caps.
//! - the **memory file**: guest memory written sparsely (untouched and
//!   all-zero pages are holes) by [`memory::save_guest_memory`], mapped
//!   back copy-on-write by [`memory::restore_guest_memory`]. Its
//!   [`memory::MemoryLayout`] goes into a section of the state file.
//!
//! Format compatibility: a reader reads every format version from
//! [`MIN_FORMAT_VERSION`] to [`FORMAT_VERSION`] and refuses newer files by
//! naming both versions. Section versions belong to the code that writes
//! each section ([`Section::check_version`]).

pub mod codec;
mod error;
mod file;
pub mod format;
pub mod memory;
mod reader;
mod writer;

pub use error::StateFileError;
pub use format::{
    Encoding, Limits, FORMAT_VERSION, HEADER_LEN, MAGIC, MIN_FORMAT_VERSION, SECTION_HEADER_LEN,
};
pub use memory::MemoryFileError;
pub use reader::{Section, StateFile};
pub use writer::StateWriter;
