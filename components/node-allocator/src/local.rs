//! [`LocalQemu`]: nodes as QEMU processes on this machine.

use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::accel::Accel;
use crate::bootstrap::NodeId;
use crate::netns::{self, Namespace};
use crate::{AllocError, Backend, Launched, NodeSpec};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Where a node under user networking reaches the host's loopback.
pub const USER_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// Where nodes' NICs lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// QEMU user networking: each node has its own NAT, reaches the host's
    /// loopback at 10.0.2.2, and is reached through a port forward from
    /// 127.0.0.1. No root needed. The frontend listens on 127.0.0.1.
    User,
    /// A tap per node on a bridge in a network namespace the allocator
    /// creates (see [`crate::netns`]). Needs root. The frontend listens
    /// inside the namespace ([`crate::NodeAllocator::listen`]).
    Tap,
}

/// Nodes as QEMU processes on this machine.
pub struct LocalQemu {
    network: Network,
    accel: Accel,
    qemu: PathBuf,
    log_dir: PathBuf,
    frontend_port: u16,
    ns: Option<Namespace>,
}

impl LocalQemu {
    /// Nodes on `network` that reach the frontend on `frontend_port`, with
    /// console logs in `log_dir` (`node-<id>.log`). The accelerator is
    /// detected ([`Accel::detect`]). With [`Network::Tap`] the namespace
    /// is created now: [`AllocError::NotRoot`] without root. A
    /// `frontend_port` of 0 picks one that is free on 127.0.0.1 now (the
    /// namespace of a tap has no other listener).
    pub fn new(
        network: Network,
        frontend_port: u16,
        log_dir: impl Into<PathBuf>,
    ) -> Result<LocalQemu, AllocError> {
        let log_dir = log_dir.into();
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| AllocError::Io(format!("cannot create {}: {e}", log_dir.display())))?;
        let frontend_port = match frontend_port {
            0 => free_loopback_port()?,
            p => p,
        };
        let ns = match network {
            Network::Tap => Some(Namespace::create()?),
            Network::User => None,
        };
        Ok(LocalQemu {
            network,
            accel: Accel::detect(),
            qemu: QEMU.into(),
            log_dir,
            frontend_port,
            ns,
        })
    }

    /// Uses `accel` instead of the detected accelerator.
    pub fn with_accel(mut self, accel: Accel) -> LocalQemu {
        self.accel = accel;
        self
    }

    /// The accelerator nodes get.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The namespace's name, with [`Network::Tap`].
    pub fn namespace(&self) -> Option<&str> {
        self.ns.as_ref().map(Namespace::name)
    }

    /// The NIC's QEMU arguments, its boot arguments, and where peers reach
    /// the node's `node_port`.
    fn nic(
        &mut self,
        node: NodeId,
        node_port: Option<u16>,
    ) -> Result<(Vec<String>, String, Option<SocketAddr>), AllocError> {
        let mac = netns::node_mac(node);
        match self.network {
            Network::User => {
                let mut netdev = "user,id=n0".to_string();
                let mut peer = None;
                if let Some(g) = node_port {
                    let h = free_loopback_port()?;
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
                    // Another node reaches it through the host's loopback.
                    peer = Some(SocketAddr::V4(SocketAddrV4::new(USER_HOST, h)));
                }
                Ok((
                    vec![
                        "-netdev".into(),
                        netdev,
                        "-device".into(),
                        format!("virtio-net-pci,netdev=n0,mac={mac}"),
                    ],
                    "net.ip=10.0.2.15/24 net.gw=10.0.2.2".into(),
                    peer,
                ))
            }
            Network::Tap => {
                let addr = netns::node_addr(node).ok_or(AllocError::TooManyNodes(node))?;
                let ns = self.ns.as_mut().ok_or(AllocError::NotRoot)?;
                let tap = ns.add_tap(node)?;
                let peer = node_port.map(|p| SocketAddr::V4(SocketAddrV4::new(addr, p)));
                Ok((
                    vec![
                        "-netdev".into(),
                        format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
                        "-device".into(),
                        format!("virtio-net-pci,netdev=n0,mac={mac}"),
                    ],
                    format!("net.ip={addr}/24 net.gw={}", netns::FRONTEND_ADDR),
                    peer,
                ))
            }
        }
    }
}

/// A port on 127.0.0.1 that is free now (QEMU binds it moments later).
fn free_loopback_port() -> Result<u16, AllocError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| AllocError::Io(format!("no free loopback port: {e}")))
}

impl Backend for LocalQemu {
    fn frontend_endpoint(&self) -> SocketAddr {
        let ip = match self.network {
            Network::User => USER_HOST,
            Network::Tap => netns::FRONTEND_ADDR,
        };
        SocketAddr::V4(SocketAddrV4::new(ip, self.frontend_port))
    }

    fn namespace(&self) -> Option<std::io::Result<File>> {
        self.ns.as_ref().map(Namespace::open)
    }

    fn launch(&mut self, spec: &NodeSpec<'_>) -> Result<Launched, AllocError> {
        let node = spec.bootstrap.node;
        let (nic, net_args, peer) = self.nic(node, spec.opts.node_port)?;
        let append = [
            net_args.as_str(),
            &spec.bootstrap.cmdline(),
            &spec.opts.extra_args,
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
        let mut args: Vec<String> = self
            .accel
            .qemu_args()
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(
            [
                "-smp",
                &spec.opts.cores.to_string(),
                "-m",
                &format!("{}M", spec.opts.memory_mib),
                // No default devices, no window; serial and debug console
                // multiplexed onto stdout (the log file); a triple fault
                // ends QEMU instead of rebooting; the exit port carries the
                // application's status.
                "-nodefaults",
                "-display",
                "none",
                "-chardev",
                "stdio,id=console,mux=on,signal=off",
                "-serial",
                "chardev:console",
                "-device",
                "isa-debugcon,iobase=0xe9,chardev=console",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ]
            .map(String::from),
        );
        args.extend(nic);
        args.push("-kernel".into());
        args.push(spec.image.display().to_string());
        args.push("-append".into());
        args.push(append);

        let log = self.log_dir.join(format!("node-{node}.log"));
        let out = File::create(&log)
            .map_err(|e| AllocError::Io(format!("cannot create {}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| AllocError::Io(e.to_string()))?;
        let (program, prefix): (OsString, Vec<String>) = match &self.ns {
            Some(ns) => (
                "ip".into(),
                vec![
                    "netns".into(),
                    "exec".into(),
                    ns.name().into(),
                    self.qemu.display().to_string(),
                ],
            ),
            None => (self.qemu.clone().into(), Vec::new()),
        };
        let mut cmd = Command::new(&program);
        cmd.args(&prefix).args(&args);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Its own process group: a terminal's Ctrl-C reaches the frontend
        // only, whose handler stops the nodes in order.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut command_line = vec![program.to_string_lossy().into_owned()];
        command_line.extend(prefix);
        command_line.extend(args);
        Ok(Launched {
            command: Some(cmd),
            command_line,
            console_log: Some(log),
            artifact: None,
            peer_endpoint: peer,
        })
    }

    fn teardown(&mut self) -> Vec<String> {
        self.ns.as_mut().map(Namespace::remove).unwrap_or_default()
    }
}
