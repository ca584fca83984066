//! Entry points: `#[ebbrt::main]` and `#[ebbrt::test]`.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, ReturnType};

pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_main(args, item) {
        Ok(out) => out,
        Err(e) => {
            // The attributed fn was meant to be `main`: stand in for it, so
            // that rustc does not add "`main` function not found" to ours.
            let e = e.to_compile_error();
            quote! {
                #e
                #[cfg(not(target_os = "none"))]
                fn main() {}
            }
        }
    }
}

fn try_main(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    const WHAT: &str = "#[ebbrt::main]";
    no_args(WHAT, args)?;
    let f = the_fn(WHAT, "an `async fn main()`", item)?;
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            f.sig.fn_token.span,
            "#[ebbrt::main] needs an `async fn`: it runs as the first task of core 0",
        ));
    }
    check_signature(WHAT, &f)?;
    let facade = crate::paths::facade_path()?;
    let mut inner = f;
    inner.sig.ident = format_ident!("__ebbrt_main");
    inner.vis = syn::Visibility::Inherited;
    // An error about the result type (`R: AppResult`) points at it.
    let span = match &inner.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
    };
    let start = respan(quote!(#facade::__rt::start_main(__ebbrt_main)), span);
    Ok(quote! {
        #[cfg(not(target_os = "none"))]
        fn main() {
            #inner
            #start
        }

        /// The application's entry, called by the native kernel on its boot
        /// core once the kernel is up.
        #[cfg(target_os = "none")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __ebbrt_app_main() -> ! {
            #inner
            #start
        }
    })
}

pub(crate) fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    // Keep the fn, so that callers of it see no further errors.
    crate::or_item(try_test(args, item.clone()), item)
}

fn try_test(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    const WHAT: &str = "#[ebbrt::test]";
    no_args(WHAT, args)?;
    let f = the_fn(WHAT, "a test function", item)?;
    check_signature(WHAT, &f)?;
    let core = crate::paths::core_path()?;
    let ident = &f.sig.ident;
    let name = ident.to_string();
    // An error about the result type (`TestOutcome`) points at it.
    let span = match &f.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    let case = if f.sig.asyncness.is_some() {
        quote!(#core::test_support::async_case(#ident()))
    } else {
        quote!(#core::test_support::sync_case(#ident))
    };
    let case = respan(case, span);
    Ok(quote! {
        #f
        const _: () = {
            fn run() -> #core::test_support::TestFuture {
                #case
            }
            #[#core::__private::linkme::distributed_slice(#core::test_support::TEST_CASES)]
            #[linkme(crate = #core::__private::linkme)]
            static CASE: #core::test_support::TestCase = #core::test_support::TestCase {
                name: #core::test_support::case_name(::core::concat!(::core::module_path!(), "::", #name)),
                run,
            };
        };
    })
}

fn no_args(what: &str, args: TokenStream) -> syn::Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new(
            args.span(),
            format_args!("{what} takes no arguments"),
        ))
    }
}

fn the_fn(what: &str, expected: &str, item: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item)? {
        Item::Fn(f) => Ok(f),
        other => Err(syn::Error::new(
            item_keyword_span(&other),
            format_args!("{what} applies to a function: write it on {expected}"),
        )),
    }
}

/// The span of the keyword that says what an item is (`struct`, `mod`...).
fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Struct(s) => s.struct_token.span,
        Item::Enum(e) => e.enum_token.span,
        Item::Const(c) => c.const_token.span,
        Item::Static(s) => s.static_token.span,
        Item::Mod(m) => m.mod_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Trait(t) => t.trait_token.span,
        Item::Type(t) => t.type_token.span,
        Item::Union(u) => u.union_token.span,
        Item::Use(u) => u.use_token.span,
        other => other.span(),
    }
}

fn check_signature(what: &str, f: &ItemFn) -> syn::Result<()> {
    let sig = &f.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format_args!("{what} functions cannot be generic: nothing would choose the type"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format_args!(
                "{what} functions take no parameters (read boot arguments with `ebbrt::runtime::boot_arg`)"
            ),
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(
            u.span,
            format_args!("{what} functions cannot be `unsafe`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            format_args!("{what} functions cannot have an ABI"),
        ));
    }
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(
            c.span,
            format_args!("{what} functions cannot be `const`"),
        ));
    }
    Ok(())
}

/// `tokens` with every span set to `span`, so that a type error in the
/// generated call is reported at the user's code that caused it.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let TokenTree::Group(g) = &t {
                let mut inner = Group::new(g.delimiter(), respan(g.stream(), span));
                inner.set_span(span);
                t = TokenTree::Group(inner);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}
