//! The crate's one error type.

/// Everything the registry refuses or fails at. Refusals of user input
/// (contracts, products, queries) name what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- contracts (contract::*) ----
    /// The document is not valid YAML, or does not fit the ODCS model (an
    /// unknown key, a wrong type, a missing required key); line and column
    /// are 1-based.
    #[error("{document}: line {line}, column {column}: {message}")]
    Yaml { document: String, line: usize, column: usize, message: String },
    /// The document parsed but breaks a rule of the standard or of the
    /// registry (`path` is a JSON-pointer-like location such as
    /// `schema[0].properties[2].logicalType`).
    #[error("contract `{contract}`: {path}: {reason}")]
    InvalidContract { contract: String, path: String, reason: String },
    /// A version string that is not semantic versioning (`1.2.3`).
    #[error("`{value}` is not a semantic version (MAJOR.MINOR.PATCH): {source}")]
    InvalidVersion {
        value: String,
        #[source]
        source: semver::Error,
    },
    /// The JSON Schema a contract's schema compiles to was refused by the
    /// validator.
    #[error("contract `{contract}` schema `{object}`: its JSON Schema does not compile: {reason}")]
    SchemaCompile { contract: String, object: String, reason: String },
    /// A new contract version changes the contract incompatibly without a
    /// major version bump; `consumers` are the products whose input ports
    /// read it.
    #[error("{}", crate::diff::describe_refusal(contract, from, to, changes, consumers))]
    BreakingChange {
        contract: String,
        from: String,
        to: String,
        changes: Vec<crate::diff::Change>,
        consumers: Vec<String>,
    },
    // (contract errors end)

    // ---- products and the catalogue ----
    #[error("invalid product `{product}`: {path}: {reason}")]
    InvalidProduct { product: String, path: String, reason: String },
    #[error("no {kind} `{id}` {}", if *.kind == "record" { "has flowed on the port" } else { "is registered" })]
    NotFound { kind: &'static str, id: String },
    /// A second registration under an id that is already taken with
    /// different content.
    #[error("{kind} `{id}` is already registered{}", if .version.is_empty() { String::new() } else { format!(" at version {}", .version) })]
    Duplicate { kind: &'static str, id: String, version: String },
    /// A status change the lifecycle forbids (draft → active → deprecated →
    /// retired).
    #[error("product `{product}` cannot go from {from} to {to}: {reason}")]
    Lifecycle { product: String, from: String, to: String, reason: &'static str },
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    // ---- search ----
    #[error("search index: {0}")]
    Search(#[from] tantivy::TantivyError),
    #[error("search query `{query}`: {source}")]
    SearchQuery {
        query: String,
        #[source]
        source: tantivy::query::QueryParserError,
    },

    // ---- storage and I/O ----
    #[error("catalogue database: {0}")]
    Db(#[from] redb::Error),
    /// The PostgreSQL catalogue's server or connection failed.
    #[error("catalogue PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("invalid schema name `{0}`: use [a-z_][a-z0-9_]*, at most 63 bytes, not pg_*")]
    InvalidSchema(String),
    #[error("stored row: {0}")]
    Row(#[from] serde_json::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bus: {0}")]
    Bus(#[from] domain_core::Error),
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.into())
            }
        }
    )*};
}
redb_errors!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
