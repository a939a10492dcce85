//! The payment and transfer sagas end to end, on each bus (in-process,
//! real Kafka) and each durable store (embedded, PostgreSQL): an order paid,
//! one rejected for insufficient funds, one cancelled after payment and
//! refunded; a transfer completed and one compensated for each reason. Then
//! both topics are replayed from offset 0 into fresh consumer groups, which
//! must change no balance, no order and append nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use accounts::{AccountCommand, RejectionReason, SagaConfig};
use domain_core::bus::{EventBus, InProcessBus};
use domain_core::{Currency, Money};
use event_store::{EmbeddedEventStore, EventStore, PostgresEventStore};
use orders::{CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand, OrderStatus};
use platform::commerce::{ACCOUNTS_GROUP, Commerce, ORDERS_GROUP};
use platform::node::{BusChoice, Node};

use crate::support;

const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub enum Storage {
    Embedded,
    Postgres,
}

#[derive(Debug, Clone, Copy)]
pub enum Bus {
    InProcess,
    Kafka,
}

/// Everything a saga test runs on; the stores outlive the commerce node
/// so a second node (the replay) can use them.
pub struct Shop {
    pub commerce: Commerce,
    pub bus: Arc<dyn EventBus>,
    pub choice: BusChoice,
    pub prefix: String,
    pub orders: EventSourcedOrders,
    pub accounts_store: Arc<dyn EventStore>,
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
}

pub async fn stores(storage: Storage) -> (Arc<dyn EventStore>, Arc<dyn EventStore>) {
    match storage {
        Storage::Embedded => (
            Arc::new(EmbeddedEventStore::temporary().unwrap_or_else(|e| panic!("{e}"))),
            Arc::new(EmbeddedEventStore::temporary().unwrap_or_else(|e| panic!("{e}"))),
        ),
        Storage::Postgres => {
            let url = database_url();
            let id = uuid::Uuid::now_v7().simple();
            let connect = |schema: String| {
                let url = url.clone();
                async move { PostgresEventStore::connect(&url, &schema).await.unwrap_or_else(|e| panic!("{e}")) }
            };
            (Arc::new(connect(format!("it_orders_{id}")).await), Arc::new(connect(format!("it_accounts_{id}")).await))
        }
    }
}

pub async fn shop(storage: Storage, bus: Bus) -> Shop {
    let (orders_store, accounts_store) = stores(storage).await;
    let (bus, choice, prefix): (Arc<dyn EventBus>, _, _) = match bus {
        Bus::InProcess => (Arc::new(InProcessBus::new()), BusChoice::InProcess, String::new()),
        Bus::Kafka => {
            (Arc::new(support::bus()), BusChoice::Kafka(support::bootstrap()), format!("{}.", support::unique("saga")))
        }
    };
    let orders = EventSourcedOrders::new(orders_store, Arc::new(MemoryReadModel::new()));
    let node = Node::on_bus(Arc::clone(&bus), choice.clone(), &prefix).await.unwrap_or_else(|e| panic!("{e}"));
    let commerce = Commerce::on_node(orders.clone(), Arc::clone(&accounts_store), node, SagaConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Shop { commerce, bus, choice, prefix, orders, accounts_store }
}

pub fn cny(s: &str) -> Money {
    Money::parse(s, Currency::CNY).unwrap_or_else(|e| panic!("{e}"))
}

pub async fn open(c: &Commerce, id: &str, balance: Money) {
    c.accounts.open(id, id, balance).await.unwrap_or_else(|e| panic!("open {id}: {e}"));
}

pub async fn place(c: &Commerce, id: &str, customer: &str, price: &str) {
    let info =
        CustomerInfo::new(customer, "张三", "zhangsan@example.com", "13800138000").unwrap_or_else(|e| panic!("{e}"));
    c.order(id, OrderCommand::Create { customer: info, currency: Currency::CNY })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.order(id, OrderCommand::AddItem { product_id: "product_001".into(), quantity: 1, unit_price: cny(price) })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.order(id, OrderCommand::Confirm { payment_account_id: None }).await.unwrap_or_else(|e| panic!("{e}"));
}

pub async fn balance(c: &Commerce, id: &str) -> String {
    let a = c.accounts.get_by_id(id).await.unwrap_or_else(|e| panic!("{id}: {e}"));
    a.state().balance_money().map(|m| m.to_minor_string()).unwrap_or_default()
}

async fn settle(c: &mut Commerce) {
    c.settle(SETTLE).await.unwrap_or_else(|e| panic!("settle: {e}"));
}

/// The last `TransferFailed` reason on an account.
async fn last_failure(c: &Commerce, id: &str) -> Option<RejectionReason> {
    let history = c.accounts.history(id).await.unwrap_or_else(|e| panic!("{e}"));
    history.iter().rev().find_map(|e| match e.envelope.decode::<accounts::AccountEvent>() {
        Ok(accounts::AccountEvent::TransferFailed { reason, .. }) => Some(reason),
        _ => None,
    })
}

/// What the replay must leave alone: every balance, every order's status
/// and version, and both stores' heads.
async fn picture(shop: &Shop, orders: &[&str]) -> (BTreeMap<String, String>, BTreeMap<String, String>, u64, u64) {
    let c = &shop.commerce;
    let mut balances = BTreeMap::new();
    for id in c.accounts.ids().await.unwrap_or_else(|e| panic!("{e}")) {
        let a = c.accounts.load(&id).await.unwrap_or_else(|e| panic!("{e}"));
        balances.insert(id, format!("{} v{}", a.state().balance, a.version()));
    }
    let mut states = BTreeMap::new();
    for id in orders {
        let o = c.get_order(id).await.unwrap_or_else(|e| panic!("{e}"));
        states.insert((*id).to_owned(), format!("{} v{}", o.state().status().as_str(), o.version()));
    }
    let heads = (
        shop.orders.store().head_position().await.unwrap_or_else(|e| panic!("{e}")),
        shop.accounts_store.head_position().await.unwrap_or_else(|e| panic!("{e}")),
    );
    (balances, states, heads.0, heads.1)
}

pub async fn stories(storage: Storage, bus: Bus) {
    let _heavy = crate::support::heavy().await;
    let mut shop = shop(storage, bus).await;
    let c = &mut shop.commerce;
    for (id, money) in [
        ("merchant", cny("0")),
        ("rich", cny("1000")),
        ("poor", cny("10")),
        ("refundee", cny("500")),
        ("friend", cny("0")),
        ("closed", cny("0")),
        ("frozen", cny("0")),
        ("dollars", Money::parse("0", Currency::USD).unwrap_or_else(|e| panic!("{e}"))),
    ] {
        open(c, id, money).await;
    }
    c.accounts.execute("closed", AccountCommand::Close, None).await.unwrap_or_else(|e| panic!("{e}"));
    c.accounts
        .execute("frozen", AccountCommand::Freeze { reason: "test".into() }, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Orders: paid, rejected, paid then cancelled and refunded.
    place(c, "o-paid", "rich", "399.97").await;
    place(c, "o-poor", "poor", "399.97").await;
    place(c, "o-refund", "refundee", "120.50").await;
    settle(c).await;
    assert_eq!(c.get_order("o-paid").await.expect("order").state().status(), OrderStatus::Paid);
    let rejected = c.get_order("o-poor").await.expect("order");
    assert_eq!(rejected.state().status(), OrderStatus::Cancelled);
    assert!(
        rejected.state().cancellation_reason().unwrap_or("").contains("insufficient_funds"),
        "{:?}",
        rejected.state()
    );
    assert_eq!(c.get_order("o-refund").await.expect("order").state().status(), OrderStatus::Paid);
    c.order("o-refund", OrderCommand::Cancel { reason: "changed my mind".into() }).await.expect("cancel");
    c.order("o-paid", OrderCommand::Ship { shipping_address: "北京市朝阳区xxx街道xxx号".into() }).await.expect("ship");
    settle(c).await;
    let refunded = c.get_order("o-refund").await.expect("order");
    assert_eq!(refunded.state().refunded_amount(), Some(cny("120.50")));
    assert_eq!(balance(c, "rich").await, "600.03");
    assert_eq!(balance(c, "poor").await, "10.00", "a rejected payment takes nothing");
    assert_eq!(balance(c, "refundee").await, "500.00", "the refund came back");
    assert_eq!(balance(c, "merchant").await, "399.97");

    // Transfers: one completes, one fails for each reason and is paid back.
    c.accounts.transfer("rich", "friend", cny("100"), "gift").await.expect("transfer");
    for target in ["nobody", "closed", "frozen", "dollars"] {
        c.accounts.transfer("rich", target, cny("1"), "doomed").await.expect("transfer");
        settle(c).await;
        let expected = match target {
            "nobody" => RejectionReason::AccountNotFound,
            "closed" => RejectionReason::AccountClosed,
            "frozen" => RejectionReason::AccountFrozen,
            _ => RejectionReason::CurrencyMismatch,
        };
        assert_eq!(last_failure(c, "rich").await, Some(expected), "transfer to {target}");
    }
    assert_eq!(balance(c, "friend").await, "100.00");
    assert_eq!(balance(c, "rich").await, "500.03", "every failed transfer was paid back");
    assert_eq!(balance(c, "dollars").await, "0.00");

    let audit = accounts::ledger::audit(&c.accounts).await.expect("audit");
    assert!(audit.money_conserved, "{audit:?}");
    assert_eq!(audit.currencies["CNY"].in_flight.to_string(), "0.00");
    assert_eq!((audit.counts.transfers_completed, audit.counts.transfers_compensated), (1, 4));

    // Replay both topics from offset 0 into fresh consumer groups.
    let orders = ["o-paid", "o-poor", "o-refund"];
    let before = picture(&shop, &orders).await;
    let per_topic = shop.commerce.node().relayed_per_topic().clone();
    let records = |topic: &str| per_topic.get(&format!("{}{topic}", shop.prefix)).copied().unwrap_or(0);
    let accounts_records = records(domain_core::bus::topics::ACCOUNTS);
    let orders_records = records(domain_core::bus::topics::ORDERS);
    let groups = format!("{}replay.", support::unique("g"));
    let node = Node::on_bus_with_groups(Arc::clone(&shop.bus), shop.choice.clone(), &shop.prefix, &groups)
        .await
        .expect("node");
    let accounts_store = Arc::clone(&shop.accounts_store);
    let mut replay =
        Commerce::on_node(shop.orders.clone(), accounts_store, node, SagaConfig::default()).await.expect("replay");
    replay
        .node_mut()
        .drain_until(SETTLE, |group, stats| {
            let seen = stats.handled + stats.dead_lettered;
            match group {
                g if g == ACCOUNTS_GROUP => seen >= accounts_records + orders_records,
                g if g == ORDERS_GROUP => seen >= accounts_records,
                _ => true,
            }
        })
        .await
        .expect("replay drains");
    assert_eq!(replay.node().consumer_stats()[ACCOUNTS_GROUP].dead_lettered, 0);
    replay.close().await.expect("close");
    let after = picture(&shop, &orders).await;
    assert_eq!(before, after, "a replay from offset 0 changed something");
    shop.commerce.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_on_the_in_process_bus_with_embedded_stores() {
    stories(Storage::Embedded, Bus::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_on_kafka_with_embedded_stores() {
    stories(Storage::Embedded, Bus::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_on_the_in_process_bus_with_postgres_stores() {
    stories(Storage::Postgres, Bus::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_on_kafka_with_postgres_stores() {
    stories(Storage::Postgres, Bus::Kafka).await;
}

/// Poison on `orders.events` (an unreadable payload, a missing field, a
/// negative total, a value that is not JSON) goes to the DLQ with its error;
/// the partition goes on and the next order is paid. An event type the
/// sagas do not handle is committed unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_orders_events_are_dead_lettered_and_the_sagas_go_on() {
    use domain_core::bus::{EventBus as _, topics};
    use domain_core::{Envelope, EventType, codec};
    let bus = InProcessBus::new();
    let (orders_store, accounts_store) = stores(Storage::Embedded).await;
    let orders = EventSourcedOrders::new(orders_store, Arc::new(MemoryReadModel::new()));
    let node = Node::on_bus(Arc::new(bus.clone()), BusChoice::InProcess, "").await.expect("node");
    let mut c = Commerce::on_node(orders, accounts_store, node, SagaConfig::default()).await.expect("commerce");
    open(&c, "merchant", cny("0")).await;
    open(&c, "rich", cny("1000")).await;

    let confirmed: EventType = "orders.OrderConfirmed.v1".parse().expect("type");
    let bad = |data: serde_json::Value| Envelope::raw("orders", confirmed.clone(), "o-poison", 4, data);
    let poison = vec![
        bad(serde_json::json!({ "customer_id": "rich" })),
        bad(serde_json::json!({ "customer_id": "rich", "total_amount": { "amount": "-5.00", "currency": "CNY" } })),
        bad(serde_json::json!({ "customer_id": "rich", "total_amount": { "amount": 12.5, "currency": "CNY" } })),
    ];
    bus.publish(topics::ORDERS, &poison).await.expect("publish");
    let mut garbage = codec::encode(&poison[0]).expect("encode");
    garbage.value = Some(b"\xff not json".to_vec());
    let unknown =
        Envelope::raw("orders", "orders.OrderExploded.v1".parse().expect("type"), "o-poison", 5, serde_json::json!({}));
    bus.publish_records(topics::ORDERS, vec![garbage, codec::encode(&unknown).expect("encode")])
        .await
        .expect("publish");

    place(&c, "o-after", "rich", "10.00").await;
    settle(&mut c).await;
    assert_eq!(
        c.get_order("o-after").await.expect("order").state().status(),
        OrderStatus::Paid,
        "the partition went on"
    );
    let mut dlq =
        bus.subscribe("dlq-reader", &[&domain_core::bus::topics::dlq(topics::ORDERS)]).await.expect("subscribe");
    let dead = domain_core::bus::contract::collect(dlq.as_mut(), 4).await;
    let errors: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8_lossy(d.record.header("dlq_error").unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(errors.len(), 4, "the four poison records, not the unknown type: {errors:?}");
    assert_eq!(balance(&c, "rich").await, "990.00", "no poison moved money");
    assert_eq!(c.node().consumer_stats()[ACCOUNTS_GROUP].dead_lettered, 4);
    c.close().await.expect("close");
}
