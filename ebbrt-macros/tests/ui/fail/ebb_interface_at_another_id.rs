//! An implementation must sit at the id its interface names, and must
//! implement the interface's trait.
use ebbrt::{ebb, ebb::ids, interface};

#[interface(id = ids::app(42))]
pub trait Greets: Sync {
    fn hi(&self) -> u32;
}

#[ebb(shared, id = ids::app(43), interface = Greets)]
#[derive(Default)]
pub struct WrongId;

impl Greets for WrongId {
    fn hi(&self) -> u32 {
        1
    }
}

#[ebb(shared, id = ids::app(42), interface = Greets)]
#[derive(Default)]
pub struct DoesNotImplement;

fn main() {}
