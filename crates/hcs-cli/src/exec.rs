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

fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize through the pointer we pass.
    let rc = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Puts the local terminal in raw mode for the life of the value.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = nix::sys::termios::tcgetattr(stdin.as_fd()) else { return RawMode(None) };
        let mut raw = orig.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, orig);
        }
    }
}

pub fn run(namespace: &str, a: &ExecArgs) -> HcsResult<u8> {
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
    let _raw = (a.tty && nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false)).then(RawMode::enable);

    if let Some(stdin) = info.std_input.filter(|_| a.interactive) {
        let p = process.clone();
        let tty = a.tty;
        std::thread::spawn(move || {
            let file = std::fs::File::from(stdin);
            let Ok(local) = std::io::stdin().as_fd().try_clone_to_owned() else { return };
            pump(std::fs::File::from(local), &file);
            drop(file);
            // With pipes, EOF reaches the process only once HCS closes its copy too.
            if !tty {
                let op = Operation::new();
                if p.modify(&op, r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"StdIn"}}"#).is_ok() {
                    let _ = op.wait(INFINITE);
                }
            }
        });
    }
    let out = info.std_output.map(|fd: OwnedFd| std::thread::spawn(move || pump(std::fs::File::from(fd), std::io::stdout())));
    let err = info.std_error.map(|fd: OwnedFd| std::thread::spawn(move || pump(std::fs::File::from(fd), std::io::stderr())));
    let status = process.wait_for_exit(INFINITE)?;
    // All output is in the pipes by now; drain it before exiting.
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    drop(_raw);
    let status: hcs_schema::ProcessStatus = hcs_schema::from_json(&status, "ProcessStatus")?;
    Ok(status.exit_code.unwrap_or(255).min(255) as u8)
}
