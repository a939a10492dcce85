//! The lake's one error type.

use std::path::PathBuf;

use deltalake::DeltaTableError;
use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;
use deltalake::parquet::errors::ParquetError;

/// Everything that can go wrong in the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Delta log or a data file could not be read or written.
    #[error("delta table `{table}`: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("avro: {0}")]
    Avro(#[from] arrow_avro::errors::AvroError),
    /// A table or file URL that does not parse or join.
    #[error("invalid URL `{location}`: {source}")]
    Url {
        location: String,
        #[source]
        source: url::ParseError,
    },
    /// A query failed to plan or run; the message is DataFusion's.
    #[error("sql: {0}")]
    Sql(#[source] Box<DataFusionError>),
    /// A statement that would change the lake where only queries are allowed.
    #[error("only queries are allowed here: {0}")]
    NotAQuery(String),
    #[error("io on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    ObjectStore(#[from] deltalake::ObjectStoreError),
    /// No table of that name in the lake.
    #[error("unknown table `{name}`; known tables: {known}")]
    UnknownTable { name: String, known: String },
    /// A table name that is not `layer.name` with a known layer and a plain name.
    #[error("invalid table name `{0}`: use `<bronze|silver|gold>.<name>` with letters, digits and `_`")]
    InvalidTableName(String),
    /// The lake location (a directory or an `s3://` URL) could not be understood.
    #[error("invalid lake location `{location}`: {reason}")]
    InvalidLocation { location: String, reason: String },
    /// A landing file that could not be ingested; it was moved to `rejected/`.
    #[error("file {path} rejected: {reason}")]
    Rejected { path: PathBuf, reason: String },
    /// A lake reached through a [`crate::port::LakePort`] adapter outside
    /// this crate (a service's HTTP API) failed.
    #[error("{what}: {source}")]
    Remote { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    /// The bus failed (subscribe, poll, commit, publish).
    #[error("bus: {0}")]
    Bus(#[from] domain_core::Error),
    /// An expectation with action `fail` failed: the whole batch is refused.
    #[error("expectation `{expectation}` on {table} failed for {failed} row(s) and its action is `fail`")]
    ExpectationFailed { table: String, expectation: String, failed: u64 },
    /// The local expectation config (or a contract's rules) could not be understood.
    #[error("invalid expectations: {0}")]
    InvalidExpectations(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps a delta-rs error with the table it happened on.
    pub fn delta(table: impl Into<String>, source: DeltaTableError) -> Self {
        Self::Delta { table: table.into(), source: Box::new(source) }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Self::Sql(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
