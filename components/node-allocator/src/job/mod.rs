//! Job backends: instead of starting QEMU, write the job a cluster engine
//! runs the node from — a KubeVirt `VirtualMachine` ([`KubeVirtJob`]) or a
//! Nomad job for its `qemu` driver ([`NomadJob`]). The node gets the same
//! bootstrap words as a local one, in the job's kernel arguments; the
//! frontend's endpoint is one the user makes reachable from the cluster
//! (an IP, since a native node has no DNS resolver). `docs/cluster.md`
//! says how to deploy them.
//!
//! The job carries the node's secret in clear: anyone who can read the job
//! (the VM object, the Nomad job) can read it.

pub mod kubevirt;
pub mod nomad;

pub use kubevirt::KubeVirtJob;
pub use nomad::NomadJob;

use std::path::Path;

use crate::AllocError;

/// Writes `value` as pretty JSON to `path` (JSON is YAML too: `kubectl
/// apply -f` reads it).
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), AllocError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| AllocError::Io(e.to_string()))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| AllocError::Io(format!("cannot write {}: {e}", path.display())))
}
