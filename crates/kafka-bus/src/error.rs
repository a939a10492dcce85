//! The crate's one error type.

use rdkafka::error::KafkaError;

/// Failures of the Kafka adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create a Kafka client for {bootstrap}: {source}")]
    Client { bootstrap: String, source: KafkaError },
    #[error(
        "KAFKA_BOOTSTRAP is not set: start a broker with `cargo xtask kafka up` and export KAFKA_BOOTSTRAP=127.0.0.1:9092"
    )]
    NoBootstrap,
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

impl From<Error> for domain_core::Error {
    fn from(e: Error) -> Self {
        domain_core::Error::Bus(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps a client error into the port's error type.
pub(crate) fn bus_error(context: &str, e: KafkaError) -> domain_core::Error {
    domain_core::Error::Bus(format!("{context}: {e}"))
}
