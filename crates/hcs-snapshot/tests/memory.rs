//! The guest-memory file: sparse save, copy-on-write restore.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use hcs_snapshot::memory::{
    check_memory_tag, page_size, restore_guest_memory, save_guest_memory, MemoryFileError,
    MemoryLayout, RegionLayout,
};
use hcs_snapshot::{Limits, StateFile, StateWriter};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// 64 MiB in two regions, the second above 4 GiB.
const REGIONS: [(u64, u64); 2] = [(0, 48 * MIB), (1 << 32, 16 * MIB)];

fn guest() -> GuestMemoryMmap {
    let ranges: Vec<_> = REGIONS
        .iter()
        .map(|(a, s)| (GuestAddress(*a), *s as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).expect("guest memory")
}

/// Guest address of page `i` of the 64 MiB.
fn addr(i: u64) -> GuestAddress {
    let first = REGIONS[0].1 / PAGE;
    if i < first {
        GuestAddress(i * PAGE)
    } else {
        GuestAddress(REGIONS[1].0 + (i - first) * PAGE)
    }
}

fn pattern(i: u64, salt: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|b| (b as u8).wrapping_mul(31) ^ (i as u8) ^ salt ^ 0x5a)
        .collect()
}

/// Pages with data: 100 spread over both regions (all 3 mod 160), plus a
/// run of 8.
fn data_pages() -> Vec<u64> {
    let mut v: Vec<u64> = (0..100).map(|k| k * 160 + 3).collect();
    v.extend(12_010..12_018);
    v
}

fn read_page(mem: &GuestMemoryMmap, i: u64) -> Vec<u8> {
    let mut buf = vec![0u8; PAGE as usize];
    mem.read_slice(&mut buf, addr(i)).expect("read");
    buf
}

/// Writes the patterns, reads 50 untouched pages (50 mod 160), writes
/// zeros to 20 (100 mod 160).
fn fill(mem: &GuestMemoryMmap) {
    for i in data_pages() {
        mem.write_slice(&pattern(i, 0), addr(i)).expect("write");
    }
    for i in 0..50 {
        assert!(read_page(mem, i * 160 + 50).iter().all(|b| *b == 0));
    }
    for i in 0..20 {
        mem.write_slice(&[0u8; PAGE as usize], addr(i * 160 + 100))
            .expect("zero");
    }
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

fn crc_of(path: &Path) -> u32 {
    crc32fast::hash(&std::fs::read(path).expect("read"))
}

#[test]
fn save_is_sparse_and_restore_is_copy_on_write() {
    assert_eq!(page_size(), PAGE, "these tests assume 4 KiB pages");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.mem");
    let mem = guest();
    fill(&mem);

    let t = Instant::now();
    let report = save_guest_memory(&mem, &path).expect("save");
    let save_time = t.elapsed();
    let written = data_pages().len() as u64;
    assert_eq!(report.pages_total, 64 * MIB / PAGE);
    assert_eq!(report.pages_written, written);
    assert!(report.pages_touched >= written + 20, "{report:?}");
    assert!(report.pages_zero >= 20, "{report:?}");
    assert!(report.runs <= 101, "neighbours coalesce: {report:?}");

    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(
        meta.len(),
        64 * MIB + PAGE,
        "apparent size is the guest size and a page for the tag"
    );
    let blocks = allocated(&path);
    eprintln!(
        "64 MiB guest, {written} data pages ({} KiB): file {} KiB allocated, touched {} zero {} runs {}, save {:?}",
        written * PAGE / 1024,
        blocks / 1024,
        report.pages_touched,
        report.pages_zero,
        report.runs,
        save_time
    );
    assert!(blocks >= written * PAGE, "{blocks} bytes allocated");
    assert!(
        blocks <= written * PAGE + 256 * 1024,
        "{blocks} bytes allocated for {written} pages"
    );

    // Untouched pages were not looked at (with THP "always" one write
    // makes a whole 2 MiB present, so only check without it).
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !thp.contains("[always]") {
        assert!(report.pages_touched < report.pages_total / 8, "{report:?}");
    }
    // The save faulted in no page: a second save sees the same touched set.
    let again = save_guest_memory(&mem, &dir.path().join("again.mem")).expect("save again");
    assert_eq!(again.pages_touched, report.pages_touched);

    let before = crc_of(&path);
    let t = Instant::now();
    let restored = restore_guest_memory(&path, &report.layout).expect("restore");
    eprintln!("restore of 64 MiB: {:?}", t.elapsed());
    for i in data_pages() {
        assert_eq!(read_page(&restored, i), pattern(i, 0), "page {i}");
    }
    for i in [0, 1, 2, 5000, 14_000, 15_000, 16_383] {
        assert!(
            read_page(&restored, i).iter().all(|b| *b == 0),
            "page {i} is zero"
        );
    }
    // Writes go to private copies, never to the file.
    restored
        .write_slice(&pattern(3, 9), addr(3))
        .expect("write");
    restored
        .write_slice(&pattern(1, 9), addr(1))
        .expect("write");
    assert_eq!(read_page(&restored, 3), pattern(3, 9));
    drop(restored);
    assert_eq!(crc_of(&path), before, "the memory file changed");
    assert_eq!(allocated(&path), blocks);
}

#[test]
fn two_restores_from_one_file_are_independent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.mem");
    let mem = guest();
    fill(&mem);
    let layout = save_guest_memory(&mem, &path).expect("save").layout;
    let a = restore_guest_memory(&path, &layout).expect("a");
    let b = restore_guest_memory(&path, &layout).expect("b");
    a.write_slice(&pattern(3, 1), addr(3)).expect("a writes");
    b.write_slice(&pattern(7, 2), addr(7)).expect("b writes");
    assert_eq!(read_page(&a, 3), pattern(3, 1));
    assert_eq!(read_page(&b, 3), pattern(3, 0), "b sees the saved page");
    assert_eq!(read_page(&b, 7), pattern(7, 2));
    assert!(
        read_page(&a, 7).iter().all(|x| *x == 0),
        "a does not see b's write"
    );
}

#[test]
fn a_restored_guest_saves_again_with_pages_it_never_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.mem");
    let mem = guest();
    fill(&mem);
    let layout = save_guest_memory(&mem, &first).expect("save");
    drop(mem);
    let restored = restore_guest_memory(&first, &layout.layout).expect("restore");
    // Untouched since restore: only the backing file knows these pages.
    restored
        .write_slice(&pattern(3, 7), addr(3))
        .expect("change a data page");
    restored
        .write_slice(&[0u8; PAGE as usize], addr(163))
        .expect("zero a data page");
    restored
        .write_slice(&pattern(9, 7), addr(9))
        .expect("a new page");

    let second = dir.path().join("second.mem");
    let report = save_guest_memory(&restored, &second).expect("save again");
    assert_eq!(
        report.pages_written,
        data_pages().len() as u64,
        "one zeroed, one new: {report:?}"
    );
    drop(restored);

    let back = restore_guest_memory(&second, &report.layout).expect("restore second");
    for i in data_pages() {
        let want = match i {
            3 => pattern(3, 7),
            163 => vec![0u8; PAGE as usize],
            _ => pattern(i, 0),
        };
        assert_eq!(read_page(&back, i), want, "page {i}");
    }
    assert_eq!(read_page(&back, 9), pattern(9, 7));
}

/// Pages of `[addr, addr + len)` of this process that are resident.
fn resident_pages(addr: *mut u8, len: usize) -> usize {
    let mut vec = vec![0u8; len.div_ceil(PAGE as usize)];
    // SAFETY: `addr` is the page-aligned start of a live mapping of at least
    // `len` bytes, and `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(addr.cast(), len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|b| *b & 1 != 0).count()
}

/// Restore only maps the file: nothing of an 8 GiB guest is read, copied or
/// made resident, whatever the guest's size (checked with mincore, not with
/// a wall clock, so a loaded machine cannot fail it nor a slow copy pass it).
#[test]
fn restore_makes_nothing_resident_whatever_the_guest_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.mem");
    let size = 8u64 << 30;
    std::fs::File::create(&path)
        .expect("create")
        .set_len(size)
        .expect("8 GiB sparse");
    let layout = MemoryLayout {
        page_size: PAGE,
        file_len: size,
        regions: vec![
            RegionLayout {
                guest_addr: 0,
                size: 3 << 30,
                file_offset: 0,
            },
            RegionLayout {
                guest_addr: 4 << 30,
                size: 5 << 30,
                file_offset: 3 << 30,
            },
        ],
    };
    let mem = restore_guest_memory(&path, &layout).expect("restore 8 GiB");
    for r in &layout.regions {
        let host = mem
            .get_host_address(GuestAddress(r.guest_addr))
            .expect("mapped");
        let resident = resident_pages(host, r.size as usize);
        assert_eq!(
            resident, 0,
            "restore made {resident} pages of the region at {:#x} resident",
            r.guest_addr
        );
    }
    mem.write_slice(b"hi", GuestAddress((8 << 30) + 5))
        .expect("write high");
    let mut buf = [0u8; 2];
    mem.read_slice(&mut buf, GuestAddress((8 << 30) + 5))
        .expect("read");
    assert_eq!(&buf, b"hi");
    assert_eq!(allocated(&path), 0, "the file stays empty");
}

#[test]
fn the_layout_travels_in_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mem = guest();
    let report = save_guest_memory(&mem, &dir.path().join("vm.mem")).expect("save");
    assert_eq!(report.pages_written, 0);
    assert_eq!(
        report.layout.regions,
        vec![
            RegionLayout {
                guest_addr: 0,
                size: 48 * MIB,
                file_offset: 0
            },
            RegionLayout {
                guest_addr: 1 << 32,
                size: 16 * MIB,
                file_offset: 48 * MIB
            },
        ]
    );
    let mut w = StateWriter::new();
    w.add_serde(MemoryLayout::SECTION, MemoryLayout::VERSION, &report.layout)
        .expect("add");
    let f = StateFile::from_bytes(w.to_bytes(), &Limits::default()).expect("parse");
    let back: MemoryLayout = f
        .decode(MemoryLayout::SECTION, MemoryLayout::VERSION)
        .expect("decode");
    assert_eq!(back, report.layout);
}

#[test]
fn bad_layouts_and_short_files_are_refused_before_mapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.mem");
    std::fs::File::create(&path)
        .expect("create")
        .set_len(4 * MIB)
        .expect("len");
    let region = |guest_addr, size, file_offset| RegionLayout {
        guest_addr,
        size,
        file_offset,
    };
    let lay = |regions: Vec<RegionLayout>| MemoryLayout {
        page_size: PAGE,
        file_len: 4 * MIB,
        regions,
    };
    let cases = [
        (lay(vec![]), "0 regions"),
        (lay(vec![region(0, 1 << 20, 0); 257]), "257 regions"),
        (
            MemoryLayout {
                page_size: 65536,
                ..lay(vec![region(0, MIB, 0)])
            },
            "65536-byte pages",
        ),
        (
            lay(vec![region(0, 100, 0)]),
            "not a non-zero multiple of the page size",
        ),
        (lay(vec![region(0, 0, 0)]), "not a non-zero multiple"),
        (lay(vec![region(1, PAGE, 0)]), "not page aligned"),
        (lay(vec![region(0, PAGE, 10)]), "not page aligned"),
        (lay(vec![region(u64::MAX - 4095, 2 * PAGE, 0)]), "overflows"),
        (
            lay(vec![region(0, 8 * MIB, 0)]),
            "ends past the file length",
        ),
        (
            lay(vec![region(0, 2 * MIB, 0), region(MIB, MIB, 2 * MIB)]),
            "overlaps",
        ),
        (
            lay(vec![region(0, 2 * MIB, 0), region(4 * MIB, MIB, MIB)]),
            "overlaps",
        ),
    ];
    for (layout, want) in cases {
        let err = restore_guest_memory(&path, &layout).expect_err(want);
        assert!(err.to_string().contains(want), "want {want:?} in {err}");
    }
    let long = MemoryLayout {
        file_len: 8 * MIB,
        ..lay(vec![region(0, 8 * MIB, 0)])
    };
    let err = restore_guest_memory(&path, &long).expect_err("short file");
    assert!(
        matches!(err, MemoryFileError::FileTooShort { len, needed, .. } if len == 4 * MIB && needed == 8 * MIB),
        "{err}"
    );
}

/// Runs `f` on a thread and fails the test if it takes more than 20 s
/// (instead of hanging it).
fn within_20s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not return within 20 s"))
}

#[test]
fn a_fifo_or_other_non_file_is_refused_at_once_as_memory_or_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("vm.state.memory");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let layout = MemoryLayout {
        page_size: PAGE,
        file_len: MIB,
        regions: vec![RegionLayout {
            guest_addr: 0,
            size: MIB,
            file_offset: 0,
        }],
    };
    let p = fifo.clone();
    let r = within_20s("restoring from a FIFO", move || {
        restore_guest_memory(&p, &layout).map(|_| ())
    });
    let e = r.expect_err("a FIFO is not a memory file");
    assert!(
        matches!(e, MemoryFileError::NotRegular { kind: "FIFO", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains(&fifo.display().to_string()), "{e}");

    // A symlink to a good memory file: refused too (save never makes one).
    let real = dir.path().join("real.memory");
    std::fs::File::create(&real).unwrap().set_len(MIB).unwrap();
    let link = dir.path().join("link.memory");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let layout = MemoryLayout {
        page_size: PAGE,
        file_len: MIB,
        regions: vec![RegionLayout {
            guest_addr: 0,
            size: MIB,
            file_offset: 0,
        }],
    };
    let e = restore_guest_memory(&link, &layout).expect_err("a symlink");
    assert!(
        matches!(
            e,
            MemoryFileError::NotRegular {
                kind: "symlink",
                ..
            }
        ),
        "{e:?}"
    );
    restore_guest_memory(&real, &layout).expect("a regular memory file restores");

    // The state file: a FIFO is refused the same way, at once.
    let p = fifo.clone();
    let r = within_20s("opening a FIFO as a state file", move || {
        StateFile::open(&p).map(|_| ())
    });
    let e = r.expect_err("a FIFO is not a state file");
    assert!(e.to_string().contains("FIFO"), "{e}");
}

#[test]
fn saving_again_to_the_same_path_leaves_restored_systems_on_the_old_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.state.memory");
    let mem = guest();
    fill(&mem);
    let first = save_guest_memory(&mem, &path).expect("save");
    let old_inode = std::fs::metadata(&path).expect("stat").ino();
    // A system restored from it maps it MAP_PRIVATE; no page is loaded yet.
    let restored = restore_guest_memory(&path, &first.layout).expect("restore");

    // The original guest changes a page, zeroes another, and is saved again
    // to the same path.
    mem.write_slice(&pattern(3, 9), addr(3)).expect("change");
    mem.write_slice(&[0u8; PAGE as usize], addr(163))
        .expect("zero");
    let second = save_guest_memory(&mem, &path).expect("save again");
    assert_ne!(
        std::fs::metadata(&path).expect("stat").ino(),
        old_inode,
        "the file was rewritten in place"
    );
    // The restored system still reads what it was restored from.
    for i in data_pages() {
        assert_eq!(read_page(&restored, i), pattern(i, 0), "page {i}");
    }
    // A new restore reads the new save.
    let fresh = restore_guest_memory(&path, &second.layout).expect("restore new");
    assert_eq!(read_page(&fresh, 3), pattern(3, 9));
    assert!(read_page(&fresh, 163).iter().all(|b| *b == 0));
    drop(fresh);

    // A restored system saves back over the file it maps: allowed now, and
    // its view is what lands there.
    restored
        .write_slice(&pattern(5, 1), addr(5))
        .expect("a new page");
    let third = save_guest_memory(&restored, &path).expect("save over own backing file");
    assert_eq!(read_page(&restored, 3), pattern(3, 0));
    let back = restore_guest_memory(&path, &third.layout).expect("restore third");
    assert_eq!(read_page(&back, 3), pattern(3, 0));
    assert_eq!(read_page(&back, 5), pattern(5, 1));
    assert_eq!(read_page(&back, 163), pattern(163, 0));
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("vm.state.memory")]);
}

#[test]
fn a_save_never_replaces_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.memory");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("link.memory");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for (p, kind) in [(&fifo, "FIFO"), (&link, "symlink")] {
        // Opening a FIFO to write blocks until a reader comes: bounded.
        let target = p.clone();
        let e = within_20s("saving to a FIFO", move || {
            save_guest_memory(&guest(), &target).map(|_| ())
        })
        .expect_err("refused");
        assert!(
            matches!(e, MemoryFileError::NotRegular { kind: k, .. } if k == kind),
            "{e:?}"
        );
        assert!(
            !std::fs::symlink_metadata(p).unwrap().file_type().is_file(),
            "{kind} replaced"
        );
        let e = StateWriter::new().write_to_path(p).expect_err("refused");
        assert!(e.to_string().contains(kind), "{e}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "a temp file was left"
    );
}

#[test]
fn a_memory_file_of_another_save_is_told_apart_by_its_tag() {
    let mem = guest();
    fill(&mem);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.mem"), dir.path().join("b.mem"));
    let ra = save_guest_memory(&mem, &a).expect("save a");
    let rb = save_guest_memory(&mem, &b).expect("save b");
    assert_ne!(ra.tag, rb.tag, "each save has its own tag");
    check_memory_tag(&a, &ra.layout, &ra.tag).expect("a's own tag");
    check_memory_tag(&b, &rb.layout, &rb.tag).expect("b's own tag");
    // The same contents, but another save's file: refused.
    let e = check_memory_tag(&b, &ra.layout, &ra.tag).unwrap_err();
    assert!(matches!(e, MemoryFileError::TagMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not belong"), "{e}");
    // A file without the trailer (cut at the regions' end) is refused too.
    let f = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
    f.set_len(ra.layout.file_len).unwrap();
    let e = check_memory_tag(&a, &ra.layout, &ra.tag).unwrap_err();
    assert!(matches!(e, MemoryFileError::TagMismatch { .. }), "{e}");
}
