//! The host side of the guest agent protocol (`hcs-agent-protocol`): one
//! control connection to the agent in a VM (or, in tests, to `hcs-agent
//! --unix` on the host), requests with their replies matched by id, process
//! exits and the connection's loss reported as [`AgentEvent`]s.
//!
//! A reader thread owns the receiving half. Callers block in
//! [`AgentClient::request`] until their reply arrives (bounded by a
//! timeout); `WaitProcess` replies, which come whenever a process exits,
//! become events and wake the monitor's loop through an eventfd.
//!
//! Stdio is never on the control connection: for each stream the host
//! listens on a port and the agent connects to it. A port's listening
//! socket is `port_path(port)`: `<uds>_<port>` behind the hybrid vsock
//! device, `<dir>/port_<port>` for `hcs-agent --unix`.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};

use hcs_agent_protocol as proto;
use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_schema::{ProcessDetails, ProcessParameters};

use crate::backend::StartedProcess;
use crate::process_params;

/// How long a request may wait for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent has to connect a stdio stream after creating a process.
const STDIO_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First port handed out for stdio streams (clear of the control port).
const FIRST_STDIO_PORT: u32 = 0x1_0000;

/// The host's time zone, as `UseHostTimeZone` gives it to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTimeZone {
    /// IANA name (`Europe/Paris`); empty when the host's is unnamed.
    pub name: String,
    /// The zone's TZif data; empty for UTC.
    pub tzif: Vec<u8>,
}

impl HostTimeZone {
    /// The time zone of the host whose /etc is `etc`: /etc/localtime's
    /// data (UTC when there is none), named by /etc/timezone or by the
    /// path under `zoneinfo/` that /etc/localtime links to.
    pub fn of_host(etc: &Path) -> HcsResult<HostTimeZone> {
        let localtime = etc.join("localtime");
        let tzif = match std::fs::read(&localtime) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(HostTimeZone {
                    name: "UTC".into(),
                    tzif: Vec::new(),
                })
            }
            Err(e) => {
                return Err(HcsError::from_io(
                    format!("reading the host's time zone ({})", localtime.display()),
                    &e,
                ))
            }
        };
        let from_file = std::fs::read_to_string(etc.join("timezone"))
            .ok()
            .map(|n| n.trim().to_string());
        let from_link = std::fs::read_link(&localtime).ok().and_then(|t| {
            let t = t.to_string_lossy().into_owned();
            t.split_once("zoneinfo/").map(|(_, name)| name.to_string())
        });
        let name = from_file
            .filter(|n| !n.is_empty())
            .or(from_link)
            .unwrap_or_default();
        Ok(HostTimeZone { name, tzif })
    }
}

/// What the agent tells us without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// A process the host is watching exited.
    ProcessExited {
        /// Its pid in the guest.
        pid: u32,
        /// Exit code; 128 + signal when killed by a signal.
        exit_code: u32,
    },
    /// The control connection ended (the agent exited, or the guest stopped).
    ConnectionClosed,
}

/// A decoded reply, owning its data.
#[derive(Debug, Clone)]
enum Reply {
    Ok,
    Created(u32),
    Exited { pid: u32, exit_code: u32 },
    Processes(Vec<ProcessDetails>),
    Error { hresult: u32, message: String },
    Other(u16),
}

impl Reply {
    fn from_message(m: &proto::Message<'_>) -> Reply {
        use proto::Message as M;
        match m {
            M::Ok => Reply::Ok,
            M::ProcessCreated(c) => Reply::Created(c.pid),
            M::ProcessExited(e) => Reply::Exited {
                pid: e.pid,
                exit_code: e.exit_code,
            },
            M::ProcessListReply(l) => Reply::Processes(
                l.processes
                    .iter()
                    .map(|p| ProcessDetails {
                        process_id: Some(p.pid),
                        image_name: Some(String::from_utf8_lossy(p.command_line).into_owned()),
                        create_timestamp: None,
                        user_time_100ns: Some(p.user_time_100ns),
                        kernel_time_100ns: Some(p.kernel_time_100ns),
                        memory_commit_bytes: Some(p.memory_commit_bytes),
                        memory_working_set_private_bytes: Some(p.working_set_private_bytes),
                        memory_working_set_shared_bytes: Some(p.working_set_shared_bytes),
                        // A guest's processes have no pid on this host.
                        host_process_id: None,
                    })
                    .collect(),
            ),
            M::Error(e) => Reply::Error {
                hresult: e.hresult,
                message: String::from_utf8_lossy(e.message).into_owned(),
            },
            other => Reply::Other(other.message_type() as u16),
        }
    }
}

/// Where a reply goes.
enum Waiter {
    /// A caller blocked in `request`.
    Caller(SyncSender<Reply>),
    /// A `WaitProcess` watch: the reply becomes an event.
    Watch,
}

/// Called (on the reader thread) when there are new events.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// State shared with the reader thread.
struct Shared {
    waiters: Mutex<HashMap<u64, Waiter>>,
    events: Mutex<Vec<AgentEvent>>,
    wake: Wake,
    closed: AtomicBool,
    /// The system is stopping: the connection was abandoned.
    cancelled: AtomicBool,
    /// Readable once the connection has ended: stdio accepts watch it.
    ended: EventFd,
}

impl Shared {
    fn push_event(&self, e: AgentEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(e);
        }
        (self.wake)();
    }
}

/// One control connection to a guest agent.
pub struct AgentClient {
    writer: Mutex<UnixStream>,
    version: u16,
    agent_name: String,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    next_port: AtomicU32,
    port_path: Box<dyn Fn(u32) -> PathBuf + Send + Sync>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn agent_error(what: &str, e: impl std::fmt::Display) -> HcsError {
    HcsError::new(
        HResult::HCS_E_CONNECTION_CLOSED,
        format!("guest agent: {what}: {e}"),
    )
}

fn encode_err(e: proto::EncodeError) -> HcsError {
    HcsError::new(
        HResult::E_INVALIDARG,
        format!("guest agent request cannot be encoded: {}", e.as_str()),
    )
}

/// Reads the connection: each read first waits (up to the deadline, if
/// any) for the stream or for `cancel` (the guest link's stop eventfd,
/// written when the system stops), so a stop never waits for a guest that
/// does not answer: neither the handshake nor any request's reply.
struct CancellableReader<'a> {
    stream: &'a UnixStream,
    cancel: Option<BorrowedFd<'a>>,
    deadline: Option<Instant>,
}

/// The error a cancelled read returns (not `Interrupted`, which readers
/// retry).
fn cancelled() -> std::io::Error {
    std::io::Error::other("cancelled: the system is stopping")
}

impl std::io::Read for CancellableReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        loop {
            let timeout = match self.deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = vec![PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            if let Some(c) = self.cancel {
                fds.push(PollFd::new(c, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            if fds.get(1).and_then(|f| f.any()).unwrap_or(false) {
                return Err(cancelled());
            }
            // Readable (or hung up): this read returns at once.
            let mut s = self.stream;
            return s.read(buf);
        }
    }
}

impl AgentClient {
    /// Say Hello on `stream` and, once a version is agreed, start the reader.
    /// `port_path` names the socket a stdio port listens on; `wake` is
    /// called whenever [`AgentClient::take_events`] has something new.
    pub fn connect(
        stream: UnixStream,
        port_path: Box<dyn Fn(u32) -> PathBuf + Send + Sync>,
        wake: Wake,
    ) -> HcsResult<AgentClient> {
        Self::connect_cancellable(stream, port_path, wake, None)
    }

    /// [`AgentClient::connect`], giving up at once (`HCS_E_TERMINATED`)
    /// when `cancel` becomes readable: the handshake with a guest that does
    /// not answer must not hold up stopping the system.
    pub fn connect_cancellable(
        stream: UnixStream,
        port_path: Box<dyn Fn(u32) -> PathBuf + Send + Sync>,
        wake: Wake,
        cancel: Option<BorrowedFd<'_>>,
    ) -> HcsResult<AgentClient> {
        let mut writer = stream
            .try_clone()
            .map_err(|e| agent_error("cloning the connection", e))?;
        let hello = proto::Message::Hello(proto::Hello {
            versions: proto::List::Slice(&proto::SUPPORTED_VERSIONS),
            client: b"hcs-monitor",
        });
        proto::write_frame(&mut writer, &hello, proto::PROTOCOL_VERSION, 0)
            .map_err(|e| agent_error("sending Hello", e))?;
        let reader = stream;
        let mut payload = Vec::new();
        let mut hello_reader = CancellableReader {
            stream: &reader,
            cancel,
            deadline: Some(Instant::now() + REQUEST_TIMEOUT),
        };
        let header = proto::read_frame(&mut hello_reader, &mut payload)
            .map_err(|e| match e {
                proto::FrameError::Io(io) if io.kind() == std::io::ErrorKind::Other => {
                    HcsError::new(
                        HResult::HCS_E_TERMINATED,
                        "guest agent handshake abandoned: the system is stopping",
                    )
                }
                e => agent_error("reading the Hello reply", e),
            })?
            .ok_or_else(|| agent_error("handshake", "the agent closed the connection"))?;
        let (version, agent_name) = match proto::Message::decode(&header, &payload) {
            Ok(proto::Message::HelloReply(r)) => {
                (r.version, String::from_utf8_lossy(r.agent).into_owned())
            }
            Ok(proto::Message::Error(e)) => {
                return Err(HcsError::new(
                    HResult(e.hresult as i32),
                    format!(
                        "guest agent refused the handshake: {}",
                        String::from_utf8_lossy(e.message)
                    ),
                ))
            }
            Ok(other) => {
                return Err(HcsError::new(
                    HResult::HCS_E_PROTOCOL_ERROR,
                    format!(
                        "guest agent answered Hello with message type {:#06x}",
                        other.message_type() as u16
                    ),
                ))
            }
            Err(e) => {
                return Err(HcsError::new(
                    HResult::HCS_E_PROTOCOL_ERROR,
                    format!("guest agent's Hello reply does not decode: {}", e.as_str()),
                ))
            }
        };
        if !proto::version_supported(version) {
            return Err(HcsError::new(
                HResult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "guest agent chose protocol version {version}, which the host does not speak"
                ),
            ));
        }
        let ended =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(|e| HcsError::from_io("creating an eventfd", &e.into()))?;
        let shared = Arc::new(Shared {
            waiters: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            wake,
            closed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            ended,
        });
        // The reader watches the stop signal too: a stop ends the
        // connection, and with it every wait for a reply.
        let cancel = cancel
            .map(|c| c.try_clone_to_owned())
            .transpose()
            .map_err(|e| HcsError::from_io("duplicating the stop eventfd", &e))?;
        let thread_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name("agent-reader".into())
            .spawn(move || read_loop(reader, cancel, &thread_shared))
            .map_err(|e| HcsError::from_io("starting the agent reader thread", &e))?;
        tracing::info!(version, agent = %agent_name, "guest agent connected");
        Ok(AgentClient {
            writer: Mutex::new(writer),
            version,
            agent_name,
            shared,
            next_id: AtomicU64::new(1),
            next_port: AtomicU32::new(FIRST_STDIO_PORT),
            port_path,
            reader: Some(reader),
        })
    }

    /// The agreed protocol version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The agent's name and version, as it said in its Hello reply.
    pub fn agent_name(&self) -> &str {
        &self.agent_name
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// The events since the last call.
    pub fn take_events(&self) -> Vec<AgentEvent> {
        self.shared
            .events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    fn send(&self, msg: &proto::Message<'_>, waiter: Waiter) -> HcsResult<u64> {
        if self.is_closed() {
            return Err(agent_error("sending a request", "the connection is closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = msg.encode_to_vec(self.version, id).map_err(encode_err)?;
        if let Ok(mut w) = self.shared.waiters.lock() {
            w.insert(id, waiter);
        }
        let written = self
            .writer
            .lock()
            .map_err(|_| agent_error("sending a request", "writer lock poisoned"))
            .and_then(|mut w| {
                w.write_all(&bytes)
                    .map_err(|e| agent_error("sending a request", e))
            });
        if let Err(e) = written {
            if let Ok(mut w) = self.shared.waiters.lock() {
                w.remove(&id);
            }
            return Err(e);
        }
        Ok(id)
    }

    /// Send `msg` and wait for its reply; an `Error` reply becomes the error.
    fn request(&self, msg: &proto::Message<'_>) -> HcsResult<Reply> {
        let (tx, rx) = sync_channel(1);
        let id = self.send(msg, Waiter::Caller(tx))?;
        let reply = rx.recv_timeout(REQUEST_TIMEOUT).map_err(|_| {
            if let Ok(mut w) = self.shared.waiters.lock() {
                w.remove(&id);
            }
            if self.shared.cancelled.load(Ordering::Acquire) {
                HcsError::new(
                    HResult::HCS_E_TERMINATED,
                    "guest agent request abandoned: the system is stopping",
                )
            } else if self.is_closed() {
                agent_error("waiting for a reply", "the connection closed")
            } else {
                HcsError::new(
                    HResult::HCS_E_OPERATION_TIMEOUT,
                    format!(
                        "guest agent did not answer within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                )
            }
        })?;
        match reply {
            Reply::Error { hresult, message } => Err(HcsError::new(
                HResult(hresult as i32),
                format!("in the guest: {message}"),
            )),
            other => Ok(other),
        }
    }

    fn expect_ok(&self, msg: &proto::Message<'_>) -> HcsResult<()> {
        match self.request(msg)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Start a process; its stdio streams are connected before this returns.
    /// Everything of `params` reaches the agent: the HCS fields, or the whole
    /// `OciProcess` (user, groups, umask, capabilities, rlimits,
    /// noNewPrivileges, oomScoreAdj, terminal); what no Linux process can
    /// honour is refused with its JSON path.
    pub fn create_process(&self, params: &ProcessParameters) -> HcsResult<StartedProcess> {
        process_params::refuse_unsupported(
            params,
            "processes in a Linux virtual machine",
            "a process in a virtual machine takes only the `process` part of an OCI spec, \
             as ProcessParameters.OciProcess",
        )?;
        let spec = match &params.oci_process {
            Some(oci) => process_params::oci_process_spec(params, oci, None)?,
            None => process_params::plain_process_spec(params),
        };
        if spec.argv.is_empty() {
            return Err(HcsError::invalid_json(
                "ProcessParameters: no CommandLine or CommandArgs to run",
            ));
        }
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let terminal = spec
            .console
            .map(|(rows, cols)| proto::ConsoleSize { rows, cols });
        let wants = [
            params.create_std_in_pipe.unwrap_or(false),
            params.create_std_out_pipe.unwrap_or(false),
            params.create_std_err_pipe.unwrap_or(false) && terminal.is_none(),
        ];
        let mut listeners: Vec<Option<PortListener>> = Vec::new();
        for want in wants {
            listeners.push(if want { Some(self.listen()?) } else { None });
        }
        let port = |i: usize| listeners[i].as_ref().map(|l| l.port);
        let args: Vec<&[u8]> = spec.argv.iter().map(|a| a.as_bytes()).collect();
        let envs: Vec<&[u8]> = env.iter().map(|e| e.as_bytes()).collect();
        let user = spec.user.as_deref().unwrap_or("");
        let sec = spec.security.as_deref();
        let gids = sec.and_then(|s| s.additional_gids.clone());
        let rlimits: Vec<proto::Rlimit> = sec
            .map(|s| {
                s.rlimits
                    .iter()
                    .map(|r| proto::Rlimit {
                        resource: r.resource as u32,
                        soft: r.soft,
                        hard: r.hard,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let security = match sec {
            None => proto::ProcessSecurity::INHERIT,
            Some(s) => proto::ProcessSecurity {
                additional_gids: gids.as_deref().map(proto::List::Slice),
                umask: s.umask,
                no_new_privileges: s.no_new_privileges,
                capabilities: Some(proto::Capabilities {
                    bounding: s.capabilities.bounding,
                    effective: s.capabilities.effective,
                    permitted: s.capabilities.permitted,
                    inheritable: s.capabilities.inheritable,
                    ambient: s.capabilities.ambient,
                }),
                rlimits: proto::List::Slice(&rlimits),
                oom_score_adj: s.oom_score_adj,
            },
        };
        let msg = proto::Message::CreateProcess(proto::CreateProcess {
            args: proto::List::Slice(&args),
            executable: spec.executable.as_deref().unwrap_or("").as_bytes(),
            env: proto::List::Slice(&envs),
            cwd: spec.cwd.as_deref().unwrap_or("").as_bytes(),
            user: if user.is_empty() {
                proto::User::Default
            } else {
                proto::User::Name(user.as_bytes())
            },
            terminal,
            stdin_port: port(0),
            stdout_port: port(1),
            stderr_port: port(2),
            security,
        });
        let pid = match self.request(&msg)? {
            Reply::Created(pid) => pid,
            other => return Err(unexpected(&other)),
        };
        let mut fds: Vec<Option<OwnedFd>> = Vec::new();
        for l in listeners {
            fds.push(match l {
                Some(l) => Some(l.accept(&self.shared)?),
                None => None,
            });
        }
        self.send(
            &proto::Message::WaitProcess(proto::WaitProcess { pid }),
            Waiter::Watch,
        )?;
        let mut fds = fds.into_iter();
        Ok(StartedProcess {
            pid,
            host_pid: None,
            stdin: fds.next().flatten(),
            stdout: fds.next().flatten(),
            stderr: fds.next().flatten(),
            console: None,
        })
    }

    fn listen(&self) -> HcsResult<PortListener> {
        let port = self.next_port.fetch_add(1, Ordering::Relaxed);
        let path = (self.port_path)(port);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| HcsError::from_io(format!("listening on {}", path.display()), &e))?;
        Ok(PortListener {
            port,
            path,
            listener,
        })
    }

    /// Send `signal` to a process.
    pub fn signal(&self, pid: u32, signal: i32) -> HcsResult<()> {
        self.expect_ok(&proto::Message::Signal(proto::Signal {
            pid,
            signal: signal as u32,
        }))
    }

    /// Resize a process's terminal.
    pub fn resize_console(&self, pid: u32, rows: u16, cols: u16) -> HcsResult<()> {
        self.expect_ok(&proto::Message::ResizeConsole(proto::ResizeConsole {
            pid,
            size: proto::ConsoleSize { rows, cols },
        }))
    }

    /// The guest's processes.
    pub fn process_list(&self) -> HcsResult<Vec<ProcessDetails>> {
        match self.request(&proto::Message::ProcessList)? {
            Reply::Processes(p) => Ok(p),
            other => Err(unexpected(&other)),
        }
    }

    /// Set the guest's time zone (`GuestConnection.UseHostTimeZone`).
    pub fn set_time_zone(&self, tz: &HostTimeZone) -> HcsResult<()> {
        self.expect_ok(&proto::Message::SetTimeZone(proto::SetTimeZone {
            name: tz.name.as_bytes(),
            tzif: &tz.tzif,
        }))
    }

    /// Set the guest's wall clock to the host's (`SetTime`).
    pub fn set_time(&self, now: std::time::SystemTime) -> HcsResult<()> {
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| HcsError::new(HResult::E_FAIL, "the host's clock is before 1970"))?;
        self.expect_ok(&proto::Message::SetTime(proto::SetTime {
            seconds: since.as_secs(),
            nanoseconds: since.subsec_nanos(),
        }))
    }

    /// Ask the guest to sync and power off (answered before it happens).
    pub fn shutdown(&self) -> HcsResult<()> {
        self.expect_ok(&proto::Message::Shutdown(proto::Shutdown {
            action: proto::ShutdownAction::PowerOff,
        }))
    }
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn unexpected(r: &Reply) -> HcsError {
    let what = match r {
        Reply::Other(t) => format!("message type {t:#06x}"),
        other => format!("{other:?}"),
    };
    HcsError::new(
        HResult::HCS_E_PROTOCOL_ERROR,
        format!("guest agent sent an unexpected reply: {what}"),
    )
}

/// The reader thread: replies to their waiters, watches to events, until
/// the connection ends or `cancel` (the system stops) is readable.
fn read_loop(stream: UnixStream, cancel: Option<OwnedFd>, shared: &Shared) {
    let mut payload = Vec::new();
    let mut reader = CancellableReader {
        stream: &stream,
        cancel: cancel.as_ref().map(|c| c.as_fd()),
        deadline: None,
    };
    loop {
        let header = match proto::read_frame(&mut reader, &mut payload) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(proto::FrameError::Io(e)) if e.kind() == std::io::ErrorKind::Other => {
                tracing::info!("guest agent connection abandoned: the system is stopping");
                shared.cancelled.store(true, Ordering::Release);
                break;
            }
            Err(e) => {
                tracing::warn!("guest agent connection: {e}");
                break;
            }
        };
        let reply = match proto::Message::decode(&header, &payload) {
            Ok(m) => Reply::from_message(&m),
            Err(e) => {
                // One bad message fails only its own request.
                tracing::warn!(
                    id = header.request_id,
                    "undecodable agent message: {}",
                    e.as_str()
                );
                Reply::Error {
                    hresult: HResult::HCS_E_PROTOCOL_ERROR.0 as u32,
                    message: format!("undecodable reply: {}", e.as_str()),
                }
            }
        };
        let waiter = shared
            .waiters
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&header.request_id));
        match (waiter, reply) {
            (Some(Waiter::Caller(tx)), reply) => {
                let _ = tx.send(reply);
            }
            (Some(Waiter::Watch), Reply::Exited { pid, exit_code }) => {
                shared.push_event(AgentEvent::ProcessExited { pid, exit_code });
            }
            (Some(Waiter::Watch), other) => {
                tracing::warn!(?other, "agent answered a process watch without an exit");
            }
            (None, other) => {
                tracing::warn!(id = header.request_id, ?other, "agent reply to no request");
            }
        }
    }
    shared.closed.store(true, Ordering::Release);
    // Callers still waiting fail at once rather than at their timeout,
    // and so do stdio accepts.
    if let Ok(mut w) = shared.waiters.lock() {
        w.clear();
    }
    let _ = shared.ended.write(1);
    shared.push_event(AgentEvent::ConnectionClosed);
}

/// A stdio port waiting for the agent's connection.
struct PortListener {
    port: u32,
    path: PathBuf,
    listener: UnixListener,
}

impl PortListener {
    /// The agent's connection to this port, within the timeout; given up
    /// at once when the control connection ends (the guest went away or
    /// the system is stopping).
    fn accept(self, shared: &Shared) -> HcsResult<OwnedFd> {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let deadline = Instant::now() + STDIO_CONNECT_TIMEOUT;
        loop {
            let mut fds = [
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(shared.ended.as_fd(), PollFlags::POLLIN),
            ];
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(HcsError::from_io(
                        "waiting for a stdio connection",
                        &e.into(),
                    ))
                }
            }
            if fds[0].any().unwrap_or(false) {
                break;
            }
            if fds[1].any().unwrap_or(false) {
                return Err(if shared.cancelled.load(Ordering::Acquire) {
                    HcsError::new(
                        HResult::HCS_E_TERMINATED,
                        "waiting for a process's stdio abandoned: the system is stopping",
                    )
                } else {
                    agent_error("waiting for a stdio connection", "the connection closed")
                });
            }
            if Instant::now() >= deadline {
                return Err(HcsError::new(
                    HResult::HCS_E_CONNECT_FAILED,
                    format!(
                        "the guest agent did not connect stdio port {} within {} s",
                        self.port,
                        STDIO_CONNECT_TIMEOUT.as_secs()
                    ),
                ));
            }
        }
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| HcsError::from_io("accepting a stdio connection", &e))?;
        Ok(OwnedFd::from(stream))
    }
}

impl Drop for PortListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `<base>_<port>`: where a guest-initiated connection to `port` lands
/// behind a hybrid vsock device whose socket is `base`.
pub fn hybrid_vsock_port_path(base: &Path, port: u32) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(format!("_{port}"));
    PathBuf::from(s)
}
