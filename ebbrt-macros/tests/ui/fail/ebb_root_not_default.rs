use ebbrt_macros::ebb;

struct Table {
    slots: Vec<u8>,
}

/// A fixed-id per-core Ebb builds its root at first use: by `root_new`, or
/// by `Default`, which `Table` is not.
#[ebb(per_core, id = ebbrt_core::ebb::ids::app(1), root = Table)]
#[derive(Default)]
struct Lookup;

fn main() {}
