use ebbrt_macros::ebb;

#[ebb(percore)]
#[derive(Default)]
struct Counter;

fn main() {}
