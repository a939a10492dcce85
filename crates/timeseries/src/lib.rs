//! Time-series engine (seed section 5).
//!
//! It will own: series schemas, a write-ahead log with group commit,
//! compressed immutable blocks, a persisted tag index, range and tag queries,
//! rollups with mergeable percentile sketches, retention, and line-protocol
//! ingest from files and from `telemetry.points`.
//!
//! It must never: depend on another bounded context's crate, or acknowledge a
//! point before it is durable in the write-ahead log.
