//! The per-core reactor: this core's `mio::Poll`, the sockets registered
//! with it, and the wakers of the tasks waiting for them.
//!
//! Sockets are registered edge-triggered for both directions. A task always
//! tries its system call first and registers its waker only after the call
//! said `WouldBlock`; events are dispatched only between task polls, on the
//! same thread, so no readiness edge can fall between the failed call and
//! the registration: a wake-up is never lost. Wakers are woken after every
//! borrow of the reactor is released, so waking may re-enter it.

use std::cell::{Cell, OnceCell, RefCell};
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ebbrt_core::io::{Error, ErrorKind};
use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Events, Interest, Registry, Token};

use crate::io_error::from_std;
use crate::timer::TimerFd;

#[cfg(test)]
thread_local! {
    /// How many times this thread's streams asked the kernel for bytes
    /// through [`Async::read_stream`] (a test counts the calls saved).
    pub(crate) static STREAM_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The token of this core's `mio::Waker` (cross-core wakes).
pub(crate) const WAKE_TOKEN: Token = Token(usize::MAX);
const TIMER_TOKEN: Token = Token(usize::MAX - 1);
const EVENTS_PER_TURN: usize = 1024;

/// The tasks waiting for one source, per direction, and what the last
/// read said of the receive queue.
#[derive(Default)]
struct Wakers {
    read: RefCell<Vec<Waker>>,
    write: RefCell<Vec<Waker>>,
    /// The last read of a stream emptied its receive queue (it returned
    /// fewer bytes than asked for) and no readiness event came since: a
    /// read now would only say `WouldBlock`. Cleared by the next readable,
    /// closed or error event (edge-triggered: data arriving after that
    /// read makes one).
    drained: Cell<bool>,
    /// A closed or error event came: the end of the stream (or its error)
    /// is waiting to be read. Final, like `tokio`'s closed readiness: an
    /// end that came with the last bytes raises no further event, so after
    /// it a short read never skips the next one.
    closed: Cell<bool>,
}

fn add_waker(list: &RefCell<Vec<Waker>>, w: &Waker) {
    let mut list = list.borrow_mut();
    if !list.iter().any(|old| old.will_wake(w)) {
        list.push(w.clone());
    }
}

/// Registered sources; the index is the `mio` token.
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Rc<Wakers>>>,
    free: Vec<usize>,
}

pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    registry: Registry,
    sources: RefCell<Sources>,
    timer: TimerFd,
    /// Wakers collected during a turn, woken once no borrow is held.
    to_wake: RefCell<Vec<Waker>>,
}

thread_local! {
    static REACTOR: OnceCell<Reactor> = const { OnceCell::new() };
}

/// Makes `poll` the reactor of the calling thread (a core, about to enter
/// its event loop). `poll` already carries the core's `mio::Waker`.
pub(crate) fn install(poll: mio::Poll) -> io::Result<()> {
    let registry = poll.registry().try_clone()?;
    let timer = TimerFd::new()?;
    registry.register(
        &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&timer)),
        TIMER_TOKEN,
        Interest::READABLE,
    )?;
    let reactor = Reactor {
        poll: RefCell::new(poll),
        events: RefCell::new(Events::with_capacity(EVENTS_PER_TURN)),
        registry,
        sources: RefCell::new(Sources::default()),
        timer,
        to_wake: RefCell::new(Vec::new()),
    };
    REACTOR.with(|r| {
        r.set(reactor).map_err(|_| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this thread already has a reactor",
            )
        })
    })
}

/// Runs `f` with this thread's reactor.
fn with<R>(f: impl FnOnce(&Reactor) -> R) -> Option<R> {
    REACTOR.try_with(|r| r.get().map(f)).ok().flatten()
}

/// Waits for events (at most `timeout`; `None`: until one comes) and wakes
/// the tasks they concern.
///
/// # Panics
/// On a thread without a reactor, or when `epoll_wait` fails for a reason
/// other than a signal: the event loop cannot go on without it.
pub(crate) fn turn(timeout: Option<Duration>) {
    with(|r| r.turn(timeout))
        .expect("the hosted platform idled on a thread that is not an EbbRT core");
}

/// Like [`turn`], with the wait bounded by a timer deadline: `after` from
/// now, for the platform instant `deadline` (nanoseconds).
pub(crate) fn turn_until(deadline: u64, after: Duration) {
    with(|r| {
        if after.is_zero() {
            r.turn(Some(Duration::ZERO));
            return;
        }
        if let Err(e) = r.timer.arm(deadline, after) {
            // Fall back to epoll's millisecond timeout rather than oversleep.
            log::warn!(
                "cannot arm the core's timerfd ({e}); timers fall back to millisecond resolution"
            );
            r.turn(Some(after));
            return;
        }
        r.turn(None);
    })
    .expect("the hosted platform idled on a thread that is not an EbbRT core");
}

impl Reactor {
    fn turn(&self, timeout: Option<Duration>) {
        let mut to_wake = self.to_wake.take();
        {
            let mut events = self.events.borrow_mut();
            match self.poll.borrow_mut().poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
                Err(e) => panic!("epoll_wait failed: {e}"),
            }
            let sources = self.sources.borrow();
            for ev in events.iter() {
                match ev.token() {
                    WAKE_TOKEN => {}
                    TIMER_TOKEN => self.timer.expired(),
                    Token(i) => {
                        let Some(Some(w)) = sources.slots.get(i) else {
                            continue;
                        };
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            w.drained.set(false);
                            if ev.is_read_closed() || ev.is_error() {
                                w.closed.set(true);
                            }
                            to_wake.append(&mut w.read.borrow_mut());
                        }
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            to_wake.append(&mut w.write.borrow_mut());
                        }
                    }
                }
            }
        }
        for w in to_wake.drain(..) {
            w.wake();
        }
        // Keep the buffer's capacity for the next turn.
        *self.to_wake.borrow_mut() = to_wake;
    }

    fn insert(&self) -> (Token, Rc<Wakers>) {
        let w = Rc::new(Wakers::default());
        let mut s = self.sources.borrow_mut();
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i] = Some(w.clone());
                i
            }
            None => {
                s.slots.push(Some(w.clone()));
                s.slots.len() - 1
            }
        };
        (Token(i), w)
    }

    fn remove(&self, token: Token) {
        let mut s = self.sources.borrow_mut();
        if let Some(slot @ Some(_)) = s.slots.get_mut(token.0) {
            *slot = None;
            s.free.push(token.0);
        }
    }
}

/// A non-blocking I/O source registered with the current core's reactor.
/// `!Send`: it belongs to the core that created it.
pub(crate) struct Async<S: Source> {
    io: S,
    token: Token,
    wakers: Rc<Wakers>,
}

impl<S: Source> Async<S> {
    /// Registers `io` (already non-blocking) with this core's reactor.
    pub(crate) fn new(mut io: S) -> ebbrt_core::io::Result<Self> {
        let registered = with(|r| {
            let (token, wakers) = r.insert();
            match r
                .registry
                .register(&mut io, token, Interest::READABLE | Interest::WRITABLE)
            {
                Ok(()) => Ok((token, wakers)),
                Err(e) => {
                    r.remove(token);
                    Err(from_std(e))
                }
            }
        });
        match registered {
            Some(Ok((token, wakers))) => Ok(Async { io, token, wakers }),
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                ErrorKind::Unsupported,
                "sockets exist only on EbbRT cores: start the runtime first",
            )),
        }
    }

    /// The source itself.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readability in between. `EINTR` is retried. An error of `op` is
    /// returned as an `ebbrt_core::io::Error` (see [`from_std`]).
    pub(crate) async fn read_with<R>(
        &self,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> ebbrt_core::io::Result<R> {
        poll_fn(|cx| self.poll_op(cx, &self.wakers.read, &mut op))
            .await
            .map_err(from_std)
    }

    /// Like [`Self::read_with`] for a stream socket, without the system call
    /// that would only say `WouldBlock`: `op` returns its result and
    /// whether it emptied the receive queue (a read shorter than asked
    /// for); after such a read the next one waits for a readiness event
    /// first, as `tokio` does. Edge-triggered registration makes this
    /// safe: bytes that arrive after the short read raise a new event,
    /// which clears the mark before it wakes the task. Once the peer's end
    /// (or an error) has been reported no read is skipped: the end may have
    /// come with the bytes just read, and no event would follow it.
    pub(crate) async fn read_stream<R>(
        &self,
        mut op: impl FnMut(&S) -> io::Result<(R, bool)>,
    ) -> ebbrt_core::io::Result<R> {
        poll_fn(|cx| {
            if self.wakers.drained.get() {
                add_waker(&self.wakers.read, cx.waker());
                return Poll::Pending;
            }
            #[cfg(test)]
            STREAM_READS.with(|n| n.set(n.get() + 1));
            match self.poll_op(cx, &self.wakers.read, &mut op) {
                Poll::Ready(Ok((r, drained))) => {
                    self.wakers
                        .drained
                        .set(drained && !self.wakers.closed.get());
                    Poll::Ready(Ok(r))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
        .map_err(from_std)
    }

    /// Like [`Self::read_with`], waiting for writability.
    pub(crate) async fn write_with<R>(
        &self,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> ebbrt_core::io::Result<R> {
        poll_fn(|cx| self.poll_op(cx, &self.wakers.write, &mut op))
            .await
            .map_err(from_std)
    }

    fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        wakers: &RefCell<Vec<Waker>>,
        op: &mut impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    add_waker(wakers, cx.waker());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl<S: Source> Drop for Async<S> {
    fn drop(&mut self) {
        // At thread exit the reactor may be gone; closing the descriptor
        // (when `io` drops) removes it from epoll anyway.
        with(|r| {
            let _ = r.registry.deregister(&mut self.io);
            r.remove(self.token);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_reused_after_removal() {
        let poll = mio::Poll::new().unwrap();
        let r = Reactor {
            registry: poll.registry().try_clone().unwrap(),
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(4)),
            sources: RefCell::new(Sources::default()),
            timer: TimerFd::new().unwrap(),
            to_wake: RefCell::new(Vec::new()),
        };
        let (a, _) = r.insert();
        let (b, _) = r.insert();
        assert_ne!(a, b);
        r.remove(a);
        r.remove(a); // twice is harmless
        let (c, _) = r.insert();
        assert_eq!(c, a);
        let (d, _) = r.insert();
        assert_ne!(d, b);
        assert_eq!(r.sources.borrow().free.len(), 0);
    }

    #[test]
    fn off_core_sources_are_refused_with_an_error() {
        let l = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = Async::new(l).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
