//! The control protocol: one thread per connection, requests answered in
//! order except WaitProcess, which is answered when the process exits.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hcs_agent_protocol::{
    hresult, negotiate, read_frame, CreateProcess, ErrorReply, FrameError, Hello, HelloReply, Item,
    List, Message, ProcessCreated, ProcessEntry, ProcessExited, ProcessListReply, ShutdownAction,
    MAX_PAYLOAD, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
};

use crate::error::{AgentError, Result};
use crate::process::{Processes, DRAIN_TIMEOUT};
use crate::proclist;
use crate::transport::{self, Stream, Transport};

/// The agent's name and version, sent in HelloReply.
pub const AGENT_NAME: &str = concat!("hcs-agent ", env!("CARGO_PKG_VERSION"));

/// The agent: its transport, its processes, and whether it is the guest's init.
pub struct Agent {
    transport: Transport,
    procs: Arc<Processes>,
    init: bool,
    /// Where SetTimeZone writes `localtime` and `timezone`: the guest's
    /// /etc, or `<dir>/etc` in unix mode (tests on a host, whose own /etc
    /// must never change).
    etc_dir: PathBuf,
}

/// The write half of a control connection, shared with wait threads.
#[derive(Clone)]
struct Replier {
    stream: Arc<Mutex<Stream>>,
    version: u16,
    /// The connection's WaitProcess requests still unanswered, and whether
    /// it is still open: a wait belongs to the connection that asked.
    waits: Arc<Waits>,
}

/// The waits of one connection. When it closes (the host's monitor ended,
/// or a restore reset every vsock connection), its waits end with it: the
/// processes keep running, and nobody is left to tell of their exit.
#[derive(Default)]
struct Waits {
    closed: std::sync::atomic::AtomicBool,
    pending: std::sync::atomic::AtomicUsize,
}

impl Replier {
    fn send(&self, request_id: u64, msg: &Message<'_>) -> Result<()> {
        let bytes = msg
            .encode_to_vec(self.version, request_id)
            .map_err(FrameError::Encode)?;
        let mut stream = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        stream.write_all(&bytes).map_err(FrameError::Io)?;
        Ok(())
    }

    fn error(&self, request_id: u64, hresult: u32, message: &str) -> Result<()> {
        let reply = Message::Error(ErrorReply {
            hresult,
            message: message.as_bytes(),
        });
        self.send(request_id, &reply)
    }

    fn fail(&self, request_id: u64, err: &AgentError) -> Result<()> {
        self.error(request_id, err.hresult(), &err.to_string())
    }
}

/// What a connection does after a request.
enum Flow {
    Continue,
    Shutdown(ShutdownAction),
}

impl Agent {
    /// Creates the agent and starts its reaper.
    pub fn new(transport: Transport, init: bool) -> Arc<Agent> {
        let procs = Arc::new(Processes::default());
        procs.start_reaper();
        let etc_dir = match &transport {
            Transport::Unix(dir) => dir.join("etc"),
            Transport::Vsock { .. } => PathBuf::from("/etc"),
        };
        Arc::new(Agent {
            transport,
            procs,
            init,
            etc_dir,
        })
    }

    /// Serves `<dir>/agent.sock`, one thread per connection, until Shutdown.
    pub fn serve_unix(self: &Arc<Self>, dir: &Path) -> Result<()> {
        let listener = transport::unix_listen(dir)?;
        crate::log!(
            "listening on {}",
            dir.join(transport::CONTROL_SOCKET).display()
        );
        for conn in listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    crate::log!("accept: {e}");
                    continue;
                }
            };
            let agent = Arc::clone(self);
            let dir = dir.to_path_buf();
            let stream = Stream::from_fd(OwnedFd::from(conn));
            std::thread::spawn(move || agent.connection_thread(stream, Some(dir)));
        }
        Ok(())
    }

    /// Connects to the host over vsock (retrying until it listens) and
    /// serves it; reconnects when the connection is lost. Never returns.
    pub fn serve_vsock(self: &Arc<Self>, cid: u32, port: u32) -> ! {
        loop {
            let stream = transport::vsock_connect_retry(cid, port);
            crate::log!("connected to the host (vsock {cid}:{port})");
            self.connection_thread(stream, None);
        }
    }

    fn connection_thread(self: &Arc<Self>, stream: Stream, unix_dir: Option<PathBuf>) {
        match self.serve_connection(stream) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Shutdown(action)) => self.shutdown(action, unix_dir.as_deref()),
            Err(e) => crate::log!("connection closed: {e}"),
        }
    }

    /// Serves one control connection until it closes, fails, or asks for Shutdown.
    fn serve_connection(self: &Arc<Self>, stream: Stream) -> Result<Flow> {
        let mut reader = stream
            .try_clone()
            .map_err(|e| AgentError::io("dup of the connection", e))?;
        let mut out = Replier {
            stream: Arc::new(Mutex::new(stream)),
            version: PROTOCOL_VERSION,
            waits: Arc::new(Waits::default()),
        };
        let waits = Arc::clone(&out.waits);
        let flow = self.serve_frames(&mut reader, &mut out);
        waits.closed.store(true, Ordering::SeqCst);
        let dropped = waits.pending.load(Ordering::SeqCst);
        if dropped > 0 {
            crate::log!(
                "connection closed: its {dropped} process wait(s) end with it (the processes keep running)"
            );
        }
        flow
    }

    fn serve_frames(self: &Arc<Self>, reader: &mut Stream, out: &mut Replier) -> Result<Flow> {
        let mut shaken = false;
        let mut payload = Vec::new();
        loop {
            let header = match read_frame(reader, &mut payload) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(Flow::Continue),
                Err(FrameError::Header(e)) => {
                    // The framing is lost: say why, then drop the connection.
                    let _ = out.error(0, e.hresult(), e.as_str());
                    return Err(FrameError::Header(e).into());
                }
                Err(e) => return Err(e.into()),
            };
            let id = header.request_id;
            let msg = match Message::decode(&header, &payload) {
                Ok(m) => m,
                Err(e) => {
                    let text = format!("cannot decode message type {:#06x}: {e}", header.msg_type);
                    out.error(id, e.hresult(), &text)?;
                    continue;
                }
            };
            match msg {
                Message::Hello(hello) => shaken = self.hello(out, id, &hello)? || shaken,
                _ if msg.message_type().is_response() => {
                    let text = format!("message type {:#06x} is not a request", header.msg_type);
                    out.error(id, hresult::HCS_E_UNKNOWN_MESSAGE, &text)?;
                }
                _ if !shaken => out.error(
                    id,
                    hresult::HCS_E_PROTOCOL_ERROR,
                    "the first request must be Hello",
                )?,
                _ => {
                    if let Flow::Shutdown(action) = self.request(out, id, msg)? {
                        return Ok(Flow::Shutdown(action));
                    }
                }
            }
        }
    }

    /// The version handshake; returns whether a version was agreed.
    fn hello(&self, out: &mut Replier, id: u64, hello: &Hello<'_>) -> Result<bool> {
        match negotiate(hello.versions.iter()) {
            Some(version) => {
                out.version = version;
                out.send(
                    id,
                    &Message::HelloReply(HelloReply {
                        version,
                        agent: AGENT_NAME.as_bytes(),
                    }),
                )?;
                Ok(true)
            }
            None => {
                let offered: Vec<String> = hello.versions.iter().map(|v| v.to_string()).collect();
                let text = format!(
                    "no shared protocol version: the agent speaks {:?}, the client offered [{}]",
                    SUPPORTED_VERSIONS,
                    offered.join(", ")
                );
                out.error(id, hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION, &text)?;
                Ok(false)
            }
        }
    }

    /// Handles a request after the handshake; failures become Error replies.
    fn request(self: &Arc<Self>, out: &Replier, id: u64, msg: Message<'_>) -> Result<Flow> {
        let result = match msg {
            Message::CreateProcess(req) => self.create_process(out, id, &req),
            Message::ResizeConsole(r) => self
                .procs
                .resize(r.pid, r.size)
                .and_then(|()| out.send(id, &Message::Ok)),
            Message::Signal(s) => self
                .procs
                .signal(s.pid, s.signal)
                .and_then(|()| out.send(id, &Message::Ok)),
            Message::WaitProcess(w) => self.wait_process(out, id, w.pid),
            Message::ProcessList => self.process_list(out, id),
            Message::SetTimeZone(tz) => crate::timezone::set(&self.etc_dir, tz.name, tz.tzif)
                .and_then(|()| out.send(id, &Message::Ok)),
            Message::SetTime(t) => self.set_time(t).and_then(|()| out.send(id, &Message::Ok)),
            Message::Shutdown(s) => {
                out.send(id, &Message::Ok)?;
                return Ok(Flow::Shutdown(s.action));
            }
            // Hello and responses are handled by the caller.
            _ => Err(AgentError::InvalidArgument("unexpected message".into())),
        };
        match result {
            Ok(()) => {}
            // A failed write means the connection is gone.
            Err(AgentError::Frame(e)) => return Err(e.into()),
            Err(e) => out.fail(id, &e)?,
        }
        Ok(Flow::Continue)
    }

    fn create_process(&self, out: &Replier, id: u64, req: &CreateProcess<'_>) -> Result<()> {
        let pid = crate::spawn::create_process(req, &self.transport, &self.procs)?;
        out.send(id, &Message::ProcessCreated(ProcessCreated { pid }))
    }

    fn wait_process(&self, out: &Replier, id: u64, pid: u32) -> Result<()> {
        self.procs.check_running(pid)?;
        let procs = Arc::clone(&self.procs);
        let out = out.clone();
        let waits = Arc::clone(&out.waits);
        waits.pending.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name(format!("wait-{pid}"))
            .spawn(move || {
                let result = procs.wait(pid, DRAIN_TIMEOUT);
                out.waits.pending.fetch_sub(1, Ordering::SeqCst);
                // The connection that asked is gone: nobody to answer.
                if out.waits.closed.load(Ordering::SeqCst) {
                    return;
                }
                let sent = match result {
                    Ok(s) => out.send(
                        id,
                        &Message::ProcessExited(ProcessExited {
                            pid,
                            exit_code: s.exit_code,
                            signal: s.signal,
                        }),
                    ),
                    Err(e) => out.fail(id, &e),
                };
                if let Err(e) = sent {
                    crate::log!("cannot answer the wait for {pid}: {e}");
                }
            })
            .map(drop)
            .map_err(|e| {
                waits.pending.fetch_sub(1, Ordering::SeqCst);
                AgentError::io("starting a wait thread", e)
            })
    }

    /// SetTime: the guest's wall clock from the host. Only the guest's init
    /// touches the clock; an agent on a host (tests) must never change it.
    fn set_time(&self, t: hcs_agent_protocol::SetTime) -> Result<()> {
        if !(self.init && matches!(self.transport, Transport::Vsock { .. })) {
            return Err(AgentError::NotSupported(
                "SetTime: only the guest's init sets the clock".into(),
            ));
        }
        let seconds = libc::time_t::try_from(t.seconds)
            .map_err(|_| AgentError::InvalidArgument(format!("SetTime: {} s", t.seconds)))?;
        let ts = libc::timespec {
            tv_sec: seconds,
            // Checked below 10^9 when decoded.
            tv_nsec: libc::c_long::from(t.nanoseconds),
        };
        let before = std::time::SystemTime::now();
        // SAFETY: clock_settime reads the timespec, which outlives the call.
        if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
            return Err(AgentError::io(
                "clock_settime(CLOCK_REALTIME)",
                std::io::Error::last_os_error(),
            ));
        }
        let was = before
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let now = t.seconds as f64 + f64::from(t.nanoseconds) / 1e9;
        crate::log!("clock set from the host ({:+.3} s)", now - was);
        Ok(())
    }

    fn process_list(&self, out: &Replier, id: u64) -> Result<()> {
        let infos =
            proclist::list(Path::new("/proc")).map_err(|e| AgentError::io("reading /proc", e))?;
        let entries = fit_entries(&infos);
        out.send(
            id,
            &Message::ProcessListReply(ProcessListReply {
                processes: List::Slice(&entries),
            }),
        )
    }

    /// Shutdown: as init, sync, kill everything and power off or reboot;
    /// otherwise kill the agent's processes and exit.
    fn shutdown(&self, action: ShutdownAction, unix_dir: Option<&Path>) {
        crate::log!("shutdown requested ({action:?})");
        if self.init {
            crate::init::power_off(action);
        }
        self.procs.kill_all();
        nix::unistd::sync();
        if let Some(dir) = unix_dir {
            let _ = std::fs::remove_file(dir.join(transport::CONTROL_SOCKET));
        }
        std::process::exit(0);
    }
}

/// Wire entries for `infos`, as many as fit in one frame.
fn fit_entries(infos: &[proclist::ProcInfo]) -> Vec<ProcessEntry<'_>> {
    let budget = MAX_PAYLOAD as usize - 64;
    let mut used = 4usize;
    let mut entries = Vec::with_capacity(infos.len());
    for p in infos {
        let entry = ProcessEntry {
            pid: p.pid,
            command_line: &p.command_line,
            start_time_100ns: p.start_time_100ns,
            user_time_100ns: p.user_time_100ns,
            kernel_time_100ns: p.kernel_time_100ns,
            memory_commit_bytes: p.memory_commit_bytes,
            working_set_private_bytes: p.working_set_private_bytes,
            working_set_shared_bytes: p.working_set_shared_bytes,
        };
        used += entry.wire_len().unwrap_or(usize::MAX / 2);
        if used > budget {
            break;
        }
        entries.push(entry);
    }
    entries
}
