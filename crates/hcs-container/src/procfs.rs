//! Reading what `Properties.ProcessList` reports from `/proc`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hcs_schema::ProcessDetails;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
}

/// `ProcessDetails` of a host pid, or `None` if it is gone.
pub fn process_details(host_pid: i32) -> Option<ProcessDetails> {
    let stat = std::fs::read_to_string(format!("/proc/{host_pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let tck = clk_tck();
    let to_100ns = |ticks: u64| ticks.saturating_mul(10_000_000) / tck;
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    let pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(host_pid as u32);
    let created = match (boot_time(), field(22)) {
        (Some(bt), Some(start)) => Some(rfc3339(
            UNIX_EPOCH + Duration::from_secs(bt) + Duration::from_millis(start * 1000 / tck),
        )),
        _ => None,
    };
    Some(ProcessDetails {
        process_id: Some(pid),
        host_process_id: u32::try_from(host_pid).ok(),
        image_name: Some(comm),
        create_timestamp: created,
        user_time_100ns: field(14).map(to_100ns),
        kernel_time_100ns: field(15).map(to_100ns),
        memory_commit_bytes: kb("VmSize:"),
        memory_working_set_private_bytes: kb("RssAnon:"),
        memory_working_set_shared_bytes: match (kb("RssFile:"), kb("RssShmem:")) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        },
    })
}

/// Format a time as RFC 3339 in UTC (`2026-11-28T11:34:29.123Z`).
/// Written out here because it is the only date handling we need.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_700_069_123)),
            "2026-11-26T13:34:29.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn details_of_ourselves() {
        let d = process_details(std::process::id() as i32).unwrap();
        assert!(d.image_name.is_some());
        assert!(d.memory_commit_bytes.unwrap() > 0);
    }
}
