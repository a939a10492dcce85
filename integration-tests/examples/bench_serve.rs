//! `cargo xtask bench serve`: request latency of each service's main read
//! and write endpoint at a fixed rate, p50 and p99, against the same
//! operation called on the library directly (no HTTP, no JSON) in the same
//! run, at the same rate, on a store of its own.
//!
//! The services run in this process (`platform::serve::serve` on the
//! in-process bus), the client sends one request per tick (open loop:
//! latency counts from the tick, so a stall delays what follows and shows
//! in the tail instead of hiding it).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accounts::{AccountCommand, Accounts};
use domain_core::testkit::bench;
use domain_core::{Currency, Money};
use integration_tests::http_client::{Client, free_addr};
use orders::{CustomerInfo, OrderCommand, OrderRepository};
use platform::serve::config::{FileConfig, Flags, ServeConfig, ServiceName};
use serde_json::{Value, json};
use timeseries::line_protocol::{BatchMode, Precision};
use timeseries::query::Query;

const NAME: &str = "serve";

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-serve-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `op(k)` for k in 0..n at `rate` per second; latencies in ms from
/// each tick.
async fn paced<F, Fut>(n: usize, rate: f64, mut op: F) -> Vec<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let tick = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(tick).await;
        op(k).await;
        out.push(tick.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

fn figures(out: &mut Vec<Value>, metric: &str, http: &[f64], direct: &[f64], what: &str) {
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let (ours, base) = (bench::percentile(http, p), bench::percentile(direct, p));
        out.push(bench::figure(
            NAME,
            &format!("{metric}_{label}"),
            ours,
            "ms",
            Some(what),
            Some(ours / base),
            "report",
        ));
    }
}

fn check(r: &integration_tests::http_client::Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
}

fn customer(k: usize) -> Value {
    json!({"order_id": format!("o{k}"), "customer_id": format!("cust_{}", k % 50), "name": "张三",
        "email": "zhangsan@example.com", "phone": "13800138000"})
}

fn lines(k: usize) -> String {
    (0..10).map(|h| format!("cpu,host=h{h} usage_user={}.5 {}\n", k % 100, 1_700_000_000 + k as i64)).collect()
}

async fn start_services(data: &Path) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let http = free_addr();
    let flags = Flags {
        contexts: vec![ServiceName::All],
        http: Some(http.clone()),
        data: Some(data.to_owned()),
        ..Flags::default()
    };
    let mut config = ServeConfig::resolve(flags, &|_| None, FileConfig::default()).expect("config");
    // No refinement in the background while latency is measured.
    config.lake_refine_secs = 0;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        platform::serve::serve(config, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    let client = Client::new(&http);
    let ready = client.ready_within(Duration::from_secs(60)).await;
    assert!(ready, "the services did not become ready");
    (http, stop, task)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, rate) = if quick { (100, 100.0) } else { (1_000, 100.0) };
    println!("{n} requests per endpoint at {rate} per second");
    let served = temp("http");
    let direct = temp("direct");
    let lake_dir = |d: &Path| d.join("lake");
    lake::scenario::run(&lake::LakeLocation::local(lake_dir(&served)).expect("loc"), &served.join("landing"))
        .await
        .expect("lake scenario");
    lake::scenario::run(&lake::LakeLocation::local(lake_dir(&direct)).expect("loc"), &direct.join("landing"))
        .await
        .expect("lake scenario");
    let (addr, stop, task) = start_services(&served).await;
    let c = Client::new(&addr);
    let mut out = Vec::new();

    // The library side, on a store of its own.
    let orders = platform::commerce::open_orders(&direct).expect("orders");
    let accounts = Accounts::new(platform::node::open_store(&direct, "accounts").expect("store"));
    let registry = Arc::new(
        platform::registry_cli::open_registry(
            &direct,
            None,
            mesh_registry::catalogue::PostgresCatalogue::DEFAULT_SCHEMA,
        )
        .await
        .expect("registry"),
    );
    let lake = lake::Lake::new(lake::LakeLocation::local(lake_dir(&direct)).expect("loc"));
    std::fs::create_dir_all(direct.join("timeseries")).expect("ts dir");
    let engine = Arc::new(timeseries::Engine::open(direct.join("timeseries")).expect("engine"));

    // --- orders.
    let http = paced(n, rate, |k| {
        let c = c.clone();
        async move { check(&c.post_json("/orders", &customer(k)).await, 201, "create") }
    })
    .await;
    let lib = paced(n, rate, |k| {
        let orders = orders.clone();
        async move {
            let b = customer(k);
            let info = CustomerInfo::new(
                b["customer_id"].as_str().unwrap_or_default(),
                "张三",
                "zhangsan@example.com",
                "13800138000",
            )
            .expect("customer");
            let id = b["order_id"].as_str().unwrap_or_default().to_owned();
            orders
                .execute(&id, OrderCommand::Create { customer: info, currency: Currency::CNY }, None, 50)
                .await
                .expect("create");
        }
    })
    .await;
    figures(&mut out, "orders_create", &http, &lib, "EventSourcedOrders::execute, same rate");
    let http = paced(n, rate, |k| {
        let c = c.clone();
        async move { check(&c.get(&format!("/orders/o{k}")).await, 200, "get order") }
    })
    .await;
    let lib = paced(n, rate, |k| {
        let orders = orders.clone();
        async move {
            orders.get_by_id(&format!("o{k}")).await.expect("get").expect("exists");
        }
    })
    .await;
    figures(&mut out, "orders_get", &http, &lib, "EventSourcedOrders::get_by_id, same rate");

    // --- accounts.
    for k in 0..100 {
        let body = json!({"account_id": format!("a{k}"), "holder": "张三", "initial_balance": "100"});
        check(&c.post_json("/accounts", &body).await, 201, "open");
        accounts.open(&format!("a{k}"), "张三", Money::parse("100", Currency::CNY).expect("m")).await.expect("open");
    }
    let http = paced(n, rate, |k| {
        let c = c.clone();
        async move {
            check(
                &c.post_json(&format!("/accounts/a{}/deposit", k % 100), &json!({"amount": "1.00"})).await,
                200,
                "deposit",
            )
        }
    })
    .await;
    let lib = paced(n, rate, |k| {
        let accounts = accounts.clone();
        async move {
            let amount = Money::parse("1.00", Currency::CNY).expect("m");
            accounts
                .execute(&format!("a{}", k % 100), AccountCommand::Deposit { amount, description: String::new() }, None)
                .await
                .expect("deposit");
        }
    })
    .await;
    figures(&mut out, "accounts_deposit", &http, &lib, "Accounts::execute, same rate");
    let http = paced(n, rate, |k| {
        let c = c.clone();
        async move { check(&c.get(&format!("/accounts/a{}", k % 100)).await, 200, "balance") }
    })
    .await;
    let lib = paced(n, rate, |k| {
        let accounts = accounts.clone();
        async move {
            accounts.get_by_id(&format!("a{}", k % 100)).await.expect("balance");
        }
    })
    .await;
    figures(&mut out, "accounts_balance", &http, &lib, "Accounts::get_by_id, same rate");

    // --- registry.
    let docs = orders::customers::PRODUCT_DOCUMENTS;
    // The orders service announced the same product on the bus already.
    let reg = c.post("/registry/contracts", "application/yaml", docs.as_bytes()).await;
    assert!(matches!(reg.status, 200 | 201), "register: {}", reg.text());
    registry.register_text("bench", docs).await.expect("register");
    let http = paced(n, rate, |_| {
        let c = c.clone();
        async move { check(&c.get("/registry/search?q=customer+master").await, 200, "search") }
    })
    .await;
    let lib = paced(n, rate, |_| {
        let registry = Arc::clone(&registry);
        async move {
            registry.search("customer master", &mesh_registry::search::SearchFilter::default(), 10).expect("search");
        }
    })
    .await;
    figures(&mut out, "registry_search", &http, &lib, "Registry::search, same rate");

    // --- lake (read-only: it has no write endpoint).
    let sql = "SELECT COUNT(*) AS n FROM silver.customer_records";
    let http = paced(n / 4, rate / 4.0, |_| {
        let c = c.clone();
        async move { check(&c.post_json("/lake/sql", &json!({"sql": sql})).await, 200, "sql") }
    })
    .await;
    let lib = paced(n / 4, rate / 4.0, |_| {
        let lake = lake.clone();
        async move {
            lake.query(sql).await.expect("query");
        }
    })
    .await;
    figures(&mut out, "lake_sql", &http, &lib, "Lake::query, same rate");

    // --- time series.
    let http = paced(n, rate, |k| {
        let c = c.clone();
        async move { check(&c.post("/write?precision=s", "text/plain", lines(k).as_bytes()).await, 204, "write") }
    })
    .await;
    engine
        .create_series(timeseries::model::SeriesSchema::new(
            "cpu_usage_user",
            &["host"],
            "",
            365,
            &["raw", "1min", "1hour", "1day"],
        ))
        .expect("series");
    let lib = paced(n, rate, |k| {
        let engine = Arc::clone(&engine);
        async move {
            let text = lines(k);
            tokio::task::spawn_blocking(move || {
                timeseries::ingest::load(&engine, std::io::Cursor::new(text), Precision::S, BatchMode::Lenient, 10_000)
            })
            .await
            .expect("task")
            .expect("write");
        }
    })
    .await;
    figures(&mut out, "ts_write_10_lines", &http, &lib, "ingest::load of the same lines, same rate");
    let (from, to) = (1_700_000_000_000_000_000i64, 1_700_000_000_000_000_000 + n as i64 * 1_000_000_000);
    let http = paced(n, rate, |_| {
        let c = c.clone();
        async move {
            let r = c.get(&format!("/ts/query?series=cpu_usage_user&from={from}&to={to}&where=host%3Dh3")).await;
            check(&r, 200, "query");
        }
    })
    .await;
    let lib = paced(n, rate, |_| {
        let engine = Arc::clone(&engine);
        async move {
            let q =
                Query::raw("cpu_usage_user", from, to, vec![timeseries::model::Matcher::parse("host=h3").expect("m")]);
            tokio::task::spawn_blocking(move || engine.query(&q)).await.expect("task").expect("query");
        }
    })
    .await;
    figures(&mut out, "ts_query_raw", &http, &lib, "Engine::query, same rate");

    let _ = stop.send(());
    task.await.expect("serve task");
    println!("{}", bench::report(&out));
    std::fs::remove_dir_all(&served).ok();
    std::fs::remove_dir_all(&direct).ok();
}
