//! The `EventBus` port and what every adapter shares.
//!
//! Semantics every adapter provides (checked by [`contract`]):
//! records with the same key land in the same partition and stay in order;
//! each consumer group has committed offsets ("next record to read") per
//! partition; what a group has not committed is delivered again to the next
//! member that owns the partition; failed records are retried with backoff,
//! then moved to `<topic>.dlq` with the error in a header, and the partition
//! moves on.

pub mod consumer;
pub mod contract;
pub mod dead_letter;
pub mod in_process;
pub mod partition;

use std::time::Duration;

use async_trait::async_trait;

pub use crate::codec::Record;
use crate::{Envelope, Error, Result, codec};
pub use consumer::{Consumer, ConsumerStats, Handler, Outcome, RetryPolicy, SharedHandler};
pub use in_process::InProcessBus;

/// Topic names of the platform (see DESIGN.md, Events on the wire).
pub mod topics {
    pub const ORDERS: &str = "orders.events";
    pub const ACCOUNTS: &str = "accounts.events";
    pub const MESH: &str = "mesh.events";
    pub const LAKE: &str = "lake.events";
    pub const TIMESERIES: &str = "timeseries.events";
    pub const TELEMETRY: &str = "telemetry.points";
    pub const ALL: [&str; 6] = [ORDERS, ACCOUNTS, MESH, LAKE, TIMESERIES, TELEMETRY];

    /// The dead-letter topic of a topic.
    pub fn dlq(topic: &str) -> String {
        format!("{topic}.dlq")
    }

    /// The topic a context publishes its events on.
    pub fn of_context(context: &str) -> String {
        format!("{context}.events")
    }
}

/// Default largest record accepted (Kafka's default `message.max.bytes` is
/// about 1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self { name: name.into(), partitions }
    }
}

/// Checks a topic name the way Kafka does (legal characters, length).
pub fn validate_topic(name: &str) -> Result<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." || !name.chars().all(legal) {
        return Err(Error::InvalidTopic(name.to_owned()));
    }
    Ok(())
}

/// One record handed to a consumer, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub record: Record,
}

impl Delivery {
    /// Decodes the record as a CloudEvent, refusing oversize records.
    pub fn envelope(&self, max_record_bytes: usize) -> Result<Envelope> {
        let size = self.record.size();
        if size > max_record_bytes {
            return Err(Error::RecordTooLarge { size, max: max_record_bytes });
        }
        codec::decode(&self.record)
    }
}

/// Publishes and subscribes; the production adapter is `kafka-bus`.
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Creates topics (and their `.dlq` twins) if absent.
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<()>;

    /// Publishes raw records in order; returns when all are acknowledged.
    async fn publish_records(&self, topic: &str, records: Vec<Record>) -> Result<()>;

    /// Joins `group` on `topics`, starting at the group's committed offsets
    /// (or the earliest record when the group has none).
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Subscription>>;

    /// The largest record this bus accepts.
    fn max_record_bytes(&self) -> usize {
        DEFAULT_MAX_RECORD_BYTES
    }

    /// Succeeds when the bus answers now (a readiness probe).
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Waits until everything handed to the bus is acknowledged (before a
    /// process exits).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Publishes envelopes in binary content mode, keyed by subject.
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        let max = self.max_record_bytes();
        let mut records = Vec::with_capacity(events.len());
        for e in events {
            let r = codec::encode(e)?;
            if r.size() > max {
                return Err(Error::RecordTooLarge { size: r.size(), max });
            }
            records.push(r);
        }
        self.publish_records(topic, records).await
    }
}

/// A member of a consumer group.
#[async_trait]
pub trait Subscription: Send + std::fmt::Debug {
    /// The next record of an owned partition, or `None` after `timeout`.
    async fn next(&mut self, timeout: Duration) -> Result<Option<Delivery>>;

    /// Marks `delivery` and everything before it in its partition as done.
    async fn commit(&mut self, delivery: &Delivery) -> Result<()>;

    /// Publishes the record to `<topic>.dlq` with the error in the
    /// `dlq_error` header, then commits it so the partition moves on.
    async fn dead_letter(&mut self, delivery: &Delivery, error: &Error) -> Result<()>;

    /// Records on this member's partitions it has not consumed yet, when
    /// the bus knows (Kafka reports it every few seconds).
    fn lag(&self) -> Option<u64> {
        None
    }

    /// Leaves the group after making commits durable.
    async fn close(self: Box<Self>) -> Result<()>;
}
