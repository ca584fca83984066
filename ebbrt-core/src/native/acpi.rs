//! ACPI: the processors (MADT) and the HPET, read with the `acpi` crate.
//!
//! Memory is identity mapped, so "mapping" a table is taking its address.

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::sdt::madt::{Madt, MadtEntry};
use acpi::{AcpiTables, Handler, HpetInfo, PciAddress, PhysicalMapping};
use x86_64::instructions::port::Port;

/// What the kernel needs from ACPI.
#[derive(Debug, Default)]
pub(crate) struct Platform {
    /// Physical address of the local APICs (xAPIC MMIO).
    pub lapic_base: Option<u64>,
    /// APIC ids of the enabled processors, in MADT order.
    pub apic_ids: Vec<u32>,
    /// Physical address of the HPET registers.
    pub hpet: Option<u64>,
}

/// Reads the MADT and HPET tables from the RSDP at `rsdp` (or the one the
/// BIOS areas hold).
pub(crate) fn read(rsdp: Option<u64>) -> Result<Platform, acpi::AcpiError> {
    let rsdp = match rsdp {
        Some(a) => a as usize,
        None => {
            // SAFETY: the BIOS areas are identity-mapped low memory.
            let m = unsafe { acpi::rsdp::Rsdp::search_for_on_bios(Identity)? };
            m.physical_start
        }
    };
    // SAFETY: `rsdp` is the loader's RSDP address or one found by
    // signature and checksum; tables are identity mapped.
    let tables = unsafe { AcpiTables::from_rsdp(Identity, rsdp)? };
    let mut p = Platform::default();
    if let Some(madt) = tables.find_table::<Madt>() {
        p.lapic_base = Some(u64::from(madt.get().local_apic_address));
        for e in madt.get().entries() {
            match e {
                MadtEntry::LocalApic(l) if l.flags & 1 != 0 => {
                    p.apic_ids.push(u32::from(l.apic_id))
                }
                MadtEntry::LocalX2Apic(l) if l.flags & 1 != 0 => p.apic_ids.push(l.x2apic_id),
                MadtEntry::LocalApicAddressOverride(o) => p.lapic_base = Some(o.local_apic_address),
                _ => {}
            }
        }
    }
    p.hpet = HpetInfo::new(&tables).ok().map(|h| h.base_address as u64);
    Ok(p)
}

/// The `acpi` crate's view of the machine: identity-mapped memory and
/// port I/O. PCI configuration access and sleeping are not needed for the
/// static tables and are refused.
#[derive(Clone, Copy)]
struct Identity;

fn read_mem<T: Copy>(address: usize) -> T {
    // SAFETY: the `acpi` crate only reads addresses from the firmware's own
    // tables, identity mapped.
    unsafe { core::ptr::read_volatile(address as *const T) }
}

fn write_mem<T: Copy>(address: usize, value: T) {
    // SAFETY: as `read_mem`: firmware-described registers, identity mapped.
    unsafe { core::ptr::write_volatile(address as *mut T, value) }
}

impl Handler for Identity {
    // SAFETY: all physical memory the firmware's tables live in is identity
    // mapped for the kernel's lifetime, so the mapping is the address itself.
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        PhysicalMapping {
            physical_start: physical_address,
            virtual_start: NonNull::new(physical_address as *mut T)
                .expect("ACPI table at address 0"),
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
    fn read_u8(&self, a: usize) -> u8 {
        read_mem(a)
    }
    fn read_u16(&self, a: usize) -> u16 {
        read_mem(a)
    }
    fn read_u32(&self, a: usize) -> u32 {
        read_mem(a)
    }
    fn read_u64(&self, a: usize) -> u64 {
        read_mem(a)
    }
    fn write_u8(&self, a: usize, v: u8) {
        write_mem(a, v)
    }
    fn write_u16(&self, a: usize, v: u16) {
        write_mem(a, v)
    }
    fn write_u32(&self, a: usize, v: u32) {
        write_mem(a, v)
    }
    fn write_u64(&self, a: usize, v: u64) {
        write_mem(a, v)
    }
    fn read_io_u8(&self, port: u16) -> u8 {
        // SAFETY: a port the firmware's tables name.
        unsafe { Port::new(port).read() }
    }
    fn read_io_u16(&self, port: u16) -> u16 {
        // SAFETY: as above.
        unsafe { Port::new(port).read() }
    }
    fn read_io_u32(&self, port: u16) -> u32 {
        // SAFETY: as above.
        unsafe { Port::new(port).read() }
    }
    fn write_io_u8(&self, port: u16, v: u8) {
        // SAFETY: as above.
        unsafe { Port::new(port).write(v) }
    }
    fn write_io_u16(&self, port: u16, v: u16) {
        // SAFETY: as above.
        unsafe { Port::new(port).write(v) }
    }
    fn write_io_u32(&self, port: u16, v: u32) {
        // SAFETY: as above.
        unsafe { Port::new(port).write(v) }
    }
    fn read_pci_u8(&self, _: PciAddress, _: u16) -> u8 {
        0xff
    }
    fn read_pci_u16(&self, _: PciAddress, _: u16) -> u16 {
        0xffff
    }
    fn read_pci_u32(&self, _: PciAddress, _: u16) -> u32 {
        0xffff_ffff
    }
    fn write_pci_u8(&self, _: PciAddress, _: u16, _: u8) {}
    fn write_pci_u16(&self, _: PciAddress, _: u16, _: u16) {}
    fn write_pci_u32(&self, _: PciAddress, _: u16, _: u32) {}
    fn nanos_since_boot(&self) -> u64 {
        super::clock::now_ns()
    }
    fn stall(&self, us: u64) {
        super::clock::spin_for_ns(us * 1000);
    }
    fn sleep(&self, ms: u64) {
        super::clock::spin_for_ns(ms * 1_000_000);
    }
}
