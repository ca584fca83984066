//! A node's handle, its errors, and the [`Registry`] the frontend's accept
//! path reports connections to.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bootstrap::{Bootstrap, NodeId};
use crate::process::Process;

/// How a node's wait or life ended badly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// QEMU exited on its own: the application returned (its status is
    /// `app_status`), the guest shut down or triple-faulted, or QEMU
    /// refused its arguments.
    #[error("node {node} exited (QEMU status {code}{}){}", app(*app_status), tail(last_console_lines))]
    Exited {
        /// The node.
        node: NodeId,
        /// QEMU's exit status.
        code: i32,
        /// The status the application wrote to the `isa-debug-exit` port,
        /// when QEMU's status has that form (odd: `(status << 1) | 1`).
        app_status: Option<i32>,
        /// The last lines of the node's console log.
        last_console_lines: Vec<String>,
    },
    /// QEMU was killed: by a signal from outside (`by_allocator` false), or
    /// stopped by the allocator (`stop`, `shutdown`, Ctrl-C).
    #[error("node {node} was {}{}", killed(*signal, *by_allocator), tail(last_console_lines))]
    Killed {
        /// The node.
        node: NodeId,
        /// The signal that ended QEMU, if it died of one (QEMU exits
        /// cleanly on SIGTERM, so a stopped node may have none).
        signal: Option<i32>,
        /// The allocator stopped it.
        by_allocator: bool,
        /// The last lines of the node's console log.
        last_console_lines: Vec<String>,
    },
    /// The wait's time limit passed first; the node is still running.
    #[error("node {node}: still {what} after {waited:?}")]
    Timeout {
        /// The node.
        node: NodeId,
        /// `not connected` or `running`.
        what: &'static str,
        /// The limit.
        waited: Duration,
    },
}

fn app(status: Option<i32>) -> String {
    status.map_or(String::new(), |s| format!(", application status {s}"))
}

fn killed(signal: Option<i32>, by_allocator: bool) -> String {
    match (by_allocator, signal) {
        (true, _) => "stopped by the allocator".into(),
        (false, Some(s)) => format!("killed by signal {s}"),
        (false, None) => "killed".into(),
    }
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        "; its console is empty".into()
    } else {
        format!("; last console lines:\n  {}", lines.join("\n  "))
    }
}

/// Where a node is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Started (or written, for a job backend) and not yet connected.
    Booting,
    /// The frontend reported it connected.
    Connected,
    /// It ended; how.
    Ended(NodeError),
}

/// Why the frontend must refuse a connecting node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No such node was allocated.
    #[error("node {0} was never allocated")]
    UnknownNode(NodeId),
    /// The secret does not match the node's.
    #[error("node {0} presented a wrong secret")]
    WrongSecret(NodeId),
    /// The node has already ended.
    #[error("node {0} has already ended")]
    Ended(NodeId),
}

/// State shared by a node's handle, the registry and the process monitor.
pub(crate) struct Node {
    pub(crate) bootstrap: Bootstrap,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    connected: bool,
    ended: Option<NodeError>,
}

impl Node {
    pub(crate) fn new(bootstrap: Bootstrap) -> Arc<Node> {
        Arc::new(Node {
            bootstrap,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn id(&self) -> NodeId {
        self.bootstrap.node
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves plain flags behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> NodeStatus {
        let s = self.lock();
        match (&s.ended, s.connected) {
            (Some(e), _) => NodeStatus::Ended(e.clone()),
            (None, true) => NodeStatus::Connected,
            (None, false) => NodeStatus::Booting,
        }
    }

    pub(crate) fn mark_connected(&self) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.ended.is_some() {
            return Err(Refused::Ended(self.id()));
        }
        s.connected = true;
        self.changed.notify_all();
        Ok(())
    }

    /// Records how the node ended (the first report wins).
    pub(crate) fn mark_ended(&self, e: NodeError) {
        let mut s = self.lock();
        if s.ended.is_none() {
            s.ended = Some(e);
        }
        self.changed.notify_all();
    }

    /// Waits until `done` says the state is final, or the deadline.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(v) = done(&s) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(crate) fn wait_ended(&self, timeout: Duration) -> Option<NodeError> {
        self.wait_until(timeout, |s| s.ended.clone())
    }
}

/// One allocated node.
///
/// The allocator owns the node: dropping the handle does not stop it;
/// [`NodeHandle::stop`], [`crate::NodeAllocator::shutdown`] and dropping the
/// allocator do.
pub struct NodeHandle {
    pub(crate) node: Arc<Node>,
    pub(crate) process: Option<Arc<Process>>,
    pub(crate) command_line: Vec<String>,
    pub(crate) console_log: Option<PathBuf>,
    pub(crate) artifact: Option<PathBuf>,
    pub(crate) peer_endpoint: Option<SocketAddr>,
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node", &self.id())
            .field("status", &self.status())
            .field("console_log", &self.console_log)
            .field("artifact", &self.artifact)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The node's identity.
    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    /// What the node was told at boot.
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.node.bootstrap
    }

    /// The command that started the node (program first), for logs and
    /// tests; empty for a job backend. It contains the secret.
    pub fn command_line(&self) -> &[String] {
        &self.command_line
    }

    /// The file the node's console (serial and debug console) and QEMU's
    /// own messages go to, for a node this process runs.
    pub fn console_log(&self) -> Option<&Path> {
        self.console_log.as_deref()
    }

    /// The job file written for this node, for a job backend.
    pub fn artifact(&self) -> Option<&Path> {
        self.artifact.as_deref()
    }

    /// Where other nodes reach this node's messenger port, when the
    /// allocation asked for one ([`crate::NodeOpts::node_port`]).
    pub fn peer_endpoint(&self) -> Option<SocketAddr> {
        self.peer_endpoint
    }

    /// The node's status now.
    pub fn status(&self) -> NodeStatus {
        self.node.status()
    }

    /// Reports the node connected, from the frontend's accept path once it
    /// has checked the node's secret (or use [`Registry::connected`], which
    /// checks it).
    pub fn mark_connected(&self) -> Result<(), Refused> {
        self.node.mark_connected()
    }

    /// Waits until the node is reported connected. `Err` if it ends first
    /// ([`NodeError::Exited`], [`NodeError::Killed`]) or the time runs out
    /// ([`NodeError::Timeout`]; the node keeps running: stop it or not).
    pub fn wait_connected(&self, timeout: Duration) -> Result<(), NodeError> {
        let r = self
            .node
            .wait_until(timeout, |s| match (&s.ended, s.connected) {
                (Some(e), _) => Some(Err(e.clone())),
                (None, true) => Some(Ok(())),
                (None, false) => None,
            });
        r.unwrap_or(Err(NodeError::Timeout {
            node: self.id(),
            what: "not connected",
            waited: timeout,
        }))
    }

    /// Waits until the node ends, and says how: [`NodeError::Exited`] or
    /// [`NodeError::Killed`]; [`NodeError::Timeout`] if it is still running
    /// at the limit. A job backend's node is not watched by this process, so
    /// for it this always waits the whole limit.
    pub fn wait_exit(&self, timeout: Duration) -> NodeError {
        self.node.wait_ended(timeout).unwrap_or(NodeError::Timeout {
            node: self.id(),
            what: "running",
            waited: timeout,
        })
    }

    /// Stops the node (SIGTERM, then SIGKILL after a grace period, to the
    /// QEMU process this allocator started, by its pid) and returns how it
    /// ended. For a job backend, nothing runs here: the job's owner deletes
    /// it; this returns `None`.
    pub fn stop(&self) -> Option<NodeError> {
        let p = self.process.as_ref()?;
        p.stop();
        // `stop` reaps QEMU and records how it ended before returning.
        self.node.wait_ended(Duration::ZERO)
    }
}

/// The allocator's nodes, as the frontend's accept path sees them: it
/// checks a connecting node's secret and reports it connected. Cheap to
/// clone; hand one to the messenger.
#[derive(Clone, Default)]
pub struct Registry {
    nodes: Arc<Mutex<HashMap<NodeId, Arc<Node>>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<NodeId> = self.lock().keys().copied().collect();
        ids.sort();
        f.debug_struct("Registry").field("nodes", &ids).finish()
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<NodeId, Arc<Node>>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, node: Arc<Node>) {
        self.lock().insert(node.id(), node);
    }

    /// Checks that `node` was allocated and that `secret` is its secret
    /// (in constant time), without changing anything.
    pub fn authenticate(&self, node: NodeId, secret: &[u8]) -> Result<(), Refused> {
        let n = self.lock().get(&node).cloned();
        let n = n.ok_or(Refused::UnknownNode(node))?;
        if n.bootstrap.secret.matches(secret) {
            Ok(())
        } else {
            Err(Refused::WrongSecret(node))
        }
    }

    /// [`Registry::authenticate`], then reports the node connected (which
    /// resolves [`NodeHandle::wait_connected`]). A node may connect again
    /// after a dropped connection.
    pub fn connected(&self, node: NodeId, secret: &[u8]) -> Result<(), Refused> {
        self.authenticate(node, secret)?;
        let n = self.lock().get(&node).cloned();
        n.ok_or(Refused::UnknownNode(node))?.mark_connected()
    }

    /// The node's status, if it was allocated.
    pub fn status(&self, node: NodeId) -> Option<NodeStatus> {
        let n = self.lock().get(&node).cloned();
        n.map(|n| n.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{IdSpace, Secret};

    fn node(id: u32) -> Arc<Node> {
        Node::new(Bootstrap {
            node: NodeId(id),
            id_space: IdSpace(id),
            frontend: "10.0.2.2:9".parse().unwrap(),
            epoch: 0,
            secret: Secret::from_bytes([id as u8; 32]),
        })
    }

    fn handle(n: &Arc<Node>) -> NodeHandle {
        NodeHandle {
            node: Arc::clone(n),
            process: None,
            command_line: Vec::new(),
            console_log: None,
            artifact: None,
            peer_endpoint: None,
        }
    }

    #[test]
    fn registry_checks_the_secret_and_resolves_the_wait() {
        let reg = Registry::default();
        let n = node(1);
        reg.insert(Arc::clone(&n));
        let h = handle(&n);
        assert_eq!(
            reg.connected(NodeId(2), &[1; 32]),
            Err(Refused::UnknownNode(NodeId(2)))
        );
        assert_eq!(
            reg.connected(NodeId(1), &[2; 32]),
            Err(Refused::WrongSecret(NodeId(1)))
        );
        assert_eq!(h.status(), NodeStatus::Booting);
        let waiter = {
            let reg = reg.clone();
            std::thread::spawn(move || reg.connected(NodeId(1), &[1; 32]))
        };
        h.wait_connected(Duration::from_secs(60)).unwrap();
        waiter.join().unwrap().unwrap();
        assert_eq!(reg.status(NodeId(1)), Some(NodeStatus::Connected));
    }

    #[test]
    fn an_ended_node_fails_its_waits_and_is_refused() {
        let reg = Registry::default();
        let n = node(4);
        reg.insert(Arc::clone(&n));
        let h = handle(&n);
        let e = NodeError::Exited {
            node: NodeId(4),
            code: 3,
            app_status: Some(1),
            last_console_lines: vec!["panicked at x".into()],
        };
        n.mark_ended(e.clone());
        // The first report wins.
        n.mark_ended(NodeError::Killed {
            node: NodeId(4),
            signal: Some(9),
            by_allocator: false,
            last_console_lines: vec![],
        });
        assert_eq!(h.wait_connected(Duration::from_secs(60)), Err(e.clone()));
        assert_eq!(h.wait_exit(Duration::ZERO), e);
        assert_eq!(
            reg.connected(NodeId(4), &[4; 32]),
            Err(Refused::Ended(NodeId(4)))
        );
        let text = e.to_string();
        assert!(text.contains("application status 1"), "{text}");
        assert!(text.contains("panicked at x"), "{text}");
    }

    #[test]
    fn waits_time_out() {
        let n = node(5);
        let h = handle(&n);
        let e = h.wait_connected(Duration::from_millis(10)).unwrap_err();
        assert!(
            matches!(
                e,
                NodeError::Timeout {
                    what: "not connected",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = h.wait_exit(Duration::from_millis(10));
        assert!(
            matches!(
                e,
                NodeError::Timeout {
                    what: "running",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(h.stop().is_none());
    }
}
