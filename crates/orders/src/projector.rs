//! The projection that keeps a [`ReadModel`] in step with the orders event
//! store's global log: the read model is an [`event_store::Projection`]
//! named [`NAME`], run by an [`event_store::ProjectionRunner`] (catch up
//! from the read model's own checkpoint in batches, follow live, park on an
//! event the read model cannot follow).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use event_store::{EventStore, Projection, ProjectionRunner, RecordedText};

use crate::{Error, ReadModel, Result};

/// The projection name of the orders-by-customer read model.
pub const NAME: &str = "orders.by_customer";

/// A [`ReadModel`] seen as an [`event_store::Projection`]: its storage
/// failures are transient for the runner, an event it cannot follow
/// (undecodable, inconsistent, out of range) is refused and parks it.
#[derive(Debug, Clone)]
pub struct ReadModelProjection {
    read_model: Arc<dyn ReadModel>,
}

impl ReadModelProjection {
    pub fn new(read_model: Arc<dyn ReadModel>) -> Self {
        Self { read_model }
    }
}

#[async_trait]
impl Projection for ReadModelProjection {
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
        let copy = self.read_model.fresh_copy().await.map_err(to_store_error)?;
        Ok(Arc::new(Self::new(copy)))
    }

    async fn switch_to_copy(&self) -> event_store::Result<()> {
        self.read_model.switch_to_copy().await.map_err(to_store_error)
    }
}

/// Storage failures stay retryable ([`event_store::Error::is_transient`]);
/// everything else is a refusal of the event.
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

/// Feeds the global log into a read model. Cheap to clone; clones share
/// the runner's park and figures.
#[derive(Debug, Clone)]
pub struct Projector {
    runner: ProjectionRunner,
    read_model: Arc<dyn ReadModel>,
}

impl Projector {
    /// Events applied per read-model transaction by default.
    pub const DEFAULT_BATCH: usize = ProjectionRunner::DEFAULT_BATCH;

    pub fn new(store: Arc<dyn EventStore>, read_model: Arc<dyn ReadModel>) -> Self {
        let projection = Arc::new(ReadModelProjection::new(Arc::clone(&read_model)));
        Self { runner: ProjectionRunner::new(store, projection), read_model }
    }

    /// Events per read-model transaction (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.runner = self.runner.with_batch_size(batch_size);
        self
    }

    /// Events per read-model transaction while rebuilding (at least 1).
    pub fn with_rebuild_batch_size(mut self, batch_size: usize) -> Self {
        self.runner = self.runner.with_rebuild_batch_size(batch_size);
        self
    }

    /// Rebuilds the read model from position 1 into a fresh copy while
    /// this one keeps answering, then switches over (see
    /// [`ProjectionRunner::rebuild`]); the read model must keep
    /// generations ([`crate::ServingReadModel`]).
    pub async fn rebuild(&self) -> Result<event_store::Rebuilt> {
        Ok(self.runner.rebuild().await?)
    }

    pub fn read_model(&self) -> &Arc<dyn ReadModel> {
        &self.read_model
    }

    /// The runner: status, park and resume.
    pub fn runner(&self) -> &ProjectionRunner {
        &self.runner
    }

    /// Applies everything up to the store's head as it was when called and
    /// returns the read model's checkpoint (the next position to apply).
    /// See [`ProjectionRunner::catch_up`].
    pub async fn catch_up(&self) -> Result<u64> {
        Ok(self.runner.catch_up().await?)
    }

    /// Catches up, then follows the log live until `shutdown` completes.
    /// Returns the first error (the caller decides whether to restart: the
    /// checkpoint makes a restart exact).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        Ok(self.runner.run(shutdown).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain_core::Currency;
    use event_store::InMemoryEventStore;

    use super::*;
    use crate::read_model::contract::cny;
    use crate::{CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand, OrderStatus};

    async fn orders_with_three_stories(store: &Arc<dyn EventStore>) {
        let orders = EventSourcedOrders::new(Arc::clone(store), Arc::new(MemoryReadModel::new()));
        for n in 1..=3 {
            let id = format!("order_00{n}");
            let customer = CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000").expect("ok");
            orders
                .execute(&id, OrderCommand::Create { customer, currency: Currency::CNY }, None, 0)
                .await
                .expect("create");
            for _ in 0..n {
                let add = OrderCommand::AddItem { product_id: "p".into(), quantity: 1, unit_price: cny("99.99") };
                orders.execute(&id, add, None, 0).await.expect("add");
            }
        }
    }

    #[tokio::test]
    async fn catches_up_in_batches_to_the_head() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        orders_with_three_stories(&store).await;
        let read_model: Arc<dyn ReadModel> = Arc::new(MemoryReadModel::new());
        let projector = Projector::new(Arc::clone(&store), Arc::clone(&read_model)).with_batch_size(2);
        assert_eq!(projector.catch_up().await.expect("catch up"), 10, "9 events, next is 10");
        assert_eq!(projector.catch_up().await.expect("again"), 10);
        let rows = read_model.by_customer("cust_123").await.expect("query");
        assert_eq!(rows.iter().map(|r| r.item_count).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(rows[2].total, cny("299.97"));
    }

    #[tokio::test]
    async fn an_event_the_read_model_cannot_follow_parks_the_projection() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        orders_with_three_stories(&store).await;
        let ty: domain_core::EventType = "orders.OrderItemAdded.v1".parse().expect("type");
        let bad = domain_core::Envelope::raw("orders", ty, "order_bad", 1, serde_json::json!({ "quantity": "x" }));
        let stream = event_store::StreamId::new("Order-order_bad").expect("stream");
        store.append(&stream, event_store::ExpectedVersion::Any, &[bad]).await.expect("append");
        let read_model: Arc<dyn ReadModel> = Arc::new(MemoryReadModel::new());
        let projector = Projector::new(Arc::clone(&store), Arc::clone(&read_model)).with_batch_size(4);
        let err = projector.catch_up().await.expect_err("parks");
        assert!(
            matches!(&err, Error::Store(event_store::Error::ProjectionParked { name, position: 10, .. }) if name == NAME),
            "{err}"
        );
        assert_eq!(read_model.checkpoint().await.expect("checkpoint"), 10, "the nine orders events before it");
        let status = projector.runner().status().await.expect("status");
        let parked = status.parked.expect("parked");
        assert_eq!((parked.position, parked.event_type.as_str()), (10, "orders.OrderItemAdded.v1"));
        assert!(parked.error.contains("log position 10"), "{}", parked.error);
        assert_eq!(status.lag_events, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_catch_ups_apply_each_event_once() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        orders_with_three_stories(&store).await;
        let read_model: Arc<dyn ReadModel> = Arc::new(MemoryReadModel::new());
        let racers: Vec<_> = (1..=4)
            .map(|n| {
                let p = Projector::new(Arc::clone(&store), Arc::clone(&read_model)).with_batch_size(n);
                tokio::spawn(async move { p.catch_up().await })
            })
            .collect();
        for r in racers {
            r.await.expect("join").expect("catch up");
        }
        let rows = read_model.by_customer("cust_123").await.expect("query");
        assert_eq!(rows.iter().map(|r| r.item_count).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_under_load_switches_over_without_a_reader_noticing() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let serving = crate::ServingReadModel::open(Arc::new(crate::MemoryGenerations::new())).await.expect("open");
        crate::read_model::contract::a_rebuild_under_load_switches_over_unseen(store, Arc::new(serving)).await;
    }

    #[tokio::test]
    async fn a_read_model_without_generations_cannot_be_rebuilt() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let projector = Projector::new(store, Arc::new(MemoryReadModel::new()));
        let err = projector.rebuild().await.expect_err("no copies");
        assert!(matches!(&err, Error::Store(event_store::Error::RebuildUnsupported { name }) if name == NAME), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_follows_the_log_live_until_shut_down() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let read_model: Arc<dyn ReadModel> = Arc::new(MemoryReadModel::new());
        let projector = Projector::new(Arc::clone(&store), Arc::clone(&read_model));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move { projector.run(async { stopped.await.unwrap_or(()) }).await });
        orders_with_three_stories(&store).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while read_model.checkpoint().await.expect("checkpoint") < 10 {
            assert!(tokio::time::Instant::now() < deadline, "the projector did not follow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let orders = EventSourcedOrders::new(Arc::clone(&store), Arc::new(MemoryReadModel::new()));
        orders.execute("order_001", OrderCommand::Cancel { reason: "x".into() }, None, 0).await.expect("cancel");
        while read_model.get("order_001").await.expect("get").map(|r| r.status) != Some(OrderStatus::Cancelled) {
            assert!(tokio::time::Instant::now() < deadline, "the projector did not follow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).expect("still running");
        running.await.expect("join").expect("clean shutdown");
    }
}
