//! The 16550 console: output without formatting machinery, and receive.
//!
//! Every port access costs ~20 µs on kvm_pvm, so nothing polls the transmit
//! status: virtual UARTs take a byte at any time.

use crate::arch::{inb, outb};

static mut COM: u16 = 0x3f8;

pub fn set_port(port: u16) {
    unsafe { COM = port }
}

pub fn port() -> u16 {
    unsafe { COM }
}

/// Minimal 16550 set-up: 8N1, DTR|RTS|OUT2 (OUT2 gates the IRQ on PCs).
pub fn init(port: u16) {
    set_port(port);
    outb(port + 3, 0x03);
    outb(port + 4, 0x0b);
}

/// Enable the received-data-available interrupt.
pub fn enable_rx_irq() {
    outb(port() + 1, 0x01);
}

/// A received byte, if any (LSR bit 0 = data ready).
pub fn recv() -> Option<u8> {
    let p = port();
    if inb(p + 5) & 1 != 0 {
        Some(inb(p))
    } else {
        None
    }
}

pub fn put(s: &[u8]) {
    let p = port();
    for b in s.iter() {
        outb(p, *b);
    }
}

pub fn putc(c: u8) {
    outb(port(), c);
}

pub fn nl() {
    putc(b'\n');
}

pub fn line(s: &[u8]) {
    put(s);
    nl();
}

/// `0x` and lowercase hex digits, no leading zeros.
pub fn hex(v: u64) {
    let mut buf = [0u8; 18];
    buf[0] = b'0';
    buf[1] = b'x';
    let mut n = 2;
    let mut shift = 64u32;
    let mut started = false;
    while shift > 0 {
        shift -= 4;
        let d = ((v >> shift) & 0xf) as u8;
        if d != 0 || started || shift == 0 {
            started = true;
            if let Some(slot) = buf.get_mut(n) {
                *slot = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            }
            n += 1;
        }
    }
    put(crate::bytes::sub(&buf, 0, n));
}

pub fn dec(v: u64) {
    let mut buf = [0u8; 20];
    let mut n = buf.len();
    let mut v = v;
    loop {
        n -= 1;
        if let Some(slot) = buf.get_mut(n) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || n == 0 {
            break;
        }
    }
    put(crate::bytes::tail(&buf, n));
}
