//! The PVH entry: from QEMU's 32-bit protected-mode hand-off to Rust.
//!
//! QEMU (`-kernel image.elf`) finds the ELF note `"Xen"`, type 18
//! (XEN_ELFNOTE_PHYS32_ENTRY), and jumps to the 32-bit address it holds with
//! paging off and EBX pointing at `hvm_start_info`. The code below:
//!
//! 1. records the TSC at its first instruction (boot-time measurement);
//! 2. builds identity page tables for the whole of RAM the boot memory map
//!    reports, and at least the low 4 GiB (the LAPIC, I/O APIC and HPET live
//!    there): 1 GiB pages where CPUID.80000001h:EDX[26] offers them, 2 MiB
//!    pages otherwise, the page directories then placed right after the
//!    image (recorded in [`BOOT_PD_BASE`]..[`BOOT_PD_END`] so the memory
//!    manager never hands them out);
//! 3. enters long mode, turns SSE on (rustc emits SSE even in `core::fmt`)
//!    and calls `bringup::kernel_entry` on the boot stack.
//!
//! These tables map everything writable and executable; `paging.rs` sets
//! the real page permissions once the heap exists.
//!
//! Application processors reuse these page tables (see `smp.rs`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::paging::PageTable;

/// Bytes of the stack the boot core starts on; it moves to a guarded stack
/// (`stack.rs`) as soon as the heap exists. Generous because unoptimised
/// builds build the 33 KiB per-core block and the boot information on it,
/// more than once.
pub(crate) const BOOT_STACK_SIZE: usize = 256 * 1024;

/// The TSC at the first instruction of the kernel.
pub(crate) static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// The physical address of `hvm_start_info` (EBX at entry).
pub(crate) static BOOT_START_INFO: AtomicU32 = AtomicU32::new(0);
/// How many GiB from address 0 the boot page tables map.
pub(crate) static BOOT_MAPPED_GIB: AtomicU32 = AtomicU32::new(0);
/// Start of the 2 MiB page directories placed after the image (0 if 1 GiB
/// pages were used).
pub(crate) static BOOT_PD_BASE: AtomicU32 = AtomicU32::new(0);
/// End of those page directories.
pub(crate) static BOOT_PD_END: AtomicU32 = AtomicU32::new(0);

/// The physical range of the boot page directories (recorded by the PVH
/// entry): memory the allocator must not hand out.
pub(crate) fn boot_pd_range() -> core::ops::Range<u64> {
    u64::from(BOOT_PD_BASE.load(Ordering::Relaxed))..u64::from(BOOT_PD_END.load(Ordering::Relaxed))
}

/// The top-level page table, shared by every core.
pub(crate) static BOOT_PML4: PageTable = PageTable::new();
/// The one page-directory-pointer table: identity maps up to 512 GiB.
pub(crate) static BOOT_PDPT: PageTable = PageTable::new();

/// Bytes of the guard page below the boot stack.
const BOOT_GUARD_SIZE: usize = 4096;

/// The boot stack and, below it, its guard page. The boot page tables map
/// the guard like the rest of `.bss`; `paging::protect_kernel` unmaps it,
/// so from then until the boot core leaves this stack an overflow faults.
#[repr(C, align(4096))]
struct BootStack {
    guard: [u8; BOOT_GUARD_SIZE],
    stack: [u8; BOOT_STACK_SIZE],
}

#[unsafe(link_section = ".bss.boot_stack")]
static mut BOOT_STACK: BootStack = BootStack {
    guard: [0; BOOT_GUARD_SIZE],
    stack: [0; BOOT_STACK_SIZE],
};

/// The guard page below the boot stack.
pub(crate) fn boot_stack_guard() -> core::ops::Range<u64> {
    let start = (&raw const BOOT_STACK) as u64;
    start..start + BOOT_GUARD_SIZE as u64
}

/// The TSC value recorded at the kernel's first instruction.
pub fn boot_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

// Each block starts its own section (a `global_asm!` continues in the
// previous block's section otherwise).
core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long _start
    .balign 4

    .section .rodata.boot_gdt, "a", @progbits
    .balign 16
.Lboot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
.Lboot_gdt_ptr:
    .word .Lboot_gdt_ptr - .Lboot_gdt - 1
    .long .Lboot_gdt

    .section .text.boot32, "ax", @progbits
    .code32
    .global _start
_start:
    rdtsc
    movl %eax, {tsc}
    movl %edx, {tsc}+4
    movl %ebx, {info}
    cli
    cld

    /* edi = 1 if 1 GiB pages are available */
    xorl %edi, %edi
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb .Lno_1g
    movl $0x80000001, %eax
    cpuid
    btl $26, %edx
    jnc .Lno_1g
    movl $1, %edi
.Lno_1g:

    /* ebp = GiB to map: at least 4, up to the end of the highest RAM entry */
    movl $4, %ebp
    movl {info}, %esi
    cmpl $0x336ec578, (%esi)
    jne .Lcounted
    cmpl $1, 4(%esi)
    jb .Lcounted
    cmpl $0, 44(%esi)
    jne .Lcounted
    movl 40(%esi), %ebx
    movl 48(%esi), %ecx
.Lentry:
    testl %ecx, %ecx
    jz .Lcounted
    cmpl $1, 16(%ebx)
    jne .Lnext
    movl 0(%ebx), %eax
    movl 4(%ebx), %edx
    addl 8(%ebx), %eax
    adcl 12(%ebx), %edx
    addl $0x3fffffff, %eax
    adcl $0, %edx
    shrl $30, %eax
    shll $2, %edx
    orl %edx, %eax
    cmpl %ebp, %eax
    jbe .Lnext
    movl %eax, %ebp
.Lnext:
    addl $24, %ebx
    decl %ecx
    jmp .Lentry
.Lcounted:
    cmpl $512, %ebp
    jbe .Lclamped
    movl $512, %ebp
.Lclamped:
    movl %ebp, {gib}

    /* PML4[0] -> PDPT */
    movl ${pdpt}, %eax
    orl $3, %eax
    movl %eax, {pml4}

    testl %edi, %edi
    jz .Lmap_2m
    xorl %ecx, %ecx
.Lmap_1g:
    movl %ecx, %eax
    shll $30, %eax
    orl $0x83, %eax
    movl %eax, {pdpt}(,%ecx,8)
    movl %ecx, %edx
    shrl $2, %edx
    movl %edx, {pdpt}+4(,%ecx,8)
    incl %ecx
    cmpl %ebp, %ecx
    jb .Lmap_1g
    jmp .Lmapped

.Lmap_2m:
    movl $_end, %ebx
    addl $0xfff, %ebx
    andl $0xfffff000, %ebx
    movl %ebx, {pd_base}
    xorl %ecx, %ecx
.Lmap_gib:
    leal 3(%ebx), %eax
    movl %eax, {pdpt}(,%ecx,8)
    movl $0, {pdpt}+4(,%ecx,8)
    xorl %esi, %esi
.Lmap_pde:
    movl %ecx, %eax
    shll $30, %eax
    movl %esi, %edx
    shll $21, %edx
    orl %edx, %eax
    orl $0x83, %eax
    movl %eax, (%ebx,%esi,8)
    movl %ecx, %edx
    shrl $2, %edx
    movl %edx, 4(%ebx,%esi,8)
    incl %esi
    cmpl $512, %esi
    jb .Lmap_pde
    addl $4096, %ebx
    incl %ecx
    cmpl %ebp, %ecx
    jb .Lmap_gib
    movl %ebx, {pd_end}

.Lmapped:
    /* PAE, CR3, EFER.LME, then paging: long mode (compatibility) */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl ${pml4}, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    lgdt .Lboot_gdt_ptr
    ljmp $0x08, $.Lboot64

    .code64
.Lboot64:
    xorl %eax, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    call ebbrt_enable_sse
    leaq {stack}+{stack_top}(%rip), %rsp
    xorl %ebp, %ebp
    movl {info}(%rip), %edi
    call {entry}
    ud2

    .section .text.enable_sse, "ax", @progbits
    .global ebbrt_enable_sse
ebbrt_enable_sse:
    /* CR0: EM off, MP on; CR4: OSFXSR | OSXMMEXCPT */
    movq %cr0, %rax
    andq $-5, %rax
    orq $2, %rax
    movq %rax, %cr0
    movq %cr4, %rax
    orq $0x600, %rax
    movq %rax, %cr4
    ret
"#,
    tsc = sym BOOT_TSC,
    info = sym BOOT_START_INFO,
    gib = sym BOOT_MAPPED_GIB,
    pd_base = sym BOOT_PD_BASE,
    pd_end = sym BOOT_PD_END,
    pml4 = sym BOOT_PML4,
    pdpt = sym BOOT_PDPT,
    stack = sym BOOT_STACK,
    stack_top = const BOOT_GUARD_SIZE + BOOT_STACK_SIZE,
    entry = sym super::bringup::kernel_entry,
    options(att_syntax)
);
