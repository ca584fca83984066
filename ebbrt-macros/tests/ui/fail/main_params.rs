#[ebbrt::main]
async fn main(_cores: usize) {}
