//! `#[ebb(...)]`: parse the arguments, check the struct, emit the trait
//! impls and the component record.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, GenericParam, Ident, Item, ItemStruct, LitStr, Path, Token, Type};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    PerCore,
    Shared,
}

/// An argument's value and the span of its key, for errors about the key.
struct Arg<T> {
    key: Span,
    value: T,
}

#[derive(Default)]
struct Args {
    kind: Option<Arg<Kind>>,
    id: Option<Arg<Expr>>,
    root: Option<Arg<Type>>,
    new: Option<Arg<Path>>,
    root_new: Option<Arg<Path>>,
    feature: Option<Arg<LitStr>>,
    static_rep: Option<Arg<Path>>,
    interface: Option<Arg<Path>>,
    distributed: Option<Arg<Vec<Path>>>,
    default: Option<Span>,
}

const ARGUMENTS: &str = "`id`, `root`, `new`, `root_new`, `static_rep`, `interface`, `feature`, \
     `distributed(Request, ...)` or `default`";

impl Args {
    fn parse(tokens: TokenStream) -> syn::Result<Args> {
        let mut args = Args::default();
        let parser = syn::meta::parser(|meta| {
            let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
                return Err(meta.error(format_args!(
                    "unknown #[ebb] argument; expected an Ebb kind or {ARGUMENTS}"
                )));
            };
            let span = meta.path.span();
            let has_value = meta.input.peek(Token![=]);
            match key.as_str() {
                "default" if !has_value => {
                    if args.default.replace(span).is_some() {
                        return Err(meta.error("duplicate #[ebb] argument `default`"));
                    }
                    Ok(())
                }
                "distributed" => {
                    if has_value || !meta.input.peek(syn::token::Paren) {
                        return Err(meta.error(
                            "`distributed` lists the requests the Ebb serves: \
                             `distributed(Put, Get)`",
                        ));
                    }
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let list =
                        syn::punctuated::Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                    if list.is_empty() {
                        return Err(meta.error(
                            "`distributed` lists the requests the Ebb serves: \
                             `distributed(Put, Get)`",
                        ));
                    }
                    if set(&mut args.distributed, span, list.into_iter().collect()) {
                        return Err(meta.error("duplicate #[ebb] argument `distributed`"));
                    }
                    Ok(())
                }
                "per_core" | "shared" => {
                    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                        return Err(meta.error(format_args!("the Ebb kind `{key}` takes no value")));
                    }
                    if args.kind.is_some() {
                        return Err(meta
                            .error("duplicate Ebb kind: an Ebb is either `per_core` or `shared`"));
                    }
                    let value = if key == "per_core" {
                        Kind::PerCore
                    } else {
                        Kind::Shared
                    };
                    args.kind = Some(Arg { key: span, value });
                    Ok(())
                }
                "id" | "root" | "new" | "root_new" | "feature" | "static_rep" | "interface" => {
                    if !has_value {
                        let example = match key.as_str() {
                            "id" => "id = EXPR",
                            "root" => "root = TYPE",
                            "feature" => "feature = \"name\"",
                            "interface" => "interface = path::to::Trait",
                            _ => "= path::to::function",
                        };
                        return Err(meta.error(format_args!("`{key}` needs a value: `{example}`")));
                    }
                    let value = meta.value()?;
                    let dup = match key.as_str() {
                        "id" => set(&mut args.id, span, value.parse()?),
                        "root" => set(&mut args.root, span, value.parse()?),
                        "new" => set(&mut args.new, span, value.parse()?),
                        "root_new" => set(&mut args.root_new, span, value.parse()?),
                        "static_rep" => set(&mut args.static_rep, span, value.parse()?),
                        "interface" => set(&mut args.interface, span, value.parse()?),
                        _ => {
                            let expr: Expr = value.parse()?;
                            let Expr::Lit(syn::ExprLit {
                                lit: syn::Lit::Str(name),
                                ..
                            }) = expr
                            else {
                                return Err(syn::Error::new(
                                    expr.span(),
                                    "`feature` names a Cargo feature: `feature = \"name\"`",
                                ));
                            };
                            set(&mut args.feature, span, name)
                        }
                    };
                    if dup {
                        return Err(syn::Error::new(
                            span,
                            format_args!("duplicate #[ebb] argument `{key}`"),
                        ));
                    }
                    Ok(())
                }
                _ if has_value || !meta.input.is_empty() && !meta.input.peek(Token![,]) => {
                    Err(meta.error(format_args!(
                        "unknown #[ebb] argument `{key}`; expected {ARGUMENTS}"
                    )))
                }
                _ => Err(meta.error(format_args!(
                    "unknown Ebb kind `{key}`; expected `per_core` or `shared`"
                ))),
            }
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(args)
    }
}

/// An error at the first of `given` (an argument's key, if it was given,
/// and its name) that is present: "`name` why".
fn refuse<const N: usize>(given: [(Option<Span>, &str); N], why: &str) -> syn::Result<()> {
    match given.into_iter().find_map(|(key, name)| Some((key?, name))) {
        Some((key, name)) => Err(syn::Error::new(key, format_args!("`{name}` {why}"))),
        None => Ok(()),
    }
}

/// Sets `slot`; returns whether it was already set.
fn set<T>(slot: &mut Option<Arg<T>>, key: Span, value: T) -> bool {
    let dup = slot.is_some();
    *slot = Some(Arg { key, value });
    dup
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    crate::or_item(try_expand(args, item.clone()), item)
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = Args::parse(args)?;
    let item = check_item(syn::parse2(item)?)?;
    let Some(kind) = &args.kind else {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing Ebb kind: write #[ebb(per_core, ...)] or #[ebb(shared, ...)]",
        ));
    };
    let core = crate::paths::core_path()?;
    check_needs_id(&args)?;
    if let (Some(d), None) = (args.default, &args.feature) {
        return Err(syn::Error::new(
            d,
            "`default` marks the component a facade feature selects by default: add `feature = \"name\"`",
        ));
    }
    let kind_impl = match (&args.static_rep, kind.value) {
        (Some(rep), _) => static_rep(&core, &args, &item, &rep.value)?,
        (None, Kind::PerCore) => per_core(&core, &args, &item)?,
        (None, Kind::Shared) => shared(&core, &args, &item)?,
    };
    let binding = args
        .interface
        .as_ref()
        .map(|i| binding(&core, &args, &item, &i.value));
    let ident = &item.ident;
    let static_impl = args.id.as_ref().map(|id| {
        let id = &id.value;
        quote! {
            #core::__static_ebb!(#ident, #id);
        }
    });
    let distributed = match &args.distributed {
        Some(d) => Some(distributed(&core, &args, &item, kind.value, d)?),
        None => None,
    };
    let record = record(&core, &args, &item, kind.value);
    Ok(quote! {
        #item
        #kind_impl
        #static_impl
        #binding
        #distributed
        #record
    })
}

/// A distributed Ebb: `Distributed` and its link-time registration, which
/// installs a handler per request type when the node's messenger starts.
fn distributed(
    core: &TokenStream,
    args: &Args,
    item: &ItemStruct,
    kind: Kind,
    requests: &Arg<Vec<Path>>,
) -> syn::Result<TokenStream> {
    if kind != Kind::PerCore || args.static_rep.is_some() {
        return Err(syn::Error::new(
            requests.key,
            "a distributed Ebb is `per_core` (a representative per core on each node)",
        ));
    }
    if args.id.is_none() {
        return Err(syn::Error::new(
            requests.key,
            "a distributed Ebb has the same well-known id on every node: add `id = EXPR`",
        ));
    }
    let msg = crate::paths::messenger_path()?;
    let ident = &item.ident;
    let name = ident.to_string();
    let serve = requests.value.iter().map(|r| {
        quote_spanned! {r.span()=>
            #msg::distributed::serve::<#ident, #r>(m)?;
        }
    });
    Ok(quote! {
        impl #msg::Distributed for #ident {
            const NAME: &'static str = #name;
        }
        const _: () = {
            #[#core::__private::linkme::distributed_slice(#msg::distributed::DISTRIBUTED)]
            #[linkme(crate = #core::__private::linkme)]
            static REGISTRATION: #msg::distributed::Registration = #msg::distributed::Registration {
                name: #name,
                id: <#ident as #core::StaticEbb>::ID,
                register: |m| {
                    #(#serve)*
                    ::core::result::Result::Ok(())
                },
            };
        };
    })
}

/// `static_rep` and `interface` name an Ebb at a well-known id.
fn check_needs_id(args: &Args) -> syn::Result<()> {
    if args.id.is_some() {
        return Ok(());
    }
    if let Some(a) = &args.static_rep {
        return Err(syn::Error::new(
            a.key,
            "`static_rep` serves the representatives of an Ebb with a fixed `id`: add `id = EXPR`",
        ));
    }
    if let Some(a) = &args.interface {
        return Err(syn::Error::new(
            a.key,
            "an implementation of an interface lives at the interface's well-known id: add \
             `id = EXPR` (the id the interface names)",
        ));
    }
    Ok(())
}

/// An Ebb whose representatives live in static storage: its miss path
/// calls `rep()` (a `fn() -> &'static Self`, this core's representative)
/// and never allocates, as the allocators need.
fn static_rep(
    core: &TokenStream,
    args: &Args,
    item: &ItemStruct,
    rep: &Path,
) -> syn::Result<TokenStream> {
    refuse(
        [
            (args.new.as_ref().map(|a| a.key), "new"),
            (args.root.as_ref().map(|a| a.key), "root"),
            (args.root_new.as_ref().map(|a| a.key), "root_new"),
        ],
        "builds representatives on the heap; `static_rep` serves them from static storage: \
         use one or the other",
    )?;
    let ident = &item.ident;
    let name = ident.to_string();
    let call = quote_spanned!(rep.span()=> #rep());
    Ok(quote! {
        impl #core::Ebb for #ident {
            #[inline]
            fn miss(id: #core::EbbId) -> &'static Self {
                ::core::assert!(
                    id == <Self as #core::StaticEbb>::ID,
                    "{} lives only at its well-known id {}, not {}",
                    #name,
                    <Self as #core::StaticEbb>::ID,
                    id,
                );
                #call
            }
        }
    })
}

/// The implementation's entry in the interface's link-time list, and a
/// compile-time check that the Ebb sits at the interface's id.
fn binding(core: &TokenStream, args: &Args, item: &ItemStruct, iface: &Path) -> TokenStream {
    let ident = &item.ident;
    let name = ident.to_string();
    let get = match &args.static_rep {
        Some(rep) => {
            let rep = &rep.value;
            quote!(|| -> &'static dyn #iface { #rep() })
        }
        // On a core through the translation table; elsewhere (a thread that
        // is no core: a shared Ebb's instance serves it) the miss path.
        None => quote!(|| -> &'static dyn #iface {
            if #core::cpu::try_current().is_some() {
                #core::EbbRef::<#ident>::fixed().get()
            } else {
                <#ident as #core::Ebb>::miss(<#ident as #core::StaticEbb>::ID)
            }
        }),
    };
    let msg = format!(
        "{name} implements an interface at a different id than the interface's well-known id"
    );
    quote_spanned! {iface.span()=>
        const _: () = {
            ::core::assert!(
                <dyn #iface as #core::ebb::Interface>::ID.raw()
                    == <#ident as #core::StaticEbb>::ID.raw(),
                #msg
            );
            #[#core::__private::linkme::distributed_slice(#iface)]
            #[linkme(crate = #core::__private::linkme)]
            static BINDING: #core::ebb::Binding<dyn #iface> = #core::ebb::Binding {
                component: #name,
                crate_name: ::core::env!("CARGO_PKG_NAME"),
                get: #get,
            };
        };
    }
}

fn check_item(item: Item) -> syn::Result<ItemStruct> {
    let (span, what) = match item {
        Item::Struct(s) => {
            check_generics(&s)?;
            return Ok(s);
        }
        Item::Enum(e) => (e.enum_token.span, "an enum"),
        Item::Union(u) => (u.union_token.span, "a union"),
        Item::Fn(f) => (f.sig.fn_token.span, "a function"),
        other => (other.span(), "this item"),
    };
    Err(syn::Error::new(
        span,
        format_args!("#[ebb] applies to a struct (the Ebb's representative type), not to {what}"),
    ))
}

fn check_generics(s: &ItemStruct) -> syn::Result<()> {
    for p in &s.generics.params {
        if let GenericParam::Lifetime(l) = p {
            return Err(syn::Error::new(
                l.span(),
                "#[ebb] types cannot have lifetime parameters: a representative lives as long as the program",
            ));
        }
    }
    if !s.generics.params.is_empty() {
        return Err(syn::Error::new(
            s.generics.params.span(),
            "an EbbId names one concrete type: #[ebb] types cannot be generic",
        ));
    }
    if let Some(w) = &s.generics.where_clause {
        return Err(syn::Error::new(
            w.span(),
            "#[ebb] types cannot have a where clause",
        ));
    }
    Ok(())
}

/// `Default::default()` of `ty`, through a local trait whose
/// `on_unimplemented` says what to do when `ty` is not `Default`: the
/// error (at `span`) is ours, with rustc's `#[derive(Default)]` hint below.
fn by_default(ty: &TokenStream, span: Span, message: &str, label: &str) -> TokenStream {
    quote_spanned! {span=>
        {
            #[diagnostic::on_unimplemented(message = #message, label = #label)]
            trait BuildByDefault: ::core::marker::Sized {
                fn build() -> Self;
            }
            impl<T: ::core::default::Default> BuildByDefault for T {
                fn build() -> Self {
                    T::default()
                }
            }
            <#ty as BuildByDefault>::build()
        }
    }
}

fn per_core(core: &TokenStream, args: &Args, item: &ItemStruct) -> syn::Result<TokenStream> {
    let ident = &item.ident;
    let new_rep = match &args.new {
        Some(new) => {
            let path = &new.value;
            quote_spanned!(path.span()=> #path(root, core))
        }
        None => {
            let build = by_default(
                &quote!(Self),
                Span::call_site(),
                "a per-core Ebb needs a way to build its representatives, and `{Self}` is not `Default`",
                "add `new = path::to::fn` (a `fn(&'static PerCoreRoot<Self>, CoreId) -> Self`) \
                 to #[ebb(...)], or #[derive(Default)] to the struct",
            );
            quote!({
                let _ = (root, core);
                #build
            })
        }
    };
    let root = match &args.root {
        Some(r) => {
            let ty = &r.value;
            quote!(#ty)
        }
        None => quote!(()),
    };
    let new_root = match (&args.id, &args.root_new) {
        (Some(_), Some(f)) => {
            let path = &f.value;
            Some(quote_spanned!(path.span()=> #path()))
        }
        (Some(_), None) => {
            let span = args
                .root
                .as_ref()
                .map_or_else(Span::call_site, |r| r.value.span());
            Some(by_default(
                &root,
                span,
                "the root of a per-core Ebb with a fixed `id` is built at its first use, and `{Self}` is not `Default`",
                "add `root_new = path::to::fn` (a `fn() -> Root`) to #[ebb(...)], or make the root type `Default`",
            ))
        }
        (None, Some(f)) => {
            return Err(syn::Error::new(
                f.key,
                "`root_new` builds the root of an Ebb with a fixed `id`; an Ebb without one gets its root \
                 from `PerCore::create(root)`",
            ));
        }
        (None, None) => None,
    };
    let new_root = new_root.map(|make| {
        quote! {
            fn new_root() -> ::core::option::Option<Self::Root> {
                ::core::option::Option::Some(#make)
            }
        }
    });
    Ok(quote! {
        impl #core::Ebb for #ident {
            #[inline]
            fn miss(id: #core::EbbId) -> &'static Self {
                #core::ebb::per_core_miss::<Self>(id)
            }
        }
        impl #core::PerCore for #ident {
            type Root = #root;
            fn new_rep(root: &'static #core::PerCoreRoot<Self>, core: #core::cpu::CoreId) -> Self {
                #new_rep
            }
            #new_root
        }
    })
}

fn shared(core: &TokenStream, args: &Args, item: &ItemStruct) -> syn::Result<TokenStream> {
    refuse(
        [
            (args.root.as_ref().map(|a| a.key), "root"),
            (args.root_new.as_ref().map(|a| a.key), "root_new"),
        ],
        "only applies to per-core Ebbs: the single instance of a shared Ebb holds its own state",
    )?;
    let ident = &item.ident;
    let new_instance = match (&args.id, &args.new) {
        (Some(_), Some(new)) => {
            let path = &new.value;
            Some(quote_spanned!(path.span()=> #path()))
        }
        (Some(_), None) => Some(by_default(
            &quote!(Self),
            Span::call_site(),
            "a shared Ebb with a fixed `id` needs a way to build its instance, and `{Self}` is not `Default`",
            "add `new = path::to::fn` (a `fn() -> Self`) to #[ebb(...)], or #[derive(Default)] to the struct",
        )),
        (None, Some(new)) => {
            return Err(syn::Error::new(
                new.key,
                "`new` builds the instance of a shared Ebb with a fixed `id`; an Ebb without one gets its \
                 instance from `Shared::create(instance)`",
            ));
        }
        (None, None) => None,
    };
    let new_instance = new_instance.map(|make| {
        quote! {
            fn new_instance() -> ::core::option::Option<Self> {
                ::core::option::Option::Some(#make)
            }
        }
    });
    // The impl is the `Sync` assertion (`Shared: Sync`): spanned at the
    // struct's name, a `!Sync` type is reported there, once: "`Cell<u32>`
    // cannot be shared between threads safely ... required by a bound in
    // `Shared`". A separate assertion would only repeat that error.
    let shared_impl = quote_spanned! {ident.span()=>
        impl #core::Shared for #ident {
            #new_instance
        }
    };
    Ok(quote! {
        impl #core::Ebb for #ident {
            #[inline]
            fn miss(id: #core::EbbId) -> &'static Self {
                #core::ebb::shared_miss::<Self>(id)
            }
        }
        #shared_impl
    })
}

/// The doc comment of the struct: all of it, and its first paragraph.
fn docs(attrs: &[Attribute]) -> (String, String) {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        let syn::Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        // `#[doc = include_str!(..)]` and other macros are not expanded here.
        let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = &nv.value
        else {
            continue;
        };
        // Not `lines()`: an empty `///` line is a paragraph break.
        for line in s.value().split('\n') {
            lines.push(
                line.strip_prefix(' ')
                    .unwrap_or(line)
                    .trim_end()
                    .to_string(),
            );
        }
    }
    let start = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(start, |i| i + 1);
    let lines = &lines[start..end];
    let summary = lines
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    (lines.join("\n"), summary)
}

fn record(core: &TokenStream, args: &Args, item: &ItemStruct, kind: Kind) -> TokenStream {
    let ident = &item.ident;
    let name = ident.to_string();
    let (mut docs, summary) = docs(&item.attrs);
    if let Some(d) = &args.distributed {
        let served: Vec<String> = d
            .value
            .iter()
            .map(|p| {
                let p = quote!(#p).to_string().replace(' ', "");
                format!("`{p}`")
            })
            .collect();
        docs.push_str(&format!(
            "\n\nDistributed: a representative on every node of the application, \
             reached from any node with `{name}::on(node).call(&request)`; serves {}.",
            served.join(", ")
        ));
    }
    let kind = match kind {
        Kind::PerCore => quote!(#core::EbbKind::PerCore),
        Kind::Shared => quote!(#core::EbbKind::Shared),
    };
    let id = match &args.id {
        Some(_) => quote!(::core::option::Option::Some(<#ident as #core::StaticEbb>::ID)),
        None => quote!(::core::option::Option::None),
    };
    let feature = args.feature.as_ref().map(|f| {
        let f = &f.value;
        let default = args.default.is_some();
        quote!(, feature: #f, default: #default)
    });
    let interface = match &args.interface {
        Some(i) => {
            let i = &i.value;
            quote!(<dyn #i as #core::ebb::Interface>::NAME)
        }
        None => quote!(::core::concat!(::core::module_path!(), "::", #name)),
    };
    quote! {
        #core::register_component! {
            #ident {
                name: #name,
                kind: #kind,
                interface: #interface,
                summary: #summary,
                id: #id,
                docs: #docs
                #feature
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(src: &str) -> Vec<Attribute> {
        let item: ItemStruct = syn::parse_str(&format!("{src} struct S;")).unwrap();
        item.attrs
    }

    #[test]
    fn summary_is_the_first_paragraph() {
        let (docs, summary) = docs(&attrs(
            "///\n/// Counts hits\n/// on each core.\n///\n/// More *detail*.\n///   indented\n///\n",
        ));
        assert_eq!(summary, "Counts hits on each core.");
        assert_eq!(
            docs,
            "Counts hits\non each core.\n\nMore *detail*.\n  indented"
        );
    }

    #[test]
    fn block_docs_and_no_docs() {
        let (docs, summary) = docs(&attrs("/** One line.\n  Two.\n\n Three. */"));
        assert_eq!(summary, "One line. Two.");
        assert!(docs.ends_with("Three."), "{docs:?}");
        assert_eq!(
            super::docs(&attrs("#[derive(Debug)]")),
            (String::new(), String::new())
        );
    }

    fn parse_err(args: &str) -> String {
        match Args::parse(args.parse().unwrap()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            parse_err("per_core, id = ids::app(3), root = Vec<u8>, feature = \"x\""),
            "ok"
        );
        assert_eq!(
            parse_err("percore"),
            "unknown Ebb kind `percore`; expected `per_core` or `shared`"
        );
        assert_eq!(
            parse_err("per_core, shared"),
            "duplicate Ebb kind: an Ebb is either `per_core` or `shared`"
        );
        assert_eq!(
            parse_err("shared, id = 1, id = 2"),
            "duplicate #[ebb] argument `id`"
        );
        assert!(parse_err("shared, size = 3").starts_with("unknown #[ebb] argument `size`"));
        assert_eq!(parse_err("shared, id"), "`id` needs a value: `id = EXPR`");
        assert_eq!(
            parse_err("shared = 1"),
            "the Ebb kind `shared` takes no value"
        );
    }

    #[test]
    fn distributed_lists_requests() {
        assert_eq!(
            parse_err("per_core, id = ids::app(1), distributed(Put, a::Get)"),
            "ok"
        );
        let want = "`distributed` lists the requests the Ebb serves: `distributed(Put, Get)`";
        assert_eq!(parse_err("per_core, distributed"), want);
        assert_eq!(parse_err("per_core, distributed()"), want);
        assert_eq!(parse_err("per_core, distributed = Put"), want);
        assert_eq!(
            parse_err("per_core, distributed(A), distributed(B)"),
            "duplicate #[ebb] argument `distributed`"
        );
        let args = Args::parse("per_core, distributed(Put, a::Get)".parse().unwrap()).unwrap();
        let d = args.distributed.unwrap().value;
        assert_eq!(d.len(), 2);
    }
}
