use ebbrt_macros::ebb;

struct Put;

#[ebb(shared, id = ebbrt_core::ebb::ids::app(1), distributed(Put))]
#[derive(Default)]
struct SharedDistributed;

#[ebb(per_core, distributed(Put))]
#[derive(Default)]
struct NoId;

#[ebb(per_core, id = ebbrt_core::ebb::ids::app(2), distributed())]
#[derive(Default)]
struct NothingServed;

#[ebb(per_core, id = ebbrt_core::ebb::ids::app(3), distributed(Put))]
#[derive(Default)]
struct NoMessenger;

fn main() {}
