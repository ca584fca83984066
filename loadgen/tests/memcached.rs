//! The generator against the system's memcached (Debian package
//! `memcached`), in each protocol: requests complete and every value read
//! back verifies; a value this generator did not write is caught.
//!
//! Without memcached these tests are skipped with a note, except under CI
//! (`CI` set), where `.ci/run` installs it and its absence is a failure.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ebbrt_loadgen::dist::SizeDist;
use ebbrt_loadgen::payload::{KeySpace, Payload};
use serde_json::Value;

/// A memcached on a free loopback port, killed (by its pid, through the
/// `Child`) when dropped.
struct Memcached {
    child: Child,
    port: u16,
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn memcached_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join("memcached"))
        .find(|p| p.is_file())
}

/// Starts memcached, or returns `None` (having said why) when it is not
/// installed outside CI.
fn start() -> Option<Memcached> {
    let Some(bin) = memcached_binary() else {
        if std::env::var_os("CI").is_some() {
            panic!("memcached is not installed (.ci/run installs the Debian package `memcached`)");
        }
        eprintln!("skipped: memcached is not installed (apt-get install memcached)");
        return None;
    };
    // A port the kernel just handed out and took back is free unless
    // another process grabs it in between; memcached then fails to bind
    // and the readiness wait below says so.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        // -u: memcached refuses to run as root without it (and ignores it
        // otherwise); -U 0: no UDP.
        .args([
            "-u",
            "root",
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-t",
            "1",
            "-m",
            "128",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("memcached starts");
    let mut server = Memcached { child, port };
    let begun = Instant::now();
    // A connection to itself (TCP's simultaneous open, when the kernel
    // picks the port as the source port) is not memcached listening.
    let listening = || {
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
    };
    while !listening() {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("memcached on port {port} exited with {status}");
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "memcached never listened on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

fn loadgen(server: &Memcached, args: &[&str]) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        // A long drain: a loaded CI machine may answer late, which is not what these tests check.
        .args([
            "--server",
            &format!("127.0.0.1:{}", server.port),
            "--json",
            "--drain",
            "20s",
        ])
        .args(args)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, doc)
}

fn runs_clean_in(protocol: &str) {
    let Some(server) = start() else { return };
    let (out, doc) = loadgen(
        &server,
        &[
            "--protocol",
            protocol,
            "--qps",
            "1000",
            "--duration",
            "2s",
            "--connections",
            "4",
            "--threads",
            "2",
            "--keys",
            "1000",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{protocol}: {:?}\n{doc:#}\n{stderr}",
        out.status
    );
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["config"]["protocol"], protocol);
    assert_eq!(doc["preload"]["completed"], 1000, "{doc:#}");
    assert_eq!(doc["preload"]["errors"], 0, "{doc:#}");
    let step = &doc["steps"][0];
    let n = |k: &str| {
        step[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {step:#}"))
    };
    assert!(n("completed") > 0, "{step:#}");
    assert_eq!(n("completed"), n("sent"), "{step:#}");
    assert_eq!(n("mismatches"), 0, "{step:#}");
    assert_eq!(n("errors"), 0, "{step:#}");
    // After the preload every get hits, and the hits were verified.
    assert!(n("hits") > 0 && n("misses") == 0, "{step:#}");
    assert!(n("sets") > 0, "{step:#}");
    assert_eq!(n("stale"), 0, "{step:#}");
    // Every key read back at its newest acknowledged version.
    final_check_is_clean(&doc, 1000);
}

fn final_check_is_clean(doc: &Value, keys: u64) {
    let f = &doc["final_check"];
    let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f:#}"));
    assert_eq!(
        (n("keys"), n("checked"), n("hits")),
        (keys, keys, keys),
        "{f:#}"
    );
    assert_eq!((n("lost"), n("stale"), n("mismatches")), (0, 0, 0), "{f:#}");
    assert_eq!((n("errors"), n("evictions")), (0, 0), "{f:#}");
    assert_eq!(f["ok"], true, "{f:#}");
    assert_eq!(
        (&doc["stale"], &doc["lost"]),
        (&0.into(), &0.into()),
        "{doc:#}"
    );
}

#[test]
fn racing_writers_of_few_keys_are_not_stale() {
    // Eight connections on two threads, half sets, five keys: sets of one
    // key overlap all the time and may be applied in any order; none of
    // that may be reported as stale, and each key must end at a version
    // its last acknowledged sets allow.
    let Some(server) = start() else { return };
    for protocol in ["ascii", "binary", "meta"] {
        let (out, doc) = loadgen(
            &server,
            &[
                "--protocol",
                protocol,
                "--keys",
                "5",
                "--update",
                "0.5",
                "--qps",
                "4000",
                "--duration",
                "1s",
                "--connections",
                "8",
                "--threads",
                "2",
                "--value-size",
                "fixed:100",
            ],
        );
        assert!(out.status.success(), "{protocol}: {doc:#}");
        assert_eq!(doc["steps"][0]["stale"], 0, "{protocol}: {doc:#}");
        final_check_is_clean(&doc, 5);
    }
}

#[test]
fn ascii_runs_clean() {
    runs_clean_in("ascii");
}

#[test]
fn binary_runs_clean() {
    runs_clean_in("binary");
}

#[test]
fn meta_runs_clean() {
    runs_clean_in("meta");
}

fn raw(server: &Memcached, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(request).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn a_value_it_did_not_write_is_a_mismatch_and_fails_the_run() {
    let Some(server) = start() else { return };
    let args = [
        "--keys",
        "1",
        "--key-size",
        "fixed:8",
        "--value-size",
        "fixed:40",
        "--qps",
        "200",
        "--duration",
        "1s",
    ];
    // What the generator writes verifies when read back by hand.
    let (out, _) = loadgen(&server, &[&args[..], &["--update", "1"]].concat());
    assert!(out.status.success());
    let key = KeySpace::new(1, &SizeDist::Fixed(8), 1).key(0).to_vec();
    assert_eq!(key, b"k0000000");
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"get k0000000\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    let fields: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(fields[..2], ["VALUE", "k0000000"], "{head}");
    let (flags, len): (u32, usize) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    let mut data = vec![0; len + 2];
    std::io::Read::read_exact(&mut r, &mut data).unwrap();
    assert_eq!(Payload::verify(&key, flags, &data[..len]), Ok(()));

    // Overwrite it with bytes of the right length but not the generator's.
    let forged = format!("set k0000000 {flags} 0 {len}\r\n{}\r\n", "x".repeat(len));
    assert_eq!(raw(&server, forged.as_bytes()), "STORED\r\n");
    let (out, doc) = loadgen(
        &server,
        &[&args[..], &["--update", "0", "--no-preload"]].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    assert_eq!(doc["ok"], false);
    let step = &doc["steps"][0];
    assert!(step["mismatches"].as_u64().unwrap() > 0, "{step:#}");
    assert_eq!(step["mismatches"], step["hits"], "{step:#}");
    assert!(
        step["messages"][0]
            .as_str()
            .unwrap()
            .contains("mismatch for key k0000000"),
        "{step:#}"
    );
}

#[test]
fn public_addresses_are_refused_before_any_traffic() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--server", "8.8.8.8:11211"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing server"),
        "{out:?}"
    );
}

#[test]
fn a_search_reports_each_step_and_its_verdict() {
    let Some(server) = start() else { return };
    // Whether a step passes is the machine's business (no timing is
    // asserted here); that each is run, reported and judged is ours.
    let (out, doc) = loadgen(
        &server,
        &[
            "--keys",
            "500",
            "--qps",
            "100",
            "--duration",
            "0.5s",
            "--sla-p99",
            "60s",
            "--search",
            "--search-steps",
            "2",
            "--measure-connections",
            "1",
            "--measure-qps",
            "50",
        ],
    );
    let steps = doc["steps"].as_array().unwrap();
    let pass = doc["search"]["pass"].as_array().unwrap();
    assert_eq!((steps.len(), pass.len()), (2, 2), "{doc:#}");
    // Offered = load + measurement; the second step doubled or halved the load.
    assert_eq!(steps[0]["offered_qps"], 150.0);
    assert!(
        [250.0, 100.0].contains(&steps[1]["offered_qps"].as_f64().unwrap()),
        "{doc:#}"
    );
    assert_eq!(steps[1]["offered_qps"] == 250.0, pass[0] == true);
    for s in steps {
        assert_eq!(s["mismatches"], 0, "{s:#}");
        assert_eq!(s["error_replies"], 0, "{s:#}");
        assert_eq!(s["connection_errors"], 0, "{s:#}");
    }
    assert_eq!(
        out.status.success(),
        !doc["search"]["best"].is_null(),
        "{doc:#}"
    );
}

#[test]
fn a_sweep_runs_each_rate_in_order() {
    let Some(server) = start() else { return };
    let (out, doc) = loadgen(
        &server,
        &[
            "--keys",
            "500",
            "--sweep",
            "100,200,50",
            "--duration",
            "0.5s",
            "--protocol",
            "binary",
        ],
    );
    assert!(out.status.success(), "{doc:#}");
    let offered: Vec<f64> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["offered_qps"].as_f64().unwrap())
        .collect();
    assert_eq!(offered, [100.0, 200.0, 50.0]);
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["completed"].as_u64().unwrap() > 0 && s["mismatches"] == 0)
    );
}

#[test]
fn misses_are_counted_in_each_protocol_and_are_no_error() {
    let Some(server) = start() else { return };
    // A fresh server and no preload: every get misses.
    for protocol in ["ascii", "binary", "meta"] {
        let (out, doc) = loadgen(
            &server,
            &[
                "--protocol",
                protocol,
                "--no-preload",
                "--update",
                "0",
                "--keys",
                "100",
                "--qps",
                "200",
                "--duration",
                "0.5s",
            ],
        );
        assert!(out.status.success(), "{protocol}: {doc:#}");
        let step = &doc["steps"][0];
        assert!(step["completed"].as_u64().unwrap() > 0, "{step:#}");
        assert_eq!(step["misses"], step["completed"], "{protocol}: {step:#}");
        assert_eq!(step["errors"], 0, "{step:#}");
    }
}

/// Runs loadgen with `args` against `server`, kills the server once the
/// first step's row is printed, and returns loadgen's exit code, its JSON
/// and its progress lines.
fn run_and_kill_server_after_first_step(
    mut server: Memcached,
    args: &[&str],
) -> (Option<i32>, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--server",
            &format!("127.0.0.1:{}", server.port),
            "--json",
            "--keys",
            "200",
            "--duration",
            "0.5s",
            "--protocol",
            "binary",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    let mut progress = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        progress += &line;
        progress.push('\n');
        // A step's row starts with its offered rate.
        if line.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for line in lines {
        progress += &line.unwrap();
        progress.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("loadgen printed no JSON ({e}):\n{stdout}\n{progress}"));
    (out.status.code(), doc, progress)
}

#[test]
fn a_server_that_vanishes_ends_a_sweep_with_what_was_measured() {
    let Some(server) = start() else { return };
    let (code, doc, progress) =
        run_and_kill_server_after_first_step(server, &["--sweep", "200,200,200,200,200,200"]);
    // Not an error exit (2) that prints nothing: the run failed (1), and
    // says what it measured and what it could not run.
    assert_eq!(code, Some(1), "{progress}");
    let steps = doc["steps"].as_array().unwrap();
    let unrun = doc["unrun"].as_array().unwrap();
    assert!(!steps.is_empty(), "{doc:#}");
    assert!(steps[0]["completed"].as_u64().unwrap() > 0, "{doc:#}");
    // Two in a row could not connect: the server has gone, the sweep ends.
    assert_eq!(unrun.len(), 2, "{doc:#}");
    assert!(steps.len() + unrun.len() < 6, "{doc:#}");
    // Refused, as a rule; a connection caught while the server was being
    // killed may be reset instead. Either names the server.
    for u in unrun {
        let e = u["error"].as_str().unwrap();
        assert!(e.starts_with("server 127.0.0.1:"), "{u:#}");
        assert!(e.contains("refused") || e.contains("reset"), "{u:#}");
    }
    assert!(
        progress.contains("steps in a row could not run"),
        "{progress}"
    );
    assert_eq!(doc["ok"], false);
}

#[test]
fn a_server_that_vanishes_ends_a_search_with_what_was_measured() {
    let Some(server) = start() else { return };
    let (code, doc, progress) = run_and_kill_server_after_first_step(
        server,
        &[
            "--qps",
            "100",
            "--sla-p99",
            "60s",
            "--search",
            "--search-steps",
            "6",
        ],
    );
    assert_eq!(code, Some(1), "{progress}");
    let steps = doc["steps"].as_array().unwrap();
    let pass = doc["search"]["pass"].as_array().unwrap();
    assert!(!steps.is_empty(), "{doc:#}");
    // One verdict per step that ran; the best, if any, is one of them.
    assert_eq!(pass.len(), steps.len(), "{doc:#}");
    if let Some(i) = doc["search"]["best_index"].as_u64() {
        assert_eq!(pass[i as usize], true, "{doc:#}");
        assert_eq!(doc["search"]["best"], steps[i as usize], "{doc:#}");
    }
    assert_eq!(doc["unrun"].as_array().unwrap().len(), 2, "{doc:#}");
    assert!(
        progress.contains("steps in a row could not run"),
        "{progress}"
    );
}
