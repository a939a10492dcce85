//! Medallion data lake (seed section 4).
//!
//! It will own: Delta tables in bronze (raw), silver (cleaned, deduplicated)
//! and gold (business aggregates) layers, the pipelines between them fed from
//! the bus, compaction, vacuum and SQL over the tables.
//!
//! It must never: depend on another bounded context's crate, or write a table
//! another engine (Spark, DuckDB, Trino) could not read.
