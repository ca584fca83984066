//! # ebbrt-virtio-net
//!
//! The virtio-net driver of EbbRT (PCI; modern and legacy devices): one
//! [`ebbrt_net::device::NetQueue`] per queue pair, registered with the
//! network manager as a device probe. Being written: see the crate's
//! issue; until then this crate registers nothing.
#![no_std]
