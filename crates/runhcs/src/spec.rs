//! The OCI runtime spec (config.json) side: the default spec `runhcs spec`
//! writes, the features document, and the mapping of a bundle onto an HCS
//! container document and the init process's `ProcessParameters`.
//!
//! runhcs does not decide what is supported: the whole config.json goes to
//! the HCS container backend as `Container.OciSpecification`, which maps it
//! and refuses, by JSON path (`Container.OciSpecification.linux.intelRdt`),
//! whatever it cannot honour; runhcs prints that error. Here it is only
//! parsed, so that a malformed file fails before anything is created.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Result, RunhcsError};

/// The capabilities `runc spec` gives a container.
pub const CAPABILITIES: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Every capability the backend knows by name (Linux 5.9+).
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The masked paths of `runc spec`.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// The read-only paths of `runc spec`.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Namespaces the backend can create (`network` can also be joined by path).
const NAMESPACES: [&str; 7] = ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"];

/// Mount options the backend understands (besides the filesystem data
/// options of tmpfs, proc and devpts such as `size=` and `mode=`).
const MOUNT_OPTIONS: &[&str] = &[
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "relatime",
    "norelatime",
    "noatime",
    "atime",
    "strictatime",
    "nostrictatime",
    "nodiratime",
    "diratime",
    "defaults",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "newinstance",
    "tmpcopyup",
    "notmpcopyup",
    // Recursive options of bind mounts (every mount of the bound tree).
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rrelatime",
    "rnoatime",
    "rstrictatime",
    "rnodiratime",
    "rdiratime",
];

/// The six OCI hooks, all run by the backend.
const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Parse a config.json as an OCI runtime spec, or say why it is not one.
/// Everything else is for the backend to judge.
pub fn parse(config: &Value) -> std::result::Result<oci_spec::runtime::Spec, String> {
    if !config.is_object() {
        return Err("not a JSON object".into());
    }
    serde_json::from_value(config.clone()).map_err(|e| format!("not an OCI runtime spec: {e}"))
}

/// `runhcs features`: the runtime-spec features document of the HCS
/// container backend.
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": ALL_CAPABILITIES.to_vec(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64",
                    "SCMP_ARCH_ARM",
                    "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64"
                ]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": {
            "io.github.hcs.runtime": "runhcs",
            "io.github.hcs.version": env!("CARGO_PKG_VERSION")
        }
    })
}

/// The config.json that `runhcs spec` writes: `runc spec`'s, but for the
/// host name and `capabilities.ambient`: runc lists the three capabilities
/// as ambient without making them inheritable, so raising them fails and
/// runc ignores that; the container gets no ambient capabilities either way.
pub fn default_spec() -> Value {
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let nne = ["nosuid", "noexec", "nodev"];
    let namespaces: Vec<Value> = ["pid", "network", "ipc", "uts", "mount"]
        .iter()
        .map(|t| json!({ "type": t }))
        .collect();
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runhcs",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nne},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}

/// What `create` takes from a bundle: the HCS document and the init process.
#[derive(Debug)]
pub struct Mapped {
    /// The ComputeSystem document (JSON).
    pub document: Value,
    /// The init process's ProcessParameters (JSON).
    pub process: Value,
    /// Absolute path of the root filesystem.
    pub rootfs: String,
    /// `process.terminal`.
    pub terminal: bool,
}

/// Map a config.json (already checked by [`unsupported`]) onto HCS documents.
pub fn map(bundle: &Path, raw: &Value, spec: &oci_spec::runtime::Spec) -> Result<Mapped> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RunhcsError::Spec("root.path is missing".into()))?;
    let rootfs = bundle.join(root.path());
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| RunhcsError::Spec(format!("root.path {}: {e}", rootfs.display())))?;
    let rootfs = rootfs
        .to_str()
        .ok_or_else(|| RunhcsError::Spec("root.path is not UTF-8".into()))?
        .to_string();

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RunhcsError::Spec("process is missing".into()))?;
    // The container document carries the whole spec (hcsshim's Linux
    // container document): the HCS container backend maps it and refuses,
    // by JSON path, whatever it cannot honour.
    let document = json!({
        "SchemaVersion": {"Major": 2, "Minor": 1},
        "Owner": "runhcs",
        "ShouldTerminateOnLastHandleClosed": false,
        "Container": {
            "OciBundlePath": bundle.to_string_lossy(),
            "OciSpecification": raw,
        },
    });
    // The process as the OCI object (the backend maps args, env, user,
    // capabilities, rlimits, ...); HCS keeps only the stdio choice.
    let terminal = process.terminal().unwrap_or(false);
    let params = json!({
        "OciProcess": raw.get("process").cloned().unwrap_or(Value::Null),
        "EmulateConsole": terminal,
    });
    Ok(Mapped {
        document,
        terminal,
        process: params,
        rootfs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_looks_like_runc_spec() {
        let spec = default_spec();
        parse(&spec).unwrap();
        let parsed: oci_spec::runtime::Spec =
            serde_json::from_value(spec.clone()).expect("oci-spec parses it");
        assert_eq!(
            parsed.root().as_ref().and_then(|r| r.readonly()),
            Some(true)
        );
        let dests: Vec<String> = parsed
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(
            spec["linux"]["maskedPaths"].as_array().map(Vec::len),
            Some(10)
        );
    }

    #[test]
    fn only_unparsable_configs_are_refused_here() {
        let mut spec = default_spec();
        // The backend judges these, not runhcs.
        spec["linux"]["intelRdt"] = json!({"closID": "x"});
        spec["hooks"] = json!({"prestart": [{"path": "/bin/true"}]});
        parse(&spec).unwrap();
        spec["mounts"] = json!("not a list");
        let bad = parse(&spec).expect_err("refused");
        assert!(bad.starts_with("not an OCI runtime spec"), "{bad}");
        assert_eq!(
            parse(&json!([1])).err().as_deref(),
            Some("not a JSON object")
        );
    }

    #[test]
    fn features_parse_as_a_features_document() {
        let f: oci_spec::runtime::Features =
            serde_json::from_value(features()).expect("features document");
        assert_eq!(f.hooks().as_ref().map(Vec::len), Some(6));
    }
}
