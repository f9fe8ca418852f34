//! `runhcs update`: change a running container's resource limits, as
//! `runc update` does (containerd's shim sends `update --resources -` with
//! an OCI `linux.resources` object on stdin; people use the flags). The
//! limits reach the compute system through HcsModifyComputeSystem with the
//! Linux ResourcePath `Container/OciResources`, which maps them as create
//! does.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use hcs::{System, GENERIC_ALL};
use serde_json::{json, Value};

use crate::error::{Context, Result, RunhcsError};
use crate::state::{Record, NAMESPACE};

/// The arguments of `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Container id.
    id: String,
    /// A file with an OCI linux.resources object, or - for stdin; the flags
    /// below override its values.
    #[arg(long, short = 'r')]
    resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g, t; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit in bytes (suffixes as --memory).
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap in bytes (suffixes as --memory; -1 for no limit).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU time per period in microseconds (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    cpu_share: Option<u64>,
    /// CPUs the processes may run on (0-3,6).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the processes may use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (refused: not supported by this container host).
    #[arg(long)]
    blkio_weight: Option<u64>,
}

/// `64m` → 67108864; `-1` stays -1 (no limit); as runc's units.RAMInBytes.
fn bytes(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        RunhcsError::Usage(format!(
            "--{flag}: {s:?} is not a size in bytes (such as 512m)"
        ))
    };
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match lower[digits.len()..].trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .filter(|v| *v >= 0)
        .ok_or_else(bad)
}

/// The linux.resources object the arguments make.
fn resources(a: &UpdateArgs) -> Result<Value> {
    let mut r = match &a.resources {
        None => json!({}),
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context(|| "reading --resources from stdin".to_string())?;
            } else {
                text = std::fs::read_to_string(p).context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_str(&text).map_err(|e| {
                RunhcsError::Usage(format!("--resources: not a linux.resources object: {e}"))
            })?
        }
    };
    if !r.is_object() {
        return Err(RunhcsError::Usage("--resources: not a JSON object".into()));
    }
    let mut set = |section: &str, key: &str, v: Value| {
        if !r[section].is_object() {
            r[section] = json!({});
        }
        r[section][key] = v;
    };
    if let Some(m) = &a.memory {
        set("memory", "limit", json!(bytes("memory", m)?));
    }
    if let Some(m) = &a.memory_reservation {
        set(
            "memory",
            "reservation",
            json!(bytes("memory-reservation", m)?),
        );
    }
    if let Some(m) = &a.memory_swap {
        set("memory", "swap", json!(bytes("memory-swap", m)?));
    }
    if let Some(q) = a.cpu_quota {
        set("cpu", "quota", json!(q));
    }
    if let Some(p) = a.cpu_period {
        set("cpu", "period", json!(p));
    }
    if let Some(s) = a.cpu_share {
        set("cpu", "shares", json!(s));
    }
    if let Some(c) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(c));
    }
    if let Some(m) = &a.cpuset_mems {
        set("cpu", "mems", json!(m));
    }
    if let Some(p) = a.pids_limit {
        set("pids", "limit", json!(p));
    }
    if let Some(w) = a.blkio_weight {
        set("blockIO", "weight", json!(w));
    }
    Ok(r)
}

/// Apply the update to the container's compute system.
pub fn run(root: &std::path::Path, a: &UpdateArgs) -> Result<()> {
    let id = &a.id;
    Record::load(root, id)?;
    let settings = resources(a)?;
    let request = json!({
        "ResourcePath": "Container/OciResources",
        "RequestType": "Update",
        "Settings": settings,
    });
    let sys = System::open_in_namespace(NAMESPACE, id, GENERIC_ALL)
        .context(|| format!("opening compute system {NAMESPACE}/{id}"))?;
    crate::call(
        || format!("updating the resources of {id}"),
        |op| sys.modify(op, &request.to_string()),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_runc_reads_them() {
        assert_eq!(bytes("memory", "512").unwrap(), 512);
        assert_eq!(bytes("memory", "64m").unwrap(), 64 << 20);
        assert_eq!(bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(bytes("memory", "2kb").unwrap(), 2048);
        assert_eq!(bytes("memory", "-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-5", "99999999999t"] {
            assert!(bytes("memory", bad).is_err(), "{bad}");
        }
    }
}
