//! The NIC Ebb inside a running EbbRT instance: natively in QEMU (`cargo
//! ebbrt test`; test kernels boot without a NIC) and hosted (`cargo test`,
//! where the Ebb compiles without its hardware access and finds no device).
//! Checks that the driver's Ebb is the implementation of `NetDeviceEbb` the
//! network manager finds at `NET_DEVICE`, with a representative per core,
//! and that a machine without a virtio-net device (or a hosted process)
//! gives the network no device rather than a failure. The driver on a real
//! NIC is checked by the network checks of `cargo ebbrt test` (netcheck).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ebbrt::cpu::{self, CoreId};
use ebbrt::ebb::{binding, bound, ids};
use ebbrt::registry;
use ebbrt_net::device::NetDeviceEbb;
use ebbrt_virtio_net::VirtioNet;

#[ebbrt::test]
fn the_record_claims_net_device_without_a_conflict() -> Result<(), String> {
    let r = registry::find("VirtioNet").ok_or("no VirtioNet record is linked")?;
    let expected = (
        Some(ids::NET_DEVICE),
        "ebbrt-virtio-net",
        "ebbrt_net::device::NetDeviceEbb",
    );
    if (r.id, r.crate_name, r.interface) != expected {
        return Err(format!("unexpected record: {r:?}"));
    }
    // The whole image (the facade's components and this driver): the check
    // every runtime makes before it starts.
    registry::check_static_ids().map_err(|e| format!("{e}"))
}

/// The driver is the one implementation of the NIC interface, on both
/// targets.
#[ebbrt::test]
fn the_nic_ebb_is_the_one_bound_at_net_device() -> Result<(), String> {
    let b = binding::<dyn NetDeviceEbb>().map_err(|e| format!("{e}"))?;
    if (b.component, b.crate_name) != ("VirtioNet", "ebbrt-virtio-net") {
        return Err(format!(
            "bound at NET_DEVICE: {} ({})",
            b.component, b.crate_name
        ));
    }
    Ok(())
}

/// Without a device (a test kernel's machine has no NIC; a hosted process
/// has no PCI bus), the network gets none, and every core's representative
/// serves its own core, owning no queue pair.
#[ebbrt::test]
async fn without_a_device_every_core_s_rep_reports_none() -> Result<(), String> {
    let nic = bound::<dyn NetDeviceEbb>().map_err(|e| format!("{e}"))?;
    if nic.device().is_some() {
        return Err("a device was found in a machine without a NIC".into());
    }
    let mut seen = Vec::new();
    for core in cpu::all() {
        let (at, found, owns, polls) = ebbrt::exec::spawn_on_with(core, || async {
            let rep = VirtioNet::get();
            (
                rep.core(),
                rep.found(),
                rep.owns_queue_pair(),
                rep.polling(),
            )
        })
        .await;
        if (at, found, owns, polls) != (core, false, false, false) {
            return Err(format!(
                "{core}'s rep: core {at}, found {found}, owns a pair {owns}, polls {polls}"
            ));
        }
        seen.push(at);
    }
    if seen.first() != Some(&CoreId(0)) || seen.len() != cpu::count() {
        return Err(format!("reps on {seen:?}"));
    }
    if VirtioNet::get().features().is_some() || VirtioNet::get().mtu().is_some() {
        return Err("features or an MTU without a device".into());
    }
    Ok(())
}

ebbrt::test_main!();
