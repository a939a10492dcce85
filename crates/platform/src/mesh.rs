//! `demo_data_mesh` on the real registry: the orders context announces the
//! seed's Customer Master Data product on `mesh.events` and writes the
//! seed's customers; the registry registers the announcement, enforces the
//! product's contract on `orders.events`, and answers the seed's query,
//! search and quality check from what flowed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use domain_core::bus::{Consumer, EventBus, RetryPolicy, topics};
use mesh_registry::catalogue::RedbCatalogue;
use mesh_registry::enforcer::EnforcerConfig;
use mesh_registry::product::DataProduct;
use mesh_registry::quality::Measurement;
use mesh_registry::registry::{Answer, Registry};
use mesh_registry::search::SearchFilter;
use mesh_registry::service::{ANNOUNCEMENTS_GROUP, Announcements, Enforcement};
use orders::customers::{self, Customers};
use serde_json::{Value, json};

use crate::commerce::Commerce;
use crate::error::{Error, Result};

/// How long the demo waits for the registry to see what was sent.
const WAIT: Duration = Duration::from_secs(120);

/// Registers what is announced on `mesh.events` until `done` says enough.
async fn take_announcements(
    bus: &Arc<dyn EventBus>,
    prefix: &str,
    registry: &Arc<Registry>,
    done: impl AsyncFn(&Registry) -> Result<bool>,
) -> Result<()> {
    let topic = format!("{prefix}{}", topics::MESH);
    let sub = bus.subscribe(&format!("{prefix}{ANNOUNCEMENTS_GROUP}"), &[topic.as_str()]).await?;
    let mut consumer = Consumer::new(sub, RetryPolicy::default()).with_max_record_bytes(bus.max_record_bytes());
    let handler = Announcements::new(Arc::clone(registry));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(registry).await? {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "the registry did not see the announcements within {} s",
                WAIT.as_secs()
            )));
        }
        consumer.poll_batch(&handler, 100, Duration::from_millis(200)).await?;
    }
    consumer.close().await?;
    Ok(())
}

/// Runs `demo_data_mesh` (see the module doc) with the registry's
/// catalogue in `DIR/mesh-registry`; `announcements` are what the other
/// contexts publish on `mesh.events` besides orders.
pub async fn data_mesh(
    c: &mut Commerce,
    data: &Path,
    prefix: &str,
    announcements: Vec<domain_core::Envelope>,
) -> Result<Value> {
    let bus = Arc::clone(c.node().bus());
    let registry = Arc::new(Registry::open(Arc::new(RedbCatalogue::open(data.join("mesh-registry"))?)).await?);
    let mut sent = vec![customers::announcement()?];
    sent.extend(announcements);
    let expected = sent.len();
    bus.publish(&format!("{prefix}{}", topics::MESH), &sent).await?;
    take_announcements(&bus, prefix, &registry, async |r: &Registry| Ok(r.products().await?.len() >= expected)).await?;
    let product = registry.product(customers::PRODUCT_ID).await?;

    // The customers flow the way every orders event does: store, outbox,
    // orders.events.
    let people = Customers::new(Arc::clone(c.orders.store()));
    let seed = customers::seed_customers();
    for p in &seed {
        people.upsert(p.clone()).await?;
    }
    c.settle(WAIT).await?;

    let config =
        EnforcerConfig { measure_every: Duration::ZERO, prefix: prefix.to_owned(), ..EnforcerConfig::default() };
    let enforcement = Enforcement::new(Arc::clone(&registry), Arc::clone(&bus), config);
    enforcement.sync().await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let measured = loop {
        let q = registry.quality(customers::PRODUCT_ID).await?;
        if let Some(m) = q.into_iter().find_map(|p| p.measurement)
            && m.totals.records >= seed.len() as u64
        {
            break m;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Usage("the registry did not measure the customer records in time".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    enforcement.shutdown().await?;
    // Search ranks by the quality just measured.
    registry.refresh_quality(customers::PRODUCT_ID).await?;

    let by_id = BTreeMap::from([("customer_id".to_owned(), "cust_001".to_owned())]);
    let customer = match registry.query(customers::PRODUCT_ID, "get_customer_by_id", &by_id).await? {
        Answer::One(v) => v,
        Answer::Many(mut vs) => vs.pop().unwrap_or(Value::Null),
    };
    let all = match registry.query(customers::PRODUCT_ID, "get_all_customers", &BTreeMap::new()).await? {
        Answer::Many(vs) => vs,
        Answer::One(v) => vec![v],
    };
    let found = registry.search("customer", &SearchFilter::default(), 10)?;
    let mut search_results = Vec::new();
    for hit in &found.hits {
        let p = registry.product(&hit.id).await?;
        search_results.push(json!({ "id": p.id, "name": p.name, "description": p.description, "score": hit.score }));
    }
    let products: Vec<DataProduct> = registry.products().await?;
    Ok(summary(&product, customer, all, search_results, &measured, &products))
}

/// `demo_data_mesh`'s summary from what the registry answered (in this
/// process or over its API): the registered product, the seed's query
/// answers, search hits, and the quality measured from what flowed.
pub fn summary(
    product: &DataProduct,
    customer: Value,
    all: Vec<Value>,
    search_results: Vec<Value>,
    measured: &Measurement,
    products: &[DataProduct],
) -> Value {
    let t = &measured.totals;
    let products: Vec<Value> = products
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.name, "domain": p.domain, "status": p.status, "version": p.version }))
        .collect();
    json!({
        "registered_data_product": product.name,
        "registered_contract_for_product": product.output_ports.first().map(|o| o.contract.to_string()),
        "endpoints": product.endpoints(),
        "customer_data": customer,
        "all_customers": all,
        "search_results": search_results,
        "quality_metrics": {
            "completeness": t.completeness,
            "accuracy": t.accuracy,
            "timeliness": t.timeliness,
            "consistency": t.consistency,
        },
        "records_measured": t.records,
        "invalid_records": t.invalid,
        "quality_rules": measured.rules,
        "products": products,
    })
}
