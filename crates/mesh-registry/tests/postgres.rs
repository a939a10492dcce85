//! Two registry instances sharing one PostgreSQL catalogue
//! (`DATABASE_URL`): what one registers the other serves, and racing
//! registrations of one contract version with different documents leave
//! exactly one.

mod common;

use std::sync::Arc;

use common::*;
use mesh_registry::Error;
use mesh_registry::catalogue::PostgresCatalogue;
use mesh_registry::registry::Registry;
use mesh_registry::search::SearchFilter;

fn url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
}

async fn instance(schema: &str) -> (Registry, Arc<PostgresCatalogue>) {
    let catalogue = Arc::new(PostgresCatalogue::connect(&url(), schema).await.expect("connect"));
    (Registry::open(Arc::clone(&catalogue) as _).await.expect("open"), catalogue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_catalogue() {
    let schema = format!("mesh_reg_test_{}", uuid::Uuid::now_v7().simple());
    let (a, catalogue) = instance(&schema).await;
    let (b, _) = instance(&schema).await;
    a.register_text("customers.yaml", &customer_documents()).await.expect("register on a");
    assert_eq!(b.product("customer_data_v1").await.expect("seen by b").name, "Customer Master Data");
    assert!(b.export("customer_data_v1", None).await.expect("contract on b").contains("customer_id"));
    // b indexes it when it sees the same announcement (a no-op write).
    let again = b.register_text("customers.yaml", &customer_documents()).await.expect("again on b");
    assert!(again.products.is_empty() && again.contracts.is_empty());
    assert_eq!(b.search("customer", &SearchFilter::default(), 5).expect("search").total, 1);
    // A third instance started later indexes the catalogue on open.
    let (c, _) = instance(&schema).await;
    assert_eq!(c.search("master data", &SearchFilter::default(), 5).expect("search").total, 1);

    // Racing versions of one contract with different documents: one wins.
    let contract = customer_documents().split("\n---\n").next().expect("contract").to_owned();
    let left = contract.replace("version: 1.0.0", "version: 1.1.0").replace("Core customer", "Left");
    let right = contract.replace("version: 1.0.0", "version: 1.1.0").replace("Core customer", "Right");
    let (ra, rb) = tokio::join!(a.register_text("left.yaml", &left), b.register_text("right.yaml", &right));
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    let loser = ra.err().or(rb.err()).expect("one refused");
    assert!(matches!(loser, Error::Duplicate { kind: "contract", .. }), "{loser}");
    assert_eq!(c.catalogue().contract_versions("customer_data_v1").await.expect("versions").len(), 2);
    catalogue.drop_schema().await.expect("drop");
}
