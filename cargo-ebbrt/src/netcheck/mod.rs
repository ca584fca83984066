//! The in-QEMU network checks of `cargo ebbrt test` (issue 5): the native
//! echo example (`examples/echo`) booted three times, on a real virtio-net
//! NIC: twice as a release build (a debug smoltcp under TCG echoes at well
//! under 1 MB/s), once as a debug build on the barest NIC QEMU offers.
//!
//! 1. **QEMU user networking** with a port forward on 127.0.0.1 (no root):
//!    a 64 MiB TCP echo compared byte for byte and by CRC-32, 1,000
//!    sequential connections, 100 concurrent ones, UDP round trips.
//! 2. **A tap inside a network namespace** the tool creates and deletes
//!    (as `cargo ebbrt run --net tap` does; two queue pairs, so that both
//!    cores run a stack), with the checks on a thread inside the namespace:
//!    ARP and ping from the host side (frames built by hand on a packet
//!    socket), then malformed frames (truncated headers, bad checksums,
//!    oversized frames, random bytes) sent at the guest, which must count
//!    each under its drop reason (read back through the echo's counters
//!    query) and still answer ping, TCP and UDP afterwards; then a flood of
//!    more connections than its TCP buffer budget admits (booted with
//!    `net.tcp_memory=24M`): the excess is refused and counted, and the
//!    first connection still echoes. Needs root,
//!    `/dev/net/tun` and `ip` (iproute2); without them these checks are
//!    reported as SKIPPED, with the reason, never as passed.
//! 3. **A bare NIC**, QEMU user networking again: a legacy-only device
//!    (`disable-modern=on`) without MSI-X (`vectors=0`: INTx through the
//!    I/O APIC) and with every optional feature off (no checksum offload,
//!    no merged receive buffers, no control queue, no multiqueue, no
//!    status), running the debug build (what `cargo ebbrt run echo`
//!    boots): the driver must say what it found, and echo TCP and UDP.
//!
//! Each check prints a line like a test kernel's result and counts in the
//! tool's final `N passed, N failed` line. Every QEMU runs under a time
//! limit, is stopped when its checks are done (also when one fails or
//! panics), and a namespace the tool made is deleted after its QEMU.

mod clients;
mod frames;
mod guest;
mod rawnet;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::cargo::Workspace;
use crate::cli::BuildArgs;
use crate::net::{Forward, NetMode, NetOpts, TAP_GUEST, TAP_HOST, TAP_NAME};
use guest::{Guest, GuestSpec};

/// How the checks are named in `--filter` and the report.
pub const LABEL: &str = "echo/netcheck";
/// The example the checks run against.
pub(crate) const EXAMPLE: &str = "echo";
/// The echo's port in the guest.
const GUEST_PORT: u16 = 7777;
/// How long a guest may take to print its `listening on` line.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The least time a guest may run (boot and all its checks).
const MIN_GUEST_LIMIT: Duration = Duration::from_secs(300);
/// The tap's MTU in the namespace: frames larger than the guest's 1,500
/// can then be sent at it.
const TAP_MTU: u32 = 9000;
/// Queue pairs of the tap guest's NIC: a stack on each of its two cores.
const TAP_QUEUES: u32 = 2;
/// Each malformed frame of a kind is sent this many times.
const MALFORMED_REPEAT: usize = 20;
/// Frames of random bytes sent at the guest.
const RANDOM_FRAMES: usize = 200;
/// The tap guest's TCP buffer budget: 12 MiB per stack, 96 sockets of
/// 64 KiB each way, so that a modest flood meets it.
const TAP_TCP_MEMORY: &str = "net.tcp_memory=24M";
/// Connections the flood opens: about twice what the budget admits.
const TAP_FLOOD: usize = 400;

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; what it measured.
    Ok(String),
    /// Failed; why.
    Failed(String),
    /// Not run on this machine; why.
    Skipped(String),
}

/// One check's name and result.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// The check's name.
    pub name: &'static str,
    /// Its result.
    pub verdict: Verdict,
}

/// The results of all the checks.
#[derive(Debug, Default)]
pub struct NetReport {
    /// In the order they ran.
    pub results: Vec<CheckResult>,
}

impl NetReport {
    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Ok(_)))
    }
    /// Checks that failed.
    pub fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Failed(_)))
    }
    /// Checks skipped on this machine.
    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skipped(_)))
    }
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.verdict)).count()
    }
    /// The distinct reasons checks were skipped.
    pub fn skip_reasons(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Skipped(why) => Some(why.clone()),
                _ => None,
            })
            .collect();
        v.dedup();
        v
    }

    fn record(&mut self, name: &'static str, verdict: Verdict) {
        let i = self.results.len();
        match &verdict {
            Verdict::Ok(what) => println!("  [{i}] {name} ... ok ({what})"),
            Verdict::Failed(why) => println!("  [{i}] {name} ... FAILED: {why}"),
            Verdict::Skipped(why) => println!("  [{i}] {name} ... SKIPPED: {why}"),
        }
        let _ = std::io::stdout().flush();
        self.results.push(CheckResult { name, verdict });
    }
}

/// What the checks need from `cargo ebbrt test`.
pub struct Setup<'a> {
    /// The workspace.
    pub ws: &'a Workspace,
    /// `qemu-system-x86_64`.
    pub qemu: &'a Path,
    /// The accelerator.
    pub accel: Accel,
    /// The per-boot time limit of test kernels (a guest gets at least
    /// five minutes).
    pub timeout: Duration,
    /// Echo the guests' consoles.
    pub verbose: bool,
}

/// Set when the tool is asked to stop (SIGINT, SIGTERM, SIGHUP) during the
/// checks: the remaining checks are not run, and QEMU and the namespace
/// are still cleaned up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGHUP to [`INTERRUPTED`] until dropped.
struct SignalGuard(Vec<(libc::c_int, libc::sighandler_t)>);

impl SignalGuard {
    fn install() -> SignalGuard {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let old = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
            .into_iter()
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe; the old disposition is restored on drop.
            .map(|s| (s, unsafe { libc::signal(s, handler) }))
            .collect();
        SignalGuard(old)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for &(s, old) in &self.0 {
            // SAFETY: restores the disposition signal(2) returned.
            unsafe { libc::signal(s, old) };
        }
    }
}

/// Whether the checks were interrupted by a signal.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

type Check<'g> = (
    &'static str,
    Box<dyn FnOnce(&Guest) -> Result<String, String> + 'g>,
);

/// Runs `checks` against `guest` in order. A check that finds the guest
/// gone fails with how it ended; checks after it are not run.
fn run_checks(report: &mut NetReport, guest: &Guest, checks: Vec<Check<'_>>) -> bool {
    let mut gone: Option<String> = None;
    for (name, check) in checks {
        if let Some(why) = &gone {
            report.record(name, Verdict::Failed(format!("not run: {why}")));
            continue;
        }
        if interrupted() {
            gone = Some("the tool was interrupted".into());
            report.record(
                name,
                Verdict::Failed("not run: the tool was interrupted".into()),
            );
            continue;
        }
        let r = check(guest);
        let mut ended = guest.ended();
        if r.is_err() {
            // A failure may be the guest dying: give the keeper a moment
            // to notice, so that the report says so.
            let until = Instant::now() + Duration::from_secs(1);
            while ended.is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
                ended = guest.ended();
            }
        }
        let verdict = match (r, ended) {
            (Err(e), Some(how)) => {
                gone = Some(format!("the guest {how}"));
                Verdict::Failed(format!("{e}; the guest {how}"))
            }
            (Ok(_), Some(how)) => {
                let why = format!("the guest {how}");
                gone = Some(why.clone());
                Verdict::Failed(why)
            }
            (Ok(what), None) => Verdict::Ok(what),
            (Err(why), None) => Verdict::Failed(why),
        };
        report.record(name, verdict);
    }
    gone.is_none()
}

/// Boots a guest; `None` (every check recorded as failed) if it does not
/// come up.
fn boot_guest(
    report: &mut NetReport,
    names: &[&'static str],
    spec: GuestSpec<'_>,
) -> Option<Guest> {
    let verbose = spec.verbose;
    let failed = |report: &mut NetReport, why: String| {
        for &n in names {
            report.record(n, Verdict::Failed(format!("not run: {why}")));
        }
    };
    let guest = match Guest::boot(spec) {
        Ok(g) => g,
        Err(e) => {
            failed(report, e);
            return None;
        }
    };
    if verbose {
        crate::note(&format!("booting: {}", guest.command));
    }
    match guest.wait_for("listening on", BOOT_TIMEOUT) {
        Ok(_) => Some(guest),
        Err(e) => {
            println!("  the guest did not come up; {}; its last lines:", e);
            for l in guest.tail(25) {
                println!("  | {l}");
            }
            println!("  ({})", guest.command);
            failed(report, e);
            None
        }
    }
}

/// Stops a guest after its checks; a guest that died (or logged a panic
/// or an error) fails one more check.
fn finish_guest(report: &mut NetReport, name: &'static str, guest: Guest) {
    let trouble = guest.trouble();
    let tail = guest.tail(25);
    let verdict = match guest.finish() {
        Err(e) => Verdict::Failed(e),
        Ok(()) if !trouble.is_empty() => Verdict::Failed(format!(
            "the guest reported trouble: {}",
            trouble.join(" | ")
        )),
        Ok(()) => Verdict::Ok("ran to the end without a panic or an error on its console".into()),
    };
    if matches!(verdict, Verdict::Failed(_)) {
        println!("  the guest's last lines:");
        for l in tail {
            println!("  | {l}");
        }
    }
    report.record(name, verdict);
}

/// A loopback port free for TCP and UDP right now.
fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let t = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind on 127.0.0.1: {e}"))?;
        let port = t.local_addr().map_err(|e| e.to_string())?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no loopback port is free for both TCP and UDP".into())
}

/// Why this machine cannot run the tap checks, if it cannot.
pub fn tap_unavailable() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "not root: a network namespace with a tap needs root (run `cargo ebbrt test` as root for these)"
                .into(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun on this machine (the tun module is not loaded)".into());
    }
    let ip_ok = std::process::Command::new("ip")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ip_ok {
        return Some("no `ip` command (install iproute2)".into());
    }
    None
}

const USER_CHECKS: [&str; 5] = [
    "user_tcp_echo_64mib",
    "user_tcp_1000_sequential_connections",
    "user_tcp_100_concurrent_connections",
    "user_udp_round_trips",
    "user_guest_survived",
];

const TAP_CHECKS: [&str; 6] = [
    "tap_arp",
    "tap_ping",
    "tap_malformed_frames_counted_and_dropped",
    "tap_answers_after_malformed_frames",
    "tap_flood_refused_and_counted",
    "tap_guest_survived",
];

const BARE_CHECKS: [&str; 5] = [
    "bare_nic_is_legacy_intx_without_features",
    "bare_tcp_echo_1mib",
    "bare_tcp_50_concurrent_connections",
    "bare_udp_round_trips",
    "bare_guest_survived",
];

/// The NIC of the bare guest: a legacy-only virtio-net device with INTx and
/// no optional feature (`--nic` properties).
const BARE_NIC: [&str; 8] = [
    "disable-modern=on",
    "vectors=0",
    "csum=off",
    "guest_csum=off",
    "mrg_rxbuf=off",
    "ctrl_vq=off",
    "mq=off",
    "status=off",
];

/// Builds the echo example and runs every check.
pub fn run(s: &Setup<'_>) -> NetReport {
    let mut report = NetReport::default();
    INTERRUPTED.store(false, Ordering::SeqCst);
    let _signals = SignalGuard::install();
    let all: Vec<&'static str> = USER_CHECKS.iter().chain(&TAP_CHECKS).copied().collect();
    let debug_kernel =
        s.ws.example(EXAMPLE)
            .and_then(|pkg| s.ws.build_native_example(pkg, &BuildArgs::default()))
            .map(|b| b.exe);
    let kernel = match s
        .ws
        .example(EXAMPLE)
        .and_then(|pkg| {
            let release = BuildArgs {
                release: true,
                ..BuildArgs::default()
            };
            s.ws.build_native_example(pkg, &release)
        })
        .map(|b| b.exe)
    {
        Ok(k) => k,
        Err(e) => {
            for n in all {
                report.record(n, Verdict::Failed(format!("not run: {e}")));
            }
            return report;
        }
    };
    let limit = s.timeout.max(MIN_GUEST_LIMIT);
    user_checks(s, &kernel, limit, &mut report);
    match tap_unavailable() {
        Some(why) => {
            crate::note(&format!(
                "WARNING: the tap network checks are SKIPPED: {why}"
            ));
            for n in TAP_CHECKS {
                report.record(n, Verdict::Skipped(why.clone()));
            }
        }
        None => tap_checks(s, &kernel, limit, &mut report),
    }
    match debug_kernel {
        Ok(k) => bare_checks(s, &k, limit, &mut report),
        Err(e) => {
            for n in BARE_CHECKS {
                report.record(n, Verdict::Failed(format!("not run: {e}")));
            }
        }
    }
    report
}

fn bare_checks(s: &Setup<'_>, kernel: &Path, limit: Duration, report: &mut NetReport) {
    let what = "a bare NIC (legacy, INTx, no optional feature), debug build, QEMU user networking";
    user_net_guest(
        s,
        kernel,
        limit,
        report,
        &BARE_CHECKS,
        &BARE_NIC,
        what,
        |addr| {
            vec![
                (
                    BARE_CHECKS[0],
                    Box::new(|g: &Guest| bare_nic_check(&g.tail(usize::MAX))),
                ),
                (
                    BARE_CHECKS[1],
                    Box::new(move |_| clients::bulk_echo(addr, 1 << 20)),
                ),
                (
                    BARE_CHECKS[2],
                    Box::new(move |_| clients::concurrent(addr, 50, false)),
                ),
                (
                    BARE_CHECKS[3],
                    Box::new(move |_| clients::udp_round_trips(addr, 50)),
                ),
            ]
        },
    );
}

/// Boots `kernel` on QEMU user networking, a free loopback port forwarded
/// to the echo's port, the NIC with the `nic` properties, and runs the
/// checks `make` returns for that address. `names` are every check's,
/// the last one whether the guest survived.
#[allow(clippy::too_many_arguments)]
fn user_net_guest(
    s: &Setup<'_>,
    kernel: &Path,
    limit: Duration,
    report: &mut NetReport,
    names: &[&'static str],
    nic: &[&str],
    what: &str,
    make: impl FnOnce(SocketAddr) -> Vec<Check<'static>>,
) {
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            for &n in names {
                report.record(n, Verdict::Failed(format!("not run: {e}")));
            }
            return;
        }
    };
    println!("\n-- {LABEL}: {what}, 127.0.0.1:{port} forwarded to the guest's {GUEST_PORT}");
    let _ = std::io::stdout().flush();
    let spec = GuestSpec {
        qemu: s.qemu,
        kernel,
        accel: s.accel,
        net: NetOpts {
            mode: NetMode::User,
            forwards: vec![Forward {
                host: port,
                guest: GUEST_PORT,
            }],
            nic: nic.iter().map(|p| p.to_string()).collect(),
            ..NetOpts::default()
        },
        append: "",
        limit,
        verbose: s.verbose,
    };
    let Some(guest) = boot_guest(report, names, spec) else {
        return;
    };
    let checks = make(SocketAddr::from(([127, 0, 0, 1], port)));
    conclude(report, guest, checks, names[names.len() - 1]);
}

/// Runs `checks` against `guest`, then records `survived`: whether the
/// guest ran to the end without trouble.
fn conclude(report: &mut NetReport, guest: Guest, checks: Vec<Check<'_>>, survived: &'static str) {
    if run_checks(report, &guest, checks) {
        finish_guest(report, survived, guest);
    } else {
        drop(guest);
        report.record(
            survived,
            Verdict::Failed("the guest did not survive the checks (see above)".into()),
        );
    }
}

/// The driver's line about the NIC it found, from the guest's console: it
/// must have found the legacy device, with INTx and no optional feature
/// beyond the MAC address.
fn bare_nic_check(lines: &[String]) -> Result<String, String> {
    let line = lines
        .iter()
        .find(|l| l.contains("virtio-net: "))
        .ok_or("the guest printed no `virtio-net:` line about its NIC")?;
    let what = &line[line.find("virtio-net: ").unwrap_or(0)..];
    let want = [
        "virtio-net: legacy",
        "features Features(MAC)",
        "1 of 1 queue pair(s)",
        "INTx through the I/O APIC",
    ];
    match want.iter().find(|w| !what.contains(*w)) {
        Some(w) => Err(format!("expected `{w}` in the driver's line: {what}")),
        None => Ok(what.to_string()),
    }
}

fn user_checks(s: &Setup<'_>, kernel: &Path, limit: Duration, report: &mut NetReport) {
    user_net_guest(
        s,
        kernel,
        limit,
        report,
        &USER_CHECKS,
        &[],
        "QEMU user networking",
        |addr| {
            vec![
                (
                    USER_CHECKS[0],
                    Box::new(move |_| clients::bulk_echo(addr, 64 << 20)),
                ),
                (
                    USER_CHECKS[1],
                    Box::new(move |_| clients::sequential(addr, 1000)),
                ),
                (
                    USER_CHECKS[2],
                    Box::new(move |_| clients::concurrent(addr, 100, false)),
                ),
                (
                    USER_CHECKS[3],
                    Box::new(move |_| clients::udp_round_trips(addr, 300)),
                ),
            ]
        },
    );
}

fn tap_checks(s: &Setup<'_>, kernel: &Path, limit: Duration, report: &mut NetReport) {
    println!(
        "\n-- {LABEL}: a tap in a network namespace made for the checks ({TAP_QUEUES} queue pairs), \
         guest {TAP_GUEST}"
    );
    let _ = std::io::stdout().flush();
    let spec = GuestSpec {
        qemu: s.qemu,
        kernel,
        accel: s.accel,
        net: NetOpts {
            mode: NetMode::Tap,
            queues: TAP_QUEUES,
            tap_mtu: Some(TAP_MTU),
            ..NetOpts::default()
        },
        append: TAP_TCP_MEMORY,
        limit,
        verbose: s.verbose,
    };
    let Some(guest) = boot_guest(report, &TAP_CHECKS, spec) else {
        return;
    };
    let Some(ns) = guest.netns().map(str::to_string) else {
        for n in TAP_CHECKS {
            report.record(
                n,
                Verdict::Failed("not run: the guest has no namespace".into()),
            );
        }
        return;
    };
    crate::note(&format!(
        "network namespace {ns} (deleted after the checks)"
    ));
    let echo = SocketAddr::from((TAP_GUEST, GUEST_PORT));
    // What the checks learn and pass on: the guest's Ethernet address.
    let guest_mac = std::cell::Cell::new(None);
    let gm = &guest_mac;
    let ns = ns.as_str();
    let checks: Vec<Check<'_>> = vec![
        (
            TAP_CHECKS[0],
            Box::new(move |_| {
                let (mac, what) = rawnet::in_netns(ns, arp_check)??;
                gm.set(Some(mac));
                Ok(what)
            }),
        ),
        (
            TAP_CHECKS[1],
            Box::new(move |_| {
                let mac = gm
                    .get()
                    .ok_or("the guest's Ethernet address is unknown (ARP failed)")?;
                rawnet::in_netns(ns, move || ping_check(mac, 20))?
            }),
        ),
        (
            TAP_CHECKS[2],
            Box::new(move |_| {
                let mac = gm
                    .get()
                    .ok_or("the guest's Ethernet address is unknown (ARP failed)")?;
                rawnet::in_netns(ns, move || malformed_check(mac, echo))?
            }),
        ),
        (
            TAP_CHECKS[3],
            Box::new(move |_| {
                let mac = gm
                    .get()
                    .ok_or("the guest's Ethernet address is unknown (ARP failed)")?;
                rawnet::in_netns(ns, move || alive_check(mac, echo))?
            }),
        ),
        (
            TAP_CHECKS[4],
            Box::new(move |_| rawnet::in_netns(ns, move || flood_check(echo))?),
        ),
    ];
    conclude(report, guest, checks, TAP_CHECKS[5]);
}

fn format_mac(m: frames::Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// ARP from the host side: who has the guest's address?
fn arp_check() -> Result<(frames::Mac, String), String> {
    let sock = rawnet::PacketSocket::open(TAP_NAME)?;
    let me = sock.mac;
    let request = frames::eth(
        frames::BROADCAST,
        me,
        frames::ETH_ARP,
        &frames::arp(1, me, TAP_HOST, [0; 6], TAP_GUEST),
    );
    let start = Instant::now();
    let mac = rawnet::ask(&sock, &request, 3, Duration::from_secs(2), |f| {
        frames::arp_reply_from(f, TAP_GUEST, TAP_HOST, me)
    })?
    .ok_or(format!("no ARP reply for {TAP_GUEST} after 3 requests"))?;
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(format!(
            "the guest answered with a non-unicast address {}",
            format_mac(mac)
        ));
    }
    Ok((
        mac,
        format!(
            "{TAP_GUEST} is at {} (answered in {:.1} ms)",
            format_mac(mac),
            start.elapsed().as_secs_f64() * 1e3
        ),
    ))
}

/// ICMP echo from the host side: `n` requests, every reply checked.
fn ping_check(guest: frames::Mac, n: u16) -> Result<String, String> {
    let sock = rawnet::PacketSocket::open(TAP_NAME)?;
    let id = 0xeb00 | (std::process::id() as u16 & 0xff);
    let mut rtts = Vec::new();
    for seq in 0..n {
        let data: Vec<u8> = (0..56u16).map(|i| (i ^ seq) as u8).collect();
        let icmp = frames::icmp_echo(8, id, seq, &data);
        let frame = frames::eth(
            guest,
            sock.mac,
            frames::ETH_IPV4,
            &frames::ipv4(TAP_HOST, TAP_GUEST, 1, seq, &icmp),
        );
        let t = Instant::now();
        let reply = rawnet::ask(&sock, &frame, 2, Duration::from_secs(2), |f| {
            frames::icmp_echo_reply_from(f, TAP_GUEST).filter(|(i, s, _)| *i == id && *s == seq)
        })?;
        match reply {
            None => return Err(format!("no reply to echo request {seq} (of {n})")),
            Some((_, _, back)) if back != data => {
                return Err(format!(
                    "the reply to echo request {seq} carries other data"
                ));
            }
            Some(_) => rtts.push(t.elapsed()),
        }
    }
    rtts.sort();
    Ok(format!(
        "{n} echo requests answered, median {:.0} us",
        rtts[rtts.len() / 2].as_secs_f64() * 1e6
    ))
}

/// The counters the guest's drop reasons are reported under (ebbrt-net's
/// `DropReason::name`).
const REASONS: [&str; 5] = [
    "truncated",
    "oversized",
    "bad_ip_header",
    "bad_ip_checksum",
    "bad_checksum",
];

fn get(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// Malformed frames at the guest: each must be counted under its reason.
fn malformed_check(guest: frames::Mac, echo: SocketAddr) -> Result<String, String> {
    let sock = rawnet::PacketSocket::open(TAP_NAME)?;
    let before = clients::stats(echo)?;
    if !REASONS.iter().all(|r| before.contains_key(*r)) {
        return Err(format!("the counters query lacks drop reasons: {before:?}"));
    }
    let set = frames::malformed_set(
        (guest, TAP_GUEST),
        (sock.mac, TAP_HOST),
        GUEST_PORT,
        RANDOM_FRAMES,
        u64::from(std::process::id()) << 16 | 0xebb,
    );
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut sent, mut refused, mut random_sent) = (0u64, Vec::new(), 0u64);
    let mut kinds = 0;
    for m in &set {
        let reps = if m.expect.is_some() {
            MALFORMED_REPEAT
        } else {
            1
        };
        kinds += m.expect.is_some() as usize;
        for _ in 0..reps {
            match sock.send(&m.frame) {
                Ok(()) => {
                    sent += 1;
                    match m.expect {
                        Some(r) => *expected.entry(r).or_default() += 1,
                        None => random_sent += 1,
                    }
                }
                Err(e) => {
                    if !refused.iter().any(|(w, _)| *w == m.what) {
                        refused.push((m.what, e.to_string()));
                    }
                }
            }
            // Paced, so that neither the tap's queue nor the guest's ring
            // overflows (frames lost there would not reach the counters).
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    // Wait until the guest has counted them all (it may be behind).
    let until = Instant::now() + Duration::from_secs(15);
    let (after, short) = loop {
        std::thread::sleep(Duration::from_millis(300));
        let after = clients::stats(echo)?;
        let short: Vec<String> = expected
            .iter()
            .filter(|(r, n)| get(&after, r).saturating_sub(get(&before, r)) < **n)
            .map(|(r, n)| {
                format!(
                    "{r} +{} of {n}",
                    get(&after, r).saturating_sub(get(&before, r))
                )
            })
            .collect();
        if short.is_empty() || Instant::now() >= until {
            break (after, short);
        }
    };
    if !short.is_empty() {
        return Err(format!(
            "the guest did not count every malformed frame: {}",
            short.join(", ")
        ));
    }
    let dropped = get(&after, "dropped").saturating_sub(get(&before, "dropped"));
    if dropped > sent {
        return Err(format!(
            "the guest dropped {dropped} frames, more than the {sent} malformed ones sent: \
             valid traffic was dropped too"
        ));
    }
    let deltas: Vec<String> = REASONS
        .iter()
        .map(|r| format!("{r} +{}", get(&after, r).saturating_sub(get(&before, r))))
        .collect();
    let mut what = format!(
        "{sent} frames of {kinds} kinds (x{MALFORMED_REPEAT}) and {random_sent} random ones; counted: {}",
        deltas.join(", ")
    );
    for (w, e) in refused {
        what.push_str(&format!("; the host would not send \"{w}\" ({e})"));
    }
    Ok(what)
}

/// After the malformed frames: ping, a TCP echo and UDP round trips.
fn alive_check(guest: frames::Mac, echo: SocketAddr) -> Result<String, String> {
    let ping = ping_check(guest, 5)?;
    let tcp = clients::bulk_echo(echo, 4 << 20)?;
    let conns = clients::concurrent(echo, 100, true)?;
    let udp = clients::udp_round_trips(echo, 50)?;
    let stats = clients::stats(echo)?;
    Ok(format!(
        "ping: {ping}; TCP: {tcp}; {conns}; UDP: {udp}; {} stacks",
        get(&stats, "stacks")
    ))
}

/// More connections than the guest's buffer budget admits, all kept open:
/// the excess must be refused (not time out), counted by the guest, and
/// the first connection must still echo.
fn flood_check(echo: SocketAddr) -> Result<String, String> {
    let refusals =
        |m: &BTreeMap<String, u64>| get(m, "refused_no_memory") + get(m, "refused_limit");
    let before = clients::stats(echo)?;
    let start = Instant::now();
    let mut f = clients::flood(echo, TAP_FLOOD)?;
    let took = start.elapsed();
    if f.refused == 0 {
        return Err(format!(
            "all {TAP_FLOOD} connections were admitted: the budget ({TAP_TCP_MEMORY}) bound none"
        ));
    }
    let admitted = f.open.len();
    let first = f
        .open
        .first_mut()
        .ok_or("the guest admitted no connection")?;
    clients::echo_on(first, b"still served after the flood")
        .map_err(|e| format!("the first connection, after the flood: {e}"))?;
    let after = clients::stats(echo)?;
    let counted = refusals(&after).saturating_sub(refusals(&before));
    if counted < f.refused as u64 {
        return Err(format!(
            "{} connections were refused but the guest counted {counted}",
            f.refused
        ));
    }
    let no_memory =
        get(&after, "refused_no_memory").saturating_sub(get(&before, "refused_no_memory"));
    Ok(format!(
        "{admitted} of {TAP_FLOOD} admitted, {} refused (the guest counted {no_memory} for memory), \
         {} KiB of socket buffers held, the first still echoes; {:.1} s",
        f.refused,
        get(&after, "tcp_buffer_bytes") / 1024,
        took.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_and_lists_skips() {
        let mut r = NetReport::default();
        r.record("a", Verdict::Ok("fine".into()));
        r.record("b", Verdict::Failed("broken".into()));
        r.record("c", Verdict::Skipped("not root".into()));
        r.record("d", Verdict::Skipped("not root".into()));
        assert_eq!((r.passed(), r.failed(), r.skipped()), (1, 1, 2));
        assert_eq!(r.skip_reasons(), ["not root"]);
    }

    #[test]
    fn the_reason_names_are_the_guests() {
        let names: Vec<&str> = ebbrt_net::frame::DropReason::ALL
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, REASONS);
    }

    #[test]
    fn the_bare_nic_is_recognised_from_the_drivers_line() {
        let bare = "[INFO  core 0] ebbrt_virtio_net::device: virtio-net: legacy [52, 54, 00, 12, \
                    34, 56], features Features(MAC), MTU 1500, 1 of 1 queue pair(s), INTx through \
                    the I/O APIC";
        let lines = vec!["booting".to_string(), bare.to_string()];
        assert!(
            bare_nic_check(&lines)
                .unwrap()
                .starts_with("virtio-net: legacy")
        );
        let modern = bare
            .replace("legacy", "modern")
            .replace("INTx through the I/O APIC", "MSI-X");
        let e = bare_nic_check(&[modern]).unwrap_err();
        assert!(e.contains("expected `virtio-net: legacy`"), "{e}");
        let offloads = bare.replace("Features(MAC)", "Features(MAC | CSUM)");
        assert!(
            bare_nic_check(&[offloads])
                .unwrap_err()
                .contains("Features(MAC)")
        );
        assert!(
            bare_nic_check(&[])
                .unwrap_err()
                .contains("no `virtio-net:` line")
        );
    }

    #[test]
    fn tap_availability_is_decided() {
        // Whatever the machine, the answer is a reason or none; as root
        // with /dev/net/tun and ip (this project's machines), none.
        let why = tap_unavailable();
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root && Path::new("/dev/net/tun").exists() && Path::new("/usr/sbin/ip").exists() {
            assert_eq!(why, None);
        } else {
            assert!(why.is_some());
        }
    }

    #[test]
    fn free_ports_are_free() {
        let p = free_port().unwrap();
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        std::net::UdpSocket::bind(("127.0.0.1", p)).unwrap();
    }
}
