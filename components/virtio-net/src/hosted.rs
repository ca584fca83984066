//! The driver in a hosted build: its Ebb without its hardware.
//!
//! A Linux process has no PCI bus to probe, no I/O ports and no interrupt
//! vectors to route, so hosted the NIC Ebb's root finds no device: the
//! network is then without a NIC, as on a machine without a virtio-net
//! device. The types that only a found device has, [`Nic`] and [`Live`],
//! have no values here, so whatever would use one cannot run, and the
//! compiler checks it (`match *self {}`). The Ebb type, its interface
//! binding and its component record are the same on both targets (the
//! hosted component catalog lists the driver); the `ebbrt` facade links
//! this crate only into native images.

use alloc::boxed::Box;
use alloc::string::String;

use ebbrt_net::device::{NetDevice, NetQueue};

use crate::features::Features;

/// A found virtio-net device: never, in a hosted process.
pub(crate) enum Nic {}

impl Nic {
    /// There is no PCI bus to look on.
    pub(crate) fn probe() -> Option<Nic> {
        log::debug!("virtio-net: a hosted process has no PCI bus; no device");
        None
    }

    pub(crate) fn features(&self) -> Features {
        match *self {}
    }

    pub(crate) fn mtu(&self) -> usize {
        match *self {}
    }
}

impl NetDevice for Nic {
    fn mac(&self) -> [u8; 6] {
        match *self {}
    }

    fn queue_pairs(&self) -> usize {
        match *self {}
    }

    fn take_queue(&self, _index: usize) -> Option<Box<dyn NetQueue>> {
        match *self {}
    }

    fn describe(&self) -> String {
        match *self {}
    }
}

/// An open queue pair: never without a device.
pub(crate) enum Live {}

impl Live {
    pub(crate) fn poll_stats(&self) -> crate::PollStats {
        match *self {}
    }

    pub(crate) fn polling(&self) -> bool {
        match *self {}
    }
}
