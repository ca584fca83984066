//! Interfaces: the contract of a system service that has alternatives.
//!
//! A service that can be swapped (the console, the general-purpose
//! allocator, the event loop's idle policy, ...) is reached through a trait
//! owned by the crate that defines the service's contract, declared with
//! `#[interface(id = ...)]`. The attribute gives the trait a well-known
//! [`EbbId`] and a link-time list of [`Binding`]s. An implementation is an
//! Ebb at that id declared with `#[ebb(..., interface = path::Trait)]`,
//! which leaves one `Binding` in the list: whatever crate defines it, the
//! code that uses the service finds it with [`bound`], without naming it.
//!
//! An image links exactly one implementation of each interface it uses:
//! none is [`BindError::Unbound`], two are [`BindError::Twice`] (both
//! claimants named), and runtimes check both before any core starts.

use core::fmt;

use super::{EbbId, ids};

/// One implementation of the interface `I` (a `dyn Trait` type), left in
/// the interface's link-time list by `#[ebb(..., interface = ...)]`.
pub struct Binding<I: ?Sized + 'static> {
    /// The implementing Ebb type's name.
    pub component: &'static str,
    /// The crate that defines it.
    pub crate_name: &'static str,
    /// The implementation on the calling core: its representative, as the
    /// interface's trait object.
    pub get: fn() -> &'static I,
}

/// A trait-object type that names an interface (`dyn Console`):
/// implemented by `#[interface(id = ...)]` on the trait.
pub trait Interface: 'static {
    /// The well-known id every implementation lives at.
    const ID: EbbId;
    /// The trait's full path (`ebbrt_core::console::Console`).
    const NAME: &'static str;
    /// Every implementation linked into this image (one, normally).
    fn bindings() -> &'static [Binding<Self>];
}

/// Why an interface has no single implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindError {
    /// No linked component implements the interface.
    Unbound {
        /// The interface's path.
        interface: &'static str,
        /// Its well-known id.
        id: EbbId,
    },
    /// Two linked components implement it.
    Twice {
        /// The interface's path.
        interface: &'static str,
        /// Its well-known id.
        id: EbbId,
        /// One claimant: `Type (crate)`.
        first: (&'static str, &'static str),
        /// The other.
        second: (&'static str, &'static str),
    },
}

/// Writes `NAME (n)` for a well-known id, `ebb#n` otherwise.
pub(crate) struct IdName(pub(crate) EbbId);

impl fmt::Display for IdName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ids::name(self.0) {
            Some(n) => write!(f, "{n} ({})", self.0.raw()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BindError::Unbound { interface, id } => write!(
                f,
                "no component implements {interface} at {}: enable the `ebbrt` feature that \
                 selects one, or declare your own with #[ebb(..., interface = {interface})]",
                IdName(id)
            ),
            BindError::Twice {
                interface,
                id,
                first,
                second,
            } => write!(
                f,
                "{interface} at {} is implemented by both {} ({}) and {} ({}): link one \
                 (turn the other's `ebbrt` feature off)",
                IdName(id),
                first.0,
                first.1,
                second.0,
                second.1
            ),
        }
    }
}

impl core::error::Error for BindError {}

/// The one binding of interface `I`, or why there is not exactly one.
pub fn binding<I: ?Sized + Interface>() -> Result<&'static Binding<I>, BindError> {
    match I::bindings() {
        [one] => Ok(one),
        [] => Err(BindError::Unbound {
            interface: I::NAME,
            id: I::ID,
        }),
        [a, b, ..] => Err(BindError::Twice {
            interface: I::NAME,
            id: I::ID,
            first: (a.component, a.crate_name),
            second: (b.component, b.crate_name),
        }),
    }
}

/// The implementation of interface `I` on the calling core.
#[inline]
pub fn bound<I: ?Sized + Interface>() -> Result<&'static I, BindError> {
    binding::<I>().map(|b| (b.get)())
}
