//! The device interface the stack runs over: one queue pair per stack,
//! and how the network manager finds the NIC.
//!
//! A NIC ([`NetDevice`]) offers one or more receive/transmit queue pairs
//! ([`NetQueue`]). Each stack owns exactly one queue pair, on one core; the
//! queue never migrates after the stack took it. Drivers (virtio-net) and the
//! simulated link ([`crate::sim`]) implement these traits; the stack knows
//! nothing else about them.
//!
//! A NIC driver is an Ebb at the well-known id [`ids::NET_DEVICE`] that
//! implements the interface [`NetDeviceEbb`]: typically per-core, the
//! representative on core `i` owning queue pair `i` and the root holding
//! the device-wide state. This crate never names a driver: the driver
//! crate declares its Ebb with `#[ebb(..., interface = NetDeviceEbb)]`,
//! which leaves a binding in the interface's link-time list, and the
//! network manager reaches the one bound with
//! `ebbrt_core::ebb::bound::<dyn NetDeviceEbb>()`. Deleting the driver
//! crate leaves a network without a NIC; another driver takes the id by
//! implementing the interface there (linking two is an error that names
//! both).
//!
//! [`ids::NET_DEVICE`]: ebbrt_core::ebb::ids::NET_DEVICE

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::task::Waker;

use ebbrt_core::ebb::ids;

/// Offloads and limits of one queue pair, as negotiated with the device.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueueCaps {
    /// The largest IP packet (without the Ethernet header) the link carries.
    pub mtu: usize,
    /// The device may mark received frames whose TCP/UDP checksum it has
    /// verified ([`RxFrame::checksum_ok`]); the stack then skips verifying.
    pub rx_checksum: bool,
    /// The device completes TCP/UDP checksums of transmitted frames that
    /// carry a [`TxChecksum`] request (the stack writes the pseudo-header sum).
    pub tx_checksum: bool,
}

impl Default for QueueCaps {
    fn default() -> Self {
        QueueCaps {
            mtu: 1500,
            rx_checksum: false,
            tx_checksum: false,
        }
    }
}

/// A received Ethernet frame, owned by the stack until it gives the buffer
/// back with [`NetQueue::recycle`] (drivers refill their rings with it: the
/// frame is never copied between the device and the stack).
#[derive(Debug)]
pub struct RxFrame {
    /// The buffer the device wrote into.
    pub buf: Vec<u8>,
    /// Where the Ethernet frame starts in `buf` (after any device header).
    pub start: usize,
    /// The frame's length.
    pub len: usize,
    /// The device verified the frame's TCP/UDP checksum.
    pub checksum_ok: bool,
    /// Driver bookkeeping (which descriptor the buffer came from).
    pub token: u32,
}

impl RxFrame {
    /// A frame that takes `buf` as its bytes, without copying (simulated
    /// devices, frames injected by another stack). It belongs to no queue.
    pub fn from_vec(buf: Vec<u8>) -> RxFrame {
        RxFrame {
            start: 0,
            len: buf.len(),
            buf,
            checksum_ok: false,
            token: RxFrame::DETACHED,
        }
    }

    /// A frame holding a copy of `bytes` ([`RxFrame::from_vec`] of a copy).
    pub fn from_bytes(bytes: &[u8]) -> RxFrame {
        RxFrame::from_vec(bytes.to_vec())
    }

    /// The `token` of a frame that belongs to no queue (it is not recycled).
    pub const DETACHED: u32 = u32::MAX;

    /// The frame's bytes. A driver-supplied `start`/`len` beyond the buffer
    /// yields an empty frame (dropped as truncated) instead of a panic.
    pub fn data(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start.saturating_add(self.len))
            .unwrap_or(&[])
    }
}

/// A request to the device to finish a TCP/UDP checksum (virtio's
/// `NEEDS_CSUM`): sum from `start` to the end of the frame and store the
/// result at `start + offset`. The checksum field already holds the
/// pseudo-header sum.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TxChecksum {
    /// Offset of the transport header from the start of the frame.
    pub start: u16,
    /// Offset of the checksum field within the transport header.
    pub offset: u16,
}

/// Why a transmit did not happen.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TxError {
    /// The transmit ring is full: try again after a completion.
    Full,
    /// The frame is larger than the device accepts.
    TooLong,
}

/// One receive/transmit queue pair, used by the one core that owns it.
pub trait NetQueue {
    /// Offloads and limits.
    fn caps(&self) -> QueueCaps;

    /// The next received frame, if any.
    fn receive(&mut self) -> Option<RxFrame>;

    /// Gives a received frame's buffer back to the queue.
    fn recycle(&mut self, frame: RxFrame);

    /// Whether a transmit would find room now (reclaiming completed
    /// transmits first).
    fn can_transmit(&mut self) -> bool;

    /// Transmits a frame of `len` bytes that `fill` writes in place; `fill`
    /// returns the checksum the device must finish, if any (only when
    /// [`QueueCaps::tx_checksum`] is set).
    fn transmit(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<TxChecksum>,
    ) -> Result<(), TxError>;

    /// Registers the waker to wake when frames arrive or transmit room
    /// frees up (from the device's interrupt handler, or the idle poller).
    /// Replaces any previous waker.
    fn set_waker(&mut self, waker: &Waker);

    /// Called by the stack once it has drained the receive queue: the
    /// driver may re-arm its interrupt (and leave polling mode) here.
    /// Returns `true` if frames arrived meanwhile (poll again).
    fn rearm(&mut self) -> bool {
        false
    }
}

/// A NIC as a whole: its address and its queue pairs. A driver's Ebb
/// hands it out ([`NetDeviceEbb::device`]; usually its root, which holds
/// the device-wide state); tests build one over a simulated link
/// ([`crate::sim::SimDevice`]).
pub trait NetDevice: Send + Sync {
    /// The device's Ethernet address.
    fn mac(&self) -> [u8; 6];
    /// How many queue pairs are usable (1 without multiqueue).
    fn queue_pairs(&self) -> usize;
    /// Takes queue pair `index` (each one once), to be used on the core
    /// that called this, which the network manager makes core `index`. A
    /// driver may refuse (`None`) another core: virtio-net routes pair
    /// `i`'s interrupt to core `i`, whose representative owns the pair.
    fn take_queue(&self, index: usize) -> Option<Box<dyn NetQueue>>;
    /// Turns on `pairs` queue pairs (multiqueue devices start with one);
    /// returns how many are active (at least 1 when the device works).
    fn activate(&self, pairs: usize) -> usize {
        pairs.clamp(1, self.queue_pairs().max(1))
    }
    /// A short description for logs ("virtio-net (modern), 2 queue pairs, csum").
    fn describe(&self) -> alloc::string::String;
}

/// A NIC driver's Ebb, the interface of the swappable NIC: an Ebb at the
/// well-known id [`ids::NET_DEVICE`] whose representatives hand out the
/// [`NetDevice`]. A driver declares its Ebb with
/// `#[ebb(per_core, id = ids::NET_DEVICE, interface = ebbrt_net::device::NetDeviceEbb, ...)]`;
/// the network manager reaches it with
/// `ebbrt_core::ebb::bound::<dyn NetDeviceEbb>()`, never naming it.
///
/// [`ids::NET_DEVICE`]: ebbrt_core::ebb::ids::NET_DEVICE
#[ebbrt_core::interface(id = ids::NET_DEVICE)]
pub trait NetDeviceEbb {
    /// The NIC, reached from this core's representative; `None` when the
    /// driver found no device (the network then has none). Building the
    /// Ebb's root on its first use is where a driver finds and initialises
    /// its device.
    fn device(&'static self) -> Option<&'static dyn NetDevice>;
}
