//! The network manager Ebb: which stack each core uses.
//!
//! A per-core Ebb. Its root holds the NIC and the configuration; the rep
//! of core `c` either owns a stack (when `c` is below the number of queue
//! pairs in use: multiqueue gives one stack per core, each on its own
//! queue pair, owning its connections) or names the core whose stack it
//! reaches through `spawn_on` (single queue: core 0 owns the one stack).
//! The first rep built starts the stacks of the other queue pairs, so that
//! every queue is served from boot on.
//!
//! The NIC is the Ebb at `ids::NET_DEVICE` that implements the interface
//! [`NetDeviceEbb`], reached through the binding its driver left (see
//! [`crate::device`]): the manager's root holds the [`NetDevice`] that Ebb
//! hands out, and each stack the queue pair that the NIC Ebb's
//! representative on its core owns.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicBool, Ordering};

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::ebb;
use ebbrt_core::ebb::{BindError, ids};
use ebbrt_core::io::{Error, ErrorKind};
use ebbrt_core::{EbbRef, PerCoreRoot};

use crate::adapter::{Inbox, Peers};
use crate::config::{AddrConfig, Ipv4Net, NetConfig};
use crate::device::{NetDevice, NetDeviceEbb};
use crate::remote::RemoteStack;
use crate::stack::{Stack, StackOptions, StackStats};

type Lease = Option<(Ipv4Net, Option<Ipv4Addr>)>;

/// The root of a network manager: the NIC, the configuration, the inboxes
/// through which stacks hand each other frames, the DHCP lease.
pub struct NetRoot {
    device: Option<&'static dyn NetDevice>,
    config: NetConfig,
    stacks: usize,
    inboxes: Arc<[Inbox]>,
    started: AtomicBool,
    lease: spin::Mutex<Lease>,
}

impl NetRoot {
    /// A root over `device` (`None`: no NIC; every operation fails with
    /// `NotFound`), usually what the NIC Ebb at `ids::NET_DEVICE` hands
    /// out. Uses one stack per queue pair, as many as the device offers,
    /// the configuration allows and there are cores.
    pub fn new(device: Option<&'static dyn NetDevice>, config: NetConfig) -> NetRoot {
        let offered = device.map_or(0, |d| d.queue_pairs());
        let wanted = offered
            .min(config.max_queues.unwrap_or(usize::MAX))
            .min(cpu::count().max(1));
        let stacks = match device {
            Some(d) => d.activate(wanted),
            None => 0,
        };
        if let Some(d) = device {
            log::info!("net: {}; {} stack(s)", d.describe(), stacks);
        }
        NetRoot {
            device,
            config,
            stacks,
            inboxes: (0..stacks.max(1))
                .map(|_| Inbox::default())
                .collect::<Vec<_>>()
                .into(),
            started: AtomicBool::new(false),
            lease: spin::Mutex::new(None),
        }
    }

    /// How many stacks (queue pairs) are in use.
    pub fn stacks(&self) -> usize {
        self.stacks
    }
}

/// Where this core's sockets live.
#[derive(Clone)]
pub(crate) enum Home {
    /// In this core's own stack.
    Local(Rc<Stack>),
    /// In the stack of `owner`, reached with `spawn_on`.
    Remote {
        mgr: EbbRef<NetworkManager>,
        owner: CoreId,
    },
    /// Nowhere: no NIC.
    None,
}

/// The native network: one smoltcp TCP/IP stack per NIC queue pair (per
/// core with multiqueue, else one stack reached through spawn_on), and the
/// async socket API.
///
/// One representative per core, owning a TCP/IP stack (one per queue pair
/// of the NIC) or pointing at the core that owns one. The socket API
/// ([`TcpListener`](crate::TcpListener), [`TcpStream`](crate::TcpStream),
/// [`UdpSocket`](crate::UdpSocket)) goes through it. The root
/// ([`NetRoot`]) holds the configuration (boot arguments `net.*`) and the
/// NIC: whatever the implementation of the interface
/// [`NetDeviceEbb`](crate::device::NetDeviceEbb) at `NET_DEVICE` hands out
/// (`virtio-net`'s `VirtioNet` natively); without one, socket calls fail
/// with `NotFound`.
#[ebb(per_core, id = ids::NETWORK_MANAGER, root = NetRoot, new = NetworkManager::build, root_new = default_root, feature = "net")]
pub struct NetworkManager {
    home: Home,
}

pub(crate) const NO_DEVICE: Error = Error::new(ErrorKind::NotFound, "no network device");

impl NetworkManager {
    /// The default network manager (well-known id).
    pub fn get() -> EbbRef<NetworkManager> {
        EbbRef::fixed()
    }

    pub(crate) fn home(&self) -> Home {
        self.home.clone()
    }

    /// This core's stack, if it owns one.
    pub fn local_stack(&self) -> Option<Rc<Stack>> {
        match &self.home {
            Home::Local(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The core whose stack this core's sockets live in.
    pub fn owner(&self) -> Option<CoreId> {
        match &self.home {
            Home::Local(_) => Some(cpu::current()),
            Home::Remote { owner, .. } => Some(*owner),
            Home::None => None,
        }
    }

    /// Waits until the stack serving this core has an address.
    pub async fn wait_configured(&self) -> Result<Ipv4Addr, Error> {
        match &self.home {
            Home::Local(s) => Ok(s.wait_configured().await),
            Home::Remote { mgr, owner } => {
                RemoteStack::new(*mgr, *owner)
                    .run(|s| async move { Ok(s.wait_configured().await) })
                    .await
            }
            Home::None => Err(NO_DEVICE),
        }
    }

    /// The counters of the stack this core owns (`None` if it owns none).
    pub fn stats(&self) -> Option<StackStats> {
        self.local_stack().map(|s| s.stats())
    }

    fn build(root: &'static PerCoreRoot<Self>, core: CoreId) -> NetworkManager {
        let r = root.data();
        let Some(dev) = r.device else {
            return NetworkManager { home: Home::None };
        };
        if r.stacks == 0 {
            return NetworkManager { home: Home::None };
        }
        let mgr = root.ebb_ref();
        let c = core.index();
        if c >= r.stacks {
            return NetworkManager {
                home: Home::Remote {
                    mgr,
                    owner: CoreId((c % r.stacks) as u32),
                },
            };
        }
        let Some(queue) = dev.take_queue(c) else {
            log::error!("net: queue pair {c} is unavailable; {core} uses core 0's stack");
            return NetworkManager {
                home: Home::Remote {
                    mgr,
                    owner: CoreId(0),
                },
            };
        };
        let dhcp = r.config.addr == AddrConfig::Dhcp;
        // Each stack gets an equal share of the buffer budget.
        let config = NetConfig {
            tcp_memory: r.config.tcp_memory.map(|m| m / r.stacks),
            ..r.config
        };
        let opts = StackOptions {
            config,
            queue_index: c,
            queue_count: r.stacks,
            run_dhcp: dhcp && c == 0,
        };
        let peers = (r.stacks > 1).then(|| Peers {
            inboxes: r.inboxes.clone(),
            me: c,
        });
        let stack = Stack::with_peers(queue, dev.mac(), opts, peers);
        if dhcp && c == 0 && r.stacks > 1 {
            let stacks = r.stacks;
            stack.set_addr_hook(Box::new(move |lease| {
                *root.data().lease.lock() = lease;
                for k in 1..stacks {
                    ebbrt_core::exec::spawn_on(CoreId(k as u32), async move {
                        if let Some(s) = mgr.local_stack() {
                            s.set_address(lease);
                        }
                    })
                    .detach();
                }
            }));
        } else if dhcp && let Some(lease) = *r.lease.lock() {
            stack.set_address(Some(lease));
        }
        stack.start();
        if !r.started.swap(true, Ordering::AcqRel) {
            for k in (0..r.stacks).filter(|&k| k != c) {
                ebbrt_core::exec::spawn_on(CoreId(k as u32), async move {
                    let _ = mgr.rep();
                })
                .detach();
            }
        }
        NetworkManager {
            home: Home::Local(stack),
        }
    }
}

fn default_root() -> NetRoot {
    let (mut config, errors) = NetConfig::from_args(boot_arg);
    for e in errors {
        log::error!("net: {e}");
    }
    if config.tcp_memory.is_none() {
        config.tcp_memory = default_tcp_memory();
    }
    NetRoot::new(nic(), config)
}

/// Natively, 5/8 of RAM for TCP socket buffers: enough for memcached's
/// 1,024 connections with 64 KiB buffers each way in a 256 MiB guest,
/// while the rest keeps serving the connections open (their tasks, the
/// bytes they read) and the application.
#[cfg(target_os = "none")]
fn default_tcp_memory() -> Option<usize> {
    let ram = ebbrt_core::native::mem::ram().total() as usize;
    Some(ram / 8 * 5)
}

/// Hosted, the manager has no NIC and so no budget to set.
#[cfg(not(target_os = "none"))]
fn default_tcp_memory() -> Option<usize> {
    None
}

/// The NIC that the implementation of [`NetDeviceEbb`] (the Ebb at
/// `ids::NET_DEVICE`) hands out, reached through its representative on
/// this core (its root is built, and its driver finds the device, on first
/// use).
fn nic() -> Option<&'static dyn NetDevice> {
    match ebb::binding::<dyn NetDeviceEbb>() {
        Ok(nic) => {
            let device = (nic.get)().device();
            if device.is_none() {
                log::warn!(
                    "net: the NIC Ebb {} ({}) found no network device",
                    nic.component,
                    nic.crate_name
                );
            }
            device
        }
        Err(e @ BindError::Unbound { .. }) => {
            log::warn!("net: no NIC driver: {e}; no network device");
            None
        }
        Err(e @ BindError::Twice { .. }) => {
            log::error!("net: {e}; no network device");
            None
        }
    }
}

#[cfg(target_os = "none")]
fn boot_arg(key: &str) -> Option<&'static str> {
    ebbrt_core::native::boot_arg(key)
}

#[cfg(not(target_os = "none"))]
fn boot_arg(_key: &str) -> Option<&'static str> {
    None
}
