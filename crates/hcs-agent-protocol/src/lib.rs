//! The wire protocol between HCS and its guest agent (`hcs-agent`).
//!
//! The host's control connection carries length-framed binary messages: a
//! fixed 24-byte [`Header`] (magic `HCSA`, protocol version, message type,
//! request id, payload length, reserved flags) and a payload of at most
//! [`MAX_PAYLOAD`] bytes. All integers are little-endian; byte strings are a
//! u32 length then the bytes; lists a u32 count then the elements. Stdio is
//! never on this connection: for each stream the agent opens a separate
//! connection to a port the host names in [`CreateProcess`].
//!
//! A connection starts with [`Hello`], listing the client's versions; the
//! agent answers [`HelloReply`] with the highest shared one, or an
//! [`ErrorReply`] with [`hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION`].
//! Each request gets exactly one response with its request id: `Ok`,
//! a typed reply, or `Error` (an HRESULT and a message). [`WaitProcess`] is
//! answered when the process exits, so responses can come out of order.
//!
//! | type | message | payload (v2) | answered with |
//! |---|---|---|---|
//! | 0x0001 | [`Hello`] | versions: list of u16; client: bytes | `HelloReply` or `Error` |
//! | 0x0002 | [`CreateProcess`] | args: list of bytes; executable (v2): bytes; env: list of bytes; cwd: bytes; user: u8 tag (0 default, 1 uid u32 + gid u32, 2 name bytes); terminal: u8 flag + rows u16 + cols u16; stdin, stdout, stderr: u8 flag + port u32 each; then (v2) [`ProcessSecurity`]: additional gids (u8 flag + list of u32), umask (u8 flag + u32), no_new_privileges u8, capabilities (u8 flag + bounding, effective, permitted, inheritable, ambient u64 each), rlimits (list of resource u32, soft u64, hard u64), oom_score_adj (u8 flag + i32) | `ProcessCreated` or `Error` |
//! | 0x0003 | [`ResizeConsole`] | pid u32, rows u16, cols u16 | `Ok` or `Error` |
//! | 0x0004 | [`Signal`] | pid u32, signal u32 | `Ok` or `Error` |
//! | 0x0005 | [`WaitProcess`] | pid u32 | `ProcessExited` (when it exits) or `Error` |
//! | 0x0006 | `ProcessList` | (none) | `ProcessListReply` or `Error` |
//! | 0x0007 | [`Shutdown`] | action u8 (0 power off, 1 reboot) | `Ok`, then it happens |
//! | 0x0008 | [`SetTimeZone`] (v2) | name: bytes; tzif: bytes | `Ok` or `Error` |
//! | 0x0009 | [`SetTime`] (v2) | seconds u64 (Unix epoch), nanoseconds u32 (< 10^9) | `Ok` or `Error` |
//! | 0x8001 | [`HelloReply`] | version u16; agent: bytes | |
//! | 0x8002 | [`ProcessCreated`] | pid u32 | |
//! | 0x8003 | `Ok` | (none) | |
//! | 0x8005 | [`ProcessExited`] | pid u32, exit_code u32 (128+signal if signalled), signal u32 (0 if none) | |
//! | 0x8006 | [`ProcessListReply`] | list of [`ProcessEntry`]: pid u32, command line bytes, start, user and kernel time (100 ns) u64, commit, private and shared working set (bytes) u64 | |
//! | 0x80FF | [`ErrorReply`] | hresult u32; message: bytes | |
//!
//! `Hello`, `HelloReply` and `Error` have frozen layouts and decode at any
//! header version; every other message must carry a version this side
//! speaks.
//!
//! The crate is `#![no_std]` without allocation by default, so a `no_std`
//! guest can use it. Decoding never panics and does not use `core::fmt`: it
//! returns views ([`Message`], [`List`]) borrowing the input. Encoding
//! writes into a caller's buffer, also without panicking. The `alloc`
//! feature adds [`Message::encode_to_vec`], `std` adds blocking frame I/O
//! ([`read_frame`], [`write_frame`]) and `Display` for the errors.

#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
mod frame;
#[cfg(feature = "std")]
mod io;
mod list;
mod message;
#[doc(hidden)]
pub mod wire;

pub use error::{DecodeError, EncodeError};
pub use frame::Header;
#[cfg(feature = "std")]
pub use io::{read_frame, write_frame, FrameError};
pub use list::{Item, List, ListIter};
pub use message::{
    decode_frame, Capabilities, ConsoleSize, CreateProcess, ErrorReply, Hello, HelloReply, Message,
    MessageType, ProcessCreated, ProcessEntry, ProcessExited, ProcessListReply, ProcessSecurity,
    ResizeConsole, Rlimit, SetTime, SetTimeZone, Shutdown, ShutdownAction, Signal, User,
    WaitProcess,
};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"HCSA";
/// Length of [`Header`] on the wire.
pub const HEADER_LEN: usize = 24;
/// Largest payload a frame may carry (1 MiB).
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// Protocol versions this crate encodes and decodes, lowest first.
///
/// Version 2 added `executable` and [`ProcessSecurity`] to [`CreateProcess`]; a version-1
/// peer shares no version with this one, so the handshake fails with
/// `HCS_E_UNSUPPORTED_PROTOCOL_VERSION` naming both sides' versions rather
/// than a v1 agent silently dropping what it cannot read.
pub const SUPPORTED_VERSIONS: [u16; 1] = [2];
/// The newest protocol version.
pub const PROTOCOL_VERSION: u16 = 2;

/// The host's vsock CID (`VMADDR_CID_HOST`).
pub const HOST_CID: u32 = 2;
/// The host port the agent connects its control connection to ("HC").
pub const AGENT_CONTROL_PORT: u32 = 0x4843;

/// Does this crate speak `version`?
pub const fn version_supported(version: u16) -> bool {
    let mut i = 0;
    while i < SUPPORTED_VERSIONS.len() {
        if SUPPORTED_VERSIONS[i] == version {
            return true;
        }
        i += 1;
    }
    false
}

/// The highest version offered that this crate also speaks.
pub fn negotiate<I: IntoIterator<Item = u16>>(offered: I) -> Option<u16> {
    offered.into_iter().filter(|v| version_supported(*v)).max()
}

/// HRESULTs carried in [`ErrorReply`] (values from hcs-api.md §4).
pub mod hresult {
    /// Success.
    pub const S_OK: u32 = 0;
    /// Unspecified failure.
    pub const E_FAIL: u32 = 0x8000_4005;
    /// Invalid argument.
    pub const E_INVALIDARG: u32 = 0x8007_0057;
    /// Access denied.
    pub const E_ACCESSDENIED: u32 = 0x8007_0005;
    /// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`.
    pub const ERROR_FILE_NOT_FOUND: u32 = 0x8007_0002;
    /// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`: no such element (process, user or group).
    pub const ERROR_NOT_FOUND: u32 = 0x8007_0490;
    /// `HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)`.
    pub const ERROR_NOT_SUPPORTED: u32 = 0x8007_0032;
    /// The guest received an unknown message.
    pub const HCS_E_UNKNOWN_MESSAGE: u32 = 0x8037_010B;
    /// No protocol version is shared by host and guest.
    pub const HCS_E_UNSUPPORTED_PROTOCOL_VERSION: u32 = 0x8037_010C;
    /// Host/guest protocol error.
    pub const HCS_E_PROTOCOL_ERROR: u32 = 0x8037_0111;
    /// The process has already exited.
    pub const HCS_E_PROCESS_ALREADY_STOPPED: u32 = 0x8037_011F;
}
