//! Declares the `loom` cfg (the model-checked build of the tests).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
