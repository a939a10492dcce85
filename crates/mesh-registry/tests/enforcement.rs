//! The registry on the in-process bus: registration through announcements,
//! enforcement of the announced port, quality measured from what flowed,
//! violations with samples, and the product's named queries.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use domain_core::bus::{Consumer, EventBus, InProcessBus, RetryPolicy, TopicSpec, topics};
use mesh_registry::catalogue::RedbCatalogue;
use mesh_registry::enforcer::EnforcerConfig;
use mesh_registry::registry::{Answer, Registry};
use mesh_registry::search::SearchFilter;
use mesh_registry::service::{ANNOUNCEMENTS_GROUP, Announcements, Enforcement};
use mesh_registry::{Error, quality::Scores};
use serde_json::json;

async fn drain_announcements(bus: &InProcessBus, registry: &Arc<Registry>) {
    let sub = bus.subscribe(ANNOUNCEMENTS_GROUP, &[topics::MESH]).await.expect("subscribe");
    let mut consumer = Consumer::new(sub, RetryPolicy { max_attempts: 1, ..RetryPolicy::default() });
    let handler = Announcements::new(Arc::clone(registry));
    while consumer.poll_batch(&handler, 100, Duration::from_millis(200)).await.expect("poll") > 0 {}
    consumer.close().await.expect("close");
}

async fn wait_for_records(registry: &Registry, product: &str, n: u64) -> Scores {
    for _ in 0..200 {
        let q = registry.quality(product).await.expect("quality");
        if let Some(m) = q.first().and_then(|p| p.measurement.clone())
            && m.totals.records >= n
        {
            return m.totals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the enforcer did not read {n} records in 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_product_is_enforced_measured_and_served() {
    let bus = Arc::new(InProcessBus::new());
    bus.create_topics(&[TopicSpec::new(topics::MESH, 1), TopicSpec::new(topics::ORDERS, 3)]).await.expect("topics");
    let dir = temp_dir("enforce");
    let registry =
        Arc::new(Registry::open(Arc::new(RedbCatalogue::open(&dir).expect("catalogue"))).await.expect("open"));

    bus.publish(topics::MESH, &[announcement(&customer_documents())]).await.expect("announce");
    drain_announcements(&bus, &registry).await;
    let product = registry.product("customer_data_v1").await.expect("registered through the announcement");
    assert_eq!(product.endpoints(), ["get_customer_by_id", "get_all_customers"]);

    // 100 customer records, every tenth invalid (the last does not even
    // decode), with order events between them that the port skips.
    let mut records = Vec::new();
    for i in 0..100 {
        let env = if i % 10 == 9 { invalid_customer(i) } else { registered(customer(i)) };
        if i == 99 {
            records.push(garbled(i));
        } else {
            records.push(domain_core::codec::encode(&env).expect("encode"));
        }
        records.push(domain_core::codec::encode(&unrelated(i)).expect("encode"));
    }
    bus.publish_records(topics::ORDERS, records).await.expect("publish");

    let config = EnforcerConfig { measure_every: Duration::from_millis(0), ..EnforcerConfig::default() };
    let enforcement = Enforcement::new(Arc::clone(&registry), Arc::clone(&bus) as Arc<dyn EventBus>, config);
    assert_eq!(enforcement.sync().await.expect("sync"), 1, "one Kafka output port to enforce");
    let totals = wait_for_records(&registry, "customer_data_v1", 100).await;
    enforcement.shutdown().await.expect("shutdown");

    assert_eq!(totals.records, 100, "order events are not the port's records");
    assert_eq!(totals.invalid, 10);
    assert_eq!(totals.accuracy, Some(0.90));
    // Three lack an email, and the garbled one has nothing at all.
    assert_eq!(totals.completeness, Some(0.96));
    assert_eq!(totals.timeliness, Some(0.99));
    assert_eq!(totals.consistency, Some(0.99));

    // The named queries answer from what flowed.
    let by_id = |id: &str| BTreeMap::from([("customer_id".to_owned(), id.to_owned())]);
    let one = registry.query("customer_data_v1", "get_customer_by_id", &by_id("cust_001")).await.expect("query");
    assert!(matches!(&one, Answer::One(v) if v["name"] == "张三" && v["segment"] == "premium"), "{one:?}");
    let inactive = BTreeMap::from([("status".to_owned(), "inactive".to_owned())]);
    let Answer::Many(list) = registry.query("customer_data_v1", "get_all_customers", &inactive).await.expect("list")
    else {
        panic!("a list query answers a list")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["customer_id"], "cust_003");
    let Answer::Many(all) =
        registry.query("customer_data_v1", "get_all_customers", &BTreeMap::new()).await.expect("all")
    else {
        panic!("a list")
    };
    assert_eq!(all.len(), 90, "invalid records are not served");
    // What is not there gets a typed error.
    let missing = registry.query("customer_data_v1", "get_customer_by_id", &by_id("cust_010")).await;
    assert!(matches!(missing, Err(Error::NotFound { kind: "record", .. })), "{missing:?}");
    let endpoint = registry.query("customer_data_v1", "get_orders", &BTreeMap::new()).await;
    assert!(matches!(&endpoint, Err(Error::InvalidQuery(m)) if m.contains("get_customer_by_id")), "{endpoint:?}");
    let product = registry.query("nope", "get_customer_by_id", &by_id("cust_001")).await;
    assert!(matches!(product, Err(Error::NotFound { kind: "product", .. })), "{product:?}");
    let param = registry.query("customer_data_v1", "get_customer_by_id", &BTreeMap::new()).await;
    assert!(matches!(&param, Err(Error::InvalidQuery(m)) if m.contains("customer_id=VALUE")), "{param:?}");

    // The registry's own events: violations with samples, measurements.
    let mut sub = bus.subscribe("test.reader", &[topics::MESH]).await.expect("subscribe");
    let mut violated = 0;
    let mut samples = Vec::new();
    let mut measured = 0;
    while let Some(d) = sub.next(Duration::from_millis(200)).await.expect("next") {
        let env = d.envelope(usize::MAX).expect("decode");
        match env.event_type.to_string().as_str() {
            "mesh.ContractViolated.v1" => {
                violated += env.data["invalid_records"].as_u64().expect("count");
                samples.extend(env.data["samples"].as_array().expect("samples").clone());
            }
            "mesh.QualityMeasured.v1" => measured += 1,
            _ => {}
        }
    }
    assert_eq!(violated, 10);
    assert!(measured >= 1);
    assert!(!samples.is_empty() && samples.len() <= 10);
    let described: Vec<String> = samples
        .iter()
        .flat_map(|s| s["errors"].as_array().cloned().unwrap_or_default())
        .map(|e| e.to_string())
        .collect();
    assert!(described.iter().any(|e| e.contains("email")), "{described:?}");

    // Search finds it, by word and by prefix, ranked with its quality.
    let hits = registry.search("customer", &SearchFilter::default(), 10).expect("search");
    assert_eq!(hits.hits.first().map(|h| h.id.as_str()), Some("customer_data_v1"));
    let hits = registry.search("cust", &SearchFilter::default(), 10).expect("search");
    assert_eq!(hits.total, 1);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_announcement_registers_nothing_and_goes_to_the_dlq() {
    let bus = InProcessBus::new();
    bus.create_topics(&[TopicSpec::new(topics::MESH, 1)]).await.expect("topics");
    let dir = temp_dir("refused");
    let registry =
        Arc::new(Registry::open(Arc::new(RedbCatalogue::open(&dir).expect("catalogue"))).await.expect("open"));
    // The product points at a contract version nobody registered.
    let documents = customer_documents().replace("contractVersion: 1.0.0", "contractVersion: 2.0.0");
    bus.publish(topics::MESH, &[announcement(&documents)]).await.expect("announce");
    drain_announcements(&bus, &registry).await;
    assert!(registry.products().await.expect("products").is_empty());
    assert!(registry.catalogue().contracts().await.expect("contracts").is_empty(), "nor its contract");
    let mut dlq = bus.subscribe("test.dlq", &[&topics::dlq(topics::MESH)]).await.expect("dlq");
    let d = dlq.next(Duration::from_secs(2)).await.expect("next").expect("dead-lettered");
    let error = String::from_utf8_lossy(d.record.header("dlq_error").expect("error header")).into_owned();
    assert!(error.contains("customer_data_v1@2.0.0") && error.contains("not registered"), "{error}");
    std::fs::remove_dir_all(dir).ok();
    let _ = json!(null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_the_lake_reports_joins_the_product_view() {
    use domain_core::bus::{Delivery, SharedHandler};
    let dir = temp_dir("reported");
    let registry =
        Arc::new(Registry::open(Arc::new(RedbCatalogue::open(&dir).expect("catalogue"))).await.expect("open"));
    let documents = customer_documents().replace(
        "    queries:\n      - { kind: byKey, name: get_customer_by_id, param: customer_id }\n      - { kind: list, name: get_all_customers }\n",
        "    queries:\n      - { kind: byKey, name: get_customer_by_id, param: customer_id }\n      - { kind: list, name: get_all_customers }\n  - name: gold\n    location: { type: lake, table: gold.customers }\n    contractId: customer_data_v1\n    contractVersion: 1.0.0\n",
    );
    registry.register_text("customers.yaml", &documents).await.expect("register");
    let handler = Announcements::new(Arc::clone(&registry));
    let report = |port: &str| {
        domain_core::Envelope::raw(
            "lake",
            domain_core::EventType::new("lake", "QualityMeasured", 1).expect("type"),
            "gold.customers",
            1,
            json!({ "product_id": "customer_data_v1", "port": port, "quality": 0.75, "rows": 1200, "quarantined": 300 }),
        )
    };
    let delivery = |env: &domain_core::Envelope| Delivery {
        topic: topics::MESH.into(),
        partition: 0,
        offset: 0,
        record: domain_core::codec::encode(env).expect("encode"),
    };
    let env = report("gold");
    handler.handle(&env, &delivery(&env)).await.expect("taken");
    let ports = registry.quality("customer_data_v1").await.expect("quality");
    let gold = ports.iter().find(|p| p.port == "gold").expect("the lake port's report");
    assert_eq!(gold.reported.as_ref().map(|r| r["quarantined"].clone()), Some(json!(300)));
    // A report about a Kafka port (which the registry measures itself) or
    // an unknown port is refused, for the DLQ.
    for port in ["customers", "silver"] {
        let env = report(port);
        let err = handler.handle(&env, &delivery(&env)).await.expect_err(port);
        assert!(matches!(err, domain_core::Error::Rejected(_)), "{err}");
    }
    std::fs::remove_dir_all(dir).ok();
}
