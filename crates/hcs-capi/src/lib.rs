//! `libcomputecore.so`: the HCS C API, source-compatible with Microsoft's
//! `computecore.dll`, over the [`hcs`] crate.
//!
//! - Every export has the exact name and C signature of its Windows twin
//!   (`include/computecore.h`, `include/computedefs.h`).
//! - Strings are UTF-16 (`PCWSTR` = `const char16_t*`), converted at the
//!   edge; strings the API returns are `malloc`ed and released by
//!   [`LocalFree`] or [`CoTaskMemFree`] (the same allocator).
//! - Handles are opaque values looked up in a table of live objects
//!   ([`handles`]); the objects are reference counted, so closing a handle
//!   while another thread still uses it can never free memory under it. A
//!   NULL handle gives `E_INVALIDARG`, a closed, unknown or wrong-kind handle
//!   `E_HANDLE` (`HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)`).
//! - No panic crosses the boundary: each export runs under `catch_unwind`
//!   and a panic becomes `E_FAIL`.
//! - The operation semantics (not started / pending / complete, reuse,
//!   timeouts, close inside the callback, callbacks on library threads, no
//!   callback after close) are the `hcs` crate's; this crate only adds the C
//!   callbacks and their contexts.

#![deny(unsafe_op_in_unsafe_fn)]
// The C names are kept as they are in computecore.h.
#![allow(non_camel_case_types, non_snake_case)]

mod handles;
pub mod header;
mod operation;
mod process;
mod service;
mod strings;
mod system;

pub use handles::{HCS_OPERATION, HCS_PROCESS, HCS_SYSTEM};
pub use operation::*;
pub use process::*;
pub use service::*;
pub use strings::{CoTaskMemFree, LocalFree};
pub use system::*;

use hcs_errors::{HResult, HcsError};

/// `HRESULT`.
pub type HRESULT = i32;
/// `PCWSTR`: a NUL-terminated UTF-16 string.
pub type PCWSTR = *const u16;
/// `PWSTR`.
pub type PWSTR = *mut u16;

/// `E_HANDLE` = `HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)`.
pub const E_HANDLE: HRESULT = HResult::ERROR_INVALID_HANDLE.0;
/// `E_INVALIDARG`.
pub const E_INVALIDARG: HRESULT = HResult::E_INVALIDARG.0;
/// `E_FAIL`: what a panic inside the library becomes.
pub const E_FAIL: HRESULT = HResult::E_FAIL.0;
/// `S_OK`.
pub const S_OK: HRESULT = 0;

/// `HCS_PROCESS_INFORMATION`, Linux flavour: the standard handles are file
/// descriptors owned by the caller, `-1` when the pipe was not requested.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HCS_PROCESS_INFORMATION {
    /// Pid inside the compute system.
    pub ProcessId: u32,
    /// Reserved, 0.
    pub Reserved: u32,
    /// Write end of the process's stdin, or -1.
    pub StdInput: libc::c_int,
    /// Read end of its stdout, or -1.
    pub StdOutput: libc::c_int,
    /// Read end of its stderr, or -1.
    pub StdError: libc::c_int,
}

/// `HCS_EVENT`.
#[repr(C)]
#[derive(Debug)]
pub struct HCS_EVENT {
    /// An `HCS_EVENT_TYPE` value.
    pub Type: u32,
    /// The event's JSON document, or NULL.
    pub EventData: PCWSTR,
    /// The completed operation, for `HcsEventOperationCallback` only.
    pub Operation: HCS_OPERATION,
}

/// `HCS_OPERATION_COMPLETION`.
pub type HCS_OPERATION_COMPLETION =
    Option<unsafe extern "C" fn(operation: HCS_OPERATION, context: *mut libc::c_void)>;

/// `HCS_EVENT_CALLBACK`.
pub type HCS_EVENT_CALLBACK =
    Option<unsafe extern "C" fn(event: *mut HCS_EVENT, context: *mut libc::c_void)>;

/// Run an export's body, turning a panic into `fallback`.
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Run an HRESULT-returning export's body; a panic gives `E_FAIL`.
pub(crate) fn guard_hr(body: impl FnOnce() -> Result<(), HcsError>) -> HRESULT {
    guard(E_FAIL, || match body() {
        Ok(()) => S_OK,
        Err(e) => e.hresult.0,
    })
}

/// `E_INVALIDARG` naming a NULL argument.
pub(crate) fn null_arg(name: &str) -> HcsError {
    HcsError::invalid_arg(format!("{name} is NULL"))
}

#[cfg(test)]
mod tests;
