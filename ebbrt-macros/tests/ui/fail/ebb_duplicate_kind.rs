use ebbrt_macros::ebb;

#[ebb(per_core, shared)]
#[derive(Default)]
struct Both;

#[ebb(shared, shared)]
struct Twice;

fn main() {}
