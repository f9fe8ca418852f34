//! HCS test guest: a tiny 64-bit guest for testing the HCS VMM on KVM.
//!
//! Boot contract (Linux 64-bit boot protocol): entered at the ELF entry in
//! long mode with RSI = zero page, the first GiB identity-mapped with 2 MiB
//! pages, CS = 0x08, IF = 0. See README.md for the console protocol.
//!
//! Ring-0 code is interpreted instruction by instruction under kvm_pvm
//! (~1 µs each) while ring-3 code runs natively, so all table parsing runs in
//! ring 3 (`user_parse`) and ring 0 does only the hardware set-up.
//!
//! Rules for this crate: no SSE (except `hcs_badinsn_sse`), no INT3, no
//! XSAVE/XRSTOR, no CMPXCHG16B, no panics, no `core::fmt`. The post-link gate
//! in `crates/hcs-test-guest` checks the linked ELF.

#![no_std]
#![no_main]

mod acpi;
mod agent;
mod aml;
mod arch;
mod bytes;
mod console;
mod guest_agent;
mod info;
#[cfg(feature = "pvh")]
mod pvh;
mod virtio;
mod vsock;

use arch::*;
use bytes::{bytes_eq, tail};
use console::{dec, hex, line, nl, put};
use info::{Device, Gas, Info, What, GAS_IO, GAS_MEMORY};

// --- state shared with the assembly -----------------------------------------

#[no_mangle]
pub static mut HCS_TICKS: u64 = 0;
#[no_mangle]
static mut HCS_LAPIC_EOI: u64 = 0xfee0_00b0;
#[no_mangle]
static mut HCS_GED_REG: u64 = 0;
#[no_mangle]
static mut HCS_GED_PENDING: u32 = 0;
#[no_mangle]
static mut HCS_SERIAL_IRQ: u8 = 0;
#[no_mangle]
static mut HCS_SAVED_KSP: u64 = 0;
#[no_mangle]
static mut HCS_SERIAL_COUNT: u64 = 0;
#[no_mangle]
static mut HCS_GED_COUNT: u64 = 0;
/// MMIO base of the agent's virtio device (0 = none), for its ISR.
#[no_mangle]
static mut HCS_VIRTIO_REG: u64 = 0;
#[no_mangle]
static mut HCS_VIRTIO_COUNT: u64 = 0;

// --- state of this file -------------------------------------------------------

static mut INFO: Info = Info::new();
pub static mut ZERO_PAGE: u64 = 0;
/// pvpanic port (0 = none), for the crash path.
static mut PVPANIC: u16 = 0;
static mut SLEEP_OK: bool = false;
static mut RESET_OK: bool = false;
static mut USER_FAULT: [u64; 4] = [0; 4];
static mut LINE: [u8; 256] = [0; 256];
static mut LINE_LEN: usize = 0;
/// The agent runs (command `agent`, or `hcs.agent=1`).
static mut AGENT_ON: bool = false;
/// I/O APIC address (0 = none) and this CPU's APIC ID, for routing later.
static mut IOAPIC_ADDR: u64 = 0;
static mut LAPIC_DEST: u32 = 0;

/// Addresses below this are identity-mapped by the boot page tables.
const REACH: u64 = 1 << 30;
/// The 2 MiB pages of this window are mapped on demand (`map_mmio`).
const MMIO_WINDOW: u64 = 0xc000_0000;
const MMIO_WINDOW_END: u64 = 0x1_0000_0000;

const LAPIC_ID: u64 = 0x20;
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_LVT_LINT0: u64 = 0x350;
const LAPIC_LVT_LINT1: u64 = 0x360;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_DIV: u64 = 0x3e0;
/// KVM's LAPIC timer counts at 1 GHz; ÷16 and 625000 → 10 ms (100 Hz).
const TIMER_DIVIDE_16: u32 = 0x3;
const TIMER_COUNT: u32 = 625_000;

// --- descriptor tables --------------------------------------------------------

#[repr(C, align(16))]
struct Gdt([u64; 7]);

/// 0x08 kernel code, 0x10 kernel data, 0x18 user data, 0x20 user code, 0x28 TSS.
static mut GDT: Gdt = Gdt([
    0,
    0x00af_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00cf_f200_0000_ffff,
    0x00af_fa00_0000_ffff,
    0,
    0,
]);

#[repr(C, align(128))]
struct Tss([u8; 104]);

static mut TSS: Tss = Tss([0; 104]);

#[repr(C, align(16))]
struct Idt([u64; 2 * IDT_VECTORS]);

/// Interrupt gates to the fixed-address stubs; computed at compile time.
static IDT: Idt = {
    let mut e = [0u64; 2 * IDT_VECTORS];
    let mut i = 0;
    while i < IDT_VECTORS {
        let off = IDT_STUBS + 16 * i as u64;
        e[2 * i] = (off & 0xffff) | (0x08 << 16) | (0x8e << 40) | (((off >> 16) & 0xffff) << 48);
        e[2 * i + 1] = off >> 32;
        i += 1;
    }
    Idt(e)
};

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

/// Page directory for 3–4 GiB (the MMIO hole), installed as PDPT[3].
static mut MMIO_PD: PageTable = PageTable([0; 512]);

// --- entry ----------------------------------------------------------------------

#[no_mangle]
extern "C" fn hcs_main(zero_page: u64) -> ! {
    unsafe { ZERO_PAGE = zero_page };
    setup_cpu();
    // Mask both 8259s: with LINT0 in ExtINT mode their vectors would look
    // like exceptions.
    outb(0x21, 0xff);
    outb(0xa1, 0xff);

    // Parse everything in ring 3 (native speed). Give ring 3 the 2 MiB pages
    // of this image and of the zero page up front; others (ACPI tables
    // elsewhere) are granted on their first page fault.
    let image = core::ptr::addr_of!(__user_stack_top) as u64 - 1;
    if grant_user(image) | grant_user(zero_page) {
        write_cr3(read_cr3());
    }
    let status =
        unsafe { hcs_enter_user(user_parse, 0, core::ptr::addr_of!(__user_stack_top) as u64) };
    let info: &Info = unsafe { &*core::ptr::addr_of!(INFO) };

    // Console: the first PNP0501 with an I/O port.
    let com = info
        .devices()
        .iter()
        .find(|d| d.is(b"PNP0501") && d.io.is_some());
    let fallback = Device::EMPTY;
    let (com_gsi, com_edge, com_low) = irq_of(info, com.unwrap_or(&fallback), 4);
    let port = com.and_then(|d| d.io).unwrap_or(0x3f8);
    console::init(port);

    if status != 1 {
        let f = unsafe { USER_FAULT };
        put(b"PARSE FAULT vec=");
        dec(f[0]);
        put(b" err=");
        hex(f[1]);
        put(b" rip=");
        hex(f[2]);
        put(b" addr=");
        hex(f[3]);
        nl();
    }
    report_problems(info);
    if com.is_none() {
        line(b"NOT FOUND PNP0501 serial, using 0x3f8");
    }

    // Devices.
    let ged = info.find(b"ACPI0013").and_then(|d| {
        let addr = match d.mem {
            Some(a) => a,
            None => d.region?,
        };
        Some((addr, d.irq?))
    });
    let pvpanic = info.find(b"QEMU0001").and_then(|d| d.io);
    let virtio = info.count(b"LNRO0005");
    if ged.is_none() {
        line(b"NOT FOUND ACPI0013 GED");
    }
    match pvpanic {
        Some(p) => unsafe { PVPANIC = p },
        None => line(b"NOT FOUND QEMU0001 pvpanic"),
    }
    if info.s5.is_none() {
        line(b"NOT FOUND _S5_, using SLP_TYP 5");
    }

    // Map what ring 0 touches above the boot identity map.
    map_init();
    let lapic = info.lapic;
    let lapic_ok = map_mmio(lapic);
    let ioapic = info.ioapic.filter(|a| map_mmio(*a));
    let ged = ged.filter(|(a, _)| map_mmio(*a));
    unsafe {
        SLEEP_OK = info.sleep_ctl.is_some_and(|g| gas_mappable(&g));
        RESET_OK = info.reset_reg.is_some_and(|g| gas_mappable(&g));
    }
    write_cr3(read_cr3());
    if !unsafe { SLEEP_OK } && info.pm1a_cnt == 0 {
        line(b"NOT FOUND FADT SLEEP_CONTROL_REG");
    }
    if !unsafe { RESET_OK } {
        line(b"NOT FOUND FADT RESET_REG");
    }

    // Local APIC: enable, 100 Hz periodic timer on vector 32.
    if lapic_ok {
        let base = rdmsr(0x1b);
        if base & (1 << 11) == 0 {
            wrmsr(0x1b, base | (1 << 11));
        }
        unsafe { HCS_LAPIC_EOI = lapic + LAPIC_EOI };
        mmio_write32(lapic + LAPIC_SVR, 0x100 | VEC_SPURIOUS as u32);
        // LINT0 masked (no 8259 ExtINT); LINT1 = NMI, as on a PC (QEMU only
        // injects NMIs when LINT1 says so).
        mmio_write32(lapic + LAPIC_LVT_LINT0, 1 << 16);
        mmio_write32(lapic + LAPIC_LVT_LINT1, 4 << 8);
        mmio_write32(lapic + LAPIC_TIMER_DIV, TIMER_DIVIDE_16);
        mmio_write32(lapic + LAPIC_LVT_TIMER, VEC_TIMER as u32 | (1 << 17));
        mmio_write32(lapic + LAPIC_TIMER_INIT, TIMER_COUNT);
    } else {
        line(b"NOT FOUND LAPIC");
    }

    // I/O APIC: GED (level, active-high) and the console (edge by default).
    let mut serial_routed = false;
    match ioapic {
        Some(io) if lapic_ok => {
            let dest = mmio_read32(lapic + LAPIC_ID) >> 24;
            // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
            unsafe {
                IOAPIC_ADDR = io;
                LAPIC_DEST = dest;
            }
            if let Some((addr, gsi)) = ged {
                if route(io, info.ioapic_gsi_base, gsi, VEC_GED, false, false, dest) {
                    unsafe { HCS_GED_REG = addr };
                }
            }
            serial_routed = route(
                io,
                info.ioapic_gsi_base,
                com_gsi,
                VEC_SERIAL,
                com_edge,
                com_low,
                dest,
            );
        }
        _ => line(b"NOT FOUND IOAPIC"),
    }
    console::enable_rx_irq();

    put(b"HCS-TEST-GUEST READY cpus=");
    dec(info.cpus as u64);
    put(b" com=");
    hex(port as u64);
    put(b" ged=");
    match ged {
        Some((a, g)) => {
            hex(a);
            put(b"/");
            dec(g as u64);
        }
        None => put(b"none"),
    }
    put(b" pvpanic=");
    match pvpanic {
        Some(p) => hex(p as u64),
        None => put(b"none"),
    }
    put(b" virtio=");
    dec(virtio as u64);
    nl();

    if cmdline_has(info.cmdline(), b"hcs.agent=1") {
        agent_start(info);
    }
    main_loop(info, serial_routed, lapic_ok)
}

/// (GSI, edge-triggered, active-low) of a device's interrupt, with `default`
/// as the ISA IRQ when it has none. ISA IRQs (0x22/0x23 descriptors) go
/// through the MADT interrupt source overrides; 0x89 numbers are GSIs.
fn irq_of(info: &Info, d: &Device, default: u32) -> (u32, bool, bool) {
    let Some(irq) = d.irq else {
        let (gsi, flags) = info.isa_to_gsi(default);
        return (gsi, iso_edge(flags, true), iso_low(flags, false));
    };
    let edge = d.irq_flags & 2 != 0;
    let low = d.irq_flags & 4 != 0;
    if !d.irq_isa {
        return (irq, edge, low);
    }
    let (gsi, flags) = info.isa_to_gsi(irq);
    (gsi, iso_edge(flags, edge), iso_low(flags, low))
}

/// MPS INTI flags of an override: trigger mode bits 3:2 (1 edge, 3 level).
fn iso_edge(flags: u16, default: bool) -> bool {
    match (flags >> 2) & 3 {
        1 => true,
        3 => false,
        _ => default,
    }
}

/// MPS INTI flags of an override: polarity bits 1:0 (1 high, 3 low).
fn iso_low(flags: u16, default: bool) -> bool {
    match flags & 3 {
        1 => false,
        3 => true,
        _ => default,
    }
}

/// `timer`: the LAPIC timer runs (so HLT always wakes up again); without it
/// the loop polls without sleeping.
fn main_loop(info: &Info, serial_routed: bool, timer: bool) -> ! {
    let mut last_poll = 0u64;
    let mut busy_streak = 0u32;
    let serial_irq = core::ptr::addr_of_mut!(HCS_SERIAL_IRQ);
    let ged_pending = core::ptr::addr_of_mut!(HCS_GED_PENDING);
    unsafe { serial_irq.write_volatile(1) };
    loop {
        // IF = 0 here; interrupts are taken only inside wait_for_interrupt,
        // so these read-and-clear pairs cannot race with the handlers.
        let ged = unsafe {
            let g = ged_pending.read_volatile();
            ged_pending.write_volatile(0);
            g
        };
        if ged & 1 != 0 {
            line(b"POWER BUTTON");
            poweroff(info);
        } else if ged != 0 {
            put(b"GED EVENT ");
            hex(ged as u64);
            nl();
        }
        let ticks = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(HCS_TICKS)) };
        let flagged = unsafe {
            let f = serial_irq.read_volatile();
            serial_irq.write_volatile(0);
            f != 0
        };
        // Without a routed console IRQ, poll on every wake-up; with one, poll
        // when it fired and every 16 ticks as a safety net.
        if flagged || !serial_routed || ticks.wrapping_sub(last_poll) >= 16 {
            last_poll = ticks;
            while let Some(c) = console::recv() {
                receive(c, info);
            }
        }
        // SAFETY: a plain read; only this loop changes it.
        let busy = if unsafe { AGENT_ON } {
            agent_run(info)
        } else {
            false
        };
        // A busy agent comes back at once, but every 8th time the loop
        // sleeps anyway, so that timer ticks (the agent's clock) always advance.
        busy_streak = if busy { busy_streak + 1 } else { 0 };
        if busy && busy_streak % 8 != 0 {
            take_interrupts();
        } else if timer {
            wait_for_interrupt();
        }
    }
}

fn receive(c: u8, info: &Info) {
    unsafe {
        let len = LINE_LEN;
        if c == b'\n' || c == b'\r' {
            LINE_LEN = 0;
            if len > 0 {
                let line_buf = &*core::ptr::addr_of!(LINE);
                command(bytes::sub(line_buf, 0, len), info);
            }
        } else if let Some(slot) = (*core::ptr::addr_of_mut!(LINE)).get_mut(len) {
            *slot = c;
            LINE_LEN = len + 1;
        }
    }
}

fn starts_with(s: &[u8], p: &[u8]) -> bool {
    bytes::eq_at(s, 0, p)
}

fn command(cmd: &[u8], info: &Info) {
    if starts_with(cmd, b"echo ") {
        line(tail(cmd, 5));
    } else if bytes_eq(cmd, b"echo") {
        nl();
    } else if bytes_eq(cmd, b"ticks") {
        put(b"TICKS ");
        dec(unsafe { core::ptr::read_volatile(core::ptr::addr_of!(HCS_TICKS)) });
        nl();
    } else if bytes_eq(cmd, b"irqs") {
        let (t, s, g) = unsafe {
            (
                core::ptr::read_volatile(core::ptr::addr_of!(HCS_TICKS)),
                core::ptr::read_volatile(core::ptr::addr_of!(HCS_SERIAL_COUNT)),
                core::ptr::read_volatile(core::ptr::addr_of!(HCS_GED_COUNT)),
            )
        };
        put(b"IRQS timer=");
        dec(t);
        put(b" serial=");
        dec(s);
        put(b" ged=");
        dec(g);
        nl();
    } else if bytes_eq(cmd, b"cpus") {
        put(b"CPUS ");
        dec(info.cpus as u64);
        nl();
    } else if bytes_eq(cmd, b"devices") {
        for d in info.devices().iter().filter(|d| d.hid_len > 0) {
            put(b"DEV ");
            put(d.hid());
            put(b" io=");
            match d.io {
                Some(p) => hex(p as u64),
                None => put(b"-"),
            }
            put(b" mem=");
            match d.mem.or(d.region) {
                Some(m) => hex(m),
                None => put(b"-"),
            }
            put(b" irq=");
            match d.irq {
                Some(i) => dec(i as u64),
                None => put(b"-"),
            }
            nl();
        }
        line(b"END");
    } else if bytes_eq(cmd, b"cmdline") {
        put(b"CMDLINE ");
        line(info.cmdline());
    } else if bytes_eq(cmd, b"agent") {
        agent_start(info);
    } else if bytes_eq(cmd, b"agent stop") {
        // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
        if unsafe { AGENT_ON } {
            // The next step resets every connection and stops (AGENT STOPPED).
            // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
            unsafe { guest_agent::STOP_REQ = true };
        } else {
            line(b"AGENT NOT RUNNING");
        }
    } else if bytes_eq(cmd, b"poweroff") {
        poweroff(info);
    } else if bytes_eq(cmd, b"reset") {
        line(b"RESET");
        outb(0x64, 0xfe);
    } else if bytes_eq(cmd, b"acpireset") {
        line(b"RESET");
        if let Some(g) = info.reset_reg {
            if unsafe { RESET_OK } {
                gas_write(&g, info.reset_value);
            }
        }
    } else if bytes_eq(cmd, b"triplefault") {
        line(b"TRIPLE FAULT");
        triple_fault();
    } else if bytes_eq(cmd, b"badinsn") {
        line(b"BAD INSTRUCTION");
        unsafe { hcs_badinsn_sse() };
    } else if bytes_eq(cmd, b"panic") {
        crash();
    } else if bytes_eq(cmd, b"stray") {
        stray();
    } else if bytes_eq(cmd, b"hang") {
        line(b"HANG");
        halt_forever();
    } else {
        put(b"UNKNOWN ");
        line(cmd);
    }
}

/// A port and an MMIO address that no device claims (the VMM must log and
/// ignore them): one read and one write each, then `STRAY io=<read>
/// mem=<read>`.
fn stray() {
    const PORT: u16 = 0x333;
    const ADDR: u64 = MMIO_WINDOW;
    let io = inb(PORT);
    outb(PORT, 0x5a);
    put(b"STRAY io=");
    hex(io as u64);
    if map_mmio(ADDR) {
        write_cr3(read_cr3());
        let mem = mmio_read32(ADDR);
        mmio_write32(ADDR, 0x5a5a_5a5a);
        put(b" mem=");
        hex(mem as u64);
    } else {
        put(b" mem=unmapped");
    }
    nl();
}

/// S5 through the FADT sleep control register (hardware-reduced ACPI), or
/// PM1a_CNT on a classic FADT; then halt.
fn poweroff(info: &Info) -> ! {
    line(b"POWEROFF");
    let slp = info.s5.unwrap_or(5) & 7;
    match info.sleep_ctl {
        Some(g) if unsafe { SLEEP_OK } => {
            gas_write(&g, (slp << 2) | (1 << 5));
        }
        _ => {
            if info.pm1a_cnt != 0 && info.pm1a_cnt <= 0xffff {
                outw(info.pm1a_cnt as u16, ((slp as u16) << 10) | (1 << 13));
            }
        }
    }
    halt_forever()
}

/// The crash path: `PANIC`, pvpanic "panicked" (bit 0), halt with IF = 0.
fn crash() -> ! {
    line(b"PANIC");
    let p = unsafe { PVPANIC };
    if p != 0 {
        outb(p, 1);
    }
    halt_forever()
}

fn report_problems(info: &Info) {
    let n = info.problem_count;
    for p in info.problems.iter().take(n) {
        put(b"ACPI ");
        put(&p.sig);
        line(match p.what {
            What::NotFound => b" not found",
            What::BadChecksum => b" bad checksum",
            What::BadLength => b" bad length",
            What::BadSignature => b" bad signature",
            What::OutOfReach => b" out of reach",
            What::TooManyDevices => b" too many devices",
        });
    }
}

// --- CPU set-up -------------------------------------------------------------

fn setup_cpu() {
    // SMEP/SMAP would stop ring 0 from using the pages ring 3 is given.
    let cr4 = read_cr4();
    let smep_smap = (1 << 20) | (1 << 21);
    if cr4 & smep_smap != 0 {
        write_cr4(cr4 & !smep_smap);
    }
    unsafe {
        let tss = core::ptr::addr_of_mut!(TSS) as u64;
        let rsp0 = core::ptr::addr_of!(__trap_stack_top) as u64;
        // TSS.RSP0 at offset 4; I/O map base at 102 = 104 (no bitmap).
        core::ptr::write_unaligned((tss + 4) as *mut u64, rsp0);
        core::ptr::write_unaligned((tss + 102) as *mut u16, 104);
        let limit = 103u64;
        let gdt = core::ptr::addr_of_mut!(GDT) as *mut u64;
        gdt.add(5)
            .write(limit | ((tss & 0xff_ffff) << 16) | (0x89 << 40) | (((tss >> 24) & 0xff) << 56));
        gdt.add(6).write(tss >> 32);
        lgdt_ltr(
            &DescPtr {
                limit: 7 * 8 - 1,
                base: gdt as u64,
            },
            0x28,
        );
        lidt(&DescPtr {
            limit: (IDT_VECTORS * 16 - 1) as u16,
            base: core::ptr::addr_of!(IDT) as u64,
        });
    }
}

// --- ring 3 -------------------------------------------------------------------

struct Identity;

impl acpi::Phys for Identity {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if addr == 0 || end > REACH {
            return None;
        }
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

/// Runs in ring 3.
extern "C" fn user_parse(_: u64) {
    let info = unsafe { &mut *core::ptr::addr_of_mut!(INFO) };
    acpi::parse(&Identity, unsafe { ZERO_PAGE }, info);
}

/// An exception from ring 3: 0 = resume it, otherwise end the ring-3 run
/// with this status (1 = finished normally).
#[no_mangle]
extern "C" fn hcs_user_exception(vec: u64, err: u64, rip: u64, cr2: u64) -> u64 {
    if vec == 6 && rip == core::ptr::addr_of!(hcs_user_return) as u64 {
        return 1;
    }
    if vec == 2 {
        line(b"NMI");
        crash();
    }
    // A user access to a present page without U: grant it (lazily, per
    // 2 MiB page), below the MMIO hole only.
    if vec == 14 && err & 4 != 0 && cr2 < MMIO_WINDOW && grant_user(cr2) {
        write_cr3(read_cr3());
        return 0;
    }
    unsafe { USER_FAULT = [vec, err, rip, cr2] };
    2
}

const PTE_P: u64 = 1;
const PTE_U: u64 = 4;
const PTE_PS: u64 = 0x80;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Sets the U bit along the page walk of `addr`; true if anything changed
/// (the caller then reloads CR3).
fn grant_user(addr: u64) -> bool {
    let mut table = read_cr3() & PTE_ADDR;
    let mut shift = 39u32;
    let mut changed = false;
    loop {
        let e = (table + ((addr >> shift) & 511) * 8) as *mut u64;
        let v = unsafe { e.read_volatile() };
        if v & PTE_P == 0 {
            return false;
        }
        if v & PTE_U == 0 {
            unsafe { e.write_volatile(v | PTE_U) };
            changed = true;
        }
        if shift == 12 || (shift < 39 && v & PTE_PS != 0) {
            break;
        }
        table = v & PTE_ADDR;
        shift -= 9;
    }
    changed
}

// --- ring 0 exceptions ----------------------------------------------------------

#[no_mangle]
extern "C" fn hcs_kernel_exception(vec: u64, err: u64, rip: u64) -> ! {
    if vec == 2 {
        line(b"NMI");
        crash();
    }
    put(b"EXCEPTION vec=");
    dec(vec);
    put(b" err=");
    hex(err);
    put(b" rip=");
    hex(rip);
    nl();
    halt_forever()
}

// --- MMIO mapping -------------------------------------------------------------

/// Installs `MMIO_PD` as the boot PDPT's entry 3 (3–4 GiB).
fn map_init() {
    let pml4 = read_cr3() & PTE_ADDR;
    let pdpt = unsafe { (pml4 as *const u64).read_volatile() } & PTE_ADDR;
    let pd = core::ptr::addr_of!(MMIO_PD) as u64;
    // U as well: only the PD entries decide what ring 3 reaches (`map_mmio_user`).
    // SAFETY: the boot PDPT (found through CR3) has 512 entries; entry 3 maps 3-4 GiB.
    unsafe { ((pdpt + 3 * 8) as *mut u64).write_volatile(pd | 0x7) };
}

/// Makes `addr` reachable from ring 0: below 1 GiB it is already; in the
/// 3–4 GiB hole its 2 MiB page is mapped uncached. The caller reloads CR3.
fn map_mmio(addr: u64) -> bool {
    if addr != 0 && addr < REACH {
        return true;
    }
    if !(MMIO_WINDOW..MMIO_WINDOW_END).contains(&addr) {
        return false;
    }
    let idx = ((addr - MMIO_WINDOW) >> 21) as usize;
    if let Some(e) = unsafe { (*core::ptr::addr_of_mut!(MMIO_PD)).0.get_mut(idx) } {
        // P | RW | PWT | PCD | PS
        *e = (addr & !0x1f_ffff) | 0x9b;
        return true;
    }
    false
}

fn gas_mappable(g: &Gas) -> bool {
    match g.space {
        GAS_IO => g.addr <= 0xffff,
        GAS_MEMORY => map_mmio(g.addr),
        _ => false,
    }
}

fn gas_write(g: &Gas, v: u8) {
    match g.space {
        GAS_IO => outb(g.addr as u16, v),
        GAS_MEMORY => mmio_write8(g.addr, v),
        _ => {}
    }
}

/// Programs the I/O APIC redirection entry of `gsi`.
fn route(io: u64, gsi_base: u32, gsi: u32, vector: u8, edge: bool, low: bool, dest: u32) -> bool {
    let Some(pin) = gsi.checked_sub(gsi_base) else {
        return false;
    };
    if pin >= 24 {
        return false;
    }
    let lo = vector as u32 | ((!edge as u32) << 15) | ((low as u32) << 13);
    mmio_write32(io, 0x10 + 2 * pin + 1);
    mmio_write32(io + 0x10, dest << 24);
    mmio_write32(io, 0x10 + 2 * pin);
    mmio_write32(io + 0x10, lo);
    true
}

// --- the agent (ring 0 side) ------------------------------------------------

/// Is `word` one of the space-separated words of `cmdline`?
fn cmdline_has(cmdline: &[u8], word: &[u8]) -> bool {
    cmdline.split(|c| *c == b' ').any(|w| bytes_eq(w, word))
}

/// Like `map_mmio`, and ring 3 may use the page too.
fn map_mmio_user(addr: u64) -> bool {
    if addr != 0 && addr < REACH {
        return grant_user(addr) || true;
    }
    if !(MMIO_WINDOW..MMIO_WINDOW_END).contains(&addr) {
        return false;
    }
    let idx = ((addr - MMIO_WINDOW) >> 21) as usize;
    // SAFETY: MMIO_PD is only changed by ring 0, which is running this.
    if let Some(e) = unsafe { (*core::ptr::addr_of_mut!(MMIO_PD)).0.get_mut(idx) } {
        // P | RW | U | PWT | PCD | PS
        *e = (addr & !0x1f_ffff) | 0x9f;
        return true;
    }
    false
}

/// `agent`: finds the vsock device among the DSDT's virtio-mmio devices,
/// routes its interrupt, and lets `agent_run` drive the agent from the
/// main loop.
fn agent_start(info: &Info) {
    // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
    if unsafe { AGENT_ON } {
        line(b"AGENT RUNNING");
        return;
    }
    let mut found: Option<&Device> = None;
    let mut any = false;
    for d in info.devices().iter().filter(|d| d.is(b"LNRO0005")) {
        let Some(base) = d.mem else { continue };
        if !map_mmio_user(base) {
            continue;
        }
        write_cr3(read_cr3());
        any = true;
        if mmio_read32(base + virtio::R_MAGIC) == virtio::MAGIC
            && mmio_read32(base + virtio::R_DEVICE_ID) == virtio::DEVICE_VSOCK
        {
            found = Some(d);
            break;
        }
    }
    let Some(dev) = found else {
        line(if any {
            b"AGENT NO VSOCK DEVICE"
        } else {
            b"AGENT NO VIRTIO DEVICE"
        });
        return;
    };
    let base = dev.mem.unwrap_or(0);
    // SAFETY: ring 0 state, set before the agent's first step.
    unsafe { guest_agent::AGENT_BASE = base };
    // The first virtio-blk device, for `sector`.
    for d in info.devices().iter().filter(|d| d.is(b"LNRO0005")) {
        let Some(b) = d.mem else { continue };
        if map_mmio_user(b) {
            write_cr3(read_cr3());
            if mmio_read32(b + virtio::R_MAGIC) == virtio::MAGIC
                && mmio_read32(b + virtio::R_DEVICE_ID) == virtio::DEVICE_BLOCK
            {
                // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
                unsafe { guest_agent::BLK_BASE = b };
                break;
            }
        }
    }
    // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
    let io = unsafe { IOAPIC_ADDR };
    if io != 0 && dev.irq.is_some() {
        let (gsi, edge, low) = irq_of(info, dev, 0);
        // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
        unsafe { HCS_VIRTIO_REG = base };
        route(
            io,
            info.ioapic_gsi_base,
            gsi,
            VEC_VIRTIO,
            edge,
            low,
            // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
            unsafe { LAPIC_DEST },
        );
    }
    // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
    unsafe { AGENT_ON = true };
}

/// One ring-3 step of the agent; prints its console lines and does what it
/// asks. Returns true if it has more work at once.
fn agent_run(info: &Info) -> bool {
    // SAFETY: runs the agent's step in ring 3 on the user stack; it comes
    // back through ud2 or an exception (hcs_user_exception).
    let status = unsafe {
        hcs_enter_user(
            guest_agent::agent_step,
            0,
            core::ptr::addr_of!(__user_stack_top) as u64,
        )
    };
    // SAFETY: ring 3 is not running; its queue is ours until the next step.
    unsafe {
        let q = &*core::ptr::addr_of!(guest_agent::CONSOLE_Q);
        put(bytes::sub(q, 0, guest_agent::CONSOLE_Q_LEN));
        guest_agent::CONSOLE_Q_LEN = 0;
    }
    if status != 1 {
        // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
        let f = unsafe { USER_FAULT };
        put(b"AGENT FAULT vec=");
        dec(f[0]);
        put(b" err=");
        hex(f[1]);
        put(b" rip=");
        hex(f[2]);
        put(b" addr=");
        hex(f[3]);
        nl();
        // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
        unsafe { AGENT_ON = false };
        return false;
    }
    // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
    match unsafe { guest_agent::AGENT_REQ } {
        guest_agent::REQ_YIELD => true,
        guest_agent::REQ_STOP => {
            // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
            unsafe { AGENT_ON = false };
            false
        }
        guest_agent::REQ_POWEROFF => poweroff(info),
        guest_agent::REQ_REBOOT => {
            line(b"RESET");
            if let Some(g) = info.reset_reg {
                // SAFETY: one vCPU, IF = 0, ring 3 not running: no concurrent access.
                if unsafe { RESET_OK } {
                    gas_write(&g, info.reset_value);
                }
            }
            outb(0x64, 0xfe);
            halt_forever()
        }
        _ => false,
    }
}

// --- language items -----------------------------------------------------------

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    crash()
}

/// Referenced by the unwind tables of the precompiled libcore; never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
