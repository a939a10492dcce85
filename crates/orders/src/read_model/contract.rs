//! The suite every [`ReadModel`] adapter runs, through
//! `read_model_contract_tests!`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use domain_core::{Currency, Envelope, Money};
use event_store::{RecordedText, StreamId};

use super::{OrderSummary, ReadModel, ServingReadModel};
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
    pub(crate) events: Vec<RecordedText>,
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
        self.events.push(event_store::testkit::recorded_text(stream, position, envelope));
        self
    }

    /// `[from, to)` by position (1-based).
    pub(crate) fn range(&self, from: u64, to: u64) -> Vec<RecordedText> {
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
        push_crash_event(&mut log, n);
        if log.next_position() > next {
            model.apply(&log.range(next, log.next_position()), log.next_position()).await.expect("apply");
            next = log.next_position();
            println!("applied {next}");
        }
    }
}

/// Event `n` of the crash child's log: ten events per order, a creation
/// and nine items of 1.00.
fn push_crash_event(log: &mut Log, n: u64) {
    let order = format!("order_{}", n / 10);
    let event = if n.is_multiple_of(10) { created("cust_crash") } else { item("p", 1, "1.00") };
    log.push(&order, event);
}

/// After a kill: the read model holds what a projection from scratch of
/// the crash log up to its checkpoint holds (times aside: the child stamped
/// its events when it made them).
pub(crate) async fn assert_equals_a_rebuild_from_scratch(model: &dyn ReadModel) {
    let checkpoint = model.checkpoint().await.expect("checkpoint");
    let mut log = Log::default();
    for n in 0..checkpoint - 1 {
        push_crash_event(&mut log, n);
    }
    let scratch = super::MemoryReadModel::new();
    scratch.apply(&log.events, log.next_position()).await.expect("from scratch");
    let rows = |r: Vec<OrderSummary>| summary(&r);
    assert_eq!(
        rows(model.by_customer("cust_crash").await.expect("query")),
        rows(scratch.by_customer("cust_crash").await.expect("query")),
        "the rows after the kill equal a projection from scratch up to the checkpoint {checkpoint}"
    );
    let all = |days: Vec<super::DailyOrders>| days.iter().map(|d| d.created).sum::<u64>();
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(2), today + chrono::Days::new(2));
    assert_eq!(all(model.daily(from, to).await.expect("daily")), all(scratch.daily(from, to).await.expect("daily")));
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

/// The day counts from the day before the log's first event to the day
/// after its last, summed over the days (a run may cross midnight UTC).
async fn story_days(rm: &dyn ReadModel, log: &Log) -> (u64, u64, u64, Money) {
    let first = log.events.first().map_or_else(|| chrono::Utc::now().date_naive(), |e| e.envelope.time.date_naive());
    let last = log.events.last().map_or(first, |e| e.envelope.time.date_naive());
    let (from, to) = (first.pred_opt().expect("a day before"), last.succ_opt().expect("a day after"));
    let days = rm.daily(from, to).await.expect("daily");
    assert!(days.iter().all(|d| d.currency == Currency::CNY && d.date >= first && d.date <= last), "{days:?}");
    assert!(days.windows(2).all(|w| w[0].date < w[1].date), "by date: {days:?}");
    let mut paid = cny("0.00");
    for d in &days {
        paid = paid.checked_add(d.paid_amount).expect("same currency");
    }
    (
        days.iter().map(|d| d.created).sum(),
        days.iter().map(|d| d.paid).sum(),
        days.iter().map(|d| d.cancelled).sum(),
        paid,
    )
}

async fn assert_story_applied(rm: &dyn ReadModel, log: &Log) {
    assert_eq!(rm.checkpoint().await.expect("checkpoint"), log.next_position());
    // Three orders created, order_001 paid, order_002 rejected (cancelled).
    assert_eq!(story_days(rm, log).await, (3, 1, 1, cny("399.97")), "daily counts");
    let before = log.events[0].envelope.time.date_naive() - chrono::Days::new(30);
    assert!(rm.daily(before, before).await.expect("daily").is_empty(), "a day without orders is absent");
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
        Err(Error::Gap(event_store::projection_rules::Gap { expected: e, got: g })) => {
            assert_eq!((e, g), (expected, got))
        }
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

/// Generation `generation` holds nothing (opening it finds it empty); the
/// probe is removed again.
async fn assert_removed(generations: &Arc<crate::OrderGenerations>, generation: u64) {
    let probe = generations.open(generation, false).await.expect("open");
    assert_eq!(probe.checkpoint().await.expect("checkpoint"), 1, "generation {generation} was removed");
    drop(probe);
    generations.remove(generation).await.expect("remove the probe");
}

pub(crate) async fn a_rebuilt_copy_replaces_the_serving_generation(generations: &Arc<crate::OrderGenerations>) {
    let log = story();
    let serving = ServingReadModel::open(Arc::clone(generations)).await.expect("open");
    assert_eq!(serving.generation(), 0);
    serving.apply(&log.range(1, 6), 6).await.expect("apply");
    let before = serving.by_customer("cust_123").await.expect("query");
    assert_eq!(before.len(), 2);

    let copy = serving.fresh_copy().await.expect("fresh copy");
    assert_eq!(copy.checkpoint().await.expect("checkpoint"), 1, "the copy starts empty");
    copy.apply(&log.events, log.next_position()).await.expect("feed the copy");
    assert_eq!(serving.by_customer("cust_123").await.expect("query"), before, "the serving one is untouched");
    assert_eq!(serving.checkpoint().await.expect("checkpoint"), 6);

    serving.switch_to_copy().await.expect("switch");
    assert_eq!(serving.generation(), 1);
    assert_eq!(generations.active().await.expect("active"), 1);
    assert_story_applied(&serving, &log).await;
    drop(copy);
    assert_removed(generations, 0).await;
    let r = serving.switch_to_copy().await;
    assert!(matches!(r, Err(Error::NoCopy)), "a second switch without a copy: {r:?}");

    drop(serving);
    let reopened = ServingReadModel::open(Arc::clone(generations)).await.expect("reopen");
    assert_eq!(reopened.generation(), 1, "the switch is durable");
    assert_story_applied(&reopened, &log).await;
}

pub(crate) async fn a_rebuild_cut_short_leaves_the_serving_generation(generations: &Arc<crate::OrderGenerations>) {
    let log = story();
    let serving = ServingReadModel::open(Arc::clone(generations)).await.expect("open");
    serving.apply(&log.events, log.next_position()).await.expect("apply");
    let copy = serving.fresh_copy().await.expect("fresh copy");
    copy.apply(&log.range(1, 4), 4).await.expect("part of the copy");
    let again = serving.fresh_copy().await.expect("a second rebuild starts over");
    assert_eq!(again.checkpoint().await.expect("checkpoint"), 1, "the first attempt's rows are gone");
    again.apply(&log.range(1, 3), 3).await.expect("part of the copy");
    // The process dies here: no switch.
    drop((copy, again, serving));

    let reopened = ServingReadModel::open(Arc::clone(generations)).await.expect("reopen");
    assert_eq!(reopened.generation(), 0);
    assert_story_applied(&reopened, &log).await;
    drop(reopened);
    assert_removed(generations, 1).await;
}

/// Places order `n` (created, two items) for one of 30 customers.
async fn place(orders: &crate::EventSourcedOrders, n: u64) {
    let id = format!("order_{n:05}");
    let customer = CustomerInfo::new(format!("cust_{:02}", n % 30), "张三", "zhangsan@example.com", "13800138000")
        .expect("customer");
    let create = crate::OrderCommand::Create { customer, currency: Currency::CNY };
    orders.execute(&id, create, None, 3).await.expect("create");
    for p in ["p1", "p2"] {
        let add = crate::OrderCommand::AddItem {
            product_id: p.into(),
            quantity: (n % 3 + 1) as u32,
            unit_price: cny("9.99"),
        };
        orders.execute(&id, add, None, 3).await.expect("add");
    }
}

/// A rebuild while orders keep arriving, a projector follows them and a
/// reader queries every customer in a loop: the reader never sees fewer
/// orders or items for a customer than before (a half-built copy would
/// show fewer), and afterwards the model equals a projection from scratch.
pub(crate) async fn a_rebuild_under_load_switches_over_unseen(
    store: Arc<dyn event_store::EventStore>,
    serving: Arc<ServingReadModel>,
) {
    use crate::Projector;
    let orders = Arc::new(crate::EventSourcedOrders::new(Arc::clone(&store), Arc::new(super::MemoryReadModel::new())));
    for n in 0..300 {
        place(&orders, n).await;
    }
    let read_model: Arc<dyn ReadModel> = serving.clone();
    let projector = Projector::new(Arc::clone(&store), read_model).with_batch_size(64).with_rebuild_batch_size(128);
    projector.catch_up().await.expect("catch up");
    let generation = serving.generation();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (stop_writer, writer_stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (orders, stopped) = (Arc::clone(&orders), writer_stopped);
        tokio::spawn(async move {
            let mut n = 300;
            while !*stopped.borrow() {
                place(&orders, n).await;
                n += 1;
            }
            n - 300
        })
    };
    let follower = {
        let (projector, mut stopped) = (projector.clone(), stopped.clone());
        tokio::spawn(
            async move { projector.run(async move { stopped.wait_for(|s| *s).await.map_or((), |_| ()) }).await },
        )
    };
    let reader = {
        let (serving, stopped) = (Arc::clone(&serving), stopped.clone());
        tokio::spawn(async move {
            let mut seen: HashMap<String, (usize, u64)> = HashMap::new();
            let mut queries = 0u64;
            while !*stopped.borrow() {
                for c in 0..30 {
                    let customer = format!("cust_{c:02}");
                    let rows = serving.by_customer(&customer).await.expect("query");
                    let items: u64 = rows.iter().map(|r| u64::from(r.item_count)).sum();
                    let before = seen.insert(customer.clone(), (rows.len(), items)).unwrap_or((10, 20));
                    assert!(
                        rows.len() >= before.0 && items >= before.1,
                        "{customer}: {} orders / {items} items after {before:?}: a missing or half-built model",
                        rows.len()
                    );
                    queries += 1;
                }
                tokio::task::yield_now().await;
            }
            queries
        })
    };
    let rebuilt = projector.rebuild().await.expect("rebuild");
    assert!(rebuilt.events >= 900, "{rebuilt:?}");
    assert_eq!(serving.generation(), generation + 1);
    // Let orders arrive after the switch, for the new generation to follow.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.head_position().await.expect("head") < rebuilt.position + 3 {
        assert!(tokio::time::Instant::now() < deadline, "no order arrived after the switch");
        tokio::task::yield_now().await;
    }
    stop_writer.send(true).expect("writer listens");
    let placed = writer.await.expect("writer");
    // The live follower, not a catch-up of the test's, carries the new
    // generation to the head.
    let head = store.head_position().await.expect("head");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while serving.checkpoint().await.expect("checkpoint") <= head {
        assert!(tokio::time::Instant::now() < deadline, "the live follower stopped at the switch-over");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(serving.generation(), generation + 1, "followed on the new generation");
    stop.send(true).expect("tasks listen");
    follower.await.expect("join").expect("follower");
    let queries = reader.await.expect("reader");
    assert!(placed > 0 && queries > 0, "{placed} orders placed and {queries} queries during the rebuild");

    projector.catch_up().await.expect("final catch up");
    let scratch: Arc<dyn ReadModel> = Arc::new(super::MemoryReadModel::new());
    Projector::new(Arc::clone(&store), Arc::clone(&scratch)).catch_up().await.expect("from scratch");
    assert_eq!(serving.checkpoint().await.expect("checkpoint"), scratch.checkpoint().await.expect("checkpoint"));
    for c in 0..30 {
        let customer = format!("cust_{c:02}");
        let (ours, theirs) =
            (serving.by_customer(&customer).await.expect("q"), scratch.by_customer(&customer).await.expect("q"));
        assert_eq!(ours, theirs, "{customer}");
    }
}

/// A poison event in the log (an item whose quantity is not a number):
/// the projection applies what comes before it, parks at its position with
/// the reason, stays parked while more events arrive, parks again on
/// resume, and a rebuild cannot get past it either: the serving copy keeps
/// answering what it had.
pub(crate) async fn a_poison_event_parks_the_projection(
    store: Arc<dyn event_store::EventStore>,
    read_model: Arc<dyn ReadModel>,
) {
    use crate::Projector;
    let orders = crate::EventSourcedOrders::new(Arc::clone(&store), Arc::new(super::MemoryReadModel::new()));
    for n in 0..3 {
        place(&orders, n).await;
    }
    let ty: domain_core::EventType = "orders.OrderItemAdded.v1".parse().expect("type");
    let bad = Envelope::raw("orders", ty, "order_bad", 1, serde_json::json!({ "quantity": "x" }));
    let stream = StreamId::new("Order-order_bad").expect("stream");
    store.append(&stream, event_store::ExpectedVersion::Any, &[bad]).await.expect("append");
    let position = store.head_position().await.expect("head");
    let projector = Projector::new(Arc::clone(&store), Arc::clone(&read_model)).with_batch_size(4);
    let err = projector.catch_up().await.expect_err("parks");
    assert!(
        matches!(&err, Error::Store(event_store::Error::ProjectionParked { position: p, .. }) if *p == position),
        "{err}"
    );
    assert_eq!(read_model.checkpoint().await.expect("checkpoint"), position, "everything before it, nothing after");
    let status = projector.runner().status().await.expect("status");
    let parked = status.parked.expect("parked");
    assert_eq!((parked.position, parked.event_type.as_str()), (position, "orders.OrderItemAdded.v1"));
    assert!(parked.error.contains(&format!("log position {position}")), "{}", parked.error);

    place(&orders, 3).await;
    let again = projector.catch_up().await.expect_err("still parked");
    assert!(matches!(again, Error::Store(event_store::Error::ProjectionParked { .. })), "{again}");
    assert_eq!(projector.runner().status().await.expect("status").lag_events, 4, "the poison and the new order");
    let resumed = projector.runner().resume().await.expect_err("the event still fails");
    assert!(matches!(resumed, event_store::Error::ProjectionParked { .. }), "{resumed}");
    let before = read_model.by_customer("cust_00").await.expect("query");
    if let Err(e) = projector.rebuild().await {
        let failed = matches!(&e, Error::Store(event_store::Error::RebuildFailed { source, .. })
            if matches!(**source, event_store::Error::ProjectionParked { .. }));
        let unsupported = matches!(&e, Error::Store(event_store::Error::RebuildUnsupported { .. }));
        assert!(failed || unsupported, "{e}");
    } else {
        panic!("a rebuild went past the poison event");
    }
    assert_eq!(read_model.by_customer("cust_00").await.expect("query"), before, "the serving copy still answers");
}

/// One test per case of a suite: `$make` gives `(guard, subject)`, the
/// guard lives as long as the test (a temporary directory, say), and each
/// case gets `&subject`.
macro_rules! contract_suite {
    ($module:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use $crate::read_model::contract as c;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, subject) = $make;
                    c::$case(&subject).await;
                }
            )*
        }
    };
}
pub(crate) use contract_suite;

/// The generations suite; `$make` gives `(guard, Arc<crate::OrderGenerations>)`.
macro_rules! generations_contract_tests {
    ($make:expr) => {
        $crate::read_model::contract::contract_suite!(
            generations_contract,
            $make,
            [a_rebuilt_copy_replaces_the_serving_generation, a_rebuild_cut_short_leaves_the_serving_generation]
        );
    };
}
pub(crate) use generations_contract_tests;

/// The read-model suite; `$make` gives `(guard, read_model)`.
macro_rules! read_model_contract_tests {
    ($make:expr) => {
        $crate::read_model::contract::contract_suite!(
            read_model_contract,
            $make,
            [
                rows_follow_the_story,
                batches_one_by_one_equal_one_batch,
                a_batch_applied_twice_counts_once,
                a_failing_batch_changes_nothing,
                gaps_are_refused,
                foreign_events_move_only_the_checkpoint,
            ]
        );
    };
}
pub(crate) use read_model_contract_tests;
