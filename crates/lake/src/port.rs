//! The lake as the seed's scenario (and any client that builds tables step
//! by step) uses it: upload a file to bronze (`upload_object`), run a
//! pipeline that writes a silver or gold partition from SQL (the seed's
//! `DataPipeline`), read with SQL, list a partition's objects
//! (`get_objects_by_partition`). [`LocalLake`] does it on the tables
//! themselves; the platform's lake service serves the same calls over HTTP
//! with a `LocalLake`, and its client implements the port again.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bronze::files::{FileOutcome, Landing};
use crate::location::{LakeLocation, Layer, TableId};
use crate::table::{Commit, LakeTable};
use crate::{Error, Lake, Result};

/// A data file of a table, as the seed lists objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub table: String,
    pub path: String,
    pub size_bytes: u64,
    pub record_count: u64,
}

/// A pipeline run: `sql` over the lake replaces the rows of `target` that
/// match `replace_where` (all rows when absent), in one commit whose info
/// carries `info` (lineage, the writer's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// `silver.<name>` or `gold.<name>`: bronze is written by ingestion only.
    pub target: String,
    pub sql: String,
    /// Partition columns when the pipeline creates the table.
    #[serde(default)]
    pub partition_by: Vec<String>,
    #[serde(default)]
    pub replace_where: Option<String>,
    #[serde(default)]
    pub info: BTreeMap<String, Value>,
}

/// What a pipeline run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRun {
    pub table: String,
    pub version: i64,
    pub rows: u64,
}

/// The lake, step by step (see the module doc).
#[async_trait]
pub trait LakePort: Send + Sync {
    /// Puts `bytes` at `relative` in the landing folder
    /// (`<source>/<key>=<value>/<file>.<json|csv|parquet|avro>`) and
    /// ingests it into `bronze.<source>`.
    async fn upload(&self, relative: &str, bytes: &[u8]) -> Result<FileOutcome>;
    /// Runs a read-only query; rows as JSON objects.
    async fn query_json(&self, sql: &str) -> Result<Vec<Value>>;
    async fn run_pipeline(&self, pipeline: &Pipeline) -> Result<PipelineRun>;
    /// The table's current version, `None` if it does not exist.
    async fn table_version(&self, table: &TableId) -> Result<Option<i64>>;
    /// The table's data files, of one partition when given.
    async fn objects(&self, table: &TableId, partition: Option<(&str, &str)>) -> Result<Vec<ObjectSummary>>;
}

/// A landing path that stays inside the landing folder: relative, no `..`,
/// no hidden or empty parts.
pub fn landing_path(relative: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::Rejected { path: PathBuf::from(relative), reason: why.to_owned() };
    let path = Path::new(relative);
    if relative.is_empty() || path.is_absolute() {
        return Err(bad("give a path relative to the landing folder, like customers/date=2023-01-01/customers.json"));
    }
    for part in path.components() {
        match part {
            Component::Normal(p) if !p.to_string_lossy().starts_with('.') => {}
            _ => return Err(bad("`..`, `.` and hidden names are not allowed in a landing path")),
        }
    }
    Ok(path.to_path_buf())
}

/// The lake's own tables and a landing folder on this machine.
#[derive(Debug, Clone)]
pub struct LocalLake {
    location: LakeLocation,
    landing: PathBuf,
}

impl LocalLake {
    pub fn new(location: LakeLocation, landing: impl Into<PathBuf>) -> Self {
        Self { location, landing: landing.into() }
    }
}

#[async_trait]
impl LakePort for LocalLake {
    async fn upload(&self, relative: &str, bytes: &[u8]) -> Result<FileOutcome> {
        let file = self.landing.join(landing_path(relative)?);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(&file, bytes).map_err(|e| Error::io(&file, e))?;
        Landing::new(&self.landing, self.location.clone()).ingest_file(&file).await
    }

    async fn query_json(&self, sql: &str) -> Result<Vec<Value>> {
        let rows = Lake::new(self.location.clone()).query(sql).await?;
        match crate::rows_json(&rows)? {
            Value::Array(rows) => Ok(rows),
            other => Ok(vec![other]),
        }
    }

    async fn run_pipeline(&self, p: &Pipeline) -> Result<PipelineRun> {
        let target: TableId = p.target.parse().map_err(|_| Error::InvalidTableName(p.target.clone()))?;
        if target.layer == Layer::Bronze {
            return Err(Error::InvalidTableName(format!(
                "{} (a pipeline writes silver or gold; bronze is written by ingestion)",
                p.target
            )));
        }
        let rows = crate::utc(Lake::new(self.location.clone()).query(&p.sql).await?)?;
        let count: usize = rows.iter().map(|b| b.num_rows()).sum();
        let schema = rows.first().map(|b| b.schema()).ok_or_else(|| Error::UnknownTable {
            name: p.target.clone(),
            known: "(the query returned no batch)".into(),
        })?;
        let partition_by: Vec<&str> = p.partition_by.iter().map(String::as_str).collect();
        let mut table = LakeTable::open_or_create(&self.location, &target, schema, &partition_by).await?;
        let commit = p.info.iter().fold(Commit::default(), |c, (k, v)| c.with_info(k, v.clone()));
        let version = table.replace(rows, p.replace_where.as_deref(), &commit).await?;
        Ok(PipelineRun { table: target.to_string(), version, rows: count as u64 })
    }

    async fn table_version(&self, table: &TableId) -> Result<Option<i64>> {
        Ok(LakeTable::open(&self.location, table).await?.map(|t| t.version()))
    }

    async fn objects(&self, table: &TableId, partition: Option<(&str, &str)>) -> Result<Vec<ObjectSummary>> {
        let t = LakeTable::open(&self.location, table)
            .await?
            .ok_or_else(|| Error::UnknownTable { name: table.to_string(), known: "(not written yet)".into() })?;
        Ok(t.objects(partition)?
            .into_iter()
            .map(|o| ObjectSummary {
                table: table.to_string(),
                path: format!("{}/{}", table.relative_path(), o.path),
                size_bytes: o.size_bytes,
                record_count: o.record_count.unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_paths_stay_inside_the_folder() {
        assert!(landing_path("customers/date=2023-01-01/customers.json").is_ok());
        for bad in ["", "/etc/passwd", "../x.json", "customers/../../x.json", ".hidden/x.json"] {
            assert!(landing_path(bad).is_err(), "{bad:?} is refused");
        }
    }
}
