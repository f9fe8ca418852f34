//! I/O limits of a VM's disks (`VirtualMachine.StorageQoS`): two token
//! buckets, operations and bytes, each refilled at its rate per second and
//! holding at most one second's worth, as Firecracker's rate limiter does.
//!
//! A request goes ahead when every bucket holds its cost (one operation, its
//! bytes) and takes it; a request larger than a second's worth goes when the
//! bucket is full and leaves it in debt, which what follows waits out.
//! Over any interval the disks therefore move at most one second's worth
//! plus the rate times the interval. One limiter may be shared by several
//! disks: the limits are the VM's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where time comes from (a test clock in tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoLimits {
    /// Requests per second (`IopsMaximum`); `None` or 0: unlimited.
    pub iops: Option<u64>,
    /// Bytes of data per second (`BandwidthMaximum`); `None` or 0: unlimited.
    pub bandwidth: Option<u64>,
}

const NANOS: i128 = 1_000_000_000;

#[derive(Debug)]
struct Bucket {
    /// Refill per second, and the most it holds.
    rate: u64,
    /// Tokens in billionths (so that refills lose nothing to rounding);
    /// negative is debt.
    nano_tokens: i128,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate,
            nano_tokens: i128::from(rate) * NANOS,
        }
    }

    fn refill(&mut self, elapsed: Duration) {
        let add = i128::from(self.rate) * elapsed.as_nanos() as i128;
        self.nano_tokens = (self.nano_tokens + add).min(i128::from(self.rate) * NANOS);
    }

    fn take(&mut self, cost: u64) {
        self.nano_tokens -= i128::from(cost) * NANOS;
    }

    /// How long until the bucket holds enough for `cost` (a cost above
    /// the bucket's size needs a full bucket).
    fn wait(&self, cost: u64) -> Duration {
        let needed = i128::from(cost.min(self.rate)) * NANOS;
        if self.nano_tokens >= needed {
            return Duration::ZERO;
        }
        // Round up: after this long the bucket holds enough.
        let rate = i128::from(self.rate.max(1));
        let nanos = (needed - self.nano_tokens + rate - 1) / rate;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[derive(Debug)]
struct State {
    ops: Option<Bucket>,
    bytes: Option<Bucket>,
    last: Instant,
}

/// The token buckets of one VM's disks.
pub struct IoLimiter {
    limits: IoLimits,
    state: Mutex<State>,
    clock: Clock,
}

impl std::fmt::Debug for IoLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl IoLimiter {
    /// A limiter on the monotonic clock; `None` when nothing is limited.
    pub fn new(limits: IoLimits) -> Option<Arc<IoLimiter>> {
        IoLimiter::with_clock(limits, Arc::new(Instant::now))
    }

    /// A limiter reading time from `clock`.
    pub fn with_clock(limits: IoLimits, clock: Clock) -> Option<Arc<IoLimiter>> {
        let bucket = |r: Option<u64>| r.filter(|r| *r > 0).map(Bucket::new);
        let state = State {
            ops: bucket(limits.iops),
            bytes: bucket(limits.bandwidth),
            last: clock(),
        };
        if state.ops.is_none() && state.bytes.is_none() {
            return None;
        }
        Some(Arc::new(IoLimiter {
            limits,
            state: Mutex::new(state),
            clock,
        }))
    }

    /// The limits.
    pub fn limits(&self) -> IoLimits {
        self.limits
    }

    /// Take one request of `bytes` bytes of data, or say how long to wait
    /// before asking again.
    pub fn try_take(&self, bytes: u64) -> Result<(), Duration> {
        let now = (self.clock)();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        let elapsed = now.saturating_duration_since(s.last);
        s.last = s.last.max(now);
        for b in [&mut s.ops, &mut s.bytes].into_iter().flatten() {
            b.refill(elapsed);
        }
        let wait = [(&s.ops, 1), (&s.bytes, bytes)]
            .into_iter()
            .filter_map(|(b, cost)| b.as_ref().map(|b| b.wait(cost)))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(b) = &mut s.ops {
            b.take(1);
        }
        if let Some(b) = &mut s.bytes {
            b.take(bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when told, and the knob that moves it.
    pub(crate) fn fake_clock() -> (Clock, Arc<AtomicU64>) {
        let base = Instant::now();
        let nanos = Arc::new(AtomicU64::new(0));
        let n = nanos.clone();
        (
            Arc::new(move || base + Duration::from_nanos(n.load(Ordering::SeqCst))),
            nanos,
        )
    }

    #[test]
    fn nothing_limited_is_no_limiter() {
        assert!(IoLimiter::new(IoLimits::default()).is_none());
        assert!(IoLimiter::new(IoLimits {
            iops: Some(0),
            bandwidth: Some(0)
        })
        .is_none());
    }

    #[test]
    fn bandwidth_is_a_second_s_worth_then_the_rate() {
        let (clock, now) = fake_clock();
        let l = IoLimiter::with_clock(
            IoLimits {
                iops: None,
                bandwidth: Some(1000),
            },
            clock,
        )
        .unwrap();
        // A second's worth at once, then the bucket is empty.
        assert_eq!(l.try_take(600), Ok(()));
        assert_eq!(l.try_take(400), Ok(()));
        assert_eq!(l.try_take(0), Ok(()), "nothing to move: no wait");
        let wait = l.try_take(500).unwrap_err();
        assert!(
            wait > Duration::from_millis(499) && wait <= Duration::from_millis(501),
            "{wait:?}"
        );
        now.fetch_add(499_000_000, Ordering::SeqCst);
        assert!(l.try_take(500).is_err());
        now.fetch_add(1_000_001, Ordering::SeqCst);
        assert_eq!(l.try_take(500), Ok(()));
        // Larger than a second's worth: waits for a full bucket, then goes
        // and leaves a debt.
        now.fetch_add(400_000_000, Ordering::SeqCst);
        assert!(l.try_take(1500).is_err());
        now.fetch_add(600_000_000, Ordering::SeqCst);
        assert_eq!(l.try_take(1500), Ok(()));
        let wait = l.try_take(1).unwrap_err();
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_millis(502),
            "{wait:?}"
        );
    }

    #[test]
    fn iops_counts_requests() {
        let (clock, now) = fake_clock();
        let l = IoLimiter::with_clock(
            IoLimits {
                iops: Some(2),
                bandwidth: None,
            },
            clock,
        )
        .unwrap();
        assert_eq!(l.try_take(1 << 20), Ok(()));
        assert_eq!(l.try_take(1 << 20), Ok(()));
        assert!(l.try_take(0).is_err());
        now.fetch_add(500_000_001, Ordering::SeqCst);
        assert_eq!(l.try_take(0), Ok(()));
        assert!(l.try_take(0).is_err());
    }
}
