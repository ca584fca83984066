//! The network stack inside a running EbbRT instance, natively in QEMU
//! (`cargo ebbrt test`) and hosted (`cargo test`): two stacks wired back to
//! back over a simulated link on the test's core exercise the stack on the
//! real executor, timers and allocator without a NIC or a host-side peer;
//! and the default network manager, which finds no NIC in a test kernel's
//! machine (or hosted), makes socket calls fail with `NotFound`.
//! The checks that need a real NIC and a host-side peer run after the test
//! kernels in `cargo ebbrt test` (the tool's `netcheck`, against the echo
//! example).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use ebbrt::io::ErrorKind;
use ebbrt_net::config::{AddrConfig, Ipv4Net, NetConfig};
use ebbrt_net::frame::DropReason;
use ebbrt_net::sim::{Impairments, SimLink, SimQueue};
use ebbrt_net::{Stack, StackOptions, TcpListener, TcpStream, UdpSocket};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn stack(q: SimQueue, n: u8, ip: Ipv4Addr) -> Rc<Stack> {
    let s = Stack::new(
        Box::new(q),
        [2, 0, 0, 0, 0, n],
        StackOptions {
            config: NetConfig {
                addr: AddrConfig::Static {
                    net: Ipv4Net {
                        addr: ip,
                        prefix: 24,
                    },
                    gateway: None,
                },
                ..NetConfig::default()
            },
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

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[ebbrt::test]
async fn tcp_echo_over_a_simulated_link() -> Result<(), String> {
    let (qa, qb) = SimLink::pair(Impairments::default());
    let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
    let l = TcpListener::bind_on(&a, sa(A, 7)).map_err(|e| format!("bind: {e}"))?;
    ebbrt::spawn_local(async move {
        let (s, _) = l.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.expect("server read");
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.expect("server write");
        }
        s.shutdown().await.expect("server shutdown");
    })
    .detach();
    let s = Rc::new(
        TcpStream::connect_on(&b, sa(A, 7))
            .await
            .map_err(|e| format!("connect: {e}"))?,
    );
    let data = pattern(256 * 1024);
    let w = {
        let (s, data) = (s.clone(), data.clone());
        ebbrt::spawn_local(async move {
            s.write_all(&data).await.expect("client write");
            s.shutdown().await.expect("client shutdown");
        })
    };
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    w.await;
    if got != data {
        return Err(format!(
            "echoed {} bytes, not the {} sent",
            got.len(),
            data.len()
        ));
    }
    Ok(())
}

#[ebbrt::test]
async fn tcp_read_buf_and_read_with_over_a_simulated_link() -> Result<(), String> {
    let (qa, qb) = SimLink::pair(Impairments::default());
    let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
    let l = TcpListener::bind_on(&a, sa(A, 8)).map_err(|e| format!("bind: {e}"))?;
    // The server echoes whole IoBufs as read_buf hands them out.
    ebbrt::spawn_local(async move {
        let (s, _) = l.accept().await.expect("accept");
        while let Some(buf) = s.read_buf().await.expect("server read_buf") {
            s.write_all(&buf).await.expect("server write");
        }
        s.shutdown().await.expect("server shutdown");
    })
    .detach();
    let s = Rc::new(
        TcpStream::connect_on(&b, sa(A, 8))
            .await
            .map_err(|e| format!("connect: {e}"))?,
    );
    let data = pattern(200 * 1024);
    let w = {
        let (s, data) = (s.clone(), data.clone());
        ebbrt::spawn_local(async move {
            s.write_all(&data).await.expect("client write");
            s.shutdown().await.expect("client shutdown");
        })
    };
    // The client consumes at most 777 bytes per call, in place.
    let mut got = Vec::new();
    loop {
        let n = s
            .read_with(|d| {
                let n = d.len().min(777);
                got.extend_from_slice(&d[..n]);
                n
            })
            .await
            .map_err(|e| format!("read_with: {e}"))?;
        if n == 0 {
            break;
        }
    }
    w.await;
    if got != data {
        return Err(format!(
            "read_with delivered {} bytes, not the {} sent",
            got.len(),
            data.len()
        ));
    }
    Ok(())
}

#[ebbrt::test]
async fn udp_round_trips_over_a_simulated_link() -> Result<(), String> {
    let (qa, qb) = SimLink::pair(Impairments::default());
    let (a, b) = (stack(qa, 1, A), stack(qb, 2, B));
    let server = UdpSocket::bind_on(&a, sa(A, 9)).map_err(|e| format!("bind: {e}"))?;
    ebbrt::spawn_local(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf).await {
            if server.send_to(&buf[..n], from).await.is_err() {
                break;
            }
        }
    })
    .detach();
    let c = UdpSocket::bind_on(&b, sa(B, 0)).map_err(|e| format!("bind: {e}"))?;
    for i in 0..50usize {
        let msg = pattern(1 + i * 29);
        c.send_to(&msg, sa(A, 9))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = vec![0u8; 2048];
        let got = ebbrt::exec::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
            .await
            .map_err(|_| format!("datagram {i}: no answer"))?
            .map_err(|e| format!("recv: {e}"))?;
        if got != (msg.len(), sa(A, 9)) || buf[..msg.len()] != msg[..] {
            return Err(format!("datagram {i} came back wrong: {got:?}"));
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn malformed_frames_are_counted_and_dropped() -> Result<(), String> {
    let (qa, _qb) = SimLink::pair(Impairments::default());
    let inject = qa.inject_handle();
    let a = stack(qa, 1, A);
    // Truncated Ethernet; an IPv4 header cut short; an oversized frame.
    inject.inject(&[0u8; 10]);
    let mut ip = vec![0u8; 14 + 12];
    ip[12] = 0x08;
    ip[14] = 0x45;
    inject.inject(&ip);
    inject.inject(&vec![0u8; 1600]);
    ebbrt::exec::sleep(Duration::from_millis(20)).await;
    let s = a.stats();
    let (t, o) = (
        s.dropped(DropReason::Truncated),
        s.dropped(DropReason::Oversized),
    );
    if (t, o) != (2, 1) {
        return Err(format!(
            "dropped {t} truncated and {o} oversized frames, expected 2 and 1: {s:?}"
        ));
    }
    Ok(())
}

#[ebbrt::test]
async fn without_a_nic_socket_calls_fail_with_not_found() -> Result<(), String> {
    // Test kernels boot without a NIC; hosted, no driver is linked.
    match TcpListener::bind(sa(Ipv4Addr::UNSPECIFIED, 7)) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("bind without a NIC: {other:?}")),
    }
    match TcpStream::connect(sa(A, 7)).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => Err(format!("connect without a NIC: {other:?}")),
    }
}

ebbrt::test_main!();
