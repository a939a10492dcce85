//! A bounds-checked reader over a byte slice: every read says, when it
//! fails, what was being read and at which offset.

use crate::error::ReadError as Error;
use crate::varint::unzigzag;

type Result<T> = std::result::Result<T, Error>;

/// Reads fields front to back; `base` is the offset of the slice's first
/// byte in what it came from (a file), so errors and [`ByteReader::offset`]
/// say where in the file.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// A reader of `bytes`, which hold a `what`.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self::at(bytes, what, 0)
    }

    /// A reader of `bytes` found at offset `base`.
    pub fn at(bytes: &'a [u8], what: &'static str, base: u64) -> Self {
        Self { bytes, pos: 0, base, what }
    }

    /// The offset of the next byte (from the base).
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::Trailing { what: self.what, offset: self.offset(), count }),
        }
    }

    /// An error of this reader's structure at the next byte.
    pub fn invalid(&self, reason: &'static str) -> Error {
        Error::Invalid { what: self.what, offset: self.offset(), reason }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let available = self.remaining();
        if n > available {
            return Err(Error::Truncated { what: self.what, offset: self.offset(), needed: n, available });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        let [b] = self.array()?;
        Ok(b)
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// An unsigned LEB128 varint of at most 10 bytes, no bits beyond 64.
    pub fn uvarint(&mut self) -> Result<u64> {
        let start = self.offset();
        let mut value = 0u64;
        for i in 0..10u32 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(Error::VarintOverflow { what: self.what, offset: start, bits: 64 });
            }
            value |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(Error::VarintOverflow { what: self.what, offset: start, bits: 64 })
    }

    /// An unsigned varint that must fit 32 bits.
    pub fn uvarint32(&mut self) -> Result<u32> {
        let start = self.offset();
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| Error::VarintOverflow { what: self.what, offset: start, bits: 32 })
    }

    /// A zigzag varint.
    pub fn svarint(&mut self) -> Result<i64> {
        Ok(unzigzag(self.uvarint()?))
    }

    /// A UTF-8 string behind a `u16` length (see [`crate::FrameWriter::str`]).
    pub fn str16(&mut self) -> Result<&'a str> {
        let n = self.u16()? as usize;
        let offset = self.offset();
        std::str::from_utf8(self.take(n)?).map_err(|source| Error::Utf8 { what: self.what, offset, source })
    }

    /// Bytes behind a `u32` length, with their offset.
    pub fn bytes32(&mut self) -> Result<(u64, &'a [u8])> {
        let n = self.u32()? as usize;
        let offset = self.offset();
        Ok((offset, self.take(n)?))
    }

    /// Everything not read yet, with its offset.
    pub fn rest(&mut self) -> (u64, &'a [u8]) {
        let offset = self.offset();
        let r = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        (offset, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_say_what_where_and_how_much() {
        let mut r = ByteReader::at(&[1, 0, 0], "test record", 100);
        assert_eq!(r.u16().expect("u16"), 1);
        match r.u32() {
            Err(Error::Truncated { what: "test record", offset: 102, needed: 4, available: 1 }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.finish(), Err(Error::Trailing { offset: 102, count: 1, .. })));
    }

    #[test]
    fn overlong_varints_are_refused() {
        let eleven = [0xFFu8; 11];
        assert!(matches!(ByteReader::new(&eleven, "v").uvarint(), Err(Error::VarintOverflow { bits: 64, .. })));
        let mut tenth_too_big = vec![0xFFu8; 9];
        tenth_too_big.push(2);
        assert!(matches!(ByteReader::new(&tenth_too_big, "v").uvarint(), Err(Error::VarintOverflow { .. })));
        let mut big = Vec::new();
        crate::varint::put_uvarint(&mut big, u64::from(u32::MAX) + 1);
        assert!(matches!(ByteReader::new(&big, "v").uvarint32(), Err(Error::VarintOverflow { bits: 32, .. })));
        assert!(matches!(ByteReader::new(&[0x80], "v").uvarint(), Err(Error::Truncated { .. })));
    }

    #[test]
    fn strings_must_be_utf8_and_bytes_carry_their_offset() {
        let mut r = ByteReader::at(&[2, 0, 0xff, 0xfe], "s", 10);
        assert!(matches!(r.str16(), Err(Error::Utf8 { offset: 12, .. })));
        let mut r = ByteReader::at(&[2, 0, 0, 0, 7, 8, 9], "b", 10);
        assert_eq!(r.bytes32().expect("bytes"), (14, &[7u8, 8][..]));
        assert_eq!(r.rest(), (16, &[9u8][..]));
    }
}
