//! A KubeVirt `VirtualMachine` per node, booting the image with
//! `kernelBoot` (QEMU `-kernel`, so the PVH ELF boots unchanged).
//!
//! The image travels in a container image ([`KubeVirtJob::container_image`])
//! at [`KubeVirtJob::kernel_path`], owned by 107:107 (KubeVirt's qemu user).
//! The VM has one virtio NIC on the pod network with masquerade binding
//! (the guest gets its address by DHCP), vhost multiqueue (queues follow
//! the vCPUs), machine q35, and `runStrategy: Once`: a node that ends stays
//! ended, as under the local backend.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{AllocError, Backend, Bootstrap, Launched, NodeOpts, NodeSpec};

/// Writes one `kubevirt.io/v1` `VirtualMachine` per node, as
/// `<out_dir>/<app>-node-<id>.json`.
#[derive(Clone, Debug)]
pub struct KubeVirtJob {
    /// Where the files go.
    pub out_dir: PathBuf,
    /// The application's name: VM names are `<app>-node-<id>` (a DNS label).
    pub app: String,
    /// The Kubernetes namespace, if not the default.
    pub namespace: Option<String>,
    /// The container image that holds the kernel.
    pub container_image: String,
    /// The kernel's absolute path inside that image.
    pub kernel_path: String,
    /// The frontend's endpoint as nodes reach it (e.g. a Service's
    /// ClusterIP and port).
    pub frontend: SocketAddr,
}

impl KubeVirtJob {
    /// The VM of one node.
    pub fn virtual_machine(&self, bootstrap: &Bootstrap, opts: &NodeOpts) -> Value {
        let name = format!("{}-node-{}", self.app, bootstrap.node);
        let labels = json!({
            "app.kubernetes.io/part-of": self.app,
            "ebbrt.io/node": bootstrap.node.to_string(),
        });
        let mut kernel_args = bootstrap.cmdline();
        if !opts.extra_args.is_empty() {
            kernel_args.push(' ');
            kernel_args.push_str(&opts.extra_args);
        }
        let mut interface = json!({
            "name": "default",
            "masquerade": {},
            "model": "virtio",
        });
        if let Some(port) = opts.node_port {
            interface["ports"] = json!([{ "name": "messenger", "port": port, "protocol": "TCP" }]);
        }
        let mut metadata = json!({ "name": name, "labels": labels });
        if let Some(ns) = &self.namespace {
            metadata["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": metadata,
            "spec": {
                "runStrategy": "Once",
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "domain": {
                            "cpu": { "cores": opts.cores },
                            "memory": { "guest": format!("{}Mi", opts.memory_mib) },
                            "machine": { "type": "q35" },
                            "firmware": {
                                "kernelBoot": {
                                    "kernelArgs": kernel_args,
                                    "container": {
                                        "image": self.container_image,
                                        "kernelPath": self.kernel_path,
                                        "imagePullPolicy": "IfNotPresent",
                                    },
                                },
                            },
                            "devices": {
                                "networkInterfaceMultiqueue": true,
                                "autoattachSerialConsole": true,
                                "interfaces": [interface],
                            },
                        },
                        "networks": [{ "name": "default", "pod": {} }],
                        "terminationGracePeriodSeconds": 0,
                    },
                },
            },
        })
    }
}

impl Backend for KubeVirtJob {
    fn frontend_endpoint(&self) -> SocketAddr {
        self.frontend
    }

    fn launch(&mut self, spec: &NodeSpec<'_>) -> Result<Launched, AllocError> {
        std::fs::create_dir_all(&self.out_dir).map_err(|e| AllocError::Io(e.to_string()))?;
        let vm = self.virtual_machine(spec.bootstrap, spec.opts);
        let path = self
            .out_dir
            .join(format!("{}-node-{}.json", self.app, spec.bootstrap.node));
        super::write_json(&path, &vm)?;
        Ok(Launched {
            command: None,
            command_line: Vec::new(),
            console_log: None,
            artifact: Some(path),
            peer_endpoint: None,
        })
    }
}
