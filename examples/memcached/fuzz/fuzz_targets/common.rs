//! What every target checks: the parser never panics, a request it
//! accepts is no longer than the input, and a session fed the same bytes
//! whole or split at a point the input chooses answers the same, on both
//! stores (the default RCU table, and `MemStore`).

use std::sync::Arc;

use ebbrt_rcu::threads::{Participant, Threads};
use memcached::{Cache, Config, Flow, ManualClock, MemStore, RcuStore, Session, Store};

std::thread_local! {
    /// The RCU domain of the fuzzing thread (plain threads, no runtime).
    static RCU: (Arc<Threads>, Participant) = {
        let threads = Threads::new(1);
        let me = threads.enter();
        (threads, me)
    };
}

fn store(rcu: bool) -> Box<dyn Store> {
    if rcu {
        let threads = RCU.with(|(t, _)| t.clone());
        Box::new(RcuStore::with_rcu(1 << 20, threads))
    } else {
        Box::new(MemStore::new(1 << 20))
    }
}

fn cache(rcu: bool) -> Cache {
    Cache::new(
        store(rcu),
        Box::new(ManualClock::new(1_700_000_000)),
        Config {
            item_size_max: 4096,
            ..Config::default()
        },
    )
}

fn feed(rcu: bool, chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let c = cache(rcu);
    let mut s = Session::new(&c);
    let mut out = Vec::new();
    let mut closed = false;
    for ch in chunks {
        if s.feed(ch, &mut out) == Flow::Close {
            closed = true;
            break;
        }
    }
    drop(s);
    drop(c);
    // Between inputs the thread holds nothing: a quiescent state, so the
    // RCU store's deferred frees run instead of piling up over a long run.
    RCU.with(|(_, me)| me.quiescent());
    (out, closed)
}

/// Whole versus split at `data[0]`'s share of the length.
pub fn same_whole_and_split(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = body.len() * usize::from(cut) / 256;
    let (a, b) = body.split_at(at);
    for rcu in [true, false] {
        assert_eq!(feed(rcu, &[body]), feed(rcu, &[a, b]), "split at {at}, rcu store {rcu}");
    }
}
