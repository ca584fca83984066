#[ebbrt::main]
async fn main<T: Default>() {}
