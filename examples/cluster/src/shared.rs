//! What every node of the application has: two distributed Ebbs and their
//! messages.
//!
//! - [`Kv`]: a key-value store sharded over the members: a key lives on
//!   the member its hash picks; `Kv::on(owner).call(&Put { .. })` stores it
//!   there. [`Exercise`] asks a node to write and read back keys through
//!   the store itself (so nodes call each other and the frontend).
//! - [`Probe`]: what the frontend asks a native node to do: read a file
//!   through the offload, answer pings, time pings to another node, stop.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, Ordering};
use core::time::Duration;

use ebbrt::ebb::ids;
use ebbrt::time::Instant;
use ebbrt::{IoBufChain, ebb};
use ebbrt_fs_offload::{FileKind, FileSystem, FsError};
use ebbrt_global_id_map::GlobalIdMap;
use ebbrt_messenger::{Distributed, ErrorKind, NodeId, Reply, Serve};
use serde::{Deserialize, Serialize};

/// Stores a value on the node that owns its key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Put {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}
/// Reads a key on the node that owns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Get {
    /// The key.
    pub key: String,
}
/// Which node answered, and the value read (for [`Get`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    /// The node that holds the key.
    pub node: NodeId,
    /// The value, for a [`Get`] of a key that is set.
    pub value: Option<Vec<u8>>,
}
/// Asks a node to write `keys` keys through the store, spread over
/// `members`, read them back, and publish an id of its own.
#[derive(Debug, Serialize, Deserialize)]
pub struct Exercise {
    /// The nodes the store spans.
    pub members: Vec<NodeId>,
    /// How many keys.
    pub keys: u32,
}
/// What an [`Exercise`] found.
#[derive(Debug, Serialize, Deserialize)]
pub struct Exercised {
    /// Keys written and read back intact.
    pub ok: u32,
    /// What went wrong, one line each.
    pub failures: Vec<String>,
    /// The id the node allocated from its own space and published.
    pub new_id: u32,
}
ebbrt_messenger::message!(Put, "cluster::Put", 1, reply = Stored);
ebbrt_messenger::message!(Get, "cluster::Get", 1, reply = Stored);
ebbrt_messenger::message!(Stored, "cluster::Stored", 1);
ebbrt_messenger::message!(Exercise, "cluster::Exercise", 1, reply = Exercised);
ebbrt_messenger::message!(Exercised, "cluster::Exercised", 1);

/// The shard a node holds.
#[derive(Default)]
pub struct KvRoot {
    map: spin::Mutex<BTreeMap<String, Vec<u8>>>,
}

/// A key-value store sharded over the application's nodes.
#[ebb(per_core, id = ids::app(10), root = KvRoot, distributed(Put, Get, Exercise))]
#[derive(Default)]
pub struct Kv;

fn shard() -> &'static KvRoot {
    ebbrt::EbbRef::<Kv>::fixed().root().data()
}

fn me() -> NodeId {
    ebbrt_messenger::Messenger::node_messenger()
        .get()
        .node()
        .unwrap_or(NodeId::FRONTEND)
}

/// The member that owns `key` (FNV-1a of the key, modulo the members).
pub fn owner(key: &str, members: &[NodeId]) -> NodeId {
    let h = fnv(FNV_START, key.as_bytes());
    members[(h % members.len() as u64) as usize]
}

impl Serve<Put> for Kv {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Put,
        _bulk: IoBufChain,
    ) -> Result<Reply<Stored>, ErrorKind> {
        shard().map.lock().insert(m.key, m.value);
        Ok(Reply::new(Stored {
            node: me(),
            value: None,
        }))
    }
}

impl Serve<Get> for Kv {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Get,
        _bulk: IoBufChain,
    ) -> Result<Reply<Stored>, ErrorKind> {
        Ok(Reply::new(Stored {
            node: me(),
            value: shard().map.lock().get(&m.key).cloned(),
        }))
    }
}

impl Serve<Exercise> for Kv {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Exercise,
        _bulk: IoBufChain,
    ) -> Result<Reply<Exercised>, ErrorKind> {
        if m.members.is_empty() {
            return Err(ErrorKind::Malformed);
        }
        let me = me();
        let mut ok = 0;
        let mut failures = Vec::new();
        for i in 0..m.keys {
            let key = format!("from-{}/key-{i}", me.0);
            let value = format!("{i} written by node {}", me.0).into_bytes();
            let to = owner(&key, &m.members);
            let put = Put {
                key: key.clone(),
                value: value.clone(),
            };
            if let Err(e) = Kv::on(to).call(&put).await {
                failures.push(format!("put {key} on node {to}: {e}"));
                continue;
            }
            match Kv::on(to).call(&Get { key: key.clone() }).await {
                Ok(s) if s.value.as_deref() == Some(&value[..]) && s.node == to => ok += 1,
                Ok(s) => failures.push(format!("get {key} from node {to}: {s:?}")),
                Err(e) => failures.push(format!("get {key} from node {to}: {e}")),
            }
        }
        let new_id = match GlobalIdMap::publish_new_id(&format!("cluster.id/{}", me.0)).await {
            Ok(id) => id.raw(),
            Err(e) => {
                failures.push(format!("publish an id: {e}"));
                0
            }
        };
        Ok(Reply::new(Exercised {
            ok,
            failures,
            new_id,
        }))
    }
}

/// Reads a file through the offload.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadFile {
    /// Its path in the served directory.
    pub path: String,
    /// A path that escapes it, which must be refused.
    pub escape: String,
}
/// What [`ReadFile`] found.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileRead {
    /// The file's bytes, or the error.
    pub result: Result<Vec<u8>, FsError>,
    /// What reading the escaping path gave (it must be `Escape`).
    pub escape: Result<u64, FsError>,
    /// What reading a missing file gave (it must be `NotFound`).
    pub missing: Result<u64, FsError>,
    /// The file's size and kind as `stat` reports them.
    pub stat: Result<(u64, FileKind), FsError>,
    /// The served directory's entries (names, sorted), as `list` reports them.
    pub listing: Result<Vec<String>, FsError>,
}
/// A ping.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed.
    pub seq: u64,
}
/// The answer to [`Ping`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's.
    pub seq: u64,
}
/// Asks a node to time `count` pings to `peer`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PingPeer {
    /// The node to ping.
    pub peer: NodeId,
    /// How many.
    pub count: u32,
}
/// Round-trip times, sorted, in microseconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rtts {
    /// One per ping that was answered.
    pub micros: Vec<u32>,
    /// Pings that failed.
    pub failed: u32,
}
/// Asks a node to stop with `code`, after answering.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stop {
    /// Its exit status.
    pub code: i32,
}
/// The answer to [`Stop`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Stopping;
ebbrt_messenger::message!(ReadFile, "cluster::ReadFile", 1, reply = FileRead);
ebbrt_messenger::message!(FileRead, "cluster::FileRead", 1);
ebbrt_messenger::message!(Ping, "cluster::Ping", 1, reply = Pong);
ebbrt_messenger::message!(Pong, "cluster::Pong", 1);
ebbrt_messenger::message!(PingPeer, "cluster::PingPeer", 1, reply = Rtts);
ebbrt_messenger::message!(Rtts, "cluster::Rtts", 1);
ebbrt_messenger::message!(Stop, "cluster::Stop", 1, reply = Stopping);
ebbrt_messenger::message!(Stopping, "cluster::Stopping", 1);

/// Bulk bytes to swallow (after the message, as bulk).
#[derive(Debug, Serialize, Deserialize)]
pub struct Sink;
/// What a [`Sink`] received.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sunk {
    /// How many bulk bytes.
    pub bytes: u64,
    /// Their FNV-1a hash.
    pub hash: u64,
}
/// Asks a node to read a whole file through the offload, timed.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadTimed {
    /// Its path in the served directory.
    pub path: String,
}
/// What a [`ReadTimed`] read.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadTime {
    /// The bytes' length and FNV-1a hash, or the error.
    pub result: Result<(u64, u64), FsError>,
    /// How long the read took, in microseconds.
    pub micros: u64,
}
/// Asks a node to watch a name in the global id map until it is set.
#[derive(Debug, Serialize, Deserialize)]
pub struct WatchFor {
    /// The name.
    pub name: String,
}
/// What the watch saw: the value's bytes, or the error.
#[derive(Debug, Serialize, Deserialize)]
pub struct Watched {
    /// The bytes set, or why the watch failed.
    pub value: Result<Vec<u8>, String>,
}
ebbrt_messenger::message!(WatchFor, "cluster::WatchFor", 1, reply = Watched);
ebbrt_messenger::message!(Watched, "cluster::Watched", 1);
ebbrt_messenger::message!(Sink, "cluster::Sink", 1, reply = Sunk);
ebbrt_messenger::message!(Sunk, "cluster::Sunk", 1);
ebbrt_messenger::message!(ReadTimed, "cluster::ReadTimed", 1, reply = ReadTime);
ebbrt_messenger::message!(ReadTime, "cluster::ReadTime", 1);

/// FNV-1a over bytes, continuing from `h` (start with [`FNV_START`]).
pub fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
/// FNV-1a's offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The status a node's main returns once asked to stop (`i32::MIN`: not
/// asked yet).
pub static STOP: AtomicI32 = AtomicI32::new(i32::MIN);

/// What the frontend asks of a node.
#[ebb(
    per_core,
    id = ids::app(11),
    distributed(ReadFile, Ping, PingPeer, Stop, Sink, ReadTimed, WatchFor)
)]
#[derive(Default)]
pub struct Probe;

/// The largest file a probe reads.
const FILE_LIMIT: u64 = 1 << 20;

impl Serve<ReadFile> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: ReadFile,
        _bulk: IoBufChain,
    ) -> Result<Reply<FileRead>, ErrorKind> {
        let result = FileSystem::read_file(&m.path, FILE_LIMIT)
            .await
            .map(|c| c.to_vec());
        let len = |r: Result<IoBufChain, FsError>| r.map(|c| c.len() as u64);
        let escape = len(FileSystem::read_file(&m.escape, FILE_LIMIT).await);
        let missing = len(FileSystem::read_file("no/such/file", FILE_LIMIT).await);
        let stat = FileSystem::stat(&m.path).await.map(|s| (s.size, s.kind));
        let listing = FileSystem::list("")
            .await
            .map(|(entries, _)| entries.into_iter().map(|e| e.name).collect());
        Ok(Reply::new(FileRead {
            result,
            escape,
            missing,
            stat,
            listing,
        }))
    }
}

impl Serve<Ping> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Ping,
        _bulk: IoBufChain,
    ) -> Result<Reply<Pong>, ErrorKind> {
        Ok(Reply::new(Pong { seq: m.seq }))
    }
}

/// Times `count` pings to `peer`'s probe.
pub async fn time_pings(peer: NodeId, count: u32) -> Rtts {
    let mut micros = Vec::with_capacity(count as usize);
    let mut failed = 0;
    let remote = Probe::on(peer).deadline(Duration::from_secs(5));
    for seq in 0..u64::from(count) {
        let t = Instant::now();
        match remote.call(&Ping { seq }).await {
            Ok(p) if p.seq == seq => {
                micros.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX))
            }
            _ => failed += 1,
        }
    }
    micros.sort_unstable();
    Rtts { micros, failed }
}

impl Serve<PingPeer> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: PingPeer,
        _bulk: IoBufChain,
    ) -> Result<Reply<Rtts>, ErrorKind> {
        Ok(Reply::new(time_pings(m.peer, m.count.min(10_000)).await))
    }
}

impl Serve<Stop> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Stop,
        _bulk: IoBufChain,
    ) -> Result<Reply<Stopping>, ErrorKind> {
        STOP.store(m.code, Ordering::Relaxed);
        Ok(Reply::new(Stopping))
    }
}

impl Serve<Sink> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        _m: Sink,
        bulk: IoBufChain,
    ) -> Result<Reply<Sunk>, ErrorKind> {
        let hash = bulk.buffers().fold(FNV_START, |h, b| fnv(h, b));
        Ok(Reply::new(Sunk {
            bytes: bulk.len() as u64,
            hash,
        }))
    }
}

impl Serve<ReadTimed> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: ReadTimed,
        _bulk: IoBufChain,
    ) -> Result<Reply<ReadTime>, ErrorKind> {
        let t = Instant::now();
        let result = FileSystem::read_file(&m.path, 64 << 20).await.map(|c| {
            (
                c.len() as u64,
                c.buffers().fold(FNV_START, |h, b| fnv(h, b)),
            )
        });
        Ok(Reply::new(ReadTime {
            result,
            micros: t.elapsed().as_micros() as u64,
        }))
    }
}

impl Serve<WatchFor> for Probe {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: WatchFor,
        _bulk: IoBufChain,
    ) -> Result<Reply<Watched>, ErrorKind> {
        let value = GlobalIdMap::watch(&m.name, 0, Duration::from_secs(20))
            .await
            .map_err(|e| format!("{e}"))
            .and_then(|e| {
                e.value
                    .bytes()
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "not bytes".into())
            });
        Ok(Reply::new(Watched { value }))
    }
}
