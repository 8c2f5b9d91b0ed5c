//! The keyed hash of level labels used by the child tables: a folded
//! 64×64→128-bit multiply per 8 bytes, seeded from the standard library's
//! random keys. It costs a few nanoseconds for a device id where SipHash costs
//! several times more, and without the secret seed an attacker cannot aim
//! topic levels at one table slot.

use std::hash::{BuildHasher, RandomState};

/// Odd constants (digits of π) that spread the length and the words.
const MIX: [u64; 3] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
];

/// A hasher of labels with secret per-trie seeds.
#[derive(Debug, Clone)]
pub(super) struct LabelHasher {
    seeds: [u64; 2],
}

impl LabelHasher {
    /// A hasher with fresh random seeds.
    pub(super) fn new() -> Self {
        let random = RandomState::new();
        Self {
            seeds: [random.hash_one(MIX[0]), random.hash_one(MIX[1])],
        }
    }

    /// The 32-bit hash of `label`.
    #[inline]
    pub(super) fn hash(&self, label: &[u8]) -> u32 {
        let [seed, key] = self.seeds;
        let mut state = seed ^ (label.len() as u64).wrapping_mul(MIX[0]);
        let mut words = label.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
            state = fold(state ^ word, key ^ MIX[1]);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            state = fold(state ^ load_le(rest), key ^ MIX[2]);
        }
        let full = fold(state, seed ^ MIX[2]);
        (full ^ (full >> 32)) as u32
    }
}

/// The little-endian value of up to 8 bytes, zero-padded, read with at most
/// two overlapping loads instead of a byte copy (which would stall the
/// following load on store forwarding).
#[inline]
pub(super) fn load_le(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let word = |at: usize| {
        let four = bytes.get(at..at + 4).unwrap_or_default();
        u64::from(u32::from_le_bytes(
            <[u8; 4]>::try_from(four).unwrap_or_default(),
        ))
    };
    let byte = |at: usize| u64::from(bytes.get(at).copied().unwrap_or_default());
    match len {
        0 => 0,
        1..=3 => byte(0) | byte(len / 2) << (8 * (len / 2)) | byte(len - 1) << (8 * (len - 1)),
        4..=7 => word(0) | word(len - 4) << (8 * (len - 4)),
        _ => word(0) | word(4) << 32,
    }
}

/// Multiplies to 128 bits and folds the halves together.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_le_packs_every_length() {
        let bytes: Vec<u8> = (1..=8).collect();
        for len in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..len].copy_from_slice(&bytes[..len]);
            assert_eq!(
                load_le(&bytes[..len]),
                u64::from_le_bytes(padded),
                "len {len}"
            );
        }
    }

    #[test]
    fn distinguishes_lengths_contents_and_seeds() {
        let hasher = LabelHasher::new();
        let labels: [&[u8]; 6] = [b"", b"\0", b"a", b"a\0", b"dev0000001", b"dev0000002"];
        let mut hashes: Vec<u32> = labels.iter().map(|l| hasher.hash(l)).collect();
        assert_eq!(hasher.hash(b"dev0000001"), hashes[4]);
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), labels.len());
        let other = LabelHasher::new();
        assert_ne!(
            (0..8u8).map(|i| other.hash(&[i])).collect::<Vec<_>>(),
            (0..8u8).map(|i| hasher.hash(&[i])).collect::<Vec<_>>()
        );
    }
}
