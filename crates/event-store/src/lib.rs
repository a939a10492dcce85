//! Event store: the storage library every event-sourced context uses.
//!
//! It owns: the [`EventStore`] port (append with an expected version, read a
//! stream, read and follow the gap-safe global log, snapshots, idempotent
//! appends by event id, tombstones, checkpoints), its adapters (in-memory,
//! embedded on local disk, PostgreSQL), catch-up subscriptions, the
//! aggregate [`Repository`] and the outbox relay that follows the global log
//! onto the bus.
//!
//! It must never: know a bounded context's event types (it stores
//! envelopes), make an append wait on Kafka, or acknowledge an append before
//! it is durable (embedded and PostgreSQL adapters).

pub mod coalesce;
pub mod embedded;
pub mod error;
pub mod generations;
mod head;
mod id_hash;
mod index;
pub mod memory;
pub mod model;
pub mod outbox;
pub mod parallel;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod projection;
pub mod projection_rules;
pub mod record;
#[cfg(feature = "redb")]
pub mod redb_file;
pub mod repository;
pub mod rules;
pub mod store;
pub mod subscription;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use coalesce::Coalescer;
pub use embedded::{EmbeddedConfig, EmbeddedEventStore};
pub use error::{Error, Result};
pub use memory::InMemoryEventStore;
pub use model::{AppendResult, ExpectedVersion, RecordedEvent, RecordedText, Snapshot, StreamId};
pub use outbox::OutboxRelay;
#[cfg(feature = "postgres")]
pub use postgres::PostgresEventStore;
pub use projection::{Parked, Projection, ProjectionRunner, ProjectionStatus, Rebuilt};
pub use repository::{Repository, SnapshotPolicy};
pub use store::{EventStore, read_whole_stream};
pub use subscription::LogSubscription;
