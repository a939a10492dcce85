//! The end state every context must agree on, after a clean run and after
//! a run through kills, a broker restart and poison records.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::traffic::{self, check_lake, check_money, check_registry, check_timeseries};
use super::{Platform, SERVICES};
use crate::http::{parse_prometheus, sum};
use crate::kcat_interop::kcat_on;
use crate::support::{eventually, wait_until_async};
use domain_core::bus::EventBus;
use kafka_bus::{KafkaBus, KafkaConfig};

const ORDERS: usize = 1_000;
const CLIENTS: usize = 8;
/// Orders placed while the broker is down, and as many after it is back.
const DURING_OUTAGE: usize = 100;
const TOTAL: usize = ORDERS + 2 * DURING_OUTAGE;

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
        eventually(Duration::from_secs(120), &format!("{s} catching up"), || {
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
    traffic::place_orders(&addrs, "clean", 0..ORDERS, CLIENTS, Arc::default()).await;
    check_everything(&p, "clean", ORDERS, money).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_a_broker_restart_and_poison_records_change_nothing() {
    let _heavy = crate::support::heavy().await;
    let mut p = Platform::start("faults").await;
    let addrs = p.addrs();
    let money = traffic::open_accounts(&addrs).await;
    traffic::register_customers(&addrs).await;
    let placed: Arc<AtomicUsize> = Arc::default();
    let (traffic_addrs, counter) = (addrs.clone(), Arc::clone(&placed));
    let load =
        tokio::spawn(async move { traffic::place_orders(&traffic_addrs, "faults", 0..ORDERS, CLIENTS, counter).await });

    // Each service is killed once the clients have got that much further,
    // so every kill lands in the middle of the traffic.
    for (k, s) in SERVICES.iter().enumerate() {
        let mark = (k + 1) * ORDERS / (SERVICES.len() + 1);
        let reached = wait_until_async(Duration::from_secs(120), || {
            let placed = Arc::clone(&placed);
            async move { placed.load(Ordering::Relaxed) >= mark }
        })
        .await;
        assert!(reached, "the clients placed {mark} orders before {s} was killed\n{}", p.logs());
        p.kill_and_restart(s).await;
    }
    load.await.unwrap_or_else(|e| panic!("the order clients failed: {e}\n{}", p.logs()));
    // With the broker away the services still take orders (they wait in
    // the outboxes); once it is back every relay and consumer resumes.
    p.stop_broker();
    traffic::place_orders(&addrs, "faults", ORDERS..ORDERS + DURING_OUTAGE, CLIENTS, Arc::clone(&placed)).await;
    p.resume_broker();
    traffic::place_orders(&addrs, "faults", ORDERS + DURING_OUTAGE..TOTAL, CLIENTS, Arc::clone(&placed)).await;
    assert_eq!(placed.load(Ordering::Relaxed), TOTAL, "every order was answered");

    // Poison, once every service runs its last incarnation (the counters
    // in /metrics are a process's own): an unreadable record and an event
    // whose payload is not what its type promises.
    let bootstrap = p.broker.bootstrap();
    let orders_topic = format!("{}orders.events", p.prefix());
    kcat_on(&bootstrap, &["-P", "-t", &orders_topic, "-k", "poison_1"], Some("not an event")).await;
    let bad_type = [
        "ce_specversion=1.0",
        "ce_type=orders.OrderConfirmed.v1",
        "ce_source=kcat",
        "ce_id=0190c0de-0000-7000-8000-000000000001",
        "content-type=application/json",
    ];
    let mut args = vec!["-P", "-t", &orders_topic, "-k", "poison_2"];
    for h in &bad_type {
        args.extend(["-H", h]);
    }
    kcat_on(&bootstrap, &args, Some("{\"total_amount\": 12}")).await;
    // A duplicated delivery: an order's OrderConfirmed once more, same id.
    let bus = KafkaBus::connect(KafkaConfig::new(bootstrap.as_str())).expect("bus");
    let mut sub =
        bus.subscribe(&format!("{}dup-reader", p.prefix()), &[orders_topic.as_str()]).await.expect("subscribe");
    let confirmed = loop {
        let d = sub.next(Duration::from_secs(30)).await.expect("read").expect("an OrderConfirmed on the topic");
        if let Ok(env) = domain_core::codec::decode(&d.record)
            && env.event_type.name() == "OrderConfirmed"
        {
            break env;
        }
    };
    sub.close().await.expect("close");
    bus.publish(&orders_topic, std::slice::from_ref(&confirmed)).await.expect("publish the duplicate");

    check_everything(&p, "faults", TOTAL, money).await;
    let dlq_topic = format!("{orders_topic}.dlq");
    let parked =
        kcat_on(&bootstrap, &["-C", "-t", &dlq_topic, "-o", "beginning", "-e", "-q", "-f", "%o\n"], None).await;
    let dlq = parked.lines().filter(|l| !l.trim().is_empty()).count();
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
    // The duplicate changed nothing (check_everything) and was counted.
    eventually(Duration::from_secs(60), "the duplicate counted", || {
        let client = p.client("accounts");
        async move {
            let m = parse_prometheus(&client.get("/metrics").await.text())?;
            let n = sum(&m, "platform_events_deduplicated_total", &[]);
            if n >= 1.0 { Ok(n) } else { Err(format!("{n} deduplicated")) }
        }
    })
    .await;
}
