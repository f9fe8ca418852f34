//! One connection to a compute system's monitor.
//!
//! Requests are sent from the calling thread; a reader thread receives the
//! responses (completing whatever waits for them) and the events (handed to
//! the handles listening on this connection). When the monitor goes away
//! without being asked to, everything pending fails with
//! `HCS_E_SERVICE_DISCONNECT`, system handles see `SystemExited` with
//! `UnexpectedExit`, and every handle sees `ServiceDisconnect`.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::{
    wire::send_blocking, Channel, EventMessage, Outcome, ProcessRef, Reply, Request, RequestFrame,
};

use crate::callback::lock;
use crate::event::{Event, EventType};
use crate::handle::HandleCore;

/// What to do with a response.
pub(crate) type Completion = Box<dyn FnOnce(Outcome, Vec<OwnedFd>) + Send + 'static>;

/// Which events a listening handle wants.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    System,
    Process(ProcessRef),
}

struct Listener {
    interest: Interest,
    core: Weak<HandleCore>,
}

/// Most exit records kept per connection for processes nobody asked about.
const MAX_PROCESS_EXITS: usize = 4096;

#[derive(Default)]
struct Shared {
    pending: HashMap<u64, Completion>,
    users: usize,
    shut: bool,
    lost: bool,
    exit_status: Option<String>,
    process_exits: HashMap<ProcessRef, String>,
    listeners: Vec<Listener>,
}

pub(crate) struct Connection {
    sock: OwnedFd,
    send_lock: Mutex<()>,
    next_id: AtomicU64,
    shared: Mutex<Shared>,
    changed: Condvar,
}

impl Connection {
    /// Take over a connected socket and start its reader thread. The
    /// connection starts with one user.
    pub(crate) fn start(sock: OwnedFd) -> HcsResult<Arc<Connection>> {
        let reader_sock = sock
            .try_clone()
            .map_err(|e| HcsError::from_io("duplicating the monitor socket", &e))?;
        let conn = Arc::new(Connection {
            sock,
            send_lock: Mutex::new(()),
            next_id: AtomicU64::new(1),
            shared: Mutex::new(Shared {
                users: 1,
                ..Default::default()
            }),
            changed: Condvar::new(),
        });
        let reader = Arc::clone(&conn);
        std::thread::Builder::new()
            .name("hcs-monitor-reader".into())
            .spawn(move || reader.read_loop(Channel::new(reader_sock)))
            .map_err(|e| HcsError::from_io("starting the monitor reader thread", &e))?;
        Ok(conn)
    }

    /// Send a request; `done` runs (on the reader thread) with its outcome,
    /// or with `HCS_E_SERVICE_DISCONNECT` if the monitor goes away first.
    /// An error means the request was not sent and `done` will not run.
    pub(crate) fn request(
        &self,
        request: Request,
        fds: Vec<OwnedFd>,
        done: Completion,
    ) -> HcsResult<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut sh = lock(&self.shared);
            if sh.lost || sh.shut {
                return Err(HcsError::new(
                    HResult::HCS_E_SERVICE_DISCONNECT,
                    "the compute system's monitor is no longer reachable",
                ));
            }
            sh.pending.insert(id, done);
        }
        let frame = RequestFrame { id, request };
        let sent = {
            let _g = lock(&self.send_lock);
            send_blocking(self.sock.as_fd(), &frame, fds)
        };
        if let Err(e) = sent {
            lock(&self.shared).pending.remove(&id);
            return Err(HcsError::new(
                HResult::HCS_E_SERVICE_DISCONNECT,
                format!(
                    "sending {} to the compute system's monitor: {e}",
                    frame.request.name()
                ),
            ));
        }
        Ok(())
    }

    /// Send a request and wait for its outcome.
    pub(crate) fn request_sync(
        &self,
        request: Request,
        timeout: Duration,
    ) -> HcsResult<(Outcome, Vec<OwnedFd>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = request.name();
        self.request(
            request,
            Vec::new(),
            Box::new(move |o, fds| {
                let _ = tx.send((o, fds));
            }),
        )?;
        rx.recv_timeout(timeout).map_err(|_| {
            HcsError::new(
                HResult::HCS_E_CONNECTION_TIMEOUT,
                format!("the compute system's monitor did not answer {name} within {timeout:?}"),
            )
        })
    }

    pub(crate) fn add_user(&self) {
        lock(&self.shared).users += 1;
    }

    /// A handle using this connection closed; shut it when none is left.
    pub(crate) fn release_user(&self) {
        let mut sh = lock(&self.shared);
        sh.users = sh.users.saturating_sub(1);
        self.shut_if_unused(&mut sh);
    }

    pub(crate) fn users(&self) -> usize {
        lock(&self.shared).users
    }

    fn shut_if_unused(&self, sh: &mut Shared) {
        if sh.users == 0 && sh.pending.is_empty() && !sh.shut {
            sh.shut = true;
            let _ =
                nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    }

    pub(crate) fn listen(&self, interest: Interest, core: &Arc<HandleCore>) {
        let mut sh = lock(&self.shared);
        sh.listeners.retain(|l| l.core.strong_count() > 0);
        sh.listeners.push(Listener {
            interest,
            core: Arc::downgrade(core),
        });
        drop(sh);
        self.replay_exit(interest, core);
    }

    /// Deliver an exit that happened before the handle listened or
    /// registered its callback (the handle delivers an exit only once).
    pub(crate) fn replay_exit(&self, interest: Interest, core: &Arc<HandleCore>) {
        let (t, status) = {
            let sh = lock(&self.shared);
            match interest {
                Interest::System => (EventType::SystemExited, sh.exit_status.clone()),
                Interest::Process(p) => {
                    (EventType::ProcessExited, sh.process_exits.get(&p).cloned())
                }
            }
        };
        if let Some(status) = status {
            core.deliver(Event {
                event_type: t,
                data: Some(status),
                operation: None,
            });
        }
    }

    /// The system's exit status, once it exited.
    pub(crate) fn exit_status(&self) -> Option<String> {
        lock(&self.shared).exit_status.clone()
    }

    /// Record what the monitor said about a process that had already exited.
    pub(crate) fn note_process_exit(&self, p: ProcessRef, status: String) {
        let mut sh = lock(&self.shared);
        if sh.process_exits.len() >= MAX_PROCESS_EXITS {
            sh.process_exits.clear();
        }
        sh.process_exits.insert(p, status);
        self.changed.notify_all();
    }

    /// Block until the system exited (its `SystemExitStatus`), the time is
    /// up, or the monitor is gone.
    pub(crate) fn wait_exit(&self, timeout_ms: u32) -> HcsResult<String> {
        self.wait_for(timeout_ms, |sh| sh.exit_status.clone())
    }

    /// Block until process `p` exited (its `ProcessStatus`).
    pub(crate) fn wait_process_exit(&self, p: ProcessRef, timeout_ms: u32) -> HcsResult<String> {
        self.wait_for(timeout_ms, |sh| sh.process_exits.get(&p).cloned())
    }

    fn wait_for(
        &self,
        timeout_ms: u32,
        probe: impl Fn(&Shared) -> Option<String>,
    ) -> HcsResult<String> {
        let deadline = (timeout_ms != crate::INFINITE)
            .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
        let mut sh = lock(&self.shared);
        loop {
            if let Some(v) = probe(&sh) {
                return Ok(v);
            }
            if sh.lost {
                return Err(HcsError::new(
                    HResult::HCS_E_SERVICE_DISCONNECT,
                    "the compute system's monitor disconnected",
                ));
            }
            sh = match deadline {
                None => self.changed.wait(sh).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(HcsError::new(
                            HResult::HCS_E_OPERATION_TIMEOUT,
                            format!("the wait ended after {timeout_ms} ms"),
                        ));
                    }
                    self.changed
                        .wait_timeout(sh, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn read_loop(self: Arc<Self>, mut channel: Channel) {
        loop {
            match channel.recv::<Reply>() {
                Ok(Some((Reply::Response { id, outcome }, fds))) => {
                    let done = lock(&self.shared).pending.remove(&id);
                    match done {
                        Some(done) => done(outcome, fds),
                        None => tracing::warn!("response to unknown request {id}"),
                    }
                    let mut sh = lock(&self.shared);
                    self.shut_if_unused(&mut sh);
                }
                Ok(Some((Reply::Event(ev), _))) => self.on_event(ev),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("reading from the compute system's monitor: {e}");
                    break;
                }
            }
        }
        self.on_end();
    }

    fn on_event(&self, ev: EventMessage) {
        let mut deliveries = Vec::new();
        {
            let mut sh = lock(&self.shared);
            match &ev {
                EventMessage::SystemExited { status } => {
                    sh.exit_status = Some(status.clone());
                    for l in sh
                        .listeners
                        .iter()
                        .filter(|l| l.interest == Interest::System)
                    {
                        deliveries.push((
                            l.core.clone(),
                            EventType::SystemExited,
                            Some(status.clone()),
                        ));
                    }
                }
                EventMessage::ProcessExited { process, status } => {
                    if sh.process_exits.len() >= MAX_PROCESS_EXITS {
                        sh.process_exits.clear();
                    }
                    sh.process_exits.insert(*process, status.clone());
                    for l in sh
                        .listeners
                        .iter()
                        .filter(|l| l.interest == Interest::Process(*process))
                    {
                        deliveries.push((
                            l.core.clone(),
                            EventType::ProcessExited,
                            Some(status.clone()),
                        ));
                    }
                }
                EventMessage::GuestConnectionClosed => {
                    for l in sh
                        .listeners
                        .iter()
                        .filter(|l| l.interest == Interest::System)
                    {
                        deliveries.push((
                            l.core.clone(),
                            EventType::SystemGuestConnectionClosed,
                            None,
                        ));
                    }
                }
                EventMessage::CrashInitiated { report } | EventMessage::CrashReport { report } => {
                    let t = if matches!(ev, EventMessage::CrashInitiated { .. }) {
                        EventType::SystemCrashInitiated
                    } else {
                        EventType::SystemCrashReport
                    };
                    for l in sh
                        .listeners
                        .iter()
                        .filter(|l| l.interest == Interest::System)
                    {
                        deliveries.push((l.core.clone(), t, Some(report.clone())));
                    }
                }
            }
            self.changed.notify_all();
        }
        for (core, t, data) in deliveries {
            if let Some(core) = core.upgrade() {
                core.deliver(Event {
                    event_type: t,
                    data,
                    operation: None,
                });
            }
        }
    }

    fn on_end(&self) {
        let (pending, listeners, synthesized) = {
            let mut sh = lock(&self.shared);
            let expected = sh.shut;
            sh.lost = true;
            let synthesized = if !expected && sh.exit_status.is_none() {
                let status = unexpected_exit_status();
                sh.exit_status = Some(status.clone());
                Some(status)
            } else {
                None
            };
            let pending: Vec<Completion> = sh.pending.drain().map(|(_, c)| c).collect();
            let listeners: Vec<(Interest, Weak<HandleCore>)> = if expected {
                Vec::new()
            } else {
                sh.listeners
                    .iter()
                    .map(|l| (l.interest, l.core.clone()))
                    .collect()
            };
            self.changed.notify_all();
            (pending, listeners, synthesized)
        };
        let err = HcsError::new(
            HResult::HCS_E_SERVICE_DISCONNECT,
            "the compute system's monitor disconnected before answering",
        );
        for done in pending {
            done(Outcome::error(&err), Vec::new());
        }
        for (interest, core) in listeners {
            let Some(core) = core.upgrade() else { continue };
            if let (Interest::System, Some(status)) = (interest, &synthesized) {
                core.deliver(Event {
                    event_type: EventType::SystemExited,
                    data: Some(status.clone()),
                    operation: None,
                });
            }
            core.deliver(Event {
                event_type: EventType::ServiceDisconnect,
                data: None,
                operation: None,
            });
        }
    }
}

/// The `SystemExitStatus` of a system whose monitor vanished: it cannot be
/// running any more (its processes die with the monitor), and nobody asked.
fn unexpected_exit_status() -> String {
    serde_json::json!({
        "Status": HResult::HCS_E_UNEXPECTED_EXIT.0,
        "ExitType": "UnexpectedExit",
        "Attribution": [{
            "WorkerExit": {
                "ExitCode": 0,
                "Type": "UnexpectedStop",
                "Detail": "ProcessUnexpectedExit",
                "Initiator": "Unknown"
            }
        }]
    })
    .to_string()
}
