//! A binary that links no console (an application that turned the facade's
//! default off and brought none) must refuse to start, saying which
//! interface at which id has no implementation. This test binary links no
//! console component and re-runs itself as the application.

mod support;

fn main() {
    support::run_as_application_if_probed();
    support::expect_refused_start(
        "a_missing_console_stops_the_start",
        &["no component implements ebbrt_core::console::Console at CONSOLE (2)"],
    );
}
