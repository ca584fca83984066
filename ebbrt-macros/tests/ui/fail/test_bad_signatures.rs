#[ebbrt::test]
async fn with_args(_core: u32) {}

#[ebbrt::test]
fn generic<T>() {}

#[ebbrt::test]
struct NotAFn;

#[ebbrt::test(timeout = 3)]
async fn with_arguments() {}

fn main() {}
