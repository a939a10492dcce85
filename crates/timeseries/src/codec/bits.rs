//! MSB-first bit writer and reader for the Gorilla stream.
//!
//! Hand-rolled (no crate) and byte-backed rather than word-buffered, so the head encoder's
//! buffer is always complete and can be decoded in place while points are still appended.

use super::CodecError;

/// Append-only bit buffer; the last byte may be partially filled (low bits zero).
#[derive(Debug, Clone, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    bit_len: u64,
}

impl BitWriter {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self { buf: Vec::with_capacity(bytes), bit_len: 0 }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Appends the low `n` bits of `value`, most significant first. `n` must be at most 64.
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut remaining = n.min(64);
        while remaining > 0 {
            let used = (self.bit_len % 8) as u32;
            if used == 0 {
                self.buf.push(0);
            }
            let free = 8 - used;
            let take = free.min(remaining);
            let shift = remaining - take;
            let chunk = (value >> shift) & ((1u64 << take) - 1);
            if let Some(last) = self.buf.last_mut() {
                *last |= (chunk as u8) << (free - take);
            }
            remaining -= take;
            self.bit_len += u64::from(take);
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn bit_len(&self) -> u64 {
        self.bit_len
    }
}

/// Reads bits from a byte slice, never past `end` bits.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: u64,
    end: u64,
}

impl<'a> BitReader<'a> {
    /// A reader over the first `end_bits` bits of `data` (clamped to the slice).
    pub(crate) fn new(data: &'a [u8], end_bits: u64) -> Self {
        let available = (data.len() as u64).saturating_mul(8);
        BitReader { data, pos: 0, end: end_bits.min(available) }
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    pub(crate) fn read_bit(&mut self, what: &'static str) -> Result<bool, CodecError> {
        Ok(self.read_bits(1, what)? == 1)
    }

    /// Reads `n` (at most 64) bits, most significant first.
    pub(crate) fn read_bits(&mut self, n: u32, what: &'static str) -> Result<u64, CodecError> {
        let truncated = |pos: u64, end: u64| CodecError::TruncatedBits {
            what,
            bit_offset: pos,
            needed: n,
            available: end.saturating_sub(pos),
        };
        if n > 64 || self.remaining() < u64::from(n) {
            return Err(truncated(self.pos, self.end));
        }
        let mut out = 0u64;
        let mut remaining = n;
        while remaining > 0 {
            let Some(&byte) = usize::try_from(self.pos / 8).ok().and_then(|i| self.data.get(i)) else {
                return Err(truncated(self.pos, self.end));
            };
            let avail = 8 - (self.pos % 8) as u32;
            let take = avail.min(remaining);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            // `take` < 64 always, so the shift cannot overflow; high bits shifted out are zero.
            out = (out << take) | bits;
            remaining -= take;
            self.pos += u64::from(take);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn writer_reader_round_trip(fields in prop::collection::vec((any::<u64>(), 0u32..=64), 0..64)) {
            let mut w = BitWriter::default();
            for &(v, n) in &fields {
                w.write_bits(v, n);
            }
            let total: u64 = fields.iter().map(|&(_, n)| u64::from(n)).sum();
            prop_assert_eq!(w.bit_len(), total);
            prop_assert_eq!(w.bytes().len() as u64, total.div_ceil(8));
            let mut r = BitReader::new(w.bytes(), w.bit_len());
            for &(v, n) in &fields {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n, "test")?, v & mask);
            }
            prop_assert_eq!(r.remaining(), 0);
            prop_assert!(r.read_bits(1, "test").is_err());
        }
    }
}
