//! `cargo ebbrt new <DIR>`: a ready application in a new directory, its
//! own workspace, depending on the framework by path.
//!
//! What it writes is what the framework's own examples have, and no more:
//! the manifest, the toolchain file and target specification copied from
//! the framework's checkout (so the application builds with exactly the
//! toolchain and target the framework was tested with), the cargo
//! configuration that enables JSON target specifications, a `src/main.rs`
//! with a per-core Ebb, a test kernel with one `#[ebbrt::test]`, a README
//! and a `.gitignore`. The framework's `Cargo.lock` is copied too, so the
//! application starts from the dependency versions the framework was
//! tested with (cargo adds the application and drops what it does not use).

use std::path::{Path, PathBuf};

use crate::cargo::TARGET_SPEC;
use crate::cli::NewArgs;
use crate::{Error, note};

/// Files copied from the framework's checkout, as they are.
const COPIED: [&str; 3] = ["rust-toolchain.toml", TARGET_SPEC, "Cargo.lock"];

/// Runs the command; returns the status the tool exits with.
pub fn new(a: NewArgs) -> Result<i32, Error> {
    let framework = framework_dir(a.framework.as_deref())?;
    let name = package_name(&a.dir)?;
    if a.dir.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; `cargo ebbrt new` makes a new directory (choose another name)",
            a.dir.display()
        )));
    }
    let files = files(&name, &framework);
    write_all(&a.dir, &framework, &files)?;
    note(&format!(
        "created the application `{name}` in {} (the framework: {})",
        a.dir.display(),
        framework.display()
    ));
    note(&format!(
        "next: cd {} && cargo ebbrt run    (or: cargo ebbrt run --hosted, cargo ebbrt test, \
         cargo ebbrt docs, cargo run)",
        a.dir.display()
    ));
    Ok(0)
}

/// The framework's checkout: `--path`, else the one this tool was built
/// from; either must hold the facade (`ebbrt/Cargo.toml`).
fn framework_dir(given: Option<&Path>) -> Result<PathBuf, Error> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tool's crate is inside the framework's checkout")
            .to_path_buf(),
    };
    let facade = dir.join("ebbrt").join("Cargo.toml");
    if !facade.is_file() {
        let fix = match given {
            Some(_) => "--path must name the framework's checkout (the directory that has \
                        ebbrt/, ebbrt-core/ and x86_64-ebbrt.json)"
                .to_string(),
            None => "the checkout this tool was built from has moved; name it with \
                     --path <FRAMEWORK>"
                .to_string(),
        };
        return Err(Error::Usage(format!(
            "no framework at {} (no {}): {fix}",
            dir.display(),
            facade.display()
        )));
    }
    dir.canonicalize()
        .map_err(|e| Error::Tool(format!("cannot resolve {}: {e}", dir.display())))
}

/// The package name: the directory's last component, which must be a
/// valid crate name.
fn package_name(dir: &Path) -> Result<String, Error> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Usage(format!("{} names no directory", dir.display())))?;
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !valid {
        return Err(Error::Usage(format!(
            "`{name}` cannot name a package: use letters, digits, `-` and `_`, starting \
             with a letter"
        )));
    }
    if matches!(
        name,
        "ebbrt" | "ebbrt-core" | "ebbrt-std" | "ebbrt-macros" | "test" | "core" | "alloc" | "std"
    ) {
        return Err(Error::Usage(format!(
            "`{name}` is the name of a crate the application depends on; choose another"
        )));
    }
    Ok(name.to_string())
}

/// The files written (path relative to the new directory, contents).
fn files(name: &str, framework: &Path) -> Vec<(&'static str, String)> {
    let facade = framework.join("ebbrt");
    vec![
        ("Cargo.toml", manifest(name, &facade)),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        ("src/main.rs", MAIN_RS.to_string()),
        ("tests/qemu_app.rs", TEST_RS.to_string()),
        ("README.md", readme(name, framework)),
        (".gitignore", "/target\n".to_string()),
    ]
}

/// Creates `dir` and writes everything; on an error, removes what it made.
fn write_all(dir: &Path, framework: &Path, files: &[(&str, String)]) -> Result<(), Error> {
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (rel, text) in files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
        }
        for rel in COPIED {
            std::fs::copy(framework.join(rel), dir.join(rel))?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_dir_all(dir);
        Error::Tool(format!(
            "cannot write the application in {}: {e}",
            dir.display()
        ))
    })
}

fn manifest(name: &str, facade: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# The application is a workspace of its own, wherever it lives.
[workspace]

[dependencies]
# The framework, by path. Its Cargo features select system components (the
# menu, with what each one links, is the framework's docs/components.md):
# e.g. `features = ["idle-poll"]`, or `features = ["net"]` for the network
# stack and a NIC. `default-features = false` and your own implementation at
# a service's id replaces a component (docs/architecture.md, "Replacing a
# component").
ebbrt = {{ path = "{facade}" }}

# A test kernel: `#[ebbrt::test]` functions, run hosted by `cargo test` and
# booted under QEMU by `cargo ebbrt test` (its name starts with `qemu`).
[[test]]
name = "qemu_app"
harness = false

[profile.release]
debug = 1
panic = "abort"
"#,
        facade = facade.display()
    )
}

const CARGO_CONFIG: &str = r#"# The native target is a JSON target specification (x86_64-ebbrt.json),
# which nightly cargo accepts only with this flag. `cargo ebbrt` passes it
# itself; this makes plain `cargo build --target x86_64-ebbrt.json ...` work
# too.
[unstable]
json-target-spec = true
"#;

const MAIN_RS: &str = r#"//! An EbbRT application: the same source runs natively (`cargo ebbrt run`,
//! a library OS booted under QEMU) and hosted (`cargo ebbrt run --hosted`,
//! or `cargo run`: a Linux process).
//!
//! `Counter` is a per-core Ebb: each core has its own representative,
//! created the first time that core uses it, and counts without atomics
//! (a representative never leaves its core). `main` runs a task on every
//! core, then adds the counts up through the Ebb's root.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::cell::Cell;

use ebbrt::EbbRef;
use ebbrt::cpu;
use ebbrt::ebb::ids;

/// Counts what happened on its core.
#[ebbrt::ebb(per_core, id = ids::app(0))]
#[derive(Default)]
pub struct Counter {
    count: Cell<u64>,
}

impl Counter {
    /// Adds one to this core's count.
    fn bump(&self) {
        self.count.set(self.count.get() + 1);
    }
}

/// The counter, at its well-known id.
static COUNTER: EbbRef<Counter> = EbbRef::fixed();

#[ebbrt::main]
async fn main() -> i32 {
    ebbrt::on_each_core(|core| async move {
        ebbrt::println!("hello from core {} of {}", core.0, cpu::count());
        for _ in 0..=core.0 {
            COUNTER.bump();
        }
    })
    .await;
    let counts = COUNTER.root().gather(|rep| rep.count.get()).await;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    ebbrt::println!("{total} bumps on {} cores", counts.len());
    let n = cpu::count() as u64;
    if total == n * (n + 1) / 2 { 0 } else { 1 }
}
"#;

const TEST_RS: &str = r#"//! A test kernel: every `#[ebbrt::test]` here runs hosted under `cargo test`
//! and natively, booted under QEMU, under `cargo ebbrt test`.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::cell::Cell;

use ebbrt::cpu::{self, CoreId};
use ebbrt::ebb::ids;
use ebbrt::{EbbRef, spawn_on};

/// One count per core.
#[ebbrt::ebb(per_core, id = ids::app(0))]
#[derive(Default)]
struct Tally {
    count: Cell<u32>,
}

static TALLY: EbbRef<Tally> = EbbRef::fixed();

#[ebbrt::test]
async fn every_core_has_its_own_representative() {
    let last = CoreId(cpu::count() as u32 - 1);
    TALLY.count.set(TALLY.count.get() + 1);
    spawn_on(last, async { TALLY.count.set(TALLY.count.get() + 10) }).await;
    let counts = TALLY.root().gather(|rep| rep.count.get()).await;
    let total: u32 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 11);
    if last.0 > 0 {
        assert_eq!(TALLY.count.get(), 1, "core 0's representative is its own");
    }
}

ebbrt::test_main!();
"#;

fn readme(name: &str, framework: &Path) -> String {
    format!(
        r#"# {name}

An EbbRT application (the framework: {framework}).

    cargo ebbrt run             # native: boots the library OS under QEMU
    cargo ebbrt run --hosted    # hosted: a Linux process (or plain `cargo run`)
    cargo ebbrt test            # the tests, hosted and booted under QEMU
    cargo ebbrt docs            # docs/components.md: this application's components

`src/main.rs` declares a per-core Ebb; `tests/qemu_app.rs` is a test kernel
(`#[ebbrt::test]` functions). Components are chosen with the `ebbrt`
dependency's features in `Cargo.toml`, or for one run with
`cargo ebbrt run --features ebbrt/idle-poll`. `cargo ebbrt run --help` lists
the rest (cores, memory, boot arguments, networking, `--gdb`).
"#,
        framework = framework.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(package_name(Path::new("/tmp/my-app")).unwrap(), "my-app");
        assert_eq!(package_name(Path::new("x_1")).unwrap(), "x_1");
        for bad in ["1app", "my app", "a.b", "ebbrt", "-x"] {
            assert!(
                matches!(package_name(Path::new(bad)), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_framework_is_this_checkout() {
        let dir = framework_dir(None).unwrap();
        assert!(dir.join("ebbrt-core").is_dir());
        let Err(Error::Usage(m)) = framework_dir(Some(Path::new("/nonexistent"))) else {
            panic!()
        };
        assert!(
            m.contains("--path must name the framework's checkout"),
            "{m}"
        );
    }

    #[test]
    fn writes_a_ready_application_and_refuses_an_existing_directory() {
        let base = std::env::temp_dir().join(format!("ebbrt-new-test-{}", std::process::id()));
        let dir = base.join("demo-app");
        let code = new(NewArgs {
            dir: dir.clone(),
            framework: None,
        })
        .unwrap();
        assert_eq!(code, 0);
        for f in [
            "Cargo.toml",
            "Cargo.lock",
            "rust-toolchain.toml",
            TARGET_SPEC,
            ".cargo/config.toml",
            "src/main.rs",
            "tests/qemu_app.rs",
            "README.md",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"demo-app\""), "{manifest}");
        let facade = framework_dir(None).unwrap().join("ebbrt");
        assert!(
            manifest.contains(&format!("ebbrt = {{ path = \"{}\" }}", facade.display())),
            "{manifest}"
        );
        let again = new(NewArgs {
            dir: dir.clone(),
            framework: None,
        });
        assert!(matches!(again, Err(Error::Usage(m)) if m.contains("already exists")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
