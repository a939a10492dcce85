//! The demo's lake part: the seed's `demo_data_lake_modeling` on Delta
//! tables, then every event the demo put on the bus ingested into bronze
//! and refined into silver and gold, with the lake's own events published
//! on `lake.events`.

use std::path::Path;
use std::time::Duration;

use domain_core::bus::{EventBus, topics};
use lake::bronze::{BronzeConfig, BronzeIngester};
use lake::gold::GoldPipeline;
use lake::silver::SilverPipeline;
use lake::{Lake, LakeLocation};
use serde_json::{Value, json};

use crate::error::Result;

pub const REVENUE_PER_PRODUCT: &str = "SELECT product_id, currency, CAST(SUM(revenue) AS VARCHAR) AS revenue, \
    CAST(SUM(orders) AS BIGINT) AS orders FROM gold.revenue_per_product_day \
    GROUP BY product_id, currency ORDER BY product_id, currency";

/// Runs the scenario and the bus-to-gold flow; returns the scenario's
/// summary (the seed's labels) and the platform's lake figures.
/// `prefix` is the commerce topics' prefix on a kept broker ("" in-process).
pub async fn data_lake_modeling(bus: &dyn EventBus, prefix: &str, data: &Path) -> Result<(Value, Value)> {
    let root = data.join("lake");
    let location = LakeLocation::local(&root)?;
    let report = lake::scenario::run(&location, &root.join("landing")).await?;
    let scenario = scenario_json(&report);

    // Everything the demo sent, from the bus into bronze, then refined.
    let config = BronzeConfig { max_wait: Duration::from_millis(200), ..BronzeConfig::default() };
    let mut ingester = BronzeIngester::open(&location, config).await?;
    let mut names: Vec<String> = topics::ALL.iter().map(|t| (*t).to_owned()).collect();
    if !prefix.is_empty() {
        names.extend(topics::ALL.iter().map(|t| format!("{prefix}{t}")));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sub = bus.subscribe(&ingester.group(), &names).await?;
    let bronze = ingester.run(sub.as_mut(), Some(Duration::from_secs(2)), std::future::pending()).await?;
    sub.close().await?;
    let silver = SilverPipeline::new(location.clone())?.run().await?;
    let gold = GoldPipeline::new(location.clone()).run().await?;
    let mut events = silver.quality_events()?;
    events.extend(gold.lineage_events()?);
    bus.publish(topics::LAKE, &events).await?;

    let lake = Lake::new(location);
    let tables = lake.stats().await?;
    // Revenue per product over every day, read back from gold for the report.
    let revenue = lake::rows_json(&lake.sql(REVENUE_PER_PRODUCT).await?)?;
    let platform = json!({
        "bronze_ingest": bronze,
        "silver": silver.tables.iter().map(|t| json!({
            "table": t.table, "rows_in": t.rows_in, "written": t.written, "quarantined": t.quarantined,
            "duplicates": t.duplicates, "quality_score": t.quality_score(),
        })).collect::<Vec<_>>(),
        "not_modelled": silver.unmodelled,
        "invalid": silver.invalid,
        "gold": gold.tables,
        "published": events.len(),
        "revenue_per_product": revenue,
        "tables": tables.iter().map(|s| json!({"table": s.table, "version": s.version, "files": s.files, "rows": s.rows, "bytes": s.bytes})).collect::<Vec<_>>(),
    });
    Ok((scenario, platform))
}

/// `demo_data_lake_modeling`'s summary (the seed's labels) from its report.
pub fn scenario_json(report: &lake::scenario::Report) -> Value {
    json!({
        "created_partitions": report.created_partitions,
        "uploaded_to_bronze": report.uploaded_to_bronze.path,
        "silver_pipeline_completed": report.silver_pipeline_completed.path,
        "gold_pipeline_completed": report.gold_pipeline_completed.path,
        "total_objects": report.total_objects,
        "total_partitions": report.total_partitions,
        "gold_layer_objects": report.gold_layer_objects.iter().map(|o| json!({"path": o.path, "size_bytes": o.size_bytes})).collect::<Vec<_>>(),
        "gold_statistics": report.gold_statistics,
    })
}
