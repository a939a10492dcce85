//! The projection that keeps a [`ReadModel`] in step with the orders event
//! store's global log: catch up from the read model's own checkpoint in
//! batches, then follow live.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_store::{EventStore, LogSubscription};

use crate::{ReadModel, Result};

/// How long [`Projector::run`] waits for new events before it checks again.
const LIVE_WAIT: Duration = Duration::from_secs(1);

/// Feeds the global log into a read model. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Projector {
    store: Arc<dyn EventStore>,
    read_model: Arc<dyn ReadModel>,
    batch_size: usize,
}

impl Projector {
    /// Events applied per read-model transaction by default.
    pub const DEFAULT_BATCH: usize = 512;

    pub fn new(store: Arc<dyn EventStore>, read_model: Arc<dyn ReadModel>) -> Self {
        Self { store, read_model, batch_size: Self::DEFAULT_BATCH }
    }

    /// Events per read-model transaction (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn read_model(&self) -> &Arc<dyn ReadModel> {
        &self.read_model
    }

    /// Applies everything up to the store's head as it was when called and
    /// returns the read model's checkpoint (the next position to apply).
    /// Safe to run concurrently with itself: a batch another run already
    /// applied is skipped by the checkpoint.
    pub async fn catch_up(&self) -> Result<u64> {
        let head = self.store.head_position().await?;
        let mut next = self.read_model.checkpoint().await?;
        if next > head {
            return Ok(next);
        }
        let mut log = LogSubscription::from_position(Arc::clone(&self.store), next);
        while next <= head {
            let batch = log.next_batch(self.batch_size).await?;
            let Some(last) = batch.last() else { break };
            let after = last.position + 1;
            self.read_model.apply(&batch, after).await?;
            next = after;
        }
        tracing::debug!(next, head, "orders projection caught up");
        Ok(next)
    }

    /// Catches up, then follows the log live until `shutdown` completes.
    /// Returns the first error (the caller decides whether to restart: the
    /// checkpoint makes a restart exact).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let next = self.catch_up().await?;
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                head = self.store.wait_for(next, LIVE_WAIT) => { head?; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
