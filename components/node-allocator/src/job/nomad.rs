//! A Nomad job (API JSON, `nomad job run -json`) per node, for Nomad's
//! `qemu` task driver.
//!
//! The driver always adds `-machine type=pc,accel=…`, `-m` from the task's
//! memory and `-drive file=<image_path>,if=<drive_interface>`; a PVH ELF is
//! booted with `drive_interface = "none"` and `-kernel`/`-append`/`-smp` in
//! `args`. Its network is user-mode (slirp) with one forward per entry of
//! `port_map`, whose labels must be ports of the group's network. The
//! structs below are transcribed from the driver's task-config spec and the
//! job API, with unknown fields refused, so a job read back through them is
//! checked for misspelled fields; [`check`] adds the driver's runtime rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{AllocError, Backend, Bootstrap, Launched, NodeOpts, NodeSpec};

/// The body of `PUT /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct JobFile {
    /// The job.
    pub job: Job,
}

/// A job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Job {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// `service` or `batch`.
    #[serde(rename = "Type")]
    pub job_type: String,
    /// Where it may run.
    pub datacenters: Vec<String>,
    /// Its groups.
    pub task_groups: Vec<TaskGroup>,
}

/// A task group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TaskGroup {
    /// Its name.
    pub name: String,
    /// Instances.
    pub count: u32,
    /// Its network (ports).
    #[serde(default)]
    pub networks: Vec<NetworkResource>,
    /// Its tasks.
    pub tasks: Vec<Task>,
}

/// A group's network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NetworkResource {
    /// Ports Nomad picks.
    #[serde(default)]
    pub dynamic_ports: Vec<Port>,
    /// Fixed ports.
    #[serde(default)]
    pub reserved_ports: Vec<Port>,
}

/// A port of a group's network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Port {
    /// Its label.
    pub label: String,
    /// The host port (0: dynamic).
    #[serde(default)]
    pub value: u16,
    /// The port inside.
    #[serde(default)]
    pub to: u16,
}

/// A task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Task {
    /// Its name.
    pub name: String,
    /// `qemu`.
    pub driver: String,
    /// The driver's config.
    pub config: QemuConfig,
    /// CPU (MHz) and memory (MB).
    pub resources: Resources,
    /// Files fetched into the task directory.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// The `qemu` driver's task config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuConfig {
    /// The disk image (here: the kernel, not attached as a disk).
    pub image_path: String,
    /// ide, scsi, sd, mtd, floppy, pflash, virtio or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_interface: Option<String>,
    /// `tcg` (the default) or `kvm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// ACPI shutdown on stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown: Option<bool>,
    /// The QEMU guest agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_agent: Option<bool>,
    /// Extra QEMU arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Port label to guest port.
    #[serde(default)]
    pub port_map: Vec<BTreeMap<String, u16>>,
}

/// A task's resources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// MHz.
    #[serde(rename = "CPU")]
    pub cpu: u32,
    /// MB.
    #[serde(rename = "MemoryMB")]
    pub memory_mb: u32,
}

/// An artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Artifact {
    /// URL (go-getter syntax).
    pub getter_source: String,
    /// Directory in the task dir.
    pub relative_dest: String,
}

/// The drive interfaces the driver accepts.
pub const DRIVE_INTERFACES: [&str; 8] = [
    "ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none",
];

/// The driver's runtime rules, and ours: every violation, in words.
pub fn check(file: &JobFile) -> Vec<String> {
    let mut bad = Vec::new();
    for g in &file.job.task_groups {
        let labels: Vec<&str> = g
            .networks
            .iter()
            .flat_map(|n| n.dynamic_ports.iter().chain(&n.reserved_ports))
            .map(|p| p.label.as_str())
            .collect();
        for t in &g.tasks {
            let at = format!("{}/{}", g.name, t.name);
            let c = &t.config;
            if t.driver != "qemu" {
                bad.push(format!("{at}: driver `{}` is not qemu", t.driver));
            }
            if c.image_path.is_empty() {
                bad.push(format!("{at}: image_path is required"));
            }
            if c.image_path.starts_with('/') || c.image_path.split('/').any(|s| s == "..") {
                bad.push(format!(
                    "{at}: image_path `{}` must be inside the task directory",
                    c.image_path
                ));
            }
            if let Some(i) = &c.drive_interface
                && !DRIVE_INTERFACES.contains(&i.as_str())
            {
                bad.push(format!(
                    "{at}: drive_interface `{i}` is not one of {DRIVE_INTERFACES:?}"
                ));
            }
            if let Some(a) = &c.accelerator
                && !["tcg", "kvm"].contains(&a.as_str())
            {
                bad.push(format!("{at}: accelerator `{a}` is not tcg or kvm"));
            }
            if !(128..=4_000_000).contains(&t.resources.memory_mb) {
                bad.push(format!(
                    "{at}: MemoryMB {} outside 128..=4000000",
                    t.resources.memory_mb
                ));
            }
            for label in c.port_map.iter().flat_map(|m| m.keys()) {
                if !labels.contains(&label.as_str()) {
                    bad.push(format!(
                        "{at}: port_map label `{label}` is not a port of the group's network"
                    ));
                }
            }
            let kernel = c.args.windows(2).find(|w| w[0] == "-kernel").map(|w| &w[1]);
            if kernel != Some(&c.image_path) {
                bad.push(format!("{at}: args must boot image_path with -kernel"));
            }
            if c.drive_interface.as_deref() != Some("none") {
                bad.push(format!(
                    "{at}: the kernel must not be attached as a disk (drive_interface none)"
                ));
            }
        }
    }
    bad
}

/// Writes one Nomad job per node, as `<out_dir>/<app>-node-<id>.nomad.json`.
#[derive(Clone, Debug)]
pub struct NomadJob {
    /// Where the files go.
    pub out_dir: PathBuf,
    /// The application's name: jobs are `<app>-node-<id>`.
    pub app: String,
    /// Datacenters.
    pub datacenters: Vec<String>,
    /// Where the kernel is fetched from (go-getter URL).
    pub image_url: String,
    /// The kernel's file name inside `local/`.
    pub image_file: String,
    /// `tcg` or `kvm`.
    pub accelerator: String,
    /// The frontend's endpoint as nodes reach it.
    pub frontend: SocketAddr,
}

impl NomadJob {
    /// The job of one node.
    pub fn job(&self, bootstrap: &Bootstrap, opts: &NodeOpts) -> JobFile {
        let image_path = format!("local/{}", self.image_file);
        let mut append = format!(
            "net.ip=10.0.2.15/24 net.gw=10.0.2.2 {}",
            bootstrap.cmdline()
        );
        if !opts.extra_args.is_empty() {
            append.push(' ');
            append.push_str(&opts.extra_args);
        }
        let (networks, port_map) = match opts.node_port {
            Some(p) => (
                vec![NetworkResource {
                    dynamic_ports: vec![Port {
                        label: "messenger".into(),
                        value: 0,
                        to: p,
                    }],
                    reserved_ports: Vec::new(),
                }],
                vec![BTreeMap::from([("messenger".to_string(), p)])],
            ),
            None => (Vec::new(), Vec::new()),
        };
        let name = format!("{}-node-{}", self.app, bootstrap.node);
        JobFile {
            job: Job {
                id: name.clone(),
                name: name.clone(),
                job_type: "batch".into(),
                datacenters: self.datacenters.clone(),
                task_groups: vec![TaskGroup {
                    name: "node".into(),
                    count: 1,
                    networks,
                    tasks: vec![Task {
                        name: "qemu".into(),
                        driver: "qemu".into(),
                        config: QemuConfig {
                            image_path: image_path.clone(),
                            drive_interface: Some("none".into()),
                            accelerator: Some(self.accelerator.clone()),
                            graceful_shutdown: None,
                            guest_agent: None,
                            args: vec![
                                "-kernel".into(),
                                image_path,
                                "-append".into(),
                                append,
                                "-smp".into(),
                                opts.cores.to_string(),
                            ],
                            port_map,
                        },
                        resources: Resources {
                            cpu: 1000 * opts.cores,
                            memory_mb: opts.memory_mib.max(128),
                        },
                        artifacts: vec![Artifact {
                            getter_source: self.image_url.clone(),
                            relative_dest: "local/".into(),
                        }],
                    }],
                }],
            },
        }
    }
}

impl Backend for NomadJob {
    fn frontend_endpoint(&self) -> SocketAddr {
        self.frontend
    }

    fn launch(&mut self, spec: &NodeSpec<'_>) -> Result<Launched, AllocError> {
        std::fs::create_dir_all(&self.out_dir).map_err(|e| AllocError::Io(e.to_string()))?;
        let job = self.job(spec.bootstrap, spec.opts);
        let bad = check(&job);
        if !bad.is_empty() {
            return Err(AllocError::Options(bad.join("; ")));
        }
        let value = serde_json::to_value(&job).map_err(|e| AllocError::Io(e.to_string()))?;
        let path = self.out_dir.join(format!(
            "{}-node-{}.nomad.json",
            self.app, spec.bootstrap.node
        ));
        super::write_json(&path, &value)?;
        Ok(Launched {
            command: None,
            command_line: Vec::new(),
            console_log: None,
            artifact: Some(path),
            peer_endpoint: None,
        })
    }
}
