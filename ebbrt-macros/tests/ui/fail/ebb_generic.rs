use ebbrt_macros::ebb;

#[ebb(shared)]
struct Wrapper<T> {
    inner: T,
}

#[ebb(shared)]
struct Buffer<const N: usize> {
    buf: [u8; N],
}

fn main() {}
