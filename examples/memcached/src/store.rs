//! The storage interface the protocol engine calls, and the types that
//! cross it. One operation per memcached primitive, each atomic on its
//! key, so that a concurrent table (an RCU hash table Ebb) can replace
//! [`MemStore`](crate::MemStore) without touching the protocols.
//!
//! Times are absolute Unix seconds; `exptime` is already resolved
//! ([`crate::clock::expiry`]), `None` meaning "never".

use ebbrt::IoBuf;

/// A stored item as a reader sees it: a snapshot, sharing the value's
/// bytes (cloning an [`IoBuf`] copies no bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemView {
    /// The value.
    pub value: IoBuf,
    /// The client's opaque 32-bit flags.
    pub flags: u32,
    /// When it expires (absolute Unix seconds), `None` never.
    pub exptime: Option<u64>,
    /// Its CAS unique.
    pub cas: u64,
    /// When it was last read or written, before this access.
    pub last_access: u64,
    /// Whether it had been read before this access.
    pub fetched: bool,
    /// Invalidated by a meta delete with `I`: still served, marked stale.
    pub stale: bool,
    /// What this access learnt about the right to recache it (meta `W`/`Z`).
    pub win: Win,
}

/// The meta protocol's recache token: who should refill an item.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Win {
    /// Nothing to say.
    #[default]
    None,
    /// This client won the right to recache (`W`).
    Won,
    /// Another client already won it (`Z`).
    Lost,
}

/// How a read treats the item.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// A new expiry time to set (gat, touch, meta `T`); `Some(None)` is
    /// "never".
    pub touch: Option<Option<u64>>,
    /// On a miss, create an empty item expiring at this time (meta `N`).
    pub vivify: Option<Option<u64>>,
    /// Win the recache token when fewer than this many seconds remain
    /// (meta `R`).
    pub recache_below: Option<u64>,
    /// Do not count this as an access (meta `u`, and meta `h`/`l` reads).
    pub no_bump: bool,
}

/// How a store combines the new value with what is there.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store unconditionally.
    Set,
    /// Only if the key is absent.
    Add,
    /// Only if the key is present.
    Replace,
    /// Add the value after the present one (keeps its flags and expiry).
    Append,
    /// Add the value before the present one.
    Prepend,
}

/// A store request.
#[derive(Clone, Debug)]
pub struct StoreRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: IoBuf,
    /// The client's flags.
    pub flags: u32,
    /// When it expires.
    pub exptime: Option<u64>,
    /// How it combines with what is there.
    pub mode: Mode,
    /// Store only if the present item's CAS unique is this (`cas`).
    pub cas: Option<u64>,
    /// The CAS unique to give the new item (meta `E`), instead of a fresh one.
    pub new_cas: Option<u64>,
    /// Meta `I`: when the compared CAS is older than the item's, store
    /// anyway and mark the new item stale instead of failing.
    pub invalidate: bool,
    /// For append/prepend on a miss: create the item expiring then (meta `N`).
    pub vivify: Option<Option<u64>>,
}

/// What a store did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored, with this CAS unique.
    Stored(u64),
    /// The mode's condition failed (add over a present key, replace,
    /// append or prepend of a missing one).
    NotStored,
    /// A CAS compare failed.
    Exists,
    /// A CAS compare on a missing key.
    NotFound,
    /// The item cannot fit in the memory limit even with everything else
    /// evicted.
    OutOfMemory,
}

/// How a delete works.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Only if the item's CAS unique is this.
    pub cas: Option<u64>,
    /// Meta `I`: mark the item stale (and give it this expiry) instead of
    /// removing it.
    pub invalidate: Option<Option<u64>>,
    /// Meta `x`: keep the item, empty its value and flags.
    pub clear_value: bool,
    /// The CAS unique to give the item when it is kept (meta `E`).
    pub new_cas: Option<u64>,
}

/// What a delete did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Removed (or, for `invalidate`/`clear_value`, changed).
    Deleted,
    /// No such key.
    NotFound,
    /// A CAS compare failed.
    Exists,
}

/// An increment or decrement.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArithRequest {
    /// Increment (wrapping at 2^64) or decrement (flooring at 0).
    pub incr: bool,
    /// By how much.
    pub delta: u64,
    /// On a miss, create the item with this value and expiry (binary
    /// protocol, meta `N`/`J`).
    pub create: Option<(u64, Option<u64>)>,
    /// Only if the item's CAS unique is this.
    pub cas: Option<u64>,
    /// Give the item this CAS unique (meta `E`).
    pub new_cas: Option<u64>,
    /// A new expiry time (meta `T`).
    pub touch: Option<Option<u64>>,
}

/// What an increment or decrement did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value and CAS unique; `created` when the item was missing
    /// and made from the initial value.
    Value {
        /// The new value.
        value: u64,
        /// The item's CAS unique.
        cas: u64,
        /// Made from the initial value, not changed.
        created: bool,
    },
    /// No such key (and nothing to create it from).
    NotFound,
    /// The value is not a decimal number below 2^64.
    NonNumeric,
    /// A CAS compare failed.
    Exists,
}

/// What a store knows about itself, for `stats`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items stored now.
    pub curr_items: u64,
    /// Items ever stored.
    pub total_items: u64,
    /// Bytes charged for the items stored now.
    pub bytes: u64,
    /// Items removed to make room.
    pub evictions: u64,
    /// Items that expired before being read again and were reclaimed.
    pub reclaimed: u64,
    /// The memory limit in bytes.
    pub limit_maxbytes: u64,
    /// Reads that found an expired item.
    pub get_expired: u64,
    /// Reads that found an item killed by `flush_all`.
    pub get_flushed: u64,
}

/// The storage behind the protocols. Every method is atomic on its key;
/// `now` is the current Unix time in seconds.
pub trait Store: Send + Sync {
    /// Reads `key` (and applies `opts`), or `None` on a miss.
    fn get(&self, key: &[u8], now: u64, opts: GetOptions) -> Option<ItemView>;
    /// Stores an item.
    fn store(&self, req: StoreRequest<'_>, now: u64) -> StoreOutcome;
    /// Deletes `key`.
    fn delete(&self, key: &[u8], now: u64, opts: DeleteOptions) -> DeleteOutcome;
    /// Increments or decrements `key`, a decimal number.
    fn arith(&self, key: &[u8], now: u64, req: ArithRequest) -> ArithOutcome;
    /// Sets `key`'s expiry; false on a miss.
    fn touch(&self, key: &[u8], now: u64, exptime: Option<u64>) -> bool;
    /// Invalidates every item stored at or before `at` once `at` has come
    /// (`flush_all [delay]`); `at <= now` flushes at once.
    fn flush(&self, now: u64, at: u64);
    /// Changes the memory limit (`cache_memlimit`), evicting to fit.
    fn set_limit(&self, bytes: u64);
    /// Counters for `stats`.
    fn stats(&self) -> StoreStats;
}
