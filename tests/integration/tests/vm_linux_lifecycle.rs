//! The lifecycle of a real Linux guest (Debian's cloud kernel with the guest
//! image, whose /init is hcs-agent): pause and resume, save and restore
//! (into two systems from one file), shutdown through the agent and
//! through the ACPI power button, reboot with StopOnReset, and crashes.
//!
//! Each test collects what it found wrong and fails at the end with the
//! whole list, so one run shows every fault of a boot.
//!
//! Semantics these tests pin down:
//! * The guest's clocks follow the host's through a pause: its vCPUs stop,
//!   but CLOCK_MONOTONIC (kvmclock/TSC) keeps counting, as for a vCPU the
//!   host did not schedule, and its wall clock stays right.
//! * A restored guest goes on from its saved CLOCK_MONOTONIC; its wall
//!   clock is set from the host's when its agent connects (SetTime, as
//!   Hyper-V's time synchronization does after a restore).
//! * A restored guest's processes keep running; the waits the saved
//!   system's monitor had on them end with its connection (a restored
//!   system is a new compute system: the old handles are gone).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hcs::{Operation, System};
use hcs_integration_tests::linux_guest::linux_vm_doc;
use hcs_integration_tests::*;

/// How far the guest's `date +%s` may be from the host's (its resolution is
/// a second).
const CLOCK_TOLERANCE_S: f64 = 2.0;
/// Long enough for any exit here (the guest syncs and stops its processes).
const EXIT_WAIT_MS: u32 = 90_000;

/// Where each system's COM1 is also logged; their tails are printed when
/// a test fails (the L2 guest's console is otherwise lost).
struct ConsoleLogs(tempfile::TempDir);

impl ConsoleLogs {
    fn new() -> ConsoleLogs {
        ConsoleLogs(tempfile::tempdir().expect("a temporary directory"))
    }

    /// The document's COM1 extra for system `id`.
    fn com1(&self, id: &str) -> serde_json::Value {
        let log = self.0.path().join(format!("{id}.log"));
        serde_json::json!({ "VirtualMachine": { "Devices": { "ComPorts": { "0": { "NamedPipe": log } } } } })
    }

    /// Wait (up to `BOOT_WAIT`) until system `id`'s agent says it connected
    /// to the host, `count` times in all (a restored guest reconnects);
    /// how long that took. A boot that hangs fails here with the console.
    fn agent_connected(&self, id: &str, count: usize) -> Duration {
        let log = self.0.path().join(format!("{id}.log"));
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("hcs-agent: connected to the host").count() >= count {
                let took = start.elapsed();
                eprintln!("{id}: agent connected after {:.1} s", took.as_secs_f64());
                return took;
            }
            assert!(
                start.elapsed() < BOOT_WAIT,
                "{id}: the guest agent did not connect within {BOOT_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl ConsoleLogs {
    fn text(&self, id: &str) -> String {
        std::fs::read_to_string(self.0.path().join(format!("{id}.log"))).unwrap_or_default()
    }

    /// The agent's lines on system `id`'s console.
    fn agent_lines(&self, id: &str) -> String {
        let text = self.text(id);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("hcs-agent:")).collect();
        lines.join("\n")
    }

    /// Wait up to `timeout` for `needle` on system `id`'s console.
    fn wait_for(&self, id: &str, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.text(id).contains(needle) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How long a boot may take under nested emulation before it counts as hung.
const BOOT_WAIT: Duration = Duration::from_secs(150);

impl Drop for ConsoleLogs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in std::fs::read_dir(self.0.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- guest console {} (last 40 lines)",
                entry.path().display()
            );
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// The shared Linux guest document ([`linux_vm_doc`]), without its guest
/// connection when `agent` is false.
fn linux_doc(agent: bool, extra: serde_json::Value) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&linux_vm_doc(extra)).expect("linux_vm_doc gives JSON");
    if !agent {
        if let Some(vm) = doc["VirtualMachine"].as_object_mut() {
            vm.remove("GuestConnection");
        }
    }
    doc.to_string()
}

/// What a test found wrong; it fails at the end with all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("PROBLEM: {what}");
            self.0.push(what);
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// How long a guest command may take before the guest counts as hung.
const COMMAND_WAIT: Duration = Duration::from_secs(90);

/// `args` in the guest with piped stdout/stderr, bounded by
/// [`COMMAND_WAIT`] (the library's `run` waits forever, which would hang
/// the whole nested stage on a hung guest).
fn run(s: &System, args: &[&str]) -> Finished {
    let ms = COMMAND_WAIT.as_millis() as u32;
    let params = serde_json::json!({
        "CommandArgs": args, "CreateStdOutPipe": true, "CreateStdErrPipe": true
    });
    let op = Operation::new();
    let p = s
        .create_process(&params.to_string(), &op)
        .expect("create process call");
    let info = op
        .wait_process_info(ms)
        .unwrap_or_else(|e| panic!("{args:?}: create process: {e}"));
    let out = std::thread::spawn(move || read_all(info.std_output));
    let err = std::thread::spawn(move || read_all(info.std_error));
    let status: serde_json::Value = serde_json::from_str(
        &p.wait_for_exit(ms)
            .unwrap_or_else(|e| panic!("{args:?} did not end within {COMMAND_WAIT:?}: {e}")),
    )
    .expect("ProcessStatus is JSON");
    Finished {
        exit_code: status["ExitCode"].as_u64().expect("ExitCode") as u32,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `sh -c script` in the guest; its stdout (exit status 0 asserted).
fn sh(s: &System, script: &str) -> String {
    let out = run(s, &["/bin/sh", "-c", script]);
    assert_eq!(
        out.exit_code, 0,
        "{script}: stdout {:?}, stderr {:?}",
        out.stdout, out.stderr
    );
    out.stdout
}

fn host_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the host clock is after 1970")
        .as_secs_f64()
}

/// How far the guest's wall clock is from the host's, in seconds (0 when
/// within the host's time around the call).
fn guest_clock_error(s: &System) -> f64 {
    let before = host_now();
    let guest: f64 = sh(s, "date +%s").trim().parse().expect("date +%s");
    let after = host_now();
    // `date +%s` truncates: the guest's second may start up to 1 s earlier.
    if guest + 1.0 < before {
        guest + 1.0 - before
    } else if guest > after {
        guest - after
    } else {
        0.0
    }
}

fn guest_uptime(s: &System) -> f64 {
    sh(s, "cat /proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .expect("/proc/uptime")
}

/// A process that counts in /tmp/count ten times a second, created through
/// HcsCreateProcess (so the monitor waits on it); its guest pid.
fn start_counter(s: &System) -> (hcs::Process, u32) {
    let (p, info) = start_process(
        s,
        serde_json::json!({ "CommandArgs": ["/bin/sh", "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done"] }),
    );
    (p, info.process_id)
}

fn count(s: &System) -> u64 {
    sh(s, "cat /tmp/count 2>/dev/null || echo 0")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Wait (bounded) until the counter passes `floor`; its value.
fn count_above(s: &System, floor: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let c = count(s);
        if c > floor {
            return Some(c);
        }
    }
    None
}

fn state(s: &System) -> String {
    properties(s, &[]).expect("properties")["State"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn exit_status(s: &System) -> Result<serde_json::Value, String> {
    s.wait_for_exit(EXIT_WAIT_MS)
        .map_err(|e| format!("the VM did not stop within {EXIT_WAIT_MS} ms: {e}"))
        .map(|j| serde_json::from_str(&j).expect("SystemExitStatus is JSON"))
}

fn attribution<'a>(status: &'a serde_json::Value, member: &str) -> Vec<&'a serde_json::Value> {
    status["Attribution"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.get(member)).collect())
        .unwrap_or_default()
}

/// Shut down through the agent; what went wrong.
fn shut_down_through_the_agent(s: &System, p: &mut Problems, who: &str) {
    let op = Operation::new();
    let sent = s
        .shutdown(&op, Some(r#"{"Mechanism":"GuestConnection"}"#))
        .and_then(|()| op.wait(WAIT_MS).map(drop));
    p.check(sent.is_ok(), format!("{who}: shutdown: {sent:?}"));
    match exit_status(s) {
        Ok(status) => {
            p.check(
                status["ExitType"] == "GracefulExit",
                format!("{who}: shutdown through the agent: {status}"),
            );
            p.check(
                attribution(&status, "WorkerExit")
                    .iter()
                    .any(|w| w["Detail"] == "PowerOff"),
                format!("{who}: the guest powered off: {status}"),
            );
        }
        Err(e) => p.check(false, format!("{who}: {e}")),
    }
}

#[test]
fn pause_and_resume_keep_the_guest_running_its_clock_right_and_the_agent_shuts_it_down() {
    let logs = ConsoleLogs::new();
    let doc = linux_doc(true, logs.com1("vm"));
    if !real_linux_guest_here(
        "vm_linux_lifecycle::pause_and_resume_keep_the_guest_running_its_clock_right_and_the_agent_shuts_it_down",
    ) {
        return;
    }
    let mut p = Problems::default();
    let ns = unique_namespace("linuxpause");
    let s = create_started(&ns, "vm", &doc);
    logs.agent_connected("vm", 1);

    // The GED, as the consumer that matters sees it: Linux's acpi-ged.
    let ged = sh(
        &s,
        "dmesg | grep -i -e ged -e ACPI0013 ; echo BOUND: ; ls /sys/bus/platform/drivers/acpi-ged/",
    );
    p.check(
        !ged.contains("unable to parse IRQ resource")
            && !ged.contains("probe with driver acpi-ged failed"),
        format!("Linux refused the GED: {ged}"),
    );
    p.check(
        ged.split("BOUND:")
            .nth(1)
            .is_some_and(|b| b.contains("ACPI0013:00")),
        format!("acpi-ged has no ACPI0013:00: {ged}"),
    );
    let source = sh(
        &s,
        "cat /sys/devices/system/clocksource/clocksource0/current_clocksource",
    );
    eprintln!("guest clocksource: {}", source.trim());
    let at_boot = guest_clock_error(&s);
    eprintln!("guest wall clock after boot: {at_boot:+.1} s from the host's");
    p.check(
        at_boot.abs() <= CLOCK_TOLERANCE_S,
        format!("the guest's wall clock after boot is {at_boot:+.1} s off the host's"),
    );

    let (_counter, pid) = start_counter(&s);
    let before = count_above(&s, 0).expect("the counter counts");
    let up0 = guest_uptime(&s);
    let t0 = Instant::now();
    call(|op| s.pause(op, None)).expect("pause");
    let paused_state = state(&s);
    p.check(
        paused_state == "Paused",
        format!("State while paused: {paused_state}"),
    );
    // The time being measured: the guest stays paused for it.
    std::thread::sleep(Duration::from_secs(3));
    call(|op| s.resume(op, None)).expect("resume");
    let paused_for = t0.elapsed().as_secs_f64();
    p.check(state(&s) == "Running", "State after resume");
    let after = count_above(&s, before);
    p.check(
        after.is_some(),
        format!("the counter (pid {pid}) did not go on after resume (stuck at {before})"),
    );
    let up1 = guest_uptime(&s);
    let host_elapsed = t0.elapsed().as_secs_f64();
    let guest_elapsed = up1 - up0;
    eprintln!(
        "paused {paused_for:.2} s: guest uptime advanced {guest_elapsed:.2} s, host {host_elapsed:.2} s"
    );
    p.check(
        guest_elapsed >= paused_for - 0.5 && guest_elapsed <= host_elapsed + 1.0,
        format!(
            "guest CLOCK_MONOTONIC advanced {guest_elapsed:.2} s over a pause of {paused_for:.2} s \
             (host: {host_elapsed:.2} s)"
        ),
    );
    let after_resume = guest_clock_error(&s);
    p.check(
        after_resume.abs() <= CLOCK_TOLERANCE_S,
        format!("the guest's wall clock after resume is {after_resume:+.1} s off the host's"),
    );
    let alive = run(&s, &["/bin/sh", "-c", &format!("kill -0 {pid}")]);
    p.check(
        alive.exit_code == 0,
        format!("the counter {pid} is gone after resume"),
    );

    shut_down_through_the_agent(&s, &mut p, "vm");
    p.check(leftovers(&ns).is_empty(), "leftovers");
    p.finish();
}

#[test]
fn the_power_button_powers_off_a_guest_without_a_guest_connection() {
    let logs = ConsoleLogs::new();
    let doc = linux_doc(false, logs.com1("vm"));
    if !real_linux_guest_here(
        "vm_linux_lifecycle::the_power_button_powers_off_a_guest_without_a_guest_connection",
    ) {
        return;
    }
    let ns = unique_namespace("linuxbutton");
    let s = create_started(&ns, "vm", &doc);
    let mut c = Console::attach(&ns, "vm");
    // The agent (init) is watching the button's input device. (Bounded:
    // without a guest connection the agent logs its vsock retries, so the
    // console never goes quiet for its read timeout.)
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = c.read_until("the agent watching the power button", |l| {
        l.contains("watching the power button") || Instant::now() > deadline
    });
    assert!(
        line.contains("watching the power button"),
        "the agent did not watch the power button within 60 s"
    );
    // No guest connection: HcsShutDownComputeSystem presses the button.
    call(|op| s.shutdown(op, None)).expect("shutdown");
    let status = exit_status(&s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status["ExitType"], "GracefulExit", "{status}");
    assert!(
        attribution(&status, "VirtualMachineExit")
            .iter()
            .any(|e| e["Reason"] == "PowerButton"),
        "the power button in the attribution: {status}"
    );
    assert!(
        attribution(&status, "WorkerExit")
            .iter()
            .any(|w| w["Detail"] == "PowerOff"),
        "{status}"
    );
    assert!(leftovers(&ns).is_empty());
}

fn make_disk(path: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    let st = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .status()
        .expect("mkfs.ext4");
    assert!(st.success(), "mkfs.ext4 {}", path.display());
}

fn disk_doc(agent_doc_extra: serde_json::Value, disk: &std::path::Path) -> String {
    let mut extra = serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": {
        "0": { "Attachments": { "0": { "Path": disk } } }
    } } } });
    merge_into(&mut extra, agent_doc_extra);
    linux_doc(true, extra)
}

fn fsck_clean(disk: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new("e2fsck")
        .args(["-f", "-n"])
        .arg(disk)
        .output()
        .map_err(|e| format!("e2fsck: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "e2fsck -fn {}: {}\n{}{}",
            disk.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn debugfs_cat(disk: &std::path::Path, file: &str) -> String {
    let out = std::process::Command::new("debugfs")
        .args(["-R", &format!("cat {file}")])
        .arg(disk)
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_saved_linux_guest_goes_on_in_two_restored_systems_with_its_processes_disk_and_clock() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let logs = ConsoleLogs::new();
    let doc = disk_doc(logs.com1("vm"), &disk);
    if !real_linux_guest_here(
        "vm_linux_lifecycle::a_saved_linux_guest_goes_on_in_two_restored_systems_with_its_processes_disk_and_clock",
    ) {
        return;
    }
    make_disk(&disk);
    let mut p = Problems::default();
    let ns = unique_namespace("linuxsave");
    let s = create_started(&ns, "vm", &doc);
    logs.agent_connected("vm", 1);
    sh(
        &s,
        "mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && echo before-save > /mnt/d/note && sync",
    );
    let (_counter, pid) = start_counter(&s);
    let before = count_above(&s, 0).expect("the counter counts");

    let state_file = dir.path().join("vm.state");
    let opts =
        serde_json::json!({ "SaveType": "ToFile", "SaveStateFilePath": state_file }).to_string();
    call(|op| s.pause(op, None)).expect("pause");
    call(|op| s.save(op, Some(&opts))).expect("save");
    let saved_at = Instant::now();
    let status = exit_status(&s).expect("a saved VM stops");
    assert!(
        attribution(&status, "WorkerExit")
            .iter()
            .any(|w| w["Type"] == "Saved"),
        "{status}"
    );
    // The second system gets its own copy of the disk as it was saved.
    let disk2 = dir.path().join("disk2.img");
    std::fs::copy(&disk, &disk2).unwrap();
    // The time being measured: the guest stays saved for it.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(saved_at.elapsed()));

    let restore = |id: &str, disk: &std::path::Path| {
        let mut extra = serde_json::json!({ "VirtualMachine": {
            "RestoreState": { "SaveStateFilePath": state_file }
        } });
        merge_into(&mut extra, logs.com1(id));
        disk_doc(extra, disk)
    };
    let r1 = create_started(&ns, "r1", &restore("r1", &disk));
    let r2 = create_started(&ns, "r2", &restore("r2", &disk2));
    eprintln!(
        "restored {:.1} s after the save",
        saved_at.elapsed().as_secs_f64()
    );
    for (id, r) in [("r1", &r1), ("r2", &r2)] {
        // The restore reset its vsock connections: the agent connects again
        // (its console log is the new system's, from the restore on).
        logs.agent_connected(id, 1);
        // A new process: the agent reconnected to the new monitor.
        let clock = guest_clock_error(r);
        eprintln!("{id}: guest wall clock {clock:+.1} s from the host's after restore");
        p.check(
            clock.abs() <= CLOCK_TOLERANCE_S,
            format!("{id}: the guest's wall clock is {clock:+.1} s off the host's after restore"),
        );
        let alive = run(r, &["/bin/sh", "-c", &format!("kill -0 {pid}")]);
        p.check(
            alive.exit_code == 0,
            format!("{id}: the counter {pid} did not survive the restore"),
        );
        let c = count(r);
        p.check(
            c >= before,
            format!("{id}: counter {c} < {before} before the save"),
        );
        p.check(
            count_above(r, c).is_some(),
            format!("{id}: the counter stays at {c} after restore"),
        );
        let note = sh(r, "cat /mnt/d/note");
        p.check(note == "before-save\n", format!("{id}: note {note:?}"));
        sh(
            r,
            &format!("echo after-restore-{id} >> /mnt/d/note && echo {id} > /tmp/who && sync"),
        );
        p.check(state(r) == "Running", format!("{id}: not Running"));
    }
    // Two systems, not one: each has its own guest.
    p.check(sh(&r1, "cat /tmp/who") == "r1\n", "r1's /tmp/who");
    p.check(sh(&r2, "cat /tmp/who") == "r2\n", "r2's /tmp/who");

    // The saved system's monitor waited on the counter; that wait ended
    // with its connection. Ending the counter now must find nobody waiting
    // on the old connection ("cannot answer the wait ... not connected").
    // (The guest console, not dmesg: /dev/kmsg rate-limits the agent.)
    p.check(
        logs.wait_for("r1", "process wait(s) end with it", Duration::from_secs(10)),
        format!(
            "r1: the agent did not end the old connection's waits when the restore reset it: {}",
            logs.agent_lines("r1")
        ),
    );
    sh(&r1, &format!("kill {pid}"));
    let gone = Instant::now() + Duration::from_secs(10);
    while run(&r1, &["/bin/sh", "-c", &format!("kill -0 {pid}")]).exit_code == 0 {
        assert!(Instant::now() < gone, "r1: the counter {pid} outlived kill");
    }
    // Its reaping woke the old wait at once; give it as long to complain.
    let complained = logs.wait_for("r1", "cannot answer the wait", Duration::from_secs(3));
    p.check(
        !complained,
        format!(
            "r1: the agent answered a wait of the saved system's connection: {}",
            logs.agent_lines("r1")
        ),
    );

    shut_down_through_the_agent(&r1, &mut p, "r1");
    shut_down_through_the_agent(&r2, &mut p, "r2");
    for (id, d) in [("r1", &disk), ("r2", &disk2)] {
        if let Err(e) = fsck_clean(d) {
            p.check(false, format!("{id}: {e}"));
        }
        let note = debugfs_cat(d, "/note");
        p.check(
            note == format!("before-save\nafter-restore-{id}\n"),
            format!("{id}: the disk's note after shutdown: {note:?}"),
        );
    }
    p.check(leftovers(&ns).is_empty(), "leftovers");
    p.finish();
}

/// Start `sh -c script` that ends the guest: the guest may be gone before
/// the agent's answer reaches the host, so the create may fail with the
/// connection closed; only the system's exit says what happened.
fn fire(s: &System, script: &str) {
    let op = Operation::new();
    let params = serde_json::json!({ "CommandArgs": ["/bin/sh", "-c", script] });
    if let Err(e) = s.create_process(&params.to_string(), &op).and_then(|_p| {
        op.wait_process_info(COMMAND_WAIT.as_millis() as u32)
            .map(drop)
    }) {
        eprintln!("{script}: {e} (the guest went first)");
    }
}

#[test]
fn reboot_stops_on_reset_and_panics_and_crash_are_guest_crashes() {
    let logs = ConsoleLogs::new();
    let doc = |id: &str| linux_doc(true, logs.com1(id));
    if !real_linux_guest_here(
        "vm_linux_lifecycle::reboot_stops_on_reset_and_panics_and_crash_are_guest_crashes",
    ) {
        return;
    }
    let mut p = Problems::default();
    let ns = unique_namespace("linuxreset");

    // reboot -f with StopOnReset: the system stops, a graceful exit.
    let s = create_started(&ns, "reboot", &doc("reboot"));
    logs.agent_connected("reboot", 1);
    fire(&s, "reboot -f");
    match exit_status(&s) {
        Ok(status) => {
            p.check(
                status["ExitType"] == "GracefulExit",
                format!("reboot: {status}"),
            );
            p.check(
                attribution(&status, "WorkerExit")
                    .iter()
                    .any(|w| w["Type"] == "StoppedOnReset"),
                format!("reboot: StoppedOnReset: {status}"),
            );
        }
        Err(e) => p.check(false, format!("reboot: {e}")),
    }

    // A kernel panic (sysrq c): pvpanic tells the VMM; an unexpected exit
    // with the guest's crash.
    let s = create_started(&ns, "panic", &doc("panic"));
    logs.agent_connected("panic", 1);
    fire(&s, "echo c > /proc/sysrq-trigger");
    match exit_status(&s) {
        Ok(status) => {
            p.check(
                status["ExitType"] == "UnexpectedExit",
                format!("panic: {status}"),
            );
            p.check(
                status["Status"] == hcs::HResult::HCS_E_UNEXPECTED_EXIT.0,
                format!("panic: Status {status}"),
            );
            p.check(
                !attribution(&status, "GuestCrash").is_empty(),
                format!("panic: GuestCrash: {status}"),
            );
        }
        Err(e) => p.check(false, format!("panic: {e}")),
    }

    // HcsCrashComputeSystem: an NMI, on which the guest panics.
    let s = create_started(&ns, "crash", &doc("crash"));
    logs.agent_connected("crash", 1);
    call(|op| s.crash(op, Some(r#"{"Type":"CrashGuest"}"#))).expect("crash");
    match exit_status(&s) {
        Ok(status) => {
            p.check(
                status["ExitType"] == "UnexpectedExit",
                format!("crash: {status}"),
            );
            p.check(
                !attribution(&status, "GuestCrash").is_empty(),
                format!("crash: GuestCrash: {status}"),
            );
            p.check(
                !attribution(&status, "InjectNonMaskableInterrupt").is_empty(),
                format!("crash: InjectNonMaskableInterrupt: {status}"),
            );
        }
        Err(e) => p.check(false, format!("crash: {e}")),
    }
    p.check(leftovers(&ns).is_empty(), "leftovers");
    p.finish();
}
