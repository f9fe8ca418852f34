//! virtio-vsock under Linux's own driver (vmw_vsock_virtio_transport), past
//! the agent's own connections: many streams at once and large ones, opened
//! by the host (the hybrid socket's `CONNECT <port>` to a guest listener)
//! and by the guest (to a host listener at `<socket>_<port>`), every byte
//! echoed back by `hcs-agent vsock-echo` in the guest and compared. One boot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcs::{Process, System};
use hcs_integration_tests::linux_guest::{boot_to_agent, linux_vm_doc, pattern, retry, shut_down};
use hcs_integration_tests::*;

const MIB: usize = 1 << 20;

/// Connect to the guest's `port` through the hybrid vsock socket.
fn connect_guest(rundir: &Path, port: u32) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(rundir.join("vsock.sock"))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    // The reply line, byte by byte: what follows it is the guest's.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        if s.read(&mut b)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("closed after {:?}", String::from_utf8_lossy(&line)),
            ));
        }
        line.push(b[0]);
    }
    assert!(
        line.starts_with(b"OK "),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
    Ok(s)
}

/// Send `data` on `s` while reading the echo; true when every byte came
/// back in order and the stream then ended.
fn echo_roundtrip(s: UnixStream, data: Vec<u8>) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let len = data.len();
        let writer = std::thread::spawn(move || {
            w.write_all(&data)?;
            w.shutdown(Shutdown::Write)?;
            Ok::<Vec<u8>, std::io::Error>(data)
        });
        let mut back = Vec::with_capacity(len);
        let mut r = s;
        r.read_to_end(&mut back)
            .map_err(|e| format!("reading the echo: {e}"))?;
        let data = writer
            .join()
            .unwrap()
            .map_err(|e| format!("writing: {e}"))?;
        if back.len() != data.len() {
            return Err(format!("{} bytes echoed of {}", back.len(), data.len()));
        }
        match back.iter().zip(&data).position(|(a, b)| a != b) {
            Some(i) => Err(format!("the echo differs at byte {i}")),
            None => Ok(()),
        }
    })
}

/// Start `vsock-echo` in the guest; its process and stdout.
fn start_echo(s: &System, args: &[&str]) -> (Process, BufReader<std::fs::File>) {
    let mut argv = vec!["/init", "vsock-echo"];
    argv.extend_from_slice(args);
    let (p, info) = start_process(
        s,
        serde_json::json!({ "CommandArgs": argv, "CreateStdOutPipe": true }),
    );
    (
        p,
        BufReader::new(std::fs::File::from(info.std_output.expect("stdout"))),
    )
}

fn next_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reading vsock-echo's output");
    line.trim_end().to_string()
}

/// Run `count` echo round trips of `size` bytes each at once; the MiB/s
/// (both directions counted once).
fn all_at_once(streams: Vec<UnixStream>, size: usize, seed: u64) -> f64 {
    let start = Instant::now();
    let runs: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, c)| echo_roundtrip(c, pattern(seed + i as u64, size)))
        .collect();
    let n = runs.len();
    for (i, r) in runs.into_iter().enumerate() {
        if let Err(e) = r.join().unwrap() {
            panic!("connection {i} of {n}: {e}");
        }
    }
    (n * size) as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

#[test]
fn many_and_large_vsock_streams_both_ways() {
    if !real_linux_guest_here("vm_linux_vsock::many_and_large_vsock_streams_both_ways") {
        return;
    }
    let ns = unique_namespace("vmlinuxvsock");
    // Port 5003 (0x138b) is disabled in the service table: neither side
    // may connect to the other on it.
    let doc = linux_vm_doc(
        serde_json::json!({ "VirtualMachine": { "Devices": { "HvSocket": {
        "HvSocketConfig": { "ServiceTable": {
            "0000138b-facb-11e6-bd58-64006a7986d3": { "Disabled": true } } } } } } }),
    );
    let (s, _console) = boot_to_agent(&ns, &doc);
    let rundir: PathBuf = hcs_rundir::system_dir(&hcs_rundir::root(), &ns, "vm");
    // The agent is up once a process ran.
    let (p, mut out) = start_echo(&s, &["listen", "5000", "64"]);
    assert_eq!(next_line(&mut out), "listening");

    // A port nobody listens on: the guest resets, the host's socket closes
    // without an OK.
    let e = connect_guest(&rundir, 5999).expect_err("nothing listens on 5999");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");

    // The host opens 64 streams to the guest's listener, 512 KiB each way
    // on every one of them at once.
    let streams: Vec<UnixStream> = (0..64)
        .map(|_| connect_guest(&rundir, 5000).expect("connecting to the guest's port 5000"))
        .collect();
    let rate = all_at_once(streams, MIB / 2, 100);
    assert_eq!(
        next_line(&mut out),
        format!("echoed {} bytes on 64 connections", 32 * MIB)
    );
    assert_eq!(exit_of(&p), 0);
    eprintln!("vsock: 64 host-initiated streams, 32 MiB echoed at {rate:.1} MiB/s");

    // One long stream: 24 MiB through the guest's credit window many times.
    let (p, mut out) = start_echo(&s, &["listen", "5001", "1"]);
    assert_eq!(next_line(&mut out), "listening");
    let c = connect_guest(&rundir, 5001).expect("connecting to the guest's port 5001");
    let rate = all_at_once(vec![c], 24 * MIB, 200);
    assert_eq!(
        next_line(&mut out),
        format!("echoed {} bytes on 1 connections", 24 * MIB)
    );
    assert_eq!(exit_of(&p), 0);
    eprintln!("vsock: one host-initiated stream, 24 MiB echoed at {rate:.1} MiB/s");

    // The host walks away: four streams with 128 KiB sent and nothing read
    // are closed. The guest's echo must see them end (reset or closed)
    // rather than wait forever; the device goes on working (below).
    let (p, mut out) = start_echo(&s, &["listen", "5002", "4"]);
    assert_eq!(next_line(&mut out), "listening");
    for i in 0..4 {
        let mut c = connect_guest(&rundir, 5002).expect("connecting to the guest's port 5002");
        c.write_all(&pattern(400 + i, 128 * 1024)).expect("sending");
        drop(c);
    }
    let status = p.wait_for_exit(120_000).unwrap_or_else(|e| {
        panic!("vsock-echo did not end after the host closed its streams: {e}")
    });
    assert!(status.contains(r#""Exited":true"#), "{status}");

    // The guest opens 16 streams to a host listener (host port 6000 is
    // `<socket>_6000`).
    let listener = UnixListener::bind(rundir.join("vsock.sock_6000")).expect("host listener");
    listener.set_nonblocking(true).unwrap();
    let (p, mut out) = start_echo(&s, &["connect", "6000", "16"]);
    let mut streams = Vec::new();
    while streams.len() < 16 {
        let c = retry(
            "the guest's connections to host port 6000",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || listener.accept().ok(),
        )
        .0;
        c.set_nonblocking(false).unwrap();
        streams.push(c);
    }
    let rate = all_at_once(streams, 2 * MIB, 300);
    assert_eq!(
        next_line(&mut out),
        format!("echoed {} bytes on 16 connections", 32 * MIB)
    );
    assert_eq!(exit_of(&p), 0);
    eprintln!("vsock: 16 guest-initiated streams, 32 MiB echoed at {rate:.1} MiB/s");
    drop(listener);
    std::fs::remove_file(rundir.join("vsock.sock_6000")).unwrap();

    // The guest connects to a host port nobody listens on: refused at once.
    let (p, _out) = start_echo(&s, &["connect", "6999", "1"]);
    let status = p
        .wait_for_exit(60_000)
        .unwrap_or_else(|e| panic!("a refused guest connection did not end: {e}"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["ExitCode"], 1, "{status}");

    // The disabled port: the host's CONNECT is refused although the guest
    // listens, and the guest's connection is refused although the host does.
    let (listening, mut out) = start_echo(&s, &["listen", "5003", "1"]);
    assert_eq!(next_line(&mut out), "listening");
    let e = connect_guest(&rundir, 5003).expect_err("port 5003 is disabled");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    call(|op| listening.terminate(op, None)).expect("terminating the listener");
    assert_eq!(exit_of(&listening), 128 + 9);
    let host_side = UnixListener::bind(rundir.join("vsock.sock_5003")).expect("host listener");
    host_side.set_nonblocking(true).unwrap();
    let (p, _out) = start_echo(&s, &["connect", "5003", "1"]);
    let status = p
        .wait_for_exit(60_000)
        .unwrap_or_else(|e| panic!("a refused guest connection did not end: {e}"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["ExitCode"], 1, "{status}");
    assert!(
        host_side.accept().is_err(),
        "the guest got through to a disabled port"
    );
    drop(host_side);
    std::fs::remove_file(rundir.join("vsock.sock_5003")).unwrap();

    // And the agent still works after all that.
    let out = run(&s, &["/bin/echo", "still here"]);
    assert_eq!(out.stdout, "still here\n");

    shut_down(&s);
    drop(s);
    assert!(leftovers(&ns).is_empty());
}
