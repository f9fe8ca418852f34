//! Bounded waits: every wait of a benchmark ends, with a message that says
//! what did not happen. A VMM that never prints its guest's marker or never
//! exits (Firecracker has no ACPI, so a guest's ACPI power-off leaves it
//! running) fails the run instead of hanging it.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How long any one step of a benchmark may take (spawn to marker, pause,
/// save, exit): `$HCS_BENCH_TIMEOUT` seconds, 120 if unset. A step takes
/// milliseconds on hardware and seconds under emulation, never minutes.
pub fn step() -> Duration {
    let secs = std::env::var("HCS_BENCH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// [`step`] in milliseconds, for the HCS calls' timeouts.
pub fn step_ms() -> u32 {
    u32::try_from(step().as_millis()).unwrap_or(u32::MAX)
}

/// A reader whose reads give up at a deadline (`ErrorKind::TimedOut`).
pub struct Timed<R> {
    inner: R,
    deadline: Option<Instant>,
}

impl<R: Read + AsFd> Timed<R> {
    /// A line reader over `inner` with no deadline yet ([`wait_line`] sets one).
    pub fn lines(inner: R) -> BufReader<Timed<R>> {
        BufReader::new(Timed {
            inner,
            deadline: None,
        })
    }
}

impl<R: Read + AsFd> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.inner.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(ms)).map_err(io::Error::from)?;
            if ready == 0 {
                if Instant::now() >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                // poll's timeout is at most u16::MAX ms: wait again.
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        self.inner.read(buf)
    }
}

/// Read lines until one contains `marker`, for at most `timeout`.
pub fn wait_line<R: Read + AsFd>(
    r: &mut BufReader<Timed<R>>,
    marker: &str,
    timeout: Duration,
) -> Result<(), String> {
    r.get_mut().deadline = Some(Instant::now() + timeout);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("the output ended before {marker:?}")),
            Ok(_) if line.contains(marker) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(format!(
                    "no {marker:?} in the guest's output within {timeout:?}"
                ))
            }
            Err(e) => return Err(format!("reading the guest's output: {e}")),
        }
    }
}

/// Wait for `child` to exit, for at most `timeout` (a pidfd, polled).
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> Result<ExitStatus, String> {
    let pid = nix::libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; no memory is passed.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(format!("pidfd_open({pid}): {}", io::Error::last_os_error()));
    }
    let raw = i32::try_from(fd).map_err(|e| e.to_string())?;
    // SAFETY: the kernel just returned `raw` as a new descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if Instant::now() >= deadline => {
                return Err(format!(
                    "{what} (pid {pid}) did not exit within {timeout:?}"
                ))
            }
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => return child.wait().map_err(|e| e.to_string()),
            Err(e) => {
                return Err(format!(
                    "polling the pidfd of {pid} ({}): {e}",
                    pidfd.as_raw_fd()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::process::Command;

    #[test]
    fn a_marker_that_never_comes_times_out() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"something else\n").unwrap();
        let mut r = Timed::lines(b);
        let e = wait_line(&mut r, "READY", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("within"), "{e}");
        a.write_all(b"now READY\n").unwrap();
        wait_line(&mut r, "READY", Duration::from_secs(10)).unwrap();
        drop(a);
        let e = wait_line(&mut r, "READY", Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("ended"), "{e}");
    }

    #[test]
    fn a_child_that_does_not_exit_times_out_and_one_that_does_is_reaped() {
        let mut c = Command::new("sleep").arg("100").spawn().unwrap();
        let e = wait_child(&mut c, Duration::from_millis(200), "sleep").unwrap_err();
        assert!(e.contains("did not exit"), "{e}");
        c.kill().unwrap();
        let st = wait_child(&mut c, Duration::from_secs(10), "sleep").unwrap();
        assert!(!st.success());
        let mut c = Command::new("true").spawn().unwrap();
        assert!(wait_child(&mut c, Duration::from_secs(10), "true")
            .unwrap()
            .success());
    }
}
