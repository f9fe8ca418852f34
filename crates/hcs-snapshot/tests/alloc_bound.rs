//! A hostile file never makes the reader allocate what it claims: a
//! counting allocator records the largest single allocation this thread
//! asks for while the reader refuses files that claim huge sizes.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use common::*;
use hcs_snapshot::{Limits, StateFile, StateFileError, StateWriter};

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping only touches a
// const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Largest single allocation made by `f` on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

const BOUND: usize = 2 << 20;

#[test]
fn claimed_sizes_are_never_allocated() {
    let good = small_file();
    // Header claims a 60 MiB file (within the cap) but the stream is short.
    let mut b = good.clone();
    put_u64(&mut b, 24, 60 << 20);
    refresh_crcs(&mut b);
    let (r, big) = largest_allocation(|| StateFile::read_from(Cursor::new(&b), &Limits::default()));
    assert!(matches!(r, Err(StateFileError::Truncated { .. })), "{r:?}");
    assert!(
        big < BOUND,
        "allocated {big} bytes for a file of {}",
        b.len()
    );

    // Header claims u32::MAX sections and u64::MAX bytes.
    let mut b = good.clone();
    put_u32(&mut b, 16, u32::MAX);
    put_u64(&mut b, 24, u64::MAX);
    refresh_crcs(&mut b);
    let (r, big) = largest_allocation(|| StateFile::read_from(Cursor::new(&b), &Limits::default()));
    assert!(
        matches!(r, Err(StateFileError::TooManySections { .. })),
        "{r:?}"
    );
    assert!(big < BOUND, "allocated {big}");

    // A section claims 2^40 bytes, with valid CRCs.
    let mut b = good.clone();
    put_u64(&mut b, 48 + 40, 1 << 40);
    refresh_crcs(&mut b);
    let (r, big) = largest_allocation(|| StateFile::read_from(Cursor::new(&b), &Limits::default()));
    assert!(
        matches!(r, Err(StateFileError::SectionTooLarge { .. })),
        "{r:?}"
    );
    assert!(big < BOUND, "allocated {big}");

    // A postcard payload whose length prefix claims 2^32 - 1 elements.
    let mut w = StateWriter::new();
    w.add_section(
        "lies",
        1,
        hcs_snapshot::Encoding::Postcard,
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
    )
    .expect("lies");
    let f = StateFile::from_bytes(w.to_bytes(), &Limits::default()).expect("parse");
    let (r, big) = largest_allocation(|| f.decode::<Vec<u64>>("lies", 1));
    assert!(matches!(r, Err(StateFileError::Decode { .. })), "{r:?}");
    assert!(big < BOUND, "decoder allocated {big}");
}

/// The absurd counts and lengths of format.rs's
/// `absurd_counts_and_lengths_are_refused`, each refused without a big
/// allocation (the property a wall-clock bound used to stand in for).
#[test]
fn absurd_counts_and_lengths_allocate_nothing_big() {
    let good = small_file();
    let patched = |at: usize, v: u64, wide: bool| {
        let mut b = good.clone();
        if wide {
            put_u64(&mut b, at, v)
        } else {
            put_u32(&mut b, at, v as u32)
        }
        refresh_crcs(&mut b);
        b
    };
    let mut cases = vec![
        ("count", patched(16, u32::MAX as u64, false), false),
        ("count 4096", patched(16, 4096, false), true),
        ("total", patched(24, u64::MAX, true), true),
        ("short stream", patched(24, 60 << 20, true), true),
        ("overrun", patched(48 + 40, 10 << 20, true), false),
    ];
    for len in [u64::MAX, 1 << 40, (16 << 20) + 1] {
        cases.push(("section len", patched(48 + 40, len, true), false));
    }
    for (what, b, streamed) in cases {
        let (r, big) = if streamed {
            largest_allocation(|| StateFile::read_from(Cursor::new(&b), &Limits::default()))
        } else {
            let owned = b.clone();
            largest_allocation(move || StateFile::from_bytes(owned, &Limits::default()))
        };
        assert!(r.is_err(), "{what}: accepted");
        assert!(
            big < BOUND,
            "{what}: allocated {big} bytes for a file of {}",
            b.len()
        );
    }
}
