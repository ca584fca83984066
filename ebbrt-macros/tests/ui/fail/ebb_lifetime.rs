use ebbrt_macros::ebb;

#[ebb(shared)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
