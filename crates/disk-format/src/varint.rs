//! LEB128 varints: seven bits a byte, low bits first, the high bit saying
//! more follows; signed values zigzag-encoded first. Reading is
//! [`crate::ByteReader::uvarint`].

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded (small magnitudes stay short either sign).
pub fn put_svarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// The bytes [`put_uvarint`] writes for `v`.
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ByteReader;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip_with_their_length(u in any::<u64>(), s in any::<i64>()) {
            let mut out = Vec::new();
            put_uvarint(&mut out, u);
            prop_assert_eq!(out.len(), uvarint_len(u));
            put_svarint(&mut out, s);
            let mut r = ByteReader::new(&out, "test");
            prop_assert_eq!(r.uvarint().expect("u"), u);
            prop_assert_eq!(r.svarint().expect("s"), s);
            prop_assert!(r.finish().is_ok());
        }
    }

    #[test]
    fn edges_have_the_expected_lengths() {
        for (v, n) in [(0, 1), (127, 1), (128, 2), (u64::from(u32::MAX), 5), (u64::MAX, 10)] {
            assert_eq!(uvarint_len(v), n, "{v}");
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(unzigzag(zigzag(i64::MIN)), i64::MIN);
    }
}
