//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hcs_snapshot::{Encoding, StateWriter, HEADER_LEN};
use serde::{Deserialize, Serialize};

/// A state-like payload with the shapes device state has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VcpuLike {
    pub id: u32,
    pub regs: [u64; 18],
    pub xsave: Vec<u8>,
    pub msrs: Vec<(u32, u64)>,
    pub mp_state: Option<u8>,
    pub name: String,
}

pub fn vcpu(id: u32) -> VcpuLike {
    VcpuLike {
        id,
        regs: std::array::from_fn(|i| (i as u64 + 1) * 0x1111_1111 * u64::from(id + 1)),
        xsave: (0..300).map(|i| (i * 7 + id as usize) as u8).collect(),
        msrs: vec![(0x10, 12345), (0xc000_0080, 0xd01)],
        mp_state: Some(id as u8),
        name: format!("vcpu{id}"),
    }
}

/// A writer with four sections of every encoding, one of them empty.
pub fn sample_writer() -> StateWriter {
    let mut w = StateWriter::new();
    w.add_raw("serial", 3, b"16550 state bytes".to_vec())
        .expect("serial");
    w.add_serde("vcpu.0", 1, &vcpu(0)).expect("vcpu.0");
    w.add_serde("vcpu.1", 1, &vcpu(1)).expect("vcpu.1");
    w.add_section(
        "config.json",
        1,
        Encoding::Json,
        br#"{"SchemaVersion":{"Major":2}}"#.to_vec(),
    )
    .expect("config");
    w.add_raw("empty", 0, Vec::new()).expect("empty");
    w
}

/// A small file: two short sections.
pub fn small_file() -> Vec<u8> {
    let mut w = StateWriter::new();
    w.add_raw("a", 1, b"hello".to_vec()).expect("a");
    w.add_serde("b", 2, &(7u32, "x".to_string())).expect("b");
    w.to_bytes()
}

/// Recomputes the body CRC (offset 32) and header CRC (offset 44) after a
/// test changed bytes, so the parser gets past the checksums.
pub fn refresh_crcs(data: &mut [u8]) {
    if data.len() < HEADER_LEN {
        return;
    }
    let body = crc32fast::hash(&data[HEADER_LEN..]);
    data[32..36].copy_from_slice(&body.to_le_bytes());
    let head = crc32fast::hash(&data[..44]);
    data[44..48].copy_from_slice(&head.to_le_bytes());
}

pub fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(data: &mut [u8], at: usize, v: u64) {
    data[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// splitmix64: a deterministic PRNG for the fuzz tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
