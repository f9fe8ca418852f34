//! The agent's ring-3 side: one `agent_step` per entry from ring 0 (see
//! `agent_run` in main.rs). It drives the vsock device and the [`Agent`]
//! until it has nothing to do (`REQ_IDLE`: ring 0 halts until the next
//! interrupt), has run long enough (`REQ_YIELD`: ring 0 takes pending
//! interrupts and console input, then comes back), has console lines to
//! print, or the host asked for a shutdown.
//!
//! Ring 3 runs natively on kvm_pvm (ring 0 is emulated at ~1 µs per
//! instruction), and MMIO works there; port I/O does not, so console output
//! goes through `CONSOLE_Q`.

use crate::agent::{Action, Agent, Platform};
use crate::virtio::{BlkDev, BlkMem, VsockDev, VsockMem};
use crate::vsock::RX_CAP;

pub const REQ_IDLE: u32 = 0;
pub const REQ_YIELD: u32 = 1;
pub const REQ_STOP: u32 = 2;
pub const REQ_POWEROFF: u32 = 3;
pub const REQ_REBOOT: u32 = 4;

/// Set by ring 0 before the first step: the vsock device's MMIO base.
pub static mut AGENT_BASE: u64 = 0;
/// The first virtio-blk device's MMIO base (0 = none), for `sector`.
pub static mut BLK_BASE: u64 = 0;
/// Set by ring 0 (`agent stop`): reset every connection and stop.
pub static mut STOP_REQ: bool = false;
/// What ring 3 asks ring 0 to do after a step.
pub static mut AGENT_REQ: u32 = REQ_IDLE;
/// Console lines from ring 3 (each ends with `\n`), printed by ring 0.
pub static mut CONSOLE_Q: [u8; 1024] = [0; 1024];
pub static mut CONSOLE_Q_LEN: usize = 0;

struct State {
    started: bool,
    /// The device and the agent's memory are set up.
    ready: bool,
    dev: VsockDev,
    /// Stopped by `agent stop`; the next step starts it again.
    stopped: bool,
    /// A shutdown waiting for the transmit queue to drain, until this tick.
    action_deadline: u64,
    action_tries: u32,
}

static mut STATE: State = State {
    started: false,
    ready: false,
    dev: VsockDev::empty(),
    stopped: false,
    action_deadline: 0,
    action_tries: 0,
};
/// The disk of `sector`, started on first use (only `Guest::sector` touches these).
static mut BLK: BlkDev = BlkDev::empty();
static mut BLK_TRIED: bool = false;

// The big ones (≈3 MiB: the connections' buffers, the virtqueues) live at
// a fixed place in RAM outside the image, from 8 MiB (the image and its
// stacks stay below 4 MiB; `touch` uses 16 MiB and up). The agent checks
// the e820 map and zeroes it before use (all-zero is a valid `Agent`: every
// enum starts at discriminant 0, options are None, numbers 0; `init` sets
// the rest).
const DMA_BASE: u64 = 8 << 20;
const fn page_up(n: usize) -> u64 {
    ((n as u64) + 4095) & !4095
}
const AGENT_ADDR: u64 = DMA_BASE;
const VSOCK_MEM_ADDR: u64 = AGENT_ADDR + page_up(core::mem::size_of::<Agent>());
const SCRATCH_ADDR: u64 = VSOCK_MEM_ADDR + page_up(core::mem::size_of::<VsockMem>());
const BLK_MEM_ADDR: u64 = SCRATCH_ADDR + page_up(RX_CAP);
const DMA_END: u64 = BLK_MEM_ADDR + page_up(core::mem::size_of::<BlkMem>());
const _: () = assert!(DMA_END <= 16 << 20, "agent memory overlaps touch's");

/// Iterations of the idle spin before giving up the CPU (~100 µs).
const SPIN: u32 = 50_000;
/// Iterations of work before yielding to ring 0 (for timers and the console).
const WORK_BUDGET: u32 = 20_000;
/// Memory `touch` may use: from 16 MiB to the end of its RAM range (below 1 GiB).
const TOUCH_BASE: u64 = 16 << 20;
const REACH: u64 = 1 << 30;

struct Guest;

fn push_console(line: &[u8]) {
    // SAFETY: ring 3 runs with interrupts off and ring 0 reads the queue only
    // after this step returned: no concurrent access.
    unsafe {
        let q = &mut *core::ptr::addr_of_mut!(CONSOLE_Q);
        let mut len = CONSOLE_Q_LEN;
        for b in line.iter().chain(b"\n".iter()) {
            if let Some(slot) = q.get_mut(len) {
                *slot = *b;
                len += 1;
            }
        }
        CONSOLE_Q_LEN = len;
    }
}

/// End of the e820 RAM range holding `addr` (capped at 1 GiB), or 0.
fn ram_end(addr: u64) -> u64 {
    // SAFETY: the zero page is below 1 GiB (checked) and granted to ring 3
    // at boot; e820 has at most 128 entries of 20 bytes from offset 0x2d0.
    let zp = unsafe { crate::ZERO_PAGE };
    if zp == 0 || zp >= REACH - 0x1000 {
        return 0;
    }
    // SAFETY: see above: 4 KiB of the zero page, below 1 GiB.
    let page = unsafe { core::slice::from_raw_parts(zp as *const u8, 0x1000) };
    let n = (crate::bytes::u8_at(page, 0x1e8) as usize).min(128);
    for k in 0..n {
        let off = 0x2d0 + 20 * k;
        let base = crate::bytes::u64_at(page, off);
        let size = crate::bytes::u64_at(page, off + 8);
        let kind = crate::bytes::u32_at(page, off + 16);
        if kind == 1 && base <= addr && addr < base.saturating_add(size) {
            return base.saturating_add(size).min(REACH);
        }
    }
    0
}

impl Platform for Guest {
    fn now(&self) -> u64 {
        // SAFETY: a volatile read of the tick counter the timer ISR increments.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::HCS_TICKS)) }
    }

    fn console(&mut self, line: &[u8]) {
        push_console(line);
    }

    fn touch(&mut self, mib: u64) -> Result<(), u64> {
        let end = ram_end(TOUCH_BASE);
        let avail = end.saturating_sub(TOUCH_BASE) >> 20;
        if mib > avail {
            return Err(avail);
        }
        let mut a = TOUCH_BASE;
        let stop = TOUCH_BASE + (mib << 20);
        while a < stop {
            // SAFETY: `a` is in guest RAM (the e820 range checked above),
            // identity-mapped below 1 GiB and used by nothing else; a page
            // fault grants ring 3 the 2 MiB page (main.rs).
            unsafe { core::ptr::write_volatile(a as *mut u64, a) };
            a += 4096;
        }
        Ok(())
    }

    fn sector(&mut self, write: bool, lba: u64, buf: &mut [u8; 512]) -> Result<(), &'static [u8]> {
        // SAFETY: only this function uses BLK and BLK_TRIED (ring 3, one
        // step at a time); BLK_MEM_ADDR is the disk's part of the agent memory.
        let blk = unsafe { &mut *core::ptr::addr_of_mut!(BLK) };
        unsafe {
            if !BLK_TRIED {
                BLK_TRIED = true;
                if BLK_BASE != 0 && blk.init(BLK_BASE, BLK_MEM_ADDR as *mut BlkMem).is_err() {
                    return Err(b"the virtio-blk device could not be started");
                }
            }
        }
        blk.rw(write, lba, buf)
    }
}

fn request(r: u32) {
    // SAFETY: plain store; ring 0 reads it after the step returned.
    unsafe { AGENT_REQ = r };
}

/// One step of the agent, in ring 3.
pub extern "C" fn agent_step(_: u64) {
    // SAFETY: only this function (in ring 3, one at a time) uses STATE.
    let st = unsafe { &mut *core::ptr::addr_of_mut!(STATE) };
    let mut g = Guest;
    if !st.started {
        st.started = true;
        if ram_end(DMA_BASE) < DMA_END {
            push_console(b"AGENT DEVICE FAILED no RAM at 8-16 MiB for its buffers");
            request(REQ_STOP);
            return;
        }
        // SAFETY: DMA_BASE..DMA_END is RAM (checked), identity-mapped, and
        // used by nothing else; zeroed once, before any use.
        unsafe { core::ptr::write_bytes(DMA_BASE as *mut u8, 0, (DMA_END - DMA_BASE) as usize) };
        let mem = VSOCK_MEM_ADDR as *mut VsockMem;
        // SAFETY: set by ring 0 before the first step; read-only here.
        let base = unsafe { AGENT_BASE };
        // SAFETY: the agent's memory, zeroed above (a valid Agent).
        let agent = unsafe { &mut *(AGENT_ADDR as *mut Agent) };
        match st.dev.init(base, mem) {
            Ok(()) => {
                st.ready = true;
                agent.init(st.dev.guest_cid);
                let mut t = crate::agent::Text::<48>::new();
                t.s(b"AGENT STARTED cid=").dec(st.dev.guest_cid);
                push_console(t.get());
            }
            Err(e) => {
                let mut t = crate::agent::Text::<80>::new();
                t.s(b"AGENT DEVICE FAILED ").s(e.as_bytes());
                push_console(t.get());
                request(REQ_STOP);
                return;
            }
        }
    }
    if !st.ready {
        request(REQ_STOP);
        return;
    }
    // SAFETY: the agent's memory and the frame scratch buffer (see DMA_BASE),
    // used only here, one step at a time.
    let agent = unsafe { &mut *(AGENT_ADDR as *mut Agent) };
    let scratch = unsafe { &mut *(SCRATCH_ADDR as *mut [u8; RX_CAP]) };
    // SAFETY: ring 0 sets it only while ring 3 is not running.
    if unsafe { STOP_REQ } {
        unsafe { STOP_REQ = false };
        st.dev.service(&mut agent.stack);
        agent.abort();
        agent.stack.flush(g.now(), &mut st.dev);
        st.dev.notify();
        st.stopped = true;
        push_console(b"AGENT STOPPED");
        request(REQ_STOP);
        return;
    }
    if st.stopped {
        st.stopped = false;
        let mut t = crate::agent::Text::<48>::new();
        t.s(b"AGENT STARTED cid=").dec(st.dev.guest_cid);
        push_console(t.get());
    }
    let mut work = 0u32;
    loop {
        if st.dev.service(&mut agent.stack) {
            push_console(b"AGENT TRANSPORT RESET");
            agent.transport_reset(&mut g);
            agent.stack.guest_cid = st.dev.guest_cid;
        }
        let (busy, action) = agent.poll(&mut g, &mut st.dev, scratch);
        st.dev.notify();
        if action != Action::None {
            let now = g.now();
            if st.action_deadline == 0 {
                st.action_deadline = now + 50;
            }
            st.action_tries += 1;
            // Let the device take the last replies before the power goes
            // (for at most 0.5 s, or 1000 tries if the clock stands still).
            if st.dev.tx_in_flight() && now < st.action_deadline && st.action_tries < 1000 {
                let mut spin = 0;
                while st.dev.tx_in_flight() && spin < SPIN {
                    st.dev.service(&mut agent.stack);
                    spin += 1;
                }
                if st.dev.tx_in_flight() {
                    request(REQ_YIELD);
                    return;
                }
            }
            push_console(b"AGENT SHUTDOWN");
            request(if action == Action::Reboot {
                REQ_REBOOT
            } else {
                REQ_POWEROFF
            });
            return;
        }
        // SAFETY: a plain read of our own queue length.
        if unsafe { CONSOLE_Q_LEN } > 0 {
            request(REQ_YIELD);
            return;
        }
        if !busy {
            let mut spin = 0;
            while !st.dev.has_work() && spin < SPIN {
                spin += 1;
                core::hint::spin_loop();
            }
            if !st.dev.has_work() {
                request(REQ_IDLE);
                return;
            }
        }
        work += 1;
        if work >= WORK_BUDGET {
            request(REQ_YIELD);
            return;
        }
    }
}
