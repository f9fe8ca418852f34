//! Unit tests of the exports that need no compute system: handle
//! validation, the operation rules, callbacks, the unimplemented exports.
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "each block is a C client's sequence of calls with the same preconditions, as in the C samples"
)]

use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use hcs_errors::HResult;

use crate::*;

const E_NOTIMPL: HRESULT = HResult::E_NOTIMPL.0;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A namespace of its own, empty: enumerations there complete at once.
fn empty_namespace(tag: &str) -> Vec<u16> {
    static N: AtomicUsize = AtomicUsize::new(0);
    w(&format!(
        "capiunit{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Bind `op` to an enumeration of an empty namespace (completes quickly).
fn enumerate(op: HCS_OPERATION) -> HRESULT {
    let ns = empty_namespace("enum");
    // SAFETY: NUL-terminated strings.
    unsafe { HcsEnumerateComputeSystemsInNamespace(ns.as_ptr(), null(), op) }
}

fn forged() -> *mut libc::c_void {
    0x1234_5670 as *mut libc::c_void
}

#[test]
fn null_handles_are_invalid_arguments_and_getters_are_safe() {
    let mut doc: PWSTR = null_mut();
    // SAFETY: valid out pointer.
    unsafe {
        assert_eq!(HcsGetOperationResult(null_mut(), &mut doc), E_INVALIDARG);
        assert_eq!(
            HcsWaitForOperationResult(null_mut(), 0, &mut doc),
            E_INVALIDARG
        );
        assert_eq!(
            HcsStartComputeSystem(null_mut(), null_mut(), null()),
            E_INVALIDARG
        );
        assert_eq!(
            HcsTerminateProcess(null_mut(), null_mut(), null()),
            E_INVALIDARG
        );
        assert_eq!(
            HcsWaitForComputeSystemExit(null_mut(), 0, &mut doc),
            E_INVALIDARG
        );
        assert_eq!(HcsWaitForProcessExit(null_mut(), 0, &mut doc), E_INVALIDARG);
    }
    assert!(doc.is_null());
    assert_eq!(HcsSetOperationContext(null_mut(), null_mut()), E_INVALIDARG);
    assert_eq!(HcsCancelOperation(null_mut()), E_INVALIDARG);
    assert_eq!(HcsGetProcessInfo(null_mut(), null_mut()), E_INVALIDARG);
    assert_eq!(
        HcsSetComputeSystemCallback(null_mut(), 0, null(), None),
        E_INVALIDARG
    );
    assert!(HcsGetOperationContext(null_mut()).is_null());
    assert!(HcsGetComputeSystemFromOperation(null_mut()).is_null());
    assert!(HcsGetProcessFromOperation(null_mut()).is_null());
    assert_eq!(HcsGetOperationType(null_mut()), -1);
    assert_eq!(HcsGetOperationId(null_mut()), u64::MAX);
    // Closing NULL does nothing.
    HcsCloseOperation(null_mut());
    HcsCloseComputeSystem(null_mut());
    HcsCloseProcess(null_mut());
}

#[test]
fn forged_closed_and_wrong_kind_handles_are_e_handle() {
    let op = HcsCreateOperation(null_mut(), None);
    assert!(!op.is_null());
    // SAFETY: no out pointers.
    unsafe {
        // Forged.
        assert_eq!(HcsGetOperationResult(forged(), null_mut()), E_HANDLE);
        assert_eq!(HcsStartComputeSystem(forged(), op, null()), E_HANDLE);
        // Wrong kind: an operation used as a system or a process.
        assert_eq!(HcsStartComputeSystem(op, op, null()), E_HANDLE);
        assert_eq!(HcsSignalProcess(op, op, null()), E_HANDLE);
        assert_eq!(HcsWaitForComputeSystemExit(op, 0, null_mut()), E_HANDLE);
    }
    assert_eq!(HcsGetProcessInfo(op, op), E_HANDLE);
    // Closing it as the wrong kind leaves it open.
    HcsCloseComputeSystem(op);
    HcsCloseProcess(op);
    assert_eq!(
        // SAFETY: no out pointer.
        unsafe { HcsGetOperationResult(op, null_mut()) },
        HResult::HCS_E_OPERATION_NOT_STARTED.0
    );
    // Closed.
    HcsCloseOperation(op);
    // SAFETY: no out pointer.
    assert_eq!(unsafe { HcsGetOperationResult(op, null_mut()) }, E_HANDLE);
    assert_eq!(HcsSetOperationContext(op, null_mut()), E_HANDLE);
    assert_eq!(HcsGetOperationType(op), -1);
    assert_eq!(HcsGetOperationId(op), u64::MAX);
    assert_eq!(enumerate(op), E_HANDLE);
    // Closing twice is harmless.
    HcsCloseOperation(op);
}

#[test]
fn a_new_operation_is_not_started() {
    let mut ctx = 7u32;
    let op = HcsCreateOperation((&mut ctx as *mut u32).cast::<libc::c_void>(), None);
    assert_eq!(HcsGetOperationType(op), -1);
    assert_ne!(HcsGetOperationId(op), u64::MAX);
    assert_eq!(
        HcsGetOperationContext(op),
        (&mut ctx as *mut u32).cast::<libc::c_void>()
    );
    let mut doc: PWSTR = null_mut();
    // SAFETY: valid out pointer.
    unsafe {
        assert_eq!(
            HcsGetOperationResult(op, &mut doc),
            HResult::HCS_E_OPERATION_NOT_STARTED.0
        );
        assert_eq!(
            HcsWaitForOperationResult(op, 10, &mut doc),
            HResult::HCS_E_OPERATION_NOT_STARTED.0
        );
    }
    assert!(doc.is_null());
    let other = HcsCreateOperation(null_mut(), None);
    assert_ne!(HcsGetOperationId(op), HcsGetOperationId(other));
    assert_eq!(HcsSetOperationContext(op, null_mut()), S_OK);
    assert!(HcsGetOperationContext(op).is_null());
    HcsCloseOperation(other);
    HcsCloseOperation(op);
}

#[test]
fn process_info_variants_refuse_other_operation_types() {
    let op = HcsCreateOperation(null_mut(), None);
    let mut pi = HCS_PROCESS_INFORMATION {
        ProcessId: 9,
        Reserved: 9,
        StdInput: 9,
        StdOutput: 9,
        StdError: 9,
    };
    // Not started.
    // SAFETY: valid out pointers.
    unsafe {
        assert_eq!(
            HcsGetOperationResultAndProcessInfo(op, &mut pi, null_mut()),
            E_INVALIDARG
        );
    }
    assert_eq!((pi.StdInput, pi.StdOutput, pi.StdError), (-1, -1, -1));
    // A completed enumeration.
    assert_eq!(enumerate(op), S_OK);
    let mut doc: PWSTR = null_mut();
    // SAFETY: valid out pointers.
    unsafe {
        assert_eq!(HcsWaitForOperationResult(op, 10_000, &mut doc), S_OK);
        // SAFETY: `doc` is a string from the library.
        let text = strings::from_wide(doc, "doc").unwrap();
        assert_eq!(text, "[]");
        LocalFree(doc.cast());
        assert_eq!(HcsGetOperationType(op), 0, "HcsOperationTypeEnumerate");
        assert_eq!(
            HcsGetOperationResultAndProcessInfo(op, &mut pi, null_mut()),
            E_INVALIDARG
        );
        assert_eq!(
            HcsWaitForOperationResultAndProcessInfo(op, 0, &mut pi, null_mut()),
            E_INVALIDARG
        );
        assert_eq!(
            HcsWaitForOperationResultAndProcessInfo(op, 0, null_mut(), null_mut()),
            E_INVALIDARG
        );
    }
    // A completed operation is reused.
    assert_eq!(enumerate(op), S_OK);
    assert_eq!(
        // SAFETY: no out pointer.
        unsafe { HcsWaitForOperationResult(op, 10_000, null_mut()) },
        S_OK
    );
    HcsCloseOperation(op);
}

#[test]
fn an_invalid_query_fails_the_call_and_the_operation() {
    let op = HcsCreateOperation(null_mut(), None);
    let ns = empty_namespace("badquery");
    let query = w("{\"Ids\": 5}");
    // SAFETY: NUL-terminated strings.
    let hr = unsafe { HcsEnumerateComputeSystemsInNamespace(ns.as_ptr(), query.as_ptr(), op) };
    assert_eq!(hr, HResult::HCS_E_INVALID_JSON.0);
    let mut doc: PWSTR = null_mut();
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { HcsGetOperationResult(op, &mut doc) }, hr);
    assert!(!doc.is_null(), "a ResultError document");
    // SAFETY: a string from the library.
    unsafe {
        assert!(strings::from_wide(doc, "doc")
            .unwrap()
            .contains("ErrorMessage"));
        CoTaskMemFree(doc.cast());
    }
    // Bad UTF-16 is an invalid argument.
    let bad = [0xDC00u16, 0];
    assert_eq!(
        // SAFETY: NUL-terminated.
        unsafe { HcsEnumerateComputeSystemsInNamespace(bad.as_ptr(), null(), op) },
        E_INVALIDARG
    );
    HcsCloseOperation(op);
}

struct Probe {
    tx: std::sync::Mutex<mpsc::Sender<(usize, usize, i32, bool)>>,
    main: std::thread::ThreadId,
}

unsafe extern "C" fn record_and_close(op: HCS_OPERATION, ctx: *mut libc::c_void) {
    // SAFETY: the test passes a Probe that outlives the callback.
    let probe = unsafe { &*(ctx as *const Probe) };
    // SAFETY: no out pointer.
    let hr = unsafe { HcsGetOperationResult(op, null_mut()) };
    let other_thread = std::thread::current().id() != probe.main;
    // Closing the operation inside its own callback.
    HcsCloseOperation(op);
    let _ = probe
        .tx
        .lock()
        .unwrap()
        .send((op as usize, ctx as usize, hr, other_thread));
}

#[test]
fn the_completion_callback_runs_on_a_library_thread_and_may_close_the_operation() {
    let (tx, rx) = mpsc::channel();
    let probe = Box::new(Probe {
        tx: std::sync::Mutex::new(tx),
        main: std::thread::current().id(),
    });
    let ctx = &*probe as *const Probe as *mut libc::c_void;
    let op = HcsCreateOperation(ctx, Some(record_and_close));
    assert_eq!(enumerate(op), S_OK);
    let (got_op, got_ctx, hr, other) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (got_op, got_ctx, hr, other),
        (op as usize, ctx as usize, S_OK, true)
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "exactly one callback"
    );
    // It was closed by the callback.
    assert_eq!(HcsGetOperationType(op), -1);
    // A callback set later (HcsSetOperationCallback) runs as well.
    let op = HcsCreateOperation(null_mut(), None);
    assert_eq!(
        HcsSetOperationCallback(op, ctx, Some(record_and_close)),
        S_OK
    );
    assert_eq!(enumerate(op), S_OK);
    let (got_op, _, hr, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((got_op, hr), (op as usize, S_OK));
    drop(probe);
}

unsafe extern "C" fn record_event(event: *mut crate::HCS_EVENT, ctx: *mut libc::c_void) {
    // SAFETY: the test passes a Probe that outlives the callback.
    let probe = unsafe { &*(ctx as *const Probe) };
    // SAFETY: the library passes a valid event for the duration of the call.
    let event = unsafe { &*event };
    // SAFETY: no out pointer.
    let hr = unsafe { HcsGetOperationResult(event.Operation, null_mut()) };
    let other_thread = std::thread::current().id() != probe.main;
    let _ = probe.tx.lock().unwrap().send((
        event.Operation as usize,
        event.Type as usize,
        hr,
        other_thread && event.EventData.is_null(),
    ));
}

#[test]
fn an_operation_with_notifications_reports_its_completion_as_an_event() {
    assert!(
        HcsCreateOperationWithNotifications(0, null_mut(), None).is_null(),
        "no callback, no operation"
    );
    let (tx, rx) = mpsc::channel();
    let probe = Box::new(Probe {
        tx: std::sync::Mutex::new(tx),
        main: std::thread::current().id(),
    });
    let ctx = &*probe as *const Probe as *mut libc::c_void;
    let op = HcsCreateOperationWithNotifications(1, ctx, Some(record_event));
    assert!(!op.is_null());
    assert_eq!(enumerate(op), S_OK);
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // HcsEventOperationCallback, for this operation, with its result, on a
    // library thread and without event data.
    assert_eq!(got, (op as usize, 0x0100_0000, S_OK, true));
    HcsCloseOperation(op);
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "one event"
    );
    drop(probe);
}

static BLOCK: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> =
    std::sync::Mutex::new(None);
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn blocking_callback(_op: HCS_OPERATION, _ctx: *mut libc::c_void) {
    CALLS.fetch_add(1, Ordering::SeqCst);
    let (started, release) = BLOCK.lock().unwrap().take().unwrap();
    started.send(()).unwrap();
    release.recv().unwrap();
    CALLS.fetch_add(10, Ordering::SeqCst);
}

#[test]
fn closing_waits_for_the_running_callback_and_none_comes_after() {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *BLOCK.lock().unwrap() = Some((started_tx, release_rx));
    let op = HcsCreateOperation(null_mut(), Some(blocking_callback));
    assert_eq!(enumerate(op), S_OK);
    started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let op_addr = op as usize;
    let closer = std::thread::spawn(move || HcsCloseOperation(op_addr as HCS_OPERATION));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !closer.is_finished(),
        "HcsCloseOperation returned while its callback was running"
    );
    release_tx.send(()).unwrap();
    closer.join().unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 11);
    // After the close the handle is dead.
    assert_eq!(HcsGetOperationType(op), -1);
}

#[test]
fn unimplemented_and_unsupported_exports_say_so() {
    let op = HcsCreateOperation(null_mut(), None);
    assert_eq!(HcsCancelOperation(op), E_NOTIMPL);
    let path = w("/tmp/x.vmrs");
    assert_eq!(HcsCreateEmptyRuntimeStateFile(path.as_ptr()), E_NOTIMPL);
    assert_eq!(HcsGrantVmAccess(path.as_ptr(), path.as_ptr()), E_NOTIMPL);
    assert_eq!(HcsSubmitWerReport(path.as_ptr()), E_NOTIMPL);
    let settings = w("{\"PropertyType\":\"CpuGroup\"}");
    let mut doc: PWSTR = null_mut();
    // SAFETY: valid strings and out pointer.
    unsafe {
        assert_eq!(
            HcsModifyServiceSettings(settings.as_ptr(), &mut doc),
            HResult::ERROR_NOT_SUPPORTED.0
        );
        assert!(!doc.is_null());
        LocalFree(doc.cast());
        // Service properties.
        assert_eq!(HcsGetServiceProperties(null(), &mut doc), S_OK);
        assert!(strings::from_wide(doc, "d")
            .unwrap()
            .contains("SupportedSchemaVersions"));
        LocalFree(doc.cast());
        assert_eq!(HcsGetServiceProperties(null(), null_mut()), E_INVALIDARG);
    }
    HcsCloseOperation(op);
}

#[test]
fn opening_a_missing_system_is_system_not_found() {
    let ns = empty_namespace("open");
    let id = w("nope");
    let mut sys: HCS_SYSTEM = forged();
    // SAFETY: valid strings and out pointer.
    let hr =
        unsafe { HcsOpenComputeSystemInNamespace(ns.as_ptr(), id.as_ptr(), 0x1000_0000, &mut sys) };
    assert_eq!(hr, HResult::HCS_E_SYSTEM_NOT_FOUND.0);
    assert!(sys.is_null(), "the out handle is cleared on failure");
    // SAFETY: as above.
    let hr = unsafe { HcsOpenComputeSystemInNamespace(ns.as_ptr(), id.as_ptr(), 1, &mut sys) };
    assert_eq!(hr, E_INVALIDARG, "requestedAccess must be GENERIC_ALL");
}

#[test]
fn create_refuses_a_bad_document_at_once() {
    let op = HcsCreateOperation(null_mut(), None);
    let ns = empty_namespace("create");
    let id = w("bad");
    let doc = w("{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Container\":{\"Bogus\":1}}");
    let mut sys: HCS_SYSTEM = forged();
    // SAFETY: valid strings and out pointer.
    let hr = unsafe {
        HcsCreateComputeSystemInNamespace(
            ns.as_ptr(),
            id.as_ptr(),
            doc.as_ptr(),
            op,
            null(),
            &mut sys,
        )
    };
    assert_eq!(hr, HResult::HCS_E_INVALID_JSON.0);
    assert!(sys.is_null());
    // SAFETY: no out pointer.
    assert_eq!(unsafe { HcsWaitForOperationResult(op, 0, null_mut()) }, hr);
    assert_eq!(HcsGetOperationType(op), 1, "HcsOperationTypeCreate");
    // A NULL out handle is an invalid argument.
    // SAFETY: valid strings.
    let hr = unsafe {
        HcsCreateComputeSystemInNamespace(
            ns.as_ptr(),
            id.as_ptr(),
            doc.as_ptr(),
            op,
            null(),
            null_mut(),
        )
    };
    assert_eq!(hr, E_INVALIDARG);
    // A create-options version other than 1 is refused.
    let version = 2u32;
    // SAFETY: valid strings, options points to a u32.
    let hr = unsafe {
        HcsCreateComputeSystemInNamespace(
            ns.as_ptr(),
            id.as_ptr(),
            doc.as_ptr(),
            op,
            &version,
            &mut sys,
        )
    };
    assert_eq!(hr, E_INVALIDARG);
    HcsCloseOperation(op);
}
