//! Bus -> bronze -> silver -> gold on the in-process bus, with real Delta
//! tables in a directory: exactly-once bronze across restarts, silver
//! expectations with quarantine and counts that agree everywhere,
//! deduplication by event id, and incremental gold with lineage.

use std::time::Duration;

use domain_core::bus::{EventBus, InProcessBus, TopicSpec, topics};
use domain_core::{Envelope, EventType};
use lake::bronze::{BronzeConfig, BronzeIngester};
use lake::deltalake::arrow::array::Array;
use lake::gold::GoldPipeline;
use lake::silver::SilverPipeline;
use lake::{Lake, LakeLocation};
use serde_json::{Value, json};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lake-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn event(context: &str, name: &str, subject: &str, version: u64, data: Value) -> Envelope {
    let mut e = Envelope::raw(context, EventType::new(context, name, 1).expect("type"), subject, version, data);
    e.time = "2023-01-01T10:00:00Z".parse().expect("time");
    e
}

fn money(amount: &str) -> Value {
    json!({"amount": amount, "currency": "CNY"})
}

/// One paid order with two items, one cancelled order, and bad events.
fn orders() -> Vec<Envelope> {
    let customer =
        json!({"customer_id": "cust_001", "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
    vec![
        event("orders", "OrderCreated", "order-1", 1, json!({"customer": customer, "currency": "CNY"})),
        event(
            "orders",
            "OrderItemAdded",
            "order-1",
            2,
            json!({"product_id": "laptop", "quantity": 1, "unit_price": money("5999.00")}),
        ),
        event(
            "orders",
            "OrderItemAdded",
            "order-1",
            3,
            json!({"product_id": "mouse", "quantity": 2, "unit_price": money("99.50")}),
        ),
        event(
            "orders",
            "OrderConfirmed",
            "order-1",
            4,
            json!({"customer_id": "cust_001", "payment_account_id": "acc-1", "total_amount": money("6198.00"), "item_count": 2}),
        ),
        event("orders", "OrderPaid", "order-1", 5, json!({"amount": money("6198.00")})),
        event("orders", "OrderCreated", "order-2", 1, json!({"customer": customer, "currency": "CNY"})),
        event(
            "orders",
            "OrderItemAdded",
            "order-2",
            2,
            json!({"product_id": "mouse", "quantity": 1, "unit_price": money("99.50")}),
        ),
        event(
            "orders",
            "OrderCancelled",
            "order-2",
            3,
            json!({"reason": "changed mind", "customer_id": "cust_001", "payment_account_id": null, "was_paid": false}),
        ),
        // Out of range: quantity 0.
        event(
            "orders",
            "OrderItemAdded",
            "order-3",
            2,
            json!({"product_id": "cable", "quantity": 0, "unit_price": money("9.90")}),
        ),
        // Missing a required field: no product id.
        event("orders", "OrderItemAdded", "order-3", 3, json!({"quantity": 1, "unit_price": money("9.90")})),
        // A float amount is refused (money travels as decimal strings).
        event(
            "orders",
            "OrderItemAdded",
            "order-3",
            4,
            json!({"product_id": "cable", "quantity": 1, "unit_price": {"amount": 9.9, "currency": "CNY"}}),
        ),
    ]
}

fn ledger() -> Vec<Envelope> {
    vec![
        event(
            "accounts",
            "AccountCreated",
            "acc-1",
            1,
            json!({"account_holder": "张三", "initial_balance": money("10000.00")}),
        ),
        event(
            "accounts",
            "MoneyWithdrawn",
            "acc-1",
            2,
            json!({"amount": money("6198.00"), "description": "order-1", "old_balance": "10000.00", "new_balance": "3802.00"}),
        ),
    ]
}

async fn ingest(bus: &InProcessBus, location: &LakeLocation) -> lake::bronze::IngestStats {
    let mut ingester = BronzeIngester::open(location, BronzeConfig { max_rows: 4, ..BronzeConfig::default() })
        .await
        .expect("ingester");
    let mut sub =
        bus.subscribe(&ingester.group(), &[topics::ORDERS, topics::ACCOUNTS, topics::MESH]).await.expect("subscribe");
    let stats =
        ingester.run(sub.as_mut(), Some(Duration::from_millis(300)), std::future::pending()).await.expect("run");
    sub.close().await.expect("close");
    stats
}

async fn count(lake: &Lake, sql: &str) -> i64 {
    let batches = lake.sql(sql).await.expect("sql");
    let col = lake::deltalake::arrow::compute::cast(
        batches[0].column(0),
        &lake::deltalake::arrow::datatypes::DataType::Int64,
    )
    .expect("cast");
    col.as_any().downcast_ref::<lake::deltalake::arrow::array::Int64Array>().expect("int").value(0)
}

async fn text(lake: &Lake, sql: &str) -> Vec<String> {
    let batches = lake.sql(sql).await.expect("sql");
    let mut out = Vec::new();
    for b in &batches {
        let col =
            lake::deltalake::arrow::compute::cast(b.column(0), &lake::deltalake::arrow::datatypes::DataType::Utf8)
                .expect("cast");
        let col = col.as_any().downcast_ref::<lake::deltalake::arrow::array::StringArray>().expect("text");
        out.extend((0..col.len()).map(|i| col.value(i).to_owned()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_from_the_bus_to_gold_once() {
    let dir = temp("pipeline");
    let location = LakeLocation::local(&dir).expect("location");
    let lake = Lake::new(location.clone());
    let bus = InProcessBus::new();
    bus.create_topics(&[
        TopicSpec::new(topics::ORDERS, 2),
        TopicSpec::new(topics::ACCOUNTS, 1),
        TopicSpec::new(topics::MESH, 1),
        TopicSpec::new(topics::LAKE, 1),
    ])
    .await
    .expect("topics");
    // The customer contract, as mesh-registry's announcements carry it: a
    // customer's status must be active or inactive.
    let contract = "apiVersion: v3.1.0\nkind: DataContract\nid: customer_data_v1\nversion: 1.0.0\nstatus: active\nschema:\n  - name: customers\n    properties:\n      - name: status\n        quality:\n          - {type: library, metric: invalidValues, arguments: {validValues: [active, inactive]}, mustBe: 0}\n";
    bus.publish(
        topics::MESH,
        &[event("orders", "ContractPublished", "customer_data_v1", 1, json!({"documents": contract}))],
    )
    .await
    .expect("contract");
    let orders = orders();
    bus.publish(topics::ORDERS, &orders).await.expect("publish");
    bus.publish(topics::ACCOUNTS, &ledger()).await.expect("publish");
    let customer = |status: &str| json!({"customer_id": "cust_001", "name": "张三", "email": "zhangsan@example.com", "registration_date": "2023-01-01", "status": status, "segment": "premium"});
    bus.publish(
        topics::ORDERS,
        &[
            event("orders", "CustomerRegistered", "cust_001", 1, customer("active")),
            event("orders", "CustomerUpdated", "cust_001", 2, customer("vip")),
        ],
    )
    .await
    .expect("customers");
    // A record that is not a CloudEvent at all.
    bus.publish_records(
        topics::ACCOUNTS,
        vec![domain_core::bus::Record { key: None, headers: vec![], value: Some(b"not json".to_vec()) }],
    )
    .await
    .expect("raw");

    let stats = ingest(&bus, &location).await;
    assert_eq!(stats.rows, 17);
    assert_eq!(count(&lake, "SELECT COUNT(*) FROM bronze.events").await, 17);
    // Published again by a producer that retried: same event ids, new offsets.
    bus.publish(topics::ORDERS, &orders[..2]).await.expect("republish");
    let again = ingest(&bus, &location).await;
    assert_eq!((again.rows, again.skipped), (2, 0), "only the new offsets are taken");
    assert_eq!(
        count(&lake, "SELECT COUNT(*) FROM (SELECT DISTINCT topic, \"partition\", \"offset\" FROM bronze.events)")
            .await,
        19
    );

    let silver = SilverPipeline::new(location.clone()).expect("pipeline").run().await.expect("silver");
    assert_eq!(silver.bronze_rows, 19);
    assert_eq!(silver.unmodelled, 1, "the contract announcement has no silver table");
    let customers = silver.tables.iter().find(|t| t.table == "silver.customers").expect("customers");
    assert_eq!((customers.written, customers.quarantined), (1, 1), "the contract's valid values apply");
    assert_eq!(customers.expectations["status_valid_values"].failed, 1);
    assert_eq!(silver.invalid, 1, "the non-event is quarantined");
    let items = silver.tables.iter().find(|t| t.table == "silver.order_items").expect("items");
    assert_eq!(items.rows_in, 7, "6 items, one of them twice");
    assert_eq!((items.written, items.quarantined, items.duplicates), (3, 3, 1));
    assert_eq!(items.expectations["quantity_in_range"].failed, 1);
    assert_eq!(items.expectations["product_id_present"].failed, 1);
    let orders_report = silver.tables.iter().find(|t| t.table == "silver.orders").expect("orders");
    assert_eq!((orders_report.written, orders_report.duplicates), (5, 1));

    // Quarantine holds each failed event with its reason.
    let reasons =
        text(&lake, "SELECT expectation || ': ' || reason FROM silver.quarantine ORDER BY _topic, _offset").await;
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r == "status_valid_values: `status` is `vip`, not one of active, inactive"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "quantity_in_range: `quantity` is 0, below the minimum 1"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "product_id_present: `product_id` is missing"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("valid_types: `unit_price`: 9.9 is a JSON float")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("valid_event: the record has no event id")), "{reasons:?}");

    // Commit info, report and published event carry the same counts.
    let items_table = lake.table_named("silver.order_items").await.expect("table");
    let info = &items_table.history(Some(1)).await.expect("history")[0].info;
    assert_eq!(info["lake.quarantined"], json!(3));
    assert_eq!(info["lake.expectations"]["quantity_in_range"]["failed"], json!(1));
    let events = silver.quality_events().expect("events");
    let measured = events.iter().find(|e| e.subject == "silver.order_items").expect("event");
    assert_eq!(measured.event_type.to_string(), "lake.QualityMeasured.v1");
    assert_eq!(measured.data["expectations"], info["lake.expectations"]);
    assert_eq!(measured.data["quarantined"], info["lake.quarantined"]);
    // Published on lake.events, read back by another consumer: the same counts.
    bus.publish(topics::LAKE, &events).await.expect("publish quality");
    let mut reader = bus.subscribe("test.reader", &[topics::LAKE]).await.expect("subscribe");
    let mut seen = None;
    while let Some(d) = reader.next(Duration::from_millis(200)).await.expect("next") {
        let e = d.envelope(usize::MAX).expect("event");
        if e.subject == "silver.order_items" {
            seen = Some(e.data);
        }
    }
    let seen = seen.expect("the quality event came back");
    assert_eq!(seen["expectations"], info["lake.expectations"]);
    assert_eq!(seen["quarantined"], json!(3));

    // A second run has nothing to do.
    let idle = SilverPipeline::new(location.clone()).expect("pipeline").run().await.expect("silver");
    assert_eq!(idle.bronze_rows, 0);

    let gold = GoldPipeline::new(location.clone()).run().await.expect("gold");
    let revenue = gold.tables.iter().find(|t| t.table == "gold.revenue_per_product_day").expect("revenue");
    assert_eq!(revenue.days_recomputed, vec!["2023-01-01".to_owned()]);
    assert_eq!(revenue.lineage["silver.order_items"], items_table.version());
    let laptop =
        text(&lake, "SELECT CAST(revenue AS VARCHAR) FROM gold.revenue_per_product_day WHERE product_id = 'laptop'")
            .await;
    assert_eq!(laptop, vec!["5999.0000".to_owned()]);
    let mouse = text(&lake, "SELECT CAST(units AS VARCHAR) || ' ' || CAST(revenue AS VARCHAR) FROM gold.revenue_per_product_day WHERE product_id = 'mouse'").await;
    assert_eq!(mouse, vec!["2 199.0000".to_owned()], "order-2 was cancelled unpaid");
    let statuses =
        text(&lake, "SELECT status || '=' || CAST(orders AS VARCHAR) FROM gold.orders_by_status_day ORDER BY status")
            .await;
    assert_eq!(statuses, vec!["cancelled=1".to_owned(), "paid=1".to_owned()]);
    let balance = text(
        &lake,
        "SELECT CAST(closing_balance AS VARCHAR) FROM gold.account_balances_day WHERE account_id = 'acc-1'",
    )
    .await;
    assert_eq!(balance, vec!["3802.0000".to_owned()]);
    let lineage = gold.lineage_events().expect("lineage");
    assert!(lineage.iter().all(|e| e.event_type.to_string() == "lake.GoldUpdated.v1"));
    assert_eq!(lineage.len(), 3, "revenue, statuses, balances (no telemetry)");
    // The lineage is in the gold commit, and on lake.events as published.
    let revenue_table = lake.table_named("gold.revenue_per_product_day").await.expect("gold table");
    let info = &revenue_table.history(Some(1)).await.expect("history")[0].info;
    assert_eq!(info["lake.lineage"], serde_json::to_value(&revenue.lineage).expect("json"));
    bus.publish(topics::LAKE, &lineage).await.expect("publish lineage");
    let mut seen = None;
    while let Some(d) = reader.next(Duration::from_millis(200)).await.expect("next") {
        let e = d.envelope(usize::MAX).expect("event");
        if e.event_type.to_string() == "lake.GoldUpdated.v1" && e.subject == "gold.revenue_per_product_day" {
            seen = Some(e.data);
        }
    }
    assert_eq!(seen.expect("the lineage event came back")["lineage"], info["lake.lineage"]);

    // Nothing new: gold stays as it is.
    let idle = GoldPipeline::new(location.clone()).run().await.expect("gold");
    assert!(idle.tables.is_empty());
    // New silver rows: only their day is recomputed.
    bus.publish(
        topics::ORDERS,
        &[event("orders", "OrderShipped", "order-1", 6, json!({"shipping_address": "北京市朝阳区某某街道123号"}))],
    )
    .await
    .expect("publish");
    ingest(&bus, &location).await;
    SilverPipeline::new(location.clone()).expect("pipeline").run().await.expect("silver");
    let next = GoldPipeline::new(location.clone()).run().await.expect("gold");
    let by_status = next.tables.iter().find(|t| t.table == "gold.orders_by_status_day").expect("statuses");
    assert_eq!(by_status.days_recomputed, vec!["2023-01-01".to_owned()]);
    let statuses =
        text(&lake, "SELECT status || '=' || CAST(orders AS VARCHAR) FROM gold.orders_by_status_day ORDER BY status")
            .await;
    assert_eq!(statuses, vec!["cancelled=1".to_owned(), "shipped=1".to_owned()]);
    let stats = count(&lake, "SELECT total_records FROM gold.lake_statistics WHERE table_name = 'silver.orders'").await;
    assert_eq!(stats, 6);
    std::fs::remove_dir_all(&dir).ok();
}
