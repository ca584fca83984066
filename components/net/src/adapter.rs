//! The smoltcp `Device` over one [`NetQueue`]: receive checks, steering of
//! frames that concern other stacks, transmit checksum offload, counters.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::task::Waker;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::device::{NetQueue, QueueCaps, RxFrame};
use crate::frame::{self, DropReason, Steer};

/// Frames handed from one stack to another (ARP answers, DHCP replies that
/// arrived on another stack's queue), and the waker of the receiving
/// stack's poll task.
#[derive(Default)]
pub(crate) struct Inbox {
    frames: spin::Mutex<VecDeque<Vec<u8>>>,
    waker: spin::Mutex<Option<Waker>>,
}

/// Frames an inbox holds at most; more are dropped (and counted).
const INBOX_LIMIT: usize = 256;

impl Inbox {
    /// Queues a copy of `frame` and wakes the stack. False if full.
    pub fn push(&self, frame: &[u8]) -> bool {
        {
            let mut q = self.frames.lock();
            if q.len() >= INBOX_LIMIT {
                return false;
            }
            q.push_back(frame.to_vec());
        }
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake_by_ref();
        }
        true
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.frames.lock().pop_front()
    }

    pub(crate) fn set_waker(&self, w: &Waker) {
        let mut slot = self.waker.lock();
        if !slot.as_ref().is_some_and(|old| old.will_wake(w)) {
            *slot = Some(w.clone());
        }
    }
}

/// Where a stack sends the frames that concern other stacks.
#[derive(Clone)]
pub(crate) struct Peers {
    /// Every stack's inbox, by queue index.
    pub inboxes: Arc<[Inbox]>,
    /// This stack's queue index.
    pub me: usize,
}

/// Counters of one stack's device traffic.
#[derive(Default, Debug)]
pub(crate) struct DevCounters {
    /// Frames received from the queue (before checks).
    pub rx_frames: Cell<u64>,
    /// Frames transmitted.
    pub tx_frames: Cell<u64>,
    /// Frames dropped on receive, by [`DropReason::index`].
    pub rx_dropped: [Cell<u64>; DropReason::ALL.len()],
    /// Frames that could not be transmitted (ring full at the last moment).
    pub tx_dropped: Cell<u64>,
    /// Frames forwarded to other stacks.
    pub forwarded: Cell<u64>,
    /// Frames received from other stacks.
    pub injected: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

pub(crate) struct Adapter {
    queue: RefCell<Box<dyn NetQueue>>,
    caps: QueueCaps,
    peers: Option<Peers>,
    pub(crate) counters: DevCounters,
}

impl Adapter {
    pub(crate) fn new(queue: Box<dyn NetQueue>, peers: Option<Peers>) -> Adapter {
        let caps = queue.caps();
        Adapter {
            queue: RefCell::new(queue),
            caps,
            peers,
            counters: DevCounters::default(),
        }
    }

    pub(crate) fn set_waker(&self, w: &Waker) {
        self.queue.borrow_mut().set_waker(w);
        if let Some(p) = &self.peers {
            p.inboxes[p.me].set_waker(w);
        }
    }

    pub(crate) fn rearm(&self) -> bool {
        self.queue.borrow_mut().rearm()
    }

    /// The next frame for this stack, after checks and steering.
    fn next_frame(&self) -> Option<RxFrame> {
        if let Some(p) = &self.peers
            && let Some(bytes) = p.inboxes[p.me].pop()
        {
            bump(&self.counters.injected);
            // Checked by the stack that received it.
            return Some(RxFrame::from_vec(bytes));
        }
        let mut q = self.queue.borrow_mut();
        loop {
            let f = q.receive()?;
            bump(&self.counters.rx_frames);
            match frame::check_rx(f.data(), self.caps.mtu, f.checksum_ok) {
                Err(reason) => {
                    bump(&self.counters.rx_dropped[reason.index()]);
                    q.recycle(f);
                }
                Ok(Steer::Local) => return Some(f),
                Ok(Steer::All) => {
                    if let Some(p) = &self.peers {
                        for (i, inbox) in p.inboxes.iter().enumerate() {
                            if i != p.me && inbox.push(f.data()) {
                                bump(&self.counters.forwarded);
                            }
                        }
                    }
                    return Some(f);
                }
                Ok(Steer::First) => match &self.peers {
                    Some(p) if p.me != 0 => {
                        if p.inboxes[0].push(f.data()) {
                            bump(&self.counters.forwarded);
                        }
                        q.recycle(f);
                    }
                    _ => return Some(f),
                },
            }
        }
    }
}

/// The smoltcp device: a view of the adapter for one poll.
pub(crate) struct Dev<'a>(pub(crate) &'a Adapter);

pub(crate) struct Rx<'a> {
    adapter: &'a Adapter,
    frame: RxFrame,
}

pub(crate) struct Tx<'a> {
    adapter: &'a Adapter,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.data());
        if self.frame.token != RxFrame::DETACHED {
            self.adapter.queue.borrow_mut().recycle(self.frame);
        }
        r
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let a = self.adapter;
        let offload = a.caps.tx_checksum;
        let mut f = Some(f);
        let mut out = None;
        let res = a.queue.borrow_mut().transmit(len, &mut |buf: &mut [u8]| {
            let f = f.take()?;
            out = Some(f(buf));
            if offload {
                frame::prepare_tx_checksum(buf)
            } else {
                None
            }
        });
        match res {
            Ok(()) => bump(&a.counters.tx_frames),
            Err(_) => bump(&a.counters.tx_dropped),
        }
        match out {
            Some(r) => r,
            // The queue refused before building: build into a scratch
            // buffer so smoltcp gets its result; the frame is lost (TCP
            // retransmits it).
            None => {
                let mut scratch = vec![0u8; len];
                let f = f
                    .take()
                    .expect("frame builder ran neither in the queue nor here");
                f(&mut scratch)
            }
        }
    }
}

impl phy::Device for Dev<'_> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let frame = self.0.next_frame()?;
        Some((
            Rx {
                adapter: self.0,
                frame,
            },
            Tx { adapter: self.0 },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        self.0
            .queue
            .borrow_mut()
            .can_transmit()
            .then_some(Tx { adapter: self.0 })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.0.caps.mtu + frame::ETH_HEADER;
        let l4_tx = if self.0.caps.tx_checksum {
            Checksum::None
        } else {
            Checksum::Tx
        };
        let mut cs = ChecksumCapabilities::ignored();
        // Receive checksums are verified in `frame::check_rx`, once.
        cs.ipv4 = Checksum::Tx;
        cs.icmpv4 = Checksum::Tx;
        cs.tcp = l4_tx;
        cs.udp = l4_tx;
        caps.checksum = cs;
        caps
    }
}
