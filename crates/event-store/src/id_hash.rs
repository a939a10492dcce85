//! A fast keyed hash for event ids. Ids are looked up once per appended
//! event, and SipHash costs more than the rest of that bookkeeping; a
//! folded multiply with per-process random keys is several times cheaper and
//! still leaves a client that picks its own ids no way to aim collisions.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Builds [`IdHasher`]s sharing this process's random keys.
#[derive(Debug, Clone, Copy)]
pub struct IdHash {
    keys: [u64; 2],
}

impl Default for IdHash {
    fn default() -> Self {
        let seed = RandomState::new();
        Self { keys: [seed.hash_one(0x9e37_79b9_u64), seed.hash_one(0x85eb_ca6b_u64) | 1] }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.keys[0], key: self.keys[1] }
    }
}

/// The hasher [`IdHash`] builds.
#[derive(Debug, Clone, Copy)]
pub struct IdHasher {
    state: u64,
    key: u64,
}

fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for b in chunks.remainder() {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.state = fold_mul(self.state ^ v, self.key);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        fold_mul(self.state, self.key ^ 0x2d35_8dcc_aa6c_78a5)
    }
}

/// A map keyed by event id.
pub type IdMap<V> = std::collections::HashMap<uuid::Uuid, V, IdHash>;
/// A set of event ids.
pub type IdSet = std::collections::HashSet<uuid::Uuid, IdHash>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_differ_in_one_bit_hash_apart() {
        let h = IdHash::default();
        let base = uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0000);
        let mut seen = std::collections::HashSet::new();
        for bit in 0..128 {
            let id = uuid::Uuid::from_u128(base.as_u128() ^ (1u128 << bit));
            assert!(seen.insert(h.hash_one(id)), "bit {bit} collided");
        }
        assert_ne!(IdHash::default().hash_one(base), h.hash_one(base), "keys are per builder");
    }
}
