//! `hcs`: create, inspect and control HCS compute systems from a shell.
//!
//! Every command is a thin layer over the `hcs` crate, so what it does is
//! what a program using the API would do: create an operation, make the
//! call, wait for the operation, print the result or the HCS error.

mod exec;

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hcs::{EventOptions, EventType, HcsError, HcsResult, Operation, System, GENERIC_ALL, INFINITE};

/// Command-line tool for HCS compute systems on Linux.
#[derive(Parser)]
#[command(name = "hcs", version, about, long_about = None)]
struct Cli {
    /// Id namespace of the compute systems.
    #[arg(long, short = 'n', global = true, default_value = hcs::DEFAULT_NAMESPACE, env = "HCS_NAMESPACE")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a compute system from a ComputeSystem JSON document (file or - for stdin).
    Create {
        /// Id of the new compute system.
        id: String,
        /// Path of the JSON document, or - to read it from stdin.
        config: String,
    },
    /// Start a created compute system.
    Start { id: String },
    /// Create and start a compute system in one step.
    Run {
        /// Id of the new compute system.
        id: String,
        /// Path of the JSON document, or - to read it from stdin.
        config: String,
    },
    /// List compute systems.
    #[command(alias = "ls")]
    List {
        /// Print the raw JSON array of Properties.
        #[arg(long)]
        json: bool,
        /// List every namespace, not only --namespace.
        #[arg(long, short = 'A')]
        all_namespaces: bool,
    },
    /// Print the properties of a compute system as JSON.
    #[command(alias = "props")]
    Properties {
        id: String,
        /// Property types to ask for (Memory, Statistics, ProcessList, TerminateOnLastHandleClosed).
        #[arg(long = "type", short = 't')]
        types: Vec<String>,
    },
    /// Run a process in a compute system, streaming its stdio; exits with its exit code.
    Exec(exec::ExecArgs),
    /// Pause (freeze) a compute system.
    Pause { id: String },
    /// Resume a paused compute system.
    Resume { id: String },
    /// Shut a compute system down gracefully; it is terminated if it has not stopped in time.
    Shutdown {
        id: String,
        /// Milliseconds before the shutdown becomes a terminate.
        #[arg(long, default_value_t = 10_000)]
        timeout: u64,
    },
    /// Terminate a compute system at once.
    #[command(alias = "kill")]
    Terminate { id: String },
    /// Change a running compute system with a ModifySettingRequest document (file or -).
    Modify { id: String, request: String },
    /// Wait until a compute system stops and print its SystemExitStatus.
    Wait {
        id: String,
        /// Give up after this many milliseconds.
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// Print the events of a compute system as JSON lines until it stops.
    Events { id: String },
    /// Save a paused virtual machine to a state file (and <file>.memory next to it); it then stops.
    Save {
        id: String,
        /// The state file to write (the guest memory goes to <file>.memory).
        file: String,
    },
    /// Create and start a virtual machine from a document and a state file written by `save`.
    Restore {
        /// Id of the new compute system.
        id: String,
        /// The VM's ComputeSystem document (the same machine as the saved one).
        config: String,
        /// The state file.
        file: String,
    },
    /// Attach to a virtual machine's serial console (detach with Ctrl-]).
    Console {
        id: String,
        /// COM port: 0 for COM1 (the document's ComPorts key).
        #[arg(long, short = 'p', default_value_t = 0)]
        port: u32,
    },
}

fn read_document(path: &str) -> HcsResult<String> {
    let mut s = String::new();
    let r = if path == "-" {
        std::io::stdin().read_to_string(&mut s).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| s = t)
    };
    r.map_err(|e| HcsError::from_io(format!("reading {path}"), &e))?;
    Ok(s)
}

fn open(cli: &Cli, id: &str) -> HcsResult<System> {
    System::open_in_namespace(&cli.namespace, id, GENERIC_ALL)
}

/// Bind a fresh operation with `call`, wait for it, and return its document.
fn call(f: impl FnOnce(&Operation) -> HcsResult<()>) -> HcsResult<Option<String>> {
    let op = Operation::new();
    f(&op)?;
    op.wait(INFINITE)
}

fn pretty(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_string())
}

/// `file` made absolute (against the current directory), as HCS wants paths.
fn absolute(file: &str) -> HcsResult<std::path::PathBuf> {
    std::path::absolute(file).map_err(|e| HcsError::from_io(format!("resolving {file}"), &e))
}

fn create(cli: &Cli, id: &str, config: &str) -> HcsResult<System> {
    let doc = read_document(config)?;
    let op = Operation::new();
    let system = System::create_in_namespace(&cli.namespace, id, &doc, &op)?;
    op.wait(INFINITE)?;
    Ok(system)
}

fn run(cli: &Cli) -> HcsResult<u8> {
    match &cli.command {
        Command::Create { id, config } => {
            create(cli, id, config)?;
            println!("{id}");
        }
        Command::Start { id } => {
            let s = open(cli, id)?;
            call(|op| s.start(op, None))?;
        }
        Command::Run { id, config } => {
            let s = create(cli, id, config)?;
            call(|op| s.start(op, None))?;
            println!("{id}");
        }
        Command::Save { id, file } => {
            let s = open(cli, id)?;
            let path = absolute(file)?;
            let opts = serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": path });
            call(|op| s.save(op, Some(&opts.to_string())))?;
            // A VM saved to a file stops: show how.
            println!("{}", pretty(&s.wait_for_exit(INFINITE)?));
        }
        Command::Restore { id, config, file } => {
            let mut doc: serde_json::Value = serde_json::from_str(&read_document(config)?)
                .map_err(|e| HcsError::invalid_json(format!("{config}: {e}")))?;
            let vm = doc
                .get_mut("VirtualMachine")
                .and_then(|v| v.as_object_mut())
                .ok_or_else(|| {
                    HcsError::invalid_json(format!("{config}: not a VirtualMachine document"))
                })?;
            vm.insert(
                "RestoreState".into(),
                serde_json::json!({ "SaveStateFilePath": absolute(file)? }),
            );
            let op = Operation::new();
            let s = System::create_in_namespace(&cli.namespace, id, &doc.to_string(), &op)?;
            op.wait(INFINITE)?;
            call(|op| s.start(op, None))?;
            println!("{id}");
        }
        Command::List {
            json,
            all_namespaces,
        } => list(cli, *json, *all_namespaces)?,
        Command::Properties { id, types } => {
            let s = open(cli, id)?;
            let query = (!types.is_empty())
                .then(|| serde_json::json!({ "PropertyTypes": types }).to_string());
            let doc = call(|op| s.get_properties(op, query.as_deref()))?.unwrap_or_default();
            println!("{}", pretty(&doc));
        }
        Command::Exec(args) => return exec::run(&cli.namespace, args),
        Command::Pause { id } => {
            let s = open(cli, id)?;
            call(|op| s.pause(op, None))?;
        }
        Command::Resume { id } => {
            let s = open(cli, id)?;
            call(|op| s.resume(op, None))?;
        }
        Command::Shutdown { id, timeout } => {
            let s = open(cli, id)?;
            let opts = serde_json::json!({ "TimeoutInMs": timeout }).to_string();
            call(|op| s.shutdown(op, Some(&opts)))?;
            println!("{}", pretty(&s.wait_for_exit(INFINITE)?));
        }
        Command::Terminate { id } => {
            let s = open(cli, id)?;
            call(|op| s.terminate(op, None))?;
            println!("{}", pretty(&s.wait_for_exit(INFINITE)?));
        }
        Command::Modify { id, request } => {
            let s = open(cli, id)?;
            let doc = read_document(request)?;
            call(|op| s.modify(op, &doc))?;
        }
        Command::Wait { id, timeout } => {
            let s = open(cli, id)?;
            println!("{}", pretty(&s.wait_for_exit(timeout.unwrap_or(INFINITE))?));
        }
        Command::Events { id } => events(cli, id)?,
        Command::Console { id, port } => console(cli, id, *port)?,
    }
    Ok(0)
}

fn list(cli: &Cli, json: bool, all: bool) -> HcsResult<()> {
    let namespaces = if all {
        hcs::namespaces()
    } else {
        vec![cli.namespace.clone()]
    };
    let mut rows: Vec<(String, serde_json::Value)> = Vec::new();
    for ns in namespaces {
        let op = Operation::new();
        hcs::enumerate_compute_systems_in_namespace(&ns, None, &op)?;
        let doc = op.wait(INFINITE)?.unwrap_or_else(|| "[]".into());
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&doc) {
            rows.extend(items.into_iter().map(|i| (ns.clone(), i)));
        }
    }
    if json {
        let items: Vec<serde_json::Value> = rows.into_iter().map(|(_, v)| v).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
        return Ok(());
    }
    // hcsdiag's layout: the id, then type, state, runtime id and owner.
    let field = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    println!(
        "{:<12} {:<36} {:<10} {:<9} {:<36} OWNER",
        "NAMESPACE", "ID", "TYPE", "STATE", "RUNTIME ID"
    );
    for (ns, v) in rows {
        println!(
            "{:<12} {:<36} {:<10} {:<9} {:<36} {}",
            ns,
            field(&v, "Id"),
            field(&v, "SystemType"),
            field(&v, "State"),
            field(&v, "RuntimeId"),
            field(&v, "Owner")
        );
    }
    Ok(())
}

fn events(cli: &Cli, id: &str) -> HcsResult<()> {
    let s = open(cli, id)?;
    let (tx, rx) = std::sync::mpsc::channel();
    s.set_callback(EventOptions::NONE, move |ev| {
        let data = ev
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
        let line = serde_json::json!({ "Type": format!("{:?}", ev.event_type), "Data": data });
        println!("{line}");
        let last = matches!(
            ev.event_type,
            EventType::SystemExited | EventType::ServiceDisconnect
        );
        if last {
            let _ = tx.send(());
        }
    })?;
    // Tell whoever watches us that the subscription is in place.
    eprintln!("hcs: watching the events of {id}");
    let _ = rx.recv();
    Ok(())
}

/// Ctrl-]: leave the console.
const DETACH: u8 = 0x1d;

fn console(cli: &Cli, id: &str, port: u32) -> HcsResult<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    // Opening the system proves it exists and is ours to see.
    let system = open(cli, id)?;
    let sock = hcs::console_socket(&cli.namespace, id, port);
    let stream = std::os::unix::net::UnixStream::connect(&sock).map_err(|e| {
        HcsError::new(
            hcs::HResult::ERROR_NOT_FOUND,
            format!(
                "compute system {id:?} has no console on COM{} ({}): {e}",
                port + 1,
                sock.display()
            ),
        )
    })?;
    let tty = nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false);
    let _raw = tty.then(exec::RawMode::enable);
    if tty {
        eprint!(
            "hcs: attached to COM{} of {id}; Ctrl-] detaches\r\n",
            port + 1
        );
    }
    let mut out = stream
        .try_clone()
        .map_err(|e| HcsError::from_io("cloning the console socket", &e))?;
    let reader = std::thread::spawn(move || {
        let mut from = stream;
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin();
    loop {
        match std::io::Read::read(&mut stdin, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                let (send, detach) = match chunk.iter().position(|b| tty && *b == DETACH) {
                    Some(i) => (&chunk[..i], true),
                    None => (chunk, false),
                };
                if out.write_all(send).is_err() || detach {
                    break;
                }
            }
        }
    }
    if !tty {
        // Input ended: wait for the output the guest still sends (until it
        // stops or the socket closes).
        let _ = out.shutdown(std::net::Shutdown::Write);
        let _ = reader.join();
    }
    drop(system);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "hcs: {} (0x{:08X}): {}",
                e.hresult.name().unwrap_or("error"),
                e.hresult.as_u32(),
                e.message
            );
            ExitCode::from(match cli.command {
                Command::Exec(_) => exec::EXIT_HCS_ERROR,
                _ => 1,
            })
        }
    }
}
