//! # ebbrt-virtio-net
//!
//! The virtio-net driver of EbbRT over the `virtio-drivers` crate's
//! virtqueues: PCI devices with the modern interface (`virtio-drivers`'
//! transport) or the legacy one (an I/O-port transport of its own), the
//! features the device offers — checksum offload both ways, merged receive
//! buffers, multiqueue with a control queue — and none of them. Each queue
//! pair becomes an [`ebbrt_net::device::NetQueue`] owned by one core; its
//! MSI-X vector interrupts that core (without MSI-X, queue pair 0 takes the
//! INTx line through the I/O APIC), and under load the pair switches to
//! polling from the idle loop (boot argument `virtio.poll=never` keeps
//! interrupts only).
//!
//! It registers a probe with the network manager ([`ebbrt_net::register_net_device!`]);
//! linking the crate is enough. Hosted builds contain nothing.
//!
//! What it must not do: know about protocols (the stack does) or keep
//! state outside its queue pairs. Its `unsafe` code is the port I/O, the
//! MSI-X table and the virtqueue buffer hand-offs, each with its invariant.
#![no_std]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod device;
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
pub use device::{Features, Polling, ProbeError, VirtioNet};

#[cfg(target_os = "none")]
fn probe() -> Option<alloc::boxed::Box<dyn ebbrt_net::device::NetDevice>> {
    VirtioNet::probe().map(|d| alloc::boxed::Box::new(d) as _)
}

#[cfg(target_os = "none")]
ebbrt_net::register_net_device!(probe);
