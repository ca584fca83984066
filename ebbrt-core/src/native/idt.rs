//! The interrupt descriptor table and the assembly entry stubs.
//!
//! Every vector has a 16-byte stub that pushes a zero error code (where the
//! CPU does not push one) and the vector number, then jumps to one common
//! entry that saves the general-purpose registers as a [`TrapFrame`].
//! Exceptions (vectors below 32) go to [`super::trap::exception`], which
//! reports and exits; interrupts additionally save the SSE state and go to
//! [`super::irq::interrupt`], which only records the event and returns.

use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use super::gdt;

/// The registers saved on entry, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TrapFrame {
    /// The interrupted `r15`.
    pub r15: u64,
    /// The interrupted `r14`.
    pub r14: u64,
    /// The interrupted `r13`.
    pub r13: u64,
    /// The interrupted `r12`.
    pub r12: u64,
    /// The interrupted `r11`.
    pub r11: u64,
    /// The interrupted `r10`.
    pub r10: u64,
    /// The interrupted `r9`.
    pub r9: u64,
    /// The interrupted `r8`.
    pub r8: u64,
    /// The interrupted `rbp`.
    pub rbp: u64,
    /// The interrupted `rdi`.
    pub rdi: u64,
    /// The interrupted `rsi`.
    pub rsi: u64,
    /// The interrupted `rdx`.
    pub rdx: u64,
    /// The interrupted `rcx`.
    pub rcx: u64,
    /// The interrupted `rbx`.
    pub rbx: u64,
    /// The interrupted `rax`.
    pub rax: u64,
    /// The vector number.
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error: u64,
    /// The interrupted instruction pointer.
    pub rip: u64,
    /// The interrupted code segment.
    pub cs: u64,
    /// The interrupted flags.
    pub rflags: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// The interrupted stack segment.
    pub ss: u64,
}

core::arch::global_asm!(
    r#"
    .section .text.ebbrt_vectors, "ax", @progbits
    .balign 16
    .global ebbrt_vector_stubs
ebbrt_vector_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30
    .else
    pushq $0
    .endif
    pushq $vec
    jmp ebbrt_trap_common
    .set vec, vec + 1
    .endr

    .section .text.ebbrt_trap_common, "ax", @progbits
ebbrt_trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cmpq $32, 120(%rsp)
    jb .Lexception
    movq %rsp, %rbx
    subq $512, %rsp
    andq $-16, %rsp
    fxsave64 (%rsp)
    call {irq}
    fxrstor64 (%rsp)
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
.Lexception:
    call {exc}
    ud2
"#,
    irq = sym super::irq::interrupt,
    exc = sym super::trap::exception,
    options(att_syntax)
);

// SAFETY: defined by the `global_asm!` above with this size and layout.
unsafe extern "C" {
    /// 256 stubs, 16 bytes apart (defined above).
    static ebbrt_vector_stubs: [u8; 256 * 16];
}

fn stub(vector: usize) -> VirtAddr {
    VirtAddr::from_ptr(
        (&raw const ebbrt_vector_stubs)
            .cast::<u8>()
            .wrapping_add(vector * 16),
    )
}

static FULL: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// The IDT every core loads once its IST stacks exist: every vector enters
/// through its stub; the double fault, NMI and machine check run on their
/// IST stacks. One table serves all cores: it holds only stub addresses and
/// IST slot numbers, and each core's TSS says where its own IST stacks are.
pub(crate) fn full_idt() -> &'static InterruptDescriptorTable {
    FULL.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        fill(&mut idt, true);
        idt
    })
}

static EARLY: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// An IDT for the boot core's first steps, before there is a heap for the
/// per-core tables and IST stacks: faults there are still reported (on the
/// current stack).
pub(crate) fn early_idt() -> &'static InterruptDescriptorTable {
    EARLY.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        fill(&mut idt, false);
        idt
    })
}

fn fill(idt: &mut InterruptDescriptorTable, ist: bool) {
    // SAFETY: each stub is a valid interrupt entry point
    // that saves the interrupted state and either never returns or returns
    // with `iretq`; the IST indices name stacks that every core's TSS sets
    // up (`gdt::new_tables`).
    unsafe {
        idt.divide_error.set_handler_addr(stub(0));
        idt.debug.set_handler_addr(stub(1));
        let nmi = idt.non_maskable_interrupt.set_handler_addr(stub(2));
        if ist {
            nmi.set_stack_index(gdt::IST_NMI - 1);
        }
        idt.breakpoint.set_handler_addr(stub(3));
        idt.overflow.set_handler_addr(stub(4));
        idt.bound_range_exceeded.set_handler_addr(stub(5));
        idt.invalid_opcode.set_handler_addr(stub(6));
        idt.device_not_available.set_handler_addr(stub(7));
        let df = idt.double_fault.set_handler_addr(stub(8));
        if ist {
            df.set_stack_index(gdt::IST_DOUBLE_FAULT - 1);
        }
        idt.invalid_tss.set_handler_addr(stub(10));
        idt.segment_not_present.set_handler_addr(stub(11));
        idt.stack_segment_fault.set_handler_addr(stub(12));
        idt.general_protection_fault.set_handler_addr(stub(13));
        idt.page_fault.set_handler_addr(stub(14));
        idt.x87_floating_point.set_handler_addr(stub(16));
        idt.alignment_check.set_handler_addr(stub(17));
        let mc = idt.machine_check.set_handler_addr(stub(18));
        if ist {
            mc.set_stack_index(gdt::IST_MACHINE_CHECK - 1);
        }
        idt.simd_floating_point.set_handler_addr(stub(19));
        idt.virtualization.set_handler_addr(stub(20));
        idt.cp_protection_exception.set_handler_addr(stub(21));
        idt.hv_injection_exception.set_handler_addr(stub(28));
        idt.vmm_communication_exception.set_handler_addr(stub(29));
        idt.security_exception.set_handler_addr(stub(30));
        for v in 32..=255u8 {
            idt[v].set_handler_addr(stub(usize::from(v)));
        }
    }
}

/// Loads `idt` on the calling core.
pub(crate) fn load(idt: &'static InterruptDescriptorTable) {
    idt.load();
}
