//! runhcs: an OCI runtime command line (runc-compatible) over HCS container
//! compute systems (issue 7).
//!
//! Each container is a compute system in the HCS id namespace `runhcs`, so
//! `hcs list -n runhcs` and the HCS API see it like any other. `create`
//! creates and starts the compute system from the bundle's config.json,
//! passed whole as `Container.OciSpecification` (the HCS container backend
//! maps it, runs its hooks, and refuses by JSON path what it cannot honour),
//! records the container in `<root>/<id>/state.json`, and leaves a holder
//! process that stands for the container's process (holder.rs); `start`
//! releases it and it creates the process (`OciProcess`) with
//! HcsCreateProcess.

mod error;
mod holder;
mod spec;
mod state;
mod update;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use hcs::{Operation, System, GENERIC_ALL, INFINITE};
use serde_json::{json, Value};

use error::{Context, Result, RunhcsError};
use state::{Record, NAMESPACE};

const AFTER_HELP: &str = "\
config.json goes to HCS whole, as the container document's OciSpecification. \
Fields the HCS container backend cannot honour are refused by create and run \
with an error naming each by its JSON path; `runhcs features` lists what is \
supported. The pid that state, list and --pid-file report is that of a holder \
process standing for the container's process (it relays its stdio and exits \
with its exit code), as runc reports its init's host pid.";

/// The OCI runtime command line over HCS container compute systems.
#[derive(Debug, Parser)]
#[command(name = "runhcs", version, after_help = AFTER_HELP, disable_version_flag = true)]
struct Cli {
    /// Print the version (`-v` as with runc).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
        /// Signal every process of the container, not only its own process.
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
        /// Keep the stopped container after its process exits (until
        /// delete), instead of deleting it.
        #[arg(long, conflicts_with = "detach")]
        keep: bool,
    },
    /// Update a running container's resource limits (as runc update).
    Update(update::UpdateArgs),
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
    /// Print the container's statistics as runc's events JSON: once with
    /// --stats, else every --interval until the container stops. (HCS has no
    /// OOM notification for containers, so no "oom" events are printed.)
    Events {
        /// Container id.
        id: String,
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Time between stats events (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: std::time::Duration,
    },
    /// Internal: the process that stands for a created container's process
    /// (started by create; see holder.rs).
    #[command(name = "__hold", hide = true)]
    Hold {
        /// Container id.
        id: String,
        /// The fifo (in the state directory) that releases it.
        #[arg(long)]
        fifo: String,
        /// ProcessParameters of an exec (default: the container's process).
        #[arg(long)]
        params: Option<String>,
    },
    /// List the processes of a container (HCS ProcessList): host pids, as
    /// runc gives them (the table also shows each pid inside, CPID).
    Ps {
        /// Container id.
        id: String,
        /// Output format (json: an array of pids, as runc).
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Options for ps(1) with the table format (default -ef), as runc.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
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
    /// Additional group ids (repeatable).
    #[arg(long = "additional-gids", short = 'g')]
    additional_gids: Vec<u32>,
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
        Command::Kill { id, signal, all } => kill_cmd(cli, id, signal.as_deref(), *all).map(|_| 0),
        Command::Delete { id, force } => delete_cmd(cli, id, *force).map(|_| 0),
        Command::Run {
            id,
            create,
            detach,
            keep,
        } => run_cmd(cli, id, create, *detach, *keep),
        Command::Update(a) => update::run(&cli.root, a).map(|_| 0),
        Command::Pause { id } => pause_resume(cli, id, true).map(|_| 0),
        Command::Resume { id } => pause_resume(cli, id, false).map(|_| 0),
        Command::List { format, quiet } => list_cmd(cli, *format, *quiet).map(|_| 0),
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps_cmd(cli, id, *format, ps_args).map(|_| 0),
        Command::Exec(a) => exec_cmd(cli, a),
        Command::Events {
            id,
            stats,
            interval,
        } => events_cmd(cli, id, *stats, *interval).map(|_| 0),
        Command::Hold { id, fifo, params } => {
            Ok(holder::run(&cli.root, id, fifo, params.as_deref()))
        }
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
        return Err(RunhcsError::Usage(format!(
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
        // Created, unless the holder that stands for the process is gone.
        return match r.holder {
            Some(h) if h != std::process::id() && !is_holder(h) => Status::Stopped,
            _ => Status::Created,
        };
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
        "pid": if s == Status::Stopped { 0 } else { r.holder.unwrap_or(0) },
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
    let raw: Value = serde_json::from_str(&text)
        .map_err(|e| RunhcsError::Spec(format!("{}: {e}", path.display())))?;
    // Parsed once: `create` is on the path measured against crun.
    let parsed =
        spec::parse(&raw).map_err(|why| RunhcsError::Spec(format!("{}: {why}", path.display())))?;
    let mapped = spec::map(&bundle, &raw, &parsed)?;
    Ok((bundle, raw, mapped))
}

/// The name of the user running us, from /etc/passwd (else the uid).
/// Read directly rather than through NSS: getpwuid loads NSS modules and
/// asks nscd, which costs more than the rest of `create`'s own work.
fn owner() -> String {
    let uid = nix::unistd::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// create: the compute system, started (its namespaces and root exist, the
/// createRuntime and createContainer hooks have run), and the record. The
/// process itself is created by `start`. Without `foreground`, a holder
/// process takes our stdio and stands for the container's process (see
/// holder.rs); `foreground` is `run` without `--detach`, where runhcs itself
/// relays the process's stdio.
fn create_cmd(cli: &Cli, id: &str, a: &CreateArgs, foreground: bool) -> Result<System> {
    state::check_id(id)?;
    let (bundle, raw, mapped) = load_bundle(&a.bundle)?;
    if mapped.terminal && a.console_socket.is_none() && !foreground {
        return Err(RunhcsError::Usage(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }
    if !mapped.terminal && a.console_socket.is_some() {
        return Err(RunhcsError::Usage(
            "--console-socket given but process.terminal is false".into(),
        ));
    }
    std::fs::create_dir_all(&cli.root).context(|| format!("creating {}", cli.root.display()))?;
    let dir = state::dir(&cli.root, id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RunhcsError::Exists(id.into()))
        }
        Err(e) => return Err(e).context(|| format!("creating {}", dir.display())),
    }
    let mut record = Record {
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
        process: mapped.process.clone(),
        pid: None,
        holder: foreground.then(std::process::id),
    };
    let document = mapped.document.to_string();
    log(cli, "debug", &format!("creating {id}: {document}"));
    let mut holder_pid = None;
    let created = (|| {
        let op = Operation::new();
        let system = System::create_in_namespace(NAMESPACE, id, &document, &op)
            .and_then(|s| op.wait(INFINITE).map(|_| s))
            .context(|| format!("creating compute system {NAMESPACE}/{id}"))?;
        record.save(&cli.root)?;
        call(
            || format!("starting compute system {NAMESPACE}/{id}"),
            |op| system.start(op, None),
        )?;
        if !foreground {
            let console = match &a.console_socket {
                Some(sock) if mapped.terminal => Some(open_console(sock)?),
                _ => None,
            };
            let pid = holder::spawn(&cli.root, id, holder::INIT_FIFO, None, console)?;
            holder_pid = Some(pid);
            join_container_cgroup(id, pid)?;
            record.holder = Some(pid);
            record.save(&cli.root)?;
            if let Some(pid_file) = &a.pid_file {
                write_pid_file(pid_file, pid)?;
            }
        } else if let Some(pid_file) = &a.pid_file {
            // In the foreground this process stands for the container's.
            write_pid_file(pid_file, std::process::id())?;
        }
        Ok(system)
    })();
    if created.is_err() {
        if let Some(pid) = holder_pid {
            kill_holder(pid);
        }
        if let Ok(s) = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL) {
            let _ = call(String::new, |op| s.terminate(op, None));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    created
}

/// Put the holder `pid` into the container's cgroup, before its pid goes
/// to the engine: engines read a task's statistics and OOM events from the
/// cgroup of the pid they were given (containerd's shim, Podman), and that
/// must be the container's, not runhcs's caller's. The holder adds its own
/// small memory to the container's figures; it stays out of a v1 pids
/// hierarchy so that its threads do not use up the container's process
/// limit (on cgroup v2 they count). Until the OCI process itself is the
/// pid given (issue 14).
fn join_container_cgroup(id: &str, pid: u32) -> Result<()> {
    let dir = hcs_rundir::system_dir(&hcs_rundir::root(), NAMESPACE, id);
    let file = dir.join(hcs_rundir::RECORD_FILE);
    let record: hcs_rundir::Record = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            RunhcsError::State(format!(
                "the compute system's record {} is missing or unreadable",
                file.display()
            ))
        })?;
    let cgroup = hcs_cgroups::Cgroup::from_paths(record.cgroups);
    cgroup.add_pid_outside_pids_limit(pid as i32).map_err(|e| {
        RunhcsError::State(format!(
            "moving the holder into the container's cgroup: {e}"
        ))
    })
}

/// A new pty: its master goes to `--console-socket` now (the engine waits
/// for it during create, as with runc), its peer to the holder.
fn open_console(sock: &Path) -> Result<OwnedFd> {
    let pty = nix::pty::openpty(None, None)
        .map_err(std::io::Error::from)
        .context(|| "allocating the console pty".into())?;
    send_console(sock, &pty.master)?;
    Ok(pty.slave)
}

/// Write `pid` to `path` atomically (temp file + rename), as runc does.
fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    let path = absolute(path);
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .context(|| format!("writing the pid file {path}"))
}

/// Whether `pid` is still the holder runhcs started (and not a reused pid).
fn is_holder(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"__hold"))
}

/// End a holder that never got its process (create failed, or the
/// container is deleted before start). Only a process that is still our
/// holder is signalled.
fn kill_holder(pid: u32) {
    if is_holder(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// `p` made absolute against the current directory.
fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into()
}

/// start: release the holder, which creates the container's process.
fn start_cmd(cli: &Cli, id: &str) -> Result<()> {
    let _lock = state::lock(&cli.root, id)?;
    let r = Record::load(&cli.root, id)?;
    if r.pid.is_some() {
        return Err(RunhcsError::State(format!(
            "container \"{id}\" has already been started"
        )));
    }
    let fifo = state::dir(&cli.root, id).join(holder::INIT_FIFO);
    let Some(holder) = r.holder.filter(|_| fifo.exists()) else {
        return Err(RunhcsError::State(format!(
            "container \"{id}\" cannot be started: it was not created for start (runhcs run in the foreground owns it)"
        )));
    };
    let released = holder::release(&cli.root, id, holder::INIT_FIFO, holder);
    if released.is_err() {
        // As with runc, whose init dies when its exec fails: the container
        // is stopped now, and its compute system does not run on until delete.
        if let Err(e) = terminate(id) {
            log(
                cli,
                "warning",
                &format!("terminating {id} after its failed start: {e}"),
            );
        }
    }
    released
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
        return if (0..=64).contains(&n) {
            Ok(n)
        } else {
            Err(RunhcsError::Usage(format!("invalid signal number {n}")))
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
        .map_err(|_| RunhcsError::Usage(format!("unknown signal {s:?}")))
}

fn kill_cmd(cli: &Cli, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let signal = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let r = Record::load(&cli.root, id)?;
    let s = status(&r);
    let system = || {
        System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
            .context(|| format!("opening compute system {NAMESPACE}/{id}"))
    };
    match (s, r.pid) {
        // containerd's shim maps a kill error to "not found" by this phrase.
        (Status::Stopped, _) => Err(RunhcsError::State(format!(
            "cannot signal container \"{id}\": container not running"
        ))),
        // Signal 0 only asks whether it is there (kill(2)'s meaning).
        _ if signal == 0 => Ok(()),
        // No process yet: the init process "dies" with the compute system.
        (Status::Created, _) | (_, None) => {
            let sys = system()?;
            call(|| format!("terminating {id}"), |op| sys.terminate(op, None))?;
            if let Some(h) = r.holder {
                kill_holder(h);
            }
            Ok(())
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
            )?;
            if all {
                signal_the_others(&sys, id, pid, signal)?;
            }
            Ok(())
        }
    }
}

/// `kill --all`: the container's other processes, by their host pids
/// (HCS signals only processes it started). Pid 1 inside is HCS's own init,
/// which is not one of the container's processes; one that exits meanwhile
/// is not an error.
fn signal_the_others(sys: &System, id: &str, own: u32, signal: i32) -> Result<()> {
    let sig = nix::sys::signal::Signal::try_from(signal).map_err(|_| {
        RunhcsError::Usage(format!("signal {signal} cannot be sent to every process"))
    })?;
    for p in process_list(sys, id)? {
        let inner = p.get("ProcessId").and_then(Value::as_u64);
        let host = p.get("HostProcessId").and_then(Value::as_u64);
        if let (Some(inner), Some(host)) = (inner, host) {
            if inner != 1 && inner != u64::from(own) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(host as i32), sig);
            }
        }
    }
    Ok(())
}

/// The compute system's ProcessList.
fn process_list(sys: &System, id: &str) -> Result<Vec<Value>> {
    let query = r#"{"PropertyTypes":["ProcessList"]}"#;
    let doc = call(
        || format!("reading the process list of {id}"),
        |op| sys.get_properties(op, Some(query)),
    )?
    .unwrap_or_default();
    let v: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
    Ok(v.get("ProcessList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
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
    let _lock = state::lock(&cli.root, id)?;
    let r = Record::load(&cli.root, id)?;
    let s = status(&r);
    if matches!(s, Status::Running | Status::Paused) && !force {
        return Err(RunhcsError::State(format!(
            "cannot delete container \"{id}\" that is {}: stop it first or use --force",
            s.as_str()
        )));
    }
    terminate(id)?;
    // A holder still waiting for start has nothing left to stand for.
    if let Some(h) = r.holder.filter(|_| r.pid.is_none()) {
        kill_holder(h);
    }
    let dir = state::dir(&cli.root, id);
    std::fs::remove_dir_all(&dir).context(|| format!("removing {}", dir.display()))
}

fn run_cmd(cli: &Cli, id: &str, a: &CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    if !detach {
        return run_foreground(cli, id, a, keep);
    }
    create_cmd(cli, id, a, false)?;
    if let Err(e) = start_cmd(cli, id) {
        let _ = delete_cmd(cli, id, true);
        return Err(e);
    }
    Ok(0)
}

/// run without --detach: the process's stdout/stderr (or its console) are
/// copied to ours, the container is deleted (stopped only, with `keep`),
/// and its exit code passed on.
fn run_foreground(cli: &Cli, id: &str, a: &CreateArgs, keep: bool) -> Result<i32> {
    if a.console_socket.is_some() {
        return Err(RunhcsError::Usage(
            "--console-socket needs --detach with run".into(),
        ));
    }
    // Signals we get go to the process; blocked before any thread exists.
    holder::block_forwarded_signals();
    let mut system = None;
    let result = run_in_foreground(cli, id, a, &mut system);
    // The compute system goes with the process, through the handle we
    // already have (no reconnecting: this is on the path measured against
    // crun), then the record.
    let cleanup = match system {
        Some(sys) => {
            if sys.exit_status().is_none() {
                let _ = call(String::new, |op| sys.terminate(op, None));
                let _ = sys.wait_for_exit(10_000);
            }
            let dir = state::dir(&cli.root, id);
            if keep {
                Ok(())
            } else {
                std::fs::remove_dir_all(&dir).context(|| format!("removing {}", dir.display()))
            }
        }
        None => Ok(()),
    };
    let code = result?;
    cleanup?;
    Ok(code)
}

/// The body of a foreground run; `system` is set once the compute system exists.
fn run_in_foreground(
    cli: &Cli,
    id: &str,
    a: &CreateArgs,
    system: &mut Option<System>,
) -> Result<i32> {
    let sys = system.insert(create_cmd(cli, id, a, true)?);
    let mut r = Record::load(&cli.root, id)?;
    let mut params = r.process.clone();
    if params.get("EmulateConsole") != Some(&json!(true)) {
        params["CreateStdInPipe"] = json!(true);
        params["CreateStdOutPipe"] = json!(true);
        params["CreateStdErrPipe"] = json!(true);
    }
    let op = Operation::new();
    let (process, mut info) = sys
        .create_process(&params.to_string(), &op)
        .and_then(|p| op.wait_process_info(INFINITE).map(|i| (p, i)))
        .context(|| format!("creating the init process of {id}"))?;
    r.pid = Some(info.process_id);
    r.save(&cli.root)?;
    relay_and_wait(process, &mut info, true, || {
        format!("waiting for the init process of {id}")
    })
}

/// Forward our signals to `process`, relay our stdin to it and its stdout
/// and stderr to ours (when `relay`), wait for it, and give its exit code
/// as runc does (the low 8 bits; 255 when unknown).
fn relay_and_wait(
    process: hcs::Process,
    info: &mut hcs::ProcessInformation,
    relay: bool,
    what: impl FnOnce() -> String,
) -> Result<i32> {
    let process = std::sync::Arc::new(process);
    holder::forward_signals(process.clone(), None);
    let mut copiers = Vec::new();
    if relay {
        if let (Some(theirs), Ok(ours)) = (
            info.std_input.take(),
            std::io::stdin().as_fd().try_clone_to_owned(),
        ) {
            holder::relay_stdin(
                process.clone(),
                std::fs::File::from(ours),
                std::fs::File::from(theirs),
            );
        }
        if let Some(fd) = info.std_output.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stdout())));
        }
        if let Some(fd) = info.std_error.take() {
            copiers.push(std::thread::spawn(move || copy_to(fd, std::io::stderr())));
        }
    }
    let status = process.wait_for_exit(INFINITE).context(what)?;
    for c in copiers {
        let _ = c.join();
    }
    let v: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
    Ok(v.get("ExitCode")
        .and_then(Value::as_u64)
        .map_or(255, |c| (c & 0xff) as i32))
}

/// The ProcessParameters of an exec: an `OciProcess`, from --process or,
/// as runc does, from the container's own process (its user, capabilities,
/// rlimits, ...) with the command line's args, env, cwd, user and tty.
fn exec_params(r: &Record, a: &ExecArgs) -> Result<Value> {
    let process = if let Some(file) = &a.process {
        let text = std::fs::read_to_string(file)
            .context(|| format!("reading the process file {}", file.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| RunhcsError::Spec(format!("{}: {e}", file.display())))?
    } else {
        if a.command.is_empty() {
            return Err(RunhcsError::Usage(
                "exec needs a command or --process".into(),
            ));
        }
        let mut p = r
            .process
            .get("OciProcess")
            .cloned()
            .unwrap_or_else(|| json!({}));
        p["args"] = json!(a.command);
        p["terminal"] = json!(a.tty);
        if let Some(cwd) = &a.cwd {
            p["cwd"] = json!(cwd);
        }
        if !a.env.is_empty() {
            let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
            for e in &a.env {
                let Some((name, _)) = e.split_once('=') else {
                    return Err(RunhcsError::Usage(format!("--env {e:?} is not NAME=value")));
                };
                // The command line's value replaces the spec's, as with runc.
                let prefix = format!("{name}=");
                env.retain(|v| !v.as_str().is_some_and(|v| v.starts_with(&prefix)));
                env.push(json!(e));
            }
            p["env"] = Value::Array(env);
        }
        if let Some(u) = &a.user {
            let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
            let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
                return Err(RunhcsError::Usage(format!("--user {u:?} is not uid[:gid]")));
            };
            p["user"] = json!({"uid": uid, "gid": gid});
        }
        if !a.additional_gids.is_empty() {
            if !p["user"].is_object() {
                p["user"] = json!({"uid": 0, "gid": 0});
            }
            let mut gids: Vec<Value> = p["user"]["additionalGids"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            gids.extend(a.additional_gids.iter().map(|g| json!(g)));
            p["user"]["additionalGids"] = Value::Array(gids);
        }
        p
    };
    if !process.is_object() {
        return Err(RunhcsError::Spec(
            "the process must be a JSON object".into(),
        ));
    }
    let tty = process
        .get("terminal")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(json!({"OciProcess": process, "EmulateConsole": tty}))
}

/// runc exec: a new process in a running container.
fn exec_cmd(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    if !a.detach {
        // Signals we get go to the process; blocked before any thread exists.
        holder::block_forwarded_signals();
    }
    let r = Record::load(&cli.root, &a.id)?;
    // As runc: a created container's namespaces exist, so a process can
    // join them before start. A paused compute system creates no process
    // (HCS_E_INVALID_STATE), so runc's --ignore-paused is not offered.
    match status(&r) {
        Status::Created | Status::Running => {}
        Status::Paused => {
            return Err(RunhcsError::State(format!(
                "container \"{}\" is paused: resume it first",
                a.id
            )))
        }
        _ => {
            return Err(RunhcsError::State(format!(
                "container \"{}\" is not running",
                a.id
            )))
        }
    }
    let mut params = exec_params(&r, a)?;
    let tty = params["EmulateConsole"] == json!(true);
    if tty && a.detach && a.console_socket.is_none() {
        return Err(RunhcsError::Usage(
            "a detached exec with a terminal (--tty or process.terminal) needs --console-socket"
                .into(),
        ));
    }
    if a.detach {
        // A holder stands for the process (see holder.rs): it has our
        // stdio, its pid goes to --pid-file, and it exits with the process.
        let console = match &a.console_socket {
            Some(sock) if tty => Some(open_console(sock)?),
            _ => None,
        };
        let fifo = format!("exec-{}.fifo", std::process::id());
        let pid = holder::spawn(&cli.root, &a.id, &fifo, Some(&params), console)?;
        if let Err(e) = holder::release(&cli.root, &a.id, &fifo, pid) {
            kill_holder(pid);
            let _ = std::fs::remove_file(state::dir(&cli.root, &a.id).join(&fifo));
            return Err(e);
        }
        if let Some(pid_file) = &a.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        return Ok(0);
    }
    params["CreateStdInPipe"] = json!(true);
    params["CreateStdOutPipe"] = json!(true);
    params["CreateStdErrPipe"] = json!(!tty);
    let system = System::open_in_namespace(NAMESPACE, &a.id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{}", a.id))?;
    let op = Operation::new();
    let (process, mut info) = system
        .create_process(&params.to_string(), &op)
        .and_then(|p| op.wait_process_info(INFINITE).map(|i| (p, i)))
        .context(|| format!("creating a process in {}", a.id))?;
    if let Some(pid_file) = &a.pid_file {
        write_pid_file(pid_file, std::process::id())?;
    }
    if let (Some(sock), Some(console)) = (&a.console_socket, &info.std_output) {
        send_console(sock, console)?;
    }
    // Our own stdio is the terminal's other end unless the master went to
    // --console-socket (as runc does in the foreground).
    let relay = !tty || a.console_socket.is_none();
    relay_and_wait(process, &mut info, relay, || {
        format!("waiting for a process of {}", a.id)
    })
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
        return Err(RunhcsError::State(format!(
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
                    r.holder.unwrap_or(0)
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

fn ps_cmd(cli: &Cli, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    if format == Format::Json && !ps_args.is_empty() {
        return Err(RunhcsError::Usage(
            "ps options go with the table format, not --format json".into(),
        ));
    }
    let r = Record::load(&cli.root, id)?;
    let sys = System::open_in_namespace(NAMESPACE, &r.id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    let list = process_list(&sys, id)?;
    // Host pids, as runc reports them (containerd matches them).
    let pids: Vec<u64> = list
        .iter()
        .filter_map(|p| {
            p.get("HostProcessId")
                .or_else(|| p.get("ProcessId"))
                .and_then(Value::as_u64)
        })
        .collect();
    match format {
        Format::Json => println!("{}", json!(pids)),
        Format::Table => print!("{}", ps_table(&pids, ps_args)?),
    }
    Ok(())
}

/// runc's table: ps(1) with `args` (default `-ef`), its header and the
/// lines whose PID column is one of `pids`.
fn ps_table(pids: &[u64], args: &[String]) -> Result<String> {
    let default = ["-ef".to_string()];
    let args = if args.is_empty() { &default[..] } else { args };
    let out = std::process::Command::new("ps")
        .args(args)
        .output()
        .context(|| "running ps".into())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(RunhcsError::Usage(format!(
            "ps {}: {}{}",
            args.join(" "),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(RunhcsError::Usage(format!(
            "ps {}: its output has no PID column",
            args.join(" ")
        )));
    };
    let mut table = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<u64>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            table.push_str(line);
            table.push('\n');
        }
    }
    Ok(table)
}

/// `--interval`: a number with a unit (ms, s, m), as Go durations are written.
fn parse_interval(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 5s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(format!(
            "{s:?}: the interval must be positive and under a day"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// One runc-style stats event from the compute system's Statistics and
/// ProcessList.
fn stats_event(id: &str, sys: &System) -> Result<Value> {
    let query = r#"{"PropertyTypes":["Statistics","ProcessList"]}"#;
    let doc = call(
        || format!("reading the statistics of {id}"),
        |op| sys.get_properties(op, Some(query)),
    )?
    .unwrap_or_default();
    let v: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
    let st = &v["Statistics"];
    let ns = |x: &Value| x.as_u64().unwrap_or(0).saturating_mul(100);
    let pids = v["ProcessList"].as_array().map_or(0, Vec::len);
    Ok(json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {
                    "total": ns(&st["Processor"]["TotalRuntime100ns"]),
                    "user": ns(&st["Processor"]["RuntimeUser100ns"]),
                    "kernel": ns(&st["Processor"]["RuntimeKernel100ns"]),
                },
                "throttling": {}
            },
            "memory": {
                "usage": {
                    "usage": st["Memory"]["MemoryUsageCommitBytes"].as_u64().unwrap_or(0),
                    "max": st["Memory"]["MemoryUsageCommitPeakBytes"].as_u64().unwrap_or(0),
                },
                "raw": {
                    "private_working_set": st["Memory"]["MemoryUsagePrivateWorkingSetBytes"].as_u64().unwrap_or(0),
                }
            },
            "pids": {"current": pids},
        }
    }))
}

fn events_cmd(cli: &Cli, id: &str, once: bool, interval: std::time::Duration) -> Result<()> {
    let r = Record::load(&cli.root, id)?;
    if status(&r) == Status::Stopped {
        return Err(RunhcsError::State(format!(
            "container \"{id}\" is not running"
        )));
    }
    let sys = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    loop {
        let event = match stats_event(id, &sys) {
            Ok(e) => e,
            // The container stopped between two events: the stream ends.
            Err(_) if !once && sys.exit_status().is_some() => return Ok(()),
            Err(e) => return Err(e),
        };
        println!("{event}");
        let _ = std::io::stdout().flush();
        if once {
            return Ok(());
        }
        // Wait for the interval or the system's exit, whichever is first.
        if sys
            .wait_for_exit(interval.as_millis().min(u128::from(u32::MAX - 1)) as u32)
            .is_ok()
        {
            return Ok(());
        }
        if status(&r) == Status::Stopped {
            return Ok(());
        }
    }
}
