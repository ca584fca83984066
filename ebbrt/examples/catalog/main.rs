//! The component catalog program: links every component crate into one
//! hosted program and renders the records they leave in
//! `ebbrt::registry::COMPONENTS` as `docs/components.md`.
//!
//! It also reads the facade's manifest (`ebbrt/Cargo.toml`): its feature
//! menu, documented there with `##` comments, and where it links each crate
//! (`manifest`). Every feature a record names must be in that menu.
//!
//! - `cargo run -p ebbrt --example catalog` prints the catalog
//!   (`cargo ebbrt docs` runs this and writes the file);
//! - `... -- --check docs/components.md` exits with status 1 and a short
//!   diff when that file is stale (`cargo ebbrt docs --check`);
//! - its test `catalog_is_fresh` does the same check under `cargo test`
//!   (`test = true` in ebbrt/Cargo.toml), so the host tests of
//!   `cargo ebbrt test` fail on a stale catalog.
//!
//! Adding a component crate: a dev-dependency in ebbrt/Cargo.toml and its
//! name in [`linked!`] below. Forgetting is an error that names the crate:
//! every package under `components/` must be linked here.
//!
//! It never starts a runtime: alternatives at one fixed id (the two
//! general-purpose allocators, the consoles, the idle policies) are all
//! linked here, which a runtime's id check refuses; so it does not call
//! `check_static_ids`.

mod manifest;
mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Links each crate (`use <crate> as _`: an unreferenced dependency would
/// not be linked, and neither would its records) and lists their names.
macro_rules! linked {
    ($($krate:ident),* $(,)?) => {
        $(use $krate as _;)*
        /// The crates linked for their records, besides the facade itself
        /// (`ebbrt-core`, the hosted runtime, the default allocators).
        const LINKED: &[&str] = &[$(stringify!($krate)),*];
    };
}

linked![
    ebbrt_console_debugcon,
    ebbrt_console_stdout,
    ebbrt_console_uart,
    ebbrt_fs_offload,
    ebbrt_global_id_map,
    ebbrt_gp_alloc,
    ebbrt_idle_halt,
    ebbrt_idle_poll,
    ebbrt_messenger,
    ebbrt_net,
    ebbrt_node_allocator,
    ebbrt_page_alloc,
    ebbrt_rcu,
    ebbrt_rcu_hashtable,
    ebbrt_slab_alloc,
    ebbrt_talc_alloc,
    ebbrt_virtio_net,
];

/// The workspace root (the facade's parent directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the facade is inside the workspace")
        .to_path_buf()
}

/// The `name` in the `[package]` table of a Cargo.toml.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            let value = value.trim();
            return Some(value.strip_prefix('"')?.strip_suffix('"')?.to_string());
        }
    }
    None
}

/// The packages under `<root>/components/`: name and manifest text,
/// sorted by name.
fn component_packages(root: &Path) -> Result<Vec<(String, String)>, String> {
    let dir = root.join("components");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path()
            .join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not a crate
        };
        let name = package_name(&text)
            .ok_or_else(|| format!("{}: no `name` in its [package] table", path.display()))?;
        names.push((name, text));
    }
    names.sort();
    Ok(names)
}

/// The facade's manifest, read with the component crates' manifests.
fn facade(components: &[(String, String)]) -> Result<manifest::Facade, String> {
    let path = workspace_root().join("ebbrt/Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    manifest::Facade::parse(&text, components)
}

/// The catalog of the records linked into this program, after checking that
/// every component crate is linked and that alternatives name their default.
fn catalog() -> Result<String, String> {
    let records = ebbrt::registry::COMPONENTS.to_vec();
    let components = component_packages(&workspace_root())?;
    let facade = facade(&components)?;
    let packages: Vec<String> = components.into_iter().map(|(name, _)| name).collect();
    let missing: Vec<&String> = packages
        .iter()
        .filter(|p| !LINKED.contains(&p.replace('-', "_").as_str()))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| format!("`{p}`")).collect();
        return Err(format!(
            "component crates not linked into the catalog program: {}; add each as a \
             dev-dependency in ebbrt/Cargo.toml and to `linked![...]` in ebbrt/examples/catalog/main.rs",
            list.join(", ")
        ));
    }
    render::check_alternatives(&records, &facade)?;
    render::check_features(&records, &facade)?;
    let unrecorded: Vec<String> = packages
        .into_iter()
        .filter(|p| !records.iter().any(|r| r.crate_name == p))
        .collect();
    Ok(render::render(&records, &unrecorded, &facade))
}

/// `--check FILE`: compares FILE with the catalog.
fn check(file: &str) -> Result<(), String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {file}: {e}")),
    };
    render::compare(file, text.as_deref(), &catalog()?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => catalog().map(|c| print!("{c}")),
        [flag, file] if flag == "--check" => check(file),
        _ => {
            eprintln!("usage: catalog [--check FILE]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebbrt::ebb::ids;
    use ebbrt::registry::ComponentRecord;

    fn find(name: &str) -> &'static ComponentRecord {
        ebbrt::registry::find(name).unwrap_or_else(|| panic!("no record of {name} was linked"))
    }

    /// Fails when docs/components.md is not what `cargo ebbrt docs` writes.
    #[test]
    fn catalog_is_fresh() {
        let path = workspace_root().join("docs/components.md");
        let text = std::fs::read_to_string(&path).ok();
        if let Err(e) = render::compare("docs/components.md", text.as_deref(), &catalog().unwrap())
        {
            panic!("{e}");
        }
    }

    #[test]
    fn records_of_crates_linked_only_here_are_collected() {
        for (name, krate) in [
            ("IdAllocator", "ebbrt-core"),
            ("PageAllocator", "ebbrt-page-alloc"),
            ("SlabAllocator", "ebbrt-slab-alloc"),
            ("GpAllocator", "ebbrt-gp-alloc"),
            ("TalcAllocator", "ebbrt-talc-alloc"),
            ("NetworkManager", "ebbrt-net"),
            ("VirtioNet", "ebbrt-virtio-net"),
            ("UartConsole", "ebbrt-console-uart"),
            ("DebugconConsole", "ebbrt-console-debugcon"),
            ("StdoutConsole", "ebbrt-console-stdout"),
            ("HaltWhenIdle", "ebbrt-idle-halt"),
            ("PollWhenIdle", "ebbrt-idle-poll"),
        ] {
            assert_eq!(find(name).crate_name, krate);
        }
    }

    #[test]
    fn the_general_purpose_allocators_are_alternatives() {
        let (gp, talc) = (find("GpAllocator"), find("TalcAllocator"));
        assert_eq!(
            (gp.id, talc.id),
            (Some(ids::GP_ALLOCATOR), Some(ids::GP_ALLOCATOR))
        );
        assert_eq!((gp.feature, gp.default), (Some("gp-slab"), true));
        assert_eq!((talc.feature, talc.default), (Some("talc"), false));
        assert_eq!(gp.interface, talc.interface);
        assert_eq!(gp.interface, "ebbrt_core::memory::GeneralPurposeAllocator");
        let catalog = catalog().unwrap();
        assert!(catalog.contains(
            "- `GP_ALLOCATOR` (5), interface `ebbrt_core::memory::GeneralPurposeAllocator`: \
             `GpAllocator` (default, feature `gp-slab`), `TalcAllocator` (feature `talc`)\n"
        ));
    }

    #[test]
    fn the_consoles_are_alternatives_per_runtime() {
        for name in ["UartConsole", "DebugconConsole", "StdoutConsole"] {
            let r = find(name);
            assert_eq!(r.id, Some(ids::CONSOLE), "{name}");
            assert_eq!(r.interface, "ebbrt_core::console::Console", "{name}");
        }
        // The serial console's feature is the default on both runtimes: the
        // UART natively, stdout hosted.
        assert_eq!(
            (find("UartConsole").feature, find("UartConsole").default),
            (Some("console-serial"), true)
        );
        assert_eq!(
            (find("StdoutConsole").feature, find("StdoutConsole").default),
            (Some("console-serial"), true)
        );
        let catalog = catalog().unwrap();
        assert!(
            catalog.contains(
                "- `CONSOLE` (2), interface `ebbrt_core::console::Console`: \
                 `StdoutConsole` (default, features `console-serial`, `console-debugcon`, hosted), \
                 `UartConsole` (default, feature `console-serial`, native), \
                 `DebugconConsole` (feature `console-debugcon`, native)\n"
            ),
            "{catalog}"
        );
        assert!(catalog.contains(
            "| `console-serial` | yes | [StdoutConsole](#stdoutconsole) (hosted), \
             [UartConsole](#uartconsole) (native) | Console: the platform's own"
        ));
    }

    #[test]
    fn the_idle_policies_are_alternatives() {
        let (halt, poll) = (find("HaltWhenIdle"), find("PollWhenIdle"));
        assert_eq!(
            (halt.id, poll.id),
            (Some(ids::IDLE_POLICY), Some(ids::IDLE_POLICY))
        );
        assert_eq!((halt.feature, halt.default), (Some("idle-halt"), true));
        assert_eq!((poll.feature, poll.default), (Some("idle-poll"), false));
        let catalog = catalog().unwrap();
        assert!(catalog.contains(
            "- `IDLE_POLICY` (13), interface `ebbrt_core::exec::IdlePolicy`: \
             `HaltWhenIdle` (default, feature `idle-halt`), `PollWhenIdle` (feature `idle-poll`)\n"
        ));
    }

    #[test]
    fn the_facade_menu_documents_every_feature() {
        let facade = facade(&component_packages(&workspace_root()).unwrap()).unwrap();
        let names: Vec<&str> = facade.features.iter().map(|f| f.name.as_str()).collect();
        for f in [
            "gp-slab",
            "talc",
            "console-serial",
            "console-debugcon",
            "idle-halt",
            "idle-poll",
        ] {
            assert!(names.contains(&f), "{f} is not in {names:?}");
        }
        for f in &facade.features {
            assert!(
                !f.docs.trim().is_empty(),
                "feature `{}` has no `##` docs",
                f.name
            );
        }
        assert_eq!(facade.default, ["gp-slab", "console-serial", "idle-halt"]);
        assert_eq!(
            facade.runtimes("ebbrt-console-uart"),
            manifest::Runtimes::NATIVE
        );
        assert_eq!(
            facade.runtimes("ebbrt-console-stdout"),
            manifest::Runtimes::HOSTED
        );
        assert_eq!(
            facade.runtimes("ebbrt-slab-alloc"),
            manifest::Runtimes::BOTH
        );
        // Every record's feature is in the menu, on by default iff the record
        // is the default.
        render::check_features(ebbrt::registry::COMPONENTS.as_ref(), &facade).unwrap();
    }

    #[test]
    fn interfaces_are_named() {
        let catalog = catalog().unwrap();
        assert!(catalog.contains(
            "| [PageAllocator](#pageallocator) | *itself* | shared | `PAGE_ALLOCATOR` (3) | both |"
        ));
        assert!(catalog.contains(
            "| [UartConsole](#uartconsole) | `ebbrt_core::console::Console` | shared | `CONSOLE` (2) | native |"
        ));
        assert!(
            catalog.contains("- interface: the type itself, `ebbrt_page_alloc::PageAllocator`\n")
        );
    }

    #[test]
    fn every_component_crate_is_linked() {
        let packages = component_packages(&workspace_root()).unwrap();
        assert!(
            packages.iter().any(|(p, _)| p == "ebbrt-net"),
            "{packages:?}"
        );
        for (p, _) in &packages {
            assert!(
                LINKED.contains(&p.replace('-', "_").as_str()),
                "{p} is not linked"
            );
        }
    }

    #[test]
    fn package_names() {
        let toml = "[workspace]\nname = \"no\"\n[package]\nnamespace = \"n\"\nversion = \"1\"\nname = \"ebbrt-x\"\n[dependencies]\n";
        assert_eq!(package_name(toml).as_deref(), Some("ebbrt-x"));
        assert_eq!(package_name("[dependencies]\nname = \"y\"\n"), None);
        assert_eq!(package_name("[package]\nname = ebbrt\n"), None);
    }
}
