//! Event ids in memory: the map and set they are kept in, and the Bloom
//! filter in front of the map. Ids are looked up once per appended event,
//! and SipHash costs more than the rest of that bookkeeping; foldhash's
//! keyed folded multiply with per-process random seeds costs about a third
//! to a half of it (docs/benchmarks.md, 2026-12-03) and still leaves a
//! client that picks its own ids no way to aim collisions.

/// Builds the id hashers; random seeds per process.
pub type IdHash = foldhash::fast::RandomState;
/// A map keyed by event id.
pub type IdMap<V> = std::collections::HashMap<uuid::Uuid, V, IdHash>;
/// A set of event ids.
pub type IdSet = std::collections::HashSet<uuid::Uuid, IdHash>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn ids_that_differ_in_one_bit_hash_apart() {
        let h = IdHash::default();
        let base = uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0000);
        let mut seen = std::collections::HashSet::new();
        for bit in 0..128 {
            let id = uuid::Uuid::from_u128(base.as_u128() ^ (1u128 << bit));
            assert!(seen.insert(h.hash_one(id)), "bit {bit} collided");
        }
    }
}

/// A blocked Bloom filter over event ids, in front of the id map: most
/// appends carry only new ids, and asking this filter (about 1.25 bytes per
/// id, so it stays in cache) is much cheaper than a map probe that misses
/// cache. False positives only cost that map probe.
#[derive(Debug, Clone)]
pub struct IdFilter {
    blocks: Vec<[u64; 8]>,
    items: usize,
}

/// Ids per 512-bit block before the filter doubles.
const IDS_PER_BLOCK: usize = 48;

impl Default for IdFilter {
    fn default() -> Self {
        Self { blocks: vec![[0; 8]; 64], items: 0 }
    }
}

impl IdFilter {
    fn bits(&self, hash: u64) -> (usize, [u32; 3]) {
        let block = ((hash >> 32) as usize) & (self.blocks.len() - 1);
        (block, [(hash & 511) as u32, ((hash >> 9) & 511) as u32, ((hash >> 18) & 511) as u32])
    }

    /// Whether an id with this hash may have been added.
    pub fn may_contain(&self, hash: u64) -> bool {
        let (b, bits) = self.bits(hash);
        bits.iter().all(|bit| self.blocks[b][(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Adds a hash; returns false when the filter is full and should be
    /// rebuilt twice as large with [`IdFilter::with_room_for`].
    pub fn insert(&mut self, hash: u64) -> bool {
        let (b, bits) = self.bits(hash);
        for bit in bits {
            self.blocks[b][(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.items += 1;
        self.items <= self.blocks.len() * IDS_PER_BLOCK
    }

    /// An empty filter sized for `n` ids.
    pub fn with_room_for(n: usize) -> Self {
        let blocks = (n / IDS_PER_BLOCK + 1).next_power_of_two().max(64);
        Self { blocks: vec![[0; 8]; blocks], items: 0 }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_filter_never_forgets_and_rarely_lies() {
        let h = IdHash::default();
        let mut f = IdFilter::default();
        let added: Vec<u64> = (0..3000u128).map(|i| h.hash_one(uuid::Uuid::from_u128(i * 7919))).collect();
        for (i, x) in added.iter().enumerate() {
            if !f.insert(*x) {
                f = IdFilter::with_room_for(2 * (i + 1));
                added[..=i].iter().for_each(|y| {
                    let _ = f.insert(*y);
                });
            }
        }
        assert!(added.iter().all(|x| f.may_contain(*x)), "no false negatives");
        let false_hits =
            (0..10_000u128).filter(|i| f.may_contain(h.hash_one(uuid::Uuid::from_u128(u128::MAX - i)))).count();
        assert!(false_hits < 500, "{false_hits} false positives in 10000");
    }
}
