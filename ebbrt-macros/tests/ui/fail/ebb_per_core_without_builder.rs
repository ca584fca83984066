use std::cell::Cell;

use ebbrt_macros::ebb;

/// Neither `new = ...` nor `#[derive(Default)]`: no way to build a rep.
#[ebb(per_core)]
struct Hits {
    n: Cell<u64>,
}

/// A fixed-id shared Ebb must be able to build its instance.
#[ebb(shared, id = ebbrt_core::ebb::ids::app(3))]
struct Config {
    verbose: bool,
}

fn main() {}
