use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress};

use super::packet::*;
use super::*;
use crate::testing::{counting_interrupt, memory, read_bytes, Buf, Driver, Rng};
use crate::{GuestMemoryMmap, Interrupt};

const CID: u64 = 3;
const GUEST_PORT: u32 = 5000;
const QSIZE: u16 = 256;
const RX_BASE: u64 = 0x10_0000;
const TX_BASE: u64 = 0x80_0000;
const TX_SLOT: u64 = 0x2_0000;
const EV_BUF: u64 = 0xf0_0000;

fn encode(h: &Header) -> [u8; 44] {
    let mut b = [0u8; 44];
    b[0..8].copy_from_slice(&h.src_cid.to_le_bytes());
    b[8..16].copy_from_slice(&h.dst_cid.to_le_bytes());
    b[16..20].copy_from_slice(&h.src_port.to_le_bytes());
    b[20..24].copy_from_slice(&h.dst_port.to_le_bytes());
    b[24..28].copy_from_slice(&h.len.to_le_bytes());
    b[28..30].copy_from_slice(&h.type_.to_le_bytes());
    b[30..32].copy_from_slice(&h.op.to_le_bytes());
    b[32..36].copy_from_slice(&h.flags.to_le_bytes());
    b[36..40].copy_from_slice(&h.buf_alloc.to_le_bytes());
    b[40..44].copy_from_slice(&h.fwd_cnt.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Header {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Header {
        src_cid: u64_at(0),
        dst_cid: u64_at(8),
        src_port: u32_at(16),
        dst_port: u32_at(20),
        len: u32_at(24),
        type_: u16_at(28),
        op: u16_at(30),
        flags: u32_at(32),
        buf_alloc: u32_at(36),
        fwd_cnt: u32_at(40),
    }
}

/// A guest packet header from GUEST_PORT to host port `port`.
fn to_host(port: u32, op: u16) -> Header {
    Header {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port: GUEST_PORT,
        dst_port: port,
        type_: TYPE_STREAM,
        op,
        buf_alloc: 64 << 10,
        ..Header::default()
    }
}

/// The guest's driver side of the three queues.
struct Guest<'a> {
    mem: &'a GuestMemoryMmap,
    rx: Driver<'a>,
    tx: Driver<'a>,
    ev: Driver<'a>,
    rx_bufs: HashMap<u16, (u64, u64)>,
    rx_seen: u16,
    rx_slot: u64,
    tx_slot: u64,
    fwd_cnt: u32,
}

impl<'a> Guest<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Self {
        Guest {
            mem,
            rx: Driver::new(mem, 0, QSIZE),
            tx: Driver::new(mem, 0x4000, QSIZE),
            ev: Driver::new(mem, 0x8000, 16),
            rx_bufs: HashMap::new(),
            rx_seen: 0,
            rx_slot: 0,
            tx_slot: 0,
            fwd_cnt: 0,
        }
    }

    fn queues(&self, interrupt: Arc<Interrupt>) -> VsockQueues {
        VsockQueues {
            mem: self.mem.clone(),
            rx: self.rx.queue(),
            tx: self.tx.queue(),
            event: self.ev.queue(),
            interrupt,
        }
    }

    fn offer_rx(&mut self, n: usize) {
        for _ in 0..n {
            let base = RX_BASE + (self.rx_slot % 64) * 0x2000;
            self.rx_slot += 1;
            let head = self
                .rx
                .add(&[Buf(base, 44, true), Buf(base + 0x100, 4096, true)]);
            self.rx_bufs.insert(head, (base, base + 0x100));
        }
    }

    fn send(&mut self, h: Header, data: &[u8]) {
        let base = TX_BASE + (self.tx_slot % 32) * TX_SLOT;
        self.tx_slot += 1;
        let h = Header {
            len: data.len() as u32,
            fwd_cnt: self.fwd_cnt,
            ..h
        };
        self.mem
            .write_slice(&encode(&h), GuestAddress(base))
            .unwrap();
        self.mem
            .write_slice(data, GuestAddress(base + 0x100))
            .unwrap();
        if data.is_empty() {
            self.tx.add(&[Buf(base, 44, false)]);
        } else {
            self.tx.add(&[
                Buf(base, 44, false),
                Buf(base + 0x100, data.len() as u32, false),
            ]);
        }
    }

    /// Packets the device put in the RX queue since the last call; offers
    /// a fresh buffer for each.
    fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        while self.rx_seen != self.rx.used_idx() {
            let (head, len) = self.rx.used(self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            let (h, d) = self.rx_bufs.remove(&(head as u16)).expect("known buffer");
            if len == 0 {
                out.push((Header::default(), Vec::new()));
            } else {
                let hdr = decode(&read_bytes(self.mem, h, 44));
                assert_eq!(len, 44 + hdr.len, "used length matches the header");
                let data = read_bytes(self.mem, d, hdr.len as usize);
                if hdr.op == OP_RW {
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(hdr.len);
                }
                out.push((hdr, data));
            }
            self.offer_rx(1);
        }
        out
    }
}

struct Rig<'a> {
    _dir: tempfile::TempDir,
    uds: PathBuf,
    m: VsockMuxer,
    g: Guest<'a>,
}

impl<'a> Rig<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let mut m = VsockMuxer::new(CID, &uds).unwrap();
        let mut g = Guest::new(mem);
        let (irq, _) = counting_interrupt();
        m.attach(g.queues(irq));
        g.offer_rx(16);
        Rig {
            _dir: dir,
            uds,
            m,
            g,
        }
    }

    fn host_listener(&self, port: u32) -> UnixListener {
        UnixListener::bind(format!("{}_{port}", self.uds.display())).unwrap()
    }

    /// Run the muxer until `done` holds for everything received, or 3 s.
    fn pump(&mut self, done: impl Fn(&[(Header, Vec<u8>)]) -> bool) -> Vec<(Header, Vec<u8>)> {
        let end = Instant::now() + Duration::from_secs(3);
        let mut all = Vec::new();
        loop {
            self.m.process_tx();
            self.m.poll(Duration::from_millis(10)).unwrap();
            all.extend(self.g.received());
            if done(&all) || Instant::now() > end {
                return all;
            }
        }
    }

    fn send(&mut self, h: Header, data: &[u8]) {
        self.g.send(h, data);
        self.m.process_tx();
    }

    /// A guest connection to a host listener on `port`.
    fn guest_connect(&mut self, port: u32) -> (UnixListener, UnixStream) {
        let l = self.host_listener(port);
        self.send(to_host(port, OP_REQUEST), &[]);
        let got = self.pump(|p| has_op(p, OP_RESPONSE));
        let resp = got
            .iter()
            .find(|(h, _)| h.op == OP_RESPONSE)
            .expect("RESPONSE")
            .0;
        assert_eq!((resp.src_cid, resp.dst_cid), (HOST_CID, CID));
        assert_eq!((resp.src_port, resp.dst_port), (port, GUEST_PORT));
        assert_eq!(resp.buf_alloc, CONN_BUF_ALLOC);
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        (l, s)
    }
}

fn has_op(p: &[(Header, Vec<u8>)], op: u16) -> bool {
    p.iter().any(|(h, _)| h.op == op)
}

fn data_of(p: &[(Header, Vec<u8>)]) -> Vec<u8> {
    p.iter()
        .filter(|(h, _)| h.op == OP_RW)
        .flat_map(|(_, d)| d.clone())
        .collect()
}

fn read_n(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).unwrap();
    b
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn guest_connects_to_a_host_listener_and_data_flows_both_ways() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    r.send(to_host(1234, OP_RW), b"hello");
    assert_eq!(read_n(&mut s, 5), b"hello");
    s.write_all(b"world").unwrap();
    let got = r.pump(|p| data_of(p).len() >= 5);
    assert_eq!(data_of(&got), b"world");
    let rw = got.iter().find(|(h, _)| h.op == OP_RW).unwrap().0;
    assert_eq!(
        (rw.src_port, rw.dst_port, rw.dst_cid),
        (1234, GUEST_PORT, CID)
    );
    assert_eq!(rw.fwd_cnt, 5, "the host forwarded 5 bytes");
    assert_eq!(r.m.connection_count(), 1);
}

#[test]
fn bulk_data_to_the_guest_is_complete_and_in_order() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let p2 = payload.clone();
    let writer = std::thread::spawn(move || {
        s.write_all(&p2).unwrap();
        s
    });
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < payload.len() && Instant::now() < end {
        for (h, d) in r.pump(|p| !p.is_empty()) {
            if h.op == OP_RW {
                got.extend(d);
            } else if h.op == OP_CREDIT_REQUEST {
                let fwd = r.g.fwd_cnt;
                r.send(
                    Header {
                        fwd_cnt: fwd,
                        ..to_host(1234, OP_CREDIT_UPDATE)
                    },
                    &[],
                );
            }
        }
        // Tell the device what the guest consumed.
        r.send(to_host(1234, OP_CREDIT_UPDATE), &[]);
    }
    writer.join().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes arrive in order");
}

#[test]
fn credit_limits_what_the_host_sends() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let l = r.host_listener(1234);
    r.send(
        Header {
            buf_alloc: 8,
            ..to_host(1234, OP_REQUEST)
        },
        &[],
    );
    r.pump(|p| has_op(p, OP_RESPONSE));
    let (mut s, _) = l.accept().unwrap();
    s.write_all(&[7u8; 100]).unwrap();
    let got = r.pump(|p| has_op(p, OP_CREDIT_REQUEST));
    assert_eq!(data_of(&got).len(), 8, "no more than the guest's buffer");
    assert!(has_op(&got, OP_CREDIT_REQUEST));
    // The guest consumed its 8 bytes.
    r.g.fwd_cnt = 8;
    r.send(
        Header {
            buf_alloc: 8,
            ..to_host(1234, OP_CREDIT_UPDATE)
        },
        &[],
    );
    let got = r.pump(|p| data_of(p).len() >= 8);
    assert_eq!(data_of(&got).len(), 8);
}

#[test]
fn credit_request_from_the_guest_gets_an_update() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, _s) = r.guest_connect(1234);
    r.send(to_host(1234, OP_CREDIT_REQUEST), &[]);
    let got = r.pump(|p| has_op(p, OP_CREDIT_UPDATE));
    let upd = got
        .iter()
        .find(|(h, _)| h.op == OP_CREDIT_UPDATE)
        .expect("update")
        .0;
    assert_eq!(upd.buf_alloc, CONN_BUF_ALLOC);
}

#[test]
fn guest_ignoring_credit_is_reset() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, _s) = r.guest_connect(1234);
    let chunk = vec![1u8; 64 << 10];
    let mut reset = false;
    for _ in 0..64 {
        r.send(to_host(1234, OP_RW), &chunk);
        r.m.process_rx();
        if r.g.received().iter().any(|(h, _)| h.op == OP_RST) {
            reset = true;
            break;
        }
    }
    assert!(reset, "RST once the guest overran our buffer");
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn host_initiated_connect_handshake() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let mut c = UnixStream::connect(&r.uds).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"CONNECT 52\nearly").unwrap();
    let got = r.pump(|p| has_op(p, OP_REQUEST));
    let req = got
        .iter()
        .find(|(h, _)| h.op == OP_REQUEST)
        .expect("REQUEST")
        .0;
    assert_eq!(
        (req.src_cid, req.dst_cid, req.dst_port),
        (HOST_CID, CID, 52)
    );
    assert!(req.src_port >= 1 << 30);
    assert!(data_of(&got).is_empty(), "no data before the guest accepts");
    let local = req.src_port;
    r.send(
        Header {
            src_port: 52,
            dst_port: local,
            ..to_host(0, OP_RESPONSE)
        },
        &[],
    );
    assert_eq!(read_line(&mut c), format!("OK {local}"));
    let got = r.pump(|p| data_of(p).len() >= 5);
    assert_eq!(
        data_of(&got),
        b"early",
        "bytes after the CONNECT line reach the guest"
    );
    r.send(
        Header {
            src_port: 52,
            dst_port: local,
            ..to_host(0, OP_RW)
        },
        b"hi",
    );
    assert_eq!(read_n(&mut c, 2), b"hi");
}

#[test]
fn host_connect_refused_by_the_guest_closes_the_client() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let mut c = UnixStream::connect(&r.uds).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"CONNECT 7\n").unwrap();
    let got = r.pump(|p| has_op(p, OP_REQUEST));
    let local = got
        .iter()
        .find(|(h, _)| h.op == OP_REQUEST)
        .unwrap()
        .0
        .src_port;
    r.send(
        Header {
            src_port: 7,
            dst_port: local,
            ..to_host(0, OP_RST)
        },
        &[],
    );
    assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0, "EOF");
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn host_connect_times_out_without_an_answer() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.set_timeouts(Timeouts {
        connect: Duration::from_millis(50),
        ..Timeouts::default()
    });
    let mut c = UnixStream::connect(&r.uds).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"CONNECT 8\n").unwrap();
    let got = r.pump(|p| has_op(p, OP_RST));
    assert!(has_op(&got, OP_REQUEST) && has_op(&got, OP_RST));
    assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0, "EOF");
}

#[test]
fn bad_connect_lines_close_the_client() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    for line in [&b"HELLO 5\n"[..], b"CONNECT x\n", &[b'A'; 100][..]] {
        let mut c = UnixStream::connect(&r.uds).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(line).unwrap();
        for _ in 0..20 {
            r.m.poll(Duration::from_millis(5)).unwrap();
        }
        assert_eq!(
            c.read(&mut [0u8; 8]).unwrap_or(0),
            0,
            "closed after {line:?}"
        );
    }
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn connect_to_a_closed_port_gets_rst() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.send(to_host(999, OP_REQUEST), &[]);
    let got = r.pump(|p| !p.is_empty());
    assert_eq!(got.len(), 1);
    let h = got[0].0;
    assert_eq!(
        (h.op, h.src_port, h.dst_port, h.src_cid, h.dst_cid),
        (OP_RST, 999, GUEST_PORT, HOST_CID, CID)
    );
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn stray_packets_get_rst_and_rst_gets_nothing() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.send(to_host(77, OP_RW), b"data");
    r.send(
        Header {
            type_: 2,
            ..to_host(78, OP_REQUEST)
        },
        &[],
    );
    r.send(to_host(79, OP_RST), &[]);
    r.send(
        Header {
            src_cid: 9,
            ..to_host(80, OP_REQUEST)
        },
        &[],
    );
    r.send(
        Header {
            dst_cid: 5,
            ..to_host(81, OP_REQUEST)
        },
        &[],
    );
    let got = r.pump(|p| p.len() >= 2);
    std::thread::sleep(Duration::from_millis(20));
    r.m.process_rx();
    let mut all = got;
    all.extend(r.g.received());
    let ports: Vec<u32> = all.iter().map(|(h, _)| h.src_port).collect();
    assert!(all.iter().all(|(h, _)| h.op == OP_RST));
    assert_eq!(ports, vec![77, 78], "RST for data and the wrong type only");
}

#[test]
fn host_close_sends_shutdown_then_guest_rst_ends_it() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, s) = r.guest_connect(1234);
    drop(s);
    let got = r.pump(|p| has_op(p, OP_SHUTDOWN));
    let sd = got
        .iter()
        .find(|(h, _)| h.op == OP_SHUTDOWN)
        .expect("SHUTDOWN")
        .0;
    assert_eq!(sd.flags, SHUTDOWN_BOTH);
    assert_eq!(r.m.connection_count(), 1, "waits for the guest's RST");
    r.send(to_host(1234, OP_RST), &[]);
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn host_close_without_guest_answer_ends_with_rst() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.set_timeouts(Timeouts {
        linger: Duration::from_millis(50),
        ..Timeouts::default()
    });
    let (_l, s) = r.guest_connect(1234);
    drop(s);
    let got = r.pump(|p| has_op(p, OP_RST));
    assert!(has_op(&got, OP_SHUTDOWN) && has_op(&got, OP_RST));
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn host_half_close_lets_the_guest_keep_sending() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    s.write_all(b"last").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = r.pump(|p| has_op(p, OP_SHUTDOWN));
    assert_eq!(data_of(&got), b"last");
    let sd = got.iter().find(|(h, _)| h.op == OP_SHUTDOWN).unwrap().0;
    assert_eq!(sd.flags, SHUTDOWN_SEND);
    r.send(to_host(1234, OP_RW), b"reply");
    assert_eq!(read_n(&mut s, 5), b"reply");
    // The guest closes too: RST, and the host sees EOF.
    r.send(
        Header {
            flags: SHUTDOWN_BOTH,
            ..to_host(1234, OP_SHUTDOWN)
        },
        &[],
    );
    let got = r.pump(|p| has_op(p, OP_RST));
    assert!(has_op(&got, OP_RST));
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn guest_shutdown_flushes_then_rst() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    r.send(to_host(1234, OP_RW), b"bye");
    r.send(
        Header {
            flags: SHUTDOWN_SEND,
            ..to_host(1234, OP_SHUTDOWN)
        },
        &[],
    );
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"bye", "data, then EOF");
    r.send(
        Header {
            flags: SHUTDOWN_BOTH,
            ..to_host(1234, OP_SHUTDOWN)
        },
        &[],
    );
    let got = r.pump(|p| has_op(p, OP_RST));
    let rst = got.iter().find(|(h, _)| h.op == OP_RST).expect("RST").0;
    assert_eq!((rst.src_port, rst.dst_port), (1234, GUEST_PORT));
    assert_eq!(r.m.connection_count(), 0);
}

#[test]
fn transport_reset_event_drops_every_connection() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    mem.write_obj(0xffff_ffffu32, GuestAddress(EV_BUF)).unwrap();
    r.g.ev.add(&[Buf(EV_BUF, 4, true)]);
    r.m.reset_connections();
    assert_eq!(r.g.ev.used_idx(), 1);
    assert_eq!(r.g.ev.used(0).1, 4);
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(EV_BUF)).unwrap(),
        EVENT_TRANSPORT_RESET
    );
    assert_eq!(r.m.connection_count(), 0);
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0, "the host side is closed");
}

#[test]
fn transport_reset_waits_for_an_event_buffer() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.reset_connections();
    assert_eq!(r.g.ev.used_idx(), 0);
    // A useless buffer (too short) is returned empty; the next one is used.
    r.g.ev.add(&[Buf(EV_BUF, 2, true)]);
    r.g.ev.add(&[Buf(EV_BUF + 16, 4, true)]);
    r.m.poll(Duration::from_millis(1)).unwrap();
    assert_eq!(r.g.ev.used_idx(), 2);
    assert_eq!(r.g.ev.used(0).1, 0);
    assert_eq!(r.g.ev.used(1).1, 4);
}

/// A kick that finds the TX queue already drained (the device handled the
/// buffer in an earlier round) must leave notifications on: a device that
/// disables them and returns without enabling them again never hears of the
/// guest's next packet, and the guest waits forever (seen: a process exit
/// that never reached the host, the test guest halted).
#[test]
fn a_kick_on_an_empty_tx_queue_leaves_notifications_on() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.process_tx();
    assert_eq!(
        r.g.tx.used_flags(&mem) & 1,
        0,
        "VRING_USED_F_NO_NOTIFY left set on an empty queue"
    );
    // And after real work too.
    r.send(to_host(1024, packet::OP_REQUEST), &[]);
    r.m.process_tx();
    assert_eq!(
        r.g.tx.used_flags(&mem) & 1,
        0,
        "VRING_USED_F_NO_NOTIFY left set after a packet"
    );
}

#[test]
fn malformed_chains_fail_alone() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let l = r.host_listener(1234);
    // TX header outside guest memory, too short, write-only.
    r.g.tx.add(&[Buf(0x1_0000_0000, 44, false)]);
    r.g.tx.add(&[Buf(TX_BASE, 10, false)]);
    r.g.tx.add(&[Buf(TX_BASE, 44, true)]);
    r.m.process_tx();
    assert_eq!(r.g.tx.used_idx(), 3);
    // RX buffer outside memory: returned empty when there is something to say.
    r.g.rx
        .add(&[Buf(0x1_0000_0000, 44, true), Buf(RX_BASE, 4096, true)]);
    r.send(to_host(1234, OP_REQUEST), &[]);
    let got = r.pump(|p| has_op(p, OP_RESPONSE));
    assert!(has_op(&got, OP_RESPONSE), "the device still works");
    drop(l);
}

#[test]
fn device_reset_drops_connections_and_keeps_listening() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    r.m.detach();
    assert_eq!(r.m.connection_count(), 0);
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
    UnixStream::connect(&r.uds).expect("still listening");
}

#[test]
fn random_descriptor_tables_never_panic() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let _l = r.host_listener(1234);
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut popped = 0u64;
    for round in 0..2000 {
        // Random headers in the TX area, sometimes plausible ones.
        for slot in 0..4 {
            let addr = TX_BASE + slot * TX_SLOT;
            let mut h = [0u8; 44];
            h.iter_mut().for_each(|b| *b = rng.next() as u8);
            if rng.below(2) == 0 {
                let op = rng.below(9) as u16;
                let hdr = Header {
                    len: rng.below(100) as u32,
                    ..to_host(1234 + rng.below(2) as u32, op)
                };
                h = encode(&hdr);
            }
            mem.write_slice(&h, GuestAddress(addr)).unwrap();
        }
        let tx_next = r.m.queues_for_test().tx.next_avail();
        fuzz_driver(&r.g.tx, &mut rng, tx_next);
        if round % 3 == 0 {
            let rx_next = r.m.queues_for_test().rx.next_avail();
            fuzz_driver(&r.g.rx, &mut rng, rx_next);
        }
        let before = r.m.queues_for_test().tx.next_avail();
        r.m.process_tx();
        let after = r.m.queues_for_test().tx.next_avail();
        popped += u64::from(after.wrapping_sub(before));
        r.m.poll(Duration::ZERO).unwrap();
    }
    assert!(
        popped > 2000,
        "the fuzzer reached the device ({popped} chains)"
    );
    assert!(r.m.connection_count() <= super::muxer::MAX_CONNECTIONS);
}

/// Scribble over a queue's descriptors and available ring.
fn fuzz_driver(d: &Driver<'_>, rng: &mut Rng, next_avail: u16) {
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    for i in 0..QSIZE {
        let addr = match rng.below(4) {
            0 => rng.next(),
            1 => crate::testing::MEM_SIZE - rng.below(64),
            _ => TX_BASE + rng.below(4) * TX_SLOT + rng.below(2) * 0x100,
        };
        let len = match rng.below(4) {
            0 => rng.next() as u32,
            1 => 0,
            _ => rng.below(200) as u32,
        };
        let flags = rng.below(8) as u16;
        let next = rng.below(u64::from(QSIZE) + 2) as u16;
        d.vq.desc_table()
            .store(
                i,
                RawDescriptor::from(Descriptor::new(addr, len, flags, next)),
            )
            .unwrap();
    }
    let avail = d.vq.avail();
    for i in 0..usize::from(QSIZE) {
        avail
            .ring()
            .ref_at(i)
            .unwrap()
            .store(rng.below(u64::from(QSIZE) + 4) as u16);
    }
    let bump = if rng.below(16) == 0 {
        rng.next() as u16
    } else {
        rng.below(8) as u16
    };
    avail.idx().store(next_avail.wrapping_add(bump));
}

/// The whole device behind the MMIO transport, with its own thread.
#[test]
fn device_runs_its_muxer_on_a_thread() {
    use crate::MmioTransport;
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("dev.sock");
    let mem = memory();
    let mut g = Guest::new(&mem);
    let dev = Vsock::new(&VsockConfig {
        guest_cid: CID,
        uds_path: uds.clone(),
        policy: VsockPolicy::default(),
    })
    .unwrap();
    assert!(dev.queue_eventfd(1).is_some());
    let handle = dev.handle();
    let (irq, fired) = counting_interrupt();
    let mut t = MmioTransport::new(Box::new(dev), mem.clone(), irq);
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    let mut cfg = [0u8; 8];
    t.read(0x100, &mut cfg);
    assert_eq!(u64::from_le_bytes(cfg), CID);
    w(&mut t, 0x70, 1);
    w(&mut t, 0x70, 3);
    w(&mut t, 0x24, 1);
    w(&mut t, 0x20, 1);
    w(&mut t, 0x70, 11);
    let rings = [
        (
            g.rx.vq.desc_table_addr(),
            g.rx.vq.avail_addr(),
            g.rx.vq.used_addr(),
            QSIZE,
        ),
        (
            g.tx.vq.desc_table_addr(),
            g.tx.vq.avail_addr(),
            g.tx.vq.used_addr(),
            QSIZE,
        ),
        (
            g.ev.vq.desc_table_addr(),
            g.ev.vq.avail_addr(),
            g.ev.vq.used_addr(),
            16,
        ),
    ];
    for (i, (d, a, u, n)) in rings.into_iter().enumerate() {
        w(&mut t, 0x30, i as u32);
        w(&mut t, 0x38, u32::from(n));
        w(&mut t, 0x80, d.0 as u32);
        w(&mut t, 0x90, a.0 as u32);
        w(&mut t, 0xa0, u.0 as u32);
        w(&mut t, 0x44, 1);
    }
    w(&mut t, 0x70, 15);
    assert!(t.is_active());
    let l = UnixListener::bind(format!("{}_1234", uds.display())).unwrap();
    g.offer_rx(8);
    w(&mut t, 0x50, 0);
    g.send(to_host(1234, OP_REQUEST), &[]);
    w(&mut t, 0x50, 1);
    let end = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while !has_op(&got, OP_RESPONSE) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        got.extend(g.received());
    }
    assert!(has_op(&got, OP_RESPONSE), "the device thread answered");
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let (mut host, _) = l.accept().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // A snapshot-restore style reset from another thread.
    g.ev.add(&[Buf(EV_BUF, 4, true)]);
    w(&mut t, 0x50, 2);
    handle.reset_connections();
    let end = Instant::now() + Duration::from_secs(5);
    while g.ev.used_idx() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(g.ev.used_idx(), 1, "TRANSPORT_RESET delivered");
    assert_eq!(host.read(&mut [0u8; 4]).unwrap(), 0, "host side closed");
    // Reset stops the thread; the listener stays; activation works again.
    w(&mut t, 0x70, 0);
    assert!(!t.is_active());
    UnixStream::connect(&uds).expect("still listening");
    drop(t);
    assert!(!Path::new(&uds).exists(), "socket removed with the device");
}

#[test]
fn config_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("x.sock");
    let err = Vsock::new(&VsockConfig {
        guest_cid: 2,
        uds_path: uds.clone(),
        policy: VsockPolicy::default(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("CID 2"), "{err}");
    let _first = Vsock::new(&VsockConfig {
        guest_cid: 3,
        uds_path: uds.clone(),
        policy: VsockPolicy::default(),
    })
    .unwrap();
    let err = Vsock::new(&VsockConfig {
        guest_cid: 3,
        uds_path: uds.clone(),
        policy: VsockPolicy::default(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("x.sock"), "{err}");
}

#[test]
fn bulk_data_to_the_host_respects_and_refreshes_credit() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    const TOTAL: usize = 1 << 20;
    let reader = std::thread::spawn(move || read_n(&mut s, TOTAL));
    let chunk: Vec<u8> = (0..4096u32).map(|i| (i % 253) as u8).collect();
    let (mut sent, mut peer_fwd) = (0u32, 0u32);
    let end = Instant::now() + Duration::from_secs(20);
    while (sent as usize) < TOTAL && Instant::now() < end {
        let credit = CONN_BUF_ALLOC - (sent - peer_fwd);
        if credit as usize >= chunk.len() {
            r.send(to_host(1234, OP_RW), &chunk);
            sent += chunk.len() as u32;
            continue;
        }
        for (h, _) in r.pump(|p| !p.is_empty()) {
            assert_ne!(h.op, OP_RST, "no reset while the guest respects credit");
            peer_fwd = peer_fwd.max(h.fwd_cnt);
        }
    }
    assert_eq!(sent as usize, TOTAL, "credit updates kept the guest going");
    // The device thread's job: keep flushing what the host has not read yet.
    while !reader.is_finished() && Instant::now() < end {
        r.m.poll(Duration::from_millis(10)).unwrap();
    }
    let got = reader.join().unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(got.chunks(4096).all(|c| c == &chunk[..]));
}

/// A host reader slower than the guest: the device buffers, flushes when
/// the socket drains, and keeps the guest's credit coming.
#[test]
fn slow_host_reader_gets_everything() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    let (_l, mut s) = r.guest_connect(1234);
    const TOTAL: usize = 4 << 20;
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        let mut b = vec![0u8; 8192];
        while got < TOTAL {
            let n = s.read(&mut b).unwrap();
            got += n;
            if got % (64 << 10) < 8192 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        got
    });
    let chunk = vec![3u8; 4096];
    let (mut sent, mut peer_fwd) = (0u32, 0u32);
    let end = Instant::now() + Duration::from_secs(60);
    while (sent as usize) < TOTAL && Instant::now() < end {
        let credit = CONN_BUF_ALLOC - (sent - peer_fwd);
        if credit as usize >= chunk.len() {
            r.send(to_host(1234, OP_RW), &chunk);
            sent += chunk.len() as u32;
            continue;
        }
        let got = r.pump(|p| !p.is_empty());
        assert!(
            !got.is_empty(),
            "credit update after the host read (sent {sent})"
        );
        for (h, _) in got {
            assert_ne!(h.op, OP_RST);
            peer_fwd = peer_fwd.max(h.fwd_cnt);
        }
    }
    while !reader.is_finished() && Instant::now() < end {
        r.m.poll(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(reader.join().unwrap(), TOTAL);
}

/// The test guest's layout: header and payload in one descriptor, both
/// ways (Linux does the same since 6.2).
#[test]
fn single_descriptor_packets() {
    let mem = memory();
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("v.sock");
    let mut m = VsockMuxer::new(CID, &uds).unwrap();
    let mut g = Guest::new(&mem);
    m.attach(g.queues(counting_interrupt().0));
    for i in 0..4 {
        let base = 0xe0_0000 + i * 0x1000;
        let head = g.rx.add(&[Buf(base, 4096, true)]);
        g.rx_bufs.insert(head, (base, base + 44));
    }
    let l = UnixListener::bind(format!("{}_1234", uds.display())).unwrap();
    let tx_buf = 0xe8_0000;
    let req = Header {
        src_port: 50000,
        ..to_host(1234, OP_REQUEST)
    };
    mem.write_slice(&encode(&req), GuestAddress(tx_buf))
        .unwrap();
    g.tx.add(&[Buf(tx_buf, 44, false)]);
    let ping = b"PING-FROM-GUEST\n";
    let rw = Header {
        src_port: 50000,
        len: ping.len() as u32,
        ..to_host(1234, OP_RW)
    };
    mem.write_slice(&encode(&rw), GuestAddress(tx_buf + 0x1000))
        .unwrap();
    mem.write_slice(ping, GuestAddress(tx_buf + 0x1000 + 44))
        .unwrap();
    g.tx.add(&[Buf(tx_buf + 0x1000, 44 + ping.len() as u32, false)]);
    m.process_tx();
    assert_eq!(g.tx.used_idx(), 2);
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(read_n(&mut s, ping.len()), ping);
    s.write_all(b"PONG-FROM-HOST\n").unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while data_of(&got).len() < 15 && Instant::now() < end {
        m.poll(Duration::from_millis(10)).unwrap();
        got.extend(g.received());
    }
    assert_eq!(got[0].0.op, OP_RESPONSE);
    assert_eq!(got[0].0.dst_port, 50000);
    assert_eq!(data_of(&got), b"PONG-FROM-HOST\n");
    assert_eq!(g.rx.used(1).1, 44 + 15, "header and data in one buffer");
}

/// A policy allowing host connections to 52 only and guest connections to
/// every host port but 1234 (a disabled service).
fn table() -> VsockPolicy {
    let mut p = VsockPolicy {
        default_connect: false,
        default_bind: true,
        ports: std::collections::BTreeMap::new(),
    };
    p.ports.insert(
        52,
        PortRule {
            connect: true,
            bind: true,
        },
    );
    p.ports.insert(
        1234,
        PortRule {
            connect: false,
            bind: false,
        },
    );
    p
}

#[test]
fn the_service_table_refuses_host_connections_to_ports_it_does_not_allow() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.set_policy(table());
    // Not allowed: the guest never sees a REQUEST and the client is closed.
    let mut c = UnixStream::connect(&r.uds).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"CONNECT 53\n").unwrap();
    for _ in 0..20 {
        r.m.poll(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(c.read(&mut [0u8; 8]).unwrap_or(0), 0, "closed");
    assert!(r.g.received().is_empty(), "the guest heard nothing");
    assert_eq!(r.m.connection_count(), 0);
    // Allowed: the handshake goes on as usual.
    let mut c = UnixStream::connect(&r.uds).unwrap();
    c.write_all(b"CONNECT 52\n").unwrap();
    let got = r.pump(|p| has_op(p, OP_REQUEST));
    let req = got
        .iter()
        .find(|(h, _)| h.op == OP_REQUEST)
        .expect("REQUEST")
        .0;
    assert_eq!(req.dst_port, 52);
}

#[test]
fn the_service_table_refuses_guest_connections_to_disabled_services() {
    let mem = memory();
    let mut r = Rig::new(&mem);
    r.m.set_policy(table());
    // A host listener exists on 1234, but the service is disabled: RST, and
    // the listener sees no connection.
    let l = r.host_listener(1234);
    l.set_nonblocking(true).unwrap();
    r.send(to_host(1234, OP_REQUEST), &[]);
    let got = r.pump(|p| !p.is_empty());
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.op, got[0].0.src_port), (OP_RST, 1234));
    assert_eq!(
        l.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing reached the host listener"
    );
    // Unlisted ports follow the default (allowed here).
    let (_l, _s) = r.guest_connect(77);
    assert_eq!(r.m.connection_count(), 1);
}

/// With `VIRTIO_RING_F_EVENT_IDX` a Linux driver kicks only when its
/// available index passes the device's `avail_event`. A device out of
/// receive buffers with packets still to deliver must write it, or the
/// driver refills the queue without a kick and the packets wait for some
/// unrelated wake-up.
#[test]
fn out_of_receive_buffers_the_device_asks_for_a_kick() {
    let mem = memory();
    let dir = tempfile::tempdir().unwrap();
    let mut m = VsockMuxer::new(CID, dir.path().join("vsock.sock")).unwrap();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    let mut queues = g.queues(irq);
    queues.rx.set_event_idx(true);
    m.attach(queues);
    g.offer_rx(1);
    // Three packets for no connection: three RSTs to deliver, one buffer.
    for port in [7001, 7002, 7003] {
        g.send(to_host(port, OP_RW), b"x");
    }
    m.process_tx();
    m.process_rx();
    assert_eq!(g.received().len(), 1);
    // avail_event: the u16 after the used ring's elements.
    let avail_event: u16 = mem
        .read_obj(GuestAddress(
            g.rx.vq.used_addr().0 + 4 + 8 * u64::from(QSIZE),
        ))
        .unwrap();
    assert_eq!(
        avail_event, 1,
        "the device asks for a kick at the next buffer"
    );
}
