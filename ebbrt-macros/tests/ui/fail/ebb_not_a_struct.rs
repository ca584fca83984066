use ebbrt_macros::ebb;

#[ebb(shared)]
enum Mode {
    Fast,
    Slow,
}

#[ebb(shared)]
union Bits {
    word: u64,
    bytes: [u8; 8],
}

#[ebb(per_core)]
fn counter() {}

fn main() {}
