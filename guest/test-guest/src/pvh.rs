//! Feature `pvh` only: lets QEMU (`-kernel`) boot the guest.
//!
//! QEMU starts an ELF only through its Xen PVH note: in 32-bit protected
//! mode, paging off, at the note's entry, with EBX = `hvm_start_info`. This
//! stub recreates what our VMM provides for the 64-bit boot protocol — a zero
//! page at 0x7000 (RSDP address, command line, e820 map), the identity map of
//! the first GiB with 2 MiB pages (PML4 0x9000, PDPT 0xa000, PD 0xb000), a
//! GDT with CS 0x08 / DS 0x10, RSP 0x8ff0 — and jumps to `_start` with
//! RSI = 0x7000.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .note.Xen,"a",@note
    .balign 4
    .long 4
    .long 8
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad hcs_pvh_start32
    .balign 4

    .section .text.hcs_pvh,"ax",@progbits
    .code32
    .global hcs_pvh_start32
    .type hcs_pvh_start32,@function
hcs_pvh_start32:
    cli
    cld
    mov $0x8ff0, %esp
    /* Read hvm_start_info before anything below 0xc000 is overwritten. */
    mov 32(%ebx), %esi          /* rsdp_paddr (low 32 bits) */
    mov 24(%ebx), %ebp          /* cmdline_paddr (low 32 bits) */
    pushl 40(%ebx)              /* memmap_paddr */
    pushl 48(%ebx)              /* memmap_entries */
    xor %eax, %eax
    mov $0x7000, %edi
    mov $1024, %ecx
    rep stosl
    mov $0x9000, %edi
    mov $3072, %ecx
    rep stosl
    mov %esi, 0x7070            /* boot_params.acpi_rsdp_addr */
    mov %ebp, 0x7228            /* boot_params.cmd_line_ptr */
    /* hvm_memmap_table_entry (addr, size, type, reserved: 24 bytes) to
       boot_e820_entry (addr, size, type: 20 bytes), at most 128. */
    pop %ecx
    pop %esi
    cmp $128, %ecx
    jbe 1f
    mov $128, %ecx
1:  mov %cl, 0x71e8             /* boot_params.e820_entries */
    mov $0x72d0, %edi           /* boot_params.e820_table */
    test %ecx, %ecx
    jz 3f
2:  movsl
    movsl
    movsl
    movsl
    movsl
    add $4, %esi
    dec %ecx
    jnz 2b
3:  movl $0xa003, 0x9000
    movl $0xb003, 0xa000
    mov $0xb000, %edi
    mov $0x83, %eax
    mov $512, %ecx
4:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    dec %ecx
    jnz 4b
    lgdt hcs_pvh_gdtr
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $0x9000, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* PG | PE */
    mov %eax, %cr0
    ljmp $0x08, $hcs_pvh_start64
    .code64
hcs_pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $0x8ff0, %esp
    mov $0x7000, %esi
    jmp _start
    .balign 8
hcs_pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
hcs_pvh_gdtr:
    .word 23
    .long hcs_pvh_gdt
    .size hcs_pvh_start32, . - hcs_pvh_start32
"#,
    options(att_syntax)
);
