//! The errors of aggregation specs, intervals, rollup buckets and quantile
//! sketches. A module of its own so `sketch` and `aggregate` both use it
//! without depending on each other in a cycle.

use std::fmt;

/// Errors of the aggregation and sketch modules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggError {
    #[error("value {value} is not finite; NaN and infinities are refused")]
    NonFinite { value: f64 },
    #[error("quantile {q} is outside [0, 1]")]
    InvalidQuantile { q: f64 },
    #[error("unknown aggregation `{input}` (expected count, min, max, avg, mean, sum, first, last, median or pNN)")]
    UnknownAgg { input: String },
    #[error("invalid percentile `{input}` (expected p followed by a number from 0 to 100, e.g. p95 or p99.9)")]
    InvalidPercentile { input: String },
    #[error("invalid interval `{input}`: {kind}")]
    InvalidInterval { input: String, kind: IntervalErrorKind },
    #[error("unknown aggregation level `{input}` (expected raw, 1min, 5min, 1hour or 1day)")]
    UnknownLevel { input: String },
    #[error("more than 2^53 points in one bucket")]
    CountOverflow,
    #[error("sketches with different configurations cannot be merged")]
    IncompatibleSketch,
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: &'static str },
    #[error("cannot encode quantile sketch: {reason}")]
    Encode { reason: &'static str },
    /// Bytes that end early or hold an impossible varint or string.
    #[error(transparent)]
    Format(#[from] disk_format::ReadError),
}

impl AggError {
    /// Whether stored bytes failed to decode (either a format the reader
    /// refused or a value the structure does not allow).
    pub fn is_decode(&self) -> bool {
        matches!(self, Self::Decode { .. } | Self::Format(_))
    }
}

/// Why an interval was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalErrorKind {
    /// Not `<digits><unit>`.
    Unparsable,
    /// Missing or unknown unit.
    UnknownUnit,
    /// Zero length.
    Zero,
    /// Negative length.
    Negative,
    /// Longer than [`crate::aggregate::Interval::MAX`] (10 years).
    TooLong,
}

impl fmt::Display for IntervalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unparsable => "expected a whole number followed by a unit, e.g. 10s, 5min, 1h, 1d",
            Self::UnknownUnit => "missing or unknown unit (ns, us, ms, s, m/min, h/hour, d/day, w/week)",
            Self::Zero => "must be longer than zero",
            Self::Negative => "must not be negative",
            Self::TooLong => "longer than 10 years",
        })
    }
}
