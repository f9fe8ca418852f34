//! Boot parameters and ACPI tables: zero page → command line, RSDP → XSDT
//! (or RSDT) → FADT, MADT → DSDT.
//!
//! Every table's signature, length and checksum is checked before use; a bad
//! or unreachable table is recorded in `Info::problems` and skipped.

use crate::aml;
use crate::bytes::{checksum, eq_at, sub, u16_at, u32_at, u64_at, u8_at};
use crate::info::{Gas, Info, Iso, What, CMDLINE_MAX, MAX_ISOS};

/// Guest-physical memory as the parser sees it.
pub trait Phys {
    /// `len` bytes at `addr`, or `None` if (part of) it is not reachable.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// Offsets in `struct boot_params`.
pub const BP_ACPI_RSDP_ADDR: u64 = 0x070;
pub const BP_CMD_LINE_PTR: u64 = 0x228;

/// Legacy area scanned for "RSD PTR " when the zero page gives no RSDP.
const SCAN_START: u64 = 0xe0000;
const SCAN_END: u64 = 0x10_0000;

/// Largest table accepted (sanity bound on the length field).
const TABLE_MAX: usize = 1 << 20;

pub fn parse<M: Phys>(mem: &M, zero_page: u64, info: &mut Info) {
    let Some(zp) = mem.bytes(zero_page, 0x1000) else {
        info.problem(b"BOOT", What::OutOfReach);
        return;
    };
    let cmd = u32_at(zp, BP_CMD_LINE_PTR as usize) as u64;
    let rsdp_hint = u64_at(zp, BP_ACPI_RSDP_ADDR as usize);
    if cmd != 0 {
        read_cmdline(mem, cmd, info);
    }

    let mut rsdp = None;
    if rsdp_hint != 0 {
        match check_rsdp(mem, rsdp_hint) {
            Ok(r) => rsdp = Some((rsdp_hint, r)),
            Err(what) => info.problem(b"RSDP", what),
        }
    }
    if rsdp.is_none() {
        let mut a = SCAN_START;
        while a < SCAN_END {
            if let Ok(r) = check_rsdp(mem, a) {
                rsdp = Some((a, r));
                info.rsdp_scanned = true;
                break;
            }
            a += 16;
        }
    }
    let Some((rsdp_addr, r)) = rsdp else {
        info.problem(b"RSDP", What::NotFound);
        return;
    };
    info.rsdp = rsdp_addr;

    // Root table: XSDT (64-bit entries) for revision >= 2, else RSDT.
    let (root, entry) = if u8_at(r, 15) >= 2 && u64_at(r, 24) != 0 {
        (table(mem, u64_at(r, 24), b"XSDT", info), 8)
    } else {
        (table(mem, u32_at(r, 16) as u64, b"RSDT", info), 4)
    };
    let Some(root) = root else { return };

    let mut dsdt_addr = 0u64;
    let mut i = 36;
    while i + entry <= root.len() {
        let addr = if entry == 8 {
            u64_at(root, i)
        } else {
            u32_at(root, i) as u64
        };
        i += entry;
        let Some(h) = mem.bytes(addr, 36) else {
            continue;
        };
        if eq_at(h, 0, b"FACP") && !info.fadt {
            if let Some(f) = table(mem, addr, b"FACP", info) {
                info.fadt = true;
                dsdt_addr = fadt(f, info);
            }
        } else if eq_at(h, 0, b"APIC") && !info.madt {
            if let Some(m) = table(mem, addr, b"APIC", info) {
                info.madt = true;
                madt(m, info);
            }
        }
    }
    if !info.fadt {
        info.problem(b"FACP", What::NotFound);
    }
    if !info.madt {
        info.problem(b"APIC", What::NotFound);
    }
    if dsdt_addr == 0 {
        info.problem(b"DSDT", What::NotFound);
    } else if let Some(d) = table(mem, dsdt_addr, b"DSDT", info) {
        info.dsdt = true;
        aml::scan(sub(d, 36, d.len()), info);
    }
}

fn read_cmdline<M: Phys>(mem: &M, addr: u64, info: &mut Info) {
    // Try the full size first, then shorter reads near the end of memory.
    let mut want = CMDLINE_MAX;
    while want > 0 {
        if let Some(b) = mem.bytes(addr, want) {
            let mut n = 0;
            for (d, s) in info.cmdline.iter_mut().zip(b.iter()) {
                if *s == 0 {
                    break;
                }
                *d = *s;
                n += 1;
            }
            // Keep one byte of headroom so the copy always ends before the buffer does.
            info.cmdline_len = n.min(CMDLINE_MAX - 1);
            return;
        }
        want /= 2;
    }
    info.problem(b"CMDL", What::OutOfReach);
}

/// Validates an RSDP at `addr`; returns its bytes.
fn check_rsdp<M: Phys>(mem: &M, addr: u64) -> Result<&[u8], What> {
    let r = mem.bytes(addr, 20).ok_or(What::OutOfReach)?;
    if !eq_at(r, 0, b"RSD PTR ") {
        return Err(What::BadSignature);
    }
    if checksum(r) != 0 {
        return Err(What::BadChecksum);
    }
    if u8_at(r, 15) < 2 {
        return Ok(r);
    }
    let len = u32_at(mem.bytes(addr, 24).ok_or(What::OutOfReach)?, 20) as usize;
    if !(36..=0x100).contains(&len) {
        return Err(What::BadLength);
    }
    let r = mem.bytes(addr, len).ok_or(What::OutOfReach)?;
    if checksum(r) != 0 {
        return Err(What::BadChecksum);
    }
    Ok(r)
}

/// A whole validated system description table, or `None` (problem recorded).
fn table<'m, M: Phys>(mem: &'m M, addr: u64, sig: &[u8; 4], info: &mut Info) -> Option<&'m [u8]> {
    let Some(h) = mem.bytes(addr, 36) else {
        info.problem(sig, What::OutOfReach);
        return None;
    };
    if !eq_at(h, 0, sig) {
        info.problem(sig, What::BadSignature);
        return None;
    }
    let len = u32_at(h, 4) as usize;
    if !(36..=TABLE_MAX).contains(&len) {
        info.problem(sig, What::BadLength);
        return None;
    }
    let Some(t) = mem.bytes(addr, len) else {
        info.problem(sig, What::OutOfReach);
        return None;
    };
    if checksum(t) != 0 {
        info.problem(sig, What::BadChecksum);
        return None;
    }
    Some(t)
}

fn gas(t: &[u8], at: usize) -> Option<Gas> {
    if at + 12 > t.len() {
        return None;
    }
    let g = Gas {
        space: u8_at(t, at),
        width: u8_at(t, at + 1),
        offset: u8_at(t, at + 2),
        access: u8_at(t, at + 3),
        addr: u64_at(t, at + 4),
    };
    if g.addr == 0 {
        None
    } else {
        Some(g)
    }
}

/// FADT: reset register, sleep control register, PM1a; returns the DSDT address.
fn fadt(f: &[u8], info: &mut Info) -> u64 {
    let flags = u32_at(f, 112);
    info.hw_reduced = f.len() >= 116 && flags & (1 << 20) != 0;
    info.reset_reg = gas(f, 116);
    info.reset_value = u8_at(f, 128);
    info.sleep_ctl = if f.len() >= 256 { gas(f, 244) } else { None };
    info.pm1a_cnt = match gas(f, 172) {
        Some(g) if g.space == crate::info::GAS_IO && f.len() >= 184 => g.addr as u32,
        _ => u32_at(f, 64),
    };
    let x = if f.len() >= 148 { u64_at(f, 140) } else { 0 };
    if x != 0 {
        x
    } else {
        u32_at(f, 40) as u64
    }
}

/// MADT: enabled CPUs, LAPIC and I/O APIC addresses, interrupt overrides.
fn madt(m: &[u8], info: &mut Info) {
    info.lapic = u32_at(m, 36) as u64;
    let mut i = 44;
    while i + 2 <= m.len() {
        let ty = u8_at(m, i);
        let len = u8_at(m, i + 1) as usize;
        if len < 2 || i + len > m.len() {
            info.problem(b"APIC", What::BadLength);
            return;
        }
        let e = sub(m, i, i + len);
        match ty {
            // Processor Local APIC; x2APIC.
            0 if len >= 8 && u32_at(e, 4) & 1 != 0 => info.cpus += 1,
            9 if len >= 16 && u32_at(e, 8) & 1 != 0 => info.cpus += 1,
            1 if len >= 12 && info.ioapic.is_none() => {
                info.ioapic = Some(u32_at(e, 4) as u64);
                info.ioapic_gsi_base = u32_at(e, 8);
            }
            2 if len >= 10 && info.iso_count < MAX_ISOS => {
                if let Some(slot) = info.isos.get_mut(info.iso_count) {
                    *slot = Iso {
                        irq: u8_at(e, 3),
                        gsi: u32_at(e, 4),
                        flags: u16_at(e, 8),
                    };
                    info.iso_count += 1;
                }
            }
            5 if len >= 12 => info.lapic = u64_at(e, 4),
            _ => {}
        }
        i += len;
    }
}
