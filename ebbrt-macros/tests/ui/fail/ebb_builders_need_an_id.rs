//! `root_new` and a shared `new` build what only a fixed-id Ebb builds
//! itself; without `id` they would never run.
use ebbrt_macros::ebb;

#[ebb(per_core, root = u32, root_new = zero)]
#[derive(Default)]
struct RunTimeRoot;

fn zero() -> u32 {
    0
}

#[ebb(shared, new = RunTimeShared::make)]
struct RunTimeShared;

impl RunTimeShared {
    fn make() -> Self {
        RunTimeShared
    }
}

fn main() {}
