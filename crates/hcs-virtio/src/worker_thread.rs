//! The thread a device runs its event loop on (vsock, net): start it with
//! the queues attached, stop it and take the loop back (for a reset, or to
//! pause the device while a snapshot is written), start it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::EventFd;

/// A device's event loop: runs until its stop flag is set, then returns
/// itself so it can be run again.
pub(crate) trait EventLoop: Send + Sized + 'static {
    /// Run until stopped.
    fn run(self) -> Self;
    /// Drop the queues (device reset).
    fn detach(&mut self);
}

/// Where the loop is: idle (no thread), running, or paused (no thread,
/// queues still attached).
pub(crate) struct LoopThread<L: EventLoop> {
    name: String,
    idle: Option<L>,
    running: Option<JoinHandle<L>>,
    paused: Option<L>,
}

impl<L: EventLoop> LoopThread<L> {
    /// An idle loop; its thread will be called `name`.
    pub(crate) fn new(name: String, event_loop: L) -> Self {
        LoopThread {
            name,
            idle: Some(event_loop),
            running: None,
            paused: None,
        }
    }

    /// The idle loop, to attach queues or read it.
    pub(crate) fn idle_mut(&mut self) -> Option<&mut L> {
        self.idle.as_mut()
    }

    /// The idle loop, by reference.
    pub(crate) fn idle(&self) -> Option<&L> {
        self.idle.as_ref()
    }

    /// Whether the thread runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Start the idle (or paused) loop on its thread.
    pub(crate) fn start(&mut self) -> std::io::Result<()> {
        let Some(l) = self.idle.take().or_else(|| self.paused.take()) else {
            return Ok(());
        };
        let handle = std::thread::Builder::new()
            .name(self.name.chars().take(15).collect())
            .spawn(move || l.run())?;
        self.running = Some(handle);
        Ok(())
    }

    /// Stop the thread and keep the loop with its queues (pause). `false`
    /// when the thread had panicked (the device is lost).
    pub(crate) fn pause(&mut self, stop: &AtomicBool, wake: &EventFd) -> bool {
        let Some(handle) = self.running.take() else {
            return true;
        };
        stop.store(true, Ordering::SeqCst);
        let _ = wake.write(1);
        let joined = handle.join();
        stop.store(false, Ordering::SeqCst);
        match joined {
            Ok(l) => {
                self.paused = Some(l);
                true
            }
            Err(_) => false,
        }
    }

    /// Stop the thread and drop the queues (reset). `false` when the
    /// thread had panicked.
    pub(crate) fn stop(&mut self, stop: &AtomicBool, wake: &EventFd) -> bool {
        let ok = self.pause(stop, wake);
        if let Some(mut l) = self.paused.take() {
            l.detach();
            self.idle = Some(l);
        }
        ok
    }
}
