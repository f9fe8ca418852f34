//! virtio-mmio transports (crate `hcs-virtio`) on the VM's MMIO bus: where
//! each goes, its interrupt, and the adapter to [`BusDevice`].

use std::sync::{Arc, Mutex};

use hcs_virtio::{
    Block, BlockConfig, Interrupt, MmioTransport, Net, NetConfig, VirtioDevice, Vsock, VsockConfig,
};
use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

use super::{Bus, BusDevice};
use crate::layout;

/// At most this many transports: GSIs 16..=23 are the IOAPIC's last pins.
pub const MAX_VIRTIO_DEVICES: usize = 8;

/// The virtio devices a VM has.
#[derive(Debug, Clone, Default)]
pub struct VirtioConfig {
    /// A vsock device (hybrid unix-socket backend), first when present.
    pub vsock: Option<VsockConfig>,
    /// Block devices, in order.
    pub disks: Vec<BlockConfig>,
    /// Network adapters (virtio-net over existing taps), in order, after
    /// the disks.
    pub nets: Vec<NetConfig>,
}

/// Why a virtio device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VirtioSetupError {
    /// More devices than interrupt pins.
    #[error("{0} virtio devices requested; at most {MAX_VIRTIO_DEVICES} are supported")]
    TooMany(usize),
    /// A disk image could not be opened.
    #[error("disk {path}: {source}")]
    Disk {
        path: std::path::PathBuf,
        source: hcs_virtio::DiskError,
    },
    /// The vsock device could not be set up.
    #[error(transparent)]
    Vsock(#[from] hcs_virtio::VsockError),
    /// A network adapter's tap could not be attached.
    #[error("network adapter: {source}")]
    Net {
        tap: String,
        source: hcs_virtio::NetError,
    },
    /// The interrupt could not be wired.
    #[error("wiring a virtio interrupt: {0}")]
    Irq(String),
    /// The MMIO window is taken.
    #[error("placing a virtio transport: {0}")]
    Bus(#[from] super::BusError),
}

impl VirtioConfig {
    /// The devices, in the order their windows are handed out.
    fn open(&self) -> Result<Vec<Box<dyn VirtioDevice>>, VirtioSetupError> {
        // Before opening anything (a tap attached in vain is busy meanwhile).
        if self.count() > MAX_VIRTIO_DEVICES {
            return Err(VirtioSetupError::TooMany(self.count()));
        }
        let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
        if let Some(v) = &self.vsock {
            devices.push(Box::new(Vsock::new(v)?));
        }
        for d in &self.disks {
            let block = Block::open(d).map_err(|source| VirtioSetupError::Disk {
                path: d.path.clone(),
                source,
            })?;
            devices.push(Box::new(block));
        }
        for n in &self.nets {
            let net = Net::new(n).map_err(|source| VirtioSetupError::Net {
                tap: n.tap.clone(),
                source,
            })?;
            devices.push(Box::new(net));
        }
        if devices.len() > MAX_VIRTIO_DEVICES {
            return Err(VirtioSetupError::TooMany(devices.len()));
        }
        Ok(devices)
    }

    /// Number of transports.
    pub fn count(&self) -> usize {
        usize::from(self.vsock.is_some()) + self.disks.len() + self.nets.len()
    }

    /// (MMIO base, GSI) of each transport, as the ACPI tables describe them.
    pub fn windows(&self) -> Vec<(u64, u32)> {
        (0..self.count())
            .map(|i| {
                (
                    layout::VIRTIO_MMIO_START + i as u64 * layout::VIRTIO_MMIO_SIZE,
                    layout::VIRTIO_MMIO_FIRST_GSI + i as u32,
                )
            })
            .collect()
    }
}

/// A transport as a bus device.
pub struct VirtioMmio(MmioTransport);

/// A transport on the bus, shared with the VM for save and restore.
pub type SharedTransport = Arc<Mutex<VirtioMmio>>;

impl VirtioMmio {
    /// Stop the device touching guest memory (for a save).
    pub fn pause(&mut self) {
        self.0.device_mut().pause();
    }

    /// Let it work again.
    pub fn resume(&mut self) {
        self.0.device_mut().resume();
    }

    /// Reset the device (its thread ends and its host-side state goes).
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The transport's registers.
    pub fn state(&self) -> hcs_virtio::mmio::TransportState {
        self.0.state()
    }

    /// Load saved registers and restart the device where it stood.
    pub fn restore(&mut self, s: &hcs_virtio::mmio::TransportState) -> Result<(), String> {
        self.0.restore(s)
    }
}

impl BusDevice for VirtioMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data);
    }
}

/// Open the devices, wire their interrupts as irqfds, and put their
/// transports on `mmio`; returns the transports, in window order.
pub fn attach(
    cfg: &VirtioConfig,
    vm: &VmFd,
    mem: &vm_memory::GuestMemoryMmap,
    mmio: &mut Bus,
) -> Result<Vec<SharedTransport>, VirtioSetupError> {
    let mut transports = Vec::new();
    let devices = cfg.open()?;
    for (device, (base, gsi)) in devices.into_iter().zip(cfg.windows()) {
        let irq =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| VirtioSetupError::Irq(e.to_string()))?;
        vm.register_irqfd(&irq, gsi)
            .map_err(|e| VirtioSetupError::Irq(e.to_string()))?;
        let transport = MmioTransport::new(device, mem.clone(), Arc::new(Interrupt::new(irq)));
        let shared = Arc::new(Mutex::new(VirtioMmio(transport)));
        mmio.insert(base, layout::VIRTIO_MMIO_SIZE, shared.clone())?;
        transports.push(shared);
    }
    Ok(transports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(tap: &str) -> NetConfig {
        NetConfig {
            tap: tap.into(),
            mac: hcs_virtio::MacAddress([0x02, 0, 0, 0, 0, 1]),
        }
    }

    #[test]
    fn nets_get_windows_after_vsock_and_disks() {
        let cfg = VirtioConfig {
            vsock: Some(VsockConfig {
                guest_cid: 3,
                uds_path: "/nonexistent/v.sock".into(),
                policy: Default::default(),
            }),
            disks: vec![BlockConfig {
                path: "/nonexistent.img".into(),
                read_only: true,
                id: "d".into(),
                options: Default::default(),
            }],
            nets: vec![net("tap-a"), net("tap-b")],
        };
        assert_eq!(cfg.count(), 4);
        let w = cfg.windows();
        assert_eq!(w.len(), 4);
        assert_eq!(
            w[3],
            (
                layout::VIRTIO_MMIO_START + 3 * layout::VIRTIO_MMIO_SIZE,
                layout::VIRTIO_MMIO_FIRST_GSI + 3
            )
        );
    }

    #[test]
    fn too_many_devices_are_refused_before_any_is_opened() {
        let cfg = VirtioConfig {
            nets: (0..=MAX_VIRTIO_DEVICES)
                .map(|i| net(&format!("hcsnone{i}")))
                .collect(),
            ..VirtioConfig::default()
        };
        let e = cfg.open().err().expect("refused");
        assert!(matches!(e, VirtioSetupError::TooMany(9)), "{e}");
    }

    #[test]
    fn a_missing_tap_is_refused() {
        let cfg = VirtioConfig {
            nets: vec![net("hcsnone-missing")],
            ..VirtioConfig::default()
        };
        let e = cfg.open().err().expect("refused");
        assert!(
            matches!(
                e,
                VirtioSetupError::Net {
                    source: hcs_virtio::NetError::Tap(hcs_virtio::TapError::NotFound(_)),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
