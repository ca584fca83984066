//! Floods the hosted echo server with more connections than its descriptor
//! limit allows (the limit lowered in the server process only), and checks
//! that it keeps serving the connection it has, logs the failed accepts
//! once per run instead of once per failure, and serves new connections
//! once descriptors are free again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Descriptors the server may hold: a dozen for the runtime (epoll,
/// wakers, timers, listeners, stdio), the rest for connections.
const SERVER_FDS: u64 = 64;
/// Connections the flood opens: several times what the server can accept.
const FLOOD: usize = 300;

struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(nofile: u64) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echo"));
    cmd.args(["--cores", "2", "--addr", "127.0.0.1", "--port", "0"])
        .env_remove("EBBRT_ARGS")
        .env_remove("EBBRT_CORES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let limit = libc::rlimit {
        rlim_cur: nofile,
        rlim_max: nofile,
    };
    // SAFETY: runs in the forked child before exec; setrlimit is
    // async-signal-safe and `limit` is a plain value copied into the
    // closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().expect("start echo");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = stderr.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).expect("read echo's first line");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .strip_prefix("echo: listening on ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Server {
        child,
        addr,
        stderr,
    }
}

/// Sends `msg` on `s` and reads the same number of bytes back.
fn echo_on(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    Ok(back)
}

#[test]
fn running_out_of_descriptors_keeps_serving_and_does_not_flood_the_log() {
    let server = start(SERVER_FDS);
    let mut first = TcpStream::connect(server.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(echo_on(&mut first, b"before").unwrap(), b"before");

    // The kernel completes every handshake (the listeners' backlogs hold
    // them); the server can accept only some before it is out of
    // descriptors, and retries the rest while they stay queued.
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // While the server is out of descriptors for two seconds (hundreds of
    // failed accepts per core when each was logged), the first connection
    // is served.
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let msg = format!("during {i}");
        assert_eq!(echo_on(&mut first, msg.as_bytes()).unwrap(), msg.as_bytes());
    }
    let during: Vec<String> = server.stderr.lock().unwrap().clone();
    assert!(
        during
            .iter()
            .any(|l| l.contains("out of file descriptors (EMFILE)")),
        "the server never ran out of descriptors: {during:#?}"
    );
    let accept_lines = during.iter().filter(|l| l.contains("accept")).count();
    assert!(
        accept_lines <= 8,
        "{accept_lines} lines about accept in two seconds: {during:#?}"
    );

    // Descriptors come back: new connections are served again (the
    // queued ones are accepted first and end at once).
    drop(flood);
    let mut served = false;
    for _ in 0..100 {
        let Ok(mut c) = TcpStream::connect(server.addr) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if echo_on(&mut c, b"after").is_ok_and(|b| b == b"after") {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "no new connection was served after the flood");
    assert_eq!(echo_on(&mut first, b"still").unwrap(), b"still");
}
