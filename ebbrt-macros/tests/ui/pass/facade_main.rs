//! `#[ebbrt::main]` through the facade: the main future runs on core 0 of a
//! hosted instance, may use `?`, and its `Ok` exits with 0.
#![deny(warnings)]

use ebbrt::cpu::{self, CoreId};

#[derive(Debug)]
struct NotCoreZero;

/// Runs on core 0.
#[ebbrt::main]
async fn main() -> Result<(), NotCoreZero> {
    check(cpu::current())?;
    Ok(())
}

fn check(core: CoreId) -> Result<(), NotCoreZero> {
    if core == CoreId(0) {
        Ok(())
    } else {
        Err(NotCoreZero)
    }
}
