//! Networking of native runs (`cargo ebbrt run`): the guest's virtio-net
//! NIC and where it leads.
//!
//! - `--net user` (the default): QEMU user networking. The guest is
//!   10.0.2.15/24 (gateway 10.0.2.2, which is the host's loopback), and
//!   each `--forward PORT` (default 7777) forwards TCP and UDP
//!   127.0.0.1:PORT on the host to the guest's PORT (`--forward H:G`:
//!   host port H to guest port G). No root needed; no traffic leaves the
//!   machine.
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

/// A port forward of user networking: TCP and UDP `127.0.0.1:host` to
/// the guest's `guest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The port on the host's loopback.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

impl Forward {
    /// `PORT` (the same on both sides) or `HOST:GUEST`.
    pub fn parse(v: &str) -> Result<Forward, String> {
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
        let parsed = match v.split_once(':') {
            Some((h, g)) => port(h).zip(port(g)),
            None => port(v).map(|p| (p, p)),
        };
        parsed
            .map(|(host, guest)| Forward { host, guest })
            .ok_or(format!(
                "--forward {v}: expected a port or HOST:GUEST ports, 1..=65535"
            ))
    }
}

/// The networking options of `cargo ebbrt run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOpts {
    /// The backend.
    pub mode: NetMode,
    /// Ports forwarded from 127.0.0.1 (user networking).
    pub forwards: Vec<Forward>,
    /// Queue pairs of the NIC (tap).
    pub queues: u32,
    /// The tap's MTU in the namespace (`None`: the kernel's default, 1500).
    /// The checks raise it so that frames larger than the guest's MTU can
    /// be sent at the guest.
    pub tap_mtu: Option<u32>,
    /// Extra properties of QEMU's `virtio-net-pci` device (`key=value`),
    /// e.g. `disable-modern=on` for a legacy-only NIC.
    pub nic: Vec<String>,
}

impl Default for NetOpts {
    fn default() -> Self {
        NetOpts {
            mode: NetMode::User,
            forwards: Vec::new(),
            queues: 1,
            tap_mtu: None,
            nic: Vec::new(),
        }
    }
}

/// The port forwarded when no `--forward` is given (the echo example's).
pub const DEFAULT_FORWARD: u16 = 7777;

impl NetOpts {
    /// Applies the networking flag `name` (`--net`, `--forward`, `--queues`
    /// or `--nic`) with its value `v`.
    pub fn apply(&mut self, name: &str, v: String) -> Result<(), String> {
        match name {
            "--net" => {
                self.mode = match v.as_str() {
                    "user" => NetMode::User,
                    "tap" => NetMode::Tap,
                    "none" => NetMode::None,
                    _ => return Err(format!("--net must be `user`, `tap` or `none`, not `{v}`")),
                };
            }
            "--forward" => self.forwards.push(Forward::parse(&v)?),
            "--queues" => {
                self.queues = v
                    .parse::<u32>()
                    .ok()
                    .filter(|q| (1..=64).contains(q))
                    .ok_or(format!("--queues {v}: expected 1..=64"))?;
            }
            "--nic" => {
                let props = v
                    .split(',')
                    .map(nic_property)
                    .collect::<Result<Vec<_>, _>>()?;
                self.nic.extend(props);
            }
            _ => return Err(format!("`{name}` is not a networking flag")),
        }
        Ok(())
    }

    /// The `-device` argument of the NIC: `base` and the `--nic` properties.
    fn device(&self, base: String) -> String {
        let mut d = base;
        for p in &self.nic {
            d.push(',');
            d.push_str(p);
        }
        d
    }

    /// Checks the combination.
    pub fn check(&self) -> Result<(), String> {
        if self.queues > 1 && self.mode != NetMode::Tap {
            return Err("--queues needs --net tap (QEMU user networking has one queue)".into());
        }
        if !self.nic.is_empty() && self.mode == NetMode::None {
            return Err("--nic needs a NIC (--net user or --net tap)".into());
        }
        if !self.forwards.is_empty() && self.mode != NetMode::User {
            return Err("--forward applies to --net user only".into());
        }
        let mut hosts: Vec<u16> = self.forwards.iter().map(|f| f.host).collect();
        hosts.sort_unstable();
        if let Some(w) = hosts.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("--forward: host port {} is forwarded twice", w[0]));
        }
        Ok(())
    }
}

/// One `--nic` property, checked: `key=value`, where the key is not one
/// the tool sets itself.
fn nic_property(prop: &str) -> Result<String, String> {
    let (key, value) = prop.split_once('=').ok_or(format!(
        "--nic: `{prop}` is not a property: expected key=value, e.g. disable-modern=on"
    ))?;
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok || value.is_empty() || value.contains(char::is_whitespace) {
        return Err(format!(
            "--nic: `{prop}` is not a property: expected key=value, e.g. disable-modern=on"
        ));
    }
    if matches!(key, "netdev" | "id") {
        return Err(format!("--nic: `{key}` is set by the tool"));
    }
    Ok(prop.to_string())
}

/// The namespace of `--net tap` runs of this process.
pub fn netns_name() -> String {
    format!("ebbrt-net-{}", std::process::id())
}

/// The guest's address with `--net tap`, and the host side's.
pub const TAP_GUEST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 79, 0, 2);
/// The host side of the tap (in the namespace).
pub const TAP_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 79, 0, 1);
/// The tap's name inside the namespace.
pub const TAP_NAME: &str = "tap0";

/// A network namespace, deleted when dropped.
pub struct Netns(String);

impl Netns {
    /// Its name (`ip netns exec <name> ...`).
    pub fn name(&self) -> &str {
        &self.0
    }
}

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
    /// How to reach the guest from the host (one line per way).
    pub reach: Vec<String>,
    netns: Option<Netns>,
}

impl Attached {
    /// The namespace of a tap, while it exists.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

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

/// Whether QEMU could forward `port` on 127.0.0.1 (TCP and UDP) now.
fn loopback_port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// Sets up the network of a boot.
pub fn attach(opts: &NetOpts) -> Result<Attached, String> {
    attach_with(opts, loopback_port_free)
}

/// [`attach`], asking `port_free` whether the default forward's port is
/// free: when it is not (another run has it) and no `--forward` was given,
/// the guest still gets its NIC, without the forward, and the tool says so
/// instead of QEMU refusing to start.
fn attach_with(opts: &NetOpts, port_free: impl Fn(u16) -> bool) -> Result<Attached, String> {
    opts.check()?;
    match opts.mode {
        NetMode::None => Ok(Attached {
            qemu_args: Vec::new(),
            append: String::new(),
            summary: "no network".into(),
            reach: Vec::new(),
            netns: None,
        }),
        NetMode::User => {
            let mut busy = None;
            let forwards = if !opts.forwards.is_empty() {
                opts.forwards.clone()
            } else if port_free(DEFAULT_FORWARD) {
                vec![Forward {
                    host: DEFAULT_FORWARD,
                    guest: DEFAULT_FORWARD,
                }]
            } else {
                busy = Some(format!(
                    "127.0.0.1:{DEFAULT_FORWARD} is in use (another run?), so no port is \
                     forwarded; to reach the guest's {DEFAULT_FORWARD}, pass \
                     --forward <FREE PORT>:{DEFAULT_FORWARD}"
                ));
                Vec::new()
            };
            let mut netdev = String::from("user,id=n0");
            for Forward { host: h, guest: g } in &forwards {
                netdev.push_str(&format!(
                    ",hostfwd=tcp:127.0.0.1:{h}-:{g},hostfwd=udp:127.0.0.1:{h}-:{g}"
                ));
            }
            let list: Vec<String> = forwards
                .iter()
                .map(|f| format!("127.0.0.1:{}", f.host))
                .collect();
            let mut reach: Vec<String> = busy.into_iter().collect();
            reach.extend(forwards.iter().map(|f| {
                format!(
                    "reach guest port {} at 127.0.0.1:{} (TCP and UDP), e.g. `nc 127.0.0.1 {}`",
                    f.guest, f.host, f.host
                )
            }));
            let forwarded = if list.is_empty() {
                "no port forwarded".to_string()
            } else {
                format!("forwarded {}", list.join(", "))
            };
            Ok(Attached {
                qemu_args: [
                    "-netdev",
                    &netdev,
                    "-device",
                    &opts.device("virtio-net-pci,netdev=n0".into()),
                ]
                .iter()
                .map(OsString::from)
                .collect(),
                append: "net.ip=10.0.2.15/24 net.gw=10.0.2.2".into(),
                summary: format!("user networking: guest 10.0.2.15, {forwarded}"),
                reach,
                netns: None,
            })
        }
        NetMode::Tap => {
            let name = netns_name();
            ip(&["netns", "add", &name])?;
            let ns = Netns(name.clone());
            let q = opts.queues;
            let mut tap = vec![
                "netns", "exec", &name, "ip", "tuntap", "add", "dev", TAP_NAME, "mode", "tap",
            ];
            if q > 1 {
                tap.push("multi_queue");
            }
            ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
            ip(&tap)?;
            let host = format!("{TAP_HOST}/24");
            ip(&[
                "netns", "exec", &name, "ip", "addr", "add", &host, "dev", TAP_NAME,
            ])?;
            if let Some(mtu) = opts.tap_mtu {
                let mtu = mtu.to_string();
                ip(&[
                    "netns", "exec", &name, "ip", "link", "set", TAP_NAME, "mtu", &mtu,
                ])?;
            }
            ip(&["netns", "exec", &name, "ip", "link", "set", TAP_NAME, "up"])?;
            let (netdev, device) = if q > 1 {
                (
                    format!("tap,id=n0,ifname={TAP_NAME},script=no,downscript=no,queues={q}"),
                    format!("virtio-net-pci,netdev=n0,mq=on,vectors={}", 2 * q + 2),
                )
            } else {
                (
                    format!("tap,id=n0,ifname={TAP_NAME},script=no,downscript=no"),
                    "virtio-net-pci,netdev=n0".to_string(),
                )
            };
            let device = opts.device(device);
            Ok(Attached {
                qemu_args: ["-netdev", &netdev, "-device", &device]
                    .iter()
                    .map(OsString::from)
                    .collect(),
                append: format!("net.ip={TAP_GUEST}/24 net.gw={TAP_HOST} net.queues={q}"),
                summary: format!(
                    "tap in network namespace {name} ({q} queue pair(s)): guest {TAP_GUEST}; clients: ip netns exec {name} <client>"
                ),
                reach: vec![format!(
                    "reach the guest at {TAP_GUEST} from inside the namespace, e.g. `ip netns exec {name} nc {TAP_GUEST} 7777`"
                )],
                netns: Some(ns),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(o: &mut NetOpts, name: &str, v: &str) -> Result<(), String> {
        o.apply(name, v.to_string())
    }

    #[test]
    fn flags() {
        let mut o = NetOpts::default();
        assert!(apply(&mut o, "--cores", "2").is_err());
        apply(&mut o, "--forward", "8080").unwrap();
        apply(&mut o, "--forward", "9:7777").unwrap();
        let fw = |host, guest| Forward { host, guest };
        assert_eq!(o.forwards, [fw(8080, 8080), fw(9, 7777)]);
        for bad in ["0", "9:", ":9", "1:2:3", "x", "70000", "5:0"] {
            let e = apply(&mut o, "--forward", bad).unwrap_err();
            assert!(e.contains("HOST:GUEST"), "{bad}: {e}");
        }
        o.check().unwrap();
        apply(&mut o, "--forward", "9").unwrap();
        assert!(
            o.check()
                .unwrap_err()
                .contains("host port 9 is forwarded twice")
        );
        o.forwards.pop();
        assert!(apply(&mut o, "--net", "wifi").is_err());
        o.check().unwrap();
        apply(&mut o, "--queues", "2").unwrap();
        assert!(o.check().unwrap_err().contains("--net tap"));
        apply(&mut o, "--net", "tap").unwrap();
        assert!(o.check().unwrap_err().contains("--forward"));
        o.forwards.clear();
        o.check().unwrap();
    }

    #[test]
    fn a_busy_default_port_is_not_forwarded() {
        let a = attach_with(&NetOpts::default(), |p| p != DEFAULT_FORWARD).unwrap();
        assert_eq!(a.qemu_args[1], "user,id=n0");
        assert_eq!(
            a.summary,
            "user networking: guest 10.0.2.15, no port forwarded"
        );
        assert_eq!(a.reach.len(), 1);
        assert!(
            a.reach[0].starts_with("127.0.0.1:7777 is in use"),
            "{:?}",
            a.reach
        );
        // An explicit forward is the user's: passed on, and QEMU says if
        // the port is taken.
        let o = NetOpts {
            forwards: vec![Forward {
                host: 7777,
                guest: 7777,
            }],
            ..NetOpts::default()
        };
        let a = attach_with(&o, |_| false).unwrap();
        assert!(
            a.qemu_args[1]
                .to_string_lossy()
                .contains("hostfwd=tcp:127.0.0.1:7777-:7777")
        );
    }

    #[test]
    fn nic_properties() {
        let mut o = NetOpts::default();
        apply(&mut o, "--nic", "disable-modern=on,vectors=0").unwrap();
        apply(&mut o, "--nic", "csum=off").unwrap();
        assert_eq!(o.nic, ["disable-modern=on", "vectors=0", "csum=off"]);
        for bad in ["csum", "=off", "csum=", "a b=1", "x=1,", "csum=o n"] {
            let e = apply(&mut o, "--nic", bad).unwrap_err();
            assert!(e.contains("expected key=value"), "{bad}: {e}");
        }
        for mine in ["netdev=x", "id=y"] {
            let e = apply(&mut o, "--nic", mine).unwrap_err();
            assert!(e.contains("set by the tool"), "{mine}: {e}");
        }
        let a = attach_with(&o, |_| true).unwrap();
        assert_eq!(
            a.qemu_args[3],
            "virtio-net-pci,netdev=n0,disable-modern=on,vectors=0,csum=off"
        );
        o.mode = NetMode::None;
        assert!(o.check().unwrap_err().contains("--nic needs a NIC"));
    }

    #[test]
    fn user_networking_forwards_loopback_ports() {
        let a = attach_with(&NetOpts::default(), |_| true).unwrap();
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
        assert_eq!(
            a.reach,
            ["reach guest port 7777 at 127.0.0.1:7777 (TCP and UDP), e.g. `nc 127.0.0.1 7777`"]
        );

        let o = NetOpts {
            forwards: vec![Forward {
                host: 17001,
                guest: 7777,
            }],
            ..NetOpts::default()
        };
        let a = attach_with(&o, |_| true).unwrap();
        let netdev = a.qemu_args[1].to_string_lossy().into_owned();
        assert_eq!(
            netdev,
            "user,id=n0,hostfwd=tcp:127.0.0.1:17001-:7777,hostfwd=udp:127.0.0.1:17001-:7777"
        );
        assert!(a.reach[0].starts_with("reach guest port 7777 at 127.0.0.1:17001"));
    }
}
