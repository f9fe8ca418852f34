//! Panic-free little-endian readers over byte slices.
//!
//! Every read past the end yields 0 (or `None` for the checked variants), so
//! no bounds-check panic path is ever linked into the guest.

/// Byte at `i`, or 0 past the end.
#[inline]
pub fn u8_at(s: &[u8], i: usize) -> u8 {
    match s.get(i) {
        Some(b) => *b,
        None => 0,
    }
}

/// Little-endian u16 at `i`, or 0 if it does not fit.
#[inline]
pub fn u16_at(s: &[u8], i: usize) -> u16 {
    match s.get(i..i.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// Little-endian u32 at `i`, or 0 if it does not fit.
#[inline]
pub fn u32_at(s: &[u8], i: usize) -> u32 {
    match s.get(i..i.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Little-endian u64 at `i`, or 0 if it does not fit.
#[inline]
pub fn u64_at(s: &[u8], i: usize) -> u64 {
    (u32_at(s, i) as u64) | ((u32_at(s, i.wrapping_add(4)) as u64) << 32)
}

/// `s[a..b]`, or an empty slice if out of range.
#[inline]
pub fn sub(s: &[u8], a: usize, b: usize) -> &[u8] {
    match s.get(a..b) {
        Some(x) => x,
        None => &[],
    }
}

/// `s[a..]`, or an empty slice if out of range.
#[inline]
pub fn tail(s: &[u8], a: usize) -> &[u8] {
    match s.get(a..) {
        Some(x) => x,
        None => &[],
    }
}

/// Do the bytes at `i` equal `pat`?
#[inline]
pub fn eq_at(s: &[u8], i: usize, pat: &[u8]) -> bool {
    match s.get(i..i.wrapping_add(pat.len())) {
        Some(x) => bytes_eq(x, pat),
        None => false,
    }
}

/// Byte-wise equality without calling `bcmp` (kept tiny; the slices are short).
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if u8_at(a, i) != u8_at(b, i) {
            return false;
        }
        i += 1;
    }
    true
}

/// Wrapping sum of all bytes (ACPI checksum: a valid table sums to 0).
#[inline]
pub fn checksum(s: &[u8]) -> u8 {
    let mut sum: u8 = 0;
    for b in s.iter() {
        sum = sum.wrapping_add(*b);
    }
    sum
}
