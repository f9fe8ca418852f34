//! HRESULT codes of the Host Compute System API and [`HcsError`], the error
//! every HCS crate hands back at the API edge.
//!
//! The values are the exact ones of Microsoft's `winerror.h`
//! (FACILITY_VIRTUALIZATION, 0x037), so a program ported from Windows can
//! compare them unchanged.

use std::fmt;

/// A Windows `HRESULT`: a signed 32-bit status whose high bit marks failure.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct HResult(pub i32);

macro_rules! hresults {
    ($( $(#[doc = $doc:literal])* $name:ident = $value:literal, $msg:literal; )*) => {
        impl HResult {
            $( $(#[doc = $doc])* pub const $name: HResult = HResult($value as u32 as i32); )*

            /// Every code this crate knows, with its name.
            pub const ALL: &'static [(HResult, &'static str)] = &[ $( (HResult::$name, stringify!($name)), )* ];

            /// The symbolic name (`HCS_E_INVALID_JSON`), if the code is known.
            pub fn name(self) -> Option<&'static str> {
                match self { $( HResult::$name => Some(stringify!($name)), )* _ => None }
            }

            /// The system message for the code, in the words of `winerror.h`.
            pub fn message(self) -> &'static str {
                match self { $( HResult::$name => $msg, )* _ => "Unknown error." }
            }
        }
    };
}

hresults! {
    /// Success.
    S_OK = 0x0000_0000, "The operation completed successfully.";
    /// The compute system exited unexpectedly while starting.
    HCS_E_TERMINATED_DURING_START = 0x8037_0100, "The virtual machine or container exited unexpectedly while starting.";
    /// The container image does not match the host.
    HCS_E_IMAGE_MISMATCH = 0x8037_0101, "The container operating system does not match the host operating system.";
    /// A feature the system needs (the hypervisor) is missing.
    HCS_E_HYPERV_NOT_INSTALLED = 0x8037_0102, "The virtual machine could not be started because a required feature is not installed.";
    /// The call is not valid in the system's current state.
    HCS_E_INVALID_STATE = 0x8037_0105, "The requested virtual machine or container operation is not valid in the current state.";
    /// The system exited unexpectedly.
    HCS_E_UNEXPECTED_EXIT = 0x8037_0106, "The virtual machine or container exited unexpectedly.";
    /// The system was forcefully terminated.
    HCS_E_TERMINATED = 0x8037_0107, "The virtual machine or container was forcefully exited.";
    /// The guest could not be reached.
    HCS_E_CONNECT_FAILED = 0x8037_0108, "A connection could not be established with the container or virtual machine.";
    /// The guest did not answer in time.
    HCS_E_CONNECTION_TIMEOUT = 0x8037_0109, "The operation timed out because a response was not received from the virtual machine or container.";
    /// The connection to the guest closed.
    HCS_E_CONNECTION_CLOSED = 0x8037_010A, "The connection with the virtual machine or container was closed.";
    /// The guest received a message it does not know.
    HCS_E_UNKNOWN_MESSAGE = 0x8037_010B, "An unknown internal message was received by the virtual machine or container.";
    /// Host and guest share no protocol version.
    HCS_E_UNSUPPORTED_PROTOCOL_VERSION = 0x8037_010C, "The virtual machine or container does not support an available version of the communication protocol with the host.";
    /// A JSON document is invalid.
    HCS_E_INVALID_JSON = 0x8037_010D, "The virtual machine or container JSON document is invalid.";
    /// No compute system has that id.
    HCS_E_SYSTEM_NOT_FOUND = 0x8037_010E, "A virtual machine or container with the specified identifier does not exist.";
    /// The id is already in use.
    HCS_E_SYSTEM_ALREADY_EXISTS = 0x8037_010F, "A virtual machine or container with the specified identifier already exists.";
    /// The system has already stopped.
    HCS_E_SYSTEM_ALREADY_STOPPED = 0x8037_0110, "The virtual machine or container with the specified identifier is not running.";
    /// Host and guest disagree on the protocol.
    HCS_E_PROTOCOL_ERROR = 0x8037_0111, "A communication protocol error has occurred between the virtual machine or container and the host.";
    /// A layer has a format that is not recognized.
    HCS_E_INVALID_LAYER = 0x8037_0112, "The container image contains a layer with an unrecognized format.";
    /// The image needs a Windows Insider build.
    HCS_E_WINDOWS_INSIDER_REQUIRED = 0x8037_0113, "To use this container image, you must join the Windows Insider Program.";
    /// A required service is not available.
    HCS_E_SERVICE_NOT_AVAILABLE = 0x8037_0114, "The operation could not be started because a required feature is not installed.";
    /// The operation has not been handed to any call yet.
    HCS_E_OPERATION_NOT_STARTED = 0x8037_0115, "The operation has not started.";
    /// The operation is already tracking a call.
    HCS_E_OPERATION_ALREADY_STARTED = 0x8037_0116, "The operation is already running.";
    /// The operation is still running.
    HCS_E_OPERATION_PENDING = 0x8037_0117, "The operation is still running.";
    /// A wait ended before the operation completed.
    HCS_E_OPERATION_TIMEOUT = 0x8037_0118, "The operation did not complete in time.";
    /// An event callback is already registered, or it forbids per-operation callbacks.
    HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET = 0x8037_0119, "An event callback has already been registered on this handle.";
    /// The result could not be allocated.
    HCS_E_OPERATION_RESULT_ALLOCATION_FAILED = 0x8037_011A, "Not enough memory available to return the result of the operation.";
    /// The caller may not use the service.
    HCS_E_ACCESS_DENIED = 0x8037_011B, "Insufficient privileges. Only administrators or users that are members of the Hyper-V Administrators user group are permitted to access virtual machines or containers.";
    /// The guest reported a critical error.
    HCS_E_GUEST_CRITICAL_ERROR = 0x8037_011C, "The virtual machine or container reported a critical error and was stopped or restarted.";
    /// Process information is not available.
    HCS_E_PROCESS_INFO_NOT_AVAILABLE = 0x8037_011D, "The process information is not available.";
    /// The service disconnected unexpectedly.
    HCS_E_SERVICE_DISCONNECT = 0x8037_011E, "The host compute system service has disconnected unexpectedly.";
    /// The process has already exited.
    HCS_E_PROCESS_ALREADY_STOPPED = 0x8037_011F, "The process has already exited.";
    /// Not implemented.
    E_NOTIMPL = 0x8000_4001, "Not implemented.";
    /// Unspecified failure.
    E_FAIL = 0x8000_4005, "Unspecified error.";
    /// Unexpected failure.
    E_UNEXPECTED = 0x8000_FFFF, "Catastrophic failure.";
    /// Access denied.
    E_ACCESSDENIED = 0x8007_0005, "Access is denied.";
    /// An argument is invalid.
    E_INVALIDARG = 0x8007_0057, "The parameter is incorrect.";
    /// Out of memory.
    E_OUTOFMEMORY = 0x8007_000E, "Not enough memory resources are available to complete this operation.";
    /// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND).
    ERROR_FILE_NOT_FOUND = 0x8007_0002, "The system cannot find the file specified.";
    /// HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND).
    ERROR_PATH_NOT_FOUND = 0x8007_0003, "The system cannot find the path specified.";
    /// HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE).
    ERROR_INVALID_HANDLE = 0x8007_0006, "The handle is invalid.";
    /// HRESULT_FROM_WIN32(ERROR_INVALID_DATA).
    ERROR_INVALID_DATA = 0x8007_000D, "The data is invalid.";
    /// HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED).
    ERROR_NOT_SUPPORTED = 0x8007_0032, "The request is not supported.";
    /// HRESULT_FROM_WIN32(ERROR_BAD_PATHNAME).
    ERROR_BAD_PATHNAME = 0x8007_00A1, "The specified path is invalid.";
    /// HRESULT_FROM_WIN32(ERROR_NOT_FOUND).
    ERROR_NOT_FOUND = 0x8007_0490, "Element not found.";
    /// HRESULT_FROM_WIN32(ERROR_TIMEOUT).
    ERROR_TIMEOUT = 0x8007_05B4, "This operation returned because the timeout period expired.";
}

impl HResult {
    /// True for success codes (high bit clear).
    pub fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// True for failure codes (high bit set).
    pub fn is_failure(self) -> bool {
        self.0 < 0
    }

    /// The code as the unsigned value Windows tools print (`0x8037010D`).
    pub fn as_u32(self) -> u32 {
        self.0 as u32
    }

    /// `HRESULT_FROM_WIN32` for a Linux `errno`, mapping the common cases to
    /// their Windows twins so callers ported from Windows see familiar codes.
    pub fn from_errno(errno: i32) -> HResult {
        match errno {
            libc_errno::ENOENT => HResult::ERROR_FILE_NOT_FOUND,
            libc_errno::ENOTDIR => HResult::ERROR_PATH_NOT_FOUND,
            libc_errno::EACCES | libc_errno::EPERM => HResult::E_ACCESSDENIED,
            libc_errno::ENOMEM => HResult::E_OUTOFMEMORY,
            libc_errno::EINVAL => HResult::E_INVALIDARG,
            libc_errno::ENOSYS | libc_errno::EOPNOTSUPP => HResult::ERROR_NOT_SUPPORTED,
            libc_errno::ETIMEDOUT => HResult::ERROR_TIMEOUT,
            e if e > 0 && e <= 0xFFFF => HResult((0x8007_0000u32 | e as u32) as i32),
            _ => HResult::E_FAIL,
        }
    }
}

/// The few errno values `from_errno` names; kept here so this crate needs no libc.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const ENOTDIR: i32 = 20;
    pub const EINVAL: i32 = 22;
    pub const ENOSYS: i32 = 38;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ETIMEDOUT: i32 = 110;
}

impl fmt::Display for HResult {
    /// `HCS_E_INVALID_JSON (0x8037010D)`, or just the hex value when unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08X})", self.as_u32()),
            None => write!(f, "0x{:08X}", self.as_u32()),
        }
    }
}

impl fmt::Debug for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<HResult> for i32 {
    fn from(h: HResult) -> i32 {
        h.0
    }
}

/// An HCS failure: the HRESULT a caller tests, and a message that tells a
/// person what was wrong and where.
#[derive(Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{hresult}: {message}")]
pub struct HcsError {
    /// The code returned through the API.
    pub hresult: HResult,
    /// What went wrong, for a person; goes into `ResultError.ErrorMessage`.
    pub message: String,
}

impl HcsError {
    /// An error with an explicit message.
    pub fn new(hresult: HResult, message: impl Into<String>) -> HcsError {
        HcsError {
            hresult,
            message: message.into(),
        }
    }

    /// An error carrying only the system message of its code.
    pub fn from_code(hresult: HResult) -> HcsError {
        HcsError {
            hresult,
            message: hresult.message().to_string(),
        }
    }

    /// `HCS_E_INVALID_JSON` with a message naming the bad field.
    pub fn invalid_json(message: impl Into<String>) -> HcsError {
        HcsError::new(HResult::HCS_E_INVALID_JSON, message)
    }

    /// `E_INVALIDARG` with a message naming the bad argument.
    pub fn invalid_arg(message: impl Into<String>) -> HcsError {
        HcsError::new(HResult::E_INVALIDARG, message)
    }

    /// `HCS_E_INVALID_STATE` with a message naming the state.
    pub fn invalid_state(message: impl Into<String>) -> HcsError {
        HcsError::new(HResult::HCS_E_INVALID_STATE, message)
    }

    /// `HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)` with a message naming the feature.
    pub fn not_supported(message: impl Into<String>) -> HcsError {
        HcsError::new(HResult::ERROR_NOT_SUPPORTED, message)
    }

    /// An error from a failed system call: the HRESULT twin of its errno and
    /// a message that says what was being done.
    pub fn from_io(context: impl fmt::Display, err: &std::io::Error) -> HcsError {
        let hresult = err
            .raw_os_error()
            .map(HResult::from_errno)
            .unwrap_or(HResult::E_FAIL);
        HcsError::new(hresult, format!("{context}: {err}"))
    }

    /// Prefix the message with more context, keeping the code.
    pub fn context(mut self, context: impl fmt::Display) -> HcsError {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Debug for HcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.hresult, self.message)
    }
}

/// Result alias used across the HCS crates.
pub type HcsResult<T> = Result<T, HcsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_winerror() {
        assert_eq!(HResult::HCS_E_INVALID_JSON.as_u32(), 0x8037010D);
        assert_eq!(
            HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET.as_u32(),
            0x80370119
        );
        assert_eq!(HResult::HCS_E_PROCESS_ALREADY_STOPPED.as_u32(), 0x8037011F);
        assert_eq!(HResult::HCS_E_TERMINATED_DURING_START.as_u32(), 0x80370100);
        assert_eq!(HResult::E_INVALIDARG.as_u32(), 0x80070057);
        assert!(HResult::HCS_E_INVALID_JSON.is_failure());
        assert!(HResult::S_OK.is_success());
    }

    #[test]
    fn every_hcs_code_from_0x100_to_0x11f_except_v1_only_is_named() {
        // 0x103 and 0x104 exist only as V1 ERROR_VMCOMPUTE_* codes.
        for low in 0x100u32..=0x11F {
            let h = HResult((0x8037_0000 | low) as i32);
            let expected = !matches!(low, 0x103 | 0x104);
            assert_eq!(h.name().is_some(), expected, "0x{:08X}", h.as_u32());
        }
    }

    #[test]
    fn names_are_unique_and_display_shows_name_and_hex() {
        let mut seen = std::collections::HashSet::new();
        for (code, name) in HResult::ALL {
            assert!(seen.insert(code.0), "duplicate value for {name}");
        }
        assert_eq!(
            HResult::HCS_E_INVALID_JSON.to_string(),
            "HCS_E_INVALID_JSON (0x8037010D)"
        );
        assert_eq!(HResult(0x1234).to_string(), "0x00001234");
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(HResult::from_errno(2), HResult::ERROR_FILE_NOT_FOUND);
        assert_eq!(HResult::from_errno(16).as_u32(), 0x80070010);
    }
}
