//! Exactly-once bronze on real Kafka (`KAFKA_BOOTSTRAP`): `platform lake
//! ingest --bus` is killed with SIGKILL after a seeded number of commits while
//! events flow, and started again each time; afterwards bronze.events
//! holds every (topic, partition, offset) exactly once, none missing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use domain_core::bus::{EventBus, TopicSpec, topics};
use domain_core::seeded::SplitMix64;
use domain_core::{Envelope, EventType};
use lake::deltalake::arrow::array::{Array, Int64Array};
use lake::{Lake, LakeLocation};

const SEED: u64 = 20_261_201;
const EVENTS: usize = 6_000;
const ROUNDS: usize = 5;

/// Polls `done` until it holds or `limit` passes; `None` on time-out.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(())
}

fn ingester(dir: &std::path::Path, prefix: &str, idle: Option<u64>) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform"));
    cmd.args(["lake", "ingest", "--bus", "--batch-rows", "250", "--batch-wait-ms", "50", "--topic-prefix", prefix])
        .arg("--data")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(s) = idle {
        cmd.args(["--until-idle", &s.to_string()]);
    }
    cmd.spawn().expect("platform runs")
}

async fn ints(lake: &Lake, sql: &str) -> Vec<i64> {
    let batches = lake.sql(sql).await.expect("sql");
    let mut out = Vec::new();
    for b in &batches {
        for c in b.columns() {
            let c = lake::deltalake::arrow::compute::cast(c, &lake::deltalake::arrow::datatypes::DataType::Int64)
                .expect("cast");
            let c = c.as_any().downcast_ref::<Int64Array>().expect("int");
            out.extend((0..c.len()).map(|i| if c.is_valid(i) { c.value(i) } else { -1 }));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bronze_from_kafka_survives_kill_9_exactly_once() {
    let bus = kafka_bus::KafkaBus::from_env().unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let orders = format!("{prefix}{}", topics::ORDERS);
    let accounts = format!("{prefix}{}", topics::ACCOUNTS);
    let mut specs = vec![TopicSpec::new(orders.clone(), 3), TopicSpec::new(accounts.clone(), 2)];
    specs.extend(
        topics::ALL
            .iter()
            .filter(|t| **t != topics::ORDERS && **t != topics::ACCOUNTS)
            .map(|t| TopicSpec::new(format!("{prefix}{t}"), 1)),
    );
    bus.create_topics(&specs).await.expect("topics");
    let dir = std::env::temp_dir().join(format!("lake-kill-{}", uuid::Uuid::now_v7().simple()));

    // Rounds: an ingester starts, a share of the events is published while
    // it runs, and it is killed once it has made a seeded number (1 to 3)
    // of new commits, with more records in flight behind them.
    let log = dir.join("lake/bronze/events/_delta_log");
    let commits = || {
        std::fs::read_dir(&log).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json") && n.starts_with('0')))
                .count()
        })
    };
    let ty = EventType::new("orders", "OrderCreated", 1).expect("type");
    let aty = EventType::new("accounts", "MoneyDeposited", 1).expect("type");
    let bursts = EVENTS / 200;
    let mut rng = SplitMix64::new(SEED);
    let mut kills = 0;
    for round in 0..ROUNDS {
        let mut child = ingester(&dir, &prefix, None);
        let before = commits();
        for burst in (round * bursts / ROUNDS)..((round + 1) * bursts / ROUNDS) {
            let (mut o, mut a) = (Vec::new(), Vec::new());
            for n in burst * 200..(burst + 1) * 200 {
                let data = serde_json::json!({"n": n});
                if n % 4 == 0 {
                    a.push(Envelope::raw("accounts", aty.clone(), format!("acc-{}", n % 17), 1, data));
                } else {
                    o.push(Envelope::raw("orders", ty.clone(), format!("order-{n}"), 1, data));
                }
            }
            bus.publish(&orders, &o).await.expect("publish");
            bus.publish(&accounts, &a).await.expect("publish");
        }
        let target = before + 1 + rng.below(3) as usize;
        wait_until(Duration::from_secs(90), || commits() >= target)
            .await
            .unwrap_or_else(|| panic!("round {round}: no {target}th commit within 90 s ({} so far)", commits()));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
    }
    // A last run that drains everything and stops when idle.
    // Idle longer than the session timeout (10 s): partitions the killed
    // member held come to this one only once its session expired.
    let status = ingester(&dir, &prefix, Some(15)).wait().expect("last run");
    assert!(status.success(), "the last run ends cleanly: {status}");

    let lake = Lake::new(LakeLocation::local(dir.join("lake")).expect("location"));
    let total = ints(&lake, "SELECT COUNT(*) FROM bronze.events").await[0];
    let distinct =
        ints(&lake, "SELECT COUNT(*) FROM (SELECT DISTINCT topic, \"partition\", \"offset\" FROM bronze.events)").await
            [0];
    assert_eq!(total, distinct, "no (topic, partition, offset) twice after {kills} kills");
    assert_eq!(total, EVENTS as i64, "nothing missing after {kills} kills");
    // Offsets per partition are contiguous from 0: nothing skipped.
    let gaps = ints(
        &lake,
        "SELECT COUNT(*) FROM (SELECT MIN(\"offset\") AS lo, MAX(\"offset\") AS hi, COUNT(*) AS n \
        FROM bronze.events GROUP BY topic, \"partition\") WHERE lo <> 0 OR hi - lo + 1 <> n",
    )
    .await[0];
    assert_eq!(gaps, 0, "every partition holds offsets 0..n");
    let commits = lake.table_named("bronze.events").await.expect("table").version();
    assert!(commits > kills as i64, "{commits} commits over {kills} kills");
    std::fs::remove_dir_all(&dir).ok();
}
