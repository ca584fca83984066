//! The component records `#[ebb]` leaves in the registry, field by field.
#![deny(warnings)]

use ebbrt_core::ebb::ids;
use ebbrt_core::registry::{COMPONENTS, check_static_ids, find};
use ebbrt_core::{EbbKind, PerCoreRoot};
use ebbrt_macros::ebb;

mod net {
    use super::*;

    ///   The fancy NIC driver.
    /// Polls when busy.
    ///
    /// # Details
    ///
    ///     indented code
    #[ebb(per_core, id = ids::app(20), feature = "fancy-nic", new = Nic::new)]
    pub struct Nic {
        _p: (),
    }

    impl Nic {
        fn new(_: &'static PerCoreRoot<Self>, _: ebbrt_core::cpu::CoreId) -> Self {
            Nic { _p: () }
        }
    }
}

#[ebb(shared)]
struct Undocumented;

/// A hand-written Ebb: the macro is sugar over public traits.
struct ByHand;

impl ebbrt_core::Shared for ByHand {}

impl ebbrt_core::Ebb for ByHand {
    fn miss(id: ebbrt_core::EbbId) -> &'static Self {
        ebbrt_core::ebb::shared_miss(id)
    }
}

ebbrt_core::register_component! {
    ByHand {
        name: "ByHand",
        kind: EbbKind::Shared,
        interface: "registry::ByHand",
        summary: "Written by hand.",
        id: None,
        docs: "Written by hand.\n\nWith more to say.",
    }
}

ebbrt_core::register_component! {
    Terse { name: "Terse", kind: EbbKind::PerCore, interface: "registry::Terse", summary: "Short.", id: None }
}

fn main() {
    let nic = find("Nic").expect("the record is linked in");
    assert_eq!(nic.name, "Nic");
    assert_eq!(nic.kind, EbbKind::PerCore);
    assert_eq!(nic.interface, concat!(module_path!(), "::net::Nic"));
    assert_eq!(nic.summary, "The fancy NIC driver. Polls when busy.");
    assert_eq!(
        nic.docs,
        "  The fancy NIC driver.\nPolls when busy.\n\n# Details\n\n    indented code"
    );
    assert_eq!(nic.id, Some(ids::app(20)));
    assert_eq!(nic.crate_name, env!("CARGO_PKG_NAME"));
    assert_eq!(nic.feature, Some("fancy-nic"));
    assert!(!nic.default);

    let u = find("Undocumented").unwrap();
    assert_eq!(
        (u.kind, u.summary, u.docs, u.id, u.feature, u.default),
        (EbbKind::Shared, "", "", None, None, true)
    );
    assert_eq!(u.interface, concat!(module_path!(), "::Undocumented"));

    // The core's own Ebbs are there too (the id allocator, the event
    // manager, the clock), and no id is claimed twice.
    for core in ["IdAllocator", "EventManager", "Clock"] {
        assert!(COMPONENTS.iter().any(|r| r.name == core), "{core}");
    }
    let by_hand = find("ByHand").unwrap();
    assert_eq!(
        (by_hand.summary, by_hand.docs),
        ("Written by hand.", "Written by hand.\n\nWith more to say.")
    );
    assert_eq!(
        (by_hand.crate_name, by_hand.default),
        (env!("CARGO_PKG_NAME"), true)
    );
    assert_eq!(find("Terse").unwrap().docs, "Short.");
    assert_eq!(COMPONENTS.len(), 4 + 3);
    check_static_ids().unwrap();
}
