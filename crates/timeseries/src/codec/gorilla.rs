//! Gorilla-style streaming codec (Pelkonen et al., VLDB 2015) for the in-memory head of a
//! series: delta-of-delta timestamps and XOR-compressed values, appended one point at a time.
//!
//! Wire format (version 1):
//!
//! ```text
//! [version: u8 = 1] [point count: LEB128 u64] [bit stream, MSB first, zero-padded to a byte]
//! point 0:   timestamp (64 bits raw)  value (64 bits raw)
//! point n>0: delta-of-delta bucket    XOR value
//! ```
//!
//! Delta-of-delta buckets are sized for nanosecond timestamps: `0` costs one bit (perfectly
//! regular scrapes), then signed 16 bits (±32 µs), 24 bits (±8 ms: typical scrape jitter), 36
//! bits (±34 s: a missed scrape at 10 s), 48 bits (±39 h gaps), and a 64-bit escape. Deltas use
//! wrapping arithmetic, so every `i64` sequence round-trips: equal timestamps, out-of-order
//! (negative) deltas and `i64::MIN` ↔ `i64::MAX` jumps. The first delta is coded as a
//! delta-of-delta from 0.
//!
//! Values: `0` = same bits as the previous value; `10` + meaningful bits = XOR fits the previous
//! leading/trailing-zero window; `11` + 6-bit leading zeros + 6-bit (length − 1) + meaningful
//! bits = new window. The values are handled purely as bit patterns, so NaN payloads, `-0.0`,
//! infinities and subnormals are preserved exactly.

use std::iter::FusedIterator;

use super::CodecError;
use super::bits::{BitReader, BitWriter};

/// Format version written in the first byte.
pub const GORILLA_VERSION: u8 = 1;

/// Payload widths of the non-zero delta-of-delta buckets; bucket `i` is prefixed by `i + 1`
/// one-bits and a zero. Five one-bits select the 64-bit escape.
const DOD_WIDTHS: [u32; 4] = [16, 24, 36, 48];
const DOD_ESCAPE_PREFIX: u64 = 0b11111;
const DOD_ESCAPE_PREFIX_LEN: u32 = 5;

/// Extra bits a new XOR window costs over reusing one (6 leading + 6 length).
const NEW_WINDOW_OVERHEAD: u32 = 12;

/// Leading-zero count and meaningful-bit length (1..=64) of the last XOR window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    leading: u32,
    len: u32,
}

impl Window {
    fn trailing(self) -> u32 {
        64 - self.leading - self.len
    }
}

/// Streaming encoder for `(timestamp ns, value)` points.
///
/// Appending never fails and never re-encodes earlier points; [`GorillaEncoder::iter`] decodes
/// the points pushed so far straight from the internal buffer.
#[derive(Debug, Clone, Default)]
pub struct GorillaEncoder {
    bits: BitWriter,
    count: u64,
    prev_ts: i64,
    prev_delta: i64,
    prev_value: u64,
    window: Option<Window>,
}

impl GorillaEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder whose buffer starts with room for `bytes` bytes of stream
    /// (a head chunk sized like the one before it wastes no doubling slack).
    pub fn with_capacity(bytes: usize) -> Self {
        Self { bits: BitWriter::with_capacity(bytes), ..Self::default() }
    }

    /// Bytes the stream's buffer holds room for.
    pub fn capacity_bytes(&self) -> usize {
        self.bits.capacity()
    }

    /// Appends one point. Any timestamp order is accepted (out-of-order points cost more).
    pub fn push(&mut self, timestamp: i64, value: f64) {
        let value = value.to_bits();
        if self.count == 0 {
            self.bits.write_bits(timestamp as u64, 64);
            self.bits.write_bits(value, 64);
            self.prev_delta = 0;
        } else {
            let delta = timestamp.wrapping_sub(self.prev_ts);
            self.write_dod(delta.wrapping_sub(self.prev_delta));
            self.write_value(value);
            self.prev_delta = delta;
        }
        self.prev_ts = timestamp;
        self.prev_value = value;
        self.count += 1;
    }

    /// Number of points pushed.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The most recently pushed point, e.g. to detect out-of-order arrivals.
    pub fn last(&self) -> Option<(i64, f64)> {
        (self.count > 0).then(|| (self.prev_ts, f64::from_bits(self.prev_value)))
    }

    /// Size of [`GorillaEncoder::finish`]'s output right now, header included.
    pub fn bytes_used(&self) -> usize {
        1 + disk_format::varint::uvarint_len(self.count) + self.bits.bytes().len()
    }

    /// Decodes the points pushed so far without copying or finishing the stream.
    pub fn iter(&self) -> GorillaDecoder<'_> {
        GorillaDecoder::from_stream(self.bits.bytes(), self.bits.bit_len(), self.count)
    }

    /// Serialises the stream (header + bits) without consuming the encoder.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes_used());
        out.push(GORILLA_VERSION);
        disk_format::varint::put_uvarint(&mut out, self.count);
        out.extend_from_slice(self.bits.bytes());
        out
    }

    /// Serialises the stream; decode with [`GorillaDecoder::new`].
    pub fn finish(self) -> Vec<u8> {
        self.to_bytes()
    }

    fn write_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.bits.write_bit(false);
            return;
        }
        for (i, &width) in DOD_WIDTHS.iter().enumerate() {
            if fits_signed(dod, width) {
                let ones = i as u32 + 1;
                // `ones` one-bits followed by a zero.
                self.bits.write_bits(((1u64 << ones) - 1) << 1, ones + 1);
                self.bits.write_bits(dod as u64 & low_mask(width), width);
                return;
            }
        }
        self.bits.write_bits(DOD_ESCAPE_PREFIX, DOD_ESCAPE_PREFIX_LEN);
        self.bits.write_bits(dod as u64, 64);
    }

    fn write_value(&mut self, value: u64) {
        let xor = value ^ self.prev_value;
        if xor == 0 {
            self.bits.write_bit(false);
            return;
        }
        let leading = xor.leading_zeros();
        let trailing = xor.trailing_zeros();
        let len = 64 - leading - trailing;
        if let Some(window) = self.window
            && leading >= window.leading
            && trailing >= window.trailing()
            // Reusing a much wider window than needed costs more than announcing a new one.
            && window.len <= len + NEW_WINDOW_OVERHEAD
        {
            self.bits.write_bits(0b10, 2);
            self.bits.write_bits(xor >> window.trailing(), window.len);
        } else {
            self.bits.write_bits(0b11, 2);
            self.bits.write_bits(u64::from(leading), 6);
            self.bits.write_bits(u64::from(len - 1), 6);
            self.bits.write_bits(xor >> trailing, len);
            self.window = Some(Window { leading, len });
        }
    }
}

/// Iterator over the points of a Gorilla stream.
///
/// Yields `Err` once and then stops if the input is truncated or corrupt, including when bytes
/// remain after the promised number of points.
#[derive(Debug, Clone)]
pub struct GorillaDecoder<'a> {
    /// The full serialised input, until the header has been parsed.
    pending_header: Option<&'a [u8]>,
    reader: BitReader<'a>,
    remaining: u64,
    decoded: u64,
    prev_ts: i64,
    prev_delta: i64,
    prev_value: u64,
    window: Option<Window>,
    done: bool,
}

impl<'a> GorillaDecoder<'a> {
    /// Decodes bytes produced by [`GorillaEncoder::finish`]. Header errors surface as the first
    /// item.
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut decoder = Self::from_stream(&[], 0, 0);
        decoder.pending_header = Some(bytes);
        decoder
    }

    /// Decodes a whole stream into columns.
    pub fn decode_all(bytes: &'a [u8]) -> Result<(Vec<i64>, Vec<f64>), CodecError> {
        let mut decoder = Self::new(bytes);
        decoder.parse_header()?;
        // Every point after the first costs at least 2 bits, so the stream bounds the count and
        // a lying header cannot force a huge allocation.
        let cap = decoder.remaining.min(decoder.reader.remaining() / 2 + 1);
        let cap = usize::try_from(cap).unwrap_or(0);
        let mut timestamps = Vec::with_capacity(cap);
        let mut values = Vec::with_capacity(cap);
        for point in decoder {
            let (ts, v) = point?;
            timestamps.push(ts);
            values.push(v);
        }
        Ok((timestamps, values))
    }

    fn from_stream(data: &'a [u8], bit_len: u64, count: u64) -> Self {
        GorillaDecoder {
            pending_header: None,
            reader: BitReader::new(data, bit_len),
            remaining: count,
            decoded: 0,
            prev_ts: 0,
            prev_delta: 0,
            prev_value: 0,
            window: None,
            done: false,
        }
    }

    fn parse_header(&mut self) -> Result<(), CodecError> {
        let Some(bytes) = self.pending_header.take() else {
            return Ok(());
        };
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(CodecError::Truncated { what: "gorilla header", offset: 0, needed: 1, available: 0 });
        };
        if version != GORILLA_VERSION {
            return Err(CodecError::UnsupportedVersion {
                what: "gorilla stream",
                found: version,
                supported: GORILLA_VERSION,
            });
        }
        let mut header = disk_format::ByteReader::at(rest, "gorilla point count", 1);
        let count = header.uvarint()?;
        let (_, stream) = header.rest();
        self.reader = BitReader::new(stream, u64::MAX);
        self.remaining = count;
        Ok(())
    }

    fn next_point(&mut self) -> Result<Option<(i64, f64)>, CodecError> {
        self.parse_header()?;
        if self.remaining == 0 {
            self.check_padding()?;
            return Ok(None);
        }
        let r = &mut self.reader;
        let (ts, value) = if self.decoded == 0 {
            let ts = r.read_bits(64, "gorilla first timestamp")? as i64;
            let value = r.read_bits(64, "gorilla first value")?;
            self.prev_delta = 0;
            (ts, value)
        } else {
            let delta = self.prev_delta.wrapping_add(read_dod(r)?);
            let ts = self.prev_ts.wrapping_add(delta);
            self.prev_delta = delta;
            let value = self.read_value()?;
            (ts, value)
        };
        self.prev_ts = ts;
        self.prev_value = value;
        self.remaining -= 1;
        self.decoded += 1;
        Ok(Some((ts, f64::from_bits(value))))
    }

    fn read_value(&mut self) -> Result<u64, CodecError> {
        let r = &mut self.reader;
        if !r.read_bit("gorilla value control")? {
            return Ok(self.prev_value);
        }
        let window = if r.read_bit("gorilla value control")? {
            let leading = r.read_bits(6, "gorilla xor leading zeros")? as u32;
            let len = r.read_bits(6, "gorilla xor length")? as u32 + 1;
            if leading + len > 64 {
                return Err(CodecError::Corrupt {
                    what: "gorilla stream",
                    detail: format!("xor window of {len} bits after {leading} leading zeros exceeds 64 bits"),
                });
            }
            let window = Window { leading, len };
            self.window = Some(window);
            window
        } else {
            self.window.ok_or_else(|| CodecError::Corrupt {
                what: "gorilla stream",
                detail: format!("point {} reuses an xor window before any was defined", self.decoded),
            })?
        };
        let meaningful = self.reader.read_bits(window.len, "gorilla xor bits")?;
        Ok(self.prev_value ^ (meaningful << window.trailing()))
    }

    /// After the last point only zero padding up to the next byte boundary may remain.
    fn check_padding(&mut self) -> Result<(), CodecError> {
        let left = self.reader.remaining();
        if left >= 8 {
            return Err(CodecError::TrailingBytes(usize::try_from(left / 8).unwrap_or(usize::MAX)));
        }
        let padding = self.reader.read_bits(left as u32, "gorilla padding")?;
        if padding != 0 {
            return Err(CodecError::Corrupt {
                what: "gorilla stream",
                detail: "non-zero padding after the last point".to_owned(),
            });
        }
        Ok(())
    }
}

impl Iterator for GorillaDecoder<'_> {
    type Item = Result<(i64, f64), CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_point() {
            Ok(Some(point)) => Some(Ok(point)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done || self.pending_header.is_some() {
            return (0, if self.done { Some(0) } else { None });
        }
        // One extra item for a possible trailing-data error.
        (0, usize::try_from(self.remaining).ok().and_then(|n| n.checked_add(1)))
    }
}

impl FusedIterator for GorillaDecoder<'_> {}

fn read_dod(r: &mut BitReader<'_>) -> Result<i64, CodecError> {
    let mut ones = 0usize;
    while ones < DOD_ESCAPE_PREFIX_LEN as usize && r.read_bit("gorilla timestamp bucket")? {
        ones += 1;
    }
    match ones {
        0 => Ok(0),
        n if n <= DOD_WIDTHS.len() => {
            let width = DOD_WIDTHS[n - 1];
            Ok(sign_extend(r.read_bits(width, "gorilla delta-of-delta")?, width))
        }
        _ => Ok(r.read_bits(64, "gorilla delta-of-delta")? as i64),
    }
}

fn fits_signed(v: i64, width: u32) -> bool {
    let limit = 1i64 << (width - 1);
    (-limit..limit).contains(&v)
}

fn low_mask(width: u32) -> u64 {
    if width >= 64 { u64::MAX } else { (1u64 << width) - 1 }
}

fn sign_extend(raw: u64, width: u32) -> i64 {
    let shift = 64 - width;
    ((raw << shift) as i64) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{bits_of, points_strategy, random_walk_gauge};
    use proptest::prelude::*;

    fn encode(timestamps: &[i64], values: &[f64]) -> Vec<u8> {
        let mut enc = GorillaEncoder::new();
        for (&ts, &v) in timestamps.iter().zip(values) {
            enc.push(ts, v);
        }
        enc.finish()
    }

    fn assert_round_trip(timestamps: &[i64], values: &[f64]) -> Result<(), TestCaseError> {
        let mut enc = GorillaEncoder::new();
        for (&ts, &v) in timestamps.iter().zip(values) {
            enc.push(ts, v);
        }
        prop_assert_eq!(enc.len(), timestamps.len());
        // In-place decoding of the live head.
        let live: Result<Vec<_>, _> = enc.iter().collect();
        let live = live?;
        prop_assert_eq!(live.iter().map(|p| p.0).collect::<Vec<_>>(), timestamps.to_vec());
        prop_assert_eq!(live.iter().map(|p| p.1.to_bits()).collect::<Vec<_>>(), bits_of(values));

        let used = enc.bytes_used();
        let bytes = enc.finish();
        prop_assert_eq!(bytes.len(), used);
        let (ts, vs) = GorillaDecoder::decode_all(&bytes)?;
        prop_assert_eq!(&ts, timestamps);
        prop_assert_eq!(bits_of(&vs), bits_of(values));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn round_trips_bit_exactly((timestamps, values) in points_strategy(300)) {
            assert_round_trip(&timestamps, &values)?;
        }

        #[test]
        fn any_strict_prefix_is_an_error((timestamps, values) in points_strategy(40), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&timestamps, &values);
            let cut = cut.index(bytes.len());
            let result = GorillaDecoder::decode_all(&bytes[..cut]);
            prop_assert!(result.is_err(), "prefix of {} / {} bytes decoded", cut, bytes.len());
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            for _ in GorillaDecoder::new(&bytes) {}
            let _ = GorillaDecoder::decode_all(&bytes);
        }

        #[test]
        fn random_stream_after_valid_header_never_panics(
            count in prop_oneof![0u64..64, any::<u64>()],
            stream in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut bytes = vec![GORILLA_VERSION];
            disk_format::varint::put_uvarint(&mut bytes, count);
            bytes.extend_from_slice(&stream);
            let n = GorillaDecoder::new(&bytes).count();
            prop_assert!(n as u64 <= count.saturating_add(1));
            let _ = GorillaDecoder::decode_all(&bytes);
        }
    }

    #[test]
    fn edge_cases_round_trip() {
        let cases: Vec<(Vec<i64>, Vec<f64>)> = vec![
            (vec![], vec![]),
            (vec![42], vec![f64::NAN]),
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
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    0.1,
                ],
            ),
        ];
        for (ts, vs) in cases {
            assert_round_trip(&ts, &vs).expect("round trip");
        }
    }

    #[test]
    fn regular_timestamps_cost_one_bit() {
        let mut enc = GorillaEncoder::new();
        for i in 0..1001i64 {
            enc.push(1_700_000_000_000_000_000 + i * 10_000_000_000, 7.0);
        }
        // 128 bits for the first point; the first delta (10 s = 2^33.2 ns) takes the 36-bit bucket
        // plus a repeated value bit; then 2 bits (dod 0 + repeated value) per point.
        let expected_bits = 128 + (5 + 36 + 1) + 999 * 2;
        assert_eq!(enc.bytes_used(), 1 + 2 + (expected_bits as usize).div_ceil(8));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(GorillaDecoder::decode_all(&[]), Err(CodecError::Truncated { .. })));
        assert!(matches!(GorillaDecoder::decode_all(&[9, 0]), Err(CodecError::UnsupportedVersion { found: 9, .. })));
        assert!(matches!(
            GorillaDecoder::decode_all(&[GORILLA_VERSION, 0x80]),
            Err(CodecError::Read(disk_format::ReadError::Truncated { .. }))
        ));
        assert!(matches!(GorillaDecoder::decode_all(&[GORILLA_VERSION, 0, 0]), Err(CodecError::TrailingBytes(1))));
        assert_eq!(GorillaDecoder::decode_all(&[GORILLA_VERSION, 0]), Ok((vec![], vec![])));
        let mut bytes = encode(&[1, 2], &[1.0, 2.0]);
        bytes.push(0);
        assert!(matches!(GorillaDecoder::decode_all(&bytes), Err(CodecError::TrailingBytes(1))));
    }

    #[test]
    fn random_walk_gauge_size() {
        let (ts, vs) = random_walk_gauge();
        let bytes = encode(&ts, &vs);
        let per_point = bytes.len() as f64 / ts.len() as f64;
        eprintln!("gorilla: random-walk gauge, {} points: {} bytes, {per_point:.3} bytes/point", ts.len(), bytes.len());
        let (dts, dvs) = GorillaDecoder::decode_all(&bytes).expect("decode");
        assert_eq!(dts, ts);
        assert_eq!(bits_of(&dvs), bits_of(&vs));
        assert!(per_point <= 9.0, "gorilla used {per_point} bytes/point");
    }
}
