use ebbrt_macros::ebb;

#[ebb(per_core, size = 4)]
#[derive(Default)]
struct Unknown;

#[ebb(shared, id = ebbrt_core::ebb::ids::app(1), id = ebbrt_core::ebb::ids::app(2))]
#[derive(Default)]
struct DuplicateId;

#[ebb(per_core, root = u32, root = u64)]
#[derive(Default)]
struct DuplicateRoot;

#[ebb(per_core, id)]
#[derive(Default)]
struct IdWithoutValue;

#[ebb(per_core, feature = nic)]
#[derive(Default)]
struct FeatureNotAString;

#[ebb(per_core, feature = 3)]
#[derive(Default)]
struct FeatureANumber;

fn main() {}
