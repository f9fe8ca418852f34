//! The monitor's event loop: the control socket, client connections,
//! SIGCHLD and timers, all in one thread.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::wire::{encode, send_packet, Packet, Receiver, RecvOutcome};
use hcs_protocol::{
    ConnectionKind, EventMessage, Outcome, Reply, Request, RequestFrame, PROTOCOL_VERSION,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::backend::{GuestWork, Served, StartedProcess};
use crate::system::System;

/// What a request served off the loop produced.
enum WorkResult {
    /// A process started in the guest, to record (tied to its creator?).
    Started(HcsResult<StartedProcess>, bool),
    /// A reply document, or none.
    Reply(HcsResult<Option<String>>),
}

/// A request's work done on a worker thread: (connection, request id) to
/// answer, if any, and the result.
type WorkDone = (Option<(usize, u64)>, WorkResult);

/// Requests that wait on the guest run on threads of their own; their
/// results come back through a channel, and an eventfd wakes the loop.
struct Workers {
    tx: std::sync::mpsc::Sender<WorkDone>,
    rx: std::sync::mpsc::Receiver<WorkDone>,
    wake: std::sync::Arc<nix::sys::eventfd::EventFd>,
}

impl Workers {
    fn new() -> io::Result<Workers> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let (tx, rx) = std::sync::mpsc::channel();
        let wake = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Workers {
            tx,
            rx,
            wake: std::sync::Arc::new(wake),
        })
    }

    /// Run `work` on a thread; `done` turns its result into a [`WorkResult`].
    fn spawn<T: Send + 'static>(
        &self,
        to: Option<(usize, u64)>,
        work: GuestWork<T>,
        done: impl FnOnce(HcsResult<T>) -> WorkResult + Send + 'static,
    ) -> HcsResult<()> {
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        std::thread::Builder::new()
            .name("guest-work".into())
            .spawn(move || {
                let _ = tx.send((to, done(work())));
                let _ = wake.write(1);
            })
            .map(|_| ())
            .map_err(|e| HcsError::from_io("starting a thread for a guest request", &e))
    }
}

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const BACKEND: Token = Token(2);
const GUEST_WORK: Token = Token(3);
const FIRST_CONN: usize = 4;
/// A client that lets this many packets pile up is dropped.
const MAX_OUTBOX: usize = 8192;

/// What a deferred request waits for.
#[derive(Clone, Copy)]
enum Wait {
    /// Shutdown/Terminate: S_OK once stopped.
    Stopped,
    /// WaitForExit: the exit status once stopped.
    Exit,
}

struct Conn {
    fd: OwnedFd,
    rx: Receiver,
    out: VecDeque<Packet>,
    kind: Option<ConnectionKind>,
    holds_handle: bool,
    dead: bool,
    /// Processes created with `TerminateWithCreator`: killed when this
    /// connection goes away.
    tied: Vec<hcs_protocol::ProcessRef>,
}

impl Conn {
    fn new(fd: OwnedFd, kind: Option<ConnectionKind>) -> Conn {
        Conn {
            fd,
            rx: Receiver::new(),
            out: VecDeque::new(),
            kind,
            holds_handle: kind == Some(ConnectionKind::Handle),
            dead: false,
            tied: Vec::new(),
        }
    }

    fn queue(&mut self, reply: &Reply, fds: Vec<OwnedFd>) {
        match serde_json::to_vec(reply) {
            Ok(bytes) => self.out.extend(encode(&bytes, fds)),
            Err(e) => tracing::error!("encoding a reply: {e}"),
        }
        if self.out.len() > MAX_OUTBOX {
            tracing::warn!("a client stopped reading; dropping its connection");
            self.dead = true;
        }
    }

    fn flush(&mut self) {
        while let Some(p) = self.out.front() {
            match send_packet(self.fd.as_fd(), p) {
                Ok(()) => {
                    self.out.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.dead = true;
                    self.out.clear();
                    return;
                }
            }
        }
    }
}

struct Monitor {
    poll: Poll,
    system: System,
    listener: Option<OwnedFd>,
    signals: SignalFd,
    conns: HashMap<usize, Conn>,
    next_conn: usize,
    waiters: Vec<(usize, u64, Wait)>,
    /// HcsCreateProcess requests waiting for the guest agent to connect:
    /// (connection, request id, parameters, deadline). Held here, not in a
    /// blocking wait, so every other request (terminate above all) is
    /// served meanwhile.
    guest_waits: Vec<(usize, u64, String, Instant)>,
    /// Requests waiting on the guest, off the loop.
    workers: Workers,
    handles: usize,
    /// A system handle went away since the last check.
    handle_released: bool,
    /// Tidy up after dead monitors of this namespace once idle (see `run`).
    sweep: Option<(std::path::PathBuf, String)>,
}

/// Entry point: stdin is the creating client's socket.
pub fn run_from_stdin() -> i32 {
    match bootstrap() {
        Ok(Some(mut m)) => {
            if let Err(e) = m.run() {
                tracing::error!("event loop failed: {e}");
                m.system.terminate_on_last_handle();
                return 1;
            }
            0
        }
        Ok(None) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

fn take_stdin_socket() -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(
        std::io::stdin().as_fd(),
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
    )
    .map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: dup2 only changes the descriptor table; descriptor 0 belongs
    // to no Rust value (nix's dup2_raw would hand back an owner that closes it).
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

fn setup_signals() -> io::Result<SignalFd> {
    // The monitor must outlive its creator's terminal and never die of a
    // write to a client that went away.
    for s in [Signal::SIGPIPE, Signal::SIGHUP, Signal::SIGINT] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigIgn) }
            .map_err(io::Error::from)?;
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(io::Error::from)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(io::Error::from)
}

fn bootstrap() -> io::Result<Option<Monitor>> {
    let sock = take_stdin_socket()?;
    let _ = nix::unistd::setsid();
    let signals = setup_signals()?;
    let mut channel = hcs_protocol::Channel::new(sock);
    let Some((frame, _)) = channel.recv::<RequestFrame>()? else {
        return Ok(None);
    };
    let (namespace, id, document, version) = match frame.request {
        Request::Create {
            namespace,
            id,
            document,
            version,
            ..
        } => (namespace, id, document, version),
        other => {
            let e = HcsError::new(
                HResult::HCS_E_PROTOCOL_ERROR,
                format!("expected Create, got {}", other.name()),
            );
            let _ = channel.send(
                &Reply::Response {
                    id: frame.id,
                    outcome: Outcome::error(&e),
                },
                Vec::new(),
            );
            return Ok(None);
        }
    };
    let reply = |channel: &hcs_protocol::Channel, outcome: Outcome| {
        let _ = channel.send(
            &Reply::Response {
                id: frame.id,
                outcome,
            },
            Vec::new(),
        );
    };
    if version != PROTOCOL_VERSION {
        let e = HcsError::new(
            HResult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
            format!("client protocol {version}, monitor protocol {PROTOCOL_VERSION}"),
        );
        reply(&channel, Outcome::error(&e));
        return Ok(None);
    }
    let root = hcs_rundir::root();
    let mut system = match System::create(&root, &namespace, &id, &document) {
        Ok(s) => s,
        Err(e) => {
            reply(&channel, Outcome::error(&e));
            return Ok(None);
        }
    };
    let bound = match system.rundir_path() {
        Some(d) => bind_listener(&d.join(hcs_protocol::CONTROL_SOCKET)),
        None => Err(HcsError::from_code(HResult::E_UNEXPECTED)),
    };
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            let _ = system.terminate();
            reply(&channel, Outcome::error(&e));
            return Ok(None);
        }
    };
    reply(&channel, Outcome::ok(None));
    tracing::debug!("create answered");
    let sock = channel.into_fd();
    set_nonblocking(&sock)?;
    let poll = Poll::new()?;
    poll.registry().register(
        &mut SourceFd(&listener.as_raw_fd()),
        LISTENER,
        Interest::READABLE,
    )?;
    poll.registry().register(
        &mut SourceFd(&signals.as_raw_fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    for fd in system.backend_event_fds() {
        poll.registry()
            .register(&mut SourceFd(&fd), BACKEND, Interest::READABLE)?;
    }
    let workers = Workers::new()?;
    poll.registry().register(
        &mut SourceFd(&workers.wake.as_fd().as_raw_fd()),
        GUEST_WORK,
        Interest::READABLE,
    )?;
    let mut m = Monitor {
        poll,
        system,
        listener: Some(listener),
        signals,
        conns: HashMap::new(),
        next_conn: FIRST_CONN,
        waiters: Vec::new(),
        guest_waits: Vec::new(),
        workers,
        handles: 0,
        handle_released: false,
        sweep: Some((root, namespace)),
    };
    m.add_conn(sock, Some(ConnectionKind::Handle))?;
    Ok(Some(m))
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

fn bind_listener(path: &std::path::Path) -> HcsResult<OwnedFd> {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    let io = |what: &str, e: nix::errno::Errno| {
        HcsError::from_io(format!("{what} {}", path.display()), &io::Error::from(e))
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| io("creating the control socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| io("naming the control socket", e))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| io("binding", e))?;
    listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| io("listening on", e))?;
    Ok(fd)
}

impl Monitor {
    fn add_conn(&mut self, fd: OwnedFd, kind: Option<ConnectionKind>) -> io::Result<()> {
        let token = self.next_conn;
        self.next_conn += 1;
        self.poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let conn = Conn::new(fd, kind);
        if conn.holds_handle {
            self.handles += 1;
        }
        self.conns.insert(token, conn);
        // Anything already queued on a socket pair is read now (edge-triggered).
        self.read_conn(token);
        Ok(())
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        self.after_changes();
        while !(self.system.stopped() && self.conns.is_empty()) {
            let guest_deadline = self.guest_waits.iter().map(|w| w.3).min();
            let timeout = match (self.system.next_deadline(), guest_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if events.is_empty() {
                if let Some((root, namespace)) = self.sweep.take() {
                    // A later create cleans up after monitors of its namespace
                    // that died: their directories are no longer locked.
                    if let Err(e) = hcs_rundir::list_live(&root, &namespace) {
                        tracing::warn!("sweeping stale systems: {e}");
                    }
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.handle_signals(),
                    BACKEND => self.system.on_backend_event(),
                    GUEST_WORK => self.work_done(),
                    Token(n) => {
                        if ev.is_readable() || ev.is_read_closed() {
                            self.read_conn(n);
                        }
                        if ev.is_writable() {
                            if let Some(c) = self.conns.get_mut(&n) {
                                c.flush();
                            }
                        }
                    }
                }
            }
            self.system.on_timer(Instant::now());
            self.after_changes();
        }
        tracing::info!("no clients left; monitor exits");
        Ok(())
    }

    fn accept_all(&mut self) {
        let Some(l) = &self.listener else { return };
        let raw = l.as_raw_fd();
        loop {
            use nix::sys::socket::{accept4, SockFlag};
            match accept4(raw, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) {
                Ok(fd) => {
                    // SAFETY: accept4 returned a new descriptor owned by nobody else.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    if let Err(e) = self.add_conn(fd, None) {
                        tracing::warn!("registering a connection: {e}");
                    }
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::ECONNABORTED) => continue,
                Err(_) => return,
            }
        }
    }

    fn handle_signals(&mut self) {
        let mut sigchld = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match info.ssi_signo as i32 {
                libc::SIGCHLD => sigchld = true,
                libc::SIGTERM => {
                    tracing::info!("SIGTERM: terminating the system");
                    let _ = self.system.terminate();
                }
                _ => {}
            }
        }
        if sigchld {
            self.reap();
        }
    }

    fn reap(&mut self) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        loop {
            match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => {
                    if let Some(pid) = st.pid() {
                        self.system.on_child_exit(pid.as_raw(), st);
                    }
                }
            }
        }
    }

    fn read_conn(&mut self, n: usize) {
        loop {
            let Some(c) = self.conns.get_mut(&n) else {
                return;
            };
            if c.dead {
                return;
            }
            match c.rx.recv(c.fd.as_fd()) {
                Ok(RecvOutcome::Message(bytes, fds)) => {
                    match serde_json::from_slice::<RequestFrame>(&bytes) {
                        Ok(frame) => self.handle(n, frame, fds),
                        Err(e) => {
                            tracing::warn!("bad request: {e}");
                            c.dead = true;
                        }
                    }
                }
                Ok(RecvOutcome::WouldBlock) => return,
                Ok(RecvOutcome::Closed) | Err(_) => {
                    c.dead = true;
                    return;
                }
            }
        }
    }

    fn respond(&mut self, n: usize, id: u64, outcome: Outcome, fds: Vec<OwnedFd>) {
        if let Some(c) = self.conns.get_mut(&n) {
            c.queue(&Reply::Response { id, outcome }, fds);
            c.flush();
        }
    }

    fn result(&mut self, n: usize, id: u64, r: HcsResult<Option<String>>) {
        let outcome = match r {
            Ok(doc) => Outcome::ok(doc),
            Err(e) => {
                tracing::info!("request {id} failed: {e}");
                Outcome::error(&e)
            }
        };
        self.respond(n, id, outcome, Vec::new());
    }

    fn handle(&mut self, n: usize, frame: RequestFrame, _fds: Vec<OwnedFd>) {
        let id = frame.id;
        let greeted = self.conns.get(&n).is_some_and(|c| c.kind.is_some());
        tracing::debug!(request = frame.request.name(), id, "request");
        match frame.request {
            Request::Hello { version, kind, .. } => {
                if greeted {
                    return self.result(
                        n,
                        id,
                        Err(HcsError::new(
                            HResult::HCS_E_PROTOCOL_ERROR,
                            "Hello sent twice",
                        )),
                    );
                }
                if version != PROTOCOL_VERSION {
                    return self.result(
                        n,
                        id,
                        Err(HcsError::new(
                            HResult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
                            format!(
                                "client protocol {version}, monitor protocol {PROTOCOL_VERSION}"
                            ),
                        )),
                    );
                }
                if self.system.stopped() {
                    return self.result(
                        n,
                        id,
                        Err(HcsError::new(
                            HResult::HCS_E_SYSTEM_NOT_FOUND,
                            format!("the compute system {:?} has stopped", self.system.id),
                        )),
                    );
                }
                if let Some(c) = self.conns.get_mut(&n) {
                    c.kind = Some(kind);
                    if kind == ConnectionKind::Handle {
                        c.holds_handle = true;
                        self.handles += 1;
                    }
                }
                let props = self.system.basic_properties();
                self.result(n, id, props.map(Some));
            }
            _ if !greeted => {
                self.result(
                    n,
                    id,
                    Err(HcsError::new(
                        HResult::HCS_E_PROTOCOL_ERROR,
                        "the first request must be Hello",
                    )),
                );
                if let Some(c) = self.conns.get_mut(&n) {
                    c.dead = true;
                }
            }
            Request::Create { .. } => self.result(
                n,
                id,
                Err(HcsError::new(
                    HResult::HCS_E_PROTOCOL_ERROR,
                    "Create is only valid on a new monitor's socket pair",
                )),
            ),
            Request::Start { options } => {
                let r = self.system.start(options.as_deref());
                self.result(n, id, r.map(|_| None));
            }
            Request::Shutdown { options } => match self.system.shutdown(options.as_deref()) {
                Ok(()) => self.defer(n, id, Wait::Stopped),
                Err(e) => self.result(n, id, Err(e)),
            },
            Request::Terminate { options } => {
                match self.system.terminate_with_options(options.as_deref()) {
                    Ok(()) => self.defer(n, id, Wait::Stopped),
                    Err(e) => self.result(n, id, Err(e)),
                }
            }
            Request::Pause { options } => {
                let r = self.system.pause(options.as_deref());
                self.result(n, id, r.map(|_| None));
            }
            Request::Resume { options } => {
                let r = self.system.resume(options.as_deref());
                self.result(n, id, r.map(|_| None));
            }
            Request::Save { options } => {
                let r = self.system.save(options.as_deref());
                self.result(n, id, r.map(|_| None));
            }
            Request::Crash { options } => {
                let r = self.system.crash(options.as_deref());
                self.result(n, id, r.map(|_| None));
            }
            Request::GetProperties { query } => {
                let r = self.system.properties(query.as_deref());
                self.served(n, id, r, Some);
            }
            Request::Modify { settings } => {
                let r = self.system.modify(&settings);
                self.result(n, id, r.map(|_| None));
            }
            Request::WaitForExit => self.defer(n, id, Wait::Exit),
            Request::CreateProcess { parameters } => {
                if self.system.create_process_must_wait() {
                    let deadline = Instant::now() + crate::backend::GUEST_CONNECT_WAIT;
                    self.guest_waits.push((n, id, parameters, deadline));
                } else {
                    self.create_process(n, id, &parameters);
                }
            }
            Request::OpenProcess { pid } => match self.system.open_process(pid) {
                Ok(outcome) => self.respond(n, id, outcome, Vec::new()),
                Err(e) => self.result(n, id, Err(e)),
            },
            Request::TerminateProcess { process, .. } => {
                let r = self.system.signal_process(process, libc::SIGKILL);
                self.served(n, id, r, |()| None);
            }
            Request::SignalProcess { process, options } => {
                let signal = match hcs_schema::fields::parse_options::<
                    hcs_schema::requests::SignalProcessOptions,
                >(
                    options.as_deref(),
                    "SignalProcessOptions",
                    hcs_schema::fields::On::Any,
                ) {
                    Ok(None) => Ok(libc::SIGTERM),
                    Ok(Some(opts)) => opts.signal.map(|s| s.posix_number()).ok_or_else(|| {
                        HcsError::invalid_json("SignalProcessOptions.Signal is missing")
                    }),
                    Err(e) => Err(e),
                };
                let r = signal.and_then(|s| self.system.signal_process(process, s));
                self.served(n, id, r, |()| None);
            }
            Request::GetProcessInfo { process } => match self.system.process_info(process) {
                Ok((outcome, fds)) => self.respond(n, id, outcome, fds),
                Err(e) => self.result(n, id, Err(e)),
            },
            Request::GetProcessProperties { process, query } => {
                let r = self.system.process_properties(process, query.as_deref());
                self.result(n, id, r.map(Some));
            }
            Request::ModifyProcess { process, settings } => {
                let r = self.system.modify_process(process, &settings);
                self.served(n, id, r, |()| None);
            }
            Request::ReleaseSystemHandle => {
                if let Some(c) = self.conns.get_mut(&n) {
                    if c.holds_handle {
                        c.holds_handle = false;
                        self.handles = self.handles.saturating_sub(1);
                        self.handle_released = true;
                    }
                }
                self.result(n, id, Ok(None));
            }
        }
    }

    /// Answer now, or run the work off the loop and answer when it is done.
    fn served<T: Send + 'static>(
        &mut self,
        n: usize,
        id: u64,
        r: HcsResult<Served<T>>,
        doc: fn(T) -> Option<String>,
    ) {
        match r {
            Ok(Served::Now(t)) => self.result(n, id, Ok(doc(t))),
            Ok(Served::Later(work)) => {
                let spawned = self
                    .workers
                    .spawn(Some((n, id)), work, move |r| WorkResult::Reply(r.map(doc)));
                if let Err(e) = spawned {
                    self.result(n, id, Err(e));
                }
            }
            Err(e) => self.result(n, id, Err(e)),
        }
    }

    fn create_process(&mut self, n: usize, id: u64, parameters: &str) {
        match self.system.create_process(parameters) {
            Ok((Served::Now(started), tied)) => self.process_started(n, id, Ok(started), tied),
            Ok((Served::Later(work), tied)) => {
                let spawned = self
                    .workers
                    .spawn(Some((n, id)), work, move |r| WorkResult::Started(r, tied));
                if let Err(e) = spawned {
                    self.result(n, id, Err(e));
                }
            }
            Err(e) => self.result(n, id, Err(e)),
        }
    }

    fn process_started(
        &mut self,
        n: usize,
        id: u64,
        started: HcsResult<StartedProcess>,
        tied: bool,
    ) {
        match started.and_then(|s| self.system.process_started(s, tied)) {
            Ok((outcome, fds, tied)) => {
                if let (Some(p), Some(c)) = (tied, self.conns.get_mut(&n)) {
                    c.tied.push(p);
                }
                self.respond(n, id, outcome, fds)
            }
            Err(e) => self.result(n, id, Err(e)),
        }
    }

    /// Answer the requests whose work on the guest finished.
    fn work_done(&mut self) {
        let _ = self.workers.wake.read();
        while let Ok((to, result)) = self.workers.rx.try_recv() {
            match (to, result) {
                (Some((n, id)), WorkResult::Started(r, tied)) => {
                    self.process_started(n, id, r, tied)
                }
                (Some((n, id)), WorkResult::Reply(r)) => self.result(n, id, r),
                (None, WorkResult::Reply(Err(e))) => tracing::info!("guest request failed: {e}"),
                (None, _) => {}
            }
        }
    }

    /// Creations that waited for the guest agent: run those it can now
    /// (the agent connected, or the system stopped and they fail with its
    /// state), fail those past their deadline, keep the rest.
    fn retry_guest_waits(&mut self) {
        if self.guest_waits.is_empty() {
            return;
        }
        let now = Instant::now();
        for (n, id, parameters, deadline) in std::mem::take(&mut self.guest_waits) {
            if !self.system.create_process_must_wait() {
                self.create_process(n, id, &parameters);
            } else if now >= deadline {
                let e = HcsError::new(
                    HResult::HCS_E_CONNECT_FAILED,
                    format!(
                        "the guest agent has not connected (waited {} s); the guest must run \
                         hcs-agent, which connects to vsock port {}",
                        crate::backend::GUEST_CONNECT_WAIT.as_secs(),
                        hcs_agent_protocol::AGENT_CONTROL_PORT
                    ),
                );
                self.result(n, id, Err(e));
            } else {
                self.guest_waits.push((n, id, parameters, deadline));
            }
        }
    }

    fn defer(&mut self, n: usize, id: u64, wait: Wait) {
        self.waiters.push((n, id, wait));
    }

    /// Broadcast events, answer deferred requests, drop dead connections,
    /// and apply ShouldTerminateOnLastHandleClosed.
    fn after_changes(&mut self) {
        loop {
            self.retry_guest_waits();
            let events: Vec<EventMessage> = std::mem::take(&mut self.system.events);
            for ev in events {
                let reply = Reply::Event(ev);
                for c in self
                    .conns
                    .values_mut()
                    .filter(|c| c.kind == Some(ConnectionKind::Handle))
                {
                    c.queue(&reply, Vec::new());
                }
            }
            if self.system.stopped() {
                if let Some(l) = self.listener.take() {
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&l.as_raw_fd()));
                }
                let status = self.system.exit_status().map(str::to_owned);
                for (n, id, wait) in std::mem::take(&mut self.waiters) {
                    let doc = match wait {
                        Wait::Stopped => None,
                        Wait::Exit => status.clone(),
                    };
                    if let Some(c) = self.conns.get_mut(&n) {
                        c.queue(
                            &Reply::Response {
                                id,
                                outcome: Outcome::ok(doc),
                            },
                            Vec::new(),
                        );
                    }
                }
            }
            for c in self.conns.values_mut() {
                c.flush();
            }
            let dead: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.dead)
                .map(|(n, _)| *n)
                .collect();
            let mut lost_handle = std::mem::take(&mut self.handle_released);
            for n in dead {
                if let Some(c) = self.conns.remove(&n) {
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&c.fd.as_raw_fd()));
                    if c.holds_handle {
                        self.handles = self.handles.saturating_sub(1);
                        lost_handle = true;
                    }
                    for p in c.tied {
                        // Already exited is fine: nothing to kill.
                        match self.system.signal_process(p, libc::SIGKILL) {
                            Ok(Served::Now(())) => tracing::info!(
                                pid = p.pid,
                                "creator gone: process killed (TerminateWithCreator)"
                            ),
                            Ok(Served::Later(work)) => {
                                let spawned = self
                                    .workers
                                    .spawn(None, work, |r| WorkResult::Reply(r.map(|()| None)));
                                if let Err(e) = spawned {
                                    tracing::warn!("TerminateWithCreator: {e}");
                                }
                            }
                            Err(_) => {}
                        }
                    }
                }
                self.waiters.retain(|(w, _, _)| *w != n);
                self.guest_waits.retain(|w| w.0 != n);
            }
            if lost_handle
                && self.handles == 0
                && self.system.terminate_on_last_close()
                && !self.system.stopped()
            {
                tracing::info!(
                    "last handle closed: terminating (ShouldTerminateOnLastHandleClosed)"
                );
                self.system.terminate_on_last_handle();
                // Killing the init is asynchronous; its exit arrives as SIGCHLD.
                continue;
            }
            if self.system.events.is_empty() {
                return;
            }
        }
    }
}
