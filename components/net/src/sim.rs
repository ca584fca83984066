//! A simulated Ethernet link, for testing stacks on the host.
//!
//! [`SimLink::new`] wires side A (`a_queues` queue pairs) to side B
//! (`b_queues`): a frame sent on any queue of one side arrives on one queue
//! of the other, chosen by a hash of its IPv4 addresses and ports (as a
//! multiqueue NIC's receive steering would), ARP in turn over the queues.
//! [`Impairments`] drop, reorder, duplicate, delay and corrupt frames,
//! from a seeded generator so that a failing run can be replayed.
//! Delays use the executor's timers of the core that transmits: keep both
//! ends of a delayed link on one core.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::task::Waker;
use core::time::Duration;

use crate::device::{NetDevice, NetQueue, QueueCaps, RxFrame, TxChecksum, TxError};
use crate::frame;

/// What the link does to frames, as chances in parts per million.
#[derive(Copy, Clone, Debug, Default)]
pub struct Impairments {
    /// Chance a frame is lost.
    pub loss_ppm: u32,
    /// Chance a frame is held back by `reorder_delay` (so later ones pass it).
    pub reorder_ppm: u32,
    /// Chance a frame arrives twice.
    pub duplicate_ppm: u32,
    /// Chance one byte of a frame is flipped.
    pub corrupt_ppm: u32,
    /// Delay of every frame.
    pub delay: Duration,
    /// Extra delay of reordered frames.
    pub reorder_delay: Duration,
    /// Seed of the generator.
    pub seed: u64,
}

/// What the link did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames transmitted into the link.
    pub sent: u64,
    /// Frames lost.
    pub lost: u64,
    /// Frames held back.
    pub reordered: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames corrupted.
    pub corrupted: u64,
    /// Frames delivered to a receive queue.
    pub delivered: u64,
}

#[derive(Default)]
struct RxQueue {
    ready: VecDeque<(Vec<u8>, bool)>,
    waker: Option<Waker>,
}

struct Link {
    a_queues: usize,
    queues: Vec<RxQueue>,
    imp: Impairments,
    rng: u64,
    rr: usize,
    stats: LinkStats,
    caps: QueueCaps,
}

impl Link {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rand() % 1_000_000) < ppm as u64
    }

    /// The receive queue (global index) a frame sent from `from` goes to.
    fn steer(&mut self, from: usize, f: &[u8]) -> usize {
        let (base, n) = if from < self.a_queues {
            (self.a_queues, self.queues.len() - self.a_queues)
        } else {
            (0, self.a_queues)
        };
        if n == 1 {
            return base;
        }
        match flow_hash(f) {
            Some(h) => base + (h % n as u64) as usize,
            None => {
                self.rr = self.rr.wrapping_add(1);
                base + self.rr % n
            }
        }
    }

    fn deliver(&mut self, to: usize, f: Vec<u8>, valid: bool) {
        self.stats.delivered += 1;
        let q = &mut self.queues[to];
        q.ready.push_back((f, valid));
        if let Some(w) = &q.waker {
            w.wake_by_ref();
        }
    }
}

/// A symmetric hash of a frame's IPv4 addresses and ports, if it is IPv4.
fn flow_hash(f: &[u8]) -> Option<u64> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = (f[14] & 0x0f) as usize * 4;
    let (src, dst) = (&f[26..30], &f[30..34]);
    let ports = f.get(14 + ihl..14 + ihl + 4).unwrap_or(&[0, 0, 0, 0]);
    let a = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as u64
        ^ ((ports[0] as u64) << 8 | ports[1] as u64);
    let b = u32::from_be_bytes([dst[0], dst[1], dst[2], dst[3]]) as u64
        ^ ((ports[2] as u64) << 8 | ports[3] as u64);
    // Symmetric: both directions of a flow hash alike.
    let x = (a ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Some(x >> 32)
}

/// Both ends of a simulated link.
#[derive(Clone)]
pub struct SimLink {
    link: Arc<spin::Mutex<Link>>,
}

impl SimLink {
    /// A link with `a_queues` queue pairs on side A, `b_queues` on side B.
    pub fn new(a_queues: usize, b_queues: usize, imp: Impairments, caps: QueueCaps) -> SimLink {
        let n = a_queues.max(1) + b_queues.max(1);
        SimLink {
            link: Arc::new(spin::Mutex::new(Link {
                a_queues: a_queues.max(1),
                queues: (0..n).map(|_| RxQueue::default()).collect(),
                imp,
                rng: imp.seed | 1,
                rr: 0,
                stats: LinkStats::default(),
                caps,
            })),
        }
    }

    /// Two single-queue ends (A, B).
    pub fn pair(imp: Impairments) -> (SimQueue, SimQueue) {
        let l = SimLink::new(1, 1, imp, QueueCaps::default());
        (l.queue_a(0), l.queue_b(0))
    }

    /// Queue pair `i` of side A.
    pub fn queue_a(&self, i: usize) -> SimQueue {
        SimQueue {
            link: self.link.clone(),
            index: i,
        }
    }

    /// Queue pair `i` of side B.
    pub fn queue_b(&self, i: usize) -> SimQueue {
        let a = self.link.lock().a_queues;
        SimQueue {
            link: self.link.clone(),
            index: a + i,
        }
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.link.lock().stats
    }

    /// Changes the impairments from now on.
    pub fn set_impairments(&self, imp: Impairments) {
        self.link.lock().imp = imp;
    }
}

/// One queue pair at one end of a [`SimLink`].
pub struct SimQueue {
    link: Arc<spin::Mutex<Link>>,
    index: usize,
}

impl SimQueue {
    /// Delivers `frame` to this queue as if it came off the wire (for
    /// sending malformed frames at a stack).
    pub fn inject_handle(&self) -> Injector {
        Injector {
            link: self.link.clone(),
            index: self.index,
        }
    }
}

/// Sends raw frames to one queue of a link.
#[derive(Clone)]
pub struct Injector {
    link: Arc<spin::Mutex<Link>>,
    index: usize,
}

impl Injector {
    /// Delivers `frame` as received from the wire.
    pub fn inject(&self, frame: &[u8]) {
        self.link.lock().deliver(self.index, frame.to_vec(), false);
    }
}

impl NetQueue for SimQueue {
    fn caps(&self) -> QueueCaps {
        self.link.lock().caps
    }

    fn receive(&mut self) -> Option<RxFrame> {
        let (bytes, valid) = self.link.lock().queues[self.index].ready.pop_front()?;
        let mut f = RxFrame::from_vec(bytes);
        f.checksum_ok = valid;
        Some(f)
    }

    fn recycle(&mut self, _frame: RxFrame) {}

    fn can_transmit(&mut self) -> bool {
        true
    }

    fn transmit(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<TxChecksum>,
    ) -> Result<(), TxError> {
        let mut buf = alloc::vec![0u8; len];
        if let Some(req) = fill(&mut buf) {
            frame::complete_tx_checksum(&mut buf, req);
        }
        let mut l = self.link.lock();
        if len > l.caps.mtu + frame::ETH_HEADER {
            return Err(TxError::TooLong);
        }
        l.stats.sent += 1;
        let to = l.steer(self.index, &buf);
        let imp = l.imp;
        if l.chance(imp.loss_ppm) {
            l.stats.lost += 1;
            return Ok(());
        }
        let mut valid = l.caps.rx_checksum;
        if l.chance(imp.corrupt_ppm) && !buf.is_empty() {
            let at = (l.rand() % buf.len() as u64) as usize;
            buf[at] ^= 1 << (l.rand() % 8);
            l.stats.corrupted += 1;
            valid = false;
        }
        let copies = if l.chance(imp.duplicate_ppm) {
            l.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut delay = imp.delay;
        if l.chance(imp.reorder_ppm) {
            l.stats.reordered += 1;
            delay += imp.reorder_delay;
        }
        if delay.is_zero() {
            for _ in 0..copies {
                l.deliver(to, buf.clone(), valid);
            }
            return Ok(());
        }
        drop(l);
        let link = self.link.clone();
        ebbrt_core::exec::spawn_local(async move {
            ebbrt_core::exec::sleep(delay).await;
            let mut l = link.lock();
            for _ in 0..copies {
                l.deliver(to, buf.clone(), valid);
            }
        })
        .detach();
        Ok(())
    }

    fn set_waker(&mut self, waker: &Waker) {
        self.link.lock().queues[self.index].waker = Some(waker.clone());
    }
}

/// A simulated NIC: the queues of one side of a link.
pub struct SimDevice {
    mac: [u8; 6],
    queues: spin::Mutex<Vec<Option<SimQueue>>>,
}

impl SimDevice {
    /// A device with Ethernet address `mac` over `queues`.
    pub fn new(mac: [u8; 6], queues: Vec<SimQueue>) -> SimDevice {
        SimDevice {
            mac,
            queues: spin::Mutex::new(queues.into_iter().map(Some).collect()),
        }
    }
}

impl NetDevice for SimDevice {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn queue_pairs(&self) -> usize {
        self.queues.lock().len()
    }
    fn take_queue(&self, index: usize) -> Option<Box<dyn NetQueue>> {
        let q = self.queues.lock().get_mut(index)?.take()?;
        Some(Box::new(q))
    }
    fn describe(&self) -> String {
        format!("simulated NIC, {} queue pair(s)", self.queue_pairs())
    }
}
