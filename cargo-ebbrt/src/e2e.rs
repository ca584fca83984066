//! The tool's QEMU path against real QEMU, with tiny hand-made PVH kernels:
//! exit-status mapping, a triple fault, a hang under a timeout, the kernel
//! command line, and a test kernel that crashes mid-run and is rebooted
//! past the crash. Independent of the project's own native kernel, so that
//! these paths are checked even when that kernel cannot produce them.
//!
//! Needs `qemu-system-x86_64` and GNU `as`/`ld` (binutils); `.ci/run`
//! installs QEMU before any test runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::exit::Outcome;
use crate::process::{self, Options, Stdout};
use crate::protocol::TestResult;
use crate::qemu::{self, Boot};
use crate::run_cmd::qemu_outcome;
use crate::session;
use crate::setup::find_in_path;
use crate::test_cmd::QemuBooter;

/// What a hand-made kernel does after printing its text.
#[derive(Clone, Copy)]
enum Then {
    Exit(u32),
    TripleFault,
    Hang,
    /// Print the kernel command line, then exit 0.
    EchoCmdline,
}

/// A kernel that looks for `start=<digit>` on its command line (0 when
/// absent) and runs the script entry for that digit (the first entry when
/// none matches): print the text on COM1, then do `Then`.
fn kernel(dir: &Path, name: &str, script: &[(u32, &str, Then)]) -> PathBuf {
    let mut s = String::from(
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
    mov %ebx, %edi
    mov 24(%edi), %ebp          /* hvm_start_info.cmdline_paddr */
    xor %ecx, %ecx
    test %ebp, %ebp
    jz .Lhave
    mov %ebp, %esi
.Lscan:
    cmpb $0, (%esi)
    je .Lhave
    cmpl $0x72617473, (%esi)    /* "star" */
    jne .Lnext
    cmpw $0x3d74, 4(%esi)       /* "t=" */
    jne .Lnext
    movzbl 6(%esi), %ecx
    sub $0x30, %ecx
    jmp .Lhave
.Lnext:
    inc %esi
    jmp .Lscan
.Lhave:
"#,
    );
    for (i, (digit, _, _)) in script.iter().enumerate() {
        s += &format!("    cmp ${digit}, %ecx\n    je .Lentry{i}\n");
    }
    s += "    jmp .Lentry0\n";
    for (i, (_, _, then)) in script.iter().enumerate() {
        s += &format!(".Lentry{i}:\n    mov $.Ltext{i}, %esi\n    call puts\n");
        s += &match then {
            Then::Exit(code) => format!("    mov ${code}, %eax\n    jmp exit\n"),
            Then::TripleFault => "    lidt zero_idt\n    int $3\n".to_string(),
            Then::Hang => ".Lhang{i}:\n    hlt\n    jmp .Lhang{i}\n".replace("{i}", &i.to_string()),
            Then::EchoCmdline => {
                "    mov %ebp, %esi\n    call puts\n    mov $nl, %esi\n    call puts\n    xor %eax, %eax\n    jmp exit\n"
                    .to_string()
            }
        };
    }
    s += r#"
exit:
    mov $0xf4, %dx
    out %eax, %dx
    hlt
puts:
    mov $0x3f8, %dx
.Lputc:
    lodsb
    test %al, %al
    jz .Lputs_done
    out %al, %dx
    jmp .Lputc
.Lputs_done:
    ret
.section .data
zero_idt:
    .word 0
    .long 0
nl:
    .asciz "\n"
"#;
    for (i, (_, text, _)) in script.iter().enumerate() {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\r\\n");
        s += &format!(".Ltext{i}:\n    .asciz \"{escaped}\"\n");
    }
    let src = dir.join(format!("{name}.S"));
    let obj = dir.join(format!("{name}.o"));
    let elf = dir.join(name);
    std::fs::write(&src, s).unwrap();
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    assert!(
        // -g: DWARF line tables for the source, which a backtrace is
        // symbolized from.
        ok(Command::new("as")
            .args(["--32", "-g", "-o"])
            .arg(&obj)
            .arg(&src)),
        "as failed on {src:?}"
    );
    assert!(
        ok(Command::new("ld")
            .args(["-m", "elf_i386", "-Ttext=0x100000", "-o"])
            .arg(&elf)
            .arg(&obj)),
        "ld failed on {obj:?}"
    );
    elf
}

struct Fixture {
    dir: PathBuf,
    qemu: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let qemu = find_in_path(qemu::QEMU).unwrap_or_else(|| {
            panic!(
                "{} is needed by this test: apt-get install qemu-system-x86 (.ci/run does)",
                qemu::QEMU
            )
        });
        assert!(
            find_in_path("as").is_some() && find_in_path("ld").is_some(),
            "binutils (as, ld) are needed"
        );
        let dir =
            std::env::temp_dir().join(format!("cargo-ebbrt-e2e-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { dir, qemu }
    }

    fn boot(&self, kernel: PathBuf, append: &str, timeout: Duration) -> (Outcome, Vec<String>) {
        let boot = Boot {
            kernel,
            accel: Accel::Tcg,
            cores: 2,
            mem: qemu::DEFAULT_MEM,
            append: append.into(),
        };
        let mut cmd = Command::new(&self.qemu);
        cmd.args(boot.args());
        let mut lines = Vec::new();
        let mut f = |l: &str| lines.push(l.to_string());
        let opts = Options {
            timeout: Some(timeout),
            interactive: false,
            capture_stderr: true,
            kill_tree: false,
        };
        let done = process::run(cmd, opts, Stdout::Lines(&mut f)).unwrap();
        (qemu_outcome(&done, opts), lines)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LIMIT: Duration = Duration::from_secs(60);
/// How long a hanging kernel is given: long enough for QEMU to start and the
/// kernel to print its line on a loaded machine (`cargo test` runs these
/// beside every other test), short enough to keep the suite quick.
const HANG: Duration = Duration::from_secs(10);

#[test]
fn exit_codes_crash_and_command_line_through_real_qemu() {
    let f = Fixture::new("exits");
    let k = kernel(&f.dir, "exit3", &[(0, "exiting with 3\n", Then::Exit(3))]);
    let (o, lines) = f.boot(k, "", LIMIT);
    assert_eq!(o, Outcome::Exited(3));
    // -nodefaults -display none: nothing but the guest's own output.
    assert_eq!(lines, ["exiting with 3"]);

    let k = kernel(&f.dir, "exit0", &[(0, "bye\n", Then::Exit(0))]);
    assert_eq!(f.boot(k, "", LIMIT).0, Outcome::Exited(0));

    let k = kernel(
        &f.dir,
        "crash",
        &[(0, "about to triple fault\n", Then::TripleFault)],
    );
    let (o, lines) = f.boot(k, "", LIMIT);
    assert!(
        matches!(o, Outcome::Crashed(ref m) if m.contains("triple-fault")),
        "{o:?}"
    );
    assert_eq!(lines, ["about to triple fault"]);

    let k = kernel(&f.dir, "echo", &[(0, "cmdline: ", Then::EchoCmdline)]);
    let (o, lines) = f.boot(k, "ebbrt.test.start=7 a=b", LIMIT);
    assert_eq!(o, Outcome::Exited(0));
    assert_eq!(lines, ["cmdline: ebbrt.test.start=7 a=b"]);

    let (o, _) = f.boot(f.dir.join("no-such-kernel"), "", LIMIT);
    assert!(
        matches!(o, Outcome::QemuFailed(ref m) if m.contains("no-such-kernel")),
        "{o:?}"
    );
}

#[test]
fn a_hang_is_killed_at_the_timeout() {
    let f = Fixture::new("hang");
    let k = kernel(&f.dir, "hang", &[(0, "hanging\n", Then::Hang)]);
    let start = Instant::now();
    let (o, lines) = f.boot(k, "", HANG);
    assert_eq!(o, Outcome::TimedOut(HANG));
    assert_eq!(lines, ["hanging"]);
    assert!(start.elapsed() < Duration::from_secs(40));
}

#[test]
fn a_test_kernel_is_rebooted_past_a_crash_and_a_panic() {
    let f = Fixture::new("session");
    // Five tests: [1] triple-faults silently, [2] panics (FAILED line, exit
    // 1), [3] hangs, [4] passes. Each boot starts where it is told.
    let k = kernel(
        &f.dir,
        "tests",
        &[
            (
                0,
                "boot\nebbrt-test: running 5 tests (from 0)\nebbrt-test: [0] a ... ok\n",
                Then::TripleFault,
            ),
            (
                2,
                "ebbrt-test: running 5 tests (from 2)\nebbrt-test: [2] c ... FAILED: panicked at t.rs:1:1: no\n",
                Then::Exit(1),
            ),
            (3, "ebbrt-test: running 5 tests (from 3)\n", Then::Hang),
            (
                4,
                "ebbrt-test: running 5 tests (from 4)\nebbrt-test: [4] e ... ok\nebbrt-test: done: 1 passed, 0 failed\n",
                Then::Exit(0),
            ),
        ],
    );
    let mut booter = QemuBooter {
        qemu: f.qemu.clone(),
        kernel: k,
        append: String::new(),
        accel: Accel::Tcg,
        timeout: HANG,
        verbose: false,
        source_root: None,
    };
    let r = session::run_kernel(&mut booter);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.boots, 4);
    let got: Vec<(usize, &str, bool)> = r
        .tests
        .iter()
        .map(|(i, t)| (*i, t.name.as_str(), t.result == TestResult::Ok))
        .collect();
    assert_eq!(
        got,
        [
            (0, "a", true),
            (1, "#1", false),
            (2, "c", false),
            (3, "#3", false),
            (4, "e", true)
        ]
    );
    let TestResult::Failed(why) = &r.tests[&3].result else {
        unreachable!()
    };
    assert!(why.contains("TIMED OUT"), "{why}");
    assert_eq!((r.passed(), r.failed()), (2, 3));
}

#[test]
fn a_backtrace_is_symbolized_from_the_booted_image() {
    let f = Fixture::new("backtrace");
    // `_start` begins .text, linked at 0x100000: a return address 3 bytes
    // into it is looked up at 0x100002, the start of its second instruction
    // (line 13 of the source: `mov 24(%edi), %ebp` in `kernel`). An address outside the image
    // gets nothing.
    let out = "ebbrt-test: running 1 tests (from 0)
ebbrt-test: [0] a ... FAILED: panicked at t.rs:1:1: no
  backtrace (return addresses; addr2line -e <image> -f -C ADDR):
    #0 0x0000000000100003
    #1 0x00000000dead0000
end
";
    let k = kernel(&f.dir, "bt", &[(0, out, Then::Exit(1))]);
    let mut booter = QemuBooter {
        qemu: f.qemu.clone(),
        kernel: k,
        append: String::new(),
        accel: Accel::Tcg,
        timeout: LIMIT,
        verbose: false,
        source_root: Some(f.dir.clone()),
    };
    let boot = session::Booter::boot(&mut booter, 0).unwrap();
    assert_eq!(boot.outcome, Outcome::Exited(1));
    let at = |l: &str| boot.lines.iter().position(|x| x == l).unwrap();
    let first = at("    #0 0x0000000000100003");
    assert_eq!(
        boot.lines[first + 1],
        "        _start at bt.S:13",
        "{:#?}",
        boot.lines
    );
    assert_eq!(boot.lines[first + 2], "    #1 0x00000000dead0000");
    assert_eq!(boot.lines[first + 3], "end");
}
