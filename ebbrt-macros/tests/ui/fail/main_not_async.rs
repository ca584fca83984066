#[ebbrt::main]
fn main() {}
