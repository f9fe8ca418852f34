//! runhcs: an OCI runtime command line (runc-compatible) over HCS container
//! compute systems (issue 7).
//!
//! Each container is a compute system in the HCS id namespace `runhcs`, so
//! `hcs list -n runhcs` and the HCS API see it like any other. `create`
//! creates the compute system and records the OCI process in
//! `<root>/<id>/state.json`; `start` starts the system and creates that
//! process with HcsCreateProcess (the OCI init process).
//!
//! Fields of config.json that runhcs does not implement yet are refused by
//! `create` and `run` with an error naming each one (see `spec.rs`); empty
//! values, and the values `runhcs spec` writes, are accepted.

mod error;
mod spec;
mod state;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use hcs::{Operation, System, GENERIC_ALL, INFINITE};
use serde_json::{json, Value};

use error::{Context, Error, Result};
use state::{Record, NAMESPACE};

const AFTER_HELP: &str = "\
Unsupported config.json fields: create and run refuse a config.json that uses \
a field runhcs does not implement yet (hooks, seccomp, rlimits, devices, sysctl, \
uid/gid mappings, cgroupsPath, apparmor/selinux, extra capabilities, other \
masked/readonly paths, non-bind mounts other than /proc /dev /dev/pts /dev/shm /sys, \
a read-only root, resources other than memory.limit and cpu.shares, ...). The \
error names every such field by its JSON path. Empty values, and the values \
`runhcs spec` writes, are accepted.";

/// The OCI runtime command line over HCS container compute systems.
#[derive(Debug, Parser)]
#[command(name = "runhcs", version, after_help = AFTER_HELP)]
struct Cli {
    /// Directory of the container state records.
    #[arg(long, global = true, default_value = "/run/runhcs")]
    root: PathBuf,
    /// Write errors and warnings to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of --log.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for compatibility with runc; HCS places containers in its own cgroups.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility with runc (true, false or auto); runhcs runs as root.
    #[arg(long, global = true)]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// `time level message`.
    Text,
    /// One JSON object a line (`level`, `msg`, `time`), as containerd reads.
    Json,
}

/// `--format` of list and ps.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A table.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the runtime-spec features document: what this runtime supports.
    Features,
    /// Write a default config.json (which runhcs fully supports) into the bundle.
    Spec {
        /// Bundle directory.
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
    },
    /// Create a container: the compute system exists, its process is not started yet.
    Create {
        /// Container id.
        id: String,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Start a created container's process.
    Start {
        /// Container id.
        id: String,
    },
    /// Print a container's state as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal (name or number, default SIGTERM) to the container's init process.
    Kill {
        /// Container id.
        id: String,
        /// Signal: KILL, SIGKILL or 9.
        signal: Option<String>,
        /// Accepted for compatibility: HCS signals the init process only.
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// Delete a container (stopped or created; --force for a running one).
    Delete {
        /// Container id.
        id: String,
        /// Kill a running container first.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Create and start a container, wait for its process, delete it, and exit with its exit code.
    Run {
        /// Container id.
        id: String,
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait: leave the container running.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Pause (freeze) every process of the container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Resume a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the containers.
    List {
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print only the ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Run another process in a running container, from a command line or
    /// an OCI process JSON (--process); waits for it and exits with its exit
    /// code unless --detach. A terminal (--tty) needs --console-socket.
    Exec(ExecArgs),
    /// List the processes of a container (HCS ProcessList).
    Ps {
        /// Container id.
        id: String,
        /// Output format (json: an array of pids, as runc).
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Options of exec.
#[derive(Debug, clap::Args)]
struct ExecArgs {
    /// Container id.
    id: String,
    /// The command and its arguments (when there is no --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// An OCI runtime-spec `process` JSON file describing the process.
    #[arg(long, short = 'p')]
    process: Option<PathBuf>,
    /// Give the process a pseudo-terminal (sent to --console-socket).
    #[arg(long, short = 't')]
    tty: bool,
    /// Do not wait for the process.
    #[arg(long, short = 'd')]
    detach: bool,
    /// Write the process's pid (inside the container) here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive the terminal's pty master.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<String>,
    /// Environment variables, NAME=value.
    #[arg(long = "env", short = 'e')]
    env: Vec<String>,
    /// User as uid[:gid].
    #[arg(long, short = 'u')]
    user: Option<String>,
}

/// Options of create and run.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Bundle directory (holds config.json).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// Write the init process's pid here (when it starts).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive the console's pty master (process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Accepted for compatibility (HCS always uses pivot_root).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    no_new_keyring: bool,
}

fn main() {
    let cli = Cli::parse();
    let code = match run_command(&cli) {
        Ok(code) => code,
        Err(e) => {
            log(&cli, "error", &e.to_string());
            if cli.log.is_some() {
                eprintln!("runhcs: {e}");
            }
            1
        }
    };
    std::process::exit(code);
}

/// Write a message to `--log` (in `--log-format`) or stderr.
fn log(cli: &Cli, level: &str, msg: &str) {
    if level == "debug" && !cli.debug {
        return;
    }
    let Some(path) = &cli.log else {
        eprintln!("runhcs: {msg}");
        return;
    };
    let time = state::now_rfc3339();
    let line = match cli.log_format {
        LogFormat::Json => json!({"level": level, "msg": msg, "time": time}).to_string(),
        LogFormat::Text => format!("{time} {level} {msg}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn run_command(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Spec { bundle, .. } => spec_cmd(bundle).map(|_| 0),
        Command::Features => {
            println!("{}", to_pretty(&spec::features()));
            Ok(0)
        }
        Command::Create { id, create } => {
            create_cmd(cli, id, create, false)?;
            Ok(0)
        }
        Command::Start { id } => start_cmd(cli, id).map(|_| 0),
        Command::State { id } => {
            let r = Record::load(&cli.root, id)?;
            let s = status(&r);
            println!("{}", to_pretty(&state_json(&r, s)));
            Ok(0)
        }
        Command::Kill { id, signal, .. } => kill_cmd(cli, id, signal.as_deref()).map(|_| 0),
        Command::Delete { id, force } => delete_cmd(cli, id, *force).map(|_| 0),
        Command::Run { id, create, detach } => run_cmd(cli, id, create, *detach),
        Command::Pause { id } => pause_resume(cli, id, true).map(|_| 0),
        Command::Resume { id } => pause_resume(cli, id, false).map(|_| 0),
        Command::List { format, quiet } => list_cmd(cli, *format, *quiet).map(|_| 0),
        Command::Ps { id, format } => ps_cmd(cli, id, *format).map(|_| 0),
        Command::Exec(a) => exec_cmd(cli, a),
    }
}

fn to_pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Run an HCS call with a fresh operation and wait for its result.
fn call(
    what: impl FnOnce() -> String,
    f: impl FnOnce(&Operation) -> hcs::HcsResult<()>,
) -> Result<Option<String>> {
    let op = Operation::new();
    f(&op).and_then(|_| op.wait(INFINITE)).context(what)
}

fn spec_cmd(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; remove it first",
            path.display()
        )));
    }
    std::fs::write(&path, to_pretty(&spec::default_spec()) + "\n")
        .context(|| format!("writing {}", path.display()))
}

/// Container status as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The HCS `State` of a compute system of the runhcs namespace, if it exists.
fn system_state(id: &str) -> Option<String> {
    let op = Operation::new();
    hcs::enumerate_compute_systems_in_namespace(NAMESPACE, None, &op).ok()?;
    let doc = op.wait(INFINITE).ok()??;
    let items: Vec<Value> = serde_json::from_str(&doc).ok()?;
    items
        .into_iter()
        .find(|i| i.get("Id").and_then(Value::as_str) == Some(id))
        .and_then(|i| i.get("State").and_then(Value::as_str).map(str::to_string))
}

/// Work out a container's status from its compute system and init process.
fn status(r: &Record) -> Status {
    let Some(state) = system_state(&r.id) else {
        return Status::Stopped;
    };
    match state.as_str() {
        "Paused" => return Status::Paused,
        "Running" | "Created" => {}
        _ => return Status::Stopped,
    }
    let Some(pid) = r.pid else {
        return Status::Created;
    };
    let Ok(system) = System::open_in_namespace(NAMESPACE, &r.id, GENERIC_ALL) else {
        return Status::Stopped;
    };
    match system.open_process(pid, GENERIC_ALL) {
        // A zero wait answers at once: the status document if it exited.
        Ok(p) => match p.wait_for_exit(0) {
            Ok(_) => Status::Stopped,
            Err(_) => Status::Running,
        },
        Err(_) => Status::Stopped,
    }
}

/// runc's state JSON.
fn state_json(r: &Record, s: Status) -> Value {
    json!({
        "ociVersion": r.oci_version,
        "id": r.id,
        "pid": if s == Status::Stopped { 0 } else { r.pid.unwrap_or(0) },
        "status": s.as_str(),
        "bundle": r.bundle,
        "rootfs": r.rootfs,
        "created": r.created,
        "owner": r.owner,
        "annotations": r.annotations,
    })
}

/// Read, check and map a bundle's config.json.
fn load_bundle(bundle: &Path) -> Result<(PathBuf, Value, spec::Mapped)> {
    let bundle = bundle
        .canonicalize()
        .context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
    let raw: Value =
        serde_json::from_str(&text).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))?;
    let bad = spec::unsupported(&raw);
    if !bad.is_empty() {
        return Err(Error::Unsupported(bad));
    }
    let mapped = spec::map(&bundle, &raw)?;
    Ok((bundle, raw, mapped))
}

fn owner() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// create: the compute system and the record; the process waits for start.
/// `foreground` is `run` without `--detach`: runhcs itself reads the
/// process's output (or console), so no console socket is needed.
fn create_cmd(cli: &Cli, id: &str, a: &CreateArgs, foreground: bool) -> Result<System> {
    state::check_id(id)?;
    let (bundle, raw, mapped) = load_bundle(&a.bundle)?;
    if mapped.terminal && a.console_socket.is_none() && !foreground {
        return Err(Error::Usage(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }
    if !mapped.terminal && a.console_socket.is_some() {
        return Err(Error::Usage(
            "--console-socket given but process.terminal is false".into(),
        ));
    }
    std::fs::create_dir_all(&cli.root).context(|| format!("creating {}", cli.root.display()))?;
    let dir = state::dir(&cli.root, id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(id.into()))
        }
        Err(e) => return Err(e).context(|| format!("creating {}", dir.display())),
    }
    let mut process = mapped.process.clone();
    // Where start sends the console and writes the pid: kept with the process.
    process["x-runhcs"] = json!({
        "consoleSocket": a.console_socket.as_ref().map(|p| absolute(p)),
        "pidFile": a.pid_file.as_ref().map(|p| absolute(p)),
    });
    let record = Record {
        oci_version: raw
            .get("ociVersion")
            .and_then(Value::as_str)
            .unwrap_or("1.0.2")
            .into(),
        id: id.into(),
        bundle: bundle.to_string_lossy().into(),
        rootfs: mapped.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: owner(),
        annotations: raw
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        process,
        pid: None,
    };
    let document = mapped.document.to_string();
    log(cli, "debug", &format!("creating {id}: {document}"));
    let created = (|| {
        let op = Operation::new();
        let system = System::create_in_namespace(NAMESPACE, id, &document, &op)
            .and_then(|s| op.wait(INFINITE).map(|_| s))
            .context(|| format!("creating compute system {NAMESPACE}/{id}"))?;
        record.save(&cli.root)?;
        Ok(system)
    })();
    if created.is_err() {
        if let Ok(s) = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL) {
            let _ = call(String::new, |op| s.terminate(op, None));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    created
}

/// `p` made absolute against the current directory.
fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into()
}

/// start: start the system and create the init process.
fn start_cmd(cli: &Cli, id: &str) -> Result<(hcs::Process, hcs::ProcessInformation)> {
    let mut r = Record::load(&cli.root, id)?;
    if r.pid.is_some() {
        return Err(Error::State(format!(
            "container \"{id}\" has already been started"
        )));
    }
    let system = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    call(
        || format!("starting compute system {NAMESPACE}/{id}"),
        |op| system.start(op, None),
    )?;
    let extra = r.process.get("x-runhcs").cloned().unwrap_or(Value::Null);
    let mut params = r.process.clone();
    if let Some(o) = params.as_object_mut() {
        o.remove("x-runhcs");
    }
    let op = Operation::new();
    let (process, info) = system
        .create_process(&params.to_string(), &op)
        .and_then(|p| op.wait_process_info(INFINITE).map(|i| (p, i)))
        .context(|| format!("creating the init process of {id}"))?;
    r.pid = Some(info.process_id);
    r.save(&cli.root)?;
    if let Some(sock) = extra.get("consoleSocket").and_then(Value::as_str) {
        if let Some(console) = &info.std_output {
            send_console(Path::new(sock), console)?;
        }
    }
    if let Some(pid_file) = extra.get("pidFile").and_then(Value::as_str) {
        let tmp = format!("{pid_file}.tmp");
        std::fs::write(&tmp, info.process_id.to_string())
            .and_then(|_| std::fs::rename(&tmp, pid_file))
            .context(|| format!("writing the pid file {pid_file}"))?;
    }
    Ok((process, info))
}

/// Send the console's pty master to `--console-socket` (SCM_RIGHTS), as runc does.
fn send_console(sock: &Path, console: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = std::os::unix::net::UnixStream::connect(sock)
        .context(|| format!("connecting to the console socket {}", sock.display()))?;
    let fds = [console.as_raw_fd()];
    let name = b"/dev/ptmx";
    let iov = [std::io::IoSlice::new(name)];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)
    .context(|| format!("sending the console to {}", sock.display()))?;
    Ok(())
}

/// Parse a signal given as a name (KILL, SIGKILL) or a number.
fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(Error::Usage(format!("invalid signal number {n}")))
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| Error::Usage(format!("unknown signal {s:?}")))
}

fn kill_cmd(cli: &Cli, id: &str, signal: Option<&str>) -> Result<()> {
    let signal = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let r = Record::load(&cli.root, id)?;
    let s = status(&r);
    let system = || {
        System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
            .context(|| format!("opening compute system {NAMESPACE}/{id}"))
    };
    match (s, r.pid) {
        (Status::Stopped, _) => Err(Error::State(format!("container \"{id}\" is not running"))),
        // No process yet: the init process "dies" with the compute system.
        (Status::Created, _) | (_, None) => {
            let sys = system()?;
            call(|| format!("terminating {id}"), |op| sys.terminate(op, None)).map(|_| ())
        }
        (_, Some(pid)) => {
            let sys = system()?;
            let p = sys
                .open_process(pid, GENERIC_ALL)
                .context(|| format!("opening process {pid} of {id}"))?;
            let options = json!({"Signal": signal}).to_string();
            call(
                || format!("signalling process {pid} of {id}"),
                |op| p.signal(op, Some(&options)),
            )
            .map(|_| ())
        }
    }
}

/// Terminate the compute system (if it still exists) and wait for it.
fn terminate(id: &str) -> Result<()> {
    let Ok(sys) = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL) else {
        return Ok(()); // already gone
    };
    if sys.exit_status().is_some() {
        return Ok(());
    }
    match call(
        || format!("terminating compute system {NAMESPACE}/{id}"),
        |op| sys.terminate(op, None),
    ) {
        Ok(_) => {}
        // It stopped on its own between the open and the terminate.
        Err(_) if system_state(id).is_none() => return Ok(()),
        Err(e) => return Err(e),
    }
    let _ = sys.wait_for_exit(10_000);
    Ok(())
}

fn delete_cmd(cli: &Cli, id: &str, force: bool) -> Result<()> {
    let r = Record::load(&cli.root, id)?;
    let s = status(&r);
    if matches!(s, Status::Running | Status::Paused) && !force {
        return Err(Error::State(format!(
            "cannot delete container \"{id}\" that is {}: stop it first or use --force",
            s.as_str()
        )));
    }
    terminate(id)?;
    let dir = state::dir(&cli.root, id);
    std::fs::remove_dir_all(&dir).context(|| format!("removing {}", dir.display()))
}

fn run_cmd(cli: &Cli, id: &str, a: &CreateArgs, detach: bool) -> Result<i32> {
    if !detach {
        return run_foreground(cli, id, a);
    }
    create_cmd(cli, id, a, false)?;
    if let Err(e) = start_cmd(cli, id) {
        let _ = delete_cmd(cli, id, true);
        return Err(e);
    }
    Ok(0)
}

/// run without --detach: the process's stdout/stderr (or its console) are
/// copied to ours, the container is deleted, and its exit code passed on.
fn run_foreground(cli: &Cli, id: &str, a: &CreateArgs) -> Result<i32> {
    if a.console_socket.is_some() {
        return Err(Error::Usage(
            "--console-socket needs --detach with run".into(),
        ));
    }
    let result = (|| {
        create_cmd(cli, id, a, true)?;
        let mut r = Record::load(&cli.root, id)?;
        if r.process.get("EmulateConsole") != Some(&json!(true)) {
            r.process["CreateStdOutPipe"] = json!(true);
            r.process["CreateStdErrPipe"] = json!(true);
            r.save(&cli.root)?;
        }
        let (process, mut info) = start_cmd(cli, id)?;
        let mut copiers = Vec::new();
        if let Some(fd) = info.std_output.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stdout())));
        }
        if let Some(fd) = info.std_error.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stderr())));
        }
        let status = process
            .wait_for_exit(INFINITE)
            .context(|| format!("waiting for the init process of {id}"))?;
        for c in copiers {
            let _ = c.join();
        }
        let v: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
        Ok(v.get("ExitCode")
            .and_then(Value::as_u64)
            .map_or(255, |c| (c & 0xff) as i32))
    })();
    let cleanup = if state::dir(&cli.root, id).exists() {
        delete_cmd(cli, id, true)
    } else {
        Ok(())
    };
    let code = result?;
    cleanup?;
    Ok(code)
}

/// The ProcessParameters of an exec.
fn exec_params(a: &ExecArgs) -> Result<Value> {
    if let Some(file) = &a.process {
        let text = std::fs::read_to_string(file)
            .context(|| format!("reading the process file {}", file.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Spec(format!("{}: {e}", file.display())))?;
        let bad = spec::unsupported_process(&raw);
        if !bad.is_empty() {
            return Err(Error::Spec(format!(
                "{}: not supported by runhcs: {}",
                file.display(),
                bad.join(", ")
            )));
        }
        let process: oci_spec::runtime::Process = serde_json::from_value(raw)
            .map_err(|e| Error::Spec(format!("{}: {e}", file.display())))?;
        return spec::process_params(&process);
    }
    if a.command.is_empty() {
        return Err(Error::Usage("exec needs a command or --process".into()));
    }
    let mut env = serde_json::Map::new();
    env.insert(
        "PATH".into(),
        json!("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    for e in &a.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--env {e:?} is not NAME=value")))?;
        env.insert(k.into(), json!(v));
    }
    let mut params = json!({
        "CommandArgs": a.command,
        "WorkingDirectory": a.cwd.as_deref().unwrap_or("/"),
        "Environment": env,
        "EmulateConsole": a.tty,
    });
    if let Some(u) = &a.user {
        params["User"] = json!(u);
    }
    Ok(params)
}

/// runc exec: a new process in a running container.
fn exec_cmd(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    let r = Record::load(&cli.root, &a.id)?;
    if status(&r) != Status::Running {
        return Err(Error::State(format!(
            "container \"{}\" is not running",
            a.id
        )));
    }
    let mut params = exec_params(a)?;
    let tty = params["EmulateConsole"] == json!(true);
    if tty && a.console_socket.is_none() {
        return Err(Error::Usage(
            "a terminal (--tty or process.terminal) needs --console-socket".into(),
        ));
    }
    if tty {
        params["CreateStdInPipe"] = json!(true);
        params["CreateStdOutPipe"] = json!(true);
    } else if !a.detach {
        params["CreateStdOutPipe"] = json!(true);
        params["CreateStdErrPipe"] = json!(true);
    }
    let system = System::open_in_namespace(NAMESPACE, &a.id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{}", a.id))?;
    let op = Operation::new();
    let (process, mut info) = system
        .create_process(&params.to_string(), &op)
        .and_then(|p| op.wait_process_info(INFINITE).map(|i| (p, i)))
        .context(|| format!("creating a process in {}", a.id))?;
    if let Some(pid_file) = &a.pid_file {
        std::fs::write(pid_file, info.process_id.to_string())
            .context(|| format!("writing the pid file {}", pid_file.display()))?;
    }
    if let (Some(sock), Some(console)) = (&a.console_socket, &info.std_output) {
        send_console(sock, console)?;
    }
    if a.detach {
        return Ok(0);
    }
    let mut copiers = Vec::new();
    if !tty {
        if let Some(fd) = info.std_output.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stdout())));
        }
        if let Some(fd) = info.std_error.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stderr())));
        }
    }
    let status = process
        .wait_for_exit(INFINITE)
        .context(|| format!("waiting for a process of {}", a.id))?;
    for c in copiers {
        let _ = c.join();
    }
    let v: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
    Ok(v.get("ExitCode")
        .and_then(Value::as_u64)
        .map_or(255, |c| (c & 0xff) as i32))
}

/// Copy a descriptor to a writer until EOF.
fn copy_to(fd: OwnedFd, mut w: impl Write) {
    let mut f = std::fs::File::from(fd);
    let _ = std::io::copy(&mut f, &mut w);
    let _ = w.flush();
}

fn pause_resume(cli: &Cli, id: &str, pause: bool) -> Result<()> {
    let r = Record::load(&cli.root, id)?;
    let s = status(&r);
    let want = if pause {
        Status::Running
    } else {
        Status::Paused
    };
    if s != want {
        return Err(Error::State(format!(
            "container \"{id}\" is {}, not {}",
            s.as_str(),
            want.as_str()
        )));
    }
    let sys = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    if pause {
        call(|| format!("pausing {id}"), |op| sys.pause(op, None)).map(|_| ())
    } else {
        call(|| format!("resuming {id}"), |op| sys.resume(op, None)).map(|_| ())
    }
}

fn list_cmd(cli: &Cli, format: Format, quiet: bool) -> Result<()> {
    let records = Record::all(&cli.root)?;
    if quiet {
        for r in &records {
            println!("{}", r.id);
        }
        return Ok(());
    }
    let states: Vec<(Record, Status)> = records
        .into_iter()
        .map(|r| {
            let s = status(&r);
            (r, s)
        })
        .collect();
    match format {
        Format::Json => {
            let items: Vec<Value> = states.iter().map(|(r, s)| state_json(r, *s)).collect();
            println!("{}", Value::Array(items));
        }
        Format::Table => {
            println!(
                "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (r, s) in &states {
                let pid = if *s == Status::Stopped {
                    0
                } else {
                    r.pid.unwrap_or(0)
                };
                println!(
                    "{:<24} {:<8} {:<10} {:<40} {:<32} {}",
                    r.id,
                    pid,
                    s.as_str(),
                    r.bundle,
                    r.created,
                    r.owner
                );
            }
        }
    }
    Ok(())
}

fn ps_cmd(cli: &Cli, id: &str, format: Format) -> Result<()> {
    let r = Record::load(&cli.root, id)?;
    let sys = System::open_in_namespace(NAMESPACE, &r.id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    let query = r#"{"PropertyTypes":["ProcessList"]}"#;
    let doc = call(
        || format!("reading the process list of {id}"),
        |op| sys.get_properties(op, Some(query)),
    )?
    .unwrap_or_default();
    let v: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
    let list: Vec<&Value> = v
        .get("ProcessList")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    match format {
        Format::Json => {
            let pids: Vec<u64> = list
                .iter()
                .filter_map(|p| p.get("ProcessId").and_then(Value::as_u64))
                .collect();
            println!("{}", json!(pids));
        }
        Format::Table => {
            println!("{:<8} CMD", "PID");
            for p in list {
                println!(
                    "{:<8} {}",
                    p.get("ProcessId").and_then(Value::as_u64).unwrap_or(0),
                    p.get("ImageName").and_then(Value::as_str).unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
