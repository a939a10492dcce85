//! The handler on a real consumer over the in-process bus.

use std::time::Duration;

use domain_core::bus::{
    Consumer, ConsumerStats, EventBus, InProcessBus, RetryPolicy, TopicSpec, contract, dead_letter, topics,
};
use domain_core::{Currency, EventType};
use event_store::InMemoryEventStore;
use serde_json::json;

use super::*;
use crate::{CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderRepository, OrderStatus};

fn cny(amount: &str) -> Money {
    Money::new(amount.parse().expect("decimal"), Currency::CNY)
}

struct World {
    bus: InProcessBus,
    orders: EventSourcedOrders,
    consumer: Consumer,
    handler: PaymentOutcomeHandler,
    seen: u64,
}

async fn world() -> World {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let orders = EventSourcedOrders::new(Arc::clone(&store), Arc::new(MemoryReadModel::new()));
    let bus = InProcessBus::new();
    bus.create_topics(&[TopicSpec::new(topics::ACCOUNTS, 3)]).await.expect("topics");
    let consumer = consumer(&bus, "orders-payments").await;
    World { bus, orders, consumer, handler: PaymentOutcomeHandler::new(store), seen: 0 }
}

async fn consumer(bus: &InProcessBus, group: &str) -> Consumer {
    let subscription = bus.subscribe(group, &[topics::ACCOUNTS]).await.expect("subscribe");
    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };
    Consumer::new(subscription, policy)
}

/// An accounts event as the accounts context would publish it.
fn outcome(event: &str, key: &str, data: serde_json::Value) -> Envelope {
    let ty: EventType = format!("accounts.{event}").parse().expect("type");
    Envelope::raw("accounts", ty, key, 1, data)
}

fn captured(order_id: &str, amount: &str) -> Envelope {
    outcome(
        "PaymentCaptured.v1",
        order_id,
        json!({"order_id": order_id, "amount": {"amount": amount, "currency": "CNY"},
            "payment_account_id": "cust_123", "merchant_account_id": "merchant"}),
    )
}

impl World {
    /// The seed's order, confirmed (total 399.97), as `order_id`.
    async fn confirmed_order(&self, order_id: &str) {
        let customer = CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000").expect("customer");
        for command in [
            OrderCommand::Create { customer, currency: Currency::CNY },
            OrderCommand::AddItem { product_id: "product_001".into(), quantity: 2, unit_price: cny("99.99") },
            OrderCommand::AddItem { product_id: "product_002".into(), quantity: 1, unit_price: cny("199.99") },
            OrderCommand::Confirm { payment_account_id: None },
        ] {
            self.orders.execute(order_id, command, None, 0).await.expect("setup");
        }
    }

    async fn order(&self, order_id: &str) -> AggregateRootOfOrder {
        self.orders.get_by_id(order_id).await.expect("load").expect("exists")
    }

    /// Publishes and processes until every published record was handled or
    /// dead-lettered.
    async fn deliver(&mut self, events: &[Envelope]) -> ConsumerStats {
        self.bus.publish(topics::ACCOUNTS, events).await.expect("publish");
        self.seen += events.len() as u64;
        let target = self.seen;
        let stats = self
            .consumer
            .run(&mut self.handler, Duration::from_secs(10), |s| s.handled + s.dead_lettered >= target)
            .await
            .expect("consume");
        assert_eq!(stats.handled + stats.dead_lettered, target, "every record processed");
        stats
    }

    async fn dead_letters(&self, n: usize) -> Vec<String> {
        let dlq = topics::dlq(topics::ACCOUNTS);
        let mut sub = self.bus.subscribe("dlq-reader", &[&dlq]).await.expect("subscribe");
        let got = contract::collect(sub.as_mut(), n).await;
        got.iter()
            .map(|d| {
                String::from_utf8_lossy(d.record.header(dead_letter::ERROR_HEADER).unwrap_or_default()).into_owned()
            })
            .collect()
    }
}

type AggregateRootOfOrder = domain_core::AggregateRoot<Order>;

#[tokio::test]
async fn a_captured_payment_marks_the_order_paid_in_the_payments_correlation() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    let capture = captured("order_001", "399.97");
    let stats = w.deliver(std::slice::from_ref(&capture)).await;
    assert_eq!((stats.handled, stats.dead_lettered), (1, 0));
    let order = w.order("order_001").await;
    assert_eq!(order.state().status(), OrderStatus::Paid);
    assert_eq!(order.state().paid_amount(), Some(cny("399.97")));
    let stream = Repository::<Order>::stream_of("order_001").expect("stream");
    let stored = w.orders.store().read_stream(&stream, 5, 10).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].envelope.event_type.to_string(), "orders.OrderPaid.v1");
    assert_eq!(stored[0].envelope.correlation_id, capture.correlation_id);
    assert_eq!(stored[0].envelope.causation_id, Some(capture.id));
}

#[tokio::test]
async fn redelivered_outcomes_change_nothing() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    w.confirmed_order("order_002").await;
    let capture = captured("order_001", "399.97");
    let reject = outcome(
        "PaymentRejected.v1",
        "order_002",
        json!({"order_id": "order_002",
        "amount": {"amount": "399.97", "currency": "CNY"}, "reason": "insufficient_funds"}),
    );
    w.deliver(&[capture.clone(), reject.clone()]).await;
    assert_eq!(w.handler.duplicates(), 0, "first deliveries are not repeats");
    let head = w.orders.store().head_position().await.expect("head");
    let versions = (w.order("order_001").await.version(), w.order("order_002").await.version());

    let stats = w.deliver(&[capture.clone(), reject.clone(), capture, reject]).await;
    assert_eq!((stats.handled, stats.dead_lettered), (6, 0), "repeats are handled, not dead-lettered");
    assert_eq!(w.handler.duplicates(), 4, "the four repeats are counted for /metrics");
    let mut replay = consumer(&w.bus, "orders-payments-replay").await;
    let stats = replay.run(&mut w.handler, Duration::from_secs(10), |s| s.handled >= 6).await.expect("replay");
    assert_eq!((stats.handled, stats.dead_lettered), (6, 0), "a fresh group replays the topic from offset 0");
    assert_eq!(w.handler.duplicates(), 10, "every replayed outcome was a repeat");

    assert_eq!(w.orders.store().head_position().await.expect("head"), head, "nothing was appended");
    assert_eq!((w.order("order_001").await.version(), w.order("order_002").await.version()), versions);
    assert_eq!(w.order("order_001").await.state().status(), OrderStatus::Paid);
    assert_eq!(w.order("order_002").await.state().status(), OrderStatus::Cancelled);
}

#[tokio::test]
async fn a_rejected_payment_cancels_the_order_with_its_reason() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    let reject = outcome(
        "PaymentRejected.v1",
        "order_001",
        json!({"order_id": "order_001",
        "amount": {"amount": "399.97", "currency": "CNY"}, "reason": "insufficient_funds"}),
    );
    w.deliver(&[reject]).await;
    let order = w.order("order_001").await;
    assert_eq!(order.state().status(), OrderStatus::Cancelled);
    assert_eq!(order.state().cancellation_reason(), Some("insufficient_funds"));
    let summaries = w.orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!(summaries.iter().map(|s| s.status).collect::<Vec<_>>(), [OrderStatus::Cancelled]);
}

#[tokio::test]
async fn a_refund_after_cancellation_is_recorded_once() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    w.deliver(&[captured("order_001", "399.97")]).await;
    w.orders
        .execute("order_001", OrderCommand::Cancel { reason: "changed my mind".into() }, None, 0)
        .await
        .expect("cancel");
    let refund = outcome(
        "RefundIssued.v1",
        "order_001",
        json!({"order_id": "order_001",
        "amount": {"amount": "399.97", "currency": "CNY"}}),
    );
    w.deliver(&[refund.clone(), refund, captured("order_001", "399.97")]).await;
    let order = w.order("order_001").await;
    assert_eq!(order.state().status(), OrderStatus::Cancelled);
    assert_eq!(order.state().refunded_amount(), Some(cny("399.97")));
    assert_eq!(order.version(), 7, "created, 2 items, confirmed, paid, cancelled, refunded");
}

#[tokio::test]
async fn later_versions_and_unknown_fields_are_read_alike_and_other_events_ignored() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    let v3 = outcome(
        "PaymentCaptured.v3",
        "order_001",
        json!({"order_id": "order_001",
        "amount": {"amount": "399.97", "currency": "CNY", "note": "extra"}, "captured_at": "2026-01-01T00:00:00Z"}),
    );
    let deposit = outcome("MoneyDeposited.v1", "cust_123", json!({"amount": "500.00"}));
    let mesh: EventType = "mesh.ProductRegistered.v1".parse().expect("type");
    let foreign = Envelope::raw("mesh", mesh, "order_001", 1, json!({"order_id": "order_001"}));
    let stats = w.deliver(&[deposit, foreign, v3]).await;
    assert_eq!((stats.handled, stats.dead_lettered), (3, 0));
    assert_eq!(w.order("order_001").await.state().status(), OrderStatus::Paid);
}

#[tokio::test]
async fn unreadable_and_impossible_outcomes_are_dead_lettered_and_the_partition_moves_on() {
    let mut w = world().await;
    w.confirmed_order("order_001").await;
    w.confirmed_order("order_002").await;
    let poison = [
        outcome("PaymentCaptured.v1", "order_001", json!({"amount": {"amount": "399.97", "currency": "CNY"}})),
        outcome(
            "PaymentCaptured.v1",
            "order_001",
            json!({"order_id": "order_001", "amount": {"amount": "lots", "currency": "CNY"}}),
        ),
        outcome("PaymentCaptured.v1", "order_001", json!({"order_id": "order_001", "amount": 399.97})),
        outcome(
            "PaymentCaptured.v1",
            "order_001",
            json!({"order_id": " ", "amount": {"amount": "1", "currency": "CNY"}}),
        ),
        captured("order_404", "399.97"),
        captured("order_001", "300.00"),
    ];
    let stats = w.deliver(&poison).await;
    assert_eq!((stats.handled, stats.dead_lettered), (0, 6));
    // Same key, same partition: the good record after the poison is handled.
    let stats = w.deliver(&[captured("order_002", "399.97"), captured("order_001", "399.97")]).await;
    assert_eq!((stats.handled, stats.dead_lettered), (2, 6));
    assert_eq!(w.order("order_001").await.state().status(), OrderStatus::Paid);
    assert_eq!(w.order("order_002").await.state().status(), OrderStatus::Paid);
    assert_eq!(w.bus.len(&topics::dlq(topics::ACCOUNTS)), 6);
    let errors = w.dead_letters(6).await;
    assert_eq!(errors.len(), 6);
    assert!(errors.iter().any(|e| e.contains("missing field `order_id`")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("order `order_404` does not exist")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("does not match the order total")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("empty order_id")), "{errors:?}");
}

#[test]
fn store_failures_are_retried_unless_they_are_about_the_input() {
    let retried = store_failure("o", event_store::Error::Closed);
    assert!(matches!(retried, domain_core::Error::Transient(_)) && retried.is_retryable());
    let conflict = event_store::Error::TooManyConflicts { stream: "Order-o".into(), attempts: 21 };
    assert!(store_failure("o", conflict).is_retryable());
    let bad = event_store::Error::InvalidStream { name: "Order-a b".into(), reason: "contains whitespace" };
    assert!(matches!(store_failure("a b", bad), domain_core::Error::Rejected(_)));
}
