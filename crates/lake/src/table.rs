//! One Delta table of the lake: create, append with application
//! transactions and commit metadata, statistics, the objects of a partition,
//! history, time travel, optimize and vacuum.
//!
//! Every write goes through [`LakeTable::append`], so every commit carries
//! the lake's metadata (`commitInfo.info`) and, where a writer needs
//! exactly-once, its `txn` actions in the same atomic log entry.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use serde::Serialize;

use crate::location::{LakeLocation, TableId};
use crate::{Error, Result};

/// How often a commit that lost a race is rebased and tried again.
const COMMIT_ATTEMPTS: usize = 100;

/// Default size optimize compacts files to (Databricks' default is 1 GiB
/// for large tables; small lakes are better served by 128 MiB).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// What a commit carries besides its data.
#[derive(Debug, Default, Clone)]
pub struct Commit {
    /// Goes into `commitInfo` (the lake's lineage, quality counts, sources).
    pub info: serde_json::Map<String, serde_json::Value>,
    /// `txn` actions: an application id and its version (a Kafka offset, a
    /// landing file's marker), atomic with the data.
    pub transactions: Vec<(String, i64)>,
    /// New columns in the batches are added to the table's schema.
    pub merge_schema: bool,
}

impl Commit {
    pub fn with_info(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.info.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.transactions.push((app_id.into(), version));
        self
    }

    /// The delta-rs commit properties: info, `txn` actions, and more
    /// attempts than delta-rs' default of 15, which three appenders racing
    /// on two busy cores exhausted (a `txn` conflict still fails at once).
    fn properties(&self) -> CommitProperties {
        let metadata = self.info.iter().map(|(k, v)| (k.clone(), v.clone()));
        let txns = self.transactions.iter().map(|(app, v)| Transaction::new(app, *v)).collect();
        CommitProperties::default()
            .with_metadata(metadata)
            .with_application_transactions(txns)
            .with_max_retries(COMMIT_ATTEMPTS)
    }
}

/// Size and shape of a table at its current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub table: String,
    pub layer: String,
    pub version: i64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub partition_columns: Vec<String>,
}

/// One data file of a table (the seed's `DataLakeObject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataObject {
    /// Path relative to the table's root.
    pub path: String,
    pub size_bytes: u64,
    pub record_count: Option<u64>,
    pub partition: BTreeMap<String, Option<String>>,
    pub modified: DateTime<Utc>,
}

/// One entry of a table's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub version: Option<i64>,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: Option<String>,
    pub parameters: serde_json::Value,
    pub info: serde_json::Value,
}

/// What optimize did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions_optimized: u64,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    pub version: i64,
}

/// What vacuum did (or would do, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VacuumReport {
    pub dry_run: bool,
    pub files_deleted: Vec<String>,
}

/// A Delta table and the lake name it goes by.
#[derive(Debug, Clone)]
pub struct LakeTable {
    id: TableId,
    table: DeltaTable,
}

impl LakeTable {
    fn builder(location: &LakeLocation, id: &TableId) -> Result<DeltaTableBuilder> {
        let url = location.table_url(id)?;
        let allow_http = location.options().get("AWS_ALLOW_HTTP").is_some_and(|v| v == "true");
        Ok(DeltaTableBuilder::from_url(url)
            .map_err(|e| Error::delta(id.to_string(), e))?
            .with_storage_options(location.options().clone())
            .with_allow_http(allow_http))
    }

    /// Whether the table's `_delta_log` holds a commit or a checkpoint. The
    /// listing is in name order, so on a live table the first entry answers.
    async fn has_commit(location: &LakeLocation, id: &TableId) -> Result<bool> {
        if let Some(dir) = location.local_dir()
            && !dir.join(id.relative_path()).is_dir()
        {
            return Ok(false);
        }
        let store = Self::builder(location, id)?
            .build_storage()
            .map_err(|e| Error::delta(id.to_string(), e))?
            .object_store(None);
        let mut listing = store.list(Some(&deltalake::Path::from("_delta_log")));
        loop {
            match listing.try_next().await {
                Ok(Some(meta)) => {
                    let name = meta.location.filename().unwrap_or_default();
                    let commit = name.ends_with(".json") && name.starts_with(|c: char| c.is_ascii_digit());
                    if commit || name.contains(".checkpoint") {
                        return Ok(true);
                    }
                }
                Ok(None) | Err(deltalake::ObjectStoreError::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens an existing table; `None` when there is no Delta table there.
    pub async fn open(location: &LakeLocation, id: &TableId) -> Result<Option<Self>> {
        // A log folder with no commit yet is a creation killed halfway: no table.
        if !Self::has_commit(location, id).await? {
            return Ok(None);
        }
        match Self::builder(location, id)?.load().await {
            Ok(table) => Ok(Some(Self { id: id.clone(), table })),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(id.to_string(), e)),
        }
    }

    /// Opens a table, or creates it empty with this schema and partitioning.
    pub async fn open_or_create(
        location: &LakeLocation,
        id: &TableId,
        schema: SchemaRef,
        partition_columns: &[&str],
    ) -> Result<Self> {
        Self::create_with(location, id, schema, partition_columns, false).await
    }

    /// As [`LakeTable::open_or_create`], with the change data feed on, so
    /// readers downstream can take only what changed since a version.
    pub async fn open_or_create_with_cdf(
        location: &LakeLocation,
        id: &TableId,
        schema: SchemaRef,
        partition_columns: &[&str],
    ) -> Result<Self> {
        Self::create_with(location, id, schema, partition_columns, true).await
    }

    async fn create_with(
        location: &LakeLocation,
        id: &TableId,
        schema: SchemaRef,
        partition_columns: &[&str],
        change_data_feed: bool,
    ) -> Result<Self> {
        if let Some(table) = Self::open(location, id).await? {
            return Ok(table);
        }
        if let Some(dir) = location.local_dir() {
            let dir = dir.join(id.relative_path());
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        // Built without loading: there is no log to read yet.
        let empty = Self::builder(location, id)?.build().map_err(|e| Error::delta(id.to_string(), e))?;
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
        let columns: deltalake::kernel::StructType =
            schema.as_ref().try_into_kernel().map_err(|e| Error::delta(id.to_string(), e.into()))?;
        let mut create = empty.create();
        if change_data_feed {
            create = create.with_configuration_property(deltalake::TableProperty::EnableChangeDataFeed, Some("true"));
        }
        let created = create
            .with_columns(columns.fields().cloned())
            .with_partition_columns(partition_columns.iter().map(|c| (*c).to_owned()))
            .with_table_name(id.to_string())
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => Ok(Self { id: id.clone(), table }),
            // Another writer created it first: use theirs.
            Err(DeltaTableError::VersionAlreadyExists(_)) => Self::open(location, id).await?.ok_or_else(|| {
                Error::UnknownTable { name: id.to_string(), known: "(created by another writer, then gone)".into() }
            }),
            Err(e) => Err(Error::delta(id.to_string(), e)),
        }
    }

    pub fn id(&self) -> &TableId {
        &self.id
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// The current version (`-1` for a table with no commit yet).
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
    }

    /// Reads the log again up to its newest version.
    pub async fn refresh(&mut self) -> Result<()> {
        self.table.update_state().await.map_err(|e| Error::delta(self.id.to_string(), e))
    }

    /// The table's arrow schema.
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        let snapshot = self.table.snapshot().map_err(|e| Error::delta(self.id.to_string(), e))?;
        let schema = snapshot.snapshot().arrow_schema();
        Ok(schema)
    }

    pub fn partition_columns(&self) -> Vec<String> {
        self.table.snapshot().map(|s| s.metadata().partition_columns().to_vec()).unwrap_or_default()
    }

    /// Appends batches in one commit (empty input still commits, so a
    /// writer's `txn` advances even when a batch had no rows for it).
    /// Returns the new version.
    pub async fn append(&mut self, batches: Vec<RecordBatch>, commit: &Commit) -> Result<i64> {
        let batches = if batches.is_empty() { vec![RecordBatch::new_empty(self.arrow_schema()?)] } else { batches };
        let mut builder = self
            .table
            .clone()
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(commit.properties());
        if commit.merge_schema {
            builder = builder.with_schema_mode(SchemaMode::Merge);
        }
        let table = builder.await.map_err(|e| Error::delta(self.id.to_string(), e))?;
        self.table = table;
        Ok(self.version())
    }

    /// Replaces the rows matching `predicate` (all rows when `None`) with
    /// `batches`, in one commit. Returns the new version.
    pub async fn replace(
        &mut self,
        batches: Vec<RecordBatch>,
        predicate: Option<&str>,
        commit: &Commit,
    ) -> Result<i64> {
        let mut builder = self
            .table
            .clone()
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(commit.properties());
        if let Some(p) = predicate {
            builder = builder.with_replace_where(p.to_owned());
        }
        if commit.merge_schema {
            builder = builder.with_schema_mode(SchemaMode::Merge);
        }
        self.table = builder.await.map_err(|e| Error::delta(self.id.to_string(), e))?;
        Ok(self.version())
    }

    /// Writes a checkpoint of the current version (delta-rs also writes one
    /// every `delta.checkpointInterval` commits, 100 by default).
    pub async fn checkpoint(&self) -> Result<()> {
        deltalake::checkpoints::create_checkpoint(&self.table, None)
            .await
            .map_err(|e| Error::delta(self.id.to_string(), e))
    }

    /// The version a writer last committed under `app_id`.
    pub async fn transaction_version(&self, app_id: &str) -> Result<Option<i64>> {
        let snapshot = self.table.snapshot().map_err(|e| Error::delta(self.id.to_string(), e))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| Error::delta(self.id.to_string(), e))
    }

    /// The live data files (the seed's objects), optionally of one partition.
    pub fn objects(&self, partition: Option<(&str, &str)>) -> Result<Vec<DataObject>> {
        let snapshot = self.table.snapshot().map_err(|e| Error::delta(self.id.to_string(), e))?;
        let mut out = Vec::new();
        for file in snapshot.log_data().iter() {
            let values: BTreeMap<String, Option<String>> = file.partition_values_map().into_iter().collect();
            if let Some((key, value)) = partition
                && values.get(key).and_then(|v| v.as_deref()) != Some(value)
            {
                continue;
            }
            out.push(DataObject {
                path: file.path().into_owned(),
                size_bytes: u64::try_from(file.size()).unwrap_or(0),
                record_count: file.num_records().map(|n| n as u64),
                partition: values,
                modified: file.modification_datetime().unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Files, rows and bytes at the current version.
    pub fn stats(&self) -> Result<TableStats> {
        let objects = self.objects(None)?;
        Ok(TableStats {
            table: self.id.to_string(),
            layer: self.id.layer.to_string(),
            version: self.version(),
            files: objects.len(),
            rows: objects.iter().map(|o| o.record_count.unwrap_or(0)).sum(),
            bytes: objects.iter().map(|o| o.size_bytes).sum(),
            partition_columns: self.partition_columns(),
        })
    }

    /// Commits newest first, at most `limit`.
    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<HistoryEntry>> {
        let commits: Vec<_> =
            self.table.history(limit).try_collect().await.map_err(|e| Error::delta(self.id.to_string(), e))?;
        let newest = self.version();
        Ok(commits
            .into_iter()
            .enumerate()
            .map(|(i, c)| HistoryEntry {
                version: c.read_version.map(|v| v as i64 + 1).or(Some(newest - i as i64)),
                timestamp: c.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: c.operation,
                parameters: serde_json::to_value(c.operation_parameters.unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null),
                info: serde_json::Value::Object(c.info.into_iter().collect()),
            })
            .collect())
    }

    /// The table as it was at `version` (time travel).
    pub async fn at_version(location: &LakeLocation, id: &TableId, version: i64) -> Result<Self> {
        let table = Self::builder(location, id)?
            .with_version(u64::try_from(version).map_err(|_| Error::InvalidTableName(format!("{id}@{version}")))?)
            .load()
            .await
            .map_err(|e| Error::delta(id.to_string(), e))?;
        Ok(Self { id: id.clone(), table })
    }

    /// The table as it was at `when` (the newest version committed at or before it).
    pub async fn at_timestamp(location: &LakeLocation, id: &TableId, when: DateTime<Utc>) -> Result<Self> {
        let table = Self::builder(location, id)?
            .with_timestamp(when)
            .load()
            .await
            .map_err(|e| Error::delta(id.to_string(), e))?;
        Ok(Self { id: id.clone(), table })
    }

    /// Compacts small files into files of about `target_size` bytes, in one
    /// partition (`key = value`) or in all of them (the seed's `optimize_partition`).
    pub async fn optimize(&mut self, partition: Option<(&str, &str)>, target_size: u64) -> Result<OptimizeReport> {
        let target = NonZeroU64::new(target_size.max(1)).unwrap_or(NonZeroU64::MIN);
        let filters: Vec<deltalake::FilterLiteral<'_>> = partition
            .map(|(k, v)| (k, deltalake::FilterOp::Eq, deltalake::FilterValue::Scalar(v)))
            .into_iter()
            .collect();
        let (table, metrics) = self
            .table
            .clone()
            .optimize()
            .with_filters(&filters)
            .with_target_size(target)
            .await
            .map_err(|e| Error::delta(self.id.to_string(), e))?;
        self.table = table;
        Ok(OptimizeReport {
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions_optimized: metrics.partitions_optimized,
            bytes_removed: u64::try_from(metrics.files_removed.total_size).unwrap_or(0),
            bytes_added: u64::try_from(metrics.files_added.total_size).unwrap_or(0),
            version: self.version(),
        })
    }

    /// Deletes files no version younger than `retention` needs.
    pub async fn vacuum(&mut self, retention: Duration, dry_run: bool) -> Result<VacuumReport> {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let (table, metrics) = self
            .table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| Error::delta(self.id.to_string(), e))?;
        self.table = table;
        Ok(VacuumReport { dry_run: metrics.dry_run, files_deleted: metrics.files_deleted })
    }

    /// A DataFusion provider reading this version of the table.
    pub async fn provider(&self) -> Result<Arc<dyn deltalake::datafusion::catalog::TableProvider>> {
        Ok(self.table.table_provider().await?)
    }
}
