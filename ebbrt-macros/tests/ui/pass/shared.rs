//! Shared Ebbs: one `Sync` instance, at a fixed id (built by `new` or by
//! `Default`) or created at run time with `Shared::create`.
#![deny(warnings)]

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use ebbrt_core::cpu::CoreId;
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::spawn_on;
use ebbrt_core::{EbbKind, EbbRef, Shared, on_each_core};
use ebbrt_macros::ebb;

/// Hands out tickets, to every core, from one counter.
#[ebb(shared, id = ids::app(10), new = Tickets::start)]
pub struct Tickets {
    next: AtomicU64,
}

impl Tickets {
    fn start() -> Self {
        Tickets {
            next: AtomicU64::new(1000),
        }
    }
    fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// A fixed-id shared Ebb whose instance is `Default`.
#[ebb(shared, id = ids::app(11))]
#[derive(Default)]
struct Flags {
    on: std::sync::atomic::AtomicBool,
}

/// A shared Ebb made at run time.
#[ebb(shared)]
struct Greeting {
    text: &'static str,
}

static TICKETS: EbbRef<Tickets> = EbbRef::fixed();
static FLAGS: EbbRef<Flags> = EbbRef::fixed();

fn main() {
    support::run(3, || async {
        let mut got = on_each_core(|_| async { TICKETS.take() }).await;
        got.sort();
        assert_eq!(got, [1000, 1001, 1002]);
        // One instance: the same address on every core.
        let here = &*TICKETS as *const Tickets as usize;
        let there = spawn_on(CoreId(2), async { &*TICKETS as *const Tickets as usize }).await;
        assert_eq!(here, there);
        FLAGS.on.store(true, Ordering::Relaxed);
        assert!(spawn_on(CoreId(1), async { FLAGS.on.load(Ordering::Relaxed) }).await);
        let g = Greeting::create(Greeting { text: "hi" }).unwrap();
        assert_eq!(spawn_on(CoreId(1), async move { g.text }).await, "hi");
    });
    assert!(<Greeting as Shared>::new_instance().is_none());
    let r = ebbrt_core::registry::find("Tickets").unwrap();
    assert_eq!((r.kind, r.id), (EbbKind::Shared, Some(ids::app(10))));
    assert_eq!(ebbrt_core::registry::find("Greeting").unwrap().id, None);
}
