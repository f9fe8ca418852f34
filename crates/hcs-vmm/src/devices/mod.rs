//! Devices of the VM and the buses that route guest port and MMIO
//! accesses to them.
//!
//! An access that no device claims is logged (rate-limited) and ignored —
//! reads return all ones, as on real hardware — and is never fatal.

pub mod legacy;
pub mod power;
pub mod serial;
pub mod virtio;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A device on a bus. `offset` is relative to the start of its range.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A shared device.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Why a device could not be placed on a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The range is empty or wraps around.
    #[error("empty or wrapping device range at {base:#x} (length {len})")]
    BadRange { base: u64, len: u64 },
    /// The range overlaps another device's.
    #[error("device range {base:#x}+{len:#x} overlaps another device")]
    Overlap { base: u64, len: u64 },
}

/// Address ranges to devices, for the I/O port space or MMIO.
#[derive(Default)]
pub struct Bus {
    name: &'static str,
    devices: BTreeMap<u64, (u64, SharedDevice)>,
    unclaimed: AtomicU64,
    /// Unclaimed accesses by address (the first [`UNCLAIMED_TALLY_LIMIT`]
    /// addresses), so a log can say what the guest looked for.
    tally: Mutex<BTreeMap<u64, u64>>,
}

/// Log at most this many unclaimed accesses per bus (then only count them).
const UNCLAIMED_LOG_LIMIT: u64 = 32;
/// Count unclaimed accesses separately for at most this many addresses.
const UNCLAIMED_TALLY_LIMIT: usize = 64;

impl Bus {
    /// An empty bus; `name` is for logs ("pio", "mmio").
    pub fn new(name: &'static str) -> Bus {
        Bus {
            name,
            devices: BTreeMap::new(),
            unclaimed: AtomicU64::new(0),
            tally: Mutex::new(BTreeMap::new()),
        }
    }

    /// Put `device` at `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        if let Some((&b, &(l, _))) = self.devices.range(..end).next_back() {
            if b + l > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.devices.insert(base, (len, device));
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, &SharedDevice)> {
        let (&base, (len, dev)) = self.devices.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset.checked_add(size as u64)? <= *len).then_some((offset, dev))
    }

    /// Route a read; unclaimed reads return all ones.
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => lock(dev).read(offset, data),
            None => {
                self.note_unclaimed("read", addr, data.len());
                data.fill(0xff);
            }
        }
    }

    /// Route a write; unclaimed writes are dropped.
    pub fn write(&self, addr: u64, data: &[u8]) {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => lock(dev).write(offset, data),
            None => self.note_unclaimed("write", addr, data.len()),
        }
    }

    fn note_unclaimed(&self, what: &str, addr: u64, size: usize) {
        let n = self.unclaimed.fetch_add(1, Ordering::Relaxed);
        {
            let mut tally = lock(&self.tally);
            if let Some(count) = tally.get_mut(&addr) {
                *count += 1;
            } else if tally.len() < UNCLAIMED_TALLY_LIMIT {
                tally.insert(addr, 1);
            }
        }
        if n < UNCLAIMED_LOG_LIMIT {
            tracing::debug!(
                bus = self.name,
                addr = format_args!("{addr:#x}"),
                size,
                "guest {what} to nothing: ignored"
            );
        } else if n == UNCLAIMED_LOG_LIMIT {
            tracing::debug!(
                bus = self.name,
                "more guest accesses to nothing; no longer logging them"
            );
        }
    }

    /// The bus's name, for logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How many accesses reached no device.
    pub fn unclaimed_accesses(&self) -> u64 {
        self.unclaimed.load(Ordering::Relaxed)
    }

    /// Unclaimed accesses by address, in address order, for the first
    /// addresses seen (see [`Bus::unclaimed_accesses`] for the total).
    pub fn unclaimed_by_address(&self) -> Vec<(u64, u64)> {
        lock(&self.tally).iter().map(|(&a, &n)| (a, n)).collect()
    }
}

/// Lock a device, shrugging off poisoning: a device whose code panicked
/// under the lock is still in a state the guest can talk to.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(Vec<u8>);
    impl BusDevice for Scratch {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.0.get(offset as usize + i).copied().unwrap_or(0);
            }
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                if let Some(slot) = self.0.get_mut(offset as usize + i) {
                    *slot = *b;
                }
            }
        }
    }

    #[test]
    fn routes_by_range_and_ignores_the_rest() {
        let mut bus = Bus::new("test");
        bus.insert(0x100, 4, Arc::new(Mutex::new(Scratch(vec![0; 4]))))
            .unwrap();
        assert_eq!(
            bus.insert(0x102, 4, Arc::new(Mutex::new(Scratch(vec![])))),
            Err(BusError::Overlap {
                base: 0x102,
                len: 4
            })
        );
        assert_eq!(
            bus.insert(0xfe, 4, Arc::new(Mutex::new(Scratch(vec![])))),
            Err(BusError::Overlap { base: 0xfe, len: 4 })
        );
        assert!(bus
            .insert(u64::MAX, 2, Arc::new(Mutex::new(Scratch(vec![]))))
            .is_err());
        bus.write(0x101, &[7, 8]);
        let mut b = [0u8; 2];
        bus.read(0x101, &mut b);
        assert_eq!(b, [7, 8]);
        // Straddling the end of the range, or outside it: nobody answers.
        bus.read(0x103, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        bus.write(0x200, &[1]);
        bus.write(0x200, &[2]);
        assert_eq!(bus.unclaimed_accesses(), 3);
        assert_eq!(bus.unclaimed_by_address(), vec![(0x103, 1), (0x200, 2)]);
    }
}
