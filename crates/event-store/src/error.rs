//! The crate's one error type.

use uuid::Uuid;

/// Everything an event store can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid stream name `{name}`: {reason}")]
    InvalidStream { name: String, reason: &'static str },
    #[error("append to `{stream}` has no events")]
    EmptyAppend { stream: String },
    #[error("event {id} is {size} bytes; the limit is {max}")]
    EventTooLarge { id: Uuid, size: usize, max: usize },
    #[error("concurrency conflict on `{stream}`: expected {expected}, actual {actual}")]
    Conflict { stream: String, expected: String, actual: String, actual_version: Option<u64> },
    #[error("event {id} was already appended with a different payload or position")]
    IdempotencyConflict { id: Uuid },
    #[error("event {id} appears twice in one append")]
    DuplicateInBatch { id: Uuid },
    #[error("stream `{0}` was deleted")]
    StreamDeleted(String),
    /// A whole, checked log record that does not replay (a record of an
    /// earlier format, a field that does not read back): never skipped.
    #[error("store at {path} has a record at byte {offset} that does not replay: {source}")]
    Replay {
        path: String,
        offset: u64,
        #[source]
        source: Box<Error>,
    },
    /// A log frame damaged inside the file: never skipped.
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
    #[error("store at {path} is in use by another process")]
    Locked { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("database: {0}")]
    Database(String),
    #[error("cannot encode or decode: {0}")]
    Codec(String),
    #[error(transparent)]
    Domain(#[from] domain_core::Error),
    #[error("snapshot of `{stream}` does not fit {aggregate}: {reason}")]
    Snapshot { stream: String, aggregate: &'static str, reason: String },
    #[error("command failed: {0}")]
    Command(String),
    #[error("gave up after {attempts} conflicting attempts on `{stream}`")]
    TooManyConflicts { stream: String, attempts: u32 },
    #[error("the store is closed")]
    Closed,
    /// A projection refused an event it cannot follow (a poison event, not a
    /// failure of its storage); the projection runner parks on it. The
    /// projection's own error is the source.
    #[error("{0}")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A projection's own storage failed (worth retrying); its error is the
    /// source.
    #[error("projection storage: {0}")]
    ProjectionStorage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The projection is parked on a failing event; `resume` retries it.
    #[error("projection `{name}` is parked at log position {position}: {reason}")]
    ProjectionParked { name: String, position: u64, reason: String },
    /// `resume` of a projection that is not parked.
    #[error("projection `{name}` is not parked")]
    NotParked { name: String },
    /// The projection keeps no second copy of its storage, so it cannot be
    /// rebuilt while it serves.
    #[error("projection `{name}` cannot be rebuilt beside the serving copy")]
    RebuildUnsupported { name: String },
    /// A rebuild of the projection is already running.
    #[error("projection `{name}` is already being rebuilt")]
    RebuildRunning { name: String },
    /// The rebuild failed before the switch-over; the serving copy is
    /// untouched and the half-built one is dropped by the next rebuild.
    #[error("rebuilding projection `{name}` failed, the serving copy is untouched: {source}")]
    RebuildFailed {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// The failure of a batch this caller's command was part of.
    #[error("{0}")]
    Shared(#[source] std::sync::Arc<Error>),
}

impl Error {
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Conflict { .. } => true,
            Error::Shared(e) => e.is_conflict(),
            _ => false,
        }
    }

    /// Whether a retry may succeed without anything changing: the storage
    /// or its connection failed, nothing was refused.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Database(_)
            | Error::ProjectionStorage(_)
            | Error::Closed
            | Error::Locked { .. } => true,
            Error::Shared(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The error itself, seen through [`Error::Shared`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Shared(e) => e.root(),
            e => e,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.display().to_string(), source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
