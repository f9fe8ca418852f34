//! Host tests of the test guest's agent and vsock connection layer: the
//! guest's own `agent.rs` and `vsock.rs` (compiled for the host, with bounds
//! checks) against a simulated host side of a hybrid vsock device: it
//! accepts connections to listening ports, answers REQUEST with RESPONSE or
//! RST, honours the guest's credit, and speaks hcs-agent-protocol on the
//! control port as the HCS host does.

#![allow(dead_code)]

#[path = "../../../guest/test-guest/src/agent.rs"]
mod agent;
#[path = "../../../guest/test-guest/src/bytes.rs"]
mod bytes;
#[path = "../../../guest/test-guest/src/vsock.rs"]
mod vsock;

use std::collections::{BTreeMap, BTreeSet};

use agent::{Action, Agent, Platform};
use hcs_agent_protocol::{
    decode_frame, hresult, CreateProcess, Hello, List, Message, ProcessExited, ProcessSecurity,
    Shutdown, ShutdownAction, Signal, User, WaitProcess, AGENT_CONTROL_PORT, PROTOCOL_VERSION,
};
use vsock::{
    Hdr, Wire, HDR_LEN, OP_CREDIT_REQUEST, OP_CREDIT_UPDATE, OP_REQUEST, OP_RESPONSE, OP_RST,
    OP_RW, OP_SHUTDOWN, TYPE_STREAM,
};

const GUEST_CID: u64 = 3;

struct FakePlatform {
    now: u64,
    console: Vec<String>,
    touched: u64,
}

impl Platform for FakePlatform {
    fn now(&self) -> u64 {
        self.now
    }
    fn console(&mut self, line: &[u8]) {
        self.console
            .push(String::from_utf8_lossy(line).into_owned());
    }
    fn touch(&mut self, mib: u64) -> Result<(), u64> {
        if mib > 32 {
            return Err(32);
        }
        self.touched += mib;
        Ok(())
    }
    fn sector(&mut self, _: bool, _: u64, _: &mut [u8; 512]) -> Result<(), &'static [u8]> {
        Err(b"no disk")
    }
}

/// The guest's transmit queue: packets, and a limit to simulate a full queue.
#[derive(Default)]
struct Tx {
    packets: Vec<(Hdr, Vec<u8>)>,
    room: Option<usize>,
}

impl Wire for Tx {
    fn send(&mut self, hdr: &Hdr, data: &[u8]) -> bool {
        if let Some(r) = self.room.as_mut() {
            if *r == 0 {
                return false;
            }
            *r -= 1;
        }
        assert!(data.len() <= vsock::MAX_PAYLOAD);
        assert_eq!(hdr.len as usize, data.len());
        self.packets.push((*hdr, data.to_vec()));
        true
    }
}

/// One host-side connection (the unix socket's far end, as the host sees it).
#[derive(Default, Debug)]
struct HostConn {
    port: u32,
    received: Vec<u8>,
    /// The guest shut down (both) or reset.
    guest_closed: bool,
    reset: bool,
    /// Bytes still to send to the guest.
    outgoing: Vec<u8>,
    /// Close our side once `outgoing` is out.
    close_after: bool,
    closed: bool,
    // Credit.
    guest_buf_alloc: u32,
    guest_fwd_cnt: u32,
    sent: u32,
    our_fwd_cnt: u32,
}

/// The host side of the device.
struct Host {
    listening: BTreeSet<u32>,
    /// Keyed by the guest's port.
    conns: BTreeMap<u32, HostConn>,
    to_guest: Vec<(Hdr, Vec<u8>)>,
    /// Our receive buffer (small, to make the guest wait for credit).
    buf_alloc: u32,
    rsts_received: usize,
    /// Ports that never give the guest credit.
    stingy: BTreeSet<u32>,
}

impl Host {
    fn new(ports: &[u32]) -> Host {
        Host {
            listening: ports.iter().copied().collect(),
            conns: BTreeMap::new(),
            to_guest: Vec::new(),
            buf_alloc: 256 << 10,
            rsts_received: 0,
            stingy: BTreeSet::new(),
        }
    }

    fn hdr(
        &self,
        guest_port: u32,
        host_port: u32,
        op: u16,
        flags: u32,
        len: usize,
        fwd: u32,
    ) -> Hdr {
        Hdr {
            src_cid: 2,
            dst_cid: GUEST_CID,
            src_port: host_port,
            dst_port: guest_port,
            len: len as u32,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: if self.stingy.contains(&host_port) {
                0
            } else {
                self.buf_alloc
            },
            fwd_cnt: fwd,
        }
    }

    /// A packet from the guest.
    fn on_guest_packet(&mut self, h: Hdr, data: Vec<u8>) {
        assert_eq!(h.src_cid, GUEST_CID);
        assert_eq!(h.dst_cid, 2);
        assert_eq!(h.type_, TYPE_STREAM);
        let gp = h.src_port;
        if h.op == OP_REQUEST {
            assert!(!self.conns.contains_key(&gp), "port reuse while open");
            if self.listening.contains(&h.dst_port) {
                let c = HostConn {
                    port: h.dst_port,
                    guest_buf_alloc: h.buf_alloc,
                    guest_fwd_cnt: h.fwd_cnt,
                    ..Default::default()
                };
                self.conns.insert(gp, c);
                let r = self.hdr(gp, h.dst_port, OP_RESPONSE, 0, 0, 0);
                self.to_guest.push((r, vec![]));
            } else {
                let r = self.hdr(gp, h.dst_port, OP_RST, 0, 0, 0);
                self.to_guest.push((r, vec![]));
            }
            return;
        }
        let buf_alloc = self.buf_alloc;
        let Some(c) = self.conns.get_mut(&gp) else {
            assert_eq!(h.op, OP_RST, "packet {h:?} for an unknown connection");
            return;
        };
        assert_eq!(h.dst_port, c.port);
        c.guest_buf_alloc = h.buf_alloc;
        c.guest_fwd_cnt = h.fwd_cnt;
        match h.op {
            OP_RW => {
                assert!(!c.guest_closed);
                let in_flight = c.received.len() as u32 - c.our_fwd_cnt;
                assert!(
                    in_flight + data.len() as u32 <= buf_alloc,
                    "the guest ignored our credit"
                );
                c.received.extend_from_slice(&data);
                // We "read" at once.
                c.our_fwd_cnt = c.received.len() as u32;
                let fwd = c.our_fwd_cnt;
                let port = c.port;
                let r = self.hdr(gp, port, OP_CREDIT_UPDATE, 0, 0, fwd);
                self.to_guest.push((r, vec![]));
            }
            OP_SHUTDOWN => {
                c.guest_closed = true;
                // As the muxer: once everything is out, confirm with RST.
                let port = c.port;
                let fwd = c.our_fwd_cnt;
                let r = self.hdr(gp, port, OP_RST, 0, 0, fwd);
                self.to_guest.push((r, vec![]));
            }
            OP_RST => {
                c.reset = true;
                c.guest_closed = true;
                self.rsts_received += 1;
            }
            OP_CREDIT_REQUEST => {
                let (port, fwd) = (c.port, c.our_fwd_cnt);
                let r = self.hdr(gp, port, OP_CREDIT_UPDATE, 0, 0, fwd);
                self.to_guest.push((r, vec![]));
            }
            OP_CREDIT_UPDATE => {}
            op => panic!("unexpected op {op}"),
        }
    }

    /// Sends pending data within the guest's credit.
    fn send_pending(&mut self) {
        let keys: Vec<u32> = self.conns.keys().copied().collect();
        for gp in keys {
            loop {
                let c = self.conns.get_mut(&gp).unwrap();
                if c.closed || c.guest_closed {
                    break;
                }
                let credit = c
                    .guest_buf_alloc
                    .saturating_sub(c.sent.wrapping_sub(c.guest_fwd_cnt))
                    as usize;
                let n = c.outgoing.len().min(credit).min(4096);
                if n == 0 {
                    if c.outgoing.is_empty() && c.close_after {
                        c.closed = true;
                        let (port, fwd) = (c.port, c.our_fwd_cnt);
                        let r = self.hdr(gp, port, OP_SHUTDOWN, 3, 0, fwd);
                        self.to_guest.push((r, vec![]));
                    }
                    break;
                }
                let chunk: Vec<u8> = c.outgoing.drain(..n).collect();
                c.sent = c.sent.wrapping_add(n as u32);
                let (port, fwd) = (c.port, c.our_fwd_cnt);
                let r = self.hdr(gp, port, OP_RW, 0, n, fwd);
                self.to_guest.push((r, chunk));
            }
        }
    }

    fn by_port(&self, port: u32) -> Option<&HostConn> {
        self.conns.values().rfind(|c| c.port == port)
    }

    fn by_port_mut(&mut self, port: u32) -> Option<&mut HostConn> {
        self.conns.values_mut().rfind(|c| c.port == port)
    }
}

struct Rig {
    agent: Box<Agent>,
    p: FakePlatform,
    tx: Tx,
    host: Host,
    scratch: Vec<u8>,
    /// The control connection being read (its guest port) and how far.
    ctl_key: Option<u32>,
    ctl_pos: usize,
    inbox: Vec<(u64, Vec<u8>)>,
    next_id: u64,
    last_action: Action,
}

fn new_agent() -> Box<Agent> {
    // The agent is large (its connection buffers); build it on the heap.
    let a: Box<std::mem::MaybeUninit<Agent>> = Box::new_zeroed();
    // SAFETY: all-zero is a valid Agent (the guest relies on the same: it
    // lives in a NOLOAD section), and init sets the rest.
    let mut a = unsafe { a.assume_init() };
    a.init(GUEST_CID);
    a
}

impl Rig {
    fn new(ports: &[u32]) -> Rig {
        Rig {
            agent: new_agent(),
            p: FakePlatform {
                now: 1,
                console: vec![],
                touched: 0,
            },
            tx: Tx::default(),
            host: Host::new(ports),
            scratch: vec![0; vsock::RX_CAP],
            ctl_key: None,
            ctl_pos: 0,
            inbox: vec![],
            next_id: 1,
            last_action: Action::None,
        }
    }

    /// Runs guest and host until neither has anything to do.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let (busy, action) = self
                .agent
                .poll(&mut self.p, &mut self.tx, &mut self.scratch);
            if action != Action::None {
                self.last_action = action;
            }
            let pkts = std::mem::take(&mut self.tx.packets);
            for (h, d) in pkts.iter().cloned() {
                self.host.on_guest_packet(h, d);
            }
            self.host.send_pending();
            let to_guest = std::mem::take(&mut self.host.to_guest);
            for (h, d) in &to_guest {
                let mut raw = vec![0u8; HDR_LEN];
                assert!(h.encode(&mut raw));
                assert_eq!(Hdr::decode(&raw).unwrap(), *h);
                self.agent.stack.receive(h, d);
            }
            if !busy && pkts.is_empty() && to_guest.is_empty() {
                return;
            }
        }
        panic!("the agent never settles");
    }

    fn tick(&mut self, n: u64) {
        for _ in 0..n {
            self.p.now += 1;
            self.pump();
        }
    }

    fn connect(&mut self) {
        self.pump();
        assert!(
            self.p.console.iter().any(|l| l == "AGENT CONNECTED"),
            "{:?}",
            self.p.console
        );
        assert!(self.host.by_port(AGENT_CONTROL_PORT).is_some());
    }

    fn send(&mut self, msg: &Message<'_>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(&msg.encode_to_vec(PROTOCOL_VERSION, id).unwrap());
        id
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.host
            .by_port_mut(AGENT_CONTROL_PORT)
            .unwrap()
            .outgoing
            .extend_from_slice(bytes);
        self.pump();
    }

    /// Moves every complete reply frame received so far into the inbox
    /// (following the control connection across reconnects).
    fn collect(&mut self) {
        let keys: Vec<u32> = self
            .host
            .conns
            .iter()
            .filter(|(_, c)| c.port == CTL)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if self.ctl_key.is_some_and(|old| k < old) {
                continue;
            }
            if self.ctl_key != Some(k) {
                self.ctl_key = Some(k);
                self.ctl_pos = 0;
            }
            let bytes = self.host.conns[&k].received[self.ctl_pos..].to_vec();
            let mut pos = 0;
            while pos < bytes.len() {
                let Ok((h, _, n)) = decode_frame(&bytes[pos..]) else {
                    break;
                };
                self.inbox
                    .push((h.request_id, bytes[pos..pos + n].to_vec()));
                pos += n;
            }
            self.ctl_pos += pos;
        }
    }

    /// Every reply not taken yet.
    fn replies(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.collect();
        std::mem::take(&mut self.inbox)
    }

    fn take(&mut self, id: u64) -> Option<Vec<u8>> {
        self.collect();
        let k = self.inbox.iter().position(|(i, _)| *i == id)?;
        let f = self.inbox.remove(k).1;
        assert!(
            self.inbox.iter().all(|(i, _)| *i != id),
            "two replies to {id}"
        );
        Some(f)
    }

    /// The reply to `id` (exactly one must have arrived).
    fn reply(&mut self, id: u64) -> Vec<u8> {
        match self.take(id) {
            Some(f) => f,
            None => panic!("no reply to {id}; inbox {:?}", self.inbox),
        }
    }

    fn hello(&mut self) {
        let id = self.send(&Message::Hello(Hello {
            versions: List::Slice(&[PROTOCOL_VERSION]),
            client: b"test",
        }));
        let f = self.reply(id);
        match decode_frame(&f).unwrap().1 {
            Message::HelloReply(h) => {
                assert_eq!(h.version, PROTOCOL_VERSION);
                assert_eq!(h.agent, agent::AGENT_NAME);
            }
            m => panic!("{m:?}"),
        }
    }

    fn create(
        &mut self,
        args: &[&[u8]],
        env: &[&[u8]],
        ports: [Option<u32>; 3],
    ) -> Result<u32, (u32, String)> {
        let req = CreateProcess {
            args: List::Slice(args),
            executable: b"",
            env: List::Slice(env),
            cwd: b"",
            user: User::Default,
            terminal: None,
            stdin_port: ports[0],
            stdout_port: ports[1],
            stderr_port: ports[2],
            security: ProcessSecurity::INHERIT,
        };
        let id = self.send(&Message::CreateProcess(req));
        let f = self.reply(id);
        match decode_frame(&f).unwrap().1 {
            Message::ProcessCreated(c) => Ok(c.pid),
            Message::Error(e) => Err((e.hresult, String::from_utf8_lossy(e.message).into_owned())),
            m => panic!("{m:?}"),
        }
    }

    fn wait_request(&mut self, pid: u32) -> u64 {
        self.send(&Message::WaitProcess(WaitProcess { pid }))
    }

    fn exited(&mut self, id: u64) -> Option<ProcessExited> {
        let f = self.take(id)?;
        match decode_frame(&f).unwrap().1 {
            Message::ProcessExited(e) => Some(e),
            m => panic!("{m:?}"),
        }
    }

    fn error_of(&mut self, msg: &Message<'_>) -> (u32, String) {
        let id = self.send(msg);
        let f = self.reply(id);
        match decode_frame(&f).unwrap().1 {
            Message::Error(e) => (e.hresult, String::from_utf8_lossy(e.message).into_owned()),
            m => panic!("{m:?}"),
        }
    }

    fn ok(&mut self, msg: &Message<'_>) {
        let id = self.send(msg);
        let f = self.reply(id);
        assert!(
            matches!(decode_frame(&f).unwrap().1, Message::Ok),
            "{:?}",
            decode_frame(&f).unwrap().1
        );
    }

    fn output(&self, port: u32) -> Vec<u8> {
        self.host
            .by_port(port)
            .map(|c| c.received.clone())
            .unwrap_or_default()
    }
}

const CTL: u32 = AGENT_CONTROL_PORT;

#[test]
fn header_round_trips_and_rejects_short_input() {
    let h = Hdr {
        src_cid: 3,
        dst_cid: 2,
        src_port: 49152,
        dst_port: 0x4843,
        len: 7,
        type_: 1,
        op: 5,
        flags: 3,
        buf_alloc: 65536,
        fwd_cnt: 99,
    };
    let mut b = [0u8; 44];
    assert!(h.encode(&mut b));
    assert_eq!(&b[0..8], &3u64.to_le_bytes());
    assert_eq!(&b[20..24], &0x4843u32.to_le_bytes());
    assert_eq!(&b[30..32], &5u16.to_le_bytes());
    assert_eq!(Hdr::decode(&b), Some(h));
    assert_eq!(Hdr::decode(&b[..43]), None);
    assert!(!h.encode(&mut [0u8; 43]));
}

#[test]
fn connects_retries_until_the_host_listens_and_says_hello() {
    let mut r = Rig::new(&[]);
    r.pump();
    assert_eq!(r.p.console, ["AGENT WAITING FOR HOST"]);
    assert!(r.host.conns.is_empty());
    r.host.listening.insert(CTL);
    r.tick(300);
    assert_eq!(r.p.console, ["AGENT WAITING FOR HOST", "AGENT CONNECTED"]);
    r.hello();
}

#[test]
fn handshake_errors_match_the_real_agent() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    // Anything before Hello.
    let (hr, text) = r.error_of(&Message::ProcessList);
    assert_eq!(hr, hresult::HCS_E_PROTOCOL_ERROR);
    assert_eq!(text, "the first request must be Hello");
    // No shared version.
    let (hr, text) = r.error_of(&Message::Hello(Hello {
        versions: List::Slice(&[7, 9]),
        client: b"x",
    }));
    assert_eq!(hr, hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(
        text,
        "no shared protocol version: the agent speaks [2], the client offered [7, 9]"
    );
    r.hello();
    // A response sent as a request.
    let (hr, text) = r.error_of(&Message::Ok);
    assert_eq!(hr, hresult::HCS_E_UNKNOWN_MESSAGE);
    assert_eq!(text, "message type 0x8003 is not a request");
    // A payload that does not decode keeps the connection.
    let mut bad = Message::WaitProcess(WaitProcess { pid: 1 })
        .encode_to_vec(PROTOCOL_VERSION, 77)
        .unwrap();
    bad[16] = 3; // payload length 4 -> 3
    bad.pop();
    r.send_raw(&bad);
    let f = r.reply(77);
    match decode_frame(&f).unwrap().1 {
        Message::Error(e) => {
            assert_eq!(e.hresult, hresult::HCS_E_PROTOCOL_ERROR);
            assert!(
                String::from_utf8_lossy(e.message).starts_with("cannot decode message type 0x0005")
            );
        }
        m => panic!("{m:?}"),
    }
    r.hello();
}

#[test]
fn a_bad_frame_header_drops_the_connection_and_the_agent_reconnects() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    r.hello();
    r.send_raw(b"XXXXxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    let f = r.replies();
    assert_eq!(f.len(), 1);
    match decode_frame(&f[0].1).unwrap().1 {
        Message::Error(e) => assert_eq!(e.hresult, hresult::HCS_E_PROTOCOL_ERROR),
        m => panic!("{m:?}"),
    }
    assert!(
        r.p.console.iter().any(|l| l == "AGENT DISCONNECTED"),
        "{:?}",
        r.p.console
    );
    r.tick(5);
    let ctl: Vec<&HostConn> = r.host.conns.values().filter(|c| c.port == CTL).collect();
    assert_eq!(ctl.len(), 2, "a new control connection");
    assert!(ctl[0].guest_closed, "the old one was closed");
    assert_eq!(
        r.p.console
            .iter()
            .filter(|l| *l == "AGENT CONNECTED")
            .count(),
        2
    );
    r.hello();
}

#[test]
fn echo_writes_args_and_env_and_exits_0() {
    let mut r = Rig::new(&[CTL, 1001, 1002]);
    r.connect();
    r.hello();
    let pid = r
        .create(
            &[b"echo", b"hello", b"world"],
            &[b"A=1", b"PATH=/bin"],
            [None, Some(1001), Some(1002)],
        )
        .unwrap();
    assert!(pid >= 2);
    let w = r.wait_request(pid);
    r.tick(1);
    let e = r.exited(w).expect("ProcessExited");
    assert_eq!((e.pid, e.exit_code, e.signal), (pid, 0, 0));
    assert_eq!(r.output(1001), b"hello world\nA=1\nPATH=/bin\n");
    assert!(
        r.host.by_port(1001).unwrap().guest_closed,
        "stdout closed at exit"
    );
    assert!(
        r.host.by_port(1002).unwrap().guest_closed,
        "stderr closed at exit"
    );
    assert!(r.output(1002).is_empty());
    // A late wait is answered at once.
    let w = r.wait_request(pid);
    assert_eq!(r.exited(w).unwrap().exit_code, 0);
}

#[test]
fn exit_codes_and_unknown_programs() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    r.hello();
    for (args, code) in [
        (vec![&b"exit"[..], b"3"], 3),
        (vec![b"/bin/exit", b"300"], 44),
        (vec![b"false"], 1),
        (vec![b"true"], 0),
    ] {
        let pid = r.create(&args, &[], [None, None, None]).unwrap();
        let w = r.wait_request(pid);
        r.tick(1);
        assert_eq!(r.exited(w).unwrap().exit_code, code, "{args:?}");
    }
    let (hr, text) = r
        .create(&[b"nosuch", b"x"], &[], [None, None, None])
        .unwrap_err();
    assert_eq!(hr, hresult::ERROR_FILE_NOT_FOUND);
    assert!(
        text.starts_with("executable \"nosuch\" was not found"),
        "{text}"
    );
    let (hr, _) = r.create(&[], &[], [None, None, None]).unwrap_err();
    assert_eq!(hr, hresult::E_INVALIDARG);
    let (hr, _) = r
        .create(&[b"sleep", b"soon"], &[], [None, None, None])
        .unwrap_err();
    assert_eq!(hr, hresult::E_INVALIDARG);
}

#[test]
fn cat_copies_stdin_to_stdout_with_credit_both_ways() {
    let mut r = Rig::new(&[CTL, 2000, 2001]);
    // Our receive buffer is small: the guest must wait for our credit.
    r.host.buf_alloc = 3000;
    r.connect();
    r.hello();
    let pid = r
        .create(&[b"cat"], &[], [Some(2000), Some(2001), None])
        .unwrap();
    let w = r.wait_request(pid);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let c = r.host.by_port_mut(2000).unwrap();
        c.outgoing.extend_from_slice(&data);
    }
    r.pump();
    assert!(r.exited(w).is_none(), "cat ends only when stdin does");
    assert_eq!(r.output(2001).len(), data.len());
    r.host.by_port_mut(2000).unwrap().close_after = true;
    r.pump();
    r.tick(1);
    let e = r.exited(w).expect("exit after EOF");
    assert_eq!(e.exit_code, 0);
    assert!(r.output(2001) == data, "stdout differs");
    // Credit requests and updates were exchanged (the guest waited for ours).
    assert!(r.agent.stack.stats.tx_packets > 100);
}

#[test]
fn sleep_ends_by_itself_or_by_a_signal_and_shows_in_the_process_list() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    r.hello();
    let a = r
        .create(&[b"sleep", b"50"], &[], [None, None, None])
        .unwrap();
    let b = r
        .create(&[b"sleep", b"100000"], &[], [None, None, None])
        .unwrap();
    let wa = r.wait_request(a);
    let wb = r.wait_request(b);
    // ProcessList: the agent (pid 1) and both sleepers.
    let id = r.send(&Message::ProcessList);
    let f = r.reply(id);
    match decode_frame(&f).unwrap().1 {
        Message::ProcessListReply(l) => {
            let got: Vec<(u32, Vec<u8>)> = l
                .processes
                .iter()
                .map(|e| (e.pid, e.command_line.to_vec()))
                .collect();
            assert_eq!(got[0].0, 1);
            assert!(got.contains(&(a, b"sleep 50".to_vec())), "{got:?}");
            assert!(got.contains(&(b, b"sleep 100000".to_vec())), "{got:?}");
        }
        m => panic!("{m:?}"),
    }
    r.tick(4);
    assert!(r.exited(wa).is_none(), "50 ms are 5 ticks");
    r.tick(2);
    assert_eq!(r.exited(wa).unwrap().exit_code, 0);
    // SIGCHLD is ignored; SIGTERM ends it with 128 + 15.
    r.ok(&Message::Signal(Signal { pid: b, signal: 17 }));
    r.tick(1);
    assert!(r.exited(wb).is_none());
    r.ok(&Message::Signal(Signal { pid: b, signal: 15 }));
    r.tick(1);
    let e = r.exited(wb).unwrap();
    assert_eq!((e.exit_code, e.signal), (143, 15));
    // Errors as the real agent gives them.
    let (hr, _) = r.error_of(&Message::Signal(Signal { pid: b, signal: 9 }));
    assert_eq!(hr, hresult::HCS_E_PROCESS_ALREADY_STOPPED);
    let (hr, text) = r.error_of(&Message::WaitProcess(WaitProcess { pid: 999 }));
    assert_eq!(hr, hresult::ERROR_NOT_FOUND);
    assert_eq!(text, "process 999 was not started by the agent");
    let (hr, _) = r.error_of(&Message::Signal(Signal { pid: 1, signal: 9 }));
    assert_eq!(hr, hresult::ERROR_NOT_FOUND);
}

#[test]
fn many_processes_at_once_each_with_three_streams() {
    let ports: Vec<u32> = (0..30).map(|i| 3000 + i).chain([CTL]).collect();
    let mut r = Rig::new(&ports);
    r.connect();
    r.hello();
    let mut waits = vec![];
    for k in 0..10u32 {
        let arg = format!("{}", k);
        let pid = r
            .create(
                &[b"echo", arg.as_bytes()],
                &[],
                [Some(3000 + 3 * k), Some(3001 + 3 * k), Some(3002 + 3 * k)],
            )
            .unwrap();
        waits.push((k, pid, r.wait_request(pid)));
    }
    r.tick(1);
    for (k, pid, w) in waits {
        let f = r.take(w).expect("every wait answered");
        match decode_frame(&f).unwrap().1 {
            Message::ProcessExited(e) => assert_eq!((e.pid, e.exit_code), (pid, 0)),
            m => panic!("{m:?}"),
        }
        assert_eq!(r.output(3001 + 3 * k), format!("{k}\n").as_bytes());
    }
    // Every stream was closed and its slot is free again.
    assert!(
        r.agent
            .stack
            .conns
            .iter()
            .filter(|c| c.state != vsock::State::Free)
            .count()
            <= 1
    );
}

#[test]
fn a_refused_stdio_port_fails_create_process() {
    let mut r = Rig::new(&[CTL, 4000]);
    r.connect();
    r.hello();
    let (hr, text) = r
        .create(&[b"echo"], &[], [Some(4000), Some(4001), None])
        .unwrap_err();
    assert_eq!(hr, hresult::E_FAIL);
    assert_eq!(
        text,
        "cannot connect the stdout stream to port 4001: connection refused"
    );
    assert!(
        r.host.by_port(4000).unwrap().guest_closed,
        "the connected stdin was closed again"
    );
    // The agent carries on.
    let pid = r.create(&[b"exit", b"5"], &[], [None, None, None]).unwrap();
    let w = r.wait_request(pid);
    r.tick(1);
    assert_eq!(r.exited(w).unwrap().exit_code, 5);
}

#[test]
fn touch_reports_ok_or_the_memory_it_has() {
    let mut r = Rig::new(&[CTL, 5001, 5002]);
    r.connect();
    r.hello();
    let pid = r
        .create(&[b"touch", b"16"], &[], [None, Some(5001), Some(5002)])
        .unwrap();
    let w = r.wait_request(pid);
    r.tick(1);
    assert_eq!(r.exited(w).unwrap().exit_code, 0);
    assert_eq!(r.output(5001), b"ok\n");
    assert_eq!(r.p.touched, 16);
    let pid = r
        .create(&[b"touch", b"64"], &[], [None, None, Some(5002)])
        .unwrap();
    let w = r.wait_request(pid);
    r.tick(1);
    assert_eq!(r.exited(w).unwrap().exit_code, 1);
    assert_eq!(r.output(5002), b"touch: only 32 MiB of memory to touch\n");
}

#[test]
fn shutdown_answers_ok_then_asks_for_power_off() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    r.hello();
    let pid = r
        .create(&[b"sleep", b"100000"], &[], [None, None, None])
        .unwrap();
    let w = r.wait_request(pid);
    let id = r.send(&Message::Shutdown(Shutdown {
        action: ShutdownAction::PowerOff,
    }));
    let ok = r.reply(id);
    assert!(matches!(decode_frame(&ok).unwrap().1, Message::Ok));
    assert_eq!(r.last_action, Action::PowerOff);
    // The sleeper was killed first.
    let _ = w;
}

#[test]
fn hostile_packets_never_panic_and_get_reset() {
    let mut r = Rig::new(&[CTL]);
    r.connect();
    r.hello();
    // Random headers and data into the stack.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut raw = [0u8; 64];
        for b in raw.iter_mut() {
            *b = rnd() as u8;
        }
        if rnd() % 2 == 0 {
            raw[0..8].copy_from_slice(&2u64.to_le_bytes());
            raw[28..30].copy_from_slice(&1u16.to_le_bytes());
            raw[30..32].copy_from_slice(&((rnd() % 9) as u16).to_le_bytes());
        }
        let h = Hdr::decode(&raw).unwrap();
        let len = (rnd() % 5000) as usize;
        r.agent.stack.receive(&h, &vec![0xaa; len]);
        let mut tx = Tx {
            room: Some((rnd() % 3) as usize),
            ..Default::default()
        };
        r.agent.poll(&mut r.p, &mut tx, &mut r.scratch);
    }
    // More data than the credit we gave: the connection is reset.
    let mut r = Rig::new(&[CTL, 6000]);
    r.connect();
    r.hello();
    let pid = r
        .create(&[b"sleep", b"100000"], &[], [Some(6000), None, None])
        .unwrap();
    let (gp, _) = r
        .host
        .conns
        .iter()
        .find(|(_, c)| c.port == 6000)
        .map(|(k, c)| (*k, c.port))
        .unwrap();
    for _ in 0..((vsock::RX_CAP / 4000) + 2) {
        let h = r.host.hdr(gp, 6000, OP_RW, 0, 4000, 0);
        r.agent.stack.receive(&h, &[0u8; 4000]);
    }
    r.pump();
    assert!(
        r.host.by_port(6000).unwrap().reset,
        "reset after a credit violation"
    );
    let _ = pid;
}

#[test]
fn linear_buffers_compact_and_never_overflow() {
    let mut b: Box<vsock::Linear<8>> = Box::new(vsock::Linear::new());
    assert_eq!(b.push(b"abcdef"), 6);
    b.consume(4);
    assert_eq!(b.push(b"ghijkl"), 6, "moved down to make room");
    assert_eq!(b.data(), b"efghijkl");
    assert_eq!(b.push(b"x"), 0);
    b.consume(100);
    assert!(b.is_empty());
    assert_eq!(b.space(), 8);
}

#[test]
fn output_nobody_takes_is_given_up_and_the_wait_still_answered() {
    let mut r = Rig::new(&[CTL, 7001]);
    r.connect();
    r.hello();
    let pid = r.create(&[b"cat"], &[], [None, Some(7001), None]).unwrap();
    let w = r.wait_request(pid);
    r.tick(1);
    // No stdin: cat ends at once; the wait is answered.
    assert_eq!(r.exited(w).unwrap().exit_code, 0);

    // A host that never grants credit on stdout: echo's output stays
    // queued; the wait is answered after the drain limit, the stream is
    // reset after the orphan limit.
    let mut r = Rig::new(&[CTL, 7001]);
    r.connect();
    r.hello();
    let big: Vec<u8> = vec![b'x'; 3000];
    r.host.stingy.insert(7001);
    let pid = r
        .create(&[b"echo", &big], &[], [None, Some(7001), None])
        .unwrap();
    let w = r.wait_request(pid);
    r.tick(150);
    assert!(r.exited(w).is_none(), "held for the output");
    r.tick(100);
    assert_eq!(r.exited(w).unwrap().exit_code, 0);
    r.tick(vsock::ORPHAN_TICKS);
    assert!(
        r.host.by_port(7001).unwrap().reset,
        "stdout reset in the end"
    );
}

#[test]
fn a_transport_reset_drops_everything_and_reconnects() {
    let mut r = Rig::new(&[CTL, 8000]);
    r.connect();
    r.hello();
    r.create(&[b"sleep", b"100000"], &[], [Some(8000), None, None])
        .unwrap();
    r.agent.transport_reset(&mut r.p);
    // The device forgot its connections too.
    r.host.conns.clear();
    r.ctl_key = None;
    r.pump();
    assert!(r.p.console.iter().any(|l| l == "AGENT DISCONNECTED"));
    assert_eq!(
        r.p.console
            .iter()
            .filter(|l| *l == "AGENT CONNECTED")
            .count(),
        2
    );
    r.hello();
    // The new control connection is open; the sleeper's stdin is dead
    // (it goes with the process).
    let states: Vec<vsock::State> = r
        .agent
        .stack
        .conns
        .iter()
        .map(|c| c.state)
        .filter(|s| *s != vsock::State::Free)
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.contains(&vsock::State::Dead) && states.contains(&vsock::State::Established));
}

#[test]
fn terminals_resize_and_stderr_is_refused_with_one() {
    let mut r = Rig::new(&[CTL, 9001, 9002]);
    r.connect();
    r.hello();
    let req = CreateProcess {
        args: List::Slice(&[b"sleep", b"100000"]),
        executable: b"",
        env: List::Slice(&[]),
        cwd: b"",
        user: User::Default,
        terminal: Some(hcs_agent_protocol::ConsoleSize {
            rows: 30,
            cols: 100,
        }),
        stdin_port: None,
        stdout_port: Some(9001),
        stderr_port: Some(9002),
        security: ProcessSecurity::INHERIT,
    };
    let (hr, _) = r.error_of(&Message::CreateProcess(req));
    assert_eq!(hr, hresult::E_INVALIDARG);
    let req = CreateProcess {
        stderr_port: None,
        ..req
    };
    let id = r.send(&Message::CreateProcess(req));
    let pid = match decode_frame(&r.reply(id)).unwrap().1 {
        Message::ProcessCreated(c) => c.pid,
        m => panic!("{m:?}"),
    };
    let size = hcs_agent_protocol::ConsoleSize { rows: 10, cols: 20 };
    r.ok(&Message::ResizeConsole(hcs_agent_protocol::ResizeConsole {
        pid,
        size,
    }));
    let other = r
        .create(&[b"sleep", b"100000"], &[], [None, None, None])
        .unwrap();
    let (hr, text) = r.error_of(&Message::ResizeConsole(hcs_agent_protocol::ResizeConsole {
        pid: other,
        size,
    }));
    assert_eq!(hr, hresult::E_INVALIDARG);
    assert_eq!(text, format!("process {other} has no terminal"));
}
