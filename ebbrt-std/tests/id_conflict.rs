//! A binary in which two components claim one fixed Ebb id must refuse to
//! start: `start_main` checks the registry before any core runs. This test
//! binary holds two such records and re-runs itself as the application.

mod support;

// The console every instance needs (runtimes refuse to start without one).
use ebbrt_console_stdout as _;

use ebbrt_core::EbbKind;
use ebbrt_core::ebb::ids;

ebbrt_core::register_component! {
    First { name: "First", kind: EbbKind::Shared, interface: "probe::First",
            summary: "One claimant.", id: Some(ids::app(5)) }
}
ebbrt_core::register_component! {
    Second { name: "Second", kind: EbbKind::PerCore, interface: "probe::Second",
             summary: "The other claimant.", id: Some(ids::app(5)) }
}

fn main() {
    support::run_as_application_if_probed();
    support::expect_refused_start(
        "conflicting_static_ids_stop_the_start",
        &["component id conflict", "probe::First", "probe::Second"],
    );
}
