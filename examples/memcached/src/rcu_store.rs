//! [`RcuStore`]: the default store — items in an RCU hash table
//! (`ebbrt-rcu-hashtable`), so that a GET on any core takes no lock.
//!
//! Each item is an immutable `Arc<Item>` in the table; what a read changes
//! (its access time, whether it was fetched, the recache token, the CLOCK
//! reference bit) are atomics of the item, and what a read returns is a
//! snapshot sharing the value's [`IoBuf`] (no byte copied). A GET without
//! side effects on the table (no touch, no vivify) is a lock-free lookup:
//! no lock, no write to the table. Everything else (stores, deletes,
//! incr/decr, touch, gat, vivify) is a read-modify-write of the key under
//! the table's writer lock ([`RcuHashMap::update`]), which publishes a new
//! item in the old one's place and hands the old one to RCU; the byte and
//! item counts move under that lock, so they are exact.
//!
//! Eviction is CLOCK (second chance), not exact LRU: exact LRU would make
//! every read move the item in a shared list, a write and a lock on the
//! hot path. Items enter a FIFO as they are stored; a read sets the item's
//! reference bit; to make room the hand takes the oldest item, gives it
//! another turn if its bit is set (clearing it) and evicts it otherwise
//! (counted in `evictions`, or in `reclaimed` if it had expired). The FIFO
//! ([`ClockRing`], behind a lock of its own, taken by writers only) holds
//! exactly the live items: one that is replaced or removed leaves it at
//! once, by the slot it carries, so no write ever pays for a sweep of it.
//!
//! Expired items, and items a delayed `flush_all` killed, are misses at
//! once and are removed when next touched or when the hand reaches them.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use ebbrt::sync::Mutex;
use ebbrt::{EbbError, EbbRef, IoBuf, Shared, ebb};
use ebbrt_rcu::{CoreRcu, Reclaim};
use ebbrt_rcu_hashtable::{Action, DefaultHasher, RcuHashMap};

use crate::clock_ring::{ClockRing, NO_SLOT, Slotted};
use crate::mem_store::{ITEM_OVERHEAD, counter_text, parse_counter};
use crate::store::{
    ArithOutcome, ArithRequest, DeleteOptions, DeleteOutcome, GetOptions, ItemView, Mode, Store,
    StoreOutcome, StoreRequest, StoreStats, Win,
};

/// `exptime` and `oldest_live` of "never".
const NEVER: u64 = u64::MAX;

/// One stored item. Only the atomics change after it is published.
struct Item {
    key: Arc<[u8]>,
    value: IoBuf,
    flags: u32,
    cas: u64,
    /// When it was stored (for a delayed flush).
    stored_at: u64,
    stale: bool,
    /// Absolute expiry, [`NEVER`] for none; touch sets it under the writer
    /// lock, readers load it.
    exptime: AtomicU64,
    last_access: AtomicU64,
    fetched: AtomicBool,
    /// Someone holds the recache token.
    win_taken: AtomicBool,
    /// CLOCK's reference bit: read since the hand last passed.
    referenced: AtomicBool,
    /// Still the table's entry for its key (cleared under the writer lock
    /// when it is replaced or removed).
    linked: AtomicBool,
    /// Its place in the CLOCK's ring (written under the ring's lock).
    slot: AtomicU32,
}

impl Slotted for Item {
    fn slot(&self) -> &AtomicU32 {
        &self.slot
    }
}

impl Item {
    fn new(
        key: Arc<[u8]>,
        value: IoBuf,
        flags: u32,
        exptime: Option<u64>,
        cas: u64,
        now: u64,
    ) -> Item {
        Item {
            key,
            value,
            flags,
            cas,
            stored_at: now,
            stale: false,
            exptime: AtomicU64::new(exptime.unwrap_or(NEVER)),
            last_access: AtomicU64::new(now),
            fetched: AtomicBool::new(false),
            win_taken: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            linked: AtomicBool::new(true),
            slot: AtomicU32::new(NO_SLOT),
        }
    }

    /// The same item, to be changed before it replaces this one.
    fn copy(&self) -> Item {
        Item {
            key: self.key.clone(),
            value: self.value.clone(),
            flags: self.flags,
            cas: self.cas,
            stored_at: self.stored_at,
            stale: self.stale,
            exptime: AtomicU64::new(self.exptime.load(Relaxed)),
            last_access: AtomicU64::new(self.last_access.load(Relaxed)),
            fetched: AtomicBool::new(self.fetched.load(Relaxed)),
            win_taken: AtomicBool::new(self.win_taken.load(Relaxed)),
            referenced: AtomicBool::new(self.referenced.load(Relaxed)),
            linked: AtomicBool::new(true),
            slot: AtomicU32::new(NO_SLOT),
        }
    }

    fn exptime(&self) -> Option<u64> {
        match self.exptime.load(Relaxed) {
            NEVER => None,
            t => Some(t),
        }
    }

    fn charge(&self) -> u64 {
        charge(&self.key, self.value.len())
    }
}

fn charge(key: &[u8], value_len: usize) -> u64 {
    key.len() as u64 + value_len as u64 + ITEM_OVERHEAD
}

/// Why an item in the table is no longer there for a reader.
#[derive(Copy, Clone)]
enum Dead {
    Expired,
    Flushed,
}

/// The counters `stats` reports, as atomics.
#[derive(Default)]
struct Counters {
    curr_items: AtomicU64,
    total_items: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    reclaimed: AtomicU64,
    limit_maxbytes: AtomicU64,
    get_expired: AtomicU64,
    get_flushed: AtomicU64,
}

/// A store on an RCU hash table with lock-free reads and CLOCK eviction
/// (see the module doc). `R` is the RCU it runs under: the cores'
/// ([`CoreRcu`], what the server uses), or plain threads' in host tests.
pub struct RcuStore<R: Reclaim + 'static = CoreRcu> {
    map: RcuHashMap<Arc<[u8]>, Arc<Item>, R, DefaultHasher>,
    /// The CLOCK's FIFO: the live items in the order they were stored.
    /// Lock order: this lock, then the table's writer lock (never the
    /// other way round: a writer takes it after its table update).
    clock: Mutex<ClockRing<Item>>,
    next_cas: AtomicU64,
    /// Items stored at or before this time are dead once it has come
    /// ([`NEVER`]: no delayed flush pending).
    oldest_live: AtomicU64,
    counters: Counters,
}

impl RcuStore<CoreRcu> {
    /// An empty store on the cores' RCU that holds at most `limit_bytes`
    /// (items are charged their key, value and [`ITEM_OVERHEAD`]).
    pub fn new(limit_bytes: u64) -> Self {
        Self::with_rcu(limit_bytes, CoreRcu)
    }
}

impl<R: Reclaim + Send + 'static> RcuStore<R> {
    /// An empty store under `rcu`.
    pub fn with_rcu(limit_bytes: u64, rcu: R) -> Self {
        let counters = Counters::default();
        counters.limit_maxbytes.store(limit_bytes, Relaxed);
        RcuStore {
            map: RcuHashMap::with_rcu(rcu, DefaultHasher::default()),
            clock: Mutex::new(ClockRing::default()),
            next_cas: AtomicU64::new(0),
            oldest_live: AtomicU64::new(NEVER),
            counters,
        }
    }

    fn dead(&self, item: &Item, now: u64) -> Option<Dead> {
        let o = self.oldest_live.load(Relaxed);
        if o != NEVER && o <= now && item.stored_at <= o {
            return Some(Dead::Flushed);
        }
        match item.exptime.load(Relaxed) {
            t if t != NEVER && t <= now => Some(Dead::Expired),
            _ => None,
        }
    }

    fn count_dead(&self, why: Dead) {
        let c = match why {
            Dead::Expired => &self.counters.get_expired,
            Dead::Flushed => &self.counters.get_flushed,
        };
        c.fetch_add(1, Relaxed);
    }

    fn cas(&self, wanted: Option<u64>) -> u64 {
        wanted.unwrap_or_else(|| self.next_cas.fetch_add(1, Relaxed) + 1)
    }

    /// A read-modify-write of `key` under the table's writer lock. `f` sees
    /// the live item (a dead one is counted, and removed unless `f` puts
    /// an item in its place) and says what to do; the counts follow.
    fn write<T>(
        &self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(Option<&Arc<Item>>) -> (Action<Arc<Item>>, T),
    ) -> T {
        let key: Arc<[u8]> = Arc::from(key);
        let (out, _) = self.map.update(key, |entry| {
            let old = entry.map(|e| e.value);
            let dead = old.and_then(|o| self.dead(o, now));
            if let Some(why) = dead {
                self.count_dead(why);
            }
            let (mut action, out) = f(old.filter(|_| dead.is_none()));
            if dead.is_some() && matches!(action, Action::Keep) {
                action = Action::Remove;
            }
            let (mut added, mut gone) = (None, None);
            match &action {
                Action::Keep => {}
                Action::Set(new) => {
                    if let Some(o) = old {
                        self.unlinked(o);
                        gone = Some(o.clone());
                    }
                    self.counters.bytes.fetch_add(new.charge(), Relaxed);
                    self.counters.curr_items.fetch_add(1, Relaxed);
                    added = Some(new.clone());
                }
                Action::Remove => {
                    if let Some(o) = old {
                        self.unlinked(o);
                        gone = Some(o.clone());
                    }
                }
            }
            (action, (out, added, gone))
        });
        let (out, added, gone) = out;
        if added.is_some() || gone.is_some() {
            let mut clock = self.clock.lock();
            if let Some(old) = gone {
                clock.remove(&old);
            }
            // Another writer may have replaced it already (and found it in
            // no ring): then it stays out.
            if let Some(new) = added.filter(|n| n.linked.load(Relaxed)) {
                clock.push_back(new);
            }
        }
        out
    }

    /// Counts `item` out of the table (under the writer lock).
    fn unlinked(&self, item: &Item) {
        item.linked.store(false, Relaxed);
        self.counters.bytes.fetch_sub(item.charge(), Relaxed);
        self.counters.curr_items.fetch_sub(1, Relaxed);
    }

    /// Removes `item` from the table if it still is its key's entry;
    /// whether it was. Taking it out of the CLOCK's ring is the caller's.
    fn remove_exact(&self, item: &Arc<Item>) -> bool {
        let removed = self.map.remove_if(&*item.key, |e| {
            let same = Arc::ptr_eq(e.value, item);
            if same {
                self.unlinked(item);
            }
            same
        });
        removed.is_some()
    }

    /// Runs the CLOCK hand until `need` more bytes fit under the limit (or
    /// nothing is left to evict).
    fn make_room(&self, need: u64, now: u64) {
        let limit = self.counters.limit_maxbytes.load(Relaxed);
        let mut clock = self.clock.lock();
        // Every item gets at most one second chance per call.
        let mut chances = clock.len();
        while self.counters.bytes.load(Relaxed) + need > limit {
            let Some(item) = clock.front().cloned() else {
                return;
            };
            if chances > 0 && item.linked.load(Relaxed) && item.referenced.swap(false, Relaxed) {
                chances -= 1;
                clock.rotate();
                continue;
            }
            clock.pop_front();
            if !item.linked.load(Relaxed) {
                // Replaced or removed; its writer will find it gone.
                continue;
            }
            let expired = self.dead(&item, now).is_some();
            if self.remove_exact(&item) {
                let c = if expired {
                    &self.counters.reclaimed
                } else {
                    &self.counters.evictions
                };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// The charge of `key`'s item now, if any (a lock-free peek).
    fn peek_charge(&self, key: &[u8]) -> Option<u64> {
        self.map.with(key, |e| e.value.charge())
    }

    /// What a reader of the live `item` sees; marks the access.
    fn read(&self, item: &Item, now: u64, opts: GetOptions) -> ItemView {
        let exptime = item.exptime();
        let low_ttl = match (opts.recache_below, exptime) {
            (Some(r), Some(t)) => t.saturating_sub(now) < r,
            _ => false,
        };
        let mut win = Win::None;
        if item.stale || low_ttl || (item.win_taken.load(Relaxed) && item.value.is_empty()) {
            win = if item.win_taken.swap(true, Relaxed) {
                Win::Lost
            } else {
                Win::Won
            };
        }
        let out = ItemView {
            value: item.value.clone(),
            flags: item.flags,
            exptime,
            cas: item.cas,
            last_access: item.last_access.load(Relaxed),
            fetched: item.fetched.load(Relaxed),
            stale: item.stale,
            win,
        };
        if !opts.no_bump {
            item.fetched.store(true, Relaxed);
            item.last_access.store(now, Relaxed);
            item.referenced.store(true, Relaxed);
        }
        out
    }
}

impl<R: Reclaim + Send + 'static> Store for RcuStore<R> {
    fn get(&self, key: &[u8], now: u64, opts: GetOptions) -> Option<ItemView> {
        if opts.touch.is_none() && opts.vivify.is_none() {
            // The fast path: a lookup in a read-side section, no lock.
            let found = self.map.with(key, |e| match self.dead(e.value, now) {
                None => Ok(self.read(e.value, now, opts)),
                Some(why) => Err((why, e.value.clone())),
            })?;
            return match found {
                Ok(view) => Some(view),
                Err((why, item)) => {
                    self.count_dead(why);
                    if self.remove_exact(&item) {
                        self.clock.lock().remove(&item);
                    }
                    None
                }
            };
        }
        if opts.vivify.is_some() {
            self.make_room(charge(key, 0), now);
        }
        let (view, created) = self.write(key, now, |live| match live {
            Some(item) => {
                if let Some(t) = opts.touch {
                    item.exptime.store(t.unwrap_or(NEVER), Relaxed);
                }
                (Action::Keep, (Some(self.read(item, now, opts)), false))
            }
            None => match opts.vivify {
                None => (Action::Keep, (None, false)),
                Some(exptime) => {
                    let cas = self.cas(None);
                    let item = Item::new(Arc::from(key), IoBuf::default(), 0, exptime, cas, now);
                    item.win_taken.store(true, Relaxed);
                    let view = ItemView {
                        value: IoBuf::default(),
                        flags: 0,
                        exptime,
                        cas,
                        last_access: now,
                        fetched: false,
                        stale: false,
                        win: Win::Won,
                    };
                    (Action::Set(Arc::new(item)), (Some(view), true))
                }
            },
        });
        if created {
            self.counters.total_items.fetch_add(1, Relaxed);
        }
        view
    }

    fn store(&self, req: StoreRequest<'_>, now: u64) -> StoreOutcome {
        let new_charge = charge(req.key, req.value.len());
        let old_charge = self.peek_charge(req.key);
        let limit = self.counters.limit_maxbytes.load(Relaxed);
        let (total, extra) = match req.mode {
            Mode::Append | Mode::Prepend => {
                let total = new_charge + old_charge.map_or(0, |c| c - charge(req.key, 0));
                (total, req.value.len() as u64)
            }
            _ => (
                new_charge,
                new_charge.saturating_sub(old_charge.unwrap_or(0)),
            ),
        };
        let fits = total <= limit;
        if fits {
            self.make_room(extra, now);
        }
        let key = req.key;
        let outcome = self.write(key, now, |live| {
            let present = live.is_some();
            let mut stale = false;
            if let Some(want) = req.cas {
                let Some(item) = live else {
                    return (Action::Keep, StoreOutcome::NotFound);
                };
                if item.cas != want {
                    if req.invalidate && want < item.cas {
                        stale = true;
                    } else {
                        return (Action::Keep, StoreOutcome::Exists);
                    }
                }
            }
            let (value, flags, exptime) = match (req.mode, live) {
                (Mode::Add, Some(item)) => {
                    // memcached bumps the item a failed add found.
                    item.referenced.store(true, Relaxed);
                    return (Action::Keep, StoreOutcome::NotStored);
                }
                (Mode::Replace, None) => return (Action::Keep, StoreOutcome::NotStored),
                (Mode::Append | Mode::Prepend, None) => match req.vivify {
                    Some(exptime) => (req.value, req.flags, exptime),
                    None => return (Action::Keep, StoreOutcome::NotStored),
                },
                (Mode::Append | Mode::Prepend, Some(old)) => {
                    // A new value: the stored ones are immutable.
                    let mut joined = Vec::with_capacity(old.value.len() + req.value.len());
                    if req.mode == Mode::Append {
                        joined.extend_from_slice(&old.value);
                        joined.extend_from_slice(&req.value);
                    } else {
                        joined.extend_from_slice(&req.value);
                        joined.extend_from_slice(&old.value);
                    }
                    (IoBuf::from(joined), old.flags, old.exptime())
                }
                _ => (req.value, req.flags, req.exptime),
            };
            if !fits || charge(key, value.len()) > limit {
                // As memcached: a failed store leaves no stale value.
                let action = if present {
                    Action::Remove
                } else {
                    Action::Keep
                };
                return (action, StoreOutcome::OutOfMemory);
            }
            let cas = self.cas(req.new_cas);
            let mut item = Item::new(Arc::from(key), value, flags, exptime, cas, now);
            item.stale = stale;
            (Action::Set(Arc::new(item)), StoreOutcome::Stored(cas))
        });
        if matches!(outcome, StoreOutcome::Stored(_)) {
            self.counters.total_items.fetch_add(1, Relaxed);
        }
        outcome
    }

    fn delete(&self, key: &[u8], now: u64, opts: DeleteOptions) -> DeleteOutcome {
        self.write(key, now, |live| {
            let Some(item) = live else {
                return (Action::Keep, DeleteOutcome::NotFound);
            };
            if opts.cas.is_some_and(|c| c != item.cas) {
                return (Action::Keep, DeleteOutcome::Exists);
            }
            if opts.invalidate.is_none() && !opts.clear_value {
                return (Action::Remove, DeleteOutcome::Deleted);
            }
            let mut changed = item.copy();
            if let Some(exptime) = opts.invalidate {
                changed.stale = true;
                changed.win_taken = AtomicBool::new(false);
                changed.exptime = AtomicU64::new(exptime.unwrap_or(NEVER));
            }
            if opts.clear_value {
                changed.value = IoBuf::default();
                changed.flags = 0;
            }
            changed.cas = self.cas(opts.new_cas);
            (Action::Set(Arc::new(changed)), DeleteOutcome::Deleted)
        })
    }

    fn arith(&self, key: &[u8], now: u64, req: ArithRequest) -> ArithOutcome {
        // A counter is at most 20 digits.
        self.make_room(charge(key, 20), now);
        let outcome = self.write(key, now, |live| {
            let Some(item) = live else {
                let Some((initial, exptime)) = req.create else {
                    return (Action::Keep, ArithOutcome::NotFound);
                };
                let cas = self.cas(req.new_cas);
                let item = Item::new(Arc::from(key), counter_text(initial), 0, exptime, cas, now);
                let out = ArithOutcome::Value {
                    value: initial,
                    cas,
                    created: true,
                };
                return (Action::Set(Arc::new(item)), out);
            };
            if req.cas.is_some_and(|c| c != item.cas) {
                return (Action::Keep, ArithOutcome::Exists);
            }
            let Some(n) = parse_counter(&item.value) else {
                return (Action::Keep, ArithOutcome::NonNumeric);
            };
            let value = if req.incr {
                n.wrapping_add(req.delta)
            } else {
                n.saturating_sub(req.delta)
            };
            let exptime = req.touch.unwrap_or(item.exptime());
            // memcached rewrites a shorter number in place, padded with
            // spaces to the old length; clients see `9 ` after `10` decr 1.
            let mut text = alloc::format!("{value}").into_bytes();
            if text.len() < item.value.len() {
                text.resize(item.value.len(), b' ');
            }
            let cas = self.cas(req.new_cas);
            let fresh = Item::new(
                Arc::from(key),
                IoBuf::from(text),
                item.flags,
                exptime,
                cas,
                now,
            );
            fresh.fetched.store(true, Relaxed);
            let out = ArithOutcome::Value {
                value,
                cas,
                created: false,
            };
            (Action::Set(Arc::new(fresh)), out)
        });
        if matches!(outcome, ArithOutcome::Value { .. }) {
            self.counters.total_items.fetch_add(1, Relaxed);
        }
        outcome
    }

    fn touch(&self, key: &[u8], now: u64, exptime: Option<u64>) -> bool {
        self.write(key, now, |live| match live {
            Some(item) => {
                item.exptime.store(exptime.unwrap_or(NEVER), Relaxed);
                item.last_access.store(now, Relaxed);
                item.referenced.store(true, Relaxed);
                (Action::Keep, true)
            }
            None => (Action::Keep, false),
        })
    }

    fn flush(&self, now: u64, at: u64) {
        if at > now {
            self.oldest_live.store(at, Relaxed);
            return;
        }
        // Everything stored so far goes; items stored meanwhile wait for
        // the FIFO's lock and live.
        let mut clock = self.clock.lock();
        for item in clock.take_all() {
            self.remove_exact(&item);
        }
        self.oldest_live.store(NEVER, Relaxed);
    }

    fn set_limit(&self, bytes: u64) {
        self.counters.limit_maxbytes.store(bytes, Relaxed);
        // The time only decides how evictions are counted: 0 counts them
        // all as evictions (as `MemStore` does).
        self.make_room(0, 0);
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            curr_items: c.curr_items.load(Relaxed),
            total_items: c.total_items.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            reclaimed: c.reclaimed.load(Relaxed),
            limit_maxbytes: c.limit_maxbytes.load(Relaxed),
            get_expired: c.get_expired.load(Relaxed),
            get_flushed: c.get_flushed.load(Relaxed),
        }
    }
}

/// The server's store: an [`RcuStore`] on the cores' RCU as a shared Ebb,
/// made at run time under a fresh id and reached from every core through
/// its [`EbbRef`] (which is itself a [`Store`]).
#[ebb(shared)]
pub struct SharedRcuStore {
    store: RcuStore<CoreRcu>,
}

impl SharedRcuStore {
    /// Makes the store (holding at most `limit_bytes`) under a fresh id.
    pub fn create(limit_bytes: u64) -> Result<EbbRef<SharedRcuStore>, EbbError> {
        <SharedRcuStore as Shared>::create(SharedRcuStore {
            store: RcuStore::new(limit_bytes),
        })
    }

    /// The store.
    pub fn store(&self) -> &RcuStore<CoreRcu> {
        &self.store
    }
}

impl Store for EbbRef<SharedRcuStore> {
    fn get(&self, key: &[u8], now: u64, opts: GetOptions) -> Option<ItemView> {
        self.store.get(key, now, opts)
    }

    fn store(&self, req: StoreRequest<'_>, now: u64) -> StoreOutcome {
        self.store.store(req, now)
    }

    fn delete(&self, key: &[u8], now: u64, opts: DeleteOptions) -> DeleteOutcome {
        self.store.delete(key, now, opts)
    }

    fn arith(&self, key: &[u8], now: u64, req: ArithRequest) -> ArithOutcome {
        self.store.arith(key, now, req)
    }

    fn touch(&self, key: &[u8], now: u64, exptime: Option<u64>) -> bool {
        self.store.touch(key, now, exptime)
    }

    fn flush(&self, now: u64, at: u64) {
        self.store.flush(now, at)
    }

    fn set_limit(&self, bytes: u64) {
        self.store.set_limit(bytes)
    }

    fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;
    use std::thread;

    use ebbrt_rcu::threads::Threads;

    use super::*;

    type TestStore = RcuStore<StdArc<Threads>>;

    fn set(s: &TestStore, key: &str, value: &str, now: u64) -> StoreOutcome {
        s.store(
            StoreRequest {
                key: key.as_bytes(),
                value: IoBuf::from(value),
                flags: 0,
                exptime: None,
                mode: Mode::Set,
                cas: None,
                new_cas: None,
                invalidate: false,
                vivify: None,
            },
            now,
        )
    }

    fn hit(s: &TestStore, key: &str) -> bool {
        s.get(key.as_bytes(), 1, GetOptions::default()).is_some()
    }

    /// The counts `stats` gives against the items the FIFO still holds.
    fn check_counts(s: &TestStore) {
        let clock = s.clock.lock();
        let live: Vec<_> = clock.iter().collect();
        assert!(live.iter().all(|i| i.linked.load(Relaxed)));
        let st = s.stats();
        assert_eq!(st.curr_items, live.len() as u64);
        assert_eq!(st.bytes, live.iter().map(|i| i.charge()).sum::<u64>());
    }

    #[test]
    fn the_clock_gives_read_items_a_second_chance() {
        let t = Threads::new(1);
        let _me = t.enter();
        let per = 1 + 10 + ITEM_OVERHEAD;
        let s = RcuStore::with_rcu(3 * per, t.clone());
        for k in ["a", "b", "c"] {
            set(&s, k, "0123456789", 1);
        }
        // `a` was read: the hand passes it and takes `b`.
        assert!(hit(&s, "a"));
        set(&s, "d", "0123456789", 1);
        assert!(!hit(&s, "b"));
        assert!(hit(&s, "a") && hit(&s, "c") && hit(&s, "d"));
        // Everything was read since: a full turn, then the oldest goes.
        set(&s, "e", "0123456789", 1);
        assert!(!hit(&s, "c"));
        let st = s.stats();
        assert_eq!((st.evictions, st.curr_items, st.bytes), (2, 3, 3 * per));
        check_counts(&s);
        // Larger than the limit: refused, nothing evicted, the old value gone.
        let big = "x".repeat(4 * per as usize);
        assert_eq!(set(&s, "a", &big, 1), StoreOutcome::OutOfMemory);
        assert!(!hit(&s, "a"));
        assert_eq!(s.stats().evictions, 2);
        check_counts(&s);
    }

    #[test]
    fn counts_stay_exact_through_replace_append_delete_and_flush() {
        let t = Threads::new(1);
        let me = t.enter();
        let s = RcuStore::with_rcu(1 << 20, t.clone());
        set(&s, "k", "12345", 1);
        set(&s, "k", "1", 1);
        let append = StoreRequest {
            key: b"k",
            value: IoBuf::from("23"),
            flags: 0,
            exptime: None,
            mode: Mode::Append,
            cas: None,
            new_cas: None,
            invalidate: false,
            vivify: None,
        };
        assert!(matches!(s.store(append, 1), StoreOutcome::Stored(_)));
        assert_eq!(
            s.get(b"k", 1, GetOptions::default()).unwrap().value,
            b"123"[..]
        );
        set(&s, "n", "9", 1);
        let incr = ArithRequest {
            incr: true,
            delta: 1,
            create: None,
            cas: None,
            new_cas: None,
            touch: None,
        };
        assert!(matches!(
            s.arith(b"n", 1, incr),
            ArithOutcome::Value { value: 10, .. }
        ));
        check_counts(&s);
        assert_eq!(s.stats().bytes, charge(b"k", 3) + charge(b"n", 2));
        let invalidate = DeleteOptions {
            invalidate: Some(None),
            ..DeleteOptions::default()
        };
        assert_eq!(s.delete(b"k", 1, invalidate), DeleteOutcome::Deleted);
        assert!(s.get(b"k", 1, GetOptions::default()).unwrap().stale);
        assert_eq!(
            s.delete(b"n", 1, DeleteOptions::default()),
            DeleteOutcome::Deleted
        );
        check_counts(&s);
        assert_eq!(s.stats().curr_items, 1);
        // Expired: a miss, counted, and gone from the counts.
        s.store(
            StoreRequest {
                key: b"e",
                value: IoBuf::from("x"),
                flags: 0,
                exptime: Some(5),
                mode: Mode::Set,
                cas: None,
                new_cas: None,
                invalidate: false,
                vivify: None,
            },
            1,
        );
        assert!(s.get(b"e", 5, GetOptions::default()).is_none());
        assert_eq!(s.stats().get_expired, 1);
        check_counts(&s);
        s.flush(2, 2);
        assert_eq!((s.stats().curr_items, s.stats().bytes), (0, 0));
        assert!(!hit(&s, "k"));
        check_counts(&s);
        me.barrier();
    }

    #[test]
    fn replaced_items_do_not_pile_up_in_the_fifo() {
        let t = Threads::new(1);
        let me = t.enter();
        let s = RcuStore::with_rcu(1 << 20, t.clone());
        for i in 0..20_000 {
            set(&s, "k", &alloc::format!("{i}"), 1);
            if i % 1000 == 0 {
                me.quiescent();
            }
        }
        assert_eq!(s.clock.lock().len(), 1);
        check_counts(&s);
    }

    #[test]
    fn concurrent_readers_and_writers_keep_the_counts_exact() {
        const THREADS: usize = 4;
        const KEYS: usize = 300;
        let t = Threads::new(THREADS);
        let per = 4 + 100 + ITEM_OVERHEAD;
        // Room for a third of the keys: the writers evict all along.
        let s = StdArc::new(RcuStore::with_rcu(per * KEYS as u64 / 3, t.clone()));
        let workers: Vec<_> = (0..THREADS)
            .map(|n| {
                let (s, t) = (s.clone(), t.clone());
                thread::spawn(move || {
                    let me = t.enter();
                    let value = "v".repeat(100);
                    for i in 0..5_000usize {
                        let key = alloc::format!("k{:03}", (i * 7 + n * 13) % KEYS);
                        match (i + n) % 4 {
                            0 => {
                                set(&s, &key, &value, 1);
                            }
                            1 => {
                                s.delete(key.as_bytes(), 1, DeleteOptions::default());
                            }
                            _ => {
                                if let Some(v) = s.get(key.as_bytes(), 1, GetOptions::default()) {
                                    assert_eq!(v.value, value.as_bytes());
                                }
                            }
                        }
                        me.quiescent();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let _me = t.enter();
        check_counts(&s);
        let st = s.stats();
        assert!(st.evictions > 0, "{st:?}");
        // Each writer may overshoot by the item it stores while another
        // makes room.
        assert!(
            st.bytes <= st.limit_maxbytes + THREADS as u64 * per,
            "{st:?}"
        );
    }
}
