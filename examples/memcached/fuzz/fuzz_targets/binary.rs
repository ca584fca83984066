//! The binary parser and a session fed binary packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::binary::{self, Step};

mod common;

fuzz_target!(|data: &[u8]| {
    match binary::parse(data, 4096) {
        Step::Ready { len, req } => {
            assert!(len <= data.len());
            assert_eq!(
                req.extras.len() + req.key.len() + req.value.len(),
                req.header.bodylen as usize
            );
        }
        Step::Refuse { .. } | Step::Incomplete | Step::Close => {}
    }
    // Binary sessions: a request magic first.
    let mut packet = Vec::with_capacity(data.len() + 1);
    packet.extend_from_slice(data.get(..1).unwrap_or_default());
    packet.push(binary::REQ_MAGIC);
    packet.extend_from_slice(data.get(1..).unwrap_or_default());
    common::same_whole_and_split(&packet);
});
