//! Records published the moment a topic is created all land, against a
//! real broker (`KAFKA_BOOTSTRAP`, started by `cargo xtask test`).
//!
//! Before the bus waited for every partition's leader to serve a new topic,
//! the idempotent producer's first request to a partition could be refused
//! while the partition was loading and a later request accepted in its
//! place (KAFKA-15591, fixed in brokers from 4.5): the first records of a
//! fresh partition were then missing from the log although their delivery
//! was reported. On this machine, without the wait, about one partition in
//! 200 lost records, more often in a fresh process, so the test spreads
//! 80 topics of 12 partitions over child processes (this test binary run
//! again); it failed one run in two without the wait.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use domain_core::bus::contract::unique;
use domain_core::bus::partition::partition_for_key;
use domain_core::bus::{EventBus, Record, TopicSpec};
use kafka_bus::{KafkaBus, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Tells the re-executed test binary to act as one publishing process.
const CHILD_ENV: &str = "KAFKA_BUS_FRESH_TOPIC_CHILD";
const CHILDREN: usize = 8;
const TOPICS_PER_CHILD: usize = 10;
const PARTITIONS: u32 = 12;
const RECORDS: usize = 1200;
/// The line a child prints per topic whose log lacks acknowledged records.
const SHORT: &str = "fresh_topics: short";

/// Creates topics with a new bus each and publishes `RECORDS` records to
/// each at once; prints a [`SHORT`] line per partition that lacks some.
async fn child() {
    let config = KafkaConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    let watcher: BaseConsumer = config.consumer("fresh-topics-watermarks").create().expect("consumer");
    for _ in 0..TOPICS_PER_CHILD {
        // A new producer each time, as a service starting up has.
        let bus = KafkaBus::connect(config.clone()).unwrap_or_else(|e| panic!("{e}"));
        let topic = unique("fresh");
        bus.create_topics(&[TopicSpec::new(&topic, PARTITIONS)]).await.expect("create topic");
        let records: Vec<Record> = (0..RECORDS)
            .map(|i| Record {
                key: Some(format!("k{i}").into_bytes()),
                headers: vec![],
                value: Some(format!("{{\"n\":{i}}}").into_bytes()),
            })
            .collect();
        let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &records {
            *expected.entry(partition_for_key(r.key.as_deref().unwrap_or_default(), PARTITIONS)).or_insert(0) += 1;
        }
        bus.publish_records(&topic, records).await.expect("publish");
        for (&p, &n) in &expected {
            let (low, high) = watcher.fetch_watermarks(&topic, p, Duration::from_secs(10)).expect("watermarks");
            if high - low != n {
                // The harness may have printed "test ... " on this line.
                println!("\n{SHORT} {topic}[{p}]: {} of {n}", high - low);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_published_right_after_topic_creation_lands() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child().await;
    }
    let mut short = Vec::new();
    for _ in 0..CHILDREN {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "every_record_published_right_after_topic_creation_lands", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run a publishing process");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "publishing process failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        short.extend(stdout.lines().filter(|l| l.starts_with(SHORT)).map(str::to_owned));
    }
    assert!(short.is_empty(), "acknowledged records missing from the log: {short:?}");
}
