//! Bringing up the other cores: INIT-SIPI-SIPI to a real-mode trampoline.
//!
//! The trampoline is copied to [`TRAMPOLINE`] (a page below 1 MiB, which
//! the memory manager never hands out). It goes real mode → protected mode
//! → long mode on the boot page tables, turns SSE on and calls [`ap_entry`]
//! on a stack the boot core allocated. Cores are started one at a time, so
//! one parameter block (in the kernel's `.data`) is enough. The trampoline
//! page is read-and-execute while the cores start and read/write,
//! no-execute after; the trampoline turns on no-execute (EFER.NXE) and
//! write protection (CR0.WP) as the boot core has them, before paging,
//! since the shared page tables carry no-execute bits. Each core loads
//! its own GDT/TSS/IDT, enables its local APIC, says it is alive, and waits
//! for the boot core's go before entering its event loop.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::gdt::{self, CoreTables};
use super::paging::{self, Access};
use super::{apic, boot, clock, exit, idt, irq, mem, percpu, stack};
use crate::cpu::{self, CoreId, MAX_CORES};
use crate::percore::CoreLocal;

/// Physical address the trampoline runs at (SIPI vector 0x08).
const TRAMPOLINE: u64 = 0x8000;

core::arch::global_asm!(
    r#"
    .section .rodata.ebbrt_ap_trampoline, "a", @progbits
    .balign 16
    .code16
    .global ebbrt_ap_trampoline
ebbrt_ap_trampoline:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl {base} + (.Lap_gdt_ptr - ebbrt_ap_trampoline)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, ${base} + (.Lap32 - ebbrt_ap_trampoline)

    .code32
.Lap32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl ${pml4}, %eax
    movl %eax, %cr3
    /* EFER: LME, and NXE when the boot core turned it on (the tables
       have no-execute bits, reserved while NXE is off) */
    movl $0xc0000080, %ecx
    rdmsr
    orl {efer}, %eax
    wrmsr
    /* CR0: paging and write protection */
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    ljmpl $0x18, ${base} + (.Lap64 - ebbrt_ap_trampoline)

    .code64
.Lap64:
    xorl %eax, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq {params}, %rsp
    movl $ebbrt_enable_sse, %eax
    call *%rax
    movq {params}+8, %rdi
    xorl %ebp, %ebp
    movl ${entry}, %eax
    call *%rax
    ud2

    /* Accessed bits preset: the CPU would otherwise write them when it
       loads a selector, and the page is read-only once paging is on. */
    .balign 16
.Lap_gdt:
    .quad 0
    .quad 0x00cf9b000000ffff
    .quad 0x00cf93000000ffff
    .quad 0x00af9b000000ffff
.Lap_gdt_ptr:
    .word 31
    .long {base} + (.Lap_gdt - ebbrt_ap_trampoline)
    .global ebbrt_ap_trampoline_end
ebbrt_ap_trampoline_end:
"#,
    base = const TRAMPOLINE,
    pml4 = sym boot::BOOT_PML4,
    efer = sym AP_EFER,
    params = sym AP_PARAMS,
    entry = sym ap_entry,
    options(att_syntax)
);

// SAFETY: labels of the trampoline `global_asm!` above; only their
// addresses are used, to copy the trampoline.
unsafe extern "C" {
    static ebbrt_ap_trampoline: u8;
    static ebbrt_ap_trampoline_end: u8;
}

/// The EFER bits the trampoline sets: LME, and NXE when the boot core has
/// it on. Read by the AP in protected mode, before paging.
static AP_EFER: AtomicU32 = AtomicU32::new(0x100);
/// The starting AP's stack top and argument (its `ApBoot`), read by the
/// trampoline. In the kernel's `.data`, not the trampoline page: that page
/// is read-only while it is executable.
static AP_PARAMS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// What the boot core prepares for one application processor.
struct ApBoot {
    index: u32,
    local: &'static CoreLocal,
    tables: &'static CoreTables,
    alive: AtomicBool,
}

/// Released by the boot core once the core count and the platform are set.
static GO: AtomicBool = AtomicBool::new(false);

/// Lets every started core enter its event loop.
pub(crate) fn release() {
    GO.store(true, Ordering::Release);
    for core in cpu::all().skip(1) {
        apic::send_ipi(
            percpu::of(core).apic_id.load(Ordering::Relaxed),
            irq::WAKE_VECTOR,
        );
    }
}

extern "C" fn ap_entry(boot: &'static ApBoot) -> ! {
    // SAFETY: the block was allocated for this core alone.
    unsafe { percpu::install(boot.local) };
    gdt::load(boot.tables);
    idt::load(idt::full_idt());
    apic::init_local();
    boot.alive.store(true, Ordering::Release);
    // Halt rather than spin: under emulation a spinning vCPU steals host
    // time from the boot core. `release` sends a wake IPI.
    while !GO.load(Ordering::Acquire) {
        // `sti; hlt` waits for an interrupt (an IPI pending since the check
        // above ends the `hlt` at once); the handler only acknowledges it,
        // and interrupts are off again afterwards.
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
    // The boot core made the trampoline page no-execute before the go:
    // drop any translation of it this core still caches.
    x86_64::instructions::tlb::flush_all();
    if boot.index as usize >= cpu::count() {
        // Started after the boot core gave up on it: stay out of the way.
        exit::halt_forever();
    }
    // SAFETY: index `boot.index` was given to this core only, GS is set.
    unsafe { cpu::enter(CoreId(boot.index)) };
    let code = crate::exec::run();
    exit::exit(code)
}

fn wait_alive(b: &ApBoot, ns: u64) -> bool {
    let end = clock::now_ns() + ns;
    while clock::now_ns() < end {
        if b.alive.load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    b.alive.load(Ordering::Acquire)
}

/// Starts the cores with APIC ids `apic_ids` (the boot core's own id is
/// skipped). Returns how many cores run in total, the boot core included;
/// they are numbered in start order.
pub(crate) fn start_aps(bsp_apic: u32, apic_ids: &[u32]) -> u32 {
    let tramp = (&raw const ebbrt_ap_trampoline) as usize;
    let len = (&raw const ebbrt_ap_trampoline_end) as usize - tramp;
    if !apic_ids.iter().any(|&id| id != bsp_apic) {
        return 1;
    }
    if !mem::is_ram(TRAMPOLINE..TRAMPOLINE + 4096) || len > 4096 {
        log::warn!("no RAM at {TRAMPOLINE:#x} for the AP trampoline: running on one core");
        return 1;
    }
    // SAFETY: the trampoline page is RAM below 1 MiB, which the memory
    // manager never hands out, mapped read/write; the source is the
    // assembled trampoline (at most a page, checked above).
    unsafe { core::ptr::copy_nonoverlapping(tramp as *const u8, TRAMPOLINE as *mut u8, len) };
    // The page is executable only while APs start, and never writable
    // meanwhile.
    AP_EFER.store(
        0x100 | if paging::no_execute() { 0x800 } else { 0 },
        Ordering::Relaxed,
    );
    // SAFETY: the trampoline page holds only the code copied just above,
    // which nothing writes while it is executable.
    if let Err(e) = unsafe { paging::set_access(TRAMPOLINE, Access::ReadExec) } {
        log::warn!("cannot make the AP trampoline executable ({e}): running on one core");
        return 1;
    }
    let cores = start_each(bsp_apic, apic_ids);
    // Every AP that started runs kernel code now, and the others were sent
    // INIT. The APs drop their cached translation of the page after the go
    // (`ap_entry`), which `release` gives after this.
    // SAFETY: every AP that started left the trampoline for kernel code;
    // nothing runs from the page any more.
    if let Err(e) = unsafe { paging::set_access(TRAMPOLINE, Access::ReadWrite) } {
        log::warn!("the AP trampoline page stays executable: {e}");
    }
    cores
}

fn start_each(bsp_apic: u32, apic_ids: &[u32]) -> u32 {
    // Real hardware wants 10 ms between INIT and SIPI; hypervisors don't.
    let hypervisor = raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_hypervisor());
    let mut next: u32 = 1;
    for &id in apic_ids.iter().filter(|&&id| id != bsp_apic) {
        if next as usize >= MAX_CORES {
            log::warn!("more than {MAX_CORES} processors: ignoring the rest");
            break;
        }
        let made =
            stack::new_stack(next as usize).and_then(|s| Ok((s, gdt::new_tables(next as usize)?)));
        let (stack, tables) = match made {
            Ok(m) => m,
            Err(e) => {
                log::warn!("cannot start the processor with APIC id {id}: {e}");
                break;
            }
        };
        let ap: &'static ApBoot = Box::leak(Box::new(ApBoot {
            index: next,
            local: Box::leak(Box::new(CoreLocal::new())),
            tables,
            alive: AtomicBool::new(false),
        }));
        // No AP runs the trampoline now: the previous one said it is alive
        // (it has left the trampoline) or was sent INIT.
        AP_PARAMS[0].store(stack.end, Ordering::Release);
        AP_PARAMS[1].store(ap as *const ApBoot as u64, Ordering::Release);
        apic::send_init(id);
        if !hypervisor {
            clock::spin_for_ns(10_000_000);
        }
        apic::send_startup(id, (TRAMPOLINE >> 12) as u8);
        if !wait_alive(ap, 1_000_000) {
            apic::send_startup(id, (TRAMPOLINE >> 12) as u8);
            if !wait_alive(ap, 1_000_000_000) {
                log::warn!("processor with APIC id {id} did not start; parking it");
                apic::send_init(id);
                continue;
            }
        }
        percpu::register(CoreId(next), id, stack);
        next += 1;
    }
    next
}
