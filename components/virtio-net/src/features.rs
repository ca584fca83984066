//! What the driver negotiates with a device and how its queues wait:
//! plain data, the same on both targets.

use bitflags::bitflags;

bitflags! {
    /// The feature bits this driver knows (virtio 1.2, 5.1.3).
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub struct Features: u64 {
        /// The device finishes partial checksums of transmitted packets.
        const CSUM = 1 << 0;
        /// The driver accepts packets with partial checksums (and the
        /// device marks checked ones DATA_VALID).
        const GUEST_CSUM = 1 << 1;
        /// The device advises a maximum MTU in its configuration.
        const MTU = 1 << 3;
        /// The device has a MAC address in its configuration.
        const MAC = 1 << 5;
        /// Receive buffers may be merged (a 12-byte header).
        const MRG_RXBUF = 1 << 15;
        /// The link status is in the configuration.
        const STATUS = 1 << 16;
        /// A control queue exists.
        const CTRL_VQ = 1 << 17;
        /// Several queue pairs, steered by the device.
        const MQ = 1 << 22;
        /// Virtio 1.0 (the modern interface).
        const VERSION_1 = 1 << 32;
    }
}

/// When a queue pair with an interrupt polls instead (boot argument
/// `virtio.poll=auto|never`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Polling {
    /// Under dense traffic (the default): no interrupt per frame, but a
    /// vCPU that spins, which costs a host CPU under emulation.
    Auto,
    /// Never: every burst raises an interrupt and the core halts between.
    Never,
}

/// Counters of a queue pair's interrupt-to-polling switch
/// ([`VirtioNet::poll_stats`](crate::VirtioNet::poll_stats)).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Switches from interrupts to polling.
    pub episodes: u64,
    /// Polling episodes that starved the device: a frame came so soon
    /// after polling stopped (within 250 µs) that the spinning core had
    /// been keeping it out (under emulation, QEMU's I/O thread waiting for
    /// the host CPU the vCPU spun on).
    pub starved: u64,
    /// Busy passes that stayed on interrupts because a starved episode
    /// put the pair on a back-off.
    pub held_back: u64,
}
