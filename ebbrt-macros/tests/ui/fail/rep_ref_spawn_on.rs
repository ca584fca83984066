//! A per-core representative cannot be carried to another core: it is
//! `!Sync`, so a reference to it is `!Send`, and `spawn_on` needs `Send`.
use std::cell::Cell;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::spawn_on;
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
    spawn_on(CoreId(1), async move {
        rep.n.set(rep.n.get() + 1);
    })
    .await;
}

fn main() {
    let _ = count_elsewhere;
}
