//! Framing over `SOCK_SEQPACKET`, with file descriptors passed by `SCM_RIGHTS`.
//!
//! A message is one or more packets. Each packet starts with a flags byte;
//! [`FLAG_MORE`] says the message continues in the next packet. File
//! descriptors ride on the first packet only. Packets are at most
//! [`MAX_PACKET`] bytes so that a message never depends on the size of the
//! socket buffer, and a whole message is capped at [`MAX_MESSAGE`] so a
//! confused or hostile peer cannot make us allocate without bound.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

/// Flag: another packet of the same message follows.
pub const FLAG_MORE: u8 = 0x01;
/// Largest packet, header included.
pub const MAX_PACKET: usize = 32 * 1024;
/// Largest message after reassembly.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Most file descriptors one message may carry.
pub const MAX_FDS: usize = 8;
/// Most descriptors Linux passes in one `sendmsg` (`SCM_MAX_FD`). The
/// receive buffer has room for all of them: a peer that sends more than
/// [`MAX_FDS`] must not truncate the control data, because the kernel has
/// already installed the descriptors that fit and a truncated control
/// message cannot be walked to close them (they would leak).
const SCM_MAX_FD: usize = 253;

/// One packet ready to be sent.
#[derive(Debug)]
pub struct Packet {
    /// Flags byte followed by the payload chunk.
    pub bytes: Vec<u8>,
    /// Descriptors to attach (first packet of a message only).
    pub fds: Vec<OwnedFd>,
}

/// Split a message into packets. The descriptors are moved into the first one.
pub fn encode(payload: &[u8], fds: Vec<OwnedFd>) -> Vec<Packet> {
    let chunk = MAX_PACKET - 1;
    let mut packets = Vec::with_capacity(payload.len() / chunk + 1);
    let mut fds = Some(fds);
    let mut rest = payload;
    loop {
        let take = rest.len().min(chunk);
        let (now, later) = rest.split_at(take);
        let mut bytes = Vec::with_capacity(take + 1);
        bytes.push(if later.is_empty() { 0 } else { FLAG_MORE });
        bytes.extend_from_slice(now);
        packets.push(Packet {
            bytes,
            fds: fds.take().unwrap_or_default(),
        });
        rest = later;
        if rest.is_empty() {
            return packets;
        }
    }
}

/// Send one packet. `WouldBlock` means nothing was sent.
pub fn send_packet(sock: BorrowedFd<'_>, packet: &Packet) -> io::Result<()> {
    let raw: Vec<RawFd> = packet.fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    let iov = [IoSlice::new(&packet.bytes)];
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// What a receive attempt produced.
#[derive(Debug)]
pub enum RecvOutcome {
    /// A whole message and the descriptors that came with it.
    Message(Vec<u8>, Vec<OwnedFd>),
    /// The socket has nothing more for now (non-blocking sockets only).
    WouldBlock,
    /// The peer closed the connection.
    Closed,
}

/// Reassembles packets into messages; keep one per connection.
#[derive(Default)]
pub struct Receiver {
    partial: Vec<u8>,
    partial_fds: Vec<OwnedFd>,
    buf: Vec<u8>,
}

impl Receiver {
    /// A receiver with no partial message.
    pub fn new() -> Receiver {
        Receiver {
            partial: Vec::new(),
            partial_fds: Vec::new(),
            buf: vec![0; MAX_PACKET + 1],
        }
    }

    /// Receive until a whole message is in, the socket would block, or it closes.
    pub fn recv(&mut self, sock: BorrowedFd<'_>) -> io::Result<RecvOutcome> {
        if self.buf.len() < MAX_PACKET + 1 {
            self.buf.resize(MAX_PACKET + 1, 0);
        }
        loop {
            let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
            let (len, flags, fds) = {
                let mut iov = [IoSliceMut::new(&mut self.buf)];
                let msg = match recvmsg::<UnixAddr>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(m) => m,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => return Ok(RecvOutcome::WouldBlock),
                    Err(nix::errno::Errno::ECONNRESET) => return Ok(RecvOutcome::Closed),
                    Err(e) => return Err(io::Error::from(e)),
                };
                let mut fds = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            for fd in raw {
                                // SAFETY: the kernel just installed this descriptor
                                // in our table for us; nothing else owns it.
                                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                }
                (msg.bytes, msg.flags, fds)
            };
            if flags.contains(MsgFlags::MSG_TRUNC) || flags.contains(MsgFlags::MSG_CTRUNC) {
                return Err(protocol_error("packet or its descriptors were truncated"));
            }
            if len == 0 {
                // A zero-length read on seqpacket is end of stream.
                return Ok(RecvOutcome::Closed);
            }
            let more = self.buf[0] & FLAG_MORE != 0;
            if self.partial.len() + len - 1 > MAX_MESSAGE {
                return Err(protocol_error("message larger than the protocol allows"));
            }
            if !fds.is_empty() && !self.partial.is_empty() {
                return Err(protocol_error("descriptors on a continuation packet"));
            }
            if self.partial_fds.len() + fds.len() > MAX_FDS {
                return Err(protocol_error("too many descriptors in one message"));
            }
            self.partial.extend_from_slice(&self.buf[1..len]);
            self.partial_fds.extend(fds);
            if !more {
                let payload = std::mem::take(&mut self.partial);
                let fds = std::mem::take(&mut self.partial_fds);
                return Ok(RecvOutcome::Message(payload, fds));
            }
        }
    }
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("hcs protocol: {what}"))
}

/// A blocking, typed view of a seqpacket socket, used by clients.
pub struct Channel {
    sock: OwnedFd,
    receiver: Receiver,
}

impl Channel {
    /// Wrap a connected seqpacket socket.
    pub fn new(sock: OwnedFd) -> Channel {
        Channel {
            sock,
            receiver: Receiver::new(),
        }
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.sock.as_fd()
    }

    /// Serialise and send a message with descriptors, blocking until sent.
    pub fn send<T: serde::Serialize>(&self, msg: &T, fds: Vec<OwnedFd>) -> io::Result<()> {
        send_blocking(self.fd(), msg, fds)
    }

    /// Receive one message, blocking. `Ok(None)` when the peer closed.
    pub fn recv<T: serde::de::DeserializeOwned>(
        &mut self,
    ) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        use std::os::fd::AsFd;
        loop {
            match self.receiver.recv(self.sock.as_fd())? {
                RecvOutcome::Message(bytes, fds) => {
                    let msg = serde_json::from_slice(&bytes).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("hcs protocol: {e}"))
                    })?;
                    return Ok(Some((msg, fds)));
                }
                RecvOutcome::Closed => return Ok(None),
                RecvOutcome::WouldBlock => {
                    // The socket is blocking; only a signal can get us here.
                    continue;
                }
            }
        }
    }

    /// Give back the socket.
    pub fn into_fd(self) -> OwnedFd {
        self.sock
    }
}

/// Serialise `msg` and send all its packets on a blocking socket.
pub fn send_blocking<T: serde::Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: Vec<OwnedFd>,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    for p in encode(&bytes, fds) {
        send_packet(sock, &p)?;
    }
    Ok(())
}

/// A connected pair of close-on-exec seqpacket sockets.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// Connect to a monitor's control socket.
pub fn connect(path: &std::path::Path) -> io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    connect(sock.as_raw_fd(), &addr).map_err(io::Error::from)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn small_and_large_messages_with_fds_round_trip() {
        let (a, b) = socketpair().unwrap();
        let mut rx = Channel::new(b);
        let (r, w) = nix::unistd::pipe().unwrap();
        let big: String = "x".repeat(MAX_PACKET * 3 + 17);
        send_blocking(a.as_fd(), &serde_json::json!({"small": 1}), vec![w]).unwrap();
        let sender = std::thread::spawn({
            let big = big.clone();
            move || {
                send_blocking(a.as_fd(), &serde_json::json!({ "big": big }), vec![]).unwrap();
                a
            }
        });
        let (m, fds): (serde_json::Value, _) = rx.recv().unwrap().unwrap();
        assert_eq!(m["small"], 1);
        assert_eq!(fds.len(), 1);
        // The passed descriptor is the pipe's write end: writing to it reaches `r`.
        nix::unistd::write(&fds[0], b"hi").unwrap();
        let mut buf = [0u8; 2];
        nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        let (m, fds): (serde_json::Value, _) = rx.recv().unwrap().unwrap();
        assert_eq!(m["big"].as_str().unwrap().len(), big.len());
        assert!(fds.is_empty());
        drop(sender.join().unwrap());
        assert!(rx.recv::<serde_json::Value>().unwrap().is_none());
    }

    /// How many of this process's descriptors are `target` (a pipe's
    /// `pipe:[inode]`, unique to the test: both of its ends).
    fn open_descriptors_of(target: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l == target)
            .count()
    }

    #[test]
    fn too_many_descriptors_are_refused_and_closed() {
        // Found by the monitor_wire fuzzer: a packet with more than MAX_FDS
        // descriptors truncated the control data, and the descriptors the
        // kernel had installed were never closed. A client could exhaust
        // the monitor's descriptor table one packet at a time.
        let (a, b) = socketpair().unwrap();
        let mut rx = Receiver::new();
        let (_r, w) = nix::unistd::pipe().unwrap();
        let target = std::fs::read_link(format!("/proc/self/fd/{}", w.as_raw_fd())).unwrap();
        let before = open_descriptors_of(&target);
        let fds: Vec<OwnedFd> = (0..MAX_FDS + 4).map(|_| w.try_clone().unwrap()).collect();
        send_packet(
            a.as_fd(),
            &Packet {
                bytes: b"\0{}".to_vec(),
                fds,
            },
        )
        .unwrap();
        let err = rx.recv(b.as_fd()).unwrap_err();
        assert!(err.to_string().contains("too many descriptors"), "{err}");
        assert_eq!(open_descriptors_of(&target), before, "descriptors leaked");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (a, b) = socketpair().unwrap();
        let mut rx = Channel::new(b);
        send_packet(
            a.as_fd(),
            &Packet {
                bytes: b"\0not json".to_vec(),
                fds: vec![],
            },
        )
        .unwrap();
        rx.recv::<serde_json::Value>().unwrap_err();
        // Descriptors on a continuation packet are refused.
        let (_r, w) = nix::unistd::pipe().unwrap();
        send_packet(
            a.as_fd(),
            &Packet {
                bytes: vec![FLAG_MORE, b'1'],
                fds: vec![],
            },
        )
        .unwrap();
        send_packet(
            a.as_fd(),
            &Packet {
                bytes: vec![0, b'2'],
                fds: vec![w],
            },
        )
        .unwrap();
        rx.recv::<serde_json::Value>().unwrap_err();
    }
}
