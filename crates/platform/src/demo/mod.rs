//! `platform demo`: the seed's scenarios on the real contexts, with a
//! report. In-process by default (one process, the in-process bus,
//! embedded storage); with `--kafka`, each context runs as its own
//! `platform serve` process on the broker and the demo drives them over
//! their HTTP APIs ([`services`]). [`services::seed_figures`] is what the
//! two summaries agree on.

pub mod services;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain_core::bus::{Consumer, Delivery, EventBus, Handler, InProcessBus, RetryPolicy, TopicSpec, topics};
use domain_core::{Envelope, EventType};
use serde_json::{Value, json};
use uuid::Uuid;

use accounts::SagaConfig;

use crate::commerce::{Commerce, CommercePort};
use crate::error::{Result, io};
use crate::node::{BusChoice, Node};
use crate::output::{Format, Progress, table};
use crate::scenarios::{self, WorkloadSize};

/// How long the demo waits for its events to come back.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Run each context as its own `platform serve` process on Apache
    /// Kafka and drive them over HTTP; ADDR defaults to $KAFKA_BOOTSTRAP,
    /// then 127.0.0.1:9092.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "ADDR")]
    kafka: Option<String>,
    /// Orders in the generated workload (customers and transfers scale
    /// with it).
    #[arg(long, default_value_t = WorkloadSize::default().orders, value_name = "N")]
    orders: usize,
    /// Folder for summary.json, report.html and the demo's data.
    #[arg(long, default_value = "target/demo", value_name = "DIR")]
    out: PathBuf,
}

fn ty(s: &str) -> Result<EventType> {
    Ok(s.parse()?)
}

/// Sample events of the contexts not built yet (orders and accounts run
/// for real, see [`run_commerce`]).
fn samples() -> Result<Vec<(&'static str, Envelope)>> {
    let mut out = Vec::new();
    out.push((
        topics::MESH,
        Envelope::raw(
            "mesh",
            ty("mesh.DataProductRegistered.v1")?,
            "customer_analytics",
            1,
            json!({ "domain": "customer", "owner": "customer_team", "output_ports": ["orders.events"] }),
        ),
    ));
    out.push((
        topics::LAKE,
        Envelope::raw(
            "lake",
            ty("lake.TableCommitted.v1")?,
            "bronze.orders",
            1,
            json!({ "layer": "bronze", "version": 0, "rows": 5 }),
        ),
    ));
    out.push((
        topics::TIMESERIES,
        Envelope::raw(
            "timeseries",
            ty("timeseries.SeriesCreated.v1")?,
            "temperature",
            1,
            json!({ "unit": "celsius", "tags": ["device_id", "location"] }),
        ),
    ));
    out.push((
        topics::TELEMETRY,
        Envelope::raw(
            "timeseries",
            ty("timeseries.PointWritten.v1")?,
            "device_001",
            1,
            json!({ "series": "temperature", "value": 23.5, "tags": { "location": "beijing" } }),
        ),
    ));
    Ok(out)
}

/// Keeps what comes back, ignoring events of earlier runs on a kept broker.
#[derive(Debug)]
struct Collector {
    wanted: HashSet<Uuid>,
    received: Vec<(Delivery, Envelope)>,
}

#[async_trait]
impl Handler for Collector {
    async fn handle(&mut self, event: &Envelope, delivery: &Delivery) -> domain_core::Result<()> {
        if self.wanted.remove(&event.id) {
            self.received.push((delivery.clone(), event.clone()));
        }
        Ok(())
    }
}

pub async fn run(args: DemoArgs, _data: &Path, format: Format) -> Result<()> {
    let data_dir = args.out.join("data");
    // Every run starts from empty storage, so the report is reproducible.
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).map_err(io(&data_dir))?;
    }
    std::fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
    let say = |msg: &str| {
        if format == Format::Table {
            eprintln!("{msg}");
        }
    };
    if let Some(addr) = &args.kafka {
        let addr = match addr.as_str() {
            "" => std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned()),
            a => a.to_owned(),
        };
        let summary = services::run(&args.out, &addr, WorkloadSize::scaled(args.orders), format, &say).await?;
        write_outputs(&args.out, &summary)?;
        match format {
            Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&summary)?),
            Format::Table | Format::Csv => {
                print_commerce(&summary);
                crate::outln!("\nreport in {}; data in {}", args.out.join("report.html").display(), data_dir.display());
            }
        }
        return Ok(());
    }
    let (bus, bus_name): (Arc<dyn EventBus>, String) = (Arc::new(InProcessBus::new()), "in-process".to_owned());
    say(&format!("[1/7] bus: {bus_name}; creating topics"));
    let specs: Vec<_> = topics::ALL.iter().map(|t| TopicSpec::new(*t, 3)).collect();
    bus.create_topics(&specs).await?;

    say("[2/7] demo_domain_driven_modeling and demo_event_sourcing on the orders and accounts contexts");
    let commerce = run_commerce(&bus, &data_dir, WorkloadSize::scaled(args.orders), format, &say).await?;

    say("[3/7] demo_time_series_modeling on the time-series engine");
    let ts_dir = crate::ts::dir(&data_dir);
    let (time_series, (ts_stats, per_city)) = {
        let engine = timeseries::Engine::open(&ts_dir)?;
        let report = timeseries::scenario::run(&engine)?;
        let per_city = timeseries::scenario::hourly_by_city(&engine)?;
        engine.flush()?;
        (report, (engine.stats(), per_city))
    };
    let sent = samples()?;

    say(&format!("[4/7] publishing {} sample events of the other contexts", sent.len()));
    for (topic, env) in &sent {
        bus.publish(topic, std::slice::from_ref(env)).await?;
    }

    say("[5/7] consuming them back (consumer group, commit after handling)");
    let group = format!("demo-{}", Uuid::now_v7().simple());
    let sub = bus.subscribe(&group, &topics::ALL).await?;
    let mut consumer = Consumer::new(sub, RetryPolicy::default());
    let mut collector = Collector { wanted: sent.iter().map(|(_, e)| e.id).collect(), received: Vec::new() };
    let deadline = tokio::time::Instant::now() + ROUND_TRIP_TIMEOUT;
    while !collector.wanted.is_empty() && tokio::time::Instant::now() < deadline {
        consumer.poll_once(&mut collector, Duration::from_millis(500)).await?;
    }
    consumer.close().await?;
    if !collector.wanted.is_empty() {
        return Err(crate::error::Error::Incomplete {
            got: collector.received.len(),
            expected: sent.len(),
            seconds: ROUND_TRIP_TIMEOUT.as_secs(),
        });
    }
    collector.received.sort_by(|a, b| {
        (a.0.topic.as_str(), a.1.subject.as_str(), a.1.aggregate_version).cmp(&(
            b.0.topic.as_str(),
            b.1.subject.as_str(),
            b.1.aggregate_version,
        ))
    });

    say("[6/7] demo_data_lake_modeling, and every event of the demo from the bus into bronze, silver and gold");
    let (data_lake, lake_figures) =
        crate::lake_demo::data_lake_modeling(bus.as_ref(), &commerce.prefix, &data_dir).await?;

    say("[7/7] writing the report");
    let mut summary = summary(&bus_name, &collector.received);
    summary["scenarios"]["demo_domain_driven_modeling"] = commerce.domain_driven_modeling;
    summary["scenarios"]["demo_event_sourcing"] = commerce.event_sourcing;
    summary["platform"]["sagas"] = commerce.workload;
    summary["platform"]["mesh"] = json!({
        "products": commerce.data_mesh["products"].clone(),
        "customer_quality": commerce.data_mesh["quality_metrics"].clone(),
    });
    summary["scenarios"]["demo_data_mesh"] = commerce.data_mesh;
    summary["platform"]["commerce_events_per_topic"] = serde_json::to_value(&commerce.per_topic)?;
    summary["scenarios"]["demo_time_series_modeling"] = serde_json::to_value(&time_series)?;
    summary["scenarios"]["demo_data_lake_modeling"] = data_lake;
    summary["platform"]["lake"] = lake_figures;
    summary["platform"]["timeseries"] = serde_json::json!({
        "series": ts_stats.series,
        "points": ts_stats.points,
        "disk_bytes": ts_stats.disk_bytes,
        "bytes_per_point": (ts_stats.bytes_per_point * 100.0).round() / 100.0,
        "per_city": per_city,
    });
    write_outputs(&args.out, &summary)?;
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&summary)?),
        Format::Table | Format::Csv => {
            let rows: Vec<Vec<String>> = collector
                .received
                .iter()
                .map(|(d, e)| {
                    vec![
                        d.topic.clone(),
                        d.partition.to_string(),
                        d.offset.to_string(),
                        e.event_type.to_string(),
                        e.subject.clone(),
                        e.data.to_string(),
                    ]
                })
                .collect();
            crate::outln!("{}", table(&["topic", "partition", "offset", "type", "subject", "data"], &rows));
            crate::outln!("\nall {} events came back", rows.len());
            print_commerce(&summary);
            let ts = &time_series;
            crate::outln!("\ndemo_time_series_modeling");
            crate::outln!("Created time series: {}", ts.created_time_series);
            crate::outln!("Inserted {} data points", ts.inserted_data_points);
            crate::outln!("Query results: {} data points", ts.query_results);
            crate::outln!(
                "Aggregated data: {} buckets (answered from the {} rollup)",
                ts.aggregated_data,
                ts.answered_from
            );
            for b in &ts.buckets {
                crate::outln!(
                    "  {}: avg={:.2}°C, min={:.2}°C, max={:.2}°C, p95={:.2}°C",
                    b.timestamp,
                    b.avg,
                    b.min,
                    b.max,
                    b.p95
                );
            }
            let dl = &summary["scenarios"]["demo_data_lake_modeling"];
            crate::outln!("\ndemo_data_lake_modeling");
            for p in dl["created_partitions"].as_array().into_iter().flatten() {
                crate::outln!("Created partition: {}", p.as_str().unwrap_or(""));
            }
            crate::outln!("Uploaded to Bronze: {}", dl["uploaded_to_bronze"].as_str().unwrap_or(""));
            crate::outln!("Silver pipeline completed: {}", dl["silver_pipeline_completed"].as_str().unwrap_or(""));
            crate::outln!("Gold pipeline completed: {}", dl["gold_pipeline_completed"].as_str().unwrap_or(""));
            crate::outln!("Data Lake Summary:");
            crate::outln!("Total objects: {}", dl["total_objects"]);
            crate::outln!("Total partitions: {}", dl["total_partitions"]);
            let gold = dl["gold_layer_objects"].as_array().cloned().unwrap_or_default();
            crate::outln!("Gold layer objects: {}", gold.len());
            for o in &gold {
                crate::outln!("  - {} ({} bytes)", o["path"].as_str().unwrap_or(""), o["size_bytes"]);
            }
            crate::outln!("\nreport in {}; data in {}", args.out.join("report.html").display(), data_dir.display());
        }
    }
    Ok(())
}

/// The seed's prints for the order and account stories, then the workload.
fn print_commerce(summary: &Value) {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let ddm = &summary["scenarios"]["demo_domain_driven_modeling"];
    crate::outln!("\ndemo_domain_driven_modeling");
    crate::outln!("Generated Events:");
    for e in ddm["generated_events"].as_array().into_iter().flatten() {
        crate::outln!("  {}: {}", text(&e["event_type"]), e["data"]);
    }
    crate::outln!("Order Status: {}", text(&ddm["order_status"]));
    crate::outln!("Total Amount: {}", text(&ddm["total_amount"]));
    crate::outln!("Shipping Address: {}", text(&ddm["shipping_address"]));
    let es = &summary["scenarios"]["demo_event_sourcing"];
    crate::outln!("\ndemo_event_sourcing");
    crate::outln!("Account Holder: {}", text(&es["account_holder"]));
    crate::outln!("Balance: {}", text(&es["balance"]));
    crate::outln!("Currency: {}", text(&es["currency"]));
    crate::outln!("\nEvent History:");
    for e in es["event_history"].as_array().into_iter().flatten() {
        crate::outln!("  {}: {} - {}", text(&e["timestamp"]), text(&e["event_type"]), e["data"]);
    }
    crate::outln!("account_002 balance: {}", text(&es["account_002"]["balance"]));
    let w = &summary["platform"]["sagas"];
    crate::outln!("\nworkload (seed {}): {} orders, {} transfers", w["seed"], w["orders"], w["transfers_requested"]);
    crate::outln!("  orders per terminal state: {}", w["orders_per_terminal_state"]);
    crate::outln!("  cancelled: {}", w["cancelled_orders"]);
    crate::outln!(
        "  transfers completed {}, compensated {} {}, refused at once {}",
        w["transfers_completed"],
        w["transfers_compensated"],
        w["transfers_compensated_by_reason"],
        w["transfers_refused_at_once"]
    );
    crate::outln!("  money_conserved: {}", w["money_conserved"]);
    let dm = &summary["scenarios"]["demo_data_mesh"];
    crate::outln!("\ndemo_data_mesh");
    crate::outln!("Registered data product: {}", text(&dm["registered_data_product"]));
    crate::outln!("Registered contract for product: {}", text(&dm["registered_contract_for_product"]));
    crate::outln!("Customer data: {}", dm["customer_data"]);
    crate::outln!("Searching for customer-related products...");
    for p in dm["search_results"].as_array().into_iter().flatten() {
        crate::outln!("  - {}: {}", text(&p["name"]), text(&p["description"]));
    }
    crate::outln!(
        "Quality metrics (measured on {} records, {} invalid): {}",
        dm["records_measured"],
        dm["invalid_records"],
        dm["quality_metrics"]
    );
}

/// What the commerce scenarios left for the summary.
struct CommerceReport {
    domain_driven_modeling: Value,
    event_sourcing: Value,
    workload: Value,
    data_mesh: Value,
    per_topic: BTreeMap<String, u64>,
    /// The commerce topics' prefix ("" in-process).
    prefix: String,
}

/// Runs the seed's order and account stories, then the generated workload,
/// on embedded stores under `data` and the demo's bus.
async fn run_commerce(
    bus: &Arc<dyn EventBus>,
    data: &Path,
    size: WorkloadSize,
    format: Format,
    say: &impl Fn(&str),
) -> Result<CommerceReport> {
    let (choice, prefix) = (BusChoice::InProcess, String::new());
    let node = Node::on_bus(Arc::clone(bus), choice, &prefix).await?;
    let orders = crate::commerce::open_orders(data)?;
    let accounts = crate::node::open_store(data, "accounts")?;
    let mut commerce = Commerce::on_node(orders, accounts, node, SagaConfig::default()).await?;
    let (domain_driven_modeling, event_sourcing, workload) =
        commerce_scenarios(&mut commerce, size, format, say).await?;
    say("      demo_data_mesh: the registry registers, enforces and serves the customer product");
    let others = vec![timeseries::bus::announcement(&timeseries::scenario::schema())?];
    let data_mesh = crate::mesh::data_mesh(&mut commerce, data, &prefix, others).await?;
    let per_topic = commerce.node().relayed_per_topic().clone();
    commerce.close().await?;
    Ok(CommerceReport { domain_driven_modeling, event_sourcing, workload, data_mesh, per_topic, prefix })
}

fn summary(bus: &str, received: &[(Delivery, Envelope)]) -> Value {
    let mut per_topic: BTreeMap<&str, usize> = BTreeMap::new();
    for (d, _) in received {
        *per_topic.entry(d.topic.as_str()).or_default() += 1;
    }
    let events: Vec<Value> = received
        .iter()
        .map(|(d, e)| {
            json!({
                "topic": d.topic, "partition": d.partition, "offset": d.offset, "id": e.id, "type": e.event_type,
                "subject": e.subject, "aggregate_version": e.aggregate_version, "correlation_id": e.correlation_id,
                "causation_id": e.causation_id, "data": e.data,
            })
        })
        .collect();
    json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "bus": bus,
        "scenarios": {},
        "platform": { "events_per_topic": per_topic, "round_trip": events },
    })
}

fn write_outputs(out: &Path, summary: &Value) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(summary)?).map_err(io(&path))?;
    let path = out.join("report.html");
    std::fs::write(&path, crate::report::html(summary)).map_err(io(&path))?;
    Ok(())
}

/// The seed's two commerce scenarios, then the generated workload with a
/// progress bar: what both demos run, on the contexts here or their services.
async fn commerce_scenarios<S: Fn(&str) + ?Sized>(
    commerce: &mut dyn CommercePort,
    size: WorkloadSize,
    format: Format,
    say: &S,
) -> Result<(Value, Value, Value)> {
    let domain_driven_modeling = scenarios::domain_driven_modeling(commerce).await?;
    let event_sourcing = scenarios::event_sourcing(commerce).await?;
    say("      generated workload through both sagas (fixed seed)");
    let progress = Progress::new(format, (size.customers + size.orders + size.transfers) as u64);
    let workload = scenarios::workload(commerce, size, |done, _, m| progress.update(done, m)).await;
    progress.finish();
    Ok((domain_driven_modeling, event_sourcing, workload?))
}
