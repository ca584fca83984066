//! The hosted frontend: boots the nodes and runs the checks.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ebbrt::{IoBufChain, StaticEbb};
use ebbrt_fs_offload::{FileKind, FileSystem, FsError};
use ebbrt_global_id_map::{GlobalIdMap, Value, publish_endpoint};
use ebbrt_messenger::{Admission, Config, Distributed, Messenger, MsgError, NodeId};
use ebbrt_node_allocator::{
    LocalQemu, Network, NodeAllocator, NodeError, NodeHandle, NodeOpts, NodeStatus,
};

use crate::NODE_PORT;
use crate::shared::{
    Exercise, FNV_START, Get, Kv, Ping, PingPeer, Probe, Put, ReadFile, ReadTimed, Sink, Stop,
    WatchFor, fnv, owner, time_pings,
};

/// How long a node may take from boot to connected (TCG on a busy host).
const BOOT: Duration = Duration::from_secs(240);
/// The file node 1 reads.
const FILE: &str = "greeting.txt";

/// Counts checks; prints each.
#[derive(Default)]
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Display) {
        if ok {
            self.passed += 1;
            println!("cluster: ok: {what}");
        } else {
            self.failed += 1;
            println!("cluster: FAILED: {what}");
        }
    }
}

fn image() -> Result<PathBuf, String> {
    std::env::var_os("EBBRT_NODE_IMAGE")
        .map(PathBuf::from)
        .ok_or_else(|| {
            "EBBRT_NODE_IMAGE names no native image: run `cargo ebbrt run cluster --hosted`, \
             which builds it, or set it to a native build of this example"
                .to_string()
        })
}

fn say(rtts: &[u32], failed: u32) -> String {
    format!(
        "p50 {} us, p99 {} us, max {} us over {} round trips ({failed} failed)",
        quantile(rtts, 0.5),
        quantile(rtts, 0.99),
        rtts.last().copied().unwrap_or(0),
        rtts.len()
    )
}

/// Runs the frontend; the process's exit status.
pub async fn run() -> i32 {
    match run_checks().await {
        Ok(c) if c.failed == 0 => {
            println!("cluster: all {} checks passed", c.passed);
            0
        }
        Ok(c) => {
            println!(
                "cluster: {} of {} checks failed",
                c.failed,
                c.passed + c.failed
            );
            1
        }
        Err(e) => {
            println!("cluster: {e}");
            2
        }
    }
}

async fn run_checks() -> Result<Checks, String> {
    let image = image()?;
    let mut c = Checks::default();
    let work = std::env::temp_dir().join(format!("ebbrt-cluster-{}", std::process::id()));
    let served = work.join("served");
    std::fs::create_dir_all(&served).map_err(|e| format!("{}: {e}", served.display()))?;
    let text = format!(
        "hello from the frontend's disk, pid {}\n",
        std::process::id()
    );
    std::fs::write(served.join(FILE), &text).map_err(|e| format!("{FILE}: {e}"))?;
    FileSystem::serve_dir(&served).map_err(|e| format!("serve {}: {e}", served.display()))?;

    let network = match ebbrt::runtime::args() {
        [] => Network::User,
        [t] if t == "--tap" => Network::Tap,
        other => {
            return Err(format!(
                "unknown arguments {other:?}: `--tap` (nodes on taps in a network namespace; \
                 root) or nothing (QEMU user networking)"
            ));
        }
    };
    let user = network == Network::User;
    let backend = LocalQemu::new(network, 0, work.join("logs")).map_err(|e| e.to_string())?;
    println!(
        "cluster: accelerator {:?}, network {network:?}{}",
        backend.accel(),
        backend
            .namespace()
            .map_or(String::new(), |ns| format!(" (namespace {ns})"))
    );
    let alloc = NodeAllocator::new(backend);
    let secret = alloc.secret().map_err(|e| e.to_string())?;

    // The frontend is node 0, with id space 0, listening where nodes were
    // told: on our loopback (10.0.2.2 from a node under user networking), or
    // on the bridge inside the taps' namespace.
    ebbrt::ebb::ids::ID_ALLOCATOR_REF
        .use_space(0)
        .map_err(|e| e.to_string())?;
    let mut config = Config::new(NodeId::FRONTEND, secret.as_bytes());
    let port = alloc.frontend_endpoint().port();
    let registry = alloc.registry();
    let admit_secret = secret.clone();
    config.admit = Some(Admission::new(move |node| {
        registry.connected(node, admit_secret.as_bytes()).is_ok()
    }));
    let listener = alloc.listen().map_err(|e| e.to_string())?;
    let listener = ebbrt::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let messenger = Messenger::start_on(config, listener).map_err(|e| e.to_string())?;
    GlobalIdMap::set(FILE_KEY, Value::Bytes(FILE.as_bytes().to_vec()))
        .await
        .map_err(|e| e.to_string())?;

    // Boot both, then wait for each.
    let opts = NodeOpts {
        cores: 1,
        memory_mib: 128,
        node_port: Some(NODE_PORT),
        extra_args: String::new(),
    };
    let mut nodes: Vec<(NodeHandle, Instant)> = Vec::new();
    let mut forwards: Vec<SocketAddr> = Vec::new();
    for _ in 0..2 {
        let h = alloc.allocate(&image, &opts).map_err(|e| e.to_string())?;
        let node = h.id();
        if let Some(ep) = h.peer_endpoint() {
            // Where the other nodes reach it (through the host's loopback, or
            // on the bridge), and, under user networking, where the frontend
            // does (on a tap it cannot: its sockets are outside the
            // namespace; nodes connect to it).
            publish_endpoint(node, ep)
                .await
                .map_err(|e| e.to_string())?;
            if user {
                let here = SocketAddr::from(([127, 0, 0, 1], ep.port()));
                messenger.add_peer(node, here);
                forwards.push(here);
            }
        }
        println!(
            "cluster: booting node {node} (console: {})",
            h.console_log()
                .map_or("-".into(), |p| p.display().to_string())
        );
        nodes.push((h, Instant::now()));
    }
    for (h, booted) in &nodes {
        let node = h.id();
        let waited = Instant::now();
        loop {
            if let NodeStatus::Ended(e) = h.status() {
                return Err(format!("node {node} ended before connecting: {e}"));
            }
            match messenger
                .wait_connected(node, Duration::from_millis(500))
                .await
            {
                Ok(()) => break,
                Err(_) if waited.elapsed() < BOOT => {}
                Err(e) => return Err(format!("node {node} did not connect: {e}")),
            }
        }
        println!("node {node} connected");
        println!(
            "cluster: node {node}: boot to connected {} ms",
            booted.elapsed().as_millis()
        );
    }
    let members: Vec<NodeId> = [NodeId::FRONTEND]
        .into_iter()
        .chain(nodes.iter().map(|(h, _)| h.id()))
        .collect();
    let (n1, n2) = (members[1], members[2]);

    if user {
        // Peers the allocation did not make are refused: one without the
        // secret (by node 1), one with it but never allocated (by the frontend).
        let intruder = Messenger::start_detached(Config::new(NodeId(99), b"not the secret"))
            .map_err(|e| e.to_string())?;
        intruder.add_peer(n1, forwards[0]);
        let r = intruder
            .request(
                n1,
                <Probe as StaticEbb>::ID,
                &Ping { seq: 1 },
                IoBufChain::new(),
                Duration::from_secs(20),
            )
            .await;
        c.check(
            matches!(r, Err(MsgError::Unauthorized)),
            format!("node {n1} refused a peer without the secret: {:?}", r.err()),
        );
        let stranger = Messenger::start_detached(Config::new(NodeId(42), secret.as_bytes()))
            .map_err(|e| e.to_string())?;
        stranger.add_peer(NodeId::FRONTEND, SocketAddr::from(([127, 0, 0, 1], port)));
        let r = stranger
            .request(
                NodeId::FRONTEND,
                <GlobalIdMap as StaticEbb>::ID,
                &ebbrt_global_id_map::Get {
                    name: FILE_KEY.into(),
                },
                IoBufChain::new(),
                Duration::from_secs(20),
            )
            .await;
        c.check(
            matches!(r, Err(MsgError::Unauthorized)),
            format!(
                "the frontend refused node 42, which it never allocated: {:?}",
                r.err()
            ),
        );
    } else {
        println!("cluster: the refusal checks need user networking (a peer from the host)");
    }

    // The sharded store, from the frontend.
    let mut stored_on = [0u32; 3];
    let mut good = 0;
    for i in 0..30 {
        let key = format!("frontend/key-{i}");
        let to = owner(&key, &members);
        let value = format!("value {i}").into_bytes();
        let put = Put {
            key: key.clone(),
            value: value.clone(),
        };
        let back = match Kv::on(to).call(&put).await {
            Ok(s) if s.node == to => Kv::on(to).call(&Get { key }).await.ok(),
            _ => None,
        };
        if back.is_some_and(|s| s.value.as_deref() == Some(&value[..])) {
            good += 1;
            stored_on[members.iter().position(|m| *m == to).unwrap_or(0)] += 1;
        }
    }
    c.check(
        good == 30,
        format!("30 keys written and read back from the frontend ({good} intact; per node {stored_on:?})"),
    );

    // Each node writes through the store too: node to node and node to
    // frontend, endpoints found through the global id map.
    for &n in &members[1..] {
        match Kv::on(n)
            .deadline(Duration::from_secs(60))
            .call(&Exercise {
                members: members.clone(),
                keys: 20,
            })
            .await
        {
            Ok(r) => {
                c.check(
                    r.ok == 20 && r.failures.is_empty(),
                    format!(
                        "node {n} wrote and read back {} of 20 keys across the nodes {:?}",
                        r.ok, r.failures
                    ),
                );
                let space = ebbrt::ebb::ids::space(n.0).unwrap_or(0..0);
                let published = GlobalIdMap::get(&format!("cluster.id/{}", n.0)).await;
                let seen = published.ok().flatten().and_then(|e| e.value.ebb_id());
                c.check(
                    space.contains(&r.new_id) && seen.map(|i| i.raw()) == Some(r.new_id),
                    format!(
                        "node {n} published id {} from its own space {space:?}",
                        r.new_id
                    ),
                );
            }
            Err(e) => c.check(false, format!("node {n} exercise: {e}")),
        }
    }

    // A watch on node 2, woken by a set on the frontend.
    let watch = ebbrt::spawn_local(async move {
        Probe::on(n2)
            .deadline(Duration::from_secs(30))
            .call(&WatchFor {
                name: "cluster.signal".into(),
            })
            .await
    });
    ebbrt::exec::sleep(Duration::from_millis(200)).await;
    GlobalIdMap::set("cluster.signal", Value::Bytes(b"go".to_vec()))
        .await
        .map_err(|e| e.to_string())?;
    let seen = watch.await;
    c.check(
        matches!(&seen, Ok(w) if w.value.as_deref() == Ok(&b"go"[..])),
        format!("node {n2} watched cluster.signal until the frontend set it: {seen:?}"),
    );

    // File offload from node 1.
    match Probe::on(n1)
        .deadline(Duration::from_secs(60))
        .call(&ReadFile {
            path: FILE.into(),
            escape: "../../etc/passwd".into(),
        })
        .await
    {
        Ok(r) => {
            c.check(
                r.result.as_deref() == Ok(text.as_bytes()),
                format!(
                    "node {n1} read {FILE} through the offload: {:?}",
                    r.result
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).trim().to_string())
                ),
            );
            c.check(
                r.escape == Err(FsError::Escape),
                format!(
                    "node {n1} was refused a path out of the served directory: {:?}",
                    r.escape
                ),
            );
            c.check(
                r.stat == Ok((text.len() as u64, FileKind::File)),
                format!("node {n1} stat {FILE}: {:?}", r.stat),
            );
            c.check(
                r.listing.as_deref() == Ok(&[FILE.to_string()][..]),
                format!("node {n1} listed the served directory: {:?}", r.listing),
            );
            c.check(
                r.missing == Err(FsError::NotFound),
                format!("node {n1} got NotFound for a missing file: {:?}", r.missing),
            );
        }
        Err(e) => c.check(false, format!("node {n1} file read: {e}")),
    }

    // Round trips: frontend -> node, node -> node.
    let r = time_pings(n1, 200).await;
    println!(
        "cluster: rtt frontend -> node {n1}: {}",
        say(&r.micros, r.failed)
    );
    c.check(r.failed == 0, format!("200 pings frontend -> node {n1}"));
    match Probe::on(n1)
        .deadline(Duration::from_secs(120))
        .call(&PingPeer {
            peer: n2,
            count: 200,
        })
        .await
    {
        Ok(r) => {
            println!(
                "cluster: rtt node {n1} -> node {n2}: {}",
                say(&r.micros, r.failed)
            );
            c.check(r.failed == 0, format!("200 pings node {n1} -> node {n2}"));
        }
        Err(e) => c.check(false, format!("node {n1} pinging node {n2}: {e}")),
    }

    // Bulk: frontend -> node as message bulk, node <- frontend's disk
    // through the offload.
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let rounds = 16u64;
    let t = Instant::now();
    let mut sunk_ok = true;
    for _ in 0..rounds {
        let bulk = IoBufChain::from(ebbrt::IoBuf::from_vec(chunk.clone()));
        match Probe::on(n1)
            .deadline(Duration::from_secs(60))
            .call_bulk(&Sink, bulk)
            .await
        {
            Ok(r) => {
                sunk_ok &= r.msg.bytes == chunk.len() as u64 && r.msg.hash == fnv(FNV_START, &chunk)
            }
            Err(e) => {
                println!("cluster: bulk to node {n1}: {e}");
                sunk_ok = false;
            }
        }
    }
    println!(
        "cluster: bulk frontend -> node {n1}: {rounds} x 1 MiB in {} ms, {:.1} MB/s",
        t.elapsed().as_millis(),
        (rounds << 20) as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    c.check(
        sunk_ok,
        format!("{rounds} MiB of bulk bytes reached node {n1} intact"),
    );
    let big: Vec<u8> = chunk
        .iter()
        .cycle()
        .take(4 << 20)
        .map(|b| b ^ 0x5a)
        .collect();
    std::fs::write(served.join("big.bin"), &big).map_err(|e| format!("big.bin: {e}"))?;
    match Probe::on(n1)
        .deadline(Duration::from_secs(120))
        .call(&ReadTimed {
            path: "big.bin".into(),
        })
        .await
    {
        Ok(r) => {
            println!(
                "cluster: node {n1} read 4 MiB through the offload in {} ms, {:.1} MB/s",
                r.micros / 1000,
                (4u64 << 20) as f64 / (r.micros.max(1) as f64 / 1e6) / 1e6
            );
            c.check(
                r.result == Ok((big.len() as u64, fnv(FNV_START, &big))),
                format!("node {n1} read big.bin (4 MiB) intact: {:?}", r.result),
            );
        }
        Err(e) => c.check(false, format!("node {n1} reading big.bin: {e}")),
    }

    // Node 2 dies; the frontend notices and carries on with the others.
    let pid = alloc.pids().get(1).copied();
    let Some(pid) = pid else {
        return Err("no process for node 2".into());
    };
    println!("cluster: killing node {n2} (QEMU pid {pid})");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let ended = {
        let t = Instant::now();
        loop {
            if let NodeStatus::Ended(e) = nodes[1].0.status() {
                break Some(e);
            }
            if t.elapsed() > Duration::from_secs(30) {
                break None;
            }
            ebbrt::exec::sleep(Duration::from_millis(50)).await;
        }
    };
    match &ended {
        Some(e) => println!("cluster: node {n2} lost: {e}"),
        None => println!("cluster: node {n2} still running after SIGKILL"),
    }
    c.check(
        ended.is_some(),
        format!("the frontend reported node {n2}'s death"),
    );
    let lost = Kv::on(n2)
        .deadline(Duration::from_secs(10))
        .call(&Get { key: "x".into() })
        .await;
    c.check(
        lost.is_err(),
        format!(
            "a call to the dead node fails instead of hanging: {:?}",
            lost.err().map(|e| e.to_string())
        ),
    );
    let rest = vec![NodeId::FRONTEND, n1];
    match Kv::on(n1)
        .deadline(Duration::from_secs(60))
        .call(&Exercise {
            members: rest.clone(),
            keys: 10,
        })
        .await
    {
        Ok(r) => c.check(
            r.ok == 10 && r.failures.is_empty(),
            format!(
                "the store carries on over {rest:?}: {} of 10 keys {:?}",
                r.ok, r.failures
            ),
        ),
        Err(e) => c.check(false, format!("node {n1} after node {n2}'s death: {e}")),
    }

    // Stop node 1 cleanly.
    let stop = Probe::on(n1).call(&Stop { code: 0 }).await;
    c.check(stop.is_ok(), format!("node {n1} asked to stop: {stop:?}"));
    let h1 = &nodes[0].0;
    let t = Instant::now();
    let end = loop {
        if let NodeStatus::Ended(e) = h1.status() {
            break Some(e);
        }
        if t.elapsed() > Duration::from_secs(60) {
            break None;
        }
        ebbrt::exec::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "cluster: node {n1} ended: {}",
        end.as_ref().map_or("not yet".into(), |e| e.to_string())
    );
    c.check(
        matches!(
            end,
            Some(NodeError::Exited {
                app_status: Some(0),
                ..
            })
        ),
        format!("node {n1} stopped with status 0"),
    );
    let stats = messenger.stats();
    println!(
        "cluster: frontend messenger: {} frames in, {} out, {} connections opened, {} refused",
        stats.frames_in, stats.frames_out, stats.connections_opened, stats.auth_refused
    );
    drop(alloc);
    let _ = std::fs::remove_dir_all(&work);
    Ok(c)
}

/// The map entry naming the file nodes read.
const FILE_KEY: &str = "cluster.file";

/// The `q`-quantile of sorted values (0 when empty).
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q + 0.5) as usize;
    sorted[i.min(sorted.len() - 1)]
}
