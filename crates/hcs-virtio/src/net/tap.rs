//! An existing tap device, attached through `/dev/net/tun`.
//!
//! The device never creates taps: whoever sets up the VM's network (an
//! administrator, a CNI plugin, HNS's Linux counterpart) creates a
//! persistent tap (`ip tuntap add dev NAME mode tap`) and names it in the
//! document. [`Tap::open`] attaches to it with `TUNSETIFF`
//! (`IFF_TAP | IFF_NO_PI`, no vnet header: the device adds and strips the
//! virtio-net header itself) and refuses clearly when it does not exist,
//! is not a tap, or is in use by another process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::Path;

/// The tun/tap control device.
const TUN_PATH: &str = "/dev/net/tun";
/// Where the kernel lists network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Why a tap could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// Not a possible interface name.
    #[error(
        "tap device name {0:?} is invalid (1 to 15 bytes, no '/', ':' or whitespace, not . or ..)"
    )]
    InvalidName(String),
    /// No interface has that name.
    #[error("tap device {0:?} does not exist; create it first (ip tuntap add dev {0} mode tap)")]
    NotFound(String),
    /// The interface exists but is not a tap (a tun device, or another
    /// kind of interface).
    #[error("network interface {name:?} is not a tap device: {why}")]
    NotATap {
        /// The interface.
        name: String,
        /// What it is instead.
        why: String,
    },
    /// Another process has the tap open.
    #[error("tap device {0:?} is busy (another process, perhaps another VM, has it open)")]
    Busy(String),
    /// Not allowed to attach it (owner/group of the tap, or no
    /// CAP_NET_ADMIN).
    #[error("not permitted to attach tap device {name:?}: {source}")]
    Permission {
        /// The interface.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// `/dev/net/tun` could not be opened.
    #[error("opening {TUN_PATH}: {0}")]
    OpenTun(#[source] io::Error),
    /// Another failure while attaching.
    #[error("attaching tap device {name:?}: {source}")]
    Attach {
        /// The interface.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// An attached tap: non-blocking reads and writes of whole Ethernet frames
/// (no packet information, no vnet header).
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

/// Whether `name` is a name Linux accepts for an interface
/// (`dev_valid_name`).
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// The `IFF_*` flags of tun/tap interface `name` from sysfs, or why it is
/// not one.
fn tun_flags(name: &str) -> Result<u32, TapError> {
    let dir = Path::new(SYS_CLASS_NET).join(name);
    if !dir.exists() {
        return Err(TapError::NotFound(name.to_string()));
    }
    let not_a_tap = |why: &str| TapError::NotATap {
        name: name.to_string(),
        why: why.to_string(),
    };
    let text = std::fs::read_to_string(dir.join("tun_flags"))
        .map_err(|_| not_a_tap("it is not a tun/tap interface"))?;
    let text = text.trim();
    let hex = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(hex, 16).map_err(|_| not_a_tap("its tun_flags are unreadable"))
}

impl Tap {
    /// Attach the existing tap `name`.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if !valid_interface_name(name) {
            return Err(TapError::InvalidName(name.to_string()));
        }
        let flags = tun_flags(name)?;
        let owned = || name.to_string();
        if flags & libc::IFF_TAP as u32 == 0 {
            return Err(TapError::NotATap {
                name: owned(),
                why: "it is a tun (layer 3) device; create it with mode tap".into(),
            });
        }
        if flags & libc::IFF_MULTI_QUEUE as u32 != 0 {
            return Err(TapError::NotATap {
                name: owned(),
                why: "multi-queue taps are not supported; create it without multi_queue".into(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(TapError::OpenTun)?;
        let mut ifr = ifreq(name);
        // Only IFF_TAP | IFF_NO_PI fit in a c_short alongside the name.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `ifr` is one,
        // valid and exclusively borrowed for the call, and the fd is ours.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EBUSY) => TapError::Busy(owned()),
                Some(libc::EPERM) | Some(libc::EACCES) => TapError::Permission {
                    name: owned(),
                    source: e,
                },
                Some(libc::EINVAL) => TapError::NotATap {
                    name: owned(),
                    why: format!("the kernel refused to attach it as a tap ({e})"),
                },
                _ => TapError::Attach {
                    name: owned(),
                    source: e,
                },
            });
        }
        // TUNSETIFF creates a (non-persistent) tap when none has the name:
        // if the tap vanished since we looked, we just made one. Dropping
        // the file deletes it again.
        let mut got = ifreq(name);
        // SAFETY: TUNGETIFF writes a `struct ifreq`; `got` is one, valid and
        // exclusively borrowed for the call, and the fd is ours.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNGETIFF, &mut got) };
        if rc < 0 {
            return Err(TapError::Attach {
                name: owned(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: TUNGETIFF filled in the flags member of the union.
        let got_flags = unsafe { got.ifr_ifru.ifru_flags } as u16 as u32;
        if got_flags & libc::IFF_PERSIST as u32 == 0 {
            return Err(TapError::NotFound(owned()));
        }
        Ok(Tap {
            file,
            name: owned(),
        })
    }

    /// A tap already attached by someone else (a management layer that
    /// passes the descriptor, as libvirt does), named `name` in logs. `fd`
    /// must read and write whole Ethernet frames without packet
    /// information; it is made non-blocking here. The fuzzers use a
    /// datagram socket pair, which behaves the same.
    pub fn from_fd(fd: std::os::fd::OwnedFd, name: &str) -> io::Result<Tap> {
        let file = File::from(fd);
        // SAFETY: F_GETFL has no argument and only reads the fd's flags.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: F_SETFL takes an int of flags; the fd is ours and open.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read one frame into `buf` (truncated to its length). `Ok(None)`
    /// when no frame is waiting.
    pub fn read_frame(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for
            // the duration of the call; the fd is ours and open.
            let n =
                unsafe { libc::read(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Write one frame. Taps do not block writers: a frame the kernel
    /// cannot queue is dropped (an error here).
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is valid for reads of `frame.len()` bytes for
            // the duration of the call; the fd is ours and open.
            let n =
                unsafe { libc::write(self.file.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
            if n >= 0 {
                if n as usize != frame.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write to the tap ({n} of {} bytes)", frame.len()),
                    ));
                }
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// A zeroed `struct ifreq` naming `name` (which is valid, hence short).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain data (bytes, integers and a union of them
    // and a pointer); all zeros is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn from_fd_moves_whole_frames_without_blocking() {
        let (dev, host) = UnixDatagram::pair().unwrap();
        let tap = Tap::from_fd(std::os::fd::OwnedFd::from(dev), "passed0").unwrap();
        assert_eq!(tap.name(), "passed0");
        let mut buf = [0u8; 64];
        // Non-blocking: nothing waiting is None, not a hang.
        assert_eq!(tap.read_frame(&mut buf).unwrap(), None);
        host.send(b"frame-from-host").unwrap();
        assert_eq!(tap.read_frame(&mut buf).unwrap(), Some(15));
        assert_eq!(&buf[..15], b"frame-from-host");
        tap.write_frame(b"frame-to-host").unwrap();
        let n = host.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"frame-to-host");
    }
}
