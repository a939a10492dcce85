//! What reading or framing bytes can go wrong with. `what` names the
//! structure being read (the caller's word: "stored event", "index file"),
//! `offset` the byte where it went wrong, from the reader's base.

/// What a [`crate::ByteReader`] refuses: plain data (`Clone`, `Eq`), so
/// error types that must stay comparable can hold it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{what}: {needed} bytes needed at offset {offset}, {available} left")]
    Truncated { what: &'static str, offset: u64, needed: usize, available: usize },
    #[error("{what}: the varint at offset {offset} overflows {bits} bits")]
    VarintOverflow { what: &'static str, offset: u64, bits: u32 },
    #[error("{what}: {count} trailing bytes at offset {offset}")]
    Trailing { what: &'static str, offset: u64, count: usize },
    #[error("{what}: invalid UTF-8 at offset {offset}")]
    Utf8 {
        what: &'static str,
        offset: u64,
        #[source]
        source: std::str::Utf8Error,
    },
    /// A value the format does not allow (the caller says why).
    #[error("{what}: {reason} at offset {offset}")]
    Invalid { what: &'static str, offset: u64, reason: &'static str },
}

/// Writing frames, or scanning them from a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A field longer than its length prefix can say.
    #[error("a {what} of {len} bytes does not fit its {bits}-bit length")]
    FieldTooLong { what: &'static str, len: usize, bits: u32 },
    /// Damage inside a log: a bad frame with more data after it. Never
    /// skipped; the caller adds the file.
    #[error("damaged frame ({len} bytes): {reason}")]
    Damaged { reason: &'static str, len: usize },
    #[error("reading frames: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
