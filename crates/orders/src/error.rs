//! The crate's one error type.

/// Everything that can go wrong in the orders context outside the
/// aggregate's own decisions (which are [`OrderError`]s, wrapped here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The aggregate refused the command.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A customer refused the command.
    #[error(transparent)]
    Customer(#[from] crate::customers::CustomerError),
    /// The event store failed or refused (a stale writer gets
    /// `event_store::Error::Conflict`, see [`Error::is_conflict`]).
    #[error("event store: {0}")]
    Store(#[from] event_store::Error),
    #[error("cannot encode or decode an event: {0}")]
    Codec(#[from] domain_core::Error),
    #[error("cannot decode the event at log position {position}: {source}")]
    Decode {
        position: u64,
        #[source]
        source: domain_core::Error,
    },
    /// The projection met an event its read model cannot follow; it stops
    /// rather than drift.
    #[error("event at log position {position} of order `{order_id}` does not follow the read model: {reason}")]
    Inconsistent { position: u64, order_id: String, reason: &'static str },
    /// A batch does not continue the read model's log exactly.
    #[error(transparent)]
    Gap(#[from] event_store::projection_rules::Gap),
    #[error("read-model database: {0}")]
    ReadModelDb(#[from] redb::Error),
    #[error("read-model row: {0}")]
    Row(#[from] serde_json::Error),
    /// The PostgreSQL read model's server or connection failed (the
    /// server's message and SQLSTATE are in the driver's error).
    #[error("read-model PostgreSQL: {}", describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A schema name the PostgreSQL read model refuses (see
    /// [`crate::PostgresReadModel::connect`]).
    #[error("invalid schema name `{0}`: use [a-z_][a-z0-9_]*, at most 63 bytes, not pg_*")]
    InvalidSchema(String),
    /// A value the PostgreSQL read model cannot store (a position beyond
    /// `bigint`) or read back (a row written by hand or by a newer version).
    #[error("read-model {column} of `{key}`: `{value}` is not a valid value")]
    InvalidValue { column: &'static str, key: String, value: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The files of the read model's generations.
    #[error(transparent)]
    GenerationFile(#[from] event_store::generations::FileError),
    #[error("a blocking read-model task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A rebuild asked a read model without generations for a copy, or a
    /// switch-over came without a copy.
    #[error("this read model keeps no copy to rebuild into (use a ServingReadModel over its generations)")]
    NoCopy,
    /// A write of a copy being rebuilt failed earlier (that error was
    /// returned then): the copy misses rows for good.
    #[error("an earlier write of this read-model copy failed: drop the copy and rebuild it again")]
    CopyBroken,
    #[error("the range starts on {from}, after its end {to}")]
    InvalidDateRange { from: chrono::NaiveDate, to: chrono::NaiveDate },
}

impl Error {
    /// Whether a writer lost a race (expected version no longer current).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_conflict())
    }
}

/// The server's message and SQLSTATE when there is one, else the driver's
/// description and its cause (`tokio_postgres::Error`'s own `Display` says
/// only "db error").
fn describe_postgres(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// redb reports through several error types; each becomes [`Error::ReadModelDb`].
macro_rules! from_redb {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for Error {
            fn from(e: redb::$t) -> Self {
                Error::ReadModelDb(e.into())
            }
        }
    )*};
}
from_redb!(DatabaseError, TransactionError, TableError, StorageError, CommitError, SetDurabilityError);

use crate::OrderError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
