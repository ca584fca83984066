//! `spawn_on_with` builds a `!Send` future on the target core, but the
//! closure that builds it travels there: it cannot hold this core's rep.
use std::cell::Cell;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::spawn_on_with;
use ebbrt_core::EbbRef;
use ebbrt_macros::ebb;

#[ebb(per_core, id = ids::app(1))]
#[derive(Default)]
struct Hits {
    n: Cell<u64>,
}

static HITS: EbbRef<Hits> = EbbRef::fixed();

async fn count_elsewhere() {
    let rep: &'static Hits = HITS.rep();
    spawn_on_with(CoreId(1), move || async move {
        rep.n.set(rep.n.get() + 1);
    })
    .await;
}

fn main() {
    let _ = count_elsewhere;
}
