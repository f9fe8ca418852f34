//! Command-line parsing.

use std::path::PathBuf;

use hcs_agent_protocol::{AGENT_CONTROL_PORT, HOST_CID};

use crate::error::{AgentError, Result};
use crate::transport::Transport;

/// What the agent was asked to do.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `--unix <dir>`: serve `<dir>/agent.sock`, streams on `<dir>/port_<N>`.
    Unix(PathBuf),
    /// `--vsock`: connect to the host over vsock.
    Vsock {
        /// Host CID (`--cid`, default 2).
        cid: u32,
        /// Control port (`--port`, default [`AGENT_CONTROL_PORT`]).
        port: u32,
    },
    /// `--init` (or PID 1): set up the guest, then serve like `--vsock`
    /// (or like `--unix <dir>` when given, for tests in a pid namespace).
    Init {
        /// Where the host is.
        transport: Transport,
    },
    /// `vsock-echo listen|connect PORT COUNT`: a test aid (see [`crate::echo`]).
    VsockEcho {
        /// Who opens the connections.
        side: crate::echo::Side,
        /// The vsock port.
        port: u32,
        /// How many connections.
        count: u32,
    },
    /// `--help`.
    Help,
}

/// Usage text.
pub const USAGE: &str = "usage: hcs-agent --unix <dir> | --vsock [--cid N] [--port N] | --init [--cid N] [--port N | --unix <dir>]
  --unix <dir>  serve <dir>/agent.sock; stdio streams connect to <dir>/port_<N>
  --vsock       connect to the host over AF_VSOCK (default CID 2, port 0x4843)
  --init        run as the guest's PID 1 (the default when PID is 1), then --vsock (or --unix)
       hcs-agent vsock-echo listen|connect PORT COUNT   (a test aid: echo COUNT vsock connections)";

fn number(flag: &str, value: Option<&String>) -> Result<u32> {
    let v = value.ok_or_else(|| AgentError::Usage(format!("{flag} needs a value")))?;
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| AgentError::Usage(format!("{flag}: \"{v}\" is not a number")))
}

/// Parses the arguments (without the program name). As PID 1, unknown
/// arguments (the kernel passes some) are ignored and the mode is Init.
pub fn parse(args: &[String], pid1: bool) -> Result<Mode> {
    if let (false, Some((first, rest))) = (pid1, args.split_first()) {
        if first == "vsock-echo" {
            let (side, port, count) = crate::echo::parse(rest)?;
            return Ok(Mode::VsockEcho { side, port, count });
        }
    }
    let (mut unix, mut vsock, mut init) = (None, false, pid1);
    let (mut cid, mut port) = (HOST_CID, AGENT_CONTROL_PORT);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--unix" => {
                let dir = it
                    .next()
                    .ok_or_else(|| AgentError::Usage("--unix needs a directory".into()))?;
                unix = Some(PathBuf::from(dir));
            }
            "--vsock" => vsock = true,
            "--init" => init = true,
            "--cid" => cid = number("--cid", it.next())?,
            "--port" => port = number("--port", it.next())?,
            "--help" | "-h" if !pid1 => return Ok(Mode::Help),
            _ if pid1 => {}
            other => {
                return Err(AgentError::Usage(format!(
                    "unknown argument \"{other}\"\n{USAGE}"
                )))
            }
        }
    }
    match (unix, vsock, init) {
        (Some(dir), _, true) => Ok(Mode::Init {
            transport: Transport::Unix(dir),
        }),
        (None, _, true) => Ok(Mode::Init {
            transport: Transport::Vsock {
                cid,
                control_port: port,
            },
        }),
        (Some(dir), false, false) => Ok(Mode::Unix(dir)),
        (None, true, false) => Ok(Mode::Vsock { cid, port }),
        (Some(_), true, false) => Err(AgentError::Usage(
            "--unix and --vsock exclude each other".into(),
        )),
        (None, false, false) => Err(AgentError::Usage(USAGE.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], pid1: bool) -> Result<Mode> {
        parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            pid1,
        )
    }

    #[test]
    fn modes() {
        let show = |m: Result<Mode>| format!("{:?}", m.unwrap());
        assert_eq!(show(p(&["--unix", "/tmp/x"], false)), r#"Unix("/tmp/x")"#);
        assert_eq!(
            show(p(&["--vsock"], false)),
            "Vsock { cid: 2, port: 18499 }"
        );
        assert_eq!(
            show(p(&["--vsock", "--port", "0x10", "--cid", "3"], false)),
            "Vsock { cid: 3, port: 16 }"
        );
        let init = "Init { transport: Vsock { cid: 2, control_port: 18499 } }";
        assert_eq!(show(p(&["console=ttyS0", "quiet"], true)), init);
        assert_eq!(
            show(p(&["--init", "--unix", "/d"], false)),
            r#"Init { transport: Unix("/d") }"#
        );
        p(&[], false).unwrap_err();
        p(&["--bogus"], false).unwrap_err();
        p(&["--unix"], false).unwrap_err();
        p(&["--vsock", "--port", "x"], false).unwrap_err();
        p(&["--unix", "d", "--vsock"], false).unwrap_err();
        assert_eq!(
            show(p(&["vsock-echo", "listen", "5000", "16"], false)),
            "VsockEcho { side: Listen, port: 5000, count: 16 }"
        );
        assert_eq!(
            show(p(&["vsock-echo", "connect", "7", "1"], false)),
            "VsockEcho { side: Connect, port: 7, count: 1 }"
        );
        p(&["vsock-echo", "listen", "5000"], false).unwrap_err();
        p(&["vsock-echo", "serve", "5000", "1"], false).unwrap_err();
        p(&["vsock-echo", "listen", "5000", "0"], false).unwrap_err();
        // As PID 1 it is an argument the kernel passed, ignored.
        assert_eq!(show(p(&["vsock-echo"], true)), init);
    }
}
