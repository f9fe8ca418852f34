//! Mapping a memory file back as guest memory, copy-on-write.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use super::{MemoryFileError, MemoryLayout, RegionLayout};

/// Maps the memory file at `path` as guest memory laid out as `layout`.
///
/// Each region is an `mmap(MAP_PRIVATE | MAP_NORESERVE)` of its file range:
/// nothing is read now (so this takes the same time for any guest size),
/// pages load from the page cache when first touched, and writes go to
/// private copies, so the file never changes and can be restored again.
/// The file is opened read-only, which `MAP_PRIVATE` allows even for a
/// writable mapping; anything but a regular file (a FIFO, a device, a
/// symlink) is refused without blocking.
pub fn restore_guest_memory(
    path: &Path,
    layout: &MemoryLayout,
) -> Result<GuestMemoryMmap, MemoryFileError> {
    layout.validate()?;
    let io = |op| {
        move |source| MemoryFileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    // A FIFO would block the open forever and a device is not a memory
    // file: only a regular file, and not through a symlink (save always
    // makes a regular file next to the state file).
    let file: File = crate::file::open_regular(path, true)
        .map_err(|e| MemoryFileError::of_open("open", path, e))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    if len < layout.file_len {
        return Err(MemoryFileError::FileTooShort {
            path: path.to_path_buf(),
            len,
            needed: layout.file_len,
        });
    }
    let file = Arc::new(file);
    let regions = layout
        .regions
        .iter()
        .map(|r| map_region(&file, r))
        .collect::<Result<Vec<_>, _>>()?;
    GuestMemoryMmap::from_regions(regions).map_err(|e| MemoryFileError::Layout(e.to_string()))
}

/// Check that the memory file at `path` carries `tag` behind its regions
/// (see [`super::MemoryTag`]).
pub fn check_memory_tag(
    path: &Path,
    layout: &MemoryLayout,
    tag: &super::MemoryTag,
) -> Result<(), MemoryFileError> {
    let file = crate::file::open_regular(path, true)
        .map_err(|e| MemoryFileError::of_open("open", path, e))?;
    let mut got = [0u8; 32];
    match std::os::unix::fs::FileExt::read_exact_at(&file, &mut got, layout.file_len) {
        Ok(()) if got == tag.trailer() => Ok(()),
        Ok(()) => Err(MemoryFileError::TagMismatch {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(MemoryFileError::TagMismatch {
                path: path.to_path_buf(),
            })
        }
        Err(source) => Err(MemoryFileError::Io {
            op: "read the tag of",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One region, mapped private from its file range.
fn map_region(file: &Arc<File>, r: &RegionLayout) -> Result<GuestRegionMmap, MemoryFileError> {
    let fail = |reason: String| MemoryFileError::Map {
        guest_addr: r.guest_addr,
        size: r.size,
        file_offset: r.file_offset,
        reason,
    };
    // `validate` checked that the size fits in usize.
    let size = usize::try_from(r.size).map_err(|e| fail(e.to_string()))?;
    let offset = FileOffset::from_arc(Arc::clone(file), r.file_offset);
    let mapping = MmapRegion::build(
        Some(offset),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_NORESERVE,
    )
    .map_err(|e| fail(e.to_string()))?;
    GuestRegionMmap::new(mapping, GuestAddress(r.guest_addr))
        .ok_or_else(|| fail("guest address + size overflows".into()))
}
