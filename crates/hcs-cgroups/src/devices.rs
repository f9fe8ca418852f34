//! Device access rules: what device nodes the processes of a cgroup may
//! create (`mknod`), read and write. Without them a process holding
//! `CAP_MKNOD` can make a node for any host disk and open it.
//!
//! The rules are the OCI runtime spec's `linux.resources.devices`: applied
//! in order to a cgroup that starts denying everything, the last rule that
//! matches an access decides it. On cgroup v1 they are written to the
//! `devices` controller's `devices.deny` and `devices.allow` in that order;
//! on v2, which has no device controller, they are compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup (what runc
//! and crun do).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::CgroupError;

/// The kind of device a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Character and block devices (`a`).
    All,
    /// Character devices (`c`).
    Char,
    /// Block devices (`b`).
    Block,
}

/// Access bits, as BPF device programs number them.
pub mod access {
    /// Create a node (`m`).
    pub const MKNOD: u8 = 1;
    /// Open for reading (`r`).
    pub const READ: u8 = 2;
    /// Open for writing (`w`).
    pub const WRITE: u8 = 4;
    /// All three (`rwm`).
    pub const ALL: u8 = MKNOD | READ | WRITE;
}

/// One rule: allow or deny `access` to the devices of `kind` with these
/// numbers (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// Which kind of device.
    pub kind: DeviceKind,
    /// Major number, or any.
    pub major: Option<u32>,
    /// Minor number, or any.
    pub minor: Option<u32>,
    /// Bits of [`access`]; never 0.
    pub access: u8,
}

impl DeviceRule {
    /// Allow everything in `access` for one kind and number pair.
    pub const fn allow(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> Self {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The v1 line: `c 1:3 rwm`.
    fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let mut acc = String::new();
        for (bit, c) in [
            (access::READ, 'r'),
            (access::WRITE, 'w'),
            (access::MKNOD, 'm'),
        ] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        format!("{kind} {}:{} {acc}", num(self.major), num(self.minor))
    }

    /// Whether this rule covers an access of `access` bits to a device.
    fn matches(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// Whether `rules` let a process make an access of `access` bits to a
/// device: the last matching rule decides, and no match denies. The v2
/// program computes exactly this; the tests hold the two together.
pub fn allowed(rules: &[DeviceRule], kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_some_and(|r| r.allow)
}

/// Write `rules` into a v1 `devices` cgroup directory: everything denied
/// first, then each rule in order.
pub(crate) fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    crate::fsio::write_file(dir, "devices.deny", b"a")?;
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        crate::fsio::write_file(dir, file, r.v1_line().as_bytes())?;
    }
    Ok(())
}

// One eBPF instruction (struct bpf_insn): opcode, dst and src registers,
// offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from((src << 4) | (dst & 0xf)) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The device program for `rules` (struct bpf_cgroup_dev_ctx in r1:
/// `access_type` = access << 16 | type, then major, minor). The rules are
/// tried from the last to the first; the first that matches returns its
/// verdict, and none matching returns 0 (deny).
pub fn bpf_program(rules: &[DeviceRule]) -> Vec<u64> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),        // r2 = access_type
        insn(AND32_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16), // r3 = access
        insn(LDX_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_W, 5, 1, 8, 0),    // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<(u8, u8, u8, i32)> = Vec::new();
        match r.kind {
            DeviceKind::All => {}
            DeviceKind::Char => block.push((JNE_K, 2, 0, 2)),
            DeviceKind::Block => block.push((JNE_K, 2, 0, 1)),
        }
        if r.access != access::ALL {
            // The access asked for must be a subset of the rule's.
            block.push((MOV64_X, 1, 3, 0));
            block.push((AND32_K, 1, 0, i32::from(r.access)));
            block.push((JNE_X, 1, 3, 0));
        }
        if let Some(m) = r.major {
            block.push((JNE_K, 4, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push((JNE_K, 5, 0, m as i32));
        }
        let n = block.len();
        for (i, (code, dst, src, imm)) in block.into_iter().enumerate() {
            // A failed test jumps past the rest of the block and its two
            // verdict instructions.
            let is_jump = code == JNE_K || code == JNE_X;
            let off = if is_jump { (n - i - 1 + 2) as i16 } else { 0 };
            p.push(insn(code, dst, src, off, imm));
        }
        p.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if n == 0 {
            // It matches every access: what follows could never run, and
            // the verifier refuses unreachable instructions.
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the
/// rest of the 128 bytes the kernel reads stays zero.
#[repr(C, align(8))]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C, align(8))]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _rest: [u32; 11],
}

/// Load the device program for `rules` and attach it to the v2 cgroup
/// directory `dir`. It stays attached as long as the cgroup exists.
///
/// Written against the bpf(2) system call directly: the program is a dozen
/// instructions made here, and the eBPF crates (aya, libbpf-rs) bring an ELF
/// loader, BTF and a C toolchain for what is two system calls.
pub(crate) fn attach_v2(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let program = bpf_program(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 4096];
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    load.prog_name[..6].copy_from_slice(b"hcsdev");
    let bpf_error =
        |step: &'static str, source: std::io::Error, verifier: String| CgroupError::DeviceProgram {
            path: dir.to_path_buf(),
            step,
            verifier,
            source,
        };
    // SAFETY: `load` is a valid BPF_PROG_LOAD attribute whose pointers
    // (program, license, log) outlive the call; the size passed is its own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut load as *mut ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]).trim().to_string();
        let verifier = if verifier.is_empty() {
            verifier
        } else {
            format!("; {verifier}")
        };
        return Err(bpf_error("BPF_PROG_LOAD", e, verifier));
    }
    // SAFETY: a new descriptor the kernel just returned, owned by no one else.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup =
        std::fs::File::open(dir).map_err(|e| bpf_error("opening the cgroup", e, String::new()))?;
    let mut attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: `attach` is a valid BPF_PROG_ATTACH attribute naming two open
    // descriptors of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &mut attach as *mut ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if rc < 0 {
        return Err(bpf_error(
            "BPF_PROG_ATTACH",
            std::io::Error::last_os_error(),
            String::new(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: DeviceKind = DeviceKind::Char;
    const B: DeviceKind = DeviceKind::Block;

    /// An interpreter of the few instructions [`bpf_program`] uses, so the
    /// program is checked against [`allowed`] without a kernel.
    fn run(p: &[u64], kind: DeviceKind, major: u32, minor: u32, acc: u8) -> u64 {
        let ty: u64 = match kind {
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
            DeviceKind::All => unreachable!(),
        };
        let ctx = [
            (u64::from(acc) << 16) | ty,
            u64::from(major),
            u64::from(minor),
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let code = i as u8;
            let dst = ((i >> 8) & 0xf) as usize;
            let src = ((i >> 12) & 0xf) as usize;
            let off = (i >> 16) as u16 as i16;
            let imm = (i >> 32) as u32 as i32;
            pc += 1;
            match code {
                LDX_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[off as usize / 4];
                }
                AND32_K => r[dst] = u64::from(r[dst] as u32 & imm as u32),
                RSH32_K => r[dst] = u64::from((r[dst] as u32) >> imm),
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = imm as i64 as u64,
                JNE_K if r[dst] != imm as i64 as u64 => pc += off as usize,
                JNE_X if r[dst] != r[src] => pc += off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// Docker's default rules, then runc's defaults appended.
    fn docker_like() -> Vec<DeviceRule> {
        let deny = |kind, major, minor| DeviceRule {
            allow: false,
            kind,
            major,
            minor,
            access: access::ALL,
        };
        vec![
            deny(DeviceKind::All, None, None),
            DeviceRule::allow(C, Some(1), Some(5), access::ALL),
            DeviceRule::allow(C, Some(1), Some(3), access::ALL),
            DeviceRule::allow(C, None, None, access::MKNOD),
            DeviceRule::allow(B, None, None, access::MKNOD),
            DeviceRule::allow(C, Some(136), None, access::READ | access::WRITE),
            deny(C, Some(10), Some(229)),
            DeviceRule::allow(C, Some(10), Some(229), access::READ),
        ]
    }

    #[test]
    fn the_last_matching_rule_decides_and_nothing_matching_denies() {
        let rules = docker_like();
        assert!(allowed(&rules, C, 1, 3, access::READ | access::WRITE));
        assert!(
            allowed(&rules, B, 8, 0, access::MKNOD),
            "any node may be made"
        );
        assert!(
            !allowed(&rules, B, 8, 0, access::READ),
            "but a disk is not opened"
        );
        assert!(allowed(&rules, C, 136, 4, access::MKNOD), "c *:* m");
        assert!(!allowed(&rules, C, 1, 7, access::READ), "not in the list");
        assert!(allowed(&rules, C, 136, 4, access::WRITE));
        assert!(allowed(&rules, C, 10, 229, access::READ));
        assert!(!allowed(&rules, C, 10, 229, access::WRITE));
        assert!(!allowed(&[], C, 1, 3, access::READ));
    }

    #[test]
    fn the_program_decides_as_the_rules_do() {
        for rules in [docker_like(), vec![], docker_like()[..1].to_vec()] {
            let p = bpf_program(&rules);
            for kind in [C, B] {
                for (major, minor) in [(1, 3), (1, 5), (8, 0), (10, 229), (136, 0), (136, 77)] {
                    for acc in 1..=access::ALL {
                        let want = allowed(&rules, kind, major, minor, acc);
                        let got = run(&p, kind, major, minor, acc) == 1;
                        assert_eq!(
                            got, want,
                            "{kind:?} {major}:{minor} access {acc} in {rules:?}"
                        );
                    }
                }
            }
        }
    }

    /// Every instruction can run (the kernel's verifier refuses a program
    /// with one that cannot), and every jump lands inside the program.
    fn assert_all_reachable(p: &[u64]) {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(pc < p.len(), "a jump past the end");
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let code = p[pc] as u8;
            let off = (p[pc] >> 16) as u16 as i16;
            if code == EXIT {
                continue;
            }
            todo.push(pc + 1);
            if code == JNE_K || code == JNE_X {
                todo.push(pc + 1 + off as usize);
            }
        }
        let dead: Vec<usize> = (0..p.len()).filter(|i| !seen[*i]).collect();
        assert!(dead.is_empty(), "unreachable instructions {dead:?}");
    }

    #[test]
    fn every_instruction_is_reachable() {
        let deny_all = docker_like()[..1].to_vec();
        let allow_null = DeviceRule::allow(C, Some(1), Some(3), access::ALL);
        for rules in [
            vec![],
            deny_all.clone(),
            [deny_all.clone(), vec![allow_null]].concat(),
            [vec![allow_null], deny_all].concat(),
            docker_like(),
        ] {
            assert_all_reachable(&bpf_program(&rules));
        }
    }

    #[test]
    fn v1_lines_read_as_the_kernel_writes_them() {
        let r = docker_like();
        assert_eq!(r[0].v1_line(), "a *:* rwm");
        assert_eq!(r[1].v1_line(), "c 1:5 rwm");
        assert_eq!(r[4].v1_line(), "b *:* m");
        assert_eq!(r[5].v1_line(), "c 136:* rw");
    }
}
