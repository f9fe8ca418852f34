//! The VM side of the guest agent: where the agent's connection arrives
//! and which [`AgentClient`] is current.
//!
//! The agent connects out of the guest to host port
//! [`hcs_agent_protocol::AGENT_CONTROL_PORT`], which the hybrid vsock device
//! turns into a connection to the unix socket `<uds>_<port>`. A thread
//! accepts there, says Hello, and installs the client; an agent that
//! reconnects (after a guest restart or a restore) replaces the old one.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hcs_errors::{HResult, HcsError, HcsResult};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::agent::{hybrid_vsock_port_path, AgentClient, AgentEvent, HostTimeZone};

/// The current client, and a condition signalled when it changes.
type Slot = Arc<(Mutex<Option<Arc<AgentClient>>>, Condvar)>;

/// Listens for the guest agent and holds its current connection.
pub struct GuestLink {
    slot: Slot,
    /// Events of clients that were replaced, not yet taken.
    pending: Arc<Mutex<Vec<AgentEvent>>>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    listen_path: PathBuf,
}

fn new_eventfd() -> HcsResult<EventFd> {
    EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
        .map_err(|e| HcsError::from_io("creating an eventfd", &e.into()))
}

impl GuestLink {
    /// Listen at `<vsock_uds>_<AGENT_CONTROL_PORT>`; stdio ports of the
    /// processes go to `<vsock_uds>_<port>` too. With `time_zone`
    /// (`UseHostTimeZone`), each agent that connects is given it before it
    /// is used. With `set_clock` (a VM restored from a saved state, whose
    /// wall clock stood still while it was saved), each agent that connects
    /// first sets the guest's clock from the host's.
    pub fn listen(
        vsock_uds: &Path,
        time_zone: Option<HostTimeZone>,
        set_clock: bool,
    ) -> HcsResult<GuestLink> {
        let listen_path = hybrid_vsock_port_path(vsock_uds, hcs_agent_protocol::AGENT_CONTROL_PORT);
        let _ = std::fs::remove_file(&listen_path);
        let listener = UnixListener::bind(&listen_path).map_err(|e| {
            HcsError::from_io(format!("listening on {}", listen_path.display()), &e)
        })?;
        let link = GuestLink {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
            pending: Arc::new(Mutex::new(Vec::new())),
            wake: Arc::new(new_eventfd()?),
            stop: Arc::new(new_eventfd()?),
            thread: None,
            listen_path,
        };
        let acceptor = Acceptor {
            listener,
            vsock_uds: vsock_uds.to_path_buf(),
            time_zone,
            set_clock,
            slot: link.slot.clone(),
            pending: link.pending.clone(),
            wake: link.wake.clone(),
            stop: link.stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("agent-accept".into())
            .spawn(move || acceptor.run())
            .map_err(|e| HcsError::from_io("starting the agent acceptor thread", &e))?;
        let mut link = link;
        link.thread = Some(thread);
        Ok(link)
    }

    /// Readable when [`GuestLink::take_events`] may have something.
    pub fn event_fd(&self) -> RawFd {
        self.wake.as_fd().as_raw_fd()
    }

    /// The connected agent, if any.
    pub fn current(&self) -> Option<Arc<AgentClient>> {
        self.slot
            .0
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| !c.is_closed())
    }

    /// The connected agent, waiting up to `timeout` for one to connect.
    pub fn client(&self, timeout: Duration) -> HcsResult<Arc<AgentClient>> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.slot;
        let mut guard = lock
            .lock()
            .map_err(|_| HcsError::new(HResult::E_FAIL, "guest agent slot poisoned"))?;
        loop {
            if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HcsError::new(
                    HResult::HCS_E_CONNECT_FAILED,
                    format!(
                        "the guest agent has not connected (waited {} s); the guest must run \
                         hcs-agent, which connects to vsock port {}",
                        timeout.as_secs(),
                        hcs_agent_protocol::AGENT_CONTROL_PORT
                    ),
                ));
            }
            guard = changed
                .wait_timeout(guard, left)
                .map_err(|_| HcsError::new(HResult::E_FAIL, "guest agent slot poisoned"))?
                .0;
        }
    }

    /// What happened since the last call (process exits, lost connections).
    pub fn take_events(&self) -> Vec<AgentEvent> {
        let _ = self.wake.read();
        let mut events = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        if let Some(c) = self.slot.0.lock().ok().and_then(|c| c.clone()) {
            events.extend(c.take_events());
        }
        events
    }
}

impl Drop for GuestLink {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut c) = self.slot.0.lock() {
            c.take();
        }
        let _ = std::fs::remove_file(&self.listen_path);
    }
}

/// The accepting thread's state.
struct Acceptor {
    listener: UnixListener,
    vsock_uds: PathBuf,
    time_zone: Option<HostTimeZone>,
    set_clock: bool,
    slot: Slot,
    pending: Arc<Mutex<Vec<AgentEvent>>>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
}

impl Acceptor {
    fn run(self) {
        loop {
            let mut fds = [
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("agent acceptor: poll: {e}");
                    return;
                }
            }
            if fds[1].any().unwrap_or(false) {
                return;
            }
            match self.listener.accept() {
                Ok((stream, _)) => self.install(stream),
                Err(e) => tracing::warn!("agent acceptor: accept: {e}"),
            }
        }
    }

    fn install(&self, stream: std::os::unix::net::UnixStream) {
        let base = self.vsock_uds.clone();
        let wake = self.wake.clone();
        // Cancelled by `stop`: dropping the link (terminate) never waits
        // for a guest that connected but does not answer Hello.
        let client = AgentClient::connect_cancellable(
            stream,
            Box::new(move |port| hybrid_vsock_port_path(&base, port)),
            Arc::new(move || {
                let _ = wake.write(1);
            }),
            Some(self.stop.as_fd()),
        );
        let client = match client {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!("guest agent handshake failed: {e}");
                return;
            }
        };
        // Before anyone can use the agent, so no process starts in the old zone.
        if let Some(tz) = &self.time_zone {
            match client.set_time_zone(tz) {
                Ok(()) => tracing::info!(name = %tz.name, "host time zone set in the guest"),
                Err(e) => tracing::warn!(
                    "UseHostTimeZone: the guest agent refused the host's time zone: {e}"
                ),
            }
        }
        // The guest's wall clock from the host's, as Hyper-V's time
        // synchronization does after a restore: a restored guest's clock
        // stood still for as long as it was saved, and nothing else in it
        // knows the time that passed. (A booted guest has its RTC.)
        if self.set_clock {
            match client.set_time(std::time::SystemTime::now()) {
                Ok(()) => tracing::info!("guest clock set from the host"),
                Err(e) => tracing::warn!("the guest agent did not set its clock: {e}"),
            }
        }
        let (lock, changed) = &*self.slot;
        let Ok(mut current) = lock.lock() else { return };
        if let Some(old) = current.replace(client) {
            if let Ok(mut p) = self.pending.lock() {
                p.extend(old.take_events());
            }
        }
        changed.notify_all();
        // The monitor's loop may hold process creations until the agent
        // is here.
        let _ = self.wake.write(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_agent_protocol as proto;
    use std::os::unix::net::UnixStream;

    #[test]
    fn stopping_abandons_a_handshake_the_guest_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let link = GuestLink::listen(&uds, None, false).unwrap();
        let path = hybrid_vsock_port_path(&uds, proto::AGENT_CONTROL_PORT);
        // A guest that connects and never answers.
        let mut guest = UnixStream::connect(path).unwrap();
        guest
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut payload = Vec::new();
        let header = proto::read_frame(&mut guest, &mut payload)
            .unwrap()
            .expect("the host's Hello");
        assert!(matches!(
            proto::Message::decode(&header, &payload),
            Ok(proto::Message::Hello(_))
        ));
        // The acceptor now waits for the reply (up to 30 s before). Stop.
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(link);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("stopping the link waited for the guest's Hello reply");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopping took {:?}",
            started.elapsed()
        );
    }

    /// A guest that answers Hello, then reads requests and never answers.
    fn silent_after_hello(uds: &Path) -> UnixStream {
        let path = hybrid_vsock_port_path(uds, proto::AGENT_CONTROL_PORT);
        let mut guest = UnixStream::connect(path).unwrap();
        guest
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut payload = Vec::new();
        let header = proto::read_frame(&mut guest, &mut payload)
            .unwrap()
            .expect("the host's Hello");
        let reply = proto::Message::HelloReply(proto::HelloReply {
            version: proto::PROTOCOL_VERSION,
            agent: b"silent",
        });
        proto::write_frame(
            &mut guest,
            &reply,
            proto::PROTOCOL_VERSION,
            header.request_id,
        )
        .unwrap();
        guest
    }

    #[test]
    fn stopping_abandons_requests_and_stdio_waits_the_guest_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let link = GuestLink::listen(&uds, None, false).unwrap();
        let mut guest = silent_after_hello(&uds);
        let client = link.client(Duration::from_secs(20)).expect("connected");
        // A signal (a reply owed) and a process creation (a reply, then
        // its stdio connections owed), each on a thread of its own as the
        // monitor runs them.
        let (tx, rx) = std::sync::mpsc::channel();
        let c = client.clone();
        let t = tx.clone();
        std::thread::spawn(move || {
            let _ = t.send(("signal", c.signal(7, 9).map(|_| ())));
        });
        let params: hcs_schema::ProcessParameters =
            serde_json::from_str(r#"{"CommandArgs":["true"],"CreateStdOutPipe":true}"#).unwrap();
        let c = client.clone();
        std::thread::spawn(move || {
            let _ = tx.send(("create", c.create_process(&params).map(|_| ())));
        });
        // Both requests reached the guest, which answers the creation (so
        // the host waits for its stdout port) but not the signal.
        let mut payload = Vec::new();
        for _ in 0..2 {
            let header = proto::read_frame(&mut guest, &mut payload)
                .unwrap()
                .expect("a request");
            if let Ok(proto::Message::CreateProcess(_)) = proto::Message::decode(&header, &payload)
            {
                let created = proto::Message::ProcessCreated(proto::ProcessCreated { pid: 42 });
                proto::write_frame(
                    &mut guest,
                    &created,
                    proto::PROTOCOL_VERSION,
                    header.request_id,
                )
                .unwrap();
            }
        }
        drop(client);
        let started = Instant::now();
        drop(link);
        for _ in 0..2 {
            let (what, r) = rx
                .recv_timeout(Duration::from_secs(25))
                .expect("a wait on the guest outlived the stop");
            let e = r.expect_err(what);
            assert_eq!(e.hresult, HResult::HCS_E_TERMINATED, "{what}: {e}");
        }
        // The request timeout is 30 s, the stdio one 10 s.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopping took {:?}",
            started.elapsed()
        );
    }
}
