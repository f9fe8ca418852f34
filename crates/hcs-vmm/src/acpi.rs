//! ACPI tables for the guest: RSDP → XSDT → FADT (→ DSDT) and MADT.
//!
//! Debian's cloud kernel has no MP-table parser and no `virtio_mmio.device=`
//! command-line parser, so ACPI is the only way it learns about its CPUs,
//! its interrupt controllers and its virtio-mmio transports. The platform is
//! *hardware-reduced* ACPI: no PM1 blocks, no SCI, no GPEs, no FACS. Events
//! come through a Generic Event Device instead, and sleep/reset go through the
//! FADT's SLEEP_CONTROL / RESET registers.
//!
//! All tables are built with the `acpi_tables` crate (0.2.1). What it lacks
//! is written by hand here: the MADT's Interrupt Source Override entries and
//! its flags word (PCAT_COMPAT); see `build_madt`.
//!
//! # Guest memory
//!
//! [`build_tables`] returns blobs to be copied into guest RAM, starting with
//! the RSDP at [`RSDP_ADDR`] and the other tables packed after it at 16-byte
//! boundaries, all below [`layout::ACPI_TABLES_END`]. That range must be RAM
//! that the e820 map marks reserved. Put [`RSDP_ADDR`] in
//! `boot_params.acpi_rsdp_addr`; Linux also finds it by scanning
//! 0xe0000..0x100000.
//!
//! # What the devices must implement
//!
//! The tables promise the guest a few registers; the device code implements
//! them:
//!
//! * **Power off**: Linux writes `(SLP_TYP << 2) | SLP_EN` (one byte) to
//!   [`layout::ACPI_SLEEP_CONTROL_PORT`], where SLP_TYP comes from the DSDT's
//!   `_S5_` package ([`layout::ACPI_S5_SLP_TYP`]) and SLP_EN is bit 5. So a
//!   write of [`SLEEP_CONTROL_S5`] means "power off now". Reads of
//!   [`layout::ACPI_SLEEP_STATUS_PORT`] may return 0.
//! * **Reset**: Linux writes [`layout::ACPI_RESET_VALUE`] (one byte) to
//!   [`layout::ACPI_RESET_PORT`] (`reboot=acpi`, Linux's first choice).
//! * **pvpanic**: the guest writes a byte to [`layout::PVPANIC_PORT`]
//!   (bit 0: panicked, bit 1: crash loaded); reads should return the
//!   supported bits (`0b11`).
//! * **Graceful power-off request (Generic Event Device)**, see below.
//!
//! # GED register protocol
//!
//! The GED (`_HID "ACPI0013"`) owns one 8-bit register at
//! [`layout::GED_MMIO_START`] (the window is [`layout::GED_MMIO_SIZE`] bytes;
//! the other bytes read 0 and ignore writes) and the interrupt
//! [`layout::GED_GSI`], which is **level-triggered, active-high**. Its
//! `_CRS` holds the interrupt alone (Linux's acpi-ged parses every entry as
//! one); the register is declared only by the `OperationRegion` `_EVT` reads.
//!
//! * The device keeps a byte of *pending* event bits. Bit 0 is
//!   [`GED_EVENT_POWER_BUTTON`]; bits 1–7 are reserved and always 0.
//! * To send an event the VMM ORs its bit into *pending* and asserts the GSI.
//!   The line stays asserted as long as *pending* is non-zero.
//! * A guest **read returns the pending bits and clears them** (atomically
//!   with respect to new events), and the device then deasserts the line.
//!   An event that arrives after the read sets its bit again and re-asserts
//!   the line. Guest writes are ignored.
//! * With KVM, drive the line with `KVM_IRQ_LINE` (level 1, then 0 on the
//!   clearing read), or with an irqfd plus resample eventfd that re-asserts
//!   while *pending* is non-zero.
//!
//! The guest side: Linux's `acpi-ged` driver runs `_EVT` from a threaded,
//! one-shot handler; `_EVT` reads the register once and, if bit 0 is set,
//! does `Notify (\_SB.PWRB, 0x80)`. The ACPI button driver turns that into a
//! KEY_POWER press, and systemd-logind (or acpid) shuts the guest down, which
//! ends in the SLEEP_CONTROL write above.

use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags, FADT};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;

use crate::layout;

/// Address of the RSDP (for `boot_params.acpi_rsdp_addr`).
pub const RSDP_ADDR: u64 = layout::RSDP_START;

/// GED event bit: the power button was pressed (the VMM asks the guest to
/// power off gracefully). See the module documentation for the protocol.
pub const GED_EVENT_POWER_BUTTON: u8 = 1;

/// The byte Linux writes to [`layout::ACPI_SLEEP_CONTROL_PORT`] to enter S5
/// (soft off): SLP_TYP in bits 2–4, SLP_EN in bit 5.
pub const SLEEP_CONTROL_S5: u8 = ((layout::ACPI_S5_SLP_TYP & 0x7) << 2) | (1 << 5);

/// Most vCPUs the tables can describe: xAPIC ids are 8 bits, 0xff is the
/// broadcast id, and the I/O APIC takes the id after the last vCPU.
pub const MAX_VCPUS: u8 = 254;

/// OEM table id of every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"HCSVM   ";

/// OEM revision of every table.
pub const OEM_REVISION: u32 = 1;

/// FADT "hypervisor vendor identity" (ACPI 6.0+).
pub const HYPERVISOR_VENDOR_ID: [u8; 8] = *b"HCSLINUX";

/// Alignment of each table after the RSDP.
const TABLE_ALIGN: u64 = 16;

/// Pins of KVM's in-kernel I/O APIC (KVM_IOAPIC_NUM_PINS); a GSI beyond them
/// can never be delivered, so the tables refuse it.
const IOAPIC_PINS: u32 = 24;

/// ISA IRQs are 0..16; only they can have MADT interrupt source overrides.
const ISA_IRQS: u32 = 16;

/// IAPC_BOOT_ARCH bit 2: do not probe for VGA.
const IAPC_BOOT_ARCH_VGA_NOT_PRESENT: u16 = 1 << 2;
/// IAPC_BOOT_ARCH bit 5 (ACPI 5.0A+): there is no CMOS RTC at 0x70/0x71.
const IAPC_BOOT_ARCH_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// MADT flags bit 0: the system also has dual 8259s (Linux expects it on PCs).
const MADT_PCAT_COMPAT: u32 = 1;
/// MADT revision for ACPI 6.3+.
const MADT_REVISION: u8 = 5;
/// MADT header: standard header, local APIC address, flags.
const MADT_HEADER_LEN: u32 = 44;
/// MPS INTI flags: active high (bits 0–1 = 01), level (bits 2–3 = 11).
const MPS_INTI_ACTIVE_HIGH_LEVEL: u16 = 0b1101;
/// MPS INTI flags: conforms to the bus (ISA: edge, active high).
const MPS_INTI_CONFORMS: u16 = 0;

/// DSDT revision 2 or more means 64-bit AML integers.
const DSDT_REVISION: u8 = 2;
/// Length of a bare ACPI table header.
const SDT_HEADER_LEN: u32 = 36;

/// The resource descriptors take 32-bit and 8-bit values; check the layout
/// constants fit at compile time rather than truncating them.
const LAPIC_ADDR: u32 = {
    assert!(layout::APIC_START <= u32::MAX as u64);
    layout::APIC_START as u32
};
const IOAPIC_ADDR: u32 = {
    assert!(layout::IOAPIC_START <= u32::MAX as u64);
    layout::IOAPIC_START as u32
};
const GED_ADDR: u32 = {
    assert!(layout::GED_MMIO_START + layout::GED_MMIO_SIZE <= 1 << 32);
    layout::GED_MMIO_START as u32
};
const VIRTIO_MMIO_LEN: u32 = {
    assert!(layout::VIRTIO_MMIO_SIZE <= u32::MAX as u64);
    layout::VIRTIO_MMIO_SIZE as u32
};
const SERIAL_LEN: u8 = {
    assert!(layout::SERIAL_PORT_SIZE <= u8::MAX as u16);
    layout::SERIAL_PORT_SIZE as u8
};
/// The legacy timer GSI (ISA IRQ 0 is wired to I/O APIC pin 2 on PCs).
const TIMER_GSI: u32 = 2;

/// What the guest has, for the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Number of vCPUs: one enabled MADT Local APIC entry each, with APIC id
    /// and ACPI processor UID equal to the vCPU index. 1..=[`MAX_VCPUS`].
    pub vcpus: u8,
    /// Indices into [`layout::SERIAL_PORTS`] of the serial ports present
    /// (the ComPorts keys).
    pub serial_ports: Vec<u8>,
    /// (base address, GSI) of each virtio-mmio transport; each window is
    /// [`layout::VIRTIO_MMIO_SIZE`] bytes.
    pub virtio_mmio: Vec<(u64, u32)>,
    /// OEM id written in every table, e.g. `*b"HCSLNX"`.
    pub oem_id: [u8; 6],
}

impl AcpiConfig {
    /// Converts a vCPU count to the `vcpus` field, refusing what the tables
    /// cannot describe (0, or more than [`MAX_VCPUS`]) instead of truncating.
    pub fn checked_vcpus(count: usize) -> Result<u8, AcpiError> {
        match u8::try_from(count) {
            Ok(0) => Err(AcpiError::NoCpus),
            Ok(n) if n <= MAX_VCPUS => Ok(n),
            _ => Err(AcpiError::TooManyCpus {
                requested: count,
                max: MAX_VCPUS,
            }),
        }
    }
}

/// Why the ACPI tables could not be built.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AcpiError {
    /// A VM needs at least one vCPU.
    #[error("the ACPI tables need at least one vCPU")]
    NoCpus,
    /// More vCPUs than 8-bit xAPIC ids allow.
    #[error("{requested} vCPUs requested, but xAPIC ACPI tables describe at most {max}")]
    TooManyCpus {
        /// vCPUs asked for.
        requested: usize,
        /// The limit, [`MAX_VCPUS`].
        max: u8,
    },
    /// A serial port index that is not in `layout::SERIAL_PORTS`.
    #[error("serial port index {index} is not one of the {count} legacy COM ports")]
    UnknownSerialPort {
        /// The index given.
        index: u8,
        /// How many ports exist.
        count: usize,
    },
    /// The same serial port listed twice.
    #[error("serial port index {0} is listed twice")]
    DuplicateSerialPort(u8),
    /// A virtio-mmio window not entirely below 4 GiB (`Memory32Fixed`).
    #[error("virtio-mmio window at {base:#x} does not lie below 4 GiB")]
    MmioAbove4G {
        /// Base address of the window.
        base: u64,
    },
    /// A virtio-mmio GSI the I/O APIC does not have.
    #[error("GSI {gsi} is beyond the I/O APIC's {pins} pins")]
    GsiOutOfRange {
        /// The GSI given.
        gsi: u32,
        /// Number of I/O APIC pins.
        pins: u32,
    },
    /// A virtio-mmio GSI already used by another device.
    #[error("GSI {gsi} of a virtio-mmio device is already used by another device")]
    GsiInUse {
        /// The GSI given twice.
        gsi: u32,
    },
    /// The tables do not fit in the reserved range.
    #[error("the ACPI tables need {needed} bytes but only {available} are reserved")]
    TooLarge {
        /// Bytes from the RSDP to the end of the last table.
        needed: u64,
        /// Bytes from the RSDP to `layout::ACPI_TABLES_END`.
        available: u64,
    },
}

/// Build all tables; returns (guest address, bytes) blobs to write into
/// guest memory, in address order: the RSDP at [`RSDP_ADDR`], then the XSDT,
/// FADT, MADT and DSDT, each 16-byte aligned, all below
/// [`layout::ACPI_TABLES_END`].
pub fn build_tables(cfg: &AcpiConfig) -> Result<Vec<(u64, Vec<u8>)>, AcpiError> {
    let vcpus = AcpiConfig::checked_vcpus(usize::from(cfg.vcpus))?;
    let serials = serial_ports(&cfg.serial_ports)?;
    check_virtio_mmio(&cfg.virtio_mmio, &serials)?;

    // Table sizes do not depend on the addresses, so lay them out first.
    let dsdt = build_dsdt(cfg.oem_id, &serials, &cfg.virtio_mmio);
    let madt = build_madt(cfg.oem_id, vcpus);
    let xsdt_len = build_xsdt(cfg.oem_id, &[0, 0]).len();

    let mut cursor = RSDP_ADDR;
    let mut place = |len: usize| {
        let addr = cursor.next_multiple_of(TABLE_ALIGN);
        cursor = addr + len as u64;
        addr
    };
    let rsdp_addr = place(Rsdp::len());
    let xsdt_addr = place(xsdt_len);
    let fadt_addr = place(FADT::len());
    let madt_addr = place(madt.len());
    let dsdt_addr = place(dsdt.len());
    let end = cursor;
    if end > layout::ACPI_TABLES_END {
        return Err(AcpiError::TooLarge {
            needed: end - RSDP_ADDR,
            available: layout::ACPI_TABLES_END - RSDP_ADDR,
        });
    }

    let fadt = build_fadt(cfg.oem_id, dsdt_addr);
    let xsdt = build_xsdt(cfg.oem_id, &[fadt_addr, madt_addr]);
    let rsdp = to_bytes(&Rsdp::new(cfg.oem_id, xsdt_addr));
    debug_assert_eq!(xsdt.len(), xsdt_len);

    tracing::debug!(
        rsdp = format_args!("{rsdp_addr:#x}"),
        xsdt = format_args!("{xsdt_addr:#x}"),
        fadt = format_args!("{fadt_addr:#x}"),
        madt = format_args!("{madt_addr:#x}"),
        dsdt = format_args!("{dsdt_addr:#x}"),
        end = format_args!("{end:#x}"),
        "ACPI tables laid out"
    );
    Ok(vec![
        (rsdp_addr, rsdp),
        (xsdt_addr, xsdt),
        (fadt_addr, fadt),
        (madt_addr, madt),
        (dsdt_addr, dsdt),
    ])
}

/// A present serial port: (index, I/O base, IRQ, IRQ shared with another
/// present port).
type SerialPort = (u8, u16, u32, bool);

/// Resolves and checks the serial port indices.
fn serial_ports(indices: &[u8]) -> Result<Vec<SerialPort>, AcpiError> {
    let mut ports: Vec<SerialPort> = Vec::with_capacity(indices.len());
    for &index in indices {
        let &(base, irq) =
            layout::SERIAL_PORTS
                .get(usize::from(index))
                .ok_or(AcpiError::UnknownSerialPort {
                    index,
                    count: layout::SERIAL_PORTS.len(),
                })?;
        if ports.iter().any(|p| p.0 == index) {
            return Err(AcpiError::DuplicateSerialPort(index));
        }
        ports.push((index, base, irq, false));
    }
    // COM1/COM3 and COM2/COM4 share an IRQ; say so, so that Linux's 8250
    // driver requests it as shared.
    let irqs: Vec<u32> = ports.iter().map(|p| p.2).collect();
    for port in &mut ports {
        port.3 = irqs.iter().filter(|&&irq| irq == port.2).count() > 1;
    }
    Ok(ports)
}

/// Checks that each virtio-mmio window fits `Memory32Fixed` and that each GSI
/// exists and is not taken (the transports' interrupts are exclusive).
fn check_virtio_mmio(devices: &[(u64, u32)], serials: &[SerialPort]) -> Result<(), AcpiError> {
    let mut used: Vec<u32> = vec![0, TIMER_GSI, layout::I8042_IRQ, layout::GED_GSI];
    used.extend(serials.iter().map(|p| p.2));
    for &(base, gsi) in devices {
        if base
            .checked_add(layout::VIRTIO_MMIO_SIZE)
            .is_none_or(|end| end > 1 << 32)
        {
            return Err(AcpiError::MmioAbove4G { base });
        }
        if gsi >= IOAPIC_PINS {
            return Err(AcpiError::GsiOutOfRange {
                gsi,
                pins: IOAPIC_PINS,
            });
        }
        if used.contains(&gsi) {
            return Err(AcpiError::GsiInUse { gsi });
        }
        used.push(gsi);
    }
    Ok(())
}

/// Serializes an `acpi_tables` object.
fn to_bytes(object: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    object.to_aml_bytes(&mut bytes);
    bytes
}

/// XSDT listing `entries` (FADT and MADT; the DSDT is reached through the FADT).
fn build_xsdt(oem_id: [u8; 6], entries: &[u64]) -> Vec<u8> {
    let mut xsdt = XSDT::new(oem_id, OEM_TABLE_ID, OEM_REVISION);
    for &entry in entries {
        xsdt.add_entry(entry);
    }
    to_bytes(&xsdt)
}

/// An 8-bit SystemIO register.
fn io_register(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        port.into(),
    )
}

/// FADT (revision 6.5) of a hardware-reduced platform.
fn build_fadt(oem_id: [u8; 6], dsdt_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(oem_id, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        // No fixed-feature buttons: the power button is the PWRB device.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    // No VGA, no CMOS RTC, and (bit 1, "8042 present", left clear) no
    // keyboard controller for Linux's input drivers: Linux then probes none
    // of them (under emulation the RTC's probe took 4.4 s and the i8042's
    // 1.4 s, both failing). The guest's clock is kvmclock. The i8042's
    // reset line stays on port 0x64 for `reboot=k`, which does not look at
    // this flag.
    fadt.iapc_boot_arch =
        (IAPC_BOOT_ARCH_VGA_NOT_PRESENT | IAPC_BOOT_ARCH_CMOS_RTC_NOT_PRESENT).into();
    fadt.reset_reg = io_register(layout::ACPI_RESET_PORT);
    fadt.reset_value = layout::ACPI_RESET_VALUE;
    fadt.sleep_control_reg = io_register(layout::ACPI_SLEEP_CONTROL_PORT);
    fadt.sleep_status_reg = io_register(layout::ACPI_SLEEP_STATUS_PORT);
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(HYPERVISOR_VENDOR_ID).into();
    to_bytes(&fadt.finalize())
}

/// MADT Interrupt Source Override (type 2, 10 bytes), written by hand because
/// `acpi_tables` 0.2.1 has no such structure (its MADT is only generic enough
/// for APIC/GIC/RISC-V controller entries).
fn interrupt_source_override(isa_irq: u8, gsi: u32, mps_inti_flags: u16) -> [u8; 10] {
    let mut entry = [0u8; 10];
    entry[0] = 2; // type
    entry[1] = 10; // length
    entry[2] = 0; // bus: ISA
    entry[3] = isa_irq;
    entry[4..8].copy_from_slice(&gsi.to_le_bytes());
    entry[8..10].copy_from_slice(&mps_inti_flags.to_le_bytes());
    entry
}

/// MADT: local APICs, one I/O APIC and the ISA interrupt overrides.
///
/// Built on the crate's generic `Sdt` (which keeps length and checksum right)
/// rather than its `MADT`, because that one cannot set the MADT flags
/// (PCAT_COMPAT) nor hold an interrupt source override.
fn build_madt(oem_id: [u8; 6], vcpus: u8) -> Vec<u8> {
    let mut madt = Sdt::new(
        *b"APIC",
        MADT_HEADER_LEN,
        MADT_REVISION,
        oem_id,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    madt.write_u32(36, LAPIC_ADDR);
    madt.write_u32(40, MADT_PCAT_COMPAT);
    for id in 0..vcpus {
        madt.append_slice(&to_bytes(&ProcessorLocalApic::new(
            id,
            id,
            EnabledStatus::Enabled,
        )));
    }
    // The I/O APIC id follows the last local APIC id (they share a space).
    madt.append_slice(&to_bytes(&IoApic::new(vcpus, IOAPIC_ADDR, 0)));
    // ISA IRQ 0 (PIT) is on pin 2, as on every PC. (A hardware-reduced Linux
    // does not use the PIT, but the entry keeps the usual PC picture.)
    madt.append_slice(&interrupt_source_override(0, TIMER_GSI, MPS_INTI_CONFORMS));
    // The GED's GSI lies in the ISA range, whose default without an override
    // is edge/active-high. The GED is level-triggered so that an event cannot
    // be lost while the guest's one-shot handler runs; the override makes the
    // MADT agree with the GED's _CRS, since Linux prefers the MADT's word for
    // ISA IRQs (as PC firmware does for the SCI on IRQ 9).
    if layout::GED_GSI < ISA_IRQS {
        madt.append_slice(&interrupt_source_override(
            layout::GED_GSI as u8,
            layout::GED_GSI,
            MPS_INTI_ACTIVE_HIGH_LEVEL,
        ));
    }
    madt.as_slice().to_vec()
}

/// `Name (_STA, 0x0F)`: present, enabled, shown, functioning.
fn sta_present() -> aml::Name {
    aml::Name::new("_STA".into(), &0x0fu8)
}

/// A 16550 serial port (`PNP0501`).
fn serial_device(&(index, base, irq, shared): &SerialPort) -> Vec<u8> {
    let uid = u32::from(index) + 1;
    let io = aml::IO::new(base, base, 1, SERIAL_LEN);
    // Edge/active-high like every ISA device; shared when COM1/COM3 (or
    // COM2/COM4) are both present.
    let interrupt = aml::Interrupt::new(true, true, false, shared, irq);
    let crs = aml::ResourceTemplate::new(vec![&io, &interrupt]);
    to_bytes(&aml::Device::new(
        format!("COM{uid}").as_str().into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &uid),
            &sta_present(),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// pvpanic (`QEMU0001`), which Linux's pvpanic driver binds to.
fn pvpanic_device() -> Vec<u8> {
    let io = aml::IO::new(layout::PVPANIC_PORT, layout::PVPANIC_PORT, 1, 1);
    let crs = aml::ResourceTemplate::new(vec![&io]);
    to_bytes(&aml::Device::new(
        "PEVT".into(),
        vec![
            &aml::Name::new("_HID".into(), &"QEMU0001"),
            &sta_present(),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// The control-method power button (`PNP0C0C`) the GED notifies.
fn power_button_device() -> Vec<u8> {
    to_bytes(&aml::Device::new(
        "PWRB".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0C0C")),
            &aml::Name::new("_UID".into(), &aml::ONE),
        ],
    ))
}

/// The Generic Event Device (`ACPI0013`); see the module documentation for
/// its register protocol.
fn ged_device() -> Vec<u8> {
    let interrupt = aml::Interrupt::new(true, false, false, false, layout::GED_GSI);
    // The interrupt only: Linux's acpi-ged takes every _CRS entry for an
    // interrupt and refuses the device on a memory descriptor ("unable to
    // parse IRQ resource", -EINVAL). The register is reached through the
    // OperationRegion below, as Cloud Hypervisor's GED does.
    let crs = aml::ResourceTemplate::new(vec![&interrupt]);
    let region = aml::OpRegion::new(
        "GDST".into(),
        aml::OpRegionSpace::SystemMemory,
        &GED_ADDR,
        &1u8,
    );
    let field = aml::Field::new(
        "GDST".into(),
        aml::FieldAccessType::Byte,
        aml::FieldLockRule::NoLock,
        aml::FieldUpdateRule::WriteAsZeroes,
        vec![aml::FieldEntry::Named(*b"GDAT", 8)],
    );
    // Local0 = GDAT (the read clears the pending bits, so read it once)
    // Local1 = Local0 & GED_EVENT_POWER_BUTTON
    // If (Local1 == GED_EVENT_POWER_BUTTON) { Notify (\_SB.PWRB, 0x80) }
    let gdat = aml::Path::new("GDAT");
    let read = aml::Store::new(&aml::Local(0), &gdat);
    let mask = aml::And::new(&aml::Local(1), &aml::Local(0), &GED_EVENT_POWER_BUTTON);
    let pwrb = aml::Path::new("\\_SB_.PWRB");
    let notify = aml::Notify::new(&pwrb, &0x80u8);
    let is_power_button = aml::Equal::new(&aml::Local(1), &GED_EVENT_POWER_BUTTON);
    let on_power_button = aml::If::new(&is_power_button, vec![&notify]);
    let evt = aml::Method::new("_EVT".into(), 1, true, vec![&read, &mask, &on_power_button]);
    to_bytes(&aml::Device::new(
        "GED_".into(),
        vec![
            &aml::Name::new("_HID".into(), &"ACPI0013"),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
            &region,
            &field,
            &evt,
        ],
    ))
}

/// A virtio-mmio transport (`LNRO0005`), the only way Debian's kernels find
/// one (they lack `virtio_mmio.device=`).
fn virtio_mmio_device(uid: usize, base: u64, gsi: u32) -> Vec<u8> {
    // check_virtio_mmio made sure the window is below 4 GiB.
    let window = aml::Memory32Fixed::new(true, base as u32, VIRTIO_MMIO_LEN);
    // Edge-triggered, as Firecracker does: the transports signal through a
    // KVM irqfd, which injects one edge per notification and needs no
    // resample/EOI path; the driver re-reads InterruptStatus on each edge.
    let interrupt = aml::Interrupt::new(true, true, false, false, gsi);
    let crs = aml::ResourceTemplate::new(vec![&window, &interrupt]);
    let uid_value = uid as u64;
    // "V000".."V017": a 4-character name, since check_virtio_mmio allows at
    // most IOAPIC_PINS devices (one distinct GSI each).
    to_bytes(&aml::Device::new(
        format!("V{uid:03X}").as_str().into(),
        vec![
            &aml::Name::new("_HID".into(), &"LNRO0005"),
            &aml::Name::new("_UID".into(), &uid_value),
            // Cache-coherent DMA.
            &aml::Name::new("_CCA".into(), &aml::ONE),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// DSDT: the devices under `\_SB` and the `_S5_` package.
fn build_dsdt(oem_id: [u8; 6], serials: &[SerialPort], virtio_mmio: &[(u64, u32)]) -> Vec<u8> {
    let mut sb = Vec::new();
    for port in serials {
        sb.extend(serial_device(port));
    }
    sb.extend(pvpanic_device());
    sb.extend(power_button_device());
    sb.extend(ged_device());
    for (uid, &(base, gsi)) in virtio_mmio.iter().enumerate() {
        sb.extend(virtio_mmio_device(uid, base, gsi));
    }

    let mut body = aml::Scope::raw("\\_SB_".into(), sb);
    // SLP_TYPa, SLP_TYPb, reserved, reserved.
    body.extend(to_bytes(&aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![
            &layout::ACPI_S5_SLP_TYP,
            &aml::ZERO,
            &aml::ZERO,
            &aml::ZERO,
        ]),
    )));

    let mut dsdt = Sdt::new(
        *b"DSDT",
        SDT_HEADER_LEN,
        DSDT_REVISION,
        oem_id,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    dsdt.append_slice(&body);
    dsdt.as_slice().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vcpus: u8) -> AcpiConfig {
        AcpiConfig {
            vcpus,
            serial_ports: vec![0, 1],
            virtio_mmio: vec![
                (layout::VIRTIO_MMIO_START, layout::VIRTIO_MMIO_FIRST_GSI),
                (
                    layout::VIRTIO_MMIO_START + layout::VIRTIO_MMIO_SIZE,
                    layout::VIRTIO_MMIO_FIRST_GSI + 1,
                ),
            ],
            oem_id: *b"HCSLNX",
        }
    }

    fn u16_at(bytes: &[u8], offset: usize) -> u16 {
        u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap())
    }

    fn u32_at(bytes: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
    }

    fn u64_at(bytes: &[u8], offset: usize) -> u64 {
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    /// The blob whose first bytes are `signature`.
    fn find<'a>(blobs: &'a [(u64, Vec<u8>)], signature: &[u8]) -> (u64, &'a [u8]) {
        let found: Vec<_> = blobs
            .iter()
            .filter(|(_, bytes)| bytes.starts_with(signature))
            .collect();
        assert_eq!(found.len(), 1, "one {:?} table", signature);
        (found[0].0, &found[0].1)
    }

    /// (type, bytes) of each MADT interrupt controller structure.
    fn madt_structures(madt: &[u8]) -> Vec<(u8, &[u8])> {
        let mut structures = Vec::new();
        let mut offset = MADT_HEADER_LEN as usize;
        while offset < madt.len() {
            let len = usize::from(madt[offset + 1]);
            assert!(len >= 2 && offset + len <= madt.len(), "MADT entry length");
            structures.push((madt[offset], &madt[offset..offset + len]));
            offset += len;
        }
        structures
    }

    #[test]
    fn rsdp_is_first_and_points_to_the_xsdt() {
        let blobs = build_tables(&config(2)).unwrap();
        let (addr, rsdp) = (blobs[0].0, &blobs[0].1);
        assert_eq!(addr, RSDP_ADDR);
        assert_eq!(rsdp.len(), 36);
        assert_eq!(&rsdp[0..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[0..20]), 0, "ACPI 1.0 checksum");
        assert_eq!(sum(rsdp), 0, "extended checksum");
        assert_eq!(&rsdp[9..15], b"HCSLNX");
        assert_eq!(rsdp[15], 2, "revision");
        assert_eq!(u32_at(rsdp, 16), 0, "no RSDT");
        assert_eq!(u32_at(rsdp, 20), 36, "length");
        let (xsdt_addr, _) = find(&blobs, b"XSDT");
        assert_eq!(u64_at(rsdp, 24), xsdt_addr);
    }

    #[test]
    fn xsdt_lists_fadt_and_madt_only() {
        let blobs = build_tables(&config(2)).unwrap();
        let (_, xsdt) = find(&blobs, b"XSDT");
        let (fadt_addr, _) = find(&blobs, b"FACP");
        let (madt_addr, _) = find(&blobs, b"APIC");
        assert_eq!(xsdt.len(), 36 + 2 * 8);
        assert_eq!(u32_at(xsdt, 4) as usize, xsdt.len());
        assert_eq!(u64_at(xsdt, 36), fadt_addr);
        assert_eq!(u64_at(xsdt, 44), madt_addr);
    }

    #[test]
    fn madt_has_one_local_apic_per_vcpu() {
        for vcpus in [1u8, 2, 8] {
            let blobs = build_tables(&config(vcpus)).unwrap();
            let (_, madt) = find(&blobs, b"APIC");
            assert_eq!(u32_at(madt, 36), 0xfee0_0000, "local APIC address");
            assert_eq!(u32_at(madt, 40), 1, "PCAT_COMPAT");
            let structures = madt_structures(madt);

            let lapics: Vec<_> = structures.iter().filter(|s| s.0 == 0).collect();
            assert_eq!(lapics.len(), usize::from(vcpus));
            for (i, (_, lapic)) in lapics.iter().enumerate() {
                assert_eq!(lapic.len(), 8);
                assert_eq!(usize::from(lapic[2]), i, "processor uid");
                assert_eq!(usize::from(lapic[3]), i, "APIC id");
                assert_eq!(u32_at(lapic, 4), 1, "enabled");
            }

            let ioapics: Vec<_> = structures.iter().filter(|s| s.0 == 1).collect();
            assert_eq!(ioapics.len(), 1);
            let ioapic = ioapics[0].1;
            assert_eq!(ioapic[2], vcpus, "I/O APIC id after the last local APIC");
            assert_eq!(u32_at(ioapic, 4), 0xfec0_0000);
            assert_eq!(u32_at(ioapic, 8), 0, "GSI base");

            let overrides: Vec<(u8, u32, u16)> = structures
                .iter()
                .filter(|s| s.0 == 2)
                .map(|(_, s)| (s[3], u32_at(s, 4), u16_at(s, 8)))
                .collect();
            assert_eq!(overrides, vec![(0, 2, 0), (9, 9, 0b1101)]);
            assert_eq!(structures.len(), usize::from(vcpus) + 3);
        }
    }

    #[test]
    fn fadt_is_hardware_reduced_with_our_registers() {
        let blobs = build_tables(&config(2)).unwrap();
        let (_, fadt) = find(&blobs, b"FACP");
        let (dsdt_addr, _) = find(&blobs, b"DSDT");
        assert_eq!(fadt.len(), 276);
        assert_eq!(fadt[8], 6, "major revision");
        assert_eq!(fadt[131], 5, "minor revision");

        let flags = u32_at(fadt, 112);
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        assert_ne!(flags & (1 << 4), 0, "PWR_BUTTON (control method)");
        assert_eq!(
            u16_at(fadt, 109),
            (1 << 2) | (1 << 5),
            "IAPC_BOOT_ARCH: no VGA, no CMOS RTC, no 8042 (bit 1 clear)"
        );

        assert_eq!(u32_at(fadt, 40), 0, "no 32-bit DSDT pointer");
        assert_eq!(u64_at(fadt, 140), dsdt_addr, "X_DSDT");
        assert_eq!(u64_at(fadt, 132), 0, "no FACS");

        let io8 = |port: u16| {
            let mut gas = vec![1u8, 8, 0, 1];
            gas.extend_from_slice(&u64::from(port).to_le_bytes());
            gas
        };
        assert_eq!(&fadt[116..128], io8(0x602).as_slice(), "RESET_REG");
        assert_eq!(fadt[128], layout::ACPI_RESET_VALUE, "RESET_VALUE");
        assert_eq!(&fadt[244..256], io8(0x600).as_slice(), "SLEEP_CONTROL_REG");
        assert_eq!(&fadt[256..268], io8(0x601).as_slice(), "SLEEP_STATUS_REG");
        assert_eq!(&fadt[268..276], b"HCSLINUX");
    }

    #[test]
    fn tables_fit_below_acpi_tables_end_with_valid_checksums() {
        let cfg = AcpiConfig {
            vcpus: MAX_VCPUS,
            serial_ports: vec![0, 1, 2, 3],
            virtio_mmio: (0..8)
                .map(|i| {
                    (
                        layout::VIRTIO_MMIO_START + i * layout::VIRTIO_MMIO_SIZE,
                        layout::VIRTIO_MMIO_FIRST_GSI + i as u32,
                    )
                })
                .collect(),
            oem_id: *b"HCSLNX",
        };
        let blobs = build_tables(&cfg).unwrap();
        assert_eq!(blobs.len(), 5);
        let mut end = layout::RSDP_START;
        for (addr, bytes) in &blobs {
            assert!(*addr >= end, "tables overlap or are out of order");
            assert!(*addr == RSDP_ADDR || addr % 16 == 0, "{addr:#x} aligned");
            end = addr + bytes.len() as u64;
            assert!(end <= layout::ACPI_TABLES_END, "{addr:#x} ends at {end:#x}");
            assert_eq!(sum(bytes), 0, "checksum of the table at {addr:#x}");
            if *addr != RSDP_ADDR {
                assert_eq!(u32_at(bytes, 4) as usize, bytes.len(), "length field");
                assert_eq!(&bytes[10..16], b"HCSLNX");
                assert_eq!(&bytes[16..24], &OEM_TABLE_ID);
            }
        }
        let (_, madt) = find(&blobs, b"APIC");
        let lapics = madt_structures(madt).iter().filter(|s| s.0 == 0).count();
        assert_eq!(lapics, usize::from(MAX_VCPUS));
    }

    #[test]
    fn refuses_vcpu_counts_linux_cannot_use() {
        assert_eq!(
            AcpiConfig::checked_vcpus(300),
            Err(AcpiError::TooManyCpus {
                requested: 300,
                max: 254
            })
        );
        assert!(matches!(
            AcpiConfig::checked_vcpus(255),
            Err(AcpiError::TooManyCpus { .. })
        ));
        assert_eq!(AcpiConfig::checked_vcpus(0), Err(AcpiError::NoCpus));
        assert_eq!(AcpiConfig::checked_vcpus(254), Ok(254));
        assert_eq!(AcpiConfig::checked_vcpus(1), Ok(1));

        assert!(matches!(
            build_tables(&config(255)),
            Err(AcpiError::TooManyCpus { requested: 255, .. })
        ));
        assert_eq!(build_tables(&config(0)), Err(AcpiError::NoCpus));
        build_tables(&config(254)).unwrap();
    }

    #[test]
    fn refuses_bad_devices() {
        let with = |f: &dyn Fn(&mut AcpiConfig)| {
            let mut cfg = config(1);
            f(&mut cfg);
            build_tables(&cfg).map(|_| ())
        };
        assert_eq!(
            with(&|c| c.serial_ports = vec![4]),
            Err(AcpiError::UnknownSerialPort { index: 4, count: 4 })
        );
        assert_eq!(
            with(&|c| c.serial_ports = vec![1, 1]),
            Err(AcpiError::DuplicateSerialPort(1))
        );
        assert_eq!(
            with(&|c| c.virtio_mmio = vec![(0xffff_f800, 16)]),
            Err(AcpiError::MmioAbove4G { base: 0xffff_f800 })
        );
        assert_eq!(
            with(&|c| c.virtio_mmio = vec![(u64::MAX - 10, 16)]),
            Err(AcpiError::MmioAbove4G {
                base: u64::MAX - 10
            })
        );
        assert_eq!(
            with(&|c| c.virtio_mmio = vec![(0xd000_0000, 24)]),
            Err(AcpiError::GsiOutOfRange { gsi: 24, pins: 24 })
        );
        for taken in [layout::GED_GSI, layout::I8042_IRQ, 4, 2] {
            assert_eq!(
                with(&|c| c.virtio_mmio = vec![(0xd000_0000, taken)]),
                Err(AcpiError::GsiInUse { gsi: taken })
            );
        }
        assert_eq!(
            with(&|c| c.virtio_mmio = vec![(0xd000_0000, 16), (0xd000_1000, 16)]),
            Err(AcpiError::GsiInUse { gsi: 16 })
        );
        // An absent serial port's IRQ is free for virtio.
        assert_eq!(
            with(&|c| {
                c.serial_ports = vec![0];
                c.virtio_mmio = vec![(0xd000_0000, 3)];
            }),
            Ok(())
        );
    }

    #[test]
    fn dsdt_holds_the_devices() {
        let blobs = build_tables(&config(2)).unwrap();
        let (_, dsdt) = find(&blobs, b"DSDT");
        let count = |needle: &[u8]| dsdt.windows(needle.len()).filter(|w| *w == needle).count();
        // EISA ids are compressed: "PNP0501" is 0x41d0_0501 stored big-endian.
        assert_eq!(
            count(&[0x41, 0xd0, 0x05, 0x01]),
            2,
            "PNP0501 per serial port"
        );
        // No i8042 (PNP0303) nor CMOS RTC (PNP0B00): the FADT says there
        // are none, and a DSDT entry would make Linux probe them anyway.
        assert_eq!(count(&[0x41, 0xd0, 0x03, 0x03]), 0, "PNP0303");
        assert_eq!(count(&[0x41, 0xd0, 0x0b, 0x00]), 0, "PNP0B00");
        assert_eq!(count(&[0x41, 0xd0, 0x0c, 0x0c]), 1, "PNP0C0C");
        assert_eq!(count(b"LNRO0005\0"), 2);
        assert_eq!(count(b"ACPI0013\0"), 1);
        assert_eq!(count(b"QEMU0001\0"), 1);
        assert_eq!(count(b"_S5_"), 1);
        assert_eq!(count(b"_EVT"), 1);
        assert_eq!(sum(dsdt), 0);
    }

    #[test]
    fn sleep_control_value_for_s5() {
        // SLP_TYP 5 in bits 2..=4 and SLP_EN (bit 5), as Linux's
        // acpi_hw_extended_sleep() writes it.
        assert_eq!(SLEEP_CONTROL_S5, 0x34);
    }
}
