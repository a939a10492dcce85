//! `cargo xtask bench e2e`: orders placed over HTTP against the five
//! contexts as separate `platform serve` processes on local Kafka, at a
//! fixed rate (open loop: latency counts from each order's tick).
//!
//! Latency runs from the order's first request (create) to its `OrderPaid`
//! on `orders.events`, seen by a consumer of this bench: create, add a
//! line and confirm over HTTP, then the orders outbox, Kafka, the accounts
//! saga, the accounts outbox, Kafka, the orders payment handler, the
//! orders outbox and Kafka again.
//!
//! 1. A ladder of rates, 10 s each, finds the highest rate at which every
//!    order is paid and p99 stays under 100 ms.
//! 2. That rate for 60 s: throughput, p50/p99, consumer and outbox lag
//!    sampled from every service's `/metrics` each second, and resident
//!    memory of each service at start, halfway and at the end.
//! 3. Baseline, same rate and duration: the same contexts in one process
//!    (`platform serve all`) on the same broker, so the ratio is the cost
//!    of running them apart.
//!
//! The services are this program itself, run again with `BENCH_E2E_ROLE=platform`
//! (the very `platform::cli::main` the `platform` binary runs), so the bench
//! needs no other binary built.
//!
//! Usage: bench_e2e --bootstrap HOST:PORT [--quick]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain_core::bus::{EventBus, topics};
use domain_core::testkit::bench;
use integration_tests::http_client::{Client, free_addr, parse_prometheus, sum};
use serde_json::{Value, json};
use tokio::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAME: &str = "e2e";
const ROLE_ENV: &str = "BENCH_E2E_ROLE";
const CONTEXTS: [&str; 5] = ["orders", "accounts", "registry", "lake", "timeseries"];
const CUSTOMERS: usize = 200;
const P99_LIMIT_MS: f64 = 100.0;
const LADDER: [f64; 8] = [25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0];

struct Args {
    bootstrap: String,
    quick: bool,
}

fn args() -> Args {
    let mut a = Args { bootstrap: "127.0.0.1:9092".to_owned(), quick: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bootstrap" => a.bootstrap = it.next().expect("--bootstrap needs HOST:PORT"),
            "--quick" => a.quick = true,
            other => panic!("unknown argument {other}; usage: bench_e2e --bootstrap HOST:PORT [--quick]"),
        }
    }
    a
}

/// One `platform serve` process.
struct Service {
    name: String,
    addr: String,
    child: Child,
}

impl Service {
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        kib / 1024.0
    }
}

/// The contexts as processes: five apart, or all in one.
struct Deployment {
    services: Vec<Service>,
    root: PathBuf,
    prefix: String,
}

impl Deployment {
    async fn start(bootstrap: &str, apart: bool) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let root = std::env::temp_dir().join(format!("bench-e2e-{id}"));
        let prefix = format!("bench-e2e-{}.", &id[id.len() - 12..]);
        let groups: Vec<Vec<&str>> =
            if apart { CONTEXTS.iter().map(|c| vec![*c]).collect() } else { vec![CONTEXTS.to_vec()] };
        let exe = std::env::current_exe().expect("own path");
        let mut services = Vec::new();
        for contexts in groups {
            let name = if contexts.len() == 1 { contexts[0].to_owned() } else { "all".to_owned() };
            let data = root.join(&name);
            std::fs::create_dir_all(&data).expect("data dir");
            let log = std::fs::File::create(data.join("serve.log")).expect("log");
            let addr = free_addr();
            let child = Command::new(&exe)
                .env(ROLE_ENV, "platform")
                .env("PLATFORM_LOG", "warn")
                // Refinement stays on its default period: part of the load.
                .env_remove("DATABASE_URL")
                .env_remove("PLATFORM_TOKENS")
                .arg("--data")
                .arg(&data)
                .arg("serve")
                .args(&contexts)
                .args(["--kafka", bootstrap, "--http", &addr, "--topic-prefix", &prefix])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn platform serve");
            services.push(Service { name, addr, child });
        }
        let d = Self { services, root, prefix };
        for s in &d.services {
            let ready = Client::new(&s.addr).ready_within(Duration::from_secs(120)).await;
            assert!(ready, "{} did not become ready; see {}", s.name, d.root.join(&s.name).join("serve.log").display());
        }
        d
    }

    /// Where a context's API answers.
    fn addr(&self, context: &str) -> &str {
        let s = self.services.iter().find(|s| s.name == context || s.name == "all").expect("context runs");
        &s.addr
    }

    fn rss(&self) -> Vec<(String, f64)> {
        self.services.iter().map(|s| (s.name.clone(), s.rss_mib())).collect()
    }

    /// Samples consumer lag (records) and outbox lag (events) over every
    /// service once a second until `stop`; the largest of each.
    fn sample_lag(&self, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<(f64, f64)> {
        let addrs: Vec<String> = self.services.iter().map(|s| s.addr.clone()).collect();
        tokio::spawn(async move {
            let (mut max_consumer, mut max_outbox) = (0.0_f64, 0.0_f64);
            while !*stop.borrow() {
                let (mut consumer, mut outbox) = (0.0, 0.0);
                for addr in &addrs {
                    let Ok(reply) = Client::new(addr).send("GET", "/metrics", &[], &[]).await else { continue };
                    if let Ok(samples) = parse_prometheus(&reply.text()) {
                        consumer += sum(&samples, "platform_consumer_lag_records", &[]);
                        outbox += sum(&samples, "platform_outbox_lag_events", &[]);
                    }
                }
                max_consumer = max_consumer.max(consumer);
                max_outbox = max_outbox.max(outbox);
                // Once a second, or at once when the run ends.
                let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
            }
            (max_consumer, max_outbox)
        })
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for s in &mut self.services {
            let _ = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status();
        }
        for s in &mut self.services {
            integration_tests::wait::wait_until(Duration::from_secs(20), || {
                s.child.try_wait().ok().flatten().is_some()
            });
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// When each order was due, and when its `OrderPaid` was seen.
#[derive(Default)]
struct Clock {
    due: HashMap<String, Instant>,
    paid_ms: Vec<f64>,
    paid_at: Vec<Instant>,
}

type Shared = Arc<Mutex<Clock>>;

fn locked(c: &Shared) -> std::sync::MutexGuard<'_, Clock> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads `orders.events` and stamps every `OrderPaid` of a due order.
fn watch_paid(bootstrap: &str, prefix: &str, clock: Shared) -> tokio::task::JoinHandle<()> {
    let bus = kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(bootstrap)).expect("bus");
    let topic = format!("{prefix}{}", topics::ORDERS);
    let group = format!("{prefix}bench-watch");
    tokio::spawn(async move {
        let mut sub = bus.subscribe(&group, &[topic.as_str()]).await.expect("subscribe");
        loop {
            let Ok(Some(delivery)) = sub.next(Duration::from_millis(200)).await else { continue };
            let Ok(env) = domain_core::codec::decode(&delivery.record) else { continue };
            if env.event_type.name() != "OrderPaid" {
                continue;
            }
            let now = Instant::now();
            let mut c = locked(&clock);
            if let Some(due) = c.due.remove(&env.subject) {
                c.paid_ms.push(now.duration_since(due).as_secs_f64() * 1000.0);
                c.paid_at.push(now);
            }
        }
    })
}

async fn post(client: &Client, path: &str, body: &Value, want: u16) -> bool {
    let bytes = body.to_string().into_bytes();
    match client.send("POST", path, &[("Content-Type", "application/json")], &bytes).await {
        Ok(r) if r.status == want => true,
        Ok(r) => {
            eprintln!("POST {path}: {} {}", r.status, r.text());
            false
        }
        Err(e) => {
            eprintln!("POST {path}: {e}");
            false
        }
    }
}

async fn open_accounts(d: &Deployment) {
    let c = Client::new(d.addr("accounts"));
    let rich =
        |id: String| json!({"account_id": id, "holder": "张三", "currency": "CNY", "initial_balance": "1000000000"});
    for k in 0..CUSTOMERS {
        assert!(post(&c, "/accounts", &rich(format!("cust_{k:03}")), 201).await, "open cust_{k:03}");
    }
    let merchant = json!({"account_id": "merchant", "holder": "商户", "currency": "CNY", "initial_balance": "0"});
    assert!(post(&c, "/accounts", &merchant, 201).await, "open merchant");
}

/// One order: create, one line, confirm.
async fn place(orders: Client, id: String, k: usize, errors: Arc<AtomicUsize>) {
    let create = json!({"order_id": id, "customer_id": format!("cust_{:03}", k % CUSTOMERS), "name": "张三",
        "email": "zhangsan@example.com", "phone": "13800138000"});
    let item = json!({"product_id": format!("product_{:03}", k % 5), "quantity": 1 + k % 3, "unit_price": "9.99"});
    let ok = post(&orders, "/orders", &create, 201).await
        && post(&orders, &format!("/orders/{id}/items"), &item, 200).await
        && post(&orders, &format!("/orders/{id}/confirm"), &json!({}), 202).await;
    if !ok {
        errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one run at one rate gave.
struct Run {
    rate: f64,
    seconds: f64,
    placed: usize,
    paid: usize,
    errors: usize,
    /// Paid orders per second, first tick to last `OrderPaid`.
    throughput: f64,
    p50: f64,
    p99: f64,
    max_consumer_lag: f64,
    max_outbox_lag: f64,
    /// `(service, MiB at start, halfway, at the end)`.
    rss: Vec<(String, f64, f64, f64)>,
}

impl Run {
    fn sustained(&self) -> bool {
        self.errors == 0 && self.paid == self.placed && self.p99 < P99_LIMIT_MS
    }
}

/// Places orders at `rate` for `seconds` (open loop), then waits up to 30 s
/// for the last of them to be paid.
async fn drive(d: &Deployment, clock: &Shared, tag: &str, rate: f64, seconds: f64) -> Run {
    let n = (rate * seconds).round() as usize;
    let orders = Client::new(d.addr("orders"));
    let errors = Arc::new(AtomicUsize::new(0));
    {
        let mut c = locked(clock);
        c.paid_ms.clear();
        c.paid_at.clear();
    }
    let rss_start = d.rss();
    let mut rss_mid = Vec::new();
    let (stop_sampling, stopped) = tokio::sync::watch::channel(false);
    let sampler = d.sample_lag(stopped);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let tick = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(tick).await;
        let id = format!("{tag}_{k:06}");
        locked(clock).due.insert(id.clone(), tick);
        tasks.push(tokio::spawn(place(orders.clone(), id, k, Arc::clone(&errors))));
        if rss_mid.is_empty() && k >= n / 2 {
            rss_mid = d.rss();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let placed = n - errors.load(Ordering::Relaxed);
    // Unpaid orders after this count as not sustained (paid < placed).
    integration_tests::wait::wait_until_async(Duration::from_secs(30), || async {
        locked(clock).paid_ms.len() >= placed
    })
    .await;
    let rss_end = d.rss();
    stop_sampling.send_replace(true);
    let (max_consumer, max_outbox) = sampler.await.unwrap_or((f64::NAN, f64::NAN));
    let (mut ms, last) = {
        let mut c = locked(clock);
        c.due.clear();
        (std::mem::take(&mut c.paid_ms), c.paid_at.iter().max().copied())
    };
    ms.sort_by(f64::total_cmp);
    let took = last.map_or(seconds, |l| l.duration_since(start).as_secs_f64());
    let rss = rss_start
        .iter()
        .map(|(name, a)| {
            let of = |v: &[(String, f64)]| v.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, m)| *m);
            (name.clone(), *a, of(&rss_mid), of(&rss_end))
        })
        .collect();
    Run {
        rate,
        seconds,
        placed,
        paid: ms.len(),
        errors: errors.load(Ordering::Relaxed),
        throughput: ms.len() as f64 / took,
        p50: bench::percentile(&ms, 0.5),
        p99: bench::percentile(&ms, 0.99),
        max_consumer_lag: max_consumer,
        max_outbox_lag: max_outbox,
        rss,
    }
}

fn print_run(what: &str, r: &Run) {
    println!(
        "{what}: {} orders/s for {} s: {}/{} paid, {} errors, {:.1} paid/s, p50 {:.1} ms, p99 {:.1} ms, lag {} records / {} events{}",
        r.rate,
        r.seconds,
        r.paid,
        r.placed,
        r.errors,
        r.throughput,
        r.p50,
        r.p99,
        r.max_consumer_lag,
        r.max_outbox_lag,
        if r.sustained() { "" } else { "  (not sustained)" }
    );
}

/// Starts a deployment with its accounts open and the paid watcher running.
async fn deploy(bootstrap: &str, apart: bool) -> (Deployment, Shared, tokio::task::JoinHandle<()>) {
    let d = Deployment::start(bootstrap, apart).await;
    open_accounts(&d).await;
    let clock: Shared = Arc::default();
    let watcher = watch_paid(bootstrap, &d.prefix, Arc::clone(&clock));
    // Warm-up: connections, caches and consumer assignments settle.
    let warm = drive(&d, &clock, "warmup", 20.0, 5.0).await;
    assert_eq!(warm.paid, warm.placed, "warm-up orders were not all paid: is every service up?");
    (d, clock, watcher)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::var(ROLE_ENV).is_ok_and(|r| r == "platform") {
        return platform::cli::main().await;
    }
    let a = args();
    let (step, sustained_secs) = if a.quick { (3.0, 10.0) } else { (10.0, 60.0) };
    let mut out = Vec::new();

    println!("five services over Kafka at {}", a.bootstrap);
    let (apart, clock, watcher) = deploy(&a.bootstrap, true).await;
    let mut best: Option<Run> = None;
    for (i, rate) in LADDER.iter().enumerate() {
        let run = drive(&apart, &clock, &format!("ladder{i}"), *rate, step).await;
        print_run("ladder", &run);
        if !run.sustained() {
            break;
        }
        best = Some(run);
    }
    let rate = best.as_ref().map_or(LADDER[0], |r| r.rate);
    println!("highest rate with p99 under {P99_LIMIT_MS} ms: {rate} orders/s; now {sustained_secs} s at it");
    let main_run = drive(&apart, &clock, "sustained", rate, sustained_secs).await;
    print_run("sustained", &main_run);
    watcher.abort();
    drop(apart);

    println!("baseline: the same contexts in one process (serve all), same broker, same rate");
    let (one, clock, watcher) = deploy(&a.bootstrap, false).await;
    let base = drive(&one, &clock, "baseline", rate, sustained_secs).await;
    print_run("baseline", &base);
    watcher.abort();
    drop(one);

    let what = "platform serve all (one process), same broker, rate and duration";
    out.push(bench::figure(NAME, "max_rate_p99_under_100ms", rate, "orders/s", None, None, "report"));
    out.push(bench::figure(
        NAME,
        "sustained_throughput",
        main_run.throughput,
        "orders/s",
        Some(what),
        Some(main_run.throughput / base.throughput),
        &format!("{rate} (all paid)"),
    ));
    out.push(bench::figure(
        NAME,
        "sustained_paid_share",
        main_run.paid as f64 / main_run.placed.max(1) as f64,
        "ratio",
        None,
        None,
        "1.0",
    ));
    out.push(bench::figure(
        NAME,
        "create_to_paid_p50",
        main_run.p50,
        "ms",
        Some(what),
        Some(main_run.p50 / base.p50),
        "report",
    ));
    out.push(bench::figure(
        NAME,
        "create_to_paid_p99",
        main_run.p99,
        "ms",
        Some(what),
        Some(main_run.p99 / base.p99),
        "< 100 ms",
    ));
    out.push(bench::figure(NAME, "max_consumer_lag", main_run.max_consumer_lag, "records", None, None, "report"));
    out.push(bench::figure(NAME, "max_outbox_lag", main_run.max_outbox_lag, "events", None, None, "report"));
    for (service, start, mid, end) in &main_run.rss {
        out.push(bench::figure(NAME, &format!("rss_{service}_start"), *start, "MiB", None, None, "report"));
        out.push(bench::figure(NAME, &format!("rss_{service}_mid"), *mid, "MiB", None, None, "report"));
        out.push(bench::figure(
            NAME,
            &format!("rss_{service}_end"),
            *end,
            "MiB",
            Some("the same service halfway"),
            Some(end / mid),
            "bounded (end/mid near 1)",
        ));
    }
    for (service, start, _, end) in &base.rss {
        out.push(bench::figure(NAME, &format!("baseline_rss_{service}_start"), *start, "MiB", None, None, "report"));
        out.push(bench::figure(NAME, &format!("baseline_rss_{service}_end"), *end, "MiB", None, None, "report"));
    }
    println!("{}", bench::report(&out));
    std::process::ExitCode::SUCCESS
}
