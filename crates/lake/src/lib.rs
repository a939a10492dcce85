//! Medallion data lake on Delta tables (seed section 4.1).
//!
//! It owns: Delta tables in the bronze (raw, append-only), silver (typed,
//! deduplicated, validated, with quarantine) and gold (business aggregates)
//! layers on a local directory or S3-compatible storage; bronze ingestion
//! from the bus (exactly-once through `txn` actions) and from landing files;
//! the pipelines between the layers with their quality counts and lineage;
//! optimize, vacuum, time travel and SQL over every table.
//!
//! It must never: depend on another bounded context's crate (it reads their
//! events as generic JSON), commit a Kafka offset before the Delta commit
//! that holds the record, or write a table another engine (Spark, DuckDB,
//! Trino, the Python `deltalake` package) could not read.

pub mod bronze;
mod catalog;
mod error;
pub mod gold;
pub mod location;
pub mod port;
mod s3;
pub mod scenario;
pub mod silver;
pub mod table;

pub use catalog::Lake;
pub use deltalake;
pub use error::{Error, Result};
pub use location::{LakeLocation, Layer, TableId};
pub use table::{Commit, DataObject, LakeTable, TableStats};

/// Timestamps without a zone (what SQL's `TIMESTAMP` gives) as UTC, the
/// only time the platform stores.
pub fn utc(batches: Vec<deltalake::arrow::array::RecordBatch>) -> Result<Vec<deltalake::arrow::array::RecordBatch>> {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let schema = b.schema();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (f, c) in schema.fields().iter().zip(b.columns()) {
            match f.data_type() {
                DataType::Timestamp(_, _) => {
                    let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                    columns.push(deltalake::arrow::compute::cast(c, &t)?);
                    fields.push(Field::new(f.name(), t, true));
                }
                DataType::Utf8View | DataType::LargeUtf8 => {
                    columns.push(deltalake::arrow::compute::cast(c, &DataType::Utf8)?);
                    fields.push(Field::new(f.name(), DataType::Utf8, true));
                }
                _ => {
                    columns.push(c.clone());
                    fields.push(f.as_ref().clone().with_nullable(true));
                }
            }
        }
        out.push(deltalake::arrow::array::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)?);
    }
    Ok(out)
}

/// Query results as a JSON array of row objects (arrow's JSON writer:
/// decimals and timestamps as text, nulls left out).
pub fn rows_json(batches: &[deltalake::arrow::array::RecordBatch]) -> Result<serde_json::Value> {
    let mut writer = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&deltalake::arrow::array::RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    // An empty result writes nothing at all.
    if bytes.is_empty() { Ok(serde_json::Value::Array(Vec::new())) } else { Ok(serde_json::from_slice(&bytes)?) }
}
