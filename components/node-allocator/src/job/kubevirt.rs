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
        let bad = admission_causes(&vm);
        if !bad.is_empty() {
            return Err(AllocError::Options(bad.join("; ")));
        }
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

/// The rules KubeVirt's admission webhook adds to its schema, for the parts
/// a node's VM uses (`validateKernelBoot` and the path check it calls; the
/// interface checks of `pkg/network/admitter`): every violation, in words.
pub fn admission_causes(vm: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let spec = &vm["spec"]["template"]["spec"];
    let kb = &spec["domain"]["firmware"]["kernelBoot"];
    if kb.is_object() {
        let container = &kb["container"];
        if !container.is_object() {
            if kb["kernelArgs"].as_str().is_some_and(|a| !a.is_empty()) {
                bad.push("kernelBoot.kernelArgs: kernel arguments cannot be provided without an external kernel".into());
            }
        } else {
            if container["image"].as_str().unwrap_or("").is_empty() {
                bad.push("kernelBoot.container must be defined with an image".into());
            }
            let kernel = container["kernelPath"].as_str().unwrap_or("");
            let initrd = container["initrdPath"].as_str().unwrap_or("");
            if kernel.is_empty() && initrd.is_empty() {
                bad.push("kernelBoot.container must be defined with at least one of kernelPath, initrdPath".into());
            }
            for (field, path) in [("kernelPath", kernel), ("initrdPath", initrd)] {
                if !path.is_empty() && !clean_absolute(path) {
                    bad.push(format!(
                        "kernelBoot.container.{field} `{path}` must be an absolute path to a file without relative components"
                    ));
                }
            }
        }
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let networks = names(&spec["networks"]);
    let interfaces = spec["domain"]["devices"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen = Vec::new();
    for (i, iface) in interfaces.iter().enumerate() {
        let name = iface["name"].as_str().unwrap_or("");
        if !networks.iter().any(|n| n == name) {
            bad.push(format!(
                "interfaces[{i}].name `{name}` not found in networks"
            ));
        }
        if seen.contains(&name) {
            bad.push(format!("interfaces[{i}]: only one interface per network"));
        }
        seen.push(name);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad.push(format!(
                "interfaces[{i}].name `{name}`: only letters, digits, - and _"
            ));
        }
        if let Some(m) = iface["model"].as_str()
            && ![
                "e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio",
            ]
            .contains(&m)
        {
            bad.push(format!("interfaces[{i}].model `{m}` is not supported"));
        }
        let mut port_names = Vec::new();
        for (j, p) in iface["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = format!("interfaces[{i}].ports[{j}]");
            match p["port"].as_i64() {
                Some(n) if (1..65536).contains(&n) => {}
                _ => bad.push(format!("{at}.port must be in 0 < x < 65536")),
            }
            if let Some(proto) = p["protocol"].as_str()
                && proto != "TCP"
                && proto != "UDP"
            {
                bad.push(format!("{at}.protocol `{proto}`: only TCP or UDP"));
            }
            if let Some(n) = p["name"].as_str() {
                if port_names.contains(&n) {
                    bad.push(format!("{at}.name `{n}` is a duplicate"));
                }
                port_names.push(n);
                if !valid_port_name(n) {
                    bad.push(format!("{at}.name `{n}` is not a valid port name"));
                }
            }
        }
    }
    let mut nets = networks.clone();
    nets.sort();
    if nets.windows(2).any(|w| w[0] == w[1]) {
        bad.push("networks: every network must have a unique name".into());
    }
    bad
}

/// KubeVirt's path rule: not `/`, and equal to itself cleaned and rooted.
fn clean_absolute(path: &str) -> bool {
    if path == "/" || !path.starts_with('/') {
        return false;
    }
    let trimmed = path.trim_end_matches('/');
    trimmed
        .split('/')
        .skip(1)
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Kubernetes' IANA_SVC_NAME: at most 15 lowercase letters, digits and
/// inner single dashes, with at least one letter.
fn valid_port_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && n.chars().any(|c| c.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_port_names() {
        assert!(clean_absolute("/boot/node.elf"));
        assert!(clean_absolute("/boot/"));
        for bad in ["/", "boot/x", "/boot/../x", "/./x", "//x", ""] {
            assert!(!clean_absolute(bad), "{bad}");
        }
        assert!(valid_port_name("messenger"));
        for bad in ["", "Messenger", "a--b", "-a", "1234", "sixteen-chars-xx"] {
            assert!(!valid_port_name(bad), "{bad}");
        }
    }
}
