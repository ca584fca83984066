//! The server's counters for `stats`: one atomic per counter, shared by
//! every core (relaxed: each is read on its own).

use core::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters named as memcached's `stats` names them.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(
                #[doc = concat!("memcached's `", stringify!($name), "`.")]
                pub $name: AtomicU64,
            )*
        }

        impl Stats {
            /// Every counter, by name, in `stats` order.
            pub fn list(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*].into_iter()
            }
            /// `stats reset`: zeroes the counters that memcached zeroes
            /// (all but the connection gauges).
            pub fn reset(&self) {
                $(
                    if !matches!(stringify!($name), "curr_connections" | "max_connections") {
                        self.$name.store(0, Ordering::Relaxed);
                    }
                )*
            }
        }
    };
}

counters!(
    max_connections,
    curr_connections,
    total_connections,
    rejected_connections,
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    bytes_read,
    bytes_written,
);

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    add(c, 1);
}
