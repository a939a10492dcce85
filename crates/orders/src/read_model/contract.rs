//! The suite every [`ReadModel`] adapter runs, through
//! `read_model_contract_tests!`.

use std::collections::HashMap;
use std::path::PathBuf;

use domain_core::{Currency, Envelope, Money};
use event_store::{RecordedEvent, StreamId};

use super::{OrderSummary, ReadModel};
use crate::{CustomerInfo, Error, OrderEvent, OrderStatus};

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        Self(std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn cny(amount: &str) -> Money {
    Money::new(amount.parse().expect("decimal"), Currency::CNY)
}

/// A global log written by hand: positions from 1, versions per order.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<RecordedEvent>,
    versions: HashMap<String, u64>,
}

impl Log {
    pub(crate) fn push(&mut self, order_id: &str, event: OrderEvent) -> &mut Self {
        let version = self.versions.entry(order_id.to_owned()).or_default();
        *version += 1;
        let envelope = Envelope::new(order_id, *version, &event).expect("envelope");
        let stream = StreamId::new(format!("Order-{order_id}")).expect("stream");
        self.push_raw(stream, envelope)
    }

    pub(crate) fn push_raw(&mut self, stream: StreamId, envelope: Envelope) -> &mut Self {
        let position = self.events.len() as u64 + 1;
        let version = envelope.aggregate_version;
        self.events.push(RecordedEvent { stream, version, position, recorded_at: envelope.time, envelope });
        self
    }

    /// `[from, to)` by position (1-based).
    pub(crate) fn range(&self, from: u64, to: u64) -> Vec<RecordedEvent> {
        self.events[(from - 1) as usize..(to - 1) as usize].to_vec()
    }

    pub(crate) fn next_position(&self) -> u64 {
        self.events.len() as u64 + 1
    }
}

pub(crate) fn created(customer_id: &str) -> OrderEvent {
    let customer = CustomerInfo::new(customer_id, "张三", "zhangsan@example.com", "13800138000").expect("customer");
    OrderEvent::OrderCreated { customer, currency: Currency::CNY }
}

pub(crate) fn item(product_id: &str, quantity: u32, price: &str) -> OrderEvent {
    OrderEvent::OrderItemAdded { product_id: product_id.into(), quantity, unit_price: cny(price) }
}

/// order_001 (the seed's, shipped), order_002 (rejected payment) for
/// cust_123, order_003 (pending) for cust_456. 11 events.
/// The child side of a kill -9 test: applies small batches (an order
/// created, then one item per batch) until it is killed, printing
/// `applied <next position>` after each, so the parent knows it is mid-run.
pub(crate) async fn apply_until_killed(model: &dyn ReadModel) {
    let mut log = Log::default();
    let mut next = model.checkpoint().await.expect("checkpoint");
    for n in 0u64.. {
        let order = format!("order_{}", n / 10);
        let event = if n % 10 == 0 { created("cust_crash") } else { item("p", 1, "1.00") };
        log.push(&order, event);
        if log.next_position() > next {
            model.apply(&log.range(next, log.next_position()), log.next_position()).await.expect("apply");
            next = log.next_position();
            println!("applied {next}");
        }
    }
}

/// The parent side: runs `test` of this test binary again as a child with
/// `env` set (it then calls [`apply_until_killed`]), and SIGKILLs it once it
/// reported `more` applied batches. Returns the last position it reported.
pub(crate) fn kill_mid_run(test: &str, env: (&str, &str), more: u64) -> u64 {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut seen, mut last) = (0, 0);
    // Ends at `more` reports, or when the child dies (its stdout closes).
    for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
        if let Some(n) = line.rsplit("applied ").next().and_then(|n| n.trim().parse().ok()) {
            last = n;
            seen += 1;
            if seen >= more {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    last
}

pub(crate) fn story() -> Log {
    let mut log = Log::default();
    log.push("order_001", created("cust_123"))
        .push("order_001", item("product_001", 2, "99.99"))
        .push("order_001", item("product_002", 1, "199.99"))
        .push("order_002", created("cust_123"))
        .push(
            "order_001",
            OrderEvent::OrderConfirmed {
                customer_id: "cust_123".into(),
                payment_account_id: "cust_123".into(),
                total_amount: cny("399.97"),
                item_count: 2,
            },
        )
        .push("order_003", created("cust_456"))
        .push("order_001", OrderEvent::OrderPaid { amount: cny("399.97") })
        .push("order_002", item("product_003", 1, "10"))
        .push("order_002", OrderEvent::OrderPaymentRejected { reason: "insufficient_funds".into() })
        .push("order_001", OrderEvent::OrderShipped { shipping_address: "北京市朝阳区xxx街道xxx号".into() })
        .push("order_003", item("product_001", 3, "99.99"));
    log
}

fn summary(rows: &[OrderSummary]) -> Vec<(String, OrderStatus, String, u32)> {
    rows.iter().map(|r| (r.order_id.clone(), r.status, r.total.amount.to_string(), r.item_count)).collect()
}

fn row(id: &str, status: OrderStatus, total: &str, items: u32) -> (String, OrderStatus, String, u32) {
    (id.to_owned(), status, total.to_owned(), items)
}

async fn assert_story_applied(rm: &dyn ReadModel, log: &Log) {
    assert_eq!(rm.checkpoint().await.expect("checkpoint"), log.next_position());
    assert_eq!(
        summary(&rm.by_customer("cust_123").await.expect("query")),
        vec![row("order_001", OrderStatus::Shipped, "399.97", 2), row("order_002", OrderStatus::Cancelled, "10.00", 1)]
    );
    assert_eq!(
        summary(&rm.by_customer("cust_456").await.expect("query")),
        vec![row("order_003", OrderStatus::Pending, "299.97", 1)]
    );
}

pub(crate) async fn rows_follow_the_story(rm: &dyn ReadModel) {
    let log = story();
    assert_eq!(rm.checkpoint().await.expect("checkpoint"), 1, "a fresh read model starts at position 1");
    rm.apply(&log.events, log.next_position()).await.expect("apply");
    assert_story_applied(rm, &log).await;
    assert!(rm.by_customer("nobody").await.expect("query").is_empty());
    assert_eq!(rm.get("missing").await.expect("get"), None);
    let seed = rm.get("order_001").await.expect("get").expect("row");
    assert_eq!(seed.customer_id, "cust_123");
    assert_eq!(seed.total, cny("399.97"));
    assert_eq!(seed.updated_at, log.events[9].envelope.time, "time of the last event applied");
}

pub(crate) async fn batches_one_by_one_equal_one_batch(rm: &dyn ReadModel) {
    let log = story();
    for e in &log.events {
        rm.apply(std::slice::from_ref(e), e.position + 1).await.expect("apply");
    }
    assert_story_applied(rm, &log).await;
}

pub(crate) async fn a_batch_applied_twice_counts_once(rm: &dyn ReadModel) {
    let log = story();
    rm.apply(&log.range(1, 6), 6).await.expect("apply");
    rm.apply(&log.range(1, 6), 6).await.expect("the repeat is accepted and skipped");
    let first = rm.get("order_001").await.expect("get").expect("row");
    assert_eq!((first.item_count, first.total), (2, cny("399.97")), "no double count");
    rm.apply(&log.range(3, 9), 9).await.expect("an overlapping batch applies only its new part");
    rm.apply(&log.range(2, 3), 3).await.expect("an old batch is skipped");
    rm.apply(&log.range(9, log.next_position()), log.next_position()).await.expect("apply");
    assert_story_applied(rm, &log).await;
    rm.apply(&[], 3).await.expect("an empty batch the checkpoint covers is a no-op");
}

pub(crate) async fn a_failing_batch_changes_nothing(rm: &dyn ReadModel) {
    let log = story();
    rm.apply(&log.range(1, 4), 4).await.expect("apply");
    let before = rm.get("order_001").await.expect("get");

    let mut broken = log.range(4, log.next_position());
    broken[3].envelope.event_type = "orders.OrderExploded.v1".parse().expect("type");
    let r = rm.apply(&broken, log.next_position()).await;
    assert!(matches!(r, Err(Error::Decode { position: 7, .. })), "{r:?}");

    let mut orphan = log.range(4, 6);
    orphan[1].stream = StreamId::new("Order-order_404").expect("stream");
    let r = rm.apply(&orphan, 6).await;
    assert!(matches!(&r, Err(Error::Inconsistent { position: 5, order_id, .. }) if order_id == "order_404"), "{r:?}");

    assert_eq!(rm.checkpoint().await.expect("checkpoint"), 4, "checkpoint unchanged");
    assert_eq!(rm.get("order_001").await.expect("get"), before, "rows unchanged");
    assert_eq!(rm.get("order_002").await.expect("get"), None, "the batch's first event was not kept either");
    assert!(rm.by_customer("cust_456").await.expect("query").is_empty());
    rm.apply(&log.range(4, log.next_position()), log.next_position()).await.expect("the good batch still applies");
    assert_story_applied(rm, &log).await;
}

pub(crate) async fn gaps_are_refused(rm: &dyn ReadModel) {
    let log = story();
    let gap = |r: crate::Result<()>, expected: u64, got: u64| match r {
        Err(Error::Gap { expected: e, got: g }) => assert_eq!((e, g), (expected, got)),
        other => panic!("expected a gap, got {other:?}"),
    };
    gap(rm.apply(&log.range(2, 5), 5).await, 1, 2);
    gap(rm.apply(&log.range(1, 3), 4).await, 3, 4);
    let mut holed = log.range(1, 4);
    holed.remove(1);
    gap(rm.apply(&holed, 4).await, 2, 3);
    gap(rm.apply(&[], 5).await, 1, 5);
    assert_eq!(rm.checkpoint().await.expect("checkpoint"), 1);
    assert_eq!(rm.get("order_001").await.expect("get"), None);
}

pub(crate) async fn foreign_events_move_only_the_checkpoint(rm: &dyn ReadModel) {
    let mut log = Log::default();
    let ty: domain_core::EventType = "accounts.MoneyDeposited.v1".parse().expect("type");
    let deposit = Envelope::raw("accounts", ty, "cust_123", 1, serde_json::json!({"amount": "1.00"}));
    log.push_raw(StreamId::new("Account-cust_123").expect("stream"), deposit);
    let audit = Envelope::new("x", 1, &created("cust_123")).expect("envelope");
    log.push_raw(StreamId::new("Audit-x").expect("stream"), audit);
    log.push("order_001", created("cust_123"));
    rm.apply(&log.events, 4).await.expect("apply");
    assert_eq!(rm.checkpoint().await.expect("checkpoint"), 4);
    assert_eq!(
        summary(&rm.by_customer("cust_123").await.expect("query")),
        vec![row("order_001", OrderStatus::Pending, "0.00", 0)]
    );
}

/// Runs the whole suite; `$make` gives `(guard, read_model)` and the guard
/// lives as long as the test (a temporary directory, say).
macro_rules! read_model_contract_tests {
    ($make:expr) => {
        mod read_model_contract {
            #[allow(unused_imports)]
            use super::*;
            use $crate::read_model::contract as c;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_guard, read_model) = $make;
                        c::$name(&read_model).await;
                    }
                };
            }
            case!(rows_follow_the_story);
            case!(batches_one_by_one_equal_one_batch);
            case!(a_batch_applied_twice_counts_once);
            case!(a_failing_batch_changes_nothing);
            case!(gaps_are_refused);
            case!(foreign_events_move_only_the_checkpoint);
        }
    };
}
pub(crate) use read_model_contract_tests;
