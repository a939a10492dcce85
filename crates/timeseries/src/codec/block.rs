//! Sealed, immutable blocks of points: a timestamp column and a value column behind a fixed
//! header that lets a reader skip the block by time range and detect corruption.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset size field
//!      0    4 magic "TSBK"
//!      4    1 version (1)
//!      5    1 format: 0 = plain columns, 1 = pco (values as f64), 2 = pco (values as u64 bits)
//!      6    2 reserved, zero
//!      8    4 point count
//!     12    8 min timestamp (i64::MAX for an empty block)
//!     20    8 max timestamp (i64::MIN for an empty block)
//!     28    4 payload length in bytes
//!     32    4 CRC32 (IEEE) of bytes 0..32 followed by the payload
//!     36    . payload
//! ```
//!
//! Payloads: plain = `count` i64 timestamps then `count` u64 value bit patterns; pco =
//! `[timestamp column length: u32][pco timestamps][pco values]`. Empty blocks have no payload.
//!
//! Values must round-trip bit-exactly. pco's float path is designed to be lossless, but rather
//! than rely on that for every mode it may pick, the encoder decompresses the f64 column once and
//! falls back to compressing raw bit patterns (format 2) if anything differs. On a 2-decimal
//! gauge the f64 path is several times smaller, because pco detects the 0.01 multiplier.

use pco::ChunkConfig;
use pco::data_types::Number;
use pco::standalone::{simple_compress, simple_decompress_into};

use super::CodecError;

pub const BLOCK_MAGIC: [u8; 4] = *b"TSBK";
pub const BLOCK_VERSION: u8 = 1;
pub const BLOCK_HEADER_LEN: usize = 36;
/// Upper bound on points per block; bounds what a (checksum-valid) header can make us allocate.
pub const MAX_BLOCK_POINTS: u32 = 1 << 24;

const CRC_OFFSET: usize = 32;
const PLAIN_BYTES_PER_POINT: usize = 16;

/// How a block's columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlockFormat {
    /// Plain little-endian columns, for schemas with `compression = false`.
    Plain = 0,
    /// pco-compressed timestamps and f64 values.
    Pco = 1,
    /// pco-compressed timestamps and values as u64 bit patterns (exactness fallback).
    PcoBits = 2,
}

impl BlockFormat {
    fn from_flag(flag: u8) -> Result<Self, CodecError> {
        match flag {
            0 => Ok(BlockFormat::Plain),
            1 => Ok(BlockFormat::Pco),
            2 => Ok(BlockFormat::PcoBits),
            other => Err(CodecError::UnknownFormat(other)),
        }
    }

    pub fn is_compressed(self) -> bool {
        self != BlockFormat::Plain
    }
}

/// The fixed-size header at the start of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHeader {
    pub version: u8,
    pub format: BlockFormat,
    pub count: u32,
    /// Smallest timestamp in the block; `i64::MAX` when empty.
    pub min_ts: i64,
    /// Largest timestamp in the block; `i64::MIN` when empty.
    pub max_ts: i64,
    pub payload_len: u32,
    pub crc32: u32,
}

impl BlockHeader {
    /// Header plus payload: how many bytes this block occupies.
    pub fn total_len(&self) -> usize {
        BLOCK_HEADER_LEN + self.payload_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether any point may fall in `[start, end]` (both inclusive). Empty blocks never do.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.count > 0 && self.min_ts <= end && self.max_ts >= start
    }

    fn to_bytes(self) -> [u8; BLOCK_HEADER_LEN] {
        let mut out = [0u8; BLOCK_HEADER_LEN];
        out[0..4].copy_from_slice(&BLOCK_MAGIC);
        out[4] = self.version;
        out[5] = self.format as u8;
        out[8..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..20].copy_from_slice(&self.min_ts.to_le_bytes());
        out[20..28].copy_from_slice(&self.max_ts.to_le_bytes());
        out[28..32].copy_from_slice(&self.payload_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.crc32.to_le_bytes());
        out
    }
}

/// Namespace for block encoding and decoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Block;

impl Block {
    /// Encodes aligned columns into a block; `compress = false` writes plain columns.
    /// Timestamps need not be sorted; the header records their true min and max.
    pub fn encode(timestamps: &[i64], values: &[f64], compress: bool) -> Result<Vec<u8>, CodecError> {
        if timestamps.len() != values.len() {
            return Err(CodecError::LengthMismatch { timestamps: timestamps.len(), values: values.len() });
        }
        let count = u32::try_from(timestamps.len())
            .ok()
            .filter(|&n| n <= MAX_BLOCK_POINTS)
            .ok_or(CodecError::TooManyPoints { count: timestamps.len() as u64, max: u64::from(MAX_BLOCK_POINTS) })?;
        let (min_ts, max_ts) = timestamps.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &ts| (lo.min(ts), hi.max(ts)));

        let (format, payload) = if !compress {
            (BlockFormat::Plain, encode_plain(timestamps, values))
        } else if timestamps.is_empty() {
            (BlockFormat::Pco, Vec::new())
        } else {
            encode_pco(timestamps, values)?
        };
        let payload_len = u32::try_from(payload.len()).map_err(|_| CodecError::Corrupt {
            what: "block payload",
            detail: format!("{} bytes do not fit the u32 length field", payload.len()),
        })?;

        let mut header = BlockHeader { version: BLOCK_VERSION, format, count, min_ts, max_ts, payload_len, crc32: 0 };
        let head = header.to_bytes();
        header.crc32 = checksum(&head[..CRC_OFFSET], &payload);

        let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + payload.len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses and sanity-checks the header only (no checksum: that needs the payload).
    /// `bytes` may be just the first [`BLOCK_HEADER_LEN`] bytes of a block.
    pub fn header(bytes: &[u8]) -> Result<BlockHeader, CodecError> {
        let Some(head) = bytes.get(..BLOCK_HEADER_LEN) else {
            return Err(CodecError::Truncated {
                what: "block header",
                offset: 0,
                needed: BLOCK_HEADER_LEN,
                available: bytes.len(),
            });
        };
        let magic = le_array::<4>(head, 0);
        if magic != BLOCK_MAGIC {
            return Err(CodecError::BadMagic { found: magic, expected: BLOCK_MAGIC });
        }
        let version = head[4];
        if version != BLOCK_VERSION {
            return Err(CodecError::UnsupportedVersion { what: "block", found: version, supported: BLOCK_VERSION });
        }
        let format = BlockFormat::from_flag(head[5])?;
        if head[6..8] != [0, 0] {
            return Err(corrupt("block header", "reserved bytes are not zero".to_owned()));
        }
        let header = BlockHeader {
            version,
            format,
            count: u32::from_le_bytes(le_array(head, 8)),
            min_ts: i64::from_le_bytes(le_array(head, 12)),
            max_ts: i64::from_le_bytes(le_array(head, 20)),
            payload_len: u32::from_le_bytes(le_array(head, 28)),
            crc32: u32::from_le_bytes(le_array(head, 32)),
        };
        if header.count > MAX_BLOCK_POINTS {
            return Err(CodecError::TooManyPoints { count: u64::from(header.count), max: u64::from(MAX_BLOCK_POINTS) });
        }
        if header.count == 0 {
            if header.payload_len != 0 || header.min_ts != i64::MAX || header.max_ts != i64::MIN {
                return Err(corrupt("block header", "empty block with a payload or a time range".to_owned()));
            }
        } else if header.min_ts > header.max_ts {
            return Err(corrupt("block header", format!("min {} > max {}", header.min_ts, header.max_ts)));
        }
        if header.format == BlockFormat::Plain
            && header.payload_len as usize != header.count as usize * PLAIN_BYTES_PER_POINT
        {
            return Err(corrupt(
                "block header",
                format!("plain block of {} points with a {}-byte payload", header.count, header.payload_len),
            ));
        }
        Ok(header)
    }

    /// Checks header and checksum without decompressing; `bytes` must be exactly one block.
    pub fn verify(bytes: &[u8]) -> Result<BlockHeader, CodecError> {
        let header = Self::header(bytes)?;
        let payload = payload_of(&header, bytes)?;
        let actual = checksum(bytes.get(..CRC_OFFSET).unwrap_or_default(), payload);
        if actual != header.crc32 {
            return Err(CodecError::ChecksumMismatch { expected: header.crc32, actual });
        }
        Ok(header)
    }

    /// Verifies and decodes one block (exactly [`BlockHeader::total_len`] bytes).
    pub fn decode(bytes: &[u8]) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
        let header = Self::verify(bytes)?;
        decode_payload(&header, payload_of(&header, bytes)?)
    }
}

fn corrupt(what: &'static str, detail: String) -> CodecError {
    CodecError::Corrupt { what, detail }
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(payload);
    hasher.finalize()
}

/// Copies `N` bytes at `offset`; callers pass in-bounds offsets of the fixed header.
fn le_array<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(offset..offset + N) {
        out.copy_from_slice(src);
    }
    out
}

fn payload_of<'a>(header: &BlockHeader, bytes: &'a [u8]) -> Result<&'a [u8], CodecError> {
    let rest = bytes.get(BLOCK_HEADER_LEN..).unwrap_or_default();
    let len = header.payload_len as usize;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(CodecError::Truncated {
            what: "block payload",
            offset: BLOCK_HEADER_LEN,
            needed: len,
            available: rest.len(),
        }),
        std::cmp::Ordering::Greater => Err(CodecError::TrailingBytes(rest.len() - len)),
        std::cmp::Ordering::Equal => Ok(rest),
    }
}

/// Decodes a payload whose header has been validated (checksum not required here, so tests can
/// feed garbage straight to the column decoders).
fn decode_payload(header: &BlockHeader, payload: &[u8]) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
    let count = header.count as usize;
    let (timestamps, values) = if count == 0 {
        if !payload.is_empty() {
            return Err(CodecError::TrailingBytes(payload.len()));
        }
        (Vec::new(), Vec::new())
    } else {
        match header.format {
            BlockFormat::Plain => decode_plain(payload, count)?,
            BlockFormat::Pco | BlockFormat::PcoBits => decode_pco(payload, count, header.format)?,
        }
    };
    let (min_ts, max_ts) = timestamps.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &ts| (lo.min(ts), hi.max(ts)));
    if (min_ts, max_ts) != (header.min_ts, header.max_ts) {
        return Err(corrupt(
            "block",
            format!("timestamps span {min_ts}..={max_ts} but the header says {}..={}", header.min_ts, header.max_ts),
        ));
    }
    Ok((timestamps, values))
}

fn encode_plain(timestamps: &[i64], values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamps.len() * PLAIN_BYTES_PER_POINT);
    for ts in timestamps {
        out.extend_from_slice(&ts.to_le_bytes());
    }
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    out
}

fn decode_plain(payload: &[u8], count: usize) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
    let expected = count * PLAIN_BYTES_PER_POINT;
    if payload.len() != expected {
        return Err(corrupt("plain block", format!("{} payload bytes for {count} points", payload.len())));
    }
    let (ts_bytes, value_bytes) = payload.split_at(count * 8);
    let timestamps = ts_bytes.chunks_exact(8).map(|c| i64::from_le_bytes(le_array(c, 0))).collect();
    let values = value_bytes.chunks_exact(8).map(|c| f64::from_bits(u64::from_le_bytes(le_array(c, 0)))).collect();
    Ok((timestamps, values))
}

fn encode_pco(timestamps: &[i64], values: &[f64]) -> Result<(BlockFormat, Vec<u8>), CodecError> {
    // Blocks are written once and read many times: spend the CPU.
    let config = ChunkConfig::default().with_compression_level(pco::DEFAULT_COMPRESSION_LEVEL.max(10));
    let ts_col = simple_compress(timestamps, &config)?;
    let float_col = simple_compress(values, &config)?;
    let exact = decompress_column::<f64>(&float_col, values.len(), "pco value column")
        .is_ok_and(|decoded| decoded.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits()));
    let (format, value_col) = if exact {
        (BlockFormat::Pco, float_col)
    } else {
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        (BlockFormat::PcoBits, simple_compress(&bits, &config)?)
    };
    let ts_len = u32::try_from(ts_col.len())
        .map_err(|_| corrupt("pco timestamp column", format!("{} bytes exceed u32", ts_col.len())))?;
    let mut payload = Vec::with_capacity(4 + ts_col.len() + value_col.len());
    payload.extend_from_slice(&ts_len.to_le_bytes());
    payload.extend_from_slice(&ts_col);
    payload.extend_from_slice(&value_col);
    Ok((format, payload))
}

fn decode_pco(payload: &[u8], count: usize, format: BlockFormat) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
    let Some(len_bytes) = payload.get(..4) else {
        return Err(CodecError::Truncated {
            what: "pco timestamp column length",
            offset: BLOCK_HEADER_LEN,
            needed: 4,
            available: payload.len(),
        });
    };
    let ts_len = u32::from_le_bytes(le_array(len_bytes, 0)) as usize;
    let rest = &payload[4..];
    if rest.len() < ts_len {
        return Err(CodecError::Truncated {
            what: "pco timestamp column",
            offset: BLOCK_HEADER_LEN + 4,
            needed: ts_len,
            available: rest.len(),
        });
    }
    let (ts_col, value_col) = rest.split_at(ts_len);
    let timestamps = decompress_column::<i64>(ts_col, count, "pco timestamp column")?;
    let values = if format == BlockFormat::PcoBits {
        decompress_column::<u64>(value_col, count, "pco value column")?.into_iter().map(f64::from_bits).collect()
    } else {
        decompress_column::<f64>(value_col, count, "pco value column")?
    };
    Ok((timestamps, values))
}

/// Decompresses exactly `count` numbers; the destination is sized from our (bounded) header
/// rather than from pco's own untrusted length fields.
fn decompress_column<T: Number>(src: &[u8], count: usize, what: &'static str) -> Result<Vec<T>, CodecError> {
    let mut out = vec![T::default(); count];
    let progress = simple_decompress_into(src, &mut out)?;
    if progress.n_processed != count || !progress.finished {
        return Err(corrupt(
            what,
            format!(
                "expected {count} numbers, pco produced {}{}",
                progress.n_processed,
                if progress.finished { "" } else { " and more" }
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::GorillaEncoder;
    use crate::codec::test_support::{bits_of, points_strategy, random_walk_gauge};
    use proptest::prelude::*;

    fn assert_round_trip(timestamps: &[i64], values: &[f64], compress: bool) -> Result<BlockHeader, TestCaseError> {
        let bytes = Block::encode(timestamps, values, compress)?;
        let header = Block::header(&bytes)?;
        prop_assert_eq!(header.total_len(), bytes.len());
        prop_assert_eq!(header.count as usize, timestamps.len());
        prop_assert_eq!(header.format.is_compressed(), compress);
        prop_assert_eq!(header.min_ts, timestamps.iter().copied().min().unwrap_or(i64::MAX));
        prop_assert_eq!(header.max_ts, timestamps.iter().copied().max().unwrap_or(i64::MIN));
        let (ts, vs) = Block::decode(&bytes)?;
        prop_assert_eq!(&ts, timestamps);
        prop_assert_eq!(bits_of(&vs), bits_of(values));
        Ok(header)
    }

    /// A block with a valid header and checksum around an arbitrary payload.
    fn forge(format: u8, count: u32, min_ts: i64, max_ts: i64, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; BLOCK_HEADER_LEN];
        head[0..4].copy_from_slice(&BLOCK_MAGIC);
        head[4] = BLOCK_VERSION;
        head[5] = format;
        head[8..12].copy_from_slice(&count.to_le_bytes());
        head[12..20].copy_from_slice(&min_ts.to_le_bytes());
        head[20..28].copy_from_slice(&max_ts.to_le_bytes());
        head[28..32].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = checksum(&head[..CRC_OFFSET], payload);
        head[32..36].copy_from_slice(&crc.to_le_bytes());
        let mut out = head.to_vec();
        out.extend_from_slice(payload);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trips_bit_exactly((timestamps, values) in points_strategy(300)) {
            assert_round_trip(&timestamps, &values, true)?;
            assert_round_trip(&timestamps, &values, false)?;
        }

        #[test]
        fn pco_f64_path_is_exact_for_special_values((timestamps, values) in points_strategy(300)) {
            // The bit-pattern fallback exists as a safety net; record that pco itself is exact.
            let header = assert_round_trip(&timestamps, &values, true)?;
            if !timestamps.is_empty() {
                prop_assert_eq!(header.format, BlockFormat::Pco);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Block::header(&bytes);
            prop_assert!(Block::decode(&bytes).is_err());
        }

        #[test]
        fn random_bytes_after_magic_never_panic(format in 0u8..4, rest in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut bytes = BLOCK_MAGIC.to_vec();
            bytes.push(BLOCK_VERSION);
            bytes.push(format);
            bytes.extend_from_slice(&rest);
            let _ = Block::header(&bytes);
            let _ = Block::decode(&bytes);
        }

        #[test]
        fn forged_payload_with_valid_checksum_never_panics(
            format in 0u8..3,
            count in prop_oneof![9 => 1u32..300, 1 => Just(MAX_BLOCK_POINTS)],
            min_ts in any::<i64>(),
            payload in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let bytes = forge(format, count, min_ts, min_ts, &payload);
            let _ = Block::decode(&bytes);
            // Also feed pco garbage behind a plausible column split.
            if let Ok(header) = Block::header(&bytes) {
                let _ = decode_payload(&header, &payload);
            }
        }

        #[test]
        fn corrupted_pco_columns_never_panic(
            (timestamps, values) in points_strategy(200),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = Block::encode(&timestamps, &values, true)?;
            let header = Block::header(&bytes)?;
            let mut payload = bytes[BLOCK_HEADER_LEN..].to_vec();
            if !payload.is_empty() {
                for (at, bit) in flips {
                    let i = at.index(payload.len());
                    payload[i] ^= 1 << bit;
                }
                let _ = decode_payload(&header, &payload);
                let _ = decode_payload(&header, &payload[..cut.index(payload.len())]);
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(
            (timestamps, values) in points_strategy(60),
            compress in any::<bool>(),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = Block::encode(&timestamps, &values, compress)?;
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(Block::decode(&bytes).is_err());
        }
    }

    #[test]
    fn errors_are_precise() {
        let bytes = Block::encode(&[1, 2, 3], &[1.0, 2.0, 3.0], true).expect("encode");
        assert!(matches!(
            Block::encode(&[1, 2], &[1.0], true),
            Err(CodecError::LengthMismatch { timestamps: 2, values: 1 })
        ));
        assert!(matches!(
            Block::header(&bytes[..10]),
            Err(CodecError::Truncated { what: "block header", needed: BLOCK_HEADER_LEN, available: 10, .. })
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(Block::decode(&bad), Err(CodecError::BadMagic { .. })));
        let mut bad = bytes.clone();
        bad[4] = 2;
        assert!(matches!(Block::decode(&bad), Err(CodecError::UnsupportedVersion { found: 2, .. })));
        let mut bad = bytes.clone();
        bad[5] = 9;
        assert!(matches!(Block::decode(&bad), Err(CodecError::UnknownFormat(9))));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert!(matches!(Block::decode(&bad), Err(CodecError::ChecksumMismatch { .. })));
        assert!(matches!(Block::decode(&bytes[..bytes.len() - 1]), Err(CodecError::Truncated { .. })));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(Block::decode(&long), Err(CodecError::TrailingBytes(1))));
        // pco errors carry pco's message.
        let garbage = forge(1, 3, 1, 3, &[4, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        assert!(matches!(Block::decode(&garbage), Err(CodecError::Pco(_))));
    }

    #[test]
    fn bit_pattern_fallback_format_decodes() {
        // The encoder only emits PcoBits if pco's f64 path ever loses bits; build one by hand.
        let ts = [1i64, 2, 3];
        let values = [f64::from_bits(0x7FF0_0000_0000_0001), -0.0, f64::NEG_INFINITY];
        let config = ChunkConfig::default();
        let ts_col = simple_compress(&ts, &config).expect("pco");
        let value_col = simple_compress(&bits_of(&values), &config).expect("pco");
        let mut payload = (ts_col.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&ts_col);
        payload.extend_from_slice(&value_col);
        let bytes = forge(BlockFormat::PcoBits as u8, 3, 1, 3, &payload);
        assert_eq!(Block::header(&bytes).expect("header").format, BlockFormat::PcoBits);
        let (dts, dvs) = Block::decode(&bytes).expect("decode");
        assert_eq!(dts, ts);
        assert_eq!(bits_of(&dvs), bits_of(&values));
    }

    #[test]
    fn header_allows_skipping_by_time() {
        let bytes = Block::encode(&[30, 10, 20], &[1.0, 2.0, 3.0], false).expect("encode");
        let header = Block::header(&bytes[..BLOCK_HEADER_LEN]).expect("header");
        assert_eq!((header.min_ts, header.max_ts, header.count), (10, 30, 3));
        assert!(header.overlaps(30, 40) && header.overlaps(0, 10) && header.overlaps(15, 16));
        assert!(!header.overlaps(31, 40) && !header.overlaps(0, 9));
        let empty = Block::header(&Block::encode(&[], &[], true).expect("encode")).expect("header");
        assert!(empty.is_empty() && !empty.overlaps(i64::MIN, i64::MAX));
    }

    #[test]
    fn edge_cases_round_trip() {
        let cases: Vec<(Vec<i64>, Vec<f64>)> = vec![
            (vec![], vec![]),
            (vec![i64::MIN], vec![-f64::NAN]),
            (
                vec![i64::MIN, i64::MAX, i64::MIN, 0, i64::MAX, i64::MAX],
                vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 5e-324, -5e-324],
            ),
            (
                vec![5, 5, 5, 4, 3, 100, -100],
                vec![
                    f64::from_bits(0x7FF0_0000_0000_0001),
                    f64::from_bits(0xFFF8_DEAD_BEEF_0001),
                    1.0,
                    1.0,
                    0.25,
                    0.5,
                    0.1,
                ],
            ),
        ];
        for (ts, vs) in cases {
            for compress in [true, false] {
                assert_round_trip(&ts, &vs, compress).expect("round trip");
            }
        }
    }

    #[test]
    fn random_walk_gauge_size() {
        let (ts, vs) = random_walk_gauge();
        let n = ts.len() as f64;
        let pco = Block::encode(&ts, &vs, true).expect("encode");
        let plain = Block::encode(&ts, &vs, false).expect("encode");
        let header = Block::header(&pco).expect("header");
        let config = ChunkConfig::default();
        let ts_col = simple_compress(&ts, &config).expect("pco");
        let f64_col = simple_compress(&vs, &config).expect("pco");
        let bits: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
        let u64_col = simple_compress(&bits, &config).expect("pco");
        let mut gorilla = GorillaEncoder::new();
        for (&t, &v) in ts.iter().zip(&vs) {
            gorilla.push(t, v);
        }
        let pco_per_point = pco.len() as f64 / n;
        eprintln!(
            "block: random-walk gauge, {} points: pco block {} B = {pco_per_point:.3} B/point ({:?}; timestamps {} B, \
             values as f64 {} B = {:.3} B/point, values as u64 bits {} B = {:.3} B/point); plain block {:.3} B/point; \
             gorilla {:.3} B/point",
            ts.len(),
            pco.len(),
            header.format,
            ts_col.len(),
            f64_col.len(),
            f64_col.len() as f64 / n,
            u64_col.len(),
            u64_col.len() as f64 / n,
            plain.len() as f64 / n,
            gorilla.bytes_used() as f64 / n,
        );
        let (dts, dvs) = Block::decode(&pco).expect("decode");
        assert_eq!(dts, ts);
        assert_eq!(bits_of(&dvs), bits_of(&vs));
        assert_eq!(header.format, BlockFormat::Pco);
        assert!(f64_col.len() < u64_col.len());
        assert!(pco_per_point <= 2.0, "pco block used {pco_per_point} bytes/point");
    }
}
