//! `cargo ebbrt docs`: writes `docs/components.md`, the component catalog,
//! with the catalog program (the facade's example `catalog`, which links
//! every component crate and renders their registry records); with
//! `--check`, fails instead when the file is stale.
//!
//! The rendering and the comparison live in the catalog program, so that
//! its freshness test (part of the host tests) and this command agree; this
//! module builds it, runs it and writes the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cargo::Workspace;
use crate::cli::DocsArgs;
use crate::{Error, note};

/// The catalog, relative to the workspace root.
pub const CATALOG: &str = "docs/components.md";
/// The package and example target of the catalog program.
const PROGRAM: (&str, &str) = ("ebbrt", "catalog");

/// Runs the command; returns the status the tool exits with.
pub fn docs(a: DocsArgs) -> Result<i32, Error> {
    let ws = Workspace::load(&a.build)?;
    if !ws.framework {
        return crate::app_docs::docs(&ws, &a);
    }
    let exe = ws.build_host_example(PROGRAM.0, PROGRAM.1)?.exe;
    if a.check {
        check(&ws.root, &exe)
    } else {
        write(&ws.root, &exe)
    }
}

/// The command that runs the catalog program in `root`: it prints the
/// catalog, or with `check` compares `docs/components.md` with it.
fn program_command(root: &Path, exe: &Path, check: bool) -> Command {
    let mut c = Command::new(exe);
    c.current_dir(root);
    if check {
        c.args(["--check", CATALOG]);
    }
    c
}

fn check(root: &Path, exe: &Path) -> Result<i32, Error> {
    // The program prints why the file is stale, with a diff, on stderr.
    let status = program_command(root, exe, true)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", exe.display())))?;
    match status.code() {
        Some(0) => {
            note(&format!("{CATALOG} is up to date"));
            Ok(0)
        }
        Some(1) => Ok(1),
        _ => Err(Error::Tool(format!(
            "the catalog program {} failed ({status})",
            exe.display()
        ))),
    }
}

fn write(root: &Path, exe: &Path) -> Result<i32, Error> {
    let out = program_command(root, exe, false)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", exe.display())))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "the catalog program failed ({}); its message is above",
            out.status
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| Error::Tool("the catalog program printed invalid UTF-8".into()))?;
    let path = root.join(CATALOG);
    if update(&path, &text)? {
        note(&format!("wrote {CATALOG}"));
    } else {
        note(&format!("{CATALOG} is up to date"));
    }
    Ok(0)
}

/// Writes `text` to `path` unless it already holds it; returns whether it
/// wrote.
pub(crate) fn update(path: &Path, text: &str) -> Result<bool, Error> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    let error = |e: std::io::Error| Error::Tool(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    // Whole or not at all: a reader never sees half a catalog.
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, text).map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_command_line() {
        let c = program_command(Path::new("/w"), Path::new("/t/catalog"), false);
        assert_eq!(c.get_program(), "/t/catalog");
        assert_eq!(c.get_args().count(), 0);
        assert_eq!(c.get_current_dir(), Some(Path::new("/w")));
        let c = program_command(Path::new("/w"), Path::new("/t/catalog"), true);
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["--check", "docs/components.md"]);
    }

    #[test]
    fn update_writes_only_changes() {
        let dir = std::env::temp_dir().join(format!("ebbrt-docs-test-{}", std::process::id()));
        let path = dir.join("docs/components.md");
        assert!(update(&path, "a\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\n");
        assert!(!update(&path, "a\n").unwrap());
        assert!(update(&path, "b\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        assert!(!dir.join("docs/components.md.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
