//! Which pages of a mapping hold data, and whether a page is all zero.
//!
//! Touched pages come from `/proc/self/pagemap`, not `mincore(2)`:
//! - mincore reports whether a page is *in RAM*. An anonymous page the
//!   kernel swapped out reads as "not resident", so a mincore-based save
//!   would silently drop guest data under memory pressure (Firecracker
//!   documents this for its mincore diff snapshots; e2b hit it as snapshot
//!   corruption). pagemap has a "present" bit *and* a "swapped" bit per
//!   page table entry, and we take both.
//! - For a file-backed mapping (a restored VM's `MAP_PRIVATE` memory file,
//!   or a memfd), mincore reports page-cache residency, which says nothing
//!   about whether the page holds data. There the data not yet faulted in
//!   is in the backing file, found with `lseek(SEEK_DATA/SEEK_HOLE)`; pages
//!   the guest wrote are private copies, present or swapped in pagemap. The
//!   union of the two is every page that can be non-zero.
//!
//! The flag bits of pagemap are readable without privileges (only the PFN
//! is hidden). If pagemap cannot be read, every page counts as touched: the
//! save is slower but still correct, and the zero check still leaves holes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Pages looked up per pagemap read (8 bytes each: 64 KiB per read).
pub(crate) const CHUNK_PAGES: usize = 8192;

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;

/// Opens `/proc/self/pagemap`, or `None` where it is not available.
pub(crate) fn open_pagemap() -> Option<File> {
    File::open("/proc/self/pagemap").ok()
}

/// For pages `first..first + out.len()` of the mapping at `host` (page
/// aligned), sets `out[i]` when page `first + i` is present or swapped.
/// Without pagemap, or if the read fails, every page is marked.
pub(crate) fn mark_mapped(
    pagemap: Option<&File>,
    host: usize,
    first: usize,
    page: usize,
    out: &mut [bool],
) {
    let Some(pm) = pagemap else {
        out.fill(true);
        return;
    };
    let mut buf = vec![0u8; out.len() * 8];
    let vpn = (host / page + first) as u64;
    if pm.read_exact_at(&mut buf, vpn * 8).is_err() {
        out.fill(true);
        return;
    }
    for (flag, entry) in out.iter_mut().zip(buf.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(entry);
        let e = u64::from_ne_bytes(b);
        *flag |= e & (PM_PRESENT | PM_SWAPPED) != 0;
    }
}

/// For a region backed by `file` from `start`, marks the pages of chunk
/// `first..first + out.len()` that overlap data (not holes) in the file.
/// Where the file system cannot tell, all of its pages count as data.
pub(crate) fn mark_file_data(file: &File, start: u64, first: usize, page: usize, out: &mut [bool]) {
    let lo = start + (first * page) as u64;
    let hi = lo + (out.len() * page) as u64;
    let mut pos = lo;
    while pos < hi {
        let Some(data) = seek(file, pos, libc::SEEK_DATA) else {
            return; // ENXIO: no data at or after `pos`
        };
        if data >= hi {
            return;
        }
        let hole = seek(file, data, libc::SEEK_HOLE).unwrap_or(hi).min(hi);
        let a = ((data - lo) / page as u64) as usize;
        let b = (hole - lo).div_ceil(page as u64) as usize;
        for flag in out.iter_mut().take(b).skip(a) {
            *flag = true;
        }
        pos = hole.max(data + 1);
    }
}

/// `lseek(fd, pos, whence)`, `None` on error (ENXIO: nothing after `pos`).
fn seek(file: &File, pos: u64, whence: libc::c_int) -> Option<u64> {
    let pos = libc::off_t::try_from(pos).ok()?;
    // SAFETY: lseek on an owned, open descriptor; it changes only the file
    // position, which nothing else in this crate relies on (writes use
    // pwrite).
    let r = unsafe { libc::lseek(file.as_raw_fd(), pos, whence) };
    u64::try_from(r).ok()
}

/// Whether the page at `ptr` (`len` bytes, 8-byte aligned) is all zero.
/// Stops at the first non-zero word, so pages with data cost a few loads;
/// only zero pages are read in full.
///
/// # Safety
/// `ptr..ptr + len` must be readable memory of this process for the whole
/// call and `ptr` 8-byte aligned.
pub(crate) unsafe fn page_is_zero(ptr: *const u8, len: usize) -> bool {
    let words = ptr.cast::<u64>();
    for i in 0..len / 8 {
        // SAFETY: `i * 8 < len` and the caller guarantees `ptr..ptr+len` is
        // readable and aligned. Guest memory is read volatile, as
        // vm-memory does, since the compiler must not assume it is ours.
        if unsafe { std::ptr::read_volatile(words.wrapping_add(i)) } != 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    const PAGE: usize = 4096;

    #[test]
    fn file_data_marks_exactly_the_pages_with_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .expect("create");
        file.set_len(64 * PAGE as u64).expect("len");
        file.write_all_at(&[1u8; PAGE], 10 * PAGE as u64)
            .expect("page 10");
        file.write_all_at(&[1u8; 2 * PAGE], 40 * PAGE as u64)
            .expect("pages 40, 41");
        // The region starts at file page 8; look at its pages 0..40.
        let mut flags = vec![false; 40];
        mark_file_data(&file, 8 * PAGE as u64, 0, PAGE, &mut flags);
        let set: Vec<usize> = (0..40).filter(|i| flags[*i]).collect();
        assert_eq!(set, vec![2, 32, 33]);
        // A chunk that starts past the first data.
        let mut flags = vec![false; 8];
        mark_file_data(&file, 8 * PAGE as u64, 30, PAGE, &mut flags);
        let set: Vec<usize> = (0..8).filter(|i| flags[*i]).collect();
        assert_eq!(set, vec![2, 3]);
    }

    #[test]
    fn without_pagemap_every_page_counts() {
        let mut flags = vec![false; 5];
        mark_mapped(None, 0x1000_0000, 0, PAGE, &mut flags);
        assert!(flags.iter().all(|f| *f));
    }

    #[test]
    fn pagemap_sees_written_pages_only() {
        let mut buf = vec![0u64; 16 * PAGE / 8 + PAGE / 8];
        let base = (buf.as_mut_ptr() as usize).next_multiple_of(PAGE);
        let pm = open_pagemap().expect("pagemap");
        let mut flags = vec![false; 16];
        mark_mapped(Some(&pm), base, 0, PAGE, &mut flags);
        // A heap buffer: some pages may already be present, but a written
        // one must be.
        let i = (base - buf.as_ptr() as usize) / 8 + 3 * PAGE / 8;
        buf[i] = 7;
        let mut after = vec![false; 16];
        mark_mapped(Some(&pm), base, 0, PAGE, &mut after);
        assert!(after[3], "{flags:?} -> {after:?}");
    }

    #[test]
    fn zero_check() {
        let mut page = vec![0u64; PAGE / 8];
        // SAFETY: `page` is PAGE readable bytes, 8-byte aligned.
        assert!(unsafe { page_is_zero(page.as_ptr().cast(), PAGE) });
        page[PAGE / 8 - 1] = 1 << 60;
        // SAFETY: as above.
        assert!(!unsafe { page_is_zero(page.as_ptr().cast(), PAGE) });
    }
}
