use ebbrt_macros::ebb;

#[ebb(shared, root = u32)]
struct Root;

#[ebb(shared, id = ebbrt_core::ebb::ids::app(1), root_new = make)]
#[derive(Default)]
struct RootNew;

fn make() -> u32 {
    0
}

fn main() {}
