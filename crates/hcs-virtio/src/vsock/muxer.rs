//! The vsock backend: guest packets to and from host unix sockets.
//!
//! Hybrid vsock, as Firecracker does it:
//! - host-initiated: a client connects to the listening socket at
//!   `uds_path` and writes `CONNECT <port>\n`; the muxer sends the guest a
//!   REQUEST for that port and, when the guest answers, writes
//!   `OK <local port>\n` back; then bytes flow;
//! - guest-initiated: a REQUEST to host port P connects to the unix socket
//!   `<uds_path>_P`; RESPONSE if it accepts, RST if nothing listens.
//!
//! The muxer runs an epoll loop ([`VsockMuxer::poll`]) over the listener,
//! the host sockets, the queue notification eventfds and a control eventfd.
//! Host sockets are edge-triggered: a connection remembers that it is
//! readable and is read when the guest has both a receive buffer and
//! credit for it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::ops::Bound;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use virtio_vsock::packet::{VsockPacket, PKT_HEADER_SIZE};
use vm_memory::Bytes;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::conn::{ConnKey, Connection};
use super::packet::{self, Header, RxPacket};
use super::policy::VsockPolicy;
use super::{sock, VsockError};
use crate::chain::{self, ChainLimits};
use crate::device::{drain_available, notify_used, Served};
use crate::{GuestMemoryMmap, Interrupt};

/// Index of the receive queue (device to driver).
pub const RX_QUEUE: usize = 0;
/// Index of the transmit queue (driver to device).
pub const TX_QUEUE: usize = 1;
/// Index of the event queue.
pub const EVENT_QUEUE: usize = 2;

/// Connections (and pending handshakes) at most.
pub const MAX_CONNECTIONS: usize = 1024;
/// Orphan RSTs queued at most; more are dropped.
const MAX_ORPHAN_RSTS: usize = 1024;
/// Longest `CONNECT <port>` line.
const MAX_CONNECT_LINE: usize = 32;
/// First local port given to host-initiated connections.
const LOCAL_PORT_BASE: u32 = 1 << 30;
const EVENT_LIMITS: ChainLimits = ChainLimits {
    max_descriptors: 16,
    max_bytes: 4096,
};

/// The muxer's time limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A host client has this long to send its `CONNECT` line.
    pub handshake: Duration,
    /// The guest has this long to answer a host-initiated REQUEST.
    pub connect: Duration,
    /// A closing connection waits this long for the guest's RST.
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(5),
            connect: Duration::from_secs(2),
            linger: Duration::from_secs(2),
        }
    }
}

/// The queues the muxer works on, with their memory and interrupt.
pub struct VsockQueues {
    /// Guest memory.
    pub mem: GuestMemoryMmap,
    /// Receive queue (packets to the guest).
    pub rx: Queue,
    /// Transmit queue (packets from the guest).
    pub tx: Queue,
    /// Event queue.
    pub event: Queue,
    /// The transport's interrupt.
    pub interrupt: Arc<Interrupt>,
}

/// Requests to the muxer's thread.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) evt: EventFd,
    pub(crate) stop: AtomicBool,
    pub(crate) reset: AtomicBool,
}

impl crate::worker_thread::StopSignal for Control {
    fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    fn wake(&self) -> &EventFd {
        &self.evt
    }
}

#[derive(Debug, Clone, Copy)]
enum Owner {
    Listener,
    Queue(usize),
    Control,
    Handshake,
    Conn(ConnKey),
}

struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
    deadline: Instant,
}

#[derive(Default)]
struct Kicks {
    tx: bool,
    event: bool,
}

/// The vsock backend.
pub struct VsockMuxer {
    cid: u64,
    uds_path: PathBuf,
    listener: UnixListener,
    epoll: Epoll,
    owners: HashMap<RawFd, Owner>,
    conns: BTreeMap<ConnKey, Connection>,
    handshakes: HashMap<RawFd, Handshake>,
    orphan_rsts: VecDeque<ConnKey>,
    next_local_port: u32,
    rr_cursor: Option<ConnKey>,
    queue_evts: [EventFd; 3],
    control: Arc<Control>,
    queues: Option<VsockQueues>,
    reset_event_pending: bool,
    scratch: Vec<u8>,
    timeouts: Timeouts,
    policy: VsockPolicy,
}

impl std::fmt::Debug for VsockMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsockMuxer")
            .field("cid", &self.cid)
            .field("uds_path", &self.uds_path)
            .field("connections", &self.conns.len())
            .field("handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

fn eventfd() -> Result<EventFd, VsockError> {
    EventFd::new(libc::EFD_NONBLOCK).map_err(VsockError::Setup)
}

impl VsockMuxer {
    /// A muxer for guest `cid` listening on `uds_path` (which must not
    /// exist yet).
    pub fn new(cid: u64, uds_path: impl AsRef<Path>) -> Result<VsockMuxer, VsockError> {
        let uds_path = uds_path.as_ref().to_path_buf();
        if cid <= packet::HOST_CID || cid > u64::from(u32::MAX) - 1 {
            return Err(VsockError::BadCid(cid));
        }
        let listener = UnixListener::bind(&uds_path).map_err(|source| VsockError::Bind {
            path: uds_path.clone(),
            source,
        })?;
        listener.set_nonblocking(true).map_err(VsockError::Setup)?;
        let control = Arc::new(Control {
            evt: eventfd()?,
            stop: AtomicBool::new(false),
            reset: AtomicBool::new(false),
        });
        let m = VsockMuxer {
            cid,
            uds_path,
            listener,
            epoll: Epoll::new().map_err(VsockError::Setup)?,
            owners: HashMap::new(),
            conns: BTreeMap::new(),
            handshakes: HashMap::new(),
            orphan_rsts: VecDeque::new(),
            next_local_port: LOCAL_PORT_BASE,
            rr_cursor: None,
            queue_evts: [eventfd()?, eventfd()?, eventfd()?],
            control,
            queues: None,
            reset_event_pending: false,
            scratch: Vec::new(),
            timeouts: Timeouts::default(),
            policy: VsockPolicy::default(),
        };
        m.register(m.listener.as_raw_fd(), EventSet::IN)
            .map_err(VsockError::Setup)?;
        m.register(m.control.evt.as_raw_fd(), EventSet::IN)
            .map_err(VsockError::Setup)?;
        for i in 0..3 {
            m.register(m.queue_evts[i].as_raw_fd(), EventSet::IN)
                .map_err(VsockError::Setup)?;
        }
        Ok(m)
    }

    /// Which ports connections may use (an HvSocket service table); from
    /// now on, existing connections stay.
    pub fn set_policy(&mut self, policy: VsockPolicy) {
        self.policy = policy;
    }

    /// Change the time limits.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
    }

    /// The guest's CID.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// The listening socket's path.
    pub fn uds_path(&self) -> &Path {
        &self.uds_path
    }

    /// The eventfd that stands for a notification of queue `index`.
    pub fn queue_eventfd(&self, index: usize) -> Option<&EventFd> {
        self.queue_evts.get(index)
    }

    pub(crate) fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    #[cfg(test)]
    pub(crate) fn queues_for_test(&self) -> &VsockQueues {
        self.queues.as_ref().expect("attached")
    }

    /// Start working on `queues` (the driver set DRIVER_OK).
    pub fn attach(&mut self, queues: VsockQueues) {
        self.queues = Some(queues);
    }

    /// Stop working on the queues and drop every connection (device
    /// reset). The listener stays.
    pub fn detach(&mut self) {
        self.queues = None;
        self.drop_connections();
        for fd in self.handshakes.keys().copied().collect::<Vec<_>>() {
            self.close_handshake(fd);
        }
        self.reset_event_pending = false;
    }

    /// Drop every connection and tell the guest with a
    /// `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET` event (after a snapshot
    /// restore: the guest's connections are gone from the host side).
    pub fn reset_connections(&mut self) {
        self.drop_connections();
        self.reset_event_pending = true;
        self.process_event_queue();
    }

    fn drop_connections(&mut self) {
        for key in self.conns.keys().copied().collect::<Vec<_>>() {
            self.remove_conn(key);
        }
        self.orphan_rsts.clear();
        self.rr_cursor = None;
    }

    /// Run until asked to stop; returns the muxer for a later activation.
    fn run_loop(mut self) -> VsockMuxer {
        loop {
            if self.control.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = self.poll(Duration::from_secs(1)) {
                tracing::error!("vsock: event loop failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self
    }

    /// One round of the event loop: wait up to `timeout` for events,
    /// handle them, expire deadlines, and move packets both ways.
    pub fn poll(&mut self, timeout: Duration) -> std::io::Result<()> {
        let now = Instant::now();
        let wait = self
            .next_deadline()
            .map_or(timeout, |d| d.saturating_duration_since(now).min(timeout));
        let mut events = [EpollEvent::default(); 64];
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let n = match self.epoll.wait(ms, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        let mut kicks = Kicks::default();
        for ev in &events[..n] {
            let set = EventSet::from_bits_truncate(ev.events());
            self.dispatch(ev.data() as RawFd, set, &mut kicks);
        }
        self.expire(Instant::now());
        if self.control.reset.swap(false, Ordering::SeqCst) {
            self.reset_connections();
        }
        if kicks.tx {
            self.process_tx();
        }
        if kicks.event || self.reset_event_pending {
            self.process_event_queue();
        }
        self.process_rx();
        Ok(())
    }

    fn register(&self, fd: RawFd, set: EventSet) -> std::io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Add, fd, EpollEvent::new(set, fd as u64))
    }

    fn dispatch(&mut self, fd: RawFd, set: EventSet, kicks: &mut Kicks) {
        let owner = match fd {
            _ if fd == self.listener.as_raw_fd() => Owner::Listener,
            _ if fd == self.control.evt.as_raw_fd() => Owner::Control,
            _ => match self.queue_evts.iter().position(|e| e.as_raw_fd() == fd) {
                Some(i) => Owner::Queue(i),
                None => match self.owners.get(&fd) {
                    Some(o) => *o,
                    None => return,
                },
            },
        };
        match owner {
            Owner::Listener => self.accept(),
            Owner::Control => {
                let _ = self.control.evt.read();
            }
            Owner::Queue(i) => {
                let _ = self.queue_evts[i].read();
                match i {
                    // New receive buffers: process_rx runs every round.
                    RX_QUEUE => {}
                    TX_QUEUE => kicks.tx = true,
                    _ => kicks.event = true,
                }
            }
            Owner::Handshake => self.handshake_readable(fd),
            Owner::Conn(key) => self.conn_event(key, set),
        }
    }

    fn conn_event(&mut self, key: ConnKey, set: EventSet) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.host_event(
            set.intersects(EventSet::IN | EventSet::READ_HANG_UP),
            set.contains(EventSet::HANG_UP),
            set.contains(EventSet::ERROR),
            set.contains(EventSet::OUT),
            Instant::now(),
            self.timeouts.linger,
        );
        if conn.finished() {
            self.remove_conn(key);
        }
    }

    fn at_capacity(&self) -> bool {
        self.conns.len() + self.handshakes.len() >= MAX_CONNECTIONS
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("vsock: accepting a host connection failed: {e}");
                    return;
                }
            };
            if self.at_capacity() {
                tracing::warn!("vsock: too many connections; refusing a host client");
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = stream.as_raw_fd();
            if self.register(fd, EventSet::IN).is_err() {
                continue;
            }
            self.owners.insert(fd, Owner::Handshake);
            let deadline = Instant::now() + self.timeouts.handshake;
            self.handshakes.insert(
                fd,
                Handshake {
                    stream,
                    line: Vec::new(),
                    deadline,
                },
            );
        }
    }

    /// Read the `CONNECT <port>\n` line byte by byte: whatever follows it
    /// is payload for the guest and must stay in the socket.
    fn handshake_readable(&mut self, fd: RawFd) {
        let Some(hs) = self.handshakes.get_mut(&fd) else {
            return;
        };
        let mut byte = [0u8; 1];
        loop {
            match hs.stream.read(&mut byte) {
                Ok(0) => return self.close_handshake(fd),
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if hs.line.len() >= MAX_CONNECT_LINE => return self.close_handshake(fd),
                Ok(_) => hs.line.push(byte[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.close_handshake(fd),
            }
        }
        let port = parse_connect(&hs.line);
        let Some(port) = port else {
            tracing::debug!(line = ?String::from_utf8_lossy(&hs.line), "vsock: bad CONNECT line");
            return self.close_handshake(fd);
        };
        if !self.policy.allows_connect(port) {
            // The guest never hears of it; the client sees its socket close.
            tracing::debug!(port, "vsock: host connection refused by the service table");
            return self.close_handshake(fd);
        }
        let Some(hs) = self.handshakes.remove(&fd) else {
            return;
        };
        let local_port = self.alloc_local_port();
        let key = ConnKey {
            local_port,
            peer_port: port,
        };
        let set = EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED;
        if self
            .epoll
            .ctl(
                ControlOperation::Modify,
                fd,
                EpollEvent::new(set, fd as u64),
            )
            .is_err()
        {
            self.owners.remove(&fd);
            return;
        }
        self.owners.insert(fd, Owner::Conn(key));
        let deadline = Instant::now() + self.timeouts.connect;
        self.conns.insert(
            key,
            Connection::host_initiated(hs.stream, key, deadline, self.timeouts.linger),
        );
    }

    fn close_handshake(&mut self, fd: RawFd) {
        if let Some(hs) = self.handshakes.remove(&fd) {
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            self.owners.remove(&fd);
            drop(hs);
        }
    }

    fn alloc_local_port(&mut self) -> u32 {
        loop {
            let p = self.next_local_port;
            self.next_local_port = if p >= u32::MAX / 2 {
                LOCAL_PORT_BASE
            } else {
                p + 1
            };
            // At most MAX_CONNECTIONS are taken out of 2^30: this ends.
            if !self.conns.keys().any(|k| k.local_port == p) {
                return p;
            }
        }
    }

    fn remove_conn(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.remove(&key) {
            let fd = conn.stream.as_raw_fd();
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            self.owners.remove(&fd);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let c = self.conns.values().filter_map(|c| c.deadline);
        let h = self.handshakes.values().map(|h| h.deadline);
        c.chain(h).min()
    }

    fn expire(&mut self, now: Instant) {
        let late: Vec<RawFd> = self
            .handshakes
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in late {
            tracing::debug!("vsock: host client sent no CONNECT line in time");
            self.close_handshake(fd);
        }
        for conn in self.conns.values_mut() {
            if conn.deadline.is_some_and(|d| d <= now) && !conn.dead {
                conn.deadline = None;
                conn.expire();
            }
        }
    }

    /// Handle every packet the guest sent.
    pub fn process_tx(&mut self) {
        let Some(mut q) = self.queues.take() else {
            return;
        };
        let mut used_any = false;
        drain_available(&mut q.tx, &q.mem, "vsock TX", |tx, mut chain| {
            let head = chain.head_index();
            match VsockPacket::from_tx_virtq_chain(&q.mem, &mut chain, packet::MAX_PKT_DATA) {
                Ok(pkt) => self.handle_guest_packet(&pkt),
                Err(e) => tracing::debug!("vsock: malformed TX packet dropped: {e}"),
            }
            if let Err(e) = tx.add_used(&q.mem, head, 0) {
                tracing::debug!(head, "vsock: returning a TX buffer failed: {e}");
            }
            used_any = true;
            Served::Next
        });
        if used_any {
            notify_used(&mut q.tx, &q.mem, &q.interrupt);
        }
        self.queues = Some(q);
    }

    fn handle_guest_packet(&mut self, pkt: &VsockPacket<'_, ()>) {
        let hdr = Header::of(pkt);
        tracing::trace!(
            op = hdr.op,
            src = hdr.src_port,
            dst = hdr.dst_port,
            len = hdr.len,
            "vsock: from the guest"
        );
        if hdr.src_cid != self.cid || hdr.dst_cid != packet::HOST_CID {
            tracing::debug!(
                src = hdr.src_cid,
                dst = hdr.dst_cid,
                "vsock: packet with wrong CIDs dropped"
            );
            return;
        }
        let key = ConnKey {
            local_port: hdr.dst_port,
            peer_port: hdr.src_port,
        };
        if hdr.type_ != packet::TYPE_STREAM {
            self.orphan_rst(key, hdr.op);
            return;
        }
        match self.conns.get_mut(&key) {
            Some(conn) => {
                conn.handle_guest(&hdr, pkt.data_slice(), &mut self.scratch);
                if conn.finished() {
                    self.remove_conn(key);
                }
            }
            None if hdr.op == packet::OP_REQUEST => self.guest_connect(key, &hdr),
            None => self.orphan_rst(key, hdr.op),
        }
    }

    /// Answer a packet for no connection with RST (never an RST with RST).
    fn orphan_rst(&mut self, key: ConnKey, op: u16) {
        if op != packet::OP_RST && self.orphan_rsts.len() < MAX_ORPHAN_RSTS {
            self.orphan_rsts.push_back(key);
        }
    }

    /// The guest connects to host port `key.local_port`.
    fn guest_connect(&mut self, key: ConnKey, hdr: &Header) {
        if self.at_capacity() {
            tracing::warn!("vsock: too many connections; refusing the guest's");
            return self.orphan_rst(key, hdr.op);
        }
        if !self.policy.allows_bind(key.local_port) {
            tracing::debug!(
                port = key.local_port,
                "vsock: guest connection refused by the service table"
            );
            return self.orphan_rst(key, hdr.op);
        }
        let mut path = self.uds_path.clone().into_os_string();
        path.push(format!("_{}", key.local_port));
        let stream = match sock::connect_nonblocking(Path::new(&path)) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(
                    port = key.local_port,
                    "vsock: guest connection refused: {e}"
                );
                return self.orphan_rst(key, hdr.op);
            }
        };
        let fd = stream.as_raw_fd();
        let set = EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED;
        if self
            .epoll
            .ctl(ControlOperation::Add, fd, EpollEvent::new(set, fd as u64))
            .is_err()
        {
            return self.orphan_rst(key, hdr.op);
        }
        self.owners.insert(fd, Owner::Conn(key));
        self.conns.insert(
            key,
            Connection::guest_initiated(stream, key, hdr, self.timeouts.linger),
        );
    }

    fn has_pending_rx(&self) -> bool {
        !self.orphan_rsts.is_empty() || self.conns.values().any(Connection::has_pending_rx)
    }

    /// Fill the guest's receive buffers with what is pending.
    pub fn process_rx(&mut self) {
        let Some(mut q) = self.queues.take() else {
            return;
        };
        let mut used_any = false;
        while self.has_pending_rx() {
            let Some(mut chain) = pop_or_ask_for_more(&mut q.rx, &q.mem) else {
                break;
            };
            let head = chain.head_index();
            let len =
                match VsockPacket::from_rx_virtq_chain(&q.mem, &mut chain, packet::MAX_PKT_DATA) {
                    Ok(mut pkt) => match self.fill(&mut pkt) {
                        Some(n) => PKT_HEADER_SIZE as u32 + n,
                        None => {
                            // Nothing to say after all: leave the buffer to the guest.
                            q.rx.go_to_previous_position();
                            break;
                        }
                    },
                    Err(e) => {
                        tracing::debug!("vsock: malformed RX buffer returned unused: {e}");
                        0
                    }
                };
            if let Err(e) = q.rx.add_used(&q.mem, head, len) {
                tracing::debug!(head, "vsock: returning an RX buffer failed: {e}");
            }
            used_any = true;
        }
        if used_any {
            notify_used(&mut q.rx, &q.mem, &q.interrupt);
        }
        self.queues = Some(q);
    }

    /// Put the next pending packet in `pkt`: orphan RSTs first, then the
    /// connections in turn. Returns the payload length.
    fn fill(&mut self, pkt: &mut RxPacket<'_>) -> Option<u32> {
        if let Some(key) = self.orphan_rsts.pop_front() {
            let hdr = Header {
                src_cid: packet::HOST_CID,
                dst_cid: self.cid,
                src_port: key.local_port,
                dst_port: key.peer_port,
                type_: packet::TYPE_STREAM,
                op: packet::OP_RST,
                ..Header::default()
            };
            return packet::write_header(pkt, &hdr).then_some(0);
        }
        let now = Instant::now();
        let linger = self.timeouts.linger;
        let pending = |(k, c): (&ConnKey, &Connection)| c.has_pending_rx().then_some(*k);
        let keys: Vec<ConnKey> = match self.rr_cursor {
            None => self.conns.iter().filter_map(pending).collect(),
            Some(cur) => self
                .conns
                .range((Bound::Excluded(cur), Bound::Unbounded))
                .chain(self.conns.range(..=cur))
                .filter_map(pending)
                .collect(),
        };
        for key in keys {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            let out = conn.fill(pkt, now, linger);
            let finished = conn.finished();
            if finished {
                self.remove_conn(key);
            }
            if let Some(n) = out {
                tracing::trace!(
                    port = key.local_port,
                    peer = key.peer_port,
                    len = n,
                    "vsock: to the guest"
                );
                pkt.set_dst_cid(self.cid);
                self.rr_cursor = Some(key);
                return Some(n);
            }
        }
        None
    }

    /// Deliver a pending TRANSPORT_RESET event.
    fn process_event_queue(&mut self) {
        if !self.reset_event_pending {
            return;
        }
        let Some(mut q) = self.queues.take() else {
            return;
        };
        let mut used_any = false;
        while self.reset_event_pending {
            let Some(chain) = pop_or_ask_for_more(&mut q.event, &q.mem) else {
                break;
            };
            let head = chain.head_index();
            let c = chain::collect(chain, &q.mem, EVENT_LIMITS);
            let target = c
                .writable()
                .find(|s| s.in_memory && s.len >= 4)
                .map(|s| s.addr);
            let mut len = 0;
            if let (None, Some(addr)) = (c.error, target) {
                if q.mem
                    .write_obj(packet::EVENT_TRANSPORT_RESET.to_le(), addr)
                    .is_ok()
                {
                    len = 4;
                    self.reset_event_pending = false;
                }
            }
            if q.event.add_used(&q.mem, head, len).is_err() {
                tracing::debug!(head, "vsock: returning an event buffer failed");
            }
            used_any = true;
        }
        if used_any {
            notify_used(&mut q.event, &q.mem, &q.interrupt);
        }
        self.queues = Some(q);
    }
}

impl Drop for VsockMuxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.uds_path);
    }
}

/// Parse `CONNECT <port>` (the keyword in any case, one space).
fn parse_connect(line: &[u8]) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let (word, port) = line.split_once(' ')?;
    if !word.eq_ignore_ascii_case("connect") {
        return None;
    }
    port.trim().parse().ok()
}

impl crate::worker_thread::EventLoop for VsockMuxer {
    fn run(self) -> Self {
        self.run_loop()
    }

    fn detach(&mut self) {
        VsockMuxer::detach(self);
    }
}

/// The next buffer of a device-to-driver queue; when there is none, ask the driver to kick when
/// it adds one and look once more in case it just did. With
/// `VIRTIO_RING_F_EVENT_IDX` the driver kicks only when its index passes
/// the `avail_event` the device wrote: a device that never writes it is not
/// told of refilled buffers, and what it holds for the guest waits for some
/// other wake-up.
fn pop_or_ask_for_more<'m>(
    rx: &mut Queue,
    mem: &'m GuestMemoryMmap,
) -> Option<virtio_queue::DescriptorChain<&'m GuestMemoryMmap>> {
    if let Some(c) = rx.pop_descriptor_chain(mem) {
        return Some(c);
    }
    match rx.enable_notification(mem) {
        Ok(true) => rx.pop_descriptor_chain(mem),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_connect;

    #[test]
    fn connect_lines() {
        assert_eq!(parse_connect(b"CONNECT 52"), Some(52));
        assert_eq!(parse_connect(b"connect 4294967295\r"), Some(u32::MAX));
        assert_eq!(parse_connect(b"CONNECT"), None);
        assert_eq!(parse_connect(b"CONNECT -1"), None);
        assert_eq!(parse_connect(b"CONNECT 4294967296"), None);
        assert_eq!(parse_connect(b"LISTEN 5"), None);
        assert_eq!(parse_connect(&[0xff, b' ', b'1']), None);
    }
}
