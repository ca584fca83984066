#[ebbrt::test]
async fn returns_a_number() -> u32 {
    3
}

struct NoDebug;

#[ebbrt::test]
fn error_without_debug() -> Result<(), NoDebug> {
    Ok(())
}

fn main() {}
