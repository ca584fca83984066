//! Per-core Ebbs: one representative per core, created lazily, sharing a root.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{EbbError, EbbId, EbbRef, ids, root};
use crate::cpu::{self, CoreId, MAX_CORES};

/// An Ebb with one representative per core.
///
/// The implementing type *is* the representative. It is normally `!Sync`:
/// only its own core ever touches it, so it uses `Cell`/`RefCell`.
pub trait PerCore: super::Ebb {
    /// State shared by all of the Ebb's representatives (often `()`).
    type Root: Send + Sync + 'static;

    /// Builds the representative for `core`, on `core`, at its first use
    /// there.
    fn new_rep(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self;

    /// Builds the root of a well-known (fixed-id) instance at its first use.
    /// Ebbs created at run time with [`PerCore::create`] never call it; the
    /// default, `None`, makes a miss on an id without a root a clear panic.
    fn new_root() -> Option<Self::Root> {
        None
    }

    /// Creates a new instance of this Ebb under a freshly allocated id.
    fn create(root: Self::Root) -> Result<EbbRef<Self>, EbbError> {
        let id = ids::allocate()?;
        root::install(id, PerCoreRoot::<Self>::new(id, root))?;
        // SAFETY: `id` is fresh and now bound to a `PerCoreRoot<Self>`.
        Ok(unsafe { EbbRef::from_id(id) })
    }
}

/// The root of a per-core Ebb: its shared state and a directory of the reps
/// built so far, one slot per core.
pub struct PerCoreRoot<T: PerCore> {
    id: EbbId,
    data: T::Root,
    reps: Box<[AtomicPtr<T>]>,
}

// SAFETY: the root hands out `&T` for another core's rep only when `T: Sync`
// (`rep_on`, `reps`); otherwise reps are reached only on their own core (via
// the translation table or `gather`, which runs on that core).
unsafe impl<T: PerCore> Sync for PerCoreRoot<T> {}
// SAFETY: as above; the root holds pointers it never dereferences off-core
// unless `T: Sync`.
unsafe impl<T: PerCore> Send for PerCoreRoot<T> {}

impl<T: PerCore> PerCoreRoot<T> {
    fn new(id: EbbId, data: T::Root) -> Self {
        PerCoreRoot {
            id,
            data,
            reps: (0..MAX_CORES).map(|_| AtomicPtr::new(null_mut())).collect(),
        }
    }

    /// The Ebb's id.
    pub fn id(&self) -> EbbId {
        self.id
    }

    /// A reference to the Ebb this is the root of.
    pub fn ebb_ref(&self) -> EbbRef<T> {
        // SAFETY: this root is installed under `id` for type `T`.
        unsafe { EbbRef::from_id(self.id) }
    }

    /// The state shared by all representatives.
    pub fn data(&self) -> &T::Root {
        &self.data
    }

    /// The representative published in `slot`, or null (none yet, or
    /// being built on its core).
    fn published(slot: &AtomicPtr<T>) -> *mut T {
        let p = slot.load(Ordering::Acquire);
        if p == building() { null_mut() } else { p }
    }

    /// The cores on which a representative has been built so far.
    pub fn cores_with_reps(&self) -> impl Iterator<Item = CoreId> + '_ {
        self.reps
            .iter()
            .enumerate()
            .filter(|(_, p)| !Self::published(p).is_null())
            .map(|(i, _)| CoreId(i as u32))
    }

    /// The representative on `core`, if built. Only for `Sync` reps: a
    /// `!Sync` rep is reached from another core with [`Self::gather`].
    pub fn rep_on(&self, core: CoreId) -> Option<&T>
    where
        T: Sync,
    {
        let p = Self::published(self.reps.get(core.index())?);
        // SAFETY: published reps are leaked and never freed; `T: Sync`.
        unsafe { p.as_ref() }
    }

    /// Every representative built so far, with its core. Only for `Sync`
    /// reps (for example counters kept in relaxed atomics that only the
    /// owner writes).
    pub fn reps(&self) -> impl Iterator<Item = (CoreId, &T)> + '_
    where
        T: Sync,
    {
        self.reps.iter().enumerate().filter_map(|(i, slot)| {
            // SAFETY: published reps are leaked and never freed; `T: Sync`.
            let rep = unsafe { Self::published(slot).as_ref() }?;
            Some((CoreId(i as u32), rep))
        })
    }

    /// Runs `f` on every core that has a representative, on that core, and
    /// collects the results in core order. Works for `!Sync` reps: each
    /// call happens where the rep lives.
    pub async fn gather<R, F>(&'static self, f: F) -> Vec<(CoreId, R)>
    where
        F: Fn(&T) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let root: &'static Self = self;
        // Each call runs where its core's rep lives (`on_cores` builds
        // every future on its core).
        crate::exec::on_cores(self.cores_with_reps(), move |c| {
            core::future::ready((c, f(root.local_rep())))
        })
        .await
    }

    /// This core's representative, built on first use.
    ///
    /// # Panics
    /// If `new_rep` uses the Ebb itself (on this core, while building this
    /// core's rep).
    pub fn local_rep(&'static self) -> &'static T {
        let core = cpu::current();
        let slot = &self.reps[core.index()];
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() && p != building() {
            // SAFETY: this core's slot holds this core's leaked rep.
            return unsafe { &*p };
        }
        self.build_local_rep(core, slot, p)
    }

    #[cold]
    #[inline(never)]
    fn build_local_rep(&'static self, core: CoreId, slot: &AtomicPtr<T>, p: *mut T) -> &'static T {
        assert!(
            p.is_null(),
            "the {} rep for {core} used its own Ebb while being built: new_rep must not use its own Ebb",
            core::any::type_name::<T>()
        );
        // Only this core writes its slot: mark it while `new_rep` runs, so
        // that a re-entry is caught above instead of recursing, and clear
        // the mark if `new_rep` unwinds (hosted).
        slot.store(building(), Ordering::Relaxed);
        let unmark = Unmark(slot);
        let rep: &'static T = Box::leak(Box::new(T::new_rep(self, core)));
        core::mem::forget(unmark);
        slot.store(rep as *const T as *mut T, Ordering::Release);
        rep
    }
}

/// The value of a core's rep slot while its rep is being built: never the
/// address of a rep (not even a zero-sized one, which is its alignment),
/// never dereferenced.
fn building<T>() -> *mut T {
    core::ptr::without_provenance_mut(usize::MAX)
}

/// Clears a core's rep slot if `new_rep` unwinds.
struct Unmark<'a, T>(&'a AtomicPtr<T>);

impl<T> Drop for Unmark<'_, T> {
    fn drop(&mut self) {
        self.0.store(null_mut(), Ordering::Relaxed);
    }
}

pub(super) fn miss<T: PerCore>(id: EbbId) -> &'static T {
    root_of::<T>(id).local_rep()
}

/// The root of the per-core Ebb `id`, built (fixed ids) on first use.
pub(super) fn root_of<T: PerCore>(id: EbbId) -> &'static PerCoreRoot<T> {
    root::get_or_install(id, || match T::new_root() {
        Some(data) => PerCoreRoot::new(id, data),
        None => panic!(
            "{id} ({}) has no root: create it with PerCore::create, or give the Ebb a fixed id",
            core::any::type_name::<T>()
        ),
    })
}
