//! The crate's errors: [`AccountError`] for what an account refuses (pure,
//! from the aggregate), [`Error`] for everything a caller of the crate sees.

use domain_core::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is not open")]
    NotOpened,
    #[error("the account is already open")]
    AlreadyOpened,
    #[error("the account is frozen")]
    Frozen,
    #[error("the account is closed")]
    Closed,
    #[error("the account holder's name is empty")]
    EmptyHolder,
    #[error("invalid account id `{0}` (1 to 100 characters, no spaces, not starting with `$`)")]
    InvalidAccountId(String),
    #[error("an initial balance cannot be negative ({0})")]
    NegativeInitialBalance(Decimal),
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: Decimal, requested: Decimal },
    #[error("the account holds {account}, the amount is in {amount}")]
    CurrencyMismatch { account: Currency, amount: Currency },
    #[error("an account cannot transfer to itself")]
    SelfTransfer,
    #[error("a transfer needs an id")]
    EmptyTransferId,
    #[error("a payment needs an order id")]
    EmptyOrderId,
    #[error("only an empty account can be closed (balance {0})")]
    BalanceNotZero(Decimal),
    #[error(transparent)]
    Money(#[from] domain_core::Error),
}

impl AccountError {
    /// The reason recorded when a saga step is refused for this error, if
    /// it is one a saga compensates (rather than a bug to dead-letter).
    pub fn rejection_reason(&self) -> Option<RejectionReason> {
        Some(match self {
            AccountError::NotOpened => RejectionReason::AccountNotFound,
            AccountError::Frozen => RejectionReason::AccountFrozen,
            AccountError::Closed => RejectionReason::AccountClosed,
            AccountError::CurrencyMismatch { .. } => RejectionReason::CurrencyMismatch,
            AccountError::InsufficientFunds { .. } => RejectionReason::InsufficientFunds,
            AccountError::Money(domain_core::Error::CurrencyMismatch { .. }) => RejectionReason::CurrencyMismatch,
            _ => return None,
        })
    }
}

/// Why a transfer, payment or refund did not go through; recorded in
/// events, so the names are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    AccountNotFound,
    AccountFrozen,
    AccountClosed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
}

impl RejectionReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectionReason::AccountNotFound => "account_not_found",
            RejectionReason::AccountFrozen => "account_frozen",
            RejectionReason::AccountClosed => "account_closed",
            RejectionReason::CurrencyMismatch => "currency_mismatch",
            RejectionReason::InsufficientFunds => "insufficient_funds",
            RejectionReason::InvalidAmount => "invalid_amount",
        }
    }
}

impl std::fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the accounts crate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] event_store::Error),
    #[error(transparent)]
    Domain(#[from] domain_core::Error),
    #[error("account `{0}` does not exist")]
    NotFound(String),
    #[error("cannot decode the event at log position {position}: {source}")]
    Decode {
        position: u64,
        #[source]
        source: domain_core::Error,
    },
    #[error("event at log position {position} of account `{account_id}` does not follow its statement: {reason}")]
    Inconsistent { position: u64, account_id: String, reason: String },
    #[error(transparent)]
    Gap(#[from] event_store::projection_rules::Gap),
    #[error(
        "a statement page starts at version 1 or later and holds 1 to {max} lines (asked: from {from}, {limit} lines)"
    )]
    InvalidPage { from: u64, limit: usize, max: usize },
    /// A rebuild asked statements without generations for a copy, or a
    /// switch-over came without a copy.
    #[error("these statements keep no copy to rebuild into (use ServingStatements over their generations)")]
    NoCopy,
    /// The files of the statements' generations.
    #[error(transparent)]
    GenerationFile(#[from] event_store::generations::FileError),
    #[error("statement database: {0}")]
    ReadModelDb(#[from] redb::Error),
    #[error("statement row: {0}")]
    Row(#[from] serde_json::Error),
    #[error("statement PostgreSQL: {}", describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("invalid schema name `{0}`: use [a-z_][a-z0-9_]*, at most 63 bytes, not pg_*")]
    InvalidSchema(String),
    #[error("statement {column} of `{key}`: `{value}` is not a valid value")]
    InvalidValue { column: &'static str, key: String, value: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a blocking statement task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn describe_postgres(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

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

impl Error {
    /// Whether the store (not the request) failed, so trying again may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => !matches!(
                e.root(),
                event_store::Error::InvalidStream { .. }
                    | event_store::Error::EventTooLarge { .. }
                    | event_store::Error::StreamDeleted(_)
                    | event_store::Error::Codec(_)
                    | event_store::Error::Domain(_)
                    | event_store::Error::IdempotencyConflict { .. }
            ),
            _ => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
