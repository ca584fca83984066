//! Distributed Ebbs: an Ebb with representatives on several nodes, and
//! typed async calls to a named node's representative.
//!
//! A distributed Ebb is a per-core Ebb at a well-known id (the same on every
//! node, so a frame's destination names it everywhere) that serves some
//! [`Request`]s. Declare it with the macro, naming what it serves:
//!
//! ```ignore
//! #[ebb(per_core, id = ids::app(1), distributed(Put, Get))]
//! #[derive(Default)]
//! pub struct Store { /* this node's shard, on this core */ }
//!
//! impl Serve<Put> for Store {
//!     async fn serve(&'static self, from: NodeId, put: Put, bulk: IoBufChain)
//!         -> Result<Reply<Done>, ErrorKind> { ... }
//! }
//! // and Serve<Get>
//!
//! // From any core of any node:
//! let done = Store::on(NodeId(2)).call(&Put { .. }).await?;
//! ```
//!
//! The macro implements [`Distributed`] and registers the Ebb at link time
//! in [`DISTRIBUTED`]; [`Messenger::start`] installs a handler for every
//! request type of every registered Ebb, which runs the request on the
//! receiving node's representative on the messenger's home core. A call is
//! checked at compile time: `Store::on(n).call(&m)` compiles only if `Store`
//! serves `m`'s type. Every call has a deadline ([`DEFAULT_DEADLINE`], or
//! [`Remote::deadline`]); a node is named by its logical [`NodeId`].

use core::future::Future;
use core::marker::PhantomData;
use core::time::Duration;

use alloc::format;
use alloc::string::String;

use ebbrt_core::{EbbId, EbbRef, IoBufChain, PerCore, StaticEbb};

use ebbrt_core::exec::timeout;

use crate::{ErrorKind, Messenger, MsgError, NodeId, Reply, Request, decode_payload};

/// How long a call waits by default (connecting included).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// An Ebb with representatives on several nodes, reached by its well-known
/// id. Implemented by `#[ebb(per_core, id = ..., distributed(...))]`.
pub trait Distributed: PerCore + StaticEbb {
    /// The Ebb's name, for messages.
    const NAME: &'static str;

    /// A handle on the representative of `node` (this node's included:
    /// a call to oneself goes through the messenger too, over no network).
    fn on(node: NodeId) -> Remote<Self> {
        Remote {
            node,
            deadline: DEFAULT_DEADLINE,
            _ebb: PhantomData,
        }
    }
}

/// A distributed Ebb's way of answering the request `M`, on the node that
/// receives it (on the messenger's home core).
pub trait Serve<M: Request>: Distributed {
    /// Answers `msg` from `from`, with the bulk bytes sent after it. An
    /// error goes back to the caller as [`MsgError::Remote`].
    fn serve(
        &'static self,
        from: NodeId,
        msg: M,
        bulk: IoBufChain,
    ) -> impl Future<Output = Result<Reply<M::Reply>, ErrorKind>>;
}

/// A distributed Ebb linked into the image, as the macro registers it.
pub struct Registration {
    /// The Ebb's name.
    pub name: &'static str,
    /// Its well-known id.
    pub id: EbbId,
    /// Installs its handlers on the node's messenger.
    pub register: fn(&'static Messenger) -> Result<(), MsgError>,
}

/// Every distributed Ebb linked into the image.
#[ebbrt_core::__private::linkme::distributed_slice]
#[linkme(crate = ebbrt_core::__private::linkme)]
pub static DISTRIBUTED: [Registration];

/// Installs the handlers of every registered distributed Ebb (done by
/// [`Messenger::start`]); `Err` names an Ebb that failed and why.
pub(crate) fn register_all(m: &'static Messenger) -> Result<(), String> {
    for r in DISTRIBUTED {
        (r.register)(m).map_err(|e| format!("distributed Ebb {} ({}): {e}", r.name, r.id))?;
    }
    Ok(())
}

/// Installs the handler of `M` for the distributed Ebb `E` on `m` (what the
/// macro's registration calls, once per request type).
pub fn serve<E: Serve<M>, M: Request>(m: &'static Messenger) -> Result<(), MsgError> {
    m.handle::<M, _, _>(E::ID, |from, msg, bulk| async move {
        EbbRef::<E>::fixed().get().serve(from, msg, bulk).await
    })
}

/// A distributed Ebb's representative on one node: where calls go.
pub struct Remote<E> {
    node: NodeId,
    deadline: Duration,
    _ebb: PhantomData<fn() -> E>,
}

impl<E> Clone for Remote<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Remote<E> {}

impl<E: Distributed> Remote<E> {
    /// The same handle with another deadline per call.
    pub fn deadline(mut self, deadline: Duration) -> Remote<E> {
        self.deadline = deadline;
        self
    }

    /// The node it names.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Sends `msg` to the node's representative and waits for its reply.
    pub async fn call<M: Request>(&self, msg: &M) -> Result<M::Reply, MsgError>
    where
        E: Serve<M>,
    {
        Ok(self.call_bulk(msg, IoBufChain::new()).await?.msg)
    }

    /// [`Self::call`] with bulk bytes after the message (not copied), and
    /// the reply's bulk bytes returned.
    pub async fn call_bulk<M: Request>(
        &self,
        msg: &M,
        bulk: IoBufChain,
    ) -> Result<Reply<M::Reply>, MsgError>
    where
        E: Serve<M>,
    {
        let messenger = Messenger::node_messenger().get();
        if messenger.node()? != self.node {
            return messenger
                .request(self.node, E::ID, msg, bulk, self.deadline)
                .await;
        }
        // To this node: served here, through the same encoding (so a call
        // behaves the same wherever its target is), without a connection.
        let bytes = postcard::to_allocvec(msg).map_err(|_| MsgError::TooLarge)?;
        let msg: M = decode_payload(&bytes).map_err(MsgError::BadReply)?;
        let rep = EbbRef::<E>::fixed().get();
        match timeout(self.deadline, rep.serve(self.node, msg, bulk)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(kind)) => Err(MsgError::Remote(kind)),
            Err(_) => Err(MsgError::Deadline),
        }
    }
}
