use domain_core::{Currency, Money};
use event_store::InMemoryEventStore;

use super::*;
use crate::read_model::contract::TempDir;
use crate::{CustomerInfo, Error, MemoryReadModel, OrderError, OrderStatus};

fn cny(amount: &str) -> Money {
    Money::new(amount.parse().expect("decimal"), Currency::CNY)
}

fn customer(id: &str) -> CustomerInfo {
    CustomerInfo::new(id, "张三", "zhangsan@example.com", "13800138000").expect("customer")
}

fn in_memory() -> EventSourcedOrders {
    EventSourcedOrders::new(Arc::new(InMemoryEventStore::new()), Arc::new(MemoryReadModel::new()))
}

/// The seed's order, confirmed, not yet saved.
fn seed_order(id: &str, customer_id: &str) -> AggregateRoot<Order> {
    let mut order = AggregateRoot::<Order>::new(id);
    for command in [
        OrderCommand::Create { customer: customer(customer_id), currency: Currency::CNY },
        OrderCommand::AddItem { product_id: "product_001".into(), quantity: 2, unit_price: cny("99.99") },
        OrderCommand::AddItem { product_id: "product_002".into(), quantity: 1, unit_price: cny("199.99") },
        OrderCommand::Confirm { payment_account_id: None },
    ] {
        order.execute(command).expect("valid");
    }
    order
}

#[tokio::test]
async fn save_then_get_by_id_rebuilds_the_same_order() {
    let orders = in_memory();
    let mut order = seed_order("order_001", "cust_123");
    orders.save(&mut order).await.expect("save");
    assert!(order.uncommitted().is_empty());
    assert_eq!(order.committed_version(), 4);
    orders.save(&mut order).await.expect("nothing to save is fine");
    let loaded = orders.get_by_id("order_001").await.expect("load").expect("exists");
    assert_eq!(loaded.state(), order.state());
    assert_eq!(loaded.version(), 4);
    assert_eq!(loaded.state().total(), Some(cny("399.97")));
    assert!(orders.get_by_id("order_404").await.expect("load").is_none());
}

#[tokio::test]
async fn a_stale_writer_gets_a_conflict_and_overwrites_nothing() {
    let orders = in_memory();
    orders.save(&mut seed_order("order_001", "cust_123")).await.expect("save");
    let mut first = orders.get_by_id("order_001").await.expect("load").expect("exists");
    let mut stale = orders.get_by_id("order_001").await.expect("load").expect("exists");
    first.execute(OrderCommand::MarkPaid { amount: cny("399.97") }).expect("paid");
    orders.save(&mut first).await.expect("first writer wins");
    stale.execute(OrderCommand::Cancel { reason: "too slow".into() }).expect("valid on its stale copy");
    let r = orders.save(&mut stale).await;
    assert!(r.as_ref().is_err_and(Error::is_conflict), "{r:?}");
    assert_eq!(stale.uncommitted().len(), 1, "the loser keeps its events to retry on a fresh copy");
    let now = orders.get_by_id("order_001").await.expect("load").expect("exists");
    assert_eq!((now.version(), now.state().status()), (5, OrderStatus::Paid));
}

#[tokio::test]
async fn execute_runs_commands_and_returns_domain_errors_typed() {
    let orders = in_memory();
    orders.save(&mut seed_order("order_001", "cust_123")).await.expect("save");
    let ship = OrderCommand::Ship { shipping_address: "北京市朝阳区xxx街道xxx号".into() };
    let r = orders.execute("order_001", ship.clone(), None, 0).await;
    assert!(matches!(r, Err(Error::Order(OrderError::NotPaid { status: OrderStatus::Confirmed }))), "{r:?}");
    orders.execute("order_001", OrderCommand::MarkPaid { amount: cny("399.97") }, None, 0).await.expect("paid");
    let shipped = orders.execute("order_001", ship, None, 0).await.expect("shipped");
    assert_eq!(shipped.state().shipping_address(), Some("北京市朝阳区xxx街道xxx号"));
}

#[tokio::test]
async fn long_orders_are_snapshotted_every_100_versions() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let orders = EventSourcedOrders::new(Arc::clone(&store), Arc::new(MemoryReadModel::new()));
    let mut order = AggregateRoot::<Order>::new("order_big");
    order.execute(OrderCommand::Create { customer: customer("cust_123"), currency: Currency::CNY }).expect("create");
    for i in 0..60 {
        order
            .execute(OrderCommand::AddItem { product_id: format!("p{i}"), quantity: 1, unit_price: cny("1.50") })
            .expect("add");
    }
    orders.save(&mut order).await.expect("save 61");
    let stream = Repository::<Order>::stream_of("order_big").expect("stream");
    assert!(store.load_snapshot(&stream).await.expect("load").is_none(), "no snapshot below 100");
    for i in 60..130 {
        order
            .execute(OrderCommand::AddItem { product_id: format!("p{i}"), quantity: 1, unit_price: cny("1.50") })
            .expect("add");
    }
    orders.save(&mut order).await.expect("save 131");
    let snapshot = store.load_snapshot(&stream).await.expect("load").expect("snapshot");
    assert_eq!((snapshot.version, snapshot.aggregate_type.as_str()), (131, "Order"));
    let loaded = orders.get_by_id("order_big").await.expect("load").expect("exists");
    let replayed = Repository::<Order>::new(store).load("order_big").await.expect("full replay");
    assert_eq!(loaded.state(), replayed.state(), "snapshot + tail = full replay");
    assert_eq!((loaded.version(), loaded.state().total()), (131, Some(cny("195.00"))));
}

#[tokio::test]
async fn find_by_customer_reads_its_own_writes() {
    let orders = in_memory();
    orders.save(&mut seed_order("order_001", "cust_123")).await.expect("save");
    orders.save(&mut seed_order("order_002", "cust_123")).await.expect("save");
    orders.save(&mut seed_order("order_003", "cust_456")).await.expect("save");
    let mine = orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!(mine.iter().map(|s| s.order_id.as_str()).collect::<Vec<_>>(), ["order_001", "order_002"]);
    assert!(mine.iter().all(|s| s.status == OrderStatus::Confirmed && s.total == cny("399.97") && s.item_count == 2));
    orders.execute("order_002", OrderCommand::Cancel { reason: "x".into() }, None, 0).await.expect("cancel");
    let mine = orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!(mine[1].status, OrderStatus::Cancelled, "the cancel is visible at once");
    assert!(orders.find_by_customer("nobody").await.expect("query").is_empty());
}

#[tokio::test]
async fn embedded_orders_and_their_read_model_survive_a_reopen() {
    let dir = TempDir::new("orders-embedded");
    {
        let orders = EventSourcedOrders::open_embedded(&dir.0).expect("open");
        orders.save(&mut seed_order("order_001", "cust_123")).await.expect("save");
        orders.execute("order_001", OrderCommand::MarkPaid { amount: cny("399.97") }, None, 0).await.expect("paid");
        assert_eq!(orders.find_by_customer("cust_123").await.expect("query").len(), 1);
    }
    let orders = EventSourcedOrders::open_embedded(&dir.0).expect("reopen");
    let head = orders.store().head_position().await.expect("head");
    assert_eq!(orders.projector().read_model().checkpoint().await.expect("checkpoint"), head + 1, "nothing to redo");
    let loaded = orders.get_by_id("order_001").await.expect("load").expect("exists");
    assert_eq!(loaded.state().status(), OrderStatus::Paid);
    let rows = orders.find_by_customer("cust_123").await.expect("query");
    assert_eq!((rows[0].status, rows[0].total), (OrderStatus::Paid, cny("399.97")));
    assert!(dir.0.join(crate::RedbReadModel::FILE_NAME).exists());
}
