//! The global map from an id to its Ebb's root (per-core) or instance
//! (shared). Consulted only on translation misses.
//!
//! # Building a fixed-id root exactly once
//!
//! Each id has one slot word in [`ROOTS`], in one of three states:
//!
//! - **empty** (null): no root;
//! - **being built** by one thread: the address of that thread's per-core
//!   block (`percore::local()`, unique among live threads and cores, and
//!   present on plain hosted threads too) with the low bit set;
//! - **installed**: a pointer to the leaked [`Entry`], never freed and never
//!   replaced.
//!
//! [`get_or_install`] — the miss path of a fixed-id Ebb — claims an empty
//! slot with one compare-exchange and runs the constructor; every other
//! thread that misses meanwhile spins (`spin_loop`) until the root is
//! published, then uses it. So a root is built once however many cores miss
//! together (a NIC probe never interleaves with another). The translation
//! table's fast path never sees the slot: only misses read it.
//!
//! What can go wrong while a root is being built:
//!
//! - **The constructor uses its own Ebb** (directly, or through another Ebb
//!   whose constructor does) on the same core or thread: the inner miss finds
//!   the slot claimed by its own thread and panics, naming the root type,
//!   instead of spinning forever.
//! - **The constructor panics.** Natively a panic ends the program. Hosted
//!   (unwinding), the claim is released on the way out: the slot is empty
//!   again, the panic reaches the thread that missed, and a thread that was
//!   waiting (or misses later) claims the slot and runs the constructor
//!   itself — like `OnceLock::get_or_init`, there is no poisoning.
//! - **A cycle across cores** (the constructor of A on one core waits for B
//!   while the constructor of B on another waits for A) spins forever; it is
//!   not detected. Constructors should not wait for other cores.
//!
//! A constructor may allocate while it holds its claim: the allocator Ebbs
//! are static instances whose miss paths never come here, so an allocation
//! never waits for a claim. (An allocator that, under its own lock, used an
//! Ebb whose root might not be built yet could wait for a constructor that
//! waits for that lock; none does.)

use alloc::boxed::Box;
use core::any::{Any, type_name};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{EbbError, EbbId, TABLE_SIZE};

struct Entry {
    root: Box<dyn Any + Sync>,
    type_name: &'static str,
}

/// The slots, by id: null, a claim (odd: a thread's token), or an entry.
static ROOTS: [AtomicPtr<Entry>; TABLE_SIZE] = [const { AtomicPtr::new(null_mut()) }; TABLE_SIZE];

/// The low bit of a slot that is being built (an `Entry` is 8-aligned, a
/// per-core block too, so neither has it set).
const CLAIMED: usize = 1;

/// The calling thread's claim value: its per-core block's address, tagged.
/// It is never dereferenced.
fn my_claim() -> *mut Entry {
    let block = crate::percore::local() as *const crate::percore::CoreLocal;
    core::ptr::without_provenance_mut(block.addr() | CLAIMED)
}

/// The entry in a slot value, if it is one (not empty, not a claim).
fn entry(p: *mut Entry) -> Option<&'static Entry> {
    if p.addr() & CLAIMED != 0 {
        return None;
    }
    // SAFETY: an untagged non-null slot value is a leaked `Entry`, published
    // with release ordering (read here after an acquire load) and never freed.
    unsafe { p.as_ref() }
}

fn downcast<R: Any + Sync>(id: EbbId, e: &'static Entry) -> &'static R {
    let any: &'static dyn Any = &*e.root;
    match any.downcast_ref::<R>() {
        Some(r) => r,
        None => panic!(
            "{id} holds a `{}` but was used as `{}`: two Ebb types share one id",
            e.type_name,
            type_name::<R>()
        ),
    }
}

fn new_entry<R: Any + Sync>(root: R) -> *mut Entry {
    Box::into_raw(Box::new(Entry {
        root: Box::new(root),
        type_name: type_name::<R>(),
    }))
}

/// The root installed under `id`, if any (`None` also while one is being
/// built).
pub(crate) fn get<R: Any + Sync>(id: EbbId) -> Option<&'static R> {
    let e = entry(ROOTS[id.index()].load(Ordering::Acquire))?;
    Some(downcast(id, e))
}

/// Installs `root` under `id`: fails if the id has a root or one is being
/// built.
pub(crate) fn install<R: Any + Sync>(id: EbbId, root: R) -> Result<&'static R, EbbError> {
    let entry = new_entry(root);
    match ROOTS[id.index()].compare_exchange(null_mut(), entry, Ordering::AcqRel, Ordering::Acquire)
    {
        // SAFETY: we just published the leaked entry.
        Ok(_) => Ok(downcast(id, unsafe { &*entry })),
        Err(_) => {
            // SAFETY: the entry was never published; we still own it.
            drop(unsafe { Box::from_raw(entry) });
            Err(EbbError::IdInUse(id))
        }
    }
}

/// The root under `id`, built with `make()` if there is none. However many
/// threads call this at once for one id, `make` runs on one of them, once
/// (unless it panics: see the module documentation); the others wait for
/// its root.
///
/// # Panics
/// If `make` (on this thread) calls this for the same `id` again, and with
/// whatever `make` panics with.
pub(crate) fn get_or_install<R: Any + Sync>(id: EbbId, make: impl FnOnce() -> R) -> &'static R {
    match get(id) {
        Some(r) => r,
        None => build(id, make),
    }
}

/// Releases a claim if its constructor unwinds.
struct Claim(&'static AtomicPtr<Entry>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.store(null_mut(), Ordering::Release);
    }
}

#[cold]
#[inline(never)]
fn build<R: Any + Sync>(id: EbbId, make: impl FnOnce() -> R) -> &'static R {
    let slot = &ROOTS[id.index()];
    let me = my_claim();
    loop {
        match slot.compare_exchange_weak(null_mut(), me, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(p) if p == me => panic!(
                "{id}: building its `{}` used the Ebb itself, on the same thread: \
                 a root's constructor must not use its own Ebb",
                type_name::<R>()
            ),
            Err(p) => {
                if let Some(e) = entry(p) {
                    return downcast(id, e);
                }
                // Being built elsewhere (or a spurious failure): wait until
                // the slot changes, reading only.
                while !p.is_null() && slot.load(Ordering::Acquire) == p {
                    core::hint::spin_loop();
                }
            }
        }
    }
    // The slot is ours: no one else writes it until we publish or release.
    let claim = Claim(slot);
    let entry = new_entry(make());
    core::mem::forget(claim);
    slot.store(entry, Ordering::Release);
    // SAFETY: we just published the leaked entry.
    downcast(id, unsafe { &*entry })
}
