//! Tests on taps the tests create themselves (`ip tuntap add`), removed by
//! a guard even when a test fails. The "host side" of a tap is its
//! interface in the kernel: the tests watch and inject frames there with
//! an `AF_PACKET` socket bound to that interface, using an experimental
//! EtherType that the stack drops; IPv6 is disabled on the taps so the
//! kernel sends nothing of its own. Nothing leaves the machine.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::testing::{counting_interrupt, memory, read_bytes, Buf, Driver, MEM_SIZE};
use crate::{GuestMemoryMmap, Interrupt};

/// IEEE 802 "local experimental" EtherType 1.
const ETHERTYPE: u16 = 0x88b5;
const QSIZE: u16 = 256;
const RX_Q: u64 = 0;
const TX_Q: u64 = 0x4000;
const BUFS: u64 = 0x10_0000;
const SLOT: u64 = 0x2_0000;
const GUEST_MAC: [u8; 6] = [0x02, 0x15, 0x5d, 0x00, 0x00, 0x01];

// ---------------------------------------------------------------- helpers

/// A tap this test created; deleted on drop.
struct TestTap {
    name: String,
    mode: &'static str,
}

static TAP_SEQ: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let n = TAP_SEQ.fetch_add(1, Ordering::SeqCst);
    // "hcsn" + 5 + up to 3 digits: within the 15-byte limit.
    format!("hcsn{}x{n}", std::process::id() % 100_000)
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("running ip(8) (iproute2)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Root is needed to create taps; say so instead of failing elsewhere.
macro_rules! need_root {
    ($name:literal) => {
        if !is_root() {
            hcs_test_support::skip(
                concat!("hcs_virtio::net::tests::", $name),
                "creating tap devices needs root",
            );
            return;
        }
    };
}

impl TestTap {
    fn new(mode: &'static str) -> TestTap {
        let name = unique_name();
        let out = ip(&["tuntap", "add", "dev", &name, "mode", mode]);
        assert!(
            out.status.success(),
            "ip tuntap add dev {name} mode {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tap = TestTap { name, mode };
        // No router solicitations or MLD reports on our taps.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", tap.name),
            "1",
        );
        let out = ip(&["link", "set", "dev", &tap.name, "up"]);
        assert!(
            out.status.success(),
            "ip link set dev {} up: {}",
            tap.name,
            String::from_utf8_lossy(&out.stderr)
        );
        tap
    }
}

impl Drop for TestTap {
    fn drop(&mut self) {
        // RTM_DELLINK works even while something has the tap open (a child
        // of another test thread between fork and exec may hold a copy of
        // a tap descriptor for a moment); retry briefly all the same.
        for attempt in 0..20 {
            let out = ip(&["link", "delete", "dev", &self.name]);
            if out.status.success() {
                return;
            }
            if attempt == 19 {
                eprintln!(
                    "removing test {} {}: {}",
                    self.mode,
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An `AF_PACKET` socket on one interface: the kernel side of the tap.
struct PacketSocket {
    fd: OwnedFd,
}

const PACKET_OUTGOING: u8 = 4;

impl PacketSocket {
    fn bind(ifname: &str) -> PacketSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cname = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `cname` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        assert!(index != 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; zeros are valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = index as i32;
        // SAFETY: `sa` is a valid sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert!(
            rc == 0,
            "binding to {ifname}: {}",
            std::io::Error::last_os_error()
        );
        PacketSocket { fd }
    }

    /// Transmit `frame` on the interface (it reaches the tap's reader).
    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "sending on the tap interface: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next frame the interface received (not one it sent) with our
    /// EtherType, within `wait`.
    fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut buf = vec![0u8; 70_000];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if rc <= 0 {
                continue;
            }
            // SAFETY: sockaddr_ll is plain data; zeros are valid.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf`, `sa` and `sl` are valid for writes of their sizes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut sa as *mut libc::sockaddr_ll).cast(),
                    &mut sl,
                )
            };
            if n < 0 || sa.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let f = &buf[..n as usize];
            if f.len() >= 14 && f[12..14] == ETHERTYPE.to_be_bytes() {
                return Some(f.to_vec());
            }
        }
    }
}

/// An Ethernet frame with our EtherType and `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The guest's side of the two queues.
struct Guest<'a> {
    mem: &'a GuestMemoryMmap,
    rx: Driver<'a>,
    tx: Driver<'a>,
    slot: u64,
}

impl<'a> Guest<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Self {
        Guest {
            mem,
            rx: Driver::new(mem, RX_Q, QSIZE),
            tx: Driver::new(mem, TX_Q, QSIZE),
            slot: 0,
        }
    }

    fn queues(&self, interrupt: Arc<Interrupt>) -> NetQueues {
        NetQueues {
            mem: self.mem.clone(),
            rx: self.rx.queue(),
            tx: self.tx.queue(),
            interrupt,
        }
    }

    fn next_slot(&mut self) -> u64 {
        let a = BUFS + (self.slot % 64) * SLOT;
        self.slot += 1;
        a
    }

    /// Queue `frame` for transmission with a zero virtio-net header, split
    /// over two descriptors (header, frame).
    fn send(&mut self, frame: &[u8]) -> u16 {
        let base = self.next_slot();
        self.mem
            .write_slice(&[0u8; VNET_HDR_LEN], GuestAddress(base))
            .unwrap();
        self.mem
            .write_slice(frame, GuestAddress(base + 0x100))
            .unwrap();
        self.tx.add(&[
            Buf(base, VNET_HDR_LEN as u32, false),
            Buf(base + 0x100, frame.len() as u32, false),
        ])
    }

    /// Offer a receive buffer of `len` bytes; returns (head, address).
    fn offer_rx(&mut self, len: u32) -> (u16, u64) {
        let base = self.next_slot();
        (self.rx.add(&[Buf(base, len, true)]), base)
    }
}

/// Poll `w` until `done` or 3 s.
fn pump(w: &mut NetWorker, mut done: impl FnMut(&NetWorker) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        w.poll(Duration::from_millis(20)).unwrap();
        if done(w) {
            return true;
        }
    }
    false
}

fn worker_on(tap: &TestTap) -> NetWorker {
    NetWorker::new(Tap::open(&tap.name).expect("attaching the test tap")).unwrap()
}

// ------------------------------------------------------------------ MACs

#[test]
fn mac_windows_and_linux_forms() {
    let want = MacAddress([0x00, 0x15, 0x5d, 0xab, 0x0c, 0xff]);
    assert_eq!(MacAddress::parse("00-15-5D-AB-0C-FF").unwrap(), want);
    assert_eq!(MacAddress::parse("00:15:5d:ab:0c:ff").unwrap(), want);
    assert_eq!(MacAddress::parse("00-15-5d-Ab-0C-fF").unwrap(), want);
    assert_eq!("00:15:5D:AB:0C:FF".parse::<MacAddress>().unwrap(), want);
    assert_eq!(want.to_string(), "00:15:5d:ab:0c:ff");
    assert!(!want.is_local());
}

#[test]
fn bad_macs_are_refused_clearly() {
    for bad in [
        "",
        "00-15-5D-AB-0C",
        "00-15-5D-AB-0C-FF-01",
        "00-15:5D-AB-0C-FF",
        "00:15:5D:AB:0C:FG",
        "0-15-5D-AB-0C-FF0",
        "00155DAB0CFF",
        "00-15-5D-AB-0C-FF-",
        " 00-15-5D-AB-0C-FF",
        "+0-15-5D-AB-0C-FF",
    ] {
        let e = MacAddress::parse(bad).unwrap_err();
        assert_eq!(e, MacError::Syntax(bad.to_string()), "{bad:?}");
        let msg = e.to_string();
        assert!(msg.contains("00-15-5D-01-02-03"), "{msg}");
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
    }
    let e = MacAddress::parse("01-00-5E-00-00-01").unwrap_err();
    assert!(matches!(e, MacError::Multicast(_)), "{e}");
    assert!(e.to_string().contains("multicast"));
    assert!(matches!(
        MacAddress::parse("ff:ff:ff:ff:ff:ff"),
        Err(MacError::Multicast(_))
    ));
    assert!(matches!(
        MacAddress::parse("00-00-00-00-00-00"),
        Err(MacError::Zero(_))
    ));
}

#[test]
fn generated_macs_are_stable_local_unicast() {
    let a = MacAddress::local_from_seed(b"vm1/eth0");
    assert_eq!(a, MacAddress::local_from_seed(b"vm1/eth0"));
    assert_ne!(a, MacAddress::local_from_seed(b"vm1/eth1"));
    assert_ne!(a, MacAddress::local_from_seed(b"vm2/eth0"));
    for seed in [&b""[..], b"a", b"b", b"some longer seed"] {
        let m = MacAddress::local_from_seed(seed);
        assert!(m.is_local() && !m.is_multicast(), "{m}");
        assert_eq!(MacAddress::parse(&m.to_string()), Ok(m));
    }
}

// ------------------------------------------------------------------ taps

#[test]
fn missing_tap_is_refused_and_not_created() {
    need_root!("missing_tap_is_refused_and_not_created");
    let name = unique_name();
    let e = Tap::open(&name).unwrap_err();
    assert!(matches!(e, TapError::NotFound(ref n) if *n == name), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("does not exist") && msg.contains(&name),
        "{msg}"
    );
    assert!(
        !std::path::Path::new("/sys/class/net").join(&name).exists(),
        "opening a missing tap created it"
    );
    let e = Net::new(&NetConfig {
        tap: name.clone(),
        mac: MacAddress(GUEST_MAC),
    })
    .unwrap_err();
    assert!(matches!(e, NetError::Tap(TapError::NotFound(_))), "{e}");
}

#[test]
fn invalid_tap_names_are_refused() {
    for bad in [
        "",
        "a/b",
        "eth:0",
        "with space",
        ".",
        "..",
        "sixteen-chars-xx",
    ] {
        let e = Tap::open(bad).unwrap_err();
        assert!(matches!(e, TapError::InvalidName(_)), "{bad:?}: {e}");
    }
    assert!(valid_interface_name("tap0"));
    assert!(valid_interface_name("fifteen-chars-x"));
}

#[test]
fn busy_tap_and_tun_device_are_refused() {
    need_root!("busy_tap_and_tun_device_are_refused");
    let tap = TestTap::new("tap");
    let first = Tap::open(&tap.name).expect("first attach");
    let e = Tap::open(&tap.name).unwrap_err();
    assert!(matches!(e, TapError::Busy(_)), "{e}");
    assert!(e.to_string().contains("busy"), "{e}");
    drop(first);
    // Free again once the first user is gone (allowing for a child of
    // another test thread that holds a copy of the descriptor between its
    // fork and exec).
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        match Tap::open(&tap.name) {
            Ok(_) => break,
            Err(TapError::Busy(_)) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("attach after the first user left: {e}"),
        }
    }

    let tun = TestTap::new("tun");
    let e = Tap::open(&tun.name).unwrap_err();
    assert!(matches!(e, TapError::NotATap { .. }), "{e}");
    assert!(e.to_string().contains("tun"), "{e}");

    let e = Tap::open("lo").unwrap_err();
    assert!(matches!(e, TapError::NotATap { .. }), "{e}");
}

// -------------------------------------------------------------------- TX

#[test]
fn tx_frame_reaches_the_tap() {
    need_root!("tx_frame_reaches_the_tap");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, fired) = counting_interrupt();
    w.attach(g.queues(irq));

    let sent = frame(b"hello from the guest, tx path");
    let head = g.send(&sent);
    w.process_tx();
    assert_eq!(g.tx.used_idx(), 1);
    assert_eq!(g.tx.used(0), (u32::from(head), 0));
    assert!(fired.load(Ordering::SeqCst) > 0, "no interrupt for TX");
    let got = sock.recv(Duration::from_secs(3)).expect("frame on the tap");
    assert_eq!(got, sent, "the frame without its virtio-net header");
    assert_eq!(w.stats().tx_frames, 1);

    // A larger frame, through the event loop this time.
    let big = frame(&vec![0x5a; 9000]);
    g.send(&big);
    w.queue_eventfd(TX_QUEUE).unwrap().write(1).unwrap();
    assert!(pump(&mut w, |w| w.stats().tx_frames == 2));
    let got = sock
        .recv(Duration::from_secs(3))
        .expect("big frame on the tap");
    assert_eq!(got.len(), big.len());
    assert_eq!(got, big);
}

#[test]
fn tx_malformed_chains_fail_only_their_frame() {
    need_root!("tx_malformed_chains_fail_only_their_frame");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    w.attach(g.queues(irq));

    // Outside guest memory.
    let a = g.tx.add(&[Buf(MEM_SIZE - 8, 64, false)]);
    // Too short to hold a header and an Ethernet header.
    let b = g.tx.add(&[Buf(BUFS, 20, false)]);
    // Larger than the largest frame.
    let c =
        g.tx.add(&[Buf(BUFS, 40_000, false), Buf(BUFS, 40_000, false)]);
    // A device-writable buffer in a TX chain.
    let d =
        g.tx.add(&[Buf(BUFS, 12, false), Buf(BUFS + 0x100, 64, true)]);
    // A good one after them.
    let good = frame(b"survivor");
    let e = g.send(&good);
    w.process_tx();

    assert_eq!(g.tx.used_idx(), 5, "every chain is returned");
    for (n, head) in [a, b, c, d, e].into_iter().enumerate() {
        assert_eq!(g.tx.used(n as u16), (u32::from(head), 0));
    }
    let s = w.stats();
    assert_eq!((s.tx_frames, s.tx_dropped), (1, 4), "{s:?}");
    assert_eq!(
        sock.recv(Duration::from_secs(3)).as_deref(),
        Some(&good[..])
    );
    assert_eq!(
        sock.recv(Duration::from_millis(300)),
        None,
        "only one frame"
    );
}

#[test]
fn tx_segmentation_offload_is_refused() {
    need_root!("tx_segmentation_offload_is_refused");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    w.attach(g.queues(irq));
    let base = BUFS + 63 * SLOT;
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    mem.write_slice(&hdr, GuestAddress(base)).unwrap();
    mem.write_slice(&frame(b"x"), GuestAddress(base + 12))
        .unwrap();
    g.tx.add(&[Buf(base, 12 + 15, false)]);
    w.process_tx();
    assert_eq!(g.tx.used_idx(), 1);
    assert_eq!((w.stats().tx_frames, w.stats().tx_dropped), (0, 1));
}

// -------------------------------------------------------------------- RX

/// The virtio-net header the device puts before received frames.
fn rx_header() -> Vec<u8> {
    let mut h = vec![0u8; VNET_HDR_LEN];
    h[10] = 1; // num_buffers
    h
}

#[test]
fn rx_frame_from_the_tap_fills_a_buffer() {
    need_root!("rx_frame_from_the_tap_fills_a_buffer");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, fired) = counting_interrupt();
    w.attach(g.queues(irq));

    // Nothing yet: buffers stay with the driver.
    let (h0, a0) = g.offer_rx(2048);
    let (_h1, _a1) = g.offer_rx(2048);
    w.process_rx();
    assert_eq!(g.rx.used_idx(), 0);

    let sent = frame(b"hello from the host, rx path");
    sock.send(&sent);
    assert!(
        pump(&mut w, |w| w.stats().rx_frames >= 1),
        "no frame received"
    );
    assert_eq!(g.rx.used_idx(), 1);
    let (head, len) = g.rx.used(0);
    assert_eq!(head, u32::from(h0));
    assert_eq!(len as usize, VNET_HDR_LEN + sent.len());
    let got = read_bytes(&mem, a0, len as usize);
    assert_eq!(&got[..VNET_HDR_LEN], &rx_header()[..]);
    assert_eq!(&got[VNET_HDR_LEN..], &sent[..]);
    assert!(fired.load(Ordering::SeqCst) > 0, "no interrupt for RX");
}

#[test]
fn rx_waits_for_buffers_and_keeps_order() {
    need_root!("rx_waits_for_buffers_and_keeps_order");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    w.attach(g.queues(irq));

    // Frames arrive before the driver has any buffer.
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| frame(&[i; 100])).collect();
    for f in &frames {
        sock.send(f);
    }
    w.poll(Duration::from_millis(100)).unwrap();
    assert_eq!(g.rx.used_idx(), 0);

    let mut addrs = Vec::new();
    for _ in 0..5 {
        addrs.push(g.offer_rx(1600).1);
    }
    w.queue_eventfd(RX_QUEUE).unwrap().write(1).unwrap();
    assert!(
        pump(&mut w, |w| w.stats().rx_frames == 5),
        "{:?}",
        w.stats()
    );
    for (i, f) in frames.iter().enumerate() {
        let (_, len) = g.rx.used(i as u16);
        let got = read_bytes(&mem, addrs[i], len as usize);
        assert_eq!(&got[VNET_HDR_LEN..], &f[..], "frame {i}");
    }
}

#[test]
fn rx_small_or_malformed_chains_fail_only_that_frame() {
    need_root!("rx_small_or_malformed_chains_fail_only_that_frame");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    w.attach(g.queues(irq));

    // A malformed chain (device-readable buffer), then one too small for
    // the frame, then a good one.
    let bad =
        g.rx.add(&[Buf(BUFS, 64, false), Buf(BUFS + 0x100, 2048, true)]);
    let outside = g.rx.add(&[Buf(MEM_SIZE - 16, 2048, true)]);
    let (small, _) = g.offer_rx(40);
    let (good, addr) = g.offer_rx(2048);

    let first = frame(&[1u8; 200]);
    sock.send(&first);
    assert!(
        pump(&mut w, |w| w.stats().rx_dropped == 1),
        "{:?}",
        w.stats()
    );
    // The two malformed chains went back unused and the frame went on to
    // the small buffer, where it did not fit.
    assert_eq!(g.rx.used_idx(), 3);
    assert_eq!(g.rx.used(0), (u32::from(bad), 0));
    assert_eq!(g.rx.used(1), (u32::from(outside), 0));
    assert_eq!(g.rx.used(2), (u32::from(small), 0));
    assert_eq!(w.stats().rx_bad_chains, 2);

    let second = frame(&[2u8; 200]);
    sock.send(&second);
    assert!(
        pump(&mut w, |w| w.stats().rx_frames == 1),
        "{:?}",
        w.stats()
    );
    assert_eq!(
        g.rx.used(3),
        (u32::from(good), (VNET_HDR_LEN + second.len()) as u32)
    );
    let got = read_bytes(&mem, addr, VNET_HDR_LEN + second.len());
    assert_eq!(&got[VNET_HDR_LEN..], &second[..]);
}

#[test]
fn rx_frame_split_over_descriptors() {
    need_root!("rx_frame_split_over_descriptors");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    w.attach(g.queues(irq));

    // Header alone, then the frame over three small buffers.
    g.rx.add(&[
        Buf(BUFS, 12, true),
        Buf(BUFS + 0x1000, 100, true),
        Buf(BUFS + 0x2000, 100, true),
        Buf(BUFS + 0x3000, 1500, true),
    ]);
    let sent = frame(&(0..=255u8).cycle().take(700).collect::<Vec<_>>());
    sock.send(&sent);
    assert!(pump(&mut w, |w| w.stats().rx_frames == 1));
    let mut got = read_bytes(&mem, BUFS, 12);
    got.extend(read_bytes(&mem, BUFS + 0x1000, 100));
    got.extend(read_bytes(&mem, BUFS + 0x2000, 100));
    got.extend(read_bytes(&mem, BUFS + 0x3000, sent.len() - 200));
    assert_eq!(&got[..VNET_HDR_LEN], &rx_header()[..]);
    assert_eq!(&got[VNET_HDR_LEN..], &sent[..]);
}

// ---------------------------------------------------------------- device

#[test]
fn device_runs_on_its_thread() {
    need_root!("device_runs_on_its_thread");
    let tap = TestTap::new("tap");
    let mac = MacAddress::parse("00-15-5D-12-34-56").unwrap();
    let mut net = Net::new(&NetConfig {
        tap: tap.name.clone(),
        mac,
    })
    .unwrap();
    assert_eq!(net.device_type(), crate::device_type::NET);
    assert_eq!(net.queue_max_sizes(), &[QUEUE_SIZE, QUEUE_SIZE]);
    assert_eq!(
        net.features(),
        VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS,
        "no offloads offered"
    );
    let mut cfg = [0u8; 8];
    net.read_config(0, &mut cfg);
    assert_eq!(cfg, [0x00, 0x15, 0x5d, 0x12, 0x34, 0x56, 1, 0]);
    let mut status = [0u8; 2];
    net.read_config(6, &mut status);
    assert_eq!(u16::from_le_bytes(status), VIRTIO_NET_S_LINK_UP);
    let mut beyond = [0xffu8; 4];
    net.read_config(u64::MAX, &mut beyond);
    assert_eq!(beyond, [0; 4]);

    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    let mut g = Guest::new(&mem);
    let fired = Arc::new(AtomicUsize::new(0));
    let f2 = fired.clone();
    let irq = Arc::new(Interrupt::new(move || {
        f2.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    let (h, addr) = g.offer_rx(2048);
    net.activate(DeviceQueues {
        mem: mem.clone(),
        queues: vec![g.rx.queue(), g.tx.queue()],
        interrupt: irq,
        acked_features: VIRTIO_NET_F_MAC | crate::device::VIRTIO_F_VERSION_1,
    })
    .unwrap();

    let out = frame(b"device tx");
    g.send(&out);
    net.queue_notify(TX_QUEUE as u16);
    assert_eq!(sock.recv(Duration::from_secs(3)).as_deref(), Some(&out[..]));

    let inbound = frame(b"device rx");
    sock.send(&inbound);
    let end = Instant::now() + Duration::from_secs(3);
    while g.rx.used_idx() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(g.rx.used_idx(), 1, "nothing received through the device");
    let (head, len) = g.rx.used(0);
    assert_eq!(head, u32::from(h));
    let got = read_bytes(&mem, addr, len as usize);
    assert_eq!(&got[VNET_HDR_LEN..], &inbound[..]);
    assert!(fired.load(Ordering::SeqCst) >= 2);

    // Reset stops the thread and keeps the tap; statistics come back.
    net.reset();
    let s = net.stats().expect("worker back after reset");
    assert_eq!((s.tx_frames, s.rx_frames), (1, 1), "{s:?}");
    // Out-of-range notifications are ignored.
    net.queue_notify(7);
    assert!(net.queue_eventfd(2).is_none());
}

#[test]
fn device_refuses_missing_queues() {
    need_root!("device_refuses_missing_queues");
    let tap = TestTap::new("tap");
    let mut net = Net::new(&NetConfig {
        tap: tap.name.clone(),
        mac: MacAddress(GUEST_MAC),
    })
    .unwrap();
    let mem = memory();
    let g = Guest::new(&mem);
    let (irq, _) = counting_interrupt();
    let e = net
        .activate(DeviceQueues {
            mem: mem.clone(),
            queues: vec![g.rx.queue()],
            interrupt: irq.clone(),
            acked_features: 0,
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            ActivateError::QueueCount {
                expected: 2,
                got: 1
            }
        ),
        "{e}"
    );
    let mut tx = g.tx.queue();
    tx.set_ready(false);
    let e = net
        .activate(DeviceQueues {
            mem: mem.clone(),
            queues: vec![g.rx.queue(), tx],
            interrupt: irq,
            acked_features: 0,
        })
        .unwrap_err();
    assert!(matches!(e, ActivateError::QueueNotReady(1)), "{e}");
}

// ------------------------------------------------------------------ fuzz

#[test]
fn hostile_chains_never_panic_and_always_come_back() {
    need_root!("hostile_chains_never_panic_and_always_come_back");
    let tap = TestTap::new("tap");
    let mut w = worker_on(&tap);
    let sock = PacketSocket::bind(&tap.name);
    let mem = memory();
    // Whatever the guest sends is read from memory filled with a 16-byte
    // pattern: with addresses and lengths multiples of 16, every chain
    // starts with a header without offloads, and every frame that gets
    // through has our EtherType (at chain offset 24), which the host stack
    // drops.
    const TX_AREA: (u64, u64) = (0x10_0000, 0x70_0000);
    const RX_AREA: (u64, u64) = (0x90_0000, 0x60_0000);
    let mut unit = [0u8; 16];
    unit[8..10].copy_from_slice(&ETHERTYPE.to_be_bytes());
    let pattern: Vec<u8> = unit
        .iter()
        .cycle()
        .take(TX_AREA.1 as usize + 0x1_0000)
        .copied()
        .collect();
    mem.write_slice(&pattern, GuestAddress(TX_AREA.0)).unwrap();
    let mut rng = crate::testing::Rng(0x9e37_79b9_7f4a_7c15);
    let chain = |rng: &mut crate::testing::Rng, area: (u64, u64), writable_in_8: u64| {
        let n = 1 + rng.below(6) as usize;
        (0..n)
            .map(|_| {
                let addr = match rng.below(5) {
                    0 => rng.next() & !15,
                    1 => MEM_SIZE - 16 * rng.below(64),
                    _ => area.0 + (rng.below(area.1) & !15),
                };
                let len = match rng.below(5) {
                    0 => rng.next() as u32 & !15,
                    1 => 0,
                    _ => rng.below(4000) as u32 & !15,
                };
                Buf(addr, len, rng.below(8) < writable_in_8)
            })
            .collect::<Vec<_>>()
    };
    let mut totals = NetStats::default();
    let mut tx_chains = 0u64;
    let mut frames_sent = 0u64;
    // virtio-queue's MockSplitQueue puts the used ring over the second half
    // of the available ring, so each batch stays below half a queue of
    // chains, on fresh rings.
    for batch in 0..4u8 {
        mem.write_slice(&[0u8; 0x8000], GuestAddress(0)).unwrap();
        let mut g = Guest::new(&mem);
        let (irq, _) = counting_interrupt();
        w.attach(g.queues(irq));
        let before = w.stats();
        let mut batch_chains = 0u16;
        for round in 0..15u8 {
            for _ in 0..8 {
                g.tx.add(&chain(&mut rng, TX_AREA, 1));
                batch_chains += 1;
            }
            w.process_tx();
            for _ in 0..4 {
                g.rx.add(&chain(&mut rng, RX_AREA, 7));
            }
            sock.send(&frame(&[batch, round]));
            frames_sent += 1;
            w.poll(Duration::from_millis(5)).unwrap();
        }
        assert_eq!(g.tx.used_idx(), batch_chains, "every TX chain came back");
        let s = w.stats();
        assert!(
            u64::from(g.rx.used_idx()) >= s.rx_frames - before.rx_frames,
            "{s:?}"
        );
        tx_chains += u64::from(batch_chains);
        w.detach();
        totals = w.stats();
    }
    let s = totals;
    assert_eq!(s.tx_frames + s.tx_dropped, tx_chains, "{s:?}");
    assert!(
        s.tx_frames > 0 && s.tx_dropped > 0,
        "the fuzz covers both: {s:?}"
    );
    assert!(
        s.rx_frames > 0 && s.rx_bad_chains > 0,
        "the fuzz covers both: {s:?}"
    );
    assert!(s.rx_frames + s.rx_dropped <= frames_sent, "{s:?}");
}
