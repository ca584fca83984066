//! `static_rep` serves a fixed-id Ebb's representatives, and an interface
//! implementation lives at the interface's id: both need `id`; `default`
//! marks what a facade feature selects by default, so it needs `feature`.
use ebbrt::{ebb, ebb::ids, interface};

#[interface(id = ids::app(40))]
pub trait Greets: Sync {
    fn hi(&self) -> u32;
}

#[ebb(shared, static_rep = get)]
pub struct NoId;

fn get() -> &'static NoId {
    &NoId
}

#[ebb(shared, interface = Greets)]
#[derive(Default)]
pub struct NoIdEither;

impl Greets for NoIdEither {
    fn hi(&self) -> u32 {
        1
    }
}

#[ebb(shared, id = ids::app(41), default)]
#[derive(Default)]
pub struct DefaultWithoutFeature;

fn main() {}
