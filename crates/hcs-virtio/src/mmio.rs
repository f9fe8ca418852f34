//! The virtio-mmio transport, version 2 (virtio 1.x, §4.2.2), modern only.
//!
//! The register file lives in a 4 KiB window; device configuration starts
//! at 0x100. Registers are 32 bits wide and must be accessed as such; other
//! accesses read as zero and are ignored on write. The transport checks the
//! driver's steps: features only while negotiating, `FEATURES_OK` only for
//! a subset of the offered features that includes `VIRTIO_F_VERSION_1`,
//! queues only between `FEATURES_OK` and `DRIVER_OK` and only with a
//! power-of-two size no larger than the maximum and rings inside guest
//! memory. A device that fails to start gets `DEVICE_NEEDS_RESET`.

use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use crate::device::{
    DeviceQueues, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::interrupt::{INT_CONFIG, INT_VRING};
use crate::{GuestMemoryMmap, Interrupt};

/// Size of a transport's MMIO window (what the integrator maps and
/// describes in ACPI).
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

/// "virt", little-endian.
const MAGIC: u32 = 0x7472_6976;
/// The modern transport.
const VERSION: u32 = 2;
/// Our vendor id: "HCSL" little-endian.
pub const VENDOR_ID: u32 = 0x4c53_4348;

/// Features the transport offers for every device.
const TRANSPORT_FEATURES: u64 =
    VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;

mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// The driver-visible state of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueRegs {
    max_size: u16,
    size: u32,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

impl QueueRegs {
    fn new(max_size: u16) -> QueueRegs {
        QueueRegs {
            max_size,
            size: u32::from(max_size),
            ..QueueRegs::default()
        }
    }

    /// A queue built from the registers, checked against `mem`.
    fn build(&self, mem: &GuestMemoryMmap) -> Result<Queue, String> {
        let mut q = Queue::new(self.max_size).map_err(|e| format!("max size: {e}"))?;
        let size = u16::try_from(self.size).map_err(|_| format!("size {} too large", self.size))?;
        q.try_set_size(size)
            .map_err(|_| format!("size {size} is not a power of two <= {}", self.max_size))?;
        q.try_set_desc_table_address(GuestAddress(self.desc))
            .map_err(|_| format!("descriptor table {:#x} misaligned", self.desc))?;
        q.try_set_avail_ring_address(GuestAddress(self.driver))
            .map_err(|_| format!("driver area {:#x} misaligned", self.driver))?;
        q.try_set_used_ring_address(GuestAddress(self.device))
            .map_err(|_| format!("device area {:#x} misaligned", self.device))?;
        q.set_ready(true);
        if !q.is_valid(mem) {
            return Err("rings are not inside guest memory".into());
        }
        Ok(q)
    }
}

/// A transport's registers, for save and restore. The queues' positions
/// are not part of it: a device never keeps a chain it popped between two
/// processing steps (every chain goes back to the used ring, or is pushed
/// back), so once the device is paused the next available and next used
/// indices both equal the used ring's index in guest memory, which a
/// restore reads from the restored memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportState {
    /// virtio device type, checked on restore.
    pub device_type: u32,
    /// The device status register.
    pub status: u32,
    /// The device feature selector.
    pub device_features_sel: u32,
    /// The driver feature selector.
    pub driver_features_sel: u32,
    /// The features the driver accepted.
    pub driver_features: u64,
    /// The queue selector.
    pub queue_sel: u32,
    /// The shared memory region selector.
    pub shm_sel: u32,
    /// Configuration generation.
    pub config_generation: u32,
    /// Interrupt status bits not yet acknowledged.
    pub interrupt_status: u32,
    /// Each queue's registers.
    pub queues: Vec<QueueRegs>,
}

/// A virtio-mmio transport in front of one device.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    unknown_features_acked: bool,
    queue_sel: u32,
    queues: Vec<QueueRegs>,
    shm_sel: u32,
    config_generation: u32,
    active: bool,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("device_type", &self.device.device_type())
            .field("status", &format_args!("{:#x}", self.status))
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl MmioTransport {
    /// A transport for `device`, whose queues live in `mem` and whose
    /// interrupts go through `interrupt`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&m| QueueRegs::new(m))
            .collect();
        MmioTransport {
            device,
            mem,
            interrupt,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            unknown_features_acked: false,
            queue_sel: 0,
            queues,
            shm_sel: 0,
            config_generation: 0,
            active: false,
        }
    }

    /// The device behind the transport.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// The device behind the transport, mutably (for device-specific
    /// requests, e.g. a vsock transport reset).
    pub fn device_mut(&mut self) -> &mut dyn VirtioDevice {
        self.device.as_mut()
    }

    /// The transport's interrupt.
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the device is running (the driver set `DRIVER_OK` and the
    /// device started).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Offered features: the device's and the transport's.
    fn offered_features(&self) -> u64 {
        self.device.features() | TRANSPORT_FEATURES
    }

    /// The guest reads `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            data.fill(0);
            self.device.read_config(offset - reg::CONFIG, data);
            return;
        }
        if data.len() != 4 || offset % 4 != 0 {
            tracing::debug!(
                offset,
                len = data.len(),
                "virtio-mmio: bad register read size"
            );
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
    }

    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            // No shared memory regions: length all ones means "none".
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => {
                tracing::debug!(
                    offset,
                    "virtio-mmio: read of a write-only or unknown register"
                );
                0
            }
        }
    }

    /// The guest writes `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            if self.status & VIRTIO_CONFIG_S_DRIVER != 0 {
                self.device.write_config(offset - reg::CONFIG, data);
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            tracing::debug!(
                offset,
                len = data.len(),
                "virtio-mmio: bad register write size"
            );
            return;
        };
        if offset % 4 != 0 {
            return;
        }
        self.write_reg(offset, u32::from_le_bytes(bytes));
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => self.write_driver_features(v),
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => self.with_queue_setup(|q| q.size = v),
            reg::QUEUE_READY => self.write_queue_ready(v),
            reg::QUEUE_NOTIFY => self.notify_write(v),
            reg::INTERRUPT_ACK => self.interrupt.ack(v),
            reg::STATUS => self.write_status(v),
            reg::QUEUE_DESC_LOW => self.with_queue_setup(|q| set_low(&mut q.desc, v)),
            reg::QUEUE_DESC_HIGH => self.with_queue_setup(|q| set_high(&mut q.desc, v)),
            reg::QUEUE_DRIVER_LOW => self.with_queue_setup(|q| set_low(&mut q.driver, v)),
            reg::QUEUE_DRIVER_HIGH => self.with_queue_setup(|q| set_high(&mut q.driver, v)),
            reg::QUEUE_DEVICE_LOW => self.with_queue_setup(|q| set_low(&mut q.device, v)),
            reg::QUEUE_DEVICE_HIGH => self.with_queue_setup(|q| set_high(&mut q.device, v)),
            reg::SHM_SEL => self.shm_sel = v,
            _ => tracing::debug!(
                offset,
                "virtio-mmio: write to a read-only or unknown register"
            ),
        }
    }

    fn selected_queue(&self) -> Option<&QueueRegs> {
        self.queues.get(self.queue_sel as usize)
    }

    /// Apply `f` to the selected queue if the driver may configure it now:
    /// after `FEATURES_OK`, before `DRIVER_OK`, while the queue is not ready.
    fn with_queue_setup(&mut self, f: impl FnOnce(&mut QueueRegs)) {
        let setup = self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0
            && self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0;
        match self.queues.get_mut(self.queue_sel as usize) {
            Some(q) if setup && !q.ready => f(q),
            _ => tracing::debug!(
                queue = self.queue_sel,
                status = self.status,
                "virtio-mmio: queue write ignored"
            ),
        }
    }

    fn write_queue_ready(&mut self, v: u32) {
        let mem = self.mem.clone();
        let sel = self.queue_sel;
        let setup = self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0
            && self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0;
        let Some(q) = self.queues.get_mut(sel as usize) else {
            return;
        };
        if !setup {
            tracing::debug!(
                queue = sel,
                "virtio-mmio: QueueReady outside queue setup ignored"
            );
            return;
        }
        if v == 0 {
            q.ready = false;
            return;
        }
        match q.build(&mem) {
            Ok(_) => q.ready = true,
            Err(e) => tracing::warn!(
                queue = sel,
                "virtio-mmio: the driver enabled an invalid queue: {e}"
            ),
        }
    }

    fn write_driver_features(&mut self, v: u32) {
        let negotiating = self.status & VIRTIO_CONFIG_S_DRIVER != 0
            && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        if !negotiating {
            tracing::debug!(
                status = self.status,
                "virtio-mmio: feature write outside negotiation ignored"
            );
            return;
        }
        match self.driver_features_sel {
            0 => set_low(&mut self.driver_features, v),
            1 => set_high(&mut self.driver_features, v),
            // Bits beyond 63 are never offered: accepting one is an error,
            // caught at FEATURES_OK.
            _ => self.unknown_features_acked |= v != 0,
        }
    }

    fn notify_write(&mut self, v: u32) {
        if !self.active {
            tracing::debug!(queue = v, "virtio-mmio: notify before DRIVER_OK ignored");
            return;
        }
        match u16::try_from(v) {
            Ok(index) if usize::from(index) < self.queues.len() => self.queue_notify(index),
            _ => tracing::debug!(
                queue = v,
                "virtio-mmio: notify of a queue that does not exist"
            ),
        }
    }

    /// Queue `index` was notified: by a `QueueNotify` write, or by the
    /// integrator's ioeventfd handling.
    pub fn queue_notify(&mut self, index: u16) {
        if self.active {
            self.device.queue_notify(index);
        }
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        if old & !v != 0 {
            tracing::debug!(
                old,
                new = v,
                "virtio-mmio: the driver cleared status bits; ignored"
            );
            return;
        }
        let added = v & !old;
        let mut new = v;
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 && !self.features_acceptable(new) {
            new &= !VIRTIO_CONFIG_S_FEATURES_OK;
        }
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            if new & VIRTIO_CONFIG_S_FEATURES_OK == 0 || new & VIRTIO_CONFIG_S_FAILED != 0 {
                tracing::warn!(
                    status = new,
                    "virtio-mmio: DRIVER_OK without FEATURES_OK; ignored"
                );
                new &= !VIRTIO_CONFIG_S_DRIVER_OK;
            } else if let Err(e) = self.activate() {
                tracing::warn!(
                    device = self.device.device_type(),
                    "virtio-mmio: device failed to start: {e}"
                );
                new |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.status = new;
                self.interrupt.signal_config_change();
                return;
            }
        }
        self.status = new;
    }

    /// Whether the driver may set `FEATURES_OK` now with its features.
    fn features_acceptable(&self, status: u32) -> bool {
        let offered = self.offered_features();
        let ok_order =
            status & VIRTIO_CONFIG_S_ACKNOWLEDGE != 0 && status & VIRTIO_CONFIG_S_DRIVER != 0;
        let subset = self.driver_features & !offered == 0 && !self.unknown_features_acked;
        let modern = self.driver_features & VIRTIO_F_VERSION_1 != 0;
        if !(ok_order && subset && modern) {
            tracing::warn!(
                offered = format_args!("{offered:#x}"),
                acked = format_args!("{:#x}", self.driver_features),
                "virtio-mmio: refusing FEATURES_OK (out of order, not a subset, or without VERSION_1)"
            );
        }
        ok_order && subset && modern
    }

    fn activate(&mut self) -> Result<(), String> {
        self.start_device(false)
    }

    /// The device configuration changed: bump the generation and tell the
    /// driver.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt.signal_config_change();
    }

    /// The registers, for a save (pause the device first).
    pub fn state(&self) -> TransportState {
        TransportState {
            device_type: self.device.device_type(),
            status: self.status,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            driver_features: self.driver_features,
            queue_sel: self.queue_sel,
            shm_sel: self.shm_sel,
            config_generation: self.config_generation,
            interrupt_status: self.interrupt.status(),
            queues: self.queues.clone(),
        }
    }

    /// Load saved registers into a fresh transport whose guest memory is
    /// the restored one; a device the driver had started is started again
    /// where its queues stood. Refuses a state of another device type or
    /// queue layout.
    pub fn restore(&mut self, s: &TransportState) -> Result<(), String> {
        if s.device_type != self.device.device_type() {
            return Err(format!(
                "saved device type {} is not this device's ({})",
                s.device_type,
                self.device.device_type()
            ));
        }
        let maxes: Vec<u16> = self.queues.iter().map(|q| q.max_size).collect();
        let saved: Vec<u16> = s.queues.iter().map(|q| q.max_size).collect();
        if maxes != saved {
            return Err(format!(
                "saved queues {saved:?} do not match this device's {maxes:?}"
            ));
        }
        self.reset();
        self.device_features_sel = s.device_features_sel;
        self.driver_features_sel = s.driver_features_sel;
        self.driver_features = s.driver_features;
        self.queue_sel = s.queue_sel;
        self.shm_sel = s.shm_sel;
        self.config_generation = s.config_generation;
        self.queues = s.queues.clone();
        if s.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.start_device(true)?;
        }
        self.status = s.status;
        // Pending interrupt reasons: raise the line again so none is lost.
        if s.interrupt_status & INT_VRING != 0 {
            self.interrupt.signal_used_queue();
        }
        if s.interrupt_status & INT_CONFIG != 0 {
            self.interrupt.signal_config_change();
        }
        Ok(())
    }

    /// Start the device with the queues the driver set up; with
    /// `at_used_index` (a restore), every ready queue resumes at the used
    /// ring's index in guest memory (see [`TransportState`]).
    fn start_device(&mut self, at_used_index: bool) -> Result<(), String> {
        let event_idx = self.driver_features & VIRTIO_RING_F_EVENT_IDX != 0;
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, regs) in self.queues.iter().enumerate() {
            let q = if regs.ready {
                let mut q = regs
                    .build(&self.mem)
                    .map_err(|e| format!("queue {i}: {e}"))?;
                q.set_event_idx(event_idx);
                if at_used_index {
                    let used = q
                        .used_idx(&self.mem, std::sync::atomic::Ordering::Acquire)
                        .map_err(|e| format!("queue {i}: reading the used index: {e}"))?;
                    q.set_next_avail(used.0);
                    q.set_next_used(used.0);
                }
                q
            } else {
                Queue::new(regs.max_size).map_err(|e| format!("queue {i}: {e}"))?
            };
            queues.push(q);
        }
        self.device
            .activate(DeviceQueues {
                mem: self.mem.clone(),
                queues,
                interrupt: self.interrupt.clone(),
                acked_features: self.driver_features,
            })
            .map_err(|e| e.to_string())?;
        self.active = true;
        if at_used_index {
            self.device.restored();
        }
        Ok(())
    }

    /// Device reset (the driver wrote 0 to `Status`).
    pub fn reset(&mut self) {
        if self.active || self.status != 0 {
            self.device.reset();
        }
        self.active = false;
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.unknown_features_acked = false;
        self.queue_sel = 0;
        self.shm_sel = 0;
        for q in &mut self.queues {
            *q = QueueRegs::new(q.max_size);
        }
        self.interrupt.clear();
    }
}

fn set_low(field: &mut u64, v: u32) {
    *field = (*field & !0xffff_ffff) | u64::from(v);
}

fn set_high(field: &mut u64, v: u32) {
    *field = (*field & 0xffff_ffff) | (u64::from(v) << 32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ActivateError;
    use crate::testing::{counting_interrupt, memory, MEM_SIZE};
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log {
        activations: usize,
        resets: usize,
        notified: Vec<u16>,
        ready_queues: Vec<bool>,
        acked: u64,
    }

    struct Dummy {
        log: Arc<Mutex<Log>>,
        fail: bool,
    }

    impl VirtioDevice for Dummy {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 8]
        }
        fn features(&self) -> u64 {
            1 << 3
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            crate::block::copy_config(&0x1122_3344_5566_7788u64.to_le_bytes(), offset, data);
        }
        fn activate(&mut self, q: DeviceQueues) -> Result<(), ActivateError> {
            if self.fail {
                return Err(ActivateError::QueueNotReady(1));
            }
            let mut log = self.log.lock().unwrap();
            log.activations += 1;
            log.ready_queues = q.queues.iter().map(|q| q.ready()).collect();
            log.acked = q.acked_features;
            Ok(())
        }
        fn queue_notify(&mut self, index: u16) {
            self.log.lock().unwrap().notified.push(index);
        }
        fn reset(&mut self) {
            self.log.lock().unwrap().resets += 1;
        }
    }

    fn transport(fail: bool) -> (MmioTransport, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let (irq, _) = counting_interrupt();
        let dev = Dummy {
            log: log.clone(),
            fail,
        };
        (MmioTransport::new(Box::new(dev), memory(), irq), log)
    }

    fn r(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    const S_ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
    const S_DRV: u32 = VIRTIO_CONFIG_S_DRIVER;
    const S_FOK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
    const S_DOK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;

    /// Negotiate `features`; returns the status after FEATURES_OK.
    fn negotiate(t: &mut MmioTransport, features: u64) -> u32 {
        w(t, reg::STATUS, S_ACK);
        w(t, reg::STATUS, S_ACK | S_DRV);
        w(t, reg::DRIVER_FEATURES_SEL, 0);
        w(t, reg::DRIVER_FEATURES, features as u32);
        w(t, reg::DRIVER_FEATURES_SEL, 1);
        w(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
        w(t, reg::STATUS, S_ACK | S_DRV | S_FOK);
        r(t, reg::STATUS)
    }

    fn setup_queue(t: &mut MmioTransport, sel: u32, size: u32, base: u64) -> u32 {
        w(t, reg::QUEUE_SEL, sel);
        w(t, reg::QUEUE_NUM, size);
        w(t, reg::QUEUE_DESC_LOW, base as u32);
        w(t, reg::QUEUE_DESC_HIGH, (base >> 32) as u32);
        w(t, reg::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
        w(t, reg::QUEUE_DRIVER_HIGH, ((base + 0x1000) >> 32) as u32);
        w(t, reg::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
        w(t, reg::QUEUE_DEVICE_HIGH, ((base + 0x2000) >> 32) as u32);
        w(t, reg::QUEUE_READY, 1);
        r(t, reg::QUEUE_READY)
    }

    #[test]
    fn identity_registers() {
        let (mut t, _) = transport(false);
        assert_eq!(r(&mut t, reg::MAGIC), 0x7472_6976);
        assert_eq!(r(&mut t, reg::VERSION), 2);
        assert_eq!(r(&mut t, reg::DEVICE_ID), 42);
        assert_eq!(r(&mut t, reg::VENDOR_ID), VENDOR_ID);
        let mut two = [0xffu8; 2];
        t.read(reg::MAGIC, &mut two);
        assert_eq!(two, [0, 0], "registers are 32-bit only");
        let mut b = [0u8; 4];
        t.read(0x7, &mut b);
        assert_eq!(b, [0; 4], "misaligned register read");
    }

    #[test]
    fn features_are_offered_by_selector() {
        let (mut t, _) = transport(false);
        w(&mut t, reg::DEVICE_FEATURES_SEL, 0);
        let low = r(&mut t, reg::DEVICE_FEATURES);
        assert_eq!(low & (1 << 3), 1 << 3);
        assert_ne!(low & (1 << 29), 0, "EVENT_IDX");
        w(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut t, reg::DEVICE_FEATURES), 1, "VERSION_1");
        w(&mut t, reg::DEVICE_FEATURES_SEL, 2);
        assert_eq!(r(&mut t, reg::DEVICE_FEATURES), 0);
    }

    #[test]
    fn features_ok_only_for_a_modern_subset() {
        let (mut t, _) = transport(false);
        assert_eq!(negotiate(&mut t, 1 << 3) & S_FOK, 0, "no VERSION_1");
        w(&mut t, reg::STATUS, 0);
        assert_eq!(
            negotiate(&mut t, VIRTIO_F_VERSION_1 | 1 << 4) & S_FOK,
            0,
            "not offered"
        );
        w(&mut t, reg::STATUS, 0);
        assert_ne!(negotiate(&mut t, VIRTIO_F_VERSION_1 | 1 << 3) & S_FOK, 0);
        // No more feature changes after FEATURES_OK.
        w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut t, reg::DRIVER_FEATURES, 0xffff_ffff);
        assert_eq!(t.driver_features, VIRTIO_F_VERSION_1 | 1 << 3);
    }

    #[test]
    fn feature_bits_beyond_64_spoil_negotiation() {
        let (mut t, _) = transport(false);
        w(&mut t, reg::STATUS, S_ACK | S_DRV);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 2);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(&mut t, reg::STATUS, S_ACK | S_DRV | S_FOK);
        assert_eq!(r(&mut t, reg::STATUS) & S_FOK, 0);
    }

    #[test]
    fn queues_are_checked_when_enabled() {
        let (mut t, _) = transport(false);
        // Before FEATURES_OK queue writes are ignored.
        assert_eq!(setup_queue(&mut t, 0, 16, 0x10000), 0);
        negotiate(&mut t, VIRTIO_F_VERSION_1);
        w(&mut t, reg::QUEUE_SEL, 0);
        assert_eq!(r(&mut t, reg::QUEUE_NUM_MAX), 16);
        w(&mut t, reg::QUEUE_SEL, 5);
        assert_eq!(r(&mut t, reg::QUEUE_NUM_MAX), 0, "no such queue");
        assert_eq!(setup_queue(&mut t, 0, 12, 0x10000), 0, "not a power of two");
        assert_eq!(setup_queue(&mut t, 0, 32, 0x10000), 0, "above the maximum");
        assert_eq!(setup_queue(&mut t, 0, 0, 0x10000), 0, "empty");
        assert_eq!(
            setup_queue(&mut t, 0, 16, MEM_SIZE - 0x1000),
            0,
            "rings outside memory"
        );
        assert_eq!(
            setup_queue(&mut t, 0, 16, 0x1_0000_0000_0000),
            0,
            "far outside memory"
        );
        assert_eq!(setup_queue(&mut t, 0, 16, 0x10008), 0, "misaligned table");
        assert_eq!(setup_queue(&mut t, 0, 16, 0x10000), 1);
        // A ready queue can no longer be changed.
        w(&mut t, reg::QUEUE_NUM, 4);
        assert_eq!(t.queues[0].size, 16);
        assert_eq!(setup_queue(&mut t, 9, 16, 0x20000), 0, "no such queue");
    }

    #[test]
    fn driver_ok_activates_and_notifications_reach_the_device() {
        let (mut t, log) = transport(false);
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        negotiate(&mut t, VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
        assert_eq!(setup_queue(&mut t, 0, 8, 0x10000), 1);
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        assert!(
            log.lock().unwrap().notified.is_empty(),
            "no notifications before DRIVER_OK"
        );
        w(&mut t, reg::STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
        assert!(t.is_active());
        assert_eq!(r(&mut t, reg::STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
        w(&mut t, reg::QUEUE_NOTIFY, 1);
        w(&mut t, reg::QUEUE_NOTIFY, 7);
        w(&mut t, reg::QUEUE_NOTIFY, 0x1_0000);
        let l = log.lock().unwrap();
        assert_eq!(l.activations, 1);
        assert_eq!(l.ready_queues, vec![true, false]);
        assert_eq!(l.acked, VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
        assert_eq!(l.notified, vec![1]);
    }

    #[test]
    fn driver_ok_without_features_ok_is_refused() {
        let (mut t, log) = transport(false);
        w(&mut t, reg::STATUS, S_ACK | S_DRV);
        w(&mut t, reg::STATUS, S_ACK | S_DRV | S_DOK);
        assert!(!t.is_active());
        assert_eq!(r(&mut t, reg::STATUS) & S_DOK, 0);
        assert_eq!(log.lock().unwrap().activations, 0);
    }

    #[test]
    fn failed_activation_asks_for_a_reset() {
        let (mut t, _) = transport(true);
        negotiate(&mut t, VIRTIO_F_VERSION_1);
        w(&mut t, reg::STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
        assert!(!t.is_active());
        assert_ne!(r(&mut t, reg::STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        assert_ne!(
            r(&mut t, reg::INTERRUPT_STATUS) & crate::interrupt::INT_CONFIG,
            0
        );
    }

    #[test]
    fn reset_clears_everything() {
        let (mut t, log) = transport(false);
        negotiate(&mut t, VIRTIO_F_VERSION_1);
        setup_queue(&mut t, 0, 8, 0x10000);
        w(&mut t, reg::STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
        t.interrupt().signal_used_queue();
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 1);
        w(&mut t, reg::STATUS, 0);
        assert_eq!(log.lock().unwrap().resets, 1);
        assert_eq!(r(&mut t, reg::STATUS), 0);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 0);
        w(&mut t, reg::QUEUE_SEL, 0);
        assert_eq!(r(&mut t, reg::QUEUE_READY), 0);
        assert!(!t.is_active());
        assert_eq!(t.driver_features, 0);
    }

    #[test]
    fn clearing_status_bits_is_ignored() {
        let (mut t, _) = transport(false);
        negotiate(&mut t, VIRTIO_F_VERSION_1);
        w(&mut t, reg::STATUS, S_ACK);
        assert_eq!(r(&mut t, reg::STATUS), S_ACK | S_DRV | S_FOK);
    }

    #[test]
    fn interrupt_status_and_ack() {
        let log = Arc::new(Mutex::new(Log::default()));
        let (irq, fired) = counting_interrupt();
        let mut t = MmioTransport::new(Box::new(Dummy { log, fail: false }), memory(), irq.clone());
        irq.signal_used_queue();
        irq.signal_config_change();
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 3);
        w(&mut t, reg::INTERRUPT_ACK, 1);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 2);
        t.config_changed();
        assert_eq!(r(&mut t, reg::CONFIG_GENERATION), 1);
    }

    #[test]
    fn config_space_window() {
        let (mut t, _) = transport(false);
        let mut b1 = [0u8; 1];
        t.read(0x100, &mut b1);
        assert_eq!(b1, [0x88]);
        let mut b2 = [0u8; 2];
        t.read(0x106, &mut b2);
        assert_eq!(b2, [0x22, 0x11]);
        let mut b8 = [0u8; 8];
        t.read(0x100, &mut b8);
        assert_eq!(u64::from_le_bytes(b8), 0x1122_3344_5566_7788);
        let mut far = [0xffu8; 4];
        t.read(0x200, &mut far);
        assert_eq!(far, [0; 4]);
    }

    #[test]
    fn no_shared_memory_regions() {
        let (mut t, _) = transport(false);
        assert_eq!(r(&mut t, reg::SHM_LEN_LOW), u32::MAX);
        assert_eq!(r(&mut t, reg::SHM_LEN_HIGH), u32::MAX);
    }

    #[test]
    fn random_register_traffic_never_panics() {
        let (mut t, _) = transport(false);
        let mut rng = crate::testing::Rng(0x1234_5678);
        for _ in 0..20_000 {
            let off = rng.below(0x140);
            let len = [1usize, 2, 4, 8][rng.below(4) as usize];
            if rng.below(2) == 0 {
                let mut b = vec![0u8; len];
                t.read(off, &mut b);
            } else {
                let v = rng.next().to_le_bytes();
                // Bias towards the status register so activation happens.
                let off = if rng.below(8) == 0 { reg::STATUS } else { off };
                t.write(off, &v[..len]);
            }
        }
    }
}
