//! A small DSDT scanner (not an AML interpreter).
//!
//! It walks the AML byte stream once and recognises only:
//! - `DeviceOp` (5B 82), to know which device the following names belong to
//!   (devices nest; the innermost open device wins);
//! - `Name(_HID, …)` with an EISAID integer or a string;
//! - `Name(_CRS, Buffer)` and `Method(_CRS) { … Return (Buffer) … }`, whose
//!   resource descriptors are decoded (IO 0x47, fixed IO 0x4B, IRQ 0x22/0x23,
//!   Memory32 0x85, Memory32Fixed 0x86, Word/DWord/QWord address space
//!   0x88/0x87/0x8A, Extended Interrupt 0x89);
//! - `OperationRegion(…, SystemMemory, base, len)` inside a device;
//! - `Name(_S5_, Package)`, whose first element is SLP_TYP.
//!
//! Everything is bounds-checked through `bytes::*`; a malformed stream just
//! yields fewer results.

use crate::bytes::{sub, u16_at, u32_at, u64_at, u8_at};
use crate::info::{Device, Info, What, HID_MAX, MAX_DEVICES};

const DEPTH: usize = 16;

/// Decodes a PkgLength at `i`: (value, bytes used by the encoding).
pub fn pkg_length(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let lead = u8_at(s, i);
    let extra = (lead >> 6) as usize;
    if i >= s.len() || i + extra >= s.len() {
        return None;
    }
    if extra == 0 {
        return Some(((lead & 0x3f) as usize, 1));
    }
    let mut v = (lead & 0x0f) as usize;
    let mut k = 0;
    while k < extra {
        v |= (u8_at(s, i + 1 + k) as usize) << (4 + 8 * k);
        k += 1;
    }
    Some((v, 1 + extra))
}

fn lead_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c == b'_'
}

fn name_char(c: u8) -> bool {
    lead_char(c) || c.is_ascii_digit()
}

fn name_seg_at(s: &[u8], i: usize) -> Option<[u8; 4]> {
    let seg = [
        u8_at(s, i),
        u8_at(s, i + 1),
        u8_at(s, i + 2),
        u8_at(s, i + 3),
    ];
    if i + 4 <= s.len()
        && lead_char(seg[0])
        && name_char(seg[1])
        && name_char(seg[2])
        && name_char(seg[3])
    {
        Some(seg)
    } else {
        None
    }
}

/// Parses a NameString at `i`: (last NameSeg, bytes used).
pub fn name_string(s: &[u8], i: usize) -> Option<([u8; 4], usize)> {
    let mut p = i;
    while (u8_at(s, p) == b'\\' || u8_at(s, p) == b'^') && p < i + 8 {
        p += 1;
    }
    let segs = match u8_at(s, p) {
        0x00 => {
            return if p < s.len() {
                Some(([0; 4], p + 1 - i))
            } else {
                None
            }
        }
        0x2e => {
            p += 1;
            2
        }
        0x2f => {
            p += 2;
            u8_at(s, p - 1) as usize
        }
        _ => 1,
    };
    if segs == 0 {
        return None;
    }
    let mut last = [0u8; 4];
    let mut k = 0;
    while k < segs {
        last = name_seg_at(s, p)?;
        p += 4;
        k += 1;
    }
    Some((last, p - i))
}

/// Decodes an integer data object at `i`: (value, bytes used).
pub fn integer(s: &[u8], i: usize) -> Option<(u64, usize)> {
    if i >= s.len() {
        return None;
    }
    match u8_at(s, i) {
        0x00 => Some((0, 1)),
        0x01 => Some((1, 1)),
        0xff => Some((u64::MAX, 1)),
        0x0a if i + 2 <= s.len() => Some((u8_at(s, i + 1) as u64, 2)),
        0x0b if i + 3 <= s.len() => Some((u16_at(s, i + 1) as u64, 3)),
        0x0c if i + 5 <= s.len() => Some((u32_at(s, i + 1) as u64, 5)),
        0x0e if i + 9 <= s.len() => Some((u64_at(s, i + 1), 9)),
        _ => None,
    }
}

/// EISA ID integer (as stored in AML) → "PNP0501".
pub fn eisaid(v: u32, out: &mut [u8; HID_MAX]) -> u8 {
    let be = v.swap_bytes();
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let chars = [
        0x40 + ((be >> 26) & 0x1f) as u8,
        0x40 + ((be >> 21) & 0x1f) as u8,
        0x40 + ((be >> 16) & 0x1f) as u8,
        u8_at(HEX, ((be >> 12) & 0xf) as usize),
        u8_at(HEX, ((be >> 8) & 0xf) as usize),
        u8_at(HEX, ((be >> 4) & 0xf) as usize),
        u8_at(HEX, (be & 0xf) as usize),
    ];
    for (o, c) in out.iter_mut().zip(chars.iter()) {
        *o = *c;
    }
    7
}

/// Decodes one `_CRS` resource template into `dev` (first range of each kind).
pub fn resources(data: &[u8], dev: &mut Device) {
    let mut i = 0;
    while i < data.len() {
        let tag = u8_at(data, i);
        if tag & 0x80 == 0 {
            let len = (tag & 7) as usize;
            let body = sub(data, i + 1, i + 1 + len);
            match (tag >> 3) & 0xf {
                // IRQ (0x22 / 0x23): a 16-bit mask, optional flags.
                0x4 if dev.irq.is_none() && u16_at(body, 0) != 0 => {
                    dev.irq = Some(u16_at(body, 0).trailing_zeros());
                    // 0x23 info byte: bit 0 edge, bit 3 active-low.
                    // Without it: edge-triggered, active-high.
                    let info = if len >= 3 { u8_at(body, 2) } else { 1 };
                    dev.irq_flags = ((info & 1) << 1) | (((info >> 3) & 1) << 2);
                    dev.irq_isa = true;
                }
                // I/O port descriptor (0x47).
                0x8 if dev.io.is_none() && body.len() >= 7 => {
                    dev.io = Some(u16_at(body, 1));
                    dev.io_len = u8_at(body, 6) as u16;
                }
                // Fixed I/O (0x4B).
                0x9 if dev.io.is_none() && body.len() >= 3 => {
                    dev.io = Some(u16_at(body, 0) & 0x3ff);
                    dev.io_len = u8_at(body, 2) as u16;
                }
                // End tag.
                0xf => return,
                _ => {}
            }
            i += 1 + len;
        } else {
            let len = u16_at(data, i + 1) as usize;
            let body = sub(data, i + 3, i + 3 + len);
            match tag {
                // Memory32 range: info, min, max, align, length.
                0x85 if dev.mem.is_none() && body.len() >= 17 => {
                    dev.mem = Some(u32_at(body, 1) as u64);
                    dev.mem_len = u32_at(body, 13) as u64;
                }
                // Memory32Fixed: info, base, length.
                0x86 if dev.mem.is_none() && body.len() >= 9 => {
                    dev.mem = Some(u32_at(body, 1) as u64);
                    dev.mem_len = u32_at(body, 5) as u64;
                }
                // DWord / Word / QWord address space.
                0x87 | 0x88 | 0x8a => {
                    let (min, length, need) = match tag {
                        0x87 => (u32_at(body, 7) as u64, u32_at(body, 19) as u64, 23),
                        0x88 => (u16_at(body, 5) as u64, u16_at(body, 11) as u64, 13),
                        _ => (u64_at(body, 11), u64_at(body, 35), 43),
                    };
                    if body.len() >= need {
                        match u8_at(body, 0) {
                            0 if dev.mem.is_none() => {
                                dev.mem = Some(min);
                                dev.mem_len = length;
                            }
                            1 if dev.io.is_none() => {
                                dev.io = Some(min as u16);
                                dev.io_len = length as u16;
                            }
                            _ => {}
                        }
                    }
                }
                // Extended interrupt: flags, count, u32 list.
                0x89 if dev.irq.is_none() && body.len() >= 6 && u8_at(body, 1) >= 1 => {
                    dev.irq = Some(u32_at(body, 2));
                    dev.irq_flags = u8_at(body, 0) & 0x06;
                }
                _ => {}
            }
            i += 3 + len;
        }
    }
}

/// A `Buffer` at `i` (0x11 PkgLength BufferSize bytes): (contents, end).
fn buffer(s: &[u8], i: usize, limit: usize) -> Option<(&[u8], usize)> {
    if u8_at(s, i) != 0x11 {
        return None;
    }
    let (len, n) = pkg_length(s, i + 1)?;
    let end = i + 1 + len;
    if end > limit || len < n {
        return None;
    }
    let (size, m) = integer(s, i + 1 + n)?;
    let start = i + 1 + n + m;
    if start > end {
        return None;
    }
    let stop = if (size as usize) < end - start {
        start + size as usize
    } else {
        end
    };
    Some((sub(s, start, stop), end))
}

struct Open {
    end: usize,
    name: [u8; 4],
    slot: Option<usize>,
}

/// The device record of the innermost open device, allocated on first use.
fn slot<'a>(info: &'a mut Info, open: &mut Open) -> Option<&'a mut Device> {
    if open.slot.is_none() {
        if info.dev_count >= MAX_DEVICES {
            if info.dev_count == MAX_DEVICES {
                info.dev_count += 1;
                info.problem(b"DSDT", What::TooManyDevices);
            }
            return None;
        }
        open.slot = Some(info.dev_count);
        if let Some(d) = info.devices.get_mut(info.dev_count) {
            *d = Device::EMPTY;
            d.name = open.name;
        }
        info.dev_count += 1;
    }
    match open.slot {
        Some(k) => info.devices.get_mut(k),
        None => None,
    }
}

/// Scans the AML of a DSDT (the bytes after its 36-byte header).
pub fn scan(s: &[u8], info: &mut Info) {
    let mut stack: [Open; DEPTH] = [const {
        Open {
            end: 0,
            name: [0; 4],
            slot: None,
        }
    }; DEPTH];
    let mut depth = 0usize;
    let mut p = 0usize;
    while p < s.len() {
        while depth > 0 && stack.get(depth - 1).map_or(0, |o| o.end) <= p {
            depth -= 1;
        }
        let limit = if depth > 0 {
            stack.get(depth - 1).map_or(s.len(), |o| o.end)
        } else {
            s.len()
        };
        let op = u8_at(s, p);
        match op {
            0x5b => {
                let ext = u8_at(s, p + 1);
                match ext {
                    // DeviceOp PkgLength NameString TermList
                    0x82 => {
                        if let Some((len, n)) = pkg_length(s, p + 2) {
                            let end = p + 2 + len;
                            if let Some((seg, used)) = name_string(s, p + 2 + n) {
                                if end <= limit && len >= n + used {
                                    if let Some(o) = stack.get_mut(depth) {
                                        *o = Open {
                                            end,
                                            name: seg,
                                            slot: None,
                                        };
                                        depth += 1;
                                    }
                                    p += 2 + n + used;
                                    continue;
                                }
                            }
                        }
                    }
                    // OpRegionOp NameString RegionSpace Offset Length
                    0x80 => {
                        if let Some((_, used)) = name_string(s, p + 2) {
                            let q = p + 2 + used;
                            let space = u8_at(s, q);
                            if let Some((base, m)) = integer(s, q + 1) {
                                if space == 0 && depth > 0 {
                                    if let Some(open) = stack.get_mut(depth - 1) {
                                        if let Some(d) = slot(info, open) {
                                            if d.region.is_none() {
                                                d.region = Some(base);
                                            }
                                        }
                                    }
                                }
                                p = q + 1 + m;
                                continue;
                            }
                        }
                    }
                    // Field / IndexField / BankField: skip the field list.
                    0x81 | 0x86 | 0x87 => {
                        if let Some((len, _)) = pkg_length(s, p + 2) {
                            let end = p + 2 + len;
                            if end <= limit && len > 0 {
                                p = end;
                                continue;
                            }
                        }
                    }
                    _ => {}
                }
                p += 1;
            }
            // NameOp NameString DataRefObject
            0x08 => {
                let Some((seg, used)) = name_string(s, p + 1) else {
                    p += 1;
                    continue;
                };
                let q = p + 1 + used;
                p = q;
                match &seg {
                    b"_HID" if depth > 0 => {
                        let Some(open) = stack.get_mut(depth - 1) else {
                            continue;
                        };
                        let Some(d) = slot(info, open) else { continue };
                        match u8_at(s, q) {
                            0x0c => {
                                d.hid_len = eisaid(u32_at(s, q + 1), &mut d.hid);
                                p = q + 5;
                            }
                            0x0d => {
                                let mut k = 0usize;
                                let mut r = q + 1;
                                while r < s.len() && u8_at(s, r) != 0 {
                                    if let Some(c) = d.hid.get_mut(k) {
                                        *c = u8_at(s, r);
                                        k += 1;
                                    }
                                    r += 1;
                                }
                                d.hid_len = k as u8;
                                p = r + 1;
                            }
                            _ => {}
                        }
                    }
                    b"_CRS" if depth > 0 => {
                        if let Some((data, end)) = buffer(s, q, limit) {
                            if let Some(open) = stack.get_mut(depth - 1) {
                                if let Some(d) = slot(info, open) {
                                    resources(data, d);
                                }
                            }
                            p = end;
                        }
                    }
                    // PackageOp PkgLength NumElements elements…
                    b"_S5_" if u8_at(s, q) == 0x12 => {
                        if let Some((_, n)) = pkg_length(s, q + 1) {
                            if let Some((v, _)) = integer(s, q + 1 + n + 1) {
                                info.s5 = Some(v as u8);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // MethodOp PkgLength NameString MethodFlags TermList
            0x14 => {
                if let Some((len, n)) = pkg_length(s, p + 1) {
                    let end = p + 1 + len;
                    if let Some((seg, used)) = name_string(s, p + 1 + n) {
                        if end <= limit && len > n + used {
                            let body = p + 1 + n + used + 1;
                            if &seg == b"_CRS" && depth > 0 {
                                // Look for Return (Buffer …).
                                let mut r = body;
                                while r + 1 < end {
                                    if u8_at(s, r) == 0xa4 && u8_at(s, r + 1) == 0x11 {
                                        if let Some((data, _)) = buffer(s, r + 1, end) {
                                            if let Some(open) = stack.get_mut(depth - 1) {
                                                if let Some(d) = slot(info, open) {
                                                    resources(data, d);
                                                }
                                            }
                                        }
                                        break;
                                    }
                                    r += 1;
                                }
                            }
                            p = body;
                            continue;
                        }
                    }
                }
                p += 1;
            }
            // Ops followed by a PkgLength whose body is scanned: Scope
            // (with a NameString), Buffer, Package, VarPackage, If, Else, While.
            0x10 | 0x11 | 0x12 | 0x13 | 0xa0 | 0xa1 | 0xa2 => match pkg_length(s, p + 1) {
                Some((len, n)) if p + 1 + len <= limit && len >= n => {
                    p += 1 + n;
                    if op == 0x10 {
                        if let Some((_, used)) = name_string(s, p) {
                            p += used;
                        }
                    }
                }
                _ => p += 1,
            },
            // Integer constants and strings: skip their payload.
            0x0a => p += 2,
            0x0b => p += 3,
            0x0c => p += 5,
            0x0e => p += 9,
            0x0d => {
                p += 1;
                while p < s.len() && u8_at(s, p) != 0 {
                    p += 1;
                }
                p += 1;
            }
            _ => p += 1,
        }
    }
}
