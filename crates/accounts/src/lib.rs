//! Accounts bounded context (seed section 2.1): event-sourced accounts,
//! transfers between them and the payment of orders.
//!
//! It owns: the [`Account`] aggregate (open, deposit, withdraw, transfer,
//! freeze, unfreeze, close) with money as `Decimal` in the account's
//! currency and no overdraft ever; the `accounts.*` events; its own event
//! store (a directory or a PostgreSQL schema), snapshotted every 100
//! versions as the seed's repository does; the transfer saga (debit, then
//! credit on that event, or pay back with the reason) and the accounts side
//! of order payment (debit the payer on `orders.OrderConfirmed`, credit the
//! merchant, publish `PaymentCaptured` or `PaymentRejected`; refund on
//! `orders.OrderCancelled`), run by [`AccountSagas`] from the bus; and the
//! [`ledger`] audit that proves money is conserved.
//!
//! It must never: depend on another bounded context's crate (orders' events
//! are read with this crate's own tolerant types), hold money in a float,
//! or apply a saga step twice: every step is idempotent in the aggregate.
//!
//! ```
//! use accounts::{Account, AccountCommand};
//! use domain_core::{AggregateRoot, Currency, Money};
//!
//! let mut account = AggregateRoot::<Account>::new("account_001");
//! let cny = |s: &str| Money::parse(s, Currency::CNY).unwrap();
//! account.execute(AccountCommand::Open { account_holder: "张三".into(), initial_balance: cny("1000") }).unwrap();
//! account.execute(AccountCommand::Deposit { amount: cny("500"), description: "工资".into() }).unwrap();
//! assert!(account.execute(AccountCommand::Withdraw { amount: cny("2000"), description: "".into() }).is_err());
//! assert_eq!(account.state().balance.to_string(), "1500.00");
//! ```

pub mod account;
pub mod error;
pub mod ledger;
pub mod saga;
pub mod service;
pub mod statement;

#[cfg(test)]
mod account_tests;

pub use account::{
    Account, AccountCommand, AccountEvent, AccountStatus, Cause, PaymentRecord, PaymentStage, TransferPurpose,
};
pub use error::{AccountError, Error, RejectionReason, Result};
pub use saga::{AccountSagas, SagaConfig};
pub use service::Accounts;
pub use statement::{
    LinePage, MemoryStatements, PostgresStatementGenerations, PostgresStatements, RedbStatementGenerations,
    RedbStatements, ServingStatements, Statement, StatementGenerations, StatementHeader, StatementLine,
    StatementReadModel, Statements,
};
