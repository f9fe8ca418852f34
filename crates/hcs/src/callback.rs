//! Where user callbacks run.
//!
//! Each handle gets a [`Dispatcher`]: one library thread, started on first
//! use, that runs the handle's callbacks in order. Callbacks never run on the
//! thread that reads the monitor's socket, so a callback may itself wait on
//! an operation without deadlocking. Closing a dispatcher drops the handle's
//! queued event callbacks and waits for the callback that is running, unless
//! the close comes from that very callback; after it returns no callback of
//! the handle runs again. Queued operation completions are not the handle's:
//! they move to the global dispatcher, so an operation still reports its
//! completion after the system handle it was about is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, ThreadId};

pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    /// Callbacks, each with whether it outlives a close (operation completions).
    queue: VecDeque<(Job, bool)>,
    running: bool,
    closed: bool,
    started: bool,
    worker: Option<ThreadId>,
}

/// An ordered queue of callbacks served by one thread.
#[derive(Default)]
pub(crate) struct Dispatcher {
    state: Mutex<State>,
    cond: Condvar,
}

impl Dispatcher {
    pub(crate) fn new() -> Arc<Dispatcher> {
        Arc::new(Dispatcher::default())
    }

    /// Queue a callback. Returns false (and drops it) if the dispatcher is closed.
    pub(crate) fn post(self: &Arc<Self>, job: Job) -> bool {
        self.try_post(job).is_ok()
    }

    /// Queue a callback, or give it back if the dispatcher is closed.
    pub(crate) fn try_post(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        self.enqueue(job, false)
    }

    /// Queue an operation completion: if the dispatcher closes before it
    /// runs, it runs on the global dispatcher instead.
    pub(crate) fn try_post_surviving(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        self.enqueue(job, true)
    }

    fn enqueue(self: &Arc<Self>, job: Job, survives: bool) -> Result<(), Job> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(job);
        }
        st.queue.push_back((job, survives));
        if !st.started {
            st.started = true;
            let me = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("hcs-callbacks".into())
                .spawn(move || me.serve());
            if spawned.is_err() {
                // No thread: run callbacks on a fresh attempt next time.
                st.started = false;
            }
        }
        self.cond.notify_all();
        Ok(())
    }

    fn serve(self: Arc<Self>) {
        let mut st = lock(&self.state);
        st.worker = Some(thread::current().id());
        loop {
            if let Some((job, _)) = st.queue.pop_front() {
                st.running = true;
                drop(st);
                // A panicking callback must not take the library thread (and
                // every later callback of the handle) with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                st = lock(&self.state);
                st.running = false;
                self.cond.notify_all();
                continue;
            }
            if st.closed {
                return;
            }
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stop delivering: drop queued event callbacks (queued operation
    /// completions go to the global dispatcher) and wait for a running one,
    /// unless called from inside a callback of this dispatcher.
    pub(crate) fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        for (job, survives) in st.queue.drain(..) {
            if survives {
                global().post(job);
            }
        }
        self.cond.notify_all();
        let on_worker = st.worker == Some(thread::current().id());
        while st.running && !on_worker {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The dispatcher used for operation callbacks whose handle is gone or that
/// never had one (enumeration).
pub(crate) fn global() -> &'static Arc<Dispatcher> {
    static GLOBAL: OnceLock<Arc<Dispatcher>> = OnceLock::new();
    GLOBAL.get_or_init(Dispatcher::new)
}

/// Lock a mutex, shrugging off poisoning: our state stays consistent because
/// no user code runs while our locks are held.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_in_order_off_the_calling_thread() {
        let d = Dispatcher::new();
        let (tx, rx) = mpsc::channel();
        let me = thread::current().id();
        for i in 0..5 {
            let tx = tx.clone();
            d.post(Box::new(move || {
                tx.send((i, thread::current().id() != me)).unwrap()
            }));
        }
        let got: Vec<_> = (0..5)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, (0..5).map(|i| (i, true)).collect::<Vec<_>>());
    }

    #[test]
    fn close_waits_for_the_running_callback_and_drops_the_rest() {
        let d = Dispatcher::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        d.post(Box::new(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            f.fetch_add(1, Ordering::SeqCst);
        }));
        let f = finished.clone();
        d.post(Box::new(move || {
            f.fetch_add(100, Ordering::SeqCst);
        }));
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let closer = {
            let d = d.clone();
            thread::spawn(move || d.close())
        };
        // Wait until the close has taken effect; it must then be blocked on
        // the running callback.
        while !lock(&d.state).closed {
            thread::yield_now();
        }
        assert!(
            !closer.is_finished(),
            "close returned while a callback was running"
        );
        release_tx.send(()).unwrap();
        closer.join().unwrap();
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "queued callback must be dropped"
        );
        assert!(!d.post(Box::new(|| panic!("must not run after close"))));
    }

    #[test]
    fn a_queued_operation_completion_outlives_the_close() {
        let d = Dispatcher::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        d.post(Box::new(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }));
        let (done_tx, done_rx) = mpsc::channel();
        let event_tx = done_tx.clone();
        assert!(d
            .try_post(Box::new(move || event_tx.send("event").unwrap()))
            .is_ok());
        assert!(d
            .try_post_surviving(Box::new(move || done_tx.send("completion").unwrap()))
            .is_ok());
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let closer = {
            let d = d.clone();
            thread::spawn(move || d.close())
        };
        while !lock(&d.state).closed {
            thread::yield_now();
        }
        release_tx.send(()).unwrap();
        closer.join().unwrap();
        // The completion ran (on the global dispatcher); the event did not.
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            "completion"
        );
        done_rx
            .recv_timeout(Duration::from_millis(200))
            .unwrap_err();
    }

    #[test]
    fn close_from_inside_a_callback_does_not_deadlock() {
        let d = Dispatcher::new();
        let (tx, rx) = mpsc::channel();
        let d2 = d.clone();
        d.post(Box::new(move || {
            d2.close();
            tx.send(()).unwrap();
        }));
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
