//! Time-series engine (seed section 5).
//!
//! It owns: series schemas, a write-ahead log with group commit,
//! compressed immutable blocks, a persisted tag index, range and tag queries,
//! rollups with mergeable percentile sketches, retention, and line-protocol
//! ingest from files and from `telemetry.points`.
//!
//! It must never: depend on another bounded context's crate, or acknowledge a
//! point before it is durable in the write-ahead log.
//!
//! Time is `i64` nanoseconds since the Unix epoch, UTC, everywhere inside.

pub mod codec;

pub mod error;
pub mod index;
pub mod model;

pub use error::{Error, Result};
mod agg_error;
pub mod aggregate;
pub mod bus;
pub mod engine;
mod head;
pub mod ingest;
pub mod line_protocol;
mod partition;
mod records;
pub mod sketch;
mod wal;

pub use engine::{Engine, Refused, Stats, WriteReport};
pub mod query;
pub mod scenario;

pub use query::{Query, QueryResult};

#[cfg(test)]
mod engine_tests;
