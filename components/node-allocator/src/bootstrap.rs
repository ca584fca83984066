//! What a node is told when it boots, and how it is written on its kernel
//! command line: [`ebbrt_messenger::bootstrap`], shared with the nodes that
//! read it (see there for the words). This adds drawing the allocation's
//! secret.
//!
//! The command line of a QEMU process is readable by every user of the host
//! (`/proc/<pid>/cmdline`), and a cluster engine stores it in its job. The
//! secret keeps out a peer that was *not* told it (a stray connection, a
//! node of another application); it does not keep out the host's users.

pub use ebbrt_messenger::bootstrap::*;

/// A fresh secret from the operating system's random source.
pub fn generate_secret() -> Result<Secret, getrandom::Error> {
    let mut bytes = [0u8; Secret::LEN];
    getrandom::fill(&mut bytes)?;
    Ok(Secret::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b, "two draws of 32 random bytes agreed");
        assert_eq!(Secret::from_hex(&a.to_hex()).unwrap(), a);
    }
}
