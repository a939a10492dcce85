//! The registry on real Kafka (`KAFKA_BOOTSTRAP`): a producer sending 10%
//! invalid customer records is measured at 10%, with violation events
//! carrying samples; and a registry killed with SIGKILL in the middle of
//! enforcing, then started again, keeps what it registered and counts every
//! record exactly once.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use domain_core::bus::{EventBus, Record, TopicSpec, topics};
use domain_core::seeded::SplitMix64;
use kafka_bus::KafkaBus;
use mesh_registry::catalogue::RedbCatalogue;
use mesh_registry::enforcer::{Enforcer, EnforcerConfig, PortSpec};
use mesh_registry::registry::Registry;
use mesh_registry::service::Enforcement;

fn bus() -> Arc<KafkaBus> {
    Arc::new(KafkaBus::from_env().unwrap_or_else(|e| panic!("{e}")))
}

/// `n` customer records, about 10% invalid (fixed seed); returns them with
/// how many are invalid.
fn workload(n: usize, seed: u64) -> (Vec<Record>, usize) {
    let mut rng = SplitMix64::new(seed);
    let mut invalid = 0;
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let env = if rng.chance(0.1) {
            invalid += 1;
            invalid_customer(i)
        } else {
            registered(customer(i))
        };
        records.push(domain_core::codec::encode(&env).expect("encode"));
    }
    (records, invalid)
}

async fn setup(prefix: &str) -> Arc<KafkaBus> {
    let bus = bus();
    bus.create_topics(&[
        TopicSpec::new(format!("{prefix}{}", topics::ORDERS), 3),
        TopicSpec::new(format!("{prefix}{}", topics::MESH), 1),
    ])
    .await
    .expect("topics");
    bus
}

async fn registry_in(dir: &std::path::Path) -> Arc<Registry> {
    let catalogue = Arc::new(RedbCatalogue::open(dir).expect("catalogue"));
    Arc::new(Registry::open(catalogue).await.expect("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_invalid_events_are_measured_as_ten_percent_with_samples() {
    let prefix = format!("{}.", domain_core::bus::contract::unique("mesh-q"));
    let bus = setup(&prefix).await;
    let dir = temp_dir("kafka-q");
    let registry = registry_in(&dir).await;
    registry.register_text("customers.yaml", &customer_documents()).await.expect("register");

    let n = 5_000;
    let (records, invalid) = workload(n, 20_261_201);
    bus.publish_records(&format!("{prefix}{}", topics::ORDERS), records).await.expect("publish");

    let config = EnforcerConfig { prefix: prefix.clone(), ..EnforcerConfig::default() };
    let enforcement = Enforcement::new(Arc::clone(&registry), Arc::clone(&bus) as Arc<dyn EventBus>, config);
    assert_eq!(enforcement.sync().await.expect("sync"), 1);
    let mut totals = None;
    for _ in 0..600 {
        let q = registry.quality("customer_data_v1").await.expect("quality");
        if let Some(m) = q.into_iter().find_map(|p| p.measurement)
            && m.totals.records >= n as u64
        {
            totals = Some(m.totals);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    enforcement.shutdown().await.expect("shutdown");
    let totals = totals.expect("the enforcer read every record within a minute");
    assert_eq!(totals.records, n as u64);
    assert_eq!(totals.invalid, invalid as u64, "each invalid record counted once");
    let invalid_share = 1.0 - totals.accuracy.expect("accuracy");
    assert!((invalid_share - 0.10).abs() < 0.01, "{invalid_share} is not within a point of 10%");

    // The violations reached mesh.events with samples.
    let mut sub =
        bus.subscribe(&format!("{prefix}reader"), &[&format!("{prefix}{}", topics::MESH)]).await.expect("sub");
    let (mut reported, mut samples) = (0u64, 0usize);
    while let Some(d) = sub.next(Duration::from_secs(3)).await.expect("next") {
        let env = d.envelope(usize::MAX).expect("decode");
        if env.event_type.to_string() == "mesh.ContractViolated.v1" {
            reported += env.data["invalid_records"].as_u64().expect("count");
            let s = env.data["samples"].as_array().expect("samples");
            assert!(!s.is_empty() && s.len() <= 5);
            assert!(s.iter().all(|x| x["errors"].as_array().is_some_and(|e| !e.is_empty())), "{s:?}");
            samples += s.len();
        }
        if reported >= invalid as u64 {
            break;
        }
    }
    assert_eq!(reported, invalid as u64);
    assert!(samples > 0);
    sub.close().await.expect("close");
    std::fs::remove_dir_all(dir).ok();
}

const CHILD_ENV: &str = "MESH_REGISTRY_KILL_CHILD";
const TOTAL: usize = 6_000;

/// The child: enforces the customer port in small batches, printing how
/// many records it has counted after each checkpoint, until killed.
async fn enforce_until_killed(spec: &str) {
    let (dir, prefix) = spec.split_once('|').expect("dir|prefix");
    let bus = bus();
    let registry = registry_in(std::path::Path::new(dir)).await;
    let product = registry.product("customer_data_v1").await.expect("registered before the crash");
    let spec = PortSpec::of(&product, &product.output_ports[0]).expect("kafka port");
    let expectations = registry.expectations("customer_data_v1", "1.0.0", Some(&spec.topic)).await.expect("exp");
    let config = EnforcerConfig { batch: 50, prefix: prefix.to_owned(), ..EnforcerConfig::default() };
    let mut enforcer = Enforcer::open(spec, Arc::new(expectations), Arc::clone(registry.catalogue()), bus, config)
        .await
        .expect("open");
    let mut sub = enforcer.subscribe().await.expect("subscribe");
    loop {
        enforcer.step(sub.as_mut()).await.expect("step");
        println!("counted {}", enforcer.measurement().totals.records);
    }
}

/// Runs the child until it reports a count above `at_least` (or below
/// `TOTAL` when `mid_run`), then SIGKILLs it; returns the last count seen.
fn run_child(spec: &str, stop_when: impl Fn(u64) -> bool) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "a_registry_killed_mid_run_keeps_its_catalogue_and_counts_each_record_once", "--nocapture"])
        .env(CHILD_ENV, spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut last = 0;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("counted ").and_then(|n| n.trim().parse().ok()) {
            last = n;
            if stop_when(n) {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_killed_mid_run_keeps_its_catalogue_and_counts_each_record_once() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return enforce_until_killed(&spec).await;
    }
    let prefix = format!("{}.", domain_core::bus::contract::unique("mesh-kill"));
    let bus = setup(&prefix).await;
    let dir = temp_dir("kafka-kill");
    {
        let registry = registry_in(&dir).await;
        registry.register_text("customers.yaml", &customer_documents()).await.expect("register");
    }
    let (records, invalid) = workload(TOTAL, 7);
    bus.publish_records(&format!("{prefix}{}", topics::ORDERS), records).await.expect("publish");
    let spec = format!("{}|{prefix}", dir.display());
    let total = TOTAL as u64;
    // Killed twice in the middle, then left to finish.
    let first = run_child(&spec, |n| n >= 500);
    assert!(first < total, "the first child was killed mid-run ({first})");
    let second = run_child(&spec, |n| n >= first + 1_000);
    assert!(second < total, "the second child was killed mid-run ({second})");
    let last = run_child(&spec, |n| n >= total);
    assert_eq!(last, total);

    let registry = registry_in(&dir).await;
    assert_eq!(registry.product("customer_data_v1").await.expect("still registered").version, "1.0.0");
    assert!(!registry.export("customer_data_v1", None).await.expect("contract").is_empty());
    let q = registry.quality("customer_data_v1").await.expect("quality");
    let totals = q[0].measurement.clone().expect("measured").totals;
    assert_eq!(totals.records, total, "no record counted twice, none skipped");
    assert_eq!(totals.invalid, invalid as u64);
    let all = registry.query("customer_data_v1", "get_all_customers", &Default::default()).await.expect("list");
    let mesh_registry::registry::Answer::Many(all) = all else { panic!("a list") };
    assert_eq!(all.len(), TOTAL - invalid, "every valid customer served once");
    std::fs::remove_dir_all(dir).ok();
}
