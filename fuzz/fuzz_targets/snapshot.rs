//! The saved-state reader: a state file as `HcsCreateComputeSystem` with
//! `RestoreState` reads it, from memory and through a stream, then the VM
//! sections decoded and checked as a restore does (`hcs_vmm::snapshot`),
//! without KVM and without opening the memory file.
//!
//! Input: `[fix][file bytes]`. The CRCs would stop nearly every mutation
//! at the header, so `fix` bit 0 rewrites the total length to the input's
//! and bit 1 recomputes both CRCs over the mutated bytes; with `fix` 0 the
//! bytes are read as they are.
#![no_main]

use std::path::Path;

use hcs_snapshot::format::{HEADER_LEN, MAGIC};
use hcs_snapshot::{Limits, StateFile};
use libfuzzer_sys::fuzz_target;

/// Offsets in the file header (see hcs_snapshot::format).
const TOTAL_LEN_AT: usize = 24;
const BODY_CRC_AT: usize = 32;
const HEADER_CRC_AT: usize = 44;

fn fix_up(bytes: &mut [u8], fix: u8) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    if fix & 1 != 0 {
        bytes[..8].copy_from_slice(&MAGIC);
        let len = bytes.len() as u64;
        bytes[TOTAL_LEN_AT..TOTAL_LEN_AT + 8].copy_from_slice(&len.to_le_bytes());
    }
    if fix & 2 != 0 {
        let body = crc32fast::hash(&bytes[HEADER_LEN..]);
        bytes[BODY_CRC_AT..BODY_CRC_AT + 4].copy_from_slice(&body.to_le_bytes());
        let head = crc32fast::hash(&bytes[..HEADER_CRC_AT]);
        bytes[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&head.to_le_bytes());
    }
}

fn use_file(file: &StateFile) {
    for s in file.sections() {
        let _ = s.check_version(1);
        let _ = s.decode::<Vec<u8>>();
        let _ = s.decode::<String>();
        let _ = s.decode::<(u64, u32, Vec<String>)>();
    }
    if let Ok(saved) = hcs_vmm::snapshot::saved_vm_of(file, Path::new("/nonexistent/fuzz.state")) {
        let _ = saved.layout.validate();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&fix, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    fix_up(&mut bytes, fix);
    let limits = Limits::default();
    let from_stream = StateFile::read_from(std::io::Cursor::new(&bytes), &limits);
    match StateFile::from_bytes(bytes, &limits) {
        Ok(file) => {
            assert!(
                from_stream.is_ok(),
                "read from memory but not from a stream: {from_stream:?}"
            );
            use_file(&file);
        }
        Err(_) => assert!(from_stream.is_err(), "read from a stream but not from memory"),
    }
});
