//! The frame codec on the host: frames split anywhere, many frames per
//! segment, every refusal, and arbitrary input (property tests).

use ebbrt::{EbbId, IoBuf, IoBufChain};
use ebbrt_messenger::frame::{self, ErrorBody, FrameKind, HEADER_LEN, encode_head};
use ebbrt_messenger::{ErrorKind, Frame, FrameDecoder, Limits, decode_payload};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Put {
    key: u32,
    name: String,
}
ebbrt_messenger::message!(Put, "codec::Put", 1);

fn put_frame(corr: u64, bulk: &[u8]) -> Vec<u8> {
    use ebbrt_messenger::Message;
    let payload = postcard::to_allocvec(&Put {
        key: corr as u32,
        name: "k".repeat(corr as usize % 7),
    })
    .unwrap();
    let mut v = encode_head(
        FrameKind::Request,
        EbbId::new(300),
        Put::TAG,
        corr,
        &payload,
        bulk.len(),
    );
    v.extend_from_slice(bulk);
    v
}

fn drain(d: &mut FrameDecoder) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("valid stream") {
        out.push(f);
    }
    out
}

fn check(f: &Frame, corr: u64, bulk: &[u8]) {
    assert_eq!(f.header.corr, corr);
    assert_eq!(f.header.dst, EbbId::new(300));
    let p: Put = decode_payload(&f.payload).unwrap();
    assert_eq!(p.key, corr as u32);
    assert_eq!(f.bulk, *bulk);
}

#[test]
fn a_stream_split_at_every_byte_gives_the_same_frames() {
    let bulk: Vec<u8> = (0..50u8).collect();
    let mut stream = put_frame(1, &bulk);
    stream.extend(put_frame(2, &[]));
    stream.extend(put_frame(3, b"x"));
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut d = FrameDecoder::new(Limits::default());
            let mut got = Vec::new();
            for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                d.push_slice(part);
                got.extend(drain(&mut d));
            }
            assert_eq!(got.len(), 3, "split at {a}, {b}");
            check(&got[0], 1, &bulk);
            check(&got[1], 2, &[]);
            check(&got[2], 3, b"x");
            assert_eq!(d.buffered(), 0);
            d.finish().unwrap();
        }
    }
}

#[test]
fn bulk_stays_a_view_of_the_received_buffer() {
    let bulk = vec![7u8; 1000];
    let stream = IoBuf::from(put_frame(9, &bulk));
    let mut d = FrameDecoder::new(Limits::default());
    d.push(stream.clone());
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(f.bulk.buffer_count(), 1);
    // A view shares the allocation: the original is no longer unique.
    assert!(!stream.is_unique());
    check(&f, 9, &bulk);
}

#[test]
fn many_frames_in_one_segment_and_over_a_chain() {
    let mut stream = Vec::new();
    for c in 1..=100 {
        stream.extend(put_frame(c, &vec![c as u8; c as usize]));
    }
    let mut d = FrameDecoder::new(Limits::default());
    d.push_slice(&stream);
    let got = drain(&mut d);
    assert_eq!(got.len(), 100);
    for (i, f) in got.iter().enumerate() {
        check(f, i as u64 + 1, &vec![i as u8 + 1; i + 1]);
    }
    // The same bytes as a chain of 13-byte buffers.
    let chain: IoBufChain = stream.chunks(13).map(IoBuf::copy_from_slice).collect();
    let mut d = FrameDecoder::new(Limits::default());
    d.push_chain(chain);
    assert_eq!(drain(&mut d), got);
}

#[test]
fn every_refusal_has_its_kind() {
    let good = put_frame(1, b"bulk");
    let refuse = |bytes: &[u8], limits: Limits| {
        let mut d = FrameDecoder::new(limits);
        d.push_slice(bytes);
        let e = match d.next_frame() {
            Err(e) => e,
            Ok(Some(_)) => panic!("accepted"),
            Ok(None) => d.finish().expect_err("a truncated stream is refused"),
        };
        // Once refused, the decoder stays refused.
        assert_eq!(d.next_frame(), Err(e));
        e
    };
    let mut bad = good.clone();
    bad[1] = b'X';
    assert_eq!(refuse(&bad, Limits::default()).kind, ErrorKind::Malformed);
    let mut bad = good.clone();
    bad[4] = 9;
    assert_eq!(refuse(&bad, Limits::default()).kind, ErrorKind::BadVersion);
    let mut bad = good.clone();
    bad[5] = 200;
    assert_eq!(refuse(&bad, Limits::default()).kind, ErrorKind::Malformed);
    let mut bad = good.clone();
    bad[6] = 1;
    assert_eq!(refuse(&bad, Limits::default()).kind, ErrorKind::Malformed);
    let small = Limits {
        max_payload: 1,
        max_bulk: 1 << 20,
    };
    let e = refuse(&good, small);
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(e.header.unwrap().corr, 1);
    let small = Limits {
        max_payload: 1 << 20,
        max_bulk: 3,
    };
    assert_eq!(refuse(&good, small).kind, ErrorKind::TooLarge);
    // Truncated anywhere: inside the header and inside the body.
    for cut in [1, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
        let e = refuse(&good[..cut], Limits::default());
        assert_eq!(e.kind, ErrorKind::Truncated, "cut at {cut}");
        assert_eq!(e.header.is_some(), cut >= HEADER_LEN, "cut at {cut}");
    }
}

#[test]
fn payloads_that_do_not_decode_are_told_apart() {
    let p = postcard::to_allocvec(&Put {
        key: 1,
        name: "abc".into(),
    })
    .unwrap();
    assert_eq!(
        decode_payload::<Put>(&p[..p.len() - 1]),
        Err(ErrorKind::Truncated)
    );
    let mut long = p.clone();
    long.push(0);
    assert_eq!(decode_payload::<Put>(&long), Err(ErrorKind::Malformed));
    // A string that is not UTF-8.
    let bad = [1u8, 1, 0xff];
    assert_eq!(decode_payload::<Put>(&bad), Err(ErrorKind::Malformed));
}

#[test]
fn an_error_frame_carries_its_stable_code() {
    for kind in ErrorKind::ALL {
        let bytes = frame::encode_error(EbbId::new(5), 42, kind, 0xabc);
        let mut d = FrameDecoder::new(Limits::default());
        d.push_slice(&bytes);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(f.header.kind, FrameKind::Error);
        assert_eq!(f.header.tag, frame::ERROR_TAG);
        let body: ErrorBody = decode_payload(&f.payload).unwrap();
        assert_eq!((ErrorKind::from_code(body.code), body.tag), (kind, 0xabc));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, pushed in arbitrary pieces: the decoder never
    /// panics, and what it returns is consistent with its input.
    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300),
                                    cuts in proptest::collection::vec(0usize..300, 0..6)) {
        let limits = Limits { max_payload: 64, max_bulk: 64 };
        let mut d = FrameDecoder::new(limits);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut at = 0;
        let mut consumed = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            d.push_slice(&data[at..c]);
            at = c;
            while let Ok(Some(f)) = d.next_frame() {
                prop_assert!(f.header.payload_len <= 64 && f.header.bulk_len <= 64);
                prop_assert_eq!(f.payload.len(), f.header.payload_len as usize);
                prop_assert_eq!(f.bulk.len(), f.header.bulk_len as usize);
                consumed += HEADER_LEN + f.payload.len() + f.bulk.len();
            }
        }
        prop_assert!(consumed <= data.len());
        let _ = d.finish();
    }

    /// Valid frames, with random contents, split at random: they come back
    /// as they were sent.
    #[test]
    fn valid_frames_round_trip(frames in proptest::collection::vec(
            (0u32..4096, any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..40),
             proptest::collection::vec(any::<u8>(), 0..40)), 1..8),
        cut in any::<prop::sample::Index>()) {
        let mut stream = Vec::new();
        for (dst, tag, corr, payload, bulk) in &frames {
            stream.extend(encode_head(FrameKind::Message, EbbId::new(*dst), *tag, *corr, payload, bulk.len()));
            stream.extend(bulk);
        }
        let at = cut.index(stream.len() + 1);
        let mut d = FrameDecoder::new(Limits::default());
        d.push_slice(&stream[..at]);
        let mut got = drain(&mut d);
        d.push_slice(&stream[at..]);
        got.extend(drain(&mut d));
        prop_assert_eq!(got.len(), frames.len());
        for (f, (dst, tag, corr, payload, bulk)) in got.iter().zip(&frames) {
            prop_assert_eq!(f.header.dst, EbbId::new(*dst));
            prop_assert_eq!((f.header.tag, f.header.corr), (*tag, *corr));
            prop_assert_eq!(&f.payload[..], &payload[..]);
            prop_assert_eq!(&f.bulk, &bulk[..]);
        }
        prop_assert!(d.finish().is_ok());
    }
}
