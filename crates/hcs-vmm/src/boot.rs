//! Loading a kernel and preparing the boot vCPU: Linux's 64-bit boot
//! protocol (bzImage or ELF vmlinux, with `boot_params`), or PVH when an
//! ELF carries the PVH note.
//!
//! Loading is linux-loader's; what it does not do — the e820 map, the zero
//! page contents, the initrd's place, page tables, GDT and the initial
//! register state — is written here, following the boot protocol
//! (Documentation/arch/x86/boot.rst) and Firecracker's x86_64 layout.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::*;

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSource {
    /// bzImage or ELF vmlinux.
    pub kernel: PathBuf,
    /// Optional initial ramdisk.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
}

/// How the boot vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// 64-bit boot protocol: long mode at `rip`, RSI = the zero page.
    Linux64 { rip: u64 },
    /// PVH: 32-bit protected mode at `rip`, EBX = `hvm_start_info`.
    Pvh { rip: u64 },
}

/// Why a kernel could not be booted. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel file is missing or unreadable.
    #[error("cannot open the kernel {path}: {source}")]
    KernelFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The initrd file is missing or unreadable.
    #[error("cannot open the initrd {path}: {source}")]
    InitrdFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Neither an ELF nor a bzImage.
    #[error("{0} is not a kernel: it is neither an ELF vmlinux nor a bzImage (no ELF magic, no \"HdrS\" boot header)")]
    NotAKernel(PathBuf),
    /// linux-loader refused it.
    #[error("loading the kernel {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    /// A bzImage too old for the 64-bit boot protocol.
    #[error("{0} has no 64-bit entry point (boot protocol < 2.12 or XLF_KERNEL_64 unset)")]
    No64BitEntry(PathBuf),
    /// The initrd does not fit below the kernel's limit.
    #[error("the initrd {path} ({size} bytes) does not fit in guest memory below {limit:#x}")]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The command line is too long.
    #[error("the kernel command line is {len} bytes; at most {max} are allowed")]
    CmdlineTooLong { len: usize, max: usize },
    /// Writing guest memory failed (memory too small for the layout).
    #[error("guest memory too small to boot: {0}")]
    Memory(String),
    /// A vCPU register could not be set.
    #[error("setting up the boot vCPU ({what}): {source}")]
    Vcpu {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
}

/// The e820 map of a guest of `mem_size` bytes.
pub fn e820_map(mem_size: u64) -> Vec<boot_e820_entry> {
    const RAM: u32 = 1;
    const RESERVED: u32 = 2;
    let low_end = mem_size.min(MMIO_GAP_START);
    let mut map = vec![
        boot_e820_entry {
            addr: 0,
            size: EBDA_START,
            r#type: RAM,
        },
        boot_e820_entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            r#type: RESERVED,
        },
    ];
    if low_end > HIMEM_START {
        map.push(boot_e820_entry {
            addr: HIMEM_START,
            size: low_end - HIMEM_START,
            r#type: RAM,
        });
    }
    if mem_size > MMIO_GAP_START {
        map.push(boot_e820_entry {
            addr: MMIO_GAP_END,
            size: mem_size - MMIO_GAP_START,
            r#type: RAM,
        });
    }
    map
}

fn mem_err(e: impl std::fmt::Display) -> BootError {
    BootError::Memory(e.to_string())
}

/// View a plain-data struct as bytes.
fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: T is one of the bindgen-generated boot structures: repr(C),
    // Copy, no pointers or padding that matters to the reader; we only read.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Load the kernel, initrd and command line, and write the boot structures.
pub fn load(
    mem: &GuestMemoryMmap,
    boot: &BootSource,
    mem_size: u64,
    rsdp: u64,
) -> Result<EntryPoint, BootError> {
    if boot.cmdline.len() >= CMDLINE_MAX_SIZE {
        return Err(BootError::CmdlineTooLong {
            len: boot.cmdline.len(),
            max: CMDLINE_MAX_SIZE - 1,
        });
    }
    let path = &boot.kernel;
    let mut kernel = File::open(path).map_err(|source| BootError::KernelFile {
        path: path.clone(),
        source,
    })?;
    let mut magic = [0u8; 0x206];
    let n = kernel
        .read(&mut magic)
        .map_err(|source| BootError::KernelFile {
            path: path.clone(),
            source,
        })?;
    kernel
        .seek(SeekFrom::Start(0))
        .map_err(|source| BootError::KernelFile {
            path: path.clone(),
            source,
        })?;
    let is_elf = n >= 4 && magic.get(..4) == Some(b"\x7fELF".as_slice());
    let is_bzimage = n >= 0x206 && magic.get(0x202..0x206) == Some(b"HdrS".as_slice());
    let load_err = |e: linux_loader::loader::Error| BootError::Load {
        path: path.clone(),
        reason: e.to_string(),
    };

    let (result, bz) = if is_elf {
        (
            Elf::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START))).map_err(load_err)?,
            false,
        )
    } else if is_bzimage {
        (
            BzImage::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START)))
                .map_err(load_err)?,
            true,
        )
    } else {
        return Err(BootError::NotAKernel(path.clone()));
    };

    let mut cmdline = boot.cmdline.clone().into_bytes();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(CMDLINE_START))
        .map_err(mem_err)?;

    // The initrd goes as high as possible below 3 GiB (and below the
    // kernel's initrd_addr_max), page aligned.
    let initrd = match &boot.initrd {
        None => None,
        Some(p) => {
            let mut f = File::open(p).map_err(|source| BootError::InitrdFile {
                path: p.clone(),
                source,
            })?;
            let size = f
                .metadata()
                .map_err(|source| BootError::InitrdFile {
                    path: p.clone(),
                    source,
                })?
                .len();
            let mut limit = mem_size.min(MMIO_GAP_START);
            if let Some(hdr) = &result.setup_header {
                if hdr.initrd_addr_max != 0 {
                    limit = limit.min(u64::from(hdr.initrd_addr_max) + 1);
                }
            }
            let too_large = || BootError::InitrdTooLarge {
                path: p.clone(),
                size,
                limit,
            };
            let addr = limit.checked_sub(size).ok_or_else(too_large)? & !(PAGE_SIZE - 1);
            if addr < result.kernel_end {
                return Err(too_large());
            }
            mem.read_volatile_from(GuestAddress(addr), &mut f, size as usize)
                .map_err(mem_err)?;
            Some((addr, size))
        }
    };

    if let PvhBootCapability::PvhEntryPresent(entry) = result.pvh_boot_cap {
        write_pvh_info(mem, mem_size, rsdp, initrd)?;
        return Ok(EntryPoint::Pvh {
            rip: entry.raw_value(),
        });
    }

    let mut params = boot_params::default();
    match result.setup_header {
        Some(hdr) if bz => {
            if hdr.version < 0x20c || hdr.xloadflags & 1 == 0 {
                return Err(BootError::No64BitEntry(path.clone()));
            }
            params.hdr = hdr;
        }
        _ => {
            params.hdr.boot_flag = 0xaa55;
            params.hdr.header = 0x5372_6448; // "HdrS"
            params.hdr.kernel_alignment = 0x0100_0000;
        }
    }
    params.hdr.type_of_loader = 0xff;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline.len() as u32;
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    params.acpi_rsdp_addr = rsdp;
    let map = e820_map(mem_size);
    for (slot, e) in params.e820_table.iter_mut().zip(&map) {
        *slot = *e;
    }
    params.e820_entries = map.len() as u8;
    mem.write_slice(bytes_of(&params), GuestAddress(ZERO_PAGE_START))
        .map_err(mem_err)?;
    setup_page_tables(mem)?;
    let rip = if bz {
        result.kernel_load.raw_value() + 0x200
    } else {
        result.kernel_load.raw_value()
    };
    Ok(EntryPoint::Linux64 { rip })
}

fn write_pvh_info(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    rsdp: u64,
    initrd: Option<(u64, u64)>,
) -> Result<(), BootError> {
    let map = e820_map(mem_size);
    let mut info = hvm_start_info {
        magic: 0x336e_c578,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: rsdp,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    let mut next = PVH_MEMMAP_START;
    for e in &map {
        let entry = hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.r#type,
            reserved: 0,
        };
        mem.write_slice(bytes_of(&entry), GuestAddress(next))
            .map_err(mem_err)?;
        next += std::mem::size_of::<hvm_memmap_table_entry>() as u64;
    }
    if let Some((paddr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        };
        mem.write_slice(bytes_of(&module), GuestAddress(next))
            .map_err(mem_err)?;
        info.nr_modules = 1;
        info.modlist_paddr = next;
    }
    mem.write_slice(bytes_of(&info), GuestAddress(PVH_INFO_START))
        .map_err(mem_err)
}

/// Identity-map the first GiB with 2 MiB pages.
fn setup_page_tables(mem: &GuestMemoryMmap) -> Result<(), BootError> {
    mem.write_obj(PDPTE_START | 0x03, GuestAddress(PML4_START))
        .map_err(mem_err)?;
    mem.write_obj(PDE_START | 0x03, GuestAddress(PDPTE_START))
        .map_err(mem_err)?;
    for i in 0..512u64 {
        mem.write_obj((i << 21) | 0x83, GuestAddress(PDE_START + i * 8))
            .map_err(mem_err)?;
    }
    Ok(())
}

/// A GDT entry from its flags, base and limit.
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The segment register value for a GDT entry.
fn segment(entry: u64, index: u8) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let mut limit = (((entry & 0x000f_0000_0000_0000) >> 32) | (entry & 0xffff)) as u32;
    if g == 1 {
        limit = (limit << 12) | 0xfff;
    }
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: ((entry & 0xff00_0000_0000_0000) >> 32)
            | ((entry & 0x0000_00ff_0000_0000) >> 16)
            | ((entry & 0x0000_0000_ffff_0000) >> 16),
        limit,
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        padding: 0,
        unusable: u8::from(present == 0),
    }
}

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// Set the boot vCPU's registers for `entry`; the others wait for INIT/SIPI.
pub fn setup_boot_vcpu(
    mem: &GuestMemoryMmap,
    vcpu: &VcpuFd,
    entry: EntryPoint,
) -> Result<(), BootError> {
    let vcpu_err = |what| move |source| BootError::Vcpu { what, source };
    let (gdt, rip, long_mode) = match entry {
        EntryPoint::Linux64 { rip } => (
            [
                0,
                gdt_entry(0xa09b, 0, 0xfffff),
                gdt_entry(0xc093, 0, 0xfffff),
                gdt_entry(0x808b, 0, 0xfffff),
            ],
            rip,
            true,
        ),
        EntryPoint::Pvh { rip } => (
            [
                0,
                gdt_entry(0xc09b, 0, 0xffff_ffff),
                gdt_entry(0xc093, 0, 0xffff_ffff),
                gdt_entry(0x008b, 0, 0x67),
            ],
            rip,
            false,
        ),
    };
    for (i, e) in gdt.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(BOOT_GDT_START + i as u64 * 8))
            .map_err(mem_err)?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(mem_err)?;

    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(vcpu_err("reading sregs"))?;
    let code = segment(gdt[1], 1);
    let data = segment(gdt[2], 2);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(gdt[3], 3);
    if long_mode {
        sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
        sregs.cr3 = PML4_START;
        sregs.cr4 |= X86_CR4_PAE;
        sregs.efer |= EFER_LME | EFER_LMA;
    } else {
        sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
        sregs.cr4 = 0;
    }
    vcpu.set_sregs(&sregs).map_err(vcpu_err("writing sregs"))?;

    let mut regs = kvm_regs {
        rflags: 0x2,
        rip,
        ..Default::default()
    };
    if long_mode {
        regs.rsp = BOOT_STACK_POINTER;
        regs.rbp = BOOT_STACK_POINTER;
        regs.rsi = ZERO_PAGE_START;
    } else {
        regs.rbx = PVH_INFO_START;
    }
    vcpu.set_regs(&regs).map_err(vcpu_err("writing regs"))
}

/// FPU, MSRs and the local APIC's LINT pins, for every vCPU.
pub fn setup_vcpu_common(vcpu: &VcpuFd) -> Result<(), BootError> {
    let vcpu_err = |what| move |source| BootError::Vcpu { what, source };
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(vcpu_err("writing the FPU state"))?;
    const MSRS: [(u32, u64); 12] = [
        (0x174, 0),                     // IA32_SYSENTER_CS
        (0x175, 0),                     // IA32_SYSENTER_ESP
        (0x176, 0),                     // IA32_SYSENTER_EIP
        (0xc000_0081, 0),               // STAR
        (0xc000_0083, 0),               // CSTAR
        (0xc000_0102, 0),               // KERNEL_GS_BASE
        (0xc000_0084, 0),               // SYSCALL_MASK
        (0xc000_0082, 0),               // LSTAR
        (0x10, 0),                      // TSC
        (0x1a0, 1),                     // MISC_ENABLE: fast strings
        (0x2ff, (1 << 11) | 6),         // MTRRdefType: enabled, write-back
        (0x277, 0x0007_0406_0007_0406), // PAT (power-on default)
    ];
    let entries: Vec<kvm_msr_entry> = MSRS
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|_| BootError::Vcpu {
        what: "building the MSR list",
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    let written = vcpu.set_msrs(&msrs).map_err(vcpu_err("writing MSRs"))?;
    if written != entries.len() {
        tracing::debug!(
            written,
            wanted = entries.len(),
            "KVM took only some boot MSRs"
        );
    }
    // LINT0 = ExtINT (the legacy PIC), LINT1 = NMI, as firmware leaves them.
    let mut lapic = vcpu.get_lapic().map_err(vcpu_err("reading the LAPIC"))?;
    for (reg, mode) in [(0x350usize, 7u32), (0x360, 4)] {
        let mut b = [0u8; 4];
        for (i, v) in b.iter_mut().enumerate() {
            *v = lapic.regs.get(reg + i).copied().unwrap_or(0) as u8;
        }
        let value = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
        for (i, v) in value.to_le_bytes().iter().enumerate() {
            if let Some(slot) = lapic.regs.get_mut(reg + i) {
                *slot = *v as i8;
            }
        }
    }
    vcpu.set_lapic(&lapic)
        .map_err(vcpu_err("writing the LAPIC"))
}

/// Give each vCPU its CPUID: KVM's supported set with this vCPU's APIC id,
/// the vCPU count, and the hypervisor bit.
pub fn cpuid_for(supported: &kvm_bindings::CpuId, id: u8, count: u8) -> kvm_bindings::CpuId {
    let mut c = supported.clone();
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(count) << 16) | (u32::from(id) << 24);
                e.ecx |= 1 << 31;
                // HTT: several logical processors.
                if count > 1 {
                    e.edx |= 1 << 28;
                }
            }
            0xb | 0x1f => e.edx = u32::from(id),
            _ => {}
        }
    }
    c
}

/// Guest RAM regions for `mem_size` bytes: below the MMIO gap, and above 4 GiB.
pub fn ram_regions(mem_size: u64) -> Vec<(GuestAddress, usize)> {
    let low = mem_size.min(MMIO_GAP_START);
    let mut r = vec![(GuestAddress(0), low as usize)];
    if mem_size > MMIO_GAP_START {
        r.push((
            GuestAddress(MMIO_GAP_END),
            (mem_size - MMIO_GAP_START) as usize,
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_has_the_hole_and_the_high_part() {
        let m = e820_map(256 << 20);
        assert_eq!(m.len(), 3);
        assert_eq!((m[2].addr, m[2].addr + m[2].size), (HIMEM_START, 256 << 20));
        let m = e820_map(4 << 30);
        assert_eq!(
            m.last().map(|e| (e.addr, e.size)),
            Some((MMIO_GAP_END, (4u64 << 30) - MMIO_GAP_START))
        );
        assert_eq!(ram_regions(4 << 30).len(), 2);
    }

    #[test]
    fn segments_decode_their_gdt_entries() {
        let code = segment(gdt_entry(0xa09b, 0, 0xfffff), 1);
        assert_eq!(
            (
                code.selector,
                code.l,
                code.g,
                code.present,
                code.type_,
                code.limit
            ),
            (8, 1, 1, 1, 0xb, 0xffff_ffff)
        );
        let tss = segment(gdt_entry(0x808b, 0, 0xfffff), 3);
        assert_eq!((tss.selector, tss.type_, tss.s), (24, 0xb, 0));
    }

    #[test]
    fn not_a_kernel_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![0u8; 4096]).unwrap();
        let mem = GuestMemoryMmap::from_ranges(&ram_regions(32 << 20)).unwrap();
        let boot = BootSource {
            kernel: junk.clone(),
            initrd: None,
            cmdline: String::new(),
        };
        let e = load(&mem, &boot, 32 << 20, RSDP_START).unwrap_err();
        assert!(matches!(e, BootError::NotAKernel(_)), "{e}");
        assert!(e.to_string().contains("junk"));
        let missing = BootSource {
            kernel: dir.path().join("none"),
            initrd: None,
            cmdline: String::new(),
        };
        assert!(matches!(
            load(&mem, &missing, 32 << 20, RSDP_START).unwrap_err(),
            BootError::KernelFile { .. }
        ));
        let long = BootSource {
            kernel: junk,
            initrd: None,
            cmdline: "x".repeat(5000),
        };
        assert!(matches!(
            load(&mem, &long, 32 << 20, RSDP_START).unwrap_err(),
            BootError::CmdlineTooLong { .. }
        ));
    }
}
