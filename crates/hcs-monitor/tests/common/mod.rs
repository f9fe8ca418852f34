//! Shared by the agent tests: the real agent (`hcs-agent --unix <dir>`)
//! as a child, and an eventfd the client wakes.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hcs_monitor::agent::Wake;
use hcs_schema::ProcessParameters;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// `hcs-agent`, built by `cargo build --workspace` next to this test's directory.
pub fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("hcs-agent");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// An `hcs-agent --unix <dir>` child, killed (by its pid) and reaped on drop.
pub struct Agent {
    pub child: Child,
    pub dir: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path) -> Agent {
        let _ = std::fs::remove_file(dir.join("agent.sock"));
        let child = Command::new(agent_bin())
            .arg("--unix")
            .arg(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// A connection to the agent's control socket, once it listens.
    pub fn stream(&self) -> UnixStream {
        let sock = self.dir.join("agent.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(&sock) {
                Ok(s) => return s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("the agent does not listen on {}: {e}", sock.display()),
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Child::kill signals exactly the pid we started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An eventfd for the client's wake-ups.
#[derive(Clone)]
pub struct Waker(Arc<EventFd>);

impl Waker {
    pub fn new() -> Waker {
        Waker(Arc::new(
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap(),
        ))
    }

    pub fn wake(&self) -> Wake {
        let fd = self.0.clone();
        Arc::new(move || {
            let _ = fd.write(1);
        })
    }

    /// Blocks until woken (or 1 s passes).
    pub fn wait(&self) {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, PollTimeout::from(1000u16)).unwrap_or(0) > 0 {
            let _ = self.0.read();
        }
    }
}

pub fn params(json: serde_json::Value) -> ProcessParameters {
    hcs_schema::from_json(&json.to_string(), "ProcessParameters").unwrap()
}

pub fn read_all(fd: Option<OwnedFd>) -> String {
    let mut s = String::new();
    std::fs::File::from(fd.expect("a stdio stream"))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Blocks until `fd` (an eventfd owned elsewhere) is readable, or 1 s passes.
pub fn wait_readable(fd: std::os::fd::RawFd) {
    // SAFETY: callers pass an eventfd that stays open during the call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(borrowed, PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, PollTimeout::from(1000u16));
}
