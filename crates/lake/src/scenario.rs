//! The seed's `demo_data_lake_modeling`, on real Delta tables: the three
//! customer records (张三, 李四, 王五) land as a JSON file in partition
//! `date=2023-01-01`, become `bronze.customers`, are cleaned into
//! `silver.customer_records` with a quality score computed per row from
//! real checks (the seed's constant 0.95 is gone), and summarised into
//! `gold.customer_statistics` (records, bytes, average quality, freshness).

use std::path::Path;

use chrono::Utc;
use serde::Serialize;

use crate::bronze::files::FileOutcome;
use crate::location::{LakeLocation, Layer, TableId};
use crate::port::{LakePort, LocalLake, Pipeline};
use crate::{Error, Result};

/// The seed's raw data.
pub fn raw_data() -> serde_json::Value {
    serde_json::json!([
        {"id": "1", "name": "张三", "age": 30, "timestamp": "2023-01-01T10:00:00"},
        {"id": "2", "name": "李四", "age": 25, "timestamp": "2023-01-01T10:05:00"},
        {"id": "3", "name": "王五", "age": 35, "timestamp": "2023-01-01T10:10:00"}
    ])
}

pub const PARTITION_KEY: &str = "date";
pub const PARTITION_VALUE: &str = "2023-01-01";

pub use crate::port::ObjectSummary;

/// What the seed prints, computed from the tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub created_partitions: Vec<String>,
    pub uploaded_to_bronze: ObjectSummary,
    pub silver_pipeline_completed: ObjectSummary,
    pub gold_pipeline_completed: ObjectSummary,
    pub total_objects: usize,
    pub total_partitions: usize,
    pub gold_layer_objects: Vec<ObjectSummary>,
    /// The gold statistics row.
    pub gold_statistics: serde_json::Value,
}

fn id(layer: Layer, name: &str) -> TableId {
    TableId { layer, name: name.to_owned() }
}

/// Runs the scenario on the lake at `location`; `landing` is the landing
/// folder the raw file is dropped in.
pub async fn run(location: &LakeLocation, landing: &Path) -> Result<Report> {
    run_on(&LocalLake::new(location.clone(), landing)).await
}

/// Runs the scenario through `lake` (these tables, or the lake service).
pub async fn run_on(lake: &dyn LakePort) -> Result<Report> {
    let created_partitions: Vec<String> =
        Layer::ALL.iter().map(|l| format!("{l}/{PARTITION_KEY}={PARTITION_VALUE}/")).collect();
    let partition = Some((PARTITION_KEY, PARTITION_VALUE));

    // Upload to bronze: the raw records as a JSON file in the landing folder.
    let file = format!("customers/{PARTITION_KEY}={PARTITION_VALUE}/customers.json");
    match lake.upload(&file, &serde_json::to_vec_pretty(&raw_data())?).await? {
        FileOutcome::Rejected { reason, .. } => return Err(Error::Rejected { path: file.into(), reason }),
        FileOutcome::Ingested { .. } | FileOutcome::AlreadyIngested { .. } => {}
    }
    let bronze = id(Layer::Bronze, "customers");

    // Bronze to silver: typed, trimmed, each row scored by the checks it passes.
    let silver = id(Layer::Silver, "customer_records");
    let replace_where = Some(format!("{PARTITION_KEY} = '{PARTITION_VALUE}'"));
    let lineage = |t: &TableId, v: Option<i64>| serde_json::json!({ t.to_string(): v });
    let silver_run = lake
        .run_pipeline(&Pipeline {
            target: silver.to_string(),
            sql: format!(
                "SELECT CAST(id AS VARCHAR) AS id, trim(name) AS name, CAST(age AS BIGINT) AS age, \
                 CAST(to_timestamp(\"timestamp\") AS TIMESTAMP) AS event_time, 'cleaned' AS status, \
                 (CAST(id IS NOT NULL AND id <> '' AS DOUBLE) + CAST(name IS NOT NULL AND trim(name) <> '' AS DOUBLE) \
                  + CAST(COALESCE(age BETWEEN 0 AND 150, false) AS DOUBLE) + CAST(to_timestamp(\"timestamp\") IS NOT NULL AS DOUBLE)) / 4.0 AS quality_score, \
                 {PARTITION_KEY} FROM bronze.customers WHERE {PARTITION_KEY} = '{PARTITION_VALUE}'"
            ),
            partition_by: vec![PARTITION_KEY.to_owned()],
            replace_where: replace_where.clone(),
            info: [
                ("lake.writer".to_owned(), "scenario.silver".into()),
                ("lake.lineage".to_owned(), lineage(&bronze, lake.table_version(&bronze).await?)),
            ]
            .into(),
        })
        .await?;

    // Silver to gold: the seed's statistics, from the silver partition.
    let silver_objects = lake.objects(&silver, partition).await?;
    let silver_bytes: u64 = silver_objects.iter().map(|o| o.size_bytes).sum();
    let gold = id(Layer::Gold, "customer_statistics");
    lake.run_pipeline(&Pipeline {
        target: gold.to_string(),
        sql: format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS total_records, CAST({silver_bytes} AS BIGINT) AS total_size_bytes, \
             AVG(quality_score) AS avg_quality_score, MAX(event_time) AS data_freshness, \
             CAST(to_timestamp('{now}') AS TIMESTAMP) AS aggregation_timestamp, '{PARTITION_VALUE}' AS {PARTITION_KEY} \
             FROM silver.customer_records WHERE {PARTITION_KEY} = '{PARTITION_VALUE}'",
            now = Utc::now().to_rfc3339()
        ),
        partition_by: vec![PARTITION_KEY.to_owned()],
        replace_where,
        info: [
            ("lake.writer".to_owned(), "scenario.gold".into()),
            ("lake.lineage".to_owned(), lineage(&silver, Some(silver_run.version))),
        ]
        .into(),
    })
    .await?;

    let bronze_objects = lake.objects(&bronze, partition).await?;
    let gold_objects = lake.objects(&gold, partition).await?;
    let stats = lake
        .query_json(&format!(
            "SELECT total_records, total_size_bytes, avg_quality_score, CAST(data_freshness AS VARCHAR) AS data_freshness \
             FROM gold.customer_statistics WHERE {PARTITION_KEY} = '{PARTITION_VALUE}'"
        ))
        .await?;
    let gold_statistics = stats.into_iter().next().unwrap_or_default();
    let first = |v: &[ObjectSummary], t: &TableId| {
        v.first().cloned().ok_or_else(|| Error::UnknownTable { name: t.to_string(), known: "(no file)".into() })
    };
    let mut partitions = std::collections::BTreeSet::new();
    for o in bronze_objects.iter().chain(&silver_objects).chain(&gold_objects) {
        partitions.insert((o.table.clone(), PARTITION_VALUE));
    }
    Ok(Report {
        created_partitions,
        uploaded_to_bronze: first(&bronze_objects, &bronze)?,
        silver_pipeline_completed: first(&silver_objects, &silver)?,
        gold_pipeline_completed: first(&gold_objects, &gold)?,
        total_objects: bronze_objects.len() + silver_objects.len() + gold_objects.len(),
        total_partitions: partitions.len(),
        gold_layer_objects: gold_objects,
        gold_statistics,
    })
}
