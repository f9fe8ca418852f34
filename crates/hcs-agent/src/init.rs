//! PID 1 duties in the guest: mounts, kernel modules, host name, and
//! power-off. PID 1 must never exit (the kernel panics), so every fatal
//! path ends in [`power_off`].

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use hcs_agent_protocol::ShutdownAction;
use nix::mount::MsFlags;
use nix::sys::reboot::RebootMode;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::server::Agent;
use crate::transport::Transport;

/// Kernel modules to load, one `.ko` path per line, in dependency order.
pub const MODULES_FILE: &str = "/etc/hcs-agent/modules";
/// Host name used when the image has no /etc/hostname.
pub const DEFAULT_HOSTNAME: &str = "hcs-guest";

/// Is this process the system's (or its pid namespace's) init?
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// What an initramfs needs, in order (/dev before /dev/pts).
const MOUNTS: [MountSpec; 7] = [
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0620,ptmxmode=0666",
    },
    MountSpec {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=0755",
    },
];

fn mount_all() {
    for m in &MOUNTS {
        let _ = std::fs::create_dir_all(m.target);
        let data = (!m.data.is_empty()).then_some(m.data);
        match nix::mount::mount(Some(m.source), m.target, Some(m.fstype), m.flags, data) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => crate::log!("mount {} on {}: {e}", m.fstype, m.target),
        }
    }
}

/// Loads each module listed in `list` with `finit_module`, in order,
/// logging each. A module already loaded (EEXIST) counts as loaded.
pub fn load_modules(list: &Path) {
    let Ok(text) = std::fs::read_to_string(list) else {
        crate::log!("no module list at {}", list.display());
        return;
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match load_module(Path::new(line)) {
            Ok(()) => crate::log!("loaded module {line}"),
            Err(e) => crate::log!("module {line}: {e}"),
        }
    }
}

fn load_module(path: &Path) -> std::io::Result<()> {
    let file = File::open(path)?;
    let params = c"";
    // SAFETY: finit_module reads the open module file and the NUL-terminated
    // (empty) parameter string; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Ok(());
    }
    Err(err)
}

/// Environment variable naming the host name. The kernel passes unknown
/// `NAME=value` command-line parameters to init as environment, so the host
/// can set it with `HCS_HOSTNAME=<name>` on the kernel command line.
pub const HOSTNAME_ENV: &str = "HCS_HOSTNAME";

/// Sets the host name from [`HOSTNAME_ENV`], else /etc/hostname, else
/// [`DEFAULT_HOSTNAME`].
fn set_hostname() {
    let from_env = std::env::var(HOSTNAME_ENV).unwrap_or_default();
    let from_file = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name = [from_env.trim(), from_file.trim()]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or(DEFAULT_HOSTNAME);
    if let Err(e) = nix::unistd::sethostname(name) {
        crate::log!("sethostname({name}): {e}");
    }
}

/// Runs the guest: PID 1 set-up, then the agent (over vsock in a guest;
/// over a unix socket directory when testing in a pid namespace). Never
/// returns: a fatal error powers off.
pub fn run(transport: Transport) -> ! {
    if !is_pid1() {
        crate::log!("--init needs to run as PID 1");
        #[allow(
            clippy::exit,
            reason = "the `--init` entry point refusing to run: nothing to unwind"
        )]
        std::process::exit(2);
    }
    // A panic in a worker thread ends that thread only; one in the main
    // thread would end PID 1, so that one powers off.
    std::panic::set_hook(Box::new(|info| {
        let main = std::thread::current().name() == Some("main");
        crate::log!("panic: {info}{}", if main { "; powering off" } else { "" });
        if main {
            power_off(ShutdownAction::PowerOff);
        }
    }));
    mount_all();
    // Without /dev/console in the initramfs the kernel starts init with no
    // descriptors; now that devtmpfs is mounted, give it the console.
    crate::spawn::fill_standard_fds(Path::new("/dev/console"));
    crate::spawn::ensure_standard_fds();
    // In a guest, log to the kernel log too (not when testing on a host).
    if matches!(transport, Transport::Vsock { .. }) {
        crate::log::enable_kmsg();
    }
    crate::log!("{} starting as init", crate::server::AGENT_NAME);
    load_modules(Path::new(MODULES_FILE));
    set_hostname();
    if matches!(transport, Transport::Vsock { .. }) {
        crate::power_button::watch();
        // HcsCrashComputeSystem injects an NMI: the guest must panic on it
        // (and report through pvpanic), as Windows bug-checks.
        if let Err(e) = std::fs::write("/proc/sys/kernel/unknown_nmi_panic", "1") {
            crate::log!("kernel.unknown_nmi_panic: {e}");
        }
    }
    let agent = Agent::new(transport.clone(), true);
    match transport {
        Transport::Vsock { cid, control_port } => agent.serve_vsock(cid, control_port),
        Transport::Unix(dir) => {
            if let Err(e) = agent.serve_unix(&dir) {
                crate::log!("fatal: {e}; powering off");
            }
            power_off(ShutdownAction::PowerOff)
        }
    }
}

/// Syncs, stops every process (SIGTERM, then SIGKILL after 2 s), syncs
/// again and powers off or reboots. Only as PID 1; otherwise it exits.
pub fn power_off(action: ShutdownAction) -> ! {
    if !is_pid1() {
        // Never signal "every process" outside our own guest.
        #[allow(
            clippy::exit,
            reason = "power_off never returns; outside a guest it only ends us"
        )]
        std::process::exit(1);
    }
    nix::unistd::sync();
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    // The reaper thread collects the children; wait until none is left.
    while Instant::now() < deadline && has_other_processes() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    nix::unistd::sync();
    let mode = match action {
        ShutdownAction::PowerOff => RebootMode::RB_POWER_OFF,
        ShutdownAction::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let Err(e) = nix::sys::reboot::reboot(mode);
    crate::log!("reboot({mode:?}): {e}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Are there user processes other than us? (Kernel threads have no cmdline.)
fn has_other_processes() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != 1)
        .any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| !c.is_empty())
                .unwrap_or(false)
        })
}
