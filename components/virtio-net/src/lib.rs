//! # ebbrt-virtio-net
//!
//! The virtio-net driver of EbbRT, a component Ebb: `VirtioNet`, per-core
//! at the well-known id `ebbrt_core::ebb::ids::NET_DEVICE`, over the
//! `virtio-drivers` crate's virtqueues. The Ebb's root holds the device as
//! a whole, found and initialised on the Ebb's first use: a PCI device with
//! the modern interface (`virtio-drivers`' transport) or the legacy one (an
//! I/O-port transport of its own), the features the device offers —
//! checksum offload both ways, merged receive buffers, an advised MTU,
//! multiqueue with a control queue — or none of them, its MAC and the
//! queue pairs not yet opened. The representative on core `i` owns queue
//! pair `i` (an [`ebbrt_net::device::NetQueue`] for that core's stack): its
//! rings, its MSI-X vector, which interrupts that core (without MSI-X,
//! queue pair 0 takes the INTx line through the I/O APIC), and its switch
//! to polling from the idle loop under load (boot argument
//! `virtio.poll=never` keeps interrupts only).
//!
//! The Ebb implements the interface `ebbrt_net::device::NetDeviceEbb` at
//! its id (`#[ebb(..., interface = ...)]`), and the network manager
//! reaches it with `ebbrt_core::ebb::bound::<dyn NetDeviceEbb>()`; it
//! never names this crate, so linking the crate is enough, and another
//! driver may take `NET_DEVICE` instead. The driver is native only: the
//! Ebb type, its binding and its component record compile on both targets
//! (so the hosted catalog lists it), the hardware access only natively;
//! hosted, its root finds no device (`hosted`).
//!
//! What it must not do: know about protocols (the stack does) or keep
//! per-pair state outside the representative that owns the pair. Its
//! `unsafe` code is the port I/O, the MSI-X table and the virtqueue buffer
//! hand-offs, each with its invariant.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

#[cfg(target_os = "none")]
mod device;
mod ebb;
mod features;
#[cfg(target_os = "none")]
mod hal;
#[cfg(not(target_os = "none"))]
mod hosted;
#[cfg(target_os = "none")]
mod legacy;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod pio;
#[cfg(target_os = "none")]
mod queue;

pub use ebb::{VirtioNet, VirtioNetRoot};
pub use features::{Features, PollStats, Polling};

#[cfg(test)]
mod tests {
    use ebbrt_core::EbbKind;
    use ebbrt_core::ebb::ids;
    use ebbrt_core::registry;

    #[test]
    fn the_record_claims_net_device_on_every_target() {
        let r = registry::find("VirtioNet").expect("the driver's record is linked");
        assert_eq!(r.id, Some(ids::NET_DEVICE));
        assert_eq!(r.kind, EbbKind::PerCore);
        assert_eq!(r.crate_name, "ebbrt-virtio-net");
        assert_eq!((r.feature, r.default), (Some("net"), false));
        assert!(
            r.docs.starts_with("The virtio-net NIC driver"),
            "{}",
            r.docs
        );
        assert_eq!(r.interface, "ebbrt_net::device::NetDeviceEbb");
        registry::check_static_ids().expect("no other component claims NET_DEVICE");
        let b = ebbrt_core::ebb::binding::<dyn ebbrt_net::device::NetDeviceEbb>()
            .expect("the driver is the one NIC Ebb bound");
        assert_eq!(
            (b.component, b.crate_name),
            ("VirtioNet", "ebbrt-virtio-net")
        );
    }
}
