//! The meta commands: the input is a meta command's tail, put behind
//! `mg`/`ms`/`md`/`ma`/`me`/`mn` (chosen by the first byte) so the fuzzer
//! spends its time on keys and flags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::ascii::{self, Limits, Step};

mod common;

const VERBS: [&[u8]; 6] = [b"mg ", b"ms ", b"md ", b"ma ", b"me ", b"mn "];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut req = VERBS[usize::from(pick) % VERBS.len()].to_vec();
    req.extend_from_slice(rest);
    let limits = Limits {
        item_size_max: 4096,
    };
    if let Step::Ready { len, .. } = ascii::parse(&req, &limits) {
        assert!(len <= req.len());
    }
    let mut split = vec![pick];
    split.extend_from_slice(&req);
    common::same_whole_and_split(&split);
});
