//! Mergeable relative-error quantile sketch for `f64` values ([`QuantileSketch`]).
//!
//! Small sketches (at most [`MAX_EXACT`] values, e.g. a 1-minute bucket of
//! 10-second points) keep their values exactly in a sorted buffer and answer
//! quantiles exactly; the DDSketch is only built when the buffer overflows or
//! when a sketch-backed one is merged in.
//!
//! Built on the `sketches-ddsketch` crate (a DDSketch: logarithmic bins with a
//! collapsing-lowest dense store per sign). Rollups merge per-bucket sketches
//! (1min -> 5min -> 1hour -> 1day) bin by bin; merging is exact on the bins, so
//! the accuracy of a rolled-up percentile is the accuracy of one sketch.
//!
//! # Decisions
//!
//! * **Exact buffer.** Up to [`MAX_EXACT`] (32) values are kept exactly,
//!   sorted, with no DDSketch allocated (about 8 bytes of heap per value
//!   instead of at least 1 KiB of bins). Quantiles then are the exact value
//!   at the rank below. Merging two buffered sketches whose counts sum to at
//!   most [`MAX_EXACT`] stays buffered (the sorted multiset of both, so the
//!   result does not depend on the merge order); otherwise the buffered values
//!   are added to a DDSketch, whose bins are then exactly those of a sketch
//!   fed every value, so the accuracy guarantee below holds unchanged. 32
//!   holds a 5-minute bucket of 10-second points (30 values).
//! * **Accuracy.** [`RELATIVE_ACCURACY`] is 0.5 %: for any `q` in `(0, 1)`,
//!   `quantile(q)` is within 0.5 % relative error of the exact value at the rank
//!   defined below, however many merges produced the sketch, as long as the
//!   magnitudes of one sign span less than about 17.8 decades (see next point).
//!   `q == 0` and `q == 1` return the exact minimum and maximum, and every
//!   answer is clamped into `[min, max]`, which only ever reduces the error.
//! * **Bins.** At most [`MAX_BINS_PER_SIGN`] (4096) bins per sign, so one sign
//!   covers a magnitude ratio of `gamma^4096 ~ 6e17` (e.g. 1e-9 .. 6e8, or
//!   1e-3 .. 6e14) at full accuracy. Past that the store collapses its lowest
//!   bins (smallest magnitudes), so quantiles that land there are
//!   over-estimated in magnitude. Memory is dense over the occupied key range,
//!   8 bytes per bin, grown in chunks of 128 bins (1 KiB), per sign.
//! * **Rank definition.** For `n` values sorted ascending (0-based), quantile
//!   `q` is the value at rank `floor(q * (n - 1))` (computed as
//!   `(q * (n as f64 - 1.0)) as u64`, exactly as the crate does): the "lower"
//!   nearest-rank percentile, `p50` of `{1, 2, 3, 4}` is 2. The seed used
//!   `sorted[int(n * q)]`, which for `n = 100`, `q = 0.95` is one rank higher.
//! * **Negative values** are supported natively: the crate keeps a second,
//!   mirrored store for `-v`; ranks below the negative count read it in
//!   reverse. They get the same relative accuracy as positive values.
//! * **Zero** is exact: values with `|v| <= ZERO_THRESHOLD` (1e-9) are counted
//!   in a zero bin and reported as `0.0` (absolute error at most 1e-9 for
//!   non-zero values that small). `-0.0` is normalised to `0.0`.
//! * **NaN and infinities** are refused with [`AggError::NonFinite`] and leave
//!   the sketch unchanged (the crate would count a NaN as zero and poison its
//!   sum, and an infinity overflows its key arithmetic). The engine already
//!   refuses NaN by schema policy before a point gets here.
//! * **Counts** are limited to [`MAX_COUNT`] (2^53) points per sketch so they
//!   stay exact in `f64` rank arithmetic and can never overflow a bin; `add`
//!   and `merge` past it return [`AggError::CountOverflow`].
//!
//! # Persistence formats (versions 1 and 2)
//!
//! Compact and self-validating; decoding any byte string either fails with
//! [`AggError::Decode`] or yields a sketch that satisfies every invariant.
//! Empty and sketch-backed sketches are written in version 1 (the original
//! format, still read), buffered ones in version 2:
//!
//! ```text
//! "QS" 0x02                      magic and format version 2 (exact values)
//! uvarint n                      1 ..= MAX_EXACT values, ascending
//! u8 mode, then the values:
//!   0      n x f64 LE
//!   1      uvarint of the order-preserving bits of the first value, then
//!          n - 1 uvarint deltas of those bits
//!   2 + k  decimals with k (0 ..= 15) digits, value = m / 10^k exactly:
//!          zigzag varint m of the first value, n - 1 uvarint deltas of m
//! ```
//!
//! The encoder uses the decimal mode with the smallest `k` that represents
//! every value exactly (2-decimal gauges cost about 1-2 bytes per value),
//! otherwise the smaller of modes 0 and 1. Version 1:
//!
//! ```text
//! "QS" 0x01                      magic and format version (version implies the config)
//! uvarint count                  0 means empty, nothing follows
//! f64 LE min, f64 LE max         exact extremes
//! uvarint zero_count
//! positive store, negative store each: uvarint n, then n x (zigzag varint key delta, uvarint count)
//! ```
//!
//! Keys are the crate's bin indexes, strictly increasing within a store. Only
//! non-empty bins are written, so a sketch costs about 2-4 bytes per occupied
//! bin plus 20 bytes. The bins are read from the crate through its
//! Java-compatible encoding (the only public view of them) and rebuilt on
//! decode with `add_with_count` at a representative value of each bin.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use disk_format::ByteReader;
use disk_format::varint::{put_svarint, put_uvarint};

use crate::agg_error::AggError;

/// Relative accuracy of every quantile answer (0.5 %).
pub const RELATIVE_ACCURACY: f64 = 0.005;
/// Maximum number of bins per sign before the lowest bins collapse.
pub const MAX_BINS_PER_SIGN: u32 = 4096;
/// Values with a magnitude at or below this are counted as zero.
pub const ZERO_THRESHOLD: f64 = 1e-9;
/// Maximum number of values one sketch (or one bucket) may hold: 2^53.
pub const MAX_COUNT: u64 = 1 << 53;

const MAGIC: [u8; 2] = *b"QS";
const FORMAT_VERSION: u8 = 1;
/// Format version of a sketch that holds its values exactly.
const FORMAT_VERSION_EXACT: u8 = 2;

/// Most values kept exactly before the DDSketch is built.
pub const MAX_EXACT: usize = 32;

/// Powers of ten that are exact in `f64` and scale decimals in format version 2.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
/// Largest integer magnitude a decimal mantissa may have (exact in `f64`).
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

/// A DDSketch fed `values`.
fn ddsketch_of(values: &[f64]) -> DDSketch {
    let mut sketch = DDSketch::new(config());
    for &v in values {
        sketch.add(v);
    }
    sketch
}

/// Maps `f64` bits to `u64` so that the order of (non-NaN) values is kept.
fn ordered_bits(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

/// Inverse of [`ordered_bits`].
fn from_ordered_bits(u: u64) -> f64 {
    f64::from_bits(if u >> 63 == 1 { u & !(1 << 63) } else { !u })
}

/// Decimal mantissas of `values` with the smallest scale `k` that is exact, if any.
fn decimal_mantissas(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    (0u8..16).find_map(|k| {
        let p = POW10[usize::from(k)];
        values
            .iter()
            .map(|&v| {
                let m = (v * p).round();
                (m.abs() <= MAX_MANTISSA && m / p == v).then_some(m as i64)
            })
            .collect::<Option<Vec<i64>>>()
            .map(|ms| (k, ms))
    })
}

fn config() -> Config {
    Config::new(RELATIVE_ACCURACY, MAX_BINS_PER_SIGN, ZERO_THRESHOLD)
}

/// Smallest and largest bin key a finite value above the zero threshold maps to.
fn key_bounds(cfg: &Config) -> (i64, i64) {
    (i64::from(cfg.key(ZERO_THRESHOLD.next_up())), i64::from(cfg.key(f64::MAX)))
}

/// A value that the sketch maps to bin `key` (`None` if there is none).
fn representative(cfg: &Config, key: i32) -> Option<f64> {
    [cfg.value(key), ZERO_THRESHOLD.next_up(), f64::MAX]
        .into_iter()
        .find(|&c| c.is_finite() && c > ZERO_THRESHOLD && cfg.key(c) == key)
}

/// Mergeable quantile sketch with 0.5 % relative accuracy (see the module docs).
#[derive(Clone)]
pub struct QuantileSketch {
    /// Exact values, ascending (`-0.0` stored as `0.0`), while `inner` is `None`;
    /// empty once the DDSketch is built.
    values: Vec<f64>,
    /// The DDSketch, built when more than [`MAX_EXACT`] values are held.
    inner: Option<Box<DDSketch>>,
    count: u64,
    /// Exact minimum; `+inf` while empty.
    min: f64,
    /// Exact maximum; `-inf` while empty.
    max: f64,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantileSketch")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("exact_values", &self.values.len())
            .field("allocated_bins", &self.inner.as_ref().map_or(0, |s| s.length()))
            .finish()
    }
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self { values: Vec::new(), inner: None, count: 0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }

    /// The DDSketch, built from the buffered values first if needed.
    fn ddsketch_mut(&mut self) -> &mut DDSketch {
        let values = &mut self.values;
        self.inner.get_or_insert_with(|| {
            let sketch = ddsketch_of(values);
            *values = Vec::new();
            Box::new(sketch)
        })
    }

    /// The values in ascending order if they are held exactly (not yet sketched).
    pub(crate) fn exact_values(&self) -> Option<&[f64]> {
        self.inner.is_none().then_some(self.values.as_slice())
    }

    /// Relative accuracy guaranteed for `0 < q < 1` (0.005).
    pub const fn relative_accuracy() -> f64 {
        RELATIVE_ACCURACY
    }

    /// Adds one value. NaN and infinities are refused and change nothing.
    pub fn add(&mut self, v: f64) -> Result<(), AggError> {
        if !v.is_finite() {
            return Err(AggError::NonFinite { value: v });
        }
        if self.count >= MAX_COUNT {
            return Err(AggError::CountOverflow);
        }
        let v = v + 0.0; // -0.0 -> 0.0
        if self.inner.is_none() && self.values.len() < MAX_EXACT {
            let at = self.values.partition_point(|&x| x <= v);
            self.values.insert(at, v);
        } else {
            self.ddsketch_mut().add(v);
        }
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        Ok(())
    }

    /// Merges `other` into `self` (bin-exact: the result answers exactly as a
    /// sketch fed all values of both would). Fails only if the combined count
    /// would exceed [`MAX_COUNT`]; `self` is then unchanged.
    pub fn merge(&mut self, other: &Self) -> Result<(), AggError> {
        if other.count == 0 {
            return Ok(());
        }
        let total = self.count.checked_add(other.count).filter(|t| *t <= MAX_COUNT).ok_or(AggError::CountOverflow)?;
        match &other.inner {
            None if self.inner.is_none() && self.values.len() + other.values.len() <= MAX_EXACT => {
                self.values.extend_from_slice(&other.values);
                self.values.sort_by(f64::total_cmp);
            }
            None => {
                let sketch = self.ddsketch_mut();
                for &v in &other.values {
                    sketch.add(v);
                }
            }
            // Every sketch is built with the same private config, so the crate's
            // config check cannot fail; it leaves the bins unchanged if it does.
            Some(o) => self.ddsketch_mut().merge(o).map_err(|_| AggError::IncompatibleSketch)?,
        }
        self.count = total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The value at rank `floor(q * (n - 1))`, within 0.5 % relative error.
    ///
    /// `Ok(None)` when empty; [`AggError::InvalidQuantile`] unless `0 <= q <= 1`.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, AggError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(AggError::InvalidQuantile { q });
        }
        if self.count == 0 {
            return Ok(None);
        }
        if q == 0.0 {
            return Ok(Some(self.min));
        }
        if q == 1.0 {
            return Ok(Some(self.max));
        }
        let estimate = match &self.inner {
            Some(inner) => inner.quantile(q).map_err(|_| AggError::InvalidQuantile { q })?,
            // Exact: the crate's rank arithmetic on the sorted values.
            None => self.values.get((q * (self.values.len() as f64 - 1.0)) as usize).copied(),
        };
        // max/min rather than clamp: never panics, even on an impossible min > max.
        Ok(estimate.map(|v| v.max(self.min).min(self.max)))
    }

    /// Number of values added (directly or through merges).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `true` if no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact minimum, `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Exact maximum, `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Encodes the sketch in the persistence format described in the module docs.
    ///
    /// Fails only if the `sketches-ddsketch` crate changed its encoding
    /// ([`AggError::Encode`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>, AggError> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        put_uvarint(&mut out, self.count);
        if self.count == 0 {
            return Ok(out);
        }
        let Some(inner) = &self.inner else {
            out.truncate(MAGIC.len());
            self.encode_exact(&mut out);
            return Ok(out);
        };
        let bins = CrateBins::parse(&inner.to_java_bytes())?;
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        put_uvarint(&mut out, bins.zero);
        for store in [&bins.positive, &bins.negative] {
            put_uvarint(&mut out, store.len() as u64);
            let mut prev = 0i64;
            for &(key, count) in store {
                put_svarint(&mut out, key - prev);
                put_uvarint(&mut out, count);
                prev = key;
            }
        }
        Ok(out)
    }

    /// Appends version byte and body of format version 2 (exact values).
    fn encode_exact(&self, out: &mut Vec<u8>) {
        let values = &self.values;
        out.push(FORMAT_VERSION_EXACT);
        put_uvarint(out, values.len() as u64);
        if let Some((k, ms)) = decimal_mantissas(values) {
            out.push(2 + k);
            let mut prev = 0i64;
            for (i, &m) in ms.iter().enumerate() {
                if i == 0 {
                    put_svarint(out, m);
                } else {
                    put_uvarint(out, m.abs_diff(prev));
                }
                prev = m;
            }
            return;
        }
        let mut deltas = Vec::with_capacity(values.len() * 8);
        let mut prev = 0u64;
        for &v in values {
            let u = ordered_bits(v);
            put_uvarint(&mut deltas, u - prev);
            prev = u;
        }
        if deltas.len() < values.len() * 8 {
            out.push(1);
            out.extend_from_slice(&deltas);
        } else {
            out.push(0);
            for &v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Reads the body of format version 2 (after the version byte).
    fn decode_exact(r: &mut ByteReader<'_>) -> Result<Self, AggError> {
        let err = |reason| AggError::Decode { what: "quantile sketch", reason };
        let n = r.uvarint()?;
        if n == 0 || n > MAX_EXACT as u64 {
            return Err(err("exact value count out of range"));
        }
        let mode = r.u8()?;
        let mut values = Vec::with_capacity(MAX_EXACT.min(n as usize));
        let mut prev_bits = 0u64;
        let mut prev_m = 0i64;
        for i in 0..n {
            let v = match mode {
                0 => r.f64()?,
                1 => {
                    prev_bits = prev_bits.checked_add(r.uvarint()?).ok_or(err("value delta overflow"))?;
                    from_ordered_bits(prev_bits)
                }
                2..=17 => {
                    prev_m = if i == 0 {
                        r.svarint()?
                    } else {
                        i64::try_from(r.uvarint()?)
                            .ok()
                            .and_then(|d| prev_m.checked_add(d))
                            .ok_or(err("value delta overflow"))?
                    };
                    if prev_m.unsigned_abs() > 1 << 53 {
                        return Err(err("decimal mantissa above 2^53"));
                    }
                    prev_m as f64 / POW10[usize::from(mode - 2)]
                }
                _ => return Err(err("unknown value encoding")),
            };
            if !v.is_finite() || v.to_bits() == (-0.0f64).to_bits() || values.last().is_some_and(|&p| v < p) {
                return Err(err("exact values not finite, -0.0 or not ascending"));
            }
            values.push(v);
        }
        r.finish()?;
        let (min, max) = (values.first().copied(), values.last().copied());
        Ok(Self {
            count: values.len() as u64,
            min: min.unwrap_or(f64::INFINITY),
            max: max.unwrap_or(f64::NEG_INFINITY),
            values,
            inner: None,
        })
    }

    /// Decodes a sketch written by [`to_bytes`](Self::to_bytes) (either
    /// format version), validating every field; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AggError> {
        let err = |reason| AggError::Decode { what: "quantile sketch", reason };
        let mut r = ByteReader::new(bytes, "quantile sketch");
        if r.take(2)? != MAGIC {
            return Err(err("bad magic"));
        }
        match r.u8()? {
            FORMAT_VERSION => {}
            FORMAT_VERSION_EXACT => return Self::decode_exact(&mut r),
            _ => return Err(err("unsupported format version")),
        }
        let count = r.uvarint()?;
        let mut sketch = Self::new();
        if count == 0 {
            r.finish()?;
            return Ok(sketch);
        }
        if count > MAX_COUNT {
            return Err(err("count above 2^53"));
        }
        let (min, max) = (r.f64()?, r.f64()?);
        if !min.is_finite() || !max.is_finite() || min > max {
            return Err(err("min/max not finite or min > max"));
        }
        let cfg = config();
        let (key_lo, key_hi) = key_bounds(&cfg);
        let zero = r.uvarint()?;
        if zero > MAX_COUNT {
            return Err(err("count above 2^53"));
        }
        // Version 1 holds bins only: the sketch stays sketch-backed whatever its count.
        let inner = sketch.ddsketch_mut();
        if zero > 0 {
            inner.add_with_count(0.0, zero);
        }
        let mut total = zero;
        let mut top_keys = [None, None];
        for (store, sign) in [1.0f64, -1.0].into_iter().enumerate() {
            let n = r.uvarint()?;
            if n > (key_hi - key_lo + 1) as u64 {
                return Err(err("more bins than keys"));
            }
            let mut key = 0i64;
            let mut prev: Option<i64> = None;
            for _ in 0..n {
                key = key.checked_add(r.svarint()?).ok_or(err("bin key overflow"))?;
                if key < key_lo || key > key_hi || prev.is_some_and(|p| key <= p) {
                    return Err(err("bin key out of range or not increasing"));
                }
                let c = r.uvarint()?;
                total = total.checked_add(c).filter(|t| *t <= MAX_COUNT).ok_or(err("count above 2^53"))?;
                if c == 0 {
                    return Err(err("empty bin"));
                }
                let k32 = i32::try_from(key).map_err(|_| err("bin key out of range"))?;
                let rep = representative(&cfg, k32).ok_or(err("bin key has no representative value"))?;
                inner.add_with_count(sign * rep, c);
                prev = Some(key);
            }
            top_keys[store] = prev;
        }
        r.finish()?;
        if total != count {
            return Err(err("count does not match the bins"));
        }
        // The extremes must sit where the bins say they are.
        let consistent_top = |extreme: f64, top: Option<i64>| match top {
            Some(k) => extreme > ZERO_THRESHOLD && i64::from(cfg.key(extreme)) == k,
            None => extreme <= ZERO_THRESHOLD,
        };
        if !consistent_top(max, top_keys[0])
            || !consistent_top(-min, top_keys[1])
            || (zero > 0 && !(min <= ZERO_THRESHOLD && max >= -ZERO_THRESHOLD))
        {
            return Err(err("min/max inconsistent with the bins"));
        }
        sketch.count = count;
        sketch.min = min + 0.0;
        sketch.max = max + 0.0;
        Ok(sketch)
    }
}

impl Serialize for QuantileSketch {
    /// Serialises as the byte string of [`QuantileSketch::to_bytes`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes().map_err(ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for QuantileSketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = deserializer.deserialize_bytes(BytesVisitor)?;
        Self::from_bytes(&bytes).map_err(de::Error::custom)
    }
}

/// Accepts a byte string or a sequence of `u8` (as JSON writes bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// Non-empty bins of the crate's sketch, read from its Java-compatible encoding.
struct CrateBins {
    zero: u64,
    positive: Vec<(i64, u64)>,
    negative: Vec<(i64, u64)>,
}

impl CrateBins {
    // Flag bytes of the DDSketch binary format (see `sketches_ddsketch::encoding`).
    const FLAG_INDEX_MAPPING_LOG: u8 = 0x02;
    const FLAG_ZERO_COUNT: u8 = 0x04;
    const FLAG_COUNT: u8 = 0xA0;
    const FLAG_SUM: u8 = 0x84;
    const FLAG_MIN: u8 = 0x88;
    const FLAG_MAX: u8 = 0x8C;
    /// Store flags with the `IndexDeltasAndCounts` bin encoding mode.
    const FLAG_POSITIVE_STORE: u8 = (1 << 2) | 1;
    const FLAG_NEGATIVE_STORE: u8 = (1 << 2) | 3;

    fn parse(bytes: &[u8]) -> Result<Self, AggError> {
        let err = |reason| AggError::Encode { reason };
        let mut input = ByteReader::new(bytes, "sketches-ddsketch encoding");
        let mut bins = Self { zero: 0, positive: Vec::new(), negative: Vec::new() };
        while !input.is_empty() {
            match input.u8()? {
                Self::FLAG_COUNT => {
                    var_double(&mut input)?;
                }
                Self::FLAG_SUM | Self::FLAG_MIN | Self::FLAG_MAX => {
                    input.take(8)?;
                }
                Self::FLAG_INDEX_MAPPING_LOG => {
                    let gamma = input.f64()?;
                    input.take(8)?;
                    if gamma.to_bits() != config().gamma.to_bits() {
                        return Err(err("unexpected gamma in the crate's encoding"));
                    }
                }
                Self::FLAG_ZERO_COUNT => {
                    bins.zero = count_from_f64(var_double(&mut input)?).ok_or(err("bad zero count"))?
                }
                flag @ (Self::FLAG_POSITIVE_STORE | Self::FLAG_NEGATIVE_STORE) => {
                    let n = input.uvarint()?;
                    let mut store = Vec::new();
                    let mut index = 0i64;
                    for _ in 0..n {
                        index = index.checked_add(java_svarint(&mut input)?).ok_or(err("bin index overflow"))?;
                        let count = count_from_f64(var_double(&mut input)?).ok_or(err("bad bin count"))?;
                        store.push((index, count));
                    }
                    if flag == Self::FLAG_POSITIVE_STORE {
                        bins.positive = store;
                    } else {
                        bins.negative = store;
                    }
                }
                _ => return Err(err("unexpected flag in the crate's encoding")),
            }
        }
        Ok(bins)
    }
}

fn count_from_f64(c: f64) -> Option<u64> {
    (c >= 0.0 && c <= MAX_COUNT as f64 && c.fract() == 0.0).then_some(c as u64)
}

/// The Java sketch library's unsigned var-long (9 bytes max, last byte 8 bits), zigzag decoded.
fn java_svarint(r: &mut ByteReader<'_>) -> Result<i64, AggError> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let b = r.u8()?;
        if b < 0x80 || shift == 56 {
            value |= u64::from(b) << shift;
            break;
        }
        value |= u64::from(b & 0x7F) << shift;
        shift += 7;
    }
    Ok(disk_format::varint::unzigzag(value))
}

/// The Java sketch library's variable-length double.
fn var_double(r: &mut ByteReader<'_>) -> Result<f64, AggError> {
    let mut bits = 0u64;
    let mut shift = 57i32;
    loop {
        let b = r.u8()?;
        if shift == 1 {
            bits |= u64::from(b);
            break;
        }
        if b < 0x80 {
            bits |= u64::from(b) << shift;
            break;
        }
        bits |= u64::from(b & 0x7F) << shift;
        shift -= 7;
    }
    Ok(f64::from_bits(bits.rotate_right(6).wrapping_add(1.0f64.to_bits())) - 1.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_rank(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
    }

    fn sketch_of(values: &[f64]) -> QuantileSketch {
        let mut s = QuantileSketch::new();
        for &v in values {
            s.add(v).unwrap();
        }
        s
    }

    fn rel_err(est: f64, exact: f64) -> f64 {
        if exact == 0.0 { est.abs() } else { (est - exact).abs() / exact.abs() }
    }

    /// Finite values whose magnitudes stay inside one sketch's uncollapsed range.
    fn moderate_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6..1e6f64,
            (-20i32..20).prop_map(f64::from),
            (1e-3..1e3f64, any::<bool>()).prop_map(|(m, neg)| if neg { -m } else { m }),
            Just(0.0),
            Just(-0.0),
        ]
    }

    #[test]
    fn empty_sketch() {
        let s = QuantileSketch::new();
        assert_eq!(s.count(), 0);
        assert!(s.is_empty());
        assert_eq!(s.quantile(0.5).unwrap(), None);
        assert_eq!(s.min(), None);
        assert_eq!(s.max(), None);
        let back = QuantileSketch::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert!(back.is_empty());
        assert_eq!(s.to_bytes().unwrap(), b"QS\x01\x00");
    }

    #[test]
    fn zero_and_negative_zero_are_exact() {
        let s = sketch_of(&[0.0, -0.0, 0.0]);
        for q in [0.0, 0.3, 0.5, 1.0] {
            let v = s.quantile(q).unwrap().unwrap();
            assert_eq!(v.to_bits(), 0.0f64.to_bits(), "q={q}");
        }
    }

    #[test]
    fn negative_and_mixed_values() {
        let s = sketch_of(&[-4.0, -3.0, -2.0, -1.0]);
        for (q, want) in [(0.0, -4.0), (0.25, -4.0), (0.5, -3.0), (0.75, -2.0), (1.0, -1.0)] {
            let got = s.quantile(q).unwrap().unwrap();
            assert!(rel_err(got, want) <= RELATIVE_ACCURACY, "q={q} got={got}");
        }
        let values: Vec<f64> = (-50..=50).map(f64::from).collect();
        let s = sketch_of(&values);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            let got = s.quantile(q).unwrap().unwrap();
            assert!(rel_err(got, exact_rank(&values, q)) <= RELATIVE_ACCURACY, "q={q} got={got}");
        }
        assert_eq!(s.quantile(0.5).unwrap(), Some(0.0));
    }

    #[test]
    fn rank_definition_is_lower_nearest_rank() {
        let s = sketch_of(&[1.0, 2.0, 3.0, 4.0]);
        assert!(rel_err(s.quantile(0.5).unwrap().unwrap(), 2.0) <= RELATIVE_ACCURACY);
        assert!(rel_err(s.quantile(0.99).unwrap().unwrap(), 3.0) <= RELATIVE_ACCURACY);
        assert_eq!(s.quantile(1.0).unwrap(), Some(4.0));
        // One value: every quantile is that value exactly (clamped to [min, max]).
        let one = sketch_of(&[123.456]);
        assert_eq!(one.quantile(0.5).unwrap(), Some(123.456));
    }

    #[test]
    fn non_finite_values_are_refused_without_changing_state() {
        let mut s = sketch_of(&[1.0, 2.0]);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN] {
            assert!(matches!(s.add(bad), Err(AggError::NonFinite { .. })));
        }
        assert_eq!(s.count(), 2);
        assert_eq!(s.min(), Some(1.0));
        assert_eq!(s.max(), Some(2.0));
        assert_eq!(s.quantile(1.0).unwrap(), Some(2.0));
    }

    #[test]
    fn bad_quantiles_are_typed_errors() {
        let s = sketch_of(&[1.0]);
        for q in [-0.1, 1.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(s.quantile(q), Err(AggError::InvalidQuantile { .. })), "q={q}");
        }
        assert!(matches!(QuantileSketch::new().quantile(2.0), Err(AggError::InvalidQuantile { .. })));
    }

    #[test]
    fn extreme_finite_values_round_trip() {
        let values = [
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            ZERO_THRESHOLD,
            ZERO_THRESHOLD.next_up(),
            -ZERO_THRESHOLD.next_up(),
            3.9e-266,
            1.0,
            -1.0,
            0.0,
        ];
        let s = sketch_of(&values);
        let back = QuantileSketch::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!(back.count(), s.count());
        assert_eq!(back.min(), Some(-f64::MAX));
        assert_eq!(back.max(), Some(f64::MAX));
        for q in [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0] {
            let (a, b) = (s.quantile(q).unwrap().unwrap(), back.quantile(q).unwrap().unwrap());
            assert!(a.is_finite() && b.is_finite());
            assert_eq!(a, b, "q={q}");
        }
    }

    #[test]
    fn only_tiny_values_round_trip() {
        for values in [&[3.9e-266][..], &[1e-10, 2e-10], &[-1e-10, -5e-324]] {
            let s = sketch_of(values);
            let back = QuantileSketch::from_bytes(&s.to_bytes().unwrap()).unwrap();
            assert_eq!(back.min(), s.min());
            assert_eq!(back.quantile(0.5).unwrap(), s.quantile(0.5).unwrap());
        }
    }

    #[test]
    fn every_key_has_a_representative() {
        let cfg = config();
        let (lo, hi) = key_bounds(&cfg);
        for key in lo..=hi {
            let k = i32::try_from(key).unwrap();
            assert!(representative(&cfg, k).is_some(), "key {key}");
        }
    }

    #[test]
    fn count_limit_is_enforced_on_merge() {
        let mut big = sketch_of(&[1.0]);
        big.count = MAX_COUNT; // simulate a full sketch without 2^53 adds
        assert_eq!(big.clone().add(1.0), Err(AggError::CountOverflow));
        let mut other = sketch_of(&[2.0]);
        assert_eq!(other.merge(&big), Err(AggError::CountOverflow));
        assert_eq!(other.count(), 1);
    }

    #[test]
    fn decode_rejects_garbage() {
        for bytes in [&b""[..], b"QS", b"XX\x01\x00", b"QS\x02\x00", b"QS\x01\x00\x00", b"QS\x01\xff\xff\xff"] {
            assert!(matches!(QuantileSketch::from_bytes(bytes), Err(e) if e.is_decode()), "{bytes:?}");
        }
        let good = sketch_of(&[1.0, 2.0, -3.0, 0.0]).to_bytes().unwrap();
        // Truncations all fail.
        for n in 0..good.len() {
            assert!(QuantileSketch::from_bytes(&good[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let s = sketch_of(&[1.5, -2.5, 0.0, 1e6]);
        let json = serde_json::to_string(&s).unwrap();
        let back: QuantileSketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_bytes().unwrap(), s.to_bytes().unwrap());
        assert!(serde_json::from_str::<QuantileSketch>("[1,2,3]").is_err());
    }

    #[test]
    fn serialized_size_of_one_day_of_10s_points() {
        let n = 24 * 360; // one day of 10 s points
        let mut rng = domain_core::seeded::SplitMix64::new(42);
        let uniform: Vec<f64> = (0..n).map(|_| 20.0 + (rng.unit() - 0.5) * 10.0).collect();
        let mut x = 20.0;
        let walk: Vec<f64> = (0..n)
            .map(|_| {
                x += (rng.unit() - 0.5) * 0.5;
                (x * 100.0f64).round() / 100.0
            })
            .collect();
        let cauchy: Vec<f64> = (0..n).map(|_| 5.0 + 2.0 * (std::f64::consts::PI * (rng.unit() - 0.5)).tan()).collect();
        let latency: Vec<f64> = (0..n).map(|_| 0.001 / (1.0 - rng.unit()).powf(1.0 / 1.2)).collect();
        for (name, values, limit) in [
            ("seed gauge 20 +- 5 (uniform)", &uniform, 512),
            ("2-decimal random walk", &walk, 1024),
            ("Cauchy(5, 2), both signs", &cauchy, 8192),
            ("Pareto latency (alpha 1.2)", &latency, 8192),
        ] {
            let s = sketch_of(values);
            let bytes = s.to_bytes().unwrap();
            eprintln!("serialized sketch, 1 day of 10 s points, {name}: {} bytes ({} points)", bytes.len(), s.count());
            assert!(bytes.len() <= limit, "{name}: {} bytes", bytes.len());
            let back = QuantileSketch::from_bytes(&bytes).unwrap();
            assert_eq!(back.to_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn buffered_quantiles_are_exact() {
        let values = [3.25, -1.5, 20.37, 0.0, -0.0, 1e-12, 7.0, 7.0, 1e300];
        let s = sketch_of(&values);
        assert_eq!(s.exact_values().map(<[f64]>::len), Some(values.len()));
        let mut sorted: Vec<f64> = values.iter().map(|v| v + 0.0).collect();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99, 1.0] {
            assert_eq!(s.quantile(q).unwrap(), Some(exact_rank(&sorted, q)), "q={q}");
        }
        // p50 of {1, 2, 3, 4} is exactly 2 (lower nearest rank).
        assert_eq!(sketch_of(&[4.0, 3.0, 2.0, 1.0]).quantile(0.5).unwrap(), Some(2.0));
        let back = QuantileSketch::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!(back.exact_values(), s.exact_values());
        assert_eq!(back.to_bytes().unwrap(), s.to_bytes().unwrap());
    }

    #[test]
    fn buffer_overflow_builds_the_sketch() {
        let values: Vec<f64> = (0..=MAX_EXACT).map(|i| 1.0 + i as f64 * 0.37).collect();
        let full = sketch_of(&values[..MAX_EXACT]);
        assert!(full.exact_values().is_some());
        assert_eq!(full.to_bytes().unwrap()[2], FORMAT_VERSION_EXACT);
        let over = sketch_of(&values);
        assert!(over.exact_values().is_none());
        assert_eq!(over.count(), MAX_EXACT as u64 + 1);
        assert_eq!(over.to_bytes().unwrap()[2], FORMAT_VERSION);
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            let got = over.quantile(q).unwrap().unwrap();
            assert!(rel_err(got, exact_rank(&values, q)) <= RELATIVE_ACCURACY, "q={q}");
        }
        // Same bins as a DDSketch fed every value directly.
        let direct = QuantileSketch { inner: Some(Box::new(ddsketch_of(&values))), ..over.clone() };
        assert_eq!(direct.to_bytes().unwrap(), over.to_bytes().unwrap());
    }

    #[test]
    fn merge_buffered_and_sketched() {
        let a = sketch_of(&[5.0, 1.0, 3.0]);
        let b = sketch_of(&[2.0, 4.0, -0.0]);
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut ba = b.clone();
        ba.merge(&a).unwrap();
        assert_eq!(ab.exact_values(), Some(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0][..]));
        assert_eq!(ab.to_bytes().unwrap(), ba.to_bytes().unwrap());
        assert_eq!(ab.to_bytes().unwrap(), sketch_of(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).to_bytes().unwrap());
        // Buffered + buffered past the limit: sketched, same bins as one pass.
        let left: Vec<f64> = (0..20).map(f64::from).collect();
        let right: Vec<f64> = (20..40).map(f64::from).collect();
        let mut lr = sketch_of(&left);
        lr.merge(&sketch_of(&right)).unwrap();
        assert!(lr.exact_values().is_none());
        let all: Vec<f64> = left.iter().chain(&right).copied().collect();
        assert_eq!(lr.to_bytes().unwrap(), sketch_of(&all).to_bytes().unwrap());
        // Buffered + sketch-backed, both ways.
        let big: Vec<f64> = (0..100).map(|i| f64::from(i) * 1.5 - 30.0).collect();
        let small = [-7.25, 0.0, 1e3];
        let mut x = sketch_of(&small);
        x.merge(&sketch_of(&big)).unwrap();
        let mut y = sketch_of(&big);
        y.merge(&sketch_of(&small)).unwrap();
        let mut whole: Vec<f64> = big.iter().chain(&small).copied().collect();
        assert_eq!(x.to_bytes().unwrap(), sketch_of(&whole).to_bytes().unwrap());
        assert_eq!(y.to_bytes().unwrap(), sketch_of(&whole).to_bytes().unwrap());
        whole.sort_by(f64::total_cmp);
        for q in [0.0, 0.05, 0.5, 0.95, 1.0] {
            assert!(rel_err(x.quantile(q).unwrap().unwrap(), exact_rank(&whole, q)) <= RELATIVE_ACCURACY);
        }
        // A version-1 sketch stays sketch-backed even when small; merging a buffer into it too.
        let old = QuantileSketch::from_bytes(&OLD_SKETCH_6).unwrap();
        assert!(old.exact_values().is_none());
        let mut m = sketch_of(&[1.0]);
        m.merge(&old).unwrap();
        assert!(m.exact_values().is_none());
        assert_eq!(m.count(), 7);
    }

    /// `sketch_of(&[20.0, 20.37, 20.74, 21.11, 21.48, 21.85]).to_bytes()` before format version 2.
    const OLD_SKETCH_6: [u8; 36] = [
        81, 83, 1, 6, 0, 0, 0, 0, 0, 0, 52, 64, 154, 153, 153, 153, 153, 217, 53, 64, 0, 6, 214, 4, 1, 4, 1, 4, 1, 2,
        1, 4, 1, 4, 1, 0,
    ];

    #[test]
    fn old_format_still_decodes() {
        let values = [20.0, 20.37, 20.74, 21.11, 21.48, 21.85];
        let old = QuantileSketch::from_bytes(&OLD_SKETCH_6).unwrap();
        assert_eq!((old.count(), old.min(), old.max()), (6, Some(20.0), Some(21.85)));
        for q in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
            let got = old.quantile(q).unwrap().unwrap();
            assert!(rel_err(got, exact_rank(&values, q)) <= RELATIVE_ACCURACY, "q={q}");
        }
        // A sketch-backed sketch is still written in version 1, byte for byte.
        assert_eq!(old.to_bytes().unwrap(), OLD_SKETCH_6);
        // The same values now encode in the compact form: 3 + 1 + 1 + 2 + 5 bytes.
        let new = sketch_of(&values).to_bytes().unwrap();
        assert_eq!(new.len(), 12, "{new:?}");
    }

    #[test]
    fn exact_encodings_pick_the_compact_mode() {
        let decimal = sketch_of(&[-1.5, 0.25, 3.0]).to_bytes().unwrap();
        assert_eq!(decimal[4], 2 + 2); // two decimals
        let raw = sketch_of(&[0.1 + 0.2, -f64::MAX, f64::MAX]).to_bytes().unwrap();
        assert_eq!(raw[4], 0);
        let close = sketch_of(&[20.000_000_000_1 + 1e-13, 20.000_000_000_2 + 1e-13]).to_bytes().unwrap();
        assert_eq!(close[4], 1);
        for bytes in [decimal, raw, close] {
            let back = QuantileSketch::from_bytes(&bytes).unwrap();
            assert_eq!(back.to_bytes().unwrap(), bytes);
        }
        for bad in [
            &b"QS\x02\x00"[..],                                                                // no values
            b"QS\x02\x21\x02",                                                                 // 33 values
            b"QS\x02\x01\x12\x00",                                                             // unknown mode
            b"QS\x02\x02\x02\x04",                                                             // second decimal missing
            b"QS\x02\x02\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x00\x00", // 1.0 then 0.0
            b"QS\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x80",                                 // -0.0
            b"QS\x02\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x7f",                                 // +inf
            b"QS\x02\x01\x02\x02\x00",                                                         // trailing byte
        ] {
            assert!(matches!(QuantileSketch::from_bytes(bad), Err(e) if e.is_decode()), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn quantiles_within_relative_accuracy(values in prop::collection::vec(moderate_value(), 1..300),
                                              qs in prop::collection::vec(0.0..=1.0f64, 1..8)) {
            let s = sketch_of(&values);
            let mut sorted: Vec<f64> = values.iter().map(|v| v + 0.0).collect();
            sorted.sort_by(f64::total_cmp);
            for q in qs {
                let got = s.quantile(q).unwrap().unwrap();
                let exact = exact_rank(&sorted, q);
                prop_assert!(rel_err(got, exact) <= RELATIVE_ACCURACY * (1.0 + 1e-12),
                    "q={} got={} exact={}", q, got, exact);
            }
        }

        #[test]
        fn merge_equals_single_pass(values in prop::collection::vec(moderate_value(), 0..200),
                                    cut in any::<prop::sample::Index>()) {
            let cut = if values.is_empty() { 0 } else { cut.index(values.len() + 1) };
            let (a, b) = values.split_at(cut);
            let mut left = sketch_of(a);
            left.merge(&sketch_of(b)).unwrap();
            let mut right = sketch_of(b);
            right.merge(&sketch_of(a)).unwrap();
            let whole = sketch_of(&values);
            for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0] {
                prop_assert_eq!(left.quantile(q).unwrap(), whole.quantile(q).unwrap());
                prop_assert_eq!(right.quantile(q).unwrap(), whole.quantile(q).unwrap());
            }
            prop_assert_eq!(left.to_bytes().unwrap(), whole.to_bytes().unwrap());
            prop_assert_eq!(right.to_bytes().unwrap(), whole.to_bytes().unwrap());
        }

        #[test]
        fn any_finite_values_never_panic_and_round_trip(
            values in prop::collection::vec(any::<f64>().prop_filter("finite", |v| v.is_finite()), 0..200),
            other in prop::collection::vec(any::<f64>().prop_filter("finite", |v| v.is_finite()), 0..50),
        ) {
            // Full-range values force the stores to collapse; nothing may panic.
            let mut s = sketch_of(&values);
            s.merge(&sketch_of(&other)).unwrap();
            let bytes = s.to_bytes().unwrap();
            let back = QuantileSketch::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back.count(), s.count());
            prop_assert_eq!(back.min(), s.min());
            prop_assert_eq!(back.max(), s.max());
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let (a, b) = (s.quantile(q).unwrap(), back.quantile(q).unwrap());
                prop_assert_eq!(a, b);
                if let (Some(v), Some(lo), Some(hi)) = (a, s.min(), s.max()) {
                    prop_assert!(v.is_finite() && lo <= v && v <= hi);
                }
            }
            prop_assert_eq!(back.to_bytes().unwrap(), bytes);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut input = b"QS\x01".to_vec();
            input.extend_from_slice(&bytes);
            for candidate in [&bytes[..], &input[..]] {
                if let Ok(mut s) = QuantileSketch::from_bytes(candidate) {
                    let _ = s.quantile(0.5);
                    let copy = s.clone();
                    let _ = s.merge(&copy);
                    let _ = s.add(1.0);
                    let _ = s.to_bytes();
                }
            }
        }

        #[test]
        fn decoding_mutated_encodings_never_panics(values in prop::collection::vec(moderate_value(), 1..50),
                                                   at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sketch_of(&values).to_bytes().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(mut s) = QuantileSketch::from_bytes(&bytes) {
                prop_assert!(s.min() <= s.max());
                for q in [0.0, 0.5, 1.0] {
                    let v = s.quantile(q).unwrap().unwrap();
                    prop_assert!(v.is_finite());
                }
                let copy = s.clone();
                let _ = s.merge(&copy);
                let _ = s.add(-1.0);
            }
        }
    }
}
