//! The binary's one error type.

/// Everything a `platform` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] domain_core::Error),
    #[error(transparent)]
    Kafka(#[from] kafka_bus::Error),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("only {got} of {expected} demo events came back from the bus within {seconds} s")]
    Incomplete { got: usize, expected: usize, seconds: u64 },
    #[error("cannot encode output: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Timeseries(#[from] timeseries::Error),
    #[error(transparent)]
    Accounts(#[from] accounts::Error),
    #[error(transparent)]
    Store(#[from] event_store::Error),
    #[error(transparent)]
    Orders(#[from] orders::Error),
    #[error(transparent)]
    Order(#[from] orders::OrderError),
    #[error("order `{0}` does not exist")]
    OrderNotFound(String),
    /// A lenient write refused some lines (each listed with its reason).
    #[error("{refused} of {lines} lines were refused (listed above); the others are written")]
    LinesRefused { refused: usize, lines: usize },
    #[error("no projection is named `{name}` (known: {known})")]
    UnknownProjection { name: String, known: String },
    #[error("the sagas did not settle within {seconds} s ({waiting} events not yet seen by their consumers)")]
    NotSettled { waiting: usize, seconds: u64 },
    #[error(transparent)]
    Registry(#[from] mesh_registry::Error),
    #[error(transparent)]
    Lake(#[from] lake::Error),
    #[error("{0}")]
    Usage(String),
    #[error("the {context} service did not answer {request}: {source}")]
    Http { context: &'static str, request: String, source: std::io::Error },
    #[error("the {context} service answered {request} with {status}: {body}")]
    Service { context: &'static str, request: String, status: u16, body: String },
    #[error("a relay or consumer task of the node failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// What the user can do next, when we know.
    /// The process exit code: 3 when a lenient write refused some lines
    /// (the rest is written), 1 for every other failure.
    pub fn exit_code(&self) -> u8 {
        if matches!(self, Error::LinesRefused { .. }) { 3 } else { 1 }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Kafka(_) | Error::Domain(domain_core::Error::Bus(_)) => {
                Some("is Kafka running? `cargo xtask kafka up` starts one on 127.0.0.1:9092")
            }
            Error::Io { .. } => Some("check that the directory exists and is writable"),
            Error::LinesRefused { .. } => {
                Some("fix the listed lines and write them again: points already written are not duplicated")
            }
            Error::Store(event_store::Error::Locked { .. }) => {
                Some("another platform process uses this --data directory; wait for it or pick another")
            }
            Error::Accounts(accounts::Error::NotFound(_)) => {
                Some("open it first: platform accounts open ID --holder NAME")
            }
            Error::OrderNotFound(_) => Some("create it first: platform orders create ID --customer-id ..."),
            Error::UnknownProjection { .. } => Some("`platform projections status` lists the projections"),
            Error::Store(event_store::Error::ProjectionParked { .. })
            | Error::Accounts(accounts::Error::Store(event_store::Error::ProjectionParked { .. })) => Some(
                "fix what the error names (or deploy a reader that follows the event), then `platform projections resume NAME`",
            ),
            Error::Store(event_store::Error::RebuildRunning { .. }) => {
                Some("`platform projections status` shows the rebuild's progress; try again once it switched over")
            }
            Error::Registry(mesh_registry::Error::NotFound { kind: "product", .. }) => Some(
                "`platform registry products` lists what is registered; `platform registry register FILE` adds one",
            ),
            Error::Registry(mesh_registry::Error::NotFound { kind: "record", .. }) => Some(
                "the registry serves what flowed on the product's port; run the producer (or `platform demo`) first",
            ),
            Error::Registry(mesh_registry::Error::BreakingChange { .. }) => {
                Some("bump the major version, or keep the change compatible (see `platform registry diff OLD NEW`)")
            }
            Error::Registry(mesh_registry::Error::Db(_)) => {
                Some("another platform process may hold DIR/mesh-registry; wait for it or pick another --data")
            }
            Error::Lake(lake::Error::UnknownTable { .. }) => {
                Some("`platform lake tables` lists the tables; names are <layer>.<name>, e.g. silver.orders")
            }
            Error::Lake(lake::Error::Sql(_)) => {
                Some("tables are named <layer>.<name> (bronze.events, silver.orders, gold.revenue_per_product_day)")
            }
            Error::Lake(lake::Error::Bus(_)) => {
                Some("is Kafka running? `cargo xtask kafka up` starts one on 127.0.0.1:9092")
            }
            Error::Http { .. } => Some("the service process may have stopped; its log is in the demo's logs folder"),
            Error::NotSettled { .. } => Some(
                "the events are stored; they are handled the next time the consumers run (any platform command on this --data)",
            ),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the path to an I/O error.
pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}
