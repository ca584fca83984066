//! `on_each_core` runs one closure on every core: it must not capture the
//! current core's rep (the closure is shared by all cores).
use std::cell::Cell;

use ebbrt_core::ebb::ids;
use ebbrt_core::{EbbRef, on_each_core};
use ebbrt_macros::ebb;

#[ebb(per_core, id = ids::app(1))]
#[derive(Default)]
struct Hits {
    n: Cell<u64>,
}

static HITS: EbbRef<Hits> = EbbRef::fixed();

async fn read_everywhere() {
    let rep: &'static Hits = HITS.rep();
    let counts = on_each_core(move |_| async move { rep.n.get() }).await;
    let _ = counts;
}

fn main() {
    let _ = read_everywhere;
}
