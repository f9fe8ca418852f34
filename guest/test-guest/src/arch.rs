//! Assembly: entry point, mem* functions, IDT stubs, interrupt handlers, the
//! ring-3 trampoline, the one deliberate SSE instruction; plus small inline
//! wrappers for port I/O, MSRs and control registers.

use core::arch::{asm, global_asm};

// ---------------------------------------------------------------------------
// Entry (64-bit boot protocol: RSI = zero page, paging on, IF = 0).
global_asm!(
    r#"
    .section .text._start,"ax",@progbits
    .global _start
    .type _start,@function
_start:
    cli
    cld
    lea rsp, [rip + __stack_top]
    mov rdi, rsi
    call hcs_main
2:  cli
    hlt
    jmp 2b
    .size _start, . - _start
"#
);

// ---------------------------------------------------------------------------
// memcpy / memmove / memset / memcmp / bcmp (the linux-gnu compiler_builtins
// expects libc to provide them). Written in assembly so LLVM cannot turn a
// loop back into a call to itself.
global_asm!(
    r#"
    .section .text.hcs_mem,"ax",@progbits
    .global memcpy
    .type memcpy,@function
memcpy:
    mov rax, rdi
    mov rcx, rdx
    rep movsb
    ret
    .size memcpy, . - memcpy

    .global memmove
    .type memmove,@function
memmove:
    mov rax, rdi
    mov rcx, rdx
    cmp rdi, rsi
    jbe 1f
    lea rsi, [rsi + rcx - 1]
    lea rdi, [rdi + rcx - 1]
    std
    rep movsb
    cld
    ret
1:  rep movsb
    ret
    .size memmove, . - memmove

    .global memset
    .type memset,@function
memset:
    mov r8, rdi
    mov eax, esi
    mov rcx, rdx
    rep stosb
    mov rax, r8
    ret
    .size memset, . - memset

    .global memcmp
    .type memcmp,@function
    .global bcmp
    .type bcmp,@function
memcmp:
bcmp:
    xor eax, eax
    test rdx, rdx
    jz 2f
1:  movzx eax, byte ptr [rdi]
    movzx ecx, byte ptr [rsi]
    sub eax, ecx
    jnz 2f
    inc rdi
    inc rsi
    dec rdx
    jnz 1b
2:  ret
    .size memcmp, . - memcmp
    .size bcmp, . - bcmp
"#
);

/// Number of IDT vectors (0..=31 exceptions, 32 timer, 33 console, 34 GED,
/// 35 the agent's virtio device, 36..=46 unexpected, 47 spurious).
pub const IDT_VECTORS: usize = 48;
pub const VEC_TIMER: u8 = 32;
pub const VEC_SERIAL: u8 = 33;
pub const VEC_GED: u8 = 34;
pub const VEC_VIRTIO: u8 = 35;
pub const VEC_SPURIOUS: u8 = 47;
/// Where the linker script puts `hcs_idt_stubs` (asserted there), 16 bytes per vector.
pub const IDT_STUBS: u64 = 0x20_0000;

// ---------------------------------------------------------------------------
// IDT stubs: one 16-byte slot per vector, at a fixed address so that the IDT
// itself is a constant (no ring-0 loop to build it).
global_asm!(
    r#"
    .section .text.hcs_idt_stubs,"ax",@progbits
    .global hcs_idt_stubs
hcs_idt_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    push 0
    .endif
    push \v
    jmp hcs_exc_common
    .endr
    .balign 16
    jmp hcs_timer_isr
    .balign 16
    jmp hcs_serial_isr
    .balign 16
    jmp hcs_ged_isr
    .balign 16
    jmp hcs_virtio_isr
    .irp v, 36,37,38,39,40,41,42,43,44,45,46
    .balign 16
    jmp hcs_other_isr
    .endr
    .balign 16
    iretq
    .balign 16
    .global hcs_idt_stubs_end
hcs_idt_stubs_end:

    .section .text.hcs_isr,"ax",@progbits
    // Exceptions. Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS.
hcs_exc_common:
    test byte ptr [rsp + 24], 3
    jnz hcs_user_exc
    mov rdi, [rsp]
    mov rsi, [rsp + 8]
    mov rdx, [rsp + 16]
    and rsp, -16
    call hcs_kernel_exception
2:  cli
    hlt
    jmp 2b

    // From ring 3 (on the TSS RSP0 stack): let Rust decide between resuming
    // (0) and ending the ring-3 run (status != 0, returned by hcs_enter_user).
hcs_user_exc:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    cld
    mov rdi, [rsp + 72]
    mov rsi, [rsp + 80]
    mov rdx, [rsp + 88]
    mov rcx, cr2
    call hcs_user_exception
    test rax, rax
    jnz 1f
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
1:  mov rsp, [rip + HCS_SAVED_KSP]
    mov ecx, 0x10
    mov ds, ecx
    mov es, ecx
    mov ss, ecx
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    // LAPIC timer: count and EOI.
hcs_timer_isr:
    inc qword ptr [rip + HCS_TICKS]
    push rax
    mov rax, [rip + HCS_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rax
    iretq

    // Console: note it; the main loop drains the receive buffer.
hcs_serial_isr:
    mov byte ptr [rip + HCS_SERIAL_IRQ], 1
    inc qword ptr [rip + HCS_SERIAL_COUNT]
    push rax
    mov rax, [rip + HCS_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rax
    iretq

    // GED: reading the event register returns and clears the pending events.
hcs_ged_isr:
    inc qword ptr [rip + HCS_GED_COUNT]
    push rax
    push rcx
    mov rax, [rip + HCS_GED_REG]
    test rax, rax
    jz 1f
    movzx ecx, byte ptr [rax]
    or dword ptr [rip + HCS_GED_PENDING], ecx
1:  mov rax, [rip + HCS_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rcx
    pop rax
    iretq

    // virtio (the agent's vsock device): acknowledge its interrupt status
    // (so a level-triggered line drops), note it, EOI. The agent polls
    // its rings after every wake-up.
hcs_virtio_isr:
    inc qword ptr [rip + HCS_VIRTIO_COUNT]
    push rax
    push rcx
    mov rax, [rip + HCS_VIRTIO_REG]
    test rax, rax
    jz 1f
    mov ecx, dword ptr [rax + 0x60]
    mov dword ptr [rax + 0x64], ecx
1:  mov rax, [rip + HCS_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rcx
    pop rax
    iretq

hcs_other_isr:
    push rax
    mov rax, [rip + HCS_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rax
    iretq

    // hcs_enter_user(fn, arg, user_stack_top) -> status
    // Runs fn(arg) in ring 3 with IF = 0. It comes back through ud2 at
    // hcs_user_return (or any other exception) and hcs_user_exc above.
    .section .text.hcs_user,"ax",@progbits
    .global hcs_enter_user
    .type hcs_enter_user,@function
hcs_enter_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + HCS_SAVED_KSP], rsp
    mov rax, rdi
    mov rdi, rsi
    push 0x1b
    push rdx
    push 0x2
    push 0x23
    lea rcx, [rip + hcs_user_trampoline]
    push rcx
    iretq
hcs_user_trampoline:
    call rax
    .global hcs_user_return
hcs_user_return:
    ud2
    .size hcs_enter_user, . - hcs_enter_user

    // The one deliberate SSE instruction (command `badinsn`). The post-link
    // gate allows exactly this instruction in exactly this function.
    .section .text.hcs_badinsn_sse,"ax",@progbits
    .global hcs_badinsn_sse
    .type hcs_badinsn_sse,@function
hcs_badinsn_sse:
    .byte 0x0f, 0x57, 0xc0
    ret
    .size hcs_badinsn_sse, . - hcs_badinsn_sse
"#
);

extern "C" {
    pub fn hcs_enter_user(f: extern "C" fn(u64), arg: u64, stack_top: u64) -> u64;
    pub fn hcs_badinsn_sse();
    pub static hcs_user_return: u8;
    pub static __stack_top: u8;
    pub static __trap_stack_top: u8;
    pub static __user_stack_top: u8;
}

#[inline(always)]
pub fn outb(port: u16, v: u8) {
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

#[inline(always)]
pub fn outw(port: u16, v: u16) {
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    }
}

#[inline(always)]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

#[inline(always)]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (lo as u64) | ((hi as u64) << 32)
}

#[inline(always)]
pub fn wrmsr(msr: u32, v: u64) {
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    }
}

#[inline(always)]
pub fn read_cr3() -> u64 {
    let v: u64;
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

#[inline(always)]
pub fn write_cr3(v: u64) {
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack, preserves_flags)) }
}

#[inline(always)]
pub fn read_cr4() -> u64 {
    let v: u64;
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

#[inline(always)]
pub fn write_cr4(v: u64) {
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// `sti; hlt; cli`: sleep until an interrupt has been handled. The STI
/// shadow guarantees an interrupt pending at the STI wakes the HLT. Not
/// `nomem`: the handlers write memory, so this is a compiler barrier.
#[inline(always)]
pub fn wait_for_interrupt() {
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) }
}

/// `sti; nop; cli`: take the interrupts pending now, without sleeping.
#[inline(always)]
pub fn take_interrupts() {
    // SAFETY: briefly enables interrupts; the handlers only count, EOI and
    // set flags. Not `nomem`: a compiler barrier for those flags.
    unsafe { asm!("sti", "nop", "cli", options(nostack)) }
}

/// Halt forever with interrupts off (NMIs still land in the IDT).
pub fn halt_forever() -> ! {
    loop {
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

#[inline(always)]
pub fn mmio_read32(addr: u64) -> u32 {
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

#[inline(always)]
pub fn mmio_write32(addr: u64, v: u32) {
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

#[inline(always)]
pub fn mmio_write8(addr: u64, v: u8) {
    unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
}

/// 10-byte descriptor-table pointer for LGDT/LIDT.
#[repr(C, packed)]
pub struct DescPtr {
    pub limit: u16,
    pub base: u64,
}

pub fn lgdt_ltr(p: &DescPtr, tss_sel: u16) {
    unsafe {
        asm!(
            "lgdt [{p}]",
            "mov {s:e}, 0x10",
            "mov ds, {s:e}",
            "mov es, {s:e}",
            "mov ss, {s:e}",
            "ltr {t:x}",
            p = in(reg) p,
            s = out(reg) _,
            t = in(reg) tss_sel,
            options(nostack, preserves_flags)
        )
    }
}

pub fn lidt(p: &DescPtr) {
    unsafe { asm!("lidt [{}]", in(reg) p, options(nostack, preserves_flags)) }
}

/// Load an empty IDT and raise #UD: #UD → #GP → #DF cannot be delivered,
/// so the CPU shuts down (a triple fault).
pub fn triple_fault() -> ! {
    let p = DescPtr { limit: 0, base: 0 };
    unsafe { asm!("lidt [{}]", "ud2", in(reg) &p, options(noreturn, nostack)) }
}
