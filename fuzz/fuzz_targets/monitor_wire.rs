//! The monitor's wire protocol: packets (flags byte, payload, descriptors)
//! over a `SOCK_SEQPACKET` socket pair, reassembled by the same
//! `Receiver` the monitor and the clients use, and each message decoded as
//! the monitor decodes requests (`RequestFrame`) and the client library
//! decodes what monitors send (`Reply`).
//!
//! Input: a run of packets, each `[fds: u8][len: u16 LE][len bytes]`: the
//! low 4 bits of `fds` is how many descriptors (an eventfd's duplicates) go
//! with the packet, so continuation descriptors and too many descriptors
//! are reachable; `len` may exceed the protocol's packet size. The packets
//! are sent non-blocking (what does not fit is dropped), the sender is
//! closed, and the receiver reads to the end. No descriptor may be left
//! open afterwards.
#![no_main]

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use hcs_protocol::wire::{send_packet, socketpair, Packet, Receiver, RecvOutcome};
use hcs_protocol::{Reply, RequestFrame};
use libfuzzer_sys::fuzz_target;

fn nonblocking(fd: &OwnedFd) {
    // SAFETY: F_GETFL has no argument and only reads the fd's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL");
    // SAFETY: F_SETFL takes an int of flags; the fd is ours and open.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    assert!(rc >= 0, "F_SETFL");
}

fn eventfd() -> OwnedFd {
    // SAFETY: eventfd has no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fuzz_target!(|data: &[u8]| {
    let fds = hcs_fuzz::FdGuard::new();
    run(data);
    fds.check();
});

fn run(data: &[u8]) {
    let (tx, rx) = socketpair().expect("socketpair");
    nonblocking(&tx);
    nonblocking(&rx);
    let evt = eventfd();
    let mut rest = data;
    while rest.len() >= 3 {
        let nfds = usize::from(rest[0] & 0x0f);
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        let take = len.min(rest.len() - 3);
        let bytes = rest[3..3 + take].to_vec();
        rest = &rest[3 + take..];
        let fds = (0..nfds)
            .map(|_| evt.try_clone().expect("dup"))
            .collect();
        if send_packet(tx.as_fd(), &Packet { bytes, fds }).is_err() {
            break;
        }
    }
    drop(tx);
    let mut receiver = Receiver::new();
    // Every packet sent is received once; a bound keeps a reassembly bug
    // from spinning forever.
    for _ in 0..=data.len() {
        match receiver.recv(rx.as_fd()) {
            Ok(RecvOutcome::Message(bytes, _fds)) => {
                let _ = serde_json::from_slice::<RequestFrame>(&bytes);
                let _ = serde_json::from_slice::<Reply>(&bytes);
            }
            Ok(RecvOutcome::WouldBlock) | Ok(RecvOutcome::Closed) | Err(_) => return,
        }
    }
    panic!("the receiver returned more messages than packets were sent");
}
