//! The exports against real containers (as root, on the busybox root
//! filesystem): timeouts, event callbacks (the operation-completion
//! sample's pattern C), handles to the same system, close inside a callback.

mod common;

use std::os::fd::FromRawFd;
use std::ptr::{null, null_mut};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use computecore::*;
use hcs_errors::HResult;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn rootfs() -> std::path::PathBuf {
    let repo = common::crate_dir().join("../..").canonicalize().unwrap();
    let p = std::env::var_os("HCS_TEST_ROOTFS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("build/rootfs/busybox"));
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run scripts/build-rootfs.sh first",
        p.display()
    );
    p
}

fn setup(test: &str) -> Vec<u16> {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "these tests create real containers and must run as root"
    );
    if std::env::var_os("HCS_MONITOR").is_none() {
        let m = common::profile_dir().join("hcs-monitor");
        assert!(
            m.is_file(),
            "{} is missing: build it first (cargo build -p hcs-monitor)",
            m.display()
        );
        // The library looks next to the executable's directory's parent,
        // which for test executables is the profile directory: found.
    }
    w(&format!("capi{}-{test}", std::process::id()))
}

fn doc() -> Vec<u16> {
    w(&serde_json::json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "capi-tests",
        "ShouldTerminateOnLastHandleClosed": true,
        "Container": {
            "Storage": { "Layers": [ { "Id": "0a9d0f6e-0000-4000-8000-000000000001", "Path": rootfs() } ] }
        }
    })
    .to_string())
}

fn wait(op: HCS_OPERATION) -> HRESULT {
    // SAFETY: no out pointer.
    unsafe { HcsWaitForOperationResult(op, 60_000, null_mut()) }
}

fn take_string(p: PWSTR) -> String {
    assert!(!p.is_null());
    let mut n = 0;
    // SAFETY: a NUL-terminated string from the library.
    while unsafe { *p.wrapping_add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` units are readable.
    let s = String::from_utf16(unsafe { std::slice::from_raw_parts(p, n) }).unwrap();
    // SAFETY: returned by the library, freed once.
    unsafe { LocalFree(p.cast()) };
    s
}

#[test]
fn waits_past_the_timeout_give_operation_timeout() {
    let ns = setup("timeout");
    let op = HcsCreateOperation(null_mut(), None);
    let mut sys: HCS_SYSTEM = null_mut();
    let id = w("timeouts");
    // SAFETY: valid strings and out pointer.
    let hr = unsafe {
        HcsCreateComputeSystemInNamespace(
            ns.as_ptr(),
            id.as_ptr(),
            doc().as_ptr(),
            op,
            null(),
            &mut sys,
        )
    };
    assert_eq!(hr, S_OK);
    assert_eq!(wait(op), S_OK);
    // SAFETY: no strings.
    assert_eq!(unsafe { HcsStartComputeSystem(sys, op, null()) }, S_OK);
    assert_eq!(wait(op), S_OK);
    let mut docp: PWSTR = null_mut();
    // The system runs: waiting for its exit times out.
    let t = std::time::Instant::now();
    // SAFETY: valid out pointer.
    let hr = unsafe { HcsWaitForComputeSystemExit(sys, 100, &mut docp) };
    if hr == S_OK {
        panic!("the system exited: {}", take_string(docp));
    }
    assert_eq!(hr, HResult::HCS_E_OPERATION_TIMEOUT.0);
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(docp.is_null());
    // A process that runs on: waiting for it times out too.
    let mut proc_: HCS_PROCESS = null_mut();
    let params = w(r#"{"CommandArgs":["sleep","30"]}"#);
    assert_eq!(
        // SAFETY: valid strings and out pointer.
        unsafe { HcsCreateProcess(sys, params.as_ptr(), op, null(), &mut proc_) },
        S_OK
    );
    let mut pi = HCS_PROCESS_INFORMATION {
        ProcessId: 0,
        Reserved: 0,
        StdInput: 0,
        StdOutput: 0,
        StdError: 0,
    };
    assert_eq!(
        // SAFETY: valid out pointers.
        unsafe { HcsWaitForOperationResultAndProcessInfo(op, 60_000, &mut pi, null_mut()) },
        S_OK
    );
    assert!(pi.ProcessId > 0);
    assert_eq!((pi.StdInput, pi.StdOutput, pi.StdError), (-1, -1, -1));
    // With a console there is no separate stderr: as in HCS, the
    // CreateStdErrPipe handle is null (-1) and the console is StdOutput.
    let mut console_proc: HCS_PROCESS = null_mut();
    let params = w(
        r#"{"CommandArgs":["true"],"EmulateConsole":true,"CreateStdOutPipe":true,"CreateStdErrPipe":true}"#,
    );
    assert_eq!(
        // SAFETY: valid strings and out pointer.
        unsafe { HcsCreateProcess(sys, params.as_ptr(), op, null(), &mut console_proc) },
        S_OK
    );
    let mut ci = HCS_PROCESS_INFORMATION {
        ProcessId: 0,
        Reserved: 0,
        StdInput: 0,
        StdOutput: 0,
        StdError: 0,
    };
    assert_eq!(
        // SAFETY: valid out pointers.
        unsafe { HcsWaitForOperationResultAndProcessInfo(op, 60_000, &mut ci, null_mut()) },
        S_OK
    );
    assert!(ci.StdOutput >= 0, "the console is StdOutput");
    assert_eq!(ci.StdError, -1, "a console has no separate stderr");
    for fd in [ci.StdInput, ci.StdOutput]
        .into_iter()
        .filter(|fd| *fd >= 0)
    {
        // SAFETY: the descriptor was handed to this caller, which owns it.
        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    }
    HcsCloseProcess(console_proc);
    // SAFETY: valid out pointer.
    let hr = unsafe { HcsWaitForProcessExit(proc_, 50, &mut docp) };
    assert_eq!(hr, HResult::HCS_E_OPERATION_TIMEOUT.0);
    // The process handle's event callback gets ProcessExited.
    let (tx, rx) = mpsc::channel();
    let sink = Box::new(EventSink {
        seen: Mutex::new(Vec::new()),
        tx: Mutex::new(tx),
    });
    let ctx = &*sink as *const EventSink as *mut libc::c_void;
    assert_eq!(HcsSetProcessCallback(proc_, 0, ctx, Some(on_event)), S_OK);
    assert_eq!(
        HcsSetProcessCallback(proc_, 0, ctx, Some(on_event)),
        HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET.0
    );
    // Terminate it; then the wait returns its status.
    // SAFETY: no strings.
    assert_eq!(unsafe { HcsTerminateProcess(proc_, op, null()) }, S_OK);
    assert_eq!(wait(op), S_OK);
    assert_eq!(
        // SAFETY: valid out pointer.
        unsafe { HcsWaitForProcessExit(proc_, 30_000, &mut docp) },
        S_OK
    );
    let status = take_string(docp);
    assert!(status.contains("\"Exited\":true"), "{status}");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        0x0001_0000,
        "HcsEventProcessExited"
    );
    HcsCloseProcess(proc_);
    {
        let seen = sink.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].2.as_deref().unwrap_or("").contains("ExitCode"),
            "{seen:?}"
        );
    }
    // No callback after the close: the sink can go.
    drop(sink);

    // An operation that stays pending: a shutdown of a system whose process
    // ignores SIGTERM lasts until its TimeoutInMs.
    let params = w(
        r#"{"CommandArgs":["sh","-c","trap '' TERM; echo ready; exec sleep 60"],"CreateStdOutPipe":true}"#,
    );
    assert_eq!(
        // SAFETY: valid strings and out pointer.
        unsafe { HcsCreateProcess(sys, params.as_ptr(), op, null(), &mut proc_) },
        S_OK
    );
    assert_eq!(
        // SAFETY: valid out pointers.
        unsafe { HcsWaitForOperationResultAndProcessInfo(op, 60_000, &mut pi, null_mut()) },
        S_OK
    );
    assert!(pi.StdOutput >= 0);
    let mut buf = [0u8; 16];
    // SAFETY: reading into a local buffer from the descriptor we own.
    let n = unsafe { libc::read(pi.StdOutput, buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n > 0 && buf.starts_with(b"ready"), "the trap is set");
    // SAFETY: we own the descriptor.
    unsafe { libc::close(pi.StdOutput) };
    HcsCloseProcess(proc_);
    let shutdown = w(r#"{"TimeoutInMs":60000}"#);
    assert_eq!(
        // SAFETY: valid string.
        unsafe { HcsShutDownComputeSystem(sys, op, shutdown.as_ptr()) },
        S_OK
    );
    let t = std::time::Instant::now();
    // SAFETY: valid out pointer.
    let hr = unsafe { HcsWaitForOperationResult(op, 200, &mut docp) };
    assert_eq!(hr, HResult::HCS_E_OPERATION_TIMEOUT.0);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(docp.is_null());
    assert_eq!(
        // The work goes on: still pending, and it cannot take another call.
        // SAFETY: no out pointer.
        unsafe { HcsGetOperationResult(op, null_mut()) },
        HResult::HCS_E_OPERATION_PENDING.0
    );
    assert_eq!(
        // SAFETY: no strings.
        unsafe { HcsPauseComputeSystem(sys, op, null()) },
        HResult::HCS_E_OPERATION_ALREADY_STARTED.0
    );
    assert_eq!(HcsGetOperationType(op), 3, "still the Shutdown");
    // Terminate with another operation; the shutdown then completes too.
    let op2 = HcsCreateOperation(null_mut(), None);
    // SAFETY: no strings.
    assert_eq!(unsafe { HcsTerminateComputeSystem(sys, op2, null()) }, S_OK);
    assert_eq!(wait(op2), S_OK);
    // SAFETY: no out pointer.
    let hr = unsafe { HcsWaitForOperationResult(op, 60_000, null_mut()) };
    assert_ne!(hr, HResult::HCS_E_OPERATION_TIMEOUT.0);
    assert_ne!(hr, HResult::HCS_E_OPERATION_PENDING.0);
    HcsCloseOperation(op2);
    HcsCloseComputeSystem(sys);
    HcsCloseOperation(op);
}

type Seen = Mutex<Vec<(u32, usize, Option<String>)>>;

struct EventSink {
    seen: Seen,
    tx: Mutex<mpsc::Sender<u32>>,
}

unsafe extern "C" fn on_event(event: *mut HCS_EVENT, ctx: *mut libc::c_void) {
    // SAFETY: the test passes an EventSink that outlives the handle.
    let sink = unsafe { &*(ctx as *const EventSink) };
    // SAFETY: the library passes a valid event for the call.
    let ev = unsafe { &*event };
    let data = (!ev.EventData.is_null()).then(|| {
        let mut n = 0;
        // SAFETY: NUL-terminated, valid during the callback.
        while unsafe { *ev.EventData.wrapping_add(n) } != 0 {
            n += 1;
        }
        // SAFETY: `n` units are readable.
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(ev.EventData, n) })
    });
    let mut data = data;
    if ev.Type == 0x0100_0000 {
        // HcsEventOperationCallback: read the result and close the operation,
        // as the sample does. (No assert here: a panic must not unwind out of
        // an extern "C" function; the result is checked by the test.)
        // SAFETY: no out pointer.
        let hr = unsafe { HcsGetOperationResult(ev.Operation, null_mut()) };
        data = Some(format!("hr={hr}"));
        HcsCloseOperation(ev.Operation);
    }
    if let Ok(mut seen) = sink.seen.lock() {
        seen.push((ev.Type, ev.Operation as usize, data));
    }
    if let Ok(tx) = sink.tx.lock() {
        let _ = tx.send(ev.Type);
    }
}

unsafe extern "C" fn never(_op: HCS_OPERATION, _ctx: *mut libc::c_void) {}

#[test]
fn system_event_callback_gets_operation_completions_and_the_exit() {
    let ns = setup("events");
    let (tx, rx) = mpsc::channel();
    let sink = Box::new(EventSink {
        seen: Mutex::new(Vec::new()),
        tx: Mutex::new(tx),
    });
    let ctx = (&*sink as *const EventSink).cast::<libc::c_void>();
    // Pattern C: the create's operation has no callback and is not kept.
    let create_op = HcsCreateOperation(null_mut(), None);
    let mut sys: HCS_SYSTEM = null_mut();
    let id = w("events");
    assert_eq!(
        // SAFETY: valid strings and out pointer.
        unsafe {
            HcsCreateComputeSystemInNamespace(
                ns.as_ptr(),
                id.as_ptr(),
                doc().as_ptr(),
                create_op,
                null(),
                &mut sys,
            )
        },
        S_OK
    );
    assert_eq!(HcsGetComputeSystemFromOperation(create_op), sys);
    // Registered after create returned: the create's completion still arrives.
    assert_eq!(
        HcsSetComputeSystemCallback(sys, 1, ctx, Some(on_event)),
        S_OK
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        0x0100_0000
    );
    // The callback closed it.
    assert_eq!(HcsGetOperationType(create_op), -1);
    // A second registration is refused.
    assert_eq!(
        HcsSetComputeSystemCallback(sys, 0, ctx, Some(on_event)),
        HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET.0
    );
    // An operation with its own callback is refused on this handle.
    let with_cb = HcsCreateOperation(null_mut(), Some(never));
    assert_eq!(
        // SAFETY: no strings.
        unsafe { HcsStartComputeSystem(sys, with_cb, null()) },
        HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET.0
    );
    HcsCloseOperation(with_cb);
    // Start through a callback-less operation: completion as an event.
    let start_op = HcsCreateOperation(null_mut(), None);
    assert_eq!(
        // SAFETY: no strings.
        unsafe { HcsStartComputeSystem(sys, start_op, null()) },
        S_OK
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        0x0100_0000
    );

    // A second handle to the same system, opened by id.
    let mut other: HCS_SYSTEM = null_mut();
    assert_eq!(
        // SAFETY: valid strings and out pointer.
        unsafe {
            HcsOpenComputeSystemInNamespace(ns.as_ptr(), id.as_ptr(), 0x1000_0000, &mut other)
        },
        S_OK
    );
    assert_ne!(other, sys);
    // Terminate through the second handle; the first handle's callback sees the exit.
    let op = HcsCreateOperation(null_mut(), None);
    assert_eq!(
        // SAFETY: no strings.
        unsafe { HcsTerminateComputeSystem(other, op, null()) },
        S_OK
    );
    assert_eq!(wait(op), S_OK);
    assert_eq!(HcsGetComputeSystemFromOperation(op), other);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        1,
        "SystemExited"
    );
    HcsCloseOperation(op);
    HcsCloseComputeSystem(other);
    HcsCloseComputeSystem(sys);
    let seen = sink.seen.lock().unwrap();
    let exit = seen.iter().find(|(t, _, _)| *t == 1).unwrap();
    assert!(
        exit.2.as_deref().unwrap_or("").contains("ExitType"),
        "{:?}",
        exit.2
    );
    for (t, _, d) in seen.iter().filter(|(t, _, _)| *t == 0x0100_0000) {
        assert_eq!(d.as_deref(), Some("hr=0"), "operation completion {t:#x}");
    }
    assert!(
        seen.iter().all(|(t, _, _)| *t != 0),
        "HcsEventInvalid is never delivered"
    );
    drop(seen);
    // No callback after the close: the sink can go.
    drop(sink);
}
