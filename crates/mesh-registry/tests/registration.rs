//! Registration rules: all of a file or nothing, the semver gate naming the
//! consumers a breaking change would break, the product lifecycle, and a
//! precise error for every kind of bad input.

mod common;

use std::sync::Arc;

use common::*;
use mesh_registry::Error;
use mesh_registry::catalogue::RedbCatalogue;
use mesh_registry::registry::Registry;
use mesh_registry::search::SearchFilter;

async fn fresh() -> (Registry, std::path::PathBuf) {
    let dir = temp_dir("reg");
    let registry = Registry::open(Arc::new(RedbCatalogue::open(&dir).expect("catalogue"))).await.expect("open");
    (registry, dir)
}

fn contract_of(documents: &str) -> String {
    documents.split("\n---\n").next().expect("contract").to_owned()
}

fn product_of(documents: &str) -> String {
    documents.split("\n---\n").nth(1).expect("product").to_owned()
}

/// A product of another team that reads the customer contract.
const CONSUMER: &str = r#"
apiVersion: v1.0.0
kind: DataProduct
id: orders.customer_360
name: Customer 360
domain: marketing
owner: marketing@company.com
version: 1.0.0
status: active
inputPorts:
  - { name: customers, contractId: customer_data_v1, contractVersion: 1.0.0 }
outputPorts:
  - name: profiles
    location: { type: lake, table: gold.customer_360 }
    contractId: customer_data_v1
    contractVersion: 1.0.0
"#;

#[tokio::test]
async fn a_breaking_change_without_a_major_bump_is_refused_naming_its_consumers() {
    let (registry, dir) = fresh().await;
    let docs = customer_documents();
    registry.register_text("customers.yaml", &docs).await.expect("register");
    registry.register_text("consumer.yaml", CONSUMER).await.expect("consumer");
    assert_eq!(registry.consumers_of("customer_data_v1").await.expect("consumers"), ["orders.customer_360"]);

    // Removing `segment` breaks readers of it.
    let contract = contract_of(&docs);
    let removed = contract
        .replace("version: 1.0.0", "version: 1.1.0")
        .replace("      - name: segment\n        logicalType: string\n", "");
    let err = registry.register_text("v1.1.yaml", &removed).await.expect_err("breaking");
    match &err {
        Error::BreakingChange { contract, from, to, changes, consumers } => {
            assert_eq!((contract.as_str(), from.as_str(), to.as_str()), ("customer_data_v1", "1.0.0", "1.1.0"));
            assert!(changes.iter().any(|c| c.path.contains("segment")), "{changes:?}");
            assert_eq!(consumers, &["orders.customer_360"]);
        }
        other => panic!("not a breaking-change refusal: {other}"),
    }
    assert!(err.to_string().contains("orders.customer_360"), "the message names the consumer: {err}");
    assert_eq!(registry.catalogue().contract_versions("customer_data_v1").await.expect("versions").len(), 1);

    // The same change with a major bump passes; a compatible one needs a
    // minor bump only.
    let major = removed.replace("version: 1.1.0", "version: 2.0.0");
    let done = registry.register_text("v2.yaml", &major).await.expect("major");
    assert_eq!(done.contracts[0].previous.as_deref(), Some("1.0.0"));
    let added = contract.replace("version: 1.0.0", "version: 1.1.0").replace(
        "      - name: segment\n",
        "      - name: nickname\n        logicalType: string\n      - name: segment\n",
    );
    let done = registry.register_text("v1.1.yaml", &added).await.expect("compatible");
    assert!(done.contracts[0].changes.iter().all(|c| !c.breaking));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_file_registers_whole_or_not_at_all() {
    let (registry, dir) = fresh().await;
    let docs = customer_documents();
    // The second document points at a contract version nobody has.
    let bad = format!("{docs}\n---\n{}", CONSUMER.replace("contractVersion: 1.0.0", "contractVersion: 9.0.0"));
    let err = registry.register_text("both.yaml", &bad).await.expect_err("refused");
    assert!(matches!(&err, Error::InvalidProduct { product, .. } if product == "orders.customer_360"), "{err}");
    assert!(registry.products().await.expect("products").is_empty(), "not even the valid product");
    assert!(registry.catalogue().contracts().await.expect("contracts").is_empty(), "nor its contract");
    assert_eq!(registry.search("customer", &SearchFilter::default(), 10).expect("search").total, 0);

    // Registering the same file twice is a no-op the second time.
    registry.register_text("customers.yaml", &docs).await.expect("first");
    let again = registry.register_text("customers.yaml", &docs).await.expect("again");
    assert!(again.contracts.is_empty() && again.products.is_empty() && again.unchanged.len() == 2, "{again:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn products_move_forward_through_their_lifecycle() {
    let (registry, dir) = fresh().await;
    let docs = customer_documents();
    registry.register_text("customers.yaml", &docs).await.expect("register");
    let product = product_of(&docs);
    let with = |status: &str, version: &str| {
        product
            .replace("status: active", &format!("status: {status}"))
            .replace("\nversion: 1.0.0", &format!("\nversion: {version}"))
    };
    let err = registry.register_text("p.yaml", &with("retired", "1.0.0")).await.expect_err("active -> retired");
    assert!(matches!(&err, Error::Lifecycle { from, to, .. } if from == "active" && to == "retired"), "{err}");
    registry.register_text("p.yaml", &with("deprecated", "1.0.0")).await.expect("active -> deprecated");
    let err = registry.register_text("p.yaml", &with("active", "1.0.1")).await.expect_err("deprecated -> active");
    assert!(matches!(err, Error::Lifecycle { .. }), "{err}");
    registry.register_text("p.yaml", &with("retired", "1.0.0")).await.expect("deprecated -> retired");
    // Retired products are hidden from search unless asked for.
    assert_eq!(registry.search("customer", &SearchFilter::default(), 10).expect("search").total, 0);
    let retired = SearchFilter { status: Some("retired".into()), ..SearchFilter::default() };
    assert_eq!(registry.search("customer", &retired, 10).expect("search").total, 1);

    // An older version, or other content under the same version, is refused.
    let err = registry.register_text("p.yaml", &with("retired", "0.9.0")).await.expect_err("older");
    assert!(matches!(&err, Error::InvalidProduct { path, .. } if path == "version"), "{err}");
    let changed = with("retired", "1.0.0").replace("Core customer information", "Other text");
    let err = registry.register_text("p.yaml", &changed).await.expect_err("same version, other content");
    assert!(matches!(err, Error::Duplicate { kind: "product", .. }), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn bad_input_gets_a_precise_error() {
    let (registry, dir) = fresh().await;
    let docs = customer_documents();
    let cases: Vec<(String, &str)> = vec![
        ("kind: DataContract\napiVersion: v3.1.0\nid: x\n  version: 1\n".into(), "line"),
        (contract_of(&docs).replace("status: active", "status: active\ncolour: blue"), "colour"),
        (contract_of(&docs).replace("version: 1.0.0", "version: 1.0"), "semantic version"),
        (
            contract_of(&docs)
                .replace("minLength: 1\n      - name: name", "pattern: \"[unclosed\"\n      - name: name"),
            "customers",
        ),
        ("apiVersion: v1.0.0\nkind: Dashboard\nid: x\n".into(), "neither DataContract nor DataProduct"),
        ("just: text\n".into(), "no `kind`"),
        (String::new(), "no document"),
    ];
    for (text, expected) in cases {
        let err = registry.register_text("bad.yaml", &text).await.expect_err(expected);
        assert!(err.to_string().contains(expected), "`{err}` should mention `{expected}`");
    }
    // A YAML error in a later document reports the line in the file.
    let later = format!("{}\n---\nid: [unclosed\n", contract_of(&docs));
    let err = registry.register_text("two.yaml", &later).await.expect_err("bad yaml");
    let first_lines = contract_of(&docs).lines().count();
    assert!(matches!(err, Error::Yaml { line, .. } if line > first_lines), "{err}");
    // The same id twice in one file, with different content.
    let product = product_of(&docs);
    let twice = format!("{docs}\n---\n{}", product.replace("Core customer information", "Other"));
    let err = registry.register_text("twice.yaml", &twice).await.expect_err("duplicate product");
    assert!(matches!(&err, Error::Duplicate { kind: "product", id, .. } if id == "customer_data_v1"), "{err}");
    let contract = contract_of(&docs);
    let twice = format!("{contract}\n---\n{}", contract.replace("Core customer information", "Other"));
    let err = registry.register_text("twice.yaml", &twice).await.expect_err("duplicate contract");
    assert!(matches!(&err, Error::Duplicate { kind: "contract", .. }), "{err}");
    // Unknown ids are typed not-founds.
    assert!(matches!(registry.product("nope").await, Err(Error::NotFound { kind: "product", .. })));
    assert!(matches!(registry.export("nope", None).await, Err(Error::NotFound { kind: "contract", .. })));
    assert!(matches!(registry.quality("nope").await, Err(Error::NotFound { kind: "product", .. })));
    assert!(registry.products().await.expect("products").is_empty());
    std::fs::remove_dir_all(dir).ok();
}

/// Each kind of breaking change, through the registry: refused under a
/// minor bump naming the consumer, accepted under a major one; and the
/// compatible changes accepted under a minor bump.
#[tokio::test]
async fn every_kind_of_breaking_change_names_the_consumers_and_compatible_ones_pass() {
    let contract = contract_of(&customer_documents());
    let segment = "      - name: segment\n        logicalType: string\n";
    let breaking: Vec<(&str, String)> = vec![
        ("property removed", contract.replace(segment, "")),
        ("type changed", contract.replace(segment, "      - name: segment\n        logicalType: integer\n")),
        (
            "newly required",
            contract.replace(segment, "      - name: segment\n        logicalType: string\n        required: true\n"),
        ),
        ("enum narrowed", contract.replace("validValues: [active, inactive]", "validValues: [active]")),
        (
            "format tightened",
            contract.replace(
                segment,
                "      - name: segment\n        logicalType: string\n        logicalTypeOptions:\n          pattern: \"^[a-z]+$\"\n",
            ),
        ),
        ("maxLength lowered", contract.replace("          minLength: 1\n      - name: name", "          minLength: 1\n          maxLength: 8\n      - name: name")),
        ("key changed", contract.replace("        primaryKey: true\n", "")),
    ];
    for (kind, text) in breaking {
        assert_ne!(text, contract, "{kind}: the edit applied");
        let (registry, dir) = fresh().await;
        registry.register_text("customers.yaml", &customer_documents()).await.expect("register");
        registry.register_text("consumer.yaml", CONSUMER).await.expect("consumer");
        let minor = text.replace("version: 1.0.0", "version: 1.1.0");
        match registry.register_text("minor.yaml", &minor).await {
            Err(Error::BreakingChange { consumers, changes, .. }) => {
                assert_eq!(consumers, ["orders.customer_360"], "{kind}");
                assert!(changes.iter().all(|c| c.breaking), "{kind}: {changes:?}");
            }
            other => panic!("{kind}: a minor bump must be refused, got {other:?}"),
        }
        let major = text.replace("version: 1.0.0", "version: 2.0.0");
        registry.register_text("major.yaml", &major).await.unwrap_or_else(|e| panic!("{kind} under 2.0.0: {e}"));
        std::fs::remove_dir_all(dir).ok();
    }
    let compatible: Vec<(&str, String)> = vec![
        (
            "optional property added",
            contract.replace(segment, &format!("{segment}      - name: nickname\n        logicalType: string\n")),
        ),
        (
            "enum widened",
            contract.replace("validValues: [active, inactive]", "validValues: [active, inactive, closed]"),
        ),
        ("description changed", contract.replace("Core customer information", "Customer information")),
        ("minLength dropped", contract.replacen("        logicalTypeOptions:\n          minLength: 1\n", "", 1)),
    ];
    for (kind, text) in compatible {
        let (registry, dir) = fresh().await;
        registry.register_text("customers.yaml", &customer_documents()).await.expect("register");
        registry.register_text("consumer.yaml", CONSUMER).await.expect("consumer");
        let minor = text.replace("version: 1.0.0", "version: 1.1.0");
        let done = registry.register_text("minor.yaml", &minor).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(done.contracts[0].changes.iter().all(|c| !c.breaking), "{kind}: {:?}", done.contracts[0].changes);
        std::fs::remove_dir_all(dir).ok();
    }
}
