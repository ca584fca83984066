//! The `log` logger: records go to the console, one line each, tagged with
//! the core. The level comes from `ebbrt.log=<level>` (default `info`).

use log::{LevelFilter, Log, Metadata, Record};

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Before the boot core has entered its per-core state, "boot".
        match crate::cpu::try_current() {
            Some(c) => crate::console::print(format_args!(
                "[{:<5} core {}] {}: {}\n",
                record.level(),
                c.0,
                record.target(),
                record.args()
            )),
            None => crate::console::print(format_args!(
                "[{:<5} boot] {}: {}\n",
                record.level(),
                record.target(),
                record.args()
            )),
        }
    }

    fn flush(&self) {}
}

/// Parses a level name; `None` for an unknown one.
pub(crate) fn parse_level(s: &str) -> Option<LevelFilter> {
    s.parse().ok()
}

/// Installs the logger at `level`.
pub(crate) fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
