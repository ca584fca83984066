//! hello: the smallest EbbRT application that shows the Ebb model.
//!
//! A per-core Ebb, `Greeter`, has one representative on each core. Every
//! core greets through its own rep and bumps that rep's counter (with a
//! plain `Cell`: a rep never leaves its core, so no atomics), then `main`
//! sums the counters through the Ebb's root (which its `EbbRef` reaches),
//! visiting each rep on its own core. The same source builds hosted (`cargo run -p hello -- --cores
//! 4`) and natively.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::cell::Cell;

use ebbrt::EbbRef;
use ebbrt::cpu;
use ebbrt::ebb::ids;

/// Greets from its core, and counts what happened there.
#[ebbrt::ebb(per_core, id = ids::app(0))]
#[derive(Default)]
pub struct Greeter {
    count: Cell<u64>,
}

impl Greeter {
    fn greet(&self) {
        ebbrt::println!("hello from core {} of {}", cpu::current().0, cpu::count());
    }

    fn bump(&self) {
        self.count.set(self.count.get() + 1);
    }
}

/// The Greeter, at its well-known id.
static GREETER: EbbRef<Greeter> = EbbRef::fixed();

/// Core `i` bumps its counter `(i + 1) * BUMPS` times.
const BUMPS: u64 = 1000;

#[ebbrt::main]
async fn main() -> i32 {
    ebbrt::on_each_core(|core| async move {
        GREETER.greet();
        for i in 0..(u64::from(core.0) + 1) * BUMPS {
            GREETER.bump();
            // Let other work on this core run now and then.
            if i % 100 == 0 {
                ebbrt::exec::yield_now().await;
            }
        }
    })
    .await;

    let per_core = GREETER.root().gather(|rep| rep.count.get()).await;
    let total: u64 = per_core.iter().map(|(_, n)| n).sum();
    let n = cpu::count() as u64;
    let expected = BUMPS * n * (n + 1) / 2;
    ebbrt::println!("total {total} bumps from {} cores", per_core.len());
    if total == expected && per_core.len() as u64 == n {
        0
    } else {
        ebbrt::println!("expected {expected} bumps from {n} cores");
        1
    }
}
