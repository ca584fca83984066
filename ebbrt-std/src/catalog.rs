//! The registry of a hosted application, for `cargo ebbrt docs`.
//!
//! When the environment variable [`CATALOG_ENV`] is set, [`start_main`]
//! does not start the application: it prints one JSON object per component
//! record linked into the program ([`ebbrt_core::registry::COMPONENTS`])
//! on stdout and exits with 0. The tool renders them as the application's
//! catalog. The format is one line per record:
//!
//! ```text
//! {"name":"Counter","kind":"per-core","interface":"app::Counter","summary":"...",
//!  "docs":"...","id":null,"id_name":null,"crate":"app","feature":null,"default":true}
//! ```
//!
//! [`start_main`]: crate::start_main

use std::fmt::Write as _;
use std::io::Write as _;

use ebbrt_core::ebb::{EbbKind, ids};
use ebbrt_core::registry::{COMPONENTS, ComponentRecord};

/// The environment variable that makes a hosted program print its
/// component records instead of running.
pub const CATALOG_ENV: &str = "EBBRT_CATALOG";

/// Prints every record and exits, if [`CATALOG_ENV`] is set.
pub(crate) fn dump_if_asked() {
    if std::env::var_os(CATALOG_ENV).is_none() {
        return;
    }
    let mut out = String::new();
    for r in COMPONENTS.iter() {
        record_json(r, &mut out);
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    std::process::exit(if written.is_ok() { 0 } else { 1 });
}

/// One record as a JSON object (no newline).
fn record_json(r: &ComponentRecord, out: &mut String) {
    let kind = match r.kind {
        EbbKind::PerCore => "per-core",
        EbbKind::Shared => "shared",
    };
    out.push('{');
    field(out, "name", Some(r.name));
    field(out, "kind", Some(kind));
    field(out, "interface", Some(r.interface));
    field(out, "summary", Some(r.summary));
    field(out, "docs", Some(r.docs));
    match r.id {
        Some(id) => {
            let _ = write!(out, "\"id\":{},", id.index());
        }
        None => out.push_str("\"id\":null,"),
    }
    field(out, "id_name", r.id.and_then(ids::name));
    field(out, "crate", Some(r.crate_name));
    field(out, "feature", r.feature);
    let _ = write!(out, "\"default\":{}}}", r.default);
}

/// `"key":"value",` (or `null`), the value escaped as JSON requires.
fn field(out: &mut String, key: &str, value: Option<&str>) {
    let _ = write!(out, "\"{key}\":");
    match value {
        None => out.push_str("null"),
        Some(v) => {
            out.push('"');
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
    out.push(',');
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebbrt_core::ebb::EbbId;

    #[test]
    fn records_are_json_objects() {
        let r = ComponentRecord {
            name: "Counter",
            kind: EbbKind::PerCore,
            interface: "app::Counter",
            summary: "Counts \"things\".",
            docs: "Counts \"things\".\n\nPer core\\sum.\u{1}",
            id: Some(EbbId::new(5)),
            crate_name: "app",
            feature: Some("talc"),
            default: false,
        };
        let mut s = String::new();
        record_json(&r, &mut s);
        assert_eq!(
            s,
            concat!(
                r#"{"name":"Counter","kind":"per-core","interface":"app::Counter","#,
                r#""summary":"Counts \"things\".","#,
                r#""docs":"Counts \"things\".\n\nPer core\\sum.\u0001","id":5,"#,
                r#""id_name":"GP_ALLOCATOR","crate":"app","feature":"talc","default":false}"#
            )
        );
    }
}
