//! virtio descriptor chains through the request parsers of the block,
//! vsock and net devices, as a hostile guest driver would offer them.
//!
//! Input: `[device][flags][next_avail: u16][next_used: u16]`, then the
//! image of 64 KiB of guest memory at guest address 0 (zeros after the
//! input). The device's queues live in that memory at fixed places (queue
//! `k`: descriptor table at `k * 0x400`, available ring at `+0x100`, used
//! ring at `+0x200`, 16 entries each), so the fuzzer writes descriptor
//! tables, available rings and request buffers alike. `device` picks block
//! (a 64 KiB in-memory disk), vsock (a muxer on a socket in a private
//! directory, with one host listener for port 1024) or net (a socket pair
//! stands in for the tap; the last 4 KiB of memory also give the frames
//! the host sends). `flags`: bit 0 EVENT_IDX, bit 1 read-only disk, bit 2
//! start the queues at `next_avail` / `next_used` (as after a restore).
//! Nothing outside this process is touched.
#![no_main]

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hcs_virtio::net::{NetQueues, NetWorker, Tap};
use hcs_virtio::vsock::{VsockMuxer, VsockQueues};
use hcs_virtio::{Block, DeviceQueues, DiskImage, GuestMemoryMmap, Interrupt, VirtioDevice};
use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const MEM_SIZE: usize = 64 << 10;
const QUEUE_SIZE: u16 = 16;
const QUEUE_STRIDE: u64 = 0x400;
/// Where the net target's host frames are read from.
const HOST_FRAMES: usize = MEM_SIZE - 4096;
const GUEST_CID: u64 = 3;

struct Setup {
    event_idx: bool,
    read_only: bool,
    positions: Option<(u16, u16)>,
}

fn memory(image: &[u8]) -> GuestMemoryMmap {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory");
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0))
        .expect("image fits");
    mem
}

fn queue(k: u64, s: &Setup) -> Queue {
    let mut q = Queue::new(256).expect("queue");
    let base = k * QUEUE_STRIDE;
    q.set_size(QUEUE_SIZE);
    q.set_desc_table_address(Some(base as u32), Some(0));
    q.set_avail_ring_address(Some((base + 0x100) as u32), Some(0));
    q.set_used_ring_address(Some((base + 0x200) as u32), Some(0));
    q.set_event_idx(s.event_idx);
    if let Some((avail, used)) = s.positions {
        q.set_next_avail(avail);
        q.set_next_used(used);
    }
    q.set_ready(true);
    q
}

/// `HCS_FUZZ_DEBUG=1`: say what each input did (to check that the seeds
/// reach the devices' request handling).
fn debug() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HCS_FUZZ_DEBUG").is_some())
}

/// The used ring's index of queue `k`: how many chains the device returned.
fn used(mem: &GuestMemoryMmap, k: u64) -> u16 {
    mem.read_obj::<u16>(GuestAddress(k * QUEUE_STRIDE + 0x202))
        .unwrap_or(0)
}

fn interrupt() -> Arc<Interrupt> {
    Arc::new(Interrupt::new(|| Ok(())))
}

/// A private directory for the vsock sockets: `HCS_FUZZ_TMP` (scripts/fuzz.sh
/// points it into build/) or the system's temporary directory, per process.
fn socket_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("HCS_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let d = base.join(format!("hcs-fuzz-vsock-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("socket directory");
        d
    })
}

fn memfd_disk(read_only: bool) -> DiskImage {
    // SAFETY: the name is a NUL-terminated string literal.
    let fd = unsafe { libc::memfd_create(c"hcs-fuzz-disk".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    file.set_len(MEM_SIZE as u64).expect("memfd size");
    // The image is opened by path, as the VMM does.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    let disk = DiskImage::open(&path, read_only).expect("memfd disk");
    drop(file);
    disk
}

fn block(mem: GuestMemoryMmap, s: &Setup) {
    let check = mem.clone();
    let mut dev = Block::new(memfd_disk(s.read_only), "fuzz");
    dev.activate(DeviceQueues {
        mem,
        queues: vec![queue(0, s)],
        interrupt: interrupt(),
        acked_features: 0,
    })
    .expect("block activation");
    dev.queue_notify(0);
    if debug() {
        eprintln!("block: {} requests served", used(&check, 0));
    }
}

fn vsock(mem: GuestMemoryMmap, s: &Setup) {
    let check = mem.clone();
    let uds = socket_dir().join("vsock.sock");
    let mut port = uds.clone().into_os_string();
    port.push("_1024");
    let _ = std::fs::remove_file(&port);
    let listener = UnixListener::bind(&port).expect("host listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut muxer = VsockMuxer::new(GUEST_CID, &uds).expect("vsock muxer");
    muxer.attach(VsockQueues {
        mem,
        rx: queue(0, s),
        tx: queue(1, s),
        event: queue(2, s),
        interrupt: interrupt(),
    });
    muxer.process_tx();
    if debug() {
        eprintln!(
            "vsock: {} packets taken, {} connections",
            used(&check, 1),
            muxer.connection_count()
        );
    }
    // The host service answers whoever connected, then the muxer moves
    // that to the guest.
    let mut accepted = Vec::new();
    while let Ok((mut stream, _)) = listener.accept() {
        let _ = stream.set_nonblocking(true);
        let _ = stream.write(b"hello from the host\n");
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf);
        accepted.push(stream);
    }
    let _ = muxer.poll(Duration::ZERO);
    muxer.process_rx();
    muxer.process_tx();
    let accepted_n = accepted.len();
    drop(accepted);
    let _ = muxer.poll(Duration::ZERO);
    muxer.process_rx();
    if debug() {
        eprintln!("vsock: {} host connections, {} packets to the guest", accepted_n, used(&check, 0));
    }
    drop(muxer);
    let _ = std::fs::remove_file(&port);
}

fn net(mem: GuestMemoryMmap, image: &[u8], s: &Setup) {
    let (tap_end, host) = UnixDatagram::pair().expect("socket pair");
    host.set_nonblocking(true).expect("non-blocking");
    let tap = Tap::from_fd(OwnedFd::from(tap_end), "fuzz0").expect("tap");
    let mut worker = NetWorker::new(tap).expect("net worker");
    worker.attach(NetQueues {
        mem,
        rx: queue(0, s),
        tx: queue(1, s),
        interrupt: interrupt(),
    });
    worker.process_tx();
    // Frames from the host: [len: u16 LE][bytes], up to 4.
    let mut rest = image.get(HOST_FRAMES..).unwrap_or_default();
    for _ in 0..4 {
        if rest.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let _ = host.send(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    worker.process_rx();
    let mut buf = vec![0u8; 70_000];
    while host.recv(&mut buf).is_ok() {}
    if debug() {
        eprintln!("net: {:?}", worker.stats());
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let flags = data[1];
    let s = Setup {
        event_idx: flags & 1 != 0,
        read_only: flags & 2 != 0,
        positions: (flags & 4 != 0).then(|| {
            (
                u16::from_le_bytes([data[2], data[3]]),
                u16::from_le_bytes([data[4], data[5]]),
            )
        }),
    };
    let image = &data[6..];
    let mem = memory(image);
    let fds = hcs_fuzz::FdGuard::new();
    match data[0] % 3 {
        0 => block(mem, &s),
        1 => vsock(mem, &s),
        _ => net(mem, image, &s),
    }
    // Connections, sockets and disks of one input are all gone after it.
    fds.check();
});
