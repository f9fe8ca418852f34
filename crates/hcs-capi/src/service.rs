//! Service-wide exports, and those that mean nothing on Linux.

use hcs_errors::{HResult, HcsError};

use crate::strings::{clear_out, opt_wide, write_doc};
use crate::{guard, guard_hr, null_arg, HRESULT, PCWSTR, PWSTR};

/// `HcsGetServiceProperties`: `Basic` (the schema versions accepted).
///
/// # Safety
/// `propertyQuery` is NULL or NUL-terminated UTF-16; `result` is valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsGetServiceProperties(
    propertyQuery: PCWSTR,
    result: *mut PWSTR,
) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(result) };
        if result.is_null() {
            return Err(null_arg("result"));
        }
        // SAFETY: caller's contract.
        let query = unsafe { opt_wide(propertyQuery, "propertyQuery") }?;
        match hcs::get_service_properties(query.as_deref()) {
            // SAFETY: caller's contract.
            Ok(doc) => unsafe { write_doc(result, Some(&doc)) },
            Err(e) => {
                // SAFETY: caller's contract.
                unsafe { write_doc(result, Some(&hcs_protocol::result_error_json(&e))) }?;
                Err(e)
            }
        }
    })
}

/// `HcsModifyServiceSettings`: no service setting (CPU groups, container
/// credential guard) exists on Linux, so every request fails with
/// `HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)` and a `ResultError` document.
///
/// # Safety
/// `settings` is NUL-terminated UTF-16; `result` is NULL or valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn HcsModifyServiceSettings(settings: PCWSTR, result: *mut PWSTR) -> HRESULT {
    guard_hr(|| {
        // SAFETY: caller's contract.
        unsafe { clear_out(result) };
        // SAFETY: caller's contract.
        if unsafe { opt_wide(settings, "settings") }?.is_none() {
            return Err(null_arg("settings"));
        }
        let e = HcsError::not_supported(
            "HcsModifyServiceSettings: no service settings (CpuGroup, ContainerCredentialGuard) exist on Linux",
        );
        // SAFETY: caller's contract.
        unsafe { write_doc(result, Some(&hcs_protocol::result_error_json(&e))) }?;
        Err(e)
    })
}

macro_rules! not_implemented {
    ($(#[$doc:meta])* $name:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        /// Returns `E_NOTIMPL`: there is nothing it could do on Linux.
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> HRESULT {
            $( let _ = $arg; )*
            guard(crate::E_FAIL, || HResult::E_NOTIMPL.0)
        }
    };
}

not_implemented!(
    /// `HcsSubmitWerReport` (Windows Error Reporting).
    HcsSubmitWerReport(settings: PCWSTR));
not_implemented!(
    /// `HcsCreateEmptyGuestStateFile` (Hyper-V .vmgs files).
    HcsCreateEmptyGuestStateFile(guestStateFilePath: PCWSTR));
not_implemented!(
    /// `HcsCreateEmptyRuntimeStateFile` (Hyper-V .vmrs files).
    HcsCreateEmptyRuntimeStateFile(runtimeStateFilePath: PCWSTR));
not_implemented!(
    /// `HcsGrantVmAccess` (Windows per-VM account ACLs).
    HcsGrantVmAccess(vmId: PCWSTR, filePath: PCWSTR));
not_implemented!(
    /// `HcsRevokeVmAccess`.
    HcsRevokeVmAccess(vmId: PCWSTR, filePath: PCWSTR));
not_implemented!(
    /// `HcsGrantVmGroupAccess`.
    HcsGrantVmGroupAccess(filePath: PCWSTR));
not_implemented!(
    /// `HcsRevokeVmGroupAccess`.
    HcsRevokeVmGroupAccess(filePath: PCWSTR));
not_implemented!(
    /// `HcsGetProcessorCompatibilityFromSavedState` (Hyper-V .vmrs files).
    HcsGetProcessorCompatibilityFromSavedState(runtimeFileName: PCWSTR, processorFeaturesString: *mut PCWSTR));
