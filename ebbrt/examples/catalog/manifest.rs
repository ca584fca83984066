//! Reads Cargo manifests for the catalog: the `ebbrt` facade's feature menu
//! (its `[features]` table and the `##` comments that document each
//! feature, which TOML's data model drops, hence a small hand parser), and
//! on which runtime the facade links each crate (its target-specific
//! dependency tables, followed through the component crates' own).
//!
//! The parser knows the subset of TOML that manifests use: table headers,
//! `key = value` lines with dotted or quoted keys, values (strings, arrays,
//! inline tables) that may span lines, and `#` comments. Renamed
//! dependencies (`package = "..."`) are not followed.

use std::collections::{BTreeMap, BTreeSet};

/// The runtimes on which a crate is linked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runtimes {
    /// Natively (`x86_64-ebbrt`, `target_os = "none"`).
    pub native: bool,
    /// Hosted (a Linux process).
    pub hosted: bool,
}

impl Runtimes {
    /// Both runtimes.
    pub const BOTH: Runtimes = Runtimes {
        native: true,
        hosted: true,
    };
    /// Only natively.
    pub const NATIVE: Runtimes = Runtimes {
        native: true,
        hosted: false,
    };
    /// Only hosted.
    pub const HOSTED: Runtimes = Runtimes {
        native: false,
        hosted: true,
    };
    /// Neither: the facade does not link the crate.
    pub const NONE: Runtimes = Runtimes {
        native: false,
        hosted: false,
    };

    /// `both`, `native`, `hosted`, or `—` (not linked by the facade).
    pub fn text(self) -> &'static str {
        match (self.native, self.hosted) {
            (true, true) => "both",
            (true, false) => "native",
            (false, true) => "hosted",
            (false, false) => "—",
        }
    }

    /// Whether the two share a runtime.
    pub fn overlaps(self, other: Runtimes) -> bool {
        (self.native && other.native) || (self.hosted && other.hosted)
    }

    fn union(self, o: Runtimes) -> Runtimes {
        Runtimes {
            native: self.native || o.native,
            hosted: self.hosted || o.hosted,
        }
    }

    fn intersect(self, o: Runtimes) -> Runtimes {
        Runtimes {
            native: self.native && o.native,
            hosted: self.hosted && o.hosted,
        }
    }
}

/// One feature of the facade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Its name.
    pub name: String,
    /// Its `##` doc comment, the markers stripped, lines joined by `\n`
    /// (empty when it has none).
    pub docs: String,
    /// What it enables, as written (`dep:crate`, `crate/feature`, another
    /// feature's name).
    pub enables: Vec<String>,
}

/// The facade's manifest as the catalog needs it.
#[derive(Clone, Debug, Default)]
pub struct Facade {
    /// The features in file order, without `default`.
    pub features: Vec<Feature>,
    /// The `default = [...]` list.
    pub default: Vec<String>,
    /// The `##` comment above `default`, if any.
    pub default_docs: String,
    /// Every crate the facade links (directly or through component crates)
    /// and on which runtimes; a crate not in it is not linked by the facade.
    pub linked: BTreeMap<String, Runtimes>,
    /// The facade's optional dependencies: the crates a feature can select.
    pub optional: BTreeSet<String>,
    /// The crates the facade links only through its optional dependencies
    /// (a dependency of `ebbrt-gp-alloc`, say), each with those optional
    /// dependencies; not the optional dependencies themselves.
    pub through: BTreeMap<String, BTreeSet<String>>,
}

impl Facade {
    /// Parses the facade's manifest (`facade`) and follows its dependencies
    /// through the manifests of the component crates (`(package name,
    /// manifest text)`) to find where each crate is linked.
    pub fn parse(facade: &str, components: &[(String, String)]) -> Result<Facade, String> {
        let all = entries(facade).map_err(|e| format!("ebbrt/Cargo.toml: {e}"))?;
        let mut out = Facade::default();
        let mut seen = BTreeSet::new();
        for e in all.iter().filter(|e| e.table == ["features"]) {
            let key = e.key.join(".");
            if !seen.insert(key.clone()) {
                return Err(format!(
                    "ebbrt/Cargo.toml, line {}: feature `{key}` is defined twice",
                    e.line
                ));
            }
            let list = strings(&e.value).ok_or_else(|| {
                format!(
                    "ebbrt/Cargo.toml, line {}: feature `{key}` is not an array of strings",
                    e.line
                )
            })?;
            if key == "default" {
                out.default = list;
                out.default_docs = e.docs.join("\n");
            } else {
                out.features.push(Feature {
                    name: key,
                    docs: e.docs.join("\n"),
                    enables: list,
                });
            }
        }
        if let Some(e) = all
            .iter()
            .find(|e| !e.docs.is_empty() && e.table != ["features"])
        {
            return Err(format!(
                "ebbrt/Cargo.toml, line {}: a `##` comment documents `{}`, which is not a \
                 feature (`##` comments belong in the [features] table)",
                e.line,
                e.key.join(".")
            ));
        }
        for name in out
            .default
            .iter()
            .chain(out.features.iter().flat_map(|f| &f.enables))
        {
            let name = name.split('/').next().unwrap_or(name).trim_end_matches('?');
            if let Some(dep) = name.strip_prefix("dep:") {
                if !is_dependency(&all, dep) {
                    return Err(format!(
                        "ebbrt/Cargo.toml: `{name}` is used in [features] but `{dep}` is not a \
                         dependency"
                    ));
                }
            } else if !seen.contains(name) && !is_dependency(&all, name) {
                return Err(format!(
                    "ebbrt/Cargo.toml: `{name}` is used in [features] but is neither a feature \
                     nor a dependency"
                ));
            }
        }
        let direct = dependencies(&all);
        let all_deps: BTreeSet<String> = direct.iter().map(|d| d.name.clone()).collect();
        for d in direct {
            if d.optional {
                out.optional.insert(d.name.clone());
            }
            let r = out.linked.entry(d.name).or_default();
            *r = r.union(d.runtimes);
        }
        // Follow the component crates' dependencies until nothing changes.
        let mut component_deps = BTreeMap::new();
        for (name, text) in components {
            let e = entries(text).map_err(|e| format!("the manifest of {name}: {e}"))?;
            component_deps.insert(name.as_str(), dependencies(&e));
        }
        loop {
            let mut changed = false;
            for (name, deps) in &component_deps {
                let Some(&at) = out.linked.get(*name) else {
                    continue;
                };
                for d in deps {
                    let r = out.linked.entry(d.name.clone()).or_default();
                    let new = r.union(at.intersect(d.runtimes));
                    changed |= new != *r;
                    *r = new;
                }
            }
            if !changed {
                break;
            }
        }
        // Which crates only optional dependencies bring in, and which ones.
        let mut always: BTreeSet<String> = out
            .linked
            .keys()
            .filter(|c| !out.optional.contains(*c) && all_deps.contains(*c))
            .cloned()
            .collect();
        let mut via: BTreeMap<String, BTreeSet<String>> = out
            .optional
            .iter()
            .map(|c| (c.clone(), BTreeSet::from([c.clone()])))
            .collect();
        loop {
            let mut changed = false;
            for (name, deps) in &component_deps {
                let from = via.get(*name).cloned().unwrap_or_default();
                let is_always = always.contains(*name);
                for d in deps {
                    if is_always {
                        changed |= always.insert(d.name.clone());
                    } else if !from.is_empty() {
                        let to = via.entry(d.name.clone()).or_default();
                        let before = to.len();
                        to.extend(from.iter().cloned());
                        changed |= to.len() != before;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        out.through = via
            .into_iter()
            .filter(|(c, _)| !always.contains(c) && !out.optional.contains(c))
            .collect();
        Ok(out)
    }

    /// The optional dependencies through which alone the facade links
    /// `krate`, if it links it only through them (and is not one).
    pub fn through(&self, krate: &str) -> Option<&BTreeSet<String>> {
        self.through.get(krate)
    }

    /// The features that turn on the optional dependency `krate`.
    pub fn features_of(&self, krate: &str) -> Vec<&Feature> {
        self.features
            .iter()
            .filter(|f| self.crates_of(&f.name).contains(krate))
            .collect()
    }

    /// The runtimes on which the facade links `krate`.
    pub fn runtimes(&self, krate: &str) -> Runtimes {
        self.linked.get(krate).copied().unwrap_or(Runtimes::NONE)
    }

    /// The feature named `name`.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Whether `feature` is on by default (in `default`, or enabled by a
    /// feature that is).
    pub fn is_default(&self, feature: &str) -> bool {
        self.closure(&self.default).0.contains(feature)
    }

    /// The optional dependencies (crates) that `feature` turns on, directly
    /// or through the features it enables.
    pub fn crates_of(&self, feature: &str) -> BTreeSet<String> {
        let crates = self.closure(&[feature.to_string()]).1;
        crates
            .into_iter()
            .filter(|c| self.optional.contains(c))
            .collect()
    }

    /// The features and crates that a list of `features` items enables,
    /// following features that enable other features.
    fn closure(&self, items: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut features = BTreeSet::new();
        let mut crates = BTreeSet::new();
        let mut todo: Vec<&str> = items.iter().map(String::as_str).collect();
        while let Some(item) = todo.pop() {
            if let Some(dep) = item.strip_prefix("dep:") {
                crates.insert(dep.to_string());
            } else if let Some((first, _)) = item.split_once('/') {
                // `crate/feature` turns the crate on; `crate?/feature` does not.
                if !first.ends_with('?') {
                    todo.push(first);
                }
            } else if let Some(f) = self.feature(item) {
                if features.insert(item.to_string()) {
                    todo.extend(f.enables.iter().map(String::as_str));
                }
            } else {
                // An optional dependency's implicit feature.
                crates.insert(item.to_string());
            }
        }
        (features, crates)
    }
}

/// One `key = value` line (or lines) of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The dotted name of the table it is in (`["dependencies"]`,
    /// `["target", "cfg(...)", "dependencies"]`); empty before any header.
    pub table: Vec<String>,
    /// Its dotted key, unquoted.
    pub key: Vec<String>,
    /// Its value as written, comments removed, lines joined by spaces.
    pub value: String,
    /// The `##` comment lines right above it (markers and one space
    /// stripped), in order.
    pub docs: Vec<String>,
    /// Its line number (from 1).
    pub line: usize,
}

/// Every entry of a manifest, in order, and the tables that hold them. A
/// table header without entries (`[dependencies.x]` has some) appears as
/// the table of its entries only.
pub fn entries(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    let mut docs: Vec<String> = Vec::new();
    let mut docs_line = 0;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim();
        if let Some(doc) = line.strip_prefix("##") {
            if docs.is_empty() {
                docs_line = n;
            }
            docs.push(doc.strip_prefix(' ').unwrap_or(doc).trim_end().to_string());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            if !docs.is_empty() {
                return Err(dangling(docs_line));
            }
            let inner = line.trim_start_matches('[');
            let end = inner
                .rfind(']')
                .ok_or_else(|| format!("line {n}: a table header without `]`"))?;
            table = split_dotted(inner[..end].trim_end_matches(']'))
                .ok_or_else(|| format!("line {n}: a malformed table header"))?;
            continue;
        }
        let (key, rest) =
            split_key(line).ok_or_else(|| format!("line {n}: expected `key = value`"))?;
        let key = split_dotted(key).ok_or_else(|| format!("line {n}: a malformed key"))?;
        let mut scan = Scan::default();
        let mut value = scan.feed(rest);
        while scan.depth > 0 || scan.in_string.is_some() {
            let Some((_, more)) = lines.next() else {
                return Err(format!(
                    "line {n}: the value of `{}` never ends",
                    key.join(".")
                ));
            };
            value.push(' ');
            value.push_str(&scan.feed(more));
        }
        out.push(Entry {
            table: table.clone(),
            key,
            value: value.trim().to_string(),
            docs: std::mem::take(&mut docs),
            line: n,
        });
    }
    if !docs.is_empty() {
        return Err(dangling(docs_line));
    }
    Ok(out)
}

fn dangling(line: usize) -> String {
    format!("line {line}: a `##` comment documents nothing (no feature follows it in its table)")
}

/// Follows a value over lines: string state and bracket depth; drops
/// comments.
#[derive(Default)]
struct Scan {
    depth: usize,
    in_string: Option<char>,
}

impl Scan {
    /// One line of a value, without its comment.
    fn feed(&mut self, line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match self.in_string {
                Some(q) => {
                    out.push(c);
                    if c == '\\' && q == '"' {
                        if let Some(next) = chars.next() {
                            out.push(next);
                        }
                    } else if c == q {
                        self.in_string = None;
                    }
                }
                None => match c {
                    '#' => break,
                    '"' | '\'' => {
                        self.in_string = Some(c);
                        out.push(c);
                    }
                    '[' | '{' => {
                        self.depth += 1;
                        out.push(c);
                    }
                    ']' | '}' => {
                        self.depth = self.depth.saturating_sub(1);
                        out.push(c);
                    }
                    c => out.push(c),
                },
            }
        }
        out.trim_end().to_string()
    }
}

/// `key = rest` at the first `=` outside quotes.
fn split_key(line: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '=') => return Some((line[..i].trim(), &line[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `a."b.c".'d'` → `["a", "b.c", "d"]`.
fn split_dotted(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut cur).trim().to_string()),
            (Some(_), c) => cur.push(c),
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    parts.push(cur.trim().to_string());
    parts.iter().all(|p| !p.is_empty()).then_some(parts)
}

/// The strings of an array value (`["a", 'b']`), or `None` if it is not one.
fn strings(value: &str) -> Option<Vec<String>> {
    let inner = value.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let Some(q) = chars.next() else {
            return Some(out);
        };
        if q != '"' && q != '\'' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                c if c == q => break,
                '\\' if q == '"' => s.push(chars.next()?),
                c => s.push(c),
            }
        }
        out.push(s);
    }
}

/// One dependency of a manifest (not a dev- or build-dependency).
struct Dependency {
    name: String,
    runtimes: Runtimes,
    optional: bool,
}

/// The runtime a `[target.'cfg(...)'.dependencies]` table applies to.
fn cfg_runtimes(cfg: &str) -> Runtimes {
    let cfg: String = cfg.chars().filter(|c| !c.is_whitespace()).collect();
    match cfg.as_str() {
        r#"cfg(target_os="none")"# => Runtimes::NATIVE,
        r#"cfg(not(target_os="none"))"# => Runtimes::HOSTED,
        _ => Runtimes::BOTH,
    }
}

/// Where a table holds dependencies: on which runtimes, and the dependency
/// it is about when the table is one (`[dependencies.name]`).
fn dependency_table(table: &[String]) -> Option<(Runtimes, Option<&str>)> {
    let (runtimes, rest) = match table {
        [t, cfg, rest @ ..] if t == "target" => (cfg_runtimes(cfg), rest),
        rest => (Runtimes::BOTH, rest),
    };
    match rest {
        [d] if d == "dependencies" => Some((runtimes, None)),
        [d, name] if d == "dependencies" => Some((runtimes, Some(name))),
        _ => None,
    }
}

fn dependencies(entries: &[Entry]) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    for e in entries {
        let Some((runtimes, table_dep)) = dependency_table(&e.table) else {
            continue;
        };
        let (name, optional) = match table_dep {
            // `[dependencies.name]`: its keys are the dependency's fields.
            Some(name) => (name, e.key == ["optional"] && e.value == "true"),
            None => (
                e.key[0].as_str(),
                e.value.starts_with('{') && inline_optional(&e.value),
            ),
        };
        match out
            .iter_mut()
            .find(|d| d.name == name && d.runtimes == runtimes)
        {
            Some(d) => d.optional |= optional,
            None => out.push(Dependency {
                name: name.to_string(),
                runtimes,
                optional,
            }),
        }
    }
    out
}

/// Whether an inline table says `optional = true`.
fn inline_optional(value: &str) -> bool {
    let inner = value.trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .any(|kv| split_key(kv).is_some_and(|(k, v)| k == "optional" && v.trim() == "true"))
}

fn is_dependency(entries: &[Entry], name: &str) -> bool {
    dependencies(entries).iter().any(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACADE: &str = r#"
[package]
name = "ebbrt"

[dependencies]
ebbrt-core = { workspace = true, features = ["x"] }
# A plain comment is not documentation.
ebbrt-gp = { workspace = true, optional = true }
ebbrt-talc = { path = "t", optional = true } # trailing comment

# The menu.
[features]
default = [
    "gp", # the allocator
    "console",
]
## General-purpose allocator: the slab one.
##
## Per-core classes.
gp = ["dep:ebbrt-gp"]
##Talc, "quoted" [not a bracket].
talc = ['dep:ebbrt-talc']
console = ["dep:ebbrt-uart", "dep:ebbrt-stdout"]
both = ["gp", "talc"]

[target.'cfg(not(target_os = "none"))'.dependencies]
ebbrt-stdout = { path = "s", optional = true }

[target.'cfg(target_os = "none")'.dependencies]
ebbrt-uart = { path = "u", optional = true }
ebbrt-nic = { path = "n" }

[dependencies.ebbrt-idle]
path = "i"
optional = true

[target.'cfg(not(target_os = "none"))'.dev-dependencies]
ebbrt-dev = { path = "d" }
"#;

    fn facade() -> Facade {
        let components = [
            (
                "ebbrt-gp".to_string(),
                "[dependencies]\nebbrt-slab.workspace = true\n[dev-dependencies]\nebbrt-x.workspace = true\n"
                    .to_string(),
            ),
            (
                "ebbrt-nic".to_string(),
                "[target.'cfg(not(target_os = \"none\"))'.dependencies]\nebbrt-hosted-only = \"1\"\n"
                    .to_string(),
            ),
        ];
        Facade::parse(FACADE, &components).unwrap()
    }

    #[test]
    fn features_carry_their_doc_comments() {
        let f = facade();
        let names: Vec<&str> = f.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["gp", "talc", "console", "both"]);
        assert_eq!(
            f.feature("gp").unwrap().docs,
            "General-purpose allocator: the slab one.\n\nPer-core classes."
        );
        assert_eq!(
            f.feature("talc").unwrap().docs,
            "Talc, \"quoted\" [not a bracket]."
        );
        assert_eq!(f.feature("talc").unwrap().enables, ["dep:ebbrt-talc"]);
        // A feature without `##` lines has no docs; plain comments are not docs.
        assert_eq!(f.feature("console").unwrap().docs, "");
        assert_eq!(
            f.feature("console").unwrap().enables,
            ["dep:ebbrt-uart", "dep:ebbrt-stdout"]
        );
    }

    #[test]
    fn the_default_list_spans_lines() {
        let f = facade();
        assert_eq!(f.default, ["gp", "console"]);
        assert!(f.is_default("gp") && f.is_default("console"));
        assert!(!f.is_default("talc") && !f.is_default("both"));
        assert_eq!(f.default_docs, "");
    }

    #[test]
    fn features_select_optional_crates_through_other_features() {
        let f = facade();
        let crates = |name| f.crates_of(name).into_iter().collect::<Vec<_>>();
        assert_eq!(crates("gp"), ["ebbrt-gp"]);
        assert_eq!(crates("both"), ["ebbrt-gp", "ebbrt-talc"]);
        assert_eq!(crates("console"), ["ebbrt-stdout", "ebbrt-uart"]);
        assert!(f.optional.contains("ebbrt-idle"));
        assert!(!f.optional.contains("ebbrt-core") && !f.optional.contains("ebbrt-nic"));
    }

    #[test]
    fn runtimes_follow_target_tables_and_component_crates() {
        let f = facade();
        assert_eq!(f.runtimes("ebbrt-core"), Runtimes::BOTH);
        assert_eq!(f.runtimes("ebbrt-stdout"), Runtimes::HOSTED);
        assert_eq!(f.runtimes("ebbrt-uart"), Runtimes::NATIVE);
        assert_eq!(f.runtimes("ebbrt-idle"), Runtimes::BOTH);
        // Through a component crate: its runtimes, narrowed by its tables.
        assert_eq!(f.runtimes("ebbrt-slab"), Runtimes::BOTH);
        assert_eq!(f.runtimes("ebbrt-hosted-only"), Runtimes::NONE);
        // Linked only with the optional `ebbrt-gp`.
        let through = |c| f.through(c).map(|s| s.iter().cloned().collect::<Vec<_>>());
        assert_eq!(through("ebbrt-slab"), Some(vec!["ebbrt-gp".to_string()]));
        assert_eq!(through("ebbrt-gp"), None);
        assert_eq!(through("ebbrt-core"), None);
        assert_eq!(through("ebbrt-nic"), None);
        let names = |c| {
            f.features_of(c)
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("ebbrt-gp"), ["gp", "both"]);
        assert_eq!(names("ebbrt-stdout"), ["console"]);
        // Dev-dependencies and their dev-dependencies are not linked.
        assert_eq!(f.runtimes("ebbrt-dev"), Runtimes::NONE);
        assert_eq!(f.runtimes("ebbrt-x"), Runtimes::NONE);
        assert_eq!(Runtimes::NATIVE.text(), "native");
        assert_eq!(Runtimes::NONE.text(), "—");
        assert!(Runtimes::BOTH.overlaps(Runtimes::HOSTED));
        assert!(!Runtimes::NATIVE.overlaps(Runtimes::HOSTED));
    }

    #[test]
    fn malformed_menus_are_refused() {
        let e = Facade::parse("[features]\n## Nothing follows.\n", &[]).unwrap_err();
        assert!(
            e.contains("line 2: a `##` comment documents nothing"),
            "{e}"
        );
        let e = Facade::parse(
            "[features]\n## Wrong table.\n[dependencies]\nx = \"1\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("line 2: a `##` comment documents nothing"),
            "{e}"
        );
        let e = Facade::parse("[dependencies]\n## Not a feature.\nx = \"1\"\n", &[]).unwrap_err();
        assert!(e.contains("documents `x`, which is not a feature"), "{e}");
        let e = Facade::parse("[features]\na = []\na = []\n", &[]).unwrap_err();
        assert!(e.contains("line 3: feature `a` is defined twice"), "{e}");
        let e = Facade::parse("[features]\na = \"b\"\n", &[]).unwrap_err();
        assert!(e.contains("`a` is not an array of strings"), "{e}");
        let e = Facade::parse("[features]\na = [\"nope\"]\n", &[]).unwrap_err();
        assert!(
            e.contains("`nope` is used in [features] but is neither"),
            "{e}"
        );
        let e = Facade::parse("[features]\na = [\"dep:gone\"]\n", &[]).unwrap_err();
        assert!(
            e.contains("`dep:gone` is used in [features] but `gone` is not a dependency"),
            "{e}"
        );
        let e = Facade::parse("[features]\na = [\n\"b\",\n", &[]).unwrap_err();
        assert!(e.contains("the value of `a` never ends"), "{e}");
    }

    #[test]
    fn keys_and_values() {
        assert_eq!(
            split_dotted(r#"target.'cfg(target_os = "none")'.dependencies"#).unwrap(),
            ["target", r#"cfg(target_os = "none")"#, "dependencies"]
        );
        assert_eq!(split_dotted("\"a.b\".c").unwrap(), ["a.b", "c"]);
        assert_eq!(split_dotted("a..b"), None);
        assert_eq!(split_key("\"a=b\" = 1"), Some(("\"a=b\"", " 1")));
        assert_eq!(strings(r#"[ "a\"b", 'c\d' ]"#).unwrap(), ["a\"b", "c\\d"]);
        assert_eq!(strings("[]").unwrap(), Vec::<String>::new());
        assert_eq!(strings("[1]"), None);
        assert!(inline_optional("{ path = \"x\", optional = true }"));
        assert!(!inline_optional("{ path = \"optional = true\" }"));
    }
}
