//! virtio-net under Linux's own driver (virtio_net, loaded by the guest
//! agent), on a tap device the test makes: the tap is attached by the VM
//! (NetworkAdapters' EndpointId) in L1's own network namespace and then moved
//! into a namespace of the test's, where a test thread that entered it with
//! setns(2) talks TCP to the guest both ways. One boot.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use hcs_integration_tests::linux_guest::{
    boot_to_agent, first_word, linux_vm_doc, pattern, retry, sh_ok, sha256_hex, shut_down,
};
use hcs_integration_tests::*;

const HOST_IP: &str = "10.213.0.1";
const GUEST_IP: &str = "10.213.0.2";
const MAC: &str = "00-15-5D-AB-CD-01";

/// iproute2's `ip` (busybox's, first in L1's PATH, has no netns or tuntap).
const IP: &str = "/usr/sbin/ip";

fn ip(args: &[&str]) {
    let out = Command::new(IP)
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tap device and a network namespace made for one test, removed
/// afterwards (the tap with the namespace, or on its own if it never moved).
struct TestNet {
    netns: String,
    tap: String,
}

impl TestNet {
    fn new() -> TestNet {
        let id = std::process::id();
        let net = TestNet {
            netns: format!("hcs-vmnet-{id}"),
            tap: format!("hcst{id}"),
        };
        ip(&["tuntap", "add", "dev", &net.tap, "mode", "tap"]);
        ip(&["netns", "add", &net.netns]);
        net
    }

    /// Move the tap into the namespace and give it HOST_IP there.
    fn move_tap(&self) {
        ip(&["link", "set", &self.tap, "netns", &self.netns]);
        let n = ["-n", self.netns.as_str()];
        ip(&[&n[..], &["link", "set", "lo", "up"]].concat());
        ip(&[
            &n[..],
            &["addr", "add", &format!("{HOST_IP}/24"), "dev", &self.tap],
        ]
        .concat());
        ip(&[&n[..], &["link", "set", &self.tap, "up"]].concat());
    }

    /// Run `f` on a thread that entered the namespace.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns into the test's network namespace");
            f()
        })
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new(IP)
            .args(["netns", "delete", &self.netns])
            .status();
        let _ = Command::new(IP)
            .args(["link", "delete", &self.tap])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn linux_talks_tcp_over_virtio_net_both_ways() {
    if !real_linux_guest_here("vm_linux_net::linux_talks_tcp_over_virtio_net_both_ways") {
        return;
    }
    let net = TestNet::new();
    let ns = unique_namespace("vmlinuxnet");
    let doc = linux_vm_doc(serde_json::json!({ "VirtualMachine": { "Devices": {
        "NetworkAdapters": { "nic0": { "EndpointId": net.tap, "MacAddress": MAC } }
    } } }));
    let (s, _console) = boot_to_agent(&ns, &doc);
    net.move_tap();

    // One virtio-net interface with the document's MAC; up with an address.
    let out = sh_ok(
        &s,
        &format!(
            "for i in /sys/class/net/*; do n=${{i##*/}}; [ $n = lo ] || echo $n $(cat $i/address) $(readlink $i/device/driver); done; \
             ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && ping -c 1 -W 10 {HOST_IP} >/dev/null && echo pinged"
        ),
    );
    let mut lines = out.lines();
    let nic = lines.next().unwrap_or_default();
    let fields: Vec<&str> = nic.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{out}");
    assert_eq!(fields[0], "eth0", "{out}");
    assert_eq!(fields[1], MAC.replace('-', ":").to_lowercase(), "{out}");
    assert!(fields[2].ends_with("/virtio_net"), "{out}");
    assert_eq!(lines.next(), Some("pinged"), "{out}");
    assert_eq!(lines.next(), None, "one interface besides lo: {out}");

    // Host to guest: a guest `nc -l`, the host connects (retrying until the
    // guest listens) and sends 4 MiB; the guest's sum of what it got.
    let to_guest = pattern(21, 4 << 20);
    let (p, info) = start_process(
        &s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "nc -l -p 7000 </dev/null | sha256sum"],
            "CreateStdOutPipe": true, "CreateStdErrPipe": true
        }),
    );
    let data = to_guest.clone();
    let started = std::time::Instant::now();
    let sender = net.run(move || {
        let addr: SocketAddr = format!("{GUEST_IP}:7000").parse().unwrap();
        let mut c = retry(
            "the guest's nc listening",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok(),
        );
        c.write_all(&data).expect("sending to the guest");
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("reading the guest's side");
        rest
    });
    let stdout = info.std_output;
    let stderr = info.std_error;
    let out = read_all(stdout);
    assert_eq!(exit_of(&p), 0, "{}", read_all(stderr));
    assert_eq!(sender.join().unwrap(), b"", "the guest sent nothing back");
    assert_eq!(
        first_word(&out),
        sha256_hex(&to_guest),
        "what the guest received"
    );
    eprintln!(
        "tcp: 4 MiB host to guest in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Guest to host: the host listens first; the guest makes 4 MiB of random
    // bytes, prints their sum and sends them.
    let started = std::time::Instant::now();
    let (listener_tx, listener_rx) = std::sync::mpsc::channel();
    let receiver = net.run(move || {
        let l = TcpListener::bind(format!("{HOST_IP}:7001")).expect("listening in the namespace");
        listener_tx.send(()).unwrap();
        let (mut c, peer) = l.accept().expect("the guest's connection");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("reading from the guest");
        (peer, got)
    });
    listener_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the host listener");
    let out = sh_ok(
        &s,
        &format!("head -c 4194304 /dev/urandom > /tmp/out && sha256sum /tmp/out && nc {HOST_IP} 7001 < /tmp/out"),
    );
    let (peer, got) = receiver.join().unwrap();
    assert_eq!(peer.ip().to_string(), GUEST_IP);
    assert_eq!(got.len(), 4 << 20);
    assert_eq!(sha256_hex(&got), first_word(&out), "what the host received");
    eprintln!(
        "tcp: 4 MiB guest to host (with making it) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let guest_sum = first_word(&out);

    // Both ways at once on one connection: the guest's nc sends /tmp/out
    // while the host sends 4 MiB of its own.
    let both = pattern(22, 4 << 20);
    let (p, info) = start_process(
        &s,
        serde_json::json!({
            "CommandArgs": ["/bin/sh", "-c", "nc -l -p 7002 </tmp/out | sha256sum"],
            "CreateStdOutPipe": true, "CreateStdErrPipe": true
        }),
    );
    let data = both.clone();
    let duplex = net.run(move || {
        let addr: SocketAddr = format!("{GUEST_IP}:7002").parse().unwrap();
        let c = retry(
            "the guest's nc listening",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok(),
        );
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&data)?;
            w.shutdown(Shutdown::Write)
        });
        let mut got = Vec::new();
        (&c).read_to_end(&mut got).expect("reading from the guest");
        writer.join().unwrap().expect("writing to the guest");
        got
    });
    let stdout = info.std_output;
    let stderr = info.std_error;
    let out = read_all(stdout);
    assert_eq!(exit_of(&p), 0, "{}", read_all(stderr));
    let got = duplex.join().unwrap();
    assert_eq!(
        first_word(&out),
        sha256_hex(&both),
        "what the guest received, both ways at once"
    );
    assert_eq!(
        sha256_hex(&got),
        guest_sum,
        "what the host received, both ways at once"
    );

    // Eight connections from the guest at once, 1 MiB each.
    let (listener_tx, listener_rx) = std::sync::mpsc::channel();
    let receiver = net.run(move || {
        let l = TcpListener::bind(format!("{HOST_IP}:7003")).expect("listening in the namespace");
        listener_tx.send(()).unwrap();
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (mut c, _) = l.accept().expect("a guest connection");
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    c.read_to_end(&mut got).map(|_| got)
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap().expect("reading from the guest"))
            .collect::<Vec<_>>()
    });
    listener_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the host listener");
    let out = sh_ok(
        &s,
        &format!(
            "head -c 1048576 /tmp/out > /tmp/o1 && sha256sum /tmp/o1 && \
             for i in 1 2 3 4 5 6 7 8; do nc {HOST_IP} 7003 < /tmp/o1 & pids=\"$pids $!\"; done; \
             for pid in $pids; do wait $pid || exit 2; done"
        ),
    );
    let sum = first_word(&out);
    let got = receiver.join().unwrap();
    assert_eq!(got.len(), 8);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.len(), 1 << 20, "connection {i}");
        assert_eq!(sha256_hex(g), sum, "connection {i}");
    }

    // The driver unloaded and loaded again: the device is reset and set up
    // anew, and works as before (same MAC, traffic both ways).
    let out = sh_ok(
        &s,
        &format!(
            "ip link set eth0 down && rmmod virtio_net && [ ! -e /sys/class/net/eth0 ] && \
             insmod $(find /lib/modules -name virtio_net.ko) && cat /sys/class/net/eth0/address && \
             ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && ping -c 1 -W 10 {HOST_IP} >/dev/null && echo pinged"
        ),
    );
    assert_eq!(
        out,
        format!("{}\npinged\n", MAC.replace('-', ":").to_lowercase())
    );
    let (listener_tx, listener_rx) = std::sync::mpsc::channel();
    let receiver = net.run(move || {
        let l = TcpListener::bind(format!("{HOST_IP}:7004")).expect("listening in the namespace");
        listener_tx.send(()).unwrap();
        let (mut c, _) = l.accept().expect("the guest's connection");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("reading from the guest");
        got
    });
    listener_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the host listener");
    let out = sh_ok(
        &s,
        &format!("sha256sum /tmp/o1 && nc {HOST_IP} 7004 < /tmp/o1"),
    );
    assert_eq!(
        sha256_hex(&receiver.join().unwrap()),
        first_word(&out),
        "after the reload"
    );

    shut_down(&s);
    drop(s);
    assert!(leftovers(&ns).is_empty());
}
