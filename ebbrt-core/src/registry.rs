//! The link-time registry of components.
//!
//! Every Ebb type declared with `#[ebb(...)]` (or registered by hand with
//! [`register_component!`](crate::register_component)) leaves a
//! [`ComponentRecord`] in the [`COMPONENTS`] slice, assembled by the linker.
//! The runtimes check it for id conflicts at start-up, and the catalog
//! generator (`cargo ebbrt docs`) renders it as `docs/components.md`.

use core::fmt;

use crate::ebb::{EbbId, EbbKind};

/// What the registry knows about one component.
#[derive(Debug, Clone, Copy)]
pub struct ComponentRecord {
    /// The component's type name.
    pub name: &'static str,
    /// Per-core or shared.
    pub kind: EbbKind,
    /// The full path of the type whose methods are the interface.
    pub interface: &'static str,
    /// The first paragraph of the type's documentation.
    pub summary: &'static str,
    /// The type's whole documentation (Markdown).
    pub docs: &'static str,
    /// Its fixed id, if it has one.
    pub id: Option<EbbId>,
    /// The crate that defines it.
    pub crate_name: &'static str,
    /// The Cargo feature (of the `ebbrt` facade) that selects it, if any.
    pub feature: Option<&'static str>,
    /// Whether it is selected when no feature says otherwise.
    pub default: bool,
}

/// Every registered component in the final binary.
#[linkme::distributed_slice]
pub static COMPONENTS: [ComponentRecord];

/// Registers a hand-written Ebb type in [`COMPONENTS`]:
///
/// ```ignore
/// ebbrt_core::register_component! {
///     MyEbb { name: "MyEbb", kind: EbbKind::Shared, interface: "my::MyEbb",
///             summary: "What it does.", id: None }
/// }
/// ```
///
/// An optional `docs: "..."` after `id` gives the full documentation; it
/// defaults to the summary. An optional `feature: "name"` after that names
/// the Cargo feature (of the `ebbrt` facade) that selects the component,
/// which is then not selected by default unless `default: true` follows. `#[ebb(...)]` emits this macro.
#[macro_export]
macro_rules! register_component {
    (@docs $summary:expr) => { $summary };
    (@docs $summary:expr, $docs:expr) => { $docs };
    (@feature) => { ::core::option::Option::None };
    (@feature $feature:expr) => { ::core::option::Option::Some($feature) };
    (@default $feature:expr) => { $feature.is_none() };
    (@default $feature:expr, $default:expr) => { $default };
    ($ty:ident { name: $name:expr, kind: $kind:expr, interface: $iface:expr, summary: $summary:expr, id: $id:expr $(, docs: $docs:expr)? $(, feature: $feature:expr $(, default: $default:expr)?)? $(,)? }) => {
        const _: () = {
            const FEATURE: ::core::option::Option<&str> = $crate::register_component!(@feature $($feature)?);
            #[$crate::__private::linkme::distributed_slice($crate::registry::COMPONENTS)]
            #[linkme(crate = $crate::__private::linkme)]
            static RECORD: $crate::registry::ComponentRecord = $crate::registry::ComponentRecord {
                name: $name,
                kind: $kind,
                interface: $iface,
                summary: $summary,
                docs: $crate::register_component!(@docs $summary $(, $docs)?),
                id: $id,
                crate_name: ::core::env!("CARGO_PKG_NAME"),
                feature: FEATURE,
                default: $crate::register_component!(@default FEATURE $($(, $default)?)?),
            };
        };
    };
}

/// Two components that claim the same fixed id.
#[derive(Debug, Clone, Copy)]
pub struct IdConflict {
    /// The contested id.
    pub id: EbbId,
    /// One claimant.
    pub first: &'static ComponentRecord,
    /// The other.
    pub second: &'static ComponentRecord,
}

impl fmt::Display for IdConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is claimed by both {} ({}) and {} ({})",
            crate::ebb::IdName(self.id),
            self.first.interface,
            self.first.crate_name,
            self.second.interface,
            self.second.crate_name
        )
    }
}

/// Checks that no two registered components claim one fixed id. Runtimes
/// call this before any core starts: a conflict would make two types share
/// a translation-table entry.
pub fn check_static_ids() -> Result<(), IdConflict> {
    check(&COMPONENTS)
}

fn check(records: &'static [ComponentRecord]) -> Result<(), IdConflict> {
    for (i, a) in records.iter().enumerate() {
        let Some(id) = a.id else { continue };
        if let Some(b) = records[i + 1..].iter().find(|b| b.id == Some(id)) {
            return Err(IdConflict {
                id,
                first: a,
                second: b,
            });
        }
    }
    Ok(())
}

/// Why a runtime refuses to start: the components linked into the image
/// do not fit together.
#[derive(Debug, Clone, Copy)]
pub enum StartCheckError {
    /// Two components claim one fixed id.
    Ids(IdConflict),
    /// A service every image needs (the console) has no single
    /// implementation.
    Unbound(crate::ebb::BindError),
}

impl fmt::Display for StartCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartCheckError::Ids(e) => write!(f, "component id conflict: {e}"),
            StartCheckError::Unbound(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for StartCheckError {}

/// What runtimes check before any core starts: no two components claim one
/// fixed id ([`check_static_ids`]), and the services every image needs —
/// the console — have exactly one implementation.
pub fn check_start() -> Result<(), StartCheckError> {
    check_static_ids().map_err(StartCheckError::Ids)?;
    crate::ebb::binding::<dyn crate::console::Console>().map_err(StartCheckError::Unbound)?;
    Ok(())
}

/// Looks a component up by type name.
pub fn find(name: &str) -> Option<&'static ComponentRecord> {
    COMPONENTS.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (COMPONENTS)")]
    fn id_allocator_is_registered() {
        let r = find("IdAllocator").expect("registered");
        assert_eq!(r.kind, EbbKind::Shared);
        assert_eq!(r.id, Some(crate::ebb::ids::ID_ALLOCATOR));
        check_static_ids().unwrap();
    }

    #[test]
    fn conflicts_name_well_known_ids() {
        static RECS: [ComponentRecord; 2] = [REC_GP, REC_GP];
        const REC_GP: ComponentRecord = ComponentRecord {
            name: "Gp",
            kind: EbbKind::Shared,
            interface: "gp::Gp",
            summary: "",
            docs: "",
            id: Some(crate::ebb::ids::GP_ALLOCATOR),
            crate_name: "gp",
            feature: None,
            default: true,
        };
        let e = check(&RECS).unwrap_err().to_string();
        assert!(
            e.starts_with("GP_ALLOCATOR (5) is claimed by both gp::Gp (gp)"),
            "{e}"
        );
    }

    #[test]
    fn conflicts_are_found() {
        static RECS: [ComponentRecord; 2] = [
            ComponentRecord {
                name: "A",
                kind: EbbKind::Shared,
                interface: "a::A",
                summary: "",
                docs: "",
                id: Some(EbbId::new(300)),
                crate_name: "a",
                feature: None,
                default: true,
            },
            ComponentRecord {
                name: "B",
                kind: EbbKind::PerCore,
                interface: "b::B",
                summary: "",
                docs: "",
                id: Some(EbbId::new(300)),
                crate_name: "b",
                feature: None,
                default: true,
            },
        ];
        let e = check(&RECS).unwrap_err();
        assert_eq!(e.id, EbbId::new(300));
        assert!(e.to_string().contains("a::A") && e.to_string().contains("b::B"));
        assert!(e.to_string().starts_with("ebb#300 is claimed"), "{e}");
        assert!(check(&RECS[..1]).is_ok());
    }
}
