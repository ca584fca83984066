//! The NIC Ebb: per-core, at the well-known id `NET_DEVICE`.
//!
//! The root ([`VirtioNetRoot`]) holds the device as a whole, found and
//! initialised when the root is built (the Ebb's first use, by the network
//! manager): negotiated features, MAC, MTU, queue pairs not yet opened,
//! the control queue. The representative on core `i` owns queue pair `i`
//! once that core's stack opened it: its rings, its interrupt vector's
//! task and its interrupt-to-polling switch. The network manager reaches
//! the Ebb as the implementation of the interface
//! `ebbrt_net::device::NetDeviceEbb`, never by naming it.
//!
//! This file compiles on both targets; hosted, `Nic` and `Live` are the
//! value-less types of `crate::hosted` (no device is ever found there).

use core::cell::{OnceCell, RefCell};
#[cfg(target_os = "none")]
use core::ptr;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
use ebbrt_core::{EbbRef, PerCoreRoot};
use ebbrt_net::device::{NetDevice, NetDeviceEbb};

#[cfg(target_os = "none")]
use crate::device::Nic;
use crate::features::{Features, PollStats};
#[cfg(not(target_os = "none"))]
use crate::hosted::{Live, Nic};
#[cfg(target_os = "none")]
use crate::queue::{Live, PendingPair, QueuePair};

/// The virtio-net NIC driver (native only): its representative on core i
/// owns queue pair i (rings, interrupt vector, interrupt-to-polling
/// switch), its root the device-wide state (features, MAC, MTU, queue
/// pairs, control queue); the network manager reaches it as the
/// `NetDeviceEbb` at NET_DEVICE.
///
/// - **Root** ([`VirtioNetRoot`]): the device as a whole, found on PCI bus
///   0 and initialised on the Ebb's first use: the modern or the legacy
///   interface (`virtio.legacy` forces legacy), the negotiated features
///   (checksum offload both ways, merged receive buffers, an advised MTU,
///   multiqueue with its control queue; each dropped cleanly when the
///   device lacks it), MAC, MTU, the queue pairs not yet opened.
/// - **Representative on core i** (`!Sync`: only its own core touches
///   it): owns queue pair i once core i's stack opened it: its receive and
///   transmit rings, its MSI-X vector (routed to core i; without MSI-X
///   queue pair 0 takes the INTx line through the I/O APIC, and the other
///   pairs poll), and its switch from interrupts to polling from the idle
///   loop under dense traffic and back when quiet (`virtio.poll=never`:
///   interrupts only).
/// - **How the network reaches it**: it implements the interface
///   `ebbrt_net::device::NetDeviceEbb` at `NET_DEVICE`; the network
///   manager finds it through the interface's binding
///   (`ebbrt_core::ebb::binding::<dyn NetDeviceEbb>()`) and runs one
///   stack per active queue pair (one per core with multiqueue, else core
///   0's, reached through `spawn_on`). The network crate never names this
///   one, so another NIC driver can take the id.
/// - **Hosted**: the type compiles (so the hosted catalog lists it), but a
///   Linux process has no PCI bus: its root finds no device. The `ebbrt`
///   facade links the driver only into native images.
#[ebb(per_core, id = ids::NET_DEVICE, interface = ebbrt_net::device::NetDeviceEbb, root = VirtioNetRoot, new = VirtioNet::new, root_new = VirtioNetRoot::probe, feature = "net")]
pub struct VirtioNet {
    root: &'static PerCoreRoot<VirtioNet>,
    core: CoreId,
    /// Queue pair `core`, once this core's stack opened it.
    pair: OnceCell<RefCell<Live>>,
}

/// The root of the NIC Ebb: the device, if one was found.
pub struct VirtioNetRoot {
    nic: Option<Nic>,
}

static NIC: EbbRef<VirtioNet> = EbbRef::fixed();

impl VirtioNetRoot {
    /// Finds and initialises the device: the first use of the Ebb (on any
    /// core) probes PCI bus 0.
    fn probe() -> VirtioNetRoot {
        VirtioNetRoot { nic: Nic::probe() }
    }
}

impl VirtioNet {
    fn new(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        VirtioNet {
            root,
            core,
            pair: OnceCell::new(),
        }
    }

    /// The NIC Ebb (well-known id `NET_DEVICE`).
    pub fn get() -> EbbRef<VirtioNet> {
        NIC
    }

    /// This core's representative.
    #[cfg(target_os = "none")]
    pub(crate) fn local() -> &'static VirtioNet {
        NIC.rep()
    }

    fn nic(&self) -> Option<&'static Nic> {
        self.root.data().nic.as_ref()
    }

    /// Whether a virtio-net device was found (and initialised).
    pub fn found(&self) -> bool {
        self.nic().is_some()
    }

    /// The features negotiated with the device.
    pub fn features(&self) -> Option<Features> {
        self.nic().map(Nic::features)
    }

    /// The MTU the stacks use (the device's advice, at most 1500).
    pub fn mtu(&self) -> Option<usize> {
        self.nic().map(Nic::mtu)
    }

    /// The core this representative serves (and whose queue pair it owns).
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// Whether this core's queue pair is open (its stack took it).
    pub fn owns_queue_pair(&self) -> bool {
        self.pair.get().is_some()
    }

    /// Whether this core's queue pair polls from the idle loop now, as it
    /// does under dense traffic, instead of waiting for its interrupt (or,
    /// without one, looking from a timer); `false` while it is not open.
    pub fn polling(&self) -> bool {
        self.pair
            .get()
            .and_then(|l| l.try_borrow().ok().map(|l| l.polling()))
            .unwrap_or(false)
    }

    /// The counters of this core's queue pair's interrupt-to-polling
    /// switch (`None` while it is not open).
    pub fn poll_stats(&self) -> Option<PollStats> {
        self.pair
            .get()
            .and_then(|l| l.try_borrow().ok().map(|l| l.poll_stats()))
    }

    /// Opens this core's queue pair for `caller` (which must be this Ebb's
    /// device): checks that this representative can own it, then `take`s
    /// the pending pair from the device and opens it here. `None` when it
    /// cannot; the pair then stays in the device (its receive buffers are
    /// posted to the device, so it must never be dropped).
    #[cfg(target_os = "none")]
    pub(crate) fn open(
        &'static self,
        caller: &Nic,
        take: impl FnOnce() -> Option<PendingPair>,
    ) -> Option<QueuePair> {
        let Some(nic) = self.nic().filter(|n| ptr::eq(*n, caller)) else {
            log::error!("virtio-net: a device that is not the NIC Ebb's root opened a queue");
            return None;
        };
        if self.pair.get().is_some() {
            log::error!("virtio-net: {} already owns a queue pair", self.core);
            return None;
        }
        Some(QueuePair::open(take()?, &self.pair, nic))
    }
}

impl NetDeviceEbb for VirtioNet {
    fn device(&'static self) -> Option<&'static dyn NetDevice> {
        self.nic().map(|n| n as &'static dyn NetDevice)
    }
}
