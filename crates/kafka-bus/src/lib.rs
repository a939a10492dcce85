//! The production [`EventBus`]: Apache Kafka through `rdkafka`.
//!
//! It owns: the CloudEvents Kafka binding in binary content mode (via
//! `domain_core::codec`), an idempotent producer with Java-compatible
//! partitioning (`murmur2_random`) and many sends in flight, consumer-group
//! subscriptions with manual commits after handling, dead-letter publishing
//! and topic creation through the admin API.
//!
//! It must never: commit an offset before the record was handled, drop an
//! accepted record on shutdown (dropping the bus flushes), or know any
//! bounded context's event types.
//!
//! ```no_run
//! # async fn demo() -> domain_core::Result<()> {
//! use domain_core::bus::{EventBus, TopicSpec};
//! let bus = kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new("127.0.0.1:9092"))?;
//! bus.create_topics(&[TopicSpec::new("orders.events", 3)]).await?;
//! # Ok(()) }
//! ```

mod bus;
mod config;
mod error;
mod subscription;

pub use bus::KafkaBus;
pub use config::KafkaConfig;
pub use error::{Error, Result};
