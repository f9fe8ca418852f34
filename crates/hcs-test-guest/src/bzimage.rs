//! Wraps the test guest's ELF as a bzImage (boot protocol 2.15, 64-bit
//! entry), so that a VMM's bzImage path can be tested with a guest that
//! runs on kvm_pvm, where Debian's real bzImage cannot.
//!
//! Written by hand because it is not a Linux kernel: no tool builds a
//! bzImage around an arbitrary ELF. The layout:
//! - the real-mode part, one 512-byte boot sector plus `SETUP_SECTS`
//!   sectors, with the setup header at 0x1f1 (only the fields a loader
//!   reads are set; nothing in it ever runs);
//! - the protected-mode part, loaded at `code32_start` = [`LOAD_ADDR`]:
//!   `hlt` up to the 64-bit entry at +0x200, where a `movabs rax, e_entry;
//!   jmp rax` stub jumps to the ELF's entry point, then the ELF's one
//!   PT_LOAD segment at [`SEGMENT_ADDR`] (= `LOAD_ADDR` + 0x1000), where
//!   it was linked to run.

/// Where the guest's one PT_LOAD segment is linked (link.ld).
pub const SEGMENT_ADDR: u64 = 0x20_0000;
/// `code32_start`: the protected-mode part is loaded here.
pub const LOAD_ADDR: u64 = SEGMENT_ADDR - 0x1000;
/// Setup sectors after the boot sector.
const SETUP_SECTS: u8 = 1;
/// Boot protocol version written to the header (2.15).
pub const VERSION: u16 = 0x020f;

const PT_LOAD: u32 = 1;

fn u16_at(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, String> {
    let lo = u64::from(u32_at(b, off)?);
    let hi = u64::from(u32_at(b, off + 4)?);
    Ok(lo | hi << 32)
}

/// The bzImage bytes for `elf` (an ELF64 with exactly one PT_LOAD at [`SEGMENT_ADDR`]).
pub fn wrap(elf: &[u8]) -> Result<Vec<u8>, String> {
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return Err("not an ELF64 file".into());
    }
    let entry = u64_at(elf, 0x18)?;
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36)?);
    let phnum = usize::from(u16_at(elf, 0x38)?);
    let mut segment = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != PT_LOAD {
            continue;
        }
        if segment.is_some() {
            return Err("more than one PT_LOAD segment".into());
        }
        let offset = u64_at(elf, ph + 8)? as usize;
        let paddr = u64_at(elf, ph + 0x18)?;
        let filesz = u64_at(elf, ph + 0x20)? as usize;
        if paddr != SEGMENT_ADDR {
            return Err(format!("PT_LOAD at {paddr:#x}, expected {SEGMENT_ADDR:#x}"));
        }
        let bytes = elf
            .get(offset..offset + filesz)
            .ok_or("PT_LOAD beyond the end of the file")?;
        segment = Some(bytes);
    }
    let segment = segment.ok_or("no PT_LOAD segment")?;

    let setup_len = (usize::from(SETUP_SECTS) + 1) * 512;
    let mut out = vec![0u8; setup_len];
    out[0x1f1] = SETUP_SECTS;
    out[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    out[0x202..0x206].copy_from_slice(b"HdrS");
    out[0x206..0x208].copy_from_slice(&VERSION.to_le_bytes());
    out[0x211] = 0x01; // loadflags: LOADED_HIGH
    out[0x214..0x218].copy_from_slice(&(LOAD_ADDR as u32).to_le_bytes());
    out[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    out[0x236..0x238].copy_from_slice(&0x0001u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64

    // Protected-mode part: hlt padding, the 64-bit entry stub, the segment.
    let mut payload = vec![0xf4u8; (SEGMENT_ADDR - LOAD_ADDR) as usize];
    let mut stub = vec![0x48, 0xb8];
    stub.extend_from_slice(&entry.to_le_bytes());
    stub.extend_from_slice(&[0xff, 0xe0]);
    payload[0x200..0x200 + stub.len()].copy_from_slice(&stub);
    payload.extend_from_slice(segment);
    // syssize: the protected-mode part in 16-byte paragraphs.
    let syssize = payload.len().div_ceil(16) as u32;
    out[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_elf(entry: u64, paddr: u64, code: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x78];
        e[..5].copy_from_slice(b"\x7fELF\x02");
        e[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        e[0x40..0x44].copy_from_slice(&PT_LOAD.to_le_bytes());
        e[0x48..0x50].copy_from_slice(&0x78u64.to_le_bytes());
        e[0x58..0x60].copy_from_slice(&paddr.to_le_bytes());
        e[0x60..0x68].copy_from_slice(&(code.len() as u64).to_le_bytes());
        e.extend_from_slice(code);
        e
    }

    #[test]
    fn wraps_segment_behind_header_and_stub() {
        let bz = wrap(&fake_elf(0x20_0010, SEGMENT_ADDR, b"CODE")).unwrap();
        assert_eq!(&bz[0x202..0x206], b"HdrS");
        let pm = &bz[1024..];
        assert_eq!(&pm[0x200..0x202], &[0x48, 0xb8]);
        assert_eq!(&pm[0x202..0x20a], &0x20_0010u64.to_le_bytes());
        assert_eq!(&pm[0x1000..], b"CODE");
    }

    #[test]
    fn refuses_wrong_address_and_non_elf() {
        assert!(wrap(&fake_elf(0, 0x10_0000, b"x"))
            .unwrap_err()
            .contains("expected"));
        wrap(b"MZ not an elf").unwrap_err();
    }
}
