//! Where things are in guest physical memory and I/O space.
//!
//! One table of addresses shared by the loader, the ACPI tables, the devices
//! and the test guest (which reads most of them from the ACPI tables rather
//! than assuming them). The low-memory part follows Firecracker's x86_64
//! layout, so a kernel that boots there boots here.

/// Guest page size.
pub const PAGE_SIZE: u64 = 0x1000;

// --- low memory --------------------------------------------------------

/// GDT used for 64-bit entry.
pub const BOOT_GDT_START: u64 = 0x500;
/// IDT (empty) used for 64-bit entry.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH `hvm_start_info`.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH memory map entries, right after the start info.
pub const PVH_MEMMAP_START: u64 = 0x6040;
/// The zero page (`struct boot_params`) for the 64-bit boot protocol.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Level-4 page table of the identity map set up for 64-bit entry.
pub const PML4_START: u64 = 0x9000;
/// Level-3 page table.
pub const PDPTE_START: u64 = 0xa000;
/// Level-2 page table (2 MiB pages covering the first GiB).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Longest command line accepted (Linux's COMMAND_LINE_SIZE is 2048 on x86).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the EBDA / legacy BIOS area, reserved in the e820 map.
pub const EBDA_START: u64 = 0x9fc00;
/// The RSDP (ACPI root pointer); Linux also scans 0xe0000..0x100000 for it.
pub const RSDP_START: u64 = 0xe0000;
/// The rest of the ACPI tables follow the RSDP, up to this address.
pub const ACPI_TABLES_END: u64 = 0x10_0000;
/// Where kernels are loaded (1 MiB).
pub const HIMEM_START: u64 = 0x10_0000;

// --- MMIO ----------------------------------------------------------------

/// Start of the 32-bit MMIO hole; RAM beyond it continues at 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// First virtio-mmio transport; each takes [`VIRTIO_MMIO_SIZE`].
pub const VIRTIO_MMIO_START: u64 = 0xd000_0000;
/// Size of one virtio-mmio transport window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// First GSI given to virtio-mmio devices (one each, upwards).
pub const VIRTIO_MMIO_FIRST_GSI: u32 = 16;
/// The Generic Event Device's one-byte event register (ACPI0013).
pub const GED_MMIO_START: u64 = 0xfeb0_0000;
/// Size of the GED register window.
pub const GED_MMIO_SIZE: u64 = 0x10;
/// GSI of the GED's interrupt.
pub const GED_GSI: u32 = 9;
/// IOAPIC.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Local APIC (xAPIC).
pub const APIC_START: u64 = 0xfee0_0000;

// --- I/O ports -----------------------------------------------------------

/// COM1..COM4 base ports and their legacy IRQs (ComPorts keys "0".."3").
pub const SERIAL_PORTS: [(u16, u32); 4] = [(0x3f8, 4), (0x2f8, 3), (0x3e8, 4), (0x2e8, 3)];
/// Width of a 16550's port range.
pub const SERIAL_PORT_SIZE: u16 = 8;
/// i8042 data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// i8042 command/status port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// IRQ of the i8042 keyboard.
pub const I8042_IRQ: u32 = 1;
/// CMOS index register; the data register follows (NVRAM only, no clock).
pub const CMOS_PORT: u16 = 0x70;
/// Ports the CMOS takes (index, data).
pub const CMOS_LEN: u16 = 2;
/// PCI configuration mechanism #1 address register; data at 0xcfc–0xcff.
pub const PCI_CONFIG_PORT: u16 = 0xcf8;
/// Ports the PCI configuration mechanism takes (address, data).
pub const PCI_CONFIG_LEN: u16 = 8;
/// ACPI hardware-reduced sleep control register (FADT SLEEP_CONTROL_REG).
pub const ACPI_SLEEP_CONTROL_PORT: u16 = 0x600;
/// ACPI hardware-reduced sleep status register (FADT SLEEP_STATUS_REG).
pub const ACPI_SLEEP_STATUS_PORT: u16 = 0x601;
/// ACPI reset register (FADT RESET_REG).
pub const ACPI_RESET_PORT: u16 = 0x602;
/// Value the guest writes to [`ACPI_RESET_PORT`] to reset.
pub const ACPI_RESET_VALUE: u8 = 0x1;
/// SLP_TYP of S5 (soft off), given to the guest in the DSDT's `_S5_` package.
pub const ACPI_S5_SLP_TYP: u8 = 5;
/// pvpanic (QEMU0001): the guest writes 1 here when it panics.
pub const PVPANIC_PORT: u16 = 0x505;
/// The boot-progress port: the guest writes a byte here to mark a boot
/// milestone (Firecracker's boot timer idea).
pub const BOOT_MARKER_PORT: u16 = 0x80;
