//! Networking of native runs (`cargo ebbrt run`): the guest's virtio-net
//! NIC and where it leads.
//!
//! - `--net user` (the default): QEMU user networking. The guest is
//!   10.0.2.15/24 (gateway 10.0.2.2, which is the host's loopback), and
//!   each `--forward PORT` (default 7777) forwards TCP and UDP
//!   127.0.0.1:PORT on the host to the guest's PORT. No root needed; no
//!   traffic leaves the machine.
//! - `--net tap`: a tap device inside a network namespace that this tool
//!   creates (`ebbrt-net-<pid>`, host side 10.79.0.1/24, guest 10.79.0.2)
//!   and deletes when QEMU exits. Clients run with
//!   `ip netns exec ebbrt-net-<pid> ...`. `--queues N` gives the NIC N
//!   queue pairs (a multiqueue tap and `mq=on`): one stack per core.
//! - `--net none`: no NIC.
//!
//! The guest's address is passed on its command line (`net.ip=`, `net.gw=`),
//! so it needs no DHCP.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// Where the NIC leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetMode {
    /// QEMU user networking with port forwards.
    User,
    /// A tap device in a network namespace made for the run.
    Tap,
    /// No NIC.
    None,
}

/// The networking options of `cargo ebbrt run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOpts {
    /// The backend.
    pub mode: NetMode,
    /// Ports forwarded from 127.0.0.1 (user networking).
    pub forwards: Vec<u16>,
    /// Queue pairs of the NIC (tap).
    pub queues: u32,
}

impl Default for NetOpts {
    fn default() -> Self {
        NetOpts {
            mode: NetMode::User,
            forwards: Vec::new(),
            queues: 1,
        }
    }
}

/// The port forwarded when no `--forward` is given (the echo example's).
pub const DEFAULT_FORWARD: u16 = 7777;

impl NetOpts {
    /// Applies the flag `name` with `value`; `None` if it is not a
    /// networking flag.
    pub fn apply(
        &mut self,
        name: &str,
        value: impl FnOnce() -> Result<String, String>,
    ) -> Option<Result<(), String>> {
        let r = match name {
            "--net" => value().and_then(|v| {
                self.mode = match v.as_str() {
                    "user" => NetMode::User,
                    "tap" => NetMode::Tap,
                    "none" => NetMode::None,
                    _ => return Err(format!("--net must be `user`, `tap` or `none`, not `{v}`")),
                };
                Ok(())
            }),
            "--forward" => value().and_then(|v| {
                let p = v
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(format!("--forward {v}: expected a port, 1..=65535"))?;
                self.forwards.push(p);
                Ok(())
            }),
            "--queues" => value().and_then(|v| {
                self.queues = v
                    .parse::<u32>()
                    .ok()
                    .filter(|q| (1..=64).contains(q))
                    .ok_or(format!("--queues {v}: expected 1..=64"))?;
                Ok(())
            }),
            _ => return None,
        };
        Some(r)
    }

    /// Checks the combination.
    pub fn check(&self) -> Result<(), String> {
        if self.queues > 1 && self.mode != NetMode::Tap {
            return Err("--queues needs --net tap (QEMU user networking has one queue)".into());
        }
        if !self.forwards.is_empty() && self.mode != NetMode::User {
            return Err("--forward applies to --net user only".into());
        }
        Ok(())
    }
}

/// A network namespace, deleted when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The network of one boot: QEMU arguments, boot arguments, and the
/// namespace QEMU must run in (alive as long as this is).
pub struct Attached {
    /// Arguments for QEMU (`-netdev`, `-device`).
    pub qemu_args: Vec<OsString>,
    /// Boot arguments for the guest (`net.ip=...`).
    pub append: String,
    /// What to tell the user.
    pub summary: String,
    netns: Option<Netns>,
}

impl Attached {
    /// The command that starts `qemu` (inside the namespace, for a tap).
    pub fn command(&self, qemu: &Path) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.0]).arg(qemu);
                c
            }
            None => Command::new(qemu),
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sets up the network of a boot.
pub fn attach(opts: &NetOpts) -> Result<Attached, String> {
    opts.check()?;
    match opts.mode {
        NetMode::None => Ok(Attached {
            qemu_args: Vec::new(),
            append: String::new(),
            summary: "no network".into(),
            netns: None,
        }),
        NetMode::User => {
            let ports = if opts.forwards.is_empty() {
                vec![DEFAULT_FORWARD]
            } else {
                opts.forwards.clone()
            };
            let mut netdev = String::from("user,id=n0");
            for p in &ports {
                netdev.push_str(&format!(
                    ",hostfwd=tcp:127.0.0.1:{p}-:{p},hostfwd=udp:127.0.0.1:{p}-:{p}"
                ));
            }
            let list: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            Ok(Attached {
                qemu_args: ["-netdev", &netdev, "-device", "virtio-net-pci,netdev=n0"]
                    .iter()
                    .map(OsString::from)
                    .collect(),
                append: "net.ip=10.0.2.15/24 net.gw=10.0.2.2".into(),
                summary: format!(
                    "user networking: guest 10.0.2.15, forwarded {}",
                    list.join(", ")
                ),
                netns: None,
            })
        }
        NetMode::Tap => {
            let name = format!("ebbrt-net-{}", std::process::id());
            ip(&["netns", "add", &name])?;
            let ns = Netns(name.clone());
            let q = opts.queues;
            let mut tap = vec![
                "netns", "exec", &name, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap",
            ];
            if q > 1 {
                tap.push("multi_queue");
            }
            ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
            ip(&tap)?;
            ip(&[
                "netns",
                "exec",
                &name,
                "ip",
                "addr",
                "add",
                "10.79.0.1/24",
                "dev",
                "tap0",
            ])?;
            ip(&["netns", "exec", &name, "ip", "link", "set", "tap0", "up"])?;
            let (netdev, device) = if q > 1 {
                (
                    format!("tap,id=n0,ifname=tap0,script=no,downscript=no,queues={q}"),
                    format!("virtio-net-pci,netdev=n0,mq=on,vectors={}", 2 * q + 2),
                )
            } else {
                (
                    "tap,id=n0,ifname=tap0,script=no,downscript=no".to_string(),
                    "virtio-net-pci,netdev=n0".to_string(),
                )
            };
            Ok(Attached {
                qemu_args: ["-netdev", &netdev, "-device", &device]
                    .iter()
                    .map(OsString::from)
                    .collect(),
                append: format!("net.ip=10.79.0.2/24 net.gw=10.79.0.1 net.queues={q}"),
                summary: format!(
                    "tap in network namespace {name} ({q} queue pair(s)): guest 10.79.0.2; clients: ip netns exec {name} <client>"
                ),
                netns: Some(ns),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(o: &mut NetOpts, name: &str, v: &str) -> Option<Result<(), String>> {
        let v = v.to_string();
        o.apply(name, move || Ok(v))
    }

    #[test]
    fn flags() {
        let mut o = NetOpts::default();
        assert!(apply(&mut o, "--cores", "2").is_none());
        apply(&mut o, "--forward", "8080").unwrap().unwrap();
        apply(&mut o, "--forward", "9").unwrap().unwrap();
        assert_eq!(o.forwards, [8080, 9]);
        assert!(apply(&mut o, "--forward", "0").unwrap().is_err());
        assert!(apply(&mut o, "--net", "wifi").unwrap().is_err());
        o.check().unwrap();
        apply(&mut o, "--queues", "2").unwrap().unwrap();
        assert!(o.check().unwrap_err().contains("--net tap"));
        apply(&mut o, "--net", "tap").unwrap().unwrap();
        assert!(o.check().unwrap_err().contains("--forward"));
        o.forwards.clear();
        o.check().unwrap();
    }

    #[test]
    fn user_networking_forwards_loopback_ports() {
        let a = attach(&NetOpts::default()).unwrap();
        let args: Vec<String> = a
            .qemu_args
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "-netdev");
        assert!(
            args[1].contains("hostfwd=tcp:127.0.0.1:7777-:7777"),
            "{args:?}"
        );
        assert_eq!(args[3], "virtio-net-pci,netdev=n0");
        assert!(a.append.contains("net.ip=10.0.2.15/24"));
        assert_eq!(a.command(Path::new("/q")).get_program(), "/q");
    }
}
