//! Shared Ebbs: one `Sync` instance for every core.

use super::{EbbError, EbbId, EbbRef, ids, root};

/// An Ebb with a single instance shared by every core.
pub trait Shared: super::Ebb + Sync {
    /// Builds the well-known (fixed-id) instance at its first use. Ebbs
    /// created at run time with [`Shared::create`] never call it.
    fn new_instance() -> Option<Self> {
        None
    }

    /// Creates a new instance of this Ebb under a freshly allocated id.
    fn create(instance: Self) -> Result<EbbRef<Self>, EbbError> {
        let id = ids::allocate()?;
        root::install(id, instance)?;
        // SAFETY: `id` is fresh and now bound to `Self`.
        Ok(unsafe { EbbRef::from_id(id) })
    }
}

pub(super) fn miss<T: Shared>(id: EbbId) -> &'static T {
    root::get_or_install(id, || match T::new_instance() {
        Some(t) => t,
        None => panic!(
            "{id} ({}) has no instance: create it with Shared::create, or give the Ebb a fixed id",
            core::any::type_name::<T>()
        ),
    })
}
