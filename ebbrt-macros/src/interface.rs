//! `#[interface(id = ...)]`: make a trait the interface of a swappable
//! service: a well-known id and a link-time list of implementations.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, Item, ItemTrait};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::or_item(try_expand(args, item.clone()), item)
}

fn parse_id(args: TokenStream) -> syn::Result<Expr> {
    let mut id = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("id") {
            if id.is_some() {
                return Err(meta.error("duplicate #[interface] argument `id`"));
            }
            id = Some(meta.value()?.parse::<Expr>()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[interface] argument; expected `id = EXPR`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    id.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "an interface names the well-known id its implementations live at: \
             #[interface(id = EXPR)]",
        )
    })
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let id = parse_id(args)?;
    let tr: ItemTrait = match syn::parse2::<Item>(item)? {
        Item::Trait(t) => t,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[interface] applies to a trait (the contract implementations meet)",
            ));
        }
    };
    if !tr.generics.params.is_empty() {
        return Err(syn::Error::new(
            tr.generics.span(),
            "an interface is used as a trait object at one id: it cannot be generic",
        ));
    }
    let core = crate::paths::core_path()?;
    let ident = &tr.ident;
    let vis = &tr.vis;
    let name = ident.to_string();
    // The list shares the trait's name in the value (and macro) namespace,
    // so that `interface = path::Trait` finds both from one path.
    Ok(quote! {
        #tr

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[#core::__private::linkme::distributed_slice]
        #[linkme(crate = #core::__private::linkme)]
        #vis static #ident: [#core::ebb::Binding<dyn #ident>];

        impl #core::ebb::Interface for dyn #ident {
            const ID: #core::EbbId = #id;
            const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name);
            fn bindings() -> &'static [#core::ebb::Binding<Self>] {
                &#ident
            }
        }
    })
}
