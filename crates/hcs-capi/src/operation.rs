//! `HCS_OPERATION` exports.

use std::os::fd::IntoRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

use hcs::{Operation, OperationType, HCS_INVALID_OPERATION_ID};
use hcs_errors::{HResult, HcsError, HcsResult};

use crate::handles::{self, Object, HCS_OPERATION, HCS_PROCESS, HCS_SYSTEM};
use crate::strings::{clear_out, write_doc};
use crate::{
    guard, guard_hr, HCS_EVENT_CALLBACK, HCS_OPERATION_COMPLETION, HCS_PROCESS_INFORMATION,
    HRESULT, PWSTR,
};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the operation's last call was about (handle values, 0 = none).
#[derive(Default, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) system: usize,
    pub(crate) process: usize,
}

struct CbState {
    callback: HCS_OPERATION_COMPLETION,
    /// For an operation made by HcsCreateOperationWithNotifications: its
    /// completion goes to this event callback as `HcsEventOperationCallback`.
    event_callback: HCS_EVENT_CALLBACK,
    context: usize,
    closed: bool,
    /// Threads inside the C completion callback right now.
    running: Vec<ThreadId>,
}

/// The C side of an operation: its callback, context and close state.
pub(crate) struct OpShared {
    handle: usize,
    state: Mutex<CbState>,
    cond: Condvar,
}

impl OpShared {
    /// Run the C completion callback (on an hcs library thread), unless the
    /// handle was closed.
    fn invoke(&self) {
        let (cb, event_cb, ctx) = {
            let mut st = lock(&self.state);
            if st.closed || (st.callback.is_none() && st.event_callback.is_none()) {
                return;
            }
            st.running.push(std::thread::current().id());
            (st.callback, st.event_callback, st.context)
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(cb) = cb {
                // SAFETY: `cb` is the caller's HCS_OPERATION_COMPLETION, called
                // with the handle and context it registered, as documented.
                unsafe { cb(self.handle as HCS_OPERATION, ctx as *mut libc::c_void) }
            } else if let Some(cb) = event_cb {
                let mut event = crate::HCS_EVENT {
                    Type: hcs::EventType::OperationCallback as u32,
                    EventData: std::ptr::null(),
                    Operation: self.handle as HCS_OPERATION,
                };
                // SAFETY: `cb` is the caller's HCS_EVENT_CALLBACK; the event
                // lives on this stack frame for the duration of the call.
                unsafe { cb(&mut event, ctx as *mut libc::c_void) }
            }
        }));
        let mut st = lock(&self.state);
        let me = std::thread::current().id();
        if let Some(i) = st.running.iter().position(|t| *t == me) {
            st.running.swap_remove(i);
        }
        self.cond.notify_all();
    }

    /// Close: no callback starts after this, and one running on another
    /// thread is waited for (one running on this thread is the close from
    /// inside the callback, allowed).
    fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        let me = std::thread::current().id();
        while st.running.iter().any(|t| *t != me) {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A live `HCS_OPERATION`.
pub(crate) struct OpEntry {
    pub(crate) op: Operation,
    shared: Arc<OpShared>,
    pub(crate) target: Mutex<Target>,
}

impl OpEntry {
    /// Install (or remove, with NULL) the C completion callback.
    fn set_callback(&self, context: usize, callback: HCS_OPERATION_COMPLETION) {
        let any = {
            let mut st = lock(&self.shared.state);
            st.callback = callback;
            st.context = context;
            callback.is_some() || st.event_callback.is_some()
        };
        if any {
            let shared = self.shared.clone();
            self.op
                .set_callback(Some(Arc::new(move |_: &Operation| shared.invoke())));
        } else {
            self.op.set_callback(None);
        }
    }

    /// Record the handle the next call is about.
    pub(crate) fn set_target(&self, target: Target) {
        *lock(&self.target) = target;
    }
}

/// A new operation handle; its completion goes to `callback` or, failing
/// that, to `event_callback`.
fn create_operation(
    context: *mut libc::c_void,
    callback: HCS_OPERATION_COMPLETION,
    event_callback: HCS_EVENT_CALLBACK,
) -> HCS_OPERATION {
    let handle = handles::reserve();
    let entry = Arc::new(OpEntry {
        op: Operation::new(),
        shared: Arc::new(OpShared {
            handle,
            state: Mutex::new(CbState {
                callback: None,
                event_callback,
                context: context as usize,
                closed: false,
                running: Vec::new(),
            }),
            cond: Condvar::new(),
        }),
        target: Mutex::new(Target::default()),
    });
    entry.set_callback(context as usize, callback);
    handles::insert(handle, Object::Operation(entry));
    handle as HCS_OPERATION
}

/// `HcsCreateOperation`. NULL only if the library failed internally.
#[no_mangle]
pub extern "C" fn HcsCreateOperation(
    context: *mut libc::c_void,
    callback: HCS_OPERATION_COMPLETION,
) -> HCS_OPERATION {
    guard(std::ptr::null_mut(), || {
        create_operation(context, callback, None)
    })
}

/// `HcsCreateOperationWithNotifications` (undocumented): an operation whose
/// completion is delivered to `callback` as an `HcsEventOperationCallback`
/// event (the documented event for operation completions). This library
/// has no progress events, so the `eventTypes` options
/// (`HcsOperationOptionProgressUpdate`) deliver nothing more. NULL when
/// `callback` is NULL.
#[no_mangle]
pub extern "C" fn HcsCreateOperationWithNotifications(
    _event_types: u32,
    context: *mut libc::c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HCS_OPERATION {
    guard(std::ptr::null_mut(), || {
        if callback.is_none() {
            return std::ptr::null_mut();
        }
        create_operation(context, None, callback)
    })
}

/// `HcsCloseOperation`: allowed at any time, also from inside the
/// operation's own callback. A call still in flight goes on and its result
/// is discarded; no callback of this operation starts after this returns.
#[no_mangle]
pub extern "C" fn HcsCloseOperation(operation: HCS_OPERATION) {
    guard((), || {
        if let Some(Object::Operation(entry)) =
            handles::remove(operation, |o| matches!(o, Object::Operation(_)))
        {
            entry.shared.close();
            entry.op.set_callback(None);
        }
    })
}

/// `HcsGetOperationContext`: NULL for an invalid handle.
#[no_mangle]
pub extern "C" fn HcsGetOperationContext(operation: HCS_OPERATION) -> *mut libc::c_void {
    guard(std::ptr::null_mut(), || {
        match handles::operation(operation) {
            Ok(e) => lock(&e.shared.state).context as *mut libc::c_void,
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// `HcsSetOperationContext`.
#[no_mangle]
pub extern "C" fn HcsSetOperationContext(
    operation: HCS_OPERATION,
    context: *mut libc::c_void,
) -> HRESULT {
    guard_hr(|| {
        let e = handles::operation(operation)?;
        lock(&e.shared.state).context = context as usize;
        Ok(())
    })
}

/// The handle (system or process, picked by `pick`) that the operation's
/// current call is about, if the call has one and the handle is still open.
fn target_handle(
    operation: HCS_OPERATION,
    pick: impl Fn(&Target, &Operation) -> Option<usize>,
) -> *mut libc::c_void {
    guard(std::ptr::null_mut(), || {
        let Ok(e) = handles::operation(operation) else {
            return std::ptr::null_mut();
        };
        let t = *lock(&e.target);
        match pick(&t, &e.op) {
            Some(h) if h != 0 && handles::is_live(h) => h as *mut libc::c_void,
            _ => std::ptr::null_mut(),
        }
    })
}

/// `HcsGetComputeSystemFromOperation`: the system handle the operation's call
/// is about, NULL if none (not started, a process call, or the handle closed).
#[no_mangle]
pub extern "C" fn HcsGetComputeSystemFromOperation(operation: HCS_OPERATION) -> HCS_SYSTEM {
    target_handle(operation, |t, op| op.system().map(|_| t.system)) as HCS_SYSTEM
}

/// `HcsGetProcessFromOperation`.
#[no_mangle]
pub extern "C" fn HcsGetProcessFromOperation(operation: HCS_OPERATION) -> HCS_PROCESS {
    target_handle(operation, |t, op| op.process().map(|_| t.process)) as HCS_PROCESS
}

/// `HcsGetOperationType`: `HcsOperationTypeNone` (-1) before any call, and
/// for an invalid handle.
#[no_mangle]
pub extern "C" fn HcsGetOperationType(operation: HCS_OPERATION) -> i32 {
    guard(OperationType::None as i32, || {
        match handles::operation(operation) {
            Ok(e) => e.op.operation_type() as i32,
            Err(_) => OperationType::None as i32,
        }
    })
}

/// `HcsGetOperationId`: `HCS_INVALID_OPERATION_ID` for an invalid handle.
#[no_mangle]
pub extern "C" fn HcsGetOperationId(operation: HCS_OPERATION) -> u64 {
    guard(HCS_INVALID_OPERATION_ID, || {
        match handles::operation(operation) {
            Ok(e) => e.op.id(),
            Err(_) => HCS_INVALID_OPERATION_ID,
        }
    })
}

/// Hand an HRESULT and document to the caller.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
unsafe fn finish(hr: HResult, doc: Option<String>, out: *mut PWSTR) -> HRESULT {
    // SAFETY: caller's contract on `out`.
    match unsafe { write_doc(out, doc.as_deref()) } {
        Ok(()) => hr.0,
        Err(e) => e.hresult.0,
    }
}

/// `HcsGetOperationResult`: S_OK, `HCS_E_OPERATION_NOT_STARTED`,
/// `HCS_E_OPERATION_PENDING`, or the call's failure; `resultDocument` (if
/// not NULL) gets the result document or NULL.
///
/// # Safety
/// `resultDocument` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsGetOperationResult(
    operation: HCS_OPERATION,
    resultDocument: *mut PWSTR,
) -> HRESULT {
    guard(crate::E_FAIL, || {
        // SAFETY: caller's contract on `resultDocument`.
        unsafe { clear_out(resultDocument) };
        let e = match handles::operation(operation) {
            Ok(e) => e,
            Err(err) => return err.hresult.0,
        };
        let (hr, doc) = e.op.result_raw();
        // SAFETY: caller's contract on `resultDocument`.
        unsafe { finish(hr, doc, resultDocument) }
    })
}

/// `HcsWaitForOperationResult`: as [`HcsGetOperationResult`] after waiting
/// up to `timeoutMs` (`INFINITE` allowed); `HCS_E_OPERATION_TIMEOUT` when
/// the time runs out (the call goes on).
///
/// # Safety
/// `resultDocument` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsWaitForOperationResult(
    operation: HCS_OPERATION,
    timeoutMs: u32,
    resultDocument: *mut PWSTR,
) -> HRESULT {
    guard(crate::E_FAIL, || {
        // SAFETY: caller's contract on `resultDocument`.
        unsafe { clear_out(resultDocument) };
        let e = match handles::operation(operation) {
            Ok(e) => e,
            Err(err) => return err.hresult.0,
        };
        let (hr, doc) = e.op.wait_raw(timeoutMs);
        // SAFETY: caller's contract on `resultDocument`.
        unsafe { finish(hr, doc, resultDocument) }
    })
}

/// Fill the caller's process information (if any) and result document.
///
/// # Safety
/// `info` is NULL or valid for writing one `HCS_PROCESS_INFORMATION`;
/// `out` is NULL or valid for writing one pointer.
unsafe fn finish_process(
    got: (HResult, Option<hcs::ProcessInformation>, Option<String>),
    info: *mut HCS_PROCESS_INFORMATION,
    out: *mut PWSTR,
) -> HRESULT {
    let (hr, pi, doc) = got;
    if let Some(pi) = pi {
        if !info.is_null() {
            let fd = |f: Option<std::os::fd::OwnedFd>| f.map(|f| f.into_raw_fd()).unwrap_or(-1);
            let c = HCS_PROCESS_INFORMATION {
                ProcessId: pi.process_id,
                Reserved: 0,
                StdInput: fd(pi.std_input),
                StdOutput: fd(pi.std_output),
                StdError: fd(pi.std_error),
            };
            // SAFETY: caller's contract on `info`.
            unsafe { info.write(c) };
        }
        // Without `info` the descriptors are closed here.
    }
    // SAFETY: caller's contract on `out`.
    unsafe { finish(hr, doc, out) }
}

const EMPTY_INFO: HCS_PROCESS_INFORMATION = HCS_PROCESS_INFORMATION {
    ProcessId: 0,
    Reserved: 0,
    StdInput: -1,
    StdOutput: -1,
    StdError: -1,
};

/// Reset the out parameters of the `...AndProcessInfo` calls.
///
/// # Safety
/// As [`finish_process`].
unsafe fn clear_process_outs(info: *mut HCS_PROCESS_INFORMATION, out: *mut PWSTR) {
    if !info.is_null() {
        // SAFETY: caller's contract on `info`.
        unsafe { info.write(EMPTY_INFO) };
    }
    // SAFETY: caller's contract on `out`.
    unsafe { clear_out(out) };
}

/// `HcsGetOperationResultAndProcessInfo`: `E_INVALIDARG` unless the
/// operation tracked HcsCreateProcess or HcsGetProcessInfo. The standard
/// handles are file descriptors (-1 when absent), owned by the caller and
/// handed over once.
///
/// # Safety
/// `processInformation` is NULL or valid for writing one
/// `HCS_PROCESS_INFORMATION`; `resultDocument` is NULL or valid for writing
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsGetOperationResultAndProcessInfo(
    operation: HCS_OPERATION,
    processInformation: *mut HCS_PROCESS_INFORMATION,
    resultDocument: *mut PWSTR,
) -> HRESULT {
    guard(crate::E_FAIL, || {
        // SAFETY: caller's contract.
        unsafe { clear_process_outs(processInformation, resultDocument) };
        let e = match handles::operation(operation) {
            Ok(e) => e,
            Err(err) => return err.hresult.0,
        };
        if !is_process_info_type(e.op.operation_type()) {
            return HResult::E_INVALIDARG.0;
        }
        let got = e.op.result_and_process_info_raw();
        // SAFETY: caller's contract.
        unsafe { finish_process(got, processInformation, resultDocument) }
    })
}

/// `HcsWaitForOperationResultAndProcessInfo`.
///
/// # Safety
/// As [`HcsGetOperationResultAndProcessInfo`].
#[no_mangle]
pub unsafe extern "C" fn HcsWaitForOperationResultAndProcessInfo(
    operation: HCS_OPERATION,
    timeoutMs: u32,
    processInformation: *mut HCS_PROCESS_INFORMATION,
    resultDocument: *mut PWSTR,
) -> HRESULT {
    guard(crate::E_FAIL, || {
        // SAFETY: caller's contract.
        unsafe { clear_process_outs(processInformation, resultDocument) };
        let e = match handles::operation(operation) {
            Ok(e) => e,
            Err(err) => return err.hresult.0,
        };
        let got = e.op.wait_process_info_raw(timeoutMs);
        // SAFETY: caller's contract.
        unsafe { finish_process(got, processInformation, resultDocument) }
    })
}

fn is_process_info_type(t: OperationType) -> bool {
    matches!(
        t,
        OperationType::CreateProcess | OperationType::GetProcessInfo
    )
}

/// `HcsSetOperationCallback`: attach or replace the completion callback
/// (NULL removes it).
#[no_mangle]
pub extern "C" fn HcsSetOperationCallback(
    operation: HCS_OPERATION,
    context: *const libc::c_void,
    callback: HCS_OPERATION_COMPLETION,
) -> HRESULT {
    guard_hr(|| {
        let e = handles::operation(operation)?;
        e.set_callback(context as usize, callback);
        Ok(())
    })
}

/// `HcsCancelOperation`: `E_NOTIMPL`, as Microsoft documents it.
#[no_mangle]
pub extern "C" fn HcsCancelOperation(operation: HCS_OPERATION) -> HRESULT {
    guard_hr(|| {
        let e = handles::operation(operation)?;
        e.op.cancel()
    })
}

/// `HcsAddResourceToOperation` (undocumented): `E_NOTIMPL` (no live migration).
#[no_mangle]
pub extern "C" fn HcsAddResourceToOperation(
    operation: HCS_OPERATION,
    _type: i32,
    _uri: crate::PCWSTR,
    _handle: *mut libc::c_void,
) -> HRESULT {
    guard_hr(|| {
        handles::operation(operation)?;
        Err(HcsError::from_code(HResult::E_NOTIMPL))
    })
}

/// The live operation behind a handle (for the system and process calls).
pub(crate) fn entry(operation: HCS_OPERATION) -> HcsResult<Arc<OpEntry>> {
    handles::operation(operation)
}

/// `HcsGetOperationProperties` (undocumented): `E_NOTIMPL`.
///
/// # Safety
/// `resultDocument` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsGetOperationProperties(
    operation: HCS_OPERATION,
    _options: crate::PCWSTR,
    resultDocument: *mut PWSTR,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(resultDocument) };
        handles::operation(operation)?;
        Err(HcsError::from_code(HResult::E_NOTIMPL))
    })
}
