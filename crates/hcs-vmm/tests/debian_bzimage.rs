//! Loads Debian's cloud kernel (an LZ4-compressed bzImage fetched by
//! scripts/fetch-guest-kernel.sh) through the boot loader and checks what a
//! Linux kernel will find: the protected-mode code at its load address, the
//! 64-bit entry, and boot_params with the file's setup header, the command
//! line, the e820 map and the initrd. This runs on any host; booting the
//! kernel needs hardware KVM and is tested in tests/integration (vm.rs).

use std::io::Write;
use std::path::PathBuf;

use hcs_vmm::boot::{load, BootSource, EntryPoint};
use hcs_vmm::layout::{CMDLINE_START, ZERO_PAGE_START};
use linux_loader::loader::bootparam::boot_params;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MIB: u64 = 1 << 20;

fn debian_kernel() -> PathBuf {
    let p = std::env::var_os("HCS_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../build/guest/vmlinuz"
            ))
        });
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-guest-kernel.sh first",
        p.display()
    );
    p
}

#[test]
fn debian_s_lz4_bzimage_loads_with_its_setup_header() {
    let kernel = debian_kernel();
    let file = std::fs::read(&kernel).unwrap();
    let setup_sects = match file[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let setup_len = (setup_sects + 1) * 512;

    let mem_size = 256 * MIB;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem_size as usize)]).unwrap();
    let mut initrd = tempfile::NamedTempFile::new().unwrap();
    initrd.write_all(&[0x5a; 3 * 4096 + 17]).unwrap();
    let boot = BootSource {
        kernel: kernel.clone(),
        initrd: Some(initrd.path().to_path_buf()),
        cmdline: "console=ttyS0 panic=-1".into(),
    };
    let entry = load(&mem, &boot, mem_size, 0xe_0000).unwrap();
    // Linux's bzImages are loaded at code32_start (1 MiB); the 64-bit entry
    // is 0x200 past it.
    assert_eq!(entry, EntryPoint::Linux64 { rip: 0x10_0200 });

    // The protected-mode part is in memory byte for byte.
    let mut pm = vec![0u8; 64 * 1024];
    mem.read_slice(&mut pm, GuestAddress(0x10_0000)).unwrap();
    assert_eq!(pm[..], file[setup_len..setup_len + pm.len()]);

    let mut raw = vec![0u8; std::mem::size_of::<boot_params>()];
    mem.read_slice(&mut raw, GuestAddress(ZERO_PAGE_START))
        .unwrap();
    // SAFETY: boot_params is plain old data (bindgen, repr(C)) and `raw` holds
    // exactly size_of::<boot_params>() bytes; read_unaligned has no alignment need.
    let params: boot_params = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
    let hdr = params.hdr;
    assert_eq!({ hdr.header }, 0x5372_6448, "HdrS");
    assert!({ hdr.version } >= 0x20c, "boot protocol {:#x}", {
        hdr.version
    });
    assert_eq!({ hdr.xloadflags } & 1, 1, "XLF_KERNEL_64");
    // The file's own header fields survive (Linux reads init_size, pref_address).
    let file_init_size = u32::from_le_bytes(file[0x260..0x264].try_into().unwrap());
    assert_eq!({ hdr.init_size }, file_init_size);
    assert!(
        file_init_size > 16 * 1024 * 1024,
        "decompressed size {file_init_size}"
    );
    assert_eq!({ hdr.type_of_loader }, 0xff);
    assert_eq!(u64::from(hdr.cmd_line_ptr), CMDLINE_START);

    let mut cmdline = vec![0u8; 23];
    mem.read_slice(&mut cmdline, GuestAddress(CMDLINE_START))
        .unwrap();
    assert_eq!(&cmdline, b"console=ttyS0 panic=-1\0");

    // The initrd sits page aligned below the end of RAM and the kernel's
    // limit, clear of the decompressed kernel.
    let (image, size) = (u64::from(hdr.ramdisk_image), u64::from(hdr.ramdisk_size));
    assert_eq!(size, 3 * 4096 + 17);
    assert_eq!(image % 4096, 0);
    assert!(image + size <= mem_size);
    assert!(
        image >= 0x10_0000 + u64::from(file_init_size),
        "initrd at {image:#x} overlaps the kernel"
    );
    let mut byte = [0u8; 1];
    mem.read_slice(&mut byte, GuestAddress(image + size - 1))
        .unwrap();
    assert_eq!(byte[0], 0x5a);

    let entries = usize::from(params.e820_entries);
    assert!(entries >= 3, "{entries} e820 entries");
    let ram: u64 = params.e820_table[..entries]
        .iter()
        .filter(|e| { e.r#type } == 1)
        .map(|e| e.size)
        .sum();
    assert!(
        ram > mem_size - 2 * MIB && ram <= mem_size,
        "e820 RAM {ram}"
    );
    assert_eq!({ params.acpi_rsdp_addr }, 0xe_0000);
}
