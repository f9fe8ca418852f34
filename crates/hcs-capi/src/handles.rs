//! The table of live handles.
//!
//! A handle given to C is an opaque value, never a pointer the library
//! dereferences: it is looked up here, so a NULL, closed, forged or
//! wrong-kind handle is an error (`E_INVALIDARG` for NULL, `E_HANDLE`
//! otherwise), never a crash. Values are never reused, so a stale handle
//! stays invalid. Lookups hand out `Arc`s: an object closed by one thread
//! while another uses it lives until that use ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use hcs_errors::{HResult, HcsError, HcsResult};

use crate::operation::OpEntry;
use crate::process::ProcEntry;
use crate::system::SysEntry;

/// `HCS_OPERATION`.
pub type HCS_OPERATION = *mut libc::c_void;
/// `HCS_SYSTEM`.
pub type HCS_SYSTEM = *mut libc::c_void;
/// `HCS_PROCESS`.
pub type HCS_PROCESS = *mut libc::c_void;

#[derive(Clone)]
pub(crate) enum Object {
    Operation(Arc<OpEntry>),
    System(Arc<SysEntry>),
    Process(Arc<ProcEntry>),
}

#[derive(Default)]
pub(crate) struct Table {
    objects: HashMap<usize, Object>,
    /// Operation id (hcs) -> handle, for `HCS_EVENT.Operation`.
    operations: HashMap<u64, usize>,
    next: usize,
}

const FIRST: usize = 0x4853_0000; // "HS"
const STEP: usize = 16;

fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| Mutex::new(Table::default()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Reserve a fresh handle value.
pub(crate) fn reserve() -> usize {
    let mut t = table();
    let h = FIRST + t.next * STEP;
    t.next += 1;
    h
}

/// Make `handle` (from [`reserve`]) live.
pub(crate) fn insert(handle: usize, object: Object) {
    let mut t = table();
    if let Object::Operation(op) = &object {
        t.operations.insert(op.op.id(), handle);
    }
    t.objects.insert(handle, object);
}

/// Remove a handle if it is live and `is_kind` accepts its object; returns the object.
pub(crate) fn remove(
    handle: *mut libc::c_void,
    is_kind: impl FnOnce(&Object) -> bool,
) -> Option<Object> {
    let mut t = table();
    if !is_kind(t.objects.get(&(handle as usize))?) {
        return None;
    }
    let obj = t.objects.remove(&(handle as usize))?;
    if let Object::Operation(op) = &obj {
        t.operations.remove(&op.op.id());
    }
    Some(obj)
}

fn lookup(handle: *mut libc::c_void, kind: &str) -> HcsResult<Object> {
    if handle.is_null() {
        return Err(HcsError::invalid_arg(format!("the {kind} handle is NULL")));
    }
    table()
        .objects
        .get(&(handle as usize))
        .cloned()
        .ok_or_else(|| bad_handle(kind))
}

fn bad_handle(kind: &str) -> HcsError {
    HcsError::new(
        HResult::ERROR_INVALID_HANDLE,
        format!("not an open {kind} handle (closed, or never returned by this library)"),
    )
}

pub(crate) fn operation(handle: HCS_OPERATION) -> HcsResult<Arc<OpEntry>> {
    match lookup(handle, "HCS_OPERATION")? {
        Object::Operation(o) => Ok(o),
        _ => Err(bad_handle("HCS_OPERATION")),
    }
}

pub(crate) fn system(handle: HCS_SYSTEM) -> HcsResult<Arc<SysEntry>> {
    match lookup(handle, "HCS_SYSTEM")? {
        Object::System(s) => Ok(s),
        _ => Err(bad_handle("HCS_SYSTEM")),
    }
}

pub(crate) fn process(handle: HCS_PROCESS) -> HcsResult<Arc<ProcEntry>> {
    match lookup(handle, "HCS_PROCESS")? {
        Object::Process(p) => Ok(p),
        _ => Err(bad_handle("HCS_PROCESS")),
    }
}

/// The live handle of the operation with hcs id `id`.
pub(crate) fn operation_handle(id: u64) -> Option<usize> {
    table().operations.get(&id).copied()
}

/// True if `handle` is live.
pub(crate) fn is_live(handle: usize) -> bool {
    table().objects.contains_key(&handle)
}
