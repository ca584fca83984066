//! Messengers talking over loopback inside one hosted instance, each with
//! its own `NodeId`, listener and connections (as separate nodes would):
//! request and reply with bulk bytes, one-way messages, unknown tags and
//! Ebbs, deadlines against a peer that never answers, a dropped connection
//! and the reconnection, simultaneous connects, and peers without the
//! secret refused. Raw sockets play the misbehaving peers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ebbrt::net::{TcpListener, TcpStream};
use ebbrt::{EbbId, EbbRef, IoBuf, IoBufChain};
use ebbrt_messenger::auth::{Challenge, Hello, PROTO_VERSION, Proof, Side, Transcript, Welcome};
use ebbrt_messenger::frame::{self, ErrorBody, FrameKind};
use ebbrt_messenger::{
    Config, ErrorKind, Frame, FrameDecoder, Limits, Message, Messenger, MsgError, NodeId, Reply,
    decode_payload,
};
use serde::{Deserialize, Serialize};

const SECRET: &[u8] = b"the allocation's secret";
const EBB: EbbId = EbbId::new(4000);
const LONG: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Sum {
    values: Vec<u32>,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Total {
    total: u64,
    from: NodeId,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Unhandled {
    x: u8,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stall;
ebbrt_messenger::message!(Sum, "hosted_messenger::Sum", 1, reply = Total);
ebbrt_messenger::message!(Total, "hosted_messenger::Total", 1);
ebbrt_messenger::message!(Note, "hosted_messenger::Note", 1);
ebbrt_messenger::message!(Unhandled, "hosted_messenger::Unhandled", 1, reply = Total);
ebbrt_messenger::message!(Stall, "hosted_messenger::Stall", 1, reply = Total);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start(node: u32, secret: &[u8], tweak: impl FnOnce(&mut Config)) -> EbbRef<Messenger> {
    let mut c = Config::new(NodeId(node), secret);
    c.listen = Some(loopback());
    c.handshake_timeout = Duration::from_secs(3);
    tweak(&mut c);
    Messenger::start_detached(c).expect("messenger starts")
}

/// A messenger serving `Sum` (its bulk comes back as the reply's bulk).
fn server(node: u32) -> EbbRef<Messenger> {
    let m = start(node, SECRET, |_| {});
    serve_sum(m);
    m
}

fn serve_sum(m: EbbRef<Messenger>) {
    let me = m.node().unwrap();
    m.handle::<Sum, _, _>(EBB, move |_from, s, bulk| async move {
        Ok(Reply {
            msg: Total {
                total: s.values.iter().map(|&v| v as u64).sum(),
                from: me,
            },
            bulk,
        })
    })
    .unwrap();
}

fn introduce(a: EbbRef<Messenger>, b: EbbRef<Messenger>) {
    a.add_peer(b.node().unwrap(), b.local_addr().unwrap());
    b.add_peer(a.node().unwrap(), a.local_addr().unwrap());
}

fn check<T: std::fmt::Debug>(what: &str, ok: bool, got: T) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}"))
    }
}

/// Waits (polling, at most 10 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    for _ in 0..1000 {
        if cond() {
            return Ok(());
        }
        ebbrt::exec::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("never: {what}"))
}

#[ebbrt::test]
async fn request_and_reply_with_bulk_and_one_way_messages() -> Result<(), String> {
    let a = server(1);
    let b = server(2);
    introduce(a, b);
    let notes = Rc::new(RefCell::new(Vec::new()));
    let n2 = notes.clone();
    b.handle_message::<Note, _, _>(EBB, move |from, note, bulk| {
        let n2 = n2.clone();
        async move { n2.borrow_mut().push((from, note.text, bulk.to_vec())) }
    })
    .unwrap();

    let mut bulk = IoBufChain::new();
    bulk.push_back(IoBuf::from(vec![1u8; 100_000]));
    bulk.push_back(IoBuf::from(&b"tail"[..]));
    let r = a
        .request(
            NodeId(2),
            EBB,
            &Sum {
                values: vec![1, 2, 39],
            },
            bulk.clone(),
            LONG,
        )
        .await
        .map_err(|e| format!("request: {e}"))?;
    check(
        "reply",
        r.msg
            == Total {
                total: 42,
                from: NodeId(2),
            },
        &r.msg,
    )?;
    check("bulk back", r.bulk == bulk, r.bulk.len())?;
    let info = a.connection_info(NodeId(2)).ok_or("no connection")?;
    check("a opened it", info.initiator == NodeId(1), info)?;

    a.send(
        NodeId(2),
        EBB,
        &Note { text: "hi".into() },
        IoBufChain::from(IoBuf::from(&b"xy"[..])),
        LONG,
    )
    .await
    .map_err(|e| format!("send: {e}"))?;
    // Frames on a connection are handled in order: once this reply is in,
    // the note was handled.
    a.request(
        NodeId(2),
        EBB,
        &Sum { values: vec![] },
        IoBufChain::new(),
        LONG,
    )
    .await
    .map_err(|e| format!("request: {e}"))?;
    let got = notes.borrow().clone();
    check(
        "note",
        got == [(NodeId(1), "hi".to_string(), b"xy".to_vec())],
        &got,
    )?;

    // From another core, the request is shipped to the home core.
    if ebbrt::cpu::count() > 1 {
        let r = ebbrt::exec::spawn_on_with(ebbrt::cpu::CoreId(1), move || async move {
            a.request(
                NodeId(2),
                EBB,
                &Sum { values: vec![5] },
                IoBufChain::new(),
                LONG,
            )
            .await
            .map(|r| r.msg)
        })
        .await;
        check(
            "from core 1",
            r == Ok(Total {
                total: 5,
                from: NodeId(2),
            }),
            &r,
        )?;
    }

    // Unknown tag at a known Ebb; a tag at an Ebb with no handlers.
    let r = a
        .request(NodeId(2), EBB, &Unhandled { x: 1 }, IoBufChain::new(), LONG)
        .await;
    check(
        "unknown tag",
        r == Err(MsgError::Remote(ErrorKind::UnknownTag)),
        &r,
    )?;
    let r = a
        .request(
            NodeId(2),
            EbbId::new(4001),
            &Sum { values: vec![] },
            IoBufChain::new(),
            LONG,
        )
        .await;
    check(
        "no such Ebb",
        r == Err(MsgError::Remote(ErrorKind::NoSuchEbb)),
        &r,
    )?;
    let (sa, sb) = (a.stats(), b.stats());
    check(
        "b counted",
        sb.sent(ErrorKind::UnknownTag) == 1 && sb.sent(ErrorKind::NoSuchEbb) == 1,
        &sb,
    )?;
    check(
        "a counted",
        sa.received(ErrorKind::UnknownTag) == 1 && sa.frames_out >= 5,
        &sa,
    )?;
    // A node nobody introduced.
    let r = a
        .request(
            NodeId(77),
            EBB,
            &Sum { values: vec![] },
            IoBufChain::new(),
            LONG,
        )
        .await;
    check(
        "unknown peer",
        r == Err(MsgError::UnknownPeer(NodeId(77))),
        &r,
    )?;
    Ok(())
}

#[ebbrt::test]
async fn deadlines_against_peers_that_never_answer() -> Result<(), String> {
    // A peer that accepts and then says nothing: the handshake never ends.
    let silent = TcpListener::bind(loopback()).map_err(|e| e.to_string())?;
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    let held = Rc::new(RefCell::new(Vec::new()));
    let h2 = held.clone();
    ebbrt::spawn_local(async move {
        while let Ok((s, _)) = silent.accept().await {
            h2.borrow_mut().push(s);
        }
    })
    .detach();
    let a = start(3, SECRET, |_| {});
    a.add_peer(NodeId(9), silent_addr);
    let short = Duration::from_millis(300);
    let r = a
        .request(
            NodeId(9),
            EBB,
            &Sum { values: vec![] },
            IoBufChain::new(),
            short,
        )
        .await;
    check("silent peer", r == Err(MsgError::Deadline), &r)?;
    check("counted", a.stats().deadlines == 1, a.stats())?;

    // A handler that never finishes: the requester's deadline, and the
    // server's own limit on handlers (answered with a Deadline error).
    let b = start(4, SECRET, |c| {
        c.handler_timeout = Duration::from_millis(200)
    });
    b.handle::<Stall, _, _>(EBB, |_, _, _| core::future::pending())
        .unwrap();
    introduce(a, b);
    let r = a
        .request(
            NodeId(4),
            EBB,
            &Stall,
            IoBufChain::new(),
            Duration::from_millis(50),
        )
        .await;
    check("requester's deadline", r == Err(MsgError::Deadline), &r)?;
    let r = a
        .request(NodeId(4), EBB, &Stall, IoBufChain::new(), LONG)
        .await;
    check(
        "handler's limit",
        r == Err(MsgError::Remote(ErrorKind::Deadline)),
        &r,
    )?;
    // The first request's late answer came too and was dropped.
    eventually("late reply counted", || a.stats().late_replies == 1).await?;
    Ok(())
}

#[ebbrt::test]
async fn a_dropped_connection_is_reopened_on_next_use() -> Result<(), String> {
    let a = server(5);
    let b = server(6);
    introduce(a, b);
    let sum = |v| Sum { values: vec![v] };
    a.request(NodeId(6), EBB, &sum(1), IoBufChain::new(), LONG)
        .await
        .map_err(|e| e.to_string())?;
    let first = a.connection_info(NodeId(6)).ok_or("no connection")?;
    // b drops it; a notices the end of the stream.
    b.disconnect(NodeId(5));
    eventually("a sees the drop", || a.connection_info(NodeId(6)).is_none()).await?;
    let r = a
        .request(NodeId(6), EBB, &sum(2), IoBufChain::new(), LONG)
        .await;
    check(
        "after the drop",
        r.as_ref().map(|r| r.msg.total) == Ok(2),
        &r,
    )?;
    let second = a.connection_info(NodeId(6)).ok_or("no connection")?;
    check(
        "a opened it again",
        second.initiator == NodeId(5),
        (first, second),
    )?;
    check("opened twice", a.stats().connections_opened == 2, a.stats())?;
    // And the other way round, on the connection a opened.
    let r = b
        .request(NodeId(5), EBB, &sum(3), IoBufChain::new(), LONG)
        .await;
    check("b to a", r.as_ref().map(|r| r.msg.total) == Ok(3), &r)?;
    Ok(())
}

#[ebbrt::test]
async fn simultaneous_connects_settle_on_one_connection() -> Result<(), String> {
    for round in 0..10u32 {
        let (na, nb) = (100 + 2 * round, 101 + 2 * round);
        let a = server(na);
        let b = server(nb);
        introduce(a, b);
        let ja = ebbrt::spawn_local(async move {
            a.request(
                NodeId(nb),
                EBB,
                &Sum { values: vec![1] },
                IoBufChain::new(),
                LONG,
            )
            .await
        });
        let jb = ebbrt::spawn_local(async move {
            b.request(
                NodeId(na),
                EBB,
                &Sum { values: vec![2] },
                IoBufChain::new(),
                LONG,
            )
            .await
        });
        let (ra, rb) = (ja.await, jb.await);
        check("a's request", ra.is_ok(), &ra)?;
        check("b's request", rb.is_ok(), &rb)?;
        // Both ends end up using the same connection.
        eventually("one connection", || {
            match (a.connection_info(NodeId(nb)), b.connection_info(NodeId(na))) {
                (Some(x), Some(y)) => {
                    x.initiator == y.initiator && x.local == y.remote && x.remote == y.local
                }
                _ => false,
            }
        })
        .await?;
        // And it keeps working both ways.
        for (from, to) in [(a, nb), (b, na)] {
            let r = from
                .request(
                    NodeId(to),
                    EBB,
                    &Sum { values: vec![7] },
                    IoBufChain::new(),
                    LONG,
                )
                .await;
            check("after", r.is_ok(), &r)?;
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn a_peer_without_the_secret_is_refused() -> Result<(), String> {
    let a = server(20);
    let eve = start(21, b"not the secret", |_| {});
    serve_sum(eve);
    introduce(a, eve);
    // Eve connects: a's proof does not check out with her key, and she
    // gets nothing through.
    let r = eve
        .request(
            NodeId(20),
            EBB,
            &Sum { values: vec![] },
            IoBufChain::new(),
            LONG,
        )
        .await;
    check("eve to a", r == Err(MsgError::Unauthorized), &r)?;
    // a connects to eve: eve's proof fails, a refuses her.
    let r = a
        .request(
            NodeId(21),
            EBB,
            &Sum { values: vec![] },
            IoBufChain::new(),
            LONG,
        )
        .await;
    check("a to eve", r == Err(MsgError::Unauthorized), &r)?;
    check("a refused", a.stats().auth_refused == 1, a.stats())?;
    check("no connection", a.connection_info(NodeId(21)).is_none(), ())?;

    // A client that skips checking a's proof and sends a made-up one.
    let (s, mut dec, ch) = raw_hello(a.local_addr().unwrap(), NodeId(22)).await?;
    send_control(&s, &Proof { mac: [0; 32] }).await;
    let f = next_frame(&s, &mut dec).await.ok_or("no answer")?;
    check(
        "unauthorized frame",
        error_of(&f) == Some(ErrorKind::Unauthorized),
        f.header,
    )?;
    check("then closed", next_frame(&s, &mut dec).await.is_none(), ())?;
    check("a refused again", a.stats().auth_refused == 2, a.stats())?;
    let _ = ch;
    Ok(())
}

#[ebbrt::test]
async fn bad_frames_are_answered_with_error_frames() -> Result<(), String> {
    let a = server(30);
    let addr = a.local_addr().unwrap();
    // Garbage instead of a Hello.
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n0123456789")
        .await
        .map_err(|e| e.to_string())?;
    let mut dec = FrameDecoder::new(Limits::default());
    let f = next_frame(&s, &mut dec).await.ok_or("no answer")?;
    check(
        "malformed",
        error_of(&f) == Some(ErrorKind::Malformed),
        f.header,
    )?;
    // Half a frame, then the end of the stream.
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(&frame::encode_head(FrameKind::Message, EBB, Hello::TAG, 0, &[0; 20], 0)[..30])
        .await
        .map_err(|e| e.to_string())?;
    s.shutdown().await.map_err(|e| e.to_string())?;
    let mut dec = FrameDecoder::new(Limits::default());
    let f = next_frame(&s, &mut dec).await.ok_or("no answer")?;
    check(
        "truncated",
        error_of(&f) == Some(ErrorKind::Truncated),
        f.header,
    )?;

    // After a full login: an unknown tag keeps the connection; a frame
    // over the limit closes it.
    let (s, mut dec) = raw_login(addr, NodeId(31), SECRET).await?;
    s.write_all(&frame::encode_head(
        FrameKind::Request,
        EBB,
        0x1234,
        9,
        &[],
        0,
    ))
    .await
    .map_err(|e| e.to_string())?;
    let f = next_frame(&s, &mut dec).await.ok_or("no answer")?;
    check(
        "unknown tag",
        error_of(&f) == Some(ErrorKind::UnknownTag) && f.header.corr == 9,
        f.header,
    )?;
    let mut huge = frame::encode_head(FrameKind::Request, EBB, Sum::TAG, 10, &[], 0);
    huge[28..32].copy_from_slice(&(1u32 << 30).to_le_bytes());
    s.write_all(&huge).await.map_err(|e| e.to_string())?;
    let f = next_frame(&s, &mut dec).await.ok_or("no answer")?;
    check(
        "too large",
        error_of(&f) == Some(ErrorKind::TooLarge) && f.header.corr == 10,
        f.header,
    )?;
    check("then closed", next_frame(&s, &mut dec).await.is_none(), ())?;
    let st = a.stats();
    check(
        "counted",
        st.sent(ErrorKind::Malformed) == 1
            && st.sent(ErrorKind::Truncated) == 1
            && st.sent(ErrorKind::UnknownTag) == 1
            && st.sent(ErrorKind::TooLarge) == 1,
        &st,
    )?;
    // It still serves everyone else.
    let b = server(32);
    introduce(a, b);
    let r = b
        .request(
            NodeId(30),
            EBB,
            &Sum { values: vec![4] },
            IoBufChain::new(),
            LONG,
        )
        .await;
    check("still serving", r.is_ok(), &r)?;
    Ok(())
}

// Raw peers.

async fn next_frame(s: &TcpStream, dec: &mut FrameDecoder) -> Option<Frame> {
    loop {
        if let Some(f) = dec.next_frame().ok()? {
            return Some(f);
        }
        match ebbrt::exec::timeout(LONG, s.read_buf()).await {
            Ok(Ok(Some(b))) => dec.push(b),
            _ => return None,
        }
    }
}

fn error_of(f: &Frame) -> Option<ErrorKind> {
    (f.header.kind == FrameKind::Error)
        .then(|| decode_payload::<ErrorBody>(&f.payload).ok())
        .flatten()
        .map(|b| ErrorKind::from_code(b.code))
}

async fn send_control<M: Message>(s: &TcpStream, m: &M) {
    let p = postcard::to_allocvec(m).unwrap();
    let _ = s
        .write_all(&frame::encode_head(
            FrameKind::Message,
            EbbId::new(8),
            M::TAG,
            0,
            &p,
            0,
        ))
        .await;
}

async fn raw_hello(
    addr: SocketAddr,
    me: NodeId,
) -> Result<(TcpStream, FrameDecoder, (Challenge, [u8; 32])), String> {
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let nonce = [me.0 as u8; 32];
    send_control(
        &s,
        &Hello {
            node: me,
            proto: PROTO_VERSION,
            build_id: 0,
            nonce,
        },
    )
    .await;
    let mut dec = FrameDecoder::new(Limits::default());
    let f = next_frame(&s, &mut dec).await.ok_or("no challenge")?;
    let ch: Challenge = decode_payload(&f.payload).map_err(|e| e.to_string())?;
    Ok((s, dec, (ch, nonce)))
}

async fn raw_login(
    addr: SocketAddr,
    me: NodeId,
    secret: &[u8],
) -> Result<(TcpStream, FrameDecoder), String> {
    let (s, mut dec, (ch, nonce_c)) = raw_hello(addr, me).await?;
    let t = Transcript {
        nonce_c,
        nonce_a: ch.nonce,
        node_c: me,
        node_a: ch.node,
        proto: PROTO_VERSION,
    };
    check(
        "acceptor's proof",
        t.verify(secret, Side::Acceptor, &ch.mac),
        (),
    )?;
    send_control(
        &s,
        &Proof {
            mac: t.prove(secret, Side::Connector),
        },
    )
    .await;
    let f = next_frame(&s, &mut dec).await.ok_or("no welcome")?;
    let w: Welcome = decode_payload(&f.payload).map_err(|e| e.to_string())?;
    check("welcome", w.accepted, &w)?;
    Ok((s, dec))
}

ebbrt::test_main!();
