use core::future::Future;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::exec::{self, spawn_local};
use ebbrt_core::io::ErrorKind;
use ebbrt_core::iobuf::{IoBuf, IoBufChain};

use super::*;
use crate::testing::run_on;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn read_to_end(s: &TcpStream) -> ebbrt_core::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Binds a listener on `core` that serves one connection with `serve`, and
/// returns its address.
fn serve_once_on<S, Fut>(core: u32, serve: S) -> SocketAddr
where
    S: FnOnce(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_on(core, move || async move {
        let l = TcpListener::bind(loopback()).unwrap();
        let addr = l.local_addr().unwrap();
        spawn_local(async move {
            let (s, peer) = l.accept().await.unwrap();
            serve(s, peer).await;
        })
        .detach();
        addr
    })
}

#[test]
fn accept_read_write_shutdown_and_addresses_on_one_core() {
    let (echoed, peer_seen, client_local, server_addr, peer_of_client) = run_on(0, || async {
        let l = TcpListener::bind(loopback()).unwrap();
        let server_addr = l.local_addr().unwrap();
        let server = spawn_local(async move {
            let (s, peer) = l.accept().await.unwrap();
            assert_eq!(s.peer_addr().unwrap(), peer);
            let data = read_to_end(&s).await.unwrap();
            s.write_all(&data).await.unwrap();
            s.shutdown().await.unwrap();
            peer
        });
        let c = TcpStream::connect(server_addr).await.unwrap();
        // Once both halves are closed Linux forgets the peer: ask now.
        let (local, peer) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
        c.set_nodelay(true).unwrap();
        c.write_all(b"hello, ebbrt").await.unwrap();
        c.shutdown().await.unwrap();
        let echoed = read_to_end(&c).await.unwrap();
        let peer_seen = server.await;
        (echoed, peer_seen, local, server_addr, peer)
    });
    assert_eq!(echoed, b"hello, ebbrt");
    assert_eq!(peer_seen, client_local);
    assert_eq!(peer_of_client, server_addr);
}

#[test]
fn streams_work_across_cores_with_a_large_payload() {
    let payload = pattern(4 << 20);
    let addr = serve_once_on(0, |s, _| async move {
        let data = read_to_end(&s).await.unwrap();
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let expected = payload.clone();
    let back = run_on(1, move || async move {
        let c = Rc::new(TcpStream::connect(addr).await.unwrap());
        // Write and read concurrently, from two tasks sharing the stream.
        let w = c.clone();
        let writer = spawn_local(async move {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let back = read_to_end(&c).await.unwrap();
        writer.await;
        back
    });
    assert_eq!(back.len(), expected.len());
    assert!(back == expected, "the echoed bytes differ");
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_blocked_write_sleeps_instead_of_spinning() {
    // The server does not read for a while: the client's send buffer fills
    // and its write must wait. Core 2 is used by no other test, so its
    // thread's CPU time is this test's.
    let addr = serve_once_on(0, |s, _| async move {
        exec::sleep(Duration::from_millis(300)).await;
        let data = read_to_end(&s).await.unwrap();
        s.write_all(&(data.len() as u64).to_le_bytes())
            .await
            .unwrap();
    });
    let (received, spent) = run_on(2, move || async move {
        let c = Rc::new(TcpStream::connect(addr).await.unwrap());
        let w = c.clone();
        let writer = spawn_local(async move {
            w.write_all(&vec![7u8; 32 << 20]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        exec::sleep(Duration::from_millis(50)).await;
        let before = thread_cpu_time();
        exec::sleep(Duration::from_millis(150)).await;
        let spent = thread_cpu_time() - before;
        writer.await;
        let mut len = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            got += c.read(&mut len[got..]).await.unwrap();
        }
        (u64::from_le_bytes(len), spent)
    });
    assert_eq!(received, 32 << 20);
    assert!(
        spent < Duration::from_millis(40),
        "a blocked writer used {spent:?} of CPU in 150 ms"
    );
}

#[test]
fn several_tasks_may_wait_on_one_listener() {
    let accepted = run_on(1, || async {
        let l = Rc::new(TcpListener::bind(loopback()).unwrap());
        let addr = l.local_addr().unwrap();
        let count = Rc::new(Cell::new(0));
        let acceptors: Vec<_> = (0..3)
            .map(|_| {
                let (l, count) = (l.clone(), count.clone());
                spawn_local(async move {
                    let (s, _) = l.accept().await.unwrap();
                    count.set(count.get() + 1);
                    s
                })
            })
            .collect();
        // Let all three wait before any client connects.
        exec::yield_now().await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        for a in acceptors {
            a.await;
        }
        count.get()
    });
    assert_eq!(accepted, 3);
}

/// Binds a listener on a free loopback port on core 0 and one on the same
/// port on core 1, each served by `serve`; returns the address.
fn listen_on_cores_0_and_1<Fut: Future<Output = ()> + 'static>(
    serve: fn(TcpListener) -> Fut,
) -> SocketAddr {
    let addr = run_on(0, move || async move {
        let l = TcpListener::bind(loopback()).unwrap();
        let addr = l.local_addr().unwrap();
        spawn_local(serve(l)).detach();
        addr
    });
    run_on(1, move || async move {
        let l = TcpListener::bind(addr).unwrap();
        spawn_local(serve(l)).detach();
    });
    addr
}

#[test]
fn every_core_may_bind_the_same_port() {
    // Listeners on cores 0 and 1 share the port; each answers with its core.
    async fn serve(l: TcpListener) {
        loop {
            let (s, _) = l.accept().await.unwrap();
            s.write_all(&[cpu::current().0 as u8]).await.unwrap();
        }
    }
    let addr = listen_on_cores_0_and_1(serve);
    // Clients from a plain thread; each learns which core accepted it.
    let mut seen = [0u32; 2];
    for _ in 0..64 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut c, &mut b).unwrap();
        seen[b[0] as usize] += 1;
    }
    assert_eq!(seen[0] + seen[1], 64);
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "connections were not spread: {seen:?}"
    );
}

#[test]
fn a_process_listeners_share_connections_evenly() {
    // Listeners on cores 0 and 1 share the port; each connection is told
    // which core serves it and then echoes until the client closes it.
    async fn serve(l: TcpListener) {
        loop {
            let (s, _) = l.accept().await.unwrap();
            spawn_local(async move {
                s.write_all(&[cpu::current().0 as u8]).await.unwrap();
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            })
            .detach();
        }
    }
    let addr = listen_on_cores_0_and_1(serve);
    let connect = || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        // The connection works whichever core's socket accepted it.
        c.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        c.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping");
        (c, b[0] as usize)
    };
    // Held open, 8 connections split 4/4 whatever Linux's hash chose (it
    // alone splits 8 connections evenly about 27 % of the time).
    let mut held = Vec::new();
    let mut seen = [0u32; 2];
    for _ in 0..8 {
        let (c, core) = connect();
        seen[core] += 1;
        held.push((c, core));
    }
    assert_eq!(seen, [4, 4], "connections were not spread evenly");
    // Three of core 1's close: the next three go to core 1.
    let mut closed = 0;
    held.retain(|(_, core)| {
        let keep = *core != 1 || closed == 3;
        closed += usize::from(!keep);
        keep
    });
    // The server's streams drop once their tasks have read the end.
    std::thread::sleep(Duration::from_millis(300));
    let mut again = [0u32; 2];
    for _ in 0..3 {
        let (c, core) = connect();
        again[core] += 1;
        held.push((c, core));
    }
    assert_eq!(
        again,
        [0, 3],
        "new connections did not go where there was room"
    );
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let addr = closed_port();
    let e = run_on(1, move || async move {
        TcpStream::connect(addr).await.unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
}

#[test]
fn binding_a_port_held_without_reuseport_is_addr_in_use() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let e = run_on(
        0,
        move || async move { TcpListener::bind(addr).unwrap_err() },
    );
    assert_eq!(e.kind(), ErrorKind::AddrInUse);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let e = run_on(1, move || async move { UdpSocket::bind(addr).unwrap_err() });
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    // Not a local address at all.
    let e = run_on(1, || async {
        UdpSocket::bind("192.0.2.1:0".parse().unwrap()).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
}

#[test]
fn eof_and_writes_to_a_closed_peer() {
    let addr = serve_once_on(0, |s, _| async move { drop(s) });
    let (eof, write_err) = run_on(1, move || async move {
        let c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let eof = c.read(&mut buf).await.unwrap();
        // The peer is gone: writes fail (the first may still be accepted).
        let mut err = None;
        for _ in 0..100 {
            if let Err(e) = c.write(&[1; 1024]).await {
                err = Some(e);
                break;
            }
            exec::sleep(Duration::from_millis(1)).await;
        }
        (eof, err)
    });
    assert_eq!(eof, 0);
    let kind = write_err
        .expect("writing to a closed peer must fail")
        .kind();
    assert!(
        matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{kind:?}"
    );
}

#[test]
fn empty_reads_and_writes_return_zero_at_once() {
    let addr = serve_once_on(0, |s, _| async move {
        exec::sleep(Duration::from_millis(100)).await;
        drop(s);
    });
    let (r, w) = run_on(1, move || async move {
        let c = TcpStream::connect(addr).await.unwrap();
        (c.read(&mut []).await.unwrap(), c.write(&[]).await.unwrap())
    });
    assert_eq!((r, w), (0, 0));
}

#[test]
fn udp_round_trips_across_cores() {
    let server = run_on(0, || async {
        let s = UdpSocket::bind(loopback()).unwrap();
        let addr = s.local_addr().unwrap();
        spawn_local(async move {
            let mut buf = [0u8; 2048];
            for _ in 0..3 {
                let (n, from) = s.recv_from(&mut buf).await.unwrap();
                buf[..n].reverse();
                s.send_to(&buf[..n], from).await.unwrap();
            }
        })
        .detach();
        addr
    });
    let replies = run_on(1, move || async move {
        let c = UdpSocket::bind(loopback()).unwrap();
        let mut replies = Vec::new();
        for msg in [&b"abc"[..], b"", &[9u8; 1400]] {
            assert_eq!(c.send_to(msg, server).await.unwrap(), msg.len());
            let mut buf = [0u8; 2048];
            let (n, from) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, server);
            replies.push(buf[..n].to_vec());
        }
        replies
    });
    assert_eq!(replies, vec![b"cba".to_vec(), vec![], vec![9u8; 1400]]);
}

#[test]
fn udp_datagrams_are_truncated_to_the_buffer() {
    let (n, data) = run_on(1, || async {
        let a = UdpSocket::bind(loopback()).unwrap();
        let b = UdpSocket::bind(loopback()).unwrap();
        a.send_to(b"0123456789", b.local_addr().unwrap())
            .await
            .unwrap();
        let mut small = [0u8; 4];
        let (n, _) = b.recv_from(&mut small).await.unwrap();
        (n, small)
    });
    assert_eq!((n, &data), (4, b"0123"));
}

#[test]
fn sockets_are_usable_only_on_cores() {
    let e = TcpListener::bind(loopback()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = UdpSocket::bind(loopback()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    // And a core is what `run_on` gives.
    assert_eq!(run_on(1, || async { cpu::current() }), CoreId(1));
}

#[test]
fn read_buf_and_read_with_deliver_the_stream_in_order() {
    let payload = pattern(3 << 20);
    // A server that echoes with read_buf, buffer by buffer.
    let addr = serve_once_on(0, |s, _| async move {
        while let Some(buf) = s.read_buf().await.unwrap() {
            assert!(!buf.is_empty());
            s.write_all(&buf).await.unwrap();
        }
        assert!(
            s.read_buf().await.unwrap().is_none(),
            "the end stays the end"
        );
        s.shutdown().await.unwrap();
    });
    let expected = payload.clone();
    let (back, partial) = run_on(1, move || async move {
        let c = Rc::new(TcpStream::connect(addr).await.unwrap());
        let w = c.clone();
        let writer = spawn_local(async move {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap();
        });
        // At most 1,000 bytes per call: the rest must be offered again,
        // and interleaved plain reads and read_bufs must see it first.
        let mut back = Vec::new();
        let (mut calls, mut partial) = (0usize, 0usize);
        loop {
            calls += 1;
            match calls % 4 {
                0 => {
                    let mut small = [0u8; 333];
                    match c.read(&mut small).await.unwrap() {
                        0 => break,
                        n => back.extend_from_slice(&small[..n]),
                    }
                }
                1 => match c.read_buf().await.unwrap() {
                    None => break,
                    Some(b) => back.extend_from_slice(&b),
                },
                _ => {
                    let n = c
                        .read_with(|d| {
                            let n = d.len().min(1000);
                            partial += (n < d.len()) as usize;
                            back.extend_from_slice(&d[..n]);
                            n
                        })
                        .await
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                }
            }
        }
        writer.await;
        assert_eq!(
            c.read_with(|_| panic!("no data after the end"))
                .await
                .unwrap(),
            0
        );
        (back, partial)
    });
    assert_eq!(back.len(), expected.len());
    assert!(back == expected, "the bytes read differ from the stream");
    assert!(partial > 0, "read_with never left bytes for later");
}

#[test]
fn udp_recv_buf_returns_whole_datagrams_of_any_size() {
    let got = run_on(0, || async {
        let a = UdpSocket::bind(loopback()).unwrap();
        let b = UdpSocket::bind(loopback()).unwrap();
        let to = a.local_addr().unwrap();
        let mut got = Vec::new();
        for len in [0usize, 1, 1500, 60_000] {
            let msg = pattern(len);
            b.send_to(&msg, to).await.unwrap();
            let (d, from) = a.recv_buf().await.unwrap();
            assert_eq!(from, b.local_addr().unwrap());
            assert!(d == msg, "datagram of {len} bytes");
            got.push(d.len());
        }
        got
    });
    assert_eq!(got, [0, 1, 1500, 60_000]);
}

/// Connects and checks one byte comes back through an echoing server;
/// `false` if the server reset or closed the connection instead.
async fn echoes_a_byte(addr: SocketAddr, byte: u8) -> (TcpStream, bool) {
    let c = TcpStream::connect(addr).await.unwrap();
    let ok = c.write_all(&[byte]).await.is_ok() && {
        let mut b = [0u8; 1];
        matches!(c.read(&mut b).await, Ok(1)) && b[0] == byte
    };
    (c, ok)
}

#[test]
fn a_listener_limit_resets_the_excess_and_serves_the_rest() {
    let (answers, first_again, after_drop, rcvbuf) = run_on(0, || async {
        let l = ListenOptions::new()
            .rx_buffer(8192)
            .tx_buffer(8192)
            .max_connections(2)
            .bind(loopback())
            .unwrap();
        let addr = l.local_addr().unwrap();
        let rcvbuf = Rc::new(Cell::new(0));
        let seen = rcvbuf.clone();
        spawn_local(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let sock = socket2::SockRef::from(s.inner.get_ref());
                seen.set(sock.recv_buffer_size().unwrap());
                spawn_local(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        let mut held = Vec::new();
        let mut answers = Vec::new();
        for i in 0..5 {
            let (c, ok) = echoes_a_byte(addr, i).await;
            answers.push(ok);
            held.push(c);
        }
        // The first connection is still served.
        let first = &held[0];
        first.write_all(b"again").await.unwrap();
        let mut b = [0u8; 5];
        let mut n = 0;
        while n < 5 {
            n += first.read(&mut b[n..]).await.unwrap();
        }
        // Dropping an admitted client lets the server's stream end and
        // free its place (once the server has read the end: retried).
        held.remove(1);
        let mut after_drop = false;
        for _ in 0..200 {
            exec::sleep(Duration::from_millis(10)).await;
            if echoes_a_byte(addr, 9).await.1 {
                after_drop = true;
                break;
            }
        }
        (answers, &b == b"again", after_drop, rcvbuf.get())
    });
    assert_eq!(answers, [true, true, false, false, false]);
    assert!(first_again, "the first connection no longer echoes");
    assert!(
        after_drop,
        "a freed place was not given to a new connection"
    );
    // Linux doubles SO_RCVBUF for its bookkeeping.
    assert_eq!(rcvbuf, 2 * 8192);
}

#[test]
fn accept_failures_pause_longer_each_time_and_log_once_per_run() {
    let e = ebbrt_core::io::Error::from_os(ErrorKind::OutOfMemory, libc::EMFILE);
    let ep = tcp::Episode::default();
    let mut delays = Vec::new();
    for _ in 0..10 {
        ep.failed(None, &e);
        delays.push(ep.delay.get().unwrap().as_millis());
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
    assert_eq!(ep.failures.get(), 10);
    ep.worked(None);
    assert_eq!((ep.delay.get(), ep.failures.get()), (None, 0));
}

#[test]
fn write_chain_sends_every_buffer_in_order() {
    // More buffers than one writev takes, and more bytes than a socket
    // buffer holds, so that the chain goes in several partial writes.
    let body = pattern(3 << 20);
    let expected = body.clone();
    let received = run_on(0, move || async move {
        let l = TcpListener::bind(loopback()).unwrap();
        let addr = l.local_addr().unwrap();
        let server = spawn_local(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut chain = IoBufChain::new();
            let body = IoBuf::from(body);
            let mut at = 0;
            let mut piece = 1;
            while at < body.len() {
                let end = (at + piece).min(body.len());
                chain.push_back(body.slice(at..end));
                at = end;
                piece = piece % 4000 + 1;
            }
            assert!(chain.buffer_count() > tcp::MAX_IOVECS);
            s.write_chain(chain).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let c = TcpStream::connect(addr).await.unwrap();
        let got = read_to_end(&c).await.unwrap();
        server.await;
        got
    });
    assert!(received == expected, "the stream differs from the chain");
}

#[test]
fn a_short_read_waits_for_the_next_event_instead_of_asking_again() {
    // Request and reply, one at a time, with a plain thread as the client
    // (sending each request only after the previous reply, and a pause
    // now and then so that the server is asleep when bytes come): every
    // read that got fewer bytes than asked for emptied the queue, so the
    // server should not ask the kernel again before the next readiness
    // event. Without that, each round costs a second read that says
    // `WouldBlock`.
    const ROUNDS: u64 = 200;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        let mut reply = [0u8; 8];
        for i in 0..ROUNDS {
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            c.write_all(&i.to_le_bytes()).unwrap();
            c.read_exact(&mut reply).unwrap();
            assert_eq!(u64::from_le_bytes(reply), i + 1);
        }
    });
    let (served, reads) = run_on(1, move || async move {
        let l = TcpListener::bind(loopback()).unwrap();
        addr_tx.send(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        let before = crate::reactor::STREAM_READS.with(|n| n.get());
        let mut served = 0u64;
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            while got.len() >= 8 {
                let v = u64::from_le_bytes(got[..8].try_into().unwrap());
                got.drain(..8);
                s.write_all(&(v + 1).to_le_bytes()).await.unwrap();
                served += 1;
            }
        }
        let reads = crate::reactor::STREAM_READS.with(|n| n.get()) - before;
        (served, reads)
    });
    client.join().unwrap();
    assert_eq!(served, ROUNDS);
    // One read per request, the end of the stream, and a few that found
    // nothing (the first, and any whose event came for bytes a read had
    // already taken).
    assert!(
        reads <= ROUNDS + ROUNDS / 10,
        "{reads} reads for {ROUNDS} requests"
    );
}

#[test]
fn the_end_that_came_with_the_last_bytes_is_read_after_a_short_read() {
    // The bytes and the peer's FIN arrive while the core is busy, so one
    // event reports both; the read that takes the bytes is short. No event
    // follows, so the next read must still ask the kernel and see the end
    // (a lost wake-up here hangs the connection forever).
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(addr_rx.recv().unwrap()).unwrap();
        c.write_all(b"last words").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        sent_tx.send(()).unwrap();
        // Keep the socket open until the server is done with it.
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut rest).unwrap();
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let got = run_on(1, move || async move {
            let l = TcpListener::bind(loopback()).unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().await.unwrap();
            let reader = spawn_local(async move {
                let got = read_to_end(&s).await.unwrap();
                s.shutdown().await.unwrap();
                got
            });
            // Runs after the reader has registered its interest: the core
            // is busy (not polling) while both the bytes and the end come.
            spawn_local(async move {
                sent_rx.recv().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            })
            .detach();
            reader.await
        });
        done_tx.send(got).unwrap();
    });
    let got = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the reader never saw the end of the stream");
    assert_eq!(got, b"last words");
    client.join().unwrap();
}
