//! The global map from an id to its Ebb's root (per-core) or instance
//! (shared). Consulted only on translation misses.

use alloc::boxed::Box;
use core::any::{Any, type_name};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{EbbError, EbbId, TABLE_SIZE};

struct Entry {
    root: Box<dyn Any + Sync>,
    type_name: &'static str,
}

static ROOTS: [AtomicPtr<Entry>; TABLE_SIZE] = [const { AtomicPtr::new(null_mut()) }; TABLE_SIZE];

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

/// The root installed under `id`, if any.
pub(crate) fn get<R: Any + Sync>(id: EbbId) -> Option<&'static R> {
    let p = ROOTS[id.index()].load(Ordering::Acquire);
    // SAFETY: non-null entries are leaked boxes, never freed.
    let e = unsafe { p.as_ref() }?;
    Some(downcast(id, e))
}

/// Installs `root` under `id`.
pub(crate) fn install<R: Any + Sync>(id: EbbId, root: R) -> Result<&'static R, EbbError> {
    let entry = Box::into_raw(Box::new(Entry {
        root: Box::new(root),
        type_name: type_name::<R>(),
    }));
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

/// The root under `id`, installing `make()` if there is none. When two cores
/// race, one root wins and both get it.
pub(crate) fn get_or_install<R: Any + Sync>(id: EbbId, make: impl FnOnce() -> R) -> &'static R {
    if let Some(r) = get(id) {
        return r;
    }
    match install(id, make()) {
        Ok(r) => r,
        Err(_) => get(id).expect("root vanished"),
    }
}
