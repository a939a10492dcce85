//! Mergeable per-bucket aggregation state for rollups (seed section 5.1).
//!
//! The seed's `aggregate_data` computed count/min/max/avg/sum/first/last/p95/p99
//! by scanning the raw points of every bucket. Here each bucket keeps a
//! [`BucketAgg`] that is updated point by point and merged bucket by bucket,
//! so rollups `raw -> 1min -> 5min -> 1hour -> 1day` ([`Level`]) never rescan
//! raw data and keep their percentiles (through a [`QuantileSketch`]).
//!
//! * [`BucketAgg::merge`] is exactly commutative and associative for count,
//!   sum, min, max, avg, first and last (bit-identical results in any merge
//!   order, short of the sum overflow below), and bin-exact for the sketch, so percentiles after any rollup
//!   stay within the sketch's 0.5 % bound.
//! * The sum is exact: Shewchuk's non-overlapping partials (as in Python's
//!   `math.fsum`), rounded once when read, so `sum` is the correctly rounded
//!   sum of all points whatever the order. If a partial overflows `f64` (only
//!   possible with magnitudes near 1.8e308) the sum and average become
//!   unavailable (`None`).
//! * `first` is the point with the earliest timestamp and `last` the one with
//!   the latest; ties on the timestamp go to the smaller value for `first` and
//!   the larger value for `last` (an order-independent rule; the seed used
//!   insertion order, which is not mergeable).
//! * NaN and infinities are refused with [`AggError::NonFinite`] and change
//!   nothing; `-0.0` is stored as `0.0`.
//! * Small buckets are cheap: the [`QuantileSketch`] keeps up to 32 values
//!   exactly (no DDSketch store is allocated) and then answers percentiles
//!   exactly; see [`BucketAgg::to_bytes`] for the compact persistence format.
//! * Bucket boundaries: [`bucket_start`] floors towards negative infinity, so
//!   timestamps before the epoch (or the origin) land in the right bucket.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

use disk_format::ByteReader;
use disk_format::varint::{put_svarint, put_uvarint};

pub use crate::agg_error::{AggError, IntervalErrorKind};
use crate::sketch::{BytesVisitor, QuantileSketch};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

/// Start of the bucket of width `interval_ns` (aligned to `origin_ns`) that
/// contains `ts_ns`: the largest `origin + k * interval <= ts` (floor, also
/// for timestamps before the origin).
///
/// An `interval_ns <= 0` means no bucketing (the raw level): `ts_ns` is
/// returned unchanged. A start below `i64::MIN` (only for timestamps within
/// one interval of year 1677) saturates to `i64::MIN`.
pub fn bucket_start(ts_ns: i64, interval_ns: i64, origin_ns: i64) -> i64 {
    if interval_ns <= 0 {
        return ts_ns;
    }
    let offset = (i128::from(ts_ns) - i128::from(origin_ns)).rem_euclid(i128::from(interval_ns));
    i64::try_from(i128::from(ts_ns) - offset).unwrap_or(i64::MIN)
}

/// A bucket width: positive, at most 10 years, in nanoseconds.
///
/// Parses `<whole number><unit>` with units `ns`, `us`/`µs`, `ms`,
/// `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`, `h`/`hr`/`hour(s)`,
/// `d`/`day(s)`, `w`/`wk`/`week(s)` (lower case, optional space before the
/// unit): "1s", "10s", "1m", "1min", "5min", "1h", "1hour", "1d", "1day", "1w".
/// Displays in the largest unit that divides it ("5m", "1h", "1d", "1w").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    nanos: i64,
}

impl Interval {
    pub const SECOND: Self = Self { nanos: NANOS_PER_SECOND };
    pub const MINUTE: Self = Self { nanos: 60 * NANOS_PER_SECOND };
    pub const FIVE_MINUTES: Self = Self { nanos: 300 * NANOS_PER_SECOND };
    pub const HOUR: Self = Self { nanos: 3_600 * NANOS_PER_SECOND };
    pub const DAY: Self = Self { nanos: NANOS_PER_DAY };
    pub const WEEK: Self = Self { nanos: 7 * NANOS_PER_DAY };
    /// The longest accepted interval: 10 years of 365.25 days, rounded up to 3653 days.
    pub const MAX: Self = Self { nanos: 3_653 * NANOS_PER_DAY };

    /// An interval of `nanos` nanoseconds (typed error for zero, negative or > 10 years).
    pub fn from_nanos(nanos: i64) -> Result<Self, AggError> {
        let kind = match nanos {
            0 => IntervalErrorKind::Zero,
            n if n < 0 => IntervalErrorKind::Negative,
            n if n > Self::MAX.nanos => IntervalErrorKind::TooLong,
            n => return Ok(Self { nanos: n }),
        };
        Err(AggError::InvalidInterval { input: format!("{nanos}ns"), kind })
    }

    /// Length in nanoseconds (always `> 0`).
    pub const fn nanos(self) -> i64 {
        self.nanos
    }

    /// Start of the bucket containing `ts_ns`, see [`bucket_start`].
    pub fn bucket_start(self, ts_ns: i64, origin_ns: i64) -> i64 {
        bucket_start(ts_ns, self.nanos, origin_ns)
    }

    /// `true` if buckets of `self` tile buckets of `coarser` exactly (same origin),
    /// i.e. `self` can be rolled up into `coarser`.
    pub const fn divides(self, coarser: Self) -> bool {
        coarser.nanos % self.nanos == 0
    }
}

const UNITS: &[(&str, i64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SECOND),
    ("sec", NANOS_PER_SECOND),
    ("secs", NANOS_PER_SECOND),
    ("second", NANOS_PER_SECOND),
    ("seconds", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("min", 60 * NANOS_PER_SECOND),
    ("mins", 60 * NANOS_PER_SECOND),
    ("minute", 60 * NANOS_PER_SECOND),
    ("minutes", 60 * NANOS_PER_SECOND),
    ("h", 3_600 * NANOS_PER_SECOND),
    ("hr", 3_600 * NANOS_PER_SECOND),
    ("hrs", 3_600 * NANOS_PER_SECOND),
    ("hour", 3_600 * NANOS_PER_SECOND),
    ("hours", 3_600 * NANOS_PER_SECOND),
    ("d", NANOS_PER_DAY),
    ("day", NANOS_PER_DAY),
    ("days", NANOS_PER_DAY),
    ("w", 7 * NANOS_PER_DAY),
    ("wk", 7 * NANOS_PER_DAY),
    ("week", 7 * NANOS_PER_DAY),
    ("weeks", 7 * NANOS_PER_DAY),
];

impl FromStr for Interval {
    type Err = AggError;

    fn from_str(s: &str) -> Result<Self, AggError> {
        let fail = |kind| AggError::InvalidInterval { input: s.to_owned(), kind };
        let trimmed = s.trim();
        let (negative, body) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let digits_end = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
        let (digits, unit) = body.split_at(digits_end);
        if digits.is_empty() {
            return Err(fail(IntervalErrorKind::Unparsable));
        }
        let unit = unit.trim_start();
        let unit_nanos = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|&(_, n)| n)
            .ok_or(fail(IntervalErrorKind::UnknownUnit))?;
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return Err(fail(IntervalErrorKind::Zero));
        }
        if negative {
            return Err(fail(IntervalErrorKind::Negative));
        }
        // More than 19 significant digits is more than i64 can hold: absurd anyway.
        let count: i64 = if significant.len() > 19 { i64::MAX } else { significant.parse().unwrap_or(i64::MAX) };
        match count.checked_mul(unit_nanos) {
            Some(nanos) if nanos <= Self::MAX.nanos => Ok(Self { nanos }),
            _ => Err(fail(IntervalErrorKind::TooLong)),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CANONICAL: [(&str, i64); 8] = [
            ("w", 7 * NANOS_PER_DAY),
            ("d", NANOS_PER_DAY),
            ("h", 3_600 * NANOS_PER_SECOND),
            ("m", 60 * NANOS_PER_SECOND),
            ("s", NANOS_PER_SECOND),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        let (unit, size) = CANONICAL.iter().copied().find(|&(_, size)| self.nanos % size == 0).unwrap_or(("ns", 1));
        write!(f, "{}{unit}", self.nanos / size)
    }
}

/// The seed's aggregation levels: raw, 1min, 5min, 1hour, 1day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Raw,
    OneMinute,
    FiveMinutes,
    OneHour,
    OneDay,
}

impl Level {
    /// All levels, finest first.
    pub const ALL: [Level; 5] = [Level::Raw, Level::OneMinute, Level::FiveMinutes, Level::OneHour, Level::OneDay];

    /// Bucket width; `None` for raw points.
    pub const fn interval(self) -> Option<Interval> {
        match self {
            Self::Raw => None,
            Self::OneMinute => Some(Interval::MINUTE),
            Self::FiveMinutes => Some(Interval::FIVE_MINUTES),
            Self::OneHour => Some(Interval::HOUR),
            Self::OneDay => Some(Interval::DAY),
        }
    }

    /// The level this one is rolled up from (`None` for raw).
    pub const fn rolls_up_from(self) -> Option<Level> {
        match self {
            Self::Raw => None,
            Self::OneMinute => Some(Self::Raw),
            Self::FiveMinutes => Some(Self::OneMinute),
            Self::OneHour => Some(Self::FiveMinutes),
            Self::OneDay => Some(Self::OneHour),
        }
    }

    /// The seed's name: "raw", "1min", "5min", "1hour", "1day".
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::OneMinute => "1min",
            Self::FiveMinutes => "5min",
            Self::OneHour => "1hour",
            Self::OneDay => "1day",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = AggError;

    /// Accepts the seed's names and any interval spelling of them ("1m", "60s", "24h").
    fn from_str(s: &str) -> Result<Self, AggError> {
        let t = s.trim();
        if let Some(level) = Self::ALL.into_iter().find(|l| l.as_str() == t) {
            return Ok(level);
        }
        let interval = t.parse::<Interval>().ok();
        Self::ALL
            .into_iter()
            .find(|l| interval.is_some() && l.interval() == interval)
            .ok_or_else(|| AggError::UnknownLevel { input: s.to_owned() })
    }
}

/// What to read from a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    Count,
    Min,
    Max,
    Avg,
    Sum,
    First,
    Last,
    /// Percentile as a quantile fraction in `0.0..=1.0`: "p95" is
    /// `Percentile(0.95)`, "p99.9" is `Percentile(0.999)`. Values outside
    /// `[0, 1]` (e.g. `Percentile(95.0)`) read as `None`, never as a wrong answer.
    Percentile(f64),
}

impl Agg {
    /// `Percentile(p / 100)`, typed error unless `0 <= p <= 100` (p in percent).
    pub fn from_percent(p: f64) -> Result<Self, AggError> {
        if (0.0..=100.0).contains(&p) {
            // Shift the decimal digits rather than divide: from_percent(99.9) is exactly 0.999.
            let text = (p + 0.0).to_string();
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            let q = shift_point(int, frac, -2).parse::<f64>().unwrap_or(p / 100.0);
            Ok(Self::Percentile(q.min(1.0)))
        } else {
            Err(AggError::InvalidPercentile { input: format!("p{p}") })
        }
    }

    /// The quantile in `[0, 1]` of a valid percentile aggregation.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::Percentile(q) if (0.0..=1.0).contains(&q) => Some(q),
            _ => None,
        }
    }
}

impl FromStr for Agg {
    type Err = AggError;

    /// "count", "min", "max", "avg"/"mean", "sum", "first", "last", "median",
    /// and `p<number>` with the number in 0..=100 ("p50", "p95", "p99", "p99.9").
    /// ASCII case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, AggError> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "count" => Self::Count,
            "min" => Self::Min,
            "max" => Self::Max,
            "avg" | "mean" => Self::Avg,
            "sum" => Self::Sum,
            "first" => Self::First,
            "last" => Self::Last,
            "median" => Self::Percentile(0.5),
            other => {
                let Some(number) = other.strip_prefix('p') else {
                    return Err(AggError::UnknownAgg { input: s.to_owned() });
                };
                let invalid = || AggError::InvalidPercentile { input: s.to_owned() };
                // Plain decimals only: no sign, exponent, "inf" or "nan".
                let (int, frac) = number.split_once('.').unwrap_or((number, "0"));
                let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                if !digits(int) || !digits(frac) {
                    return Err(invalid());
                }
                // Shift the digits so "p99.9" is exactly 0.999 (99.9 / 100 is not).
                let q: f64 = shift_point(int, frac, -2).parse().map_err(|_| invalid())?;
                if q > 1.0 {
                    return Err(invalid());
                }
                Self::Percentile(q)
            }
        })
    }
}

/// Moves the decimal point of the plain decimal `int.frac` by `shift` places
/// (positive: right) and writes it without redundant zeros. ASCII digits only.
fn shift_point(int: &str, frac: &str, shift: isize) -> String {
    let mut digits = format!("{int}{frac}");
    let mut point = int.len().cast_signed() + shift;
    if point < 0 {
        digits.insert_str(0, &"0".repeat(point.unsigned_abs()));
        point = 0;
    }
    let point = point.unsigned_abs();
    if digits.len() < point {
        digits.push_str(&"0".repeat(point - digits.len()));
    }
    let (whole, fraction) = digits.split_at(point);
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    match (whole.is_empty(), fraction.is_empty()) {
        (true, true) => "0".to_owned(),
        (true, false) => format!("0.{fraction}"),
        (false, true) => whole.to_owned(),
        (false, false) => format!("{whole}.{fraction}"),
    }
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count => f.write_str("count"),
            Self::Min => f.write_str("min"),
            Self::Max => f.write_str("max"),
            Self::Avg => f.write_str("avg"),
            Self::Sum => f.write_str("sum"),
            Self::First => f.write_str("first"),
            Self::Last => f.write_str("last"),
            Self::Percentile(q) if (0.0..=1.0).contains(q) => {
                // Shortest digits of q, point moved two places: 0.999 -> "p99.9".
                let text = (q + 0.0).to_string();
                let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
                write!(f, "p{}", shift_point(int, frac, 2))
            }
            Self::Percentile(q) => write!(f, "p{}", q * 100.0),
        }
    }
}

/// Exact floating-point sum: non-overlapping partials in increasing magnitude
/// (Shewchuk 1997, CPython's `math.fsum`).
#[derive(Debug, Clone, Default)]
struct ExactSum {
    partials: Vec<f64>,
    overflowed: bool,
}

impl ExactSum {
    /// Partials never exceed this many (about 2100 exponent bits / 53); a bound for decoding.
    const MAX_PARTIALS: usize = 64;

    fn add(&mut self, value: f64) {
        if self.overflowed {
            return;
        }
        let mut x = value;
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        if !x.is_finite() {
            self.overflowed = true;
            self.partials.clear();
            return;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    fn merge(&mut self, other: &Self) {
        self.overflowed |= other.overflowed;
        for &p in &other.partials {
            self.add(p);
        }
        if self.overflowed {
            self.partials.clear();
        }
    }

    /// The correctly rounded sum, `None` after an overflow.
    fn value(&self) -> Option<f64> {
        if self.overflowed {
            return None;
        }
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else {
            return Some(0.0);
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            n -= 1;
            let x = hi;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Half-even rounding across partials.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi.is_finite().then_some(hi)
    }
}

/// A point: timestamp and value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    ts_ns: i64,
    value: f64,
}

impl Sample {
    /// Total order used for first/last: timestamp, then value.
    fn before(self, other: Self) -> bool {
        self.ts_ns.cmp(&other.ts_ns).then(self.value.total_cmp(&other.value)).is_lt()
    }
}

/// Mergeable state of one time bucket.
#[derive(Debug, Clone, Default)]
pub struct BucketAgg {
    /// Holds count, exact min and max, and the quantile bins.
    sketch: QuantileSketch,
    sum: ExactSum,
    first: Option<Sample>,
    last: Option<Sample>,
}

const BUCKET_MAGIC: [u8; 2] = *b"BA";
const BUCKET_FORMAT_VERSION: u8 = 1;
/// Compact format: varint timestamps, sum and first/last values taken from exact sketches.
const BUCKET_FORMAT_VERSION_COMPACT: u8 = 2;
/// Version 2 flag: the sum overflowed.
const FLAG_SUM_OVERFLOWED: u8 = 1;
/// Version 2 flag: no partials follow; the sum is recomputed from the exact values.
const FLAG_SUM_FROM_VALUES: u8 = 2;
/// Version 2 flag: first and last values are indexes into the exact values.
const FLAG_VALUE_INDEXES: u8 = 4;

/// Exact sum of `values` added in order.
fn exact_sum_of(values: &[f64]) -> ExactSum {
    let mut sum = ExactSum::default();
    for &v in values {
        sum.add(v);
    }
    sum
}

impl BucketAgg {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a point. NaN and infinities are refused ([`AggError::NonFinite`])
    /// and leave the bucket unchanged, as does [`AggError::CountOverflow`].
    pub fn add(&mut self, ts_ns: i64, value: f64) -> Result<(), AggError> {
        self.sketch.add(value)?;
        let sample = Sample { ts_ns, value: value + 0.0 };
        self.sum.add(sample.value);
        if self.first.is_none_or(|f| sample.before(f)) {
            self.first = Some(sample);
        }
        if self.last.is_none_or(|l| l.before(sample)) {
            self.last = Some(sample);
        }
        Ok(())
    }

    /// Merges `other` into `self`. Exactly commutative and associative for
    /// every aggregation except percentiles, which are bin-exact (within the
    /// sketch's 0.5 %). Fails only past 2^53 points, leaving `self` unchanged.
    pub fn merge(&mut self, other: &Self) -> Result<(), AggError> {
        self.sketch.merge(&other.sketch)?;
        self.sum.merge(&other.sum);
        if let Some(f) = other.first
            && self.first.is_none_or(|mine| f.before(mine))
        {
            self.first = Some(f);
        }
        if let Some(l) = other.last
            && self.last.is_none_or(|mine| mine.before(l))
        {
            self.last = Some(l);
        }
        Ok(())
    }

    /// Number of points.
    pub fn count(&self) -> u64 {
        self.sketch.count()
    }

    /// `true` if the bucket has no point.
    pub fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    /// Exact minimum.
    pub fn min(&self) -> Option<f64> {
        self.sketch.min()
    }

    /// Exact maximum.
    pub fn max(&self) -> Option<f64> {
        self.sketch.max()
    }

    /// Correctly rounded sum; `None` when empty or after an `f64` overflow.
    pub fn sum(&self) -> Option<f64> {
        if self.is_empty() { None } else { self.sum.value() }
    }

    /// Correctly rounded sum divided by the count.
    pub fn avg(&self) -> Option<f64> {
        self.sum().map(|s| s / self.count() as f64)
    }

    /// Earliest point `(ts_ns, value)`; on equal timestamps the smaller value.
    pub fn first(&self) -> Option<(i64, f64)> {
        self.first.map(|s| (s.ts_ns, s.value))
    }

    /// Latest point `(ts_ns, value)`; on equal timestamps the larger value.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.last.map(|s| (s.ts_ns, s.value))
    }

    /// Quantile `q` in `[0, 1]`, see [`QuantileSketch::quantile`].
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, AggError> {
        self.sketch.quantile(q)
    }

    /// The bucket's percentile sketch.
    pub fn sketch(&self) -> &QuantileSketch {
        &self.sketch
    }

    /// One aggregate. `Count` is `Some(0.0)` for an empty bucket, everything
    /// else `None`; a `Percentile` outside `0..=1` is `None`.
    pub fn value(&self, agg: Agg) -> Option<f64> {
        match agg {
            Agg::Count => Some(self.count() as f64),
            Agg::Min => self.min(),
            Agg::Max => self.max(),
            Agg::Avg => self.avg(),
            Agg::Sum => self.sum(),
            Agg::First => self.first().map(|(_, v)| v),
            Agg::Last => self.last().map(|(_, v)| v),
            Agg::Percentile(_) => self.sketch.quantile(agg.quantile()?).ok().flatten(),
        }
    }

    /// Encodes the bucket for persistence (version 2):
    /// `"BA" 0x02`, uvarint length + sketch bytes (see [`QuantileSketch::to_bytes`]),
    /// then if not empty a flag byte (1 = sum overflowed, 2 = sum recomputed
    /// from the sketch's exact values, 4 = first/last values are indexes into
    /// them), zigzag varint first timestamp, uvarint `last - first` timestamp,
    /// first and last value (one byte index each with flag 4, else `f64` LE),
    /// and unless flag 2, uvarint partial count and the partials as `f64` LE.
    ///
    /// [`from_bytes`](Self::from_bytes) also reads version 1: `"BA" 0x01`,
    /// uvarint length + sketch bytes, then if not empty first `(i64 LE ts,
    /// f64 LE value)`, last (same), a flag byte (1 = sum overflowed), uvarint
    /// partial count and the partials as `f64` LE.
    pub fn to_bytes(&self) -> Result<Vec<u8>, AggError> {
        let sketch = self.sketch.to_bytes()?;
        let mut out = Vec::with_capacity(sketch.len() + 48);
        out.extend_from_slice(&BUCKET_MAGIC);
        out.push(BUCKET_FORMAT_VERSION_COMPACT);
        put_uvarint(&mut out, sketch.len() as u64);
        out.extend_from_slice(&sketch);
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return Ok(out);
        };
        let exact = self.sketch.exact_values();
        let index_of = |v: f64| exact.and_then(|vs| vs.iter().position(|&x| x.to_bits() == v.to_bits()));
        let indexes = index_of(first.value).zip(index_of(last.value));
        let sum_from_values = !self.sum.overflowed
            && exact.is_some_and(|vs| {
                let recomputed = exact_sum_of(vs);
                !recomputed.overflowed && recomputed.value().map(f64::to_bits) == self.sum.value().map(f64::to_bits)
            });
        let mut flags = u8::from(self.sum.overflowed);
        if sum_from_values {
            flags |= FLAG_SUM_FROM_VALUES;
        }
        if indexes.is_some() {
            flags |= FLAG_VALUE_INDEXES;
        }
        out.push(flags);
        put_svarint(&mut out, first.ts_ns);
        put_uvarint(&mut out, last.ts_ns.wrapping_sub(first.ts_ns) as u64);
        match indexes {
            // At most MAX_EXACT (32) values, so an index fits a byte.
            Some((f, l)) => out.extend([f as u8, l as u8]),
            None => {
                out.extend_from_slice(&first.value.to_le_bytes());
                out.extend_from_slice(&last.value.to_le_bytes());
            }
        }
        if !sum_from_values {
            put_uvarint(&mut out, self.sum.partials.len() as u64);
            for p in &self.sum.partials {
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output, validating every field; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AggError> {
        let err = |reason| AggError::Decode { what: "bucket aggregate", reason };
        let mut r = ByteReader::new(bytes, "bucket aggregate");
        if r.take(2)? != BUCKET_MAGIC {
            return Err(err("bad magic"));
        }
        let version = r.u8()?;
        if version != BUCKET_FORMAT_VERSION && version != BUCKET_FORMAT_VERSION_COMPACT {
            return Err(err("unsupported format version"));
        }
        let len = usize::try_from(r.uvarint()?).map_err(|_| err("sketch length too large"))?;
        let sketch = QuantileSketch::from_bytes(r.take(len)?)?;
        let mut agg = Self { sketch, ..Self::default() };
        let (Some(min), Some(max)) = (agg.sketch.min(), agg.sketch.max()) else {
            r.finish()?;
            return Ok(agg);
        };
        if version == BUCKET_FORMAT_VERSION_COMPACT {
            return agg.decode_compact_tail(r);
        }
        let read_sample = |r: &mut ByteReader<'_>| -> Result<Sample, AggError> {
            let sample = Sample { ts_ns: r.i64()?, value: r.f64()? };
            if !(min <= sample.value && sample.value <= max) {
                return Err(err("first/last value outside [min, max]"));
            }
            Ok(Sample { value: sample.value + 0.0, ..sample })
        };
        let first = read_sample(&mut r)?;
        let last = read_sample(&mut r)?;
        if last.before(first) || (agg.count() == 1 && first != last) {
            return Err(err("first is after last"));
        }
        let overflowed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(err("bad sum flag")),
        };
        let n = r.uvarint()?;
        if n > ExactSum::MAX_PARTIALS as u64 || (overflowed && n > 0) {
            return Err(err("bad number of sum partials"));
        }
        agg.sum.overflowed = overflowed;
        for _ in 0..n {
            let p = r.f64()?;
            if !p.is_finite() {
                return Err(err("sum partial not finite"));
            }
            agg.sum.add(p); // re-normalises the partials
        }
        r.finish()?;
        agg.first = Some(first);
        agg.last = Some(last);
        Ok(agg)
    }

    /// Reads what follows the sketch of a non-empty version-2 bucket into `self`.
    fn decode_compact_tail(mut self, mut r: ByteReader<'_>) -> Result<Self, AggError> {
        let err = |reason| AggError::Decode { what: "bucket aggregate", reason };
        let flags = r.u8()?;
        if flags & !(FLAG_SUM_OVERFLOWED | FLAG_SUM_FROM_VALUES | FLAG_VALUE_INDEXES) != 0
            || flags & (FLAG_SUM_OVERFLOWED | FLAG_SUM_FROM_VALUES) == FLAG_SUM_OVERFLOWED | FLAG_SUM_FROM_VALUES
        {
            return Err(err("bad flags"));
        }
        let exact = self.sketch.exact_values();
        if flags & (FLAG_SUM_FROM_VALUES | FLAG_VALUE_INDEXES) != 0 && exact.is_none() {
            return Err(err("flags need exact sketch values"));
        }
        let first_ts = r.svarint()?;
        let last_ts = first_ts.wrapping_add(r.uvarint()? as i64);
        if last_ts < first_ts {
            return Err(err("first is after last"));
        }
        let (first_value, last_value) = match exact {
            Some(vs) if flags & FLAG_VALUE_INDEXES != 0 => {
                let mut at = || -> Result<f64, AggError> {
                    vs.get(usize::from(r.u8()?)).copied().ok_or(err("value index out of range"))
                };
                (at()?, at()?)
            }
            _ => (r.f64()?, r.f64()?),
        };
        let (min, max) = (self.sketch.min(), self.sketch.max());
        for v in [first_value, last_value] {
            if !(min.is_some_and(|m| m <= v) && max.is_some_and(|m| v <= m)) {
                return Err(err("first/last value outside [min, max]"));
            }
        }
        let first = Sample { ts_ns: first_ts, value: first_value + 0.0 };
        let last = Sample { ts_ns: last_ts, value: last_value + 0.0 };
        if last.before(first) || (self.count() == 1 && first != last) {
            return Err(err("first is after last"));
        }
        match exact {
            Some(vs) if flags & FLAG_SUM_FROM_VALUES != 0 => self.sum = exact_sum_of(vs),
            _ => {
                let overflowed = flags & FLAG_SUM_OVERFLOWED != 0;
                let n = r.uvarint()?;
                if n > ExactSum::MAX_PARTIALS as u64 || (overflowed && n > 0) {
                    return Err(err("bad number of sum partials"));
                }
                self.sum.overflowed = overflowed;
                for _ in 0..n {
                    let p = r.f64()?;
                    if !p.is_finite() {
                        return Err(err("sum partial not finite"));
                    }
                    self.sum.add(p); // re-normalises the partials
                }
            }
        }
        r.finish()?;
        self.first = Some(first);
        self.last = Some(last);
        Ok(self)
    }
}

impl Serialize for BucketAgg {
    /// Serialises as the byte string of [`BucketAgg::to_bytes`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes().map_err(ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for BucketAgg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = deserializer.deserialize_bytes(BytesVisitor)?;
        Self::from_bytes(&bytes).map_err(de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::sketch::RELATIVE_ACCURACY;

    use domain_core::seeded::SplitMix64;

    /// Exact percentile with the sketch's rank definition: sorted[floor(q * (n - 1))].
    fn exact_rank(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
    }

    fn key(s: (i64, f64)) -> (i64, f64) {
        (s.0, s.1 + 0.0)
    }

    fn earlier(a: (i64, f64), b: (i64, f64)) -> bool {
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).is_lt()
    }

    fn agg_of(points: &[(i64, f64)]) -> BucketAgg {
        let mut agg = BucketAgg::new();
        for &(ts, v) in points {
            agg.add(ts, v).unwrap();
        }
        agg
    }

    // ---- strategies ----

    fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![4 => -50i64..50, 2 => any::<i64>(), 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6..1e6f64,
            (-5i32..5).prop_map(f64::from),
            (1e-3..1e3f64, any::<bool>()).prop_map(|(m, neg)| if neg { -m } else { m }),
            Just(0.0),
            Just(-0.0),
            (-1e290..1e290f64),
        ]
    }

    fn points() -> impl Strategy<Value = Vec<(i64, f64)>> {
        prop::collection::vec((timestamp(), value()), 1..200)
    }

    // ---- (a) single pass equals naive recomputation ----

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn single_pass_matches_naive(points in points()) {
            let agg = agg_of(&points);
            let n = points.len();
            let naive_sum: f64 = points.iter().map(|p| p.1).sum();
            let abs_sum: f64 = points.iter().map(|p| p.1.abs()).sum();
            let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let first = points.iter().copied().map(key).reduce(|a, b| if earlier(b, a) { b } else { a }).unwrap();
            let last = points.iter().copied().map(key).reduce(|a, b| if earlier(a, b) { b } else { a }).unwrap();

            prop_assert_eq!(agg.count(), n as u64);
            prop_assert_eq!(agg.value(Agg::Count), Some(n as f64));
            // Relative to the sum of magnitudes (the naive sum's own error scale).
            let sum = agg.sum().unwrap();
            prop_assert!((sum - naive_sum).abs() <= 1e-9 * abs_sum, "sum {} naive {}", sum, naive_sum);
            let avg = agg.avg().unwrap();
            prop_assert!((avg - naive_sum / n as f64).abs() <= 1e-9 * abs_sum / n as f64);
            prop_assert_eq!(agg.min(), Some(min));
            prop_assert_eq!(agg.max(), Some(max));
            prop_assert_eq!(agg.value(Agg::Min), Some(min));
            prop_assert_eq!(agg.value(Agg::Max), Some(max));
            prop_assert_eq!(agg.first(), Some(first));
            prop_assert_eq!(agg.last(), Some(last));
            prop_assert_eq!(agg.value(Agg::First), Some(first.1));
            prop_assert_eq!(agg.value(Agg::Last), Some(last.1));

            // The 0.5 % bound holds while each sign's magnitudes span less than
            // 4096 bins (~6e17); wider data collapses the smallest magnitudes.
            let span = |sign: f64| {
                let mags: Vec<f64> =
                    points.iter().map(|p| p.1 * sign).filter(|&m| m > crate::sketch::ZERO_THRESHOLD).collect();
                let lo = mags.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = mags.iter().copied().fold(0.0, f64::max);
                if mags.is_empty() { 1.0 } else { hi / lo }
            };
            let uncollapsed = span(1.0) < 1e17 && span(-1.0) < 1e17;
            let mut sorted: Vec<f64> = points.iter().map(|p| p.1 + 0.0).collect();
            sorted.sort_by(f64::total_cmp);
            let quantiles: &[f64] = if uncollapsed { &[0.0, 0.01, 0.5, 0.95, 0.99, 0.999, 1.0] } else { &[0.0, 1.0] };
            for &p in quantiles {
                let got = agg.value(Agg::Percentile(p)).unwrap();
                let exact = exact_rank(&sorted, p);
                let err = if exact == 0.0 { got.abs() } else { (got - exact).abs() / exact.abs() };
                prop_assert!(err <= RELATIVE_ACCURACY * (1.0 + 1e-12), "p{} got {} exact {}", p, got, exact);
            }
        }
    }

    // ---- (b) merging random partitions in random orders equals single pass ----

    /// Points (shuffled), a partition label per point, a merge order of the partitions, a seed.
    type Partitioned = (Vec<(i64, f64)>, Vec<usize>, Vec<usize>, u64);

    fn partitioned() -> impl Strategy<Value = Partitioned> {
        (points(), 1usize..8).prop_flat_map(|(points, k)| {
            let n = points.len();
            (
                Just(points).prop_shuffle(),
                prop::collection::vec(0..k, n),
                Just((0..k).collect::<Vec<_>>()).prop_shuffle(),
                any::<u64>(),
            )
        })
    }

    fn assert_same(a: &BucketAgg, b: &BucketAgg) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.count(), b.count());
        prop_assert_eq!(a.sum().map(f64::to_bits), b.sum().map(f64::to_bits));
        prop_assert_eq!(a.avg().map(f64::to_bits), b.avg().map(f64::to_bits));
        prop_assert_eq!(a.min().map(f64::to_bits), b.min().map(f64::to_bits));
        prop_assert_eq!(a.max().map(f64::to_bits), b.max().map(f64::to_bits));
        prop_assert_eq!(a.first().map(|(t, v)| (t, v.to_bits())), b.first().map(|(t, v)| (t, v.to_bits())));
        prop_assert_eq!(a.last().map(|(t, v)| (t, v.to_bits())), b.last().map(|(t, v)| (t, v.to_bits())));
        for q in [0.0, 0.01, 0.5, 0.95, 0.99, 0.999, 1.0] {
            prop_assert_eq!(a.quantile(q).unwrap(), b.quantile(q).unwrap());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn merging_partitions_in_any_order_equals_single_pass((points, labels, order, seed) in partitioned()) {
            let single = agg_of(&points);
            let k = order.len();
            let mut parts = vec![BucketAgg::new(); k];
            for (&(ts, v), &label) in points.iter().zip(&labels) {
                parts[label].add(ts, v).unwrap();
            }
            // Left fold in a shuffled order.
            let mut folded = BucketAgg::new();
            for &i in &order {
                folded.merge(&parts[i]).unwrap();
            }
            assert_same(&folded, &single)?;
            // Random binary tree: repeatedly merge two random neighbours.
            let mut rng = SplitMix64(seed);
            let mut level: Vec<BucketAgg> = order.iter().map(|&i| parts[i].clone()).collect();
            while level.len() > 1 {
                let i = (rng.next_u64() % (level.len() as u64 - 1)) as usize;
                let right = level.remove(i + 1);
                if rng.next_u64().is_multiple_of(2) {
                    level[i].merge(&right).unwrap();
                } else {
                    let mut r = right;
                    r.merge(&level[i]).unwrap();
                    level[i] = r;
                }
            }
            assert_same(&level[0], &single)?;
            // And through persistence.
            let back = BucketAgg::from_bytes(&folded.to_bytes().unwrap()).unwrap();
            assert_same(&back, &single)?;
        }

        #[test]
        fn bucket_bytes_round_trip_and_garbage_never_panics(points in prop::collection::vec((timestamp(), value()), 0..50),
                                                            at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let agg = agg_of(&points);
            let bytes = agg.to_bytes().unwrap();
            let back = BucketAgg::from_bytes(&bytes).unwrap();
            assert_same(&back, &agg)?;
            // (Bytes may differ: decoding re-normalises the sum's partials.)
            assert_same(&BucketAgg::from_bytes(&back.to_bytes().unwrap()).unwrap(), &agg)?;
            let mut bad = bytes;
            let i = at.index(bad.len());
            bad[i] = byte;
            if let Ok(mut b) = BucketAgg::from_bytes(&bad) {
                for agg_kind in [Agg::Count, Agg::Sum, Agg::Avg, Agg::Percentile(0.99), Agg::First] {
                    let _ = b.value(agg_kind);
                }
                let copy = b.clone();
                let _ = b.merge(&copy);
            }
        }

        #[test]
        fn decoding_arbitrary_bucket_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            let mut input = b"BA\x01".to_vec();
            input.extend_from_slice(&bytes);
            for candidate in [&bytes[..], &input[..]] {
                if let Ok(mut b) = BucketAgg::from_bytes(candidate) {
                    let _ = b.value(Agg::Avg);
                    let _ = b.value(Agg::Percentile(0.5));
                    let copy = b.clone();
                    let _ = b.merge(&copy);
                    let _ = b.add(0, 1.0);
                    let _ = b.to_bytes();
                }
            }
        }

        #[test]
        fn bucket_start_floors(ts in any::<i64>(), interval in 1i64..=Interval::MAX.nanos(), origin in any::<i64>()) {
            let start = bucket_start(ts, interval, origin);
            prop_assert!(start <= ts);
            let offset = i128::from(ts) - i128::from(start);
            prop_assert!(offset < i128::from(interval) || start == i64::MIN);
            if start != i64::MIN {
                prop_assert_eq!((i128::from(start) - i128::from(origin)).rem_euclid(i128::from(interval)), 0);
            }
        }

        #[test]
        fn interval_display_round_trips(nanos in 1i64..=Interval::MAX.nanos()) {
            let i = Interval::from_nanos(nanos).unwrap();
            prop_assert_eq!(i.to_string().parse::<Interval>().unwrap(), i);
        }

        #[test]
        fn percentile_display_round_trips(q in 0.0..=1.0f64, percent in 0u32..=100_000) {
            for agg in [Agg::Percentile(q), Agg::from_percent(f64::from(percent) / 1000.0).unwrap()] {
                prop_assert_eq!(agg.to_string().parse::<Agg>().unwrap(), agg);
            }
        }

        #[test]
        fn agg_parsing_never_panics(s in "\\PC{0,12}") {
            let _ = s.parse::<Agg>();
            let _ = s.parse::<Interval>();
            let _ = s.parse::<Level>();
        }
    }

    // ---- (c) rollup 1min -> 5min -> 1hour -> 1day keeps percentiles ----

    const START_NS: i64 = 1_672_531_200 * NANOS_PER_SECOND; // 2023-01-01T00:00:00Z

    /// Two days of points every 10 s with up to 10 s of jitter.
    fn two_days(seed: u64, mut value: impl FnMut(&mut SplitMix64) -> f64) -> Vec<(i64, f64)> {
        let mut rng = SplitMix64(seed);
        (0..2 * 8_640)
            .map(|i| {
                let ts =
                    START_NS + i * 10 * NANOS_PER_SECOND + (rng.next_u64() % (10 * NANOS_PER_SECOND as u64)) as i64;
                (ts, value(&mut rng))
            })
            .collect()
    }

    fn random_walk(seed: u64) -> Vec<(i64, f64)> {
        let mut x = 20.0;
        two_days(seed, move |rng| {
            x += 0.5 * rng.normal();
            x
        })
    }

    /// Cauchy(5, 2): heavy tails on both sides, about 40 % negative.
    fn cauchy(seed: u64) -> Vec<(i64, f64)> {
        two_days(seed, |rng| 5.0 + 2.0 * (std::f64::consts::PI * (rng.unit() - 0.5)).tan())
    }

    /// Signed Pareto (alpha 1.1, scale 1e-3): magnitudes over many decades, both signs.
    fn signed_pareto(seed: u64) -> Vec<(i64, f64)> {
        two_days(seed, |rng| {
            let m = 1e-3 / (1.0 - rng.unit()).powf(1.0 / 1.1);
            if rng.next_u64() % 3 == 0 { -m } else { m }
        })
    }

    fn roll_up(src: &BTreeMap<i64, BucketAgg>, interval: Interval) -> BTreeMap<i64, BucketAgg> {
        let mut out: BTreeMap<i64, BucketAgg> = BTreeMap::new();
        for (&start, agg) in src {
            out.entry(interval.bucket_start(start, 0)).or_default().merge(agg).unwrap();
        }
        out
    }

    /// Returns the worst relative error over p50/p95/p99 of all buckets.
    fn check_level(
        name: &str,
        points: &[(i64, f64)],
        buckets: &BTreeMap<i64, BucketAgg>,
        interval: Interval,
    ) -> Result<f64, String> {
        let mut raw: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for &p in points {
            raw.entry(interval.bucket_start(p.0, 0)).or_default().push(p);
        }
        if raw.len() != buckets.len() {
            return Err(format!("{name}: {} raw buckets vs {} rolled up", raw.len(), buckets.len()));
        }
        let mut worst = 0.0f64;
        for (start, pts) in &raw {
            let agg = buckets.get(start).ok_or(format!("{name}: bucket {start} missing"))?;
            let single = agg_of(pts);
            // Non-percentile aggregates are exact through the rollup.
            for kind in [Agg::Count, Agg::Sum, Agg::Avg, Agg::Min, Agg::Max, Agg::First, Agg::Last] {
                if agg.value(kind).map(f64::to_bits) != single.value(kind).map(f64::to_bits) {
                    return Err(format!("{name}: {kind} differs in bucket {start}"));
                }
            }
            let mut sorted: Vec<f64> = pts.iter().map(|p| p.1).collect();
            sorted.sort_by(f64::total_cmp);
            for kind in ["p50", "p95", "p99"] {
                let kind: Agg = kind.parse().map_err(|e| format!("{e}"))?;
                let q = kind.quantile().ok_or("not a percentile")?;
                let exact = exact_rank(&sorted, q);
                let got = agg.value(kind).ok_or("no percentile")?;
                let err = (got - exact).abs() / exact.abs();
                worst = worst.max(err);
                if err > 0.01 || err > RELATIVE_ACCURACY * (1.0 + 1e-12) {
                    return Err(format!("{name}: {kind} of bucket {start}: got {got}, exact {exact}, error {err}"));
                }
            }
        }
        Ok(worst)
    }

    fn rollup_worst_error(name: &str, points: &[(i64, f64)]) -> (f64, f64) {
        let mut minutes: BTreeMap<i64, BucketAgg> = BTreeMap::new();
        for &(ts, v) in points {
            minutes.entry(Interval::MINUTE.bucket_start(ts, 0)).or_default().add(ts, v).unwrap();
        }
        let five = roll_up(&minutes, Interval::FIVE_MINUTES);
        // Persist and reload the 5min level, as the engine would.
        let five: BTreeMap<i64, BucketAgg> =
            five.iter().map(|(&k, a)| (k, BucketAgg::from_bytes(&a.to_bytes().unwrap()).unwrap())).collect();
        let hours = roll_up(&five, Interval::HOUR);
        let days = roll_up(&hours, Interval::DAY);
        assert_eq!((minutes.len(), five.len(), hours.len(), days.len()), (2_880, 576, 48, 2), "{name}");
        let hour_worst = check_level(name, points, &hours, Interval::HOUR).unwrap();
        let day_worst = check_level(name, points, &days, Interval::DAY).unwrap();
        (hour_worst, day_worst)
    }

    #[test]
    fn rollup_keeps_percentiles_within_one_percent() {
        let mut overall = 0.0f64;
        for (name, points) in [
            ("random walk", random_walk(0x5EED)),
            ("Cauchy(5, 2)", cauchy(0x5EED)),
            ("signed Pareto", signed_pareto(0x5EED)),
        ] {
            assert!(points.iter().any(|p| p.1 < 0.0), "{name} has negative values");
            let (hour, day) = rollup_worst_error(name, &points);
            eprintln!("rollup {name}: worst relative error p50/p95/p99: 1hour {hour:.6}, 1day {day:.6}");
            overall = overall.max(hour).max(day);
        }
        eprintln!("rollup: worst relative error overall {overall:.6}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6))]

        #[test]
        fn rollup_holds_for_any_seed(seed in any::<u64>(), kind in 0usize..3) {
            let points = match kind {
                0 => random_walk(seed),
                1 => cauchy(seed),
                _ => signed_pareto(seed),
            };
            let _ = rollup_worst_error("seeded", &points);
        }
    }

    // ---- unit tests ----

    #[test]
    fn agg_parsing() {
        let cases = [
            ("count", Agg::Count),
            ("min", Agg::Min),
            ("max", Agg::Max),
            ("avg", Agg::Avg),
            ("mean", Agg::Avg),
            ("sum", Agg::Sum),
            ("first", Agg::First),
            ("last", Agg::Last),
            ("p95", Agg::Percentile(0.95)),
            ("p99", Agg::Percentile(0.99)),
            ("p50", Agg::Percentile(0.5)),
            ("p99.9", Agg::Percentile(0.999)),
            ("median", Agg::Percentile(0.5)),
            ("P99", Agg::Percentile(0.99)),
            (" avg ", Agg::Avg),
            ("p0", Agg::Percentile(0.0)),
            ("p100", Agg::Percentile(1.0)),
            ("p12.5", Agg::Percentile(0.125)),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Agg>().unwrap(), want, "{s}");
        }
        for s in ["p101", "px", "p", "p-1", "p1e1", "pnan", "pinf", "p.5", "p5.", "p99..9", "p100.01"] {
            assert!(matches!(s.parse::<Agg>(), Err(AggError::InvalidPercentile { .. })), "{s}");
        }
        for s in ["", "average", "count2", "99", "mode"] {
            assert!(matches!(s.parse::<Agg>(), Err(AggError::UnknownAgg { .. })), "{s}");
        }
        for agg in [Agg::Count, Agg::Avg, Agg::Percentile(0.999), Agg::Percentile(0.5), Agg::Percentile(0.95)] {
            assert_eq!(agg.to_string().parse::<Agg>().unwrap(), agg);
        }
        assert_eq!(Agg::Percentile(0.95).to_string(), "p95");
        assert_eq!(Agg::Percentile(0.999).to_string(), "p99.9");
        assert_eq!(Agg::from_percent(99.9).unwrap().to_string(), "p99.9");
        assert!(Agg::from_percent(100.5).is_err());
        assert_eq!(agg_of(&[(0, 1.0)]).value(Agg::Percentile(95.0)), None);
        assert_eq!(agg_of(&[(0, 1.0)]).value(Agg::Percentile(f64::NAN)), None);
    }

    #[test]
    fn interval_parsing() {
        let s = NANOS_PER_SECOND;
        for (text, want) in [
            ("1s", s),
            ("10s", 10 * s),
            ("1m", 60 * s),
            ("1min", 60 * s),
            ("5min", 300 * s),
            ("1h", 3_600 * s),
            ("1hour", 3_600 * s),
            ("1d", 86_400 * s),
            ("1day", 86_400 * s),
            ("1w", 7 * 86_400 * s),
            ("250ms", 250_000_000),
            (" 2 hours ", 7_200 * s),
            ("3653d", Interval::MAX.nanos()),
        ] {
            assert_eq!(text.parse::<Interval>().unwrap().nanos(), want, "{text}");
        }
        let kind = |t: &str| match t.parse::<Interval>() {
            Err(AggError::InvalidInterval { kind, .. }) => Some(kind),
            _ => None,
        };
        use IntervalErrorKind as K;
        for (text, want) in [
            ("0s", K::Zero),
            ("000min", K::Zero),
            ("-5m", K::Negative),
            ("3654d", K::TooLong),
            ("11y", K::UnknownUnit),
            ("522w", K::TooLong),
            ("99999999999999999999999999s", K::TooLong),
            ("9223372036854775807h", K::TooLong),
            ("", K::Unparsable),
            ("min", K::Unparsable),
            ("1.5h", K::UnknownUnit),
            ("5", K::UnknownUnit),
            ("5M", K::UnknownUnit),
            ("--5m", K::Unparsable),
        ] {
            assert_eq!(kind(text), Some(want), "{text}");
        }
        assert!(Interval::from_nanos(0).is_err());
        assert!(Interval::from_nanos(-1).is_err());
        assert!(Interval::from_nanos(Interval::MAX.nanos() + 1).is_err());
        assert_eq!(Interval::FIVE_MINUTES.to_string(), "5m");
        assert_eq!(Interval::DAY.to_string(), "1d");
        assert!(Interval::MINUTE.divides(Interval::HOUR));
        assert!(!Interval::HOUR.divides(Interval::WEEK.min(Interval::from_nanos(90 * 60 * NANOS_PER_SECOND).unwrap())));
    }

    #[test]
    fn levels() {
        let names: Vec<String> = Level::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["raw", "1min", "5min", "1hour", "1day"]);
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>().unwrap(), level);
            if let (Some(src), Some(iv)) = (level.rolls_up_from(), level.interval()) {
                assert!(src.interval().is_none_or(|s| s.divides(iv)), "{level} from {src}");
            }
        }
        assert_eq!("1m".parse::<Level>().unwrap(), Level::OneMinute);
        assert_eq!("24h".parse::<Level>().unwrap(), Level::OneDay);
        assert!(matches!("2min".parse::<Level>(), Err(AggError::UnknownLevel { .. })));
        assert!(matches!("hourly".parse::<Level>(), Err(AggError::UnknownLevel { .. })));
    }

    #[test]
    fn bucket_start_handles_negative_timestamps() {
        let m = Interval::MINUTE.nanos();
        assert_eq!(bucket_start(0, m, 0), 0);
        assert_eq!(bucket_start(-1, m, 0), -m);
        assert_eq!(bucket_start(-m, m, 0), -m);
        assert_eq!(bucket_start(-m - 1, m, 0), -2 * m);
        assert_eq!(bucket_start(m + 5, m, 7), 7);
        assert_eq!(bucket_start(5, m, 7), 7 - m);
        assert_eq!(bucket_start(i64::MIN, m, 0), i64::MIN);
        assert_eq!(bucket_start(i64::MAX, m, i64::MIN).rem_euclid(1), 0);
        assert_eq!(bucket_start(123, 0, 0), 123);
        assert_eq!(bucket_start(123, -5, 0), 123);
    }

    #[test]
    fn exact_sum_cancellation_and_order_independence() {
        let values = [1e16, 1.0, -1e16, 1e-16, 3.0, -3.0];
        let agg = agg_of(&values.iter().map(|&v| (0, v)).collect::<Vec<_>>());
        assert_eq!(agg.sum(), Some(1.0 + 1e-16));
        let mut reversed = values;
        reversed.reverse();
        let agg2 = agg_of(&reversed.iter().map(|&v| (0, v)).collect::<Vec<_>>());
        assert_eq!(agg.sum().map(f64::to_bits), agg2.sum().map(f64::to_bits));
        // Integers: exact against i128.
        let mut rng = SplitMix64(7);
        let ints: Vec<i64> = (0..1000).map(|_| (rng.next_u64() >> 11) as i64 - (1 << 52)).collect();
        let agg = agg_of(&ints.iter().map(|&i| (0, i as f64)).collect::<Vec<_>>());
        let exact: i128 = ints.iter().map(|&i| i128::from(i)).sum();
        assert_eq!(agg.sum(), Some(exact as f64));
        // Overflow makes the sum unavailable instead of wrong.
        let big = agg_of(&[(0, f64::MAX), (1, f64::MAX)]);
        assert_eq!(big.sum(), None);
        assert_eq!(big.avg(), None);
        assert_eq!(big.max(), Some(f64::MAX));
    }

    #[test]
    fn first_last_ties_are_deterministic() {
        let a = agg_of(&[(5, 2.0), (5, 1.0), (9, 3.0), (9, 4.0)]);
        let b = agg_of(&[(9, 4.0), (9, 3.0), (5, 1.0), (5, 2.0)]);
        assert_eq!(a.first(), Some((5, 1.0)));
        assert_eq!(a.last(), Some((9, 4.0)));
        assert_eq!(a.first(), b.first());
        assert_eq!(a.last(), b.last());
    }

    #[test]
    fn non_finite_points_are_refused() {
        let mut agg = agg_of(&[(1, 1.0)]);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(agg.add(0, bad), Err(AggError::NonFinite { .. })));
        }
        assert_eq!(agg.count(), 1);
        assert_eq!(agg.sum(), Some(1.0));
        assert_eq!(agg.first(), Some((1, 1.0)));
    }

    #[test]
    fn empty_bucket() {
        let agg = BucketAgg::new();
        assert_eq!(agg.value(Agg::Count), Some(0.0));
        for kind in [Agg::Min, Agg::Max, Agg::Avg, Agg::Sum, Agg::First, Agg::Last, Agg::Percentile(0.5)] {
            assert_eq!(agg.value(kind), None, "{kind}");
        }
        let back = BucketAgg::from_bytes(&agg.to_bytes().unwrap()).unwrap();
        assert!(back.is_empty());
        let json = serde_json::to_string(&agg_of(&[(1, 2.5), (3, -1.0)])).unwrap();
        let back: BucketAgg = serde_json::from_str(&json).unwrap();
        assert_eq!(back.sum(), Some(1.5));
        assert_eq!(back.last(), Some((3, -1.0)));
    }

    /// Bytes written by `BucketAgg::to_bytes` before format version 2: six 2-decimal
    /// points every 10 s from `START_NS` (20.0, 20.37, .., 21.85), and
    /// `(START_NS + i, v)` for v in 1.5, -2.25, 0.0, 1e6.
    const OLD_BUCKET_6: [u8; 90] = [
        66, 65, 1, 36, 81, 83, 1, 6, 0, 0, 0, 0, 0, 0, 52, 64, 154, 153, 153, 153, 153, 217, 53, 64, 0, 6, 214, 4, 1,
        4, 1, 4, 1, 2, 1, 4, 1, 4, 1, 0, 0, 0, 194, 211, 67, 6, 54, 23, 0, 0, 0, 0, 0, 0, 52, 64, 0, 116, 253, 119, 79,
        6, 54, 23, 154, 153, 153, 153, 153, 217, 53, 64, 0, 2, 0, 0, 0, 0, 0, 0, 240, 60, 51, 51, 51, 51, 51, 99, 95,
        64,
    ];
    const OLD_BUCKET_MIXED: [u8; 77] = [
        66, 65, 1, 31, 81, 83, 1, 4, 0, 0, 0, 0, 0, 0, 2, 192, 0, 0, 0, 0, 128, 132, 46, 65, 1, 2, 80, 1, 250, 20, 1,
        1, 162, 1, 1, 0, 0, 194, 211, 67, 6, 54, 23, 0, 0, 0, 0, 0, 0, 248, 63, 3, 0, 194, 211, 67, 6, 54, 23, 0, 0, 0,
        0, 128, 132, 46, 65, 0, 1, 0, 0, 0, 128, 126, 132, 46, 65,
    ];

    fn six_points() -> Vec<(i64, f64)> {
        [20.0, 20.37, 20.74, 21.11, 21.48, 21.85]
            .iter()
            .zip(0i64..)
            .map(|(&v, i)| (START_NS + i * 10_000_000_000, v))
            .collect()
    }

    #[test]
    fn old_bucket_format_still_decodes() {
        let mixed = [(START_NS, 1.5), (START_NS + 1, -2.25), (START_NS + 2, 0.0), (START_NS + 3, 1e6)];
        for (bytes, points) in [(&OLD_BUCKET_6[..], six_points()), (&OLD_BUCKET_MIXED[..], mixed.to_vec())] {
            let old = BucketAgg::from_bytes(bytes).unwrap();
            let new = agg_of(&points);
            for kind in [Agg::Count, Agg::Sum, Agg::Avg, Agg::Min, Agg::Max, Agg::First, Agg::Last] {
                assert_eq!(old.value(kind).map(f64::to_bits), new.value(kind).map(f64::to_bits), "{kind}");
            }
            let mut sorted: Vec<f64> = points.iter().map(|p| p.1 + 0.0).collect();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.5, 0.95, 1.0] {
                let (o, n) = (old.quantile(q).unwrap().unwrap(), new.quantile(q).unwrap().unwrap());
                assert_eq!(n, exact_rank(&sorted, q), "buffered quantiles are exact");
                assert!((o - n).abs() <= RELATIVE_ACCURACY * n.abs(), "q={q}: old {o}, new {n}");
            }
            // Re-encoding an old bucket gives the new format, which decodes to the same answers.
            let again = BucketAgg::from_bytes(&old.to_bytes().unwrap()).unwrap();
            assert_eq!(again.to_bytes().unwrap(), old.to_bytes().unwrap());
            assert_eq!(again.value(Agg::Percentile(0.5)), old.value(Agg::Percentile(0.5)));
        }
    }

    #[test]
    fn buffered_buckets_round_trip_compactly() {
        let agg = agg_of(&six_points());
        let bytes = agg.to_bytes().unwrap();
        assert_eq!(bytes[2], BUCKET_FORMAT_VERSION_COMPACT);
        assert_eq!(bytes[3 + 1 + 12], FLAG_SUM_FROM_VALUES | FLAG_VALUE_INDEXES);
        let back = BucketAgg::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
        for kind in [Agg::Count, Agg::Sum, Agg::Min, Agg::Max, Agg::First, Agg::Last, Agg::Percentile(0.5)] {
            assert_eq!(back.value(kind).map(f64::to_bits), agg.value(kind).map(f64::to_bits), "{kind}");
        }
        // The sum is kept when the sorted values would overflow where the points did not.
        let tricky = agg_of(&[(0, f64::MAX), (1, -f64::MAX), (2, f64::MAX), (3, -f64::MAX)]);
        assert_eq!(tricky.sum(), Some(0.0));
        let back = BucketAgg::from_bytes(&tricky.to_bytes().unwrap()).unwrap();
        assert_eq!(back.sum(), Some(0.0));
        // Flags that need exact values are refused on a sketch-backed bucket.
        let mut forged = b"BA\x02".to_vec();
        forged.push(OLD_BUCKET_6[3]);
        forged.extend_from_slice(&OLD_BUCKET_6[4..40]);
        forged.extend_from_slice(&[FLAG_SUM_FROM_VALUES, 0, 0, 0, 0]);
        assert!(matches!(BucketAgg::from_bytes(&forged), Err(e) if e.is_decode()));
        // Truncations all fail.
        for n in 0..bytes.len() {
            assert!(BucketAgg::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn small_bucket_merges_are_order_independent(points in prop::collection::vec((any::<i64>(), -1e6..1e6f64), 0..40),
                                                     cuts in (any::<prop::sample::Index>(), any::<prop::sample::Index>())) {
            let (mut i, mut j) = (cuts.0.index(points.len() + 1), cuts.1.index(points.len() + 1));
            if i > j { std::mem::swap(&mut i, &mut j); }
            let (a, b, c) = (agg_of(&points[..i]), agg_of(&points[i..j]), agg_of(&points[j..]));
            let mut left = a.clone();
            left.merge(&b).unwrap();
            left.merge(&c).unwrap();
            let mut bc = c.clone();
            bc.merge(&b).unwrap();
            let mut right = bc;
            right.merge(&a).unwrap();
            let whole = agg_of(&points);
            // Sum partials depend on the order (their rounded sum does not), so compare answers
            // and the sketch bytes rather than the bucket bytes.
            for agg in [&left, &right] {
                prop_assert_eq!(agg.sketch().to_bytes().unwrap(), whole.sketch().to_bytes().unwrap());
                for kind in [Agg::Count, Agg::Sum, Agg::Min, Agg::Max, Agg::First, Agg::Last, Agg::Percentile(0.9)] {
                    prop_assert_eq!(agg.value(kind).map(f64::to_bits), whole.value(kind).map(f64::to_bits));
                }
            }
            let back = BucketAgg::from_bytes(&whole.to_bytes().unwrap()).unwrap();
            prop_assert_eq!(back.value(Agg::Sum).map(f64::to_bits), whole.value(Agg::Sum).map(f64::to_bits));
            prop_assert_eq!(back.sketch().to_bytes().unwrap(), whole.sketch().to_bytes().unwrap());
        }
    }

    #[test]
    fn memory_and_bytes_of_small_and_large_buckets() {
        let heap = |a: &BucketAgg| {
            let s = a.sketch();
            let exact = s.exact_values().map_or(0, |v| v.len().next_power_of_two().max(4) * 8);
            // Debug shows the DDSketch bins in use; the stores allocate them in 128-bin chunks.
            let bins: usize = format!("{s:?}")
                .split("allocated_bins: ")
                .nth(1)
                .and_then(|t| t.trim_end_matches([' ', '}']).parse().ok())
                .unwrap_or(0);
            exact + bins * 8 + if bins > 0 { std::mem::size_of::<sketches_ddsketch::DDSketch>() } else { 0 }
        };
        let six = agg_of(&six_points());
        let walk: Vec<(i64, f64)> = random_walk(0x5EED).into_iter().take(360).collect();
        let hour = agg_of(&walk);
        eprintln!(
            "size_of BucketAgg {} bytes, QuantileSketch {} bytes",
            std::mem::size_of::<BucketAgg>(),
            std::mem::size_of::<QuantileSketch>()
        );
        eprintln!(
            "6-point bucket: sketch heap ~{} bytes, {} bytes serialized",
            heap(&six),
            six.to_bytes().unwrap().len()
        );
        eprintln!(
            "360-point bucket: sketch heap ~{} bytes, {} bytes serialized",
            heap(&hour),
            hour.to_bytes().unwrap().len()
        );
        assert!(heap(&six) <= 64);
        assert!(six.to_bytes().unwrap().len() <= 40);
    }
}
