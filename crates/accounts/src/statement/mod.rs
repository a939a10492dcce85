//! The account statement (CQRS read side): per account its holder, status
//! and balance, and every event as a statement line with the balance after
//! it (the seed's "Event History"), kept by the projection
//! [`NAME`] of the accounts event store's global log.
//!
//! A [`StatementReadModel`] applies a batch of recorded events and moves
//! its checkpoint in one atomic write, so a crash neither skips nor
//! double-applies an event; what the checkpoint already covers is skipped.
//! Every line is checked against the statement before it (versions follow
//! each other, each event's old balance is the balance so far), so a
//! statement that disagrees with the log parks the projection instead of
//! printing a wrong balance.
//!
//! Adapters: [`MemoryStatements`], [`RedbStatements`]
//! (`DIR/accounts/statements.redb`), [`PostgresStatements`] (a schema of
//! the deployment's choosing); one shared suite. A rebuild without
//! downtime runs on [`ServingStatements`] over the generations of the redb
//! or PostgreSQL adapter ([`RedbStatementGenerations`],
//! [`PostgresStatementGenerations`]).

mod embedded;
mod fold;
mod generations;
mod memory;
mod postgres;

#[cfg(test)]
pub(crate) mod contract;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::Currency;
use event_store::{EventStore, Projection, ProjectionRunner, RecordedText};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::account::validate_account_id;
use crate::{AccountStatus, Error, Result};
pub use embedded::{RedbStatementGenerations, RedbStatements};
pub use generations::{ServingStatements, StatementGenerations};
pub use memory::MemoryStatements;
pub use postgres::{PostgresStatementGenerations, PostgresStatements};

/// The projection name of the account statements.
pub const NAME: &str = "accounts.statement";

/// Lines a statement query returns when the caller names no limit.
pub const DEFAULT_LINES: usize = 100;
/// The most lines one statement query returns.
pub const MAX_LINES: usize = 10_000;

/// The account as of its last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementHeader {
    pub account_id: String,
    /// Empty until the account is opened.
    pub holder: String,
    /// Set when opened.
    pub currency: Option<Currency>,
    pub status: AccountStatus,
    /// With the currency's minor-unit digits.
    pub balance: Decimal,
    /// The account's version: the number of lines.
    pub version: u64,
    /// Time of the first and of the last event (event time, UTC).
    pub first_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One event of the account as a statement line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// The event's version in the account's stream (1 for the first line).
    pub version: u64,
    /// The event's position in the accounts global log.
    pub position: u64,
    /// Event time, UTC.
    pub at: DateTime<Utc>,
    /// The event's name (`MoneyDeposited`).
    pub event: String,
    /// What the event did to the balance (negative for a debit); `None`
    /// for an event that moves no money on this account.
    pub change: Option<Decimal>,
    /// The balance after the event.
    pub balance: Decimal,
    /// What a person reads: the description, the counterparty, the reason.
    pub detail: String,
}

/// An account's statement: the header and a page of lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub header: StatementHeader,
    /// Lines from the page's first version on, in version order.
    pub lines: Vec<StatementLine>,
}

/// Which lines a statement query returns: `limit` lines from version
/// `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePage {
    pub from: u64,
    pub limit: usize,
}

impl LinePage {
    /// Refuses a page no one means (version 0, no lines, more than
    /// [`MAX_LINES`]).
    pub fn new(from: u64, limit: usize) -> Result<Self> {
        if from == 0 || limit == 0 || limit > MAX_LINES {
            return Err(Error::InvalidPage { from, limit, max: MAX_LINES });
        }
        Ok(Self { from, limit })
    }

    /// The first [`DEFAULT_LINES`] lines.
    pub fn first() -> Self {
        Self { from: 1, limit: DEFAULT_LINES }
    }

    /// Versions `from..end` (end excluded).
    pub(crate) fn end(&self) -> u64 {
        self.from.saturating_add(self.limit as u64)
    }
}

/// Storage of the account statements.
#[async_trait]
pub trait StatementReadModel: Send + Sync + std::fmt::Debug {
    /// Applies `batch` (contiguous global-log positions) and sets the
    /// checkpoint to `next_position`, all or nothing. Events the checkpoint
    /// covers are skipped; a batch that does not reach back to the
    /// checkpoint is refused with [`Error::Gap`].
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()>;

    /// The next global-log position to apply (1 when nothing was applied).
    async fn checkpoint(&self) -> Result<u64>;

    /// The account's header and the page of its lines; `None` for an
    /// account the log has no event of.
    async fn statement(&self, account_id: &str, page: LinePage) -> Result<Option<Statement>>;

    /// A fresh, empty copy beside this one, for a rebuild without downtime
    /// ([`ServingStatements`]); a single-generation adapter has none
    /// ([`Error::NoCopy`]).
    async fn fresh_copy(&self) -> Result<Arc<dyn StatementReadModel>> {
        Err(Error::NoCopy)
    }

    /// Makes the copy from [`StatementReadModel::fresh_copy`] the one that
    /// answers, and drops the old one.
    async fn switch_to_copy(&self) -> Result<()> {
        Err(Error::NoCopy)
    }

    /// Makes every applied batch durable (a fresh copy may commit without
    /// syncing until then).
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// A [`StatementReadModel`] as an [`event_store::Projection`]: storage
/// failures are transient for the runner, an event the statement cannot
/// follow is refused and parks it.
#[derive(Debug, Clone)]
pub struct StatementProjection {
    read_model: Arc<dyn StatementReadModel>,
}

#[async_trait]
impl Projection for StatementProjection {
    fn name(&self) -> &str {
        NAME
    }

    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> event_store::Result<()> {
        self.read_model.apply(batch, next_position).await.map_err(to_store_error)
    }

    async fn checkpoint(&self) -> event_store::Result<u64> {
        self.read_model.checkpoint().await.map_err(to_store_error)
    }

    async fn fresh_copy(&self) -> event_store::Result<Arc<dyn Projection>> {
        let read_model = self.read_model.fresh_copy().await.map_err(to_store_error)?;
        Ok(Arc::new(Self { read_model }))
    }

    async fn switch_to_copy(&self) -> event_store::Result<()> {
        self.read_model.switch_to_copy().await.map_err(to_store_error)
    }
}

/// Storage failures stay retryable; everything else refuses the event.
fn to_store_error(e: Error) -> event_store::Error {
    match e {
        Error::Store(e) => e,
        Error::NoCopy => event_store::Error::RebuildUnsupported { name: NAME.to_owned() },
        e @ (Error::Postgres(_)
        | Error::ReadModelDb(_)
        | Error::Io { .. }
        | Error::GenerationFile(_)
        | Error::Task(_)) => event_store::Error::ProjectionStorage(Box::new(e)),
        e => event_store::Error::Refused(Box::new(e)),
    }
}

/// The statements of one accounts store: a read model and the runner that
/// keeps it in step with the store's global log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Statements {
    runner: ProjectionRunner,
    read_model: Arc<dyn StatementReadModel>,
}

impl Statements {
    pub fn new(store: Arc<dyn EventStore>, read_model: Arc<dyn StatementReadModel>) -> Self {
        let projection = Arc::new(StatementProjection { read_model: Arc::clone(&read_model) });
        Self { runner: ProjectionRunner::new(store, projection), read_model }
    }

    /// Events per read-model transaction (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.runner = self.runner.with_batch_size(batch_size);
        self
    }

    /// The runner: status, park, resume, follow.
    pub fn runner(&self) -> &ProjectionRunner {
        &self.runner
    }

    pub fn read_model(&self) -> &Arc<dyn StatementReadModel> {
        &self.read_model
    }

    /// Applies everything up to the store's head as it was when called;
    /// returns the next position to apply.
    pub async fn catch_up(&self) -> Result<u64> {
        Ok(self.runner.catch_up().await?)
    }

    /// Catches up, then follows the log until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        Ok(self.runner.run(shutdown).await?)
    }

    /// The account's statement after catching the read model up to the
    /// store's head, so a caller sees its own writes; an account the log
    /// has no event of is [`Error::NotFound`].
    pub async fn statement(&self, account_id: &str, page: LinePage) -> Result<Statement> {
        validate_account_id(account_id)?;
        self.catch_up().await?;
        self.read_model.statement(account_id, page).await?.ok_or_else(|| Error::NotFound(account_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use domain_core::Money;
    use event_store::{EmbeddedEventStore, InMemoryEventStore};

    use super::*;
    use crate::statement::contract::TempDir;
    use crate::{AccountCommand, Accounts};

    fn cny(s: &str) -> Money {
        Money::parse(s, Currency::CNY).expect("amount")
    }

    /// The seed's account_001 through the real service, then its statement.
    async fn seed_story(accounts: &Accounts) {
        accounts.open("account_001", "张三", cny("1000")).await.expect("open");
        let deposit = AccountCommand::Deposit { amount: cny("500"), description: "工资".into() };
        accounts.execute("account_001", deposit, None).await.expect("deposit");
        let withdraw = AccountCommand::Withdraw { amount: cny("200"), description: "ATM".into() };
        accounts.execute("account_001", withdraw, None).await.expect("withdraw");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_statement_sees_the_callers_own_writes_on_the_embedded_store() {
        let dir = TempDir::new("accounts-statement-service");
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(dir.0.join("log")).expect("store"));
        let accounts = Accounts::new(Arc::clone(&store));
        let statements =
            Statements::new(Arc::clone(&store), Arc::new(RedbStatements::open(dir.0.join("read")).expect("open")));
        seed_story(&accounts).await;
        let statement = statements.statement("account_001", LinePage::first()).await.expect("statement");
        let balances: Vec<String> = statement.lines.iter().map(|l| l.balance.to_string()).collect();
        assert_eq!(balances, ["1000.00", "1500.00", "1300.00"]);
        // The statement's balance is the aggregate's, as loaded from the store.
        let root = accounts.get_by_id("account_001").await.expect("load");
        assert_eq!(statement.header.balance, root.state().balance);
        assert_eq!(statement.header.version, root.version());
        let err = statements.statement("account_404", LinePage::first()).await.expect_err("unknown");
        assert!(matches!(&err, Error::NotFound(id) if id == "account_404"), "{err}");
        let err = statements.statement("bad id", LinePage::first()).await.expect_err("invalid");
        assert!(matches!(err, Error::Account(crate::AccountError::InvalidAccountId(_))), "{err}");
        assert!(matches!(LinePage::new(0, 10), Err(Error::InvalidPage { .. })));
        assert!(matches!(LinePage::new(1, MAX_LINES + 1), Err(Error::InvalidPage { .. })));
    }

    #[tokio::test]
    async fn an_event_the_statement_cannot_follow_parks_the_projection() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let accounts = Accounts::new(Arc::clone(&store));
        seed_story(&accounts).await;
        // A deposit whose old balance is not the account's: a bug upstream.
        let wrong = crate::AccountEvent::MoneyDeposited {
            amount: cny("1"),
            description: "?".into(),
            old_balance: "5.00".parse().expect("decimal"),
            new_balance: "6.00".parse().expect("decimal"),
        };
        let envelope = domain_core::Envelope::new("account_001", 4, &wrong).expect("envelope");
        let stream = event_store::StreamId::new("Account-account_001").expect("stream");
        store.append(&stream, event_store::ExpectedVersion::Exact(3), &[envelope]).await.expect("append");
        let statements = Statements::new(Arc::clone(&store), Arc::new(MemoryStatements::new())).with_batch_size(2);
        let err = statements.catch_up().await.expect_err("parks");
        assert!(
            matches!(&err, Error::Store(event_store::Error::ProjectionParked { name, position: 4, .. }) if name == NAME),
            "{err}"
        );
        let status = statements.runner().status().await.expect("status");
        let parked = status.parked.expect("parked");
        assert_eq!((parked.position, parked.event_type.as_str()), (4, "accounts.MoneyDeposited.v1"));
        assert!(parked.error.contains("old balance 5.00"), "{}", parked.error);
        assert_eq!((status.position, status.lag_events), (4, 1), "the three events before it are applied");
        let page = statements.read_model().statement("account_001", LinePage::first()).await.expect("query");
        assert_eq!(page.expect("known").header.balance.to_string(), "1300.00");
    }
}
