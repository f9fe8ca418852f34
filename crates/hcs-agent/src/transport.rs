//! Connections to the host: the control connection and the stdio streams,
//! over a unix socket directory (host tests) or AF_VSOCK (a guest).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, VsockAddr};

use crate::error::{AgentError, Result};

/// A connected stream socket (unix or vsock), reference-counted by `dup`.
#[derive(Debug)]
pub struct Stream(File);

impl Stream {
    /// Wraps a connected socket.
    pub fn from_fd(fd: OwnedFd) -> Stream {
        Stream(File::from(fd))
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream(self.0.try_clone()?))
    }

    /// `shutdown(2)`; errors (a socket already closed by the peer) are ignored.
    pub fn shutdown(&self, how: socket::Shutdown) {
        let _ = socket::shutdown(self.0.as_raw_fd(), how);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Where the host is.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Unix sockets in a directory: the agent listens on `<dir>/agent.sock`
    /// and connects stream port N to `<dir>/port_<N>` (Firecracker's hybrid
    /// vsock names guest-initiated connections `<uds>_<N>` the same way).
    Unix(PathBuf),
    /// AF_VSOCK to `cid`; the control connection goes to `control_port`.
    Vsock {
        /// The host's CID (2).
        cid: u32,
        /// The host's control port.
        control_port: u32,
    },
}

/// Name of the control socket in unix mode.
pub const CONTROL_SOCKET: &str = "agent.sock";

/// Path of stream port `port` in unix mode.
pub fn unix_port_path(dir: &Path, port: u32) -> PathBuf {
    dir.join(format!("port_{port}"))
}

impl Transport {
    /// Connects a stdio stream to `port`.
    pub fn connect_port(&self, port: u32) -> io::Result<Stream> {
        match self {
            Transport::Unix(dir) => {
                let s = UnixStream::connect(unix_port_path(dir, port))?;
                Ok(Stream::from_fd(OwnedFd::from(s)))
            }
            Transport::Vsock { cid, .. } => vsock_connect(*cid, port),
        }
    }
}

/// One AF_VSOCK stream connection.
pub fn vsock_connect(cid: u32, port: u32) -> io::Result<Stream> {
    let fd = socket::socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::connect(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
    Ok(Stream::from_fd(fd))
}

/// Connects the control connection over vsock, retrying with backoff
/// (10 ms doubling to 1 s) until the host listens.
pub fn vsock_connect_retry(cid: u32, port: u32) -> Stream {
    let mut delay = Duration::from_millis(10);
    let mut attempts = 0u64;
    let mut next_log = 1u64;
    loop {
        match vsock_connect(cid, port) {
            Ok(s) => return s,
            Err(e) => {
                attempts += 1;
                if attempts == next_log {
                    next_log += 60;
                    crate::log!(
                        "connecting to vsock {cid}:{port} (attempt {attempts}): {e}; retrying"
                    );
                }
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Binds `<dir>/agent.sock`, replacing a stale socket file.
pub fn unix_listen(dir: &Path) -> Result<UnixListener> {
    let path = dir.join(CONTROL_SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io(format!("removing {}", path.display()), e)),
    }
    UnixListener::bind(&path).map_err(|e| AgentError::io(format!("binding {}", path.display()), e))
}
