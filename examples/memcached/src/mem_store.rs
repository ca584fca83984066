//! [`MemStore`]: the simple store — one hash map and one exact LRU order
//! behind one lock (`ebbrt::sync::Mutex`), shared by every core. The server's other store
//! (`--store mem`); the default is [`RcuStore`](crate::RcuStore).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use ebbrt::IoBuf;
use ebbrt::sync::Mutex;
use hashbrown::HashMap;

use crate::store::{
    ArithOutcome, ArithRequest, DeleteOptions, DeleteOutcome, GetOptions, ItemView, Mode, Store,
    StoreOutcome, StoreRequest, StoreStats, Win,
};

/// Bytes charged per item besides its key and value (memcached's item
/// header is about this size).
pub const ITEM_OVERHEAD: u64 = 48;

/// A hash map and an LRU list under one lock. Items past their expiry or
/// killed by `flush_all` are removed when next touched or when the LRU
/// reaches them; when the memory limit is reached, the least recently
/// used items are evicted (counted in `evictions`).
pub struct MemStore {
    inner: Mutex<Inner>,
}

struct Item {
    value: IoBuf,
    flags: u32,
    exptime: Option<u64>,
    cas: u64,
    /// When it was stored (for a delayed flush).
    stored_at: u64,
    last_access: u64,
    fetched: bool,
    stale: bool,
    /// Someone holds the recache token.
    win_taken: bool,
    /// Its place in the LRU order.
    seq: u64,
}

struct Inner {
    map: HashMap<Arc<[u8]>, Item>,
    /// LRU order: the smallest sequence number is the least recently used.
    lru: BTreeMap<u64, Arc<[u8]>>,
    next_seq: u64,
    next_cas: u64,
    /// Items stored at or before this time are dead once it has come.
    oldest_live: Option<u64>,
    bytes: u64,
    stats: StoreStats,
}

fn charge(key: &[u8], value: &IoBuf) -> u64 {
    key.len() as u64 + value.len() as u64 + ITEM_OVERHEAD
}

/// Why an item found in the map is no longer there for a reader.
enum Dead {
    Expired,
    Flushed,
}

impl Inner {
    fn dead(&self, item: &Item, now: u64) -> Option<Dead> {
        if let Some(o) = self.oldest_live
            && o <= now
            && item.stored_at <= o
        {
            return Some(Dead::Flushed);
        }
        match item.exptime {
            Some(t) if t <= now => Some(Dead::Expired),
            _ => None,
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let item = self.map.remove(key)?;
        self.lru.remove(&item.seq);
        self.bytes -= charge(key, &item.value);
        self.stats.curr_items -= 1;
        Some(item)
    }

    /// The live item at `key`; a dead one is removed (and counted) first.
    fn live(&mut self, key: &[u8], now: u64) -> Option<&mut Item> {
        let dead = self.dead(self.map.get(key)?, now);
        if let Some(why) = dead {
            match why {
                Dead::Expired => self.stats.get_expired += 1,
                Dead::Flushed => self.stats.get_flushed += 1,
            }
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn bump(&mut self, key: &[u8]) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((k, item)) = self.map.get_key_value_mut(key) {
            if let Some(k) = self.lru.remove(&item.seq) {
                self.lru.insert(seq, k);
            } else {
                self.lru.insert(seq, k.clone());
            }
            item.seq = seq;
        }
    }

    fn cas(&mut self, wanted: Option<u64>) -> u64 {
        match wanted {
            Some(c) => c,
            None => {
                self.next_cas += 1;
                self.next_cas
            }
        }
    }

    /// Evicts from the LRU tail until `need` more bytes fit; false when
    /// they cannot fit at all.
    fn make_room(&mut self, need: u64, now: u64) -> bool {
        if need > self.stats.limit_maxbytes {
            return false;
        }
        while self.bytes + need > self.stats.limit_maxbytes {
            let Some((_, key)) = self.lru.pop_first() else {
                return false;
            };
            let expired = self
                .map
                .get(&*key)
                .is_some_and(|i| self.dead(i, now).is_some());
            if let Some(item) = self.map.remove(&*key) {
                self.bytes -= charge(&key, &item.value);
                self.stats.curr_items -= 1;
                if expired {
                    self.stats.reclaimed += 1;
                } else {
                    self.stats.evictions += 1;
                }
            }
        }
        true
    }

    /// Puts a new item at `key`, replacing any; false when it cannot fit.
    fn insert(&mut self, key: &[u8], mut item: Item, now: u64) -> bool {
        let old = self.remove(key);
        if !self.make_room(charge(key, &item.value), now) {
            return false;
        }
        drop(old);
        let key: Arc<[u8]> = Arc::from(key);
        item.seq = self.next_seq;
        self.next_seq += 1;
        self.lru.insert(item.seq, key.clone());
        self.bytes += charge(&key, &item.value);
        self.stats.curr_items += 1;
        self.stats.total_items += 1;
        self.map.insert(key, item);
        true
    }
}

fn view(item: &Item, win: Win) -> ItemView {
    ItemView {
        value: item.value.clone(),
        flags: item.flags,
        exptime: item.exptime,
        cas: item.cas,
        last_access: item.last_access,
        fetched: item.fetched,
        stale: item.stale,
        win,
    }
}

fn new_item(value: IoBuf, flags: u32, exptime: Option<u64>, cas: u64, now: u64) -> Item {
    Item {
        value,
        flags,
        exptime,
        cas,
        stored_at: now,
        last_access: now,
        fetched: false,
        stale: false,
        win_taken: false,
        seq: 0,
    }
}

/// Parses a stored value as memcached's incr/decr do: decimal digits (an
/// optional run of trailing spaces, which memcached's in-place updates
/// leave), at most 2^64 - 1.
pub(crate) fn parse_counter(v: &[u8]) -> Option<u64> {
    let digits = v.trim_ascii_end();
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

pub(crate) fn counter_text(n: u64) -> IoBuf {
    IoBuf::from(alloc::format!("{n}"))
}

impl MemStore {
    /// An empty store that holds at most `limit_bytes` (items are charged
    /// their key, value and [`ITEM_OVERHEAD`]).
    pub fn new(limit_bytes: u64) -> Self {
        MemStore {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                lru: BTreeMap::new(),
                next_seq: 0,
                next_cas: 0,
                oldest_live: None,
                bytes: 0,
                stats: StoreStats {
                    limit_maxbytes: limit_bytes,
                    ..StoreStats::default()
                },
            }),
        }
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8], now: u64, opts: GetOptions) -> Option<ItemView> {
        let mut g = self.inner.lock();
        if g.live(key, now).is_none() {
            let exptime = opts.vivify?;
            let cas = g.cas(None);
            let mut item = new_item(IoBuf::default(), 0, exptime, cas, now);
            item.win_taken = true;
            if !g.insert(key, item, now) {
                return None;
            }
            let item = g.map.get(key)?;
            return Some(view(item, Win::Won));
        }
        let item = g.map.get_mut(key)?;
        if let Some(t) = opts.touch {
            item.exptime = t;
        }
        let mut win = Win::None;
        let low_ttl = match (opts.recache_below, item.exptime) {
            (Some(r), Some(t)) => t.saturating_sub(now) < r,
            _ => false,
        };
        if item.stale || low_ttl || (item.win_taken && item.value.is_empty()) {
            if item.win_taken {
                win = Win::Lost;
            } else {
                item.win_taken = true;
                win = Win::Won;
            }
        }
        let out = view(item, win);
        if !opts.no_bump {
            item.fetched = true;
            item.last_access = now;
            g.bump(key);
        }
        Some(out)
    }

    fn store(&self, req: StoreRequest<'_>, now: u64) -> StoreOutcome {
        let mut g = self.inner.lock();
        let present = g.live(req.key, now).is_some();
        let mut stale = false;
        if let Some(want) = req.cas {
            let Some(item) = g.map.get(req.key) else {
                return StoreOutcome::NotFound;
            };
            if item.cas != want {
                if req.invalidate && want < item.cas {
                    stale = true;
                } else {
                    return StoreOutcome::Exists;
                }
            }
        }
        let (value, flags, exptime) = match req.mode {
            Mode::Set => (req.value, req.flags, req.exptime),
            Mode::Add if present => {
                // memcached bumps the item a failed add found.
                g.bump(req.key);
                return StoreOutcome::NotStored;
            }
            Mode::Add => (req.value, req.flags, req.exptime),
            Mode::Replace if !present => return StoreOutcome::NotStored,
            Mode::Replace => (req.value, req.flags, req.exptime),
            Mode::Append | Mode::Prepend if !present => match req.vivify {
                Some(exptime) => (req.value, req.flags, exptime),
                None => return StoreOutcome::NotStored,
            },
            Mode::Append | Mode::Prepend => {
                let Some(old) = g.map.get(req.key) else {
                    return StoreOutcome::NotStored;
                };
                let mut joined = Vec::with_capacity(old.value.len() + req.value.len());
                if req.mode == Mode::Append {
                    joined.extend_from_slice(&old.value);
                    joined.extend_from_slice(&req.value);
                } else {
                    joined.extend_from_slice(&req.value);
                    joined.extend_from_slice(&old.value);
                }
                (IoBuf::from(joined), old.flags, old.exptime)
            }
        };
        let cas = g.cas(req.new_cas);
        let mut item = new_item(value, flags, exptime, cas, now);
        item.stale = stale;
        if g.insert(req.key, item, now) {
            StoreOutcome::Stored(cas)
        } else {
            StoreOutcome::OutOfMemory
        }
    }

    fn delete(&self, key: &[u8], now: u64, opts: DeleteOptions) -> DeleteOutcome {
        let mut g = self.inner.lock();
        let Some(item) = g.live(key, now) else {
            return DeleteOutcome::NotFound;
        };
        if opts.cas.is_some_and(|c| c != item.cas) {
            return DeleteOutcome::Exists;
        }
        if opts.invalidate.is_none() && !opts.clear_value {
            g.remove(key);
            return DeleteOutcome::Deleted;
        }
        let cas = g.cas(opts.new_cas);
        let item = g.map.get_mut(key).expect("checked live above");
        let old_len = item.value.len() as u64;
        if let Some(exptime) = opts.invalidate {
            item.stale = true;
            item.win_taken = false;
            item.exptime = exptime;
        }
        if opts.clear_value {
            item.value = IoBuf::default();
            item.flags = 0;
        }
        item.cas = cas;
        let new_len = item.value.len() as u64;
        g.bytes = g.bytes - old_len + new_len;
        DeleteOutcome::Deleted
    }

    fn arith(&self, key: &[u8], now: u64, req: ArithRequest) -> ArithOutcome {
        let mut g = self.inner.lock();
        let Some(item) = g.live(key, now) else {
            let Some((initial, exptime)) = req.create else {
                return ArithOutcome::NotFound;
            };
            let cas = g.cas(req.new_cas);
            let item = new_item(counter_text(initial), 0, exptime, cas, now);
            return if g.insert(key, item, now) {
                ArithOutcome::Value {
                    value: initial,
                    cas,
                    created: true,
                }
            } else {
                ArithOutcome::NotFound
            };
        };
        if req.cas.is_some_and(|c| c != item.cas) {
            return ArithOutcome::Exists;
        }
        let Some(n) = parse_counter(&item.value) else {
            return ArithOutcome::NonNumeric;
        };
        let value = if req.incr {
            n.wrapping_add(req.delta)
        } else {
            n.saturating_sub(req.delta)
        };
        let (flags, exptime) = (item.flags, req.touch.unwrap_or(item.exptime));
        // memcached rewrites a shorter number in place, padded with
        // spaces to the old length; clients see `9 ` after `10` decr 1.
        let mut text = alloc::format!("{value}").into_bytes();
        if text.len() < item.value.len() {
            text.resize(item.value.len(), b' ');
        }
        let cas = g.cas(req.new_cas);
        let mut fresh = new_item(IoBuf::from(text), flags, exptime, cas, now);
        fresh.fetched = true;
        if g.insert(key, fresh, now) {
            ArithOutcome::Value {
                value,
                cas,
                created: false,
            }
        } else {
            ArithOutcome::NotFound
        }
    }

    fn touch(&self, key: &[u8], now: u64, exptime: Option<u64>) -> bool {
        let mut g = self.inner.lock();
        match g.live(key, now) {
            Some(item) => {
                item.exptime = exptime;
                item.last_access = now;
                g.bump(key);
                true
            }
            None => false,
        }
    }

    fn flush(&self, now: u64, at: u64) {
        let mut g = self.inner.lock();
        if at <= now {
            g.map.clear();
            g.lru.clear();
            g.bytes = 0;
            g.stats.curr_items = 0;
            g.oldest_live = None;
        } else {
            g.oldest_live = Some(at);
        }
    }

    fn set_limit(&self, bytes: u64) {
        let mut g = self.inner.lock();
        g.stats.limit_maxbytes = bytes;
        // Evict what no longer fits; the time only decides how evictions
        // are counted, so 0 counts them all as evictions.
        let _ = g.make_room(0, 0);
    }

    fn stats(&self) -> StoreStats {
        let g = self.inner.lock();
        StoreStats {
            bytes: g.bytes,
            ..g.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &MemStore, key: &str, value: &str, exptime: Option<u64>, now: u64) -> StoreOutcome {
        s.store(
            StoreRequest {
                key: key.as_bytes(),
                value: IoBuf::from(value),
                flags: 7,
                exptime,
                mode: Mode::Set,
                cas: None,
                new_cas: None,
                invalidate: false,
                vivify: None,
            },
            now,
        )
    }

    fn value(s: &MemStore, key: &str, now: u64) -> Option<Vec<u8>> {
        s.get(key.as_bytes(), now, GetOptions::default())
            .map(|v| v.value.to_vec())
    }

    #[test]
    fn expired_items_miss_and_are_counted() {
        let s = MemStore::new(1 << 20);
        set(&s, "a", "1", Some(110), 100);
        assert_eq!(value(&s, "a", 109).as_deref(), Some(&b"1"[..]));
        assert_eq!(value(&s, "a", 110), None);
        assert_eq!(s.stats().get_expired, 1);
        assert_eq!(s.stats().curr_items, 0);
    }

    #[test]
    fn cas_uniques_differ_and_compare() {
        let s = MemStore::new(1 << 20);
        let StoreOutcome::Stored(c1) = set(&s, "k", "a", None, 1) else {
            panic!()
        };
        let StoreOutcome::Stored(c2) = set(&s, "k", "b", None, 1) else {
            panic!()
        };
        assert_ne!(c1, c2);
        let mut req = StoreRequest {
            key: b"k",
            value: IoBuf::from("c"),
            flags: 0,
            exptime: None,
            mode: Mode::Set,
            cas: Some(c1),
            new_cas: None,
            invalidate: false,
            vivify: None,
        };
        assert_eq!(s.store(req.clone(), 1), StoreOutcome::Exists);
        req.cas = Some(c2);
        assert!(matches!(s.store(req.clone(), 1), StoreOutcome::Stored(_)));
        req.key = b"missing";
        assert_eq!(s.store(req, 1), StoreOutcome::NotFound);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_and_counts_it() {
        // Room for three items of 1-byte keys and 10-byte values.
        let per = 1 + 10 + ITEM_OVERHEAD;
        let s = MemStore::new(3 * per);
        for k in ["a", "b", "c"] {
            set(&s, k, "0123456789", None, 1);
        }
        // Reading `a` makes `b` the least recently used.
        assert!(value(&s, "a", 1).is_some());
        set(&s, "d", "0123456789", None, 1);
        assert_eq!(value(&s, "b", 1), None);
        assert!(value(&s, "a", 1).is_some());
        assert!(value(&s, "c", 1).is_some());
        assert!(value(&s, "d", 1).is_some());
        let st = s.stats();
        assert_eq!(st.evictions, 1);
        assert_eq!(st.curr_items, 3);
        assert_eq!(st.bytes, 3 * per);
        // Larger than the whole limit: refused, nothing evicted.
        let big = "x".repeat(4 * per as usize);
        assert_eq!(set(&s, "e", &big, None, 1), StoreOutcome::OutOfMemory);
        assert_eq!(s.stats().evictions, 1);
    }

    #[test]
    fn delayed_flush_kills_older_items_when_it_comes() {
        let s = MemStore::new(1 << 20);
        set(&s, "a", "1", None, 100);
        s.flush(100, 105);
        assert!(value(&s, "a", 104).is_some());
        assert_eq!(value(&s, "a", 105), None);
        assert_eq!(s.stats().get_flushed, 1);
        set(&s, "b", "2", None, 106);
        assert!(value(&s, "b", 106).is_some());
        s.flush(200, 200);
        assert_eq!(value(&s, "b", 200), None);
    }

    #[test]
    fn arith_wraps_floors_and_rejects_text() {
        let s = MemStore::new(1 << 20);
        set(&s, "n", "18446744073709551615", None, 1);
        let incr = ArithRequest {
            incr: true,
            delta: 2,
            create: None,
            cas: None,
            new_cas: None,
            touch: None,
        };
        assert!(matches!(
            s.arith(b"n", 1, incr),
            ArithOutcome::Value { value: 1, .. }
        ));
        let decr = ArithRequest {
            incr: false,
            delta: 5,
            ..incr
        };
        assert!(matches!(
            s.arith(b"n", 1, decr),
            ArithOutcome::Value { value: 0, .. }
        ));
        // Shorter numbers keep the old length, padded with spaces.
        assert_eq!(
            value(&s, "n", 1).as_deref(),
            Some(&b"0                   "[..])
        );
        set(&s, "t", "abc", None, 1);
        assert_eq!(s.arith(b"t", 1, incr), ArithOutcome::NonNumeric);
        assert_eq!(s.arith(b"none", 1, incr), ArithOutcome::NotFound);
        let create = ArithRequest {
            create: Some((42, None)),
            ..incr
        };
        assert!(matches!(
            s.arith(b"none", 1, create),
            ArithOutcome::Value {
                value: 42,
                created: true,
                ..
            }
        ));
    }

    #[test]
    fn append_keeps_flags_and_needs_the_item() {
        let s = MemStore::new(1 << 20);
        let mut req = StoreRequest {
            key: b"k",
            value: IoBuf::from("tail"),
            flags: 99,
            exptime: None,
            mode: Mode::Append,
            cas: None,
            new_cas: None,
            invalidate: false,
            vivify: None,
        };
        assert_eq!(s.store(req.clone(), 1), StoreOutcome::NotStored);
        set(&s, "k", "head", None, 1);
        assert!(matches!(s.store(req.clone(), 1), StoreOutcome::Stored(_)));
        req.mode = Mode::Prepend;
        req.value = IoBuf::from(">");
        assert!(matches!(s.store(req, 1), StoreOutcome::Stored(_)));
        let v = s.get(b"k", 1, GetOptions::default()).unwrap();
        assert_eq!(v.value, b">headtail"[..]);
        assert_eq!(v.flags, 7);
    }
}
