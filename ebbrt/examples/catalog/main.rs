//! The component catalog program: links every component crate into one
//! hosted program and renders the records they leave in
//! `ebbrt::registry::COMPONENTS` as `docs/components.md`.
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
//! general-purpose allocators) are both linked here, which a runtime's id
//! check refuses; so it does not call `check_static_ids`.

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
    ebbrt_gp_alloc,
    ebbrt_net,
    ebbrt_page_alloc,
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

/// The package names under `<root>/components/`, sorted.
fn component_packages(root: &Path) -> Result<Vec<String>, String> {
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
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// The catalog of the records linked into this program, after checking that
/// every component crate is linked and that alternatives name their default.
fn catalog() -> Result<String, String> {
    let records = ebbrt::registry::COMPONENTS.to_vec();
    let packages = component_packages(&workspace_root())?;
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
    render::check_alternatives(&records)?;
    let unrecorded: Vec<String> = packages
        .into_iter()
        .filter(|p| !records.iter().any(|r| r.crate_name == p))
        .collect();
    Ok(render::render(&records, &unrecorded))
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
        assert_eq!((gp.feature, gp.default), (None, true));
        assert_eq!((talc.feature, talc.default), (Some("talc"), false));
        let catalog = catalog().unwrap();
        assert!(catalog.contains(
            "- `GP_ALLOCATOR` (5): `GpAllocator` (default), `TalcAllocator` (feature `talc`)\n"
        ));
    }

    #[test]
    fn every_component_crate_is_linked() {
        let packages = component_packages(&workspace_root()).unwrap();
        assert!(packages.contains(&"ebbrt-net".to_string()), "{packages:?}");
        for p in &packages {
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
