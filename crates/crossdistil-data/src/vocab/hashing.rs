//! The stable hash of a categorical value, behind hashed vocabularies ([`super::Vocab::hashed`]).
//!
//! `h(value) = XXH64(canonical bytes, seed 0)`, where the canonical bytes of a text value are its
//! UTF-8 bytes and those of an integer are its decimal text (`-` then the digits, no leading
//! zeros, no `+`): an id column read as integers and the same column read as text hash alike.
//! XXH64 is fixed by its specification, so `h` is the same on every platform and in every
//! version; the tests pin known values, and a change to this file that moves them breaks every
//! model trained with hashed features.

use twox_hash::XxHash64;

use crate::column::KeyRef;

/// The seed of XXH64.
const SEED: u64 = 0;

/// `h(key)`: XXH64 with seed 0 of the key's canonical bytes (see the module's documentation).
#[inline]
pub(crate) fn hash_key(key: KeyRef<'_>) -> u64 {
    match key {
        KeyRef::Str(s) => XxHash64::oneshot(SEED, s.as_bytes()),
        KeyRef::Int(i) => {
            let mut buf = [0u8; 20];
            XxHash64::oneshot(SEED, decimal(i, &mut buf))
        }
    }
}

/// The id of `key` in a vocabulary of `buckets` hash buckets: `1 + h(key) mod buckets`, in
/// `1..=buckets`.
#[inline]
pub(crate) fn bucket_id(key: KeyRef<'_>, buckets: u32) -> u32 {
    1 + (hash_key(key) % u64::from(buckets)) as u32
}

/// The decimal text of `v` written at the end of `buf` (20 bytes hold `i64::MIN`), as
/// `v.to_string()` without allocating.
fn decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_to_string() {
        let mut buf = [0u8; 20];
        for v in [
            0,
            7,
            -7,
            10,
            -10,
            1234567890,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            assert_eq!(decimal(v, &mut buf), v.to_string().as_bytes());
        }
    }

    /// The hash must never change: these are XXH64's reference values (seed 0) and ids that
    /// trained models hold.
    #[test]
    fn hash_is_pinned() {
        assert_eq!(hash_key(KeyRef::Str("")), 0xef46_db37_51d8_e999);
        assert_eq!(hash_key(KeyRef::Str("a")), 0xd24e_c4f1_a98c_6e5b);
        assert_eq!(hash_key(KeyRef::Str("abc")), 0x44bc_2cf5_ad77_0999);
        let ids: Vec<u32> = ["", "a", "abc", "Private", "United-States", "42", "-1", "é"]
            .iter()
            .map(|&s| bucket_id(KeyRef::Str(s), 1000))
            .collect();
        assert_eq!(ids, PINNED_IDS);
    }

    const PINNED_IDS: [u32; 8] = [922, 956, 250, 157, 837, 402, 129, 849];

    #[test]
    fn integers_hash_as_their_decimal_text() {
        for v in [0i64, 1, -1, 42, 1 << 40, i64::MAX, i64::MIN] {
            let text = v.to_string();
            assert_eq!(hash_key(KeyRef::Int(v)), hash_key(KeyRef::Str(&text)));
            assert_eq!(
                bucket_id(KeyRef::Int(v), 97),
                bucket_id(KeyRef::Str(&text), 97)
            );
        }
        // Not the text with a leading zero or a plus sign: those are other values.
        assert_ne!(hash_key(KeyRef::Int(42)), hash_key(KeyRef::Str("042")));
        assert_ne!(hash_key(KeyRef::Int(42)), hash_key(KeyRef::Str("+42")));
    }

    #[test]
    fn ids_lie_in_one_to_buckets() {
        for b in [1u32, 2, 3, 1000, 1 << 30] {
            for i in -50i64..50 {
                let id = bucket_id(KeyRef::Int(i), b);
                assert!((1..=b).contains(&id), "{id} for {i} in {b}");
            }
        }
        assert_eq!(bucket_id(KeyRef::Str("anything"), 1), 1);
    }
}
