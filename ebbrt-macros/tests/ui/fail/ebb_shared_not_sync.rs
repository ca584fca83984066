use std::cell::Cell;

use ebbrt_macros::ebb;

/// One instance for every core, yet built of `Cell`s: refused.
#[ebb(shared)]
struct Hits {
    n: Cell<u32>,
}

fn main() {}
