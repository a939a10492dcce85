//! `cargo xtask bench lake`: the medallion lake.
//!
//! - `ingest`: a fixed-seed commerce workload (orders with items, payments,
//!   cancellations, ledger entries; 60,000 orders, `--quick` 6,000) on Kafka
//!   (`--bootstrap`), consumed into `bronze.events` by the bronze ingester.
//!   Baseline: the same records turned into the same arrow batches and
//!   written as one raw Parquet file (no Kafka, no Delta log).
//! - `pipelines`: bronze -> silver (decode, expectations, dedup, quarantine)
//!   and silver -> gold (all four aggregates from scratch), rows/s.
//! - `queries`: the gold aggregations as queries over the silver tables,
//!   DataFusion on the Delta tables against DuckDB (`LAKE_PYTHON`) on the
//!   same Parquet files, both with 2 threads; median of 5 runs each.
//! - `optimize`: one partition of 1,000 small files compacted; baseline:
//!   reading the same rows and writing them as one Parquet file.
//!
//! Usage: bench_lake [--quick] [--bootstrap ADDR]

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain_core::bus::{EventBus, TopicSpec};
use domain_core::seeded::SplitMix64;
use domain_core::testkit::bench;
use domain_core::{Envelope, EventType};
use lake::bronze::bus::to_batch;
use lake::bronze::{BronzeConfig, BronzeIngester};
use lake::deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use lake::gold::GoldPipeline;
use lake::silver::SilverPipeline;
use lake::{Commit, Lake, LakeLocation, LakeTable, Layer, TableId};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAME: &str = "lake";
const SEED: u64 = 20_261_201;

fn ty(context: &str, name: &str) -> EventType {
    EventType::new(context, name, 1).expect("type")
}

fn money(cents: u64) -> Value {
    json!({"amount": format!("{}.{:02}", cents / 100, cents % 100), "currency": "CNY"})
}

/// The workload: (topic suffix, event) in production order.
fn workload(orders: usize) -> Vec<(&'static str, Envelope)> {
    let mut rng = SplitMix64::new(SEED);
    let day0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("t").with_timezone(&chrono::Utc);
    let mut out = Vec::with_capacity(orders * 7);
    let mut balances = vec![1_000_000u64; 500];
    for o in 0..orders {
        let id = format!("order-{o:07}");
        let customer = rng.below(500) as usize;
        let time = day0 + chrono::Duration::seconds((o as i64) * 40);
        let mut v = 0;
        let push = |out: &mut Vec<(&'static str, Envelope)>, topic, name, data: Value, v: &mut u64| {
            *v += 1;
            let mut e = Envelope::raw("orders", ty("orders", name), id.clone(), *v, data);
            e.time = time;
            out.push((topic, e));
        };
        let cust = json!({"customer_id": format!("cust_{customer:03}"), "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
        push(&mut out, "orders.events", "OrderCreated", json!({"customer": cust, "currency": "CNY"}), &mut v);
        let items = 1 + rng.below(4);
        let mut total = 0;
        for _ in 0..items {
            let price = 100 + rng.below(50_000);
            let qty = 1 + rng.below(3);
            total += price * qty;
            push(
                &mut out,
                "orders.events",
                "OrderItemAdded",
                json!({"product_id": format!("product_{:03}", rng.below(200)), "quantity": qty, "unit_price": money(price)}),
                &mut v,
            );
        }
        push(
            &mut out,
            "orders.events",
            "OrderConfirmed",
            json!({"customer_id": format!("cust_{customer:03}"), "payment_account_id": format!("cust_{customer:03}"), "total_amount": money(total), "item_count": items}),
            &mut v,
        );
        if rng.chance(0.9) && balances[customer] >= total {
            push(&mut out, "orders.events", "OrderPaid", json!({"amount": money(total)}), &mut v);
            let old = balances[customer];
            balances[customer] -= total;
            let mut e = Envelope::raw(
                "accounts",
                ty("accounts", "MoneyWithdrawn"),
                format!("cust_{customer:03}"),
                o as u64 + 2,
                json!({
                "amount": money(total), "description": id, "old_balance": money(old)["amount"], "new_balance": money(balances[customer])["amount"]}),
            );
            e.time = time;
            out.push(("accounts.events", e));
            if rng.chance(0.8) {
                push(
                    &mut out,
                    "orders.events",
                    "OrderShipped",
                    json!({"shipping_address": "北京市朝阳区某某街道123号"}),
                    &mut v,
                );
            }
        } else {
            push(
                &mut out,
                "orders.events",
                "OrderCancelled",
                json!({"reason": "payment rejected", "customer_id": format!("cust_{customer:03}"), "payment_account_id": null, "was_paid": false}),
                &mut v,
            );
        }
    }
    out
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-lake-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut quick = false;
    let mut bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--bootstrap" => bootstrap = args.next().expect("--bootstrap ADDR"),
            other => panic!("unknown argument {other}; usage: bench_lake [--quick] [--bootstrap ADDR]"),
        }
    }
    let orders = if quick { 6_000 } else { 60_000 };
    let mut figures = Vec::new();
    let events = workload(orders);
    let n = events.len();
    println!("workload: {orders} orders, {n} events");

    // --- ingest: Kafka -> bronze.events, vs a raw Parquet write of the same rows.
    let bus = kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(bootstrap.as_str())).expect("kafka");
    let prefix = format!("bench{}.", uuid::Uuid::now_v7().simple());
    bus.create_topics(&[
        TopicSpec::new(format!("{prefix}orders.events"), 3),
        TopicSpec::new(format!("{prefix}accounts.events"), 3),
    ])
    .await
    .expect("topics");
    for topic in ["orders.events", "accounts.events"] {
        let batch: Vec<Envelope> = events.iter().filter(|(t, _)| *t == topic).map(|(_, e)| e.clone()).collect();
        for chunk in batch.chunks(10_000) {
            bus.publish(&format!("{prefix}{topic}"), chunk).await.expect("publish");
        }
    }
    let dir = temp("ingest");
    let location = LakeLocation::local(&dir).expect("location");
    let mut ingester = BronzeIngester::open(
        &location,
        BronzeConfig { max_wait: Duration::from_millis(500), ..BronzeConfig::default() },
    )
    .await
    .expect("ingester");
    let group = ingester.group();
    let topics = [format!("{prefix}orders.events"), format!("{prefix}accounts.events")];
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut sub = bus.subscribe(&group, &names).await.expect("subscribe");
    // The clock starts at the first record, so group join time is not counted.
    let first = loop {
        if let Some(d) = sub.next(Duration::from_secs(1)).await.expect("poll") {
            break d;
        }
    };
    let started = Instant::now();
    ingester.push(sub.as_mut(), first).await.expect("push");
    while (ingester.stats().rows as usize) < n {
        match sub.next(Duration::from_millis(50)).await.expect("poll") {
            Some(d) => ingester.push(sub.as_mut(), d).await.expect("push"),
            // Nothing more for now: what is pending goes in.
            None => ingester.flush(sub.as_mut()).await.expect("flush"),
        }
        if ingester.due() {
            ingester.flush(sub.as_mut()).await.expect("flush");
        }
    }
    ingester.flush(sub.as_mut()).await.expect("flush");
    let ingest_secs = started.elapsed().as_secs_f64();
    sub.close().await.expect("close");
    let stats = ingester.stats().clone();
    assert_eq!(stats.rows as usize, n, "every record in bronze");

    // Baseline: the same deliveries as arrow batches into one Parquet file.
    let deliveries: Vec<domain_core::bus::Delivery> = events
        .iter()
        .enumerate()
        .map(|(i, (t, e))| domain_core::bus::Delivery {
            topic: (*t).to_owned(),
            partition: (i % 3) as i32,
            offset: i as i64,
            record: domain_core::codec::encode(e).expect("encode"),
        })
        .collect();
    let started = Instant::now();
    let file = std::fs::File::create(dir.join("raw.parquet")).expect("file");
    let batch = to_batch(&deliveries, chrono::Utc::now()).expect("batch");
    let props = lake::deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(lake::deltalake::parquet::basic::Compression::SNAPPY)
        .build();
    let mut w =
        lake::deltalake::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    for chunk in deliveries.chunks(50_000) {
        w.write(&to_batch(chunk, chrono::Utc::now()).expect("batch")).expect("write");
    }
    w.close().expect("close");
    let raw_secs = started.elapsed().as_secs_f64();
    let (ours, base) = (n as f64 / ingest_secs, n as f64 / raw_secs);
    figures.push(bench::figure(
        NAME,
        "bronze_ingest_from_kafka",
        ours,
        "rows/s",
        Some("raw parquet write of the same rows"),
        Some(ours / base),
        "report",
    ));
    figures.push(bench::figure(NAME, "bronze_ingest_commits", stats.commits as f64, "commits", None, None, "report"));
    figures.push(bench::figure(NAME, "raw_parquet_write", base, "rows/s", None, None, "baseline"));

    // --- pipelines.
    let started = Instant::now();
    let silver = SilverPipeline::new(location.clone()).expect("silver").run().await.expect("silver run");
    let silver_secs = started.elapsed().as_secs_f64();
    let written: u64 = silver.tables.iter().map(|t| t.written).sum();
    figures.push(bench::figure(
        NAME,
        "silver_pipeline",
        silver.bronze_rows as f64 / silver_secs,
        "rows/s",
        None,
        None,
        "report",
    ));
    let started = Instant::now();
    let gold = GoldPipeline::new(location.clone()).run().await.expect("gold run");
    let gold_secs = started.elapsed().as_secs_f64();
    figures.push(bench::figure(
        NAME,
        "gold_pipeline",
        written as f64 / gold_secs,
        "silver rows/s",
        None,
        None,
        "report",
    ));
    println!(
        "silver: {} rows in {silver_secs:.2}s; gold: {} tables in {gold_secs:.2}s",
        silver.bronze_rows,
        gold.tables.len()
    );

    // --- queries: DataFusion vs DuckDB on the same Parquet files, 2 threads.
    let queries = [
        (
            "revenue_per_product_day",
            "SELECT p.event_date AS day, i.product_id, SUM(i.line_amount) AS revenue, SUM(i.quantity) AS units FROM order_items i JOIN (SELECT DISTINCT order_id, event_date FROM orders WHERE event = 'OrderPaid') p ON p.order_id = i.order_id GROUP BY 1, 2",
        ),
        (
            "orders_by_final_status",
            "SELECT o.event_date, o.status, COUNT(*) AS n FROM orders o JOIN (SELECT order_id, MAX(aggregate_version) AS v FROM orders GROUP BY order_id) m ON m.order_id = o.order_id AND m.v = o.aggregate_version GROUP BY 1, 2",
        ),
        (
            "balances_per_day",
            "SELECT account_id, event_date, MAX(new_balance) AS high, SUM(balance_change) AS net, COUNT(*) AS entries FROM account_ledger GROUP BY 1, 2",
        ),
        (
            "events_per_day",
            "SELECT event_date, event, COUNT(*) AS n, SUM(total_amount) AS total FROM orders GROUP BY 1, 2",
        ),
    ];
    let config = SessionConfig::new().with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    let mut files = serde_json::Map::new();
    for name in ["orders", "order_items", "account_ledger"] {
        let t = LakeTable::open(&location, &TableId::new(Layer::Silver, name).expect("id"))
            .await
            .expect("open")
            .expect("table");
        ctx.register_table(name, t.provider().await.expect("provider")).expect("register");
        let paths: Vec<Value> = t
            .objects(None)
            .expect("objects")
            .iter()
            .map(|o| json!(dir.join("silver").join(name).join(&o.path).display().to_string()))
            .collect();
        files.insert(name.to_owned(), Value::Array(paths));
    }
    let mut ours = Vec::new();
    for (name, sql) in &queries {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let rows: usize =
                ctx.sql(sql).await.expect("plan").collect().await.expect("run").iter().map(|b| b.num_rows()).sum();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(rows > 0, "{name} returns rows");
        }
        ours.push(bench::median(times));
    }
    match duckdb_times(&files, &queries) {
        Ok(theirs) => {
            let mut log_sum = 0.0;
            for (i, (name, _)) in queries.iter().enumerate() {
                let ratio = ours[i] / theirs[i];
                log_sum += ratio.ln();
                figures.push(bench::figure(
                    NAME,
                    &format!("query_{name}"),
                    ours[i],
                    "ms",
                    Some("DuckDB 2.0, same Parquet files, 2 threads"),
                    Some(ratio),
                    "<=2x DuckDB",
                ));
            }
            let geo = (log_sum / queries.len() as f64).exp();
            figures.push(bench::figure(
                NAME,
                "query_geomean_vs_duckdb",
                geo,
                "x",
                Some("DuckDB 2.0"),
                Some(geo),
                "<=1.5x",
            ));
        }
        Err(e) => println!("DuckDB side skipped: {e}"),
    }

    // --- optimize: 1,000 small files in one partition.
    let odir = temp("optimize");
    let olocation = LakeLocation::local(&odir).expect("location");
    let id = TableId::new(Layer::Bronze, "small_files").expect("id");
    let slice = &deliveries[..deliveries.len().min(100_000)];
    let per = slice.len() / 1_000;
    let mut t =
        LakeTable::open_or_create(&olocation, &id, lake::bronze::bus::events_schema(), &["ingest_date", "source"])
            .await
            .expect("table");
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").expect("t").with_timezone(&chrono::Utc);
    let mut all = Vec::new();
    for k in 0..1_000 {
        let mut b = to_batch(&slice[k * per..(k + 1) * per], at).expect("batch");
        // One partition: every row from the same source.
        let schema = b.schema();
        let mut cols = b.columns().to_vec();
        cols[16] = Arc::new(lake::deltalake::arrow::array::StringArray::from(vec!["orders"; b.num_rows()]));
        b = lake::deltalake::arrow::array::RecordBatch::try_new(schema, cols).expect("batch");
        all.push(b);
    }
    for chunk in all.chunks(1) {
        t.append(chunk.to_vec(), &Commit::default()).await.expect("append");
    }
    let files_before = t.objects(None).expect("objects").len();
    let started = Instant::now();
    let report = t.optimize(Some(("ingest_date", "2026-12-01")), 128 * 1024 * 1024).await.expect("optimize");
    let optimize_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let file = std::fs::File::create(odir.join("raw.parquet")).expect("file");
    let mut w = lake::deltalake::parquet::arrow::ArrowWriter::try_new(file, all[0].schema(), None).expect("writer");
    for b in &all {
        w.write(b).expect("write");
    }
    w.close().expect("close");
    let raw = started.elapsed().as_secs_f64();
    figures.push(bench::figure(
        NAME,
        "optimize_1000_small_files",
        optimize_secs * 1000.0,
        "ms",
        Some("writing the same rows as one Parquet file"),
        Some(optimize_secs / raw),
        "report",
    ));
    println!("optimize: {files_before} files -> {} ({} removed)", report.files_added, report.files_removed);
    let lake = Lake::new(location);
    let _ = lake.tables().await;
    println!("{}", bench::report(&figures));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&odir).ok();
}

/// DuckDB's median times (ms) for the same queries over the same files.
fn duckdb_times(
    files: &serde_json::Map<String, Value>,
    queries: &[(&str, &str)],
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let python = std::env::var("LAKE_PYTHON").map_err(|_| "LAKE_PYTHON is not set")?;
    let script = r#"
import json, sys, time, statistics, duckdb
spec = json.loads(sys.stdin.read())
con = duckdb.connect()
con.execute("SET threads TO 2")
for name, paths in spec["files"].items():
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({paths!r}, hive_partitioning = true)")
out = []
for q in spec["queries"]:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        con.execute(q).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    out.append(statistics.median(times))
print(json.dumps(out))
"#;
    let spec = json!({"files": files, "queries": queries.iter().map(|(_, q)| *q).collect::<Vec<_>>()});
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child.stdin.take().ok_or("no stdin")?.write_all(spec.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("the DuckDB script failed ({})", out.status).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
