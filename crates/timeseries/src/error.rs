//! The crate's one error type.

/// Everything the time-series engine refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid schema for `{series}`: {reason}")]
    InvalidSchema { series: String, reason: String },
    #[error("series `{0}` already exists with a different schema")]
    SchemaConflict(String),
    #[error("unknown series `{0}`; create it first (platform ts create-series)")]
    UnknownSeries(String),
    #[error("point of `{series}` has tag key `{key}`, which the schema does not list")]
    UnknownTagKey { series: String, key: String },
    #[error("point of `{series}` is in `{got}` but the series is in `{expected}`")]
    WrongUnit { series: String, expected: String, got: String },
    #[error("point of `{series}` at {timestamp} is NaN or infinite and the schema refuses those")]
    NaN { series: String, timestamp: i64 },
    #[error("point of `{series}` at {timestamp} is older than the retention keeps (nothing before {cutoff})")]
    TooOld { series: String, timestamp: i64, cutoff: i64 },
    #[error("invalid tag matcher `{0}` (use k=v, k!=v, k=~regex, k!~regex or k=in(a|b))")]
    InvalidMatcher(String),
    #[error("invalid regular expression `{pattern}`: {reason}")]
    InvalidRegex { pattern: String, reason: String },
    #[error("time range is inverted: from {from} is after to {to}")]
    InvertedRange { from: i64, to: i64 },
    #[error("query asks for {buckets} buckets; the limit is {limit} (use a coarser --every)")]
    TooManyBuckets { buckets: i64, limit: i64 },
    #[error(transparent)]
    Agg(#[from] crate::aggregate::AggError),
    #[error(transparent)]
    LineProtocol(#[from] crate::line_protocol::StreamError),
    /// A strict batch refused at its first bad line.
    #[error(transparent)]
    Batch(#[from] crate::line_protocol::BatchError),
    #[error("field `{field}` of measurement `{measurement}` is a string; time series hold numbers")]
    StringField { measurement: String, field: String },
    #[error("{0}")]
    Codec(String),
    #[error("store at {path} is corrupt at byte {offset}: {reason}")]
    Corrupt { path: String, offset: u64, reason: String },
    /// A whole, checked log record that does not replay (a record of an
    /// earlier format, a field that does not read back): never skipped.
    #[error("store at {path} has a record at byte {offset} that does not replay: {source}")]
    Replay {
        path: String,
        offset: u64,
        #[source]
        source: Box<Error>,
    },
    /// A frame damaged inside a file: never skipped.
    #[error("store at {path} is damaged at byte {offset}: {source}")]
    Damaged {
        path: String,
        offset: u64,
        #[source]
        source: disk_format::Error,
    },
    /// A frame that cannot be written (a field too long for its length).
    #[error("frame: {0}")]
    Format(#[from] disk_format::Error),
    /// A stored record that does not read back.
    #[error("stored record: {0}")]
    Read(#[from] disk_format::ReadError),
    /// A compressed block that does not encode or decode.
    #[error("block: {0}")]
    Block(#[from] crate::codec::CodecError),
    /// A log record only an earlier version wrote.
    #[error(
        "this log holds records of kind {kind}, which only versions before 2026-11-26 wrote and this one no longer reads; load the data again into a new directory"
    )]
    EarlierFormat { kind: u8 },
    #[error("store at {path} is in use by another process")]
    Locked { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the engine failed earlier and stopped accepting writes: {0}")]
    Failed(String),
    #[error("the engine is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.display().to_string(), source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
