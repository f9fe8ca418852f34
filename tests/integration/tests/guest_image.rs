//! The real Linux guest image (scripts/build-guest-image.sh: Debian's cloud
//! kernel and an initramfs with the agent as /init, busybox and the virtio
//! and vsock modules) boots, checked under QEMU with pure TCG emulation:
//! /dev/kvm on these machines is kvm_pvm, which cannot boot Linux, but TCG
//! can (about 3 s to /init here). The agent must run as PID 1, mount,
//! load every module of /etc/hcs-agent/modules and try to connect to the
//! host over vsock. QEMU has no vsock device here (no vhost-vsock), so that
//! connection fails, which is expected: the test ends at the attempt.
//! `$HCS_GUEST_INITRD` replaces build/guest/initramfs.cpio.gz.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hcs_integration_tests::*;

/// Long enough for a loaded 2-core machine; an idle one needs about 3 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// QEMU, ended by its pid (SIGKILL to that process only) and reaped on drop.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A console line and when it arrived, counted from QEMU's spawn.
struct Line {
    at: Duration,
    text: String,
}

fn forward(
    from: impl Read + Send + 'static,
    prefix: &'static str,
    to: mpsc::Sender<(Instant, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if to
                .send((Instant::now(), format!("{prefix}{text}")))
                .is_err()
            {
                break;
            }
        }
    });
}

/// Whether `word` is in `text` with no letter, digit or `_` on either side
/// (`virtio` is not in `virtio_ring.ko`, `failover` not in `net_failover`).
fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(is_ident)
            && !text[i + word.len()..].chars().next().is_some_and(is_ident)
    })
}

/// Whether a log line reports a failure: an error word, or an errno name
/// (`ENOENT: ...`).
fn reports_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let words = [
        "fail",
        "error",
        "no such",
        "denied",
        "invalid",
        "not permitted",
        "unknown",
        "not supported",
        "not found",
        "exec format",
    ];
    words.iter().any(|w| lower.contains(w))
        || text.match_indices(": E").any(|(i, _)| {
            let name: String = text[i + 3..]
                .chars()
                .take_while(char::is_ascii_uppercase)
                .collect();
            name.len() >= 2
        })
}

/// The message of a kernel log line (`[    2.425720] text`), if it is one.
fn kernel_message(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('[')?;
    let (stamp, message) = rest.split_once("] ")?;
    stamp.trim().parse::<f64>().ok().map(|_| message)
}

fn is_vsock_connect(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("vsock") && lower.contains("connect")
}

#[test]
fn agent_boots_loads_modules_and_tries_vsock_under_qemu_tcg() {
    const TEST: &str = "guest_image::agent_boots_loads_modules_and_tries_vsock_under_qemu_tcg";
    let Some(qemu) = in_path("qemu-system-x86_64") else {
        skip(
            TEST,
            "qemu-system-x86_64 is not installed (Debian package qemu-system-x86, installed by scripts/install-deps.sh); \
             it boots the guest image with TCG, since kvm_pvm cannot boot Linux",
        );
        return;
    };
    let kernel = guest_kernel();
    let guest = repo().join("build/guest");
    let initrd = std::env::var_os("HCS_GUEST_INITRD")
        .map(PathBuf::from)
        .unwrap_or_else(|| guest.join("initramfs.cpio.gz"));
    assert!(
        initrd.is_file(),
        "{} is missing: run scripts/build-guest-image.sh first",
        initrd.display()
    );
    let modules: Vec<String> = std::fs::read_to_string(guest.join("initramfs.modules"))
        .expect("build/guest/initramfs.modules (scripts/build-guest-image.sh)")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        modules
            .iter()
            .any(|m| m.ends_with("/vmw_vsock_virtio_transport.ko")),
        "the image's module list has no vsock transport: {modules:?}"
    );

    let spawned = Instant::now();
    let mut child = Command::new(&qemu)
        .args([
            "-accel",
            "tcg",
            "-M",
            "pc",
            "-nodefaults",
            "-smp",
            "2",
            "-m",
            "512",
        ])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 reboot=k"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", qemu.display()));
    let (tx, rx) = mpsc::channel();
    forward(child.stdout.take().unwrap(), "", tx.clone());
    forward(child.stderr.take().unwrap(), "qemu stderr: ", tx);
    let qemu_child = Qemu(child);

    // Read the console until the agent tries vsock, QEMU exits, or time is up.
    let mut lines: Vec<Line> = Vec::new();
    let mut reached = false;
    let mut ended = "the test's timeout";
    let deadline = spawned + BOOT_TIMEOUT;
    while !reached {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, text)) => {
                let after_init = lines
                    .iter()
                    .any(|l| l.text.contains("Run /init as init process"));
                reached = after_init && is_vsock_connect(&text);
                lines.push(Line {
                    at: at - spawned,
                    text,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                ended = "QEMU's exit";
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let stopped = spawned.elapsed();
    drop(qemu_child);
    let console: String = lines
        .iter()
        .map(|l| format!("{:>8.3}s | {}\n", l.at.as_secs_f64(), l.text))
        .collect();
    let find = |from: usize, pred: &dyn Fn(&str) -> bool| {
        lines[from..]
            .iter()
            .position(|l| pred(&l.text))
            .map(|i| i + from)
    };

    // The kernel ran /init, as PID 1.
    let init = find(0, &|t| t.contains("Run /init as init process"))
        .unwrap_or_else(|| panic!("the kernel never ran /init:\n{console}"));
    // The agent got to its vsock connection before anything killed it.
    let connect = find(init, &is_vsock_connect).unwrap_or_else(|| {
        panic!(
            "the agent did not try to connect over vsock before {ended} ({:.1} s):\n{console}",
            stopped.as_secs_f64()
        )
    });
    if let Some(panic) = find(init, &|t| t.contains("Kernel panic")) {
        assert!(
            panic > connect,
            "the kernel panicked before the agent tried vsock:\n{console}"
        );
    }
    // It mounted its file systems: no mount failed, and either it says so
    // or its own lines come back through /dev/kmsg, which only the devtmpfs
    // it mounts on /dev provides (the image's /dev has console and null).
    let after_init = &lines[init..connect];
    let is_mount_line = |t: &str| t.to_ascii_lowercase().contains("mount");
    if let Some(l) = after_init
        .iter()
        .find(|l| is_mount_line(&l.text) && reports_failure(&l.text))
    {
        panic!("a mount failed: {}\n{console}", l.text);
    }
    let says_mounted = after_init.iter().any(|l| is_mount_line(&l.text));
    let via_kmsg = after_init.iter().any(|l| {
        kernel_message(&l.text).is_some_and(|m| {
            after_init
                .iter()
                .any(|o| kernel_message(&o.text).is_none() && o.text == m)
        })
    });
    assert!(
        says_mounted || via_kmsg,
        "no sign that /init mounted anything (no mount line, nothing of its own in the kernel log):\n{console}"
    );
    // It loaded every module of the list, in the list's order, before vsock,
    // and no line about a module says that loading it went wrong.
    let stems: Vec<&str> = modules
        .iter()
        .map(|m| m.rsplit('/').next().unwrap().trim_end_matches(".ko"))
        .collect();
    let mut at = init;
    for (module, stem) in modules.iter().zip(&stems) {
        let line = find(at, &|t| contains_word(t, stem))
            .unwrap_or_else(|| panic!("the agent did not log loading {module}:\n{console}"));
        assert!(
            line < connect,
            "{module} was loaded after the vsock attempt:\n{console}"
        );
        at = line;
    }
    for l in after_init {
        if !stems.iter().any(|s| contains_word(&l.text, s)) {
            continue;
        }
        let mut rest = l.text.clone();
        for s in &stems {
            rest = rest.replace(s, "");
        }
        assert!(
            !reports_failure(&rest),
            "a module did not load: {}\n{console}",
            l.text
        );
    }
    // The kernel's own word that vsock.ko is in.
    assert!(
        after_init
            .iter()
            .any(|l| l.text.contains("NET: Registered PF_VSOCK protocol family")),
        "the kernel did not register AF_VSOCK:\n{console}"
    );

    eprintln!(
        "guest image under QEMU TCG: /init at {:.2} s, {} modules loaded by {:.2} s, vsock connect attempt at {:.2} s",
        lines[init].at.as_secs_f64(),
        modules.len(),
        lines[at].at.as_secs_f64(),
        lines[connect].at.as_secs_f64()
    );
}
