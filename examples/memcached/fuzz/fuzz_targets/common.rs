//! What every target checks: the parser never panics, a request it
//! accepts is no longer than the input, and a session fed the same bytes
//! whole or split at a point the input chooses answers the same.

use memcached::{Cache, Config, Flow, ManualClock, MemStore, Session};

fn cache() -> Cache {
    Cache::new(
        Box::new(MemStore::new(1 << 20)),
        Box::new(ManualClock::new(1_700_000_000)),
        Config {
            item_size_max: 4096,
            ..Config::default()
        },
    )
}

fn feed(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let c = cache();
    let mut s = Session::new(&c);
    let mut out = Vec::new();
    let mut closed = false;
    for ch in chunks {
        if s.feed(ch, &mut out) == Flow::Close {
            closed = true;
            break;
        }
    }
    (out, closed)
}

/// Whole versus split at `data[0]`'s share of the length.
pub fn same_whole_and_split(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = body.len() * usize::from(cut) / 256;
    let (a, b) = body.split_at(at);
    assert_eq!(feed(&[body]), feed(&[a, b]), "split at {at}");
}
