//! Which implementation of each swappable service is live in this image.
//!
//! `cargo ebbrt test` builds and boots this kernel once with the facade's
//! default features and once for each other facade feature on its own
//! (`--features ebbrt/<feature>`, with the boot argument
//! `expect.feature=<feature>`); `cargo test` runs it hosted with the
//! defaults. It checks, from the component records linked into the image:
//! - every interface has exactly one implementation, and it is the one the
//!   selected feature names (or the default where the feature says
//!   nothing);
//! - the alternatives the feature did not select are not linked at all;
//! - the live implementations work: this very output travels through the
//!   console, memory comes from the general-purpose allocator, and a timer
//!   fires under the idle policy.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::time::Duration;

use ebbrt::console::Console;
use ebbrt::ebb::{Binding, Interface, binding, bound};
use ebbrt::exec::IdlePolicy;
use ebbrt::memory::GeneralPurposeAllocator;
use ebbrt::registry::{self, COMPONENTS, ComponentRecord};

/// The feature this image was built with (none: the defaults).
fn selected() -> Option<&'static str> {
    ebbrt::runtime::boot_arg("expect.feature").filter(|f| !f.is_empty())
}

/// The record of the component bound to interface `I`, checked against
/// the selected feature.
fn check_interface<I: ?Sized + Interface>() -> Result<&'static ComponentRecord, String> {
    let b: &Binding<I> = binding::<I>().map_err(|e| format!("{e}"))?;
    let r = registry::find(b.component)
        .ok_or_else(|| format!("{} is bound to {} but has no record", I::NAME, b.component))?;
    // The records implementing I that this image links: exactly the bound one.
    let linked: Vec<&str> = COMPONENTS
        .iter()
        .filter(|c| c.interface == I::NAME)
        .map(|c| c.name)
        .collect();
    if linked != [b.component] {
        return Err(format!(
            "{} has these implementations linked: {linked:?}; only the selected one may be",
            I::NAME
        ));
    }
    let ok = match selected() {
        // The selected feature picks this interface's implementation...
        Some(f)
            if COMPONENTS
                .iter()
                .any(|c| c.feature == Some(f) && c.interface == I::NAME) =>
        {
            r.feature == Some(f)
        }
        // ...or leaves it at its default.
        _ => r.default,
    };
    if ok {
        Ok(r)
    } else {
        Err(format!(
            "{} is implemented by {} (feature {:?}, default {}) with feature {:?} selected",
            I::NAME,
            r.name,
            r.feature,
            r.default,
            selected()
        ))
    }
}

#[ebbrt::test]
fn the_selected_console_is_live() -> Result<(), String> {
    let r = check_interface::<dyn Console>()?;
    // This line reaches the harness through it: if it is lost, the test
    // protocol stalls and the harness fails the kernel.
    bound::<dyn Console>()
        .map_err(|e| format!("{e}"))?
        .print(format_args!("console: {} ({})\n", r.name, r.crate_name));
    Ok(())
}

#[ebbrt::test]
fn the_selected_general_purpose_allocator_is_live() -> Result<(), String> {
    let r = check_interface::<dyn GeneralPurposeAllocator>()?;
    let gp = bound::<dyn GeneralPurposeAllocator>().map_err(|e| format!("{e}"))?;
    // Through the interface, and through `Box` (the `#[global_allocator]`
    // of a native image, the process's allocator hosted).
    let layout = Layout::from_size_align(4096, 64).unwrap();
    let p = gp
        .allocate(layout)
        .ok_or_else(|| format!("{} refused 4 KiB", r.name))?;
    if !(p.as_ptr() as usize).is_multiple_of(64) {
        return Err(format!("{} misaligned a block: {p:?}", r.name));
    }
    // SAFETY: `p` came from `allocate` with `layout` just above.
    unsafe { gp.deallocate(p, layout) };
    let boxed: Box<[u64]> = (0..10_000).collect();
    if boxed.iter().sum::<u64>() != 10_000 * 9_999 / 2 {
        return Err("a boxed slice lost its contents".into());
    }
    Ok(())
}

#[ebbrt::test]
async fn the_selected_idle_policy_is_live() -> Result<(), String> {
    check_interface::<dyn IdlePolicy>()?;
    // The core idles (under the policy) until the timer fires.
    let t0 = ebbrt::time::Instant::now();
    ebbrt::exec::sleep(Duration::from_millis(5)).await;
    if t0.elapsed() < Duration::from_millis(5) {
        return Err("a 5 ms sleep returned early".into());
    }
    let _ = bound::<dyn IdlePolicy>().map_err(|e| format!("{e}"))?;
    Ok(())
}

/// Natively the network stack and the NIC driver are linked with the `net`
/// feature and only with it (hosted, `net` only gates `ebbrt::net`).
#[ebbrt::test]
fn the_network_is_linked_only_when_asked_for() -> Result<(), String> {
    let want = cfg!(target_os = "none") && selected() == Some("net");
    for name in ["NetworkManager", "VirtioNet"] {
        let linked = registry::find(name).is_some();
        if linked != want {
            return Err(format!(
                "{name} is {}linked with feature {:?}",
                if linked { "" } else { "not " },
                selected()
            ));
        }
    }
    Ok(())
}

#[ebbrt::test]
fn the_selected_feature_is_linked() -> Result<(), String> {
    match selected() {
        Some(f) if !COMPONENTS.iter().any(|c| c.feature == Some(f)) => Err(format!(
            "feature {f} is selected but no linked component names it"
        )),
        _ => Ok(()),
    }
}

ebbrt::test_main!();
