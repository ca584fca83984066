//! Per-core GDT and TSS. Long mode ignores segmentation except for the code
//! segment and the TSS; the TSS is here for its interrupt stack table (IST):
//! the double fault, NMI and machine check handlers run on stacks of their
//! own (in the core's stack slot, each above an unmapped guard page), so a
//! stack overflow still gets reported.

use alloc::boxed::Box;

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::stack::{self, StackError};

/// IST slot (1-based in the IDT, 0-based in the TSS) of the double fault.
pub(crate) const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot of the NMI.
pub(crate) const IST_NMI: u16 = 2;
/// IST slot of the machine check.
pub(crate) const IST_MACHINE_CHECK: u16 = 3;

/// One core's descriptor tables.
pub(crate) struct CoreTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
    code: SegmentSelector,
    data: SegmentSelector,
    tss_sel: SegmentSelector,
}

/// Builds core `index`'s GDT and TSS, with fresh IST stacks (each with a
/// guard page below it, `stack.rs`).
pub(crate) fn new_tables(index: usize) -> Result<&'static mut CoreTables, StackError> {
    let mut tss = TaskStateSegment::new();
    let tops = stack::new_ist_stacks(index)?;
    for slot in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK] {
        let k = usize::from(slot - 1);
        tss.interrupt_stack_table[k] = VirtAddr::new(tops[k]);
    }
    let t = Box::leak(Box::new(CoreTables {
        gdt: GlobalDescriptorTable::new(),
        tss,
        code: SegmentSelector(0),
        data: SegmentSelector(0),
        tss_sel: SegmentSelector(0),
    }));
    t.code = t.gdt.append(Descriptor::kernel_code_segment());
    t.data = t.gdt.append(Descriptor::kernel_data_segment());
    // SAFETY: the TSS lives in the same leaked allocation as the GDT, for
    // the rest of the run, and is never moved.
    t.tss_sel = t
        .gdt
        .append(unsafe { Descriptor::tss_segment_unchecked(&raw const t.tss) });
    Ok(t)
}

/// Loads `t` on the calling core: GDT, segment registers, task register.
pub(crate) fn load(t: &'static CoreTables) {
    t.gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose code segment
    // is a 64-bit ring-0 segment and whose data segment is writable; the
    // TSS descriptor points at a valid TSS not loaded on any other core.
    unsafe {
        CS::set_reg(t.code);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        SS::set_reg(t.data);
        load_tss(t.tss_sel);
    }
}
