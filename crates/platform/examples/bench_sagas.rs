//! `cargo xtask bench sagas`: orders placed → paid end to end.
//!
//! Concurrent clients place orders (create, add an item, confirm) against
//! embedded stores while the node relays and runs both saga consumers, and
//! the run ends when every order is paid. Times come from the orders log
//! itself (`recorded_at` of `OrderCreated`, `OrderConfirmed`, `OrderPaid`),
//! so nothing is instrumented. Three parts:
//! - throughput on the in-process bus (target >= 5,000 sagas/s);
//! - throughput over local Kafka;
//! - latency from confirm to paid at a fixed 200 orders/s over Kafka
//!   (target p99 < 50 ms), after one second of the same load to warm up
//!   (consumer groups joining, first fetches); per step on stderr.
//!
//! Usage: bench_sagas --bootstrap HOST:PORT [--quick] [--only inproc|kafka|latency]

use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::SagaConfig;
use domain_core::bus::{EventBus, InProcessBus};
use domain_core::testkit::bench;
use domain_core::{Currency, Money};
use event_store::{EmbeddedEventStore, EventStore};
use orders::{CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand};
use platform::commerce::Commerce;
use platform::node::{BusChoice, Node};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent clients placing orders.
fn clients() -> usize {
    std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}
/// Customers the orders are spread over.
const CUSTOMERS: usize = 1000;

struct Args {
    bootstrap: String,
    quick: bool,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args { bootstrap: std::env::var("KAFKA_BOOTSTRAP").unwrap_or_default(), quick: false, only: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bootstrap" => a.bootstrap = it.next().ok_or("--bootstrap needs HOST:PORT")?,
            "--quick" => a.quick = true,
            "--only" => a.only = Some(it.next().ok_or("--only needs inproc, kafka or latency")?),
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: bench_sagas --bootstrap HOST:PORT [--quick] [--only inproc|kafka|latency]"
                ));
            }
        }
    }
    Ok(a)
}

fn cny(s: &str) -> Money {
    Money::parse(s, Currency::CNY).unwrap_or_else(|e| panic!("{e}"))
}

/// A shop on fresh embedded stores with a merchant and rich customers.
async fn shop(bus: Arc<dyn EventBus>, choice: BusChoice, prefix: &str) -> Commerce {
    let orders_store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::temporary().unwrap_or_else(|e| panic!("{e}")));
    let accounts_store: Arc<dyn EventStore> =
        Arc::new(EmbeddedEventStore::temporary().unwrap_or_else(|e| panic!("{e}")));
    let orders = EventSourcedOrders::new(orders_store, Arc::new(MemoryReadModel::new()));
    let node = Node::on_bus(bus, choice, prefix).await.unwrap_or_else(|e| panic!("{e}"));
    let commerce =
        Commerce::on_node(orders, accounts_store, node, SagaConfig::default()).await.unwrap_or_else(|e| panic!("{e}"));
    commerce.accounts.open("merchant", "商家", cny("0")).await.unwrap_or_else(|e| panic!("{e}"));
    let opens: Vec<_> = (0..CUSTOMERS)
        .map(|i| {
            let accounts = commerce.accounts.clone();
            tokio::spawn(async move { accounts.open(&format!("c{i:04}"), "客户", cny("100000000")).await })
        })
        .collect();
    for o in opens {
        o.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    }
    commerce
}

/// Places order `n`: create, one item, confirm.
async fn place(orders: &EventSourcedOrders, n: usize) {
    let customer = format!("c{:04}", n % CUSTOMERS);
    let info = CustomerInfo::new(&customer, "客户", "c@example.com", "13800138000").unwrap_or_else(|e| panic!("{e}"));
    let id = format!("o{n:07}");
    let run = |c: OrderCommand| orders.execute(&id, c, None, 5);
    run(OrderCommand::Create { customer: info, currency: Currency::CNY }).await.unwrap_or_else(|e| panic!("{e}"));
    let price = cny(&format!("{}.{:02}", 1 + n % 300, n % 100));
    run(OrderCommand::AddItem { product_id: "p1".into(), quantity: 1, unit_price: price })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    run(OrderCommand::Confirm { payment_account_id: None }).await.unwrap_or_else(|e| panic!("{e}"));
}

/// What the orders log says about a run.
struct Timeline {
    orders: usize,
    paid: usize,
    /// First `OrderCreated` to last `OrderPaid`.
    seconds: f64,
    /// Confirm → paid, per order, milliseconds (sorted).
    latencies: Vec<f64>,
}

/// Every stored event of a store with its id, cause and time.
async fn all_events(store: &Arc<dyn EventStore>) -> Vec<event_store::RecordedEvent> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4096).await.unwrap_or_else(|e| panic!("{e}"));
        let Some(end) = page.last() else { return out };
        from = end.position + 1;
        out.extend(page);
    }
}

/// p50 and p99 of each step of the payment, in ms: confirmed → debited,
/// debited → credited to the merchant, credited → the order marked paid.
async fn hops(orders: &Arc<dyn EventStore>, accounts: &Arc<dyn EventStore>) -> Vec<(&'static str, f64, f64)> {
    use std::collections::HashMap;
    let all: Vec<_> = all_events(orders).await.into_iter().chain(all_events(accounts).await).collect();
    let at: HashMap<uuid::Uuid, chrono::DateTime<chrono::Utc>> =
        all.iter().map(|e| (e.envelope.id, e.recorded_at)).collect();
    let mut steps: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for e in &all {
        let step = match e.envelope.event_type.name() {
            "MoneyTransferredOut" => "confirmed_to_debited",
            "MoneyTransferredIn" => "debited_to_credited",
            "OrderPaid" => "credited_to_paid",
            _ => continue,
        };
        if let Some(cause) = e.envelope.causation_id.and_then(|c| at.get(&c)) {
            steps
                .entry(step)
                .or_default()
                .push((e.recorded_at - *cause).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    ["confirmed_to_debited", "debited_to_credited", "credited_to_paid"]
        .into_iter()
        .map(|name| {
            let mut v = steps.remove(name).unwrap_or_default();
            v.sort_by(f64::total_cmp);
            (name, bench::percentile(&v, 0.5), bench::percentile(&v, 0.99))
        })
        .collect()
}

/// The number in an order id `o0001234`.
fn order_number(id: &str) -> usize {
    id.trim_start_matches('o').parse().unwrap_or(0)
}

/// `warmup`: orders below this number are left out of the latencies (the
/// consumer groups are still joining while the first ones go through).
async fn timeline(store: &Arc<dyn EventStore>, warmup: usize) -> Timeline {
    use std::collections::HashMap;
    let mut confirmed = HashMap::new();
    let (mut first, mut last) = (None, None);
    let mut latencies = Vec::new();
    let mut orders = 0;
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4096).await.unwrap_or_else(|e| panic!("{e}"));
        let Some(end) = page.last() else { break };
        from = end.position + 1;
        for e in page {
            let at = e.recorded_at;
            match e.envelope.event_type.name() {
                "OrderCreated" => {
                    orders += 1;
                    first = Some(first.map_or(at, |f: chrono::DateTime<chrono::Utc>| f.min(at)));
                }
                "OrderConfirmed" => {
                    confirmed.insert(e.envelope.subject.clone(), at);
                }
                "OrderPaid" => {
                    last = Some(last.map_or(at, |l: chrono::DateTime<chrono::Utc>| l.max(at)));
                    if let Some(c) = confirmed.get(&e.envelope.subject)
                        && order_number(&e.envelope.subject) >= warmup
                    {
                        latencies.push((at - *c).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let seconds = match (first, last) {
        (Some(f), Some(l)) => (l - f).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => f64::NAN,
    };
    Timeline { orders, paid: latencies.len(), seconds, latencies }
}

/// The baseline: the same orders placed by the same clients on the same
/// kind of stores with no saga running (create, item, confirm: the part of a
/// saga the shop's clients do). Orders per second.
async fn place_only(commerce: Commerce, n: usize) -> f64 {
    let started = Instant::now();
    place_all(&commerce.orders, n, None).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    commerce.close().await.unwrap_or_else(|e| panic!("{e}"));
    rate
}

/// [`clients`] clients place orders `0..n`, as fast as they go or at `rate`
/// orders per second; returns when all are placed.
async fn place_all(orders: &EventSourcedOrders, n: usize, rate: Option<f64>) {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..clients())
        .map(|_| {
            let (orders, next) = (orders.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= n {
                        return;
                    }
                    if let Some(rate) = rate {
                        let due = started + Duration::from_secs_f64(k as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    place(&orders, k).await;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Places `n` orders with [`clients`] clients as fast as they go, or at
/// `rate` orders per second, while the node runs; then settles.
async fn run(commerce: Commerce, n: usize, rate: Option<f64>, warmup: usize) -> Timeline {
    let orders = commerce.orders.clone();
    let store = Arc::clone(orders.store());
    let accounts_store = Arc::clone(commerce.accounts.store());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(async move {
        let mut commerce = commerce;
        commerce.node_mut().run(async { stop_rx.await.unwrap_or(()) }).await.unwrap_or_else(|e| panic!("{e}"));
        commerce
    });
    let started = Instant::now();
    place_all(&orders, n, rate).await;
    eprintln!("  {n} orders placed in {:.2} s", started.elapsed().as_secs_f64());
    let _ = stop_tx.send(());
    let mut commerce = node.await.unwrap_or_else(|e| panic!("{e}"));
    commerce.settle(Duration::from_secs(300)).await.unwrap_or_else(|e| panic!("{e}"));
    commerce.close().await.unwrap_or_else(|e| panic!("{e}"));
    for (step, p50, p99) in hops(&store, &accounts_store).await {
        eprintln!("  {step:<22} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms");
    }
    let t = timeline(&store, warmup).await;
    assert_eq!((t.orders, t.paid), (n, n - warmup), "every order was placed and paid");
    t
}

fn kafka_config(bootstrap: &str) -> kafka_bus::KafkaConfig {
    let mut c = kafka_bus::KafkaConfig::new(bootstrap);
    if let Some(ms) = std::env::var("BENCH_LINGER_MS").ok().and_then(|v| v.parse().ok()) {
        c.linger = Duration::from_millis(ms);
    }
    c
}

async fn kafka_shop(bootstrap: &str, tag: &str) -> Commerce {
    let bus: Arc<dyn EventBus> =
        Arc::new(kafka_bus::KafkaBus::connect(kafka_config(bootstrap)).unwrap_or_else(|e| panic!("{e}")));
    let prefix = format!("bench.{tag}.{}.", uuid::Uuid::now_v7().simple());
    shop(bus, BusChoice::Kafka(bootstrap.to_owned()), &prefix).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args = args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let want = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let n = if args.quick { 4_000 } else { 20_000 };
    let mut figures = Vec::new();
    let mut placing_alone: Option<f64> = None;
    if want("inproc") || want("kafka") {
        placing_alone = Some(place_only(shop(Arc::new(InProcessBus::new()), BusChoice::InProcess, "").await, n).await);
    }
    if want("inproc") {
        let baseline = placing_alone.unwrap_or(f64::NAN);
        let t = run(shop(Arc::new(InProcessBus::new()), BusChoice::InProcess, "").await, n, None, 0).await;
        let rate = t.orders as f64 / t.seconds;
        eprintln!("in-process: {} orders paid in {:.2} s; placing alone: {baseline:.0} orders/s", t.orders, t.seconds);
        figures.push(bench::figure(
            "sagas",
            "placed_to_paid_in_process_embedded",
            rate,
            "sagas/s",
            Some("the same orders placed with no saga running (orders/s)"),
            Some(rate / baseline),
            ">=5000",
        ));
        figures.push(bench::figure(
            "sagas",
            "confirm_to_paid_p50_in_process_under_load",
            bench::percentile(&t.latencies, 0.5),
            "ms",
            None,
            None,
            "report",
        ));
    }
    if args.bootstrap.is_empty() {
        eprintln!("no broker: skipping the Kafka parts (pass --bootstrap or set KAFKA_BOOTSTRAP)");
    } else {
        if want("kafka") {
            let t = run(kafka_shop(&args.bootstrap, "tput").await, n, None, 0).await;
            let rate = t.orders as f64 / t.seconds;
            eprintln!("kafka: {} orders paid in {:.2} s", t.orders, t.seconds);
            figures.push(bench::figure(
                "sagas",
                "placed_to_paid_kafka_embedded",
                rate,
                "sagas/s",
                Some("the same orders placed with no saga running (orders/s)"),
                placing_alone.map(|b| rate / b),
                "report",
            ));
        }
        if want("latency") {
            let count = if args.quick { 1_000 } else { 6_000 };
            // The first second (200 orders) warms up: groups join, fetches start.
            let t = run(kafka_shop(&args.bootstrap, "lat").await, count + 200, Some(200.0), 200).await;
            let (p50, p99) = (bench::percentile(&t.latencies, 0.5), bench::percentile(&t.latencies, 0.99));
            eprintln!("kafka at 200/s: p50 {p50:.1} ms, p99 {p99:.1} ms over {} orders", t.paid);
            figures.push(bench::figure(
                "sagas",
                "confirm_to_paid_p50_kafka_200_per_s",
                p50,
                "ms",
                None,
                None,
                "report",
            ));
            figures.push(bench::figure("sagas", "confirm_to_paid_p99_kafka_200_per_s", p99, "ms", None, None, "<50"));
        }
    }
    print!("{}", bench::report(&figures));
}
