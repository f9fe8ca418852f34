//! The holder: the host process that stands for a container's process, as
//! `runc init` does for runc.
//!
//! OCI engines expect `create` to leave behind a process whose pid they get
//! from `--pid-file`, which holds the stdio `create` was given, whose exit
//! is the container process's exit, and which is a descendant of `create`
//! (containerd's shim is a child subreaper and learns of the exit by reaping
//! it). The container's process itself is a child of its HCS monitor, so
//! `create` starts this small process instead: it waits for `start` on
//! `<root>/<id>/exec.fifo` (like runc), creates the OCI process with
//! HcsCreateProcess, relays stdio between its own descriptors and the
//! process's pipes (or a pty it was given for `--console-socket`), forwards
//! signals and terminal size changes, and exits with the process's exit code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use hcs::{Operation, System, GENERIC_ALL, INFINITE};
use nix::sys::signal::{SigSet, Signal};
use serde_json::{json, Value};

use crate::error::{Context, Result, RunhcsError};
use crate::state::{self, Record, NAMESPACE};

/// The descriptor the holder gets the console's pty peer on.
const CONSOLE_FD: RawFd = 3;

/// The fifo `start` opens to release the holder of the container's process.
pub const INIT_FIFO: &str = "exec.fifo";

/// A fifo in the container's state directory.
fn fifo_path(root: &Path, id: &str, name: &str) -> std::path::PathBuf {
    state::dir(root, id).join(name)
}

/// Start a holder for `id` with our stdio (and `console`, the pty peer whose
/// master went to `--console-socket`, as its descriptor 3), released through
/// the fifo `fifo` of the state directory. `exec` is the ProcessParameters of
/// an exec; without it the holder creates the container's own process.
/// Returns its pid.
pub fn spawn(
    root: &Path,
    id: &str,
    fifo: &str,
    exec: Option<&Value>,
    console: Option<OwnedFd>,
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let fifo_file = fifo_path(root, id, fifo);
    nix::unistd::mkfifo(&fifo_file, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)
        .context(|| format!("creating {}", fifo_file.display()))?;
    // Our own image, even if the file was replaced or removed since we
    // started (as runc re-executes itself).
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(root)
        .arg("__hold")
        .arg(id)
        .arg("--fifo")
        .arg(fifo);
    if let Some(params) = exec {
        cmd.arg("--params").arg(params.to_string());
    }
    // With a console the holder's stdio is the pty, and it must not keep
    // ours: an engine reading create's output (containerd does, with a
    // terminal) would wait for it until the container ends.
    if console.is_some() {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let raw = console.as_ref().map(|fd| fd.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (dup2, close_range); the console
    // descriptor outlives the spawn.
    unsafe {
        cmd.pre_exec(move || hand_over_console(raw));
    }
    let child = cmd
        .spawn()
        .context(|| "starting the holder process".into())?;
    drop(console);
    // Not waited for: it outlives us and is reparented to our subreaper
    // (containerd's shim) or init, which reaps it.
    Ok(child.id())
}

/// In the holder's child before exec: the console (if any) becomes
/// `CONSOLE_FD`, and every descriptor above it is marked close-on-exec.
/// Only async-signal-safe system calls.
fn hand_over_console(console: Option<RawFd>) -> std::io::Result<()> {
    let first_closed = match console {
        Some(fd) => {
            // SAFETY: dup2 on a descriptor the parent keeps open until the
            // spawn returns.
            if unsafe { libc::dup2(fd, CONSOLE_FD) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            CONSOLE_FD + 1
        }
        None => CONSOLE_FD,
    };
    // Nothing else we hold goes with it (containerd's shim, for one, leaves
    // its listening socket open for its runtime). Marked close-on-exec
    // rather than closed: std's own pipe that reports a failed exec must
    // stay open until the exec.
    // SAFETY: close_range with CLOEXEC only changes descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_closed as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

/// `start`: release the holder and wait until it has created the process
/// (or failed to). A holder that died before answering is an error, never
/// a hang: its pidfd is polled along with the fifo.
pub fn release(root: &Path, id: &str, fifo: &str, holder: u32) -> Result<()> {
    use nix::fcntl::OFlag;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let fifo = fifo_path(root, id, fifo);
    // Non-blocking: opening succeeds without a writer, and the holder's
    // blocking open for writing returns as soon as we have it open.
    let fifo_fd = nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .context(|| format!("opening {}", fifo.display()))?;
    let pidfd = pidfd_open(holder);
    let mut answer = Vec::new();
    let mut writer_seen = false;
    loop {
        let mut fds = vec![PollFd::new(fifo_fd.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(std::io::Error::from(e)).context(|| "waiting for the holder".into())
            }
        }
        let fifo_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let holder_gone = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        if fifo_ready {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(&fifo_fd, &mut buf) {
                Ok(0) if writer_seen || !answer.is_empty() => break,
                // HUP before any writer: cannot happen on Linux (a fifo
                // reports HUP only after a writer came and went).
                Ok(0) => writer_seen = true,
                Ok(n) => {
                    writer_seen = true;
                    answer.extend_from_slice(&buf[..n]);
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(std::io::Error::from(e))
                        .context(|| "reading the holder's answer".into())
                }
            }
        } else if holder_gone {
            // Read what it may have written just before exiting.
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = nix::unistd::read(&fifo_fd, &mut buf) {
                answer.extend_from_slice(&buf[..n]);
            }
            if answer.is_empty() {
                return Err(RunhcsError::State(format!(
                    "the process of container \"{id}\" is gone (its holder, pid {holder}, exited before start)"
                )));
            }
            break;
        }
    }
    let _ = std::fs::remove_file(&fifo);
    match String::from_utf8_lossy(&answer).as_ref() {
        "0" => Ok(()),
        msg => Err(RunhcsError::State(
            msg.trim_start_matches("error: ").to_string(),
        )),
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The signals the holder forwards to the process (SIGWINCH becomes a
/// console resize). Blocked in every thread, taken by one with sigwait.
fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Block the forwarded signals in this thread (and so in every thread
/// started after). Call before any thread exists.
pub fn block_forwarded_signals() {
    let set = forwarded();
    for sig in set.iter() {
        // SAFETY: SIG_DFL installs no handler code; the signal stays blocked.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    let _ = set.thread_block();
}

/// Forward signals to `process`; SIGWINCH copies `console`'s size to it.
pub fn forward_signals(process: Arc<hcs::Process>, console: Option<RawFd>) {
    let set = forwarded();
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            let op = Operation::new();
            let sent = if sig == Signal::SIGWINCH {
                let Some((rows, cols)) = console.and_then(window_size) else {
                    continue;
                };
                process.modify(
                    &op,
                    &json!({"Operation": "ConsoleSize", "ConsoleSize": {"Height": rows, "Width": cols}})
                        .to_string(),
                )
            } else {
                process.signal(&op, Some(&json!({"Signal": sig as i32}).to_string()))
            };
            if sent.is_ok() {
                let _ = op.wait(INFINITE);
            }
        });
}

/// The window size of a terminal, if it is one and has a size.
fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Copy `from` into `to` until EOF or an error.
fn pump(mut from: std::fs::File, mut to: std::fs::File) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A duplicate of one of our descriptors as a File.
fn dup_file(fd: RawFd) -> Option<std::fs::File> {
    // SAFETY: `fd` is one of our standard descriptors (or the console),
    // open for the life of the holder; we only borrow it to duplicate it.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().ok().map(std::fs::File::from)
}

/// Make the console peer raw: the container's own pty does the line
/// discipline, ours must pass bytes through unchanged.
fn make_raw(fd: RawFd) {
    // SAFETY: as in dup_file; termios calls only read/modify its settings.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if let Ok(mut t) = nix::sys::termios::tcgetattr(borrowed) {
        nix::sys::termios::cfmakeraw(&mut t);
        let _ = nix::sys::termios::tcsetattr(borrowed, nix::sys::termios::SetArg::TCSANOW, &t);
    }
}

/// The hidden `__hold` command: the holder's whole life. Its exit code is
/// the process's (or 255 when the process could not be created).
pub fn run(root: &Path, id: &str, fifo: &str, exec: Option<&str>) -> i32 {
    block_forwarded_signals();
    // SAFETY: isatty only inspects the descriptor number (EBADF if closed).
    let console = (unsafe { libc::isatty(CONSOLE_FD) } == 1).then_some(CONSOLE_FD);
    if let Some(fd) = console {
        // Our own session with the console as controlling terminal, so its
        // size changes reach us as SIGWINCH.
        let _ = nix::unistd::setsid();
        // SAFETY: TIOCSCTTY on a terminal descriptor we hold; arg 0.
        unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
        make_raw(fd);
    }
    let Ok(system) = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL) else {
        return 255;
    };
    // A compute system that stops before `start` (terminated by another
    // client) leaves nothing to stand for: end then, rather than wait on
    // the fifo for ever.
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (system, released) = (system.clone(), released.clone());
        std::thread::spawn(move || {
            if system.wait_for_exit(INFINITE).is_ok()
                && !released.load(std::sync::atomic::Ordering::SeqCst)
            {
                #[allow(
                    clippy::exit,
                    reason = "the holder ends with its container, from its watcher thread"
                )]
                std::process::exit(255);
            }
        });
    }
    let fifo = fifo_path(root, id, fifo);
    // Blocks until `start` opens the fifo for reading.
    let Ok(mut answer) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
        return 255;
    };
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = match exec.map(serde_json::from_str::<Value>) {
        Some(Err(e)) => Err(RunhcsError::Usage(format!("bad process parameters: {e}"))),
        Some(Ok(params)) => create_process(root, id, &system, console, Some(params)),
        None => create_process(root, id, &system, console, None),
    };
    let (process, info) = match started {
        Ok(p) => {
            let _ = answer.write_all(b"0");
            p
        }
        Err(e) => {
            let _ = answer.write_all(format!("error: {e}").as_bytes());
            return 255;
        }
    };
    drop(answer);
    let process = Arc::new(process);
    forward_signals(process.clone(), console);
    let mut outputs = Vec::new();
    if let Some(c) = console {
        let (Some(master), Some(peer_in), Some(peer_out)) =
            (info.std_output, dup_file(c), dup_file(c))
        else {
            return 255;
        };
        let master = std::fs::File::from(master);
        if let Ok(m2) = master.try_clone() {
            std::thread::spawn(move || pump(peer_in, m2));
        }
        outputs.push(std::thread::spawn(move || pump(master, peer_out)));
    } else {
        if let (Some(stdin), Some(ours)) = (info.std_input, dup_file(0)) {
            // Not joined: our stdin may never end.
            relay_stdin(process.clone(), ours, std::fs::File::from(stdin));
        }
        for (fd, theirs) in [(1, info.std_output), (2, info.std_error)] {
            if let (Some(theirs), Some(ours)) = (theirs, dup_file(fd)) {
                outputs.push(std::thread::spawn(move || {
                    pump(std::fs::File::from(theirs), ours)
                }));
            }
        }
    }
    let status = process.wait_for_exit(INFINITE).unwrap_or_default();
    for o in outputs {
        let _ = o.join();
    }
    let v: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
    v.get("ExitCode")
        .and_then(Value::as_u64)
        .map_or(255, |c| (c & 0xff) as i32)
}

/// Copy `ours` to the process's stdin pipe in a thread of its own (not to be
/// joined: our stdin may never end). At its end of file the process's stdin
/// is closed: our end of the pipe, and the monitor's copy (HCS keeps one for
/// HcsGetProcessInfo), or the process would never see end of file.
pub fn relay_stdin(process: Arc<hcs::Process>, ours: std::fs::File, theirs: std::fs::File) {
    std::thread::spawn(move || {
        pump(ours, theirs);
        let op = Operation::new();
        // It fails only when the process is gone, which has no stdin left.
        let _ = process
            .modify(
                &op,
                r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"StdIn"}}"#,
            )
            .and_then(|()| op.wait(INFINITE));
    });
}

/// Create the container's process as `start` asks, and record its pid.
fn create_process(
    root: &Path,
    id: &str,
    system: &System,
    console: Option<RawFd>,
    exec: Option<Value>,
) -> Result<(hcs::Process, hcs::ProcessInformation)> {
    let mut r = Record::load(root, id)?;
    let is_exec = exec.is_some();
    let mut params = exec.unwrap_or_else(|| r.process.clone());
    if let Some(fd) = console {
        params["EmulateConsole"] = json!(true);
        params["CreateStdInPipe"] = json!(true);
        params["CreateStdOutPipe"] = json!(true);
        if let Some((rows, cols)) = window_size(fd) {
            params["ConsoleSize"] = json!([rows, cols]);
        }
    } else {
        params["CreateStdInPipe"] = json!(true);
        params["CreateStdOutPipe"] = json!(true);
        params["CreateStdErrPipe"] = json!(true);
    }
    // The process dies with us: an engine that kills the holder (containerd
    // kills an exec's pid directly) kills the process, as with runc.
    params["TerminateWithCreator"] = json!(true);
    let op = Operation::new();
    let (process, info) = system
        .create_process(&params.to_string(), &op)
        .and_then(|p| op.wait_process_info(INFINITE).map(|i| (p, i)))
        .context(|| format!("creating the process of {id}"))?;
    if !is_exec {
        r.pid = Some(info.process_id);
        r.save(root)?;
    }
    Ok((process, info))
}
