//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong in the shared kernel and on a bus.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("invalid event type `{value}`: {reason} (expected `<context>.<EventName>.v<N>`)")]
    InvalidEventType { value: String, reason: &'static str },
    #[error("record has no `{0}` header")]
    MissingHeader(&'static str),
    #[error("header `{name}` is invalid: {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("record has no value")]
    MissingValue,
    #[error("payload is not valid JSON: {0}")]
    InvalidPayload(String),
    #[error("event `{event_type}` does not fit its schema: {reason}")]
    SchemaMismatch { event_type: String, reason: String },
    #[error("unknown event type `{0}` for this consumer")]
    UnknownEventType(String),
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    #[error("cannot upcast `{event_type}`: {reason}")]
    Upcast { event_type: String, reason: String },
    #[error("invalid currency code `{0}` (expected three upper-case letters, e.g. CNY)")]
    InvalidCurrency(String),
    #[error("currency mismatch: {left} vs {right}")]
    CurrencyMismatch { left: String, right: String },
    #[error("invalid amount `{amount}`: {reason}")]
    InvalidAmount { amount: String, reason: String },
    #[error("amount overflow")]
    AmountOverflow,
    #[error("topic `{0}` does not exist; create it first")]
    UnknownTopic(String),
    #[error("invalid topic name `{0}`")]
    InvalidTopic(String),
    #[error("publish blocked for {0:?}: consumers are too far behind (backpressure)")]
    Backpressure(Duration),
    #[error("subscription is closed")]
    Closed,
    #[error("handler failed (will retry): {0}")]
    Transient(String),
    #[error("handler rejected the event: {0}")]
    Rejected(String),
    #[error("bus error: {0}")]
    Bus(String),
}

impl Error {
    /// Whether a consumer should try the same record again.
    ///
    /// Only handler-declared transient failures and bus faults are retried;
    /// a record that cannot be decoded will never decode, so it goes straight
    /// to the dead-letter queue.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transient(_) | Error::Bus(_) | Error::Backpressure(_))
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
