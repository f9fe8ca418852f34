//! The `hcs` command-line tool, driven as a user would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use hcs_integration_tests::*;

fn hcs(ns: &str, args: &[&str]) -> Output {
    Command::new(hcs_cli())
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("running hcs")
}

/// Terminates the system through the CLI when dropped, so a failing test
/// leaves nothing running (CLI-created systems outlive the CLI).
struct Cleanup<'a>(&'a str, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = hcs(self.0, &["terminate", self.1]);
    }
}

/// A document for systems created by the CLI, which must outlive its process.
fn cli_doc() -> String {
    container_doc(serde_json::json!({ "ShouldTerminateOnLastHandleClosed": false }))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_has_help() {
    let top = Command::new(hcs_cli()).arg("--help").output().unwrap();
    assert!(top.status.success());
    let text = stdout(&top);
    let commands = [
        "create",
        "start",
        "run",
        "list",
        "properties",
        "exec",
        "pause",
        "resume",
        "shutdown",
        "terminate",
        "modify",
        "wait",
        "events",
        "console",
        "save",
        "restore",
    ];
    for c in commands {
        assert!(text.contains(c), "top-level help lists {c}");
        let o = Command::new(hcs_cli())
            .args([c, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{c} --help");
        assert!(
            stdout(&o).contains("Usage: hcs"),
            "{c} --help shows its usage"
        );
    }
}

#[test]
fn run_exec_inspect_and_terminate() {
    let ns = unique_namespace("cli");
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("c.json");
    std::fs::write(&doc_path, cli_doc()).unwrap();
    let _cleanup = Cleanup(&ns, "web");
    let o = hcs(&ns, &["run", "web", doc_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "web\n");

    // exec streams stdout and stderr and returns the exit code.
    let o = hcs(
        &ns,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // -i sends stdin, and its end reaches the process.
    let mut child = Command::new(hcs_cli())
        .args(["-n", &ns, "exec", "-i", "web", "--", "wc", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1\n2\n3\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "3");
    // -u, -w and -e.
    let o = hcs(
        &ns,
        &[
            "exec",
            "-u",
            "tester",
            "-w",
            "/tmp",
            "-e",
            "A=b c",
            "web",
            "--",
            "sh",
            "-c",
            "echo $(id -un) $(pwd) $A",
        ],
    );
    assert_eq!(stdout(&o), "tester /tmp b c\n");
    // A failure of hcs itself is 125 with the HRESULT name.
    let o = hcs(&ns, &["exec", "web", "--", "does-not-exist"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).starts_with("hcs: ERROR_FILE_NOT_FOUND (0x80070002): "),
        "{}",
        stderr(&o)
    );

    let o = hcs(&ns, &["list"]);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.contains("web") && l.contains("Container") && l.contains("Running")),
        "{}",
        stdout(&o)
    );
    let o = hcs(
        &ns,
        &["properties", "web", "-t", "Statistics", "-t", "ProcessList"],
    );
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        p["Statistics"]["Memory"].is_object() && p["ProcessList"].is_array(),
        "{p}"
    );

    assert!(hcs(&ns, &["pause", "web"]).status.success());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&hcs(&ns, &["properties", "web"])))
            .unwrap()["State"],
        "Paused"
    );
    let o = hcs(&ns, &["pause", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("HCS_E_INVALID_STATE (0x80370105)"),
        "{}",
        stderr(&o)
    );
    assert!(hcs(&ns, &["resume", "web"]).status.success());
    let mem = dir.path().join("m.json");
    std::fs::write(
        &mem,
        r#"{"ResourcePath":"Container/Memory/SizeInMB","RequestType":"Update","Settings":100}"#,
    )
    .unwrap();
    assert!(hcs(&ns, &["modify", "web", mem.to_str().unwrap()])
        .status
        .success());

    // `wait` with a timeout on a running system.
    let o = hcs(&ns, &["wait", "web", "--timeout", "50"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("HCS_E_OPERATION_TIMEOUT"),
        "{}",
        stderr(&o)
    );

    // `events` prints each event as a JSON line and ends with SystemExited.
    let mut events = Command::new(hcs_cli())
        .args(["-n", &ns, "events", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(events.stderr.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.contains("watching"), "{ready}");
    let o = hcs(&ns, &["terminate", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ForcedExit"));
    let mut line = String::new();
    BufReader::new(events.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["Type"], "SystemExited");
    assert_eq!(ev["Data"]["ExitType"], "ForcedExit");
    assert!(events.wait().unwrap().success());

    let o = hcs(&ns, &["start", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("HCS_E_SYSTEM_NOT_FOUND (0x8037010E)"),
        "{}",
        stderr(&o)
    );
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn create_reports_bad_documents_with_their_path() {
    let ns = unique_namespace("clibad");
    let mut child = Command::new(hcs_cli())
        .args(["-n", &ns, "create", "x", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Processor":{"Count":"two"}}}"#,
        )
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("hcs: HCS_E_INVALID_JSON (0x8037010D): "),
        "{e}"
    );
    assert!(e.contains("$.Container.Processor.Count"), "{e}");
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn exec_forwards_signals_to_the_process() {
    let ns = unique_namespace("clisig");
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("c.json");
    std::fs::write(&doc_path, cli_doc()).unwrap();
    let _cleanup = Cleanup(&ns, "s");
    assert!(hcs(&ns, &["run", "s", doc_path.to_str().unwrap()])
        .status
        .success());
    let mut child = Command::new(hcs_cli())
        .args([
            "-n",
            &ns,
            "exec",
            "s",
            "--",
            "sh",
            "-c",
            "trap 'echo got INT; exit 5' INT; echo ready; sleep 1000 & wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got INT\n");
    assert_eq!(child.wait().unwrap().code(), Some(5));
    assert!(hcs(&ns, &["terminate", "s"]).status.success());
    assert!(leftovers(&ns).is_empty());
}

#[test]
fn save_and_restore_a_vm() {
    let ns = unique_namespace("clisave");
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("vm.json");
    let doc_text = serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "VirtualMachine": {
            "Chipset": { "LinuxKernelDirect": {
                "KernelFilePath": hcs_test_guest::test_guest_elf(),
                "KernelCmdLine": "console=ttyS0"
            } },
            "ComputeTopology": { "Memory": { "SizeInMB": 64 }, "Processor": { "Count": 1 } },
            "Devices": { "ComPorts": { "0": { "NamedPipe": "" } } }
        }
    });
    std::fs::write(&doc, doc_text.to_string()).unwrap();
    let doc = doc.to_str().unwrap();
    let state = dir.path().join("vm.state");
    let state = state.to_str().unwrap();

    let _c = Cleanup(&ns, "vm");
    let o = hcs(&ns, &["run", "vm", doc]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hcs(&ns, &["save", "vm", state]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HCS_E_INVALID_STATE"), "{}", stderr(&o));
    assert!(hcs(&ns, &["pause", "vm"]).status.success());
    // A VM saved to a file stops; `hcs save` prints its exit status.
    let o = hcs(&ns, &["save", "vm", state]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"Saved\""), "{}", stdout(&o));

    let _r = Cleanup(&ns, "back");
    let o = hcs(&ns, &["restore", "back", doc, state]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hcs(&ns, &["properties", "back"]);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["State"], "Running", "{p}");
    let mut c = Console::attach(&ns, "back");
    assert_eq!(c.ask("echo back again", "back"), "back again");
    assert!(hcs(&ns, &["terminate", "back"]).status.success());
    assert!(leftovers(&ns).is_empty());
}
