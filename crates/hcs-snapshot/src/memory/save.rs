//! Writing guest memory to a sparse file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use vm_memory::bitmap::Bitmap;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::pages::{mark_file_data, mark_mapped, open_pagemap, page_is_zero, CHUNK_PAGES};
use super::{page_size, MemoryFileError, MemoryLayout, RegionLayout};

/// One region of guest memory as mapped in this process.
#[derive(Debug, Clone, Copy)]
pub struct HostRegion<'a> {
    /// Guest physical address of the region.
    pub guest_addr: u64,
    /// Where the region is mapped in this process (page aligned).
    pub host_addr: *const u8,
    /// Length in bytes (a multiple of the page size).
    pub len: usize,
    /// The file and offset the mapping comes from, if it is file-backed
    /// (a restored VM, a memfd): its data counts as touched.
    pub backing: Option<(&'a File, u64)>,
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// Where each region is in the file; store it in the state file.
    pub layout: MemoryLayout,
    /// Pages of guest memory.
    pub pages_total: u64,
    /// Pages present, swapped or backed by file data.
    pub pages_touched: u64,
    /// Touched pages left as holes because they were all zero.
    pub pages_zero: u64,
    /// Pages written.
    pub pages_written: u64,
    /// pwrite runs (contiguous written pages) issued.
    pub runs: u64,
    /// The tag written at the end of the file, for the state file.
    pub tag: super::MemoryTag,
}

/// Saves every region of `mem` to a new sparse file at `path` (replacing
/// it). The VM must be paused: nothing may write guest memory meanwhile.
pub fn save_guest_memory<B: Bitmap>(
    mem: &GuestMemoryMmap<B>,
    path: &Path,
) -> Result<SaveReport, MemoryFileError> {
    let regions: Vec<HostRegion<'_>> = mem
        .iter()
        .map(|r| HostRegion {
            guest_addr: r.start_addr().0,
            host_addr: r.as_ptr(),
            len: r.size(),
            backing: r.file_offset().map(|f| (f.file(), f.start())),
        })
        .collect();
    // SAFETY: every region is a live mapping of `mem`, which this borrow
    // keeps alive (and so its backing files) until the save returns.
    unsafe { save_host_regions(&regions, path) }
}

/// Saves `regions` to a new sparse file at `path` (replacing it): each
/// region at the next page-aligned offset, only touched non-zero pages
/// written, the rest holes.
///
/// The file is written beside `path` under a temporary name, synced, and
/// renamed over `path`, like the state file: the file at `path` is never
/// truncated or rewritten in place, so VMs restored from it (which map it
/// `MAP_PRIVATE`) keep reading the contents they were restored from, and a
/// VM restored from `path` may be saved back to `path`. A crash leaves the
/// old file or the whole new one.
///
/// # Safety
/// Each `host_addr..host_addr + len` must be a readable mapping of this
/// process for the whole call, and nothing may write it meanwhile (the VM
/// is paused).
pub unsafe fn save_host_regions(
    regions: &[HostRegion<'_>],
    path: &Path,
) -> Result<SaveReport, MemoryFileError> {
    let page = page_size();
    let layout = plan_layout(regions, page)?;
    // Only a regular file is replaced: a device node, FIFO, symlink or
    // directory at the target is the host's, not a saved state.
    crate::file::check_replaceable(path).map_err(|e| MemoryFileError::of_open("stat", path, e))?;
    let tmp = temp_path(path);
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| MemoryFileError::Io {
            op,
            path: p,
            source,
        }
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    let result = (|| {
        // A new file of the full size: everything not written is a hole.
        // One page more for the tag behind the regions.
        let tag = super::MemoryTag::random().map_err(io("make a tag for", &tmp))?;
        file.set_len(layout.file_len.saturating_add(page))
            .map_err(io("extend", &tmp))?;
        std::os::unix::fs::FileExt::write_all_at(&file, &tag.trailer(), layout.file_len)
            .map_err(io("write the tag of", &tmp))?;
        let pagemap = open_pagemap();
        let mut report = SaveReport {
            layout: layout.clone(),
            pages_total: layout.guest_size() / page,
            pages_touched: 0,
            pages_zero: 0,
            pages_written: 0,
            runs: 0,
            tag,
        };
        for (region, rl) in regions.iter().zip(&layout.regions) {
            let mut w = RegionWriter {
                file: &file,
                path,
                region,
                rl,
                page: page as usize,
                report: &mut report,
            };
            // SAFETY: forwarded from this function's contract.
            unsafe { w.write(pagemap.as_ref())? };
        }
        file.sync_all().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename", path))?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<path>.tmp-<pid>-<n>` beside `path` (same directory, so the rename is
/// atomic; `n` keeps two saves of one process apart).
fn temp_path(path: &Path) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Lays the regions out back to back in the file, checking alignment.
fn plan_layout(regions: &[HostRegion<'_>], page: u64) -> Result<MemoryLayout, MemoryFileError> {
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(regions.len());
    for r in regions {
        if !(r.host_addr as u64).is_multiple_of(page) {
            return Err(MemoryFileError::Layout(format!(
                "region at guest {:#x} is mapped at {:p}, not page aligned",
                r.guest_addr, r.host_addr
            )));
        }
        out.push(RegionLayout {
            guest_addr: r.guest_addr,
            size: r.len as u64,
            file_offset: offset,
        });
        offset = offset.saturating_add(r.len as u64);
    }
    let layout = MemoryLayout {
        page_size: page,
        file_len: offset,
        regions: out,
    };
    layout.validate()?;
    Ok(layout)
}

/// Writes one region, chunk by chunk.
struct RegionWriter<'a, 'r> {
    file: &'a File,
    path: &'a Path,
    region: &'a HostRegion<'r>,
    rl: &'a RegionLayout,
    page: usize,
    report: &'a mut SaveReport,
}

impl RegionWriter<'_, '_> {
    /// # Safety
    /// As [`save_host_regions`].
    unsafe fn write(&mut self, pagemap: Option<&File>) -> Result<(), MemoryFileError> {
        let pages = self.region.len / self.page;
        let mut touched = vec![false; CHUNK_PAGES.min(pages)];
        let mut first = 0;
        while first < pages {
            let n = CHUNK_PAGES.min(pages - first);
            let flags = &mut touched[..n];
            flags.fill(false);
            mark_mapped(
                pagemap,
                self.region.host_addr as usize,
                first,
                self.page,
                flags,
            );
            if let Some((file, start)) = self.region.backing {
                mark_file_data(file, start, first, self.page, flags);
            }
            // SAFETY: forwarded from this function's contract.
            unsafe { self.write_chunk(first, flags)? };
            first += n;
        }
        Ok(())
    }

    /// Writes the touched, non-zero pages of chunk `first..`, coalescing
    /// neighbours into one pwrite. Zero pages are skipped: the file was
    /// truncated to zero length and extended, so every page not written is
    /// a hole, and a hole reads back as zeros, both through read(2) and
    /// through a MAP_PRIVATE mapping on restore.
    ///
    /// # Safety
    /// As [`save_host_regions`].
    unsafe fn write_chunk(
        &mut self,
        first: usize,
        touched: &[bool],
    ) -> Result<(), MemoryFileError> {
        let mut run: Option<usize> = None;
        for (i, t) in touched.iter().enumerate() {
            let p = first + i;
            // SAFETY: page `p` is inside the region, which the caller
            // guarantees is readable; the mapping is page (so 8-byte)
            // aligned.
            let data = *t && !unsafe { page_is_zero(self.page_ptr(p), self.page) };
            self.report.pages_touched += u64::from(*t);
            self.report.pages_zero += u64::from(*t && !data);
            match (data, run) {
                (true, None) => run = Some(p),
                (false, Some(start)) => {
                    self.flush(start, p)?;
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run {
            self.flush(start, first + touched.len())?;
        }
        Ok(())
    }

    fn page_ptr(&self, p: usize) -> *const u8 {
        self.region.host_addr.wrapping_add(p * self.page)
    }

    /// Writes pages `start..end` of the region at their file offset.
    fn flush(&mut self, start: usize, end: usize) -> Result<(), MemoryFileError> {
        let off = self.rl.file_offset + (start * self.page) as u64;
        let len = (end - start) * self.page;
        pwrite_all(self.file, self.page_ptr(start), len, off).map_err(|source| {
            MemoryFileError::Write {
                path: self.path.to_path_buf(),
                guest_addr: self.rl.guest_addr + (start * self.page) as u64,
                end: self.rl.guest_addr + (end * self.page) as u64,
                file_offset: off,
                source,
            }
        })?;
        self.report.pages_written += (end - start) as u64;
        self.report.runs += 1;
        Ok(())
    }
}

/// pwrite(2) of `len` bytes at `ptr` to `off`, retrying short writes and
/// EINTR. The kernel copies straight from guest memory.
fn pwrite_all(
    file: &File,
    mut ptr: *const u8,
    mut len: usize,
    mut off: u64,
) -> std::io::Result<()> {
    while len > 0 {
        let at = libc::off_t::try_from(off)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: `ptr..ptr+len` is inside a region the caller of
        // `save_host_regions` guarantees readable; pwrite only reads it.
        let n = unsafe { libc::pwrite(file.as_raw_fd(), ptr.cast(), len, at) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let n = n as usize;
        ptr = ptr.wrapping_add(n);
        len -= n;
        off += n as u64;
    }
    Ok(())
}
