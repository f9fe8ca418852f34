//! The guest agent of the test guest: hcs-agent-protocol on a vsock control
//! connection to the host (CID 2, port `AGENT_CONTROL_PORT`), answering as
//! `crates/hcs-agent` does in its `--vsock` mode, with built-in programs
//! instead of executables:
//!
//! - `echo A B…`: writes `A B…\n`, then each env entry and `\n`, to stdout;
//! - `cat`: copies stdin to stdout until the host closes stdin;
//! - `exit N`: exits with `N` (mod 256);
//! - `sleep MS`: exits 0 after `MS` milliseconds (10 ms ticks);
//! - `touch MIB`: writes every 4 KiB page of `MIB` MiB of guest memory, then
//!   `ok\n` to stdout (exit 1 and a message on stderr if it has less);
//! - `sector read LBA` / `sector write LBA`: the first virtio-blk disk
//!   (see [`Platform::sector`]).
//!
//! A signal (other than the ones Linux ignores by default) ends a program
//! with `128 + signal`. Anything else in `args[0]` is answered like a
//! missing executable (`ERROR_FILE_NOT_FOUND`).
//!
//! Pure logic over a [`Platform`] and a [`Wire`]; it runs in ring 3 in the
//! guest and on the host in `crates/hcs-test-guest/tests/agent.rs`.

use hcs_agent_protocol::{
    decode_frame, hresult, negotiate, ErrorReply, Header, HelloReply, List, Message,
    ProcessCreated, ProcessEntry, ProcessExited, ProcessListReply, ShutdownAction,
    AGENT_CONTROL_PORT, HEADER_LEN, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
};

use crate::vsock::{Linear, Stack, State, Wire, RX_CAP};

/// Name sent in HelloReply.
pub const AGENT_NAME: &[u8] = b"hcs-test-guest agent";
/// Processes kept (running and exited).
pub const MAX_PROCS: usize = 16;
/// Output of echo (and of the other built-ins' messages) per process.
const OUT_CAP: usize = 4096;
/// Command line kept for ProcessList.
const CMDLINE_CAP: usize = 120;
/// Waits per process.
const MAX_WAITERS: usize = 8;
/// Longest reply frame (ProcessListReply with every process).
pub const REPLY_CAP: usize = 4096;
/// After exit, how long a wait holds its answer for the output to drain (ticks).
const DRAIN_TICKS: u64 = 200;
/// Reconnect back-off bounds (ticks of 10 ms).
const BACKOFF_MIN: u64 = 1;
const BACKOFF_MAX: u64 = 100;

/// What the agent needs from its machine.
pub trait Platform {
    /// 10 ms ticks since boot.
    fn now(&self) -> u64;
    /// Queue a line for the serial console (no newline).
    fn console(&mut self, line: &[u8]);
    /// Write to every 4 KiB page of `mib` MiB; `Err(available MiB)` if there is less.
    fn touch(&mut self, mib: u64) -> Result<(), u64>;
    /// Read or write sector `lba` of the first virtio-blk disk.
    fn sector(&mut self, write: bool, lba: u64, buf: &mut [u8; 512]) -> Result<(), &'static [u8]>;
}

/// What the caller does after a poll.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    None,
    PowerOff,
    Reboot,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctl {
    /// Waiting until the tick to (re)connect.
    Down { at: u64, backoff: u64, told: bool },
    Connecting {
        conn: usize,
        backoff: u64,
        told: bool,
    },
    Up {
        conn: usize,
        shaken: bool,
        version: u16,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PState {
    Free,
    /// Waiting for its stdio connections; ProcessCreated is not sent yet.
    Starting,
    Running,
    Exited,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prog {
    /// Write `out` to `out_err ? stderr : stdout`, then exit with `code`.
    Emit,
    Cat,
    Sleep,
    Touch,
    Sector,
}

#[derive(Clone, Copy)]
struct Stream {
    conn: usize,
    port: u32,
    /// Our local port, to recognise the slot after it was reused.
    local: u32,
}

pub struct Proc {
    pid: u32,
    state: PState,
    prog: Prog,
    code: u32,
    signal: u32,
    arg: u64,
    arg_write: bool,
    terminal: bool,
    create_id: u64,
    start_tick: u64,
    exit_tick: u64,
    deadline: u64,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    out: Linear<OUT_CAP>,
    out_err: bool,
    cmdline: [u8; CMDLINE_CAP],
    cmdline_len: usize,
    waiters: [u64; MAX_WAITERS],
    nwaiters: usize,
    mem: u64,
}

impl Proc {
    #[allow(dead_code)] // the host tests build an Agent with `new`
    const EMPTY: Proc = Proc {
        pid: 0,
        state: PState::Free,
        prog: Prog::Emit,
        code: 0,
        signal: 0,
        arg: 0,
        arg_write: false,
        terminal: false,
        create_id: 0,
        start_tick: 0,
        exit_tick: 0,
        deadline: 0,
        stdin: None,
        stdout: None,
        stderr: None,
        out: Linear::new(),
        out_err: false,
        cmdline: [0; CMDLINE_CAP],
        cmdline_len: 0,
        waiters: [0; MAX_WAITERS],
        nwaiters: 0,
        mem: 0,
    };
}

/// Small text builder (no `core::fmt`).
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn s(&mut self, b: &[u8]) -> &mut Self {
        for c in b {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = *c;
                self.len += 1;
            }
        }
        self
    }
    pub fn dec(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut n = d.len();
        let mut v = v;
        loop {
            n -= 1;
            if let Some(slot) = d.get_mut(n) {
                *slot = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || n == 0 {
                break;
            }
        }
        let digits = d;
        self.s(digits.get(n..).unwrap_or(&[]))
    }
    pub fn hex4(&mut self, v: u16) -> &mut Self {
        self.s(b"0x");
        for shift in [12u32, 8, 4, 0] {
            let d = ((v >> shift) & 0xf) as u8;
            self.s(&[if d < 10 { b'0' + d } else { b'a' + d - 10 }]);
        }
        self
    }
    pub fn get(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Decimal without sign; `None` if empty, not digits, or too large.
pub fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

pub struct Agent {
    pub stack: Stack,
    ctl: Ctl,
    procs: [Proc; MAX_PROCS],
    next_pid: u32,
    /// A CreateProcess is waiting for its stdio: no other request is read,
    /// so that replies stay in order.
    starting: bool,
    /// Bytes of an oversized frame still to skip, and its request id.
    skip: usize,
    skip_id: u64,
    shutdown: Option<ShutdownAction>,
    pub connected_once: bool,
}

type Msg<'a> = Message<'a>;

fn pair<T>(items: &mut [T], a: usize, b: usize) -> Option<(&mut T, &mut T)> {
    if a == b {
        return None;
    }
    if a < b {
        let (lo, hi) = items.split_at_mut_checked(b)?;
        Some((lo.get_mut(a)?, hi.get_mut(0)?))
    } else {
        let (lo, hi) = items.split_at_mut_checked(a)?;
        Some((hi.get_mut(0)?, lo.get_mut(b)?))
    }
}

impl Agent {
    #[allow(dead_code)] // used by the host tests
    pub const fn new() -> Agent {
        Agent {
            stack: Stack::new(),
            ctl: Ctl::Down {
                at: 0,
                backoff: BACKOFF_MIN,
                told: false,
            },
            procs: [const { Proc::EMPTY }; MAX_PROCS],
            next_pid: 2,
            starting: false,
            skip: 0,
            skip_id: 0,
            shutdown: None,
            connected_once: false,
        }
    }

    /// (Re)starts from nothing: every connection and process forgotten.
    /// Does not touch the big buffers, only the state.
    pub fn init(&mut self, guest_cid: u64) {
        self.stack.reset_all(guest_cid);
        for i in 0..crate::vsock::MAX_CONNS {
            self.stack.close(i);
            self.stack.close(i);
        }
        self.ctl = Ctl::Down {
            at: 0,
            backoff: BACKOFF_MIN,
            told: false,
        };
        for p in self.procs.iter_mut() {
            p.state = PState::Free;
            p.pid = 0;
        }
        self.next_pid = 2;
        self.starting = false;
        self.skip = 0;
        self.shutdown = None;
    }

    /// `agent stop`: every connection is reset (RST owed), every process
    /// forgotten; the next poll connects again.
    pub fn abort(&mut self) {
        self.stack.abort_all();
        for p in self.procs.iter_mut() {
            p.state = PState::Free;
            p.pid = 0;
        }
        self.ctl = Ctl::Down {
            at: 0,
            backoff: BACKOFF_MIN,
            told: false,
        };
        self.starting = false;
        self.skip = 0;
        self.shutdown = None;
    }

    /// The device reset its transport: every connection is gone.
    pub fn transport_reset<P: Platform>(&mut self, p: &mut P) {
        self.stack.reset_all(self.stack.guest_cid);
        if let Ctl::Up { conn, .. } | Ctl::Connecting { conn, .. } = self.ctl {
            self.stack.close(conn);
        }
        self.control_lost(p);
    }

    /// Runs everything that can run now: received data, programs, timers,
    /// and sends what is owed. Returns whether more work is ready at once
    /// (the caller should poll again without sleeping) and what to do.
    pub fn poll<P: Platform, W: Wire>(
        &mut self,
        p: &mut P,
        wire: &mut W,
        scratch: &mut [u8],
    ) -> (bool, Action) {
        let now = p.now();
        self.control(p, now);
        self.requests(p, scratch);
        self.run_programs(p, now);
        let sent = self.stack.flush(now, wire);
        // A shutdown takes effect once its Ok is on the wire.
        if let Some(action) = self.shutdown {
            let ctl_empty = match self.ctl {
                Ctl::Up { conn, .. } => self
                    .stack
                    .conn(conn)
                    .is_none_or(|c| c.tx.is_empty() || !c.is_open()),
                _ => true,
            };
            if ctl_empty {
                return (
                    false,
                    match action {
                        ShutdownAction::PowerOff => Action::PowerOff,
                        ShutdownAction::Reboot => Action::Reboot,
                    },
                );
            }
        }
        let busy = sent || self.stack.busy() || self.runnable();
        (busy, Action::None)
    }

    // --- the control connection ------------------------------------------------

    fn control<P: Platform>(&mut self, p: &mut P, now: u64) {
        match self.ctl {
            Ctl::Down { at, backoff, told } => {
                if now >= at {
                    match self.stack.connect(AGENT_CONTROL_PORT, now) {
                        Some(i) => {
                            self.ctl = Ctl::Connecting {
                                conn: i,
                                backoff,
                                told,
                            }
                        }
                        None => {
                            self.ctl = Ctl::Down {
                                at: now + backoff,
                                backoff,
                                told,
                            }
                        }
                    }
                }
            }
            Ctl::Connecting {
                conn,
                backoff,
                told,
            } => {
                let Some(c) = self.stack.conn(conn) else {
                    return;
                };
                match c.state {
                    State::Established => {
                        self.ctl = Ctl::Up {
                            conn,
                            shaken: false,
                            version: PROTOCOL_VERSION,
                        };
                        self.connected_once = true;
                        p.console(b"AGENT CONNECTED");
                    }
                    State::Connecting => {}
                    _ => {
                        // Refused (nobody listens yet): retry with back-off.
                        self.stack.release(conn);
                        if !told {
                            p.console(b"AGENT WAITING FOR HOST");
                        }
                        let next = (backoff * 2).min(BACKOFF_MAX);
                        self.ctl = Ctl::Down {
                            at: now + backoff,
                            backoff: next,
                            told: true,
                        };
                    }
                }
            }
            Ctl::Up { conn, .. } => {
                let gone = self
                    .stack
                    .conn(conn)
                    .is_none_or(|c| c.state != State::Established || c.at_eof());
                if gone && self.shutdown.is_none() {
                    self.stack.close(conn);
                    self.control_lost(p);
                }
            }
        }
    }

    fn control_lost<P: Platform>(&mut self, p: &mut P) {
        if matches!(self.ctl, Ctl::Up { .. }) {
            p.console(b"AGENT DISCONNECTED");
        }
        self.ctl = Ctl::Down {
            at: 0,
            backoff: BACKOFF_MIN,
            told: false,
        };
        self.skip = 0;
        // Replies of the lost connection can no longer be sent.
        for i in 0..MAX_PROCS {
            let Some(pr) = self.procs.get_mut(i) else {
                continue;
            };
            pr.nwaiters = 0;
            if pr.state == PState::Starting {
                self.fail_start(i, None);
            }
        }
        self.starting = false;
    }

    /// Sends `msg` on the control connection (whole frames only).
    fn reply(&mut self, id: u64, msg: &Msg<'_>) -> bool {
        let Ctl::Up { conn, version, .. } = self.ctl else {
            return false;
        };
        let mut buf = [0u8; REPLY_CAP];
        let Ok(n) = msg.encode(version, id, &mut buf) else {
            return false;
        };
        let Some(c) = self.stack.conn_mut(conn) else {
            return false;
        };
        if c.tx_space() < n {
            return false;
        }
        c.write(buf.get(..n).unwrap_or(&[])) == n
    }

    fn error(&mut self, id: u64, hr: u32, text: &[u8]) {
        let msg = Message::Error(ErrorReply {
            hresult: hr,
            message: text,
        });
        self.reply(id, &msg);
    }

    fn ctl_room(&self) -> usize {
        match self.ctl {
            Ctl::Up { conn, .. } => self.stack.conn(conn).map_or(0, |c| c.tx_space()),
            _ => 0,
        }
    }

    /// Reads and handles whole frames from the control connection.
    fn requests<P: Platform>(&mut self, p: &mut P, scratch: &mut [u8]) {
        loop {
            let Ctl::Up { conn, .. } = self.ctl else {
                return;
            };
            if self.starting || self.shutdown.is_some() || self.ctl_room() < REPLY_CAP {
                return;
            }
            let Some(c) = self.stack.conn_mut(conn) else {
                return;
            };
            if self.skip > 0 {
                let n = self.skip.min(c.rx.len());
                c.consume(n);
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
                let id = self.skip_id;
                self.error(
                    id,
                    hresult::E_INVALIDARG,
                    b"message too large for the test guest agent",
                );
                continue;
            }
            let data = c.rx.data();
            if data.len() < HEADER_LEN {
                return;
            }
            let header = match Header::decode(data) {
                Ok(h) => h,
                Err(e) => {
                    // The framing is lost: say why, then drop the connection.
                    self.error(0, e.hresult(), e.as_str().as_bytes());
                    self.stack.close(conn);
                    self.ctl = Ctl::Up {
                        conn,
                        shaken: false,
                        version: PROTOCOL_VERSION,
                    };
                    self.control_lost(p);
                    return;
                }
            };
            let len = header.frame_len();
            if len > RX_CAP || len > scratch.len() {
                self.skip = len;
                self.skip_id = header.request_id;
                continue;
            }
            if data.len() < len {
                return;
            }
            let Some(src) = data.get(..len) else { return };
            let Some(dst) = scratch.get_mut(..len) else {
                return;
            };
            crate::vsock::copy(dst, src);
            c.consume(len);
            let frame = scratch.get(..len).unwrap_or(&[]);
            self.request(p, &header, frame);
        }
    }

    fn request<P: Platform>(&mut self, p: &mut P, header: &Header, frame: &[u8]) {
        let id = header.request_id;
        let Ctl::Up { conn, shaken, .. } = self.ctl else {
            return;
        };
        let msg = match decode_frame(frame) {
            Ok((_, m, _)) => m,
            Err(e) => {
                let mut t = Text::<160>::new();
                t.s(b"cannot decode message type ")
                    .hex4(header.msg_type)
                    .s(b": ")
                    .s(e.as_str().as_bytes());
                self.error(id, e.hresult(), t.get());
                return;
            }
        };
        match msg {
            Message::Hello(h) => match negotiate(h.versions.iter()) {
                Some(version) => {
                    self.ctl = Ctl::Up {
                        conn,
                        shaken: true,
                        version,
                    };
                    self.reply(
                        id,
                        &Message::HelloReply(HelloReply {
                            version,
                            agent: AGENT_NAME,
                        }),
                    );
                }
                None => {
                    let mut t = Text::<200>::new();
                    t.s(b"no shared protocol version: the agent speaks [");
                    for (k, v) in SUPPORTED_VERSIONS.iter().enumerate() {
                        if k > 0 {
                            t.s(b", ");
                        }
                        t.dec(*v as u64);
                    }
                    t.s(b"], the client offered [");
                    for (k, v) in h.versions.iter().enumerate() {
                        if k > 0 {
                            t.s(b", ");
                        }
                        t.dec(v as u64);
                    }
                    t.s(b"]");
                    self.error(id, hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION, t.get());
                }
            },
            m if m.message_type().is_response() => {
                let mut t = Text::<64>::new();
                t.s(b"message type ")
                    .hex4(header.msg_type)
                    .s(b" is not a request");
                self.error(id, hresult::HCS_E_UNKNOWN_MESSAGE, t.get());
            }
            _ if !shaken => self.error(
                id,
                hresult::HCS_E_PROTOCOL_ERROR,
                b"the first request must be Hello",
            ),
            Message::CreateProcess(req) => self.create(p, id, &req),
            Message::ResizeConsole(r) => match self.find(r.pid) {
                Some(i) if self.procs.get(i).is_some_and(|x| x.state == PState::Exited) => {
                    self.err_exited(id, r.pid)
                }
                Some(i) if self.procs.get(i).is_some_and(|x| x.terminal) => {
                    self.reply(id, &Message::Ok);
                }
                Some(_) => {
                    let mut t = Text::<64>::new();
                    t.s(b"process ").dec(r.pid as u64).s(b" has no terminal");
                    self.error(id, hresult::E_INVALIDARG, t.get());
                }
                None => self.err_not_found(id, r.pid),
            },
            Message::Signal(s) => self.signal(p, id, s.pid, s.signal),
            Message::WaitProcess(w) => match self.find(w.pid) {
                Some(i) => {
                    if let Some(pr) = self.procs.get_mut(i) {
                        if let Some(slot) = pr.waiters.get_mut(pr.nwaiters) {
                            *slot = id;
                            pr.nwaiters += 1;
                        } else {
                            self.error(id, hresult::E_FAIL, b"too many waits for this process");
                        }
                    }
                }
                None => self.err_not_found(id, w.pid),
            },
            Message::ProcessList => self.process_list(p, id),
            // The test guest keeps no files, so it has no time zone to set.
            Message::SetTimeZone(_) => self.error(
                id,
                hresult::ERROR_NOT_SUPPORTED,
                b"the test guest has no /etc to set a time zone in",
            ),
            Message::Shutdown(s) => {
                // Everything stops; the Ok goes out, then the power goes off.
                for i in 0..MAX_PROCS {
                    if self
                        .procs
                        .get(i)
                        .is_some_and(|x| matches!(x.state, PState::Running | PState::Starting))
                    {
                        self.exit(i, 128 + 9, 9, p.now());
                    }
                }
                self.reply(id, &Message::Ok);
                self.shutdown = Some(s.action);
            }
            _ => self.error(
                id,
                hresult::E_INVALIDARG,
                b"invalid request: unexpected message",
            ),
        }
    }

    fn find(&self, pid: u32) -> Option<usize> {
        if pid == 0 {
            return None;
        }
        self.procs
            .iter()
            .position(|x| x.pid == pid && matches!(x.state, PState::Running | PState::Exited))
    }

    fn err_not_found(&mut self, id: u64, pid: u32) {
        let mut t = Text::<64>::new();
        t.s(b"process ")
            .dec(pid as u64)
            .s(b" was not started by the agent");
        self.error(id, hresult::ERROR_NOT_FOUND, t.get());
    }

    fn err_exited(&mut self, id: u64, pid: u32) {
        let mut t = Text::<64>::new();
        t.s(b"process ").dec(pid as u64).s(b" has already exited");
        self.error(id, hresult::HCS_E_PROCESS_ALREADY_STOPPED, t.get());
    }

    // --- processes ------------------------------------------------------------

    fn create<P: Platform>(
        &mut self,
        p: &mut P,
        id: u64,
        req: &hcs_agent_protocol::CreateProcess<'_>,
    ) {
        let mut args = req.args.iter();
        let Some(arg0) = args.next() else {
            self.error(
                id,
                hresult::E_INVALIDARG,
                b"invalid request: no command (args is empty)",
            );
            return;
        };
        if arg0.is_empty() {
            self.error(
                id,
                hresult::E_INVALIDARG,
                b"invalid request: the command (args[0]) is empty",
            );
            return;
        }
        // The test programs run as the guest itself: they cannot honour
        // groups, limits or capabilities, so a request with any is refused.
        if req.security != hcs_agent_protocol::ProcessSecurity::INHERIT
            || !req.executable.is_empty()
        {
            self.error(
                id,
                hresult::ERROR_NOT_SUPPORTED,
                b"the test guest runs its programs without users, limits or capabilities",
            );
            return;
        }
        if req.terminal.is_some() && req.stderr_port.is_some() {
            self.error(
                id,
                hresult::E_INVALIDARG,
                b"invalid request: stderr cannot be a separate stream with a terminal",
            );
            return;
        }
        // The program: its name is the last path component of args[0].
        let name = match arg0.iter().rposition(|c| *c == b'/') {
            Some(k) => arg0.get(k + 1..).unwrap_or(&[]),
            None => arg0,
        };
        let arg1 = args.next();
        let arg2 = args.next();
        let (prog, code, arg, write) = match name {
            b"echo" => (Prog::Emit, 0, 0, false),
            b"cat" => (Prog::Cat, 0, 0, false),
            b"true" => (Prog::Emit, 0, 0, false),
            b"false" => (Prog::Emit, 1, 0, false),
            b"exit" => match arg1.map_or(Some(0), parse_dec) {
                Some(n) => (Prog::Emit, (n % 256) as u32, 0, false),
                None => {
                    return self.error(
                        id,
                        hresult::E_INVALIDARG,
                        b"invalid request: exit takes a number",
                    )
                }
            },
            b"sleep" => match arg1.and_then(parse_dec) {
                Some(ms) => (Prog::Sleep, 0, ms, false),
                None => {
                    return self.error(
                        id,
                        hresult::E_INVALIDARG,
                        b"invalid request: sleep takes milliseconds",
                    )
                }
            },
            b"touch" => match arg1.and_then(parse_dec) {
                Some(mib) => (Prog::Touch, 0, mib, false),
                None => {
                    return self.error(
                        id,
                        hresult::E_INVALIDARG,
                        b"invalid request: touch takes MiB",
                    )
                }
            },
            b"sector" => match (arg1, arg2.and_then(parse_dec)) {
                (Some(b"read"), Some(lba)) => (Prog::Sector, 0, lba, false),
                (Some(b"write"), Some(lba)) => (Prog::Sector, 0, lba, true),
                _ => {
                    return self.error(
                        id,
                        hresult::E_INVALIDARG,
                        b"invalid request: usage: sector read|write LBA",
                    )
                }
            },
            _ => {
                let mut t = Text::<200>::new();
                t.s(b"executable \"").s(arg0).s(b"\" was not found (searched the test guest's built-in programs: echo cat exit sleep touch sector true false)");
                self.error(id, hresult::ERROR_FILE_NOT_FOUND, t.get());
                return;
            }
        };
        // A slot: a free one, else the oldest exited one nobody waits for.
        let slot = self
            .procs
            .iter()
            .position(|x| x.state == PState::Free)
            .or_else(|| {
                let mut best: Option<(usize, u64)> = None;
                for (k, x) in self.procs.iter().enumerate() {
                    if x.state == PState::Exited
                        && x.nwaiters == 0
                        && best.is_none_or(|(_, t)| x.exit_tick < t)
                    {
                        best = Some((k, x.exit_tick));
                    }
                }
                best.map(|(k, _)| k)
            });
        let Some(slot) = slot else {
            self.error(
                id,
                hresult::E_FAIL,
                b"the test guest runs too many processes",
            );
            return;
        };
        let now = p.now();
        let pid = self.next_pid;
        self.next_pid = if self.next_pid >= 0x3f_ffff {
            2
        } else {
            self.next_pid + 1
        };
        // Connect the streams (before ProcessCreated, as the real agent does).
        let mut streams: [Option<Stream>; 3] = [None; 3];
        let ports = [req.stdin_port, req.stdout_port, req.stderr_port];
        for (k, port) in ports.iter().enumerate() {
            let Some(port) = *port else { continue };
            match self.stack.connect(port, now) {
                Some(c) => {
                    let local = self.stack.conn(c).map_or(0, |x| x.local_port);
                    if let Some(s) = streams.get_mut(k) {
                        *s = Some(Stream {
                            conn: c,
                            port,
                            local,
                        });
                    }
                }
                None => {
                    for s in streams.iter().flatten() {
                        self.stack.close(s.conn);
                    }
                    self.error(
                        id,
                        hresult::E_FAIL,
                        b"the test guest has no free vsock connection",
                    );
                    return;
                }
            }
        }
        let Some(pr) = self.procs.get_mut(slot) else {
            return;
        };
        pr.pid = pid;
        pr.state = PState::Starting;
        pr.prog = prog;
        pr.code = code;
        pr.signal = 0;
        pr.arg = arg;
        pr.arg_write = write;
        pr.terminal = req.terminal.is_some();
        pr.create_id = id;
        pr.start_tick = now;
        pr.exit_tick = 0;
        pr.deadline = 0;
        pr.stdin = streams[0];
        pr.stdout = streams[1];
        pr.stderr = streams[2];
        pr.out.clear();
        pr.out_err = false;
        pr.nwaiters = 0;
        pr.mem = 4096;
        // Command line for ProcessList.
        pr.cmdline_len = 0;
        for (k, a) in req.args.iter().enumerate() {
            let mut put = |b: &[u8]| {
                for c in b {
                    if let Some(s) = pr.cmdline.get_mut(pr.cmdline_len) {
                        *s = *c;
                        pr.cmdline_len += 1;
                    }
                }
            };
            if k > 0 {
                put(b" ");
            }
            put(a);
        }
        // echo's output is made now, while the request's strings are at hand.
        if name == b"echo" {
            for (k, a) in req.args.iter().skip(1).enumerate() {
                if k > 0 {
                    pr.out.push(b" ");
                }
                pr.out.push(a);
            }
            pr.out.push(b"\n");
            for e in req.env.iter() {
                pr.out.push(e);
                pr.out.push(b"\n");
            }
        }
        self.starting = true;
        if pr.stdin.is_none() && pr.stdout.is_none() && pr.stderr.is_none() {
            self.started(slot, now);
        }
    }

    /// Every stream connected: ProcessCreated, and the program starts.
    fn started(&mut self, i: usize, now: u64) {
        self.starting = false;
        let Some(pr) = self.procs.get_mut(i) else {
            return;
        };
        pr.state = PState::Running;
        let (id, pid) = (pr.create_id, pr.pid);
        if pr.prog == Prog::Sleep {
            let ticks = pr.arg.saturating_add(9) / 10;
            pr.deadline = now.saturating_add(ticks);
        }
        self.reply(id, &Message::ProcessCreated(ProcessCreated { pid }));
    }

    /// A stream could not be connected: Error, and the process never was.
    fn fail_start(&mut self, i: usize, failed: Option<(&'static [u8], u32)>) {
        self.starting = false;
        let Some(pr) = self.procs.get_mut(i) else {
            return;
        };
        let id = pr.create_id;
        let streams = [pr.stdin.take(), pr.stdout.take(), pr.stderr.take()];
        pr.state = PState::Free;
        pr.pid = 0;
        for s in streams.iter().flatten() {
            self.stack.close(s.conn);
        }
        if let Some((name, port)) = failed {
            let mut t = Text::<120>::new();
            t.s(b"cannot connect the ")
                .s(name)
                .s(b" stream to port ")
                .dec(port as u64)
                .s(b": connection refused");
            self.error(id, hresult::E_FAIL, t.get());
        }
    }

    fn exit(&mut self, i: usize, code: u32, signal: u32, now: u64) {
        let Some(pr) = self.procs.get_mut(i) else {
            return;
        };
        if pr.state != PState::Running && pr.state != PState::Starting {
            return;
        }
        pr.state = PState::Exited;
        pr.code = code;
        pr.signal = signal;
        pr.exit_tick = now;
        // stdin is shut at exit; the outputs close once drained.
        let streams = [pr.stdin.take(), pr.stdout, pr.stderr];
        for s in streams.iter().flatten() {
            self.stack.close(s.conn);
        }
    }

    fn signal<P: Platform>(&mut self, p: &mut P, id: u64, pid: u32, sig: u32) {
        let Some(i) = self.find(pid) else {
            return self.err_not_found(id, pid);
        };
        if self.procs.get(i).is_some_and(|x| x.state == PState::Exited) {
            return self.err_exited(id, pid);
        }
        if sig == 0 || sig > 64 {
            let mut t = Text::<64>::new();
            t.s(b"invalid request: invalid signal number ")
                .dec(sig as u64);
            return self.error(id, hresult::E_INVALIDARG, t.get());
        }
        // SIGCHLD, SIGCONT, SIGURG, SIGWINCH are ignored by default.
        if !matches!(sig, 17 | 18 | 23 | 28) {
            self.exit(i, 128 + sig, sig, p.now());
        }
        self.reply(id, &Message::Ok);
    }

    fn process_list<P: Platform>(&mut self, p: &mut P, id: u64) {
        let now = p.now();
        let mut entries = [ProcessEntry {
            pid: 0,
            command_line: &[],
            start_time_100ns: 0,
            user_time_100ns: 0,
            kernel_time_100ns: 0,
            memory_commit_bytes: 0,
            working_set_private_bytes: 0,
            working_set_shared_bytes: 0,
        }; MAX_PROCS + 1];
        let mut n = 0;
        if let Some(e) = entries.get_mut(0) {
            e.pid = 1;
            e.command_line = b"hcs-test-guest agent";
            e.kernel_time_100ns = now.saturating_mul(100_000);
            e.memory_commit_bytes = 1 << 20;
            e.working_set_private_bytes = 1 << 20;
            n = 1;
        }
        for pr in self.procs.iter() {
            if pr.state != PState::Running {
                continue;
            }
            if let Some(e) = entries.get_mut(n) {
                e.pid = pr.pid;
                e.command_line = pr.cmdline.get(..pr.cmdline_len).unwrap_or(&[]);
                e.start_time_100ns = pr.start_tick.saturating_mul(100_000);
                e.user_time_100ns = now.saturating_sub(pr.start_tick).saturating_mul(1000);
                e.memory_commit_bytes = pr.mem;
                e.working_set_private_bytes = pr.mem;
                n += 1;
            }
        }
        let list = entries.get(..n).unwrap_or(&[]);
        let msg = Message::ProcessListReply(ProcessListReply {
            processes: List::Slice(list),
        });
        let Ctl::Up { conn, version, .. } = self.ctl else {
            return;
        };
        let mut buf = [0u8; REPLY_CAP];
        if let Ok(len) = msg.encode(version, id, &mut buf) {
            if let Some(c) = self.stack.conn_mut(conn) {
                if c.tx_space() >= len {
                    c.write(buf.get(..len).unwrap_or(&[]));
                }
            }
        }
    }

    /// Is a program able to make progress right now?
    fn runnable(&self) -> bool {
        self.procs.iter().any(|pr| match (pr.state, pr.prog) {
            (PState::Running, Prog::Emit) => true,
            (PState::Running, Prog::Cat) => {
                pr.stdin.is_none_or(|s| {
                    self.stack
                        .conn(s.conn)
                        .is_some_and(|c| !c.rx.is_empty() || c.at_eof())
                }) && pr
                    .stdout
                    .is_none_or(|s| self.stack.conn(s.conn).is_some_and(|c| c.tx_space() > 0))
            }
            _ => false,
        })
    }

    fn run_programs<P: Platform>(&mut self, p: &mut P, now: u64) {
        for i in 0..MAX_PROCS {
            let Some(state) = self.procs.get(i).map(|x| x.state) else {
                continue;
            };
            match state {
                PState::Starting => self.step_starting(i, now),
                PState::Running => self.step_running(p, i, now),
                PState::Exited => self.step_exited(i, now),
                PState::Free => {}
            }
        }
    }

    fn step_starting(&mut self, i: usize, now: u64) {
        let Some(pr) = self.procs.get(i) else { return };
        let mut all = true;
        let names: [&'static [u8]; 3] = [b"stdin", b"stdout", b"stderr"];
        for (k, s) in [pr.stdin, pr.stdout, pr.stderr].iter().enumerate() {
            let Some(s) = s else { continue };
            match self.stack.conn(s.conn).map(|c| c.state) {
                Some(State::Established) => {}
                Some(State::Connecting) => all = false,
                _ => {
                    let name = names.get(k).copied().unwrap_or(b"stdio");
                    self.fail_start(i, Some((name, s.port)));
                    return;
                }
            }
        }
        if all {
            self.started(i, now);
        }
    }

    fn step_running<P: Platform>(&mut self, p: &mut P, i: usize, now: u64) {
        let Some(pr) = self.procs.get_mut(i) else {
            return;
        };
        match pr.prog {
            Prog::Emit => {
                let target = if pr.out_err { pr.stderr } else { pr.stdout };
                if let Some(s) = target {
                    if let Some(c) = self.stack.conn_mut(s.conn) {
                        if c.is_open() && !c.peer_done_receiving {
                            let n = c.write(pr.out.data());
                            pr.out.consume(n);
                        } else {
                            pr.out.clear(); // the reader is gone (EPIPE)
                        }
                    }
                } else {
                    pr.out.clear();
                }
                if pr.out.is_empty() {
                    let code = pr.code;
                    self.exit(i, code, 0, now);
                }
            }
            Prog::Cat => self.step_cat(i, now),
            Prog::Sleep => {
                if now >= pr.deadline {
                    self.exit(i, 0, 0, now);
                }
            }
            Prog::Touch => {
                let mib = pr.arg;
                match p.touch(mib) {
                    Ok(()) => {
                        pr.out.push(b"ok\n");
                        pr.code = 0;
                        pr.mem = mib << 20;
                    }
                    Err(avail) => {
                        let mut t = Text::<80>::new();
                        t.s(b"touch: only ")
                            .dec(avail)
                            .s(b" MiB of memory to touch\n");
                        pr.out.push(t.get());
                        pr.out_err = pr.stderr.is_some();
                        pr.code = 1;
                    }
                }
                pr.prog = Prog::Emit;
            }
            Prog::Sector => {
                let (write, lba) = (pr.arg_write, pr.arg);
                let mut buf = [0u8; 512];
                if write {
                    // A recognisable pattern: "HCS-SECTOR <lba>\n", then the low byte of each offset.
                    let mut t = Text::<40>::new();
                    t.s(b"HCS-SECTOR ").dec(lba).s(b"\n");
                    for (k, b) in buf.iter_mut().enumerate() {
                        *b = k as u8;
                    }
                    for (b, s) in buf.iter_mut().zip(t.get()) {
                        *b = *s;
                    }
                }
                match p.sector(write, lba, &mut buf) {
                    Ok(()) if write => {
                        pr.out.push(b"ok\n");
                        pr.code = 0;
                    }
                    Ok(()) => {
                        pr.out.push(&buf);
                        pr.code = 0;
                    }
                    Err(why) => {
                        pr.out.push(b"sector: ");
                        pr.out.push(why);
                        pr.out.push(b"\n");
                        pr.out_err = pr.stderr.is_some();
                        pr.code = 1;
                    }
                }
                pr.prog = Prog::Emit;
            }
        }
    }

    fn step_cat(&mut self, i: usize, now: u64) {
        let Some(pr) = self.procs.get(i) else { return };
        let Some(input) = pr.stdin else {
            self.exit(i, 0, 0, now);
            return;
        };
        let output = pr.stdout;
        match output.and_then(|o| pair(&mut self.stack.conns, input.conn, o.conn)) {
            Some((inp, out)) => {
                if out.is_open() && !out.peer_done_receiving {
                    let n = out.write(inp.rx.data());
                    inp.consume(n);
                } else {
                    let n = inp.rx.len();
                    inp.consume(n);
                }
            }
            None => {
                if let Some(inp) = self.stack.conn_mut(input.conn) {
                    let n = inp.rx.len();
                    inp.consume(n);
                }
            }
        }
        if self
            .stack
            .conn(input.conn)
            .is_none_or(|c| c.at_eof() && c.rx.is_empty())
        {
            self.exit(i, 0, 0, now);
        }
    }

    /// Answers waits once the outputs are drained (or after DRAIN_TICKS).
    fn step_exited(&mut self, i: usize, now: u64) {
        let Some(pr) = self.procs.get(i) else { return };
        if pr.nwaiters == 0 {
            return;
        }
        let drained = |s: &Option<Stream>| {
            s.is_none_or(|s| {
                self.stack
                    .conn(s.conn)
                    .is_none_or(|c| c.local_port != s.local || c.state != State::Established)
            })
        };
        let done = (drained(&pr.stdout) && drained(&pr.stderr))
            || now >= pr.exit_tick.saturating_add(DRAIN_TICKS);
        if !done || self.ctl_room() < 64 {
            return;
        }
        let (pid, code, signal, n) = (pr.pid, pr.code, pr.signal, pr.nwaiters);
        let waiters = pr.waiters;
        for id in waiters.iter().take(n) {
            self.reply(
                *id,
                &Message::ProcessExited(ProcessExited {
                    pid,
                    exit_code: code,
                    signal,
                }),
            );
        }
        if let Some(pr) = self.procs.get_mut(i) {
            pr.nwaiters = 0;
        }
    }
}
