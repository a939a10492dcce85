//! The seed's `OrderRepository` port and its event-sourced implementation.
//!
//! The write side loads and saves whole aggregates from the orders event
//! store; `find_by_customer` is the read side (CQRS): it answers from the
//! projected [`ReadModel`] with [`OrderSummary`] rows, not aggregates.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use domain_core::{AggregateRoot, Envelope};
use event_store::{EmbeddedEventStore, EventStore, Repository, SnapshotPolicy};

use crate::{DailyOrders, Order, OrderCommand, OrderSummary, Projector, ReadModel, RedbGenerations, Result};

/// Versions between snapshots of an order, as the seed's account repository.
pub const SNAPSHOT_EVERY: u64 = 100;
/// Shape version of the snapshotted [`Order`] state.
const SNAPSHOT_SCHEMA: u32 = 1;

/// The event-store repository of orders with the crate's snapshot policy.
pub(crate) fn event_repository(store: Arc<dyn EventStore>) -> Repository<Order> {
    Repository::new(store)
        .with_snapshots(SnapshotPolicy::Every(SNAPSHOT_EVERY), SNAPSHOT_SCHEMA)
        .with_cache(CACHED_ORDERS)
}

/// Orders kept in memory between commands (a load still reads the events
/// after the cached version, so another writer is never missed).
const CACHED_ORDERS: usize = 50_000;

/// Where orders live (seed: `OrderRepository`).
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Stores the order's uncommitted events at exactly the version it was
    /// loaded at; a writer whose copy is stale gets a conflict
    /// ([`crate::Error::is_conflict`]) and nothing is written. On success the
    /// events are marked committed.
    async fn save(&self, order: &mut AggregateRoot<Order>) -> Result<()>;

    /// The order rebuilt from its events, `None` if it was never created.
    async fn get_by_id(&self, order_id: &str) -> Result<Option<AggregateRoot<Order>>>;

    /// The customer's orders as read-model rows, by order id.
    async fn find_by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>>;
}

/// Orders in an event store, with a projected read model for queries.
#[derive(Debug, Clone)]
pub struct EventSourcedOrders {
    store: Arc<dyn EventStore>,
    repository: Arc<Repository<Order>>,
    projector: Projector,
}

impl EventSourcedOrders {
    pub fn new(store: Arc<dyn EventStore>, read_model: Arc<dyn ReadModel>) -> Self {
        let repository = Arc::new(event_repository(Arc::clone(&store)));
        let projector = Projector::new(Arc::clone(&store), read_model);
        Self { store, repository, projector }
    }

    /// The embedded deployment: the event log and the read model
    /// (`orders.redb`, or the generation a rebuild switched to) side by
    /// side in `dir` (the platform's `--data DIR/orders`).
    pub fn open_embedded(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(dir)?);
        let read_model: Arc<dyn ReadModel> = Arc::new(RedbGenerations::open_serving(dir)?);
        Ok(Self::new(store, read_model))
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// Every stored event of the order, oldest first; empty if it never was.
    pub async fn history(&self, order_id: &str) -> Result<Vec<event_store::RecordedEvent>> {
        let stream = event_store::Repository::<Order>::stream_of(order_id)?;
        Ok(event_store::read_whole_stream(self.store.as_ref(), &stream).await?)
    }

    /// Orders per day from `from` to `to` (both included, UTC): created,
    /// paid and cancelled, and the paid amount per currency, answered from
    /// the read model after catching it up.
    pub async fn daily_orders(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        if from > to {
            return Err(crate::Error::InvalidDateRange { from, to });
        }
        self.projector.catch_up().await?;
        self.projector.read_model().daily(from, to).await
    }

    /// Loads the order, runs `command`, appends what it decided, retrying
    /// the whole cycle on a version conflict up to `retries` times. `cause`
    /// puts the new events in the cause's correlation chain.
    pub async fn execute(
        &self,
        order_id: &str,
        command: OrderCommand,
        cause: Option<&Envelope>,
        retries: u32,
    ) -> Result<AggregateRoot<Order>> {
        let (root, _) = self.repository.execute(order_id, || command.clone(), cause, retries).await??;
        Ok(root)
    }
}

#[async_trait]
impl OrderRepository for EventSourcedOrders {
    async fn save(&self, order: &mut AggregateRoot<Order>) -> Result<()> {
        self.repository.save(order, None).await?;
        Ok(())
    }

    async fn get_by_id(&self, order_id: &str) -> Result<Option<AggregateRoot<Order>>> {
        let root = self.repository.load(order_id).await?;
        Ok(root.state().exists().then_some(root))
    }

    /// Catches the projection up to the store's head first, so a caller
    /// sees its own writes.
    async fn find_by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        self.projector.catch_up().await?;
        self.projector.read_model().by_customer(customer_id).await
    }
}

#[cfg(test)]
mod tests;
