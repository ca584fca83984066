//! replace: an application that brings its own console and
//! general-purpose allocator (src/lib.rs) instead of the framework's.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::vec::Vec;

#[global_allocator]
static GLOBAL: replace::Global = replace::Global::new();

#[ebbrt::main]
async fn main() {
    let squares: Vec<u64> = (0..1000).map(|i| i * i).collect();
    ebbrt::println!(
        "replace: {} squares summing to {}, through my own console and allocator",
        squares.len(),
        squares.iter().sum::<u64>()
    );
}
