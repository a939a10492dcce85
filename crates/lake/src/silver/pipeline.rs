//! Bronze to silver (the seed's `bronze_to_silver_pipeline`), incremental
//! and exactly-once per output table.
//!
//! Each silver table (and the quarantine) remembers, per bronze
//! topic-partition, the last bronze offset it has taken, as `txn` actions
//! (`silver:<topic>:<partition>`) in the same commit as its rows. A run
//! reads the bronze records past the lowest of those marks, up to the
//! bronze snapshot it opened, and each table takes only what is past its
//! own mark; a crash between two tables' commits repeats nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::Utc;
use deltalake::arrow::array::{
    Array, AsArray, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use deltalake::datafusion::prelude::SessionContext;
use domain_core::{Envelope, EventType};
use serde::Serialize;

use crate::bronze::bus::{events_table, source_of};
use crate::location::{LakeLocation, Layer, TableId};
use crate::silver::expectations::{Action, Compiled, Counts, ExpectationSet};
use crate::silver::model::{self, DATE_COLUMN, Kind, QUARANTINE};
use crate::silver::rows::{self, Cell};
use crate::table::{Commit, LakeTable};
use crate::{Error, Result};

/// What a run did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows_in: u64,
    pub written: u64,
    pub quarantined: u64,
    pub dropped: u64,
    pub duplicates: u64,
    pub version: i64,
    pub expectations: BTreeMap<String, Counts>,
}

impl TableReport {
    /// Rows that passed every expectation over rows checked (1 when none were).
    pub fn quality_score(&self) -> f64 {
        let checked: u64 = self.expectations.values().map(|c| c.passed + c.failed).sum();
        let passed: u64 = self.expectations.values().map(|c| c.passed).sum();
        if checked == 0 { 1.0 } else { passed as f64 / checked as f64 }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SilverReport {
    pub bronze_version: i64,
    /// Bronze records read this run.
    pub bronze_rows: u64,
    /// Records of events no silver table models (they stay in bronze).
    pub unmodelled: u64,
    /// Records that are not a readable event at all (quarantined).
    pub invalid: u64,
    pub tables: Vec<TableReport>,
    pub quarantine_version: i64,
}

impl SilverReport {
    /// `lake.QualityMeasured.v1`, one per silver table the run wrote to,
    /// with the same counts as the table's commit info.
    pub fn quality_events(&self) -> Result<Vec<Envelope>> {
        let ty = EventType::new("lake", "QualityMeasured", 1)?;
        let mut out = Vec::new();
        for t in self.tables.iter().filter(|t| t.rows_in > 0) {
            let data = serde_json::json!({
                "product_id": format!("lake.{}", t.table),
                "port": t.table,
                "table_version": t.version,
                "rows_in": t.rows_in,
                "written": t.written,
                "quarantined": t.quarantined,
                "dropped": t.dropped,
                "duplicates": t.duplicates,
                "quality": t.quality_score(),
                "expectations": t.expectations,
            });
            out.push(Envelope::raw("lake", ty.clone(), t.table.clone(), t.version.max(0) as u64, data));
        }
        Ok(out)
    }
}

/// The bronze to silver pipeline.
#[derive(Debug, Clone)]
pub struct SilverPipeline {
    location: LakeLocation,
    expectations: ExpectationSet,
}

type Mark = (String, i32);

fn app_id((topic, partition): &Mark) -> String {
    format!("silver:{topic}:{partition}")
}

impl SilverPipeline {
    /// A pipeline with the lake's default expectations, plus the local
    /// config `expectations.json` at the lake root when there is one.
    pub fn new(location: LakeLocation) -> Result<Self> {
        let mut expectations = ExpectationSet::defaults();
        if let Some(dir) = location.local_dir() {
            let path = dir.join("expectations.json");
            if path.exists() {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                expectations.apply_config(&text)?;
            }
        }
        Ok(Self { location, expectations })
    }

    pub fn with_expectations(mut self, expectations: ExpectationSet) -> Self {
        self.expectations = expectations;
        self
    }

    pub fn expectations(&self) -> &ExpectationSet {
        &self.expectations
    }

    async fn open(&self, name: &str, schema: deltalake::arrow::datatypes::SchemaRef) -> Result<LakeTable> {
        let id = TableId { layer: Layer::Silver, name: name.to_owned() };
        LakeTable::open_or_create_with_cdf(&self.location, &id, schema, &[DATE_COLUMN]).await
    }

    /// Runs once over what bronze gained since the last run.
    pub async fn run(&self) -> Result<SilverReport> {
        let Some(bronze) = LakeTable::open(&self.location, &events_table()).await? else {
            return Ok(SilverReport::default());
        };
        let mut tables = Vec::new();
        for t in &model::TABLES {
            tables.push((t, self.open(t.name, t.schema()).await?));
        }
        let mut quarantine = self.open(QUARANTINE, model::quarantine_schema()).await?;

        let ctx = SessionContext::new();
        ctx.register_table("bronze", bronze.provider().await?)?;
        let tops = partition_tops(&ctx).await?;

        // Each table's marks, and the lowest per partition.
        let mut marks: Vec<HashMap<Mark, i64>> = Vec::new();
        for (_, table) in &tables {
            marks.push(read_marks(table, &tops).await?);
        }
        let quarantine_marks = read_marks(&quarantine, &tops).await?;
        let mut low: HashMap<Mark, i64> = quarantine_marks.clone();
        for m in &marks {
            for (k, v) in m {
                let slot = low.entry(k.clone()).or_insert(*v);
                *slot = (*slot).min(*v);
            }
        }

        // Contracts published on mesh.events reached bronze too.
        let mut expectations = self.expectations.clone();
        apply_contracts(&ctx, &mut expectations).await?;

        let mut report = SilverReport { bronze_version: bronze.version(), ..SilverReport::default() };
        let pending: Vec<(&Mark, i64, i64)> =
            tops.iter().filter_map(|(k, top)| (low[k] < *top).then_some((k, low[k], *top))).collect();
        if pending.is_empty() {
            for (t, table) in &tables {
                report.tables.push(TableReport {
                    table: format!("silver.{}", t.name),
                    version: table.version(),
                    ..Default::default()
                });
            }
            report.quarantine_version = quarantine.version();
            return Ok(report);
        }
        let filter = pending
            .iter()
            .map(|((topic, p), from, to)| {
                format!(
                    "(topic = '{}' AND \"partition\" = {p} AND \"offset\" > {from} AND \"offset\" <= {to})",
                    topic.replace('\'', "''")
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let query = format!(
            "SELECT topic, \"partition\", \"offset\", event_id, event_type, subject, event_time, aggregate_version, payload \
             FROM bronze WHERE {filter} ORDER BY topic, \"partition\", \"offset\""
        );
        let batches = ctx.sql(&query).await?.collect().await?;

        let compiled: Vec<Vec<Compiled>> =
            tables.iter().map(|(t, _)| expectations.compiled(t.name)).collect::<Result<_>>()?;
        let mut out: Vec<Vec<rows::Row>> = vec![Vec::new(); tables.len()];
        let mut counts: Vec<BTreeMap<String, Counts>> = compiled
            .iter()
            .map(|c| {
                c.iter()
                    .map(|x| (x.spec.name.clone(), Counts { action: Some(x.spec.action), ..Counts::default() }))
                    .collect()
            })
            .collect();
        let mut table_reports: Vec<TableReport> = tables
            .iter()
            .map(|(t, _)| TableReport { table: format!("silver.{}", t.name), ..Default::default() })
            .collect();
        let mut quarantined = QuarantineRows::default();
        let mut failures: Vec<(usize, String, u64)> = Vec::new();
        let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); tables.len()];
        let mut dates: Vec<BTreeSet<String>> = vec![BTreeSet::new(); tables.len()];

        for batch in &batches {
            let b = Columns::of(batch)?;
            for i in 0..batch.num_rows() {
                report.bronze_rows += 1;
                let (topic, partition, offset) = (b.topic.value(i), b.partition.value(i), b.offset.value(i));
                let mark = (topic.to_owned(), partition);
                let payload = b.payload.is_valid(i).then(|| b.payload.value(i));
                let event = rows::event(
                    topic,
                    b.id.is_valid(i).then(|| b.id.value(i)),
                    b.event_type.is_valid(i).then(|| b.event_type.value(i)),
                    b.subject.is_valid(i).then(|| b.subject.value(i)),
                    b.time.is_valid(i).then(|| b.time.value(i)),
                    b.version.is_valid(i).then(|| b.version.value(i)),
                    payload,
                );
                let event = match event {
                    Ok(e) => e,
                    Err(reason) => {
                        if offset > quarantine_marks.get(&mark).copied().unwrap_or(-1) {
                            report.invalid += 1;
                            let ty = b.event_type.is_valid(i).then(|| b.event_type.value(i));
                            let id = b.id.is_valid(i).then(|| b.id.value(i));
                            quarantined.push(None, id, ty, "valid_event", &reason, payload, (topic, partition, offset));
                        }
                        continue;
                    }
                };
                let Some(ti) = model::TABLES.iter().position(|t| t.accepts(source_context(&event), event.name)) else {
                    report.unmodelled += 1;
                    continue;
                };
                if offset <= marks[ti].get(&mark).copied().unwrap_or(-1) {
                    continue;
                }
                let table = tables[ti].0;
                let target = format!("silver.{}", table.name);
                table_reports[ti].rows_in += 1;
                let row = match rows::extract_row(table, &event) {
                    Ok(r) => r,
                    Err(reason) => {
                        if offset > quarantine_marks.get(&mark).copied().unwrap_or(-1) {
                            table_reports[ti].quarantined += 1;
                            quarantined.push(
                                Some(&target),
                                Some(event.id),
                                Some(event.event_type),
                                "valid_types",
                                &reason,
                                payload,
                                (topic, partition, offset),
                            );
                        }
                        continue;
                    }
                };
                let mut quarantine_reasons: Vec<(String, String)> = Vec::new();
                let mut drop = false;
                for x in &compiled[ti] {
                    let Some(ci) = table.columns.iter().position(|c| c.name == x.spec.column) else { continue };
                    let c = counts[ti].get_mut(&x.spec.name).expect("counted");
                    match x.check(&row[ci].as_value()) {
                        None => c.passed += 1,
                        Some(reason) => {
                            c.failed += 1;
                            match x.spec.action {
                                Action::Warn => {}
                                Action::Drop => drop = true,
                                Action::Quarantine => quarantine_reasons.push((x.spec.name.clone(), reason)),
                                Action::Fail => {
                                    match failures.iter_mut().find(|(t, n, _)| *t == ti && *n == x.spec.name) {
                                        Some(f) => f.2 += 1,
                                        None => failures.push((ti, x.spec.name.clone(), 1)),
                                    }
                                }
                            }
                        }
                    }
                }
                if !quarantine_reasons.is_empty() {
                    if offset > quarantine_marks.get(&mark).copied().unwrap_or(-1) {
                        table_reports[ti].quarantined += 1;
                        let names: Vec<&str> = quarantine_reasons.iter().map(|(n, _)| n.as_str()).collect();
                        let reasons: Vec<&str> = quarantine_reasons.iter().map(|(_, r)| r.as_str()).collect();
                        quarantined.push(
                            Some(&target),
                            Some(event.id),
                            Some(event.event_type),
                            &names.join(","),
                            &reasons.join("; "),
                            payload,
                            (topic, partition, offset),
                        );
                    }
                    continue;
                }
                if drop {
                    table_reports[ti].dropped += 1;
                    continue;
                }
                if !seen[ti].insert(event.id.to_owned()) {
                    table_reports[ti].duplicates += 1;
                    continue;
                }
                if let Some(date) = table.columns.iter().position(|c| c.name == DATE_COLUMN)
                    && let Cell::Text(d) = &row[date]
                {
                    dates[ti].insert(d.clone());
                }
                out[ti].push((row, (topic.to_owned(), partition, offset)));
            }
        }
        if let Some((ti, name, failed)) = failures.into_iter().next() {
            return Err(Error::ExpectationFailed {
                table: format!("silver.{}", tables[ti].0.name),
                expectation: name,
                failed,
            });
        }

        // Quarantine first: a crash before the tables' commits leaves their
        // marks behind, and the next run takes only what they still lack.
        let tops_commit = |marks_of: &HashMap<Mark, i64>, info: Commit| -> Commit {
            let mut c = info;
            for (k, top) in &tops {
                if marks_of.get(k).copied().unwrap_or(-1) < *top {
                    c = c.with_transaction(app_id(k), *top);
                }
            }
            c
        };
        let q_rows = quarantined.len() as u64;
        let q_commit = tops_commit(
            &quarantine_marks,
            Commit::default()
                .with_info("lake.writer", "silver")
                .with_info("lake.bronze_version", bronze.version())
                .with_info("lake.rows", q_rows),
        );
        if !q_commit.transactions.is_empty() {
            quarantine.append(vec![quarantined.finish()?], &q_commit).await?;
        }
        report.quarantine_version = quarantine.version();

        for (ti, (table, delta)) in tables.iter_mut().enumerate() {
            let existing = existing_ids(delta, &dates[ti]).await?;
            let before = out[ti].len();
            out[ti].retain(|(row, _)| matches!(&row[0], Cell::Text(id) if !existing.contains(id)));
            table_reports[ti].duplicates += (before - out[ti].len()) as u64;
            let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind).collect();
            let rows_batch = rows::to_batch(&table.schema(), &kinds, &out[ti])?;
            let r = &mut table_reports[ti];
            r.written = out[ti].len() as u64;
            r.expectations = std::mem::take(&mut counts[ti]);
            let commit = tops_commit(
                &marks[ti],
                Commit::default()
                    .with_info("lake.writer", "silver")
                    .with_info("lake.bronze_version", bronze.version())
                    .with_info("lake.rows_in", r.rows_in)
                    .with_info("lake.rows", r.written)
                    .with_info("lake.quarantined", r.quarantined)
                    .with_info("lake.dropped", r.dropped)
                    .with_info("lake.duplicates", r.duplicates)
                    .with_info("lake.expectations", serde_json::to_value(&r.expectations)?),
            );
            if !commit.transactions.is_empty() {
                delta.append(vec![rows_batch], &commit).await?;
            }
            r.version = delta.version();
        }
        report.tables = table_reports;
        Ok(report)
    }
}

/// The context of an event for table routing: its type's context, which
/// for telemetry is the device's, so the topic decides for points.
fn source_context<'a>(event: &rows::Event<'a>) -> &'a str {
    if event.name == "PointWritten" { source_of(event.topic) } else { event.context }
}

/// The newest bronze offset per topic-partition.
async fn partition_tops(ctx: &SessionContext) -> Result<Vec<(Mark, i64)>> {
    let batches = ctx
        .sql("SELECT topic, \"partition\", MAX(\"offset\") AS top FROM bronze GROUP BY topic, \"partition\"")
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let topic = cast(b.column(0), &DataType::Utf8)?;
        let topic = topic.as_string::<i32>();
        let partition = b.column(1).as_primitive::<Int32Type>();
        let top = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push(((topic.value(i).to_owned(), partition.value(i)), top.value(i)));
        }
    }
    out.sort();
    Ok(out)
}

async fn read_marks(table: &LakeTable, tops: &[(Mark, i64)]) -> Result<HashMap<Mark, i64>> {
    let mut out = HashMap::new();
    for (k, _) in tops {
        out.insert(k.clone(), table.transaction_version(&app_id(k)).await?.unwrap_or(-1));
    }
    Ok(out)
}

/// Event ids a silver table already holds on these dates.
async fn existing_ids(table: &LakeTable, dates: &BTreeSet<String>) -> Result<HashSet<String>> {
    if dates.is_empty() || table.version() < 1 {
        return Ok(HashSet::new());
    }
    let ctx = SessionContext::new();
    ctx.register_table("t", table.provider().await?)?;
    let list = dates.iter().map(|d| format!("'{}'", d.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
    let batches = ctx.sql(&format!("SELECT event_id FROM t WHERE {DATE_COLUMN} IN ({list})")).await?.collect().await?;
    Ok(crate::catalog::first_column_text(&batches)?.into_iter().collect())
}

/// Applies every data contract that reached bronze (from `mesh.events`), oldest first.
async fn apply_contracts(ctx: &SessionContext, set: &mut ExpectationSet) -> Result<()> {
    let batches = ctx
        .sql(
            "SELECT payload FROM bronze WHERE source = 'mesh' AND payload IS NOT NULL \
             AND (event_type LIKE '%.ContractPublished.v%' OR event_type LIKE '%.DataProductAnnounced.v%') \
             ORDER BY ingested_at, \"partition\", \"offset\"",
        )
        .await?
        .collect()
        .await?;
    for payload in crate::catalog::first_column_text(&batches)? {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else { continue };
        let Some(docs) = v.get("documents").and_then(|d| d.as_str()) else { continue };
        for doc in docs.split("\n---") {
            if let Err(e) = set.apply_contract(doc) {
                tracing::warn!(error = %e, "a published contract's expectations were not applied");
            }
        }
    }
    Ok(())
}

/// The bronze columns a run reads.
struct Columns {
    topic: deltalake::arrow::array::StringArray,
    partition: deltalake::arrow::array::Int32Array,
    offset: deltalake::arrow::array::Int64Array,
    id: deltalake::arrow::array::StringArray,
    event_type: deltalake::arrow::array::StringArray,
    subject: deltalake::arrow::array::StringArray,
    time: deltalake::arrow::array::TimestampMicrosecondArray,
    version: deltalake::arrow::array::Int64Array,
    payload: deltalake::arrow::array::StringArray,
}

impl Columns {
    fn of(b: &RecordBatch) -> Result<Self> {
        let text = |i: usize| -> Result<deltalake::arrow::array::StringArray> {
            Ok(cast(b.column(i), &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Ok(Self {
            topic: text(0)?,
            partition: b.column(1).as_primitive::<Int32Type>().clone(),
            offset: b.column(2).as_primitive::<Int64Type>().clone(),
            id: text(3)?,
            event_type: text(4)?,
            subject: text(5)?,
            time: cast(b.column(6), &ts)?.as_primitive::<TimestampMicrosecondType>().clone(),
            version: b.column(7).as_primitive::<Int64Type>().clone(),
            payload: text(8)?,
        })
    }
}

/// Rows bound for `silver.quarantine`.
#[derive(Default)]
struct QuarantineRows {
    target: StringBuilder,
    id: StringBuilder,
    ty: StringBuilder,
    expectation: StringBuilder,
    reason: StringBuilder,
    payload: StringBuilder,
    at: Vec<i64>,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    n: usize,
}

impl QuarantineRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        target: Option<&str>,
        id: Option<&str>,
        ty: Option<&str>,
        expectation: &str,
        reason: &str,
        payload: Option<&str>,
        (topic, partition, offset): (&str, i32, i64),
    ) {
        self.target.append_option(target);
        self.id.append_option(id);
        self.ty.append_option(ty);
        self.expectation.append_value(expectation);
        self.reason.append_value(reason);
        self.payload.append_option(payload);
        self.at.push(Utc::now().timestamp_micros());
        self.topic.append_value(topic);
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.n += 1;
    }

    fn len(&self) -> usize {
        self.n
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut date = StringBuilder::new();
        for t in &self.at {
            at.append_value(*t);
            let day = chrono::DateTime::from_timestamp_micros(*t).unwrap_or_default().format("%Y-%m-%d").to_string();
            date.append_value(day);
        }
        Ok(RecordBatch::try_new(
            model::quarantine_schema(),
            vec![
                std::sync::Arc::new(self.target.finish()),
                std::sync::Arc::new(self.id.finish()),
                std::sync::Arc::new(self.ty.finish()),
                std::sync::Arc::new(self.expectation.finish()),
                std::sync::Arc::new(self.reason.finish()),
                std::sync::Arc::new(self.payload.finish()),
                std::sync::Arc::new(at.finish()),
                std::sync::Arc::new(date.finish()),
                std::sync::Arc::new(self.topic.finish()),
                std::sync::Arc::new(self.partition.finish()),
                std::sync::Arc::new(self.offset.finish()),
            ],
        )?)
    }
}

impl std::fmt::Debug for QuarantineRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuarantineRows").field("n", &self.n).finish()
    }
}
