//! Resource limits and the v1 ↔ v2 unit conversions they need.

/// Resource limits, already converted to kernel units by the caller.
/// [`crate::Cgroup::apply`] writes only the fields that are `Some`.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    /// Hard memory limit in bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`).
    /// `u64::MAX` removes the limit.
    pub memory_limit_bytes: Option<u64>,
    /// Memory plus swap in bytes, as the OCI runtime spec's `memory.swap`
    /// counts it: v1 `memory.memsw.limit_in_bytes`, v2 `memory.swap.max`
    /// (this less the memory limit, which must then be set too). At least
    /// the memory limit; `u64::MAX` removes the limit.
    pub memory_swap_bytes: Option<u64>,
    /// Memory the kernel reclaims from others first (v1
    /// `memory.soft_limit_in_bytes`, v2 `memory.low`). `u64::MAX`: no
    /// reservation.
    pub memory_reservation_bytes: Option<u64>,
    /// `Some(true)`: out of memory, the processes wait instead of being
    /// killed (v1 `memory.oom_control`; cgroup v2 has no such switch and
    /// refuses it).
    pub disable_oom_killer: Option<bool>,
    /// CPU weight on the cgroup v2 scale, `1..=10000` (default 100). Written as
    /// v2 `cpu.weight`, or as v1 `cpu.shares` through [`cpu_weight_to_shares`].
    pub cpu_weight: Option<u64>,
    /// CPU bandwidth limit (v2 `cpu.max`, v1 `cpu.cfs_quota_us` + `cpu.cfs_period_us`).
    pub cpu_quota: Option<CpuQuota>,
    /// CPUs the processes may run on, in the kernel's list format (`0-3,6`).
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (`pids.max`). `u64::MAX` removes the limit.
    pub pids_max: Option<u64>,
    /// How eagerly the kernel swaps this cgroup's memory, `0..=100` (v1
    /// `memory.swappiness`; cgroup v2 has no such file and refuses it).
    pub memory_swappiness: Option<u64>,
    /// Memory nodes the processes may use, in the kernel's list format
    /// (`cpuset.mems`).
    pub cpuset_mems: Option<String>,
    /// Run at the lowest priority, `SCHED_IDLE` for the cgroup (v2
    /// `cpu.idle`; v1 has none and refuses it).
    pub cpu_idle: Option<bool>,
    /// CPU time in microseconds a period may borrow from earlier unused
    /// quota (v2 `cpu.max.burst`, v1 `cpu.cfs_burst_us`).
    pub cpu_burst_us: Option<u64>,
    /// Raw cgroup v2 files and values (the OCI `unified` map), written
    /// after everything else; names are plain file names of the cgroup.
    pub unified: Vec<(String, String)>,
    /// Device access rules ([`crate::devices`]): v1 `devices.allow` and
    /// `devices.deny`, or a v2 BPF device program. `None` leaves device
    /// access as the parent cgroup has it.
    pub devices: Option<Vec<crate::devices::DeviceRule>>,
}

/// A CFS bandwidth limit: at most `quota_us` of CPU time every `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuQuota {
    /// CPU time per period in microseconds, at least 1000; `u64::MAX` means no limit.
    pub quota_us: u64,
    /// The period in microseconds, `1000..=1_000_000` (the kernel's bounds).
    pub period_us: u64,
}

/// Lowest v1 `cpu.shares` (kernel `MIN_SHARES`).
pub const CPU_SHARES_MIN: u64 = 2;
/// Highest v1 `cpu.shares` (kernel `MAX_SHARES`, `1 << 18`).
pub const CPU_SHARES_MAX: u64 = 1 << 18;
/// Lowest v2 `cpu.weight`.
pub const CPU_WEIGHT_MIN: u64 = 1;
/// Highest v2 `cpu.weight`.
pub const CPU_WEIGHT_MAX: u64 = 10_000;

/// The v1 → v2 conversion of runc ≥ 1.3.2 (opencontainers/cgroups
/// `ConvertCPUSharesToCgroupV2Value`) and crun ≥ 1.23: with `l = log2(shares)`,
/// `weight = ⌈10^((l² + 125·l)/612 − 7/34)⌉`. It maps the ends of both ranges
/// onto each other (2 ↔ 1, 262144 ↔ 10000) and the defaults too (1024 ↔ 100),
/// which the older linear formula `1 + (shares − 2)·9999/262142` did not
/// (it turned 1024 into 39). Out-of-range shares are clamped.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares <= CPU_SHARES_MIN {
        return CPU_WEIGHT_MIN;
    }
    if shares >= CPU_SHARES_MAX {
        return CPU_WEIGHT_MAX;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(CPU_WEIGHT_MIN, CPU_WEIGHT_MAX)
}

/// The inverse of [`cpu_shares_to_weight`]: the largest `cpu.shares` that
/// runc/crun would turn back into exactly `weight` (the forward function never
/// decreases and steps by less than one weight per share, so every weight has
/// some; because it rounds up, the largest is the one where the formula is
/// exact). 100 → 1024, 1 → 2, 10000 → 262144. Out-of-range weights are clamped.
pub fn cpu_weight_to_shares(weight: u64) -> u64 {
    let w = weight.clamp(CPU_WEIGHT_MIN, CPU_WEIGHT_MAX);
    // Solve l² + 125·l − 612·(log10(w) + 7/34) = 0 for l, then adjust the
    // floating-point estimate by whole shares against the forward formula.
    let c = 612.0 * ((w as f64).log10() + 7.0 / 34.0);
    let l = (-125.0 + (125.0f64 * 125.0 + 4.0 * c).sqrt()) / 2.0;
    let mut s = (2f64.powf(l).round() as u64).clamp(CPU_SHARES_MIN, CPU_SHARES_MAX);
    while s < CPU_SHARES_MAX && cpu_shares_to_weight(s + 1) <= w {
        s += 1;
    }
    while s > CPU_SHARES_MIN && cpu_shares_to_weight(s) > w {
        s -= 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(262144), 10000);
        assert_eq!(cpu_weight_to_shares(1), 2);
        assert_eq!(cpu_weight_to_shares(100), 1024);
        assert_eq!(cpu_weight_to_shares(10000), 262144);
        assert_eq!(cpu_weight_to_shares(0), 2);
        assert_eq!(cpu_weight_to_shares(99999), 262144);
    }

    #[test]
    fn every_weight_round_trips() {
        let mut prev = 0;
        for w in CPU_WEIGHT_MIN..=CPU_WEIGHT_MAX {
            let s = cpu_weight_to_shares(w);
            assert!((CPU_SHARES_MIN..=CPU_SHARES_MAX).contains(&s), "{w} -> {s}");
            assert_eq!(cpu_shares_to_weight(s), w, "weight {w} -> shares {s}");
            assert!(s > prev, "not increasing at {w}");
            assert!(
                s == CPU_SHARES_MAX || cpu_shares_to_weight(s + 1) > w,
                "{s} is not the largest for {w}"
            );
            prev = s;
        }
    }
}
