//! The two PC port ranges Linux writes to even when ACPI says the device
//! behind them is absent, modelled just enough that those accesses reach a
//! device (and are not counted as accesses to nothing):
//!
//! * **CMOS NVRAM** at 0x70/0x71: Linux writes the "warm reset" shutdown
//!   code to CMOS byte 0x0f around each AP start-up (`CMOS_WRITE(0xa, 0xf)`,
//!   then 0), whatever the FADT says about the RTC. The device is 128 bytes
//!   of storage behind an index register, without a clock: the FADT tells
//!   the guest there is no CMOS RTC, so Linux reads no time from it.
//! * **PCI configuration mechanism #1** at 0xcf8–0xcff, with nothing on the
//!   bus: on AMD CPUs Linux looks for the northbridge (bus 0, device 0x18)
//!   through it even with `pci=off`. The address register holds what was
//!   written, as on hardware, and every configuration read finds no device
//!   (all ones), so Linux concludes there is no PCI.
//!
//! Their ports are [`crate::layout::CMOS_PORT`] and
//! [`crate::layout::PCI_CONFIG_PORT`]. Neither is saved with the VM: the CMOS byte is written and cleared around
//! each AP start, and the PCI address is rewritten before every data access.

use super::BusDevice;

/// CMOS bytes addressable through the index register (bit 7 of an index
/// write is the NMI mask, not part of the index).
const CMOS_BYTES: usize = 128;

/// CMOS NVRAM without a clock; see the module documentation.
pub struct Cmos {
    index: u8,
    bytes: [u8; CMOS_BYTES],
}

impl Cmos {
    /// Zeroed NVRAM.
    pub fn new() -> Cmos {
        Cmos {
            index: 0,
            bytes: [0; CMOS_BYTES],
        }
    }
}

impl Default for Cmos {
    fn default() -> Self {
        Cmos::new()
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // The index register is write-only on PCs.
        let value = match offset {
            1 => self.bytes[usize::from(self.index)],
            _ => 0xff,
        };
        data.fill(value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            0 => self.index = value & 0x7f,
            1 => self.bytes[usize::from(self.index)] = value,
            _ => {}
        }
    }
}

/// PCI configuration mechanism #1 with an empty bus; see the module
/// documentation.
#[derive(Default)]
pub struct PciConfigNone {
    address: u32,
}

impl PciConfigNone {
    /// No address selected.
    pub fn new() -> PciConfigNone {
        PciConfigNone::default()
    }
}

impl BusDevice for PciConfigNone {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data.len()) {
            // The address register reads back as written (only 32-bit
            // accesses reach it, as on hardware).
            (0, 4) => data.copy_from_slice(&self.address.to_le_bytes()),
            // Configuration data, or bytes of the address range: no device.
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (0, Ok(bytes)) = (offset, <[u8; 4]>::try_from(data)) {
            self.address = u32::from_le_bytes(bytes);
        }
        // Configuration data writes go to no device.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmos_stores_bytes_behind_its_index() {
        let mut cmos = Cmos::new();
        // Linux's CMOS_WRITE(0xa, 0xf), with the NMI mask bit set.
        cmos.write(0, &[0x8f]);
        cmos.write(1, &[0x0a]);
        cmos.write(0, &[0x0e]);
        cmos.write(1, &[0x33]);
        let mut b = [0u8];
        cmos.write(0, &[0x0f]);
        cmos.read(1, &mut b);
        assert_eq!(b[0], 0x0a);
        cmos.write(0, &[0x0e]);
        cmos.read(1, &mut b);
        assert_eq!(b[0], 0x33);
        cmos.read(0, &mut b);
        assert_eq!(b[0], 0xff, "the index register is write-only");
    }

    #[test]
    fn pci_config_reads_find_no_device() {
        let mut pci = PciConfigNone::new();
        // Bus 0, device 0x18, function 0, register 0 (vendor and device id).
        let address: u32 = 0x8000_0000 | (0x18 << 11);
        pci.write(0, &address.to_le_bytes());
        let mut d = [0u8; 4];
        pci.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), address);
        pci.read(4, &mut d);
        assert_eq!(d, [0xff; 4]);
        let mut w = [0u8; 2];
        pci.read(6, &mut w);
        assert_eq!(w, [0xff; 2]);
        // Byte accesses to the address range (configuration mechanism #2)
        // neither latch nor read back, so that mechanism is not found.
        pci.write(0, &[0]);
        let mut b = [0u8];
        pci.read(0, &mut b);
        assert_eq!(b[0], 0xff);
        pci.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), address);
    }
}
