//! Runs the hosted server as a separate process on loopback and talks to
//! it with real clients: libmemcached's `memccapable` (ASCII and binary)
//! and pymemcache, plus raw sockets for what they do not cover
//! (`-c`, requests split across writes). The server is killed by its pid.
//!
//! `memccapable` comes from `libmemcached-tools`, pymemcache from pip;
//! `.ci/run` installs both. A missing client fails the test (with the
//! command to install it) rather than passing without checking.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The running server; killed (by pid) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memcached"))
            .arg("--cores")
            .arg("2")
            .arg("--")
            .args(args)
            .env_remove("EBBRT_ARGS")
            .env_remove("EBBRT_CORES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memcached");
        let stdout = child.stdout.take().unwrap();
        let Some(line) = first_line_within(stdout, Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!(
                "memcached printed no `listening on` line: {:?}",
                child.wait()
            );
        };
        let addr = line
            .strip_prefix("memcached: listening on ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server { child, addr }
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

fn first_line_within(out: ChildStdout, limit: Duration) -> Option<String> {
    line_within(out, |_| true, limit)
}

/// The first line of `out` that `wanted` accepts, or `None` if none comes
/// within `limit`. The rest of `out` is drained.
fn line_within(
    out: ChildStdout,
    wanted: impl Fn(&str) -> bool + Send + 'static,
    limit: Duration,
) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            if wanted(line.trim_end()) {
                let _ = tx.send(line.trim_end().to_owned());
                break;
            }
            line.clear();
        }
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok()
}

fn free_port() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

fn loopback_server(extra: &[&str]) -> Server {
    let port = free_port();
    let mut args = vec!["-l", "127.0.0.1", "-p", &port];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn require(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "`{tool}` is not installed: {install} (.ci/run does)");
}

/// memccapable's tests in one protocol (`-a` ASCII, `-b` binary) against
/// a server started with `extra`; every one must pass.
fn memccapable(protocol: &str, extra: &[&str]) {
    require("memccapable", "apt-get install libmemcached-tools");
    let server = loopback_server(extra);
    let out = Command::new("timeout")
        .args(["120", "memccapable", "-h", "127.0.0.1", "-p"])
        .arg(server.addr.port().to_string())
        .arg(protocol)
        .output()
        .expect("run memccapable");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let passed = text.matches("[pass]").count();
    assert!(
        out.status.success() && text.contains("All tests passed") && passed == 27,
        "memccapable {protocol}: {passed} passed, status {:?}:\n{text}",
        out.status
    );
}

#[test]
fn memccapable_ascii_passes_every_test() {
    memccapable("-a", &[]);
}

#[test]
fn memccapable_binary_passes_every_test() {
    memccapable("-b", &[]);
}

/// The default store is the RCU table; the other one must pass too.
#[test]
fn memccapable_passes_on_the_locked_store_too() {
    memccapable("-a", &["--store", "mem"]);
    memccapable("-b", &["--store=mem"]);
}

#[test]
fn pymemcache_works() {
    require("python3", "apt-get install python3");
    let server = loopback_server(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymemcache_check.py");
    let out = Command::new("timeout")
        .args(["120", "python3"])
        .arg(script)
        .arg(server.addr.port().to_string())
        .output()
        .expect("run python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'pymemcache'"),
        "pymemcache is not installed: pip install pymemcache (.ci/run does)"
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pymemcache: ok"),
        "pymemcache check failed ({:?}):\n{}{err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).expect("read a reply");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn requests_split_across_writes_and_pipelined_get_their_replies() {
    let server = loopback_server(&[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    // One request in pieces, each its own write.
    for piece in [&b"se"[..], b"t k 0 0 5", b"\r\nhel", b"lo", b"\r", b"\n"] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
    // Many requests in one write.
    let mut many = Vec::new();
    for i in 0..200 {
        many.extend_from_slice(format!("set k{i} 0 0 1\r\n{}\r\n", i % 10).as_bytes());
    }
    many.extend_from_slice(b"get k k7 k199\r\n");
    s.write_all(&many).unwrap();
    let got = read_until(&mut s, b"END\r\n");
    let want = "STORED\r\n".repeat(200)
        + "VALUE k 0 5\r\nhello\r\nVALUE k7 0 1\r\n7\r\nVALUE k199 0 1\r\n9\r\nEND\r\n";
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn connections_over_the_limit_are_told_and_closed() {
    let server = loopback_server(&["-c", "2"]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // A round trip, so the server has counted this connection.
        s.write_all(b"version\r\n").unwrap();
        assert!(read_until(&mut s, b"\r\n").starts_with(b"VERSION "));
        open.push(s);
    }
    let mut third = TcpStream::connect(server.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    third.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ERROR Too many open connections\r\n");
    let mut s = &open[0];
    s.write_all(b"stats\r\n").unwrap();
    let stats = read_until(&mut open[0], b"END\r\n");
    let stats = String::from_utf8_lossy(&stats);
    assert!(stats.contains("STAT rejected_connections 1\r\n"), "{stats}");
    assert!(stats.contains("STAT curr_connections 2\r\n"), "{stats}");
    assert!(stats.contains("STAT max_connections 2\r\n"), "{stats}");
}

#[test]
fn with_small_buffers_it_holds_its_connections_refuses_the_rest_and_answers() {
    const LIMIT: usize = 300;
    let server = loopback_server(&["-c", &LIMIT.to_string(), "--buffers", "4k"]);
    let connect = || {
        let s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let mut open = Vec::new();
    for i in 0..LIMIT {
        let mut s = connect();
        // A round trip, so the server has counted this connection.
        s.write_all(format!("set k{i} 0 0 1\r\n{}\r\n", i % 10).as_bytes())
            .unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n", "connection {i}");
        open.push(s);
    }
    for _ in 0..40 {
        let mut extra = connect();
        let mut got = Vec::new();
        extra.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ERROR Too many open connections\r\n");
    }
    // Every connection held still answers, the first and the last alike.
    for i in [0, LIMIT / 2, LIMIT - 1] {
        let mut s = &open[i];
        s.write_all(format!("get k{i}\r\n").as_bytes()).unwrap();
        let got = read_until(&mut open[i], b"END\r\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("VALUE k{i} 0 1\r\n{}\r\nEND\r\n", i % 10)
        );
    }
    let mut s = &open[1];
    s.write_all(b"stats\r\n").unwrap();
    let stats = read_until(&mut open[1], b"END\r\n");
    let stats = String::from_utf8_lossy(&stats);
    assert!(
        stats.contains("STAT rejected_connections 40\r\n"),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("STAT curr_connections {LIMIT}\r\n")),
        "{stats}"
    );
    // Closing some makes room for as many new ones.
    // (The server counts a close when its task sees the end of the stream:
    // a connection refused meanwhile is retried.)
    open.truncate(LIMIT - 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while open.len() < LIMIT {
        let mut s = connect();
        s.write_all(b"get k7\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\r\n") || got.starts_with(b"VALUE") && !got.ends_with(b"END\r\n") {
            match s.read(&mut buf).expect("read a reply") {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        if got == b"ERROR Too many open connections\r\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "closed connections never freed their places"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            "VALUE k7 0 1\r\n7\r\nEND\r\n"
        );
        open.push(s);
    }
}

#[test]
fn boot_arguments_set_the_options_and_bad_ones_are_errors() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_memcached"))
        .args(["--cores", "1"])
        .env(
            "EBBRT_ARGS",
            format!("memcached.port={port} memcached.addr=127.0.0.1 memcached.m=8"),
        )
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let line = first_line_within(child.stdout.take().unwrap(), Duration::from_secs(20));
    let server = Server {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    assert_eq!(
        line.as_deref(),
        Some(format!("memcached: listening on 127.0.0.1:{port} on 1 cores").as_str())
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"stats settings\r\n").unwrap();
    let got = read_until(&mut s, b"END\r\n");
    assert!(String::from_utf8_lossy(&got).contains("STAT maxbytes 8388608\r\n"));
    drop(server);
    for bad in [
        &["-p", "notaport"][..],
        &["-I", "5"],
        &["--frobnicate"],
        &["--store", "disk"],
        &["--buffers=12"],
        &["--listen", "some"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_memcached"))
            .args(["--cores", "1", "--"])
            .args(bad)
            .env_remove("EBBRT_ARGS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
}

/// The native image under QEMU (user networking, a free host port
/// forwarded to the guest's 11211), checked with memccapable both ways.
/// It builds the native image (into a target directory of its own under
/// `target/tmp`, shared with the cluster example's test: the one `cargo
/// test` builds into is locked while it runs) and boots it under TCG, so it takes a minute or two the first time.
#[test]
fn native_under_qemu_passes_memccapable() {
    use std::os::unix::process::CommandExt;
    require("memccapable", "apt-get install libmemcached-tools");
    let port = free_port();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Its own process group, so that QEMU under cargo and the tool is
    // stopped with them.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-native");
    let mut child = Command::new(env!("CARGO"))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["ebbrt", "run", "memcached", "--timeout", "900", "--forward"])
        .arg(format!("{port}:11211"))
        .arg("--append")
        .arg(format!("memcached.epoch={epoch}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("run cargo ebbrt");
    let group = child.id();
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.0)])
                .status();
        }
    }
    let _group = Group(group);
    let line = line_within(
        child.stdout.take().unwrap(),
        |l| l.starts_with("memcached: "),
        Duration::from_secs(900),
    );
    // Two cores (the tool's default) and one queue pair (user networking):
    // only core 0 owns a stack, so only it listens.
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with(
            "memcached: listening on 0.0.0.0:11211 on 1 cores (1 of 2 own no network stack"
        )),
        "the native server did not start as expected: {line:?}"
    );
    for protocol in ["-a", "-b"] {
        let out = Command::new("timeout")
            .args([
                "300",
                "memccapable",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                protocol,
            ])
            .output()
            .expect("run memccapable");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.matches("[pass]").count() == 27,
            "memccapable {protocol} against the native server:\n{text}"
        );
    }
    drop(_group);
    let _ = child.wait();
}
