//! Maps keyed by the broker's own integer handles (connection ids, session ids, timer keys).
//!
//! These keys are chosen by the broker or its caller, never by a peer, so they need no
//! flood-resistant hashing: a multiplicative hash is enough and much cheaper than SipHash on the
//! per-message path. Maps keyed by peer-chosen data (client identifiers, topics) keep the
//! standard hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing: multiply by 2^64 / phi.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// A hasher for small integer keys.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(MULTIPLIER);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(MULTIPLIER);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` keyed by a broker-internal handle.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash(value: impl Hash) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(value)
    }

    #[test]
    fn sequential_ids_spread() {
        let hashes: std::collections::HashSet<u64> = (0..1000u64).map(|n| hash(n) >> 54).collect();
        assert!(hashes.len() > 500, "top bits vary: {}", hashes.len());
        let low: std::collections::HashSet<u64> = (0..1000u64).map(|n| hash(n) & 1023).collect();
        assert!(low.len() > 500, "low bits vary: {}", low.len());
    }

    #[test]
    fn map_works() {
        let mut map: IdMap<u64, &str> = IdMap::default();
        map.insert(1, "a");
        map.insert(2, "b");
        assert_eq!(map.get(&1), Some(&"a"));
        assert_eq!(map.len(), 2);
    }
}
