//! # ebbrt-macros
//!
//! The attribute macros of EbbRT, re-exported by the facade `ebbrt`:
//!
//! - [`macro@ebb`] — `#[ebb(per_core | shared, ...)]` on a struct declares an
//!   Elastic Building Block: it implements `Ebb` (the miss handler),
//!   `PerCore` or `Shared`, `StaticEbb` when the Ebb has a fixed id, and
//!   leaves a `ComponentRecord` in the link-time component registry.
//! - [`macro@main`] — `#[ebbrt::main] async fn main()` is the entry of an
//!   application, hosted (a Linux `main`) and native (the symbol the kernel
//!   calls once its boot core is up) from one source.
//! - [`macro@test`] — `#[ebbrt::test]` registers a test case with the
//!   in-kernel test runner of `ebbrt_core::test_support`.
//!
//! What this crate owns: parsing those attributes, reporting misuse as
//! compile errors that point at the user's code, and emitting code that
//! only calls public items of `ebbrt-core` and of the facade.
//!
//! What it must not do: hold run-time logic (that lives in `ebbrt-core`,
//! where it is tested), or rely on anything but the public traits — the
//! macros are sugar, and every Ebb they declare can be written by hand.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod ebb;
mod entry;
mod interface;
mod paths;

/// Declares an Elastic Building Block: the struct is its representative.
///
/// ```
/// use core::cell::Cell;
/// use ebbrt::{EbbRef, ebb, ebb::ids};
///
/// /// Counts hits on each core without atomics.
/// #[ebb(per_core, id = ids::app(0))]
/// #[derive(Default)]
/// pub struct Hits {
///     n: Cell<u64>,
/// }
///
/// impl Hits {
///     fn hit(&self) {
///         self.n.set(self.n.get() + 1);
///     }
/// }
///
/// /// Reached from any core; `HITS.hit()` bumps this core's counter.
/// static HITS: EbbRef<Hits> = EbbRef::fixed();
///
/// let record = ebbrt::registry::find("Hits").unwrap();
/// assert_eq!(record.summary, "Counts hits on each core without atomics.");
/// assert_eq!(record.id, Some(HITS.id()));
/// ```
///
/// The first argument is the kind:
/// - `per_core`: one representative per core, built on that core at its
///   first use, sharing one root (`PerCore`). The representative may (and
///   usually does) use `Cell`/`RefCell`: it never leaves its core.
/// - `shared`: one instance for every core (`Shared`); it must be `Sync`.
///
/// Optional arguments:
/// - `id = EXPR`: a fixed, well-known `EbbId` (a `const` expression). The
///   Ebb then implements `StaticEbb`, so `EbbRef::fixed()` reaches it, and
///   its root (per-core) or instance (shared) is built at its first use.
///   Without `id`, instances are made at run time with `PerCore::create` or
///   `Shared::create`.
/// - `new = PATH`: how to build a representative. Per-core: a
///   `fn(&'static PerCoreRoot<Self>, CoreId) -> Self`; shared (with `id`
///   only): a `fn() -> Self`. Without it the struct must be `Default`
///   (`#[derive(Default)]`), and `Default::default()` builds it.
/// - `root = TYPE` (per-core only): the state shared by all representatives,
///   `()` by default.
/// - `root_new = PATH` (per-core with `id` only): a `fn() -> Root` building
///   the fixed instance's root; without it `Root: Default` is used.
/// - `feature = "name"`: the Cargo feature of the facade that selects this
///   component; the registry then marks it as not selected by default.
/// - `static_rep = PATH` (with `id`): a `fn() -> &'static Self` giving the
///   calling core's representative from static storage (the same one on
///   every core for a shared Ebb). The miss path then only calls it: no
///   root, no heap — for Ebbs the heap itself depends on (the allocators).
/// - `interface = path::Trait` (with `id`): the Ebb implements the
///   interface `Trait` (declared with [`macro@interface`]) at the
///   interface's well-known id; code that uses the service reaches it with
///   `ebbrt_core::ebb::bound::<dyn Trait>()` without naming this type, and
///   the component record names the interface. A build error says so if
///   `id` is not the interface's id or the type does not implement `Trait`.
///
/// The component record carries the type's name, kind, full path
/// (`module_path!()::Name`), first doc paragraph and full docs, id, crate
/// and feature; `cargo ebbrt docs` renders it into the component catalog.
#[proc_macro_attribute]
pub fn ebb(args: TokenStream, item: TokenStream) -> TokenStream {
    ebb::expand(args.into(), item.into()).into()
}

/// Declares the interface of a swappable service: the trait its
/// implementations meet and the well-known id they live at.
///
/// ```
/// use ebbrt::{ebb, ebb::ids, interface};
///
/// /// Greets.
/// #[interface(id = ids::app(7))]
/// pub trait Greeter: Sync {
///     /// The greeting.
///     fn greeting(&self) -> &'static str;
/// }
///
/// /// The English greeter.
/// #[ebb(shared, id = ids::app(7), interface = Greeter)]
/// #[derive(Default)]
/// pub struct English;
///
/// impl Greeter for English {
///     fn greeting(&self) -> &'static str { "hello" }
/// }
///
/// let b = ebbrt::ebb::binding::<dyn Greeter>().unwrap();
/// assert_eq!(b.component, "English");
/// ```
///
/// The trait must be object safe: users reach the implementation as a
/// `&'static dyn Trait` through `ebbrt_core::ebb::bound`. The attribute
/// adds a hidden link-time list with the trait's name, where each
/// `#[ebb(..., interface = Trait)]` leaves its binding.
#[proc_macro_attribute]
pub fn interface(args: TokenStream, item: TokenStream) -> TokenStream {
    interface::expand(args.into(), item.into()).into()
}

/// Marks the application's entry point: `#[ebbrt::main] async fn main() -> R`
/// where `R` is `()`, an `i32` exit code or a `Result<_, E: Debug>`.
///
/// The function becomes the first task on core 0 of a running instance; the
/// instance shuts down with its result's exit code when it returns. It
/// expands to a hosted `fn main` and to the native entry symbol
/// `__ebbrt_app_main`, each behind its `cfg`, so that an application crate
/// that starts with `#![cfg_attr(target_os = "none", no_std, no_main)]`
/// builds for both. Needs the facade `ebbrt` as a dependency.
///
/// ```no_run
/// #![cfg_attr(target_os = "none", no_std, no_main)]
///
/// #[ebbrt::main]
/// async fn main() -> Result<(), ebbrt::io::Error> {
///     let cores = ebbrt::on_each_core(|core| async move { core }).await;
///     ebbrt::println!("{} cores", cores.len());
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::main(args.into(), item.into()).into()
}

/// Registers a test case with the EbbRT test runner
/// (`ebbrt_core::test_support`): `#[ebbrt::test] async fn name()`, which
/// may return `Result<(), E: Debug>` (an `Err` fails the test), or a
/// plain `fn`.
///
/// Test cases run one after another on core 0 of a running instance, in
/// name order, when the binary's entry is `ebbrt::test_main!()`. The case
/// is named by its path inside the crate (`module::name`).
///
/// ```
/// #[ebbrt::test]
/// async fn spawn_on_reaches_the_last_core() -> Result<(), String> {
///     let last = ebbrt::cpu::CoreId(ebbrt::cpu::count() as u32 - 1);
///     let ran_on = ebbrt::spawn_on(last, async { ebbrt::cpu::current() }).await;
///     if ran_on == last { Ok(()) } else { Err(format!("ran on {ran_on}")) }
/// }
///
/// let cases = ebbrt::__rt::ebbrt_core::test_support::TEST_CASES;
/// assert!(cases.iter().any(|c| c.name.ends_with("spawn_on_reaches_the_last_core")));
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::test(args.into(), item.into()).into()
}

/// The expansion, or the error followed by the item unchanged, so that the
/// only errors the user sees are the attribute's own.
fn or_item(
    expansion: syn::Result<proc_macro2::TokenStream>,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    match expansion {
        Ok(out) => out,
        Err(e) => {
            let e = e.to_compile_error();
            quote::quote!(#e #item)
        }
    }
}
