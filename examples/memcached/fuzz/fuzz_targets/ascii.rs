//! The ASCII parser and a session fed ASCII bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::ascii::{self, Limits, Step};

mod common;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        item_size_max: 4096,
    };
    if let Step::Ready { len, .. } = ascii::parse(data, &limits) {
        assert!(len <= data.len());
    }
    // ASCII sessions: keep the first byte off the binary magic.
    if data.get(1) != Some(&0x80) {
        common::same_whole_and_split(data);
    }
});
