//! The shared suite against PostgreSQL (`DATABASE_URL`, a fresh schema per
//! test, dropped when the test ends), plus what only a server shared by
//! several processes can show: racing projectors on one schema, a
//! reconnect, a kill -9 mid-batch, and `EventSourcedOrders` on PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain_core::Currency;
use event_store::{EventStore, PostgresEventStore};

use super::*;
use crate::read_model::contract::{Log, cny, created, item, story};
use crate::{CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand, OrderRepository, Projector};

const TEST_PREFIX: &str = "orders_rm_test_";

fn url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
}

/// A schema of one test, dropped (with whatever shares it) when the guard
/// drops, also when the test panics.
#[derive(Debug)]
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn fresh() -> Self {
        let url = url();
        sweep_old_test_schemas(&url).await;
        Self { name: format!("{TEST_PREFIX}{}", uuid::Uuid::now_v7().simple()), url }
    }

    async fn read_model(&self) -> PostgresReadModel {
        PostgresReadModel::connect(&self.url, &self.name).await.unwrap_or_else(|e| panic!("connect: {e}"))
    }

    async fn event_store(&self) -> PostgresEventStore {
        PostgresEventStore::connect(&self.url, &self.name).await.unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime and connection.
        let (url, sql) = (self.url.clone(), format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.name));
        let dropped = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(client) = open(&url).await {
                    let _ = client.batch_execute(&sql).await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Test runs that were killed leave schemas behind; once per run, drop
/// test schemas whose UUIDv7 says they are over an hour old.
async fn sweep_old_test_schemas(url: &str) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let client = open(url).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let rows = client
        .query(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'orders\_rm\_test\_%'", &[])
        .await
        .unwrap_or_else(|e| panic!("listing schemas: {e}"));
    let cutoff = Utc::now().timestamp() - 3600;
    for row in rows {
        let name: String = row.get(0);
        let created = uuid::Uuid::parse_str(&name[TEST_PREFIX.len()..])
            .ok()
            .and_then(|u| u.get_timestamp())
            .and_then(|t| i64::try_from(t.to_unix().0).ok());
        if created.is_some_and(|c| c < cutoff) {
            // Best effort: a concurrent run may be dropping it too.
            let _ = client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#)).await;
        }
    }
}

async fn fresh() -> (Schema, PostgresReadModel) {
    let schema = Schema::fresh().await;
    let model = schema.read_model().await;
    (schema, model)
}

crate::read_model::contract::read_model_contract_tests!(super::fresh().await);

async fn fresh_generations() -> (Schema, Arc<crate::OrderGenerations>) {
    let schema = Schema::fresh().await;
    let generations = PostgresGenerations::connect(&schema.url, &schema.name).await.unwrap_or_else(|e| panic!("{e}"));
    (schema, Arc::new(generations))
}

crate::read_model::contract::generations_contract_tests!(super::fresh_generations().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_are_tables_and_the_old_one_is_dropped() {
    let (schema, generations) = fresh_generations().await;
    let log = story();
    let serving = crate::ServingReadModel::open(Arc::clone(&generations)).await.expect("open");
    serving.apply(&log.events, log.next_position()).await.expect("apply");
    let copy = serving.fresh_copy().await.expect("copy");
    copy.apply(&log.events, log.next_position()).await.expect("feed");
    serving.switch_to_copy().await.expect("switch");
    let client = open(&schema.url).await.expect("connect");
    let tables: Vec<String> = client
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1", &[&schema.name])
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["daily_orders_g1", "order_summaries_g1", "projection_checkpoints", "read_model_generations"]);
    let names: Vec<String> = client
        .query(&format!(r#"SELECT name FROM "{}".projection_checkpoints ORDER BY 1"#, schema.name), &[])
        .await
        .expect("checkpoints")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["orders_by_customer_g1"]);
}

#[test]
fn schema_names_are_checked() {
    for good in ["orders", "_x", "orders_2", &"x".repeat(63)] {
        assert!(check_schema(good).is_ok(), "{good:?}");
    }
    for bad in ["", "Orders", "1x", "a-b", "a\"b", "a b", "pg_orders", "ördrs", &"x".repeat(64)] {
        assert!(matches!(check_schema(bad), Err(Error::InvalidSchema(s)) if s == bad), "{bad:?}");
    }
}

#[tokio::test]
async fn connect_refuses_a_bad_schema_name_before_connecting() {
    let r = PostgresReadModel::connect("postgres://nobody@127.0.0.1:1/none", "Bad-Name").await;
    assert!(matches!(&r, Err(Error::InvalidSchema(s)) if s == "Bad-Name"), "{r:?}");
}

/// Four processes starting at once on a new schema all migrate it; a
/// restart finds rows and checkpoint as they were and carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_idempotent_and_keeps_rows_and_checkpoint() {
    let schema = Schema::fresh().await;
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (url, name) = (schema.url.clone(), schema.name.clone());
            tokio::spawn(async move { PostgresReadModel::connect(&url, &name).await })
        })
        .collect();
    for r in racers {
        r.await.expect("join").expect("concurrent connects all succeed");
    }
    let log = story();
    let first = schema.read_model().await;
    assert_eq!(first.schema(), schema.name);
    first.apply(&log.range(1, 8), 8).await.expect("apply");
    let before = first.by_customer("cust_123").await.expect("query");
    drop(first);
    let restarted = schema.read_model().await;
    assert_eq!(restarted.checkpoint().await.expect("checkpoint"), 8);
    assert_eq!(restarted.by_customer("cust_123").await.expect("query"), before);
    restarted.apply(&log.range(1, log.next_position()), log.next_position()).await.expect("the rest");
    assert_eq!(restarted.get("order_001").await.expect("get").map(|r| r.status), Some(OrderStatus::Shipped));
}

#[tokio::test]
async fn drop_schema_removes_everything_and_errors_keep_the_driver_error() {
    let (schema, model) = fresh().await;
    let log = story();
    model.apply(&log.events, log.next_position()).await.expect("apply");
    model.drop_schema().await.expect("drop");
    let r = model.checkpoint().await;
    let Err(Error::Postgres(e)) = &r else { panic!("expected a PostgreSQL error, got {r:?}") };
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE), "the typed source: {e:?}");
    let text = r.as_ref().map_err(ToString::to_string).expect_err("error");
    assert!(text.contains("does not exist (42P01)"), "the server's message is shown: {text}");
    drop(model);
    let fresh = schema.read_model().await;
    assert_eq!(fresh.checkpoint().await.expect("checkpoint"), 1);
    assert!(fresh.by_customer("cust_123").await.expect("query").is_empty());
}

/// Totals are `numeric` in the table and come back digit for digit,
/// including ones a float cannot hold (19 significant digits).
#[tokio::test]
async fn money_is_stored_as_numeric_exactly() {
    let (schema, model) = fresh().await;
    let mut log = Log::default();
    log.push("order_big", created("cust_big"))
        .push("order_big", item("p1", 3, "12345678901234567.89"))
        .push("order_big", item("p2", 1, "0.10"))
        .push("order_big", item("p3", 1, "0.20"));
    model.apply(&log.events, log.next_position()).await.expect("apply");
    let row = model.get("order_big").await.expect("get").expect("row");
    assert_eq!(row.total.amount.to_string(), "37037036703703703.97");
    assert_eq!(row.total.currency, Currency::CNY);
    let conn = model.reader.shared().await.expect("conn");
    let sql = format!(
        r#"SELECT pg_typeof(total)::text, total::text FROM "{}".order_summaries WHERE order_id = 'order_big'"#,
        schema.name
    );
    let stored = conn.client.query_one(&sql, &[]).await.expect("query");
    assert_eq!((stored.get::<_, &str>(0), stored.get::<_, &str>(1)), ("numeric", "37037036703703703.97"));
}

/// `by_customer` is in byte order of the order ids, as the memory and
/// redb adapters return it, whatever the database's collation.
#[tokio::test]
async fn orders_come_back_in_byte_order_like_the_other_adapters() {
    let (_schema, model) = fresh().await;
    let memory = MemoryReadModel::new();
    let mut log = Log::default();
    for id in ["order_b", "order_B", "order_10", "order_9", "order_a", "Order_z", "order_é"] {
        log.push(id, created("cust_123"));
    }
    for rm in [&model as &dyn ReadModel, &memory] {
        rm.apply(&log.events, log.next_position()).await.expect("apply");
    }
    let ids = |rows: Vec<OrderSummary>| rows.into_iter().map(|r| r.order_id).collect::<Vec<_>>();
    let expected = ids(memory.by_customer("cust_123").await.expect("query"));
    assert_eq!(expected, ["Order_z", "order_10", "order_9", "order_B", "order_a", "order_b", "order_é"]);
    assert_eq!(ids(model.by_customer("cust_123").await.expect("query")), expected);
}

/// The server ends both connections (a restart, a failover); the next
/// calls reopen them and the read model carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_reopened() {
    let (_schema, model) = fresh().await;
    let log = story();
    model.apply(&log.range(1, 5), 5).await.expect("apply");
    let admin = open(&url()).await.expect("connect");
    for link in [&model.writer, &model.reader] {
        let pid: i32 = link
            .shared()
            .await
            .expect("conn")
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.expect("terminate");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for link in [&model.writer, &model.reader] {
        while !link.conn.read().await.client.is_closed() {
            assert!(tokio::time::Instant::now() < deadline, "the driver did not notice");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(model.checkpoint().await.expect("checkpoint after a reconnect"), 5);
    model.apply(&log.range(5, log.next_position()), log.next_position()).await.expect("apply after a reconnect");
    assert_eq!(model.get("order_001").await.expect("get").map(|r| r.status), Some(OrderStatus::Shipped));
}

fn customer(id: &str) -> CustomerInfo {
    CustomerInfo::new(id, "张三", "zhangsan@example.com", "13800138000").expect("customer")
}

/// Creates `order_<n>` for `cust_<n % 3>` and adds `items` items of 1.00.
async fn add_order(orders: &EventSourcedOrders, n: u32, items: u32) {
    let id = format!("order_{n:03}");
    let create = OrderCommand::Create { customer: customer(&format!("cust_{}", n % 3)), currency: Currency::CNY };
    orders.execute(&id, create, None, 0).await.expect("create");
    for i in 0..items {
        let add = OrderCommand::AddItem { product_id: format!("p{i}"), quantity: 1, unit_price: cny("1.00") };
        orders.execute(&id, add, None, 0).await.expect("add");
    }
}

/// Two read models on one schema (as two processes), each with two
/// projectors of different batch sizes, race `catch_up` over one store
/// while orders are still being written: every event is applied exactly
/// once (a second `OrderCreated` would be refused as inconsistent, a second
/// item would show in the count) and nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_racing_apply_every_event_once() {
    let schema = Schema::fresh().await;
    let store: Arc<dyn EventStore> = Arc::new(schema.event_store().await);
    let (a, b): (Arc<dyn ReadModel>, Arc<dyn ReadModel>) =
        (Arc::new(schema.read_model().await), Arc::new(schema.read_model().await));
    let writer = EventSourcedOrders::new(Arc::clone(&store), Arc::new(MemoryReadModel::new()));
    let orders = 24;
    let items = |n: u32| n % 5;
    for n in 0..orders / 2 {
        add_order(&writer, n, items(n)).await;
    }
    let writing = tokio::spawn(async move {
        for n in orders / 2..orders {
            add_order(&writer, n, items(n)).await;
        }
    });
    let done = Arc::new(AtomicBool::new(false));
    let racers: Vec<_> = [(&a, 1), (&a, 7), (&b, 2), (&b, 5)]
        .into_iter()
        .map(|(model, batch)| {
            let projector = Projector::new(Arc::clone(&store), Arc::clone(model)).with_batch_size(batch);
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            tokio::spawn(async move {
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let next = projector.catch_up().await.expect("catch up");
                    if finished && next > store.head_position().await.expect("head") {
                        return next;
                    }
                }
            })
        })
        .collect();
    writing.await.expect("writer");
    done.store(true, Ordering::SeqCst);
    let head = store.head_position().await.expect("head");
    for r in racers {
        assert_eq!(r.await.expect("join"), head + 1, "every racer ends at the head");
    }
    let expected_events: u64 = (0..orders).map(|n| 1 + u64::from(items(n))).sum();
    assert_eq!(head, expected_events);
    let mut rows = BTreeMap::new();
    for c in 0..3 {
        let customer = format!("cust_{c}");
        let (from_a, from_b) =
            (a.by_customer(&customer).await.expect("query"), b.by_customer(&customer).await.expect("query"));
        assert_eq!(from_a, from_b, "both processes read the same rows");
        rows.extend(from_a.into_iter().map(|r| (r.order_id.clone(), r)));
    }
    assert_eq!(rows.len(), orders as usize);
    for n in 0..orders {
        let row = &rows[&format!("order_{n:03}")];
        assert_eq!(row.item_count, items(n), "{row:?}");
        assert_eq!(row.total, cny(&items(n).to_string()), "{row:?}");
    }
    assert_eq!(a.checkpoint().await.expect("checkpoint"), head + 1);
}

/// The repository on PostgreSQL end to end: the event store and the read
/// model share the orders schema, and `find_by_customer` sees the
/// repository's own writes at once; another process finds the projection
/// already caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_sourced_orders_on_postgres_read_their_own_writes() {
    let schema = Schema::fresh().await;
    let orders = EventSourcedOrders::new(Arc::new(schema.event_store().await), Arc::new(schema.read_model().await));
    for (id, customer_id) in [("order_001", "cust_123"), ("order_002", "cust_123"), ("order_003", "cust_456")] {
        let mut order = domain_core::AggregateRoot::<crate::Order>::new(id);
        for command in [
            OrderCommand::Create { customer: customer(customer_id), currency: Currency::CNY },
            OrderCommand::AddItem { product_id: "product_001".into(), quantity: 2, unit_price: cny("99.99") },
            OrderCommand::AddItem { product_id: "product_002".into(), quantity: 1, unit_price: cny("199.99") },
            OrderCommand::Confirm { payment_account_id: None },
        ] {
            order.execute(command).expect("valid");
        }
        orders.save(&mut order).await.expect("save");
    }
    let mine = orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!(mine.iter().map(|s| s.order_id.as_str()).collect::<Vec<_>>(), ["order_001", "order_002"]);
    assert!(mine.iter().all(|s| s.status == OrderStatus::Confirmed && s.total == cny("399.97") && s.item_count == 2));
    orders.execute("order_002", OrderCommand::Cancel { reason: "x".into() }, None, 0).await.expect("cancel");
    orders.execute("order_001", OrderCommand::MarkPaid { amount: cny("399.97") }, None, 0).await.expect("paid");
    let mine = orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!(mine.iter().map(|s| s.status).collect::<Vec<_>>(), [OrderStatus::Paid, OrderStatus::Cancelled]);
    assert!(orders.find_by_customer("nobody").await.expect("query").is_empty());

    let other = EventSourcedOrders::new(Arc::new(schema.event_store().await), Arc::new(schema.read_model().await));
    let head = other.store().head_position().await.expect("head");
    assert_eq!(other.projector().read_model().checkpoint().await.expect("checkpoint"), head + 1, "nothing to redo");
    assert_eq!(other.find_by_customer("cust_123").await.expect("query"), mine);
    assert_eq!(other.find_by_customer("cust_456").await.expect("query").len(), 1);
}

/// The schema the crash child writes to; set only for the child.
const CRASH_SCHEMA: &str = "ORDERS_PG_CRASH_SCHEMA";

/// Kills a process applying batches three times; after each kill the rows
/// hold exactly what the checkpoint says. With [`CRASH_SCHEMA`] set, this
/// test is that process (see [`contract::apply_until_killed`]).
#[test]
fn a_kill_9_neither_loses_nor_double_applies() {
    if let Ok(schema) = std::env::var(CRASH_SCHEMA) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        rt.block_on(async {
            let model = PostgresReadModel::connect(&url(), &schema).await.expect("connect");
            crate::read_model::contract::apply_until_killed(&model).await;
        });
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let schema = rt.block_on(Schema::fresh());
    let mut last = 1;
    for round in 0..3 {
        crate::read_model::contract::kill_mid_run(
            "read_model::postgres::tests::a_kill_9_neither_loses_nor_double_applies",
            (CRASH_SCHEMA, &schema.name),
            200 + 50 * round,
        );
        let (checkpoint, rows) = rt.block_on(async {
            // The server rolls back the killed client's open transaction.
            let model = schema.read_model().await;
            (model.checkpoint().await.expect("checkpoint"), model.by_customer("cust_crash").await.expect("query"))
        });
        // Every applied event is a creation (one row) or an item (one count).
        let applied: u64 = rows.iter().map(|r| 1 + u64::from(r.item_count)).sum();
        assert_eq!(applied, checkpoint - 1, "round {round}: rows cover exactly what the checkpoint says");
        assert!(checkpoint > last, "round {round}: the child made progress");
        last = checkpoint;
        for r in &rows {
            assert_eq!(r.total.amount, Decimal::from(r.item_count), "round {round}: {r:?}");
        }
        rt.block_on(async {
            let model = schema.read_model().await;
            crate::read_model::contract::assert_equals_a_rebuild_from_scratch(&model).await;
        });
    }
    drop(schema);
}

/// A PostgreSQL log and a serving read model in a fresh schema (dropped
/// with the first element).
async fn log_and_serving() -> (Schema, Arc<dyn EventStore>, Arc<crate::ServingReadModel>) {
    let (schema, generations) = fresh_generations().await;
    let store: Arc<dyn EventStore> = Arc::new(schema.event_store().await);
    let serving = crate::ServingReadModel::open(generations).await.expect("open");
    (schema, store, Arc::new(serving))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_switches_over_without_a_reader_noticing() {
    let (_schema, store, serving) = log_and_serving().await;
    crate::read_model::contract::a_rebuild_under_load_switches_over_unseen(store, serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_parks_the_projection_on_postgresql() {
    let (_schema, store, serving) = log_and_serving().await;
    crate::read_model::contract::a_poison_event_parks_the_projection(store, serving).await;
}
