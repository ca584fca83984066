//! Keys and self-verifying values.
//!
//! Key `i` is `k` followed by `i` in decimal, zero-padded to a length drawn
//! (once, from a seed and `i`) from the key-size distribution, so every key
//! is distinct and a key's bytes never need storing anywhere but here.
//!
//! A value is a deterministic function of (key, version, length): the
//! version travels in the item's 32-bit flags, the first 16 bytes are the
//! hex of a seed hashed from all three, and the rest is a printable stream
//! drawn from that seed. The generator can therefore check any value it
//! reads back without remembering what it wrote: a value that belongs to
//! another key, lost its flags, was truncated, or had any byte changed
//! fails. Which version is newest is not checked (concurrent writers race
//! by design); that the bytes are one whole version of this key is.

use crate::dist::SizeDist;
use crate::rng::{Rng, combine, hash_bytes};

/// memcached's longest key.
pub const MAX_KEY_LEN: u32 = 250;

/// Printable, whitespace-free bytes for value bodies (64 of them).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The keys of a run, all made up front.
#[derive(Debug)]
pub struct KeySpace {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl KeySpace {
    /// `n` keys whose lengths follow `sizes`, at least long enough to hold
    /// `k` and the index, at most [`MAX_KEY_LEN`].
    pub fn new(n: u32, sizes: &SizeDist, seed: u64) -> KeySpace {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(n as usize);
        for i in 0..n {
            let digits = i.checked_ilog10().unwrap_or(0) + 1;
            let mut rng = Rng::new(combine(seed ^ 0x6b65_7973, u64::from(i)));
            let len = sizes.sample(&mut rng, digits + 1, MAX_KEY_LEN);
            let width = (len - 1) as usize;
            bytes.push(b'k');
            bytes.extend_from_slice(format!("{i:0width$}").as_bytes());
            ends.push(bytes.len() as u32);
        }
        KeySpace { bytes, ends }
    }

    /// How many keys.
    pub fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Key `i`'s bytes.
    pub fn key(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }
}

/// What a set writes and a get checks.
#[derive(Clone, Debug)]
pub struct Payload {
    /// Value sizes.
    pub sizes: SizeDist,
    /// The largest value written, in bytes.
    pub max_len: u32,
    /// The run's seed.
    pub seed: u64,
}

/// Why a value read back is not one this generator wrote for that key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Version 0 is never written: the flags were lost or never set.
    #[error("flags are 0: no version this generator writes")]
    NoVersion,
    /// The bytes differ from the value of (key, version, length).
    #[error("value byte {0} differs from what (key, version, length) determines")]
    Bytes(usize),
    /// The reply named another key than the one asked for.
    #[error("reply for another key")]
    WrongKey,
}

impl Payload {
    /// The length of the value that a set of `key` at `version` writes.
    pub fn len_for(&self, key_index: u32, version: u32) -> u32 {
        let mut rng = Rng::new(combine(
            combine(self.seed ^ 0x7661_6c75, u64::from(key_index)),
            u64::from(version),
        ));
        self.sizes.sample(&mut rng, 0, self.max_len)
    }

    /// Appends the value of (key, version) with `len` bytes to `out`.
    pub fn fill(key: &[u8], version: u32, len: usize, out: &mut Vec<u8>) {
        let seed = value_seed(key, version, len);
        let start = out.len();
        out.extend_from_slice(format!("{seed:016x}").as_bytes());
        out.truncate(start + len);
        let mut rng = Rng::new(seed);
        while out.len() < start + len {
            let word = rng.next_u64().to_le_bytes();
            let room = (start + len - out.len()).min(8);
            out.extend(word[..room].iter().map(|b| ALPHABET[usize::from(b & 63)]));
        }
    }

    /// Checks a value read back for `key` with these flags.
    pub fn verify(key: &[u8], flags: u32, data: &[u8]) -> Result<(), Mismatch> {
        if flags == 0 {
            return Err(Mismatch::NoVersion);
        }
        let mut want = Vec::with_capacity(data.len());
        Payload::fill(key, flags, data.len(), &mut want);
        match want.iter().zip(data).position(|(a, b)| a != b) {
            Some(i) => Err(Mismatch::Bytes(i)),
            None => Ok(()),
        }
    }
}

fn value_seed(key: &[u8], version: u32, len: usize) -> u64 {
    combine(combine(hash_bytes(key), u64::from(version)), len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Gev;

    #[test]
    fn keys_are_distinct_valid_and_follow_the_size_distribution() {
        let ks = KeySpace::new(5_000, &SizeDist::Gev(Gev::FB_KEY), 1);
        let mut seen = std::collections::HashSet::new();
        let mut lens: Vec<usize> = Vec::new();
        for i in 0..ks.len() {
            let k = ks.key(i);
            assert!(k.len() <= MAX_KEY_LEN as usize && k.len() >= 2);
            assert!(k.iter().all(|b| b.is_ascii_graphic()));
            assert_eq!(
                std::str::from_utf8(&k[1..])
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
                i
            );
            assert!(seen.insert(k.to_vec()));
            lens.push(k.len());
        }
        lens.sort_unstable();
        // The median ETC key is 33.8 bytes, rounded to 34.
        assert!(
            (33..=35).contains(&lens[lens.len() / 2]),
            "{}",
            lens[lens.len() / 2]
        );
        // Same seed, same keys; another seed, other lengths.
        let again = KeySpace::new(5_000, &SizeDist::Gev(Gev::FB_KEY), 1);
        let other = KeySpace::new(5_000, &SizeDist::Gev(Gev::FB_KEY), 2);
        assert!((0..5_000).all(|i| ks.key(i) == again.key(i)));
        assert!((0..5_000).any(|i| ks.key(i) != other.key(i)));
    }

    #[test]
    fn short_fixed_keys_still_hold_the_index() {
        let ks = KeySpace::new(1_000, &SizeDist::Fixed(1), 1);
        assert_eq!(ks.key(0), b"k0");
        assert_eq!(ks.key(999), b"k999");
        let ks = KeySpace::new(3, &SizeDist::Fixed(6), 1);
        assert_eq!(ks.key(2), b"k00002");
    }

    #[test]
    fn values_verify_and_every_corruption_is_caught() {
        let key = b"k000123";
        for len in [0usize, 1, 15, 16, 17, 100, 5000] {
            let mut v = Vec::new();
            Payload::fill(key, 7, len, &mut v);
            assert_eq!(v.len(), len);
            assert_eq!(Payload::verify(key, 7, &v), Ok(()));
            if len == 0 {
                continue;
            }
            // Any one byte changed.
            for i in [0, len / 2, len - 1] {
                let mut bad = v.clone();
                bad[i] ^= 1;
                assert_eq!(
                    Payload::verify(key, 7, &bad),
                    Err(Mismatch::Bytes(i)),
                    "len {len} byte {i}"
                );
            }
            // Another version's flags, another key, no flags.
            assert!(Payload::verify(key, 8, &v).is_err(), "len {len}");
            assert!(Payload::verify(b"k000124", 7, &v).is_err(), "len {len}");
            assert_eq!(Payload::verify(key, 0, &v), Err(Mismatch::NoVersion));
            // Truncated by one byte (the length is part of the seed).
            if len >= 2 {
                assert!(Payload::verify(key, 7, &v[..len - 1]).is_err(), "len {len}");
            }
        }
    }

    #[test]
    fn values_embed_their_seed_and_stay_printable() {
        let mut v = Vec::new();
        Payload::fill(b"kx", 3, 64, &mut v);
        let seed = u64::from_str_radix(std::str::from_utf8(&v[..16]).unwrap(), 16).unwrap();
        assert_eq!(seed, value_seed(b"kx", 3, 64));
        assert!(v.iter().all(|b| b.is_ascii_graphic()));
        // fill appends.
        let mut two = b"xx".to_vec();
        Payload::fill(b"kx", 3, 64, &mut two);
        assert_eq!(&two[2..], &v[..]);
    }

    #[test]
    fn value_lengths_are_deterministic_and_capped() {
        let p = Payload {
            sizes: SizeDist::parse("fb_value").unwrap(),
            max_len: 4096,
            seed: 1,
        };
        let lens: Vec<u32> = (0..10_000).map(|i| p.len_for(i, 1)).collect();
        assert!(lens.iter().all(|&l| l <= 4096));
        assert!(lens.contains(&4096), "the tail reaches the cap");
        assert_eq!(
            lens,
            (0..10_000).map(|i| p.len_for(i, 1)).collect::<Vec<_>>()
        );
        assert_ne!(
            lens,
            (0..10_000).map(|i| p.len_for(i, 2)).collect::<Vec<_>>()
        );
    }
}
