//! The legacy (virtio 0.9.5) PCI transport: registers in I/O BAR 0.
//! `virtio-drivers` only speaks the modern PCI transport; this one lets
//! the same queues run on legacy-only devices (`disable-modern=on`).

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::pio;

const DEVICE_FEATURES: u16 = 0x00;
const GUEST_FEATURES: u16 = 0x04;
const QUEUE_PFN: u16 = 0x08;
const QUEUE_SIZE: u16 = 0x0c;
const QUEUE_SELECT: u16 = 0x0e;
const QUEUE_NOTIFY: u16 = 0x10;
const STATUS: u16 = 0x12;
const ISR: u16 = 0x13;
const CONFIG_VECTOR: u16 = 0x14;
const QUEUE_VECTOR: u16 = 0x16;

/// A legacy virtio device behind an I/O BAR.
#[derive(Debug)]
pub(crate) struct LegacyTransport {
    base: u16,
    /// Device-specific configuration starts here (it moves when MSI-X is on).
    config: u16,
    device_type: DeviceType,
}

impl LegacyTransport {
    /// The device at I/O port `base`; `msix`: MSI-X is enabled.
    pub(crate) fn new(base: u16, msix: bool, device_type: DeviceType) -> Self {
        LegacyTransport {
            base,
            config: if msix { 0x18 } else { 0x14 },
            device_type,
        }
    }

    /// Routes configuration-change interrupts to MSI-X entry `v`.
    pub(crate) fn set_config_vector(&mut self, v: u16) -> u16 {
        pio::outw(self.base + CONFIG_VECTOR, v);
        pio::inw(self.base + CONFIG_VECTOR)
    }

    /// Routes queue `q`'s interrupts to MSI-X entry `v`; returns what the
    /// device accepted (0xffff: none).
    pub(crate) fn set_queue_vector(&mut self, q: u16, v: u16) -> u16 {
        pio::outw(self.base + QUEUE_SELECT, q);
        pio::outw(self.base + QUEUE_VECTOR, v);
        pio::inw(self.base + QUEUE_VECTOR)
    }
}

impl Transport for LegacyTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        u64::from(pio::inl(self.base + DEVICE_FEATURES))
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        pio::outl(self.base + GUEST_FEATURES, driver_features as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        pio::outw(self.base + QUEUE_SELECT, queue);
        u32::from(pio::inw(self.base + QUEUE_SIZE))
    }

    fn notify(&mut self, queue: u16) {
        pio::outw(self.base + QUEUE_NOTIFY, queue);
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(u32::from(pio::inb(self.base + STATUS)))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        pio::outb(self.base + STATUS, status.bits() as u8);
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        true
    }

    fn queue_set(
        &mut self,
        queue: u16,
        _size: u32,
        descriptors: PhysAddr,
        _driver_area: PhysAddr,
        _device_area: PhysAddr,
    ) {
        // The legacy layout is one contiguous, page-aligned block at the
        // descriptor table; its size is the device's.
        pio::outw(self.base + QUEUE_SELECT, queue);
        pio::outl(self.base + QUEUE_PFN, (descriptors >> 12) as u32);
    }

    fn queue_unset(&mut self, queue: u16) {
        pio::outw(self.base + QUEUE_SELECT, queue);
        pio::outl(self.base + QUEUE_PFN, 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        pio::outw(self.base + QUEUE_SELECT, queue);
        pio::inl(self.base + QUEUE_PFN) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::from_bits_truncate(u32::from(pio::inb(self.base + ISR)))
    }

    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let mut v = T::new_zeroed();
        for (i, b) in v.as_mut_bytes().iter_mut().enumerate() {
            *b = pio::inb(self.base + self.config + (offset + i) as u16);
        }
        Ok(v)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        for (i, b) in value.as_bytes().iter().enumerate() {
            pio::outb(self.base + self.config + (offset + i) as u16, *b);
        }
        Ok(())
    }
}
