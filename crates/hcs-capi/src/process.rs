//! `HCS_PROCESS` exports.

use std::sync::Arc;

use hcs::{EventOptions, Operation, Process};
use hcs_errors::HcsResult;

use crate::handles::{self, Object, HCS_OPERATION, HCS_PROCESS, HCS_SYSTEM};
use crate::operation::{entry, lock, Target};
use crate::strings::{clear_out, from_wide, opt_wide, write_doc};
use crate::system::event_forwarder;
use crate::{guard, guard_hr, null_arg, HCS_EVENT_CALLBACK, HRESULT, PCWSTR, PWSTR};

/// A live `HCS_PROCESS`.
pub(crate) struct ProcEntry {
    pub(crate) process: Process,
}

fn insert_process(handle: usize, process: Process) {
    handles::insert(handle, Object::Process(Arc::new(ProcEntry { process })));
}

/// `HcsCreateProcess` with a `ProcessParameters` document; read the pid and
/// stdio descriptors with HcsWaitForOperationResultAndProcessInfo.
/// `securityDescriptor` is ignored on Linux.
///
/// # Safety
/// `processParameters` is NUL-terminated UTF-16; `process` is valid for
/// writing one handle.
#[no_mangle]
pub unsafe extern "C" fn HcsCreateProcess(
    computeSystem: HCS_SYSTEM,
    processParameters: PCWSTR,
    operation: HCS_OPERATION,
    _securityDescriptor: *const libc::c_void,
    process: *mut HCS_PROCESS,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(process) };
        let sys = handles::system(computeSystem)?;
        let op = entry(operation)?;
        if process.is_null() {
            return Err(null_arg("process"));
        }
        // SAFETY: caller's contract.
        let params = unsafe { from_wide(processParameters, "processParameters") }?;
        let handle = handles::reserve();
        // Held across the call so a completion callback sees the new handle.
        let mut target = lock(&op.target);
        let p = sys.system.create_process(&params, &op.op)?;
        insert_process(handle, p);
        *target = Target {
            system: 0,
            process: handle,
        };
        // SAFETY: checked non-NULL; caller's contract.
        unsafe { process.write(handle as HCS_PROCESS) };
        Ok(())
    })
}

/// `HcsOpenProcess`: `requestedAccess` must be `GENERIC_ALL`.
///
/// # Safety
/// `process` is valid for writing one handle.
#[no_mangle]
pub unsafe extern "C" fn HcsOpenProcess(
    computeSystem: HCS_SYSTEM,
    processId: u32,
    requestedAccess: u32,
    process: *mut HCS_PROCESS,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(process) };
        let sys = handles::system(computeSystem)?;
        if process.is_null() {
            return Err(null_arg("process"));
        }
        let p = sys.system.open_process(processId, requestedAccess)?;
        let handle = handles::reserve();
        insert_process(handle, p);
        // SAFETY: checked non-NULL; caller's contract.
        unsafe { process.write(handle as HCS_PROCESS) };
        Ok(())
    })
}

/// `HcsCloseProcess`: the process keeps running; no callback of the handle
/// comes after this returns.
#[no_mangle]
pub extern "C" fn HcsCloseProcess(process: HCS_PROCESS) {
    guard((), || {
        if let Some(Object::Process(e)) =
            handles::remove(process, |o| matches!(o, Object::Process(_)))
        {
            e.process.close();
        }
    })
}

/// # Safety
/// `options` is NULL or NUL-terminated UTF-16.
unsafe fn process_call(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: PCWSTR,
    options_required: bool,
    f: impl FnOnce(&Process, &Operation, Option<&str>) -> HcsResult<()>,
) -> HRESULT {
    // SAFETY: caller's contract.
    let options = guard(
        Err(hcs_errors::HcsError::from_code(hcs_errors::HResult::E_FAIL)),
        || unsafe { opt_wide(options, "options") },
    );
    process_call_with(process, operation, options, options_required, f)
}

/// Validate the handles, record the operation's target and run `f`.
fn process_call_with(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: HcsResult<Option<String>>,
    options_required: bool,
    f: impl FnOnce(&Process, &Operation, Option<&str>) -> HcsResult<()>,
) -> HRESULT {
    guard_hr(|| {
        let p = handles::process(process)?;
        let op = entry(operation)?;
        let options = options?;
        if options_required && options.is_none() {
            return Err(null_arg("settings"));
        }
        op.set_target(Target {
            system: 0,
            process: process as usize,
        });
        f(&p.process, &op.op, options.as_deref())
    })
}

/// `HcsTerminateProcess` (SIGKILL).
///
/// # Safety
/// `options` is NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn HcsTerminateProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: PCWSTR,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe {
        process_call(process, operation, options, false, |p, o, x| {
            p.terminate(o, x)
        })
    }
}

/// `HcsSignalProcess` with `SignalProcessOptions`.
///
/// # Safety
/// `options` is NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn HcsSignalProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    options: PCWSTR,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe { process_call(process, operation, options, false, |p, o, x| p.signal(o, x)) }
}

/// `HcsGetProcessInfo`: fresh descriptors of the same pipes, through
/// HcsWaitForOperationResultAndProcessInfo.
#[no_mangle]
pub extern "C" fn HcsGetProcessInfo(process: HCS_PROCESS, operation: HCS_OPERATION) -> HRESULT {
    process_call_with(process, operation, Ok(None), false, |p, o, _| p.get_info(o))
}

/// `HcsGetProcessProperties`: the result document is a `ProcessStatus`.
///
/// # Safety
/// `propertyQuery` is NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn HcsGetProcessProperties(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    propertyQuery: PCWSTR,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe {
        process_call(process, operation, propertyQuery, false, |p, o, q| {
            p.get_properties(o, q)
        })
    }
}

/// `HcsModifyProcess` with a `ProcessModifyRequest`.
///
/// # Safety
/// `settings` is NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn HcsModifyProcess(
    process: HCS_PROCESS,
    operation: HCS_OPERATION,
    settings: PCWSTR,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe {
        process_call(process, operation, settings, true, |p, o, s| {
            p.modify(o, s.unwrap_or_default())
        })
    }
}

/// `HcsSetProcessCallback`: `HcsEventProcessExited` (and operation
/// completions with `HcsEventOptionEnableOperationCallbacks`).
#[no_mangle]
pub extern "C" fn HcsSetProcessCallback(
    process: HCS_PROCESS,
    callbackOptions: u32,
    context: *mut libc::c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HRESULT {
    guard_hr(|| {
        let p = handles::process(process)?;
        let f = event_forwarder(callback, context)?;
        p.process.set_callback(EventOptions(callbackOptions), f)
    })
}

/// `HcsWaitForProcessExit`: S_OK and the `ProcessStatus` once it exited;
/// `HCS_E_OPERATION_TIMEOUT` otherwise.
///
/// # Safety
/// `result` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsWaitForProcessExit(
    process: HCS_PROCESS,
    timeoutMs: u32,
    result: *mut PWSTR,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(result) };
        let p = handles::process(process)?;
        let doc = p.process.wait_for_exit(timeoutMs)?;
        // SAFETY: caller's contract.
        unsafe { write_doc(result, Some(&doc)) }
    })
}
