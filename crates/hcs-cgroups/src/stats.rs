//! Usage statistics and the parsers of the kernel's multi-line stat files.

use std::path::Path;

use crate::error::CgroupError;
use crate::fsio;

/// What a cgroup has used. Each field is `None` when its controller or file
/// is not available on this host (that is not an error).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Memory charged now (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub memory_usage_bytes: Option<u64>,
    /// Highest memory charged (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub memory_peak_bytes: Option<u64>,
    /// The memory limit; `u64::MAX` when unlimited (v2 `max`, or v1's page-rounded `LONG_MAX`).
    pub memory_limit_bytes: Option<u64>,
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// CPU time used in user mode, in nanoseconds.
    pub cpu_user_ns: Option<u64>,
    /// CPU time used in kernel mode, in nanoseconds.
    pub cpu_system_ns: Option<u64>,
    /// Processes (v2: and threads) in the cgroup now (`pids.current`).
    pub pids_current: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
    /// Read requests issued to block devices.
    pub io_read_ops: Option<u64>,
    /// Write requests issued to block devices.
    pub io_write_ops: Option<u64>,
}

/// Values at or above this are v1's "unlimited" (`LONG_MAX` rounded down to a page).
const V1_UNLIMITED: u64 = (i64::MAX as u64) - (1 << 20);

/// Normalises a v1 memory limit: unlimited reads as `u64::MAX`.
pub(crate) fn v1_limit(v: u64) -> u64 {
    if v >= V1_UNLIMITED {
        u64::MAX
    } else {
        v
    }
}

/// `usage_usec`, `user_usec`, `system_usec` of a v2 `cpu.stat`, in microseconds.
pub(crate) fn parse_cpu_stat(path: &Path, text: &str) -> Result<[Option<u64>; 3], CgroupError> {
    let mut out = [None; 3];
    for line in text.lines() {
        let (key, value) = split_key_value(path, line)?;
        let slot = match key {
            "usage_usec" => 0,
            "user_usec" => 1,
            "system_usec" => 2,
            _ => continue,
        };
        out[slot] = Some(fsio::parse_u64_or_max(path, value)?);
    }
    Ok(out)
}

/// `user` and `system` of a v1 `cpuacct.stat`, in USER_HZ ticks.
pub(crate) fn parse_cpuacct_stat(path: &Path, text: &str) -> Result<[Option<u64>; 2], CgroupError> {
    let mut out = [None; 2];
    for line in text.lines() {
        let (key, value) = split_key_value(path, line)?;
        let slot = match key {
            "user" => 0,
            "system" => 1,
            _ => continue,
        };
        out[slot] = Some(fsio::parse_u64_or_max(path, value)?);
    }
    Ok(out)
}

fn split_key_value<'a>(path: &Path, line: &'a str) -> Result<(&'a str, &'a str), CgroupError> {
    let mut it = line.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(k), Some(v), None) => Ok((k, v)),
        _ => Err(fsio::parse_error(path, "expected \"key value\"", line)),
    }
}

/// Sums `rbytes`, `wbytes`, `rios`, `wios` over the devices of a v2 `io.stat`:
/// `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<[u64; 4], CgroupError> {
    let mut sum = [0u64; 4];
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(dev) = fields.next() else { continue };
        if !dev.contains(':') {
            return Err(fsio::parse_error(path, "expected major:minor first", line));
        }
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(fsio::parse_error(path, "expected key=value", line));
            };
            let slot = match key {
                "rbytes" => 0,
                "wbytes" => 1,
                "rios" => 2,
                "wios" => 3,
                _ => continue,
            };
            sum[slot] = sum[slot].saturating_add(fsio::parse_u64_or_max(path, value)?);
        }
    }
    Ok(sum)
}

/// Sums the `Read` and `Write` rows of a v1 `blkio.throttle.io_service_bytes`-style file:
/// `8:0 Read 4096` ... `Total 4096`.
pub(crate) fn parse_blkio(path: &Path, text: &str) -> Result<[u64; 2], CgroupError> {
    let mut sum = [0u64; 2];
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            ["Total", v] => {
                fsio::parse_u64_or_max(path, v)?;
            }
            [dev, op, v] if dev.contains(':') => {
                let v = fsio::parse_u64_or_max(path, v)?;
                match *op {
                    "Read" => sum[0] = sum[0].saturating_add(v),
                    "Write" => sum[1] = sum[1].saturating_add(v),
                    _ => {}
                }
            }
            _ => {
                return Err(fsio::parse_error(
                    path,
                    "expected \"major:minor Op value\"",
                    line,
                ))
            }
        }
    }
    Ok(sum)
}

/// Finds `key` in a v2 `cgroup.events`-style flat-keyed file.
pub(crate) fn events_value(path: &Path, text: &str, key: &str) -> Result<u64, CgroupError> {
    for line in text.lines() {
        let (k, v) = split_key_value(path, line)?;
        if k == key {
            return fsio::parse_u64_or_max(path, v);
        }
    }
    Err(fsio::parse_error(path, format!("no \"{key}\" entry"), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/test")
    }

    #[test]
    fn cpu_stat() {
        let t = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(
            parse_cpu_stat(p(), t).unwrap(),
            [Some(1234), Some(1000), Some(234)]
        );
        parse_cpu_stat(p(), "usage_usec x\n").unwrap_err();
        parse_cpu_stat(p(), "usage_usec\n").unwrap_err();
    }

    #[test]
    fn cpuacct_stat() {
        assert_eq!(
            parse_cpuacct_stat(p(), "user 21\nsystem 3\n").unwrap(),
            [Some(21), Some(3)]
        );
    }

    #[test]
    fn io_stat() {
        let t = "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=5 wbytes=5 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(p(), t).unwrap(), [15, 25, 2, 3]);
        assert_eq!(parse_io_stat(p(), "").unwrap(), [0; 4]);
        parse_io_stat(p(), "8:0 rbytes\n").unwrap_err();
        parse_io_stat(p(), "rbytes=1\n").unwrap_err();
    }

    #[test]
    fn blkio() {
        let t = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 4608\n8:16 Read 4\nTotal 4612\n";
        assert_eq!(parse_blkio(p(), t).unwrap(), [4100, 512]);
        assert_eq!(parse_blkio(p(), "Total 0\n").unwrap(), [0, 0]);
        parse_blkio(p(), "8:0 Read\n").unwrap_err();
    }

    #[test]
    fn events() {
        let t = "populated 1\nfrozen 0\n";
        assert_eq!(events_value(p(), t, "populated").unwrap(), 1);
        assert_eq!(events_value(p(), t, "frozen").unwrap(), 0);
        events_value(p(), t, "other").unwrap_err();
    }

    #[test]
    fn v1_unlimited() {
        assert_eq!(v1_limit(9223372036854771712), u64::MAX);
        assert_eq!(v1_limit(1 << 30), 1 << 30);
    }
}
