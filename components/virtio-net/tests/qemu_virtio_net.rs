//! The NIC Ebb inside a running EbbRT instance: natively in QEMU (`cargo
//! ebbrt test`; test kernels boot without a NIC) and hosted (`cargo test`,
//! where the driver compiles to its component record only). Checks that the
//! driver's Ebb is what the network manager finds at `NET_DEVICE`, with a
//! representative per core, and that a machine without a virtio-net device
//! gives the network no device rather than a failure. The driver on a real
//! NIC is checked by the network checks of `cargo ebbrt test` (netcheck).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use ebbrt::ebb::ids;
use ebbrt::registry;
use ebbrt_net::device::{NET_DEVICE_REFS, bound_at};
// Linked for its record (hosted nothing else of it is named here).
use ebbrt_virtio_net as _;

#[ebbrt::test]
fn the_record_claims_net_device_without_a_conflict() -> Result<(), String> {
    let r = registry::find("VirtioNet").ok_or("no VirtioNet record is linked")?;
    if (r.id, r.crate_name) != (Some(ids::NET_DEVICE), "ebbrt-virtio-net") {
        return Err(format!("unexpected record: {r:?}"));
    }
    // The whole image (the facade's components and this driver): the check
    // every runtime makes before it starts.
    registry::check_static_ids().map_err(|e| format!("{e}"))
}

/// Natively the driver binds its Ebb; hosted there is no driver to bind.
#[ebbrt::test]
fn the_nic_ebb_is_bound_at_net_device_natively_only() -> Result<(), String> {
    let bound = bound_at(&NET_DEVICE_REFS, ids::NET_DEVICE).map_err(|e| format!("{e}"))?;
    match (cfg!(target_os = "none"), bound) {
        (true, Some(r)) if (r.ebb, r.crate_name) == ("VirtioNet", "ebbrt-virtio-net") => Ok(()),
        (false, None) => Ok(()),
        (native, other) => Err(format!("native={native}: bound at NET_DEVICE: {other:?}")),
    }
}

#[cfg(target_os = "none")]
mod native {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    use ebbrt::cpu::{self, CoreId};
    use ebbrt::ebb::ids;
    use ebbrt_net::device::{NET_DEVICE_REFS, bound_at};
    use ebbrt_virtio_net::VirtioNet;

    #[ebbrt::test]
    async fn without_a_device_every_core_s_rep_reports_none() -> Result<(), String> {
        let nic = bound_at(&NET_DEVICE_REFS, ids::NET_DEVICE)
            .map_err(|e| format!("{e}"))?
            .ok_or("no NIC Ebb bound")?;
        if (nic.device)().is_some() {
            return Err("a device was found in a machine without a NIC".into());
        }
        // One representative per core, each serving its own core and
        // owning no queue pair.
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
}

ebbrt::test_main!();
