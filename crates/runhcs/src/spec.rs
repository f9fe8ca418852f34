//! The OCI runtime spec (config.json) side: the default spec `runhcs spec`
//! writes, the check that refuses fields runhcs does not implement, and the
//! mapping of the rest onto an HCS container document and the init
//! process's `ProcessParameters`.
//!
//! What is supported is exactly what the HCS container backend does: the
//! fields below are mapped, and the fields the backend always provides in a
//! fixed way (namespaces, the standard mounts, Docker's default capabilities,
//! the masked and read-only kernel paths) are accepted only with the values
//! `runhcs spec` writes. Anything else that is present and not empty is an
//! error naming its JSON path: never silently ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Capabilities every container process gets from the HCS backend
/// (Docker's default set without CAP_MKNOD).
pub const CAPABILITIES: [&str; 13] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths the backend masks in every container.
pub const MASKED_PATHS: [&str; 8] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths the backend makes read-only in every container.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Namespaces every container gets (the cgroup one is optional in the spec).
const NAMESPACES: [&str; 5] = ["pid", "network", "ipc", "uts", "mount"];

/// The standard mounts the backend makes: destination and type.
const STANDARD_MOUNTS: [(&str, &str); 5] = [
    ("/proc", "proc"),
    ("/dev", "tmpfs"),
    ("/dev/pts", "devpts"),
    ("/dev/shm", "tmpfs"),
    ("/sys", "sysfs"),
];

/// Bind-mount options that runhcs honours (`ro` maps to `ReadOnly`; the
/// others describe what a HCS mapped directory is anyway).
const BIND_OPTIONS: [&str; 6] = ["bind", "rbind", "ro", "rw", "private", "rprivate"];

/// An OCI `process` as HCS ProcessParameters (args, env, cwd, uid:gid,
/// terminal and its size). The fields it cannot honour are refused
/// beforehand by [`unsupported`] (for config.json) or [`unsupported_process`].
pub fn process_params(process: &oci_spec::runtime::Process) -> Result<Value> {
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Spec("process.args is empty".into()));
    }
    let mut env = BTreeMap::new();
    for e in process.env().iter().flatten() {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| Error::Spec(format!("process.env entry {e:?} has no '='")))?;
        env.insert(k.to_string(), v.to_string());
    }
    let terminal = process.terminal().unwrap_or(false);
    let user = process.user();
    let mut params = json!({
        "CommandArgs": args,
        "WorkingDirectory": process.cwd().to_string_lossy(),
        "Environment": env,
        "User": format!("{}:{}", user.uid(), user.gid()),
        "EmulateConsole": terminal,
    });
    if let Some(size) = process.console_size() {
        params["ConsoleSize"] = json!([size.height(), size.width()]);
    }
    Ok(params)
}

/// What an `exec --process` document asks for that runhcs does not support.
pub fn unsupported_process(process: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(o) = process.as_object() {
        check_process(o, "process", &mut out);
    }
    out
}

/// `runhcs features`: the runtime-spec features document, built from the
/// same lists the checks use, so it says exactly what is supported. Empty
/// lists mean "none" (hooks, seccomp); absent ones would mean "unknown".
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": [],
        "mountOptions": BIND_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES.iter().chain(["cgroup"].iter()).collect::<Vec<_>>(),
            "capabilities": [],
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": false },
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

/// The config.json that `runhcs spec` writes: like `runc spec`, but listing
/// only what the HCS backend really provides, so that it passes the check.
pub fn default_spec() -> Value {
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let mounts: Vec<Value> = STANDARD_MOUNTS
        .iter()
        .map(|(dest, typ)| json!({"destination": dest, "type": typ, "source": typ}))
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
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "runhcs",
        "mounts": mounts,
        "linux": {
            "namespaces": NAMESPACES.iter().chain(["cgroup"].iter()).map(|t| json!({"type": t})).collect::<Vec<_>>(),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}

/// Whether a JSON value counts as absent: null, false, 0, "", [] or {}.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

/// Walk an object, calling `known` for members runhcs handles and reporting
/// every other non-empty member as unsupported.
fn members(
    obj: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
    mut known: impl FnMut(&str, &Value, &str, &mut Vec<String>) -> bool,
) {
    for (k, v) in obj {
        let p = format!("{path}.{k}");
        if !known(k, v, &p, out) && !is_empty(v) {
            out.push(p);
        }
    }
}

/// Compare a list of strings with a fixed set, ignoring order.
fn same_set(v: &Value, expected: &[&str]) -> bool {
    let Some(a) = v.as_array() else { return false };
    let mut got: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
    if got.len() != a.len() {
        return false;
    }
    got.sort_unstable();
    got.dedup();
    let mut want = expected.to_vec();
    want.sort_unstable();
    got == want
}

/// Every unsupported field of a config.json, as JSON paths with a reason.
/// Empty when runhcs can honour the whole document.
pub fn unsupported(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = config.as_object() else {
        return vec!["$ (not a JSON object)".into()];
    };
    members(top, "$", &mut out, |k, v, p, out| match k {
        "ociVersion" | "hostname" | "annotations" => true,
        "root" => {
            if let Some(o) = v.as_object() {
                members(o, p, out, |k, _, _, _| k == "path");
            }
            true
        }
        "process" => {
            if let Some(o) = v.as_object() {
                check_process(o, p, out);
            }
            true
        }
        "mounts" => {
            for (i, m) in v.as_array().into_iter().flatten().enumerate() {
                check_mount(m, &format!("{p}[{i}]"), out);
            }
            true
        }
        "linux" => {
            if let Some(o) = v.as_object() {
                check_linux(o, p, out);
            }
            true
        }
        _ => false,
    });
    out
}

fn check_process(o: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    members(o, path, out, |k, v, p, out| match k {
        "terminal" | "args" | "env" | "cwd" | "consoleSize" => true,
        "user" => {
            if let Some(u) = v.as_object() {
                members(u, p, out, |k, _, _, _| k == "uid" || k == "gid");
            }
            true
        }
        "capabilities" => {
            if let Some(c) = v.as_object() {
                members(c, p, out, |k, v, p, out| {
                    if matches!(k, "bounding" | "effective" | "permitted")
                        && !same_set(v, &CAPABILITIES)
                    {
                        out.push(format!(
                            "{p} (only the default set is supported: {})",
                            CAPABILITIES.join(",")
                        ));
                    }
                    matches!(k, "bounding" | "effective" | "permitted")
                });
            }
            true
        }
        _ => false,
    });
}

fn check_mount(m: &Value, path: &str, out: &mut Vec<String>) {
    let dest = m.get("destination").and_then(Value::as_str).unwrap_or("");
    let typ = m.get("type").and_then(Value::as_str).unwrap_or("");
    let options: Vec<&str> = m
        .get("options")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if is_bind(typ, &options) {
        let bad: Vec<&str> = options
            .iter()
            .copied()
            .filter(|o| !BIND_OPTIONS.contains(o))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "{path}.options {bad:?} (bind mounts support only {BIND_OPTIONS:?})"
            ));
        }
    } else if !STANDARD_MOUNTS.contains(&(dest, typ)) {
        out.push(format!(
            "{path} ({typ} on {dest}: only bind mounts and the standard /proc, /dev, /dev/pts, /dev/shm, /sys mounts are supported)"
        ));
    }
}

fn check_linux(o: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    members(o, path, out, |k, v, p, out| match k {
        "namespaces" => {
            let types: Vec<&str> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n.get("path").is_none_or(is_empty))
                .filter_map(|n| n.get("type").and_then(Value::as_str))
                .filter(|t| *t != "cgroup")
                .collect();
            let all = v.as_array().map_or(0, |a| a.len());
            let cgroup = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n.get("type").and_then(Value::as_str) == Some("cgroup"))
                .count();
            if !same_set(&json!(types), &NAMESPACES) || types.len() + cgroup != all {
                out.push(format!(
                    "{p} (must be exactly pid, network, ipc, uts, mount and optionally cgroup, without paths)"
                ));
            }
            true
        }
        "maskedPaths" => {
            if !same_set(v, &MASKED_PATHS) {
                out.push(format!(
                    "{p} (only the default list is supported: {MASKED_PATHS:?})"
                ));
            }
            true
        }
        "readonlyPaths" => {
            if !same_set(v, &READONLY_PATHS) {
                out.push(format!(
                    "{p} (only the default list is supported: {READONLY_PATHS:?})"
                ));
            }
            true
        }
        "resources" => {
            if let Some(r) = v.as_object() {
                members(r, p, out, |k, v, p, out| match k {
                    "memory" | "cpu" => {
                        if let Some(x) = v.as_object() {
                            let want = if k == "memory" { "limit" } else { "shares" };
                            members(x, p, out, |k, _, _, _| k == want);
                        }
                        true
                    }
                    _ => false,
                });
            }
            true
        }
        _ => false,
    });
}

/// Whether a mount is a bind mount (by type or by option).
fn is_bind(typ: &str, options: &[&str]) -> bool {
    typ == "bind" || options.iter().any(|o| *o == "bind" || *o == "rbind")
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
pub fn map(bundle: &Path, raw: &Value) -> Result<Mapped> {
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(raw.clone()).map_err(|e| Error::Spec(e.to_string()))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Spec("root.path is missing".into()))?;
    let rootfs = bundle.join(root.path());
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| Error::Spec(format!("root.path {}: {e}", rootfs.display())))?;
    let rootfs = rootfs
        .to_str()
        .ok_or_else(|| Error::Spec("root.path is not UTF-8".into()))?
        .to_string();

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
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
    fn default_spec_is_supported_and_parses() {
        let spec = default_spec();
        assert_eq!(unsupported(&spec), Vec::<String>::new());
        let _: oci_spec::runtime::Spec = serde_json::from_value(spec).expect("oci-spec parses it");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let mut spec = default_spec();
        spec["hooks"] = json!({"prestart": [{"path": "/bin/true"}]});
        spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}]);
        spec["linux"]["resources"] = json!({"memory": {"limit": 1048576, "swap": 5}});
        let found = unsupported(&spec);
        for want in [
            "$.hooks",
            "$.linux.seccomp",
            "$.process.rlimits",
            "$.linux.resources.memory.swap",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:?}"
            );
        }
    }

    #[test]
    fn empty_fields_are_accepted() {
        let mut spec = default_spec();
        spec["hooks"] = json!({});
        spec["linux"]["sysctl"] = json!({});
        spec["process"]["rlimits"] = json!([]);
        assert_eq!(unsupported(&spec), Vec::<String>::new());
    }

    #[test]
    fn tmpfs_mount_elsewhere_is_refused() {
        let mut spec = default_spec();
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        }
        assert_eq!(unsupported(&spec).len(), 1);
    }
}
