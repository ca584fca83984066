//! SIGINT, SIGTERM and SIGHUP stop every node before the frontend exits.
//!
//! The first allocator starts a thread that waits for those signals
//! (`signal-hook`'s iterator: the handler itself only writes to a pipe).
//! On one, it shuts down every live allocator — nodes stopped by pid, taps
//! and namespaces removed — then exits with `128 + signal`, as a shell
//! reports a death by that signal.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Inner;

type Live = Mutex<Vec<Weak<Mutex<Inner>>>>;

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                let started = std::thread::Builder::new()
                    .name("ebbrt-node-signals".into())
                    .spawn(move || {
                        if let Some(sig) = signals.forever().next() {
                            eprintln!("node allocator: signal {sig}: stopping every node");
                            shutdown_all();
                            std::process::exit(128 + sig);
                        }
                    });
                if let Err(e) = started {
                    eprintln!("node allocator: no signal thread ({e}); Ctrl-C will not stop nodes");
                }
            }
            Err(e) => eprintln!("node allocator: cannot handle signals ({e})"),
        }
        Mutex::new(Vec::new())
    })
}

/// Adds an allocator to those the handler shuts down.
pub(crate) fn register(inner: &Arc<Mutex<Inner>>) {
    let mut l = live().lock().unwrap_or_else(|p| p.into_inner());
    l.retain(|w| w.strong_count() > 0);
    l.push(Arc::downgrade(inner));
}

fn shutdown_all() {
    let all: Vec<_> = live()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for inner in all {
        let failed = inner.lock().unwrap_or_else(|p| p.into_inner()).shutdown();
        for f in failed {
            eprintln!("node allocator: {f}");
        }
    }
}
