//! An interface, an implementation in static storage, and one built on
//! first use; both reached through the interface's binding.
use core::sync::atomic::{AtomicU32, Ordering};

use ebbrt::ebb::{Interface, binding, ids};
use ebbrt::{ebb, interface};

/// Counts.
#[interface(id = ids::app(45))]
pub trait Counter: Sync {
    /// Adds one; returns the new count.
    fn bump(&self) -> u32;
}

/// In static storage.
#[ebb(shared, id = ids::app(45), interface = Counter, static_rep = get, feature = "static-counter", default)]
pub struct StaticCounter {
    n: AtomicU32,
}

static INSTANCE: StaticCounter = StaticCounter {
    n: AtomicU32::new(0),
};

fn get() -> &'static StaticCounter {
    &INSTANCE
}

impl Counter for StaticCounter {
    fn bump(&self) -> u32 {
        self.n.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn main() {
    let b = binding::<dyn Counter>().unwrap();
    assert_eq!((b.component, b.crate_name), ("StaticCounter", "ebbrt-macros-tests"));
    // Off any core, a static representative is still reached.
    assert_eq!((b.get)().bump(), 1);
    assert_eq!((b.get)().bump(), 2);
    assert!(<dyn Counter as Interface>::NAME.ends_with("::Counter"));
    let r = ebbrt::registry::find("StaticCounter").unwrap();
    assert_eq!(r.interface, <dyn Counter as Interface>::NAME);
    assert_eq!((r.feature, r.default), (Some("static-counter"), true));
    assert_eq!(r.id, Some(ids::app(45)));
}
