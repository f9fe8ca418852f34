//! `HCS_SYSTEM` exports.

use std::sync::Arc;

use hcs::{Event, EventOptions, Operation, System};
use hcs_errors::{HResult, HcsError, HcsResult};

use crate::handles::{self, Object, HCS_OPERATION, HCS_SYSTEM};
use crate::operation::{entry, lock, Target};
use crate::strings::{clear_out, from_wide, opt_wide, write_doc};
use crate::{guard, guard_hr, null_arg, HCS_EVENT, HCS_EVENT_CALLBACK, HRESULT, PCWSTR, PWSTR};

/// A live `HCS_SYSTEM`.
pub(crate) struct SysEntry {
    pub(crate) system: System,
}

/// `HCS_CREATE_OPTIONS_1` (the `options` of HcsCreateComputeSystemInNamespace).
#[repr(C)]
#[derive(Debug)]
pub struct HCS_CREATE_OPTIONS_1 {
    /// `HcsCreateOptions_1` (0x00010000).
    pub Version: u32,
    /// A user token to run the system as: must be NULL on Linux.
    pub UserToken: *mut libc::c_void,
    /// Ignored on Linux.
    pub SecurityDescriptor: *const libc::c_void,
    /// `HCS_EVENT_OPTIONS` of `Callback`.
    pub CallbackOptions: u32,
    /// Context of `Callback`.
    pub CallbackContext: *mut libc::c_void,
    /// An event callback registered with the new handle, or NULL.
    pub Callback: HCS_EVENT_CALLBACK,
}

/// `HcsCreateOptions_1`.
pub const HCS_CREATE_OPTIONS_1_VERSION: u32 = 0x0001_0000;

/// Deliver one hcs event to a C event callback.
pub(crate) fn deliver_event(
    cb: unsafe extern "C" fn(*mut HCS_EVENT, *mut libc::c_void),
    context: usize,
    ev: &Event,
) {
    let operation = match &ev.operation {
        // The operation handle was closed: there is nothing to hand over.
        Some(op) => match handles::operation_handle(op.id()) {
            Some(h) => h as HCS_OPERATION,
            None => return,
        },
        None => std::ptr::null_mut(),
    };
    let data: Option<Vec<u16>> = ev
        .data
        .as_deref()
        .map(|d| d.encode_utf16().chain(std::iter::once(0)).collect());
    let mut event = HCS_EVENT {
        Type: ev.event_type as u32,
        EventData: data.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
        Operation: operation,
    };
    // SAFETY: `cb` is the caller's HCS_EVENT_CALLBACK, called with an event
    // that (with its EventData) stays valid for the call, and its context.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        cb(&mut event, context as *mut libc::c_void)
    }));
}

/// Build the Rust closure that forwards events to a C callback.
pub(crate) fn event_forwarder(
    callback: HCS_EVENT_CALLBACK,
    context: *const libc::c_void,
) -> HcsResult<impl Fn(&Event) + Send + Sync + 'static> {
    let cb = callback.ok_or_else(|| null_arg("callback"))?;
    let context = context as usize;
    Ok(move |ev: &Event| deliver_event(cb, context, ev))
}

fn insert_system(handle: usize, system: System) {
    handles::insert(handle, Object::System(Arc::new(SysEntry { system })));
}

/// # Safety
/// Strings are NULL or NUL-terminated UTF-16; `computeSystem` is NULL or
/// writable; `options` is NULL or points to an `HCS_CREATE_OPTIONS_1`.
unsafe fn create(
    namespace: Option<PCWSTR>,
    id: PCWSTR,
    configuration: PCWSTR,
    operation: HCS_OPERATION,
    options: *const u32,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract on `computeSystem`.
        unsafe { clear_out(computeSystem) };
        let op = entry(operation)?;
        if computeSystem.is_null() {
            return Err(null_arg("computeSystem"));
        }
        let namespace = match namespace {
            // SAFETY: caller's contract on strings.
            Some(ns) => unsafe { from_wide(ns, "idNamespace") }?,
            None => hcs::DEFAULT_NAMESPACE.to_string(),
        };
        // SAFETY: caller's contract on strings.
        let id = unsafe { from_wide(id, "id") }?;
        // SAFETY: caller's contract on strings.
        let configuration = unsafe { from_wide(configuration, "configuration") }?;
        let mut registration = None;
        if !options.is_null() {
            // SAFETY: `options` points to at least the version field.
            let version = unsafe { options.read() };
            if version != HCS_CREATE_OPTIONS_1_VERSION {
                return Err(HcsError::invalid_arg(format!(
                    "HCS_CREATE_OPTIONS version 0x{version:08X} is not HcsCreateOptions_1 (0x00010000)"
                )));
            }
            // SAFETY: version 1 means the caller passed an HCS_CREATE_OPTIONS_1.
            let o = unsafe { &*options.cast::<HCS_CREATE_OPTIONS_1>() };
            if !o.UserToken.is_null() {
                return Err(HcsError::not_supported(
                    "HCS_CREATE_OPTIONS_1.UserToken: running a compute system as another user is not supported on Linux",
                ));
            }
            if o.Callback.is_some() {
                registration = Some((
                    EventOptions(o.CallbackOptions),
                    event_forwarder(o.Callback, o.CallbackContext)?,
                ));
            }
        }
        let handle = handles::reserve();
        // Held across the create so the completion callback (on another
        // thread) sees the new handle from HcsGetComputeSystemFromOperation.
        let mut target = lock(&op.target);
        let system = System::create_in_namespace(&namespace, &id, &configuration, &op.op)?;
        if let Some((opts, f)) = registration {
            system.set_callback(opts, f)?;
        }
        insert_system(handle, system);
        *target = Target {
            system: handle,
            process: 0,
        };
        // SAFETY: checked non-NULL above; caller's contract.
        unsafe { computeSystem.write(handle as HCS_SYSTEM) };
        Ok(())
    })
}

/// `HcsCreateComputeSystem`. `securityDescriptor` is ignored on Linux.
///
/// # Safety
/// `id` and `configuration` are NUL-terminated UTF-16; `computeSystem` is
/// valid for writing one handle.
#[no_mangle]
pub unsafe extern "C" fn HcsCreateComputeSystem(
    id: PCWSTR,
    configuration: PCWSTR,
    operation: HCS_OPERATION,
    _securityDescriptor: *const libc::c_void,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe {
        create(
            None,
            id,
            configuration,
            operation,
            std::ptr::null(),
            computeSystem,
        )
    }
}

/// `HcsCreateComputeSystemInNamespace`. `options` is NULL or an
/// `HCS_CREATE_OPTIONS_1` (its Callback is registered with the new handle).
///
/// # Safety
/// As [`HcsCreateComputeSystem`]; `options` is NULL or points to an
/// `HCS_CREATE_OPTIONS_1`.
#[no_mangle]
pub unsafe extern "C" fn HcsCreateComputeSystemInNamespace(
    idNamespace: PCWSTR,
    id: PCWSTR,
    configuration: PCWSTR,
    operation: HCS_OPERATION,
    options: *const u32,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    // SAFETY: forwarded contract (a NULL idNamespace is E_INVALIDARG).
    unsafe {
        create(
            Some(idNamespace),
            id,
            configuration,
            operation,
            options,
            computeSystem,
        )
    }
}

/// # Safety
/// Strings NUL-terminated UTF-16; `computeSystem` writable or NULL.
unsafe fn open(
    namespace: Option<PCWSTR>,
    id: PCWSTR,
    requestedAccess: u32,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(computeSystem) };
        if computeSystem.is_null() {
            return Err(null_arg("computeSystem"));
        }
        let namespace = match namespace {
            // SAFETY: caller's contract.
            Some(ns) => unsafe { from_wide(ns, "idNamespace") }?,
            None => hcs::DEFAULT_NAMESPACE.to_string(),
        };
        // SAFETY: caller's contract.
        let id = unsafe { from_wide(id, "id") }?;
        let system = System::open_in_namespace(&namespace, &id, requestedAccess)?;
        let handle = handles::reserve();
        insert_system(handle, system);
        // SAFETY: checked non-NULL; caller's contract.
        unsafe { computeSystem.write(handle as HCS_SYSTEM) };
        Ok(())
    })
}

/// `HcsOpenComputeSystem`: `requestedAccess` must be `GENERIC_ALL`.
///
/// # Safety
/// `id` is NUL-terminated UTF-16; `computeSystem` is valid for writing.
#[no_mangle]
pub unsafe extern "C" fn HcsOpenComputeSystem(
    id: PCWSTR,
    requestedAccess: u32,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    // SAFETY: forwarded contract.
    unsafe { open(None, id, requestedAccess, computeSystem) }
}

/// `HcsOpenComputeSystemInNamespace`.
///
/// # Safety
/// As [`HcsOpenComputeSystem`].
#[no_mangle]
pub unsafe extern "C" fn HcsOpenComputeSystemInNamespace(
    idNamespace: PCWSTR,
    id: PCWSTR,
    requestedAccess: u32,
    computeSystem: *mut HCS_SYSTEM,
) -> HRESULT {
    // SAFETY: forwarded contract (a NULL idNamespace is E_INVALIDARG).
    unsafe { open(Some(idNamespace), id, requestedAccess, computeSystem) }
}

/// `HcsCloseComputeSystem`: waits for the handle's running callback (unless
/// called from it); no callback of the handle comes after.
#[no_mangle]
pub extern "C" fn HcsCloseComputeSystem(computeSystem: HCS_SYSTEM) {
    guard((), || {
        if let Some(Object::System(e)) =
            handles::remove(computeSystem, |o| matches!(o, Object::System(_)))
        {
            e.system.close();
        }
    })
}

/// Validate the handles, record the operation's target and run `f`.
///
/// # Safety
/// `options` is NULL or NUL-terminated UTF-16.
unsafe fn system_call(
    computeSystem: HCS_SYSTEM,
    operation: HCS_OPERATION,
    options: PCWSTR,
    options_required: bool,
    f: impl FnOnce(&System, &Operation, Option<&str>) -> HcsResult<()>,
) -> HRESULT {
    guard_hr(|| {
        let sys = handles::system(computeSystem)?;
        let op = entry(operation)?;
        // SAFETY: caller's contract.
        let options = unsafe { opt_wide(options, "options") }?;
        if options_required && options.is_none() {
            return Err(null_arg("configuration"));
        }
        op.set_target(Target {
            system: computeSystem as usize,
            process: 0,
        });
        f(&sys.system, &op.op, options.as_deref())
    })
}

macro_rules! system_op {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `options` is NULL or a NUL-terminated UTF-16 string.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            computeSystem: HCS_SYSTEM,
            operation: HCS_OPERATION,
            options: PCWSTR,
        ) -> HRESULT {
            // SAFETY: forwarded contract.
            unsafe {
                system_call(computeSystem, operation, options, false, |s, o, opt| s.$method(o, opt))
            }
        }
    };
}

system_op!(
    /// `HcsStartComputeSystem`.
    HcsStartComputeSystem, start);
system_op!(
    /// `HcsShutDownComputeSystem`.
    HcsShutDownComputeSystem, shutdown);
system_op!(
    /// `HcsTerminateComputeSystem`.
    HcsTerminateComputeSystem, terminate);
system_op!(
    /// `HcsCrashComputeSystem`.
    HcsCrashComputeSystem, crash);
system_op!(
    /// `HcsPauseComputeSystem`.
    HcsPauseComputeSystem, pause);
system_op!(
    /// `HcsResumeComputeSystem`.
    HcsResumeComputeSystem, resume);
system_op!(
    /// `HcsSaveComputeSystem`.
    HcsSaveComputeSystem, save);
system_op!(
    /// `HcsGetComputeSystemProperties` (`options` is the property query).
    HcsGetComputeSystemProperties, get_properties);

/// `HcsModifyComputeSystem`. `identity` must be NULL on Linux.
///
/// # Safety
/// `configuration` is a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "C" fn HcsModifyComputeSystem(
    computeSystem: HCS_SYSTEM,
    operation: HCS_OPERATION,
    configuration: PCWSTR,
    identity: *mut libc::c_void,
) -> HRESULT {
    if !identity.is_null() {
        return HResult::ERROR_NOT_SUPPORTED.0;
    }
    // SAFETY: forwarded contract.
    unsafe {
        system_call(computeSystem, operation, configuration, true, |s, o, c| {
            s.modify(o, c.unwrap_or_default())
        })
    }
}

/// `HcsWaitForComputeSystemExit`: S_OK and the `SystemExitStatus` once the
/// system stopped; `HCS_E_OPERATION_TIMEOUT` if it runs on.
///
/// # Safety
/// `result` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsWaitForComputeSystemExit(
    computeSystem: HCS_SYSTEM,
    timeoutMs: u32,
    result: *mut PWSTR,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(result) };
        let sys = handles::system(computeSystem)?;
        let doc = sys.system.wait_for_exit(timeoutMs)?;
        // SAFETY: caller's contract.
        unsafe { write_doc(result, Some(&doc)) }
    })
}

/// `HcsSetComputeSystemCallback`: one registration per handle
/// (`HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET` for a second).
#[no_mangle]
pub extern "C" fn HcsSetComputeSystemCallback(
    computeSystem: HCS_SYSTEM,
    callbackOptions: u32,
    context: *const libc::c_void,
    callback: HCS_EVENT_CALLBACK,
) -> HRESULT {
    guard_hr(|| {
        let sys = handles::system(computeSystem)?;
        let f = event_forwarder(callback, context)?;
        sys.system.set_callback(EventOptions(callbackOptions), f)
    })
}

/// `HcsEnumerateComputeSystems`: the result document is a JSON array.
///
/// # Safety
/// `query` is NULL or a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "C" fn HcsEnumerateComputeSystems(
    query: PCWSTR,
    operation: HCS_OPERATION,
) -> HRESULT {
    guard_hr(|| {
        let op = entry(operation)?;
        // SAFETY: caller's contract.
        let query = unsafe { opt_wide(query, "query") }?;
        op.set_target(Target::default());
        hcs::enumerate_compute_systems(query.as_deref(), &op.op)
    })
}

/// `HcsEnumerateComputeSystemsInNamespace`.
///
/// # Safety
/// `idNamespace` is NUL-terminated UTF-16; `query` is NULL or one.
#[no_mangle]
pub unsafe extern "C" fn HcsEnumerateComputeSystemsInNamespace(
    idNamespace: PCWSTR,
    query: PCWSTR,
    operation: HCS_OPERATION,
) -> HRESULT {
    guard_hr(|| {
        let op = entry(operation)?;
        // SAFETY: caller's contract.
        let namespace = unsafe { from_wide(idNamespace, "idNamespace") }?;
        // SAFETY: caller's contract.
        let query = unsafe { opt_wide(query, "query") }?;
        op.set_target(Target::default());
        hcs::enumerate_compute_systems_in_namespace(&namespace, query.as_deref(), &op.op)
    })
}

macro_rules! live_migration {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Returns `E_NOTIMPL` (after checking the handles): live migration
        /// is not implemented on Linux.
        #[no_mangle]
        pub extern "C" fn $name(
            computeSystem: HCS_SYSTEM,
            operation: HCS_OPERATION,
            _options: PCWSTR,
        ) -> HRESULT {
            guard_hr(|| {
                handles::system(computeSystem)?;
                entry(operation)?;
                Err(HcsError::from_code(HResult::E_NOTIMPL))
            })
        }
    };
}

live_migration!(
    /// `HcsInitializeLiveMigrationOnSource` (undocumented).
    HcsInitializeLiveMigrationOnSource);
live_migration!(
    /// `HcsStartLiveMigrationOnSource` (undocumented).
    HcsStartLiveMigrationOnSource);
live_migration!(
    /// `HcsStartLiveMigrationTransfer` (undocumented).
    HcsStartLiveMigrationTransfer);
live_migration!(
    /// `HcsFinalizeLiveMigration` (undocumented).
    HcsFinalizeLiveMigration);
live_migration!(
    /// `HcsCancelLiveMigration` (undocumented).
    HcsCancelLiveMigration);
