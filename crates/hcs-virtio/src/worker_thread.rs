//! The thread a device runs its event loop on (vsock, net): start it with
//! the queues attached, stop it and take the loop back (for a reset, or to
//! pause the device while a snapshot is written), start it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::EventFd;

use crate::device::ActivateError;

/// A device's event loop: runs until its stop flag is set, then returns
/// itself so it can be run again.
pub(crate) trait EventLoop: Send + Sized + 'static {
    /// Run until stopped.
    fn run(self) -> Self;
    /// Drop the queues (device reset).
    fn detach(&mut self);
}

/// How a loop's thread is told to stop: a flag, and an eventfd that wakes it.
pub(crate) trait StopSignal: Send + Sync {
    /// Set to make the loop return.
    fn stop_flag(&self) -> &AtomicBool;
    /// Written to wake the loop up.
    fn wake(&self) -> &EventFd;
}

/// Copies of eventfds (for a loop's kicks).
pub(crate) fn clone_all(evts: &[EventFd]) -> std::io::Result<Vec<EventFd>> {
    evts.iter().map(EventFd::try_clone).collect()
}

/// Where the loop is: idle (no thread), running, or paused (no thread,
/// queues still attached); lost if its thread panicked.
pub(crate) struct LoopThread<L: EventLoop> {
    name: String,
    signal: Arc<dyn StopSignal>,
    /// The device's queue eventfds, written after a start so that
    /// notifications that came meanwhile are seen.
    kicks: Vec<EventFd>,
    idle: Option<L>,
    running: Option<JoinHandle<L>>,
    paused: Option<L>,
    lost: bool,
}

impl<L: EventLoop> LoopThread<L> {
    /// An idle loop; its thread will be called `name`.
    pub(crate) fn new(
        name: String,
        event_loop: L,
        signal: Arc<dyn StopSignal>,
        kicks: Vec<EventFd>,
    ) -> Self {
        LoopThread {
            name,
            signal,
            kicks,
            idle: Some(event_loop),
            running: None,
            paused: None,
            lost: false,
        }
    }

    /// The idle loop, to attach queues (None once the device is lost).
    pub(crate) fn idle_mut(&mut self) -> Option<&mut L> {
        self.idle.as_mut().filter(|_| !self.lost)
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
    pub(crate) fn start(&mut self) -> Result<(), ActivateError> {
        let Some(l) = self.idle.take().or_else(|| self.paused.take()) else {
            return Ok(());
        };
        let handle = std::thread::Builder::new()
            .name(self.name.chars().take(15).collect())
            .spawn(move || l.run())
            .map_err(|e| {
                self.lost = true;
                ActivateError::Worker(e)
            })?;
        self.running = Some(handle);
        for k in &self.kicks {
            let _ = k.write(1);
        }
        Ok(())
    }

    /// Stop the thread and keep the loop with its queues.
    pub(crate) fn pause(&mut self) {
        let Some(handle) = self.running.take() else {
            return;
        };
        self.signal.stop_flag().store(true, Ordering::SeqCst);
        let _ = self.signal.wake().write(1);
        let joined = handle.join();
        self.signal.stop_flag().store(false, Ordering::SeqCst);
        match joined {
            Ok(l) => self.paused = Some(l),
            Err(_) => {
                tracing::error!(
                    thread = self.name,
                    "the device thread panicked; the device is lost"
                );
                self.lost = true;
            }
        }
    }

    /// Start a paused loop again.
    pub(crate) fn resume(&mut self) {
        if self.paused.is_some() {
            if let Err(e) = self.start() {
                tracing::error!(thread = self.name, "resuming the device failed: {e}");
            }
        }
    }

    /// Stop the thread and drop the queues (reset).
    pub(crate) fn stop(&mut self) {
        self.pause();
        if let Some(mut l) = self.paused.take() {
            l.detach();
            self.idle = Some(l);
        }
    }
}
