//! Helpers shared by the fuzz targets.

/// How many descriptors this process has open. The targets compare it
/// before and after an input: a parser that leaks a descriptor per hostile
/// input lets a client exhaust a monitor's table, so that is a crash too.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Fails the input when it changed the number of open descriptors.
pub struct FdGuard(usize);

impl FdGuard {
    /// Count now.
    pub fn new() -> FdGuard {
        FdGuard(open_fds())
    }

    /// Panic if the count moved.
    pub fn check(self) {
        let now = open_fds();
        assert_eq!(now, self.0, "the input leaked {} descriptor(s)", now as isize - self.0 as isize);
    }
}

impl Default for FdGuard {
    fn default() -> Self {
        FdGuard::new()
    }
}
