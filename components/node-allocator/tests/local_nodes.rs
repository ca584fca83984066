//! The local backend against real QEMU: a tiny hand-made PVH kernel that
//! prints its command line on the debug console and then exits or hangs,
//! and the `hello` example built natively. Checks that the bootstrap
//! arrives, that an exit becomes `Exited`, that a node that never connects
//! hits `Timeout`, that shutdown and Ctrl-C leave no QEMU and no namespace,
//! and (as root) a tap per node with the frontend listening inside the
//! namespace.
//!
//! Needs `qemu-system-x86_64`, GNU `as`/`ld`, and for the tap test root and
//! `ip`; `.ci/run` installs them. `hello` is built into a target directory
//! of this test's own (minutes when cold); `EBBRT_NODE_IMAGE` names a
//! prebuilt native `hello` instead.
//!
//! Not named `qemu*`: `cargo ebbrt test` builds test targets so named as
//! native test kernels, and this is a host test that starts QEMU.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ebbrt_node_allocator::netns::list_namespaces;
use ebbrt_node_allocator::{
    Accel, AllocError, Bootstrap, LocalQemu, Network, NodeAllocator, NodeError, NodeOpts,
    NodeStatus,
};

/// Generous: TCG on a loaded two-core machine.
const BOOT: Duration = Duration::from_secs(240);

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("local-nodes-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PVH kernel that writes its command line and a newline to port 0xe9,
/// then writes `exit` to the `isa-debug-exit` port, or halts forever.
fn kernel(dir: &Path, exit: Option<u32>) -> PathBuf {
    let end = match exit {
        Some(code) => format!("    mov ${code}, %eax\n    mov $0xf4, %dx\n    outl %eax, %dx\n"),
        None => String::new(),
    };
    let asm = format!(
        r#"
.section .note.Xen, "a", @note
.align 4
.long 4, 4, 18
.asciz "Xen"
.align 4
.long _start
.section .text
.code32
.globl _start
_start:
    cli
    mov 24(%ebx), %esi
    mov $0xe9, %dx
.Lnext:
    test %esi, %esi
    jz .Lend
    movb (%esi), %al
    test %al, %al
    jz .Lend
    outb %al, %dx
    inc %esi
    jmp .Lnext
.Lend:
    mov $0x0a, %al
    outb %al, %dx
{end}
.Lhalt:
    hlt
    jmp .Lhalt
"#
    );
    let name = if exit.is_some() { "exits" } else { "hangs" };
    let src = dir.join(format!("{name}.s"));
    let obj = dir.join(format!("{name}.o"));
    let elf = dir.join(format!("{name}.elf"));
    std::fs::write(&src, asm).unwrap();
    ok(
        Command::new("as").arg("--32").arg("-o").arg(&obj).arg(&src),
        "as",
    );
    ok(
        Command::new("ld")
            .args(["-m", "elf_i386", "-Ttext=0x100000", "-o"])
            .arg(&elf)
            .arg(&obj),
        "ld",
    );
    elf
}

fn user_allocator(dir: &Path) -> NodeAllocator {
    let alloc = NodeAllocator::new(LocalQemu::new(Network::User, 0, dir.join("logs")).unwrap());
    assert_ne!(alloc.frontend_endpoint().port(), 0, "port 0 picks a port");
    alloc
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn the_bootstrap_arrives_and_an_exit_is_an_error() {
    let dir = tmp("exit");
    let img = kernel(&dir, Some(3));
    let alloc = user_allocator(&dir);
    let h = alloc
        .allocate(
            &img,
            &NodeOpts {
                extra_args: "ebbrt.log=debug".into(),
                ..NodeOpts::default()
            },
        )
        .unwrap();
    // The command line built: this machine's accelerator, the image, and
    // the bootstrap words after the network's.
    let cmd = h.command_line();
    let accel = Accel::detect();
    assert!(
        cmd.windows(accel.qemu_args().len())
            .any(|w| w == accel.qemu_args()),
        "{cmd:?}"
    );
    if !std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .contains(" vmx")
        && !std::fs::read_to_string("/proc/cpuinfo")
            .unwrap()
            .contains(" svm")
    {
        assert_eq!(accel, Accel::Tcg);
    }
    assert!(
        cmd.windows(2)
            .any(|w| w[0] == "-kernel" && Path::new(&w[1]) == img)
    );
    let append = &cmd[cmd.iter().position(|a| a == "-append").unwrap() + 1];
    let expected = format!(
        "net.ip=10.0.2.15/24 net.gw=10.0.2.2 {} ebbrt.log=debug",
        h.bootstrap().cmdline()
    );
    assert_eq!(append, &expected);
    assert_eq!(
        h.bootstrap().frontend,
        alloc.frontend_endpoint(),
        "nodes are told the frontend's endpoint"
    );
    assert_eq!(h.bootstrap().frontend.ip().to_string(), "10.0.2.2");

    // The kernel exits with 3: QEMU's status 7, an error on the handle.
    let e = h.wait_exit(BOOT);
    let NodeError::Exited {
        code,
        app_status,
        last_console_lines,
        ..
    } = &e
    else {
        panic!("expected Exited, got {e:?}")
    };
    assert_eq!((*code, *app_status), (7, Some(3)));
    // What the node received, echoed by it: the whole command line.
    assert!(
        last_console_lines.iter().any(|l| l == &expected),
        "{last_console_lines:?}"
    );
    let echoed = std::fs::read_to_string(h.console_log().unwrap()).unwrap();
    let line = echoed.lines().find(|l| l.contains("ebbrt.node=")).unwrap();
    assert_eq!(&Bootstrap::parse(line).unwrap(), h.bootstrap());
    assert_eq!(h.wait_connected(Duration::ZERO), Err(e.clone()));
    assert_eq!(h.status(), NodeStatus::Ended(e));
    alloc.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_node_that_never_connects_times_out_and_shutdown_stops_it() {
    let dir = tmp("timeout");
    let img = kernel(&dir, None);
    let alloc = user_allocator(&dir);
    let opts = NodeOpts {
        node_port: Some(7000),
        ..NodeOpts::default()
    };
    let h = alloc.allocate(&img, &opts).unwrap();
    let pid = alloc.pids()[0];
    // Peers reach its port through a forward on the host's loopback.
    let peer = h.peer_endpoint().unwrap();
    assert_eq!(peer.ip().to_string(), "10.0.2.2");
    assert!(
        h.command_line()
            .iter()
            .any(|a| a.contains(&format!("hostfwd=tcp:127.0.0.1:{}-:7000", peer.port())))
    );
    let e = h.wait_connected(Duration::from_secs(2)).unwrap_err();
    assert!(matches!(e, NodeError::Timeout { .. }), "{e:?}");
    assert!(alive(pid), "a timed-out node keeps running until stopped");

    // The accept path reports it: with a wrong secret it is refused.
    let reg = alloc.registry();
    assert!(reg.connected(h.id(), &[0; 32]).is_err());
    reg.connected(h.id(), h.bootstrap().secret.as_bytes())
        .unwrap();
    h.wait_connected(Duration::ZERO).unwrap();

    alloc.shutdown().unwrap();
    assert!(!alive(pid), "QEMU {pid} outlived shutdown");
    match h.status() {
        NodeStatus::Ended(NodeError::Killed {
            by_allocator: true, ..
        }) => {}
        s => panic!("expected a node stopped by the allocator, got {s:?}"),
    }
    assert!(matches!(
        alloc.allocate(&img, &opts),
        Err(AllocError::ShutDown)
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// The native `hello`: `EBBRT_NODE_IMAGE`, or built here.
fn hello_image() -> PathBuf {
    if let Some(p) = std::env::var_os("EBBRT_NODE_IMAGE") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("native-hello");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ok(
        Command::new(cargo)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "build",
                "--target",
                "x86_64-ebbrt.json",
                "-Zjson-target-spec",
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
                "-p",
                "hello",
            ]),
        "building hello natively",
    );
    target.join("x86_64-ebbrt/debug/hello")
}

#[test]
fn hello_boots_as_a_node() {
    let dir = tmp("hello");
    let img = hello_image();
    let alloc = user_allocator(&dir);
    let h = alloc.allocate(&img, &NodeOpts::default()).unwrap();
    let e = h.wait_exit(BOOT);
    let log = std::fs::read_to_string(h.console_log().unwrap()).unwrap();
    assert!(
        matches!(
            e,
            NodeError::Exited {
                app_status: Some(0),
                ..
            }
        ),
        "{e}\n{log}"
    );
    assert!(log.contains("hello from core 0 of 1"), "{log}");
    assert!(log.contains("total 1000 bumps from 1 cores"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn taps_in_a_namespace_with_the_frontend_listening_inside() {
    let dir = tmp("tap");
    let port = free_port();
    let backend = match LocalQemu::new(Network::Tap, port, dir.join("logs")) {
        Err(AllocError::NotRoot) => {
            // Not root: the allocator says so, and there is nothing to test.
            // SAFETY: geteuid(2) cannot fail.
            assert_ne!(unsafe { libc::geteuid() }, 0);
            eprintln!("not root: tap test skipped");
            return;
        }
        r => r.unwrap(),
    };
    let ns = backend.namespace().unwrap().to_string();
    assert!(list_namespaces().contains(&ns));
    let alloc = NodeAllocator::new(backend);
    let img = kernel(&dir, None);
    let opts = NodeOpts {
        node_port: Some(7000),
        ..NodeOpts::default()
    };
    let a = alloc.allocate(&img, &opts).unwrap();
    let b = alloc.allocate(&img, &opts).unwrap();
    assert_eq!(
        a.bootstrap().frontend.to_string(),
        format!("10.80.0.1:{port}")
    );
    assert_eq!(b.peer_endpoint().unwrap().to_string(), "10.80.0.3:7000");
    assert_eq!(&a.command_line()[..4], ["ip", "netns", "exec", ns.as_str()]);
    let append = a.command_line().last().unwrap();
    assert!(append.starts_with("net.ip=10.80.0.2/24 net.gw=10.80.0.1 ebbrt.node=1 "));
    for tap in ["tap1", "tap2"] {
        ok(
            Command::new("ip").args(["-n", &ns, "link", "show", tap]),
            "the tap exists",
        );
    }
    // Both kernels run and echo their command line, so both QEMUs opened
    // their taps (QEMU exits at once when it cannot).
    for h in [&a, &b] {
        let log = h.console_log().unwrap();
        let deadline = std::time::Instant::now() + BOOT;
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("ebbrt.node=")
        {
            assert_eq!(h.status(), NodeStatus::Booting, "{:?}", h.status());
            assert!(
                std::time::Instant::now() < deadline,
                "node {} did not boot",
                h.id()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // The frontend's listener is inside the namespace, at the address the
    // nodes were told: a client in the namespace reaches it.
    let listener = alloc.listen().unwrap();
    assert_eq!(listener.local_addr().unwrap(), a.bootstrap().frontend);
    let mut client = Command::new("ip")
        .args(["netns", "exec", &ns, "bash", "-c"])
        .arg(format!("echo hello-frontend > /dev/tcp/10.80.0.1/{port}"))
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    assert_eq!(line, "hello-frontend\n");
    assert!(client.wait().unwrap().success());

    let pids = alloc.pids();
    alloc.shutdown().unwrap();
    for pid in pids {
        assert!(!alive(pid), "QEMU {pid} outlived shutdown");
    }
    assert!(!list_namespaces().contains(&ns), "{ns} outlived shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

/// Run by `frontend_child` in a child process: allocates a node
/// that never ends, prints QEMU's pid, and waits to be interrupted.
#[test]
#[ignore = "a helper: runs only as frontend_child's child process"]
fn frontend_waiting_for_ctrl_c() {
    let Some(dir) = std::env::var_os("EBBRT_NODE_SIGINT_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let img = kernel(&dir, None);
    let alloc = user_allocator(&dir);
    let h = alloc.allocate(&img, &NodeOpts::default()).unwrap();
    // Once QEMU runs the kernel, it has printed its command line.
    while !std::fs::read_to_string(h.console_log().unwrap())
        .unwrap_or_default()
        .contains("ebbrt.node=1")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file, not stdout: the test harness may capture a test's output.
    std::fs::write(dir.join("qemu.pid"), alloc.pids()[0].to_string()).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts `frontend_waiting_for_ctrl_c` as a child process in `dir`;
/// returns it and its node's QEMU pid.
fn frontend_child(dir: &Path) -> (std::process::Child, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "frontend_waiting_for_ctrl_c",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EBBRT_NODE_SIGINT_DIR", dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.join("qemu.pid");
    let deadline = std::time::Instant::now() + BOOT;
    let pid: u32 = loop {
        if let Ok(p) = std::fs::read_to_string(&pid_file)
            && let Ok(p) = p.trim().parse()
        {
            break p;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the frontend child ended ({status:?}) before its node booted");
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the frontend child's node did not boot in {BOOT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (child, pid)
}

#[test]
fn ctrl_c_stops_every_node() {
    let dir = tmp("sigint");
    let (mut child, pid) = frontend_child(&dir);
    assert!(alive(pid));
    ok(
        Command::new("kill").args(["-INT", &child.id().to_string()]),
        "kill -INT",
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(!alive(pid), "QEMU {pid} outlived the frontend's Ctrl-C");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_frontend_killed_outright_takes_its_nodes_along() {
    let dir = tmp("sigkill");
    let (mut child, pid) = frontend_child(&dir);
    assert!(alive(pid));
    // SIGKILL: no handler runs; PR_SET_PDEATHSIG must end QEMU.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + BOOT;
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU {pid} outlived its frontend's SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(dir);
}
