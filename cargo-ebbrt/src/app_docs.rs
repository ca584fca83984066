//! `cargo ebbrt docs` in an application's workspace: the application's
//! catalog, `docs/components.md` in its package directory.
//!
//! The application is built hosted and run with `EBBRT_CATALOG` set, so it
//! prints the component records linked into it (its own Ebbs and the
//! framework components it links) instead of starting; cargo's build
//! messages tell which features of the application and of the `ebbrt`
//! facade the build used. This module renders both as Markdown.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::cargo::{Built, FACADE, Package, Workspace};
use crate::cli::DocsArgs;
use crate::docs_cmd::CATALOG;
use crate::{Error, note};

/// The environment variable that makes a hosted program print its records
/// (`ebbrt_std::catalog::CATALOG_ENV`).
const CATALOG_ENV: &str = "EBBRT_CATALOG";

/// One component record, as the hosted program prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    name: String,
    kind: String,
    interface: String,
    summary: String,
    docs: String,
    id: Option<u64>,
    id_name: Option<String>,
    crate_name: String,
    feature: Option<String>,
    default: bool,
}

/// Runs the command in an application's workspace.
pub fn docs(ws: &Workspace, a: &DocsArgs) -> Result<i32, Error> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Tool(format!("cannot read the current directory: {e}")))?;
    let app = ws.application(a.build.package.as_deref(), &cwd)?;
    note(&format!(
        "building `{}` (hosted) to read the components linked into it",
        app.name
    ));
    let built = ws.build_hosted_example(app, &a.build)?;
    let records = read_records(&built.exe, &ws.root)?;
    let features = Features::of(&built, app);
    let text = render(app, &records, &features);
    let path = app.dir.join(CATALOG);
    let shown = path
        .strip_prefix(&cwd)
        .unwrap_or(&path)
        .display()
        .to_string();
    if a.check {
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            note(&format!("{shown} is up to date"));
            return Ok(0);
        }
        eprintln!(
            "{shown} is stale (or missing): `cargo ebbrt docs` rewrites it from the \
             application's components"
        );
        return Ok(1);
    }
    if crate::docs_cmd::update(&path, &text)? {
        note(&format!("wrote {shown} ({} components)", records.len()));
    } else {
        note(&format!("{shown} is up to date"));
    }
    Ok(0)
}

/// Runs the hosted program with `EBBRT_CATALOG` set and reads its records.
fn read_records(exe: &Path, root: &Path) -> Result<Vec<Record>, Error> {
    let out = Command::new(exe)
        .current_dir(root)
        .env(CATALOG_ENV, "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", exe.display())))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{} failed to list its components ({}); is it an EbbRT application \
             (`#[ebbrt::main]`)?",
            exe.display(),
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut records: Vec<Record> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            parse_record(l).ok_or_else(|| {
                Error::Tool(format!(
                    "{} printed something that is not a component record: {l}",
                    exe.display()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    records.sort_by(|a, b| (&a.crate_name, &a.name).cmp(&(&b.crate_name, &b.name)));
    Ok(records)
}

/// One line of the program's output.
fn parse_record(line: &str) -> Option<Record> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Some(Record {
        name: s("name")?,
        kind: s("kind")?,
        interface: s("interface")?,
        summary: s("summary")?,
        docs: s("docs")?,
        id: v.get("id").and_then(Value::as_u64),
        id_name: s("id_name"),
        crate_name: s("crate")?,
        feature: s("feature"),
        default: v.get("default")?.as_bool()?,
    })
}

/// The features the build used: the application's and the facade's
/// (without `default`, which only names others).
#[derive(Debug, Default, PartialEq)]
pub struct Features {
    app: Vec<String>,
    facade: Vec<String>,
}

impl Features {
    fn of(built: &Built, app: &Package) -> Features {
        let strip = |mut v: Vec<String>| {
            v.retain(|f| f != "default");
            v
        };
        Features {
            app: strip(built.features_of(&app.name)),
            facade: strip(built.features_of(FACADE)),
        }
    }
}

/// The catalog's Markdown.
fn render(app: &Package, records: &[Record], f: &Features) -> String {
    // Records name their crate as cargo does (`CARGO_PKG_NAME`).
    let own_crate = app.name.as_str();
    let (own, framework): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| r.crate_name == own_crate);
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut s = String::new();
    s.push_str(&format!("# Components of `{}`\n\n", app.name));
    s.push_str(
        "Generated by `cargo ebbrt docs` from the component records linked into the \
         application's hosted build; do not edit (`cargo ebbrt docs --check` fails when \
         it is stale).\n\n",
    );
    s.push_str(&format!(
        "Built with the features of `{}`: {}; of the `ebbrt` facade: {}.\n\n",
        app.name,
        list(&f.app),
        list(&f.facade)
    ));
    s.push_str(
        "| Component | Crate | Kind | Id | Interface | Selected by |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in own.iter().chain(&framework) {
        s.push_str(&format!(
            "| [`{}`](#{}) | `{}` | {} | {} | `{}` | {} |\n",
            r.name,
            anchor(&r.name),
            r.crate_name,
            r.kind,
            id_cell(r),
            r.interface,
            selected_by(r, own_crate)
        ));
    }
    s.push_str(
        "\nNatively the image also links the drivers the same facade features select \
         (the 16550 UART or QEMU's debug console as the console; with `net`, the \
         virtio-net NIC): see the framework's docs/components.md.\n",
    );
    for (title, group) in [
        ("The application's Ebbs", &own),
        ("Framework components", &framework),
    ] {
        s.push_str(&format!("\n## {title}\n"));
        if group.is_empty() {
            s.push_str("\nNone.\n");
        }
        for r in group.iter() {
            s.push_str(&format!("\n### {}\n\n", r.name));
            s.push_str(&format!(
                "{} Ebb in `{}`, id {}, interface `{}`; selected by {}.\n\n",
                if r.kind == "per-core" {
                    "A per-core"
                } else {
                    "A shared"
                },
                r.crate_name,
                id_cell(r),
                r.interface,
                selected_by(r, own_crate)
            ));
            let docs = if r.docs.trim().is_empty() {
                r.summary.trim()
            } else {
                r.docs.trim()
            };
            if !docs.is_empty() {
                s.push_str(docs);
                s.push('\n');
            }
        }
    }
    s
}

/// `GP_ALLOCATOR (5)`, `5`, or `run-time` for an Ebb without a fixed id.
fn id_cell(r: &Record) -> String {
    match (r.id, &r.id_name) {
        (Some(n), Some(name)) => format!("`{name}` ({n})"),
        (Some(n), None) => n.to_string(),
        (None, _) => "run-time".to_string(),
    }
}

/// What put a component in the image.
fn selected_by(r: &Record, own_crate: &str) -> String {
    match &r.feature {
        Some(f) if r.default => format!("`ebbrt/{f}` (default)"),
        Some(f) => format!("`ebbrt/{f}`"),
        None if r.crate_name == own_crate => "the application".to_string(),
        None => "always linked".to_string(),
    }
}

/// GitHub's anchor for a heading that is one word.
fn anchor(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, krate: &str, feature: Option<&str>, id: Option<u64>) -> Record {
        Record {
            name: name.into(),
            kind: "per-core".into(),
            interface: format!("{krate}::{name}"),
            summary: format!("{name} does things."),
            docs: format!("{name} does things.\n\nMore."),
            id,
            id_name: id.filter(|n| *n == 5).map(|_| "GP_ALLOCATOR".into()),
            crate_name: krate.into(),
            feature: feature.map(String::from),
            default: feature.is_some(),
        }
    }

    #[test]
    fn records_parse_from_the_program_s_lines() {
        let line = concat!(
            r#"{"name":"Counter","kind":"shared","interface":"app::Counter","#,
            r#""summary":"S.","docs":"S.\n\nD.","id":null,"id_name":null,"#,
            r#""crate":"app","feature":null,"default":true}"#
        );
        let r = parse_record(line).unwrap();
        assert_eq!(r.name, "Counter");
        assert_eq!(r.kind, "shared");
        assert_eq!(r.docs, "S.\n\nD.");
        assert_eq!((r.id, r.feature.as_deref(), r.default), (None, None, true));
        assert_eq!(parse_record("{\"name\":1}"), None);
        assert_eq!(parse_record("hello"), None);
    }

    #[test]
    fn the_catalog_names_the_application_s_ebbs_first() {
        let app = Package {
            name: "my-app".into(),
            id: "p".into(),
            dir: "/a".into(),
            targets: vec![],
            features: vec![],
        };
        let records = [
            record("SlabAllocator", "ebbrt_gp_alloc", Some("gp-slab"), Some(5)),
            record("Counter", "my-app", None, None),
        ];
        let f = Features {
            app: vec![],
            facade: vec!["gp-slab".into()],
        };
        let text = render(&app, &records, &f);
        assert!(text.starts_with("# Components of `my-app`\n"), "{text}");
        assert!(
            text.contains("features of `my-app`: none; of the `ebbrt` facade: `gp-slab`."),
            "{text}"
        );
        let counter = text.find("| [`Counter`](#counter) | `my-app` | per-core | run-time |");
        let slab = text.find(
            "| [`SlabAllocator`](#slaballocator) | `ebbrt_gp_alloc` | per-core | \
             `GP_ALLOCATOR` (5) | `ebbrt_gp_alloc::SlabAllocator` | `ebbrt/gp-slab` (default) |",
        );
        assert!(counter.is_some() && slab.is_some(), "{text}");
        assert!(counter < slab, "the application's own first: {text}");
        assert!(
            text.contains("## The application's Ebbs\n\n### Counter\n"),
            "{text}"
        );
        assert!(text.contains("selected by the application."), "{text}");
        assert!(text.contains("Counter does things.\n\nMore.\n"), "{text}");
    }
}
