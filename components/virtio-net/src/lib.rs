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
//! The network manager reaches the Ebb through its `EbbRef`, bound with
//! [`ebbrt_net::bind_net_device!`]; it never names this crate, so linking
//! the crate is enough, and another driver may take `NET_DEVICE` instead.
//! The driver is native only; the component record (for the catalog)
//! compiles on both targets.
//!
//! What it must not do: know about protocols (the stack does) or keep
//! per-pair state outside the representative that owns the pair. Its
//! `unsafe` code is the port I/O, the MSI-X table and the virtqueue buffer
//! hand-offs, each with its invariant.
#![no_std]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[cfg(target_os = "none")]
mod device;
#[cfg(target_os = "none")]
mod ebb;
#[cfg(target_os = "none")]
mod hal;
#[cfg(target_os = "none")]
mod legacy;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod pio;
#[cfg(target_os = "none")]
mod queue;

#[cfg(target_os = "none")]
pub use device::{Features, Polling};
#[cfg(target_os = "none")]
pub use ebb::{VirtioNet, VirtioNetRoot};

/// The catalog's documentation of `VirtioNet`'s record (the type itself
/// exists only natively).
const DOCS: &str = "\
The virtio-net NIC driver, a per-core Ebb at `NET_DEVICE`; native only \
(the record is in hosted builds too, so the catalog lists it).

- **Root**: the device as a whole, found on PCI bus 0 and initialised on \
the Ebb's first use: the modern or the legacy interface (`virtio.legacy` \
forces legacy), the negotiated features (checksum offload both ways, \
merged receive buffers, an advised MTU, multiqueue with its control \
queue; each dropped cleanly when the device lacks it), MAC, MTU, the \
queue pairs not yet opened.
- **Representative on core i**: owns queue pair i once core i's stack \
opened it: its receive and transmit rings, its MSI-X vector (routed to \
core i; without MSI-X queue pair 0 takes the INTx line through the I/O \
APIC, and the other pairs poll), and its switch from interrupts to \
polling from the idle loop under dense traffic and back when quiet \
(`virtio.poll=never`: interrupts only).
- **How the network reaches it**: `ebbrt_net::bind_net_device!` leaves a \
type-erased `EbbRef` in `ebbrt_net::device::NET_DEVICE_REFS`; the network \
manager takes the one at `NET_DEVICE` and runs one stack per active queue \
pair (one per core with multiqueue, else core 0's, reached through \
`spawn_on`). The network crate never names this one, so another NIC \
driver can take the id.";

ebbrt_core::register_component! {
    VirtioNet {
        name: "VirtioNet",
        kind: ebbrt_core::EbbKind::PerCore,
        interface: "ebbrt_virtio_net::VirtioNet",
        summary: "The virtio-net NIC driver (native only): its representative on core i owns queue pair i (rings, interrupt vector, interrupt-to-polling switch), its root the device-wide state (features, MAC, MTU, queue pairs, control queue); the network manager reaches it at NET_DEVICE.",
        id: Some(ebbrt_core::ebb::ids::NET_DEVICE),
        docs: DOCS,
    }
}

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
        assert_eq!((r.feature, r.default), (None, true));
        assert!(
            r.docs.starts_with("The virtio-net NIC driver"),
            "{}",
            r.docs
        );
        registry::check_static_ids().expect("no other component claims NET_DEVICE");
    }
}
