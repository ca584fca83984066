//! A representative in static storage is not built: `new`/`root` do not
//! go with `static_rep`.
use ebbrt::{ebb, ebb::ids};

#[ebb(shared, id = ids::app(44), static_rep = get, new = Both::make)]
pub struct Both;

impl Both {
    fn make() -> Self {
        Both
    }
}

fn get() -> &'static Both {
    &Both
}

fn main() {}
