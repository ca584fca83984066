use ebbrt_macros::ebb;

#[ebb]
#[derive(Default)]
struct NoArgs;

#[ebb(id = ebbrt_core::ebb::ids::app(1))]
#[derive(Default)]
struct IdOnly;

fn main() {}
