//! UTF-16 strings at the edge, and the allocator of returned strings.

use hcs_errors::{HResult, HcsError, HcsResult};

use crate::{PCWSTR, PWSTR};

/// Read a required NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UTF-16 string.
pub(crate) unsafe fn from_wide(p: PCWSTR, name: &str) -> HcsResult<String> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { opt_wide(p, name) }?.ok_or_else(|| crate::null_arg(name))
}

/// Read an optional NUL-terminated UTF-16 string (NULL gives `None`).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UTF-16 string.
pub(crate) unsafe fn opt_wide(p: PCWSTR, name: &str) -> HcsResult<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    let mut len = 0usize;
    // SAFETY: the caller promises a NUL-terminated string, so every unit up
    // to and including the NUL is readable (and `wrapping_add` stays inside it).
    while unsafe { *p.wrapping_add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the NUL were just read.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    String::from_utf16(units)
        .map(Some)
        .map_err(|_| HcsError::invalid_arg(format!("{name} is not valid UTF-16")))
}

/// A `malloc`ed NUL-terminated UTF-16 copy of `s`, or NULL if out of memory.
pub(crate) fn alloc_wide(s: &str) -> PWSTR {
    let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
    let bytes = units.len() * std::mem::size_of::<u16>();
    // SAFETY: malloc has no preconditions; a NULL result is handled.
    let p = unsafe { libc::malloc(bytes) }.cast::<u16>();
    if !p.is_null() {
        // SAFETY: `p` holds `units.len()` u16s (malloc's alignment suits u16)
        // and does not overlap the vector.
        unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), p, units.len()) };
    }
    p
}

/// Store a result document in an optional `PWSTR*` out parameter (NULL when
/// there is no document). `HCS_E_OPERATION_RESULT_ALLOCATION_FAILED` if the
/// copy cannot be allocated.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn write_doc(out: *mut PWSTR, doc: Option<&str>) -> HcsResult<()> {
    if out.is_null() {
        return Ok(());
    }
    let p = match doc {
        None => std::ptr::null_mut(),
        Some(d) => {
            let p = alloc_wide(d);
            if p.is_null() {
                // SAFETY: `out` is valid for writes (caller's contract).
                unsafe { out.write(std::ptr::null_mut()) };
                return Err(HcsError::from_code(
                    HResult::HCS_E_OPERATION_RESULT_ALLOCATION_FAILED,
                ));
            }
            p
        }
    };
    // SAFETY: `out` is valid for writes (caller's contract).
    unsafe { out.write(p) };
    Ok(())
}

/// Clear an optional out parameter before any work, so every failure path
/// leaves it NULL.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn clear_out<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: `out` is valid for writes (caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

/// `LocalFree`: releases a string returned by this library. Returns NULL
/// (success), like Windows.
///
/// # Safety
/// `mem` is NULL or a pointer this library returned and has not been freed.
#[no_mangle]
pub unsafe extern "C" fn LocalFree(mem: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: the pointer came from libc::malloc in `alloc_wide` (caller's
    // contract); free(NULL) is a no-op.
    unsafe { libc::free(mem) };
    std::ptr::null_mut()
}

/// `CoTaskMemFree`: the same as [`LocalFree`].
///
/// # Safety
/// As [`LocalFree`].
#[no_mangle]
pub unsafe extern "C" fn CoTaskMemFree(mem: *mut libc::c_void) {
    // SAFETY: as LocalFree.
    unsafe { libc::free(mem) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_free() {
        let p = alloc_wide("héllo ✓");
        assert!(!p.is_null());
        // SAFETY: `p` is a NUL-terminated string from alloc_wide.
        let s = unsafe { from_wide(p, "s") }.unwrap();
        assert_eq!(s, "héllo ✓");
        // SAFETY: `p` came from alloc_wide and is freed once.
        unsafe { LocalFree(p.cast()) };
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { opt_wide(std::ptr::null(), "q") }.unwrap(), None);
        // SAFETY: NULL is allowed.
        let e = unsafe { from_wide(std::ptr::null(), "id") }.unwrap_err();
        assert_eq!(e.hresult, HResult::E_INVALIDARG);
        let bad = [0xD800u16, 0];
        // SAFETY: NUL-terminated.
        unsafe { from_wide(bad.as_ptr(), "x") }.unwrap_err();
    }
}
