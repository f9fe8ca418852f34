//! The guest-memory file: written sparsely, restored copy-on-write.
//!
//! Saving writes each region at its own offset of one file. Only pages the
//! guest touched and that are not all zero are written; everything else
//! stays a hole, so the file's apparent size is the guest size but its
//! blocks are only the pages with data. The [`MemoryLayout`] (guest address,
//! size, file offset of each region) goes into a section of the state file.
//!
//! Restoring maps each region `MAP_PRIVATE` from the file: no page is read
//! until the guest touches it, and guest writes go to private copies, so
//! restore time does not depend on guest size, the file never changes, and
//! one file can back any number of restored VMs.
//!
//! The memory file must not be truncated or rewritten while a restored VM
//! maps it (a page past a shortened end raises SIGBUS in the VMM), so a
//! save never writes into an existing file: it writes a new one and renames
//! it into place; VMs restored from the old file keep its inode.

mod pages;
mod restore;
mod save;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use restore::{check_memory_tag, restore_guest_memory};
pub use save::{save_guest_memory, save_host_regions, HostRegion, SaveReport};

/// Most regions a layout may have.
pub const MAX_MEMORY_REGIONS: usize = 256;

/// One guest memory region in the memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionLayout {
    /// Guest physical address of the region.
    pub guest_addr: u64,
    /// Size in bytes (a multiple of the page size).
    pub size: u64,
    /// Where the region starts in the memory file (page aligned).
    pub file_offset: u64,
}

/// Where every guest memory region is in the memory file; stored as a
/// section of the state file ([`MemoryLayout::SECTION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLayout {
    /// Page size of the host that saved it.
    pub page_size: u64,
    /// Apparent length of the memory file.
    pub file_len: u64,
    /// The regions, sorted by guest address.
    pub regions: Vec<RegionLayout>,
}

/// Why guest memory could not be saved or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryFileError {
    /// A file operation failed.
    #[error("cannot {op} memory file {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a run of pages failed.
    #[error("cannot write guest pages {guest_addr:#x}..{end:#x} at offset {file_offset:#x} of memory file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// First guest address of the run.
        guest_addr: u64,
        /// End of the run.
        end: u64,
        /// Offset in the file.
        file_offset: u64,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The memory file is not a regular file.
    #[error("memory file {} is a {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A layout (saved or to be saved) is not usable.
    #[error("memory layout: {0}")]
    Layout(String),
    /// The memory file is shorter than the layout says.
    #[error("memory file {} is {len} bytes long, but its layout needs {needed}", path.display())]
    FileTooShort {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// What the layout needs.
        needed: u64,
    },
    /// The memory file's tag is not the state file's.
    #[error("memory file {} does not belong to this state file (its tag differs: a save that was cut short, or the files of two saves mixed); save again", path.display())]
    TagMismatch {
        /// The file.
        path: PathBuf,
    },
    /// Mapping a region failed.
    #[error("cannot map guest region {guest_addr:#x} (+{size:#x}) from offset {file_offset:#x}: {reason}")]
    Map {
        /// Guest address of the region.
        guest_addr: u64,
        /// Its size.
        size: u64,
        /// Its file offset.
        file_offset: u64,
        /// What vm-memory said.
        reason: String,
    },
}

/// The host's page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// What ties a memory file to the state file saved with it: 16 random bytes
/// written at the end of the memory file (after [`MemoryLayout::file_len`],
/// behind [`MemoryTag::MAGIC`]) and in the state file's
/// [`MemoryTag::SECTION`]. A save renames the memory file into place before
/// the state file, so a save cut short between the two renames leaves a new
/// memory file beside the old state file; restore compares the tags and
/// refuses that pair instead of running the old vCPU state on new memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryTag(pub [u8; 16]);

impl MemoryTag {
    /// Name of the state-file section holding the tag.
    pub const SECTION: &'static str = "memory.tag";
    /// Version of that section.
    pub const VERSION: u32 = 1;
    /// What precedes the tag in the memory file.
    pub const MAGIC: [u8; 16] = *b"HCS-MEMORY-TAG\0\0";

    /// A new random tag (getrandom(2)).
    pub fn random() -> std::io::Result<MemoryTag> {
        let mut b = [0u8; 16];
        let mut filled = 0;
        while filled < b.len() {
            let rest = &mut b[filled..];
            // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`,
            // which is valid for writes of that length.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            filled += usize::try_from(n).unwrap_or(0);
        }
        Ok(MemoryTag(b))
    }

    /// The trailer written at `file_len`: magic, then the tag.
    pub fn trailer(&self) -> [u8; 32] {
        let mut t = [0u8; 32];
        t[..16].copy_from_slice(&Self::MAGIC);
        t[16..].copy_from_slice(&self.0);
        t
    }
}

impl MemoryFileError {
    /// What opening or checking `path` for `op` ("open", "stat") failed with.
    pub(crate) fn of_open(
        op: &'static str,
        path: &std::path::Path,
        e: crate::file::OpenError,
    ) -> Self {
        match e {
            crate::file::OpenError::Io(source) => MemoryFileError::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
            crate::file::OpenError::NotRegular(kind) => MemoryFileError::NotRegular {
                path: path.to_path_buf(),
                kind,
            },
        }
    }
}

impl MemoryLayout {
    /// Name of the state-file section holding the layout.
    pub const SECTION: &'static str = "memory.layout";
    /// Version of that section.
    pub const VERSION: u32 = 1;

    /// Total guest memory in the layout.
    pub fn guest_size(&self) -> u64 {
        self.regions
            .iter()
            .fold(0u64, |acc, r| acc.saturating_add(r.size))
    }

    /// Checks a layout read from a file before anything is mapped: page
    /// size, region count, alignment, overflow, order and overlap in guest
    /// space and in the file, and every region inside `file_len`.
    pub fn validate(&self) -> Result<(), MemoryFileError> {
        let page = page_size();
        if self.page_size != page {
            return Err(layout(format!(
                "saved with {}-byte pages, this host has {page}-byte pages",
                self.page_size
            )));
        }
        if self.regions.is_empty() || self.regions.len() > MAX_MEMORY_REGIONS {
            return Err(layout(format!(
                "{} regions; 1..={MAX_MEMORY_REGIONS} are allowed",
                self.regions.len()
            )));
        }
        let mut prev: Option<(u64, u64)> = None;
        for (i, r) in self.regions.iter().enumerate() {
            let ends = self.check_region(i, r, page)?;
            if let Some((guest_end, file_end)) = prev {
                if r.guest_addr < guest_end || r.file_offset < file_end {
                    return Err(layout(format!(
                        "region {i} (guest {:#x}) overlaps or comes before region {}",
                        r.guest_addr,
                        i - 1
                    )));
                }
            }
            prev = Some(ends);
        }
        Ok(())
    }

    /// One region's own checks; returns its guest and file end.
    fn check_region(
        &self,
        i: usize,
        r: &RegionLayout,
        page: u64,
    ) -> Result<(u64, u64), MemoryFileError> {
        let at = |what: &str| layout(format!("region {i} (guest {:#x}): {what}", r.guest_addr));
        if r.size == 0 || !r.size.is_multiple_of(page) || usize::try_from(r.size).is_err() {
            return Err(at(&format!(
                "size {:#x} is not a non-zero multiple of the page size",
                r.size
            )));
        }
        if !r.guest_addr.is_multiple_of(page) {
            return Err(at("guest address is not page aligned"));
        }
        if !r.file_offset.is_multiple_of(page) {
            return Err(at(&format!(
                "file offset {:#x} is not page aligned",
                r.file_offset
            )));
        }
        let guest_end = r
            .guest_addr
            .checked_add(r.size)
            .ok_or_else(|| at("guest address + size overflows"))?;
        let file_end = r
            .file_offset
            .checked_add(r.size)
            .filter(|end| *end <= self.file_len)
            .ok_or_else(|| {
                at(&format!(
                    "file range ends past the file length {:#x}",
                    self.file_len
                ))
            })?;
        Ok((guest_end, file_end))
    }
}

fn layout(reason: String) -> MemoryFileError {
    MemoryFileError::Layout(reason)
}
