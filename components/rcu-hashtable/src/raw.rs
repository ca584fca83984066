//! The table's memory: nodes and bucket arrays as raw pointers, published
//! with release stores and read with acquire loads. All `unsafe` code of the
//! crate is here.
//!
//! Invariants (the SAFETY comments name them):
//! - **I1 (live)**: a node or bucket array reachable from the map's current
//!   table, or from a table a read section began with, is allocated: it is
//!   freed only by a callback deferred through RCU after it became
//!   unreachable from the current table, so after every read section that
//!   could have reached it.
//! - **I2 (one writer)**: links (`next`, bucket heads, the table pointer)
//!   are written only under the map's writer lock, so a writer reads them
//!   without racing another writer.
//! - **I3 (two link sets)**: a node has two `next` links; a table uses the
//!   one named by its `link`. A resize threads the nodes through the other
//!   set for the new table, so readers of the old table walk links nobody
//!   changes; the next resize (which rewrites that set) waits until the old
//!   table's grace period is over (the map's `resizable` flag).
//! - **I4 (immutable nodes)**: a node's key, hash, version and value never
//!   change once published; an update publishes a new node in its place.

use alloc::boxed::Box;
use core::borrow::Borrow;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

/// An entry: key, value and version, never changed once published (I4).
pub(crate) struct Node<K, V> {
    next: [AtomicPtr<Node<K, V>>; 2],
    pub(crate) hash: u64,
    pub(crate) version: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// A bucket array; its chains run through the nodes' `next[link]`.
pub(crate) struct Table<K, V> {
    buckets: Box<[AtomicPtr<Node<K, V>>]>,
    link: usize,
}

/// Where a writer found (or did not find) a key: the link that points at
/// the node (a bucket head or a predecessor's `next`), and the node.
pub(crate) struct Slot<'t, K, V> {
    at: &'t AtomicPtr<Node<K, V>>,
    node: *mut Node<K, V>,
    bucket: &'t AtomicPtr<Node<K, V>>,
    link: usize,
}

impl<K, V> Table<K, V> {
    /// An empty table of `n` buckets (a power of two) chained through
    /// `next[link]`.
    pub(crate) fn new(n: usize, link: usize) -> Box<Table<K, V>> {
        debug_assert!(n.is_power_of_two());
        Box::new(Table {
            buckets: (0..n).map(|_| AtomicPtr::new(null_mut())).collect(),
            link,
        })
    }

    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    fn bucket(&self, hash: u64) -> &AtomicPtr<Node<K, V>> {
        &self.buckets[hash as usize & (self.buckets.len() - 1)]
    }

    /// Finds `key` for a reader. The result lives as long as the caller's
    /// read section, which the caller's borrow of `self` must not outlive.
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<&Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut p = self.bucket(hash).load(Ordering::Acquire);
        // SAFETY: I1 — the caller is in a read section that began with this
        // table, so every node reachable from it is allocated; the acquire
        // loads see the nodes' contents published with release (I4).
        while let Some(n) = unsafe { p.as_ref() } {
            if n.hash == hash && n.key.borrow() == key {
                return Some(n);
            }
            p = n.next[self.link].load(Ordering::Acquire);
        }
        None
    }

    /// Finds `key` for the writer (holding the writer lock, I2).
    pub(crate) fn locate<Q>(&self, hash: u64, key: &Q) -> Slot<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let bucket = self.bucket(hash);
        let mut at = bucket;
        loop {
            let p = at.load(Ordering::Relaxed);
            // SAFETY: I1 and I2 — nodes reachable from the current table
            // are allocated, and only this writer changes links.
            match unsafe { p.as_ref() } {
                None => break,
                Some(n) if n.hash == hash && n.key.borrow() == key => break,
                Some(n) => at = &n.next[self.link],
            }
        }
        Slot {
            at,
            node: at.load(Ordering::Relaxed),
            bucket,
            link: self.link,
        }
    }

    /// Unlinks every chain (writer lock held) and returns their heads, for
    /// [`retire_chain`].
    pub(crate) fn take_chains(&self) -> impl Iterator<Item = Chain<K, V>> + '_ {
        self.buckets.iter().filter_map(|b| {
            let head = b.swap(null_mut(), Ordering::AcqRel);
            (!head.is_null()).then_some(Chain {
                head,
                link: self.link,
            })
        })
    }

    /// Builds the table of `n` buckets holding every node of `self`, chained
    /// through the other link set (I3). Writer lock held; the caller
    /// publishes it with release, then retires `self` with
    /// [`retire_table`].
    pub(crate) fn rehash(&self, n: usize) -> Box<Table<K, V>> {
        let new = Table::new(n, 1 - self.link);
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Relaxed);
            // SAFETY: I1, I2 as in `locate`. Writing `next[new.link]` races
            // no reader: readers of `self` use `next[self.link]`, and the
            // table that used `new.link` before was retired a grace period
            // ago (I3). The stores become visible to readers through the
            // release store that publishes `new`.
            while let Some(n) = unsafe { p.as_ref() } {
                let next = n.next[self.link].load(Ordering::Relaxed);
                let head = new.bucket(n.hash);
                n.next[new.link].store(head.load(Ordering::Relaxed), Ordering::Relaxed);
                head.store(p, Ordering::Relaxed);
                p = next;
            }
        }
        new
    }
}

impl<'t, K, V> Slot<'t, K, V> {
    /// The node found, if any.
    pub(crate) fn node(&self) -> Option<&'t Node<K, V>> {
        // SAFETY: I1, I2 — found under the writer lock in the current table.
        unsafe { self.node.as_ref() }
    }

    /// Publishes a new node for `key` in place of the one found (or at the
    /// head of the bucket), returning the node it replaced, now unlinked,
    /// for [`retire_node`].
    pub(crate) fn publish(self, hash: u64, version: u64, key: K, value: V) -> *mut Node<K, V> {
        let new = Box::new(Node {
            next: [AtomicPtr::new(null_mut()), AtomicPtr::new(null_mut())],
            hash,
            version,
            key,
            value,
        });
        let old = self.node;
        let after = match self.node() {
            Some(n) => n.next[self.link].load(Ordering::Relaxed),
            None => self.bucket.load(Ordering::Relaxed),
        };
        new.next[self.link].store(after, Ordering::Relaxed);
        let new = Box::into_raw(new);
        if old.is_null() {
            self.bucket.store(new, Ordering::Release);
        } else {
            self.at.store(new, Ordering::Release);
        }
        old
    }

    /// Unlinks the node found (there must be one) and returns it, for
    /// [`retire_node`]. Readers standing on it still follow its link.
    pub(crate) fn unlink(self) -> *mut Node<K, V> {
        let n = self.node().expect("unlink: no node was found");
        self.at
            .store(n.next[self.link].load(Ordering::Relaxed), Ordering::Release);
        self.node
    }
}

/// The nodes of one unlinked chain.
pub(crate) struct Chain<K, V> {
    head: *mut Node<K, V>,
    link: usize,
}

/// Frees `node` once a grace period has passed (`defer` is RCU's).
pub(crate) fn retire_node<K: 'static, V: 'static>(
    node: *mut Node<K, V>,
    defer: impl FnOnce(Box<dyn FnOnce()>),
) {
    if node.is_null() {
        return;
    }
    defer(Box::new(move || {
        // SAFETY: I1 — `node` was unlinked from the current table before
        // this callback was deferred, so after the grace period no read
        // section can reach it, and no writer does; it came from
        // `Box::into_raw` and is freed once, here.
        drop(unsafe { Box::from_raw(node) });
    }));
}

/// Frees every node of `chain` once a grace period has passed.
pub(crate) fn retire_chain<K: 'static, V: 'static>(
    chain: Chain<K, V>,
    defer: impl FnOnce(Box<dyn FnOnce()>),
) {
    defer(Box::new(move || {
        let mut p = chain.head;
        while !p.is_null() {
            // SAFETY: I1 — the chain was unlinked from the current table
            // before this callback was deferred; its links are intact
            // (writers and resizes touch only nodes in the current table);
            // each node came from `Box::into_raw` and is freed once, here.
            let n = unsafe { Box::from_raw(p) };
            p = n.next[chain.link].load(Ordering::Relaxed);
        }
    }));
}

/// Frees the bucket array `table` (not its nodes, which the new table
/// holds) once a grace period has passed, then runs `done`.
pub(crate) fn retire_table<K: 'static, V: 'static>(
    table: *mut Table<K, V>,
    done: impl FnOnce() + 'static,
    defer: impl FnOnce(Box<dyn FnOnce()>),
) {
    defer(Box::new(move || {
        // SAFETY: I1 — a newer table was published before this callback was
        // deferred, so after the grace period no read section uses `table`;
        // it came from `Box::into_raw` and is freed once, here.
        drop(unsafe { Box::from_raw(table) });
        done();
    }));
}

/// Frees `table` and every node in it at once: the map is being dropped,
/// so nothing else can reach them.
///
/// # Safety
/// `table` came from `Box::into_raw`, is the map's current table, and no
/// read section or writer can use the map any more.
pub(crate) unsafe fn free_now<K, V>(table: *mut Table<K, V>) {
    // SAFETY: the caller's contract.
    let table = unsafe { Box::from_raw(table) };
    for b in table.buckets.iter() {
        let mut p = b.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: nodes of the current table, each from `Box::into_raw`,
            // reachable only from here (the caller's contract).
            let n = unsafe { Box::from_raw(p) };
            p = n.next[table.link].load(Ordering::Relaxed);
        }
    }
}

/// Borrows the table `p` points at for as long as the caller holds a read
/// section or the writer lock.
///
/// # Safety
/// `p` is the map's current table, loaded with acquire (a reader) or under
/// the writer lock, and the returned borrow does not outlive the read
/// section or the lock (I1).
pub(crate) unsafe fn table<'a, K, V>(p: *const Table<K, V>) -> &'a Table<K, V> {
    // SAFETY: the caller's contract.
    unsafe { &*p }
}
