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
    ///
    /// # Safety
    /// `base` is I/O BAR 0 of a legacy virtio device that this transport
    /// alone drives: its register writes (queue addresses, status, notify)
    /// program that device's DMA, which `virtio-drivers`' queues keep to
    /// memory they own.
    pub(crate) unsafe fn new(base: u16, msix: bool, device_type: DeviceType) -> Self {
        LegacyTransport {
            base,
            config: if msix { 0x18 } else { 0x14 },
            device_type,
        }
    }

    fn in8(&self, reg: u16) -> u8 {
        // SAFETY: `self.base` is our device's BAR (`new`'s contract).
        unsafe { pio::inb(self.base + reg) }
    }

    fn in16(&self, reg: u16) -> u16 {
        // SAFETY: as in `in8`.
        unsafe { pio::inw(self.base + reg) }
    }

    fn in32(&self, reg: u16) -> u32 {
        // SAFETY: as in `in8`.
        unsafe { pio::inl(self.base + reg) }
    }

    fn out8(&mut self, reg: u16, v: u8) {
        // SAFETY: our device's BAR (`new`'s contract); the values written
        // come from `virtio-drivers`' queues and status handling, which
        // point the device only at memory they own.
        unsafe { pio::outb(self.base + reg, v) }
    }

    fn out16(&mut self, reg: u16, v: u16) {
        // SAFETY: as in `out8`.
        unsafe { pio::outw(self.base + reg, v) }
    }

    fn out32(&mut self, reg: u16, v: u32) {
        // SAFETY: as in `out8`.
        unsafe { pio::outl(self.base + reg, v) }
    }

    /// Routes configuration-change interrupts to MSI-X entry `v`.
    pub(crate) fn set_config_vector(&mut self, v: u16) -> u16 {
        self.out16(CONFIG_VECTOR, v);
        self.in16(CONFIG_VECTOR)
    }

    /// Routes queue `q`'s interrupts to MSI-X entry `v`; returns what the
    /// device accepted (0xffff: none).
    pub(crate) fn set_queue_vector(&mut self, q: u16, v: u16) -> u16 {
        self.out16(QUEUE_SELECT, q);
        self.out16(QUEUE_VECTOR, v);
        self.in16(QUEUE_VECTOR)
    }
}

impl Transport for LegacyTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        u64::from(self.in32(DEVICE_FEATURES))
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.out32(GUEST_FEATURES, driver_features as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.out16(QUEUE_SELECT, queue);
        u32::from(self.in16(QUEUE_SIZE))
    }

    fn notify(&mut self, queue: u16) {
        self.out16(QUEUE_NOTIFY, queue);
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(u32::from(self.in8(STATUS)))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.out8(STATUS, status.bits() as u8);
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
        self.out16(QUEUE_SELECT, queue);
        self.out32(QUEUE_PFN, (descriptors >> 12) as u32);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.out16(QUEUE_SELECT, queue);
        self.out32(QUEUE_PFN, 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.out16(QUEUE_SELECT, queue);
        self.in32(QUEUE_PFN) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::from_bits_truncate(u32::from(self.in8(ISR)))
    }

    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let mut v = T::new_zeroed();
        for (i, b) in v.as_mut_bytes().iter_mut().enumerate() {
            *b = self.in8(self.config + (offset + i) as u16);
        }
        Ok(v)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        for (i, b) in value.as_bytes().iter().enumerate() {
            self.out8(self.config + (offset + i) as u16, *b);
        }
        Ok(())
    }
}
