//! `hcs-monitor`: the process that owns one compute system.
//!
//! Not meant to be run by hand: the `hcs` library starts it with
//! `--bootstrap-stdin` and one end of a seqpacket socket pair as stdin.

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--bootstrap-stdin") => std::process::exit(hcs_monitor::server::run_from_stdin()),
        Some("reap") => {
            let namespace = args.next();
            let id = args.next();
            std::process::exit(hcs_monitor::reap::run(namespace.as_deref(), id.as_deref()))
        }
        Some("--help") | Some("-h") => {
            println!(
                "hcs-monitor: owns one HCS compute system and serves its control socket.\n\n\
                 It is started by the hcs library (HcsCreateComputeSystem) with\n  \
                 hcs-monitor --bootstrap-stdin\n\
                 and a seqpacket socket as stdin; it is not meant to be run by hand.\n\n\
                 hcs-monitor reap <namespace> [<id>]\n  \
                 cleans up after dead monitors of that namespace (or of that one\n  \
                 system): releases their cgroups under hcs/ and removes their\n  \
                 runtime directories. Clients run it rather than cleaning up\n  \
                 themselves.\n\n\
                 Environment:\n  \
                 HCS_RUNTIME_ROOT     runtime root (default /run/hcs)\n  \
                 HCS_MONITOR_LOG_DIR  keep logs in this directory as <namespace>.<id>.log\n  \
                 HCS_LOG              log filter (default info)"
            );
        }
        _ => {
            eprintln!("hcs-monitor: started by the hcs library; see `hcs-monitor --help`");
            std::process::exit(2);
        }
    }
}
