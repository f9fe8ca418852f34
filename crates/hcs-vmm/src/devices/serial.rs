//! 16550 serial ports (vm-superio's `Serial`) and their host backends.
//!
//! A port's output is kept in a 64 KiB ring (so a console attached late
//! sees what the guest printed at boot), appended to a log file, and sent to
//! every client connected to the port's unix socket. Bytes a client sends
//! become the guest's input.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::{lock, BusDevice};

/// How long typed input waits for a guest that does not drain its FIFO.
/// Long enough for a guest starved of CPU on a loaded host (a 2-core
/// machine running builds): 5 s could drop test commands there.
pub const INPUT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes of output kept for consoles that attach later.
pub const HISTORY: usize = 64 * 1024;

/// Output a console may fall behind by before it is disconnected. Bytes are
/// never dropped from the middle of a console's stream: a console that
/// cannot keep up this far is cut off whole, so what it did read is exact.
pub const CLIENT_BACKLOG: usize = 4 * 1024 * 1024;

/// Where a port's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialBackend {
    /// Nowhere (a port that is present but disconnected).
    None,
    /// Appended to this file.
    LogFile(PathBuf),
    /// A unix socket the VMM listens on; clients are consoles.
    Socket(PathBuf),
}

/// Why a port's backend could not be connected. Every variant names the
/// host path; none of them touched what was already there.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// Something already exists where the port's socket would go. It is
    /// never removed: even a socket may be another program's (or a live
    /// console's), and nothing tells a stale one of ours apart safely.
    #[error(
        "{}: a {kind} already exists there; a port's socket is only made at a free path          (nothing existing is removed or replaced; delete a stale socket yourself)",
        path.display()
    )]
    Exists {
        /// The port's socket path.
        path: PathBuf,
        /// What is there ("socket", "regular file", "symlink", ...).
        kind: &'static str,
    },
    /// A log path that is a symlink (not followed) or not a regular file.
    #[error("{}: a {kind}; a port's log must be a regular file (symlinks are not followed)", path.display())]
    NotRegularLog {
        /// The log path.
        path: PathBuf,
        /// What is there.
        kind: &'static str,
    },
    /// Host I/O failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being opened or bound.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl SerialError {
    /// The host path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SerialError::Exists { path, .. }
            | SerialError::NotRegularLog { path, .. }
            | SerialError::Io { path, .. } => path,
        }
    }
}

/// A file type in words, for errors.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_socket() {
        "socket"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_file() {
        "regular file"
    } else {
        "file of unknown type"
    }
}

/// Open a port's log for appending: created 0600 if absent, never through
/// a symlink, and only a regular file (a FIFO would block, a device node
/// would be written to). O_NONBLOCK keeps the open itself from blocking on
/// a FIFO; the type is then checked on the open file, so no race.
fn open_log(path: &Path) -> Result<File, SerialError> {
    let io = |source| SerialError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => SerialError::NotRegularLog {
                path: path.to_path_buf(),
                kind: "symlink",
            },
            // A FIFO nobody reads opens with ENXIO under O_NONBLOCK.
            Some(libc::ENXIO) => SerialError::NotRegularLog {
                path: path.to_path_buf(),
                kind: "FIFO",
            },
            _ => io(e),
        })?;
    let ft = file.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        return Err(SerialError::NotRegularLog {
            path: path.to_path_buf(),
            kind: kind_of(ft),
        });
    }
    // Writes to a regular file do not block; the flag is dropped anyway so
    // the log behaves like any appended file.
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .map_err(|e| io(e.into()))?;
    Ok(file)
}

/// What identifies the socket file a port bound: device and inode, and its
/// change time, because an inode number freed by an unlink is soon given to
/// the next file made there (a socket someone else binds at the same path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_ctime`, seconds.
    pub ctime: i64,
    /// `st_ctime`, nanoseconds.
    pub ctime_nsec: i64,
}

impl SocketId {
    /// The identity of the file `m` describes.
    pub fn of(m: &std::fs::Metadata) -> SocketId {
        SocketId {
            dev: m.dev(),
            ino: m.ino(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }
}

/// Bind a port's socket at `path`, which must not exist: bind(2) itself
/// refuses any existing file (symlinks included, not followed), so nothing
/// there is ever touched. Returns the listener and the socket's identity
/// so that only this socket is removed later.
fn bind_socket(path: &Path) -> Result<(UnixListener, SocketId), SerialError> {
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            let kind = std::fs::symlink_metadata(path)
                .map(|m| kind_of(m.file_type()))
                .unwrap_or("file");
            SerialError::Exists {
                path: path.to_path_buf(),
                kind,
            }
        } else {
            SerialError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let id = std::fs::symlink_metadata(path)
        .map(|m| SocketId::of(&m))
        .map_err(|source| SerialError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((listener, id))
}

/// Remove the socket at `path` if it is still the one this system bound
/// (same [`SocketId`]); anything put there since stays.
fn remove_own_socket(path: &Path, id: SocketId) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() && SocketId::of(&m) == id => {
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => tracing::warn!(
            path = %path.display(),
            "a serial port's socket was replaced; leaving what is there"
        ),
        Err(_) => {}
    }
}

/// Raises the port's interrupt through an irqfd.
pub struct EventFdTrigger(pub EventFd);

impl vm_superio::Trigger for EventFdTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The output side shared by the device and the socket threads.
#[derive(Default)]
pub struct Console {
    history: VecDeque<u8>,
    log: Option<File>,
    clients: Vec<Arc<ClientQueue>>,
    /// Everything written, for tests and statistics.
    pub total: u64,
}

/// A console's pending output, drained by its own writer thread.
///
/// The vCPU writing to THR must never block on a console, and a console
/// must never lose bytes because it was briefly slow (a loaded host starves
/// readers for seconds; a guest writes a byte per exit, and a unix socket's
/// buffer fills after a few hundred one-byte sends). So output goes into
/// this queue without blocking and a thread writes it out with blocking
/// writes.
#[derive(Default)]
struct ClientQueue {
    pending: Mutex<ClientPending>,
    ready: std::sync::Condvar,
}

#[derive(Default)]
struct ClientPending {
    bytes: VecDeque<u8>,
    /// The console went away or fell more than [`CLIENT_BACKLOG`] behind.
    closed: bool,
    /// The port is gone: write what is queued, then end.
    finishing: bool,
}

impl ClientQueue {
    /// Queues `buf`; false once the console is gone (or now cut off).
    fn push(&self, buf: &[u8]) -> bool {
        let mut p = lock(&self.pending);
        if p.closed {
            return false;
        }
        if p.bytes.len().saturating_add(buf.len()) > CLIENT_BACKLOG {
            p.closed = true;
            self.ready.notify_all();
            return false;
        }
        p.bytes.extend(buf);
        self.ready.notify_all();
        true
    }

    /// The writer thread: blocking writes of whatever is queued.
    fn drain_into(&self, mut out: UnixStream) {
        loop {
            let chunk: Vec<u8> = {
                let mut p = lock(&self.pending);
                while p.bytes.is_empty() && !p.closed && !p.finishing {
                    p = self.ready.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.closed || p.bytes.is_empty() {
                    break;
                }
                p.bytes.drain(..).collect()
            };
            if out.write_all(&chunk).is_err() {
                break;
            }
        }
        lock(&self.pending).closed = true;
        // Ends the console's input thread too, and tells the console.
        let _ = out.shutdown(std::net::Shutdown::Both);
    }

    /// The port is going away: the writer sends what is queued and ends.
    fn finish(&self) {
        lock(&self.pending).finishing = true;
        self.ready.notify_all();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        for c in &self.clients {
            c.finish();
        }
    }
}

impl Console {
    fn push(&mut self, buf: &[u8]) {
        self.total += buf.len() as u64;
        for &b in buf {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(b);
        }
        if let Some(f) = &mut self.log {
            let _ = f.write_all(buf);
        }
        // Queued, never written here: the vCPU must not wait for a console.
        self.clients.retain(|c| c.push(buf));
    }

    /// Adds a console: it gets the history first, then everything new, in
    /// order, from a writer thread of its own.
    fn attach(&mut self, client: UnixStream) -> io::Result<()> {
        let queue = Arc::new(ClientQueue::default());
        queue.push(&self.history());
        let writer = queue.clone();
        std::thread::Builder::new()
            .name("serial-output".into())
            .spawn(move || writer.drain_into(client))?;
        self.clients.push(queue);
        Ok(())
    }

    /// The port is done (its VM stopped): every console gets what is
    /// queued for it, then its end of file.
    pub fn close_clients(&mut self) {
        for c in self.clients.drain(..) {
            c.finish();
        }
    }

    /// What the guest printed most recently (up to [`HISTORY`] bytes).
    pub fn history(&self) -> Vec<u8> {
        self.history.iter().copied().collect()
    }
}

/// The writer given to vm-superio.
pub struct ConsoleWriter(Arc<Mutex<Console>>);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A 16550 whose interrupt is an irqfd and whose output goes to a [`Console`].
pub type Uart = vm_superio::Serial<EventFdTrigger, vm_superio::serial::NoEvents, ConsoleWriter>;

/// A 16550's registers and receive FIFO, for save and restore (the same
/// fields as vm-superio's `SerialState`, which is not serializable).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UartState {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    pub in_buffer: Vec<u8>,
}

/// The state of a port.
pub fn save_uart(uart: &Mutex<Uart>) -> UartState {
    let s = lock(uart).state();
    UartState {
        baud_divisor_low: s.baud_divisor_low,
        baud_divisor_high: s.baud_divisor_high,
        interrupt_enable: s.interrupt_enable,
        interrupt_identification: s.interrupt_identification,
        line_control: s.line_control,
        line_status: s.line_status,
        modem_control: s.modem_control,
        modem_status: s.modem_status,
        scratch: s.scratch,
        in_buffer: s.in_buffer,
    }
}

/// Load `state` into a port, keeping its interrupt and its output. A
/// receive FIFO longer than the 16550's is refused.
pub fn restore_uart(uart: &Mutex<Uart>, state: &UartState) -> io::Result<()> {
    let s = vm_superio::serial::SerialState {
        baud_divisor_low: state.baud_divisor_low,
        baud_divisor_high: state.baud_divisor_high,
        interrupt_enable: state.interrupt_enable,
        interrupt_identification: state.interrupt_identification,
        line_control: state.line_control,
        line_status: state.line_status,
        modem_control: state.modem_control,
        modem_status: state.modem_status,
        scratch: state.scratch,
        in_buffer: state.in_buffer.clone(),
    };
    let mut u = lock(uart);
    let irq = EventFdTrigger(u.interrupt_evt().0.try_clone()?);
    let out = ConsoleWriter(u.writer().0.clone());
    *u = vm_superio::Serial::from_state(&s, irq, vm_superio::serial::NoEvents, out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("serial state: {e:?}")))?;
    Ok(())
}

/// One serial port on the I/O bus.
pub struct SerialDevice {
    uart: Arc<Mutex<Uart>>,
    console: Arc<Mutex<Console>>,
    listeners: Unserved,
}

/// Sockets bound but not yet served; removed if dropped so (an error
/// while setting a port up, or a device never served).
#[derive(Default)]
struct Unserved(Vec<(UnixListener, PathBuf, SocketId)>);

impl Drop for Unserved {
    fn drop(&mut self) {
        for (_, path, id) in &self.0 {
            remove_own_socket(path, *id);
        }
    }
}

impl SerialDevice {
    /// A port whose interrupt is `irq` (an eventfd registered as irqfd),
    /// connected to every backend given (say, a log file and a socket).
    /// A socket path must be free and a log a regular file (or absent):
    /// nothing already on the host is removed, replaced or followed.
    pub fn new(irq: EventFd, backends: &[SerialBackend]) -> Result<SerialDevice, SerialError> {
        let console = Arc::new(Mutex::new(Console::default()));
        // A later backend's error removes the sockets already made.
        let mut listeners = Unserved(Vec::new());
        for backend in backends {
            match backend {
                SerialBackend::None => {}
                SerialBackend::LogFile(p) => {
                    lock(&console).log = Some(open_log(p)?);
                }
                SerialBackend::Socket(p) => {
                    let (listener, id) = bind_socket(p)?;
                    listeners.0.push((listener, p.clone(), id));
                }
            }
        }
        let uart = Arc::new(Mutex::new(vm_superio::Serial::new(
            EventFdTrigger(irq),
            ConsoleWriter(console.clone()),
        )));
        Ok(SerialDevice {
            uart,
            console,
            listeners: Unserved(std::mem::take(&mut listeners.0)),
        })
    }

    /// The output side (history, log).
    pub fn console(&self) -> Arc<Mutex<Console>> {
        self.console.clone()
    }

    /// Give bytes to the guest as if typed. While the receive FIFO is full
    /// this waits for the guest to drain it, up to [`INPUT_PATIENCE`]; a
    /// guest that does not read its port (or has it in loopback) loses the rest.
    pub fn input(uart: &Mutex<Uart>, mut bytes: &[u8]) {
        let mut waited = std::time::Duration::ZERO;
        while !bytes.is_empty() {
            let n = lock(uart).enqueue_raw_bytes(bytes).unwrap_or(0);
            bytes = bytes.get(n..).unwrap_or(&[]);
            if n == 0 {
                if waited >= INPUT_PATIENCE {
                    tracing::debug!(
                        dropped = bytes.len(),
                        "the guest is not reading its serial port"
                    );
                    return;
                }
                let step = std::time::Duration::from_millis(1);
                std::thread::sleep(step);
                waited += step;
            }
        }
    }

    /// Start serving the socket, if the port has one: accept consoles,
    /// replay the history to each, and feed what they type to the guest.
    /// The returned guard stops it and removes the socket.
    pub fn serve(&mut self) -> io::Result<Vec<SocketGuard>> {
        let mut guards = Vec::new();
        // One at a time: on an error the rest stay in `listeners`, whose
        // drop removes them.
        while !self.listeners.0.is_empty() {
            let (listener, path, id) = self.listeners.0.remove(0);
            guards.push(self.serve_one(listener, path, id)?);
        }
        Ok(guards)
    }

    fn serve_one(
        &self,
        listener: UnixListener,
        path: PathBuf,
        id: SocketId,
    ) -> io::Result<SocketGuard> {
        // The guard exists first so an error below still removes the socket.
        let guard = SocketGuard { listener, path, id };
        let accept = guard.listener.try_clone()?;
        let (uart, console) = (self.uart.clone(), self.console.clone());
        std::thread::Builder::new()
            .name("serial-accept".into())
            .spawn(move || {
                for client in accept.incoming() {
                    let Ok(client) = client else { break };
                    let Ok(reader) = client.try_clone() else {
                        continue;
                    };
                    if lock(&console).attach(client).is_err() {
                        continue;
                    }
                    let uart = uart.clone();
                    let _ = std::thread::Builder::new()
                        .name("serial-input".into())
                        .spawn(move || {
                            let mut reader = reader;
                            let mut buf = [0u8; 256];
                            while let Ok(n) = reader.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                SerialDevice::input(&uart, buf.get(..n).unwrap_or(&[]));
                            }
                        });
                }
            })?;
        Ok(guard)
    }

    /// The UART, for input from elsewhere and for save and restore.
    pub fn uart(&self) -> Arc<Mutex<Uart>> {
        self.uart.clone()
    }
}

/// Stops a port's socket: closes the listener and removes the socket file
/// if it is still the one bound (same device and inode).
pub struct SocketGuard {
    listener: UnixListener,
    path: PathBuf,
    id: SocketId,
}

impl SocketGuard {
    /// The socket's path and identity as bound: what a cleanup after a
    /// killed monitor may remove, and nothing else.
    pub fn path_and_id(&self) -> (&Path, SocketId) {
        (&self.path, self.id)
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        // Wakes the accept loop, which then ends.
        // SAFETY: shutdown only changes the socket's state; the fd is ours.
        unsafe {
            libc::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&self.listener),
                libc::SHUT_RDWR,
            );
        }
        remove_own_socket(&self.path, self.id);
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = lock(&self.uart).read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(&b) = data.first() {
            if let Err(e) = lock(&self.uart).write(offset as u8, b) {
                tracing::debug!("serial write: {e:?}");
            }
        }
    }
}

/// Connect to a port's socket as a console.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_s_registers_and_fifo_survive_save_and_restore() {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut a = SerialDevice::new(irq.try_clone().unwrap(), &[]).unwrap();
        // The guest programs the port: 8N1 (LCR 3), IER 1, scratch 0x5a.
        a.write(3, &[0x03]);
        a.write(1, &[0x01]);
        a.write(7, &[0x5a]);
        SerialDevice::input(&a.uart(), b"ab");
        let saved = save_uart(&a.uart());
        assert_eq!(
            (saved.line_control, saved.interrupt_enable, saved.scratch),
            (3, 1, 0x5a)
        );
        assert_eq!(saved.in_buffer, b"ab");

        let mut b = SerialDevice::new(irq.try_clone().unwrap(), &[]).unwrap();
        restore_uart(&b.uart(), &saved).unwrap();
        assert_eq!(save_uart(&b.uart()), saved);
        // The restored port behaves like the saved one: scratch, then the FIFO.
        let mut r = [0u8];
        b.read(7, &mut r);
        assert_eq!(r[0], 0x5a);
        b.read(0, &mut r);
        assert_eq!(r[0], b'a');

        let mut bad = saved.clone();
        bad.in_buffer = vec![0; 4096];
        assert!(
            restore_uart(&b.uart(), &bad).is_err(),
            "an overlong FIFO is refused"
        );
    }

    #[test]
    fn output_reaches_history_log_and_late_consoles_and_input_reaches_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("com1.sock");
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(
            irq.try_clone().unwrap(),
            &[SerialBackend::Socket(sock.clone())],
        )
        .unwrap();
        let _guard = dev.serve().unwrap();
        // The guest writes "hi" to THR (offset 0).
        dev.write(0, b"h");
        dev.write(0, b"i");
        let mut console = connect(&sock).unwrap();
        let mut got = [0u8; 2];
        console.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi", "history replayed to a late console");
        // Typing: the byte shows up in the receive buffer (offset 0, read).
        console.write_all(b"x").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut lsr = [0u8];
            dev.read(5, &mut lsr);
            if lsr[0] & 1 != 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "input never arrived");
            std::thread::yield_now();
        }
        let mut rbr = [0u8];
        dev.read(0, &mut rbr);
        assert_eq!(rbr[0], b'x');
        assert_eq!(lock(&dev.console()).history(), b"hi");
        let log = dir.path().join("com2.log");
        let mut dev2 = SerialDevice::new(irq, &[SerialBackend::LogFile(log.clone())]).unwrap();
        dev2.write(0, b"z");
        assert_eq!(std::fs::read(log).unwrap(), b"z");
    }

    /// A port serving a socket, with one console attached to it (the
    /// accept thread may lag the connect, so this waits for the attach).
    fn attached_console() -> (
        tempfile::TempDir,
        SerialDevice,
        Vec<SocketGuard>,
        UnixStream,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("com1.sock");
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(irq, &[SerialBackend::Socket(sock.clone())]).unwrap();
        let guard = dev.serve().unwrap();
        let console = connect(&sock).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while lock(&dev.console()).clients.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never attached");
            std::thread::yield_now();
        }
        (dir, dev, guard, console)
    }

    #[test]
    fn a_console_that_reads_late_gets_every_byte_in_order() {
        let (_dir, mut dev, _guard, mut console) = attached_console();
        // A guest writes a byte per THR write, far more one-byte sends than
        // a unix socket buffers, while the console is not reading.
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for b in &sent {
            dev.write(0, std::slice::from_ref(b));
        }
        // Lost bytes would leave read_exact waiting: fail instead of hanging.
        console
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut got = vec![0u8; sent.len()];
        console
            .read_exact(&mut got)
            .expect("every byte the guest wrote reaches the console");
        assert!(
            got == sent,
            "bytes lost or reordered on the way to a slow console"
        );
    }

    #[test]
    fn a_console_too_far_behind_is_cut_off_not_fed_holes() {
        let (_dir, dev, _guard, mut console) = attached_console();
        let first = vec![1u8; 1000];
        lock(&dev.console()).push(&first);
        // More than the backlog at once: this console is dropped.
        lock(&dev.console()).push(&vec![2u8; CLIENT_BACKLOG + 1]);
        assert!(lock(&dev.console()).clients.is_empty());
        // What it reads is an exact prefix of the output, then end of stream.
        let mut got = Vec::new();
        console.read_to_end(&mut got).unwrap();
        assert!(
            got.len() <= first.len() && got.iter().all(|&b| b == 1),
            "{} bytes",
            got.len()
        );
    }

    /// What identifies a file and its content: device, inode, type and
    /// mode, device number, and bytes (for regular files).
    fn fingerprint(p: &Path) -> (u64, u64, u32, u64, Vec<u8>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let bytes = if m.file_type().is_file() {
            std::fs::read(p).unwrap()
        } else {
            Vec::new()
        };
        (m.dev(), m.ino(), m.mode(), m.rdev(), bytes)
    }

    /// A temp dir holding one file of each kind a port's path may name.
    fn files_of_every_kind() -> (tempfile::TempDir, Vec<(&'static str, PathBuf)>) {
        use nix::sys::stat::{mknod, Mode, SFlag};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let regular = d.join("regular");
        std::fs::write(&regular, b"precious").unwrap();
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let symlink = d.join("symlink");
        std::os::unix::fs::symlink(&regular, &symlink).unwrap();
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        // A char device like /dev/null (1:3), made here, not the host's.
        let chardev = d.join("null");
        mknod(
            &chardev,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let subdir = d.join("dir");
        std::fs::create_dir(&subdir).unwrap();
        let files = vec![
            ("regular file", regular),
            ("FIFO", fifo),
            ("symlink", symlink),
            ("symlink", dangling),
            ("character device", chardev),
            ("directory", subdir),
        ];
        (dir, files)
    }

    #[test]
    fn a_socket_path_that_exists_is_refused_and_left_untouched() {
        let (dir, mut files) = files_of_every_kind();
        // Someone else's socket, live.
        let theirs = dir.path().join("theirs.sock");
        let _listener = UnixListener::bind(&theirs).unwrap();
        files.push(("socket", theirs));
        for (kind, path) in &files {
            let before = fingerprint(path);
            let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let e = SerialDevice::new(irq, &[SerialBackend::Socket(path.clone())])
                .err()
                .unwrap_or_else(|| panic!("a {kind} at the socket path was replaced"));
            let msg = e.to_string();
            assert!(
                matches!(e, SerialError::Exists { kind: k, .. } if k == *kind),
                "{kind}: {e:?}"
            );
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert_eq!(fingerprint(path), before, "the {kind} was touched");
        }
        assert_eq!(
            std::fs::read(dir.path().join("regular")).unwrap(),
            b"precious"
        );
    }

    #[test]
    fn a_log_path_that_is_not_a_regular_file_is_refused_untouched_and_at_once() {
        let (dir, files) = files_of_every_kind();
        for (kind, path) in files.into_iter().filter(|(k, _)| *k != "regular file") {
            let before = fingerprint(&path);
            // Opening a FIFO for writing blocks until a reader comes: the
            // call runs on a thread so the test fails rather than hangs.
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || {
                let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
                let r = SerialDevice::new(irq, &[SerialBackend::LogFile(p)]).map(|_| ());
                let _ = tx.send(r);
            });
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("opening a {kind} as a log blocked"));
            let e = r
                .err()
                .unwrap_or_else(|| panic!("a {kind} was opened as a log"));
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "{kind}: {e}"
            );
            assert_eq!(fingerprint(&path), before, "the {kind} was touched");
        }
        // The symlink's target was not appended to.
        assert_eq!(
            std::fs::read(dir.path().join("regular")).unwrap(),
            b"precious"
        );
        assert!(
            !dir.path().join("nowhere").exists(),
            "a dangling symlink was followed"
        );
    }

    #[test]
    fn a_new_log_is_private_and_an_existing_one_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("new.log");
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(
            irq.try_clone().unwrap(),
            &[SerialBackend::LogFile(log.clone())],
        )
        .unwrap();
        dev.write(0, b"a");
        assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
        drop(dev);
        let mut dev = SerialDevice::new(irq, &[SerialBackend::LogFile(log.clone())]).unwrap();
        dev.write(0, b"b");
        assert_eq!(std::fs::read(&log).unwrap(), b"ab");
    }

    #[test]
    fn the_socket_made_is_removed_when_done_but_not_a_file_that_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();

        // Served, then stopped: removed.
        let sock = dir.path().join("a.sock");
        let mut dev = SerialDevice::new(
            irq.try_clone().unwrap(),
            &[SerialBackend::Socket(sock.clone())],
        )
        .unwrap();
        let guards = dev.serve().unwrap();
        assert!(std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket());
        drop(guards);
        assert!(!sock.exists(), "the port's own socket stayed");

        // Never served (setup failed later): removed too.
        let sock = dir.path().join("b.sock");
        let dev = SerialDevice::new(
            irq.try_clone().unwrap(),
            &[SerialBackend::Socket(sock.clone())],
        )
        .unwrap();
        drop(dev);
        assert!(!sock.exists(), "an unserved socket stayed");

        // A later backend's error removes the socket already made.
        let sock = dir.path().join("c.sock");
        let taken = dir.path().join("taken");
        std::fs::write(&taken, b"x").unwrap();
        let r = SerialDevice::new(
            irq.try_clone().unwrap(),
            &[
                SerialBackend::Socket(sock.clone()),
                SerialBackend::Socket(taken.clone()),
            ],
        );
        assert!(r.is_err());
        assert!(
            !sock.exists(),
            "the first port socket stayed after an error"
        );
        assert_eq!(std::fs::read(&taken).unwrap(), b"x");

        // Replaced while the port runs, by a file and by another socket:
        // what replaced it stays.
        for replacement in ["file", "socket"] {
            let sock = dir.path().join(format!("d-{replacement}.sock"));
            let mut dev = SerialDevice::new(
                irq.try_clone().unwrap(),
                &[SerialBackend::Socket(sock.clone())],
            )
            .unwrap();
            let guards = dev.serve().unwrap();
            std::fs::remove_file(&sock).unwrap();
            let _other = if replacement == "file" {
                std::fs::write(&sock, b"someone else's").unwrap();
                None
            } else {
                Some(UnixListener::bind(&sock).unwrap())
            };
            let before = fingerprint(&sock);
            drop(guards);
            drop(dev);
            assert_eq!(
                fingerprint(&sock),
                before,
                "the replacing {replacement} was removed"
            );
        }
    }
}
