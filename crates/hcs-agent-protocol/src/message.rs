//! The messages and their payload encodings (protocol version 2).

use crate::list::{Item, List};
use crate::wire::{add, bytes_len, Reader, Writer};
use crate::{DecodeError, EncodeError, Header, HEADER_LEN, MAX_PAYLOAD};

/// Message type codes. Requests (host to agent) are `0x00xx`, responses
/// (agent to host) `0x80xx`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum MessageType {
    /// [`Hello`].
    Hello = 0x0001,
    /// [`CreateProcess`].
    CreateProcess = 0x0002,
    /// [`ResizeConsole`].
    ResizeConsole = 0x0003,
    /// [`Signal`].
    Signal = 0x0004,
    /// [`WaitProcess`].
    WaitProcess = 0x0005,
    /// [`Message::ProcessList`] (no payload).
    ProcessList = 0x0006,
    /// [`Shutdown`].
    Shutdown = 0x0007,
    /// [`SetTimeZone`] (version 2).
    SetTimeZone = 0x0008,
    /// [`SetTime`] (version 2).
    SetTime = 0x0009,
    /// [`HelloReply`].
    HelloReply = 0x8001,
    /// [`ProcessCreated`].
    ProcessCreated = 0x8002,
    /// [`Message::Ok`] (no payload).
    Ok = 0x8003,
    /// [`ProcessExited`].
    ProcessExited = 0x8005,
    /// [`ProcessListReply`].
    ProcessListReply = 0x8006,
    /// [`ErrorReply`].
    Error = 0x80FF,
}

impl MessageType {
    /// The type for a raw code, if it is known.
    pub const fn from_u16(v: u16) -> Option<MessageType> {
        Some(match v {
            0x0001 => MessageType::Hello,
            0x0002 => MessageType::CreateProcess,
            0x0003 => MessageType::ResizeConsole,
            0x0004 => MessageType::Signal,
            0x0005 => MessageType::WaitProcess,
            0x0006 => MessageType::ProcessList,
            0x0007 => MessageType::Shutdown,
            0x0008 => MessageType::SetTimeZone,
            0x0009 => MessageType::SetTime,
            0x8001 => MessageType::HelloReply,
            0x8002 => MessageType::ProcessCreated,
            0x8003 => MessageType::Ok,
            0x8005 => MessageType::ProcessExited,
            0x8006 => MessageType::ProcessListReply,
            0x80FF => MessageType::Error,
            _ => return None,
        })
    }

    /// Is the payload layout frozen across versions? True for the
    /// handshake (`Hello`, `HelloReply`) and `Error`, so that a peer sharing
    /// no version with the other can still read why.
    pub const fn is_version_independent(self) -> bool {
        matches!(
            self,
            MessageType::Hello | MessageType::HelloReply | MessageType::Error
        )
    }

    /// Is this a response (agent to host)?
    pub const fn is_response(self) -> bool {
        (self as u16) & 0x8000 != 0
    }
}

/// Version handshake, the first request on a connection. Its payload layout
/// is frozen: it decodes whatever the header's version says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello<'a> {
    /// Protocol versions the client speaks.
    pub versions: List<'a, u16>,
    /// Free-form client name, for logs.
    pub client: &'a [u8],
}

/// The agent's answer to [`Hello`]: the highest shared version. When no
/// version is shared the agent answers an [`ErrorReply`] with
/// [`crate::hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION`] instead.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HelloReply<'a> {
    /// The version both sides use from now on.
    pub version: u16,
    /// Free-form agent name and version, for logs.
    pub agent: &'a [u8],
}

/// Who a process runs as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum User<'a> {
    /// The agent's own user (root in a guest). Tag 0.
    Default,
    /// Numeric ids; supplementary groups are just `gid`. Tag 1.
    Id {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// A name (or `uid[:gid]` text) resolved in the guest's /etc/passwd. Tag 2.
    Name(&'a [u8]),
}

/// Console size in character cells.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConsoleSize {
    /// Rows (height).
    pub rows: u16,
    /// Columns (width).
    pub cols: u16,
}

/// Capability sets of a process, as masks (bit `n` is capability `n`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Capabilities {
    /// The bounding set; capabilities outside it are dropped from it.
    pub bounding: u64,
    /// Effective.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
    /// Ambient (each must also be permitted and inheritable).
    pub ambient: u64,
}

/// One resource limit (`setrlimit`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rlimit {
    /// Linux resource number (`RLIMIT_NOFILE` is 7, ...).
    pub resource: u32,
    /// Soft limit (`u64::MAX` is unlimited).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl<'a> Item<'a> for Rlimit {
    const MIN_WIRE_LEN: usize = 20;

    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Rlimit {
            resource: r.u32()?,
            soft: r.u64()?,
            hard: r.u64()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.resource)?;
        w.u64(self.soft)?;
        w.u64(self.hard)
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        Ok(20)
    }
}

/// What a process gets beyond its user (version 2): the rest of an OCI
/// runtime-spec `process`. [`ProcessSecurity::INHERIT`] changes nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessSecurity<'a> {
    /// With `Some`, exactly these supplementary groups; `None` gives the
    /// user's groups (from the guest's /etc/group for a name).
    pub additional_gids: Option<List<'a, u32>>,
    /// The file mode creation mask; `None` keeps the agent's.
    pub umask: Option<u32>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privileges: bool,
    /// With `Some`, exactly these capability sets; `None` keeps what the
    /// kernel gives the user (all for root, none for others).
    pub capabilities: Option<Capabilities>,
    /// Resource limits, applied in order.
    pub rlimits: List<'a, Rlimit>,
    /// Written to /proc/self/oom_score_adj; `None` keeps the agent's.
    pub oom_score_adj: Option<i32>,
}

impl ProcessSecurity<'_> {
    /// Nothing beyond the user: the agent's umask, limits and so on.
    pub const INHERIT: ProcessSecurity<'static> = ProcessSecurity {
        additional_gids: None,
        umask: None,
        no_new_privileges: false,
        capabilities: None,
        rlimits: List::Slice(&[]),
        oom_score_adj: None,
    };
}

/// Start a process. Each stdio stream is either absent or a port that the
/// agent connects to (vsock port, or `<dir>/port_<N>` in unix mode); stdio
/// never travels on the control connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CreateProcess<'a> {
    /// argv; `args[0]` is looked up in the process's `PATH` when it has no `/`.
    pub args: List<'a, &'a [u8]>,
    /// The program to run (version 2), looked up as `args[0]` would be;
    /// empty runs `args[0]` (Windows `ApplicationName` with a `CommandLine`).
    pub executable: &'a [u8],
    /// Environment, `NAME=value` strings.
    pub env: List<'a, &'a [u8]>,
    /// Working directory; empty means `/`.
    pub cwd: &'a [u8],
    /// Who to run as.
    pub user: User<'a>,
    /// A pseudo-terminal of this size instead of pipes (stderr must then be absent).
    pub terminal: Option<ConsoleSize>,
    /// Port of the stdin stream.
    pub stdin_port: Option<u32>,
    /// Port of the stdout stream (the terminal's output with `terminal`).
    pub stdout_port: Option<u32>,
    /// Port of the stderr stream.
    pub stderr_port: Option<u32>,
    /// Groups, umask, capabilities, limits (version 2).
    pub security: ProcessSecurity<'a>,
}

/// The process was started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessCreated {
    /// Its pid in the guest.
    pub pid: u32,
}

/// Resize a process's terminal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResizeConsole {
    /// The process.
    pub pid: u32,
    /// New size.
    pub size: ConsoleSize,
}

/// Send a signal to a process started by the agent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signal {
    /// The process.
    pub pid: u32,
    /// Linux signal number.
    pub signal: u32,
}

/// Ask to be told when a process exits; answered with [`ProcessExited`]
/// (at once if it already has).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WaitProcess {
    /// The process.
    pub pid: u32,
}

/// A process exited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessExited {
    /// The process.
    pub pid: u32,
    /// Its exit code; `128 + signal` when it was killed by a signal.
    pub exit_code: u32,
    /// The signal that killed it, or 0.
    pub signal: u32,
}

/// One process of [`ProcessListReply`] (the fields of HCS's `ProcessDetails`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessEntry<'a> {
    /// Pid.
    pub pid: u32,
    /// Command line, arguments separated by spaces (`[comm]` for kernel threads).
    pub command_line: &'a [u8],
    /// Start time, in 100 ns units since the guest booted.
    pub start_time_100ns: u64,
    /// User CPU time, 100 ns units.
    pub user_time_100ns: u64,
    /// Kernel CPU time, 100 ns units.
    pub kernel_time_100ns: u64,
    /// Virtual memory size (commit).
    pub memory_commit_bytes: u64,
    /// Resident memory not shared.
    pub working_set_private_bytes: u64,
    /// Resident shared memory.
    pub working_set_shared_bytes: u64,
}

impl<'a> Item<'a> for ProcessEntry<'a> {
    const MIN_WIRE_LEN: usize = 4 + 4 + 6 * 8;

    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(ProcessEntry {
            pid: r.u32()?,
            command_line: r.bytes()?,
            start_time_100ns: r.u64()?,
            user_time_100ns: r.u64()?,
            kernel_time_100ns: r.u64()?,
            memory_commit_bytes: r.u64()?,
            working_set_private_bytes: r.u64()?,
            working_set_shared_bytes: r.u64()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.pid)?;
        w.bytes(self.command_line)?;
        w.u64(self.start_time_100ns)?;
        w.u64(self.user_time_100ns)?;
        w.u64(self.kernel_time_100ns)?;
        w.u64(self.memory_commit_bytes)?;
        w.u64(self.working_set_private_bytes)?;
        w.u64(self.working_set_shared_bytes)
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        add(4 + 6 * 8, bytes_len(self.command_line)?)
    }
}

/// The guest's processes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessListReply<'a> {
    /// One entry per process.
    pub processes: List<'a, ProcessEntry<'a>>,
}

/// What [`Shutdown`] does after syncing and killing every process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownAction {
    /// Power off (tag 0).
    PowerOff,
    /// Reboot (tag 1).
    Reboot,
}

/// Shut the guest down. Answered with [`Message::Ok`] before it happens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Shutdown {
    /// Power off or reboot.
    pub action: ShutdownAction,
}

/// Set the guest's time zone (the host's, for `UseHostTimeZone`):
/// /etc/localtime gets `tzif`, /etc/timezone `name`. Answered with `Ok`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SetTimeZone<'a> {
    /// IANA name (`Europe/Paris`), or empty when unknown.
    pub name: &'a [u8],
    /// The zone's TZif data (the host's /etc/localtime); empty means UTC.
    pub tzif: &'a [u8],
}

/// Set the guest's wall clock (`CLOCK_REALTIME`) to the host's, as Hyper-V's
/// time synchronization service does: sent on each connection, so a guest
/// restored from a saved state (whose clock stood still while it was
/// saved) catches up. Answered with `Ok`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SetTime {
    /// Seconds since the Unix epoch.
    pub seconds: u64,
    /// Nanoseconds within the second (below 1 000 000 000).
    pub nanoseconds: u32,
}

/// A failed request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrorReply<'a> {
    /// HRESULT (see [`crate::hresult`]).
    pub hresult: u32,
    /// What failed and why (UTF-8).
    pub message: &'a [u8],
}

/// Every message, borrowing its strings and lists.
// CreateProcess is the big variant; boxing it would need an allocator,
// which the no_std guest does not have, and a message lives on one stack frame.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Message<'a> {
    /// Version handshake request.
    Hello(Hello<'a>),
    /// Start a process.
    CreateProcess(CreateProcess<'a>),
    /// Resize a terminal.
    ResizeConsole(ResizeConsole),
    /// Signal a process.
    Signal(Signal),
    /// Wait for a process's exit.
    WaitProcess(WaitProcess),
    /// List the guest's processes.
    ProcessList,
    /// Power off or reboot.
    Shutdown(Shutdown),
    /// Set the time zone.
    SetTimeZone(SetTimeZone<'a>),
    /// Set the wall clock.
    SetTime(SetTime),
    /// Handshake answer.
    HelloReply(HelloReply<'a>),
    /// A process was started.
    ProcessCreated(ProcessCreated),
    /// Success without data.
    Ok,
    /// A process exited.
    ProcessExited(ProcessExited),
    /// The process list.
    ProcessListReply(ProcessListReply<'a>),
    /// A failed request.
    Error(ErrorReply<'a>),
}

fn read_port(r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    if r.bool()? {
        Ok(Some(r.u32()?))
    } else {
        Ok(None)
    }
}

fn write_port(w: &mut Writer<'_>, port: Option<u32>) -> Result<(), EncodeError> {
    match port {
        None => w.bool(false),
        Some(p) => {
            w.bool(true)?;
            w.u32(p)
        }
    }
}

fn port_len(port: Option<u32>) -> usize {
    if port.is_some() {
        5
    } else {
        1
    }
}

fn read_size(r: &mut Reader<'_>) -> Result<ConsoleSize, DecodeError> {
    Ok(ConsoleSize {
        rows: r.u16()?,
        cols: r.u16()?,
    })
}

fn write_size(w: &mut Writer<'_>, s: ConsoleSize) -> Result<(), EncodeError> {
    w.u16(s.rows)?;
    w.u16(s.cols)
}

impl<'a> User<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(User::Default),
            1 => Ok(User::Id {
                uid: r.u32()?,
                gid: r.u32()?,
            }),
            2 => Ok(User::Name(r.bytes()?)),
            _ => Err(DecodeError::InvalidTag),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            User::Default => w.u8(0),
            User::Id { uid, gid } => {
                w.u8(1)?;
                w.u32(uid)?;
                w.u32(gid)
            }
            User::Name(name) => {
                w.u8(2)?;
                w.bytes(name)
            }
        }
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        match self {
            User::Default => Ok(1),
            User::Id { .. } => Ok(9),
            User::Name(name) => add(1, bytes_len(name)?),
        }
    }
}

/// A flag byte, then the value when the flag is 1.
fn read_opt<'a, T>(
    r: &mut Reader<'a>,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    if r.bool()? {
        f(r).map(Some)
    } else {
        Ok(None)
    }
}

impl<'a> ProcessSecurity<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(ProcessSecurity {
            additional_gids: read_opt(r, List::read)?,
            umask: read_opt(r, Reader::u32)?,
            no_new_privileges: r.bool()?,
            capabilities: read_opt(r, |r| {
                Ok(Capabilities {
                    bounding: r.u64()?,
                    effective: r.u64()?,
                    permitted: r.u64()?,
                    inheritable: r.u64()?,
                    ambient: r.u64()?,
                })
            })?,
            rlimits: List::read(r)?,
            oom_score_adj: read_opt(r, |r| r.u32().map(|v| v as i32))?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match &self.additional_gids {
            None => w.bool(false)?,
            Some(l) => {
                w.bool(true)?;
                l.write(w)?;
            }
        }
        match self.umask {
            None => w.bool(false)?,
            Some(m) => {
                w.bool(true)?;
                w.u32(m)?;
            }
        }
        w.bool(self.no_new_privileges)?;
        match self.capabilities {
            None => w.bool(false)?,
            Some(c) => {
                w.bool(true)?;
                for set in [
                    c.bounding,
                    c.effective,
                    c.permitted,
                    c.inheritable,
                    c.ambient,
                ] {
                    w.u64(set)?;
                }
            }
        }
        self.rlimits.write(w)?;
        match self.oom_score_adj {
            None => w.bool(false),
            Some(n) => {
                w.bool(true)?;
                w.u32(n as u32)
            }
        }
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        let gids = match &self.additional_gids {
            None => 1,
            Some(l) => add(1, l.wire_len()?)?,
        };
        let umask = if self.umask.is_some() { 5 } else { 1 };
        let caps = if self.capabilities.is_some() { 41 } else { 1 };
        let oom = if self.oom_score_adj.is_some() { 5 } else { 1 };
        let n = add(gids, umask + 1 + caps + oom)?;
        add(n, self.rlimits.wire_len()?)
    }
}

impl<'a> CreateProcess<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let args = List::read(r)?;
        let executable = r.bytes()?;
        let env = List::read(r)?;
        let cwd = r.bytes()?;
        let user = User::read(r)?;
        let terminal = if r.bool()? { Some(read_size(r)?) } else { None };
        Ok(CreateProcess {
            args,
            executable,
            env,
            cwd,
            user,
            terminal,
            stdin_port: read_port(r)?,
            stdout_port: read_port(r)?,
            stderr_port: read_port(r)?,
            security: ProcessSecurity::read(r)?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.args.write(w)?;
        w.bytes(self.executable)?;
        self.env.write(w)?;
        w.bytes(self.cwd)?;
        self.user.write(w)?;
        match self.terminal {
            None => w.bool(false)?,
            Some(size) => {
                w.bool(true)?;
                write_size(w, size)?;
            }
        }
        write_port(w, self.stdin_port)?;
        write_port(w, self.stdout_port)?;
        write_port(w, self.stderr_port)?;
        self.security.write(w)
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        let mut n = add(self.args.wire_len()?, self.env.wire_len()?)?;
        n = add(n, bytes_len(self.executable)?)?;
        n = add(n, bytes_len(self.cwd)?)?;
        n = add(n, self.user.wire_len()?)?;
        n = add(n, if self.terminal.is_some() { 5 } else { 1 })?;
        n = add(n, port_len(self.stdin_port))?;
        n = add(n, port_len(self.stdout_port))?;
        n = add(n, port_len(self.stderr_port))?;
        add(n, self.security.wire_len()?)
    }
}

impl<'a> Message<'a> {
    /// The message's type code.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::CreateProcess(_) => MessageType::CreateProcess,
            Message::ResizeConsole(_) => MessageType::ResizeConsole,
            Message::Signal(_) => MessageType::Signal,
            Message::WaitProcess(_) => MessageType::WaitProcess,
            Message::ProcessList => MessageType::ProcessList,
            Message::Shutdown(_) => MessageType::Shutdown,
            Message::SetTimeZone(_) => MessageType::SetTimeZone,
            Message::SetTime(_) => MessageType::SetTime,
            Message::HelloReply(_) => MessageType::HelloReply,
            Message::ProcessCreated(_) => MessageType::ProcessCreated,
            Message::Ok => MessageType::Ok,
            Message::ProcessExited(_) => MessageType::ProcessExited,
            Message::ProcessListReply(_) => MessageType::ProcessListReply,
            Message::Error(_) => MessageType::Error,
        }
    }

    /// Decodes a payload whose header was decoded with [`Header::decode`].
    /// `payload` must be exactly the payload (`header.payload_len` bytes).
    pub fn decode(header: &Header, payload: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        if payload.len() != header.payload_usize() {
            return Err(DecodeError::Truncated);
        }
        let ty = header
            .message_type()
            .ok_or(DecodeError::UnknownMessageType)?;
        if !ty.is_version_independent() && !crate::version_supported(header.version) {
            return Err(DecodeError::UnsupportedVersion);
        }
        let mut r = Reader::new(payload);
        let msg = Self::read_payload(ty, &mut r)?;
        r.finish()?;
        Ok(msg)
    }

    fn read_payload(ty: MessageType, r: &mut Reader<'a>) -> Result<Message<'a>, DecodeError> {
        Ok(match ty {
            MessageType::Hello => Message::Hello(Hello {
                versions: List::read(r)?,
                client: r.bytes()?,
            }),
            MessageType::CreateProcess => Message::CreateProcess(CreateProcess::read(r)?),
            MessageType::ResizeConsole => Message::ResizeConsole(ResizeConsole {
                pid: r.u32()?,
                size: read_size(r)?,
            }),
            MessageType::Signal => Message::Signal(Signal {
                pid: r.u32()?,
                signal: r.u32()?,
            }),
            MessageType::WaitProcess => Message::WaitProcess(WaitProcess { pid: r.u32()? }),
            MessageType::ProcessList => Message::ProcessList,
            MessageType::Shutdown => Message::Shutdown(Shutdown {
                action: match r.u8()? {
                    0 => ShutdownAction::PowerOff,
                    1 => ShutdownAction::Reboot,
                    _ => return Err(DecodeError::InvalidTag),
                },
            }),
            MessageType::SetTimeZone => Message::SetTimeZone(SetTimeZone {
                name: r.bytes()?,
                tzif: r.bytes()?,
            }),
            MessageType::SetTime => Message::SetTime(SetTime {
                seconds: r.u64()?,
                nanoseconds: match r.u32()? {
                    n if n < 1_000_000_000 => n,
                    _ => return Err(DecodeError::InvalidTag),
                },
            }),
            MessageType::HelloReply => Message::HelloReply(HelloReply {
                version: r.u16()?,
                agent: r.bytes()?,
            }),
            MessageType::ProcessCreated => {
                Message::ProcessCreated(ProcessCreated { pid: r.u32()? })
            }
            MessageType::Ok => Message::Ok,
            MessageType::ProcessExited => Message::ProcessExited(ProcessExited {
                pid: r.u32()?,
                exit_code: r.u32()?,
                signal: r.u32()?,
            }),
            MessageType::ProcessListReply => Message::ProcessListReply(ProcessListReply {
                processes: List::read(r)?,
            }),
            MessageType::Error => Message::Error(ErrorReply {
                hresult: r.u32()?,
                message: r.bytes()?,
            }),
        })
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> Result<usize, EncodeError> {
        match self {
            Message::Hello(h) => add(h.versions.wire_len()?, bytes_len(h.client)?),
            Message::CreateProcess(c) => c.wire_len(),
            Message::ResizeConsole(_) => Ok(8),
            Message::Signal(_) => Ok(8),
            Message::WaitProcess(_) => Ok(4),
            Message::ProcessList | Message::Ok => Ok(0),
            Message::Shutdown(_) => Ok(1),
            Message::SetTimeZone(t) => add(bytes_len(t.name)?, bytes_len(t.tzif)?),
            Message::SetTime(_) => Ok(12),
            Message::HelloReply(h) => add(2, bytes_len(h.agent)?),
            Message::ProcessCreated(_) => Ok(4),
            Message::ProcessExited(_) => Ok(12),
            Message::ProcessListReply(p) => p.processes.wire_len(),
            Message::Error(e) => add(4, bytes_len(e.message)?),
        }
    }

    /// Frame length (header plus payload).
    pub fn frame_len(&self) -> Result<usize, EncodeError> {
        let payload = self.payload_len()?;
        if payload > MAX_PAYLOAD as usize {
            return Err(EncodeError::TooLarge);
        }
        add(HEADER_LEN, payload)
    }

    fn write_payload(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Message::Hello(h) => {
                h.versions.write(w)?;
                w.bytes(h.client)
            }
            Message::CreateProcess(c) => c.write(w),
            Message::ResizeConsole(m) => {
                w.u32(m.pid)?;
                write_size(w, m.size)
            }
            Message::Signal(m) => {
                w.u32(m.pid)?;
                w.u32(m.signal)
            }
            Message::WaitProcess(m) => w.u32(m.pid),
            Message::ProcessList | Message::Ok => Ok(()),
            Message::Shutdown(m) => w.u8(match m.action {
                ShutdownAction::PowerOff => 0,
                ShutdownAction::Reboot => 1,
            }),
            Message::SetTimeZone(t) => {
                w.bytes(t.name)?;
                w.bytes(t.tzif)
            }
            Message::SetTime(t) => {
                w.u64(t.seconds)?;
                w.u32(t.nanoseconds)
            }
            Message::HelloReply(h) => {
                w.u16(h.version)?;
                w.bytes(h.agent)
            }
            Message::ProcessCreated(m) => w.u32(m.pid),
            Message::ProcessExited(m) => {
                w.u32(m.pid)?;
                w.u32(m.exit_code)?;
                w.u32(m.signal)
            }
            Message::ProcessListReply(p) => p.processes.write(w),
            Message::Error(e) => {
                w.u32(e.hresult)?;
                w.bytes(e.message)
            }
        }
    }

    /// Encodes header and payload into `out`; returns the frame length.
    /// Never panics: a short buffer is [`EncodeError::BufferTooSmall`].
    pub fn encode(
        &self,
        version: u16,
        request_id: u64,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let payload = self.payload_len()?;
        let payload_len = u32::try_from(payload).map_err(|_| EncodeError::TooLarge)?;
        if payload_len > MAX_PAYLOAD {
            return Err(EncodeError::TooLarge);
        }
        let header = Header {
            version,
            msg_type: self.message_type() as u16,
            request_id,
            payload_len,
        };
        let mut w = Writer::new(out);
        header.write(&mut w)?;
        self.write_payload(&mut w)?;
        Ok(w.position())
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn encode_to_vec(
        &self,
        version: u16,
        request_id: u64,
    ) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        let mut out = alloc::vec![0u8; self.frame_len()?];
        let n = self.encode(version, request_id, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Decodes one whole frame from the start of `input`. Returns the header,
/// the message and the number of bytes used. `Truncated` means more bytes
/// are needed (or, on a complete input, that it is cut short).
pub fn decode_frame(input: &[u8]) -> Result<(Header, Message<'_>, usize), DecodeError> {
    let header = Header::decode(input)?;
    let end = header.frame_len();
    let payload = input.get(HEADER_LEN..end).ok_or(DecodeError::Truncated)?;
    let msg = Message::decode(&header, payload)?;
    Ok((header, msg, end))
}
