//! # ebbrt-rcu-hashtable
//!
//! A concurrent hash table whose readers take no lock and write nothing:
//! [`RcuHashMap`]. A lookup is a hash, a bucket load and a walk of the
//! chain with acquire loads, inside an RCU read-side section (on a core,
//! simply the current poll of a task); it returns a clone of the value (an
//! `Arc`-like handle, e.g. `Arc<Item>` or an `IoBuf`) or runs a closure on
//! it in place. Writers are serialized by one lock per table and never
//! change a published entry: an update publishes a new node in the old
//! one's place and hands the old one to RCU, which frees it after a grace
//! period. Every write gives the entry a fresh version, so compare-and-swap
//! (memcached's `cas`) is a version check under the writer lock
//! ([`RcuHashMap::compare_and_swap`], or any read-modify-write with
//! [`RcuHashMap::update`]).
//!
//! The table grows (load above 1) and shrinks (below 1/4) by rebuilding its
//! bucket array over the same nodes: each node has two links, one per
//! generation of bucket array, so readers of the old array walk chains
//! that the resize does not touch; the old array is freed after a grace
//! period, and the next resize waits for that.
//!
//! What it owns: the map and a shared Ebb of it for byte-string keys and
//! [`IoBuf`] values ([`IoBufTable`], made at run time under a fresh id).
//! Its `unsafe` code is all in the `raw` module, each block with the
//! invariant it relies on. What it must not do: block a core (writers wait
//! only on the table's own lock, held for one update or one resize: an
//! `ebbrt_core::sync::Mutex`, which spins natively and, hosted, sleeps
//! after a while so that a holder Linux preempted gets the CPU), or free
//! anything a reader could still reach.
//!
//! Costs to know: a resize rehashes the whole table under the writer lock
//! (readers go on; writers on other cores wait), and a read guard held
//! across an `await` delays every grace period until it is dropped.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use ebbrt_core::ebb::{EbbError, Shared};
use ebbrt_core::iobuf::IoBuf;
use ebbrt_core::{EbbRef, ebb};
use ebbrt_rcu::{CoreRcu, Reclaim};

#[allow(unsafe_code)]
mod raw;

use raw::Table;

/// The hasher of a map unless told otherwise (`foldhash`, seeded per map).
pub type DefaultHasher = hashbrown::DefaultHashBuilder;

/// The fewest buckets a map shrinks to.
const MIN_BUCKETS: usize = 16;

/// A concurrent hash map with lock-free readers over RCU (see the crate
/// doc). `R` is the RCU it runs under: [`CoreRcu`] on EbbRT cores.
pub struct RcuHashMap<K, V, R: Reclaim = CoreRcu, S = DefaultHasher> {
    /// Shared with the callback that re-enables resizing (weakly).
    inner: Arc<Inner<K, V, R, S>>,
}

/// The map's state; callbacks reach it through a `Weak`.
struct Inner<K, V, R, S> {
    table: AtomicPtr<Table<K, V>>,
    writer: ebbrt_core::sync::Mutex<()>,
    len: AtomicUsize,
    versions: AtomicU64,
    /// False from a resize until the old bucket array is freed (I3).
    resizable: AtomicBool,
    min_buckets: usize,
    hasher: S,
    rcu: R,
    /// Owns nodes; `Send`/`Sync` are stated below.
    _owns: PhantomData<(Box<raw::Node<K, V>>, *const ())>,
}

// SAFETY: the map owns its nodes (so `K`, `V` must be `Send` to move with
// it) and holds no reference to thread-bound state beyond `R` and `S`.
#[allow(unsafe_code)]
unsafe impl<K: Send, V: Send, R: Reclaim + Send, S: Send> Send for RcuHashMap<K, V, R, S> {}
// SAFETY: shared, readers on any core get `&K`/`&V` (so `Sync`) and clones
// of `V`; a node can be freed on another core than the one that made it
// (so `Send`). Writers are serialized by the lock; readers follow the
// publication protocol of `raw`.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync, V: Send + Sync, R: Reclaim, S: Sync> Sync for RcuHashMap<K, V, R, S> {}

/// An entry as a reader or an updater sees it.
#[derive(Debug)]
pub struct Entry<'a, V> {
    /// The value.
    pub value: &'a V,
    /// Its version: unique to this write of this map.
    pub version: u64,
}

/// What [`RcuHashMap::update`] does with the key.
pub enum Action<V> {
    /// Leave the entry (or its absence) as it is.
    Keep,
    /// Store this value (under a new version).
    Set(V),
    /// Remove the entry.
    Remove,
}

/// Why a [`RcuHashMap::compare_and_swap`] did not store its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasError {
    /// The key has no entry.
    NotFound,
    /// The entry has another version (given).
    Changed(u64),
}

impl fmt::Display for CasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CasError::NotFound => f.write_str("no entry for the key"),
            CasError::Changed(v) => write!(f, "the entry changed (version {v})"),
        }
    }
}

impl<K, V> RcuHashMap<K, V, CoreRcu, DefaultHasher>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// An empty map on the cores' RCU.
    pub fn new() -> Self {
        Self::with_rcu(CoreRcu, DefaultHasher::default())
    }
}

impl<K, V> Default for RcuHashMap<K, V, CoreRcu, DefaultHasher>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, R, S> RcuHashMap<K, V, R, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    R: Reclaim + 'static,
    S: BuildHasher + 'static,
{
    /// An empty map under `rcu`, hashing with `hasher`.
    pub fn with_rcu(rcu: R, hasher: S) -> Self {
        Self::with_capacity_and_rcu(0, rcu, hasher)
    }

    /// An empty map under `rcu` with room for about `n` entries before it
    /// grows; it never shrinks below that.
    pub fn with_capacity_and_rcu(n: usize, rcu: R, hasher: S) -> Self {
        let buckets = n.max(MIN_BUCKETS).next_power_of_two();
        RcuHashMap {
            inner: Arc::new(Inner {
                table: AtomicPtr::new(Box::into_raw(Table::new(buckets, 0))),
                writer: ebbrt_core::sync::Mutex::new(()),
                len: AtomicUsize::new(0),
                versions: AtomicU64::new(1),
                resizable: AtomicBool::new(true),
                min_buckets: buckets,
                hasher,
                rcu,
                _owns: PhantomData,
            }),
        }
    }

    /// Entries in the map (a snapshot: writers may change it at once).
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether the map has no entry (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets of the current bucket array.
    pub fn buckets(&self) -> usize {
        let _g = self.inner.rcu.read_lock();
        self.inner.current().buckets()
    }

    /// Runs `f` on the entry for `key`, in place, inside a read-side
    /// section: no lock, no copy. `f` must not block.
    pub fn with<Q, T>(&self, key: &Q, f: impl FnOnce(Entry<'_, V>) -> T) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hash(key);
        let _g = self.inner.rcu.read_lock();
        let n = self.inner.current().find(hash, key)?;
        Some(f(Entry {
            value: &n.value,
            version: n.version,
        }))
    }

    /// A clone of the value for `key` (a handle, for `Arc`-like values).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with(key, |e| e.value.clone())
    }

    /// A clone of the value for `key` and its version.
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with(key, |e| (e.value.clone(), e.version))
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with(key, |_| ()).is_some()
    }

    /// A read-modify-write of `key` under the writer lock: `f` sees the
    /// entry (if any) and says what to do; returns `f`'s output and, when
    /// it stored a value, the new version. The base of every update below
    /// (memcached's add, replace, append, incr, cas ...). `f` must not
    /// block; the old value, if replaced or removed, is freed after a grace
    /// period.
    pub fn update<T>(
        &self,
        key: K,
        f: impl FnOnce(Option<Entry<'_, V>>) -> (Action<V>, T),
    ) -> (T, Option<u64>) {
        let hash = self.inner.hash(&key);
        let out = {
            let _w = self.inner.writer.lock();
            let table = self.inner.current();
            let slot = table.locate(hash, &key);
            let (action, out) = f(slot.node().map(|n| Entry {
                value: &n.value,
                version: n.version,
            }));
            let found = slot.node().is_some();
            match action {
                Action::Keep => (out, None),
                Action::Set(value) => {
                    let version = self.inner.versions.fetch_add(1, Ordering::Relaxed);
                    let old = slot.publish(hash, version, key, value);
                    raw::retire_node(old, |cb| self.inner.rcu.defer(cb));
                    if !found {
                        self.inner.len.fetch_add(1, Ordering::Relaxed);
                    }
                    (out, Some(version))
                }
                Action::Remove if found => {
                    raw::retire_node(slot.unlink(), |cb| self.inner.rcu.defer(cb));
                    self.inner.len.fetch_sub(1, Ordering::Relaxed);
                    (out, None)
                }
                Action::Remove => (out, None),
            }
        };
        self.inner.maybe_resize();
        out
    }

    /// Stores `value` for `key`; returns the new version and the value it
    /// replaced, if any.
    pub fn insert(&self, key: K, value: V) -> (u64, Option<V>)
    where
        V: Clone,
    {
        let (old, version) = self.update(key, |e| (Action::Set(value), e.map(|e| e.value.clone())));
        (version.expect("Set stores"), old)
    }

    /// Stores `value` only if `key` has no entry (memcached's `add`):
    /// the new version, or the value back.
    pub fn insert_new(&self, key: K, value: V) -> Result<u64, V> {
        let mut value = Some(value);
        let (_, version) = self.update(key, |e| match e {
            None => (Action::Set(value.take().expect("once")), ()),
            Some(_) => (Action::Keep, ()),
        });
        version.ok_or_else(|| value.take().expect("not stored"))
    }

    /// Stores `value` only if `key` has an entry (memcached's `replace`):
    /// the new version and the old value, or the value back.
    pub fn replace(&self, key: K, value: V) -> Result<(u64, V), V>
    where
        V: Clone,
    {
        let mut value = Some(value);
        let (old, version) = self.update(key, |e| match e {
            Some(e) => (
                Action::Set(value.take().expect("once")),
                Some(e.value.clone()),
            ),
            None => (Action::Keep, None),
        });
        match (version, old) {
            (Some(v), Some(old)) => Ok((v, old)),
            _ => Err(value.take().expect("not stored")),
        }
    }

    /// Stores `value` only if `key`'s entry still has version `expected`:
    /// the new version, or why not (the value is dropped).
    pub fn compare_and_swap(&self, key: K, expected: u64, value: V) -> Result<u64, CasError> {
        let (verdict, version) = self.update(key, |e| match e {
            None => (Action::Keep, Err(CasError::NotFound)),
            Some(e) if e.version != expected => (Action::Keep, Err(CasError::Changed(e.version))),
            Some(_) => (Action::Set(value), Ok(())),
        });
        verdict.map(|()| version.expect("Set stores"))
    }

    /// Removes the entry for `key`; returns its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.remove_if(key, |_| true)
    }

    /// Removes the entry for `key` if `f` says so (memcached's `delete`
    /// with a CAS, or an expired item); returns its value.
    pub fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(Entry<'_, V>) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.inner.hash(key);
        let out = {
            let _w = self.inner.writer.lock();
            let slot = self.inner.current().locate(hash, key);
            let n = slot.node()?;
            let entry = Entry {
                value: &n.value,
                version: n.version,
            };
            if !f(entry) {
                return None;
            }
            let old = n.value.clone();
            raw::retire_node(slot.unlink(), |cb| self.inner.rcu.defer(cb));
            self.inner.len.fetch_sub(1, Ordering::Relaxed);
            old
        };
        self.inner.maybe_resize();
        Some(out)
    }

    /// Removes every entry (memcached's `flush_all`); they are freed after
    /// a grace period.
    pub fn clear(&self) {
        {
            let _w = self.inner.writer.lock();
            for chain in self.inner.current().take_chains() {
                raw::retire_chain(chain, |cb| self.inner.rcu.defer(cb));
            }
            self.inner.len.store(0, Ordering::Relaxed);
        }
        self.inner.maybe_resize();
    }
}

impl<K, V, R, S> Inner<K, V, R, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    R: Reclaim + 'static,
    S: BuildHasher + 'static,
{
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The current table. Valid while the caller holds a read guard or the
    /// writer lock.
    #[allow(unsafe_code)]
    fn current(&self) -> &Table<K, V> {
        // SAFETY: `table` always points at the current table (I1); callers
        // hold a read guard or the writer lock for as long as they use the
        // borrow, which is tied to `&self`'s and goes no further than this
        // module's methods.
        unsafe { raw::table(self.table.load(Ordering::Acquire)) }
    }

    /// Grows above a load of 1, shrinks below 1/4 (not under the initial
    /// size), unless the previous resize's old array is still in use.
    fn maybe_resize(self: &Arc<Self>) {
        let len = self.len.load(Ordering::Relaxed);
        let buckets = {
            let _g = self.rcu.read_lock();
            self.current().buckets()
        };
        let want = if len > buckets {
            (len + 1).next_power_of_two()
        } else if len < buckets / 4 && buckets > self.min_buckets {
            (len * 2).next_power_of_two().max(self.min_buckets)
        } else {
            return;
        };
        if !self.resizable.load(Ordering::Acquire) {
            return;
        }
        let _w = self.writer.lock();
        // Checked again under the lock: another writer may have resized.
        if !self.resizable.load(Ordering::Acquire) {
            return;
        }
        let old = self.table.load(Ordering::Relaxed);
        if self.current().buckets() == want {
            return;
        }
        let new = Box::into_raw(self.current().rehash(want));
        self.resizable.store(false, Ordering::Relaxed);
        self.table.store(new, Ordering::Release);
        // After the grace period: resizing is safe again, and a resize that
        // writes asked for meanwhile happens then, not at the next write
        // (a burst of inserts followed by reads only must not leave the
        // table overloaded). Weak: the map may be gone by then.
        let map = Arc::downgrade(self);
        raw::retire_table(
            old,
            move || {
                if let Some(map) = map.upgrade() {
                    map.resizable.store(true, Ordering::Release);
                    map.maybe_resize();
                }
            },
            |cb| self.rcu.defer(cb),
        );
    }
}

impl<K, V, R, S> Drop for Inner<K, V, R, S> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer can use the map any more;
        // the table is the current one, from `Box::into_raw`. Old tables and
        // retired nodes belong to their RCU callbacks, not to the map.
        unsafe {
            raw::free_now(*self.table.get_mut());
        }
    }
}

impl<K, V, R: Reclaim, S> fmt::Debug for RcuHashMap<K, V, R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuHashMap")
            .field("len", &self.inner.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A table of byte-string keys to [`IoBuf`] values, as a shared Ebb made at
/// run time under a fresh id ([`IoBufTable::create`]); an [`RcuHashMap`]
/// over the cores' RCU, reached through [`IoBufTable::map`].
///
/// For a cache whose values are stored bytes (the original EbbRT-memcached
/// kept each item as one buffer: extras, key and value): a lookup hands out
/// a clone of the `IoBuf`, a reference count, never a copy of the bytes.
#[ebb(shared)]
pub struct IoBufTable {
    map: RcuHashMap<Box<[u8]>, IoBuf>,
}

impl IoBufTable {
    /// Makes a table under a fresh run-time id.
    pub fn create() -> Result<EbbRef<IoBufTable>, EbbError> {
        <IoBufTable as Shared>::create(IoBufTable {
            map: RcuHashMap::new(),
        })
    }

    /// The map.
    pub fn map(&self) -> &RcuHashMap<Box<[u8]>, IoBuf> {
        &self.map
    }
}

#[cfg(test)]
mod tests;
