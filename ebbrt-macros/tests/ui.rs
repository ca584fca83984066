//! Compile tests of the macros (trybuild): what must build and run, and what
//! must be refused, with the exact error (`tests/ui/fail/*.stderr`).
//!
//! The `.stderr` files follow the installed `nightly` compiler; after a
//! toolchain update, review the new messages and refresh them with
//! `TRYBUILD=overwrite cargo test -p ebbrt-macros --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
