//! The frame decoder and the payload decoders on arbitrary bytes, pushed
//! in pieces whose sizes the input chooses: no panic, no frame over the
//! limits, and every frame's lengths as its header says.
#![no_main]

use ebbrt_messenger::auth::{Challenge, Hello, Proof, Welcome};
use ebbrt_messenger::frame::{ErrorBody, HEADER_LEN};
use ebbrt_messenger::{FrameDecoder, Limits, decode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_payload: 256,
        max_bulk: 256,
    };
    let mut dec = FrameDecoder::new(limits);
    let step = usize::from(step).max(1);
    let mut consumed = 0;
    for piece in rest.chunks(step) {
        dec.push_slice(piece);
        while let Ok(Some(f)) = dec.next_frame() {
            assert!(f.header.payload_len <= 256 && f.header.bulk_len <= 256);
            assert_eq!(f.payload.len(), f.header.payload_len as usize);
            assert_eq!(f.bulk.len(), f.header.bulk_len as usize);
            let raw = f.header.encode();
            assert_eq!(ebbrt_messenger::Header::parse(&raw), Ok(f.header));
            consumed += HEADER_LEN + f.payload.len() + f.bulk.len();
            let _ = decode_payload::<ErrorBody>(&f.payload);
            let _ = decode_payload::<Hello>(&f.payload);
            let _ = decode_payload::<Challenge>(&f.payload);
            let _ = decode_payload::<Proof>(&f.payload);
            let _ = decode_payload::<Welcome>(&f.payload);
        }
    }
    assert!(consumed <= rest.len());
    let _ = dec.finish();
});
