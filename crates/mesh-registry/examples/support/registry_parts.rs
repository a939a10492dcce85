//! The `validate` and `register` parts of `bench_registry` (included with
//! `#[path]`; not an example of its own).

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use domain_core::seeded::SplitMix64;
use domain_core::testkit::bench;
use mesh_registry::catalogue::RedbCatalogue;
use mesh_registry::quality::Meter;
use mesh_registry::registry::Registry;
use serde_json::{Value, json};

const NAME: &str = "registry";

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// The contract orders announces for its customers.
fn customer_documents() -> Result<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../orders/contracts/customer_data_v1.yaml");
    std::fs::read_to_string(path).map_err(|err| format!("{path}: {err}"))
}

/// `n` customer records, 10% of them invalid in one of three ways (fixed
/// seed), and how many are invalid.
fn customers(n: usize, seed: u64) -> (Vec<Value>, usize) {
    let mut rng = SplitMix64::new(seed);
    let mut invalid = 0;
    let segments = ["premium", "standard", "basic"];
    let out = (0..n)
        .map(|i| {
            let mut v = json!({
                "customer_id": format!("cust_{i:07}"),
                "name": format!("Customer {i}"),
                "email": format!("c{i}@example.com"),
                "registration_date": "2023-01-01",
                "status": if rng.chance(0.2) { "inactive" } else { "active" },
                "segment": segments[rng.below(3) as usize],
            });
            if rng.chance(0.1) {
                invalid += 1;
                match rng.below(3) {
                    0 => {
                        v.as_object_mut().map(|o| o.remove("email"));
                    }
                    1 => v["status"] = json!("sleeping"),
                    _ => v["registration_date"] = json!("yesterday"),
                }
            }
            v
        })
        .collect();
    (out, invalid)
}

/// Validation on one core: the full per-record measurement (schema, rules,
/// completeness, consistency) on parsed records, and with JSON parsing;
/// baseline: the seed's `validate_contract` check (are the required fields
/// there), on the same parsed records in the same run.
pub fn validate_part(quick: bool, figures: &mut Vec<Value>) -> Result<(), String> {
    let n = if quick { 200_000 } else { 1_000_000 };
    let text = customer_documents()?;
    let contract_text = text.split("\n---\n").next().ok_or("no contract document")?;
    let contract = mesh_registry::binding::parse_contract("customer_data_v1", contract_text).map_err(e)?;
    let expectations = mesh_registry::binding::expectations(&contract, Some("orders.events")).map_err(e)?;
    let (records, invalid) = customers(n, 20_261_201);
    let bytes: Vec<Vec<u8>> = records.iter().map(|r| serde_json::to_vec(r).unwrap_or_default()).collect();
    let now = Utc::now();

    // The seed's check: every required field present.
    let required = ["customer_id", "name", "email"];
    let t = Instant::now();
    let mut seed_ok = 0usize;
    for r in &records {
        seed_ok += usize::from(required.iter().all(|f| r.get(f).is_some()));
    }
    let seed_rate = n as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(seed_ok);

    // The schema alone.
    let schema = expectations.schema.as_ref().ok_or("the contract has a schema")?;
    let t = Instant::now();
    let mut valid = 0usize;
    for r in &records {
        valid += usize::from(schema.is_valid(r));
    }
    let schema_rate = n as f64 / t.elapsed().as_secs_f64();

    // Everything an enforcer does per record, on parsed records.
    let mut meter = Meter::default();
    let t = Instant::now();
    for r in &records {
        std::hint::black_box(meter.observe(&expectations, r, 1, None, now, now));
    }
    let parsed_rate = n as f64 / t.elapsed().as_secs_f64();
    let measured_invalid = meter.measure(&expectations, mesh_registry::quality::DEFAULT_WINDOW, now).totals.invalid;

    // The same with JSON parsing first.
    let mut meter = Meter::default();
    let t = Instant::now();
    for b in &bytes {
        let v: Value = serde_json::from_slice(b).map_err(e)?;
        std::hint::black_box(meter.observe(&expectations, &v, 1, None, now, now));
    }
    let json_rate = n as f64 / t.elapsed().as_secs_f64();
    if measured_invalid != invalid as u64 || n - valid != invalid {
        return Err(format!(
            "validation miscounted: {invalid} invalid sent, {measured_invalid} measured, {} schema-invalid",
            n - valid
        ));
    }
    eprintln!(
        "validate: {n} customer records ({invalid} invalid), one core: schema {schema_rate:.0}/s, measured {parsed_rate:.0}/s, with JSON parsing {json_rate:.0}/s; seed's required-field check {seed_rate:.0}/s"
    );
    let base = Some("the seed's validate_contract (required fields present), same records, same run (records/s)");
    figures.push(bench::figure(
        NAME,
        "validate_schema_only",
        schema_rate,
        "records/s",
        base,
        Some(schema_rate / seed_rate),
        "report",
    ));
    figures.push(bench::figure(
        NAME,
        "validate_parsed",
        parsed_rate,
        "records/s",
        base,
        Some(parsed_rate / seed_rate),
        ">=500000",
    ));
    figures.push(bench::figure(
        NAME,
        "validate_with_json",
        json_rate,
        "records/s",
        base,
        Some(json_rate / seed_rate),
        ">=200000",
    ));
    figures.push(bench::figure(NAME, "seed_required_fields_check", seed_rate, "records/s", None, None, "report"));
    Ok(())
}

/// A product file of product `i`: its own contract and the product.
fn product_file(i: usize) -> String {
    format!(
        "apiVersion: v3.1.0
kind: DataContract
id: bench.product_{i}
version: 1.0.0
status: active
schema:
  - name: records
    properties:
      - name: id
        logicalType: string
        required: true
      - name: amount_{i}
        logicalType: number
---
apiVersion: v1.0.0
kind: DataProduct
id: bench.product_{i}
name: Product {i}
description: Synthetic product number {i} for the registration benchmark
domain: domain_{}
owner: team_{}@company.com
version: 1.0.0
status: active
tags: [bench, tag_{}]
outputPorts:
  - name: out
    location: {{ type: kafka, topic: bench.events, key: id }}
    contractId: bench.product_{i}
    contractVersion: 1.0.0
",
        i % 12,
        i % 40,
        i % 25
    )
}

/// Registration of 10,000 products, each with its contract: one file at a
/// time (a durable catalogue write each) and all in one file; then what
/// opening the registry (re-indexing for search) costs. Baseline: the
/// seed's `register_product` (an insert into a dict), same products.
pub fn register_part(quick: bool, figures: &mut Vec<Value>) -> Result<(), String> {
    let n = if quick { 2_000 } else { 10_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(e)?;
    let files: Vec<String> = (0..n).map(product_file).collect();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("bench-registry-{}", uuid::Uuid::now_v7().simple()));
        let registry = Registry::open(Arc::new(RedbCatalogue::open(&dir).map_err(e)?)).await.map_err(e)?;
        let t = Instant::now();
        for (i, f) in files.iter().enumerate() {
            registry.register_text(&format!("p{i}.yaml"), f).await.map_err(e)?;
        }
        let one_by_one = t.elapsed().as_secs_f64();
        let found = registry.search("synthetic product", &Default::default(), 5).map_err(e)?.total;
        if found != n {
            return Err(format!("search finds {found} of {n} registered products"));
        }
        drop(registry);
        let t = Instant::now();
        let reopened = Registry::open(Arc::new(RedbCatalogue::open(&dir).map_err(e)?)).await.map_err(e)?;
        let reopen = t.elapsed().as_secs_f64();
        std::hint::black_box(reopened.search("product", &Default::default(), 5).map_err(e)?);
        drop(reopened);
        std::fs::remove_dir_all(&dir).ok();

        let dir = std::env::temp_dir().join(format!("bench-registry-{}", uuid::Uuid::now_v7().simple()));
        let registry = Registry::open(Arc::new(RedbCatalogue::open(&dir).map_err(e)?)).await.map_err(e)?;
        let all = files.join("---\n");
        let t = Instant::now();
        registry.register_text("all.yaml", &all).await.map_err(e)?;
        let one_file = t.elapsed().as_secs_f64();
        drop(registry);
        std::fs::remove_dir_all(&dir).ok();

        // The seed: `self._products[product.id] = product`.
        let t = Instant::now();
        let mut dict = std::collections::HashMap::new();
        for (i, f) in files.iter().enumerate() {
            dict.insert(format!("bench.product_{i}"), f.clone());
        }
        let seed = t.elapsed().as_secs_f64();
        std::hint::black_box(dict);
        eprintln!(
            "register: {n} products with their contracts: one file at a time {one_by_one:.2} s ({:.0}/s), one file {one_file:.2} s; reopening (re-indexing) {reopen:.2} s; seed dict insert {:.4} s",
            n as f64 / one_by_one,
            seed
        );
        let base = Some("the seed's register_product (a dict insert, nothing durable, nothing checked), same products (s)");
        figures.push(bench::figure(NAME, "register_one_by_one_s", one_by_one, "s", base, Some(one_by_one / seed), "report"));
        figures.push(bench::figure(NAME, "register_one_file_s", one_file, "s", base, Some(one_file / seed), "report"));
        figures.push(bench::figure(NAME, "reopen_and_reindex_s", reopen, "s", None, None, "report"));
        Ok(())
    })
}
