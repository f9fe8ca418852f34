//! `hcs-agent vsock-echo listen|connect PORT COUNT`: a test aid, run as a
//! process in the guest (the guest image has no other vsock tool: busybox
//! has none). It echoes every byte of COUNT vsock stream connections back
//! on the same connection until the peer's end of stream, then ends its own,
//! all connections at once, one thread each.
//!
//! - `listen`: binds guest port PORT (any CID), prints `listening` on stdout
//!   once the host may connect, and accepts COUNT connections.
//! - `connect`: makes COUNT connections to host port PORT (CID 2).
//!
//! At the end it prints `echoed <bytes> bytes on <count> connections` and
//! exits 0, or names the first connection that failed and exits 1.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};

use crate::error::{AgentError, Result};
use crate::transport::{vsock_connect, Stream};

/// Who opens the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The host connects to a guest listener.
    Listen,
    /// The guest connects to a host listener.
    Connect,
}

/// Parses `listen|connect PORT COUNT` (the words after `vsock-echo`).
pub fn parse(args: &[String]) -> Result<(Side, u32, u32)> {
    let usage =
        || AgentError::Usage("usage: hcs-agent vsock-echo listen|connect PORT COUNT".into());
    let [side, port, count] = args else {
        return Err(usage());
    };
    let side = match side.as_str() {
        "listen" => Side::Listen,
        "connect" => Side::Connect,
        _ => return Err(usage()),
    };
    let port = port.parse().map_err(|_| usage())?;
    let count = count.parse().ok().filter(|c| *c > 0).ok_or_else(usage)?;
    Ok((side, port, count))
}

/// Echo one connection to its end; the number of bytes.
fn echo(mut s: Stream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        s.write_all(&buf[..n])?;
        total += n as u64;
    }
    s.shutdown(socket::Shutdown::Write);
    Ok(total)
}

/// Runs the echo; what it prints at the end.
pub fn run(side: Side, port: u32, count: u32) -> Result<String> {
    let mut streams = Vec::new();
    match side {
        Side::Listen => {
            let fd = socket::socket(
                AddressFamily::Vsock,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| AgentError::sys("socket(AF_VSOCK)", e))?;
            socket::bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))
                .map_err(|e| AgentError::sys(format!("binding vsock port {port}"), e))?;
            let backlog = Backlog::new(i32::try_from(count).unwrap_or(i32::MAX).min(4096))
                .map_err(|e| AgentError::sys("listen backlog", e))?;
            socket::listen(&fd, backlog).map_err(|e| AgentError::sys("listen", e))?;
            println!("listening");
            std::io::stdout()
                .flush()
                .map_err(|e| AgentError::io("writing stdout", e))?;
            for _ in 0..count {
                // A connection the peer reset before it was accepted ends
                // here: it counts as one of COUNT, and the others go on.
                let c = match socket::accept(fd.as_raw_fd()) {
                    Ok(c) => c,
                    Err(e @ (nix::errno::Errno::ECONNRESET | nix::errno::Errno::ECONNABORTED)) => {
                        eprintln!(
                            "vsock-echo: a connection to port {port} ended before accept: {e}"
                        );
                        continue;
                    }
                    Err(e) => {
                        return Err(AgentError::sys(
                            format!("accepting on vsock port {port}"),
                            e,
                        ))
                    }
                };
                // SAFETY: accept returned a new descriptor that nothing else owns.
                let owned =
                    unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(c) };
                streams.push(Stream::from_fd(owned));
            }
        }
        Side::Connect => {
            for _ in 0..count {
                let s = vsock_connect(hcs_agent_protocol::HOST_CID, port)
                    .map_err(|e| AgentError::io(format!("connecting to host port {port}"), e))?;
                streams.push(s);
            }
        }
    }
    let threads: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || echo(s)))
        .collect();
    // Every connection runs to its end before the first error is reported:
    // exiting early would close (reset) the connections still echoing.
    let mut total = 0u64;
    let mut first_error = None;
    for (i, t) in threads.into_iter().enumerate() {
        let e = match t.join() {
            Ok(Ok(n)) => {
                total += n;
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::other("its thread panicked"),
        };
        eprintln!("vsock-echo: connection {i}: {e}");
        first_error.get_or_insert(AgentError::io(format!("connection {i}"), e));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(format!("echoed {total} bytes on {count} connections")),
    }
}
