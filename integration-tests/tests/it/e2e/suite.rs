//! The end state every context must agree on, after a clean run and after
//! a run through kills, a broker restart and poison records.

use std::time::Duration;

use super::traffic::{self, check_lake, check_money, check_registry, check_timeseries};
use super::{Platform, SERVICES};
use crate::http::{parse_prometheus, sum};

const ORDERS: usize = 1_000;
const CLIENTS: usize = 8;
/// Orders placed once the broker is back.
const AFTER_RESTART: usize = 200;

async fn check_everything(p: &Platform, run: &str, n: usize, money: rust_decimal::Decimal) {
    let addrs = p.addrs();
    let ends = traffic::wait_terminal(&addrs, run, n, Duration::from_secs(300)).await;
    let (_, paid, count) = traffic::paid(&ends);
    assert!(count > n / 2, "most orders were paid ({count} of {n})");
    assert!(ends.values().filter(|e| e.status == "cancelled").count() > n / 10, "refusals and cancellations happened");
    assert!(paid > rust_decimal::Decimal::ZERO);
    check_money(&addrs, &ends, money).await;
    check_lake(&addrs, &ends).await;
    check_timeseries(&addrs, &ends).await;
    check_registry(&addrs).await;
    no_partition_stalled(p).await;
}

/// Every consumer group of every service catches up to the end of its
/// partitions, and every outbox drains.
async fn no_partition_stalled(p: &Platform) {
    for s in SERVICES {
        let c = p.client(s);
        traffic::eventually(Duration::from_secs(120), &format!("{s} catching up"), || {
            let c = c.clone();
            async move {
                let text = c.get("/metrics").await.text();
                let m = match parse_prometheus(&text) {
                    Ok(m) => m,
                    Err(e) => return Err(e.to_string()),
                };
                let lag = sum(&m, "platform_consumer_lag_records", &[]);
                let outbox = sum(&m, "platform_outbox_lag_events", &[]);
                if lag == 0.0 && outbox == 0.0 {
                    Ok(())
                } else {
                    Err(format!("consumer lag {lag}, outbox lag {outbox}"))
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_end_the_same_in_every_context() {
    let _heavy = crate::support::heavy().await;
    let p = Platform::start("clean").await;
    let addrs = p.addrs();
    let money = traffic::open_accounts(&addrs).await;
    traffic::register_customers(&addrs).await;
    traffic::place_orders(&addrs, "clean", 0..ORDERS, CLIENTS).await;
    check_everything(&p, "clean", ORDERS, money).await;
}

/// A record for kcat: key, headers, value.
type RawRecord<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Sends `records` to `topic` with kcat, an independent client.
async fn kcat_produce(bootstrap: &str, topic: &str, records: &[RawRecord<'_>]) {
    for (key, headers, value) in records {
        let mut args =
            vec!["-P".to_owned(), "-b".into(), bootstrap.into(), "-t".into(), topic.into(), "-k".into(), (*key).into()];
        for (k, v) in *headers {
            args.push("-H".into());
            args.push(format!("{k}={v}"));
        }
        let mut child = tokio::process::Command::new("kcat")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kcat is needed (apt-get install kcat): {e}"));
        use tokio::io::AsyncWriteExt as _;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(value.as_bytes()).await.expect("write");
        drop(pipe);
        let out = child.wait_with_output().await.expect("kcat ran");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !said.contains("failed"), "kcat produce to {topic}: {said}");
    }
}

/// How many records `topic` holds, read with kcat.
async fn kcat_count(bootstrap: &str, topic: &str) -> usize {
    let out = tokio::process::Command::new("kcat")
        .args(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n"])
        .output()
        .await
        .expect("kcat ran");
    assert!(out.status.success(), "kcat consume {topic}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_a_broker_restart_and_poison_records_change_nothing() {
    let _heavy = crate::support::heavy().await;
    let mut p = Platform::start("faults").await;
    let addrs = p.addrs();
    let money = traffic::open_accounts(&addrs).await;
    traffic::register_customers(&addrs).await;
    let traffic_addrs = addrs.clone();
    let load = tokio::spawn(async move { traffic::place_orders(&traffic_addrs, "faults", 0..ORDERS, CLIENTS).await });

    for s in SERVICES {
        tokio::time::sleep(Duration::from_secs(3)).await;
        p.kill_and_restart(s).await;
    }
    p.restart_broker(Duration::from_secs(5)).await;
    // Poison, once every service runs its last incarnation (the counters
    // in /metrics are a process's own): an unreadable record and an event
    // whose payload is not what its type promises.
    let orders_topic = format!("{}orders.events", p.prefix());
    let no_headers: &[(&str, &str)] = &[];
    let bad_type: &[(&str, &str)] = &[
        ("ce_specversion", "1.0"),
        ("ce_type", "orders.OrderConfirmed.v1"),
        ("ce_source", "kcat"),
        ("ce_id", "0190c0de-0000-7000-8000-000000000001"),
        ("content-type", "application/json"),
    ];
    kcat_produce(
        &p.broker.bootstrap(),
        &orders_topic,
        &[("poison_1", no_headers, "not an event"), ("poison_2", bad_type, "{\"total_amount\": 12}")],
    )
    .await;

    load.await.unwrap_or_else(|e| panic!("the order clients failed: {e}\n{}", p.logs()));
    // More orders after the broker came back: every consumer must resume.
    traffic::place_orders(&addrs, "faults", ORDERS..ORDERS + AFTER_RESTART, CLIENTS).await;

    check_everything(&p, "faults", ORDERS + AFTER_RESTART, money).await;
    let dlq = kcat_count(&p.broker.bootstrap(), &format!("{orders_topic}.dlq")).await;
    let mut dead = String::new();
    for s in SERVICES {
        let m = parse_prometheus(&p.client(s).get("/metrics").await.text()).expect("metrics");
        dead.push_str(&format!("{s}: {} ", sum(&m, "platform_events_dead_lettered_total", &[])));
    }
    assert!(dlq >= 2, "both poison records are in the DLQ ({dlq} there; dead letters counted: {dead})");
    let m = parse_prometheus(&p.client("accounts").get("/metrics").await.text()).expect("metrics");
    assert!(
        sum(&m, "platform_events_dead_lettered_total", &[]) >= 2.0,
        "the accounts service counted its dead letters"
    );
}
