//! PCI configuration space through the legacy mechanism (ports 0xCF8 and
//! 0xCFC), enumeration of bus 0, and MSI-X set-up.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};

use crate::pio;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const CAP_MSIX: u8 = 0x11;

/// Serialises the two-step address/data accesses across cores.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Configuration access through ports 0xCF8/0xCFC. Made by an `unsafe fn`:
/// a configuration write can turn a device's bus mastering (its DMA) on.
#[derive(Debug)]
pub(crate) struct PortCam(());

impl PortCam {
    /// The configuration mechanism.
    ///
    /// # Safety
    /// Only this driver uses ports 0xCF8/0xCFC (the kernel core's platform
    /// code does not), and it writes only the configuration of the devices
    /// it drives.
    pub(crate) unsafe fn new() -> PortCam {
        PortCam(())
    }
}

fn address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(df.bus) << 16)
        | (u32::from(df.device) << 11)
        | (u32::from(df.function) << 8)
        | u32::from(offset & 0xfc)
}

/// Reads a 32-bit word of a function's configuration space. Safe: selecting
/// an address and reading it changes nothing in the device or in memory.
pub(crate) fn read_config(df: DeviceFunction, offset: u8) -> u32 {
    let _g = LOCK.lock();
    // SAFETY: the configuration mechanism's ports, which only this driver
    // uses; selecting an address and reading it has no effect on memory.
    unsafe {
        pio::outl(CONFIG_ADDRESS, address(df, offset));
        pio::inl(CONFIG_DATA)
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        read_config(df, offset)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let _g = LOCK.lock();
        // SAFETY: the configuration mechanism's ports, ours alone, writing
        // a device this driver drives (`PortCam::new`'s contract).
        unsafe {
            pio::outl(CONFIG_ADDRESS, address(df, offset));
            pio::outl(CONFIG_DATA, data);
        }
    }

    // SAFETY: every access goes through the global `LOCK`, so clones of this
    // stateless handle cannot interleave a configuration-space access; a
    // clone carries the original's promise.
    unsafe fn unsafe_clone(&self) -> Self {
        PortCam(())
    }
}

/// The functions on bus 0 with vendor `vendor` and a device id in `ids`.
pub(crate) fn find(vendor: u16, ids: &[u16]) -> alloc::vec::Vec<DeviceFunction> {
    // SAFETY: enumeration only reads configuration space; this driver alone
    // uses the mechanism.
    let root = PciRoot::new(unsafe { PortCam::new() });
    root.enumerate_bus(0)
        .filter(|(_, info)| info.vendor_id == vendor && ids.contains(&info.device_id))
        .map(|(df, _)| df)
        .collect()
}

/// An MSI-X capability: where its table is and how many entries it has.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Msix {
    cap: u8,
    /// Table entries.
    pub entries: u16,
    /// The table's address (identity mapped).
    table: u64,
}

impl Msix {
    /// Finds the MSI-X capability of `df`, if any.
    pub(crate) fn find(root: &mut PciRoot<PortCam>, df: DeviceFunction) -> Option<Msix> {
        let cap = root.capabilities(df).find(|c| c.id == CAP_MSIX)?;
        let control = cap.private_header;
        let table = read_config(df, cap.offset + 4);
        let bir = (table & 7) as u8;
        let offset = u64::from(table & !7);
        let bar = root.bar_info(df, bir).ok()??;
        let (base, _) = bar.memory_address_size()?;
        if base == 0 {
            return None;
        }
        Some(Msix {
            cap: cap.offset,
            entries: (control & 0x7ff) + 1,
            table: base + offset,
        })
    }

    /// Programs entry `i` to send the MSI message `(address, data)`, unmasked.
    pub(crate) fn set_entry(&self, i: u16, (address, data): (u64, u32)) {
        if i >= self.entries || self.table >= crate::hal::identity_mapped() {
            return;
        }
        let e = (self.table + u64::from(i) * 16) as *mut u32;
        // SAFETY: the table lies in the device's memory BAR inside the
        // identity map (checked above), entry `i` is within the table, and
        // only this driver programs this device's table.
        unsafe {
            e.write_volatile(address as u32);
            e.add(1).write_volatile((address >> 32) as u32);
            e.add(2).write_volatile(data);
            e.add(3).write_volatile(0);
        }
    }

    /// Enables MSI-X (and clears the function mask), through `cam`.
    pub(crate) fn enable(&self, cam: &mut PortCam, df: DeviceFunction) {
        let w = cam.read_word(df, self.cap);
        let control = ((w >> 16) as u16 | 0x8000) & !0x4000;
        cam.write_word(df, self.cap, (w & 0xffff) | (u32::from(control) << 16));
    }

    /// Whether the table is reachable (inside the identity map).
    pub(crate) fn usable(&self) -> bool {
        self.table < crate::hal::identity_mapped()
    }
}
