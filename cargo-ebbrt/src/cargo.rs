//! What the tool asks cargo: the workspace (`cargo metadata`), native builds
//! (`-Zbuild-std` for `x86_64-ebbrt.json`, executables read from
//! `--message-format=json`), and the commands of hosted runs and host tests.
//!
//! The workspace is the framework's own or an application's (one made by
//! `cargo ebbrt new`, anywhere): `--manifest-path`, else cargo's search
//! from the current directory, finds it. Every cargo command runs in its
//! root (so its `.cargo/config.toml` applies); native builds enable JSON
//! target specs themselves (`-Zjson-target-spec`), so an application
//! without that config still builds. The target directory is cargo's own
//! choice (the workspace's `target/`, or `CARGO_TARGET_DIR`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::Error;
use crate::cli::BuildArgs;

/// File name of the native target specification, in the workspace root.
pub const TARGET_SPEC: &str = "x86_64-ebbrt.json";
/// Prefix of the names of in-QEMU test kernels.
pub const TEST_KERNEL_PREFIX: &str = "qemu";

/// The cargo that runs the tool (`$CARGO`), else `cargo` from PATH.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A cargo command for the workspace at `root`, run there.
///
/// Under rustup, the toolchain that runs the tool was chosen for the
/// directory it was started in: run from `/` with `--manifest-path`, that is
/// the default (stable) toolchain, not the nightly the application's
/// `rust-toolchain.toml` asks for. So when the workspace has a toolchain
/// file and nobody chose the toolchain explicitly (`cargo +nightly ...`,
/// `RUSTUP_TOOLCHAIN` set by the user), the command goes through rustup's
/// `cargo` proxy again, in `root`, to pick the workspace's toolchain.
pub fn cargo_command(root: &Path) -> Command {
    let has_file = ["rust-toolchain.toml", "rust-toolchain"]
        .iter()
        .any(|f| root.join(f).is_file());
    let source = std::env::var("RUSTUP_TOOLCHAIN_SOURCE").ok();
    let under_rustup = std::env::var_os("RUSTUP_HOME").is_some();
    let mut c = if has_file && under_rustup && reresolve_toolchain(source.as_deref()) {
        let mut c = Command::new("cargo");
        c.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE")
            .env_remove("CARGO");
        c
    } else {
        Command::new(cargo_program())
    };
    c.current_dir(root);
    c
}

/// Whether a toolchain rustup chose from `source` (its
/// `RUSTUP_TOOLCHAIN_SOURCE`) may be chosen again from the workspace's
/// directory: not when the user named it (`env`, `cli`).
fn reresolve_toolchain(source: Option<&str>) -> bool {
    !matches!(source, Some("env" | "cli"))
}

/// The workspace, as `cargo metadata --no-deps` describes it.
#[derive(Debug)]
pub struct Workspace {
    /// Its root directory.
    pub root: PathBuf,
    /// Whether it is the framework's own workspace (it has the facade and
    /// `ebbrt-core` as members), not an application's.
    pub framework: bool,
    /// Its member packages.
    pub packages: Vec<Package>,
    /// Applications under `examples/` that are workspaces of their own (an
    /// application outside the framework's workspace, e.g. one that turns
    /// the facade's defaults off): `cargo ebbrt test` runs their tests too.
    pub external: Vec<Package>,
}

/// A workspace member.
#[derive(Debug)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Package id, as in cargo's JSON messages.
    pub id: String,
    /// Directory of its Cargo.toml.
    pub dir: PathBuf,
    /// Its targets: (name, kinds).
    pub targets: Vec<(String, Vec<String>)>,
    /// Its Cargo features, `default` first when it has one, then by name:
    /// (name, what it enables).
    pub features: Vec<(String, Vec<String>)>,
}

/// A test kernel: an integration test named `qemu*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestKernel {
    /// The package that has it.
    pub package: String,
    /// The test target's name.
    pub name: String,
    /// A feature of the package to build it with (besides the defaults).
    pub feature: Option<String>,
}

impl TestKernel {
    /// `package/name`, or `package/name[feature]`, as the tool prints it.
    pub fn label(&self) -> String {
        match &self.feature {
            Some(f) => format!("{}/{}[{f}]", self.package, self.name),
            None => format!("{}/{}", self.package, self.name),
        }
    }

    /// Boot arguments the kernel needs: `expect.feature=F` when built with
    /// a feature (so it can check that feature's components are live).
    pub fn append(&self) -> String {
        self.feature
            .as_ref()
            .map_or(String::new(), |f| format!("expect.feature={f}"))
    }
}

/// The facade package, and its test kernel that `cargo ebbrt test` builds
/// once per facade feature.
pub const FACADE: &str = "ebbrt";
/// See [`FACADE`].
pub const COMPONENTS_KERNEL: &str = "qemu_components";

impl Workspace {
    /// Runs `cargo metadata` for `--manifest-path` (or from the current
    /// directory), and in the framework's workspace for each application
    /// under `examples/` that is a workspace of its own.
    pub fn load(build: &BuildArgs) -> Result<Workspace, Error> {
        if let Some(m) = &build.manifest_path
            && !m.is_file()
        {
            return Err(Error::Usage(format!(
                "--manifest-path {}: no such file",
                m.display()
            )));
        }
        let mut ws = Workspace::from_metadata(&metadata(build.manifest_path.as_deref())?)
            .ok_or_else(|| Error::Tool("unexpected `cargo metadata` output".into()))?;
        if let Some(p) = &build.package
            && ws.package(p).is_none()
        {
            let names: Vec<&str> = ws.packages.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "there is no package `{p}` in the workspace at {}; its packages are: {}",
                ws.root.display(),
                names.join(", ")
            )));
        }
        if !ws.framework {
            return Ok(ws);
        }
        let mut external = Vec::new();
        let dirs = std::fs::read_dir(ws.root.join("examples"))
            .into_iter()
            .flatten();
        for dir in dirs.flatten().map(|e| e.path()) {
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() || ws.packages.iter().any(|p| p.dir == dir) {
                continue;
            }
            let v = metadata(Some(&manifest))?;
            let app = Workspace::from_metadata(&v).ok_or_else(|| {
                Error::Tool(format!(
                    "unexpected `cargo metadata` output for {}",
                    manifest.display()
                ))
            })?;
            external.extend(app.packages);
        }
        external.sort_by(|a, b| a.name.cmp(&b.name));
        ws.external = external;
        Ok(ws)
    }

    /// The external application `k` belongs to, if it is one.
    fn external_package(&self, package: &str) -> Option<&Package> {
        self.external.iter().find(|p| p.name == package)
    }

    /// Where every build of the tool goes: `CARGO_TARGET_DIR` if set, else
    /// the framework workspace's `target/` (shared with the external
    /// applications, so that they reuse the framework's compiled crates).
    fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| self.root.join("target"), PathBuf::from)
    }

    /// Where `cargo ebbrt test` builds fuzz targets (the fuzz directories
    /// are workspaces of their own): `fuzz` under the target directory.
    pub fn fuzz_target_dir(&self) -> PathBuf {
        self.target_dir().join("fuzz")
    }

    /// Whether a native build has compiled `core` for this profile yet
    /// (`-Zbuild-std` puts `libcore-*.rlib` among the target's deps): if
    /// not, the next native build compiles `core` and `alloc` first.
    pub fn native_core_built(&self, release: bool) -> bool {
        let profile = if release { "release" } else { "debug" };
        let deps = self
            .target_dir()
            .join("x86_64-ebbrt")
            .join(profile)
            .join("deps");
        std::fs::read_dir(deps)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("libcore-") && n.ends_with(".rlib"))
            })
    }

    /// What the tool says before a native build of `what`.
    pub fn native_build_note(&self, what: &str, release: bool) -> String {
        let first = if self.native_core_built(release) {
            ""
        } else {
            "; the first native build compiles `core` and `alloc` from rust-src too, \
             a minute or two"
        };
        format!("building {what} for the native target ({TARGET_SPEC}{first})")
    }

    /// `cargo test --manifest-path <app>/Cargo.toml --no-fail-fast` for each
    /// external application (with the shared target directory).
    pub fn external_host_test_commands(&self) -> Vec<(String, Command)> {
        self.external
            .iter()
            .map(|p| {
                let mut c = cargo_command(&self.root);
                c.env("CARGO_TARGET_DIR", self.target_dir())
                    .arg("test")
                    .arg("--manifest-path")
                    .arg(p.dir.join("Cargo.toml"))
                    .arg("--no-fail-fast");
                (p.name.clone(), c)
            })
            .collect()
    }

    /// Reads the JSON of `cargo metadata --format-version 1 --no-deps`.
    pub fn from_metadata(v: &Value) -> Option<Workspace> {
        let root = PathBuf::from(v.get("workspace_root")?.as_str()?);
        let members: Vec<&str> = v
            .get("workspace_members")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut packages = Vec::new();
        for p in v.get("packages")?.as_array()? {
            let id = p.get("id")?.as_str()?;
            if !members.contains(&id) {
                continue;
            }
            let manifest = Path::new(p.get("manifest_path")?.as_str()?);
            let mut targets = Vec::new();
            for t in p.get("targets")?.as_array()? {
                let kinds = t
                    .get("kind")?
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
                targets.push((t.get("name")?.as_str()?.to_string(), kinds));
            }
            let mut features: Vec<(String, Vec<String>)> = p
                .get("features")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let on = v.as_array().map_or(Vec::new(), |a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(String::from)
                                    .collect()
                            });
                            (k.clone(), on)
                        })
                        .collect()
                })
                .unwrap_or_default();
            features.sort_by_key(|(k, _)| (k != "default", k.clone()));
            packages.push(Package {
                name: p.get("name")?.as_str()?.to_string(),
                id: id.to_string(),
                dir: manifest.parent()?.to_path_buf(),
                targets,
                features,
            });
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let framework = [FACADE, "ebbrt-core"]
            .iter()
            .all(|n| packages.iter().any(|p| p.name == *n));
        Some(Workspace {
            root,
            framework,
            packages,
            external: Vec::new(),
        })
    }

    /// The applications: members with a binary (in the framework's own
    /// workspace, only those under `examples/`: the rest are tools).
    pub fn examples(&self) -> Vec<&Package> {
        let dir = self.root.join("examples");
        self.packages
            .iter()
            .filter(|p| {
                (!self.framework || p.dir.starts_with(&dir))
                    && p.targets.iter().any(|(_, k)| k.iter().any(|k| k == "bin"))
            })
            .collect()
    }

    /// The application called `name`, or a usage error listing them all.
    pub fn example(&self, name: &str) -> Result<&Package, Error> {
        let examples = self.examples();
        if let Some(p) = examples.iter().find(|p| p.name == name) {
            return Ok(p);
        }
        let what = if self.framework {
            "example"
        } else {
            "application (a package with a binary)"
        };
        Err(Error::Usage(format!(
            "there is no {what} called `{name}`; {}",
            self.list_applications()
        )))
    }

    /// "the examples are: a, b" (or "the applications are: ...").
    fn list_applications(&self) -> String {
        let list: Vec<&str> = self.examples().iter().map(|p| p.name.as_str()).collect();
        let list = if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        };
        if self.framework {
            format!("the examples are: {list}")
        } else {
            format!("the applications are: {list}")
        }
    }

    /// The application to run: `name`, else the one whose directory holds
    /// `cwd`, else the workspace's only one.
    pub fn application(&self, name: Option<&str>, cwd: &Path) -> Result<&Package, Error> {
        if let Some(name) = name {
            return self.example(name);
        }
        let apps = self.examples();
        if let Some(p) = apps
            .iter()
            .filter(|p| cwd.starts_with(&p.dir))
            .max_by_key(|p| p.dir.components().count())
        {
            return Ok(p);
        }
        match apps.as_slice() {
            [one] => Ok(one),
            _ => Err(Error::Usage(format!(
                "which application? Name one (`cargo ebbrt run NAME` or -p NAME), or run \
                 from its directory; {}",
                self.list_applications()
            ))),
        }
    }

    /// The native target specification, in the workspace root.
    pub fn target_spec(&self) -> Result<PathBuf, Error> {
        let spec = self.root.join(TARGET_SPEC);
        if spec.is_file() {
            return Ok(spec);
        }
        Err(Error::Usage(format!(
            "no native target specification at {}: copy {TARGET_SPEC} from the framework's \
             checkout into the workspace root (`cargo ebbrt new` writes one)",
            spec.display()
        )))
    }

    /// Every test kernel of the workspace (of `only` if given), in package
    /// then name order.
    pub fn test_kernels(&self, only: Option<&str>) -> Vec<TestKernel> {
        let mut out = Vec::new();
        let packages = self.packages.iter().chain(&self.external);
        for p in packages.filter(|p| only.is_none_or(|o| o == p.name)) {
            for (name, kinds) in &p.targets {
                if name.starts_with(TEST_KERNEL_PREFIX) && kinds.iter().any(|k| k == "test") {
                    out.push(TestKernel {
                        package: p.name.clone(),
                        name: name.clone(),
                        feature: None,
                    });
                    if p.name == FACADE && name == COMPONENTS_KERNEL {
                        out.extend(p.alternative_features().map(|f| TestKernel {
                            package: p.name.clone(),
                            name: name.clone(),
                            feature: Some(f.to_string()),
                        }));
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.package, &a.name, &a.feature).cmp(&(&b.package, &b.name, &b.feature))
        });
        out
    }

    fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    fn any_package(&self, name: &str) -> Option<&Package> {
        self.package(name).or_else(|| self.external_package(name))
    }

    /// `cargo <verb> ... --target <root>/x86_64-ebbrt.json -Zbuild-std ...`
    fn native_command(&self, verb: &[&str], release: bool) -> Command {
        let mut c = cargo_command(&self.root);
        c.args(verb);
        if release {
            c.arg("--release");
        }
        c.arg("--target")
            .arg(self.root.join(TARGET_SPEC))
            .args([
                "-Zjson-target-spec",
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
            ])
            .arg("--message-format=json-render-diagnostics");
        c
    }

    /// Builds an application for the native target; returns its ELF image.
    pub fn build_native_example(&self, pkg: &Package, b: &BuildArgs) -> Result<Built, Error> {
        self.target_spec()?;
        let bin = example_bin(pkg)?;
        let mut c = self.native_command(&["build", "-p", &pkg.name, "--bin", bin], b.release);
        with_features(&mut c, b);
        let what = format!("native build of `{}`", pkg.name);
        run_for_executable(&mut c, &what, |m| is_bin_of(m, pkg, bin))
    }

    /// Builds an application for the host; returns its executable.
    pub fn build_hosted_example(&self, pkg: &Package, b: &BuildArgs) -> Result<Built, Error> {
        let bin = example_bin(pkg)?;
        let mut c = self.hosted_build_command(pkg, bin, b.release);
        with_features(&mut c, b);
        let what = format!("hosted build of `{}`", pkg.name);
        run_for_executable(&mut c, &what, |m| is_bin_of(m, pkg, bin))
    }

    /// `cargo build -p <example> --bin <bin> [--release]
    /// --message-format=json-render-diagnostics`.
    fn hosted_build_command(&self, pkg: &Package, bin: &str, release: bool) -> Command {
        let mut c = cargo_command(&self.root);
        c.args(["build", "-p", &pkg.name, "--bin", bin]);
        if release {
            c.arg("--release");
        }
        c.arg("--message-format=json-render-diagnostics");
        c
    }

    /// Builds a test kernel for the native target; returns its ELF image.
    pub fn build_native_test_kernel(&self, k: &TestKernel, b: &BuildArgs) -> Result<Built, Error> {
        self.target_spec()?;
        let pkg = self.any_package(&k.package).ok_or_else(|| {
            Error::Tool(format!("package `{}` is not in the workspace", k.package))
        })?;
        let verb = ["test", "--no-run", "-p", &k.package, "--test", &k.name];
        let mut c = self.native_command(&verb, b.release);
        let mut features = b.features.clone();
        features.extend(k.feature.clone());
        with_features(
            &mut c,
            &BuildArgs {
                features,
                no_default_features: b.no_default_features,
                ..BuildArgs::default()
            },
        );
        if self.external_package(&k.package).is_some() {
            c.arg("--manifest-path")
                .arg(pkg.dir.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", self.target_dir());
        }
        let what = format!("native build of test kernel `{}`", k.label());
        run_for_executable(&mut c, &what, |m| {
            m.package_id == pkg.id && m.target_name == k.name && m.test
        })
    }

    /// Builds an example target of a member package for the host (as
    /// `cargo build -p <package> --example <name>`); returns its executable.
    pub fn build_host_example(&self, package: &str, example: &str) -> Result<Built, Error> {
        let pkg = self
            .package(package)
            .ok_or_else(|| Error::Tool(format!("package `{package}` is not in the workspace")))?;
        let mut c = cargo_command(&self.root);
        c.args([
            "build",
            "-p",
            package,
            "--example",
            example,
            "--message-format=json-render-diagnostics",
        ]);
        let what = format!("build of the example `{example}` of `{package}`");
        run_for_executable(&mut c, &what, |m| {
            m.package_id == pkg.id
                && m.target_name == example
                && m.kinds.iter().any(|k| k == "example")
                && !m.test
        })
    }

    /// `<exe> --cores N [-- <app args>]` (an example built by
    /// [`Self::build_hosted_example`]), run in the workspace root with
    /// `EBBRT_ARGS` set to the boot arguments. The hosted runtime takes its
    /// own flags before the `--` and hands the rest to the application
    /// verbatim.
    pub fn hosted_run_command(
        &self,
        exe: &Path,
        cores: u32,
        append: &str,
        app_args: &[String],
    ) -> Command {
        let mut c = Command::new(exe);
        c.current_dir(&self.root)
            .args(["--cores", &cores.to_string()]);
        if !app_args.is_empty() {
            c.arg("--").args(app_args);
        }
        if !append.is_empty() {
            c.env("EBBRT_ARGS", append);
        }
        c
    }

    /// `cargo test --workspace --no-fail-fast` (or `-p <package>`), with
    /// the build options.
    pub fn host_test_command(&self, b: &BuildArgs) -> Command {
        let mut c = cargo_command(&self.root);
        c.arg("test");
        match &b.package {
            Some(p) => c.args(["-p", p]),
            None => c.arg("--workspace"),
        };
        c.arg("--no-fail-fast");
        if b.release {
            c.arg("--release");
        }
        with_features(&mut c, b);
        c
    }
}

impl Package {
    /// The features that are not on by default (nor `default` itself): the
    /// facade's alternatives, each of which `cargo ebbrt test` selects on
    /// its own.
    pub fn alternative_features(&self) -> impl Iterator<Item = &str> {
        let defaults: &[String] = self
            .features
            .iter()
            .find(|(k, _)| k == "default")
            .map_or(&[], |(_, on)| on.as_slice());
        self.features
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(move |k| *k != "default" && !defaults.iter().any(|d| d == k))
    }
}

/// Adds `--features a,b` and `--no-default-features` to a cargo command,
/// as asked.
fn with_features(c: &mut Command, b: &BuildArgs) {
    if !b.features.is_empty() {
        c.arg("--features").arg(b.features.join(","));
    }
    if b.no_default_features {
        c.arg("--no-default-features");
    }
}

/// `cargo metadata --format-version 1 --no-deps`, of the workspace of the
/// current directory or of `manifest`.
fn metadata(manifest: Option<&Path>) -> Result<Value, Error> {
    let mut c = Command::new(cargo_program());
    c.args(["metadata", "--format-version", "1", "--no-deps"]);
    if let Some(m) = manifest {
        c.arg("--manifest-path").arg(m);
    }
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Tool(format!("cannot run `cargo metadata`: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(match manifest {
            None => "`cargo metadata` failed (see above): run the tool inside an application's \
                     workspace (or the framework's), or name one with --manifest-path"
                .into(),
            Some(m) => format!("`cargo metadata` failed for {} (see above)", m.display()),
        }));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Tool(format!("cannot read `cargo metadata` output: {e}")))
}

/// The binary of an example that `cargo ebbrt run` runs: its only one, or
/// the one named after it.
fn example_bin(pkg: &Package) -> Result<&str, Error> {
    let bins: Vec<&str> = pkg
        .targets
        .iter()
        .filter(|(_, k)| k.iter().any(|k| k == "bin"))
        .map(|(n, _)| n.as_str())
        .collect();
    match bins.as_slice() {
        [one] => Ok(*one),
        _ if bins.contains(&pkg.name.as_str()) => Ok(pkg.name.as_str()),
        _ => Err(Error::Tool(format!(
            "example `{}` has several binaries ({}) and none is named after it",
            pkg.name,
            bins.join(", ")
        ))),
    }
}

/// Whether `m` is the (non-test) binary `bin` of `pkg`.
fn is_bin_of(m: &Artifact, pkg: &Package, bin: &str) -> bool {
    m.package_id == pkg.id && m.target_name == bin && m.kinds.iter().any(|k| k == "bin") && !m.test
}

/// What a build produced: the executable asked for, and the packages
/// built into it (every `compiler-artifact` of the build).
#[derive(Debug)]
pub struct Built {
    /// The executable.
    pub exe: PathBuf,
    /// The ids of the packages built (fresh or not).
    pub packages: Vec<String>,
    /// The features each package was built with: (package id, features).
    pub features: Vec<(String, Vec<String>)>,
}

impl Built {
    /// Whether the package `name` was part of the build (its id names it:
    /// `...#name@version`, or `.../name#version` for a path package whose
    /// directory has its name).
    pub fn has_package(&self, name: &str) -> bool {
        self.packages.iter().any(|id| package_id_names(id, name))
    }

    /// The features the package `name` was built with (sorted; empty when
    /// it was not built).
    pub fn features_of(&self, name: &str) -> Vec<String> {
        let mut f: Vec<String> = self
            .features
            .iter()
            .filter(|(id, _)| package_id_names(id, name))
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        f.sort();
        f.dedup();
        f
    }
}

/// Whether a cargo package id names the package `name`.
pub(crate) fn package_id_names(id: &str, name: &str) -> bool {
    let Some((path, tail)) = id.rsplit_once('#') else {
        return false;
    };
    match tail.split_once('@') {
        Some((n, _)) => n == name,
        // `path+file:///x/name#0.1.0`: the directory names it.
        None => path.rsplit('/').next() == Some(name),
    }
}

/// The parts of a `compiler-artifact` message the tool looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct Artifact {
    /// `package_id`.
    pub package_id: String,
    /// `target.name`.
    pub target_name: String,
    /// `target.kind`.
    pub kinds: Vec<String>,
    /// `profile.test`: built with the test harness configuration.
    pub test: bool,
    /// `executable` (none for a library).
    pub executable: Option<PathBuf>,
    /// `features`: the package's features in this build.
    pub features: Vec<String>,
}

/// Reads one line of `--message-format=json` output; `Some` for a
/// `compiler-artifact` message.
pub fn parse_artifact(line: &str) -> Option<Artifact> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = v.get("target")?;
    Some(Artifact {
        package_id: v.get("package_id")?.as_str()?.to_string(),
        target_name: target.get("name")?.as_str()?.to_string(),
        kinds: target
            .get("kind")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        test: v.get("profile")?.get("test")?.as_bool()?,
        executable: v
            .get("executable")
            .and_then(Value::as_str)
            .map(PathBuf::from),
        features: v
            .get("features")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Runs a build whose stdout is cargo's JSON messages (stderr goes to the
/// terminal) and returns the one executable `wanted` picks.
fn run_for_executable(
    c: &mut Command,
    what: &str,
    wanted: impl Fn(&Artifact) -> bool,
) -> Result<Built, Error> {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Tool(format!("{what}: cannot run cargo: {e}")))?;
    let mut found = None;
    let mut packages = Vec::new();
    let mut features = Vec::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Some(a) = parse_artifact(&line) else {
            continue;
        };
        if a.executable.is_some() && wanted(&a) {
            found = a.executable.clone();
        }
        if !a.features.is_empty() {
            features.push((a.package_id.clone(), a.features));
        }
        if !packages.contains(&a.package_id) {
            packages.push(a.package_id);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::Tool(format!("{what}: {e}")))?;
    if !status.success() {
        return Err(Error::Tool(format!(
            "{what} failed (cargo's messages are above)"
        )));
    }
    let exe = found.ok_or_else(|| Error::Tool(format!("{what}: cargo reported no executable")))?;
    Ok(Built {
        exe,
        packages,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"{
      "packages": [
        {"name": "hello", "id": "p:hello", "manifest_path": "/w/examples/hello/Cargo.toml",
         "targets": [{"name": "hello", "kind": ["bin"]}]},
        {"name": "ebbrt-core", "id": "p:core", "manifest_path": "/w/ebbrt-core/Cargo.toml",
         "targets": [{"name": "ebbrt_core", "kind": ["lib"]},
                     {"name": "qemu_exec", "kind": ["test"]},
                     {"name": "unit", "kind": ["test"]},
                     {"name": "qemu_bench", "kind": ["bench"]}]},
        {"name": "echo", "id": "p:echo", "manifest_path": "/w/examples/echo/Cargo.toml",
         "targets": [{"name": "echo", "kind": ["bin"]}, {"name": "qemu_echo", "kind": ["test"]}]},
        {"name": "notamember", "id": "registry+x#1", "manifest_path": "/w/examples/x/Cargo.toml",
         "targets": [{"name": "x", "kind": ["bin"]}]},
        {"name": "exlib", "id": "p:exlib", "manifest_path": "/w/examples/exlib/Cargo.toml",
         "targets": [{"name": "exlib", "kind": ["lib"]}]},
        {"name": "ebbrt", "id": "p:ebbrt", "manifest_path": "/w/ebbrt/Cargo.toml",
         "targets": [{"name": "ebbrt", "kind": ["lib"]},
                     {"name": "qemu_components", "kind": ["test"]}],
         "features": {"default": ["a", "c"], "a": ["dep:x"], "b": [], "c": [], "d": ["b"]}}
      ],
      "workspace_members": ["p:hello", "p:core", "p:echo", "p:exlib", "p:ebbrt"],
      "workspace_root": "/w"
    }"#;

    fn ws() -> Workspace {
        Workspace::from_metadata(&serde_json::from_str(METADATA).unwrap()).unwrap()
    }

    #[test]
    fn examples_are_members_with_a_binary_under_examples() {
        let w = ws();
        let names: Vec<&str> = w.examples().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["echo", "hello"]);
        assert_eq!(
            w.example("hello").unwrap().dir,
            Path::new("/w/examples/hello")
        );
        let Err(Error::Usage(msg)) = w.example("nope") else {
            panic!()
        };
        assert_eq!(
            msg,
            "there is no example called `nope`; the examples are: echo, hello"
        );
    }

    #[test]
    fn test_kernels_are_tests_named_qemu() {
        let labels: Vec<String> = ws()
            .test_kernels(None)
            .iter()
            .map(TestKernel::label)
            .collect();
        assert_eq!(
            labels,
            [
                "ebbrt/qemu_components",
                "ebbrt/qemu_components[b]",
                "ebbrt/qemu_components[d]",
                "ebbrt-core/qemu_exec",
                "echo/qemu_echo"
            ]
        );
        let facade = ws().test_kernels(None).into_iter().nth(2).unwrap();
        assert_eq!(facade.append(), "expect.feature=d");
        let w = ws();
        let p = w.packages.iter().find(|p| p.name == "ebbrt").unwrap();
        assert_eq!(
            p.features[0],
            (
                "default".to_string(),
                vec!["a".to_string(), "c".to_string()]
            )
        );
    }

    #[test]
    fn applications_outside_the_framework() {
        // An application's workspace: every member with a binary runs.
        let v: Value = serde_json::from_str(
            r#"{"packages": [
                {"name": "app", "id": "p:app", "manifest_path": "/a/Cargo.toml",
                 "targets": [{"name": "app", "kind": ["bin"]}, {"name": "qemu_app", "kind": ["test"]}]},
                {"name": "tool", "id": "p:tool", "manifest_path": "/a/tool/Cargo.toml",
                 "targets": [{"name": "tool", "kind": ["bin"]}]}
              ],
              "workspace_members": ["p:app", "p:tool"], "workspace_root": "/a"}"#,
        )
        .unwrap();
        let w = Workspace::from_metadata(&v).unwrap();
        assert!(!w.framework);
        assert!(ws().framework);
        let names: Vec<&str> = w.examples().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["app", "tool"]);
        // From a package's directory, that package; else it must be named.
        assert_eq!(
            w.application(None, Path::new("/a/tool/src")).unwrap().name,
            "tool"
        );
        assert_eq!(
            w.application(None, Path::new("/a/src")).unwrap().name,
            "app"
        );
        let Err(Error::Usage(m)) = w.application(None, Path::new("/elsewhere")) else {
            panic!()
        };
        assert!(m.contains("the applications are: app, tool"), "{m}");
        assert_eq!(
            w.application(Some("tool"), Path::new("/")).unwrap().name,
            "tool"
        );
        let labels: Vec<String> = w
            .test_kernels(Some("app"))
            .iter()
            .map(TestKernel::label)
            .collect();
        assert_eq!(labels, ["app/qemu_app"]);
        assert!(w.test_kernels(Some("tool")).is_empty());
        // The framework's one example is not picked for a bare `run`.
        assert!(ws().application(None, Path::new("/elsewhere")).is_err());
    }

    #[test]
    fn a_toolchain_is_chosen_again_unless_the_user_named_it() {
        for (source, again) in [
            (None, true),
            (Some("default"), true),
            (Some("toolchain-file"), true),
            (Some("override"), true),
            (Some("env"), false),
            (Some("cli"), false),
        ] {
            assert_eq!(reresolve_toolchain(source), again, "{source:?}");
        }
    }

    #[test]
    fn package_ids_name_their_package() {
        let b = Built {
            exe: "/x".into(),
            packages: vec![
                "path+file:///w/components/virtio-net#ebbrt-virtio-net@0.1.0".into(),
                "path+file:///w/ebbrt#0.1.0".into(),
                "registry+https://github.com/rust-lang/crates.io-index#spin@0.12.0".into(),
            ],
            features: vec![
                (
                    "path+file:///w/ebbrt#0.1.0".into(),
                    vec!["net".into(), "default".into()],
                ),
                ("path+file:///w/ebbrt#0.1.0".into(), vec!["net".into()]),
            ],
        };
        assert_eq!(b.features_of("ebbrt"), ["default", "net"]);
        assert!(b.features_of("spin").is_empty());
        assert!(b.has_package("ebbrt-virtio-net"));
        assert!(b.has_package("ebbrt"));
        assert!(b.has_package("spin"));
        assert!(!b.has_package("virtio-net"));
        assert!(!b.has_package("ebbrt-net"));
    }

    #[test]
    fn artifacts() {
        let line = concat!(
            r#"{"reason":"compiler-artifact","package_id":"p:hello","#,
            r#""target":{"kind":["bin"],"name":"hello"},"profile":{"test":false},"#,
            r#""executable":"/w/target/x86_64-ebbrt/debug/hello","fresh":true}"#
        );
        assert_eq!(
            parse_artifact(line),
            Some(Artifact {
                package_id: "p:hello".into(),
                target_name: "hello".into(),
                kinds: vec!["bin".into()],
                test: false,
                executable: Some("/w/target/x86_64-ebbrt/debug/hello".into()),
                features: vec![],
            })
        );
        let lib = concat!(
            r#"{"reason":"compiler-artifact","package_id":"p","#,
            r#""target":{"kind":["lib"],"name":"l"},"profile":{"test":false},"executable":null}"#
        );
        assert_eq!(parse_artifact(lib).unwrap().executable, None);
        assert_eq!(
            parse_artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(parse_artifact("not json"), None);
    }

    #[test]
    fn hosted_command() {
        let w = ws();
        let echo = w.example("echo").unwrap();
        let b = w.hosted_build_command(echo, example_bin(echo).unwrap(), true);
        let args: Vec<_> = b.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "build",
                "-p",
                "echo",
                "--bin",
                "echo",
                "--release",
                "--message-format=json-render-diagnostics"
            ]
        );
        assert_eq!(b.get_current_dir(), Some(Path::new("/w")));
        let c = w.hosted_run_command(
            Path::new("/w/target/release/echo"),
            3,
            "a=1",
            &["x".to_string()],
        );
        assert_eq!(c.get_program(), "/w/target/release/echo");
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["--cores", "3", "--", "x"]);
        let env: Vec<_> = c.get_envs().collect();
        assert_eq!(
            env,
            [(
                std::ffi::OsStr::new("EBBRT_ARGS"),
                Some(std::ffi::OsStr::new("a=1"))
            )]
        );
        assert_eq!(c.get_current_dir(), Some(Path::new("/w")));
    }

    #[test]
    fn native_command_line() {
        let w = ws();
        let c = w.native_command(&["build", "-p", "hello"], false);
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "build",
                "-p",
                "hello",
                "--target",
                "/w/x86_64-ebbrt.json",
                "-Zjson-target-spec",
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
                "--message-format=json-render-diagnostics"
            ]
        );
    }
}
