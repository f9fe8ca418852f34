//! The HCS test guest, for VMM tests on machines whose KVM cannot boot Linux.
//!
//! `build.rs` builds `guest/test-guest` (a `#![no_std]` 64-bit kernel; see
//! its README.md) for bare metal, checks the linked ELF with the post-link
//! [`gate`] and leaves it at [`TEST_GUEST_ELF`].
//!
//! # Boot contract
//! Linux's 64-bit boot protocol, the path a bzImage takes: load the ELF's
//! PT_LOAD at its physical address (0x200000; the file has no PVH note),
//! enter its entry point in long mode with RSI = the zero page
//! (`struct boot_params`, 0x7000), the first GiB identity-mapped with 2 MiB
//! pages, CS = 0x08, DS/ES/SS = 0x10, RSP = 0x8ff0, IF = 0. The guest reads
//! `cmd_line_ptr` (0x228) and `acpi_rsdp_addr` (0x070) from the zero page
//! (falling back to a scan of 0xe0000..0x100000 for the RSDP) and everything
//! else from the ACPI tables.
//!
//! # Console protocol
//! On the first PNP0501 of the DSDT (else 0x3f8), `\n`-terminated lines. At
//! boot: zero or more diagnostic lines (`ACPI <SIG> <problem>`,
//! `NOT FOUND <what>`, `PARSE FAULT …`), then one [`READY_PREFIX`] line (see
//! [`Ready`]). Then it answers one command per line (`\n` or `\r`); see
//! [`commands`].

use std::path::PathBuf;

pub mod bzimage;
pub mod gate;

/// Path of the test guest ELF built by this crate's build script.
pub const TEST_GUEST_ELF: &str = concat!(env!("OUT_DIR"), "/hcs-test-guest.elf");

/// The same guest built with a PVH note and 32-bit entry stub (cargo
/// feature `pvh`), for VMMs that boot ELF kernels only through PVH, such
/// as QEMU's microvm; the benchmarks boot it under every VMM.
pub const TEST_GUEST_PVH_ELF: &str = concat!(env!("OUT_DIR"), "/hcs-test-guest-pvh.elf");

/// The plain guest wrapped as a bzImage (see [`bzimage`]): boots through
/// the bzImage path of the 64-bit boot protocol.
pub const TEST_GUEST_BZIMAGE: &str = concat!(env!("OUT_DIR"), "/hcs-test-guest.bzImage");

/// The gate's one-line summary for [`TEST_GUEST_ELF`] (the build fails unless it passed).
pub const GATE_SUMMARY: &str = include_str!(concat!(env!("OUT_DIR"), "/gate.txt"));

/// Path of the test guest ELF built by this crate's build script.
pub fn test_guest_elf() -> PathBuf {
    PathBuf::from(TEST_GUEST_ELF)
}

/// Start of the line the guest prints once it is fully set up.
pub const READY_PREFIX: &str = "HCS-TEST-GUEST READY";

/// The commands the guest understands and the lines it answers with.
pub mod commands {
    /// `echo <text>` → `<text>`.
    pub const ECHO: &str = "echo";
    /// `ticks` → `TICKS <decimal count of 100 Hz LAPIC timer ticks>`.
    pub const TICKS: &str = "ticks";
    /// `irqs` → `IRQS timer=<n> serial=<n> ged=<n>` (interrupts taken per source).
    pub const IRQS: &str = "irqs";
    /// `cpus` → `CPUS <enabled Local APICs in the MADT>`.
    pub const CPUS: &str = "cpus";
    /// `devices` → `DEV <hid> io=<0xhex|-> mem=<0xhex|-> irq=<decimal|->` per DSDT
    /// device with a `_HID`, then `END`.
    pub const DEVICES: &str = "devices";
    /// `cmdline` → `CMDLINE <kernel command line>`.
    pub const CMDLINE: &str = "cmdline";
    /// `poweroff` → `POWEROFF`, then S5 through the FADT sleep control register
    /// (`SLP_TYP << 2 | SLP_EN`), then halts.
    pub const POWEROFF: &str = "poweroff";
    /// `reset` → `RESET`, then 0xFE to port 0x64 (i8042 reset pulse).
    pub const RESET: &str = "reset";
    /// `acpireset` → `RESET`, then RESET_VALUE to the FADT RESET_REG.
    pub const ACPI_RESET: &str = "acpireset";
    /// `triplefault` → `TRIPLE FAULT`, then an empty IDT and `ud2`.
    pub const TRIPLE_FAULT: &str = "triplefault";
    /// `badinsn` → `BAD INSTRUCTION`, then `xorps` at CPL0 (a KVM internal
    /// error on kvm_pvm).
    pub const BAD_INSN: &str = "badinsn";
    /// `panic` → `PANIC`, then 1 to the pvpanic port, then halts with IF = 0.
    pub const PANIC: &str = "panic";
    /// `stray` → reads and writes port 0x333 and MMIO 0xc0000000, which no
    /// device claims, then `STRAY io=<0xhex> mem=<0xhex>` (the values read).
    pub const STRAY: &str = "stray";
    /// `hang` → `HANG`, then `cli; hlt` forever (ignores the power button).
    pub const HANG: &str = "hang";
    /// `agent` → starts the guest agent (also started at boot by the kernel
    /// command line word [`AGENT_CMDLINE`]): the first `LNRO0005` device whose
    /// DeviceID is 19 (virtio-vsock, virtio-mmio version 2) is driven from
    /// ring 3, its interrupt routed to vector 35; the agent connects to host
    /// CID 2, port `hcs_agent_protocol::AGENT_CONTROL_PORT` (0x4843) and
    /// speaks hcs-agent-protocol as `hcs-agent --vsock` does, with built-in
    /// programs chosen by `args[0]`'s last path component: `echo ARGS…`
    /// (args joined by spaces, `\n`, then each env entry and `\n`, to stdout),
    /// `cat` (stdin to stdout until the host closes stdin), `exit N`
    /// (`N mod 256`), `true`, `false`, `sleep MS` (10 ms ticks), `touch MIB`
    /// (writes every 4 KiB page of MIB MiB from 16 MiB up, then `ok\n`; exit 1
    /// and `touch: only <n> MiB of memory to touch` on stderr if RAM is
    /// short), `sector read LBA` (the 512 bytes to stdout) and `sector write
    /// LBA` (writes `HCS-SECTOR <lba>\n` over the bytes `offset & 0xff`, then
    /// `ok\n`) on the first virtio-blk device; errors go to stderr as
    /// `sector: <why>` with exit 1. Anything else is answered like a missing
    /// executable (`ERROR_FILE_NOT_FOUND`). A signal other than 17, 18, 23, 28
    /// ends a program with `128 + signal`. Each stdio port of CreateProcess is
    /// a vsock connection the guest opens before `ProcessCreated`.
    /// Console lines: [`AGENT_STARTED_PREFIX`], then [`AGENT_CONNECTED_LINE`]
    /// each time the control connection is up; see the other `AGENT_*`.
    pub const AGENT: &str = "agent";
    /// `agent stop` → resets every vsock connection of the agent (RST), forgets
    /// its processes and stops it ([`AGENT_STOPPED_LINE`]); `agent` starts it
    /// again (`AGENT NOT RUNNING` if it was not running).
    pub const AGENT_STOP: &str = "agent stop";
    /// Kernel command line word that starts the agent right after READY.
    pub const AGENT_CMDLINE: &str = "hcs.agent=1";
    /// `AGENT STARTED cid=<guest CID>`: the vsock device is running.
    pub const AGENT_STARTED_PREFIX: &str = "AGENT STARTED cid=";
    /// The control connection is established (the host's Hello may still be on its way).
    pub const AGENT_CONNECTED_LINE: &str = "AGENT CONNECTED";
    /// The first connection attempt was refused; it retries (10 ms doubling to 1 s).
    pub const AGENT_WAITING_LINE: &str = "AGENT WAITING FOR HOST";
    /// The control connection was lost (reset or closed); it reconnects.
    pub const AGENT_DISCONNECTED_LINE: &str = "AGENT DISCONNECTED";
    /// The host asked for Shutdown; `Ok` is out; `POWEROFF` (or `RESET`) follows.
    pub const AGENT_SHUTDOWN_LINE: &str = "AGENT SHUTDOWN";
    /// After `agent stop`.
    pub const AGENT_STOPPED_LINE: &str = "AGENT STOPPED";
    /// `agent` while it runs.
    pub const AGENT_RUNNING_LINE: &str = "AGENT RUNNING";
    /// Failures that stop the agent: `AGENT NO VIRTIO DEVICE`, `AGENT NO VSOCK
    /// DEVICE`, `AGENT DEVICE FAILED <why>`, `AGENT FAULT vec=… err=… rip=… addr=…`
    /// (an exception in its ring-3 code), and `AGENT TRANSPORT RESET` (the
    /// device's event; every connection is dropped and the agent reconnects).
    pub const AGENT_FAILURE_PREFIX: &str = "AGENT ";
    /// Anything else → `UNKNOWN <line>`.
    pub const UNKNOWN_PREFIX: &str = "UNKNOWN ";
    /// GED event bit 0 (power button) → `POWER BUTTON`, then as `poweroff`.
    pub const POWER_BUTTON_LINE: &str = "POWER BUTTON";
    /// An NMI → `NMI`, then the crash path (`PANIC`, pvpanic, halt).
    pub const NMI_LINE: &str = "NMI";
}

/// The fields of the READY line:
/// `HCS-TEST-GUEST READY cpus=<n> com=<0xport> ged=<0xaddr>/<gsi>|none pvpanic=<0xport>|none virtio=<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub cpus: u32,
    pub com: u16,
    pub ged: Option<(u64, u32)>,
    pub pvpanic: Option<u16>,
    pub virtio: u32,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

impl Ready {
    /// Parses a READY line (surrounding whitespace and `\r` allowed).
    pub fn parse(line: &str) -> Option<Ready> {
        let rest = line.trim().strip_prefix(READY_PREFIX)?;
        let (mut cpus, mut com, mut ged, mut pvpanic, mut virtio) = (None, None, None, None, None);
        for field in rest.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "cpus" => cpus = Some(v.parse().ok()?),
                "com" => com = Some(u16::try_from(hex(v)?).ok()?),
                "ged" => {
                    ged = Some(if v == "none" {
                        None
                    } else {
                        let (a, g) = v.split_once('/')?;
                        Some((hex(a)?, g.parse().ok()?))
                    })
                }
                "pvpanic" => {
                    pvpanic = Some(if v == "none" {
                        None
                    } else {
                        Some(u16::try_from(hex(v)?).ok()?)
                    })
                }
                "virtio" => virtio = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(Ready {
            cpus: cpus?,
            com: com?,
            ged: ged?,
            pvpanic: pvpanic?,
            virtio: virtio?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ready_lines() {
        let r = Ready::parse(
            "HCS-TEST-GUEST READY cpus=2 com=0x3f8 ged=0xfeb00000/9 pvpanic=0x505 virtio=3\r",
        )
        .unwrap();
        assert_eq!(
            r,
            Ready {
                cpus: 2,
                com: 0x3f8,
                ged: Some((0xfeb0_0000, 9)),
                pvpanic: Some(0x505),
                virtio: 3
            }
        );
        let r =
            Ready::parse("HCS-TEST-GUEST READY cpus=1 com=0x2f8 ged=none pvpanic=none virtio=0")
                .unwrap();
        assert_eq!(r.ged, None);
        assert_eq!(r.pvpanic, None);
        assert!(Ready::parse("HCS-TEST-GUEST READY cpus=1").is_none());
        assert!(Ready::parse("hello").is_none());
    }

    #[test]
    fn gate_summary_says_pass() {
        assert!(GATE_SUMMARY.starts_with("gate pass"), "{GATE_SUMMARY}");
    }
}
