//! The application's own console and allocator are the live ones, hosted
//! (`cargo test` in this directory) and natively (`cargo ebbrt test`).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use ebbrt::console::Console;
use ebbrt::ebb::binding;
use ebbrt::memory::GeneralPurposeAllocator;
use ebbrt::registry;
use replace::{ArenaAllocator, TallyConsole};

#[global_allocator]
static GLOBAL: replace::Global = replace::Global::new();

fn is(what: &str, got: (&str, &str), want: (&str, &str)) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: bound to {got:?}, expected {want:?}"))
    }
}

#[ebbrt::test]
fn the_console_is_the_application_s() -> Result<(), String> {
    let b = binding::<dyn Console>().map_err(|e| format!("{e}"))?;
    is(
        "console",
        (b.component, b.crate_name),
        ("TallyConsole", "replace"),
    )?;
    let before = ebbrt::EbbRef::<TallyConsole>::fixed().bytes();
    ebbrt::println!("printed through the application's console");
    let after = ebbrt::EbbRef::<TallyConsole>::fixed().bytes();
    if after <= before {
        return Err(format!(
            "println! did not reach it ({before} -> {after} bytes)"
        ));
    }
    // The framework's consoles are not even linked.
    for other in ["UartConsole", "DebugconConsole", "StdoutConsole"] {
        if registry::find(other).is_some() {
            return Err(format!("{other} is linked too"));
        }
    }
    Ok(())
}

#[ebbrt::test]
fn the_allocator_is_the_application_s() -> Result<(), String> {
    let b = binding::<dyn GeneralPurposeAllocator>().map_err(|e| format!("{e}"))?;
    is(
        "allocator",
        (b.component, b.crate_name),
        ("ArenaAllocator", "replace"),
    )?;
    let mine = ebbrt::EbbRef::<ArenaAllocator>::fixed();
    let before = mine.allocations();
    let boxed: Box<[u32]> = (0..5000).collect();
    let after = mine.allocations();
    if after <= before || boxed.iter().map(|&x| x as u64).sum::<u64>() != 5000 * 4999 / 2 {
        return Err(format!("Box did not come from it ({before} -> {after})"));
    }
    for other in [
        "GpAllocator",
        "TalcAllocator",
        "SlabAllocator",
        "PageAllocator",
    ] {
        if registry::find(other).is_some() {
            return Err(format!("{other} is linked too"));
        }
    }
    Ok(())
}

ebbrt::test_main!();
