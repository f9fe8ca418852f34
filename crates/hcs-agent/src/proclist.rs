//! ProcessList: every process of the guest, read from /proc.

use std::path::Path;

/// One process, owned (the wire entry borrows from it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Pid.
    pub pid: u32,
    /// Arguments joined by spaces, or `[comm]` for kernel threads.
    pub command_line: Vec<u8>,
    /// Start time since boot, 100 ns units.
    pub start_time_100ns: u64,
    /// User time, 100 ns units.
    pub user_time_100ns: u64,
    /// Kernel time, 100 ns units.
    pub kernel_time_100ns: u64,
    /// Virtual size in bytes.
    pub memory_commit_bytes: u64,
    /// Resident, not shared, in bytes.
    pub working_set_private_bytes: u64,
    /// Resident shared, in bytes.
    pub working_set_shared_bytes: u64,
}

/// Longest command line reported (keeps the reply well under the frame cap).
pub const MAX_COMMAND_LINE: usize = 1024;

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    /// Command name.
    pub comm: Vec<u8>,
    /// utime, clock ticks.
    pub utime: u64,
    /// stime, clock ticks.
    pub stime: u64,
    /// starttime, clock ticks since boot.
    pub starttime: u64,
    /// vsize, bytes.
    pub vsize: u64,
}

/// Parses `/proc/<pid>/stat` (the command name may hold spaces and parens).
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|b| *b == b'(')?;
    let close = text.iter().rposition(|b| *b == b')')?;
    let comm = text.get(open + 1..close)?.to_vec();
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // Field 3 (state) is index 0 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| -> Option<u64> { fields.get(field - 3)?.parse().ok() };
    Some(Stat {
        comm,
        utime: num(14)?,
        stime: num(15)?,
        starttime: num(22)?,
        vsize: num(23)?,
    })
}

fn command_line(dir: &Path, comm: &[u8]) -> Vec<u8> {
    let raw = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let mut line: Vec<u8> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(&b' ');
    if line.is_empty() {
        line = [b"[".as_slice(), comm, b"]"].concat();
    }
    line.truncate(MAX_COMMAND_LINE);
    line
}

fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf only reads configuration.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(fallback)
}

fn read_process(dir: &Path, pid: u32, tick_100ns: u64, page: u64) -> Option<ProcInfo> {
    let stat = parse_stat(&std::fs::read(dir.join("stat")).ok()?)?;
    let statm = std::fs::read_to_string(dir.join("statm")).unwrap_or_default();
    let pages: Vec<u64> = statm
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let resident = pages.get(1).copied().unwrap_or(0);
    let shared = pages.get(2).copied().unwrap_or(0).min(resident);
    Some(ProcInfo {
        pid,
        command_line: command_line(dir, &stat.comm),
        start_time_100ns: stat.starttime.saturating_mul(tick_100ns),
        user_time_100ns: stat.utime.saturating_mul(tick_100ns),
        kernel_time_100ns: stat.stime.saturating_mul(tick_100ns),
        memory_commit_bytes: stat.vsize,
        working_set_private_bytes: (resident - shared).saturating_mul(page),
        working_set_shared_bytes: shared.saturating_mul(page),
    })
}

/// Every process in `proc_root` (normally `/proc`), by pid. Processes that
/// exit while being read are skipped.
pub fn list(proc_root: &Path) -> std::io::Result<Vec<ProcInfo>> {
    let tick_100ns = 10_000_000 / sysconf(libc::_SC_CLK_TCK, 100).min(10_000_000);
    let page = sysconf(libc::_SC_PAGESIZE, 4096);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(info) = read_process(&entry.path(), pid, tick_100ns, page) {
            out.push(info);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let text = b"123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 7 9 0 0 20 0 1 0 555 1048576 300 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.comm, b"a) b (c)".to_vec());
        assert_eq!(
            (s.utime, s.stime, s.starttime, s.vsize),
            (7, 9, 555, 1_048_576)
        );
        assert!(parse_stat(b"1 (x").is_none());
        assert!(parse_stat(b"1 (x) S 1").is_none());
    }

    #[test]
    fn lists_this_process() {
        let me = std::process::id();
        let all = list(Path::new("/proc")).unwrap();
        let entry = all.iter().find(|p| p.pid == me).expect("own pid listed");
        assert!(!entry.command_line.is_empty());
        assert!(entry.memory_commit_bytes > 0);
        assert!(entry.working_set_private_bytes > 0);
    }
}
