//! Point codecs for the time-series engine.
//!
//! Two encodings live here, both lossless for every `f64` bit pattern (NaN payloads, `-0.0`,
//! infinities, subnormals) and for every `i64` nanosecond timestamp sequence (equal,
//! decreasing, or `i64::MIN`..`i64::MAX` jumps):
//!
//! * [`gorilla`]: a streaming delta-of-delta / XOR encoder for the mutable in-memory head of a
//!   series, where points arrive one at a time and must be readable while appending.
//! * [`block`]: sealed immutable blocks (pco-compressed columns, or plain little-endian columns
//!   when a schema disables compression) behind a checksummed header that carries the time
//!   range, so readers can skip blocks without decompressing them.
//!
//! Decoders treat their input as untrusted: arbitrary bytes yield a [`CodecError`], never a
//! panic or an unbounded allocation.

mod bits;
pub mod block;
pub mod gorilla;

pub use block::{Block, BlockFormat, BlockHeader};
pub use gorilla::{GorillaDecoder, GorillaEncoder};

/// Everything that can go wrong while encoding or decoding points.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A byte-aligned structure (block header, column, varint) ends early.
    #[error("truncated {what}: needed {needed} bytes at byte offset {offset}, only {available} available")]
    Truncated { what: &'static str, offset: usize, needed: usize, available: usize },
    /// The Gorilla bit stream ends before the number of points its header promises.
    #[error("truncated {what}: needed {needed} bits at bit offset {bit_offset}, only {available} available")]
    TruncatedBits { what: &'static str, bit_offset: u64, needed: u32, available: u64 },
    /// The input does not start with the expected magic bytes.
    #[error("bad magic {found:02x?}, expected {expected:02x?}")]
    BadMagic { found: [u8; 4], expected: [u8; 4] },
    /// The input was written by a newer (or unknown) format version.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    UnsupportedVersion { what: &'static str, found: u8, supported: u8 },
    /// The block header's format flag is not one this build knows.
    #[error("unknown block format flag {0}")]
    UnknownFormat(u8),
    /// The block's CRC32 does not match its contents.
    #[error("checksum mismatch: header says {expected:#010x}, contents hash to {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    /// A varint or field of the block's bytes that does not read.
    #[error(transparent)]
    Read(#[from] disk_format::ReadError),
    /// pco rejected the data (compression or decompression).
    #[error("pco: {0}")]
    Pco(String),
    /// Timestamp and value columns of different lengths were passed in.
    #[error("column lengths differ: {timestamps} timestamps, {values} values")]
    LengthMismatch { timestamps: usize, values: usize },
    /// More points than a block may hold.
    #[error("{count} points exceed the per-block limit of {max}")]
    TooManyPoints { count: u64, max: u64 },
    /// Bytes left over after the encoded data ended.
    #[error("{0} unexpected trailing bytes after the encoded data")]
    TrailingBytes(usize),
    /// The input is structurally invalid in a way not covered above.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl From<pco::errors::PcoError> for CodecError {
    fn from(err: pco::errors::PcoError) -> Self {
        CodecError::Pco(err.to_string())
    }
}

/// Tiny deterministic PRNG and value strategies shared by the codec tests.
#[cfg(test)]
pub(crate) mod test_support {
    use proptest::prelude::*;

    pub(crate) use domain_core::seeded::SplitMix64;

    /// The benchmark series from the design anchors: a 2-decimal random-walk gauge sampled
    /// every 10 s (in ns), 8640 points (one day), fixed seed.
    pub(crate) fn random_walk_gauge() -> (Vec<i64>, Vec<f64>) {
        const N: usize = 8640;
        const INTERVAL_NS: i64 = 10_000_000_000;
        let mut rng = SplitMix64(0x5EED_0000_0000_2A2A);
        let start = 1_700_000_000_000_000_000i64;
        let mut value = 100.0f64;
        let mut timestamps = Vec::with_capacity(N);
        let mut values = Vec::with_capacity(N);
        for i in 0..N as i64 {
            timestamps.push(start + i * INTERVAL_NS);
            value = ((value + (rng.unit() * 2.0 - 1.0)) * 100.0).round() / 100.0;
            values.push(value);
        }
        (timestamps, values)
    }

    /// Values that stress bit-exactness, mixed with ordinary and repeating ones.
    pub(crate) fn value_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => any::<u64>().prop_map(f64::from_bits),
            // NaN with a random (non-zero) payload and random sign.
            2 => any::<u64>().prop_map(|p| f64::from_bits((p & 0x800F_FFFF_FFFF_FFFF) | 0x7FF0_0000_0000_0001)),
            // Subnormals of either sign.
            1 => any::<u64>().prop_map(|p| f64::from_bits(p & 0x800F_FFFF_FFFF_FFFF)),
            2 => prop::sample::select(vec![
                0.0,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                -f64::NAN,
                f64::MIN_POSITIVE,
                f64::MAX,
                f64::MIN,
                f64::EPSILON,
                1.5,
            ]),
            3 => (-100_000i64..100_000).prop_map(|c| c as f64 / 100.0),
        ]
    }

    /// Timestamp sequences: regular, jittered, equal, decreasing and wrapping-huge steps.
    pub(crate) fn timestamps_strategy(max_len: usize) -> impl Strategy<Value = Vec<i64>> {
        let step = prop_oneof![
            4 => Just(10_000_000_000i64),
            2 => (-5_000_000i64..5_000_000).prop_map(|j| 10_000_000_000 + j),
            1 => Just(0i64),
            1 => -1_000_000_000_000i64..0,
            1 => any::<i64>(),
            1 => prop::sample::select(vec![i64::MIN, i64::MAX, 1, -1]),
        ];
        let start = prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(1_700_000_000_000_000_000i64)];
        (start, prop::collection::vec(step, 0..max_len)).prop_map(|(start, steps)| {
            let mut ts = start;
            let mut out = Vec::with_capacity(steps.len());
            for (i, step) in steps.into_iter().enumerate() {
                if i > 0 {
                    ts = ts.wrapping_add(step);
                }
                out.push(ts);
            }
            out
        })
    }

    /// Aligned (timestamps, values) columns of equal length.
    pub(crate) fn points_strategy(max_len: usize) -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
        timestamps_strategy(max_len).prop_flat_map(|ts| {
            let n = ts.len();
            (Just(ts), prop::collection::vec(value_strategy(), n))
        })
    }

    pub(crate) fn bits_of(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }
}
