//! Stable message type tags: a 64-bit FNV-1a hash of `"name/vN"`, computed
//! at compile time, so that every build of every node agrees on them (the
//! original used `typeid(T).hash_code()`, which differs between builds).

use serde::Serialize;
use serde::de::DeserializeOwned;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv_step(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// The FNV-1a hash of `bytes` (64-bit).
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    fnv_step(FNV_OFFSET, bytes)
}

/// The tag of version `version` of the message type `name`: the FNV-1a
/// hash of the string `"{name}/v{version}"`, computed in a `const`.
///
/// ```
/// use ebbrt_messenger::tag::{fnv1a, type_tag};
/// assert_eq!(type_tag("app::Ping", 2), fnv1a(b"app::Ping/v2"));
/// ```
pub const fn type_tag(name: &str, version: u32) -> u64 {
    let mut h = fnv_step(FNV_OFFSET, name.as_bytes());
    h = fnv_step(h, b"/v");
    // The decimal digits of `version`, most significant first.
    let mut digits = [0u8; 10];
    let mut n = version;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while len > 0 {
        len -= 1;
        h ^= digits[len] as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A type that travels as a frame's payload (postcard-encoded).
///
/// `NAME` should be stable and unique in the application (the crate path
/// of the type is a good choice); bump `VERSION` whenever the encoding
/// changes, so that a node running the old encoding answers the new one
/// with an "unknown tag" error instead of misreading it. Use
/// [`message!`](crate::message) to implement it.
pub trait Message: Serialize + DeserializeOwned + 'static {
    /// The type's stable name.
    const NAME: &'static str;
    /// The version of its encoding.
    const VERSION: u32;
    /// Its tag on the wire: [`type_tag`]`(NAME, VERSION)`.
    const TAG: u64 = type_tag(Self::NAME, Self::VERSION);
}

/// A message that asks for a reply of type [`Request::Reply`].
pub trait Request: Message {
    /// The type of the reply.
    type Reply: Message;
}

/// Implements [`Message`] (and optionally [`Request`]) for a type:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Get { key: u32 }
/// #[derive(Serialize, Deserialize)]
/// struct Value { value: Option<u64> }
/// ebbrt_messenger::message!(Get, "app::Get", 1, reply = Value);
/// ebbrt_messenger::message!(Value, "app::Value", 1);
/// use ebbrt_messenger::Message;
/// assert_eq!(Get::TAG, ebbrt_messenger::tag::type_tag("app::Get", 1));
/// ```
#[macro_export]
macro_rules! message {
    ($ty:ty, $name:expr, $version:expr) => {
        impl $crate::Message for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
        }
    };
    ($ty:ty, $name:expr, $version:expr, reply = $reply:ty) => {
        $crate::message!($ty, $name, $version);
        impl $crate::Request for $ty {
            type Reply = $reply;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn type_tag_hashes_name_slash_v_version() {
        for (v, s) in [
            (0, "x/v0"),
            (7, "x/v7"),
            (10, "x/v10"),
            (4_294_967_295, "x/v4294967295"),
        ] {
            assert_eq!(type_tag("x", v), fnv1a(s.as_bytes()), "{s}");
        }
        assert_ne!(type_tag("x", 1), type_tag("x", 2));
        const T: u64 = type_tag("compile::Time", 3);
        assert_eq!(T, fnv1a(b"compile::Time/v3"));
    }
}
