//! One vsock stream connection between a guest port and a host unix
//! socket: its state, both directions' credit, and the packets it owes
//! the guest.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use vm_memory::{ReadVolatile, VolatileMemoryError, VolatileSlice};

use super::packet::{self, Header, RxPacket};
use super::sock;

/// Our receive buffer per connection, advertised as `buf_alloc`.
pub const CONN_BUF_ALLOC: u32 = 256 << 10;
/// Tell the guest about freed space once its view of our free space drops
/// below this.
pub const CREDIT_UPDATE_THRESHOLD: u32 = 64 << 10;

/// Identifies a connection: (host port, guest port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey {
    /// The host side's port.
    pub local_port: u32,
    /// The guest side's port.
    pub peer_port: u32,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Host-initiated: REQUEST sent (or to send), waiting for RESPONSE.
    HostConnecting,
    /// Data flows.
    Established,
    /// Both directions are done; waiting for the guest's RST (or our
    /// pending data to drain) until the deadline.
    Closing,
}

/// Control packets a connection owes the guest.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    rst: bool,
    request: bool,
    response: bool,
    shutdown: u32,
    credit_update: bool,
}

impl Pending {
    fn any(&self) -> bool {
        self.rst || self.request || self.response || self.shutdown != 0 || self.credit_update
    }
}

/// A connection.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: UnixStream,
    key: ConnKey,
    pub(crate) state: State,
    pending: Pending,
    /// Set when the connection must go once its RST is out (or at once if
    /// it owes nothing).
    pub(crate) dead: bool,
    /// When a connecting or closing connection gives up.
    pub(crate) deadline: Option<Instant>,
    /// How long a closing connection may take.
    linger: Duration,
    // Guest -> host.
    tx_buf: VecDeque<u8>,
    fwd_cnt: Wrapping<u32>,
    last_fwd_cnt_sent: Wrapping<u32>,
    guest_shutdown: u32,
    host_write_shut: bool,
    // Host -> guest.
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    rx_cnt: Wrapping<u32>,
    credit_requested: bool,
    pub(crate) readable: bool,
    host_eof: bool,
    hup: bool,
}

impl Connection {
    fn new(stream: UnixStream, key: ConnKey, state: State, linger: Duration) -> Connection {
        Connection {
            linger,
            stream,
            key,
            state,
            pending: Pending::default(),
            dead: false,
            deadline: None,
            tx_buf: VecDeque::new(),
            fwd_cnt: Wrapping(0),
            last_fwd_cnt_sent: Wrapping(0),
            guest_shutdown: 0,
            host_write_shut: false,
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            rx_cnt: Wrapping(0),
            credit_requested: false,
            readable: true,
            host_eof: false,
            hup: false,
        }
    }

    /// The guest connected to a host socket: answer with RESPONSE.
    pub fn guest_initiated(
        stream: UnixStream,
        key: ConnKey,
        hdr: &Header,
        linger: Duration,
    ) -> Connection {
        let mut c = Connection::new(stream, key, State::Established, linger);
        c.update_peer_credit(hdr);
        c.pending.response = true;
        c
    }

    /// A host client asked for a guest port: send REQUEST, wait until
    /// `deadline` for the answer.
    pub fn host_initiated(
        stream: UnixStream,
        key: ConnKey,
        deadline: Instant,
        linger: Duration,
    ) -> Connection {
        let mut c = Connection::new(stream, key, State::HostConnecting, linger);
        c.pending.request = true;
        c.deadline = Some(deadline);
        c
    }

    /// Bytes the guest still accepts from us.
    fn peer_credit(&self) -> u32 {
        let in_flight = (self.rx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Free space in our buffer as the guest last heard of it.
    fn guest_view_of_free(&self) -> u32 {
        let received = self.fwd_cnt.0.wrapping_add(self.tx_buf.len() as u32);
        let unacked = received.wrapping_sub(self.last_fwd_cnt_sent.0);
        CONN_BUF_ALLOC.saturating_sub(unacked)
    }

    fn update_peer_credit(&mut self, hdr: &Header) {
        if hdr.buf_alloc != self.peer_buf_alloc || Wrapping(hdr.fwd_cnt) != self.peer_fwd_cnt {
            self.credit_requested = false;
        }
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = Wrapping(hdr.fwd_cnt);
    }

    /// Reset the connection: RST to the guest, then gone.
    pub fn reset(&mut self) {
        self.pending = Pending {
            rst: true,
            ..Pending::default()
        };
        self.dead = true;
    }

    /// Whether the connection is over and owes the guest nothing more.
    pub fn finished(&self) -> bool {
        self.dead && !self.pending.rst
    }

    /// Whether the connection has a packet for the guest now.
    pub fn has_pending_rx(&self) -> bool {
        self.pending.any() || self.wants_to_send_data()
    }

    fn wants_to_send_data(&self) -> bool {
        self.can_send_data() && (self.peer_credit() > 0 || !self.credit_requested)
    }

    fn can_send_data(&self) -> bool {
        self.state == State::Established
            && self.readable
            && !self.host_eof
            && self.guest_shutdown & packet::SHUTDOWN_RCV == 0
    }

    /// A packet from the guest for this connection.
    pub fn handle_guest(
        &mut self,
        hdr: &Header,
        data: Option<&VolatileSlice<'_>>,
        scratch: &mut Vec<u8>,
    ) {
        self.update_peer_credit(hdr);
        match hdr.op {
            packet::OP_RST => {
                self.pending = Pending::default();
                self.dead = true;
            }
            packet::OP_RESPONSE if self.state == State::HostConnecting => self.established(),
            packet::OP_RW if self.state == State::Established => self.receive(hdr, data, scratch),
            packet::OP_CREDIT_UPDATE => {}
            packet::OP_CREDIT_REQUEST => self.pending.credit_update = true,
            packet::OP_SHUTDOWN => self.guest_shutdown(hdr.flags),
            op => {
                tracing::debug!(?self.key, op, state = ?self.state, "vsock: unexpected packet; resetting");
                self.reset();
            }
        }
    }

    /// The guest accepted a host-initiated connection.
    fn established(&mut self) {
        let reply = format!("OK {}\n", self.key.local_port);
        match sock::send(&self.stream, reply.as_bytes()) {
            Ok(n) if n == reply.len() => {
                self.state = State::Established;
                self.deadline = None;
                self.readable = true;
            }
            _ => self.reset(),
        }
    }

    /// Data from the guest: forward it to the host socket.
    fn receive(&mut self, hdr: &Header, data: Option<&VolatileSlice<'_>>, scratch: &mut Vec<u8>) {
        let Some(data) = data else { return };
        if self.guest_shutdown & packet::SHUTDOWN_SEND != 0 || self.host_write_shut {
            self.reset();
            return;
        }
        let len = data.len().min(hdr.len as usize);
        if self.tx_buf.len() + len > CONN_BUF_ALLOC as usize {
            tracing::debug!(?self.key, "vsock: the guest ignored our credit; resetting");
            self.reset();
            return;
        }
        scratch.resize(len, 0);
        let copied = data.copy_to(&mut scratch[..]);
        self.tx_buf.extend(&scratch[..copied]);
        self.flush();
    }

    /// Write buffered guest data to the host socket.
    pub fn flush(&mut self) {
        while !self.tx_buf.is_empty() {
            let (front, _) = self.tx_buf.as_slices();
            match sock::send(&self.stream, front) {
                Ok(0) => break,
                Ok(n) => {
                    self.tx_buf.drain(..n);
                    self.fwd_cnt += Wrapping(n as u32);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(?self.key, "vsock: writing to the host socket failed: {e}");
                    self.reset();
                    return;
                }
            }
        }
        if self.tx_buf.is_empty() {
            self.after_drain();
        }
        // Only news is worth a packet: the guest's view is stale and low.
        if self.fwd_cnt != self.last_fwd_cnt_sent
            && self.guest_view_of_free() < CREDIT_UPDATE_THRESHOLD
        {
            self.pending.credit_update = true;
        }
    }

    fn after_drain(&mut self) {
        if self.guest_shutdown & packet::SHUTDOWN_SEND != 0 && !self.host_write_shut {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_write_shut = true;
        }
        if self.guest_shutdown == packet::SHUTDOWN_BOTH && !self.dead {
            // The guest closed its socket and everything it sent is out:
            // confirm with RST (what a Linux guest waits for).
            self.reset();
        }
    }

    fn guest_shutdown(&mut self, flags: u32) {
        self.guest_shutdown |= flags & packet::SHUTDOWN_BOTH;
        if self.guest_shutdown == packet::SHUTDOWN_BOTH && self.state != State::Closing {
            self.state = State::Closing;
            // Our buffered data has until then to drain.
            self.deadline = Some(Instant::now() + self.linger);
        }
        if self.tx_buf.is_empty() {
            self.after_drain();
        }
    }

    /// Epoll said something about the host socket.
    pub fn host_event(
        &mut self,
        readable: bool,
        hup: bool,
        error: bool,
        writable: bool,
        now: Instant,
        linger: Duration,
    ) {
        if error {
            self.reset();
            return;
        }
        if readable || hup {
            self.readable = true;
        }
        if hup {
            self.hup = true;
        }
        if writable {
            self.flush();
        }
        if self.state == State::HostConnecting && hup {
            // The client gave up before the guest answered.
            self.reset();
            return;
        }
        if self.hup && (self.host_eof || self.guest_shutdown & packet::SHUTDOWN_RCV != 0) {
            self.host_closed(now, linger);
        }
    }

    /// The host client closed its socket: tell the guest both directions
    /// are done and wait for its RST until `now + linger`.
    fn host_closed(&mut self, now: Instant, linger: Duration) {
        if self.state == State::Closing || self.dead {
            return;
        }
        self.state = State::Closing;
        self.pending.shutdown |= packet::SHUTDOWN_BOTH;
        self.deadline = Some(now + linger);
    }

    /// The deadline passed.
    pub fn expire(&mut self) {
        tracing::debug!(?self.key, state = ?self.state, "vsock: connection timed out; resetting");
        self.reset();
    }

    /// Fill `pkt` with the next packet for the guest; returns the payload
    /// length, or `None` if there is nothing to send after all.
    pub fn fill(&mut self, pkt: &mut RxPacket<'_>, now: Instant, linger: Duration) -> Option<u32> {
        if self.pending.rst {
            self.pending = Pending::default();
            self.dead = true;
            return self.control(pkt, packet::OP_RST, 0);
        }
        if std::mem::take(&mut self.pending.request) {
            return self.control(pkt, packet::OP_REQUEST, 0);
        }
        if std::mem::take(&mut self.pending.response) {
            return self.control(pkt, packet::OP_RESPONSE, 0);
        }
        if let Some(n) = self.fill_data(pkt, now, linger) {
            return Some(n);
        }
        if self.pending.shutdown != 0 {
            let flags = std::mem::take(&mut self.pending.shutdown);
            return self.control(pkt, packet::OP_SHUTDOWN, flags);
        }
        if std::mem::take(&mut self.pending.credit_update) {
            return self.control(pkt, packet::OP_CREDIT_UPDATE, 0);
        }
        None
    }

    fn control(&mut self, pkt: &mut RxPacket<'_>, op: u16, flags: u32) -> Option<u32> {
        self.write_header(pkt, op, flags, 0).then_some(0)
    }

    fn write_header(&mut self, pkt: &mut RxPacket<'_>, op: u16, flags: u32, len: u32) -> bool {
        let hdr = Header {
            src_cid: packet::HOST_CID,
            dst_cid: 0, // set by the muxer
            src_port: self.key.local_port,
            dst_port: self.key.peer_port,
            len,
            type_: packet::TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: self.fwd_cnt.0,
        };
        self.last_fwd_cnt_sent = self.fwd_cnt;
        packet::write_header(pkt, &hdr)
    }

    fn fill_data(&mut self, pkt: &mut RxPacket<'_>, now: Instant, linger: Duration) -> Option<u32> {
        if !self.can_send_data() {
            return None;
        }
        let credit = self.peer_credit();
        if credit == 0 {
            if self.credit_requested {
                return None;
            }
            self.credit_requested = true;
            return self.control(pkt, packet::OP_CREDIT_REQUEST, 0);
        }
        let room = pkt.data_slice().map_or(0, |s| s.len()).min(credit as usize);
        if room == 0 {
            return None;
        }
        match self.read_host(pkt, room) {
            Ok(0) => {
                self.host_eof = true;
                if self.hup {
                    self.host_closed(now, linger);
                } else {
                    // Half-close: the guest may still send.
                    self.pending.shutdown |= packet::SHUTDOWN_SEND;
                }
                None
            }
            Ok(n) => {
                let n = n as u32; // n <= room <= credit: a u32
                self.rx_cnt += Wrapping(n);
                self.write_header(pkt, packet::OP_RW, 0, n).then_some(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.readable = false;
                None
            }
            Err(e) => {
                tracing::debug!(?self.key, "vsock: reading the host socket failed: {e}");
                self.reset();
                self.pending.rst = false;
                self.control(pkt, packet::OP_RST, 0)
            }
        }
    }

    fn read_host(&mut self, pkt: &RxPacket<'_>, room: usize) -> io::Result<usize> {
        let Some(data) = pkt.data_slice() else {
            return Ok(0);
        };
        let mut window = data
            .subslice(0, room)
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        loop {
            match (&self.stream).read_volatile(&mut window) {
                Ok(n) => return Ok(n),
                Err(VolatileMemoryError::IOError(e)) if e.kind() == ErrorKind::Interrupted => {
                    continue
                }
                Err(VolatileMemoryError::IOError(e)) => return Err(e),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}
