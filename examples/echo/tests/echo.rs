//! Runs the echo server as a separate process on loopback, talks to it
//! (TCP and UDP) from several concurrent clients, and stops it by its pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The running server; killed (by pid) when dropped, even if a check fails.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts echo with `args` and `env`, and waits for its `listening on`
    /// line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_echo"));
        cmd.args(args)
            .env_remove("EBBRT_ARGS")
            .env_remove("EBBRT_CORES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start echo");
        let stdout = child.stdout.take().unwrap();
        let line = first_line_within(stdout, Duration::from_secs(20));
        let Some(line) = line else {
            let _ = child.kill();
            panic!("echo printed no `listening on` line: {:?}", child.wait());
        };
        let addr = line
            .strip_prefix("echo: listening on ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server { child, addr }
    }

    /// Sends SIGTERM to the server's pid and waits for it to end.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {pid} failed");
        let exit = self.child.wait().unwrap();
        assert!(
            !exit.success(),
            "a killed server does not exit successfully: {exit:?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The first line of `out`, or `None` if it does not come within `limit`.
fn first_line_within(out: ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = BufReader::new(out);
        if r.read_line(&mut line).is_ok() {
            let _ = tx.send(line.trim_end().to_owned());
        }
        // Keep draining, so the server never blocks on a full pipe.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok()
}

/// A loopback port that nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

/// Sends `data` (from a second thread, so that the echo can flow back
/// while we write) and returns everything echoed until the server closes.
fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&s).read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

#[test]
fn serves_concurrent_clients_byte_for_byte_until_killed() {
    let port = free_port().to_string();
    let server = Server::start(
        &["--cores", "2", "--addr", "127.0.0.1", "--port", &port],
        &[],
    );
    assert_eq!(server.addr.port().to_string(), port);

    let sizes = [0usize, 1, 13, 4096, 65_537, 300_000, 1 << 20, 5 << 20];
    let clients: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let data = payload(len, i as u8);
                let back = round_trip(addr, data.clone());
                assert_eq!(back.len(), data.len(), "client {i}: length");
                assert!(
                    back == data,
                    "client {i}: the echo differs from what was sent"
                );
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }

    // Many short connections, all answered (spread over both cores).
    for i in 0..50u8 {
        assert_eq!(round_trip(server.addr, vec![i; 100]), vec![i; 100]);
    }
    server.stop();
}

#[test]
fn listens_where_the_boot_arguments_say() {
    // Port 0: the system picks one, and every core shares it.
    let server = Server::start(
        &["--cores", "3"],
        &[("EBBRT_ARGS", "echo.port=0 echo.addr=127.0.0.1")],
    );
    assert_ne!(server.addr.port(), 0);
    assert!(server.addr.ip().is_loopback());
    let threads: Vec<_> = (0..12u8)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || {
                assert_eq!(round_trip(addr, payload(10_000, i)), payload(10_000, i))
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    server.stop();
}

/// Sends `msg` to `to` and waits for the answer, sending again after each
/// second without one (UDP may drop); at most five tries.
fn udp_round_trip(sock: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..5 {
        sock.send_to(msg, to).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, to, "an answer from elsewhere");
                return buf[..n].to_vec();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => panic!("UDP receive: {e}"),
        }
    }
    panic!("no answer to a {}-byte datagram after 5 tries", msg.len());
}

#[test]
fn echoes_udp_datagrams_and_answers_the_stats_query() {
    let port = free_port().to_string();
    let server = Server::start(
        &["--cores", "2", "--addr", "127.0.0.1", "--port", &port],
        &[],
    );
    let clients: Vec<_> = (0..4u8)
        .map(|c| {
            let to = server.addr;
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                for (i, len) in [0usize, 1, 64, 1472, 9000, 65_000].into_iter().enumerate() {
                    let msg = payload(len, c * 16 + i as u8);
                    let back = udp_round_trip(&sock, to, &msg);
                    assert!(
                        back == msg,
                        "client {c}: a {len}-byte datagram came back wrong"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a UDP client failed");
    }
    // The counters query: hosted, there are no stacks of our own.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let answer = udp_round_trip(&sock, server.addr, b"ebbrt-echo:stats");
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "ebbrt-echo:stats stacks=0"
    );
    // TCP still works beside it.
    assert_eq!(round_trip(server.addr, b"tcp".to_vec()), b"tcp");
    server.stop();
}

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echo"));
    cmd.args(args)
        .env_remove("EBBRT_ARGS")
        .env_remove("EBBRT_CORES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_and_busy_ports_are_errors() {
    let (code, err) = run_to_exit(&["--cores", "1", "--port", "http"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Error: invalid port `http` (--port)"), "{err}");

    let (code, err) = run_to_exit(&["--cores", "1"], &[("EBBRT_ARGS", "echo.addr=nowhere")]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("invalid address `nowhere` (boot argument echo.addr)"),
        "{err}"
    );

    let (code, err) = run_to_exit(&["--cores", "1", "--verbose"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown argument `--verbose`"), "{err}");

    // A port held by a socket without SO_REUSEPORT cannot be shared.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, err) = run_to_exit(
        &["--cores", "2", "--addr", "127.0.0.1", "--port", &port],
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("core 0 cannot listen on 127.0.0.1:") && err.contains("AddrInUse"),
        "{err}"
    );
}
