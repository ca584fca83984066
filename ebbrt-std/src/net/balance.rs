//! Spreading a process's connections evenly over its cores' listeners.
//!
//! Every core of a per-core server binds its own `SO_REUSEPORT` listener
//! on the same address, and Linux picks the listener of a new connection
//! by a hash of its addresses: with a few connections that often gives one
//! core three times the other's share (8 connections over 2 cores split
//! 6/2 or 5/3 more often than 4/4), and a server as fast as its busiest
//! core. So the listeners of one process bound to one address form a
//! [`Group`], and the core whose listener accepted a connection gives it
//! to the member with the fewest live connections (itself among equals):
//! one hand-off across cores per connection, none per request.
//! memcached's dispatcher thread deals its connections out in turn to the
//! same end.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

/// A connection accepted on one core for another.
pub(super) type Handed = (std::net::TcpStream, SocketAddr);

/// One core's listener: its live connections and its inbox.
pub(super) struct Member {
    /// Connections accepted for this listener and not yet dropped
    /// (including those handed over and not yet taken).
    live: AtomicUsize,
    /// The most it may hold (`usize::MAX`: no limit of its own).
    max: usize,
    inbox: Mutex<Inbox>,
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<Handed>,
    /// The task waiting in this listener's `accept`.
    waker: Option<Waker>,
}

/// The listeners of this process bound to one address.
struct Group {
    members: Mutex<Vec<Arc<Member>>>,
}

/// Groups by address. Only listeners bound by this process through
/// `ListenOptions::bind` join, so an address names one socket group.
static GROUPS: LazyLock<Mutex<HashMap<SocketAddr, Arc<Group>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A lock whose holder never panics while it holds it: poisoning cannot
/// leave the data half-updated, so it is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a new connection goes.
pub(super) enum Place {
    /// To the listener that accepted it.
    Here,
    /// To another core's listener (its count already includes it).
    There(Arc<Member>),
    /// Nowhere: every listener of the group is at its limit.
    Full,
}

/// A listener's place: its member, and its group if it balances.
pub(super) struct Membership {
    me: Arc<Member>,
    group: Option<(SocketAddr, Arc<Group>)>,
}

impl Membership {
    /// A listener that keeps what it accepts (adopted sockets).
    pub(super) fn solo(max: Option<usize>) -> Membership {
        Membership {
            me: Member::new(max),
            group: None,
        }
    }

    /// A listener on `addr` that shares connections with this process's
    /// other listeners on it.
    pub(super) fn join(addr: SocketAddr, max: Option<usize>) -> Membership {
        let me = Member::new(max);
        let mut groups = lock(&GROUPS);
        let group = groups
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Group {
                    members: Mutex::new(Vec::new()),
                })
            })
            .clone();
        lock(&group.members).push(me.clone());
        Membership {
            me,
            group: Some((addr, group)),
        }
    }

    /// This listener's member.
    pub(super) fn me(&self) -> &Arc<Member> {
        &self.me
    }

    /// Chooses where a connection this listener accepted goes, and counts
    /// it there: the member with the fewest live connections below its
    /// limit, this one among equals.
    pub(super) fn place(&self) -> Place {
        // A listener outside any group is a group of one.
        let guard;
        let members: &[Arc<Member>] = match &self.group {
            Some((_, group)) => {
                guard = lock(&group.members);
                &guard
            }
            None => core::slice::from_ref(&self.me),
        };
        let mut best: Option<(&Arc<Member>, usize)> = None;
        let mine = self.me.live.load(Ordering::Relaxed);
        if mine < self.me.max {
            best = Some((&self.me, mine));
        }
        for m in members {
            let n = m.live.load(Ordering::Relaxed);
            if n < m.max && best.is_none_or(|(_, b)| n < b) {
                best = Some((m, n));
            }
        }
        match best {
            None => Place::Full,
            // Counted under the group's lock, so that two cores choosing
            // at once see each other's choice.
            Some((m, _)) if Arc::ptr_eq(m, &self.me) => {
                m.live.fetch_add(1, Ordering::Relaxed);
                Place::Here
            }
            Some((m, _)) => {
                m.live.fetch_add(1, Ordering::Relaxed);
                Place::There(m.clone())
            }
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some((addr, group)) = &self.group {
            let mut groups = lock(&GROUPS);
            let mut members = lock(&group.members);
            members.retain(|m| !Arc::ptr_eq(m, &self.me));
            if members.is_empty() && groups.get(addr).is_some_and(|g| Arc::ptr_eq(g, group)) {
                groups.remove(addr);
            }
        }
        // Connections handed here and not taken close with the listener,
        // as those in its kernel queue do.
        let left = std::mem::take(&mut lock(&self.me.inbox).queue);
        self.me.live.fetch_sub(left.len(), Ordering::Relaxed);
    }
}

impl Member {
    fn new(max: Option<usize>) -> Arc<Member> {
        Arc::new(Member {
            live: AtomicUsize::new(0),
            max: max.unwrap_or(usize::MAX),
            inbox: Mutex::new(Inbox::default()),
        })
    }

    /// The limit, for messages.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// A connection of this listener was dropped.
    pub(super) fn left(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Hands `conn` (already counted) to this listener and wakes its
    /// `accept`.
    pub(super) fn give(&self, conn: Handed) {
        let waker = {
            let mut inbox = lock(&self.inbox);
            inbox.queue.push_back(conn);
            inbox.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A connection handed to this listener, if there is one; otherwise
    /// the task of `cx` is woken when one comes.
    pub(super) fn take(&self, cx: &mut Context<'_>) -> Option<Handed> {
        let mut inbox = lock(&self.inbox);
        if let Some(c) = inbox.queue.pop_front() {
            return Some(c);
        }
        match &inbox.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inbox.waker = Some(cx.waker().clone()),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn connections_go_to_the_member_with_the_fewest() {
        let a = Membership::join(addr(1), None);
        let b = Membership::join(addr(1), None);
        // Ties stay where they were accepted.
        assert!(matches!(a.place(), Place::Here));
        // a has 1, b 0: a's next goes to b.
        match a.place() {
            Place::There(m) => assert!(Arc::ptr_eq(&m, b.me())),
            _ => panic!("not handed to the emptier listener"),
        }
        // 1 and 1: b keeps its own; then a gets b's next.
        assert!(matches!(b.place(), Place::Here));
        match b.place() {
            Place::There(m) => assert!(Arc::ptr_eq(&m, a.me())),
            _ => panic!("not handed back"),
        }
        // A connection closing makes room where it was.
        b.me().left();
        assert!(matches!(a.place(), Place::There(_)));
    }

    #[test]
    fn limits_are_each_listeners_own_and_full_is_said() {
        let a = Membership::join(addr(2), Some(1));
        let b = Membership::join(addr(2), Some(1));
        assert!(matches!(a.place(), Place::Here));
        assert!(matches!(a.place(), Place::There(_)));
        assert!(matches!(a.place(), Place::Full));
        assert!(matches!(b.place(), Place::Full));
        let solo = Membership::solo(Some(1));
        assert!(matches!(solo.place(), Place::Here));
        assert!(matches!(solo.place(), Place::Full));
    }

    #[test]
    fn groups_are_per_address_and_go_when_their_last_listener_does() {
        let a = Membership::join(addr(3), None);
        let other = Membership::join(addr(4), None);
        assert!(matches!(a.place(), Place::Here));
        assert!(
            matches!(a.place(), Place::Here),
            "another address is another group"
        );
        drop(other);
        drop(a);
        assert!(!lock(&GROUPS).contains_key(&addr(3)));
        assert!(!lock(&GROUPS).contains_key(&addr(4)));
    }

    #[test]
    fn a_handed_connection_wakes_the_waiting_accept_once_given() {
        use std::sync::atomic::AtomicBool;
        use std::task::Wake;
        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let a = Membership::join(addr(5), None);
        assert!(a.me().take(&mut cx).is_none());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        a.me().give((c, l.local_addr().unwrap()));
        assert!(
            flag.0.load(Ordering::SeqCst),
            "the waiting accept was not woken"
        );
        assert!(a.me().take(&mut cx).is_some());
        assert!(a.me().take(&mut cx).is_none());
    }
}
