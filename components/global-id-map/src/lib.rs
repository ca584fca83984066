//! # ebbrt-global-id-map
//!
//! Application-wide names, shared by every node of a distributed
//! application: a name maps to an [`EbbId`] (an Ebb one node made and
//! others should reach) or to a small value (an endpoint, a setting).
//! [`GlobalIdMap::get`], [`GlobalIdMap::set`] and [`GlobalIdMap::watch`]
//! work from every node and every core.
//!
//! The map is itself a distributed Ebb (`#[ebb(per_core, id =
//! GLOBAL_ID_MAP, distributed(...))]`): the frontend (node 0) holds it, and
//! the other nodes' calls are requests to the frontend's representative.
//! Each node allocates run-time ids from its own id space
//! ([`ebbrt_core::ebb::ids::space`]), which [`join`] selects from the
//! node's bootstrap, so ids published here never collide.
//!
//! [`join`] is how a native (or hosted) node started by the node allocator
//! enters the application: id space, messenger at its well-known id, the
//! frontend as its first peer, and other nodes' endpoints looked up here
//! (under [`node_key`]) when first messaged.
//!
//! Limits: names up to [`MAX_NAME`] bytes, values up to [`MAX_VALUE`];
//! larger ones are refused with [`ErrorKind::TooLarge`], never stored.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use ebbrt_core::ebb::ids::{self, GLOBAL_ID_MAP, SpaceError};
use ebbrt_core::{EbbId, EbbRef, IoBufChain, ebb};
use ebbrt_messenger::bootstrap::Bootstrap;
use ebbrt_messenger::{
    Config, Distributed, ErrorKind, Messenger, MsgError, NodeId, Reply, Serve, StartError,
};
use serde::{Deserialize, Serialize};

/// The longest name, in bytes.
pub const MAX_NAME: usize = 256;
/// The largest value, in bytes.
pub const MAX_VALUE: usize = 1024;

/// What a name maps to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// An Ebb's id (raw; see [`Value::ebb_id`]).
    Ebb(u32),
    /// A small value of the application's.
    Bytes(Vec<u8>),
}

impl Value {
    /// The id, if this is a valid one.
    pub fn ebb_id(&self) -> Option<EbbId> {
        match *self {
            Value::Ebb(raw) if (raw as usize) < ebbrt_core::ebb::TABLE_SIZE && raw != 0 => {
                Some(EbbId::new(raw))
            }
            _ => None,
        }
    }

    /// The bytes, if this is a byte value.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Ebb(_) => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Value::Ebb(_) => 4,
            Value::Bytes(b) => b.len(),
        }
    }
}

/// A name's current value and its version (1 for the first set; every set
/// of any name takes the next version of the whole map).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The map's version when it was set.
    pub version: u64,
    /// The value.
    pub value: Value,
}

/// Reads a name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Get {
    /// The name.
    pub name: String,
}
/// Sets a name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Set {
    /// The name.
    pub name: String,
    /// Its new value.
    pub value: Value,
}
/// Waits until a name is set with a version above `after`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Watch {
    /// The name.
    pub name: String,
    /// The version already seen (0: none).
    pub after: u64,
}
/// The answer to [`Get`] and [`Watch`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    /// The entry, if the name is set.
    pub entry: Option<Entry>,
}
/// The answer to [`Set`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    /// The entry's version.
    pub version: u64,
}
ebbrt_messenger::message!(Get, "ebbrt_global_id_map::Get", 1, reply = Found);
ebbrt_messenger::message!(Set, "ebbrt_global_id_map::Set", 1, reply = Stored);
ebbrt_messenger::message!(Watch, "ebbrt_global_id_map::Watch", 1, reply = Found);
ebbrt_messenger::message!(Found, "ebbrt_global_id_map::Found", 1);
ebbrt_messenger::message!(Stored, "ebbrt_global_id_map::Stored", 1);

/// The map as the frontend holds it.
#[derive(Default)]
pub struct MapRoot {
    entries: spin::Mutex<BTreeMap<String, Entry>>,
    version: AtomicU64,
    watchers: spin::Mutex<Vec<Waker>>,
}

impl MapRoot {
    fn lookup(&self, name: &str) -> Option<Entry> {
        self.entries.lock().get(name).cloned()
    }

    fn store(&self, name: String, value: Value) -> u64 {
        let version = {
            let mut e = self.entries.lock();
            let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
            e.insert(name, Entry { version, value });
            version
        };
        for w in core::mem::take(&mut *self.watchers.lock()) {
            w.wake();
        }
        version
    }
}

/// The global id map: names to Ebb ids and small values, application-wide
/// (held by the frontend, node 0; reached from every node).
#[ebb(
    per_core,
    id = GLOBAL_ID_MAP,
    root = MapRoot,
    distributed(Get, Set, Watch)
)]
#[derive(Default)]
pub struct GlobalIdMap;

fn check_name(name: &str) -> Result<(), ErrorKind> {
    if name.len() > MAX_NAME {
        return Err(ErrorKind::TooLarge);
    }
    Ok(())
}

fn root() -> &'static MapRoot {
    EbbRef::<GlobalIdMap>::fixed().root().data()
}

impl Serve<Get> for GlobalIdMap {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Get,
        _bulk: IoBufChain,
    ) -> Result<Reply<Found>, ErrorKind> {
        check_name(&m.name)?;
        Ok(Reply::new(Found {
            entry: root().lookup(&m.name),
        }))
    }
}

impl Serve<Set> for GlobalIdMap {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Set,
        _bulk: IoBufChain,
    ) -> Result<Reply<Stored>, ErrorKind> {
        check_name(&m.name)?;
        if m.value.len() > MAX_VALUE {
            return Err(ErrorKind::TooLarge);
        }
        Ok(Reply::new(Stored {
            version: root().store(m.name, m.value),
        }))
    }
}

impl Serve<Watch> for GlobalIdMap {
    async fn serve(
        &'static self,
        _from: NodeId,
        m: Watch,
        _bulk: IoBufChain,
    ) -> Result<Reply<Found>, ErrorKind> {
        check_name(&m.name)?;
        let root = root();
        // Wakes on every set; the messenger's handler timeout bounds it.
        let entry = core::future::poll_fn(|cx| {
            let check = || root.lookup(&m.name).filter(|e| e.version > m.after);
            if let Some(e) = check() {
                return Poll::Ready(e);
            }
            root.watchers.lock().push(cx.waker().clone());
            // A set between the check and the registration woke no one.
            match check() {
                Some(e) => Poll::Ready(e),
                None => Poll::Pending,
            }
        })
        .await;
        Ok(Reply::new(Found { entry: Some(entry) }))
    }
}

/// How long a map call waits by default.
pub const DEADLINE: Duration = Duration::from_secs(10);

impl GlobalIdMap {
    fn frontend() -> ebbrt_messenger::Remote<GlobalIdMap> {
        GlobalIdMap::on(NodeId::FRONTEND).deadline(DEADLINE)
    }

    /// The entry of `name`, if set.
    pub async fn get(name: &str) -> Result<Option<Entry>, MsgError> {
        let name = name.into();
        Ok(Self::frontend().call(&Get { name }).await?.entry)
    }

    /// Sets `name` to `value`; returns the entry's version.
    pub async fn set(name: &str, value: Value) -> Result<u64, MsgError> {
        if name.len() > MAX_NAME || value.len() > MAX_VALUE {
            return Err(MsgError::TooLarge);
        }
        let name = name.into();
        Ok(Self::frontend().call(&Set { name, value }).await?.version)
    }

    /// Waits, at most `deadline`, until `name` is set with a version above
    /// `after` (0: until it is set at all); returns that entry.
    pub async fn watch(name: &str, after: u64, deadline: Duration) -> Result<Entry, MsgError> {
        let name = name.into();
        let found = Self::frontend()
            .deadline(deadline)
            .call(&Watch { name, after })
            .await?;
        found.entry.ok_or(MsgError::BadReply(ErrorKind::Malformed))
    }

    /// Allocates a run-time id from this node's id space and publishes it
    /// under `name`: how a node makes an Ebb the others can reach.
    pub async fn publish_new_id(name: &str) -> Result<EbbId, MapError> {
        let id = ids::allocate().map_err(MapError::Ids)?;
        Self::set(name, Value::Ebb(id.raw()))
            .await
            .map_err(MapError::Msg)?;
        Ok(id)
    }
}

/// Why a map operation that also allocates failed.
#[derive(Debug)]
pub enum MapError {
    /// No id left in this node's space.
    Ids(ebbrt_core::EbbError),
    /// The call to the frontend failed.
    Msg(MsgError),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::Ids(e) => write!(f, "{e}"),
            MapError::Msg(e) => write!(f, "global id map: {e}"),
        }
    }
}

impl core::error::Error for MapError {}

/// The name under which the frontend publishes where `node`'s messenger is
/// reached (`"ebbrt.node/3"`), as text (`"10.0.2.2:40123"`).
pub fn node_key(node: NodeId) -> String {
    format!("ebbrt.node/{}", node.0)
}

/// Publishes where `node`'s messenger is reached (the frontend does this
/// for each node it allocates; [`join`]ed nodes find each other with it).
pub async fn publish_endpoint(node: NodeId, endpoint: SocketAddr) -> Result<u64, MsgError> {
    GlobalIdMap::set(
        &node_key(node),
        Value::Bytes(format!("{endpoint}").into_bytes()),
    )
    .await
}

/// Why [`join`] failed.
#[derive(Debug)]
pub enum JoinError {
    /// The bootstrap's id space cannot be used.
    IdSpace(SpaceError),
    /// The messenger did not start.
    Messenger(StartError),
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JoinError::IdSpace(e) => write!(f, "cannot join: {e}"),
            JoinError::Messenger(e) => write!(f, "cannot join: {e}"),
        }
    }
}

impl core::error::Error for JoinError {}

/// Enters the application as the node `boot` describes, on the current core
/// (the messenger's home): allocates ids from the node's id space, starts
/// the node's messenger (listening on `listen`, if given), with the
/// frontend as its first peer and the endpoints of other nodes looked up in
/// the map ([`node_key`]).
pub fn join(boot: &Bootstrap, listen: Option<SocketAddr>) -> Result<EbbRef<Messenger>, JoinError> {
    ids::ID_ALLOCATOR_REF
        .use_space(boot.id_space.0)
        .map_err(JoinError::IdSpace)?;
    let mut config = Config::new(boot.node, boot.secret.as_bytes());
    config.listen = listen;
    let m = Messenger::start(config).map_err(JoinError::Messenger)?;
    m.add_peer(NodeId::FRONTEND, boot.frontend);
    m.set_resolver(|node| async move {
        let entry = GlobalIdMap::get(&node_key(node)).await.ok()??;
        core::str::from_utf8(entry.value.bytes()?)
            .ok()?
            .parse()
            .ok()
    })
    .map_err(|e| JoinError::Messenger(StartError::Distributed(format!("{e}"))))?;
    Ok(m)
}
