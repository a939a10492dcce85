//! [`Accounts`]: the seed's `EventSourcedAccountRepository` on a real event
//! store: snapshot every 100 versions, load = snapshot + the events after
//! it, commands appended at the loaded version (a stale writer is retried
//! on the fresh state, never let through).

use std::sync::Arc;

use domain_core::{AggregateRoot, Envelope, Money};
use event_store::{Coalescer, EventStore, RecordedEvent, Repository, SnapshotPolicy};

use crate::account::validate_account_id;
use crate::{Account, AccountCommand, AccountError, AccountEvent, AccountStatus, Error, Result};

/// Versions between snapshots, as in the seed's repository.
pub const SNAPSHOT_EVERY: u64 = 100;
/// Shape version of the snapshot state; bump when [`Account`] changes shape.
pub const SNAPSHOT_SCHEMA: u32 = 1;
/// Times a command is retried on fresh state after a version conflict.
const CONFLICT_RETRIES: u32 = 50;
/// Accounts kept in memory between commands (each still reads the events
/// after its cached version, so other writers are never missed).
const CACHED_ACCOUNTS: usize = 100_000;
/// Events read per page of a history.
const PAGE: usize = 1024;

/// Every account of one store.
///
/// Commands for one account that arrive at once (the merchant's account,
/// credited by every payment) run as one batch with one append
/// ([`Coalescer`]), each decided on the state the ones before it left.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn EventStore>,
    repo: Arc<Repository<Account>>,
    coalescer: Arc<Coalescer<Account>>,
}

impl Accounts {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        let repo = Arc::new(
            Repository::new(Arc::clone(&store))
                .with_snapshots(SnapshotPolicy::Every(SNAPSHOT_EVERY), SNAPSHOT_SCHEMA)
                .with_cache(CACHED_ACCOUNTS),
        );
        let coalescer = Arc::new(Coalescer::new(Arc::clone(&repo), CONFLICT_RETRIES));
        Self { store, repo, coalescer }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Runs a command on account `id`; returns the events it produced (none
    /// when the command was an idempotent repeat).
    pub async fn execute(
        &self,
        id: &str,
        command: AccountCommand,
        cause: Option<&Envelope>,
    ) -> Result<Vec<AccountEvent>> {
        validate_account_id(id)?;
        let decision = self.coalescer.execute(id, command, cause.cloned()).await?;
        decision.map_err(Error::Account)
    }

    /// The account as its events say (snapshot + tail); an account that
    /// was never opened is [`Error::NotFound`].
    pub async fn get_by_id(&self, id: &str) -> Result<AggregateRoot<Account>> {
        let root = self.load(id).await?;
        if root.state().status == AccountStatus::NotOpened {
            return Err(Error::NotFound(id.to_owned()));
        }
        Ok(root)
    }

    /// Like [`Accounts::get_by_id`], but an unopened account is returned as is.
    pub async fn load(&self, id: &str) -> Result<AggregateRoot<Account>> {
        validate_account_id(id)?;
        Ok(self.repo.load(id).await?)
    }

    /// Every stored event of the account, oldest first (the seed's
    /// `get_events`).
    pub async fn history(&self, id: &str) -> Result<Vec<RecordedEvent>> {
        validate_account_id(id)?;
        let stream = Repository::<Account>::stream_of(id)?;
        Ok(event_store::read_whole_stream(self.store.as_ref(), &stream).await?)
    }

    pub async fn open(&self, id: &str, account_holder: &str, initial_balance: Money) -> Result<AggregateRoot<Account>> {
        let command = AccountCommand::Open { account_holder: account_holder.to_owned(), initial_balance };
        self.execute(id, command, None).await?;
        self.load(id).await
    }

    /// Starts a transfer: debits `from` now; the saga credits `to` (or pays
    /// `from` back) when it sees the debit.
    pub async fn transfer(
        &self,
        from: &str,
        to: &str,
        amount: Money,
        description: &str,
    ) -> Result<(AggregateRoot<Account>, String)> {
        if from == to {
            return Err(Error::Account(AccountError::SelfTransfer));
        }
        let transfer_id = uuid::Uuid::now_v7().to_string();
        let command = AccountCommand::Transfer {
            transfer_id: transfer_id.clone(),
            target_account_id: to.to_owned(),
            amount,
            description: description.to_owned(),
        };
        self.execute(from, command, None).await?;
        Ok((self.load(from).await?, transfer_id))
    }

    /// The ids of every account that has a stream in this store.
    pub async fn ids(&self) -> Result<Vec<String>> {
        let mut ids = std::collections::BTreeSet::new();
        let mut from = 1;
        let prefix = format!("{}-", <Account as domain_core::Aggregate>::TYPE);
        loop {
            let page = self.store.read_all(from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            for e in &page {
                if let Some(id) = e.stream.as_str().strip_prefix(&prefix) {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok(ids.into_iter().collect())
    }
}
