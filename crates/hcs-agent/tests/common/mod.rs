//! A test harness: an `hcs-agent --unix` child on a temp dir, and a client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcs_agent_protocol::*;

/// Read timeout for every socket the tests use, so a bug fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The agent binary: `HCS_AGENT_BIN` (e.g. the static release build), or
/// the one cargo built for these tests.
pub fn agent_bin() -> std::ffi::OsString {
    std::env::var_os("HCS_AGENT_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hcs-agent").into())
}

/// An agent process serving a temp dir; killed (by its pid) on drop.
pub struct AgentProc {
    pub child: Child,
    pub dir: tempfile::TempDir,
    next_port: u32,
}

impl AgentProc {
    pub fn start() -> AgentProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(agent_bin())
            .arg("--unix")
            .arg(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("start hcs-agent");
        let agent = AgentProc {
            child,
            dir,
            next_port: 1000,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(agent.dir.path().join("agent.sock")).is_err() {
            assert!(Instant::now() < deadline, "agent did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    /// Wraps an agent started some other way.
    pub fn from_parts(child: Child, dir: tempfile::TempDir) -> AgentProc {
        AgentProc {
            child,
            dir,
            next_port: 1000,
        }
    }

    /// A connection that has not said Hello yet.
    pub fn connect_raw(&self) -> Client {
        let s = UnixStream::connect(self.dir.path().join("agent.sock")).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            s,
            next_id: 1,
            pending: Vec::new(),
        }
    }

    /// A connection after a successful handshake.
    pub fn connect(&self) -> Client {
        let mut c = self.connect_raw();
        c.hello(&[PROTOCOL_VERSION]).expect("handshake");
        c
    }

    /// Listens on `<dir>/port_<N>` for a fresh N.
    pub fn listen(&mut self) -> (u32, UnixListener) {
        self.next_port += 1;
        let port = self.next_port;
        let l =
            UnixListener::bind(self.dir.path().join(format!("port_{port}"))).expect("bind port");
        (port, l)
    }

    /// Is the agent process still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        // Child::kill signals exactly this child's pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A decoded response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Hello(u16, String),
    Created(u32),
    Ok,
    Exited(ProcessExited),
    List(Vec<(u32, String)>),
    Error(u32, String),
    Other(u16),
}

fn own(msg: &Message<'_>) -> Reply {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match msg {
        Message::HelloReply(h) => Reply::Hello(h.version, s(h.agent)),
        Message::ProcessCreated(p) => Reply::Created(p.pid),
        Message::Ok => Reply::Ok,
        Message::ProcessExited(e) => Reply::Exited(*e),
        Message::ProcessListReply(l) => Reply::List(
            l.processes
                .iter()
                .map(|e| (e.pid, s(e.command_line)))
                .collect(),
        ),
        Message::Error(e) => Reply::Error(e.hresult, s(e.message)),
        other => Reply::Other(other.message_type() as u16),
    }
}

pub struct Client {
    pub s: UnixStream,
    next_id: u64,
    pending: Vec<(u64, Reply)>,
}

impl Client {
    pub fn send(&mut self, msg: &Message<'_>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(&mut self.s, msg, PROTOCOL_VERSION, id).expect("send");
        id
    }

    /// The next frame, whatever its id.
    pub fn recv_any(&mut self) -> (Header, Reply) {
        let mut payload = Vec::new();
        let header = read_frame(&mut self.s, &mut payload)
            .expect("read frame")
            .expect("connection closed");
        let msg = Message::decode(&header, &payload).expect("agent sent an undecodable frame");
        (header, own(&msg))
    }

    /// The response to request `id` (others are kept for later).
    pub fn recv(&mut self, id: u64) -> Reply {
        if let Some(i) = self.pending.iter().position(|(pid, _)| *pid == id) {
            return self.pending.remove(i).1;
        }
        loop {
            let (h, r) = self.recv_any();
            if h.request_id == id {
                return r;
            }
            self.pending.push((h.request_id, r));
        }
    }

    pub fn call(&mut self, msg: &Message<'_>) -> Reply {
        let id = self.send(msg);
        self.recv(id)
    }

    pub fn hello(&mut self, versions: &[u16]) -> Result<u16, (u32, String)> {
        match self.call(&Message::Hello(Hello {
            versions: List::Slice(versions),
            client: b"test",
        })) {
            Reply::Hello(v, _) => Ok(v),
            Reply::Error(h, m) => Err((h, m)),
            other => panic!("unexpected reply to Hello: {other:?}"),
        }
    }

    pub fn wait(&mut self, pid: u32) -> ProcessExited {
        match self.call(&Message::WaitProcess(WaitProcess { pid })) {
            Reply::Exited(e) => e,
            other => panic!("unexpected reply to WaitProcess: {other:?}"),
        }
    }

    pub fn signal(&mut self, pid: u32, signal: u32) -> Reply {
        self.call(&Message::Signal(Signal { pid, signal }))
    }
}

/// What to run.
pub struct Spec<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [&'a str],
    pub cwd: &'a str,
    pub user: User<'a>,
    pub terminal: Option<ConsoleSize>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub security: ProcessSecurity<'a>,
}

impl<'a> Spec<'a> {
    pub fn new(args: &'a [&'a str]) -> Spec<'a> {
        Spec {
            args,
            env: &["PATH=/usr/local/bin:/usr/bin:/bin"],
            cwd: "/",
            user: User::Default,
            terminal: None,
            stdin: false,
            stdout: true,
            stderr: true,
            security: ProcessSecurity::INHERIT,
        }
    }
}

/// A started process and the host ends of its streams.
pub struct Proc {
    pub pid: u32,
    pub stdin: Option<UnixStream>,
    pub stdout: Option<UnixStream>,
    pub stderr: Option<UnixStream>,
}

fn accept(l: Option<(u32, UnixListener)>) -> Option<UnixStream> {
    let (_, l) = l?;
    let (s, _) = l.accept().expect("accept stdio stream");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    Some(s)
}

/// Starts a process; `Err((hresult, message))` when the agent refuses.
pub fn create(
    agent: &mut AgentProc,
    c: &mut Client,
    spec: &Spec<'_>,
) -> Result<Proc, (u32, String)> {
    let args: Vec<&[u8]> = spec.args.iter().map(|a| a.as_bytes()).collect();
    let env: Vec<&[u8]> = spec.env.iter().map(|a| a.as_bytes()).collect();
    let li = spec.stdin.then(|| agent.listen());
    let lo = spec.stdout.then(|| agent.listen());
    let le = spec.stderr.then(|| agent.listen());
    let req = Message::CreateProcess(CreateProcess {
        args: List::Slice(&args),
        executable: b"",
        env: List::Slice(&env),
        cwd: spec.cwd.as_bytes(),
        user: spec.user,
        terminal: spec.terminal,
        stdin_port: li.as_ref().map(|l| l.0),
        stdout_port: lo.as_ref().map(|l| l.0),
        stderr_port: le.as_ref().map(|l| l.0),
        security: spec.security,
    });
    match c.call(&req) {
        Reply::Created(pid) => Ok(Proc {
            pid,
            stdin: accept(li),
            stdout: accept(lo),
            stderr: accept(le),
        }),
        Reply::Error(h, m) => Err((h, m)),
        other => panic!("unexpected reply to CreateProcess: {other:?}"),
    }
}

/// Reads a stream to its end.
pub fn read_all(s: &mut Option<UnixStream>) -> String {
    let mut out = Vec::new();
    s.as_mut()
        .expect("stream")
        .read_to_end(&mut out)
        .expect("read stream");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `needle` has been seen; returns what was read.
pub fn read_until(s: &mut UnixStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&out).contains(needle) {
        let n = s.read(&mut buf).expect("read stream");
        assert!(
            n > 0,
            "stream ended before {needle:?}; got {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `data` to a stream and closes it, on a thread.
pub fn feed(mut s: UnixStream, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        s.write_all(&data).expect("write stdin");
        s.shutdown(std::net::Shutdown::Write).expect("close stdin");
    })
}
