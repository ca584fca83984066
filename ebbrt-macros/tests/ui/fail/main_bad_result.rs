/// An exit code, a `()` or a `Result<_, E: Debug>`: not a `String`.
#[ebbrt::main]
async fn main() -> String {
    String::from("done")
}
