//! The NIC Ebb: per-core, at the well-known id `NET_DEVICE`.
//!
//! The root ([`VirtioNetRoot`]) holds the device as a whole, found and
//! initialised when the root is built (the Ebb's first use, by the network
//! manager): negotiated features, MAC, MTU, queue pairs not yet opened,
//! the control queue. The representative on core `i` owns queue pair `i`
//! once that core's stack opened it: its rings, its interrupt vector's
//! task and its interrupt-to-polling switch. The network manager reaches
//! the Ebb through `ebbrt_net::bind_net_device!`, never by naming it.

use core::cell::{OnceCell, RefCell};
use core::ptr;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::{Ebb, EbbId, EbbRef, PerCore, PerCoreRoot, StaticEbb};
use ebbrt_net::device::{NetDevice, NetDeviceEbb};

use crate::device::{Features, Nic};
use crate::queue::{Live, PendingPair, QueuePair};

/// The virtio-net NIC Ebb's representative on one core: the owner of queue
/// pair `i` on core `i` (its rings, interrupt vector and polling state),
/// beside the root's device-wide state ([`VirtioNetRoot`]).
///
/// `!Sync`: only its own core touches it. The network manager reaches it
/// through `EbbRef<VirtioNet>` at `ids::NET_DEVICE`, bound with
/// `ebbrt_net::bind_net_device!`.
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

impl VirtioNet {
    /// The NIC Ebb (well-known id `NET_DEVICE`).
    pub fn get() -> EbbRef<VirtioNet> {
        NIC
    }

    /// This core's representative.
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
        self.nic().map(|n| n.features)
    }

    /// The MTU the stacks use (the device's advice, at most 1500).
    pub fn mtu(&self) -> Option<usize> {
        self.nic().map(|n| n.mtu)
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

    /// Opens this core's queue pair for `caller` (which must be this Ebb's
    /// device): checks that this representative can own it, then `take`s
    /// the pending pair from the device and opens it here. `None` when it
    /// cannot; the pair then stays in the device (its receive buffers are
    /// posted to the device, so it must never be dropped).
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

impl Ebb for VirtioNet {
    fn miss(id: EbbId) -> &'static Self {
        ebbrt_core::ebb::per_core_miss(id)
    }
}

impl PerCore for VirtioNet {
    type Root = VirtioNetRoot;

    fn new_rep(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        VirtioNet {
            root,
            core,
            pair: OnceCell::new(),
        }
    }

    /// Finds and initialises the device: the first use of the Ebb (on any
    /// core) probes PCI bus 0.
    fn new_root() -> Option<VirtioNetRoot> {
        Some(VirtioNetRoot { nic: Nic::probe() })
    }
}

// SAFETY: `NET_DEVICE` is reserved for the NIC driver in
// `ebbrt_core::ebb::ids`, and this crate's component record claims it, so
// a runtime refuses to start when another component claims it too.
unsafe impl StaticEbb for VirtioNet {
    const ID: EbbId = ebbrt_core::ebb::ids::NET_DEVICE;
}

impl NetDeviceEbb for VirtioNet {
    fn device(&'static self) -> Option<&'static dyn NetDevice> {
        self.nic().map(|n| n as &'static dyn NetDevice)
    }
}

ebbrt_net::bind_net_device!(VirtioNet);
