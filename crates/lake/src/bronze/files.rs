//! Bronze from files (the seed's `upload_object`): JSON (one object per
//! line, or the seed's array), CSV, Parquet and Avro files dropped in a
//! landing folder become bronze tables with inferred schemas.
//!
//! - The table is named by the file's first folder under the landing root
//!   (`landing/customers/date=2023-01-01/part.json` -> `bronze.customers`),
//!   or by its stem when it lies in the root itself; `key=value` folders
//!   become partition columns (Hive style, as the seed's `date=2023-01-01`).
//! - Schemas are inferred from the data. New columns evolve the table's
//!   schema, a missing column is null; a column whose type changed (other
//!   than a lossless widening: integer to a wider integer, to float or to
//!   text) is schema drift, and the file is rejected.
//! - A file that does not parse or drifted moves to `rejected/` under the
//!   landing root, beside a `<name>.reason.json`; the rest go on.
//! - A file already ingested (same path relative to the root and same
//!   SHA-256) is skipped: the commit that ingests it carries a `txn` action
//!   named after both, atomically with its rows.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::location::{LakeLocation, Layer, TableId, plain_name};
use crate::table::{Commit, LakeTable};
use crate::{Error, Result};

/// The folder rejected files move to, under the landing root.
pub const REJECTED_DIR: &str = "rejected";

/// Why a landing file was refused; its text is the reason written beside it.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("unknown file type: use .json, .jsonl, .ndjson, .csv, .parquet or .avro")]
    UnknownType,
    /// A link whose target lies outside the landing folder: never read.
    #[error("the file is a link to {target}, outside the landing folder; copy the file in instead")]
    OutsideRoot { target: PathBuf },
    #[error("not UTF-8 text: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("invalid JSON at line {line} column {column}: {source}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("expected a JSON array of objects")]
    NotAnArray,
    #[error("record {0} is not a JSON object")]
    NotAnObject(usize),
    #[error("the file holds no records")]
    Empty,
    #[error("the CSV file has no header")]
    NoHeader,
    #[error("invalid CSV: {0}")]
    Csv(#[source] ArrowError),
    #[error("invalid Parquet: {0}")]
    Parquet(#[source] deltalake::parquet::errors::ParquetError),
    #[error("invalid Avro: {0}")]
    Avro(#[source] ArrowError),
    #[error("cannot infer a schema: {0}")]
    Inference(#[source] ArrowError),
    #[error("cannot read the records: {0}")]
    Records(#[source] ArrowError),
    #[error("column `{column}`: {source}")]
    Column {
        column: String,
        #[source]
        source: ArrowError,
    },
    #[error(
        "schema drift against {table}: column `{column}` is {table_type} in the table but {file_type} in this file"
    )]
    Drift { table: String, column: String, table_type: DataType, file_type: DataType },
    #[error("the batch cannot be built: {0}")]
    Batch(#[from] ArrowError),
}

/// File formats the landing folder takes (the seed's `DataFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Json,
    Csv,
    Parquet,
    Avro,
}

impl FileFormat {
    /// The format a file's extension names.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            "avro" => Some(Self::Avro),
            _ => None,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileOutcome {
    Ingested { file: String, table: String, rows: u64, version: i64, new_columns: Vec<String> },
    AlreadyIngested { file: String, table: String },
    Rejected { file: String, moved_to: String, reason: String },
}

/// A landing folder and the lake its files go to.
#[derive(Debug, Clone)]
pub struct Landing {
    root: PathBuf,
    location: LakeLocation,
}

impl FileOutcome {
    /// The landing file the outcome is about (relative to the landing folder).
    pub fn file(&self) -> &str {
        match self {
            FileOutcome::Ingested { file, .. }
            | FileOutcome::AlreadyIngested { file, .. }
            | FileOutcome::Rejected { file, .. } => file,
        }
    }
}

impl Landing {
    pub fn new(root: impl Into<PathBuf>, location: LakeLocation) -> Self {
        Self { root: root.into(), location }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every file under `path` (a file or a folder), in name order, skipping
    /// `rejected/` and hidden files.
    pub fn files(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        walk(path, &self.root.join(REJECTED_DIR), &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Ingests every file under `path`; `progress` is told after each file.
    pub async fn ingest(&self, path: &Path, mut progress: impl FnMut(&FileOutcome)) -> Result<Vec<FileOutcome>> {
        let mut outcomes = Vec::new();
        for file in self.files(path)? {
            let outcome = self.ingest_file(&file).await?;
            progress(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Ingests one file. A file that cannot be ingested is moved to
    /// `rejected/` and reported as such; only failures of the lake itself
    /// (storage, the Delta log) are errors.
    pub async fn ingest_file(&self, file: &Path) -> Result<FileOutcome> {
        let relative = file.strip_prefix(&self.root).unwrap_or(file).to_path_buf();
        let shown = relative.display().to_string();
        if let Some(target) = self.escapes(file)? {
            return self.reject(file, &relative, Rejection::OutsideRoot { target });
        }
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let checksum = hex(&Sha256::digest(&bytes));
        let (id, partitions) = target_of(&relative);
        let marker = format!("landing:{shown}:{checksum}");

        let existing = LakeTable::open(&self.location, &id).await?;
        if let Some(table) = &existing
            && table.transaction_version(&marker).await?.is_some()
        {
            return Ok(FileOutcome::AlreadyIngested { file: shown, table: id.to_string() });
        }

        let parsed = FileFormat::of(file)
            .ok_or(Rejection::UnknownType)
            .and_then(|format| read_batches(format, &bytes).map(|b| (format, b)));
        let (format, batches) = match parsed {
            Ok(ok) => ok,
            Err(reason) => return self.reject(file, &relative, reason),
        };
        let ingested_at = Utc::now();
        let batches = match batches
            .into_iter()
            .map(|b| decorate(b, &partitions, &shown, ingested_at.timestamp_micros()))
            .collect::<std::result::Result<Vec<_>, Rejection>>()
        {
            Ok(b) => b,
            Err(reason) => return self.reject(file, &relative, reason),
        };
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            return self.reject(file, &relative, Rejection::Empty);
        };

        let partition_columns: Vec<&str> = partitions.keys().map(String::as_str).collect();
        let mut table = match existing {
            Some(t) => t,
            None => LakeTable::open_or_create(&self.location, &id, schema.clone(), &partition_columns).await?,
        };
        let table_schema = table.arrow_schema()?;
        let (batches, new_columns) = match align(&id, &table_schema, batches) {
            Ok(ok) => ok,
            Err(reason) => return self.reject(file, &relative, reason),
        };
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut commit = Commit::default()
            .with_info("lake.writer", "bronze.files")
            .with_info("lake.file", shown.clone())
            .with_info("lake.sha256", checksum)
            .with_info("lake.format", serde_json::to_value(format)?)
            .with_info("lake.rows", rows as u64)
            .with_transaction(marker, 0);
        commit.merge_schema = !new_columns.is_empty();
        let version = table.append(batches, &commit).await?;
        Ok(FileOutcome::Ingested { file: shown, table: id.to_string(), rows: rows as u64, version, new_columns })
    }

    /// Where `file` really is, when that is outside the landing folder
    /// (through a symbolic link of its own or of a folder above it).
    fn escapes(&self, file: &Path) -> Result<Option<PathBuf>> {
        let root = std::fs::canonicalize(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let real = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
        Ok((!real.starts_with(&root)).then_some(real))
    }

    fn reject(&self, file: &Path, relative: &Path, rejection: Rejection) -> Result<FileOutcome> {
        // The reason is written for people, beside the file and in the outcome.
        let reason = rejection.to_string();
        let target = self.root.join(REJECTED_DIR).join(relative);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(file, &target)
            .or_else(|_| std::fs::copy(file, &target).and_then(|_| std::fs::remove_file(file)))
            .map_err(|e| Error::io(file, e))?;
        let mut reason_file = target.clone().into_os_string();
        reason_file.push(".reason.json");
        let body = serde_json::json!({
            "file": relative.display().to_string(),
            "reason": reason,
            "rejected_at": Utc::now().to_rfc3339(),
        });
        std::fs::write(&reason_file, serde_json::to_vec_pretty(&body)?).map_err(|e| Error::io(&reason_file, e))?;
        tracing::warn!(file = %relative.display(), %reason, "landing file rejected");
        Ok(FileOutcome::Rejected {
            file: relative.display().to_string(),
            moved_to: target.display().to_string(),
            reason,
        })
    }
}

fn walk(path: &Path, rejected: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let link = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    // A linked folder is not walked: it may lead outside the landing
    // folder, or back into it forever.
    if link.file_type().is_symlink() {
        tracing::warn!(folder = %path.display(), "a linked folder in the landing folder is skipped");
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let p = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with(['.', '_']);
        if hidden || p == rejected || p.to_string_lossy().ends_with(".reason.json") {
            continue;
        }
        walk(&p, rejected, out)?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The table a landing file goes to, and its Hive-style partition values.
pub fn target_of(relative: &Path) -> (TableId, BTreeMap<String, String>) {
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let (dirs, file) = parts.split_at(parts.len().saturating_sub(1));
    let mut partitions = BTreeMap::new();
    let mut name = None;
    for dir in dirs {
        match dir.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                partitions.insert(plain_name(k), v.to_owned());
            }
            _ => {
                name.get_or_insert_with(|| plain_name(dir));
            }
        }
    }
    let name = name.unwrap_or_else(|| {
        let stem = file.first().map(|f| Path::new(f).file_stem().map(|s| s.to_string_lossy().into_owned()));
        plain_name(&stem.flatten().unwrap_or_else(|| "landing".to_owned()))
    });
    (TableId { layer: Layer::Bronze, name }, partitions)
}

/// Parses a file into batches with an inferred schema; the error is the reason.
pub fn read_batches(format: FileFormat, bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejection> {
    let batches = match format {
        FileFormat::Json => read_json(bytes)?,
        FileFormat::Csv => read_csv(bytes)?,
        FileFormat::Parquet => read_parquet(bytes)?,
        FileFormat::Avro => crate::bronze::avro::read_avro(bytes)?,
    };
    batches.into_iter().map(normalize).collect()
}

fn read_json(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejection> {
    use deltalake::arrow::json::reader::{ReaderBuilder, infer_json_schema_from_iterator};
    let text = std::str::from_utf8(bytes).map_err(Rejection::NotUtf8)?;
    let values: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(_) => return Err(Rejection::NotAnArray),
            Err(e) => return Err(Rejection::Json { line: e.line(), column: e.column(), source: e }),
        }
    } else {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line).map_err(|e| Rejection::Json {
                line: i + 1,
                column: e.column(),
                source: e,
            })?;
            out.push(v);
        }
        out
    };
    if let Some((i, _)) = values.iter().enumerate().find(|(_, v)| !v.is_object()) {
        return Err(Rejection::NotAnObject(i + 1));
    }
    if values.is_empty() {
        return Err(Rejection::Empty);
    }
    let schema = infer_json_schema_from_iterator(values.iter().map(Ok)).map_err(Rejection::Inference)?;
    let mut decoder = ReaderBuilder::new(Arc::new(schema)).build_decoder().map_err(Rejection::Records)?;
    decoder.serialize(&values).map_err(Rejection::Records)?;
    let batch = decoder.flush().map_err(Rejection::Records)?;
    Ok(batch.into_iter().collect())
}

fn read_csv(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejection> {
    use deltalake::arrow::csv::ReaderBuilder;
    use deltalake::arrow::csv::reader::Format;
    let format = Format::default().with_header(true);
    let (schema, _) = format.infer_schema(Cursor::new(bytes), Some(10_000)).map_err(Rejection::Csv)?;
    if schema.fields().is_empty() {
        return Err(Rejection::NoHeader);
    }
    let reader =
        ReaderBuilder::new(Arc::new(schema)).with_format(format).build(Cursor::new(bytes)).map_err(Rejection::Csv)?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(Rejection::Csv)
}

fn read_parquet(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejection> {
    let data = bytes::Bytes::copy_from_slice(bytes);
    let reader = ParquetRecordBatchReaderBuilder::try_new(data).and_then(|b| b.build()).map_err(Rejection::Parquet)?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Rejection::Parquet(e.into()))
}

/// The type a column is stored as in a Delta table.
fn delta_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Null | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        // Time is UTC throughout the platform; a timestamp without a zone is read as UTC.
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) | DataType::Interval(_) => DataType::Utf8,
        _ => return None,
    })
}

/// Casts columns Delta cannot store to the nearest type it can.
fn normalize(batch: RecordBatch) -> std::result::Result<RecordBatch, Rejection> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match delta_type(field.data_type()).filter(|t| t != field.data_type()) {
            Some(target) => {
                let cast = cast(column, &target)
                    .map_err(|source| Rejection::Column { column: field.name().clone(), source })?;
                fields.push(Field::new(field.name(), target, true));
                columns.push(cast);
            }
            None => {
                fields.push(field.as_ref().clone().with_nullable(true));
                columns.push(column.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Adds the partition columns and the lineage columns `_source_file` and `_ingested_at`.
fn decorate(
    batch: RecordBatch,
    partitions: &BTreeMap<String, String>,
    file: &str,
    ingested_at: i64,
) -> std::result::Result<RecordBatch, Rejection> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (key, value) in partitions {
        if let Some(i) = fields.iter().position(|f| f.name() == key) {
            // A data column named like the folder's key: the folder wins, as in Hive.
            fields.remove(i);
            columns.remove(i);
        }
        fields.push(Field::new(key, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(vec![value.as_str(); n])));
    }
    fields.push(Field::new("_source_file", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from(vec![file; n])));
    fields.push(Field::new("_ingested_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true));
    columns.push(Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("UTC")));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Whether a column of type `from` may go into a column of type `to` without loss.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    from == to
        || matches!(
            (from, to),
            (Int8 | Int16, Int32 | Int64 | Float64)
                | (Int32, Int64 | Float64)
                | (Int64 | Float32, Float64)
                // An identifier that happened to be all digits in this file.
                | (Int8 | Int16 | Int32 | Int64 | Boolean, Utf8)
        )
}

/// Lines batches up with the table's schema: widened columns cast, absent
/// columns null, new columns appended (returned by name). A retyped column
/// is the error.
fn align(
    id: &TableId,
    table: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> std::result::Result<(Vec<RecordBatch>, Vec<String>), Rejection> {
    let mut new_columns = Vec::new();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let schema = batch.schema();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for table_field in table.fields() {
            match schema.index_of(table_field.name()) {
                Ok(i) => {
                    let have = schema.field(i).data_type();
                    let want = table_field.data_type();
                    if !widens(have, want) {
                        return Err(Rejection::Drift {
                            table: id.to_string(),
                            column: table_field.name().clone(),
                            table_type: want.clone(),
                            file_type: have.clone(),
                        });
                    }
                    let column = if have == want { batch.column(i).clone() } else { cast(batch.column(i), want)? };
                    columns.push(column);
                }
                Err(_) => columns.push(new_null_array(table_field.data_type(), batch.num_rows())),
            }
            fields.push(table_field.as_ref().clone().with_nullable(true));
        }
        for (i, field) in schema.fields().iter().enumerate() {
            if table.index_of(field.name()).is_err() {
                if !new_columns.contains(field.name()) {
                    new_columns.push(field.name().clone());
                }
                fields.push(field.as_ref().clone());
                columns.push(batch.column(i).clone());
            }
        }
        out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
    }
    Ok((out, new_columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_folders() {
        let (id, parts) = target_of(Path::new("customers/date=2023-01-01/customers.json"));
        assert_eq!(id.to_string(), "bronze.customers");
        assert_eq!(parts.get("date").map(String::as_str), Some("2023-01-01"));
        let (id, parts) = target_of(Path::new("Sales Report-2023.csv"));
        assert_eq!(id.to_string(), "bronze.sales_report_2023");
        assert!(parts.is_empty());
    }

    #[test]
    fn json_array_and_lines_infer_the_same_schema() {
        let array = br#"[{"id":"1","name":"a","age":30},{"id":"2","name":"b","age":25}]"#;
        let lines = b"{\"id\":\"1\",\"name\":\"a\",\"age\":30}\n\n{\"id\":\"2\",\"name\":\"b\",\"age\":25}\n";
        let a = read_batches(FileFormat::Json, array).expect("array");
        let l = read_batches(FileFormat::Json, lines).expect("lines");
        assert_eq!(a[0].schema(), l[0].schema());
        assert_eq!(a[0].schema().field_with_name("age").expect("age").data_type(), &DataType::Int64);
        assert_eq!(a.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }

    #[test]
    fn bad_files_say_where() {
        let err = read_batches(FileFormat::Json, b"{\"a\":1}\n{\"a\":\n").expect_err("torn line");
        assert!(matches!(err, Rejection::Json { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = read_batches(FileFormat::Json, b"[1,2]").expect_err("not objects");
        assert!(err.to_string().contains("record 1 is not a JSON object"), "{err}");
        let err = read_batches(FileFormat::Parquet, b"PAR1 nope").expect_err("parquet");
        assert!(matches!(err, Rejection::Parquet(_)) && err.to_string().starts_with("invalid Parquet"), "{err}");
    }

    #[test]
    fn drift_is_refused_and_widening_is_not() {
        let table: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("age", DataType::Int64, true),
        ]));
        let csv = read_batches(FileFormat::Csv, b"id,age,city\n1,30,Beijing\n").expect("csv");
        let id = TableId::new(Layer::Bronze, "people").expect("id");
        let (out, new) = align(&id, &table, csv).expect("aligned");
        assert_eq!(new, vec!["city".to_owned()]);
        assert_eq!(out[0].num_columns(), 3);
        let retyped = read_batches(FileFormat::Csv, b"id,age\n1,thirty\n").expect("csv");
        let err = align(&id, &table, retyped).expect_err("drift");
        assert!(matches!(&err, Rejection::Drift { column, .. } if column == "age"), "{err}");
        assert!(err.to_string().contains("column `age` is Int64 in the table but Utf8"), "{err}");
    }
}
