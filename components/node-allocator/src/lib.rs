//! The node allocator of a hosted EbbRT frontend: it boots native nodes
//! and tells each who it is.
//!
//! [`NodeAllocator::allocate`] numbers the node ([`NodeId`] from 1; the
//! frontend is 0), gives it an [`IdSpace`] and the allocation's [`Secret`]
//! (one per allocator, shared by its nodes so that they can also talk to
//! each other; [`NodeAllocator::secret`]), writes
//! its [`Bootstrap`] onto the kernel command line (see [`bootstrap`] for
//! the words) and hands it to a [`Backend`]:
//!
//! - [`LocalQemu`] starts QEMU here (KVM only with hardware virtualization,
//!   TCG otherwise), on QEMU user networking or on a tap per node in a
//!   network namespace it creates ([`netns`]), with the node's console in a
//!   log file;
//! - [`job::KubeVirtJob`] and [`job::NomadJob`] write, instead, the job a
//!   cluster engine runs the node from (see `docs/cluster.md`).
//!
//! The returned [`NodeHandle`] resolves [`NodeHandle::wait_connected`] when
//! the frontend's accept path reports the node through the [`Registry`]
//! (which checks the node's secret), and turns QEMU's exit or death into a
//! [`NodeError`]. [`NodeAllocator::shutdown`], dropping the allocator, and
//! SIGINT/SIGTERM/SIGHUP (a handler installed with the first allocator)
//! stop every node by pid and remove every tap and the namespace.
//!
//! It owns: node numbering, secrets, the QEMU processes it started and the
//! network devices it made. It must not: signal any process it did not
//! start, touch a network it did not create, or speak the messenger's
//! protocol (the messenger calls the [`Registry`]).

pub mod accel;
pub mod bootstrap;
mod handle;
pub mod job;
mod local;
pub mod netns;
mod process;
mod signals;
mod sys;

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub use accel::Accel;
pub use bootstrap::{Bootstrap, IdSpace, NodeId, Secret};
pub use handle::{NodeError, NodeHandle, NodeStatus, Refused, Registry};
pub use local::{LocalQemu, Network, QEMU};

use handle::Node;
use process::Process;

/// Why a node could not be allocated or set up.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// A tap needs root.
    #[error(
        "a tap per node needs root (to create a network namespace and taps); \
         run as root or use QEMU user networking (Network::User)"
    )]
    NotRoot,
    /// Setting up the network failed.
    #[error("network set-up: {0}")]
    Network(String),
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(String),
    /// The image is not there.
    #[error("node image {0} does not exist")]
    NoImage(PathBuf),
    /// QEMU (or `ip netns exec`) could not be started.
    #[error("cannot start `{program}`: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        error: String,
    },
    /// The backend has no address for this node.
    #[error("no address for node {0} (a namespace holds nodes 1..=253)")]
    TooManyNodes(NodeId),
    /// The options are inconsistent.
    #[error("invalid node options: {0}")]
    Options(String),
    /// The allocator was shut down.
    #[error("the allocator has been shut down")]
    ShutDown,
    /// No random secret could be drawn.
    #[error("cannot draw a random secret: {0}")]
    Random(String),
}

/// How one node is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOpts {
    /// vCPUs.
    pub cores: u32,
    /// Guest memory, MiB (at least 32).
    pub memory_mib: u32,
    /// The node's messenger port, made reachable to peers (a forward
    /// under user networking, the node's own address on a tap, a port of
    /// the VM for a job).
    pub node_port: Option<u16>,
    /// More boot arguments, after the bootstrap.
    pub extra_args: String,
}

impl Default for NodeOpts {
    fn default() -> Self {
        NodeOpts {
            cores: 1,
            memory_mib: 256,
            node_port: None,
            extra_args: String::new(),
        }
    }
}

impl NodeOpts {
    fn check(&self) -> Result<(), AllocError> {
        if !(1..=255).contains(&self.cores) {
            return Err(AllocError::Options(format!(
                "cores {} not in 1..=255",
                self.cores
            )));
        }
        if self.memory_mib < 32 {
            return Err(AllocError::Options(format!(
                "memory {} MiB: a native image needs at least 32",
                self.memory_mib
            )));
        }
        if self.node_port == Some(0) {
            return Err(AllocError::Options("node_port 0".into()));
        }
        use bootstrap::keys;
        let ours = [
            keys::NODE,
            keys::ID_SPACE,
            keys::FRONTEND,
            keys::EPOCH,
            keys::SECRET,
        ];
        // They come after the bootstrap, where the last word wins.
        if let Some(w) = self.extra_args.split_ascii_whitespace().find(|w| {
            let key = w.split_once('=').map_or(*w, |(k, _)| k);
            ours.contains(&key)
        }) {
            return Err(AllocError::Options(format!(
                "extra_args may not set `{w}`: the allocator sets the bootstrap"
            )));
        }
        Ok(())
    }
}

/// One node for a [`Backend`] to start.
#[derive(Debug)]
pub struct NodeSpec<'a> {
    /// What the node is told.
    pub bootstrap: &'a Bootstrap,
    /// Its image (a PVH ELF).
    pub image: &'a Path,
    /// How it runs.
    pub opts: &'a NodeOpts,
}

/// What a [`Backend`] made of a [`NodeSpec`].
#[derive(Debug)]
pub struct Launched {
    /// The process to start (stdio set), for a local backend.
    pub command: Option<Command>,
    /// The command line, program first, for logs and tests.
    pub command_line: Vec<String>,
    /// The console log the command writes.
    pub console_log: Option<PathBuf>,
    /// The job file written, for a job backend.
    pub artifact: Option<PathBuf>,
    /// Where peers reach the node's messenger port.
    pub peer_endpoint: Option<SocketAddr>,
}

/// Where nodes run: a local QEMU, or a cluster engine's job.
pub trait Backend: Send {
    /// The frontend's endpoint as a node reaches it.
    fn frontend_endpoint(&self) -> SocketAddr;
    /// Prepares (and for a job backend, writes) one node.
    fn launch(&mut self, spec: &NodeSpec<'_>) -> Result<Launched, AllocError>;
    /// The network namespace the frontend must listen in, if any.
    fn namespace(&self) -> Option<std::io::Result<File>> {
        None
    }
    /// Removes what the backend made (taps, namespace), after every node
    /// has ended. Returns what could not be removed.
    fn teardown(&mut self) -> Vec<String> {
        Vec::new()
    }
}

pub(crate) struct Inner {
    backend: Box<dyn Backend>,
    next: u32,
    processes: Vec<Arc<Process>>,
    shut_down: bool,
}

impl Inner {
    /// Stops every node, then removes the network; idempotent.
    pub(crate) fn shutdown(&mut self) -> Vec<String> {
        if self.shut_down {
            return Vec::new();
        }
        self.shut_down = true;
        // SIGTERM to all first, so their grace periods overlap.
        for p in &self.processes {
            p.terminate();
        }
        for p in self.processes.drain(..) {
            p.stop();
        }
        self.backend.teardown()
    }
}

/// Boots nodes through a [`Backend`] and tracks them.
pub struct NodeAllocator {
    inner: Arc<Mutex<Inner>>,
    registry: Registry,
    secret: std::sync::OnceLock<Secret>,
}

impl std::fmt::Debug for NodeAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAllocator")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl NodeAllocator {
    /// An allocator over `backend`. The first one installs the
    /// SIGINT/SIGTERM/SIGHUP handler that shuts every live allocator down
    /// and exits with `128 + signal`.
    pub fn new(backend: impl Backend + 'static) -> NodeAllocator {
        let inner = Arc::new(Mutex::new(Inner {
            backend: Box::new(backend),
            next: 1,
            processes: Vec::new(),
            shut_down: false,
        }));
        signals::register(&inner);
        NodeAllocator {
            inner,
            registry: Registry::default(),
            secret: std::sync::OnceLock::new(),
        }
    }

    /// The allocation's secret: drawn at the first call (or allocation),
    /// then the same for every node. The frontend's messenger proves it too.
    pub fn secret(&self) -> Result<Secret, AllocError> {
        if let Some(s) = self.secret.get() {
            return Ok(s.clone());
        }
        let drawn = bootstrap::generate_secret().map_err(|e| AllocError::Random(e.to_string()))?;
        Ok(self.secret.get_or_init(|| drawn).clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry the frontend's accept path reports nodes to.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// The frontend's endpoint as nodes are told it.
    pub fn frontend_endpoint(&self) -> SocketAddr {
        self.lock().backend.frontend_endpoint()
    }

    /// Opens the frontend's listener where nodes reach it: inside the
    /// backend's namespace ([`Network::Tap`]) or on 127.0.0.1 (user
    /// networking, where 10.0.2.2 is the host's loopback), on the port
    /// nodes were told. A job backend's frontend listens wherever the user
    /// set up the endpoint; this binds 0.0.0.0 for it.
    pub fn listen(&self) -> Result<TcpListener, AllocError> {
        let (ns, endpoint) = {
            let inner = self.lock();
            (inner.backend.namespace(), inner.backend.frontend_endpoint())
        };
        let io = |e: std::io::Error| AllocError::Io(format!("frontend listener: {e}"));
        match ns {
            Some(ns) => {
                let ns = ns.map_err(io)?;
                sys::in_netns(ns, move || TcpListener::bind(endpoint)).map_err(io)
            }
            None if endpoint.ip() == local::USER_HOST => {
                TcpListener::bind(("127.0.0.1", endpoint.port())).map_err(io)
            }
            None => TcpListener::bind(("0.0.0.0", endpoint.port())).map_err(io),
        }
    }

    /// Boots (or writes the job of) one node running `image`.
    pub fn allocate(&self, image: &Path, opts: &NodeOpts) -> Result<NodeHandle, AllocError> {
        opts.check()?;
        if !image.is_file() {
            return Err(AllocError::NoImage(image.to_path_buf()));
        }
        let secret = self.secret()?;
        let mut inner = self.lock();
        if inner.shut_down {
            return Err(AllocError::ShutDown);
        }
        let id = NodeId(inner.next);
        inner.next += 1;
        let bootstrap = Bootstrap {
            node: id,
            id_space: IdSpace(id.0),
            frontend: inner.backend.frontend_endpoint(),
            epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            secret,
        };
        let launched = inner.backend.launch(&NodeSpec {
            bootstrap: &bootstrap,
            image,
            opts,
        })?;
        let node = Node::new(bootstrap);
        let process = match launched.command {
            Some(cmd) => {
                let program = launched.command_line.first().cloned().unwrap_or_default();
                let log = launched.console_log.clone().unwrap_or_default();
                let p =
                    Process::start(cmd, Arc::clone(&node), log).map_err(|e| AllocError::Spawn {
                        program,
                        error: e.to_string(),
                    })?;
                inner.processes.push(Arc::clone(&p));
                Some(p)
            }
            None => None,
        };
        self.registry.insert(Arc::clone(&node));
        Ok(NodeHandle {
            node,
            process,
            command_line: launched.command_line,
            console_log: launched.console_log,
            artifact: launched.artifact,
            peer_endpoint: launched.peer_endpoint,
        })
    }

    /// The pids of the QEMU processes this allocator started and has not
    /// stopped (ended ones included until shutdown).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().processes.iter().map(|p| p.pid()).collect()
    }

    /// Stops every node (SIGTERM, then SIGKILL, by pid) and removes the
    /// taps and namespace. Later allocations fail. `Err` lists what could
    /// not be removed.
    pub fn shutdown(&self) -> Result<(), Vec<String>> {
        let failed = self.lock().shutdown();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed)
        }
    }
}

impl Drop for NodeAllocator {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        NodeOpts::default().check().unwrap();
        let bad = |o: NodeOpts| o.check().unwrap_err().to_string();
        assert!(
            bad(NodeOpts {
                cores: 0,
                ..NodeOpts::default()
            })
            .contains("cores")
        );
        assert!(
            bad(NodeOpts {
                memory_mib: 16,
                ..NodeOpts::default()
            })
            .contains("32")
        );
        for w in [
            "ebbrt.node=9",
            "ebbrt.secret=00",
            "ebbrt.frontend",
            "x=1 ebbrt.epoch=3",
        ] {
            let o = NodeOpts {
                extra_args: w.into(),
                ..NodeOpts::default()
            };
            assert!(bad(o).contains("may not set"), "{w}");
        }
        let o = NodeOpts {
            extra_args: "ebbrt.log=debug ebbrt.nodes=2".into(),
            ..NodeOpts::default()
        };
        o.check().unwrap();
    }
}
