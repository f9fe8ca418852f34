//! virtio-vsock stream connections, without the hardware: packet headers,
//! connection state, both directions' credit (`buf_alloc`/`fwd_cnt`),
//! shutdown and reset.
//!
//! Pure logic over a [`Wire`] (the driver's transmit queue in the guest, a
//! recording peer in the host tests of `crates/hcs-test-guest`). Every field
//! the host sends is hostile input: lengths are clamped, unknown
//! connections are answered with RST, and credit violations reset the
//! connection. Nothing here can panic.

use crate::bytes::{u16_at, u32_at, u64_at};

/// Length of `struct virtio_vsock_hdr`.
pub const HDR_LEN: usize = 44;
/// The host's CID.
pub const HOST_CID: u64 = 2;
pub const TYPE_STREAM: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_RESPONSE: u16 = 2;
pub const OP_RST: u16 = 3;
pub const OP_SHUTDOWN: u16 = 4;
pub const OP_RW: u16 = 5;
pub const OP_CREDIT_UPDATE: u16 = 6;
pub const OP_CREDIT_REQUEST: u16 = 7;
/// SHUTDOWN flag: the sender will receive no more.
pub const SHUT_RCV: u32 = 1;
/// SHUTDOWN flag: the sender will send no more.
pub const SHUT_SEND: u32 = 2;

/// Connections at once (control + 3 stdio streams per process, and some).
pub const MAX_CONNS: usize = 48;
/// Receive buffer per connection; advertised as `buf_alloc`.
pub const RX_CAP: usize = 32 * 1024;
/// Send buffer per connection.
pub const TX_CAP: usize = 16 * 1024;
/// Largest payload put in one packet (the driver's buffers hold 4 KiB with the header).
pub const MAX_PAYLOAD: usize = 4096 - HDR_LEN;
/// Ticks (10 ms) a closing connection waits for the peer's RST, and a
/// REQUEST for its RESPONSE.
pub const LINGER_TICKS: u64 = 200;
/// Ticks a closed connection may wait for credit to send its last data.
pub const ORPHAN_TICKS: u64 = 1000;
/// First local port handed out.
const PORT_BASE: u32 = 49152;

/// A packet header in host order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Hdr {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Hdr {
    /// Decodes the first [`HDR_LEN`] bytes (`None` if shorter).
    pub fn decode(b: &[u8]) -> Option<Hdr> {
        if b.len() < HDR_LEN {
            return None;
        }
        Some(Hdr {
            src_cid: u64_at(b, 0),
            dst_cid: u64_at(b, 8),
            src_port: u32_at(b, 16),
            dst_port: u32_at(b, 20),
            len: u32_at(b, 24),
            type_: u16_at(b, 28),
            op: u16_at(b, 30),
            flags: u32_at(b, 32),
            buf_alloc: u32_at(b, 36),
            fwd_cnt: u32_at(b, 40),
        })
    }

    /// Encodes into `out[..HDR_LEN]`; false if `out` is shorter.
    pub fn encode(&self, out: &mut [u8]) -> bool {
        let Some(o) = out.get_mut(..HDR_LEN) else {
            return false;
        };
        let mut w = 0usize;
        let mut put = |bytes: &[u8]| {
            for b in bytes {
                if let Some(slot) = o.get_mut(w) {
                    *slot = *b;
                }
                w += 1;
            }
        };
        put(&self.src_cid.to_le_bytes());
        put(&self.dst_cid.to_le_bytes());
        put(&self.src_port.to_le_bytes());
        put(&self.dst_port.to_le_bytes());
        put(&self.len.to_le_bytes());
        put(&self.type_.to_le_bytes());
        put(&self.op.to_le_bytes());
        put(&self.flags.to_le_bytes());
        put(&self.buf_alloc.to_le_bytes());
        put(&self.fwd_cnt.to_le_bytes());
        true
    }
}

/// Where packets go: the transmit queue. `send` returns false when there is
/// no room now (the caller retries later); `data.len()` ≤ [`MAX_PAYLOAD`].
pub trait Wire {
    fn send(&mut self, hdr: &Hdr, data: &[u8]) -> bool;
}

/// `dst[..n] = src[..n]` with `n` the shorter length (memcpy, no length
/// assertion: `copy_from_slice` would link a panic path).
pub fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = dst.len().min(src.len());
    // SAFETY: both slices hold at least `n` bytes and cannot overlap (one is
    // borrowed mutably).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), n) };
    n
}

/// A byte buffer kept contiguous: data is `buf[start..end]`; appends move
/// it down to the front when they would not fit at the end.
pub struct Linear<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> Linear<N> {
    #[allow(dead_code)] // used by the host tests
    pub const fn new() -> Self {
        Linear {
            buf: [0; N],
            start: 0,
            end: 0,
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn space(&self) -> usize {
        N.saturating_sub(self.len())
    }

    /// The buffered bytes.
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    /// Appends as much of `src` as fits; returns how much.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.space());
        if self.end.saturating_add(n) > N && self.start <= self.end && self.end <= N {
            let len = self.len();
            let p = self.buf.as_mut_ptr();
            // SAFETY: `start..end` lies inside `buf` (checked above); an
            // overlapping move to the front (memmove), without bounds panics.
            unsafe { core::ptr::copy(p.wrapping_add(self.start), p, len) };
            self.start = 0;
            self.end = len;
        }
        let end = self.end.saturating_add(n);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.end..end), src.get(..n)) {
            copy(dst, src);
            self.end = end;
            n
        } else {
            0
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Free,
    /// REQUEST sent, waiting for RESPONSE.
    Connecting,
    Established,
    /// We sent SHUTDOWN (both); waiting for the peer's RST until the deadline.
    Closing,
    /// The connection is over (refused, reset, or closed); the owner reads
    /// `error`/EOF and then calls [`Stack::release`].
    Dead,
}

pub struct Conn {
    pub state: State,
    pub local_port: u32,
    pub peer_port: u32,
    /// Refused or reset by the peer (as opposed to closed cleanly).
    pub reset: bool,
    /// The peer will send no more (SHUTDOWN with SEND, or RST).
    pub peer_done_sending: bool,
    /// The peer will receive no more.
    pub peer_done_receiving: bool,
    /// The owner closed it; shut down once `tx` is out. The connection is
    /// freed when the peer answers (or at the deadline), without the owner.
    pub orphan: bool,
    deadline: u64,
    // Receiving (host → guest).
    pub rx: Linear<RX_CAP>,
    fwd_cnt: u32,
    rx_cnt: u32,
    last_fwd_sent: u32,
    // Sending (guest → host).
    pub tx: Linear<TX_CAP>,
    tx_cnt: u32,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    credit_requested: bool,
    // Control packets owed.
    owe_request: bool,
    owe_credit: bool,
    owe_shutdown: bool,
    owe_rst: bool,
}

impl Conn {
    #[allow(dead_code)] // used by the host tests
    pub const EMPTY: Conn = Conn {
        state: State::Free,
        local_port: 0,
        peer_port: 0,
        reset: false,
        peer_done_sending: false,
        peer_done_receiving: false,
        orphan: false,
        deadline: 0,
        rx: Linear::new(),
        fwd_cnt: 0,
        rx_cnt: 0,
        last_fwd_sent: 0,
        tx: Linear::new(),
        tx_cnt: 0,
        peer_buf_alloc: 0,
        peer_fwd_cnt: 0,
        credit_requested: false,
        owe_request: false,
        owe_credit: false,
        owe_shutdown: false,
        owe_rst: false,
    };

    fn init(&mut self, local_port: u32, peer_port: u32, now: u64) {
        self.state = State::Connecting;
        self.local_port = local_port;
        self.peer_port = peer_port;
        self.reset = false;
        self.peer_done_sending = false;
        self.peer_done_receiving = false;
        self.orphan = false;
        self.deadline = now.saturating_add(LINGER_TICKS);
        self.rx.clear();
        self.fwd_cnt = 0;
        self.rx_cnt = 0;
        self.last_fwd_sent = 0;
        self.tx.clear();
        self.tx_cnt = 0;
        self.peer_buf_alloc = 0;
        self.peer_fwd_cnt = 0;
        self.credit_requested = false;
        self.owe_request = true;
        self.owe_credit = false;
        self.owe_shutdown = false;
        self.owe_rst = false;
    }

    /// Bytes the peer accepts from us now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Connected and usable for data.
    pub fn is_open(&self) -> bool {
        self.state == State::Established
    }

    /// No more bytes will arrive: what is in `rx` is the rest.
    pub fn at_eof(&self) -> bool {
        self.peer_done_sending || matches!(self.state, State::Dead | State::Free)
    }

    /// The application consumed `n` received bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.rx.len());
        self.rx.consume(n);
        self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
        // Tell the peer about the space once it thinks half the buffer is used.
        let unacked = self.fwd_cnt.wrapping_sub(self.last_fwd_sent);
        if unacked as usize >= RX_CAP / 2 {
            self.owe_credit = true;
        }
    }

    /// Room for the application's output.
    pub fn tx_space(&self) -> usize {
        if self.state == State::Established && !self.peer_done_receiving && !self.orphan {
            self.tx.space()
        } else {
            0
        }
    }

    /// Queues output; returns how much was taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.tx_space() == 0 {
            return 0;
        }
        self.tx.push(data)
    }

    fn update_peer(&mut self, h: &Hdr) {
        if h.buf_alloc != self.peer_buf_alloc || h.fwd_cnt != self.peer_fwd_cnt {
            self.credit_requested = false;
        }
        self.peer_buf_alloc = h.buf_alloc;
        self.peer_fwd_cnt = h.fwd_cnt;
    }

    /// Back to the free list (no temporary `Conn`: it is 80 KiB).
    fn free(&mut self) {
        self.state = State::Free;
        self.orphan = false;
        self.owe_request = false;
        self.owe_credit = false;
        self.owe_shutdown = false;
        self.owe_rst = false;
        self.rx.clear();
        self.tx.clear();
    }

    fn die(&mut self, reset: bool) {
        self.state = State::Dead;
        self.reset |= reset;
        self.peer_done_sending = true;
        self.peer_done_receiving = true;
        self.owe_request = false;
        self.owe_credit = false;
        self.owe_shutdown = false;
        self.tx.clear();
    }
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Default)]
pub struct Stats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub bad_packets: u64,
    pub rsts_sent: u64,
}

/// All connections of the guest.
pub struct Stack {
    pub guest_cid: u64,
    pub conns: [Conn; MAX_CONNS],
    next_port: u32,
    /// RSTs owed for packets of unknown connections: (their port, our port).
    orphan_rsts: [(u32, u32); 8],
    orphan_rst_count: usize,
    pub stats: Stats,
}

impl Stack {
    #[allow(dead_code)] // used by the host tests
    pub const fn new() -> Stack {
        Stack {
            guest_cid: 3,
            conns: [const { Conn::EMPTY }; MAX_CONNS],
            next_port: PORT_BASE,
            orphan_rsts: [(0, 0); 8],
            orphan_rst_count: 0,
            stats: Stats {
                rx_packets: 0,
                tx_packets: 0,
                bad_packets: 0,
                rsts_sent: 0,
            },
        }
    }

    /// Forgets every connection (the transport was reset, or at start).
    pub fn reset_all(&mut self, guest_cid: u64) {
        self.guest_cid = guest_cid;
        if self.next_port < PORT_BASE {
            self.next_port = PORT_BASE;
        }
        for c in self.conns.iter_mut() {
            if c.state != State::Free {
                c.die(true);
                // The device forgot them: no RST is owed.
                c.owe_rst = false;
                if c.orphan {
                    c.free();
                }
            }
        }
        self.orphan_rst_count = 0;
    }

    /// Resets every connection: each owes the peer an RST and is freed once
    /// it is sent.
    pub fn abort_all(&mut self) {
        for c in self.conns.iter_mut() {
            if c.state == State::Free {
                continue;
            }
            let dead = c.state == State::Dead && !c.owe_rst;
            c.die(true);
            c.owe_rst = !dead;
            c.orphan = true;
            if dead {
                c.free();
            }
        }
    }

    pub fn conn(&self, i: usize) -> Option<&Conn> {
        self.conns.get(i)
    }

    pub fn conn_mut(&mut self, i: usize) -> Option<&mut Conn> {
        self.conns.get_mut(i)
    }

    /// Starts a connection to host port `port`; returns its index.
    pub fn connect(&mut self, port: u32, now: u64) -> Option<usize> {
        let i = self.conns.iter().position(|c| c.state == State::Free)?;
        let local = self.alloc_port();
        let c = self.conns.get_mut(i)?;
        c.init(local, port, now);
        Some(i)
    }

    fn alloc_port(&mut self) -> u32 {
        loop {
            let p = self.next_port;
            self.next_port = if p >= 0xffff_fff0 { PORT_BASE } else { p + 1 };
            if !self
                .conns
                .iter()
                .any(|c| c.state != State::Free && c.local_port == p)
            {
                return p;
            }
        }
    }

    /// The owner is done with connection `i`: pending output still goes
    /// out, then it is shut down (or reset, if the peer is gone) and freed.
    pub fn close(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        match c.state {
            State::Free => {}
            State::Dead => {
                if c.owe_rst {
                    c.orphan = true;
                } else {
                    c.free();
                }
            }
            State::Connecting => {
                c.owe_request = false;
                c.owe_rst = true;
                c.orphan = true;
                c.state = State::Dead;
            }
            State::Established | State::Closing => {
                c.orphan = true;
                if c.peer_done_sending && c.peer_done_receiving {
                    // The peer closed both ways: it waits for our RST.
                    c.owe_rst = true;
                    c.tx.clear();
                    c.state = State::Dead;
                }
            }
        }
    }

    /// Like [`Stack::close`] but for a dead connection whose owner has seen it.
    pub fn release(&mut self, i: usize) {
        self.close(i);
    }

    /// One packet from the device.
    pub fn receive(&mut self, h: &Hdr, data: &[u8]) {
        self.stats.rx_packets += 1;
        if h.type_ != TYPE_STREAM || h.src_cid != HOST_CID {
            self.stats.bad_packets += 1;
            if h.op != OP_RST {
                self.owe_orphan_rst(h.src_port, h.dst_port);
            }
            return;
        }
        let found = self.conns.iter().position(|c| {
            c.state != State::Free && c.local_port == h.dst_port && c.peer_port == h.src_port
        });
        let Some(i) = found else {
            // Nothing listens in this guest; unknown connections get RST.
            if h.op != OP_RST {
                self.owe_orphan_rst(h.src_port, h.dst_port);
            }
            return;
        };
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.state == State::Dead {
            if h.op != OP_RST && !c.owe_rst {
                c.owe_rst = true;
            }
            return;
        }
        c.update_peer(h);
        match h.op {
            OP_RESPONSE if c.state == State::Connecting => {
                c.state = State::Established;
                c.deadline = 0;
            }
            OP_RST => {
                let clean = c.state == State::Closing;
                c.die(!clean);
                c.owe_rst = false;
            }
            OP_RW if c.state == State::Established || c.state == State::Closing => {
                let len = (h.len as usize).min(data.len());
                let payload = data.get(..len).unwrap_or(&[]);
                if c.peer_done_sending || c.rx.space() < payload.len() {
                    // Data after SHUTDOWN, or more than our credit allowed.
                    c.die(true);
                    c.owe_rst = true;
                    self.stats.bad_packets += 1;
                    return;
                }
                c.rx.push(payload);
                c.rx_cnt = c.rx_cnt.wrapping_add(payload.len() as u32);
            }
            OP_CREDIT_UPDATE => {}
            OP_CREDIT_REQUEST => c.owe_credit = true,
            OP_SHUTDOWN => {
                if h.flags & SHUT_SEND != 0 {
                    c.peer_done_sending = true;
                }
                if h.flags & SHUT_RCV != 0 {
                    c.peer_done_receiving = true;
                    c.tx.clear();
                }
                if c.peer_done_sending && c.peer_done_receiving && c.orphan {
                    c.owe_rst = true;
                    c.state = State::Dead;
                }
            }
            _ => {
                // A packet that makes no sense in this state: reset.
                self.stats.bad_packets += 1;
                c.die(true);
                c.owe_rst = true;
            }
        }
    }

    fn owe_orphan_rst(&mut self, their_port: u32, our_port: u32) {
        if let Some(slot) = self.orphan_rsts.get_mut(self.orphan_rst_count) {
            *slot = (their_port, our_port);
            self.orphan_rst_count += 1;
        }
    }

    fn header(&self, c: &Conn, op: u16, flags: u32, len: usize) -> Hdr {
        Hdr {
            src_cid: self.guest_cid,
            dst_cid: HOST_CID,
            src_port: c.local_port,
            dst_port: c.peer_port,
            len: len as u32,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: RX_CAP as u32,
            fwd_cnt: c.fwd_cnt,
        }
    }

    /// Sends what every connection owes, as far as the wire takes it, and
    /// runs the timers. Returns true if something was sent.
    pub fn flush<W: Wire>(&mut self, now: u64, wire: &mut W) -> bool {
        let mut sent = false;
        while self.orphan_rst_count > 0 {
            let Some(&(their, ours)) = self.orphan_rsts.get(self.orphan_rst_count - 1) else {
                self.orphan_rst_count = 0;
                break;
            };
            let h = Hdr {
                src_cid: self.guest_cid,
                dst_cid: HOST_CID,
                src_port: ours,
                dst_port: their,
                type_: TYPE_STREAM,
                op: OP_RST,
                ..Hdr::default()
            };
            if !wire.send(&h, &[]) {
                return sent;
            }
            self.stats.tx_packets += 1;
            self.stats.rsts_sent += 1;
            self.orphan_rst_count -= 1;
            sent = true;
        }
        for i in 0..MAX_CONNS {
            match self.flush_one(i, now, wire) {
                Some(s) => sent |= s,
                None => return true,
            }
        }
        sent
    }

    /// `None` when the wire is full.
    fn flush_one<W: Wire>(&mut self, i: usize, now: u64, wire: &mut W) -> Option<bool> {
        let mut sent = false;
        let Some(c) = self.conns.get_mut(i) else {
            return Some(false);
        };
        if c.state == State::Free {
            return Some(false);
        }
        // Timers. A closed connection whose data the peer does not take
        // (no credit) gives up after ORPHAN_TICKS.
        if c.orphan && c.state == State::Established && c.deadline == 0 {
            c.deadline = now.saturating_add(ORPHAN_TICKS);
        }
        if matches!(
            c.state,
            State::Connecting | State::Closing | State::Established
        ) && c.deadline != 0
            && now >= c.deadline
        {
            let was_connecting = c.state == State::Connecting;
            c.die(was_connecting);
            c.owe_rst = true;
        }
        if c.owe_rst {
            let h = self.header_at(i, OP_RST, 0, 0)?;
            if !wire.send(&h, &[]) {
                return None;
            }
            self.stats.tx_packets += 1;
            self.stats.rsts_sent += 1;
            let c = self.conns.get_mut(i)?;
            c.owe_rst = false;
            sent = true;
            if c.orphan {
                c.free();
            }
            return Some(sent);
        }
        let c = self.conns.get_mut(i)?;
        if c.state == State::Dead {
            if c.orphan {
                c.free();
            }
            return Some(false);
        }
        if c.owe_request {
            let h = self.header_at(i, OP_REQUEST, 0, 0)?;
            if !wire.send(&h, &[]) {
                return None;
            }
            self.stats.tx_packets += 1;
            self.conns.get_mut(i)?.owe_request = false;
            sent = true;
        }
        // Data.
        loop {
            let c = self.conns.get(i)?;
            if c.state != State::Established || c.tx.is_empty() || c.peer_done_receiving {
                break;
            }
            let credit = c.peer_credit() as usize;
            if credit == 0 {
                if !c.credit_requested {
                    let h = self.header_at(i, OP_CREDIT_REQUEST, 0, 0)?;
                    if !wire.send(&h, &[]) {
                        return None;
                    }
                    self.stats.tx_packets += 1;
                    self.conns.get_mut(i)?.credit_requested = true;
                    sent = true;
                }
                break;
            }
            let n = c.tx.len().min(credit).min(MAX_PAYLOAD);
            let h = self.header_at(i, OP_RW, 0, n)?;
            let c = self.conns.get(i)?;
            let chunk = c.tx.data().get(..n).unwrap_or(&[]);
            if !wire.send(&h, chunk) {
                return None;
            }
            self.stats.tx_packets += 1;
            let c = self.conns.get_mut(i)?;
            c.tx.consume(n);
            c.tx_cnt = c.tx_cnt.wrapping_add(n as u32);
            c.last_fwd_sent = c.fwd_cnt;
            c.owe_credit = false;
            sent = true;
        }
        // Orphaned (closed by the owner) with everything sent: shut down.
        let c = self.conns.get_mut(i)?;
        if c.orphan && c.state == State::Established && (c.tx.is_empty() || c.peer_done_receiving) {
            c.owe_shutdown = true;
            c.state = State::Closing;
            c.deadline = now.saturating_add(LINGER_TICKS);
        }
        if c.owe_shutdown {
            let h = self.header_at(i, OP_SHUTDOWN, SHUT_RCV | SHUT_SEND, 0)?;
            if !wire.send(&h, &[]) {
                return None;
            }
            self.stats.tx_packets += 1;
            self.conns.get_mut(i)?.owe_shutdown = false;
            sent = true;
        }
        let c = self.conns.get_mut(i)?;
        if c.owe_credit && c.state == State::Established {
            let h = self.header_at(i, OP_CREDIT_UPDATE, 0, 0)?;
            if !wire.send(&h, &[]) {
                return None;
            }
            self.stats.tx_packets += 1;
            let c = self.conns.get_mut(i)?;
            c.owe_credit = false;
            c.last_fwd_sent = c.fwd_cnt;
            sent = true;
        }
        Some(sent)
    }

    fn header_at(&mut self, i: usize, op: u16, flags: u32, len: usize) -> Option<Hdr> {
        let c = self.conns.get(i)?;
        let h = self.header(c, op, flags, len);
        let c = self.conns.get_mut(i)?;
        c.last_fwd_sent = c.fwd_cnt;
        Some(h)
    }

    /// Anything owed or timing out (so the caller must not sleep for long)?
    pub fn busy(&self) -> bool {
        self.orphan_rst_count > 0
            || self.conns.iter().any(|c| {
                c.owe_rst
                    || c.owe_request
                    || c.owe_shutdown
                    || c.owe_credit
                    || (c.state == State::Established
                        && !c.tx.is_empty()
                        && !c.peer_done_receiving
                        && (c.peer_credit() > 0 || !c.credit_requested))
            })
    }
}
