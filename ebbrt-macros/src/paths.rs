//! Where the generated code finds `ebbrt-core` and the facade.
//!
//! A component crate depends on `ebbrt-core` directly; an application
//! depends only on the facade `ebbrt`, which re-exports the core under
//! `ebbrt::__rt::ebbrt_core`. `proc-macro-crate` reads the calling crate's
//! `Cargo.toml` (renamed dependencies included) to tell the two apart.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};

/// The path of `ebbrt-core` as seen from the crate being compiled.
pub(crate) fn core_path() -> syn::Result<TokenStream> {
    resolve_core(
        crate_name("ebbrt-core").ok(),
        crate_name("ebbrt").ok(),
        std::env::var("CARGO_CRATE_NAME").ok().as_deref(),
        std::env::var_os("UNSTABLE_RUSTDOC_TEST_PATH").is_some(),
    )
    .map_err(|msg| syn::Error::new(Span::call_site(), msg))
}

/// The path of the facade `ebbrt` (for entry points, which need a runtime).
pub(crate) fn facade_path() -> syn::Result<TokenStream> {
    resolve_facade(crate_name("ebbrt").ok()).map_err(|msg| syn::Error::new(Span::call_site(), msg))
}

/// The path of `ebbrt-messenger` (for distributed Ebbs), which the crate
/// being compiled must depend on.
pub(crate) fn messenger_path() -> syn::Result<TokenStream> {
    match crate_name("ebbrt-messenger") {
        // Only the library itself may say `crate`; its tests link it by name.
        Ok(FoundCrate::Itself)
            if std::env::var("CARGO_CRATE_NAME").as_deref() == Ok("ebbrt_messenger") =>
        {
            Ok(quote!(crate))
        }
        Ok(FoundCrate::Itself) => Ok(quote!(::ebbrt_messenger)),
        Ok(FoundCrate::Name(name)) => {
            let name = format_ident!("{name}");
            Ok(quote!(::#name))
        }
        Err(_) => Err(syn::Error::new(
            Span::call_site(),
            "a distributed Ebb is reached through the messenger: add the `ebbrt-messenger` \
             crate to [dependencies]",
        )),
    }
}

/// `core`/`facade`: what `proc-macro-crate` found; `crate_name`: the
/// `CARGO_CRATE_NAME` of the crate being compiled; `doctest`: whether
/// rustdoc is compiling a doctest.
fn resolve_core(
    core: Option<FoundCrate>,
    facade: Option<FoundCrate>,
    crate_name: Option<&str>,
    doctest: bool,
) -> Result<TokenStream, String> {
    match (core, facade) {
        // `Itself` is reported for every target of the `ebbrt-core` package;
        // only its library may say `crate`, its tests and doctests link the
        // library under its name.
        (Some(FoundCrate::Itself), _) if crate_name == Some("ebbrt_core") && !doctest => {
            Ok(quote!(crate))
        }
        (Some(FoundCrate::Itself), _) => Ok(quote!(::ebbrt_core)),
        (Some(FoundCrate::Name(name)), _) => {
            let name = format_ident!("{name}");
            Ok(quote!(::#name))
        }
        (None, Some(facade)) => {
            let facade = facade_tokens(facade);
            Ok(quote!(#facade::__rt::ebbrt_core))
        }
        (None, None) => Err(
            "EbbRT macros need the `ebbrt` crate (or `ebbrt-core`) in this crate's [dependencies]"
                .to_string(),
        ),
    }
}

fn resolve_facade(facade: Option<FoundCrate>) -> Result<TokenStream, String> {
    match facade {
        Some(f) => Ok(facade_tokens(f)),
        None => Err(
            "#[ebbrt::main] and ebbrt::test_main!() start a runtime: add the `ebbrt` crate to [dependencies]"
                .to_string(),
        ),
    }
}

fn facade_tokens(found: FoundCrate) -> TokenStream {
    match found {
        FoundCrate::Itself => quote!(crate),
        FoundCrate::Name(name) => {
            let name = format_ident!("{name}");
            quote!(::#name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(
        core: Option<FoundCrate>,
        facade: Option<FoundCrate>,
        krate: Option<&str>,
        doctest: bool,
    ) -> String {
        match resolve_core(core, facade, krate, doctest) {
            Ok(ts) => ts.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    fn name(n: &str) -> Option<FoundCrate> {
        Some(FoundCrate::Name(n.to_string()))
    }

    #[test]
    fn a_direct_dependency_on_the_core_wins() {
        assert_eq!(
            core(name("ebbrt_core"), name("ebbrt"), Some("app"), false),
            ":: ebbrt_core"
        );
        assert_eq!(core(name("core2"), None, Some("app"), false), ":: core2");
    }

    #[test]
    fn facade_only_crates_go_through_the_facade() {
        assert_eq!(
            core(None, name("ebbrt"), Some("app"), false),
            ":: ebbrt :: __rt :: ebbrt_core"
        );
        assert_eq!(
            core(None, name("rt"), Some("app"), false),
            ":: rt :: __rt :: ebbrt_core"
        );
    }

    #[test]
    fn inside_the_core_package_only_its_library_says_crate() {
        let itself = || Some(FoundCrate::Itself);
        assert_eq!(core(itself(), None, Some("ebbrt_core"), false), "crate");
        assert_eq!(
            core(itself(), name("ebbrt"), Some("qemu_exec"), false),
            ":: ebbrt_core"
        );
        assert_eq!(
            core(itself(), None, Some("ebbrt_core"), true),
            ":: ebbrt_core"
        );
    }

    #[test]
    fn no_dependency_is_a_clear_error() {
        assert!(
            core(None, None, Some("app"), false)
                .contains("`ebbrt` crate (or `ebbrt-core`) in this crate's [dependencies]")
        );
        assert!(
            resolve_facade(None)
                .unwrap_err()
                .contains("add the `ebbrt` crate")
        );
        assert_eq!(
            resolve_facade(name("ebbrt")).unwrap().to_string(),
            ":: ebbrt"
        );
    }
}
