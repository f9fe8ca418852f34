//! The built test guest ELF: a static ELF64 x86-64 executable, loaded at
//! 0x200000, without a PVH note, entry inside its executable load segment,
//! and passing the post-link gate.

use hcs_test_guest::gate::{self, GateReport};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const SHT_RELA: u32 = 4;
const SHT_DYNAMIC: u32 = 6;
const SHT_NOTE: u32 = 7;
const SHT_REL: u32 = 9;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

struct Phdr {
    kind: u32,
    flags: u32,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn elf() -> Vec<u8> {
    let path = hcs_test_guest::test_guest_elf();
    assert_eq!(path.to_str().unwrap(), hcs_test_guest::TEST_GUEST_ELF);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn phdrs(b: &[u8]) -> Vec<Phdr> {
    let off = u64_at(b, 0x20) as usize;
    let size = u16_at(b, 0x36) as usize;
    let n = u16_at(b, 0x38) as usize;
    (0..n)
        .map(|i| {
            let p = off + i * size;
            Phdr {
                kind: u32_at(b, p),
                flags: u32_at(b, p + 4),
                vaddr: u64_at(b, p + 0x10),
                paddr: u64_at(b, p + 0x18),
                filesz: u64_at(b, p + 0x20),
                memsz: u64_at(b, p + 0x28),
            }
        })
        .collect()
}

/// (type, name) of every section.
fn sections(b: &[u8]) -> Vec<(u32, String)> {
    let off = u64_at(b, 0x28) as usize;
    let size = u16_at(b, 0x3a) as usize;
    let n = u16_at(b, 0x3c) as usize;
    let strndx = u16_at(b, 0x3e) as usize;
    if off == 0 || n == 0 {
        return Vec::new();
    }
    let sh = |i: usize| off + i * size;
    let strtab = u64_at(b, sh(strndx) + 0x18) as usize;
    (0..n)
        .map(|i| {
            let name_off = strtab + u32_at(b, sh(i)) as usize;
            let end = b[name_off..].iter().position(|c| *c == 0).unwrap() + name_off;
            (
                u32_at(b, sh(i) + 4),
                String::from_utf8_lossy(&b[name_off..end]).into_owned(),
            )
        })
        .collect()
}

#[test]
fn is_a_static_elf64_x86_64_executable() {
    let b = elf();
    assert_eq!(&b[..4], b"\x7fELF", "ELF magic");
    assert_eq!(b[4], 2, "ELFCLASS64");
    assert_eq!(b[5], 1, "little-endian");
    assert_eq!(u16_at(&b, 0x10), 2, "ET_EXEC");
    assert_eq!(u16_at(&b, 0x12), 62, "EM_X86_64");
    let ph = phdrs(&b);
    assert!(
        ph.iter()
            .all(|p| p.kind != PT_INTERP && p.kind != PT_DYNAMIC),
        "no interpreter, not dynamic"
    );
    for (kind, name) in sections(&b) {
        assert!(
            ![SHT_RELA, SHT_REL, SHT_DYNAMIC].contains(&kind),
            "section {name} of type {kind}"
        );
        assert!(name != ".interp" && name != ".dynamic", "section {name}");
    }
    // Small: everything above a few hundred KiB would mean formatting code got in.
    assert!(b.len() < 256 * 1024, "ELF is {} bytes", b.len());
}

#[test]
fn has_no_pvh_note() {
    let b = elf();
    assert!(
        phdrs(&b).iter().all(|p| p.kind != PT_NOTE),
        "a PT_NOTE segment (PVH entry?)"
    );
    for (kind, name) in sections(&b) {
        assert!(
            kind != SHT_NOTE && !name.starts_with(".note"),
            "note section {name}"
        );
    }
    // XEN_ELFNOTE_PHYS32_ENTRY: namesz 4, descsz 4 or 8, type 18, "Xen\0".
    let note = [4u32.to_le_bytes(), 8u32.to_le_bytes(), 18u32.to_le_bytes()].concat();
    assert!(
        !b.windows(note.len()).any(|w| w == note.as_slice()),
        "Xen PVH note bytes"
    );
}

#[test]
fn loads_at_0x200000_and_enters_inside_its_code() {
    let b = elf();
    let entry = u64_at(&b, 0x18);
    let loads: Vec<Phdr> = phdrs(&b)
        .into_iter()
        .filter(|p| p.kind == PT_LOAD)
        .collect();
    assert!(!loads.is_empty());
    let first = &loads[0];
    assert_eq!(first.paddr, 0x20_0000, "linked at 0x200000");
    assert_eq!(first.vaddr, first.paddr, "identity-mapped");
    for p in &loads {
        assert!(p.memsz >= p.filesz);
        assert!(
            p.paddr + p.memsz <= 0x40_0000,
            "image + stacks stay below 4 MiB"
        );
    }
    assert!(
        loads
            .iter()
            .any(|p| p.flags & PF_X != 0 && p.vaddr <= entry && entry < p.vaddr + p.filesz),
        "entry {entry:#x} not inside an executable PT_LOAD"
    );
}

#[test]
fn passes_the_post_link_gate() {
    let report = gate::check(&hcs_test_guest::test_guest_elf()).expect("gate tools");
    assert!(report.passed(), "{}", report.details());
    assert_eq!(report.int3, 0);
    assert_eq!(report.whitelisted, 1, "hcs_badinsn_sse's xorps");
    assert!(hcs_test_guest::GATE_SUMMARY.starts_with("gate pass"));
}

#[test]
fn gate_flags_what_it_must() {
    let ok = "\n0000000000200000 <a>:\n  200000:\tmov    %rsi,%rdi\n  200003:\tret\n\n\
              0000000000200477 <hcs_badinsn_sse>:\n  200477:\txorps  %xmm0,%xmm0\n  20047a:\tret\n";
    let mut r = GateReport::default();
    gate::scan_disassembly(ok, &mut r);
    assert!(r.passed(), "{}", r.details());
    assert_eq!(r.instructions, 4);
    assert_eq!(r.whitelisted, 1);

    for bad in [
        "  200010:\tmovaps %xmm0,-0x18(%rsp)",
        "  200010:\tpshufd $0x0,%xmm1,%xmm1",
        "  200010:\tint3",
        "  200010:\txrstor (%rdi)",
        "  200010:\txsave64 (%rdi)",
        "  200010:\tlock cmpxchg16b (%rdi)",
        "  200010:\tldmxcsr (%rsp)",
    ] {
        let mut r = GateReport::default();
        gate::scan_disassembly(&format!("0000000000200000 <f>:\n{bad}\n"), &mut r);
        assert!(!r.passed(), "{bad} passed");
    }
    // The whitelisted instruction anywhere else, or anything else in the whitelisted function.
    for text in [
        "0000000000200000 <other>:\n  200000:\txorps  %xmm0,%xmm0\n",
        "0000000000200000 <hcs_badinsn_sse>:\n  200000:\tmovaps %xmm0,%xmm1\n",
        "0000000000200000 <hcs_badinsn_sse>:\n  200000:\txorps  %xmm0,%xmm0\n  200003:\txorps  %xmm0,%xmm0\n",
    ] {
        let mut r = GateReport::default();
        gate::scan_disassembly(text, &mut r);
        assert!(!r.passed(), "{text} passed");
    }
    // Symbols.
    let mut r = GateReport::default();
    gate::scan_disassembly(ok, &mut r);
    gate::scan_symbols(
        "0000000000201000 t _ZN4core3fmt9Formatter3pad17h0123456789abcdefE\n\
         0000000000202000 T hcs_main\n                 U memcpy\n",
        &mut r,
    );
    assert_eq!(r.bad_symbols.len(), 1);
    assert_eq!(r.undefined_symbols, vec!["memcpy".to_string()]);
    assert!(!r.passed());
}
