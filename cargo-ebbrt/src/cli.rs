//! Command-line parsing for `cargo ebbrt`.
//!
//! Hand-rolled on purpose: the grammar is tiny, and a parser we own gives
//! exact error messages without adding a dependency to the hosted runtime's
//! package. Every error is a [`UsageError`]; `main` prints it with the usage
//! text of the subcommand and exits with status 2.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::accel::Accel;
use crate::qemu::MemSize;

/// The most cores an instance has (`ebbrt_core::cpu::MAX_CORES`; a test
/// checks they agree: the tool does not depend on the framework's crates,
/// so that it builds on any toolchain).
pub const MAX_CORES: usize = 256;
/// Default number of cores of a run (native `-smp`, hosted `--cores`).
pub const DEFAULT_CORES: u32 = 2;
/// Default time limit of the host tests (build included).
pub const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(900);
/// How long `cargo ebbrt test` runs each fuzz target by default.
pub const DEFAULT_FUZZ: Duration = Duration::from_secs(10);
/// Default per-boot timeout of a test kernel.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed command line.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `cargo ebbrt run ...`
    Run(RunArgs),
    /// `cargo ebbrt test ...`
    Test(TestArgs),
    /// `cargo ebbrt docs ...`
    Docs(DocsArgs),
    /// `cargo ebbrt new ...`
    New(NewArgs),
    /// `--help` somewhere: print this text and exit 0.
    Help(&'static str),
}

/// What `run`, `test` and `docs` pass on to cargo: which workspace and
/// package, features and profile.
#[derive(Debug, Default, PartialEq)]
pub struct BuildArgs {
    /// `--manifest-path`: the Cargo.toml of the workspace (or of a package
    /// in it); default: cargo's search from the current directory.
    pub manifest_path: Option<PathBuf>,
    /// `-p`/`--package`: the package (application) to run or test.
    pub package: Option<String>,
    /// Build with `--release`.
    pub release: bool,
    /// `--features` for cargo (comma- or space-separated, may repeat),
    /// e.g. `ebbrt/idle-poll` to select a facade component.
    pub features: Vec<String>,
    /// `--no-default-features` for cargo.
    pub no_default_features: bool,
}

impl BuildArgs {
    /// Takes the flag `name` if it is one of these; `Ok(false)` when it is
    /// not (the caller's own flag, or an unknown one).
    fn take<I: Iterator<Item = String>>(
        &mut self,
        flags: &mut Flags<I>,
        name: &str,
        inline: Option<String>,
    ) -> Result<bool, UsageError> {
        match name {
            "--release" => {
                flags.no_value(name, inline)?;
                self.release = true;
            }
            "--no-default-features" => {
                flags.no_value(name, inline)?;
                self.no_default_features = true;
            }
            "--features" | "-F" => {
                let v = flags.value(name, inline)?;
                self.features.extend(
                    v.split([',', ' '])
                        .filter(|f| !f.is_empty())
                        .map(String::from),
                );
            }
            "--manifest-path" => {
                let v = flags.value(name, inline)?;
                if !v.ends_with("Cargo.toml") {
                    return Err(usage_error(
                        format!("--manifest-path must name a Cargo.toml, not `{v}`"),
                        flags.usage,
                    ));
                }
                self.manifest_path = Some(PathBuf::from(v));
            }
            "-p" | "--package" => {
                let v = flags.value(name, inline)?;
                if self.package.as_ref().is_some_and(|p| *p != v) {
                    return Err(usage_error(
                        format!(
                            "two packages given (`{}` and `{v}`); give one",
                            self.package.as_deref().unwrap_or_default()
                        ),
                        flags.usage,
                    ));
                }
                self.package = Some(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Arguments of `cargo ebbrt run`.
#[derive(Debug, PartialEq)]
pub struct RunArgs {
    /// Workspace, package, features and profile.
    pub build: BuildArgs,
    /// Run as a Linux process instead of booting under QEMU.
    pub hosted: bool,
    /// Number of cores.
    pub cores: u32,
    /// Guest memory (native only).
    pub mem: Option<MemSize>,
    /// `k=v ...`: the kernel command line (native) or `EBBRT_ARGS` (hosted).
    pub append: Option<String>,
    /// Accelerator override (native only).
    pub accel: Option<Accel>,
    /// Stop the run after this long (exit status 124).
    pub timeout: Option<Duration>,
    /// Everything after `--`.
    pub app_args: Vec<String>,
    /// The guest's network (native only; see `net.rs`).
    pub net: crate::net::NetOpts,
    /// Whether a networking flag was given: without one, the guest gets a
    /// NIC only when the application links the network stack.
    pub net_asked: bool,
    /// Start QEMU stopped, waiting for a debugger (native only).
    pub gdb: bool,
}

/// Arguments of `cargo ebbrt test`.
#[derive(Debug, PartialEq)]
pub struct TestArgs {
    /// Workspace, package, features and profile.
    pub build: BuildArgs,
    /// Run only the test kernels whose name contains this.
    pub filter: Option<String>,
    /// Skip `cargo test --workspace`.
    pub no_host: bool,
    /// Skip the in-QEMU test kernels.
    pub no_qemu: bool,
    /// Per-boot timeout of a test kernel.
    pub timeout: Duration,
    /// Time limit of `cargo test --workspace`, build included.
    pub host_timeout: Duration,
    /// Show every line a test kernel prints, not only the protocol lines.
    pub verbose: bool,
    /// How long each cargo-fuzz target runs (zero: none).
    pub fuzz: Duration,
}

/// Arguments of `cargo ebbrt docs`.
#[derive(Debug, PartialEq)]
pub struct DocsArgs {
    /// Workspace, package, features and profile.
    pub build: BuildArgs,
    /// Compare the catalog file with the catalog instead of writing it.
    pub check: bool,
}

/// Arguments of `cargo ebbrt new`.
#[derive(Debug, PartialEq)]
pub struct NewArgs {
    /// The directory to create; its last component names the package.
    pub dir: PathBuf,
    /// The framework checkout the application depends on (by path);
    /// default: the one this tool was built from.
    pub framework: Option<PathBuf>,
}

/// A command line that cannot be obeyed; `usage` is the text to show with it.
#[derive(Debug, PartialEq)]
pub struct UsageError {
    /// What is wrong, one sentence.
    pub message: String,
    /// The usage text of the (sub)command concerned.
    pub usage: &'static str,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The error, then the usage line (the first of the usage text).
        let usage_line = self.usage.lines().next().unwrap_or_default();
        write!(
            f,
            "error: {}\n\n{usage_line}\n\nFor more information, try `--help`.",
            self.message
        )
    }
}

/// The build options' lines of the usage texts of `run`, `test` and `docs`.
macro_rules! build_options {
    () => {
        "Build options (passed to cargo):
  --manifest-path <PATH>  the Cargo.toml of the workspace (default: the one
                          around the current directory)
  -p, --package <NAME>    the package
  -F, --features <F>      cargo features, e.g. ebbrt/idle-poll or ebbrt/talc to
                          select a facade component (docs/components.md)
  --no-default-features   turn the package's default features off
  --release               build with the release profile"
    };
}

/// Usage of the whole tool.
pub const USAGE: &str = "\
Usage: cargo ebbrt <COMMAND> [OPTIONS]

Commands:
  new <DIR>       write a new application in DIR (outside the framework's repository)
  run [APP]       build an application and boot it under QEMU (or --hosted: run it on Linux)
  test            run every test: host tests, then every in-QEMU test kernel
  docs            write docs/components.md, the component catalog (--check: fail if stale)

Run them anywhere inside an application's workspace (or the framework's).

Run `cargo ebbrt <COMMAND> --help` for the options of a command.";

/// Usage of `cargo ebbrt run`.
pub const RUN_USAGE: &str = concat!(
    "\
Usage: cargo ebbrt run [APP] [OPTIONS] [-- <APP ARGS>...]

Builds the application for the native target and boots it under QEMU, the
serial console on this terminal. The exit status is the application's.
APP (or -p APP) is a package of the workspace with a binary (in the
framework's own workspace: an example under examples/); without it, the
package of the current directory, or the workspace's only application.

Options:
  --hosted            build and run it as a Linux process instead
  --cores <N>         number of cores (default 2)
  --mem <SIZE>        guest memory, e.g. 512M or 1G (default 256M; native only)
  --append <\"k=v ..\"> boot arguments: the kernel command line (native) or EBBRT_ARGS (hosted)
  --accel <kvm|tcg>   override the accelerator choice (native only)
  --timeout <SECS>    stop the run after SECS seconds (exit status 124)
  --gdb               start the guest stopped, waiting for gdb on a port of
                      127.0.0.1, and print the command that attaches with
                      symbols (native only)
  -h, --help          print this help
",
    build_options!(),
    "
Networking (native): a guest gets a virtio-net NIC when the application links
the network stack (the facade's `net` feature) or a flag below asks for one.
  --net <user|tap|none>  user: QEMU user networking, guest 10.0.2.15 (default);
                         tap: a tap in a network namespace made for the run,
                         guest 10.79.0.2 (clients: ip netns exec <NAME> ...)
  --forward <PORT|H:G>   user networking: forward 127.0.0.1:PORT (TCP and UDP) to
                         the guest's PORT, or host port H to guest port G
                         (repeatable; default 7777)
  --queues <N>           tap: N queue pairs (multiqueue: one stack per core)
  --nic <K=V,...>        extra properties of QEMU's virtio-net-pci device, e.g.
                         disable-modern=on,vectors=0,csum=off (a legacy NIC,
                         INTx, no checksum offload)"
);

/// Usage of `cargo ebbrt test`.
pub const TEST_USAGE: &str = concat!(
    "\
Usage: cargo ebbrt test [OPTIONS]

Runs `cargo test --workspace` (host tests, including every test kernel run
hosted), then builds every test kernel (a test target whose name starts with
`qemu`) for the native target and boots it under QEMU. In the framework's own
workspace it then runs the network checks (echo/netcheck: the echo example on
a virtio-net NIC, over QEMU user networking and, as root, a tap in a network
namespace). Then it runs each cargo-fuzz target of the packages (a `fuzz/`
directory beside their Cargo.toml) for a few seconds from its corpus;
cargo-fuzz must be installed. Ends with the line `N passed, N failed`
(in-QEMU and fuzz totals); exit status 0 iff everything passed. With -p,
only that package's tests.

Options:
  --filter <NAME>     run only the test kernels (and network checks,
                      `echo/netcheck`) whose name contains NAME
  --no-host           skip the host tests
  --no-qemu           skip the in-QEMU test kernels and network checks
  --timeout <SECS>    time limit of one boot of a test kernel (default 120)
  --host-timeout <SECS>
                      time limit of the host tests, build included (default 900)
  --fuzz <SECS>       how long each fuzz target runs (default 10; 0: none)
  -v, --verbose       show everything the test kernels print
  -h, --help          print this help
",
    build_options!()
);

/// Usage of `cargo ebbrt docs`.
pub const DOCS_USAGE: &str = concat!(
    "\
Usage: cargo ebbrt docs [--check] [OPTIONS]

Writes docs/components.md, the component catalog. In the framework's own
workspace: every component (the example `catalog` of the `ebbrt` facade
links every component crate). In an application's workspace: the
application's catalog, its own Ebbs and the framework components it links,
with the facade features that selected them (read from the registry of its
hosted build).

Options:
  --check             write nothing; exit with status 1 and a diff when
                      docs/components.md is stale
  -h, --help          print this help
",
    build_options!()
);

/// Usage of `cargo ebbrt new`.
pub const NEW_USAGE: &str = "\
Usage: cargo ebbrt new <DIR> [--path <FRAMEWORK>]

Writes a ready application in the new directory DIR (its last component names
the package): Cargo.toml (the framework by path), rust-toolchain.toml, the
native target specification, .cargo/config.toml, src/main.rs with a per-core
Ebb, tests/qemu_app.rs with one #[ebbrt::test], and a README. Then, in DIR:
`cargo ebbrt run`, `cargo ebbrt run --hosted`, `cargo ebbrt test`,
`cargo ebbrt docs`; plain `cargo run` runs it hosted.

Options:
  --path <FRAMEWORK>  the framework's checkout to depend on (default: the one
                      this tool was built from)
  -h, --help          print this help";

/// Parses the arguments after the program name.
///
/// A leading `ebbrt` is skipped, so the binary also works when cargo runs it
/// as the external subcommand `cargo-ebbrt` (cargo then passes `ebbrt`).
pub fn parse<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args: Vec<String> = args.into_iter().map(Into::into).collect();
    if args.first().map(String::as_str) == Some("ebbrt") {
        args.remove(0);
    }
    let mut args = args.into_iter();
    match args.next().as_deref() {
        None => Err(usage_error("no command given", USAGE)),
        Some("-h" | "--help" | "help") => Ok(Command::Help(USAGE)),
        Some("run") => parse_run(args),
        Some("test") => parse_test(args),
        Some("docs") => parse_docs(args),
        Some("new") => parse_new(args),
        Some(other) if other.starts_with('-') => {
            Err(usage_error(format!("unknown flag `{other}`"), USAGE))
        }
        Some(other) => Err(usage_error(format!("unknown command `{other}`"), USAGE)),
    }
}

fn usage_error(message: impl Into<String>, usage: &'static str) -> UsageError {
    UsageError {
        message: message.into(),
        usage,
    }
}

/// Walks flags of the form `--name`, `--name value` and `--name=value`.
struct Flags<I: Iterator<Item = String>> {
    args: I,
    usage: &'static str,
}

/// One item of a command line.
enum Item {
    /// `--name` or `--name=value` (value kept for the flag's own parser).
    Flag(String, Option<String>),
    /// A positional argument.
    Positional(String),
    /// `--`: the rest belongs to the application.
    Rest(Vec<String>),
}

impl<I: Iterator<Item = String>> Flags<I> {
    fn next(&mut self) -> Option<Item> {
        let arg = self.args.next()?;
        if arg == "--" {
            return Some(Item::Rest(self.args.by_ref().collect()));
        }
        if arg.starts_with("--") {
            return Some(match arg.split_once('=') {
                Some((name, value)) => Item::Flag(name.to_string(), Some(value.to_string())),
                None => Item::Flag(arg, None),
            });
        }
        if arg.starts_with('-') && arg.len() > 1 {
            return Some(Item::Flag(arg, None));
        }
        Some(Item::Positional(arg))
    }

    /// The value of `flag`: the `=value` part, or the next argument.
    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, UsageError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.args.next() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => Err(usage_error(format!("`{flag}` needs a value"), self.usage)),
        }
    }

    fn no_value(&self, flag: &str, inline: Option<String>) -> Result<(), UsageError> {
        match inline {
            None => Ok(()),
            Some(_) => Err(usage_error(format!("`{flag}` takes no value"), self.usage)),
        }
    }
}

fn parse_run(args: impl Iterator<Item = String>) -> Result<Command, UsageError> {
    let usage = RUN_USAGE;
    let mut flags = Flags { args, usage };
    let mut build = BuildArgs::default();
    let mut example = None;
    let mut hosted = false;
    let mut cores = None;
    let mut mem = None;
    let mut append = None;
    let mut accel = None;
    let mut timeout = None;
    let mut app_args = Vec::new();
    let mut net = crate::net::NetOpts::default();
    let mut gdb = false;
    // The first networking flag given (native only).
    let mut net_flag: Option<String> = None;
    while let Some(item) = flags.next() {
        match item {
            Item::Rest(rest) => app_args = rest,
            Item::Positional(p) if example.is_none() => example = Some(p),
            Item::Positional(p) => {
                return Err(usage_error(
                    format!("unexpected argument `{p}` (application arguments go after `--`)"),
                    usage,
                ));
            }
            Item::Flag(name, inline) => match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help(usage)),
                "--hosted" => {
                    flags.no_value(&name, inline)?;
                    hosted = true;
                }
                "--gdb" => {
                    flags.no_value(&name, inline)?;
                    gdb = true;
                }
                "--cores" => cores = Some(parse_cores(&flags.value(&name, inline)?, usage)?),
                "--mem" => {
                    let v = flags.value(&name, inline)?;
                    mem = Some(
                        MemSize::parse(&v)
                            .map_err(|e| usage_error(format!("--mem {v}: {e}"), usage))?,
                    );
                }
                "--append" => append = Some(parse_append(&flags.value(&name, inline)?, usage)?),
                "--accel" => {
                    let v = flags.value(&name, inline)?;
                    accel = Some(match v.as_str() {
                        "kvm" => Accel::Kvm,
                        "tcg" => Accel::Tcg,
                        _ => {
                            return Err(usage_error(
                                format!("--accel must be `kvm` or `tcg`, not `{v}`"),
                                usage,
                            ));
                        }
                    });
                }
                "--timeout" => {
                    timeout = Some(parse_secs(&flags.value(&name, inline)?, &name, usage)?)
                }
                "--net" | "--forward" | "--queues" | "--nic" => {
                    net_flag.get_or_insert_with(|| name.clone());
                    let v = flags.value(&name, inline)?;
                    net.apply(&name, v).map_err(|e| usage_error(e, usage))?;
                }
                _ => {
                    if !build.take(&mut flags, &name, inline)? {
                        return Err(usage_error(
                            format!("unknown flag `{name}` for `cargo ebbrt run`"),
                            usage,
                        ));
                    }
                }
            },
        }
    }
    match (&example, &build.package) {
        (Some(a), Some(p)) if a != p => {
            return Err(usage_error(
                format!("two applications given (`{a}` and -p `{p}`); give one"),
                usage,
            ));
        }
        (Some(a), None) => build.package = Some(a.clone()),
        _ => {}
    }
    if hosted {
        if mem.is_some() {
            return Err(usage_error(
                "--mem applies to native runs only, not with --hosted",
                usage,
            ));
        }
        if accel.is_some() {
            return Err(usage_error(
                "--accel applies to native runs only, not with --hosted",
                usage,
            ));
        }
        if gdb {
            return Err(usage_error(
                "--gdb applies to native runs only, not with --hosted \
                 (debug a hosted application as a Linux process: `gdb --args <its binary> ...`)",
                usage,
            ));
        }
        if let Some(flag) = net_flag {
            return Err(usage_error(
                format!(
                    "{flag} applies to native runs only, not with --hosted \
                     (a hosted application uses the host's network directly)"
                ),
                usage,
            ));
        }
    } else {
        // Conflicting networking flags are a bad command line (status 2).
        net.check().map_err(|e| usage_error(e, usage))?;
    }
    Ok(Command::Run(RunArgs {
        build,
        hosted,
        cores: cores.unwrap_or(DEFAULT_CORES),
        mem,
        append,
        accel,
        timeout,
        app_args,
        net,
        net_asked: net_flag.is_some(),
        gdb,
    }))
}

fn parse_test(args: impl Iterator<Item = String>) -> Result<Command, UsageError> {
    let usage = TEST_USAGE;
    let mut flags = Flags { args, usage };
    let mut out = TestArgs {
        build: BuildArgs::default(),
        filter: None,
        no_host: false,
        no_qemu: false,
        timeout: DEFAULT_TEST_TIMEOUT,
        host_timeout: DEFAULT_HOST_TIMEOUT,
        verbose: false,
        fuzz: DEFAULT_FUZZ,
    };
    while let Some(item) = flags.next() {
        match item {
            Item::Rest(_) => {
                return Err(usage_error(
                    "`cargo ebbrt test` takes no arguments after `--`",
                    usage,
                ));
            }
            Item::Positional(p) => {
                return Err(usage_error(
                    format!("unexpected argument `{p}` (did you mean `--filter {p}`?)"),
                    usage,
                ));
            }
            Item::Flag(name, inline) => match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help(usage)),
                "--filter" => {
                    let v = flags.value(&name, inline)?;
                    if v.is_empty() {
                        return Err(usage_error("--filter needs a non-empty name", usage));
                    }
                    out.filter = Some(v);
                }
                "--no-host" => {
                    flags.no_value(&name, inline)?;
                    out.no_host = true;
                }
                "--no-qemu" => {
                    flags.no_value(&name, inline)?;
                    out.no_qemu = true;
                }
                "--timeout" => {
                    out.timeout = parse_secs(&flags.value(&name, inline)?, &name, usage)?
                }
                "--host-timeout" => {
                    out.host_timeout = parse_secs(&flags.value(&name, inline)?, &name, usage)?;
                }
                "-v" | "--verbose" => {
                    flags.no_value(&name, inline)?;
                    out.verbose = true;
                }
                "--fuzz" => {
                    let v = flags.value(&name, inline)?;
                    out.fuzz = match v.parse::<u64>() {
                        Ok(n) => Duration::from_secs(n),
                        Err(_) => {
                            return Err(usage_error(
                                format!(
                                    "--fuzz must be a whole number of seconds (0: no fuzzing), not `{v}`"
                                ),
                                usage,
                            ));
                        }
                    };
                }
                _ => {
                    if !out.build.take(&mut flags, &name, inline)? {
                        return Err(usage_error(
                            format!("unknown flag `{name}` for `cargo ebbrt test`"),
                            usage,
                        ));
                    }
                }
            },
        }
    }
    if out.no_host && out.no_qemu && out.fuzz.is_zero() {
        return Err(usage_error(
            "--no-host, --no-qemu and --fuzz 0 together leave nothing to test",
            usage,
        ));
    }
    Ok(Command::Test(out))
}

fn parse_docs(args: impl Iterator<Item = String>) -> Result<Command, UsageError> {
    let usage = DOCS_USAGE;
    let mut flags = Flags { args, usage };
    let mut check = false;
    let mut build = BuildArgs::default();
    while let Some(item) = flags.next() {
        match item {
            Item::Flag(name, inline) => match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help(usage)),
                "--check" => {
                    flags.no_value(&name, inline)?;
                    check = true;
                }
                _ => {
                    if !build.take(&mut flags, &name, inline)? {
                        return Err(usage_error(
                            format!("unknown flag `{name}` for `cargo ebbrt docs`"),
                            usage,
                        ));
                    }
                }
            },
            Item::Positional(p) => {
                return Err(usage_error(format!("unexpected argument `{p}`"), usage));
            }
            Item::Rest(_) => {
                return Err(usage_error(
                    "`cargo ebbrt docs` takes no arguments after `--`",
                    usage,
                ));
            }
        }
    }
    Ok(Command::Docs(DocsArgs { build, check }))
}

fn parse_new(args: impl Iterator<Item = String>) -> Result<Command, UsageError> {
    let usage = NEW_USAGE;
    let mut flags = Flags { args, usage };
    let mut dir = None;
    let mut framework = None;
    while let Some(item) = flags.next() {
        match item {
            Item::Flag(name, inline) => match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help(usage)),
                "--path" => framework = Some(PathBuf::from(flags.value(&name, inline)?)),
                _ => {
                    return Err(usage_error(
                        format!("unknown flag `{name}` for `cargo ebbrt new`"),
                        usage,
                    ));
                }
            },
            Item::Positional(p) if dir.is_none() => dir = Some(PathBuf::from(p)),
            Item::Positional(p) => {
                return Err(usage_error(format!("unexpected argument `{p}`"), usage));
            }
            Item::Rest(_) => {
                return Err(usage_error(
                    "`cargo ebbrt new` takes no arguments after `--`",
                    usage,
                ));
            }
        }
    }
    let Some(dir) = dir else {
        return Err(usage_error(
            "missing the directory of the new application",
            usage,
        ));
    };
    Ok(Command::New(NewArgs { dir, framework }))
}

fn parse_cores(v: &str, usage: &'static str) -> Result<u32, UsageError> {
    let max = MAX_CORES;
    match v.parse::<u32>() {
        Ok(n) if n >= 1 && n as usize <= max => Ok(n),
        _ => Err(usage_error(
            format!("--cores must be a whole number from 1 to {max}, not `{v}`"),
            usage,
        )),
    }
}

fn parse_secs(v: &str, flag: &str, usage: &'static str) -> Result<Duration, UsageError> {
    match v.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(Duration::from_secs(n)),
        _ => Err(usage_error(
            format!("{flag} must be a whole number of seconds (at least 1), not `{v}`"),
            usage,
        )),
    }
}

/// Boot arguments are whitespace-separated `key=value` words (or bare
/// `key` flags), as the runtimes' `boot_arg` reads them.
fn parse_append(v: &str, usage: &'static str) -> Result<String, UsageError> {
    for word in v.split_whitespace() {
        if word.starts_with('=') || word == "--" {
            return Err(usage_error(
                format!(
                    "--append takes `key=value` words separated by spaces; `{word}` is not one"
                ),
                usage,
            ));
        }
    }
    Ok(v.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunArgs {
        match parse(args.iter().copied()) {
            Ok(Command::Run(r)) => r,
            other => panic!("expected a run command, got {other:?}"),
        }
    }

    #[test]
    fn features_accumulate() {
        let r = run(&[
            "run",
            "echo",
            "--features",
            "ebbrt/idle-poll,x",
            "-F",
            "y z",
        ]);
        assert_eq!(r.build.features, ["ebbrt/idle-poll", "x", "y", "z"]);
        assert!(run(&["run", "echo"]).build.features.is_empty());
    }

    fn test(args: &[&str]) -> TestArgs {
        match parse(args.iter().copied()) {
            Ok(Command::Test(t)) => t,
            other => panic!("expected a test command, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e.message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn run_defaults() {
        let r = run(&["run", "hello"]);
        assert_eq!(r.build.package.as_deref(), Some("hello"));
        assert!(!r.hosted && !r.build.release && !r.net_asked);
        assert_eq!(r.cores, DEFAULT_CORES);
        assert_eq!(
            (r.mem, r.append, r.accel, r.timeout),
            (None, None, None, None)
        );
        assert!(r.app_args.is_empty());
        assert!(!r.gdb);
    }

    #[test]
    fn gdb_flag() {
        let r = run(&["run", "hello", "--gdb"]);
        assert!(r.gdb);
        assert_eq!(r.timeout, None, "no time limit unless asked for");
        let r = run(&["run", "--gdb", "hello", "--timeout", "60"]);
        assert!(r.gdb);
        assert_eq!(r.timeout, Some(Duration::from_secs(60)));
        assert!(err(&["run", "hello", "--gdb=1234"]).contains("`--gdb` takes no value"));
        let e = err(&["run", "hello", "--gdb", "--hosted"]);
        assert!(e.starts_with("--gdb applies to native runs only"), "{e}");
        assert!(e.contains("gdb --args"), "{e}");
    }

    #[test]
    fn conflicting_network_flags_are_usage_errors() {
        for (args, what) in [
            (
                &["--forward", "8080", "--forward", "8080"][..],
                "forwarded twice",
            ),
            (
                &["--forward", "8080:7", "--forward", "8080:9"],
                "forwarded twice",
            ),
            (&["--net", "tap", "--forward", "8080"], "--net user only"),
            (&["--net", "none", "--nic", "csum=off"], "--nic needs a NIC"),
            (&["--queues", "2"], "--queues needs --net tap"),
        ] {
            let mut all = vec!["run", "echo"];
            all.extend_from_slice(args);
            // An Err from `parse` is a usage error: `main` exits with 2.
            let e = err(&all);
            assert!(e.contains(what), "{args:?}: {e}");
        }
        assert_eq!(
            run(&["run", "echo", "--forward", "8080", "--forward", "9:7777"])
                .net
                .forwards
                .len(),
            2
        );
    }

    #[test]
    fn run_all_flags_both_spellings() {
        let r = run(&[
            "run",
            "--cores=4",
            "echo",
            "--mem",
            "1G",
            "--append",
            "a=1  b=2",
            "--accel=tcg",
            "--release",
            "--timeout",
            "30",
            "--",
            "--port",
            "7",
        ]);
        assert_eq!(r.build.package.as_deref(), Some("echo"));
        assert_eq!(r.cores, 4);
        assert_eq!(r.mem.map(|m| m.to_string()), Some("1G".to_string()));
        assert_eq!(r.append.as_deref(), Some("a=1 b=2"));
        assert_eq!(r.accel, Some(Accel::Tcg));
        assert!(r.build.release);
        assert_eq!(r.timeout, Some(Duration::from_secs(30)));
        assert_eq!(r.app_args, vec!["--port", "7"]);
    }

    #[test]
    fn leading_ebbrt_is_skipped() {
        assert!(run(&["ebbrt", "run", "hello", "--hosted"]).hosted);
    }

    #[test]
    fn run_errors() {
        assert!(err(&["run", "hello", "--bogus"]).contains("unknown flag `--bogus`"));
        assert!(err(&["run", "hello", "world"]).contains("unexpected argument `world`"));
        assert!(err(&["run", "hello", "--cores"]).contains("`--cores` needs a value"));
        assert!(err(&["run", "hello", "--cores", "0"]).contains("--cores must be"));
        assert!(err(&["run", "hello", "--cores", "257"]).contains("--cores must be"));
        assert!(err(&["run", "hello", "--cores", "--hosted"]).contains("needs a value"));
        assert!(err(&["run", "hello", "--mem", "lots"]).contains("--mem lots"));
        assert!(err(&["run", "hello", "--accel", "hvf"]).contains("`kvm` or `tcg`"));
        assert_eq!(
            run(&["run", "hello", "--append", "flag"]).append.as_deref(),
            Some("flag")
        );
        assert!(err(&["run", "hello", "--append", "a=1 --"]).contains("`--` is not one"));
        assert!(err(&["run", "hello", "--append", "=x"]).contains("`=x` is not one"));
        assert!(err(&["run", "hello", "--hosted=yes"]).contains("takes no value"));
        assert!(err(&["run", "hello", "--hosted", "--mem", "1G"]).contains("native runs only"));
        assert!(err(&["run", "hello", "--hosted", "--accel", "kvm"]).contains("native runs only"));
        for net in [
            &["--net", "tap"][..],
            &["--forward", "8080"],
            &["--queues", "2"],
            &["--net=none"],
        ] {
            let mut args = vec!["run", "echo", "--hosted"];
            args.extend_from_slice(net);
            let e = err(&args);
            let flag = net[0].split('=').next().unwrap();
            assert!(
                e.starts_with(&format!("{flag} applies to native runs only")),
                "{e}"
            );
        }
        // Given before --hosted, too.
        assert!(err(&["run", "echo", "--net", "user", "--hosted"]).contains("--net applies"));
        assert!(err(&["run", "hello", "--timeout", "0"]).contains("--timeout must be"));
    }

    #[test]
    fn top_level_errors_and_help() {
        assert!(err(&[]).contains("no command"));
        assert!(err(&["frob"]).contains("unknown command `frob`"));
        assert!(err(&["--frob"]).contains("unknown flag `--frob`"));
        assert_eq!(parse(["--help"]), Ok(Command::Help(USAGE)));
        assert_eq!(parse(["run", "--help"]), Ok(Command::Help(RUN_USAGE)));
        assert_eq!(parse(["run", "hello", "-h"]), Ok(Command::Help(RUN_USAGE)));
        assert_eq!(parse(["test", "--help"]), Ok(Command::Help(TEST_USAGE)));
    }

    #[test]
    fn build_flags_for_every_command() {
        let r = run(&[
            "run",
            "--manifest-path",
            "/a/Cargo.toml",
            "-p",
            "app",
            "--no-default-features",
            "--release",
        ]);
        assert_eq!(
            r.build,
            BuildArgs {
                manifest_path: Some("/a/Cargo.toml".into()),
                package: Some("app".into()),
                release: true,
                features: vec![],
                no_default_features: true,
            }
        );
        // No application named: the tool picks one from the workspace.
        assert_eq!(run(&["run", "--hosted"]).build.package, None);
        assert!(err(&["run", "a", "-p", "b"]).contains("two applications given"));
        assert!(err(&["run", "--manifest-path", "/a"]).contains("must name a Cargo.toml"));
        let t = test(&["test", "-p", "app", "-F", "x", "--release"]);
        assert_eq!(t.build.package.as_deref(), Some("app"));
        assert_eq!(t.build.features, ["x"]);
        assert!(t.build.release);
        let Ok(Command::Docs(d)) = parse(["docs", "--check", "--no-default-features"]) else {
            panic!()
        };
        assert!(d.check && d.build.no_default_features);
        // A networking flag is remembered: it asks for a NIC.
        assert!(run(&["run", "x", "--net", "user"]).net_asked);
    }

    #[test]
    fn the_core_limit_is_the_framework_s() {
        assert_eq!(MAX_CORES, ebbrt_core::cpu::MAX_CORES);
    }

    #[test]
    fn new_flags() {
        assert_eq!(
            parse(["new", "../my-app", "--path", "/f"]),
            Ok(Command::New(NewArgs {
                dir: "../my-app".into(),
                framework: Some("/f".into())
            }))
        );
        assert!(err(&["new"]).contains("missing the directory"));
        assert!(err(&["new", "a", "b"]).contains("unexpected argument `b`"));
        assert!(err(&["new", "a", "--hosted"]).contains("unknown flag `--hosted`"));
    }

    #[test]
    fn docs_flags() {
        assert_eq!(
            parse(["docs"]),
            Ok(Command::Docs(DocsArgs {
                build: BuildArgs::default(),
                check: false
            }))
        );
        assert_eq!(
            parse(["ebbrt", "docs", "--check"]),
            Ok(Command::Docs(DocsArgs {
                build: BuildArgs::default(),
                check: true
            }))
        );
        assert_eq!(parse(["docs", "--help"]), Ok(Command::Help(DOCS_USAGE)));
        assert!(err(&["docs", "--check=yes"]).contains("takes no value"));
        assert!(
            err(&["docs", "--write"]).contains("unknown flag `--write` for `cargo ebbrt docs`")
        );
        assert!(err(&["docs", "out.md"]).contains("unexpected argument `out.md`"));
        assert!(err(&["docs", "--", "x"]).contains("no arguments after `--`"));
    }

    #[test]
    fn test_flags() {
        let t = test(&["test"]);
        assert_eq!(
            t,
            TestArgs {
                build: BuildArgs::default(),
                filter: None,
                no_host: false,
                no_qemu: false,
                timeout: DEFAULT_TEST_TIMEOUT,
                host_timeout: DEFAULT_HOST_TIMEOUT,
                verbose: false,
                fuzz: DEFAULT_FUZZ,
            }
        );
        assert_eq!(test(&["test", "--fuzz", "0"]).fuzz, Duration::ZERO);
        assert_eq!(test(&["test", "--fuzz=30"]).fuzz, Duration::from_secs(30));
        assert!(err(&["test", "--fuzz", "long"]).contains("--fuzz must be"));
        let t = test(&[
            "test",
            "--filter",
            "qemu_exec",
            "--no-host",
            "--timeout=5",
            "-v",
        ]);
        assert_eq!(t.filter.as_deref(), Some("qemu_exec"));
        assert!(t.no_host && !t.no_qemu && t.verbose);
        assert_eq!(t.timeout, Duration::from_secs(5));
        let t = test(&["test", "--host-timeout", "60"]);
        assert_eq!(t.host_timeout, Duration::from_secs(60));
        assert!(err(&["test", "--host-timeout", "soon"]).contains("--host-timeout must be"));
        assert!(err(&["test", "qemu_exec"]).contains("did you mean `--filter qemu_exec`"));
        assert!(
            err(&["test", "--no-host", "--no-qemu", "--fuzz", "0"]).contains("nothing to test")
        );
        let fuzz_only = test(&["test", "--no-host", "--no-qemu"]);
        assert!(fuzz_only.no_host && fuzz_only.no_qemu && !fuzz_only.fuzz.is_zero());
        assert!(err(&["test", "--filter"]).contains("needs a value"));
        assert!(err(&["test", "--filter="]).contains("non-empty"));
        assert!(
            err(&["test", "--hosted"]).contains("unknown flag `--hosted` for `cargo ebbrt test`")
        );
    }
}
