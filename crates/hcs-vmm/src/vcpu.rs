//! vCPU threads, each an explicit run-state machine (the model is
//! Firecracker's `vcpu.rs`).
//!
//! ```text
//!            resume            pause
//!   Paused ◀──────────▶ Running ───────┐
//!      │                   │           │
//!      └──── exit ─────────┴── exit ──▶ Exited
//! ```
//!
//! The controller sets the state it *wants* and kicks the thread: a
//! real-time signal whose handler sets `immediate_exit` in the thread's
//! `kvm_run`, so `KVM_RUN` returns (or does not start) and the thread looks
//! at what is wanted. The thread reports the state it *is* in, which is how
//! pause waits until every vCPU is parked.

use std::cell::Cell;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::devices::{lock, Bus};

/// What a vCPU is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Run,
    Pause,
    Exit,
}

/// Where a vCPU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Created; its thread has not reported yet.
    Starting,
    /// In or around KVM_RUN.
    Running,
    /// Parked.
    Paused,
    /// Its thread has ended.
    Exited,
}

/// Why the whole VM stopped, as seen by a vCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuStop {
    /// Triple fault (KVM_EXIT_SHUTDOWN).
    TripleFault { rip: u64 },
    /// KVM could not run or emulate the guest (KVM_EXIT_INTERNAL_ERROR).
    InternalError { suberror: u32, rip: u64 },
    /// VM entry failed.
    FailEntry { reason: u64 },
    /// KVM_SYSTEM_EVENT: shutdown, reset or crash.
    SystemEvent { kind: u32 },
    /// KVM_RUN itself failed, or an exit we cannot handle.
    Error(String),
}

/// Work for a paused vCPU thread (it owns the fd): save or restore state.
type Task = Box<dyn FnOnce(&mut VcpuFd) + Send>;

struct Control {
    want: Want,
    is: RunState,
    nmi: bool,
    task: Option<Task>,
}

/// The part of a vCPU shared with its controller.
pub struct VcpuShared {
    /// Its index (and APIC id).
    pub id: u8,
    control: Mutex<Control>,
    changed: Condvar,
    /// VM exits handled in user space.
    pub exits: AtomicU64,
    /// The kernel id of its thread (0 until the thread has started).
    pub tid: AtomicI32,
}

/// Called by a vCPU thread when the guest stops the VM.
pub type StopSink = Arc<dyn Fn(u8, VcpuStop) + Send + Sync>;

thread_local! {
    // The kvm_run of this thread's vCPU, for the kick signal's handler.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only an async-signal-safe store: tell KVM_RUN to return at once.
    KVM_RUN.with(|r| {
        let p = r.get();
        if !p.is_null() {
            // SAFETY: `p` points at this thread's mmap'ed kvm_run, which lives
            // as long as the thread's VcpuFd (the pointer is cleared first).
            unsafe { (*p).immediate_exit = 1 };
        }
    });
}

/// The signal that kicks vCPU threads.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler) {
            tracing::error!("installing the vCPU kick handler: {e}");
        }
    });
}

/// A running vCPU thread and how to steer it.
pub struct VcpuHandle {
    /// Shared state.
    pub shared: Arc<VcpuShared>,
    thread: Option<JoinHandle<()>>,
}

/// What a vCPU thread needs.
pub struct VcpuContext {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub stop: StopSink,
}

impl VcpuHandle {
    /// Start the thread; it runs the guest as soon as `want` is `Run`.
    pub fn spawn(
        id: u8,
        mut fd: VcpuFd,
        ctx: VcpuContext,
        want: Want,
    ) -> std::io::Result<VcpuHandle> {
        install_kick_handler();
        let shared = Arc::new(VcpuShared {
            id,
            control: Mutex::new(Control {
                want,
                is: RunState::Starting,
                nmi: false,
                task: None,
            }),
            changed: Condvar::new(),
            exits: AtomicU64::new(0),
            tid: AtomicI32::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::gettid() };
                s.tid.store(tid, Ordering::Release);
                KVM_RUN.with(|r| r.set(fd.get_kvm_run() as *mut kvm_run));
                run_loop(&mut fd, &s, &ctx);
                KVM_RUN.with(|r| r.set(std::ptr::null_mut()));
                let mut c = lock(&s.control);
                c.is = RunState::Exited;
                s.changed.notify_all();
            })?;
        Ok(VcpuHandle {
            shared,
            thread: Some(thread),
        })
    }

    /// Tell the thread what to do and kick it out of the guest.
    pub fn request(&self, want: Want) {
        {
            let mut c = lock(&self.shared.control);
            if c.want == Want::Exit {
                return;
            }
            c.want = want;
            self.shared.changed.notify_all();
        }
        self.kick();
    }

    /// Run `f` with the vCPU's fd on its own thread, which must be paused
    /// (KVM's vCPU ioctls belong to the thread that runs the vCPU). Waits
    /// at most `timeout`; `None` if the vCPU is not paused or did not answer.
    pub fn on_paused_thread<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut VcpuFd) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let mut c = lock(&self.shared.control);
            if c.is != RunState::Paused || c.want != Want::Pause || c.task.is_some() {
                return None;
            }
            c.task = Some(Box::new(move |fd: &mut VcpuFd| {
                let _ = tx.send(f(fd));
            }));
            self.shared.changed.notify_all();
        }
        rx.recv_timeout(timeout).ok()
    }

    /// Inject an NMI (done by the vCPU thread itself, which owns the fd).
    pub fn inject_nmi(&self) {
        lock(&self.shared.control).nmi = true;
        self.kick();
    }

    fn kick(&self) {
        if let Some(t) = &self.thread {
            // SAFETY: pthread_kill with a thread id of a thread we joined on
            // nothing yet (the handle is alive) and a signal we handle.
            unsafe {
                libc::pthread_kill(t.as_pthread_t(), kick_signal());
            }
        }
    }

    /// Wait until the vCPU is in `state` (or has exited), at most `timeout`.
    pub fn wait_for(&self, state: RunState, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = lock(&self.shared.control);
        while c.is != state && c.is != RunState::Exited {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .shared
                .changed
                .wait_timeout(c, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        c.is == state
    }

    /// The state it reports.
    pub fn state(&self) -> RunState {
        lock(&self.shared.control).is
    }

    /// CPU time the thread used, in nanoseconds.
    pub fn cpu_time_ns(&self) -> u64 {
        let Some(t) = &self.thread else { return 0 };
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the pthread is alive (we hold its JoinHandle); the out
        // pointer is valid for the call.
        if unsafe { libc::pthread_getcpuclockid(t.as_pthread_t(), &mut clock) } != 0 {
            return 0;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live timespec for the kernel to fill.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return 0;
        }
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Tell it to exit and wait for the thread.
    pub fn join(&mut self) {
        self.request(Want::Exit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VcpuHandle {
    fn drop(&mut self) {
        self.join();
    }
}

/// Apply what is wanted; returns false when the thread must end.
fn obey(fd: &mut VcpuFd, s: &VcpuShared) -> bool {
    let mut c = lock(&s.control);
    loop {
        match c.want {
            Want::Exit => return false,
            Want::Pause => {
                if c.is != RunState::Paused {
                    c.is = RunState::Paused;
                    s.changed.notify_all();
                }
                if let Some(task) = c.task.take() {
                    drop(c);
                    task(fd);
                    c = lock(&s.control);
                    continue;
                }
                c = s.changed.wait(c).unwrap_or_else(|e| e.into_inner());
            }
            Want::Run => {
                let was_paused = c.is == RunState::Paused;
                if c.is != RunState::Running {
                    c.is = RunState::Running;
                    s.changed.notify_all();
                }
                if c.nmi {
                    c.nmi = false;
                    if let Err(e) = fd.nmi() {
                        tracing::warn!(vcpu = s.id, "injecting an NMI: {e}");
                    }
                }
                drop(c);
                if was_paused {
                    // Tell the guest's kvmclock it was stopped, so its soft
                    // lockup watchdog does not fire (EINVAL: no kvmclock).
                    let _ = fd.kvmclock_ctrl();
                }
                return true;
            }
        }
    }
}

fn run_loop(fd: &mut VcpuFd, s: &VcpuShared, ctx: &VcpuContext) {
    while obey(fd, s) {
        let stop = match fd.run() {
            Ok(exit) => {
                s.exits.fetch_add(1, Ordering::Relaxed);
                match exit {
                    VcpuExit::IoIn(port, data) => {
                        ctx.pio.read(u64::from(port), data);
                        None
                    }
                    VcpuExit::IoOut(port, data) => {
                        ctx.pio.write(u64::from(port), data);
                        None
                    }
                    VcpuExit::MmioRead(addr, data) => {
                        ctx.mmio.read(addr, data);
                        None
                    }
                    VcpuExit::MmioWrite(addr, data) => {
                        ctx.mmio.write(addr, data);
                        None
                    }
                    VcpuExit::Hlt | VcpuExit::IrqWindowOpen | VcpuExit::Intr => None,
                    VcpuExit::Shutdown => Some(VcpuStop::TripleFault { rip: rip(fd) }),
                    VcpuExit::InternalError => {
                        // SAFETY: for KVM_EXIT_INTERNAL_ERROR the kernel filled
                        // the `internal` member of the exit union.
                        let suberror =
                            unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                        Some(VcpuStop::InternalError {
                            suberror,
                            rip: rip(fd),
                        })
                    }
                    VcpuExit::FailEntry(reason, _) => Some(VcpuStop::FailEntry { reason }),
                    VcpuExit::SystemEvent(kind, _) => Some(VcpuStop::SystemEvent { kind }),
                    other => Some(VcpuStop::Error(format!("unhandled VM exit {other:?}"))),
                }
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                fd.set_kvm_immediate_exit(0);
                None
            }
            Err(e) => Some(VcpuStop::Error(format!("KVM_RUN: {e}"))),
        };
        if let Some(stop) = stop {
            (ctx.stop)(s.id, stop);
            // The sink asks every vCPU to exit, from another thread. Until
            // then this one must not enter the guest again: after a triple
            // fault KVM has reset the vCPU, and it would run the reset
            // vector (seen in the nested stage: an emulation failure there).
            let mut c = lock(&s.control);
            if c.want == Want::Run {
                c.want = Want::Pause;
            }
        }
    }
}

fn rip(fd: &VcpuFd) -> u64 {
    fd.get_regs().map(|r| r.rip).unwrap_or(0)
}
