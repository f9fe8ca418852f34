//! `hcs-agent`: the HCS guest agent binary (see the library's docs).

use hcs_agent::cli::{self, Mode};
use hcs_agent::transport::Transport;
use hcs_agent::{echo, init, log, spawn, Agent};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pid1 = init::is_pid1();
    let mode = match cli::parse(&args, pid1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("hcs-agent: {e}");
            std::process::exit(2);
        }
    };
    match mode {
        Mode::Help => println!("{}", cli::USAGE),
        Mode::VsockEcho { side, port, count } => match echo::run(side, port, count) {
            Ok(summary) => println!("{summary}"),
            Err(e) => {
                eprintln!("hcs-agent vsock-echo: {e}");
                std::process::exit(1);
            }
        },
        Mode::Init { transport } => init::run(transport),
        Mode::Vsock { cid, port } => {
            spawn::ensure_standard_fds();
            Agent::new(
                Transport::Vsock {
                    cid,
                    control_port: port,
                },
                false,
            )
            .serve_vsock(cid, port)
        }
        Mode::Unix(dir) => {
            spawn::ensure_standard_fds();
            let agent = Agent::new(Transport::Unix(dir.clone()), false);
            if let Err(e) = agent.serve_unix(&dir) {
                log!("{e}");
                std::process::exit(1);
            }
        }
    }
}
