//! Deterministic fuzzing: random bytes and mutations of valid files must
//! never panic, whatever the reader makes of them. Half the mutations get
//! their CRCs recomputed so they reach the section walk and the decoders,
//! as a hostile file would.

mod common;

use std::io::Cursor;

use common::*;
use hcs_snapshot::memory::{MemoryLayout, RegionLayout};
use hcs_snapshot::{Limits, StateFile, StateWriter, HEADER_LEN, MAGIC, SECTION_HEADER_LEN};

const ROUNDS: usize = 20_000;

/// Everything a caller might do with a file that parsed.
fn exercise(f: &StateFile) {
    for s in f.sections() {
        let _ = s.decode::<VcpuLike>();
        let _ = s.decode::<MemoryLayout>();
        let _ = s.decode::<Vec<String>>();
        let _ = s.check_version(1);
    }
    let _ = f.decode::<VcpuLike>("vcpu.0", 1);
    let _ = f.section("memory.layout");
}

fn try_all(data: &[u8]) -> bool {
    let small = Limits {
        max_sections: 8,
        max_section_len: 512,
        max_payload_total: 1024,
    };
    let mut ok = false;
    for limits in [Limits::default(), small] {
        if let Ok(f) = StateFile::from_bytes(data.to_vec(), &limits) {
            exercise(&f);
            ok = true;
        }
        if let Ok(f) = StateFile::read_from(Cursor::new(data), &limits) {
            exercise(&f);
        }
    }
    ok
}

/// Interesting values for length and count fields.
fn interesting(rng: &mut Rng, len: usize) -> u64 {
    let picks = [
        0,
        1,
        7,
        8,
        47,
        48,
        49,
        (len as u64).wrapping_sub(1),
        len as u64,
        len as u64 + 1,
        4096,
        4097,
        16 << 20,
        (16 << 20) + 1,
        64 << 20,
        u32::MAX as u64,
        u64::MAX,
        1 << 63,
    ];
    picks[rng.below(picks.len())]
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let n = data.len().max(1);
    match rng.below(8) {
        0 => {
            let i = rng.below(n);
            if let Some(b) = data.get_mut(i) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                if let Some(b) = data.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
        2 => data.truncate(rng.below(n)),
        3 => {
            let extra = rng.below(64);
            data.extend((0..extra).map(|_| rng.next() as u8));
        }
        4 | 5 => {
            // A length/count/version field of the header or of a section header.
            let fields: &[(usize, bool)] = &[(8, false), (16, false), (24, true)];
            let sec = HEADER_LEN + SECTION_HEADER_LEN * rng.below(3);
            let (at, wide) = if rng.below(2) == 0 {
                fields[rng.below(3)]
            } else {
                (sec + 40, true)
            };
            let v = interesting(rng, data.len());
            if wide && at + 8 <= data.len() {
                put_u64(data, at, v);
            } else if at + 4 <= data.len() {
                put_u32(data, at, v as u32);
            }
        }
        6 => {
            let i = rng.below(n);
            let j = rng.below(n);
            let (a, b) = (i.min(j), i.max(j));
            if b <= data.len() {
                data.drain(a..b);
            }
        }
        _ => {
            let i = rng.below(n).min(data.len());
            let chunk: Vec<u8> = (0..rng.below(100)).map(|_| rng.next() as u8).collect();
            data.splice(i..i, chunk);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    for round in 0..ROUNDS {
        let len = rng.below(400);
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && data.len() >= HEADER_LEN {
            // A plausible header over random sections.
            data[..8].copy_from_slice(&MAGIC);
            put_u32(&mut data, 8, 1);
            put_u32(&mut data, 12, 0);
            put_u32(&mut data, 16, rng.below(4) as u32);
            put_u32(&mut data, 20, 0);
            put_u64(&mut data, 24, len as u64);
            put_u64(&mut data, 36, 0);
        }
        if round % 4 == 0 {
            refresh_crcs(&mut data);
        }
        try_all(&data);
    }
}

#[test]
fn mutated_files_never_panic() {
    let seeds = [
        sample_writer().to_bytes(),
        small_file(),
        StateWriter::new().to_bytes(),
    ];
    let mut rng = Rng(0x5eed_0002);
    let mut parsed = 0;
    for round in 0..ROUNDS {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut data);
        }
        if rng.below(2) == 0 {
            refresh_crcs(&mut data);
        }
        parsed += usize::from(try_all(&data));
    }
    // The fuzzer must reach past the checks sometimes, or it tests nothing.
    assert!(
        parsed > ROUNDS / 50,
        "only {parsed} of {ROUNDS} mutated files parsed"
    );
}

#[test]
fn random_memory_layouts_never_panic() {
    let mut rng = Rng(0x5eed_0003);
    let good = MemoryLayout {
        page_size: 4096,
        file_len: 3 << 20,
        regions: vec![
            RegionLayout {
                guest_addr: 0,
                size: 2 << 20,
                file_offset: 0,
            },
            RegionLayout {
                guest_addr: 1 << 32,
                size: 1 << 20,
                file_offset: 2 << 20,
            },
        ],
    };
    let bytes = postcard::to_allocvec(&good).expect("encode");
    for _ in 0..ROUNDS {
        let mut data = bytes.clone();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut data);
        }
        if let Ok(layout) = postcard::from_bytes::<MemoryLayout>(&data) {
            let _ = layout.validate();
            let _ = layout.guest_size();
        }
    }
}
