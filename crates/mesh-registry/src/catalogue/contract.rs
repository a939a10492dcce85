//! The suite every [`Catalogue`] adapter passes (`catalogue_suite!` makes
//! one test of each function for an adapter).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::{Catalogue, PortCheckpoint, Registration, StoredContract, StoredRecord};
use crate::Error;
use crate::product::{ContractRef, DataProduct, OutputPort, PortLocation, ProductStatus, Sla};

pub fn contract(id: &str, version: &str, doc: &str) -> StoredContract {
    StoredContract {
        id: id.into(),
        version: version.into(),
        document: doc.into(),
        registered_at: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).single().expect("time"),
    }
}

pub fn product(id: &str, contract_version: &str) -> DataProduct {
    DataProduct {
        api_version: crate::product::PRODUCT_API_VERSION.into(),
        kind: crate::product::PRODUCT_KIND.into(),
        id: id.into(),
        name: format!("Product {id}"),
        description: "客户 data".into(),
        domain: "orders".into(),
        owner: "customer_team@company.com".into(),
        version: "1.0.0".into(),
        status: ProductStatus::Active,
        tags: vec!["customer".into()],
        sla: Sla::default(),
        dependencies: vec![],
        input_ports: vec![],
        output_ports: vec![OutputPort {
            name: "out".into(),
            description: String::new(),
            location: PortLocation::Kafka { topic: "orders.events".into(), event_types: vec![], key: None },
            contract: ContractRef { contract_id: "c".into(), contract_version: contract_version.into() },
            queries: vec![],
        }],
    }
}

fn record(key: &str, value: serde_json::Value, offset: i64) -> StoredRecord {
    StoredRecord { key: key.into(), value, version: 1, partition: 0, offset, time: Utc::now() }
}

pub async fn write_sample(cat: &dyn Catalogue) {
    let reg = Registration {
        contracts: vec![contract("c", "1.0.0", "a"), contract("c", "1.10.0", "c"), contract("c", "1.9.0", "b")],
        products: vec![product("p1", "1.0.0"), product("p0", "1.9.0")],
    };
    cat.register(&reg).await.expect("register");
    let cp = PortCheckpoint { next_offsets: BTreeMap::from([(0, 3), (2, 7)]), state: json!({"seen": 10}) };
    cat.advance("p1/out", &cp, &[record("cust_001", json!({"name": "张三"}), 2)]).await.expect("advance");
}

pub async fn sample_is_there(cat: &dyn Catalogue) {
    let versions: Vec<String> =
        cat.contract_versions("c").await.expect("versions").into_iter().map(|c| c.version).collect();
    assert_eq!(versions, ["1.0.0", "1.9.0", "1.10.0"], "semver order, not text order");
    let ids: Vec<String> = cat.products().await.expect("products").into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["p0", "p1"]);
    assert_eq!(cat.product("p1").await.expect("product"), Some(product("p1", "1.0.0")));
    let cp = cat.checkpoint("p1/out").await.expect("checkpoint").expect("stored");
    assert_eq!(cp.next_offsets, BTreeMap::from([(0, 3), (2, 7)]));
    assert_eq!(cp.state, json!({"seen": 10}));
    let r = cat.record("p1/out", "cust_001").await.expect("record").expect("stored");
    assert_eq!(r.value, json!({"name": "张三"}));
}

pub async fn registration_round_trips(cat: &dyn Catalogue) {
    write_sample(cat).await;
    sample_is_there(cat).await;
    assert_eq!(cat.contracts().await.expect("all").len(), 3);
    assert!(cat.product("nope").await.expect("read").is_none());
    assert!(cat.contract_versions("nope").await.expect("read").is_empty());
}

pub async fn a_conflicting_contract_writes_nothing_of_its_registration(cat: &dyn Catalogue) {
    cat.register(&Registration { contracts: vec![contract("c", "1.0.0", "a")], products: vec![] })
        .await
        .expect("first");
    // The same document again is a no-op.
    cat.register(&Registration { contracts: vec![contract("c", "1.0.0", "a")], products: vec![] })
        .await
        .expect("same again");
    let clash = Registration {
        contracts: vec![contract("d", "1.0.0", "new"), contract("c", "1.0.0", "other")],
        products: vec![product("p9", "1.0.0")],
    };
    let err = cat.register(&clash).await.expect_err("clash");
    assert!(
        matches!(&err, Error::Duplicate { kind: "contract", id, version } if id == "c" && version == "1.0.0"),
        "{err}"
    );
    assert!(cat.product("p9").await.expect("read").is_none(), "the product of a refused registration is not written");
    assert!(cat.contract_versions("d").await.expect("read").is_empty(), "nor its other contracts");
    assert_eq!(cat.contract_versions("c").await.expect("read")[0].document, "a");
}

pub async fn a_product_document_is_replaced(cat: &dyn Catalogue) {
    cat.register(&Registration { contracts: vec![], products: vec![product("p", "1.0.0")] }).await.expect("one");
    let mut newer = product("p", "1.1.0");
    newer.status = ProductStatus::Deprecated;
    cat.register(&Registration { contracts: vec![], products: vec![newer.clone()] }).await.expect("two");
    assert_eq!(cat.products().await.expect("all"), vec![newer]);
}

pub async fn records_upsert_and_filter(cat: &dyn Catalogue) {
    let cp = |n: i64| PortCheckpoint { next_offsets: BTreeMap::from([(0, n)]), state: json!(n) };
    let batch = [
        record("cust_001", json!({"name": "张三", "status": "active", "age": 30}), 0),
        record("cust_002", json!({"name": "李四", "status": "active"}), 1),
        record("cust_003", json!({"name": "王五", "status": "inactive"}), 2),
        // The same key twice in one batch: the later wins.
        record("cust_002", json!({"name": "李四", "status": "inactive"}), 3),
    ];
    cat.advance("port", &cp(4), &batch).await.expect("advance");
    cat.advance("other", &cp(1), &[record("cust_001", json!({"other": true}), 0)]).await.expect("advance");
    let keys = |rs: Vec<StoredRecord>| rs.into_iter().map(|r| r.key).collect::<Vec<_>>();
    let all = cat.records("port", &BTreeMap::new(), 100).await.expect("all");
    assert_eq!(keys(all), ["cust_001", "cust_002", "cust_003"]);
    let inactive = BTreeMap::from([("status".to_owned(), json!("inactive"))]);
    assert_eq!(keys(cat.records("port", &inactive, 100).await.expect("filter")), ["cust_002", "cust_003"]);
    let age = BTreeMap::from([("age".to_owned(), json!("30"))]);
    assert_eq!(keys(cat.records("port", &age, 100).await.expect("text matches number")), ["cust_001"]);
    assert_eq!(cat.records("port", &BTreeMap::new(), 2).await.expect("limit").len(), 2);
    assert!(cat.records("nope", &BTreeMap::new(), 10).await.expect("none").is_empty());
    // Records move with the checkpoint.
    cat.advance("port", &cp(5), &[record("cust_001", json!({"name": "张三", "status": "inactive"}), 4)])
        .await
        .expect("advance");
    assert_eq!(cat.checkpoint("port").await.expect("cp").expect("stored").state, json!(5));
    assert_eq!(cat.record("port", "cust_001").await.expect("r").expect("stored").offset, 4);
    assert!(cat.checkpoint("nope").await.expect("cp").is_none());
}

/// One test per suite function for an adapter: `catalogue_suite!(ctor)` or
/// `catalogue_suite!(ctor, cleanup)` where `cleanup` takes the catalogue.
#[macro_export]
#[doc(hidden)]
macro_rules! catalogue_suite {
    ($make:expr) => {
        $crate::catalogue_suite!($make, |_c| async {});
    };
    ($make:expr, $cleanup:expr) => {
        $crate::catalogue_suite!(@each $make, $cleanup;
            registration_round_trips,
            a_conflicting_contract_writes_nothing_of_its_registration,
            a_product_document_is_replaced,
            records_upsert_and_filter);
    };
    (@each $make:expr, $cleanup:expr; $($name:ident),*) => {$(
        #[tokio::test]
        async fn $name() {
            let cat = $make;
            $crate::catalogue::contract::$name(&cat).await;
            ($cleanup)(cat).await;
        }
    )*};
}
