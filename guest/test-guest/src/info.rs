//! What the guest learns from the zero page and the ACPI tables.
//!
//! Filled in by the parser (which runs in ring 3, see `main.rs`), read by the
//! ring-0 code afterwards. Plain data only, so it is also usable by host tests.

/// Longest command line kept (Linux's COMMAND_LINE_SIZE on x86).
pub const CMDLINE_MAX: usize = 2048;
/// DSDT devices recorded (only those with a `_HID` or `_CRS`).
pub const MAX_DEVICES: usize = 48;
/// Problems recorded for the console.
pub const MAX_PROBLEMS: usize = 12;
/// MADT interrupt source overrides kept.
pub const MAX_ISOS: usize = 16;
/// Longest `_HID` string kept.
pub const HID_MAX: usize = 16;

/// One DSDT device.
#[derive(Clone, Copy)]
pub struct Device {
    /// `_HID`, decoded to text (EISAID → "PNP0501").
    pub hid: [u8; HID_MAX],
    pub hid_len: u8,
    /// Last NameSeg of the device's path.
    pub name: [u8; 4],
    /// First I/O range of `_CRS`.
    pub io: Option<u16>,
    pub io_len: u16,
    /// First memory range of `_CRS`.
    pub mem: Option<u64>,
    pub mem_len: u64,
    /// First interrupt of `_CRS` (ISA IRQ for 0x22/0x23, GSI for 0x89).
    pub irq: Option<u32>,
    /// Interrupt flags: bit 1 edge-triggered, bit 2 active-low (ACPI 0x89 layout).
    pub irq_flags: u8,
    /// The interrupt came from an IRQ descriptor (0x22/0x23): an ISA IRQ,
    /// subject to the MADT overrides. Otherwise (0x89) it is a GSI.
    pub irq_isa: bool,
    /// First SystemMemory OperationRegion declared inside the device.
    pub region: Option<u64>,
}

impl Device {
    pub const EMPTY: Device = Device {
        hid: [0; HID_MAX],
        hid_len: 0,
        name: [0; 4],
        io: None,
        io_len: 0,
        mem: None,
        mem_len: 0,
        irq: None,
        irq_flags: 0,
        irq_isa: false,
        region: None,
    };

    /// The `_HID` as bytes.
    pub fn hid(&self) -> &[u8] {
        crate::bytes::sub(&self.hid, 0, self.hid_len as usize)
    }

    /// Does the `_HID` equal `id`?
    pub fn is(&self, id: &[u8]) -> bool {
        crate::bytes::bytes_eq(self.hid(), id)
    }
}

/// ACPI Generic Address Structure.
#[derive(Clone, Copy)]
#[allow(dead_code)] // width/offset/access: kept for completeness; accesses are bytes.
pub struct Gas {
    /// 0 = SystemMemory, 1 = SystemIO.
    pub space: u8,
    pub width: u8,
    pub offset: u8,
    pub access: u8,
    pub addr: u64,
}

pub const GAS_MEMORY: u8 = 0;
pub const GAS_IO: u8 = 1;

/// What went wrong with a table (printed by the kernel as `ACPI <sig> <what>`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum What {
    NotFound,
    BadChecksum,
    BadLength,
    BadSignature,
    OutOfReach,
    TooManyDevices,
}

#[derive(Clone, Copy)]
pub struct Problem {
    pub sig: [u8; 4],
    pub what: What,
}

/// MADT interrupt source override.
#[derive(Clone, Copy)]
pub struct Iso {
    pub irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

pub struct Info {
    pub cmdline: [u8; CMDLINE_MAX],
    pub cmdline_len: usize,
    /// Where the RSDP was found (0 = nowhere) and whether by scanning.
    pub rsdp: u64,
    pub rsdp_scanned: bool,
    pub fadt: bool,
    pub madt: bool,
    pub dsdt: bool,
    /// Enabled Local APICs (MADT types 0 and 9).
    pub cpus: u32,
    pub lapic: u64,
    pub ioapic: Option<u64>,
    pub ioapic_gsi_base: u32,
    pub isos: [Iso; MAX_ISOS],
    pub iso_count: usize,
    pub devices: [Device; MAX_DEVICES],
    pub dev_count: usize,
    /// SLP_TYP of `_S5_`.
    pub s5: Option<u8>,
    pub hw_reduced: bool,
    pub sleep_ctl: Option<Gas>,
    pub reset_reg: Option<Gas>,
    pub reset_value: u8,
    /// PM1a control block (I/O port), for non-hardware-reduced FADTs.
    pub pm1a_cnt: u32,
    pub problems: [Problem; MAX_PROBLEMS],
    pub problem_count: usize,
    /// Problems that did not fit.
    pub problems_dropped: u32,
}

impl Info {
    pub const fn new() -> Info {
        Info {
            cmdline: [0; CMDLINE_MAX],
            cmdline_len: 0,
            rsdp: 0,
            rsdp_scanned: false,
            fadt: false,
            madt: false,
            dsdt: false,
            cpus: 0,
            lapic: 0xfee0_0000,
            ioapic: None,
            ioapic_gsi_base: 0,
            isos: [Iso {
                irq: 0,
                gsi: 0,
                flags: 0,
            }; MAX_ISOS],
            iso_count: 0,
            devices: [Device::EMPTY; MAX_DEVICES],
            dev_count: 0,
            s5: None,
            hw_reduced: false,
            sleep_ctl: None,
            reset_reg: None,
            reset_value: 0,
            pm1a_cnt: 0,
            problems: [Problem {
                sig: [0; 4],
                what: What::NotFound,
            }; MAX_PROBLEMS],
            problem_count: 0,
            problems_dropped: 0,
        }
    }

    pub fn problem(&mut self, sig: &[u8; 4], what: What) {
        match self.problems.get_mut(self.problem_count) {
            Some(p) => {
                *p = Problem { sig: *sig, what };
                self.problem_count += 1;
            }
            None => self.problems_dropped += 1,
        }
    }

    pub fn cmdline(&self) -> &[u8] {
        crate::bytes::sub(&self.cmdline, 0, self.cmdline_len)
    }

    pub fn devices(&self) -> &[Device] {
        match self.devices.get(..self.dev_count) {
            Some(d) => d,
            None => &self.devices,
        }
    }

    /// First device with this `_HID`.
    pub fn find(&self, id: &[u8]) -> Option<&Device> {
        self.devices().iter().find(|d| d.is(id))
    }

    /// Number of devices with this `_HID`.
    pub fn count(&self, id: &[u8]) -> usize {
        self.devices().iter().filter(|d| d.is(id)).count()
    }

    /// ISA IRQ → (GSI, override flags) through the MADT overrides.
    pub fn isa_to_gsi(&self, irq: u32) -> (u32, u16) {
        let n = self.iso_count.min(MAX_ISOS);
        for iso in self.isos.iter().take(n) {
            if iso.irq as u32 == irq {
                return (iso.gsi, iso.flags);
            }
        }
        (irq, 0)
    }
}

impl Default for Info {
    fn default() -> Self {
        Info::new()
    }
}
