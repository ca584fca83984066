//! A per-core Ebb at a fixed id: its root is built at first use (by
//! `root_new`), each core builds its own representative (by `new`), and the
//! `!Sync` reps count without atomics.
#![deny(warnings, unsafe_code)]

#[path = "../support/mod.rs"]
#[allow(unsafe_code)] // the test runtime enters cores
mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::ebb::ids;
use ebbrt_core::{EbbKind, EbbRef, PerCoreRoot, StaticEbb, on_each_core, spawn_local};
use ebbrt_macros::ebb;

/// Counts hits on each core.
#[ebb(per_core, id = ids::app(1), root = AtomicU32, new = Counter::new, root_new = Counter::root)]
pub struct Counter {
    root: &'static PerCoreRoot<Counter>,
    core: CoreId,
    hits: Cell<u32>,
}

impl Counter {
    fn new(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        root.data().fetch_add(1, Ordering::Relaxed);
        Counter {
            root,
            core,
            hits: Cell::new(0),
        }
    }
    fn root() -> AtomicU32 {
        AtomicU32::new(100)
    }
    fn hit(&self) -> u32 {
        self.hits.set(self.hits.get() + 1);
        self.hits.get()
    }
}

/// A per-core Ebb at a fixed id whose root is `Default`.
#[ebb(per_core, id = ids::app(2), root = Vec<u8>)]
#[derive(Default)]
struct Plain {
    n: Cell<u8>,
}

static COUNTER: EbbRef<Counter> = EbbRef::fixed();
static PLAIN: EbbRef<Plain> = EbbRef::fixed();

fn main() {
    assert_eq!(<Counter as StaticEbb>::ID, ids::app(1));
    assert_eq!(COUNTER.id(), ids::app(1));
    support::run(2, || async {
        let seen = on_each_core(|core| async move {
            COUNTER.hit();
            (COUNTER.core, COUNTER.hit(), core)
        })
        .await;
        assert_eq!(seen, [(CoreId(0), 2, CoreId(0)), (CoreId(1), 2, CoreId(1))]);
        // One root, two reps built on it (100 + 2); this core's rep is cached.
        assert_eq!(COUNTER.hit(), 3);
        assert_eq!(COUNTER.root.data().load(Ordering::Relaxed), 102);
        assert_eq!(COUNTER.root.id(), ids::app(1));
        // A rep reference may be kept by work that stays on its core.
        let rep: &'static Counter = COUNTER.rep();
        assert_eq!(spawn_local(async move { rep.hit() }).await, 4);
        assert_eq!(cpu::current(), CoreId(0));
        let n = ebbrt_core::exec::spawn_on_with(CoreId(1), || async {
            PLAIN.n.set(PLAIN.n.get() + 1);
            PLAIN.n.get()
        })
        .await;
        assert_eq!(n, 1);
        let record = ebbrt_core::registry::find("Counter").unwrap();
        assert_eq!(record.kind, EbbKind::PerCore);
        assert_eq!(record.id, Some(ids::app(1)));
    });
}
