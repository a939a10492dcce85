//! `platform demo --kafka`: the same seed scenarios as the in-process demo,
//! with each context as its own `platform serve` process on the broker.
//! The demo is only their client: it calls their HTTP APIs, and the
//! contexts talk to each other through Kafka alone.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::output::Format;
use crate::remote::commerce::RemoteCommerce;
use crate::remote::lake::RemoteLake;
use crate::remote::{Endpoint, Services, scenarios as remote};
use crate::scenarios::WorkloadSize;

/// How long bronze may take to catch up with what the contexts relayed.
const BRONZE_WAIT: Duration = Duration::from_secs(180);

/// Runs every scenario against five service processes on `bootstrap`;
/// the summary has the in-process demo's shape.
pub async fn run(
    out: &Path,
    bootstrap: &str,
    size: WorkloadSize,
    format: Format,
    say: &(impl Fn(&str) + Sync),
) -> Result<Value> {
    let data = out.join("data");
    let prefix = format!("demo-{}.", Uuid::now_v7().simple());
    say(&format!(
        "[1/6] starting {} services on Kafka {bootstrap} (logs in {})",
        crate::remote::CONTEXTS.join(", "),
        out.join("logs").display()
    ));
    // Payments go to the seed's merchant; the lake refines when asked.
    let env = [("PLATFORM_MERCHANT_ACCOUNT", "merchant"), ("PLATFORM_LAKE_REFINE_SECS", "0")];
    let services = Services::start(bootstrap, &data, &prefix, &out.join("logs"), &env).await?;
    let outcome = scenarios_on(&services, size, format, say).await;
    let described = services.describe();
    let stopped = services.stop().await;
    let mut summary = outcome?;
    stopped?;
    summary["bus"] = json!(format!("kafka {bootstrap}, one process per context"));
    summary["platform"]["services"] =
        described.iter().map(|(context, addr, pid)| json!({ "context": context, "http": addr, "pid": pid })).collect();
    Ok(summary)
}

async fn scenarios_on(
    services: &Services,
    size: WorkloadSize,
    format: Format,
    say: &(impl Fn(&str) + Sync),
) -> Result<Value> {
    let orders = services.endpoint("orders")?;
    let accounts = services.endpoint("accounts")?;
    let mut commerce = RemoteCommerce { orders: orders.clone(), accounts: accounts.clone() };

    say("[2/6] demo_domain_driven_modeling and demo_event_sourcing over the orders and accounts APIs");
    let (domain_driven_modeling, event_sourcing, workload) =
        super::commerce_scenarios(&mut commerce, size, format, say).await?;

    say("[3/6] demo_data_mesh: the registry service measures the customers the orders service owns");
    let registry = services.endpoint("registry")?;
    let data_mesh = remote::data_mesh(&orders, &registry).await?;

    say("[4/6] demo_time_series_modeling on the time-series service");
    let ts = services.endpoint("timeseries")?;
    let time_series = remote::time_series(&ts).await?;
    let per_city = remote::per_city(&ts).await?;
    let ts_stats = ts.call("GET", "/ts/stats", None).await?;

    say("[5/6] demo_data_lake_modeling on the lake service, then bronze -> silver -> gold of the demo's events");
    let lake_ep = services.endpoint("lake")?;
    let data_lake = crate::lake_demo::scenario_json(&lake::scenario::run_on(&RemoteLake(lake_ep.clone())).await?);
    let relayed = relayed_events(&[&orders, &accounts]).await?;
    let bronze_rows = wait_for_bronze(&lake_ep, relayed).await?;
    let refined = lake_ep.call("POST", "/lake/refine", None).await?;
    let tables = lake_ep.call("GET", "/lake/tables", None).await?;
    let revenue = lake_ep
        .call("POST", "/lake/sql", Some(&json!({ "sql": crate::lake_demo::REVENUE_PER_PRODUCT })))
        .await?["rows"]
        .clone();

    say("[6/6] writing the report");
    let bytes_per_point = ts_stats["bytes_per_point"].as_f64().unwrap_or_default();
    Ok(json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "scenarios": {
            "demo_domain_driven_modeling": domain_driven_modeling,
            "demo_event_sourcing": event_sourcing,
            "demo_data_mesh": data_mesh,
            "demo_time_series_modeling": time_series,
            "demo_data_lake_modeling": data_lake,
        },
        "platform": {
            "sagas": workload,
            "mesh": {
                "products": data_mesh["products"].clone(),
                "customer_quality": data_mesh["quality_metrics"].clone(),
            },
            "commerce_events_relayed": relayed,
            "timeseries": {
                "series": ts_stats["series"],
                "points": ts_stats["points"],
                "disk_bytes": ts_stats["disk_bytes"],
                "bytes_per_point": (bytes_per_point * 100.0).round() / 100.0,
                "per_city": per_city,
            },
            "lake": {
                "bronze_rows": bronze_rows,
                "refined": refined,
                "tables": tables,
                "revenue_per_product": revenue,
            },
        },
    }))
}

/// Events the contexts relayed to the bus so far (their outboxes).
async fn relayed_events(endpoints: &[&Endpoint]) -> Result<u64> {
    let mut total = 0.0;
    for e in endpoints {
        total += crate::serve::exposition::sum(&e.metrics().await?, "platform_outbox_published_total", &[]);
    }
    Ok(total as u64)
}

/// Waits until bronze holds at least `commerce` records of the commerce
/// topics (the lake service ingests every `*.events` topic on its own).
async fn wait_for_bronze(lake: &Endpoint, commerce: u64) -> Result<u64> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM bronze.events \
               WHERE topic LIKE '%orders.events' OR topic LIKE '%accounts.events'";
    let deadline = tokio::time::Instant::now() + BRONZE_WAIT;
    loop {
        let reply = lake.send("POST", "/lake/sql", Some(&json!({ "sql": sql }))).await?;
        let n = if reply.is_success() { reply.json()?["rows"][0]["n"].as_u64().unwrap_or(0) } else { 0 };
        if n >= commerce {
            return Ok(n);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "bronze holds {n} of the {commerce} commerce events after {} s; see the lake service's log",
                BRONZE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The figures both demos must agree on: what the seed's functions print,
/// without what differs by nature between runs (times, generated ids,
/// search scores, file names and sizes of Parquet files).
pub fn seed_figures(summary: &Value) -> Value {
    let s = &summary["scenarios"];
    let ddm = &s["demo_domain_driven_modeling"];
    let es = &s["demo_event_sourcing"];
    let dm = &s["demo_data_mesh"];
    let dl = &s["demo_data_lake_modeling"];
    let types = |rows: &Value| -> Vec<Value> {
        rows.as_array().into_iter().flatten().map(|r| r["event_type"].clone()).collect()
    };
    let balances = |rows: &Value| -> Vec<Value> {
        rows.as_array().into_iter().flatten().map(|r| json!([r["event_type"], r["balance"]])).collect()
    };
    let ids = |rows: &Value| -> Vec<Value> { rows.as_array().into_iter().flatten().map(|r| r["id"].clone()).collect() };
    let gold = &dl["gold_statistics"];
    json!({
        "demo_domain_driven_modeling": {
            "order_id": ddm["order_id"],
            "order_status": ddm["order_status"],
            "total_amount": ddm["total_amount"],
            "shipping_address": ddm["shipping_address"],
            "generated_events": types(&ddm["generated_events"]),
            "paid_through_accounts": ddm["paid_through_accounts"],
        },
        "demo_event_sourcing": {
            "account_holder": es["account_holder"],
            "balance": es["balance"],
            "currency": es["currency"],
            "version": es["version"],
            "event_history": types(&es["event_history"]),
            "account_002": es["account_002"],
            "balance_over_time": {
                "account_001": balances(&es["balance_over_time"]["account_001"]),
                "account_002": balances(&es["balance_over_time"]["account_002"]),
            },
        },
        "demo_data_mesh": {
            "registered_data_product": dm["registered_data_product"],
            "registered_contract_for_product": dm["registered_contract_for_product"],
            "endpoints": dm["endpoints"],
            "customer_data": dm["customer_data"],
            "all_customers": dm["all_customers"],
            "search_results": ids(&dm["search_results"]),
            "quality_metrics": dm["quality_metrics"],
            "records_measured": dm["records_measured"],
            "invalid_records": dm["invalid_records"],
        },
        "demo_time_series_modeling": s["demo_time_series_modeling"],
        "demo_data_lake_modeling": {
            "created_partitions": dl["created_partitions"],
            "total_objects": dl["total_objects"],
            "total_partitions": dl["total_partitions"],
            "gold_layer_objects": dl["gold_layer_objects"].as_array().map_or(0, Vec::len),
            "total_records": gold["total_records"],
            "avg_quality_score": gold["avg_quality_score"],
            "data_freshness": gold["data_freshness"],
        },
    })
}
