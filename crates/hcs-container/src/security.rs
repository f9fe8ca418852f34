//! Per-process security of OCI processes (`ProcessParameters.OciProcess`):
//! capabilities, rlimits, `noNewPrivileges`, umask, supplementary groups,
//! `oomScoreAdj`, and the container's seccomp profile.
//!
//! Everything is checked and prepared in the monitor: names are resolved,
//! subsets are checked, and the seccomp profile is compiled to a BPF program
//! by libseccomp. The forked child (see `spawn.rs`) must stay
//! async-signal-safe, so all it does with a [`ProcessSecurity`] is make raw
//! system calls with the prepared values: no allocation, no libseccomp.

use std::io::{Read, Seek};
use std::str::FromStr;
use std::sync::OnceLock;

use hcs_errors::{HResult, HcsError, HcsResult};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use nix::errno::Errno;
use oci_spec::runtime::{
    Capabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    Process,
};
use serde_json::Value;

/// Where the OCI process is in an HCS document; the prefix of error paths.
pub const OCI_PROCESS: &str = "OciProcess";

/// Where the container's seccomp profile is; the prefix of its error paths.
pub const OCI_SECCOMP: &str = "Container.OciSpecification.linux.seccomp";

/// The seccomp profile of a container described by an OCI spec with one.
pub fn container_seccomp(spec: &crate::spec::ContainerSpec) -> Option<&LinuxSeccomp> {
    spec.oci
        .as_ref()
        .and_then(|o| o.spec.linux().as_ref())
        .and_then(|l| l.seccomp().as_ref())
}

/// A set of capabilities as a bit mask: bit `n` is capability number `n`.
pub type CapMask = u64;

/// The five capability sets of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    /// Bounding set: everything else is dropped and can never come back.
    pub bounding: CapMask,
    /// Effective set.
    pub effective: CapMask,
    /// Permitted set.
    pub permitted: CapMask,
    /// Inheritable set.
    pub inheritable: CapMask,
    /// Ambient set (kept across exec by non-root users).
    pub ambient: CapMask,
}

impl CapabilitySets {
    /// The same `mask` in bounding, effective, permitted and inheritable,
    /// none ambient (what ordinary HCS processes get).
    pub fn uniform(mask: CapMask) -> CapabilitySets {
        CapabilitySets {
            bounding: mask,
            effective: mask,
            permitted: mask,
            inheritable: mask,
            ambient: 0,
        }
    }
}

/// One resource limit, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, ... (for messages).
    pub name: String,
    /// The `RLIMIT_*` number.
    pub resource: i32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// One BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// A seccomp profile compiled to a BPF program, ready for `seccomp(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProgram {
    filter: Vec<SockFilter>,
    flags: u32,
}

/// `seccomp(2)` operations and filter flags (linux/seccomp.h).
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
/// The kernel's limit on the length of a BPF program (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

impl SeccompProgram {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    /// Whether the program is empty (never true for a compiled profile).
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// Install the filter on the calling thread. Async-signal-safe: one
    /// system call on prepared memory. Without no_new_privs it needs
    /// CAP_SYS_ADMIN.
    pub(crate) fn install(&self) -> Result<(), Errno> {
        let prog = libc::sock_fprog {
            len: self.filter.len() as libc::c_ushort,
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `len` instructions laid out as
        // `struct sock_filter` (SockFilter is repr(C) with the same fields),
        // which live as long as `self`; the kernel copies them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }
}

/// What an OCI process asks for beyond argv, env, cwd and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSecurity {
    /// Capability sets (absent sets are empty, as in runc).
    pub capabilities: CapabilitySets,
    /// Resource limits, in the order given.
    pub rlimits: Vec<Rlimit>,
    /// `noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `user.umask` (0022 when absent, as runc); `None` keeps the monitor's.
    pub umask: Option<u32>,
    /// `user.additionalGids`: with `Some`, exactly these are the
    /// supplementary groups (runc's behaviour for an explicit `uid:gid`);
    /// `None` keeps the groups of the user in the container's /etc/group.
    pub additional_gids: Option<Vec<u32>>,
    /// `oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// What is written to /proc/self/oom_score_adj, prepared for the child.
    oom_score_adj_text: Vec<u8>,
    /// The container's seccomp filter.
    pub seccomp: Option<SeccompProgram>,
    /// Whether this came from an `OciProcess` (for the paths of messages).
    pub(crate) from_oci: bool,
}

fn invalid(path: &str, why: impl std::fmt::Display) -> HcsError {
    HcsError::invalid_arg(format!("{path}: {why}"))
}

fn unsupported(path: &str, why: impl std::fmt::Display) -> HcsError {
    HcsError::not_supported(format!("{path}: {why}"))
}

/// The number of capability `name` (`CAP_CHOWN`, ...), as the OCI spec
/// spells it; `None` when unknown.
pub fn capability_number(name: &str) -> Option<u8> {
    caps::Capability::from_str(name).ok().map(|c| c.index())
}

/// The name of capability number `n`, for messages.
pub fn capability_name(n: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == n)
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("capability {n}"))
}

/// The names of the capabilities in `mask`, for messages.
fn names(mask: CapMask) -> String {
    (0..64u8)
        .filter(|n| mask & (1 << n) != 0)
        .map(capability_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `RLIMIT_*` number of `name`; `None` when unknown.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    let r = match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    };
    Some(r as i32)
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u8 {
    static LAST: OnceLock<u8> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|n| *n < 64)
            // CAP_CHECKPOINT_RESTORE, the last one of Linux 5.9 and later.
            .unwrap_or(40)
    })
}

/// Every capability the running kernel knows.
pub fn all_caps() -> CapMask {
    let last = last_cap();
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// The calling process's permitted set.
pub fn own_permitted() -> HcsResult<CapMask> {
    let set = caps::read(None, caps::CapSet::Permitted).map_err(|e| {
        HcsError::new(
            HResult::E_FAIL,
            format!("reading the runtime's capabilities: {e}"),
        )
    })?;
    Ok(set.iter().fold(0, |m, c| m | (1u64 << c.index())))
}

/// `serde_json::from_value` of a clone, with `path` in the error.
macro_rules! typed {
    ($path:expr, $v:expr, $t:ty) => {
        serde_json::from_value::<$t>($v.clone()).map_err(|e| invalid(&$path, e))
    };
}

/// Check an `OciProcess` JSON object member by member, so that a bad value
/// is reported with its JSON path (`OciProcess.rlimits[0].type: ...`)
/// rather than as a bare serde message, and refuse what this runtime cannot
/// honour. Unknown members are ignored, as the OCI spec requires.
pub fn check_process_json(process: &Value, prefix: &str) -> HcsResult<()> {
    let obj = process.as_object().ok_or_else(|| {
        invalid(
            prefix,
            "is not a JSON object (an OCI runtime-spec `process`)",
        )
    })?;
    for (key, v) in obj {
        let path = format!("{prefix}.{key}");
        match key.as_str() {
            "terminal" => {
                typed!(path, v, Option<bool>)?;
            }
            "consoleSize" => {
                typed!(path, v, Option<oci_spec::runtime::Box>)?;
            }
            "args" => {
                for (i, a) in v.as_array().into_iter().flatten().enumerate() {
                    typed!(format!("{path}[{i}]"), a, String)?;
                }
                typed!(path, v, Option<Vec<String>>)?;
            }
            "env" => {
                for (i, e) in v.as_array().into_iter().flatten().enumerate() {
                    let p = format!("{path}[{i}]");
                    let e = typed!(p, e, String)?;
                    if !e.contains('=') || e.starts_with('=') {
                        return Err(invalid(&p, format!("{e:?} is not NAME=value")));
                    }
                }
                typed!(path, v, Option<Vec<String>>)?;
            }
            "cwd" => {
                let cwd = typed!(path, v, String)?;
                if !cwd.is_empty() && !cwd.starts_with('/') {
                    return Err(invalid(&path, format!("{cwd:?} is not an absolute path")));
                }
            }
            "user" => check_user_json(v, &path)?,
            "capabilities" => check_capabilities_json(v, &path)?,
            "rlimits" => {
                for (i, r) in v.as_array().into_iter().flatten().enumerate() {
                    let p = format!("{path}[{i}]");
                    match r.get("type") {
                        Some(Value::String(t)) if rlimit_resource(t).is_none() => {
                            return Err(invalid(
                                &format!("{p}.type"),
                                format!("unknown rlimit {t:?}"),
                            ))
                        }
                        Some(t) => {
                            typed!(format!("{p}.type"), t, String)?;
                        }
                        None => return Err(invalid(&p, "missing field `type`")),
                    }
                    for f in ["soft", "hard"] {
                        if let Some(x) = r.get(f) {
                            typed!(format!("{p}.{f}"), x, u64)?;
                        }
                    }
                    typed!(p, r, oci_spec::runtime::PosixRlimit)?;
                }
                typed!(path, v, Option<Vec<Value>>)?;
            }
            "noNewPrivileges" => {
                typed!(path, v, Option<bool>)?;
            }
            "oomScoreAdj" => {
                if let Some(n) = typed!(path, v, Option<i32>)? {
                    if !(-1000..=1000).contains(&n) {
                        return Err(invalid(&path, format!("{n} is outside -1000..1000")));
                    }
                }
            }
            "apparmorProfile" => {
                refuse_non_empty(&path, v, "AppArmor is not available on this host")?
            }
            "selinuxLabel" => refuse_non_empty(&path, v, "SELinux is not available on this host")?,
            "commandLine" => refuse_non_empty(
                &path,
                v,
                "is for Windows processes; Linux processes take `args`",
            )?,
            "ioPriority" | "scheduler" | "execCPUAffinity" if !v.is_null() => {
                return Err(unsupported(&path, "is not supported by this runtime yet"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuse a string member that is set (empty or null means unset).
fn refuse_non_empty(path: &str, v: &Value, why: &str) -> HcsResult<()> {
    if typed!(path, v, Option<String>)?
        .unwrap_or_default()
        .is_empty()
    {
        Ok(())
    } else {
        Err(unsupported(path, why))
    }
}

fn check_user_json(v: &Value, path: &str) -> HcsResult<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "is not a JSON object"))?;
    for (key, x) in obj {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "uid" | "gid" => {
                typed!(p, x, u32)?;
            }
            "umask" => {
                if let Some(m) = typed!(p, x, Option<u32>)? {
                    if m > 0o777 {
                        return Err(invalid(&p, format!("{m:#o} is not a file mode mask")));
                    }
                }
            }
            "additionalGids" => {
                for (i, g) in x.as_array().into_iter().flatten().enumerate() {
                    typed!(format!("{p}[{i}]"), g, u32)?;
                }
                typed!(p, x, Option<Vec<u32>>)?;
            }
            "username" => refuse_non_empty(
                &p,
                x,
                "is for Windows processes; Linux processes take `uid` and `gid`",
            )?,
            _ => {}
        }
    }
    typed!(path, v, oci_spec::runtime::User)?;
    Ok(())
}

/// The five sets' JSON names.
const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

fn check_capabilities_json(v: &Value, path: &str) -> HcsResult<()> {
    if v.is_null() {
        return Ok(());
    }
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "is not a JSON object"))?;
    for set in SETS {
        let Some(list) = obj.get(set).filter(|l| !l.is_null()) else {
            continue;
        };
        let p = format!("{path}.{set}");
        let list = list
            .as_array()
            .ok_or_else(|| invalid(&p, "is not an array of capability names"))?;
        for (i, c) in list.iter().enumerate() {
            let pi = format!("{p}[{i}]");
            let name = typed!(pi, c, String)?;
            if capability_number(&name).is_none() {
                return Err(invalid(&pi, format!("unknown capability {name:?}")));
            }
        }
    }
    Ok(())
}

/// A capability set of an OCI process as a mask, capabilities the running
/// kernel does not know left out (as runc does, with a warning).
fn mask_of(set: &Option<Capabilities>, path: &str) -> HcsResult<CapMask> {
    let mut mask = 0;
    for cap in set.iter().flatten() {
        // oci-spec accepts spellings like "chown"; its serialized name is canonical.
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let n = capability_number(&name)
            .ok_or_else(|| invalid(path, format!("unknown capability {name:?}")))?;
        if n > last_cap() {
            tracing::warn!("{path}: {name} is unknown to this kernel; ignored");
            continue;
        }
        mask |= 1 << n;
    }
    Ok(mask)
}

impl ProcessSecurity {
    /// Resolve and check the security part of an OCI `process`, compiling
    /// the container's seccomp profile when it has one. Paths in errors start
    /// at [`OCI_PROCESS`] and [`OCI_SECCOMP`].
    pub fn from_oci(
        process: &Process,
        seccomp: Option<&LinuxSeccomp>,
    ) -> HcsResult<ProcessSecurity> {
        let p = OCI_PROCESS;
        if !process
            .apparmor_profile()
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            return Err(unsupported(
                &format!("{p}.apparmorProfile"),
                "AppArmor is not available on this host",
            ));
        }
        if !process.selinux_label().as_deref().unwrap_or("").is_empty() {
            return Err(unsupported(
                &format!("{p}.selinuxLabel"),
                "SELinux is not available on this host",
            ));
        }
        // An absent capabilities object or set means an empty one, as in
        // runc (oci-spec's LinuxCapabilities::default() is not empty).
        let set = |name: &str| format!("{p}.capabilities.{name}");
        let caps = match process.capabilities() {
            None => CapabilitySets::default(),
            Some(c) => CapabilitySets {
                bounding: mask_of(c.bounding(), &set("bounding"))?,
                effective: mask_of(c.effective(), &set("effective"))?,
                permitted: mask_of(c.permitted(), &set("permitted"))?,
                inheritable: mask_of(c.inheritable(), &set("inheritable"))?,
                ambient: mask_of(c.ambient(), &set("ambient"))?,
            },
        };
        // What capset(2) and PR_CAP_AMBIENT_RAISE would refuse with a bare EPERM.
        let not_in = |name: &str, extra: CapMask, other: &str, why: &str| -> HcsResult<()> {
            if extra == 0 {
                return Ok(());
            }
            Err(invalid(
                &set(name),
                format!("{} not in capabilities.{other} ({why})", names(extra)),
            ))
        };
        not_in(
            "effective",
            caps.effective & !caps.permitted,
            "permitted",
            "only permitted capabilities can be effective",
        )?;
        not_in(
            "inheritable",
            caps.inheritable & !caps.bounding,
            "bounding",
            "the kernel adds no inheritable capability outside the bounding set",
        )?;
        // An ambient capability must be permitted and inheritable, or the
        // kernel refuses to raise it. runc only warns then, and its default
        // spec relies on that (ambient without inheritable): do the same.
        let unraisable = caps.ambient & !(caps.permitted & caps.inheritable);
        if unraisable != 0 {
            tracing::warn!(
                "{}: {} not permitted and inheritable, so not raised",
                set("ambient"),
                names(unraisable)
            );
        }
        let caps = CapabilitySets {
            ambient: caps.ambient & !unraisable,
            ..caps
        };

        let mut rlimits = Vec::new();
        for (i, r) in process.rlimits().iter().flatten().enumerate() {
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let path = format!("{p}.rlimits[{i}]");
            let resource = rlimit_resource(&name).ok_or_else(|| {
                invalid(&format!("{path}.type"), format!("unknown rlimit {name:?}"))
            })?;
            if r.soft() > r.hard() {
                return Err(invalid(
                    &path,
                    format!(
                        "{name}: the soft limit {} exceeds the hard limit {}",
                        r.soft(),
                        r.hard()
                    ),
                ));
            }
            rlimits.push(Rlimit {
                name,
                resource,
                soft: r.soft(),
                hard: r.hard(),
            });
        }

        let oom_score_adj = process.oom_score_adj();
        if let Some(n) = oom_score_adj {
            if !(-1000..=1000).contains(&n) {
                return Err(invalid(
                    &format!("{p}.oomScoreAdj"),
                    format!("{n} is outside -1000..1000"),
                ));
            }
        }
        let user = process.user();
        let umask = user.umask().unwrap_or(0o022);
        if umask > 0o777 {
            return Err(invalid(
                &format!("{p}.user.umask"),
                format!("{umask:#o} is not a file mode mask"),
            ));
        }
        let seccomp = seccomp.map(container_filter).transpose()?;
        Ok(ProcessSecurity {
            capabilities: caps,
            rlimits,
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            umask: Some(umask),
            additional_gids: Some(user.additional_gids().clone().unwrap_or_default()),
            oom_score_adj,
            oom_score_adj_text: oom_score_adj
                .map(|n| n.to_string().into_bytes())
                .unwrap_or_default(),
            seccomp,
            from_oci: true,
        })
    }

    /// What an ordinary (non-OCI) process of a container described by an
    /// OCI spec gets: the default capabilities, its user's groups, and the
    /// container's seccomp filter, so that no process of the container runs
    /// without it.
    pub fn defaults_with_seccomp(seccomp: &LinuxSeccomp) -> HcsResult<ProcessSecurity> {
        let default: CapMask = crate::spawn::DEFAULT_CAPABILITIES
            .iter()
            .fold(0, |m, c| m | (1 << c.index()));
        Ok(ProcessSecurity {
            capabilities: CapabilitySets::uniform(default & all_caps()),
            rlimits: Vec::new(),
            no_new_privileges: false,
            umask: None,
            additional_gids: None,
            oom_score_adj: None,
            oom_score_adj_text: Vec::new(),
            seccomp: Some(container_filter(seccomp)?),
            from_oci: false,
        })
    }

    /// Refuse capabilities the process could not be given because the
    /// runtime itself does not hold them (`own_permitted`; e.g. a host that
    /// withholds CAP_SYS_RESOURCE). Not for containers with a user
    /// namespace: joining it grants every capability inside.
    pub fn check_grantable(&self, own_permitted: CapMask) -> HcsResult<()> {
        let c = &self.capabilities;
        for (name, mask) in [
            ("effective", c.effective),
            ("permitted", c.permitted),
            ("inheritable", c.inheritable),
            ("ambient", c.ambient),
        ] {
            let missing = mask & !own_permitted;
            if missing != 0 {
                return Err(HcsError::new(
                    HResult::E_ACCESSDENIED,
                    format!(
                        "{OCI_PROCESS}.capabilities.{name}: {} not available: this host does not grant it to the container runtime",
                        names(missing)
                    ),
                ));
            }
        }
        Ok(())
    }

    // What follows runs in the forked child: async-signal-safe, no allocation.

    /// Set the rlimits; on failure, the index of the one that failed.
    pub(crate) fn set_rlimits(&self) -> Result<(), (usize, Errno)> {
        for (i, r) in self.rlimits.iter().enumerate() {
            let lim = libc::rlimit64 {
                rlim_cur: r.soft,
                rlim_max: r.hard,
            };
            // SAFETY: prlimit64 on ourselves (pid 0) reads `lim`, a valid
            // struct on our stack, and writes nothing (old limit pointer null).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    r.resource as libc::c_long,
                    &lim as *const libc::rlimit64,
                    std::ptr::null_mut::<libc::rlimit64>(),
                )
            };
            if rc != 0 {
                return Err((i, Errno::last()));
            }
        }
        Ok(())
    }

    /// Write `oomScoreAdj` to /proc/self/oom_score_adj (the host's /proc:
    /// call before entering the container's mount namespace).
    pub(crate) fn write_oom_score_adj(&self) -> Result<(), Errno> {
        if self.oom_score_adj.is_none() {
            return Ok(());
        }
        // SAFETY: a NUL-terminated literal path; the descriptor is ours.
        let fd = unsafe {
            libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        let text = &self.oom_score_adj_text;
        // SAFETY: writes `text.len()` bytes from a live buffer to our descriptor.
        let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
        let err = Errno::last();
        // SAFETY: closes the descriptor opened above, used by nothing else.
        unsafe { libc::close(fd) };
        if n == text.len() as isize {
            Ok(())
        } else {
            Err(if n < 0 { err } else { Errno::EIO })
        }
    }
}

// Capability system calls for the child: async-signal-safe, no allocation.

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, arg2: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: the prctl options used here take integer arguments only.
    let rc = unsafe { libc::prctl(option, arg, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Drop every capability up to `last` that is not in `keep` from the
/// bounding set (needs CAP_SETPCAP); on failure, the capability.
pub(crate) fn drop_bounding(keep: CapMask, last: u8) -> Result<(), (u8, Errno)> {
    for cap in 0..=last {
        if keep & (1 << cap) == 0 {
            prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0).map_err(|e| (cap, e))?;
        }
    }
    Ok(())
}

/// capset(2) of the effective, permitted and inheritable sets.
pub(crate) fn capset(sets: &CapabilitySets) -> Result<(), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |m: CapMask, i: usize| (m >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: half(sets.effective, i),
        permitted: half(sets.permitted, i),
        inheritable: half(sets.inheritable, i),
    });
    // SAFETY: a version-3 header and the two data words that version
    // takes, both on our stack; the kernel only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Raise every capability of `ambient` (each must be permitted and
/// inheritable); on failure, the capability.
pub(crate) fn raise_ambient(ambient: CapMask, last: u8) -> Result<(), (u8, Errno)> {
    for cap in 0..=last {
        if ambient & (1 << cap) != 0 {
            prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
            )
            .map_err(|e| (cap, e))?;
        }
    }
    Ok(())
}

/// PR_SET_KEEPCAPS: keep the permitted set through a change of uid.
pub(crate) fn set_keep_caps(keep: bool) -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong, 0)
}

/// PR_SET_NO_NEW_PRIVS.
pub(crate) fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
}

/// Set the umask.
pub(crate) fn set_umask(mask: u32) {
    // SAFETY: umask(2) cannot fail and touches no memory.
    unsafe { libc::umask(mask as libc::mode_t) };
}

// Seccomp: compiled in the monitor with libseccomp.

fn seccomp_err(path: &str, what: &str, e: libseccomp::error::SeccompError) -> HcsError {
    HcsError::new(HResult::E_INVALIDARG, format!("{path}: {what}: {e}"))
}

/// The libseccomp action of an OCI action; `errno` is `errnoRet`.
fn action(a: LinuxSeccompAction, errno: Option<u32>, path: &str) -> HcsResult<ScmpAction> {
    let ret = |errno: Option<u32>| -> HcsResult<u16> {
        let n = errno.unwrap_or(libc::EPERM as u32);
        u16::try_from(n).map_err(|_| invalid(path, format!("errnoRet {n} does not fit in 16 bits")))
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret(errno)?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(errno)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(unsupported(
                path,
                "SCMP_ACT_NOTIFY needs a seccomp agent listening on linux.seccomp.listenerPath; this runtime has none",
            ))
        }
    })
}

fn compare(op: LinuxSeccompOperator, value: u64) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` the value compared with.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// The container's seccomp profile compiled, once: a monitor serves one
/// container, whose profile every process (and the check at create) uses,
/// and compiling a few hundred rules costs about 2 ms each time. Keyed by
/// the profile itself, so a different one is never served from the cache.
fn container_filter(s: &LinuxSeccomp) -> HcsResult<SeccompProgram> {
    static LAST: std::sync::Mutex<Option<(String, SeccompProgram)>> = std::sync::Mutex::new(None);
    let key = serde_json::to_string(s).unwrap_or_default();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((k, program)) = last.as_ref() {
        if !key.is_empty() && *k == key {
            return Ok(program.clone());
        }
    }
    let program = compile_seccomp(s, OCI_SECCOMP)?;
    *last = Some((key, program.clone()));
    Ok(program)
}

/// Compile an OCI seccomp profile to a BPF program with libseccomp. `path`
/// names the profile in errors.
pub fn compile_seccomp(s: &LinuxSeccomp, path: &str) -> HcsResult<SeccompProgram> {
    if s.listener_path().is_some() {
        return Err(unsupported(
            &format!("{path}.listenerPath"),
            "seccomp agents (SCMP_ACT_NOTIFY) are not supported by this runtime",
        ));
    }
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        &format!("{path}.defaultAction"),
    )?;
    let mut ctx =
        ScmpFilterContext::new(default).map_err(|e| seccomp_err(path, "creating the filter", e))?;
    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        let p = format!("{path}.architectures[{i}]");
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let a = ScmpArch::from_str(&name)
            .map_err(|_| unsupported(&p, format!("{name} is not known to libseccomp")))?;
        ctx.add_arch(a)
            .map_err(|e| seccomp_err(&p, &format!("adding {name}"), e))?;
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // The child is single-threaded: synchronizing threads is a no-op.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            // Only meaningful for a notify listener, which is refused above;
            // the kernel rejects it without one.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        let p = format!("{path}.syscalls[{i}]");
        let act = action(call.action(), call.errno_ret(), &format!("{p}.action"))?;
        // libseccomp refuses a rule that repeats the default action; it
        // would change nothing anyway (runc skips it too).
        if act == default {
            continue;
        }
        let mut conditions = Vec::new();
        let mut per_index = [0usize; 6];
        for (j, arg) in call.args().iter().flatten().enumerate() {
            let index = arg.index();
            if index >= per_index.len() {
                return Err(invalid(
                    &format!("{p}.args[{j}].index"),
                    format!("{index} is not a system call argument (0 to 5)"),
                ));
            }
            per_index[index] += 1;
            let datum = match arg.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
                _ => arg.value(),
            };
            conditions.push(ScmpArgCompare::new(
                index as u32,
                compare(arg.op(), arg.value()),
                datum,
            ));
        }
        // libseccomp ANDs the conditions of a rule but cannot express two on
        // the same argument; runc then adds one rule per condition (an OR).
        let split = per_index.iter().any(|n| *n > 1);
        for name in call.names() {
            // Names this libseccomp does not know are skipped, as runc does,
            // so that profiles written for newer kernels still load.
            let Ok(nr) = libseccomp::ScmpSyscall::from_name(name) else {
                tracing::debug!("{p}: unknown system call {name:?} skipped");
                continue;
            };
            let added = if split {
                conditions
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(|_| ()))
            } else {
                ctx.add_rule_conditional(act, nr, &conditions).map(|_| ())
            };
            added.map_err(|e| seccomp_err(&p, &format!("adding the rule for {name}"), e))?;
        }
    }
    // libseccomp 2.5 exports to a descriptor only; a memfd holds any size.
    let fd = nix::sys::memfd::memfd_create(c"hcs-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| HcsError::from_io("creating a memfd", &std::io::Error::from(e)))?;
    ctx.export_bpf(&fd)
        .map_err(|e| seccomp_err(path, "exporting the filter", e))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| HcsError::from_io("reading the compiled seccomp filter", &e))?;
    let filter: Vec<SockFilter> = bytes
        .chunks_exact(8)
        .map(|b| SockFilter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    if filter.is_empty() || bytes.len() % 8 != 0 {
        return Err(HcsError::new(
            HResult::E_FAIL,
            format!(
                "{path}: libseccomp produced a malformed filter ({} bytes)",
                bytes.len()
            ),
        ));
    }
    if filter.len() > BPF_MAXINSNS {
        return Err(invalid(
            path,
            format!(
                "the compiled filter has {} instructions, more than the kernel's limit of {BPF_MAXINSNS}",
                filter.len()
            ),
        ));
    }
    Ok(SeccompProgram { filter, flags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seccomp(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("a seccomp profile")
    }

    fn process(v: Value) -> Process {
        serde_json::from_value(v).expect("an OCI process")
    }

    #[test]
    fn capability_and_rlimit_names() {
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("CAP_FOO"), None);
        assert_eq!(capability_number("chown"), None);
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
        assert_eq!(
            rlimit_resource("RLIMIT_NOFILE"),
            Some(libc::RLIMIT_NOFILE as i32)
        );
        assert_eq!(
            rlimit_resource("RLIMIT_RTTIME"),
            Some(libc::RLIMIT_RTTIME as i32)
        );
        assert_eq!(rlimit_resource("RLIMIT_FOO"), None);
    }

    #[test]
    fn json_errors_name_their_path() {
        let base = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"]});
        let check = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            check_process_json(&v, OCI_PROCESS).unwrap_err()
        };
        let e = check(
            json!({"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_FOO"]}}),
        );
        assert_eq!(e.hresult, HResult::E_INVALIDARG);
        assert_eq!(
            e.message,
            "OciProcess.capabilities.bounding[3]: unknown capability \"CAP_FOO\""
        );
        let e = check(json!({"rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]}));
        assert_eq!(
            e.message,
            "OciProcess.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""
        );
        let e = check(json!({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": "many", "hard": 1}]}));
        assert!(
            e.message
                .starts_with("OciProcess.rlimits[0].soft: invalid type"),
            "{}",
            e.message
        );
        let e = check(json!({"env": ["A=1", "B"]}));
        assert!(
            e.message.starts_with("OciProcess.env[1]: \"B\""),
            "{}",
            e.message
        );
        let e = check(json!({"user": {"uid": "root", "gid": 0}}));
        assert!(
            e.message.starts_with("OciProcess.user.uid: invalid type"),
            "{}",
            e.message
        );
        let e = check(json!({"apparmorProfile": "docker-default"}));
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
        assert!(
            e.message.starts_with("OciProcess.apparmorProfile:"),
            "{}",
            e.message
        );
        let e = check(json!({"selinuxLabel": "system_u:system_r:container_t:s0"}));
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
        let e = check(json!({"oomScoreAdj": 5000}));
        assert!(
            e.message.starts_with("OciProcess.oomScoreAdj: 5000"),
            "{}",
            e.message
        );
        let e = check(json!({"cwd": "relative"}));
        assert!(e.message.starts_with("OciProcess.cwd:"), "{}", e.message);
        check_process_json(&base, OCI_PROCESS).unwrap();
        // Empty security fields are fine.
        check_process_json(
            &json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "apparmorProfile": "", "capabilities": {}}),
            OCI_PROCESS,
        )
        .unwrap();
    }

    #[test]
    fn capabilities_rlimits_and_the_rest_resolve() {
        let s = ProcessSecurity::from_oci(
            &process(json!({
                "user": {"uid": 1000, "gid": 1000, "umask": 0o077, "additionalGids": [5, 6]},
                "cwd": "/",
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_CHOWN"],
                    "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                    "inheritable": ["CAP_NET_BIND_SERVICE"],
                    "ambient": ["CAP_NET_BIND_SERVICE"]
                },
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
                "noNewPrivileges": true,
                "oomScoreAdj": 500
            })),
            None,
        )
        .unwrap();
        assert_eq!(
            s.capabilities,
            CapabilitySets {
                bounding: 1 | 1 << 10,
                effective: 1,
                permitted: 1 | 1 << 10,
                inheritable: 1 << 10,
                ambient: 1 << 10,
            }
        );
        assert_eq!(
            s.rlimits,
            vec![Rlimit {
                name: "RLIMIT_NOFILE".into(),
                resource: libc::RLIMIT_NOFILE as i32,
                soft: 100,
                hard: 200
            }]
        );
        assert!(s.no_new_privileges);
        assert_eq!(s.umask, Some(0o077));
        assert_eq!(s.additional_gids, Some(vec![5, 6]));
        assert_eq!(s.oom_score_adj_text, b"500");
        assert!(s.seccomp.is_none());

        // No capabilities object: nothing at all, as runc.
        let s = ProcessSecurity::from_oci(
            &process(json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"})),
            None,
        )
        .unwrap();
        assert_eq!(s.capabilities, CapabilitySets::default());
        assert_eq!(s.umask, Some(0o022));
    }

    #[test]
    fn impossible_capability_sets_are_refused() {
        let e = ProcessSecurity::from_oci(
            &process(json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {
                "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN"]
            }})),
            None,
        )
        .unwrap_err();
        assert_eq!(e.hresult, HResult::E_INVALIDARG);
        assert!(
            e.message.starts_with(
                "OciProcess.capabilities.effective: CAP_KILL not in capabilities.permitted"
            ),
            "{}",
            e.message
        );
        // Ambient capabilities that cannot be raised are left out (runc warns).
        let s = ProcessSecurity::from_oci(
            &process(
                json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"],
                    "inheritable": ["CAP_KILL"], "ambient": ["CAP_CHOWN", "CAP_KILL"]
                }}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(s.capabilities.ambient, 1 << 5);
        let e = ProcessSecurity::from_oci(
            &process(
                json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {
                    "bounding": ["CAP_CHOWN"], "inheritable": ["CAP_CHOWN", "CAP_KILL"]
                }}),
            ),
            None,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with(
                "OciProcess.capabilities.inheritable: CAP_KILL not in capabilities.bounding"
            ),
            "{}",
            e.message
        );
        let e = ProcessSecurity::from_oci(
            &process(json!({"user": {"uid": 0, "gid": 0}, "cwd": "/",
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 200}]})),
            None,
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("OciProcess.rlimits[0]: RLIMIT_NOFILE: the soft limit 300"),
            "{}",
            e.message
        );

        // A capability the runtime does not hold.
        let s = ProcessSecurity::from_oci(
            &process(
                json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {
                    "bounding": ["CAP_SYS_RESOURCE"], "permitted": ["CAP_SYS_RESOURCE"]
                }}),
            ),
            None,
        )
        .unwrap();
        let e = s.check_grantable(all_caps() & !(1 << 24)).unwrap_err();
        assert_eq!(
            e.message,
            "OciProcess.capabilities.permitted: CAP_SYS_RESOURCE not available: this host does not grant it to the container runtime"
        );
        s.check_grantable(all_caps()).unwrap();
    }

    #[test]
    fn oci_process_maps_to_a_process_spec() {
        use crate::spawn::{ProcessSpec, DEFAULT_CONSOLE_SIZE};
        let spec = ProcessSpec::from_oci(
            &json!({
                "args": ["sh", "-c", "echo $A"],
                "env": ["A=1=2", "PATH=/bin"],
                "cwd": "/tmp",
                "user": {"uid": 1000, "gid": 100},
                "terminal": true,
                "consoleSize": {"height": 40, "width": 120},
                "noNewPrivileges": true
            }),
            Some(&deny_mkdir()),
        )
        .unwrap();
        assert_eq!(spec.argv, ["sh", "-c", "echo $A"]);
        assert_eq!(
            spec.env,
            [("A".into(), "1=2".into()), ("PATH".into(), "/bin".into())]
        );
        assert_eq!(
            (spec.cwd.as_deref(), spec.user.as_deref(), spec.console),
            (Some("/tmp"), Some("1000:100"), Some((40, 120)))
        );
        let sec = spec.security.as_ref().unwrap();
        assert!(sec.no_new_privileges && sec.seccomp.is_some() && sec.from_oci);
        assert!(!spec.container_process);

        let base =
            json!({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": true});
        let spec = ProcessSpec::from_oci(&base, None).unwrap();
        assert_eq!(spec.console, Some(DEFAULT_CONSOLE_SIZE));
        let mut bad = base.clone();
        bad["args"] = json!([]);
        let e = ProcessSpec::from_oci(&bad, None).unwrap_err();
        assert!(
            e.message.starts_with("OciProcess.args: missing or empty"),
            "{}",
            e.message
        );
        let mut bad = base.clone();
        bad["env"] = json!(["OK=1", "=x"]);
        let e = ProcessSpec::from_oci(&bad, None).unwrap_err();
        assert!(e.message.starts_with("OciProcess.env[1]:"), "{}", e.message);
        let e = ProcessSpec::from_oci(&json!({"args": ["true"], "cwd": "/"}), None).unwrap_err();
        assert_eq!(e.message, "OciProcess: missing field `user`");
        let e = ProcessSpec::from_oci(&json!(["true"]), None).unwrap_err();
        assert!(
            e.message.starts_with("OciProcess: is not a JSON object"),
            "{}",
            e.message
        );
    }

    fn deny_mkdir() -> LinuxSeccomp {
        seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall_in_any_kernel"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }))
    }

    #[test]
    fn the_container_filter_is_compiled_once_per_profile() {
        let a = container_filter(&deny_mkdir()).unwrap();
        assert_eq!(a, compile_seccomp(&deny_mkdir(), OCI_SECCOMP).unwrap());
        assert_eq!(container_filter(&deny_mkdir()).unwrap(), a);
        // Another profile is compiled, never served from the cache.
        let mut v = serde_json::to_value(deny_mkdir()).unwrap();
        v["syscalls"][0]["names"] = json!(["rmdir"]);
        let other = seccomp(v);
        let b = container_filter(&other).unwrap();
        assert_ne!(a, b);
        assert_eq!(b, compile_seccomp(&other, OCI_SECCOMP).unwrap());
    }

    #[test]
    fn seccomp_profiles_compile() {
        let prog = compile_seccomp(&deny_mkdir(), OCI_SECCOMP).unwrap();
        assert!(
            prog.len() > 4 && prog.len() < BPF_MAXINSNS,
            "{}",
            prog.len()
        );
        // The first instruction loads the architecture (seccomp_data.arch at offset 4).
        assert_eq!((prog.filter[0].code, prog.filter[0].k), (0x20, 4));
    }

    #[test]
    fn seccomp_errors_name_their_path() {
        let e = compile_seccomp(
            &seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}
            ]})),
            OCI_SECCOMP,
        )
        .unwrap_err();
        assert_eq!(e.hresult, HResult::ERROR_NOT_SUPPORTED);
        assert!(
            e.message.starts_with(
                "Container.OciSpecification.linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY"
            ),
            "{}",
            e.message
        );
        let e = compile_seccomp(
            &seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]})),
            OCI_SECCOMP,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with(
                "Container.OciSpecification.linux.seccomp.syscalls[0].args[0].index: 7"
            ),
            "{}",
            e.message
        );
        let e = compile_seccomp(
            &seccomp(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000})),
            OCI_SECCOMP,
        )
        .unwrap_err();
        assert!(
            e.message.contains("defaultAction: errnoRet 70000"),
            "{}",
            e.message
        );
        let e = compile_seccomp(
            &seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"})),
            OCI_SECCOMP,
        )
        .unwrap_err();
        assert!(e.message.contains("listenerPath"), "{}", e.message);
        // Unknown actions and operators are refused when the spec is parsed.
        serde_json::from_value::<LinuxSeccomp>(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_FOO"}]})
        ).unwrap_err();
    }

    /// Install the compiled filter in a forked child and watch it deny mkdir.
    #[test]
    fn compiled_seccomp_filter_denies_mkdir() {
        let prog = compile_seccomp(&deny_mkdir(), OCI_SECCOMP).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let denied = std::ffi::CString::new(dir.path().join("denied").to_str().unwrap()).unwrap();
        // SAFETY: the child makes only raw system calls on memory prepared
        // before the fork, then _exits; it never returns into the test harness.
        match unsafe { libc::fork() } {
            0 => {
                let code = (|| {
                    if set_no_new_privs().is_err() || prog.install().is_err() {
                        return 100;
                    }
                    // SAFETY: a NUL-terminated path prepared before the fork.
                    if unsafe { libc::mkdir(denied.as_ptr(), 0o755) } == 0 {
                        return 101;
                    }
                    let errno = Errno::last() as i32;
                    // getpid is still allowed.
                    // SAFETY: getpid has no arguments and cannot fail.
                    if unsafe { libc::getpid() } <= 0 {
                        return 102;
                    }
                    errno
                })();
                // SAFETY: leaves the forked child at once, without running
                // the parent's atexit handlers or destructors.
                unsafe { libc::_exit(code) }
            }
            pid if pid > 0 => {
                let status =
                    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(
                        nix::unistd::Pid::from_raw(pid),
                        libc::EPERM
                    )
                );
                assert!(!dir.path().join("denied").exists());
            }
            _ => panic!("fork failed"),
        }
    }
}
