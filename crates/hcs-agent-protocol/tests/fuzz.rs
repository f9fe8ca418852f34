//! Fuzz-style tests: random and mutated bytes never panic the decoder, and
//! whatever decodes re-encodes to the same bytes.

mod common;

use common::{samples, walk};
use hcs_agent_protocol::*;

/// xorshift64*: small, deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Decodes `bytes`; if they decode, checks the result re-encodes exactly.
fn check(bytes: &[u8]) -> bool {
    match decode_frame(bytes) {
        Ok((header, msg, used)) => {
            walk(&msg);
            let again = msg
                .encode_to_vec(header.version, header.request_id)
                .unwrap();
            assert_eq!(again, &bytes[..used], "decode/encode mismatch");
            true
        }
        Err(e) => {
            assert!(!e.as_str().is_empty());
            let _ = e.hresult();
            false
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for case in 0..20_000 {
        // Short payloads decode more often, so favour them.
        let len = if case % 2 == 0 {
            rng.below(160)
        } else {
            HEADER_LEN + rng.below(16)
        };
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Most cases get a plausible header so the payload decoders run.
        if case % 4 != 0 && bytes.len() >= HEADER_LEN {
            bytes[..4].copy_from_slice(&MAGIC);
            bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
            let types = [
                1u16, 2, 3, 4, 5, 6, 7, 8, 0x8001, 0x8002, 0x8003, 0x8005, 0x8006, 0x80ff,
            ];
            bytes[6..8].copy_from_slice(&types[rng.below(types.len())].to_le_bytes());
            let payload = (bytes.len() - HEADER_LEN) as u32;
            bytes[16..20].copy_from_slice(&payload.to_le_bytes());
            bytes[20..24].fill(0);
        }
        if check(&bytes) {
            decoded += 1;
        }
    }
    eprintln!("{decoded} random frames decoded");
    assert!(
        decoded > 100,
        "only {decoded} random frames decoded; the generator is too weak"
    );
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    match rng.below(7) {
        0 => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(bytes.len());
            bytes[i] = rng.byte();
        }
        2 => bytes.truncate(rng.below(bytes.len() + 1)),
        3 => {
            let i = rng.below(bytes.len() + 1);
            bytes.insert(i, rng.byte());
        }
        4 => {
            // Plant a large or boundary u32 somewhere (counts and lengths).
            if bytes.len() >= 4 {
                let i = rng.below(bytes.len() - 3);
                let v = [
                    0u32,
                    1,
                    0xff,
                    0xffff,
                    0x7fff_ffff,
                    u32::MAX,
                    MAX_PAYLOAD,
                    MAX_PAYLOAD + 1,
                ];
                bytes[i..i + 4].copy_from_slice(&v[rng.below(v.len())].to_le_bytes());
            }
        }
        5 => {
            // Fix up the payload length after a change, so the payload decoders see it.
            if bytes.len() >= HEADER_LEN {
                let len = (bytes.len() - HEADER_LEN) as u32;
                bytes[16..20].copy_from_slice(&len.to_le_bytes());
            }
        }
        _ => {
            let extra = rng.below(8);
            bytes.extend((0..extra).map(|_| rng.byte()));
        }
    }
}

#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng(42);
    let originals: Vec<Vec<u8>> = samples()
        .iter()
        .map(|m| m.encode_to_vec(PROTOCOL_VERSION, 7).unwrap())
        .collect();
    let mut cases = 0;
    for original in &originals {
        for _ in 0..2_000 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                mutate(&mut rng, &mut bytes);
            }
            check(&bytes);
            cases += 1;
        }
    }
    assert!(cases >= 30_000);
}

#[test]
fn every_prefix_of_every_frame_is_truncated() {
    for msg in samples() {
        let bytes = msg.encode_to_vec(PROTOCOL_VERSION, 1).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_frame(&bytes[..cut]).unwrap_err(),
                DecodeError::Truncated,
                "{msg:?} cut at {cut}"
            );
        }
        // And a frame followed by more bytes decodes as just the frame.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&bytes);
        assert_eq!(decode_frame(&longer).unwrap().2, bytes.len());
    }
}
