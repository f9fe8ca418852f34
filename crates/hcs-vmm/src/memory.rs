//! How guest RAM is backed on the host: the Linux form of
//! `VirtualMachine.ComputeTopology.Memory`'s AllowOvercommit,
//! EnableDeferredCommit, BackingPageSize, ForbidSmallBackingPages and
//! PinBackingPages.
//!
//! * Overcommitted RAM (the default) is faulted in when the guest first
//!   touches it; without overcommit every page is populated at creation
//!   (`MADV_POPULATE_WRITE`), so a host short of memory fails the create
//!   instead of killing the VM later.
//! * Deferred commit maps RAM with `MAP_NORESERVE` (no commit charge until
//!   first touch); otherwise the whole size is charged at creation, and a
//!   host in strict overcommit mode refuses what it cannot promise.
//! * Large pages are 2 MiB hugetlb pages (`MAP_HUGETLB | MAP_HUGE_2MB`),
//!   reserved when mapped; when too few are free the VM falls back to small
//!   pages (with transparent huge pages asked for) unless small pages are
//!   forbidden, in which case the create fails and says how many it needs.
//! * Pinned RAM is `mlock`ed: populated and never swapped.

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
};

/// Size of a large page.
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// Large pages wanted for guest RAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HugePages {
    /// 4 KiB pages (`BackingPageSize: Small`, the default).
    #[default]
    No,
    /// 2 MiB hugetlb pages when enough are free, else small pages with
    /// transparent huge pages asked for (`Large`).
    Prefer,
    /// 2 MiB hugetlb pages or nothing (`Large` with `ForbidSmallBackingPages`).
    Require,
}

/// How guest RAM is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBacking {
    /// Populate every page at creation (`AllowOvercommit: false`).
    pub populate: bool,
    /// Map with `MAP_NORESERVE` (`EnableDeferredCommit`).
    pub deferred_commit: bool,
    /// Large pages.
    pub huge_pages: HugePages,
    /// `mlock` every page (`PinBackingPages`).
    pub pin: bool,
}

impl Default for MemoryBacking {
    /// What a document that says nothing gets: faulted in lazily, no
    /// commit charge up front, small pages, pageable.
    fn default() -> Self {
        MemoryBacking {
            populate: false,
            deferred_commit: true,
            huge_pages: HugePages::No,
            pin: false,
        }
    }
}

/// Why guest RAM could not be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The options contradict each other or the size.
    #[error("{0}")]
    Invalid(String),
    /// mmap failed.
    #[error("mapping {size} bytes of guest memory: {source}")]
    Map {
        /// Bytes asked for.
        size: usize,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Large pages are required and the host has too few free.
    #[error(
        "{needed} free 2 MiB huge pages are needed for the guest's memory and the host has {free} \
         (reserve them in /proc/sys/vm/nr_hugepages, or allow small pages: ForbidSmallBackingPages false)"
    )]
    NoHugePages {
        /// Pages the VM needs.
        needed: u64,
        /// `HugePages_Free` of /proc/meminfo.
        free: u64,
    },
    /// Populating the memory failed (the host is short of memory).
    #[error("populating {size} bytes of guest memory (AllowOvercommit false): {source}")]
    Populate {
        /// Bytes of the region.
        size: usize,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Locking the memory failed.
    #[error("locking {size} bytes of guest memory (PinBackingPages): {source}")]
    Lock {
        /// Bytes of the region.
        size: usize,
        /// What the kernel said.
        source: std::io::Error,
    },
}

impl MemoryBacking {
    /// Refuse combinations that cannot all be honoured.
    pub fn check(&self, ranges: &[(GuestAddress, usize)]) -> Result<(), MemoryError> {
        if self.deferred_commit && self.populate {
            return Err(MemoryError::Invalid(
                "EnableDeferredCommit (charge memory on first touch) contradicts AllowOvercommit false \
                 (populate all memory at creation)"
                    .into(),
            ));
        }
        if self.huge_pages != HugePages::No {
            if self.deferred_commit {
                return Err(MemoryError::Invalid(
                    "EnableDeferredCommit cannot be honoured with BackingPageSize Large: huge pages are \
                     reserved when they are mapped"
                        .into(),
                ));
            }
            if let Some((_, len)) = ranges.iter().find(|(_, len)| len % HUGE_PAGE_SIZE != 0) {
                return Err(MemoryError::Invalid(format!(
                    "BackingPageSize Large needs memory in whole 2 MiB pages; a region of {len} bytes is not"
                )));
            }
        }
        Ok(())
    }
}

/// Free 2 MiB huge pages (`HugePages_Free` when the default size is 2 MiB,
/// else the 2 MiB pool's `free_hugepages`).
pub fn free_huge_pages() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Map guest RAM for `ranges` as `backing` says.
pub fn allocate(
    ranges: &[(GuestAddress, usize)],
    backing: &MemoryBacking,
) -> Result<GuestMemoryMmap, MemoryError> {
    backing.check(ranges)?;
    let mut huge = backing.huge_pages != HugePages::No;
    if huge {
        let needed: u64 = ranges
            .iter()
            .map(|(_, l)| (l / HUGE_PAGE_SIZE) as u64)
            .sum();
        let free = free_huge_pages();
        if free < needed {
            if backing.huge_pages == HugePages::Require {
                return Err(MemoryError::NoHugePages { needed, free });
            }
            tracing::info!(
                needed,
                free,
                "too few free huge pages; guest memory uses small pages"
            );
            huge = false;
        }
    }
    let mut flags = libc::MAP_ANONYMOUS | libc::MAP_PRIVATE;
    if huge {
        flags |= libc::MAP_HUGETLB | libc::MAP_HUGE_2MB;
    } else if backing.deferred_commit {
        flags |= libc::MAP_NORESERVE;
    }
    let mut regions = Vec::with_capacity(ranges.len());
    for &(addr, size) in ranges {
        let map = MmapRegionBuilder::new(size)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(flags)
            .with_hugetlbfs(huge)
            .build()
            .map_err(|e| MemoryError::Map {
                size,
                source: match e {
                    vm_memory::mmap::MmapRegionError::Mmap(io) => io,
                    other => std::io::Error::other(other.to_string()),
                },
            })?;
        let region = GuestRegionMmap::new(map, addr).ok_or_else(|| {
            MemoryError::Invalid(format!(
                "guest region at {:#x} of {size} bytes overflows",
                addr.0
            ))
        })?;
        regions.push(region);
    }
    let memory = GuestMemoryMmap::from_regions(regions)
        .map_err(|e| MemoryError::Invalid(format!("guest memory regions: {e}")))?;
    if !huge && backing.huge_pages == HugePages::Prefer {
        advise_all(&memory, libc::MADV_HUGEPAGE);
    }
    commit(&memory, backing)?;
    Ok(memory)
}

/// Populate and lock `memory` as `backing` says (also for memory restored
/// from a saved VM, which is mapped elsewhere).
pub fn commit(memory: &GuestMemoryMmap, backing: &MemoryBacking) -> Result<(), MemoryError> {
    for region in memory.iter() {
        let size = region.len() as usize;
        let addr = region.as_ptr().cast::<libc::c_void>();
        if backing.pin {
            // mlock also faults every page in.
            // SAFETY: `addr..addr+size` is this region's live mapping; mlock
            // only changes how the kernel treats its pages.
            if unsafe { libc::mlock(addr, size) } != 0 {
                return Err(MemoryError::Lock {
                    size,
                    source: std::io::Error::last_os_error(),
                });
            }
        } else if backing.populate {
            // SAFETY: as above; MADV_POPULATE_WRITE faults the pages in
            // writable (what a guest write would do) and fails with ENOMEM
            // rather than overcommitting.
            if unsafe { libc::madvise(addr, size, libc::MADV_POPULATE_WRITE) } != 0 {
                return Err(MemoryError::Populate {
                    size,
                    source: std::io::Error::last_os_error(),
                });
            }
        }
    }
    Ok(())
}

fn advise_all(memory: &GuestMemoryMmap, advice: libc::c_int) {
    for region in memory.iter() {
        // SAFETY: advice about this region's own live mapping.
        let rc = unsafe { libc::madvise(region.as_ptr().cast(), region.len() as usize, advice) };
        if rc != 0 {
            tracing::debug!(
                advice,
                "madvise of guest memory: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// The /proc/self/smaps entry of the mapping at `addr`: (field, value) lines.
    fn smaps(addr: *const u8) -> Vec<(String, String)> {
        let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", addr as usize);
        let mut out = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            let is_header = line
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('-') && !w.ends_with(':'));
            if is_header {
                if inside {
                    break;
                }
                inside = line.starts_with(&start);
                continue;
            }
            if inside {
                if let Some((k, v)) = line.split_once(':') {
                    out.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        assert!(!out.is_empty(), "no smaps entry at {addr:?}");
        out
    }

    fn field(s: &[(String, String)], name: &str) -> String {
        s.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {s:?}"))
    }

    fn kb(s: &[(String, String)], name: &str) -> usize {
        field(s, name).trim_end_matches(" kB").parse().unwrap()
    }

    /// Resident kB of exactly `ptr..ptr+len` (mincore), not of its whole
    /// VMA: the kernel may merge a new anonymous mapping with a neighbour
    /// another test thread made, whose pages smaps would count too.
    fn resident_kb(ptr: *const u8, len: usize) -> usize {
        let pages = len / 4096;
        let mut vec = vec![0u8; pages];
        // SAFETY: `ptr..ptr+len` is a live page-aligned mapping and `vec`
        // has one byte per page of it.
        let rc =
            unsafe { libc::mincore(ptr.cast_mut().cast::<libc::c_void>(), len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|&&b| b & 1 != 0).count() * 4
    }

    fn one(size: usize, backing: MemoryBacking) -> Result<GuestMemoryMmap, MemoryError> {
        allocate(&[(GuestAddress(0), size)], &backing)
    }

    fn ptr(m: &GuestMemoryMmap) -> *const u8 {
        m.iter().next().unwrap().as_ptr()
    }

    #[test]
    fn without_overcommit_every_page_is_populated_at_creation() {
        let lazy = one(8 * MIB, MemoryBacking::default()).unwrap();
        assert_eq!(
            resident_kb(ptr(&lazy), 8 * MIB),
            0,
            "overcommitted memory starts empty"
        );
        let eager = one(
            8 * MIB,
            MemoryBacking {
                populate: true,
                deferred_commit: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(resident_kb(ptr(&eager), 8 * MIB), 8 * 1024);
    }

    #[test]
    fn deferred_commit_is_map_noreserve() {
        let deferred = one(4 * MIB, MemoryBacking::default()).unwrap();
        let flags = field(&smaps(ptr(&deferred)), "VmFlags");
        assert!(flags.split(' ').any(|f| f == "nr"), "{flags}");
        let charged = one(
            4 * MIB,
            MemoryBacking {
                deferred_commit: false,
                ..Default::default()
            },
        )
        .unwrap();
        let flags = field(&smaps(ptr(&charged)), "VmFlags");
        assert!(!flags.split(' ').any(|f| f == "nr"), "{flags}");
    }

    #[test]
    fn pinned_memory_is_locked() {
        let m = one(
            4 * MIB,
            MemoryBacking {
                pin: true,
                deferred_commit: false,
                ..Default::default()
            },
        )
        .unwrap();
        let s = smaps(ptr(&m));
        assert_eq!(kb(&s, "Locked"), 4 * 1024, "{s:?}");
        assert!(field(&s, "VmFlags").split(' ').any(|f| f == "lo"));
    }

    #[test]
    fn contradictions_are_refused() {
        let e = one(
            4 * MIB,
            MemoryBacking {
                populate: true,
                deferred_commit: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("EnableDeferredCommit"), "{e}");
        let e = one(
            3 * MIB,
            MemoryBacking {
                deferred_commit: false,
                huge_pages: HugePages::Prefer,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("2 MiB"), "{e}");
    }

    /// Raises the 2 MiB huge page pool by `n` for the test's lifetime (and
    /// restores it), when the host lets us.
    struct Reserve {
        path: &'static str,
        before: u64,
    }

    impl Reserve {
        fn new(n: u64) -> Option<Reserve> {
            let path = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
            let before: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            std::fs::write(path, (before + n).to_string()).ok()?;
            let r = Reserve { path, before };
            (free_huge_pages() >= n).then_some(r)
        }
    }

    impl Drop for Reserve {
        fn drop(&mut self) {
            let _ = std::fs::write(self.path, self.before.to_string());
        }
    }

    #[test]
    fn large_pages_are_hugetlb_or_a_clear_failure() {
        let large = |huge_pages| MemoryBacking {
            deferred_commit: false,
            huge_pages,
            ..Default::default()
        };
        // More than the host has free: required fails and says so,
        // preferred falls back to small pages.
        let too_many = (free_huge_pages() as usize + 1) * HUGE_PAGE_SIZE;
        match one(too_many, large(HugePages::Require)) {
            Err(MemoryError::NoHugePages { needed, free }) => assert!(needed > free),
            other => panic!("{other:?}"),
        }
        let m = one(too_many, large(HugePages::Prefer)).unwrap();
        assert_eq!(kb(&smaps(ptr(&m)), "KernelPageSize"), 4);
        drop(m);
        let Some(_reserved) = Reserve::new(2) else {
            crate::testing::skip(
                "hcs-vmm memory::tests::large_pages_are_hugetlb_or_a_clear_failure (hugetlb half)",
                "2 MiB huge pages cannot be reserved here (nr_hugepages not writable or no memory)",
            );
            return;
        };
        let m = one(4 * MIB, large(HugePages::Require)).unwrap();
        let s = smaps(ptr(&m));
        assert_eq!(kb(&s, "KernelPageSize"), 2048, "{s:?}");
        assert!(field(&s, "VmFlags").split(' ').any(|f| f == "ht"));
    }
}
