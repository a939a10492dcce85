//! Event store: the storage library every event-sourced context uses.
//!
//! It will own: the `EventStore` port (append with an expected version, read a
//! stream, read and subscribe to the gap-safe global log, snapshots,
//! idempotent appends), an embedded adapter on local disk, a PostgreSQL
//! adapter, and the outbox relay that follows the global log onto the bus.
//!
//! It must never: know a bounded context's event types (it stores envelopes),
//! or make an append wait on Kafka.
