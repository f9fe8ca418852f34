//! Copier threads between a process's pipes (or terminal) and its streams.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use nix::sys::socket::Shutdown;

use crate::process::Processes;
use crate::transport::Stream;

const BUF: usize = 32 * 1024;

/// The terminal's end-of-file character (VEOF, ^D), written when the host
/// closes the stdin stream of a terminal process.
const VEOF: u8 = 0x04;

/// Copies `from` to `to` until either ends; returns whether `from` ended.
fn pump(from: &mut impl Read, to: &mut impl Write) -> bool {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // EIO: a terminal whose every slave descriptor is closed.
            Err(_) => return true,
        };
        let Some(chunk) = buf.get(..n) else {
            return true;
        };
        if to.write_all(chunk).is_err() {
            return false;
        }
    }
}

/// Copies a process's output to its stream, then half-closes the stream.
pub fn spawn_output(procs: Arc<Processes>, pid: u32, name: &str, mut from: File, mut to: Stream) {
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-{pid}"))
        .spawn({
            let procs = Arc::clone(&procs);
            move || {
                pump(&mut from, &mut to);
                to.shutdown(Shutdown::Write);
                procs.output_closed(pid);
            }
        });
    if let Err(e) = spawned {
        crate::log!("cannot start the {name} copier of {pid}: {e}");
        procs.output_closed(pid);
    }
}

/// Copies the stdin stream into the process; when the host closes it, the
/// pipe is closed (or, on a terminal, VEOF is written).
pub fn spawn_input(pid: u32, mut to: File, mut from: Stream, terminal: bool) {
    let spawned = std::thread::Builder::new()
        .name(format!("stdin-{pid}"))
        .spawn(move || {
            if pump(&mut from, &mut to) && terminal {
                let _ = to.write_all(&[VEOF]);
            }
        });
    if let Err(e) = spawned {
        crate::log!("cannot start the stdin copier of {pid}: {e}");
    }
}
