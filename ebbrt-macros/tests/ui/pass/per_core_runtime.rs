//! Per-core Ebbs without a fixed id, created at run time with
//! `PerCore::create`: several instances of one type, each with its root.
#![deny(warnings)]

#[path = "../support/mod.rs"]
mod support;

use std::cell::RefCell;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::{EbbRef, PerCore, PerCoreRoot, StaticEbb as _, on_each_core};
use ebbrt_macros::ebb;

/// A log per core, tagged with its instance's name (the root).
#[ebb(per_core, root = String, new = Log::new)]
struct Log {
    tag: String,
    lines: RefCell<Vec<String>>,
}

impl Log {
    fn new(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        Log {
            tag: format!("{}@{}", root.data(), core.0),
            lines: RefCell::new(Vec::new()),
        }
    }
}

/// Reps built with `Default`, root `()`.
#[ebb(per_core)]
#[derive(Debug, Default)]
struct Scratch {
    used: std::cell::Cell<bool>,
}

/// `Default` derived above the attribute, for a fixed-id Ebb.
#[derive(Default)]
#[ebb(per_core, id = ebbrt_core::ebb::ids::app(5))]
struct Above {
    n: std::cell::Cell<u32>,
}

/// `Default` implemented by hand.
#[ebb(per_core)]
struct ByHand {
    n: u32,
}

impl Default for ByHand {
    fn default() -> Self {
        ByHand { n: 7 }
    }
}

fn main() {
    support::run(2, || async {
        let a: EbbRef<Log> = Log::create("a".to_string()).unwrap();
        let b = Log::create("b".to_string()).unwrap();
        assert_ne!(a.id(), b.id());
        a.lines.borrow_mut().push("one".into());
        let tags =
            on_each_core(
                move |_| async move { (a.tag.clone(), b.tag.clone(), a.lines.borrow().len()) },
            )
            .await;
        assert_eq!(
            tags,
            [
                ("a@0".to_string(), "b@0".to_string(), 1),
                ("a@1".to_string(), "b@1".to_string(), 0)
            ]
        );
        let s = Scratch::create(()).unwrap();
        assert!(!s.used.replace(true));
        assert!(s.used.get());
        let above: EbbRef<Above> = EbbRef::fixed();
        above.n.set(3);
        assert_eq!(above.n.get(), 3);
        assert_eq!(ByHand::create(()).unwrap().n, 7);
    });
    // Without an id there is no `StaticEbb` impl and no root to build.
    assert!(<Log as PerCore>::new_root().is_none());
    let record = ebbrt_core::registry::find("Log").unwrap();
    assert_eq!(record.id, None);
    let _ = <ebbrt_core::ebb::ids::IdAllocator>::ID;
}
