//! Host tests of the stack over simulated links (see `testing`: core 0
//! runs on a virtual clock, so retransmission timeouts cost no real time).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::ebb;
use ebbrt_core::ebb::{binding, bound, ids};
use ebbrt_core::exec::{self, spawn_local};
use ebbrt_core::io::ErrorKind;
use ebbrt_core::iobuf::{IoBuf, IoBufChain};
use ebbrt_core::{EbbRef, PerCore, PerCoreRoot};

use crate::config::{AddrConfig, Ipv4Net, NetConfig};
use crate::device::{NetDevice, NetDeviceEbb, NetQueue, QueueCaps};
use crate::frame::DropReason;
use crate::sim::{Impairments, SimDevice, SimLink, SimQueue};
use crate::testing::{SIM_CORE, run_on};
use crate::{
    ListenOptions, NetRoot, NetworkManager, Stack, StackOptions, TcpListener, TcpStream, UdpSocket,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn cfg(ip: Ipv4Addr) -> NetConfig {
    NetConfig {
        addr: AddrConfig::Static {
            net: Ipv4Net {
                addr: ip,
                prefix: 24,
            },
            gateway: None,
        },
        ..NetConfig::default()
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn stack(q: SimQueue, n: u8, ip: Ipv4Addr) -> Rc<Stack> {
    stack_with(q, n, cfg(ip))
}

fn stack_with(q: SimQueue, n: u8, config: NetConfig) -> Rc<Stack> {
    let s = Stack::new(
        Box::new(q),
        mac(n),
        StackOptions {
            config,
            queue_index: 0,
            queue_count: 1,
            run_dhcp: false,
        },
    );
    s.start();
    s
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// A pattern that makes misordered or corrupted bytes visible.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An echo server on `stack`: every connection is echoed until EOF.
fn echo_server(stack: &Rc<Stack>, port: u16) {
    echo_server_with(stack, port, ListenOptions::new());
}

/// [`echo_server`] with a listener bound with `opts`.
fn echo_server_with(stack: &Rc<Stack>, port: u16, opts: ListenOptions) {
    let l = opts
        .bind_on(stack, sa(Ipv4Addr::UNSPECIFIED, port))
        .unwrap();
    spawn_local(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            spawn_local(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown().await;
            })
            .detach();
        }
    })
    .detach();
}

/// Sends `data` through an echo connection (writing and reading
/// concurrently) and returns what came back.
async fn echo_through(s: Rc<TcpStream>, data: Vec<u8>) -> Vec<u8> {
    let w = {
        let s = s.clone();
        let data = data.clone();
        spawn_local(async move {
            for chunk in data.chunks(3000) {
                s.write_all(chunk).await.unwrap();
            }
            s.shutdown().await.unwrap();
        })
    };
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    w.await;
    got
}

#[test]
fn tcp_echo_over_a_clean_link() {
    let (got, want, stats) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        echo_server(&a, 7);
        let s = match TcpStream::connect_on(&b, sa(A, 7)).await {
            Ok(s) => s,
            Err(e) => panic!("{e}: a {:?} b {:?}", a.stats(), b.stats()),
        };
        assert_eq!(s.peer_addr().unwrap(), sa(A, 7));
        assert_eq!(s.local_addr().unwrap().ip(), core::net::IpAddr::V4(B));
        let data = pattern(1 << 20, 7);
        let got = echo_through(Rc::new(s), data.clone()).await;
        (got, data, a.stats())
    });
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the echoed stream differs");
    assert_eq!(stats.dropped_total(), 0);
}

#[test]
fn tcp_survives_loss_reordering_duplication_and_corruption() {
    let (got, want, link, a_stats, b_stats) = run_on(SIM_CORE, || async {
        let imp = Impairments {
            loss_ppm: 20_000,
            reorder_ppm: 50_000,
            duplicate_ppm: 10_000,
            corrupt_ppm: 10_000,
            delay: Duration::from_micros(200),
            reorder_delay: Duration::from_millis(2),
            seed: 42,
        };
        let link = SimLink::new(1, 1, imp, QueueCaps::default());
        let (a, b) = (stack(link.queue_a(0), 1, A), stack(link.queue_b(0), 2, B));
        echo_server(&a, 7);
        let s = TcpStream::connect_on(&b, sa(A, 7)).await.unwrap();
        let data = pattern(256 * 1024, 9);
        let got = echo_through(Rc::new(s), data.clone()).await;
        (got, data, link.stats(), a.stats(), b.stats())
    });
    assert!(
        got == want,
        "the echoed stream differs ({} of {} bytes)",
        got.len(),
        want.len()
    );
    assert!(
        link.lost > 0 && link.reordered > 0 && link.duplicated > 0 && link.corrupted > 0,
        "{link:?}"
    );
    // Corrupted frames that reached a stack were caught by a check (a
    // flipped bit in an Ethernet address or padding may pass unnoticed; a
    // corrupted frame may also be duplicated).
    let caught = a_stats.dropped_total() + b_stats.dropped_total();
    assert!(
        caught > 0 && caught <= 2 * link.corrupted,
        "caught {caught} of {} corrupted",
        link.corrupted
    );
}

#[test]
fn checksum_offload_paths_work_end_to_end() {
    let got_ok = run_on(SIM_CORE, || async {
        let caps = QueueCaps {
            mtu: 1500,
            rx_checksum: true,
            tx_checksum: true,
        };
        let link = SimLink::new(1, 1, Impairments::default(), caps);
        let (a, b) = (stack(link.queue_a(0), 1, A), stack(link.queue_b(0), 2, B));
        echo_server(&a, 7);
        let s = TcpStream::connect_on(&b, sa(A, 7)).await.unwrap();
        let data = pattern(100_000, 3);
        let got = echo_through(Rc::new(s), data.clone()).await;
        got == data && a.stats().dropped_total() == 0
    });
    assert!(got_ok);
}

#[test]
fn sequential_and_concurrent_connections() {
    let (seq, conc) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        echo_server(&a, 7);
        let mut seq = 0;
        for i in 0..300u32 {
            let s = TcpStream::connect_on(&b, sa(A, 7)).await.unwrap();
            let msg = i.to_be_bytes();
            s.write_all(&msg).await.unwrap();
            let mut back = [0u8; 4];
            let mut n = 0;
            while n < 4 {
                n += s.read(&mut back[n..]).await.unwrap();
            }
            assert_eq!(back, msg);
            seq += 1;
        }
        let handles: Vec<_> = (0..100u32)
            .map(|i| {
                let b = b.clone();
                spawn_local(async move {
                    let s = TcpStream::connect_on(&b, sa(A, 7)).await.unwrap();
                    let data = pattern(2000, i + 1);
                    echo_through(Rc::new(s), data.clone()).await == data
                })
            })
            .collect();
        let mut conc = 0;
        for h in handles {
            conc += h.await as u32;
        }
        // Closed connections are reclaimed (TIME-WAIT passes on the
        // virtual clock).
        exec::sleep(Duration::from_secs(30)).await;
        assert!(
            a.stats().tcp_sockets <= 8,
            "server sockets left: {}",
            a.stats().tcp_sockets
        );
        assert!(
            b.stats().tcp_sockets == 0,
            "client sockets left: {}",
            b.stats().tcp_sockets
        );
        (seq, conc)
    });
    assert_eq!((seq, conc), (300, 100));
}

#[test]
fn connect_to_a_closed_port_is_refused_and_bad_addresses_are_errors() {
    let (refused, v6, used) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let refused = TcpStream::connect_on(&b, sa(A, 9))
            .await
            .unwrap_err()
            .kind();
        let v6 = TcpListener::bind_on(&a, "[::1]:80".parse().unwrap())
            .unwrap_err()
            .kind();
        let _u = UdpSocket::bind_on(&a, sa(A, 53)).unwrap();
        let used = UdpSocket::bind_on(&a, sa(A, 53)).unwrap_err().kind();
        let other = TcpListener::bind_on(&a, sa(B, 80)).unwrap_err().kind();
        assert_eq!(other, ErrorKind::AddrNotAvailable);
        (refused, v6, used)
    });
    assert_eq!(refused, ErrorKind::ConnectionRefused);
    assert_eq!(v6, ErrorKind::Unsupported);
    assert_eq!(used, ErrorKind::AddrInUse);
}

#[test]
fn writes_wait_for_the_window_without_spinning() {
    let (polls_while_blocked, total) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let l = TcpListener::bind_on(&a, sa(A, 5000)).unwrap();
        let c = Rc::new(TcpStream::connect_on(&b, sa(A, 5000)).await.unwrap());
        let (srv, _) = l.accept().await.unwrap();
        // The server does not read: the client fills its send buffer and
        // the server's receive window, then its write must wait.
        let writer = {
            let c = c.clone();
            spawn_local(async move {
                let chunk = vec![7u8; 16 * 1024];
                let mut total = 0usize;
                for _ in 0..16 {
                    c.write_all(&chunk).await.unwrap();
                    total += chunk.len();
                }
                total
            })
        };
        exec::sleep(Duration::from_millis(100)).await;
        let before = a.stats().polls + b.stats().polls;
        exec::sleep(Duration::from_secs(5)).await;
        let polls = a.stats().polls + b.stats().polls - before;
        // Drain: the writer completes.
        let mut buf = vec![0u8; 65536];
        let mut got = 0;
        let reader = spawn_local(async move {
            while got < 16 * 16 * 1024 {
                got += srv.read(&mut buf).await.unwrap();
            }
            got
        });
        let total = writer.await;
        assert_eq!(reader.await, total);
        (polls, total)
    });
    assert_eq!(total, 16 * 16 * 1024);
    // Zero-window probes back off exponentially: a handful in 5 s.
    assert!(
        polls_while_blocked < 40,
        "{polls_while_blocked} polls while blocked"
    );
}

#[test]
fn udp_round_trips_and_truncation() {
    let (echoed, trunc) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let server = UdpSocket::bind_on(&a, sa(A, 7)).unwrap();
        spawn_local(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                server.send_to(&buf[..n], from).await.unwrap();
            }
        })
        .detach();
        let c = UdpSocket::bind_on(&b, sa(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        assert_ne!(c.local_addr().unwrap().port(), 0);
        let mut echoed = 0;
        for i in 0..200u32 {
            let msg = pattern(1 + (i as usize * 7) % 1400, i);
            c.send_to(&msg, sa(A, 7)).await.unwrap();
            let mut buf = vec![0u8; 2048];
            let (n, from) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, sa(A, 7));
            echoed += (buf[..n] == msg[..]) as u32;
        }
        c.send_to(&[1u8; 100], sa(A, 7)).await.unwrap();
        let mut small = [0u8; 10];
        let (n, _) = c.recv_from(&mut small).await.unwrap();
        (echoed, n)
    });
    assert_eq!(echoed, 200);
    assert_eq!(trunc, 10);
}

/// Builds an Ethernet frame carrying an IPv4 packet from B to A.
fn ipv4_frame(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + payload.len()];
    f[0..6].copy_from_slice(&mac(1));
    f[6..12].copy_from_slice(&mac(2));
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&B.octets());
    ip[16..20].copy_from_slice(&A.octets());
    let c = !crate::frame::fold(crate::frame::sum16(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..].copy_from_slice(payload);
    f
}

fn icmp_echo_request(id: u16, data: &[u8]) -> Vec<u8> {
    let mut p = vec![8u8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(data);
    let c = !crate::frame::fold(crate::frame::sum16(0, &p));
    p[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(1, &p)
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&mac(2));
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac(2));
    f.extend_from_slice(&B.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&A.octets());
    f
}

/// Collects what the stack transmitted to the raw peer queue.
fn drain(q: &mut SimQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(f) = q.receive() {
        out.push(f.data().to_vec());
    }
    out
}

#[test]
fn answers_arp_and_ping() {
    let (arp, pong) = run_on(SIM_CORE, || async {
        let link = SimLink::new(1, 1, Impairments::default(), QueueCaps::default());
        let (qa, mut raw) = (link.queue_a(0), link.queue_b(0));
        let inj = qa.inject_handle();
        let a = stack(qa, 1, A);
        inj.inject(&arp_request());
        exec::sleep(Duration::from_millis(1)).await;
        let arp = drain(&mut raw);
        assert_eq!(a.stats().tx_frames, link.stats().sent);
        inj.inject(&icmp_echo_request(0x1234, b"hello ping"));
        exec::sleep(Duration::from_millis(1)).await;
        (arp, drain(&mut raw))
    });
    assert_eq!(arp.len(), 1, "{arp:?}");
    let r = &arp[0];
    assert_eq!(&r[12..14], &[0x08, 0x06]);
    assert_eq!(&r[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&r[22..28], &mac(1), "with A's hardware address");
    assert_eq!(&r[28..32], &A.octets());
    assert_eq!(pong.len(), 1, "{pong:?}");
    let p = &pong[0];
    assert_eq!(p[14 + 9], 1, "ICMP");
    assert_eq!(&p[26..30], &A.octets());
    assert_eq!(&p[30..34], &B.octets());
    assert_eq!(p[34], 0, "echo reply");
    assert_eq!(&p[38..40], &[0x12, 0x34]);
    assert_eq!(&p[42..], b"hello ping");
    assert_eq!(
        crate::frame::fold(crate::frame::sum16(0, &p[34..])),
        0xffff,
        "valid ICMP checksum"
    );
}

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let (stats, still_echoes) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let inj = qa.inject_handle();
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        echo_server(&a, 7);
        let good = icmp_echo_request(1, &[0u8; 32]);
        // Truncated: Ethernet only; an IPv4 header cut short; a total
        // length beyond the frame; a TCP header cut short.
        inj.inject(&good[..10]);
        inj.inject(&good[..20]);
        let mut long_claim = good.clone();
        long_claim[16..18].copy_from_slice(&2000u16.to_be_bytes());
        inj.inject(&long_claim);
        inj.inject(&ipv4_frame(6, &[0u8; 8]));
        // Bad IP checksum; bad ICMP checksum; bad TCP and UDP checksums.
        let mut bad_ip = good.clone();
        bad_ip[24] ^= 0xff;
        inj.inject(&bad_ip);
        let mut bad_icmp = good.clone();
        bad_icmp[40] ^= 0x01;
        inj.inject(&bad_icmp);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp[16] = 0xde;
        inj.inject(&ipv4_frame(6, &tcp));
        let mut udp = vec![0u8; 12];
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        udp[6] = 0x12;
        inj.inject(&ipv4_frame(17, &udp));
        // Oversized, a bad IP version, a header length below 20.
        inj.inject(&vec![0u8; 1600]);
        let mut v6ish = good.clone();
        v6ish[14] = 0x65;
        inj.inject(&v6ish);
        let mut short_ihl = good.clone();
        short_ihl[14] = 0x44;
        inj.inject(&short_ihl);
        // Garbage of every length up to 100.
        for len in 0..100 {
            inj.inject(&pattern(len, len as u32 + 1));
        }
        exec::sleep(Duration::from_millis(5)).await;
        let s = TcpStream::connect_on(&b, sa(A, 7)).await.unwrap();
        let data = pattern(10_000, 1);
        let ok = echo_through(Rc::new(s), data.clone()).await == data;
        (a.stats(), ok)
    });
    assert!(still_echoes);
    assert!(stats.dropped(DropReason::Truncated) >= 4, "{stats:?}");
    assert_eq!(stats.dropped(DropReason::BadIpChecksum), 1, "{stats:?}");
    assert!(stats.dropped(DropReason::BadChecksum) >= 3, "{stats:?}");
    assert_eq!(stats.dropped(DropReason::Oversized), 1, "{stats:?}");
    assert!(stats.dropped(DropReason::BadIpHeader) >= 2, "{stats:?}");
}

/// A network manager over a simulated NIC whose other end is a plain
/// stack (the "host") on the simulation core.
fn manager(queues: usize) -> (EbbRef<NetworkManager>, SimLink) {
    run_on(SIM_CORE, move || async move { manager_here(queues) })
}

fn manager_here(queues: usize) -> (EbbRef<NetworkManager>, SimLink) {
    let link = SimLink::new(queues, 1, Impairments::default(), QueueCaps::default());
    let dev = SimDevice::new(mac(1), (0..queues).map(|i| link.queue_a(i)).collect());
    let config = NetConfig {
        max_queues: Some(queues),
        ..cfg(A)
    };
    let dev: &'static SimDevice = Box::leak(Box::new(dev));
    let mgr = NetworkManager::create(NetRoot::new(Some(dev), config)).unwrap();
    (mgr, link)
}

#[test]
fn single_queue_other_cores_reach_the_stack_through_spawn_on() {
    let (mgr, link) = manager(1);
    // The host end lives on the simulation core, beside core 0's stack.
    run_on(SIM_CORE, move || async move {
        assert_eq!(mgr.owner(), Some(CoreId(0)));
        let host = stack(link.queue_b(0), 2, B);
        HOST.with(|h| *h.borrow_mut() = Some(host));
    });
    // A server on core 1: its sockets live in core 0's stack.
    let echoed = run_on(1, move || async move {
        assert_eq!(mgr.owner(), Some(CoreId(0)));
        assert!(mgr.local_stack().is_none());
        let l = TcpListener::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let u = UdpSocket::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 9)).unwrap();
        let client = exec::spawn_on_with(CoreId(SIM_CORE), || async move {
            let host = HOST.with(|h| h.borrow().clone()).unwrap();
            let s = TcpStream::connect_on(&host, sa(A, 7)).await.unwrap();
            let data = pattern(200_000, 5);
            let ok = echo_through(Rc::new(s), data.clone()).await == data;
            let us = UdpSocket::bind_on(&host, sa(B, 0)).unwrap();
            us.send_to(b"ping", sa(A, 9)).await.unwrap();
            let mut buf = [0u8; 16];
            let (n, _) = us.recv_from(&mut buf).await.unwrap();
            ok && &buf[..n] == b"ping"
        });
        let (s, peer) = l.accept().await.unwrap();
        assert_eq!(peer.ip(), core::net::IpAddr::V4(B));
        assert_eq!(s.peer_addr().unwrap(), peer);
        let mut buf = vec![0u8; 10_000];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
        s.shutdown().await.unwrap();
        let mut ub = [0u8; 16];
        let (n, from) = u.recv_from(&mut ub).await.unwrap();
        u.send_to(&ub[..n], from).await.unwrap();
        client.await
    });
    assert!(echoed);
}

std::thread_local! {
    static HOST: core::cell::RefCell<Option<Rc<Stack>>> = const { core::cell::RefCell::new(None) };
}

#[test]
fn multiqueue_runs_one_stack_per_core_and_shares_arp() {
    let (mgr, link) = manager(2);
    // Both stacks start when either core first uses the manager.
    let per_core = [0u32, 1].map(|c| {
        run_on(c, move || async move {
            let s = mgr
                .local_stack()
                .expect("every core below the queue count owns a stack");
            let l = TcpListener::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
            spawn_local(async move {
                loop {
                    let Ok((s, _)) = l.accept().await else { return };
                    spawn_local(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = s.shutdown().await;
                    })
                    .detach();
                }
            })
            .detach();
            let _ = s;
        });
        c
    });
    assert_eq!(per_core, [0, 1]);
    // The host runs on a real-time core: on the virtual clock it would not
    // wait for core 1's stack.
    let ok = run_on(2, move || async move {
        let host = stack(link.queue_b(0), 2, B);
        let mut ok = 0;
        for i in 0..40u32 {
            let s = TcpStream::connect_on(&host, sa(A, 7)).await.unwrap();
            let data = pattern(500, i + 1);
            ok += (echo_through(Rc::new(s), data.clone()).await == data) as u32;
        }
        ok
    });
    assert_eq!(ok, 40);
    // Both stacks served connections (the link steers by flow hash).
    let served =
        [0u32, 1].map(|c| run_on(c, move || async move { mgr.stats().unwrap().tx_frames }));
    assert!(
        served.iter().all(|&n| n > 10),
        "frames sent per stack: {served:?}"
    );
    let fwd = run_on(0, move || async move { mgr.stats().unwrap().forwarded });
    let fwd1 = run_on(1, move || async move { mgr.stats().unwrap().forwarded });
    assert!(fwd + fwd1 > 0, "ARP answers are shared between the stacks");
}

/// Reads a stream to its end with `read_with`, consuming at most `step`
/// bytes per call (the rest must be offered again).
async fn read_all_with(s: &TcpStream, step: usize) -> (Vec<u8>, usize) {
    let mut got = Vec::new();
    let mut calls = 0;
    loop {
        let n = s
            .read_with(|data| {
                let n = data.len().min(step);
                got.extend_from_slice(&data[..n]);
                n
            })
            .await
            .unwrap();
        calls += 1;
        if n == 0 {
            return (got, calls);
        }
    }
}

#[test]
fn read_buf_and_read_with_deliver_the_stream_in_order() {
    let (got, calls, bufs, want) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        // A server that echoes with read_buf: the buffers go back as they
        // came, and it counts them.
        let l = TcpListener::bind_on(&a, sa(A, 7)).unwrap();
        let server = spawn_local(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut bufs = 0;
            while let Some(buf) = s.read_buf().await.unwrap() {
                assert!(!buf.is_empty());
                bufs += 1;
                s.write_all(&buf).await.unwrap();
            }
            // The end stays the end.
            assert!(s.read_buf().await.unwrap().is_none());
            s.shutdown().await.unwrap();
            bufs
        });
        let s = Rc::new(TcpStream::connect_on(&b, sa(A, 7)).await.unwrap());
        let data = pattern(300_000, 11);
        let w = {
            let (s, data) = (s.clone(), data.clone());
            spawn_local(async move {
                s.write_all(&data).await.unwrap();
                s.shutdown().await.unwrap();
            })
        };
        let (got, calls) = read_all_with(&s, 1000).await;
        w.await;
        // Reading on after the end: 0 again.
        assert_eq!(
            s.read_with(|_| panic!("no data after the end"))
                .await
                .unwrap(),
            0
        );
        (got, calls, server.await, data)
    });
    assert!(
        got == want,
        "read_with delivered {} bytes, not the stream",
        got.len()
    );
    assert!(
        calls > want.len() / 1000,
        "{calls} calls of at most 1000 bytes"
    );
    assert!(bufs > 1 && bufs < want.len() / 100, "{bufs} buffers");
}

#[test]
fn remote_streams_and_sockets_hand_buffers_across_cores() {
    let (mgr, link) = manager(1);
    // The server lives on core 1, its sockets in core 0's stack; the host
    // end (a plain stack) on the simulation core.
    let (echoed, udp) = run_on(1, move || async move {
        let l = TcpListener::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 17)).unwrap();
        let u = UdpSocket::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 19)).unwrap();
        let client = exec::spawn_on_with(CoreId(SIM_CORE), move || async move {
            let host = stack(link.queue_b(0), 2, B);
            let s = TcpStream::connect_on(&host, sa(A, 17)).await.unwrap();
            let data = pattern(150_000, 3);
            let tcp = echo_through(Rc::new(s), data.clone()).await == data;
            let us = UdpSocket::bind_on(&host, sa(B, 0)).unwrap();
            let msg = pattern(1200, 9);
            us.send_to(&msg, sa(A, 19)).await.unwrap();
            let (back, from) = us.recv_buf().await.unwrap();
            (tcp, back == msg && from == sa(A, 19))
        });
        let (s, _) = l.accept().await.unwrap();
        // Mix the three ways of reading: a short read leaves the rest of
        // the buffer pending, read_with takes part of it, read_buf the rest.
        let mut small = [0u8; 7];
        let mut turn = 0;
        loop {
            let chunk: Vec<u8> = match turn % 3 {
                0 => match s.read(&mut small).await.unwrap() {
                    0 => break,
                    n => small[..n].to_vec(),
                },
                1 => {
                    let mut v = Vec::new();
                    let n = s
                        .read_with(|d| {
                            let n = d.len().min(501);
                            v.extend_from_slice(&d[..n]);
                            n
                        })
                        .await
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                    v
                }
                _ => match s.read_buf().await.unwrap() {
                    None => break,
                    Some(b) => b.into_vec(),
                },
            };
            turn += 1;
            s.write_all(&chunk).await.unwrap();
        }
        s.shutdown().await.unwrap();
        let (d, from) = u.recv_buf().await.unwrap();
        assert_eq!(d.len(), 1200);
        u.send_to(&d, from).await.unwrap();
        client.await
    });
    assert!(
        echoed,
        "the TCP echo through core 0's stack came back wrong"
    );
    assert!(udp, "the UDP datagram came back wrong");
}

#[test]
fn udp_recv_buf_returns_whole_datagrams() {
    let sizes = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let server = UdpSocket::bind_on(&a, sa(A, 8)).unwrap();
        let c = UdpSocket::bind_on(&b, sa(B, 0)).unwrap();
        let mut sizes = Vec::new();
        for len in [1usize, 100, 1472] {
            let msg = pattern(len, len as u32);
            c.send_to(&msg, sa(A, 8)).await.unwrap();
            let (got, from) = server.recv_buf().await.unwrap();
            assert_eq!(from, c.local_addr().map(|l| sa(B, l.port())).unwrap());
            assert!(got == msg);
            sizes.push(got.len());
        }
        sizes
    });
    assert_eq!(sizes, [1, 100, 1472]);
}

#[test]
fn stats_add_up_and_print_as_key_value_words() {
    let mut a = crate::StackStats {
        rx_frames: 10,
        tx_frames: 4,
        ..Default::default()
    };
    a.rx_dropped[DropReason::Oversized.index()] = 2;
    let mut b = a.clone();
    b.rx_dropped[DropReason::BadChecksum.index()] = 5;
    b.tcp_sockets = 3;
    b.tcp_buffer_bytes = 4096;
    b.refused_no_memory = 2;
    b.refused_limit = 1;
    a.add(&b);
    assert_eq!(a.rx_frames, 20);
    assert_eq!(a.dropped(DropReason::Oversized), 4);
    assert_eq!(a.dropped_total(), 9);
    assert_eq!(
        std::format!("{a}"),
        "rx_frames=20 tx_frames=8 dropped=9 truncated=0 oversized=4 bad_ip_header=0 \
         bad_ip_checksum=0 bad_checksum=5 tx_dropped=0 forwarded=0 injected=0 tcp_sockets=3 \
         tcp_buffer_bytes=4096 refused_no_memory=2 refused_limit=1"
    );
}

// The interface's link-time list is declared in this crate, so the macro
// that `linkme` generates to add a binding to it is local here, and its
// `link_section` meets the crate's `unsafe_code` lint (in a driver crate it
// is another crate's macro, which the lint does not look into).
#[allow(unsafe_code)]
mod test_nic {
    use super::*;

    /// A NIC driver's Ebb in miniature, as a driver crate writes one: per-core
    /// at `NET_DEVICE`, implementing the interface `NetDeviceEbb`, its root
    /// holding the device (here a simulated NIC and its link). The only NIC in
    /// this test binary: the other tests build their managers over devices of
    /// their own (`NetRoot::new`), and none uses the default manager.
    #[ebb(per_core, id = ids::NET_DEVICE, interface = NetDeviceEbb, root = TestNicRoot, new = TestNic::new, root_new = TestNic::new_root)]
    pub(super) struct TestNic {
        pub(super) root: &'static PerCoreRoot<TestNic>,
    }

    pub(super) struct TestNicRoot {
        device: SimDevice,
        pub(super) link: SimLink,
    }

    impl TestNic {
        fn new(root: &'static PerCoreRoot<Self>, _core: CoreId) -> Self {
            TestNic { root }
        }

        fn new_root() -> TestNicRoot {
            let link = SimLink::new(1, 1, Impairments::default(), QueueCaps::default());
            TestNicRoot {
                device: SimDevice::new(mac(0x70), vec![link.queue_a(0)]),
                link,
            }
        }
    }

    impl NetDeviceEbb for TestNic {
        fn device(&'static self) -> Option<&'static dyn NetDevice> {
            Some(&self.root.data().device)
        }
    }
}

use test_nic::TestNic;

#[test]
fn the_nic_ebb_is_the_one_bound_and_every_core_reaches_its_device() {
    let b = binding::<dyn NetDeviceEbb>().expect("one NIC Ebb is bound");
    assert_eq!((b.component, b.crate_name), ("TestNic", "ebbrt-net"));
    let r = ebbrt_core::registry::find("TestNic").expect("its record is linked");
    assert_eq!(r.id, Some(ids::NET_DEVICE));
    assert_eq!(r.interface, "ebbrt_net::device::NetDeviceEbb");
    // Every core reaches the one device through its own representative.
    let on = [0u32, 1].map(|c| {
        run_on(c, || async {
            let rep = bound::<dyn NetDeviceEbb>().unwrap();
            let d = rep.device().expect("the test NIC has a device");
            (
                rep as *const dyn NetDeviceEbb as *const () as usize,
                d as *const dyn NetDevice as *const () as usize,
                d.mac(),
            )
        })
    });
    assert_ne!(on[0].0, on[1].0, "one representative per core");
    assert_eq!((on[0].1, on[0].2), (on[1].1, on[1].2), "one device");
    assert_eq!(on[0].2, mac(0x70));
    static NIC: EbbRef<TestNic> = EbbRef::fixed();
    let reps = run_on(0, || async {
        NIC.root.cores_with_reps().map(|c| c.0).collect::<Vec<_>>()
    });
    assert_eq!(reps, [0, 1]);
}

#[test]
fn a_network_manager_over_the_bound_nic_carries_a_tcp_echo() {
    static NIC: EbbRef<TestNic> = EbbRef::fixed();
    let echoed = run_on(SIM_CORE, || async {
        let device = bound::<dyn NetDeviceEbb>().unwrap().device();
        let mgr = NetworkManager::create(NetRoot::new(device, cfg(A))).unwrap();
        let l = TcpListener::bind_with(mgr, sa(A, 7)).unwrap();
        spawn_local(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 2048];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
            s.shutdown().await.unwrap();
        })
        .detach();
        let host = stack(NIC.root.data().link.queue_b(0), 2, B);
        let c = TcpStream::connect_on(&host, sa(A, 7)).await.unwrap();
        let data = pattern(50_000, 3);
        echo_through(Rc::new(c), data.clone()).await == data
    });
    assert!(echoed);
}

#[test]
fn rx_frame_from_vec_takes_the_buffer_and_from_bytes_copies() {
    use crate::device::RxFrame;
    let bytes = vec![1u8, 2, 3, 4, 5];
    let ptr = bytes.as_ptr();
    let f = RxFrame::from_vec(bytes);
    assert_eq!(f.buf.as_ptr(), ptr, "from_vec moves the buffer in");
    assert_eq!((f.start, f.len, f.checksum_ok), (0, 5, false));
    assert_eq!(f.token, RxFrame::DETACHED);
    assert_eq!(f.data(), [1, 2, 3, 4, 5]);
    let g = RxFrame::from_bytes(f.data());
    assert_eq!((g.start, g.len, g.checksum_ok), (0, 5, false));
    assert_eq!(g.token, RxFrame::DETACHED);
    assert_eq!(g.data(), f.data());
}

/// Opens connections from `client` to `server` one after the other until
/// `tries` were made; returns those established (each has echoed a byte)
/// and how many were refused. Any other outcome fails the test.
async fn flood(client: &Rc<Stack>, server: SocketAddr, tries: usize) -> (Vec<TcpStream>, usize) {
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..tries {
        match TcpStream::connect_on(client, server).await {
            Ok(s) => {
                s.write_all(&[i as u8]).await.unwrap();
                let mut b = [0u8; 1];
                assert_eq!(s.read(&mut b).await.unwrap(), 1);
                assert_eq!(b[0], i as u8);
                open.push(s);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused += 1,
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    (open, refused)
}

/// The first connection of a flood still carries a stream both ways.
async fn still_echoes(s: TcpStream, seed: u32) -> bool {
    let data = pattern(20_000, seed);
    echo_through(Rc::new(s), data.clone()).await == data
}

#[test]
fn a_listener_limit_refuses_the_excess_and_serves_the_rest() {
    let (open, refused, stats, first_ok, again) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let opts = ListenOptions::new()
            .rx_buffer(2048)
            .tx_buffer(2048)
            .max_connections(5);
        echo_server_with(&a, 7, opts);
        let (mut open, refused) = flood(&b, sa(A, 7), 12).await;
        let stats = a.stats();
        let n = open.len();
        // Room again once a connection is dropped (and reclaimed).
        open.truncate(n - 1);
        exec::sleep(Duration::from_secs(30)).await;
        let (more, _) = flood(&b, sa(A, 7), 1).await;
        let first_ok = still_echoes(open.swap_remove(0), 3).await;
        (n, refused, stats, first_ok, more.len())
    });
    assert_eq!((open, refused), (5, 7));
    assert_eq!((stats.refused_limit, stats.refused_no_memory), (7, 0));
    // The listener's buffers, not the stack's 64 KiB.
    assert_eq!(stats.tcp_buffer_bytes, 5 * 4096);
    assert!(first_ok, "the first connection no longer echoes");
    assert_eq!(again, 1, "a dropped connection's place was not freed");
}

#[test]
fn connections_beyond_the_memory_budget_are_refused_and_counted() {
    let (open, refused, stats, first_ok) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        // Room for eight sockets of 64 KiB each way: four listening, so
        // four connections and a listening socket per freed place.
        let config = NetConfig {
            tcp_memory: Some(8 * 128 * 1024),
            ..cfg(A)
        };
        let (a, b) = (stack_with(qa, 1, config), stack(qb, 2, B));
        echo_server(&a, 7);
        let (mut open, refused) = flood(&b, sa(A, 7), 20).await;
        let stats = a.stats();
        let first_ok = still_echoes(open.swap_remove(0), 5).await;
        (open.len() + 1, refused, stats, first_ok)
    });
    assert_eq!((open, refused), (8, 12));
    assert_eq!((stats.refused_no_memory, stats.refused_limit), (12, 0));
    assert!(stats.tcp_buffer_bytes <= 8 * 128 * 1024, "{stats:?}");
    assert!(first_ok, "the first connection no longer echoes");
}

#[test]
fn buffers_the_allocator_cannot_give_refuse_the_connection_instead_of_panicking() {
    let (refused, stats, other_ok) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        echo_server(&a, 8);
        // No budget: the allocator itself says no.
        echo_server_with(&a, 7, ListenOptions::new().rx_buffer(usize::MAX / 4));
        let (open, refused) = flood(&b, sa(A, 7), 3).await;
        assert!(open.is_empty());
        let (mut other, _) = flood(&b, sa(A, 8), 1).await;
        let other_ok = still_echoes(other.remove(0), 7).await;
        (refused, a.stats(), other_ok)
    });
    assert_eq!(refused, 3);
    assert_eq!(stats.refused_no_memory, 3);
    assert!(other_ok, "another port stopped serving");
}

#[test]
fn a_full_socket_table_refuses_connections_and_connects() {
    let (open, refused, stats, connect_err, first_ok) = run_on(SIM_CORE, || async {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let config = NetConfig {
            max_tcp_sockets: 6,
            ..cfg(A)
        };
        let (a, b) = (stack_with(qa, 1, config), stack(qb, 2, B));
        echo_server(&a, 7);
        // Four listening sockets and two connections fill the table; each
        // accepted connection then takes a listening socket's place.
        let (mut open, refused) = flood(&b, sa(A, 7), 10).await;
        let stats = a.stats();
        let connect_err = TcpStream::connect_on(&a, sa(B, 9)).await.unwrap_err();
        let first_ok = still_echoes(open.swap_remove(0), 9).await;
        (open.len() + 1, refused, stats, connect_err, first_ok)
    });
    assert_eq!((open, refused), (6, 4));
    assert_eq!((stats.refused_limit, stats.tcp_sockets), (4, 6));
    assert_eq!(connect_err.kind(), ErrorKind::OutOfMemory);
    assert!(first_ok, "the first connection no longer echoes");
}

#[test]
fn listeners_of_one_port_must_agree_on_their_options() {
    let kinds = run_on(SIM_CORE, || async {
        let (qa, _qb) = SimLink::pair(Impairments::default());
        let a = stack(qa, 1, A);
        let opts = ListenOptions::new().max_connections(3);
        let _l = opts.bind_on(&a, sa(A, 7)).unwrap();
        let same = opts.bind_on(&a, sa(A, 7)).map(|_| ());
        let other = ListenOptions::new().bind_on(&a, sa(A, 7)).map(|_| ());
        (same.is_ok(), other.unwrap_err().kind())
    });
    assert_eq!(kinds, (true, ErrorKind::InvalidInput));
}

/// A chain of `data` in pieces of 1 to 5,000 bytes, sharing its buffer.
fn chain_of(data: &[u8]) -> IoBufChain {
    let whole = IoBuf::copy_from_slice(data);
    let mut chain = IoBufChain::new();
    let (mut at, mut piece) = (0, 1);
    while at < whole.len() {
        let end = (at + piece).min(whole.len());
        chain.push_back(whole.slice(at..end));
        at = end;
        piece = piece * 7 % 5000 + 1;
    }
    chain
}

async fn read_all(s: &TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(b) = s.read_buf().await.unwrap() {
        got.extend_from_slice(&b);
    }
    got
}

#[test]
fn write_chain_sends_every_buffer_in_order_locally_and_from_another_core() {
    // Locally: more than the send ring holds, so the chain goes in parts.
    let data = pattern(300_000, 5);
    let want = data.clone();
    let got = run_on(SIM_CORE, move || async move {
        let (qa, qb) = SimLink::pair(Impairments::default());
        let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
        let l = TcpListener::bind_on(&a, sa(Ipv4Addr::UNSPECIFIED, 23)).unwrap();
        let server = spawn_local(async move {
            let (s, _) = l.accept().await.unwrap();
            let chain = chain_of(&data);
            assert!(chain.buffer_count() > 100);
            s.write_chain(chain).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let c = TcpStream::connect_on(&b, sa(A, 23)).await.unwrap();
        let got = read_all(&c).await;
        server.await;
        got
    });
    assert!(got == want, "the local chain came back wrong");

    // From core 1, whose stream lives in core 0's stack: the chain moves.
    let (mgr, link) = manager(1);
    let ok = run_on(1, move || async move {
        let l = TcpListener::bind_with(mgr, sa(Ipv4Addr::UNSPECIFIED, 29)).unwrap();
        let data = pattern(200_000, 11);
        let want = data.clone();
        let client = exec::spawn_on_with(CoreId(SIM_CORE), move || async move {
            let host = stack(link.queue_b(0), 2, B);
            let s = TcpStream::connect_on(&host, sa(A, 29)).await.unwrap();
            read_all(&s).await == want
        });
        let (s, _) = l.accept().await.unwrap();
        s.write_chain(chain_of(&data)).await.unwrap();
        s.shutdown().await.unwrap();
        client.await
    });
    assert!(ok, "the chain written from another core came back wrong");
}
