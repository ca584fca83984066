//! Elastic Building Blocks.
//!
//! An Ebb is a component object named by an [`EbbId`] and reached through an
//! [`EbbRef`]. Dereferencing an `EbbRef` yields the *representative* (rep)
//! of the Ebb on the current core: the fast path is one load from this core's
//! translation table and a null check. On a miss the Ebb type's
//! [`Ebb::miss`] finds or builds the rep, which is then cached.
//!
//! Two kinds exist (see [`EbbKind`]):
//! - **per-core** ([`PerCore`]): one rep per core, created lazily on first
//!   use on that core, all sharing one [`PerCoreRoot`]. Reps are normally
//!   `!Sync` (they use `Cell`/`RefCell`), and the type system keeps a
//!   reference to one on its core.
//! - **shared** ([`Shared`]): one `Sync` instance used by every core.
//!
//! System components have well-known ids ([`ids`]); applications allocate
//! ids at run time from the [`ids::IdAllocator`] Ebb, itself an Ebb.

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;

mod interface;
mod per_core;
mod root;
mod shared;

pub mod ids;

pub(crate) use interface::IdName;
pub use interface::{BindError, Binding, Interface, binding, bound};
pub use per_core::{PerCore, PerCoreRoot};
pub use shared::Shared;

/// Number of entries in each core's translation table: every [`EbbId`] is
/// below this.
pub const TABLE_SIZE: usize = 4096;

/// The name of an Ebb: a small integer, an index into each core's
/// translation table.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct EbbId(u32);

impl EbbId {
    /// The id `raw`.
    ///
    /// # Panics
    /// If `raw` is not below [`TABLE_SIZE`] (at compile time in a `const`).
    pub const fn new(raw: u32) -> Self {
        assert!((raw as usize) < TABLE_SIZE, "EbbId out of range");
        EbbId(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// The raw value as a table index.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for EbbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EbbId({})", self.0)
    }
}

impl fmt::Display for EbbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ebb#{}", self.0)
    }
}

/// How an Ebb distributes itself over cores.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EbbKind {
    /// One representative per core, created lazily, sharing a root.
    PerCore,
    /// One `Sync` instance shared by every core.
    Shared,
}

/// Errors of the Ebb model.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EbbError {
    /// Every run-time id is in use.
    IdsExhausted,
    /// A root is already installed under this id.
    IdInUse(EbbId),
}

impl fmt::Display for EbbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EbbError::IdsExhausted => write!(
                f,
                "no free EbbId: all {} run-time ids are allocated",
                TABLE_SIZE - ids::FIRST_DYNAMIC as usize
            ),
            EbbError::IdInUse(id) => write!(f, "{id} already has a root installed"),
        }
    }
}

impl core::error::Error for EbbError {}

/// A type that can be the representative of an Ebb.
///
/// Usually implemented by `#[ebb(per_core)]`/`#[ebb(shared)]`; by hand, an
/// implementation forwards to [`PerCore`] or [`Shared`]:
///
/// ```
/// # use ebbrt_core::{Ebb, EbbId, Shared};
/// struct Config { verbose: bool }
/// impl Shared for Config {}
/// impl Ebb for Config {
///     fn miss(id: EbbId) -> &'static Self { ebbrt_core::ebb::shared_miss(id) }
/// }
/// ```
pub trait Ebb: Sized + 'static {
    /// Called on a translation miss for `id` on the current core: returns
    /// this core's representative, building it (and the root) if needed.
    /// The caller caches the result in the core's translation table.
    fn miss(id: EbbId) -> &'static Self;
}

/// An Ebb type bound to one well-known id, fixed at compile time.
///
/// # Safety
/// No other type may use `ID`: the translation table caches a pointer to
/// this type under it. `#[ebb(..., id = ...)]` implements this trait and
/// registers the id, and runtimes refuse to start when two registered
/// components claim one id ([`crate::registry::check_static_ids`]).
pub unsafe trait StaticEbb: Ebb {
    /// The well-known id.
    const ID: EbbId;
}

/// A typed reference to an Ebb: `Copy`, one id wide, usable in a `static`.
///
/// Dereferencing gives the current core's representative.
pub struct EbbRef<T> {
    id: EbbId,
    // `fn() -> T`: an `EbbRef` is a name, `Send + Sync` whatever `T` is.
    _ty: PhantomData<fn() -> T>,
}

impl<T> Clone for EbbRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for EbbRef<T> {}

impl<T> PartialEq for EbbRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<T> Eq for EbbRef<T> {}

impl<T> fmt::Debug for EbbRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EbbRef<{}>({})", core::any::type_name::<T>(), self.id.0)
    }
}

impl<T: StaticEbb> EbbRef<T> {
    /// The reference to `T`'s well-known instance.
    pub const fn fixed() -> Self {
        EbbRef {
            id: T::ID,
            _ty: PhantomData,
        }
    }
}

impl<T: Ebb> EbbRef<T> {
    /// A reference from a raw id.
    ///
    /// # Safety
    /// `id` must name an Ebb whose representatives are of type `T` (it was
    /// obtained from an `EbbRef<T>`), or be unused by any other type.
    pub const unsafe fn from_id(id: EbbId) -> Self {
        EbbRef {
            id,
            _ty: PhantomData,
        }
    }

    /// The id.
    pub const fn id(self) -> EbbId {
        self.id
    }

    /// This core's representative.
    #[inline(always)]
    pub fn rep(&self) -> &T {
        self.get()
    }

    /// This core's representative, as `'static` (a representative lives as
    /// long as the program; a `!Sync` one is still `!Send` behind the
    /// reference, so it stays on this core).
    #[inline(always)]
    pub fn get(self) -> &'static T {
        match self.cached_rep() {
            Some(r) => r,
            None => miss::<T>(self.id),
        }
    }

    /// This core's representative if this core's translation table already
    /// holds it, without ever running the miss path: `None` on a miss and
    /// on a thread that is not an EbbRT core. For fast paths that must stay
    /// small and call-free (the allocators); they fall back to [`Self::rep`].
    #[inline(always)]
    pub fn cached_rep(&self) -> Option<&'static T> {
        let p = crate::percore::table_get(self.id);
        // SAFETY: only `miss` fills this entry, with a `&'static T` built by
        // `T::miss` for this very id; ids are bound to one type (see
        // `StaticEbb` and `from_id`).
        (!p.is_null()).then(|| unsafe { &*(p as *const T) })
    }
}

impl<T: PerCore> EbbRef<T> {
    /// The Ebb's root: the state its representatives share and the
    /// directory of the representatives built so far (to sum a counter
    /// across cores, say). Built on first use, like a miss would, so a
    /// representative need not keep a pointer to it (and can be
    /// `#[derive(Default)]`).
    pub fn root(self) -> &'static PerCoreRoot<T> {
        per_core::root_of(self.id)
    }
}

#[cold]
#[inline(never)]
fn miss<T: Ebb>(id: EbbId) -> &'static T {
    crate::cpu::current();
    let rep = T::miss(id);
    crate::percore::table_set(id, rep as *const T as *const ());
    rep
}

impl<T: Ebb> Deref for EbbRef<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        self.rep()
    }
}

/// The miss handler of a per-core Ebb, for hand-written [`Ebb`] impls.
pub fn per_core_miss<T: PerCore>(id: EbbId) -> &'static T {
    per_core::miss(id)
}

/// The miss handler of a shared Ebb, for hand-written [`Ebb`] impls.
pub fn shared_miss<T: Shared>(id: EbbId) -> &'static T {
    shared::miss(id)
}

#[cfg(test)]
mod tests;
