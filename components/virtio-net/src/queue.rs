//! One receive/transmit queue pair, owned by the NIC Ebb's representative
//! on its core ([`Live`]), and the handle through which that core's stack
//! uses it: the network stack's [`NetQueue`] ([`QueuePair`]).
//!
//! Interrupts become events: the pair's MSI-X vector wakes a small task on
//! the owning core, which turns further receive interrupts off and wakes
//! the stack. The stack drains the ring and calls [`NetQueue::rearm`]:
//! after a quiet pass the interrupt is re-enabled; after busy passes the
//! pair switches to polling from the idle loop (no interrupt per burst),
//! and back once the ring stays empty. That switch's state lives in the
//! representative with the rings.
//!
//! Polling can starve the device it waits for: under emulation on a host
//! with few CPUs, the spinning vCPU holds a host CPU that QEMU's I/O thread
//! needs to put the next frame in the ring, so the frame comes only once
//! polling gives up and the core halts (then `POLL_QUIET_NS` late). A
//! polling episode after which a frame arrives within `STARVED_NS` of the
//! core going back to interrupts is counted as starved, and the pair then
//! stays on interrupts for a back-off that doubles with every starved
//! episode in a row (`BACKOFF_MIN_NS` to `BACKOFF_MAX_NS`) and resets after
//! a healthy one.
//!
//! Every "enable notifications, then look again" and "publish, then ask
//! whether to notify" pair is separated by a full fence: a store followed
//! by a load of another location may be reordered on x86, and without the
//! fence the driver and the device can each miss the other's update (a
//! lost interrupt or a lost kick: a frame left in a ring until the next
//! event).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{OnceCell, RefCell};
use core::sync::atomic::{Ordering, fence};
use core::task::Waker;

use ebbrt_core::exec::{self, IdlePoller};
use ebbrt_core::native::irq::IrqVector;
use ebbrt_net::device::{NetQueue, QueueCaps, RxFrame, TxChecksum, TxError};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;

use crate::device::{AnyTransport, Nic, RX_BUFFER};
use crate::features::{Features, PollStats, Polling};
use crate::hal::IdentityHal;

/// Descriptors per queue (QEMU's default ring size; legacy devices need
/// exactly the device's size).
pub(crate) const QUEUE_SIZE: usize = 256;
/// A pass is busy when it found several frames, or when its frames came
/// within this long (ns) of the previous pass's: traffic dense enough that
/// an interrupt per frame costs more than spinning.
const BUSY_GAP_NS: u64 = 500_000;
/// Frames in one pass that make it busy by themselves.
const BUSY_FRAMES: u32 = 4;
/// Busy passes in a row before switching to polling.
const BUSY_PASSES: u32 = 4;
/// Polling ends when no frame came for this long (ns; boot argument
/// `virtio.poll_quiet_us`): the core then halts again instead of spinning
/// (under emulation a spinning vCPU takes a host CPU from the device
/// model). It is also what a polling episode that starves the device
/// costs the frame it keeps out, hence short.
pub(crate) const POLL_QUIET_NS: u64 = 200_000;
/// A frame this soon after polling stopped means polling starved the
/// device (see the module's documentation).
const STARVED_NS: u64 = 250_000;
/// How long a pair stays on interrupts after a starved polling episode,
/// doubling with each one in a row.
const BACKOFF_MIN_NS: u64 = 20_000_000;
const BACKOFF_MAX_NS: u64 = 2_000_000_000;
/// Recycled receive buffers batched before notifying the device.
const REFILL_BATCH: u32 = 32;

const NEEDS_CSUM: u8 = 1;
const DATA_VALID: u8 = 2;

type Queue = VirtQueue<IdentityHal, QUEUE_SIZE>;

/// A queue on the heap: a `VirtQueue` keeps shadow arrays of its ring
/// inline (kilobytes), and a pair is moved from the probe into the root and
/// from there into its core's representative; unoptimised builds would copy
/// it through every frame of those moves and overflow a core's stack.
type BoxedQueue = Box<Queue>;

/// A queue pair set up at initialisation, waiting in the root until the
/// representative of its core opens it.
pub(crate) struct PendingPair {
    index: usize,
    rx: BoxedQueue,
    tx: BoxedQueue,
    rx_bufs: Vec<Option<Vec<u8>>>,
    irq: Option<IrqVector>,
    /// The I/O APIC input, when `irq` is the device's INTx line.
    intx: Option<u8>,
}

impl PendingPair {
    pub(crate) fn new(
        index: usize,
        rx: Queue,
        tx: Queue,
        irq: Option<IrqVector>,
        intx: Option<u8>,
    ) -> Self {
        PendingPair {
            index,
            rx: Box::new(rx),
            tx: Box::new(tx),
            rx_bufs: (0..QUEUE_SIZE).map(|_| None).collect(),
            irq,
            intx,
        }
    }

    /// Whether the pair has an interrupt (MSI-X or INTx).
    pub(crate) fn has_irq(&self) -> bool {
        self.irq.is_some()
    }

    /// Posts a buffer in every receive descriptor.
    pub(crate) fn fill_rx(&mut self, transport: &spin::Mutex<AnyTransport>) {
        loop {
            let mut buf = vec![0u8; RX_BUFFER];
            // SAFETY: the buffer is kept in `rx_bufs` under its token until
            // the device returns it (`pop_used`), and never touched before.
            match unsafe { self.rx.add(&[], &mut [&mut buf]) } {
                Ok(token) => self.rx_bufs[usize::from(token)] = Some(buf),
                Err(_) => break,
            }
        }
        if self.rx.should_notify() {
            transport.lock().notify((2 * self.index) as u16);
        }
    }
}

/// An open queue pair: its rings and buffers, its stack's waker, and the
/// state of its interrupt-to-polling switch. Held by the NIC Ebb's
/// representative on the pair's core, for good.
pub(crate) struct Live {
    index: usize,
    rx: BoxedQueue,
    tx: BoxedQueue,
    rx_bufs: Vec<Option<Vec<u8>>>,
    tx_bufs: Vec<Option<Vec<u8>>>,
    tx_pool: Vec<Vec<u8>>,
    waker: Option<Waker>,
    poller: Option<IdlePoller>,
    frames_this_pass: u32,
    busy_passes: u32,
    last_frame: u64,
    prev_pass: u64,
    refills: u32,
    interrupts: bool,
    /// The device's `poll_quiet_ns`.
    poll_quiet_ns: u64,
    /// When the last polling episode handed back to the interrupt, until
    /// the next frame tells whether it starved the device (0: none).
    poll_ended: u64,
    /// No switch to polling before this time (ns).
    no_poll_until: u64,
    /// The next back-off after a starved episode.
    backoff: u64,
    stats: PollStats,
    /// Receive buffers still to drop: the rest of a frame too large for
    /// one buffer (merged receive buffers).
    rx_skip: u16,
}

/// This core's queue pair as its stack uses it: a handle to the
/// representative's [`Live`] state (`!Send`: it stays on the core).
pub(crate) struct QueuePair {
    live: &'static RefCell<Live>,
    nic: &'static Nic,
    caps: QueueCaps,
}

impl QueuePair {
    /// Opens `p` on this core into `slot` (the representative's, empty):
    /// starts its interrupt task (or, without an interrupt, polls from the
    /// idle loop for good) and returns the stack's handle.
    pub(crate) fn open(
        p: PendingPair,
        slot: &'static OnceCell<RefCell<Live>>,
        nic: &'static Nic,
    ) -> QueuePair {
        let PendingPair {
            index,
            rx,
            tx,
            rx_bufs,
            irq,
            intx,
        } = p;
        let live = slot.get_or_init(|| {
            RefCell::new(Live {
                index,
                rx,
                tx,
                rx_bufs,
                tx_bufs: (0..QUEUE_SIZE).map(|_| None).collect(),
                tx_pool: Vec::new(),
                waker: None,
                poller: None,
                frames_this_pass: 0,
                busy_passes: 0,
                last_frame: 0,
                prev_pass: 0,
                refills: 0,
                interrupts: irq.is_some(),
                poll_quiet_ns: nic.poll_quiet_ns,
                poll_ended: 0,
                no_poll_until: 0,
                backoff: BACKOFF_MIN_NS,
                stats: PollStats::default(),
                rx_skip: 0,
            })
        });
        // Transmit completions are reclaimed on the next transmit.
        live.borrow_mut().tx.set_dev_notify(false);
        match irq {
            Some(irq) => {
                exec::spawn_local(async move {
                    loop {
                        irq.wait().await;
                        if let Some(gsi) = intx {
                            // Reading the ISR de-asserts the line; the
                            // handler masked it meanwhile.
                            nic.transport.lock().ack_interrupt();
                            ebbrt_core::native::ioapic::unmask(gsi);
                        }
                        let mut l = live.borrow_mut();
                        l.rx.set_dev_notify(false);
                        if let Some(w) = &l.waker {
                            w.wake_by_ref();
                        }
                    }
                })
                .detach();
            }
            None => {
                let poller = poller(live);
                live.borrow_mut().poller = Some(poller);
            }
        }
        let f = nic.features;
        let caps = QueueCaps {
            mtu: nic.mtu,
            rx_checksum: f.contains(Features::GUEST_CSUM),
            tx_checksum: f.contains(Features::CSUM),
        };
        QueuePair { live, nic, caps }
    }

    fn notify(&self, queue: u16) {
        self.nic.transport.lock().notify(queue);
    }
}

impl Live {
    /// Whether the pair polls from the idle loop now (traffic is dense)
    /// rather than waiting for its interrupt (or, for a pair without one,
    /// looking from a timer while quiet).
    pub(crate) fn polling(&self) -> bool {
        self.poller.is_some()
    }

    /// The switch's counters.
    pub(crate) fn poll_stats(&self) -> PollStats {
        self.stats
    }

    /// Notes a received frame at `now`: the first after a polling episode
    /// tells whether that episode starved the device.
    fn frame_at(&mut self, now: u64) {
        self.last_frame = now;
        if self.poll_ended == 0 {
            return;
        }
        if now.saturating_sub(self.poll_ended) < STARVED_NS {
            self.stats.starved += 1;
            self.no_poll_until = now + self.backoff;
            if self.stats.starved == 1 {
                log::info!(
                    "virtio-net: queue pair {}: polling starved the device (a frame {} us after \
                     it stopped); interrupts only for a while (back-off {} ms, doubling)",
                    self.index,
                    now.saturating_sub(self.poll_ended) / 1000,
                    self.backoff / 1_000_000
                );
            }
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX_NS);
        } else {
            self.backoff = BACKOFF_MIN_NS;
        }
        self.poll_ended = 0;
    }
}

fn now_ns() -> u64 {
    ebbrt_core::time::Instant::now().as_nanos()
}

/// An idle poller that wakes the stack when frames are waiting, and hands
/// back to the interrupt once none came for `POLL_QUIET_NS`.
fn poller(live: &'static RefCell<Live>) -> IdlePoller {
    exec::add_idle_poller(move || {
        let Ok(mut l) = live.try_borrow_mut() else {
            return false;
        };
        if l.rx.can_pop() {
            if let Some(w) = &l.waker {
                w.wake_by_ref();
            }
            return true;
        }
        if now_ns().saturating_sub(l.last_frame) > l.poll_quiet_ns {
            if l.interrupts {
                log::debug!("virtio-net: queue pair {} is quiet: interrupts", l.index);
                l.rx.set_dev_notify(true);
                l.poll_ended = now_ns();
                // A frame that came before notifications were back on
                // raised no interrupt: wake the stack to look (after a
                // fence: the device reads the flag after writing the ring).
                fence(Ordering::SeqCst);
                if l.rx.can_pop()
                    && let Some(w) = &l.waker
                {
                    w.wake_by_ref();
                }
            } else {
                // No interrupt to go back to: look every `SLOW_POLL` from a
                // timer, so that an idle core halts instead of spinning.
                slow_poll(live);
            }
            // Unregisters this poller (allowed from inside it).
            let me = l.poller.take();
            drop(l);
            drop(me);
        }
        false
    })
}

/// Without interrupts, how often a quiet queue is looked at.
const SLOW_POLL: core::time::Duration = core::time::Duration::from_micros(500);

/// Looks at a quiet queue from a timer until frames come, then hands back
/// to the idle poller (and wakes the stack).
fn slow_poll(live: &'static RefCell<Live>) {
    exec::spawn_local(async move {
        loop {
            exec::sleep(SLOW_POLL).await;
            let ready = live.borrow().rx.can_pop();
            if ready {
                let p = poller(live);
                let mut l = live.borrow_mut();
                l.last_frame = now_ns();
                l.poller = Some(p);
                if let Some(w) = &l.waker {
                    w.wake_by_ref();
                }
                return;
            }
        }
    })
    .detach();
}

impl NetQueue for QueuePair {
    fn caps(&self) -> QueueCaps {
        self.caps
    }

    fn receive(&mut self) -> Option<RxFrame> {
        let (nic, header) = (self.nic, self.nic.header);
        let mut l = self.live.borrow_mut();
        loop {
            let token = l.rx.peek_used()?;
            let Some(mut buf) = l.rx_bufs.get_mut(usize::from(token)).and_then(Option::take) else {
                // The device used a descriptor we never posted: nothing to
                // recover; stop receiving rather than misread memory.
                log::error!(
                    "virtio-net: queue {} returned unknown token {token}",
                    l.index
                );
                return None;
            };
            // SAFETY: `buf` is the buffer posted under `token`.
            let len = match unsafe { l.rx.pop_used(token, &[], &mut [&mut buf]) } {
                Ok(len) => len as usize,
                Err(_) => {
                    l.rx_bufs[usize::from(token)] = Some(buf);
                    return None;
                }
            };
            l.frames_this_pass += 1;
            l.frame_at(now_ns());
            if l.rx_skip > 0 {
                // A later piece of an oversized frame: no header, not a frame.
                l.rx_skip -= 1;
                repost(&mut l, nic, buf);
                continue;
            }
            let flags = buf[0];
            let merged = if header == 12 {
                u16::from_le_bytes([buf[10], buf[11]])
            } else {
                1
            };
            if len < header {
                // Not even a header: nothing to deliver.
                repost(&mut l, nic, buf);
                continue;
            }
            let checksum_ok = if merged > 1 {
                // A frame spread over several buffers is larger than one
                // buffer, and so than any frame of the MTU. Its first piece
                // goes to the stack, which counts and drops it as oversized
                // (it is longer than the MTU allows); the other pieces carry
                // no header and are dropped here as they come, so that none
                // is ever read as a frame of its own.
                l.rx_skip = (merged - 1).min(QUEUE_SIZE as u16);
                false
            } else {
                // Partial checksums come from the host itself (a tap's local
                // traffic): as trusted as verified ones.
                self.caps.rx_checksum && flags & (NEEDS_CSUM | DATA_VALID) != 0
            };
            return Some(RxFrame {
                buf,
                start: header,
                len: len - header,
                checksum_ok,
                token: u32::from(token),
            });
        }
    }

    fn recycle(&mut self, frame: RxFrame) {
        let mut buf = frame.buf;
        if buf.len() != RX_BUFFER {
            buf = vec![0u8; RX_BUFFER];
        }
        repost(&mut self.live.borrow_mut(), self.nic, buf);
    }

    fn can_transmit(&mut self) -> bool {
        let mut l = self.live.borrow_mut();
        reclaim_tx(&mut l);
        l.tx.available_desc() >= 1
    }

    fn transmit(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<TxChecksum>,
    ) -> Result<(), TxError> {
        let header = self.nic.header;
        if len > self.caps.mtu + 14 {
            return Err(TxError::TooLong);
        }
        let mut l = self.live.borrow_mut();
        reclaim_tx(&mut l);
        if l.tx.available_desc() == 0 {
            return Err(TxError::Full);
        }
        let mut buf = l.tx_pool.pop().unwrap_or_default();
        buf.clear();
        buf.resize(header + len, 0);
        let csum = fill(&mut buf[header..]);
        if let Some(c) = csum {
            buf[0] = NEEDS_CSUM;
            buf[6..8].copy_from_slice(&c.start.to_le_bytes());
            buf[8..10].copy_from_slice(&c.offset.to_le_bytes());
        }
        // SAFETY: `buf` is kept in `tx_bufs` under its token until the
        // device returns it (`reclaim_tx`), and not touched meanwhile.
        let token = match unsafe { l.tx.add(&[&buf], &mut []) } {
            Ok(t) => t,
            Err(_) => return Err(TxError::Full),
        };
        l.tx_bufs[usize::from(token)] = Some(buf);
        // The device re-enables kicks and then looks at the ring again; we
        // published the ring and now read whether it wants a kick.
        fence(Ordering::SeqCst);
        let notify = l.tx.should_notify();
        let q = (2 * l.index + 1) as u16;
        drop(l);
        if notify {
            self.notify(q);
        }
        Ok(())
    }

    fn set_waker(&mut self, waker: &Waker) {
        self.live.borrow_mut().waker = Some(waker.clone());
    }

    fn rearm(&mut self) -> bool {
        let mut l = self.live.borrow_mut();
        let frames = core::mem::take(&mut l.frames_this_pass);
        if l.refills > 0 {
            flush_refills(&mut l, self.nic);
        }
        if !l.interrupts {
            return false;
        }
        if l.poller.is_some() {
            // Polling: the poller decides when to go back to interrupts.
            return false;
        }
        let prev = l.prev_pass;
        if frames > 0 {
            l.prev_pass = l.last_frame;
        }
        let busy = frames >= BUSY_FRAMES
            || (frames > 0 && l.last_frame.saturating_sub(prev) < BUSY_GAP_NS);
        if self.nic.polling == Polling::Auto && busy && l.last_frame < l.no_poll_until {
            // Polling starved the device lately: stay on interrupts.
            l.busy_passes = 0;
            l.stats.held_back += 1;
        } else if self.nic.polling == Polling::Auto && busy {
            l.busy_passes += 1;
            if l.busy_passes >= BUSY_PASSES {
                l.busy_passes = 0;
                log::debug!("virtio-net: queue pair {} is busy: polling", l.index);
                l.stats.episodes += 1;
                l.poll_ended = 0;
                drop(l);
                let p = poller(self.live);
                self.live.borrow_mut().poller = Some(p);
                return false;
            }
        } else {
            l.busy_passes = 0;
        }
        l.rx.set_dev_notify(true);
        // See the poller: the fence orders the flag before the look.
        fence(Ordering::SeqCst);
        l.rx.can_pop()
    }
}

/// Gives a receive buffer back to the device; tells the device once
/// `REFILL_BATCH` buffers are back ([`flush_refills`]).
fn repost(l: &mut Live, nic: &Nic, mut buf: Vec<u8>) {
    // SAFETY: as in `PendingPair::fill_rx`.
    match unsafe { l.rx.add(&[], &mut [&mut buf]) } {
        Ok(token) => {
            l.rx_bufs[usize::from(token)] = Some(buf);
            l.refills += 1;
            if l.refills >= REFILL_BATCH {
                flush_refills(l, nic);
            }
        }
        Err(_) => log::error!("virtio-net: a receive buffer could not be reposted"),
    }
}

/// Tells the device about the receive buffers reposted since the last
/// time, if it asks to be told. Holding `l` meanwhile is fine: the notify
/// takes only the NIC's transport lock.
fn flush_refills(l: &mut Live, nic: &Nic) {
    l.refills = 0;
    fence(Ordering::SeqCst);
    if l.rx.should_notify() {
        nic.transport.lock().notify((2 * l.index) as u16);
    }
}

/// Takes back the buffers of completed transmits.
fn reclaim_tx(l: &mut Live) {
    while let Some(token) = l.tx.peek_used() {
        let Some(buf) = l.tx_bufs.get_mut(usize::from(token)).and_then(Option::take) else {
            log::error!(
                "virtio-net: transmit queue {} returned unknown token {token}",
                l.index
            );
            return;
        };
        // SAFETY: `buf` is the buffer added under `token`.
        if unsafe { l.tx.pop_used(token, &[&buf], &mut []) }.is_err() {
            l.tx_bufs[usize::from(token)] = Some(buf);
            return;
        }
        l.tx_pool.push(buf);
    }
}
