//! The `Sync` requirement of a shared Ebb is the trait's, not the macro's.
use std::cell::Cell;

use ebbrt_core::{Ebb, EbbId, Shared, ebb::shared_miss};

struct Hits {
    n: Cell<u32>,
}

impl Shared for Hits {}

impl Ebb for Hits {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}

fn main() {}
