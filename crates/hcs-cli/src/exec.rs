//! `hcs exec`: run a process in a compute system with its stdio streamed to
//! this terminal, and exit with its exit code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use clap::Args;
use hcs::{HcsResult, Operation, System, GENERIC_ALL, INFINITE};

/// Exit code for a failure of hcs itself (not of the process), as docker exec uses.
pub const EXIT_HCS_ERROR: u8 = 125;

#[derive(Args)]
pub struct ExecArgs {
    /// Keep stdin open and send it to the process.
    #[arg(short, long)]
    interactive: bool,
    /// Run the process on a pseudo-terminal (EmulateConsole).
    #[arg(short, long)]
    tty: bool,
    /// User to run as (name, uid or uid:gid).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the compute system.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Environment variables (NAME=value), repeatable.
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Start the process and print its pid instead of waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// Compute system id.
    id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Copy `from` to `to` until EOF; returns when the source is done.
fn pump(mut from: std::fs::File, mut to: impl Write) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
                let _ = to.flush();
            }
        }
    }
}

/// Copy a process's output until EOF, or until `done` is signalled (the
/// process exited) and what it wrote before exiting has been read. A
/// background child that inherited the pipe can keep it open forever;
/// `hcs exec` must not wait for that.
fn pump_until_exit(from: OwnedFd, mut to: impl Write, done: Arc<OwnedFd>) {
    let mut buf = [0u8; 16 * 1024];
    let mut draining = false;
    loop {
        if !draining {
            let mut fds = [
                nix::poll::PollFd::new(from.as_fd(), nix::poll::PollFlags::POLLIN),
                nix::poll::PollFd::new(done.as_fd(), nix::poll::PollFlags::POLLIN),
            ];
            if nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).is_err() {
                continue;
            }
            let exited = fds[1].revents().is_some_and(|r| !r.is_empty());
            let readable = fds[0].revents().is_some_and(|r| !r.is_empty());
            if exited {
                // Everything the process wrote is in the pipe now: read what
                // is there without waiting for writers it left behind.
                draining = true;
                let _ = nix::fcntl::fcntl(
                    &from,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
            } else if !readable {
                continue;
            }
        }
        match nix::unistd::read(&from, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
                let _ = to.flush();
            }
        }
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize through the pointer we pass.
    let rc = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Puts the local terminal in raw mode for the life of the value.
pub(crate) struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub(crate) fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = orig.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                orig,
            );
        }
    }
}

/// Signals this tool receives go to the process (SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT), and terminal size changes to its console (SIGWINCH). They are
/// blocked in every thread and taken by one thread with sigwait.
fn forwarded_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

fn forward_signals(process: Arc<hcs::Process>, tty: bool) {
    use nix::sys::signal::Signal;
    let set = forwarded_signals();
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let Ok(sig) = set.wait() else { return };
        let op = Operation::new();
        let sent = if sig == Signal::SIGWINCH {
            match (tty, terminal_size()) {
                (true, Some((rows, cols))) => process.modify(
                    &op,
                    &format!(r#"{{"Operation":"ConsoleSize","ConsoleSize":{{"Height":{rows},"Width":{cols}}}}}"#),
                ),
                _ => continue,
            }
        } else {
            process.signal(&op, Some(&format!(r#"{{"Signal":{}}}"#, sig as i32)))
        };
        if sent.is_ok() {
            let _ = op.wait(INFINITE);
        }
    });
}

pub fn run(namespace: &str, a: &ExecArgs) -> HcsResult<u8> {
    // Block them before any thread exists, so every thread inherits the
    // mask. A shell may have started us with SIGINT ignored, and an ignored
    // signal is dropped even while blocked: restore the default first.
    if !a.detach {
        let set = forwarded_signals();
        for sig in set.iter() {
            // SAFETY: SIG_DFL installs no handler code; the signal stays blocked.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
        let _ = set.thread_block();
    }
    let system = System::open_in_namespace(namespace, &a.id, GENERIC_ALL)?;
    let mut env = serde_json::Map::new();
    for kv in &a.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        env.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    let mut params = serde_json::json!({
        "CommandArgs": a.command,
        "CreateStdInPipe": a.interactive,
        "CreateStdOutPipe": !a.detach,
        "CreateStdErrPipe": !a.detach && !a.tty,
        "EmulateConsole": a.tty,
    });
    if !env.is_empty() {
        params["Environment"] = serde_json::Value::Object(env);
    }
    if let Some(u) = &a.user {
        params["User"] = u.clone().into();
    }
    if let Some(w) = &a.workdir {
        params["WorkingDirectory"] = w.clone().into();
    }
    if a.tty {
        let (rows, cols) = terminal_size().unwrap_or((25, 80));
        params["ConsoleSize"] = serde_json::json!([rows, cols]);
    }
    let op = Operation::new();
    let process = system.create_process(&params.to_string(), &op)?;
    let info = op.wait_process_info(INFINITE)?;
    if a.detach {
        println!("{}", info.process_id);
        return Ok(0);
    }
    let process = Arc::new(process);
    let _raw = (a.tty && nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false))
        .then(RawMode::enable);
    forward_signals(process.clone(), a.tty);

    if let Some(stdin) = info.std_input.filter(|_| a.interactive) {
        let p = process.clone();
        let tty = a.tty;
        std::thread::spawn(move || {
            let file = std::fs::File::from(stdin);
            let Ok(local) = std::io::stdin().as_fd().try_clone_to_owned() else {
                return;
            };
            pump(std::fs::File::from(local), &file);
            drop(file);
            // With pipes, EOF reaches the process only once HCS closes its copy too.
            if !tty {
                let op = Operation::new();
                if p.modify(
                    &op,
                    r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"StdIn"}}"#,
                )
                .is_ok()
                {
                    let _ = op.wait(INFINITE);
                }
            }
        });
    }
    let exited = Arc::new(OwnedFd::from(
        nix::sys::eventfd::EventFd::from_value_and_flags(
            0,
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC,
        )
        .map_err(|e| hcs::HcsError::from_io("creating an eventfd", &std::io::Error::from(e)))?,
    ));
    let spawn_pump = |fd: OwnedFd, to: Box<dyn Write + Send>| {
        let done = exited.clone();
        std::thread::spawn(move || pump_until_exit(fd, to, done))
    };
    let out = info
        .std_output
        .map(|fd| spawn_pump(fd, Box::new(std::io::stdout())));
    let err = info
        .std_error
        .map(|fd| spawn_pump(fd, Box::new(std::io::stderr())));
    let status = process.wait_for_exit(INFINITE)?;
    // All output is in the pipes by now; drain it before exiting.
    let _ = nix::unistd::write(&*exited, &1u64.to_ne_bytes());
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    drop(_raw);
    let status: hcs_schema::ProcessStatus = hcs_schema::from_json(&status, "ProcessStatus")?;
    Ok(status.exit_code.unwrap_or(255).min(255) as u8)
}
