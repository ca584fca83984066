#[ebbrt::main]
struct App;
