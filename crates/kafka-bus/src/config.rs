//! Connection and tuning settings, with the defaults the platform relies on.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::{Error, Result};

/// Settings of a [`crate::KafkaBus`].
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`; prefer `127.0.0.1` to `localhost`.
    pub bootstrap: String,
    /// Largest record the producer sends and consumers accept.
    pub max_record_bytes: usize,
    /// How long the producer waits to fill a batch.
    pub linger: Duration,
    /// Replication factor of topics this bus creates.
    pub replication: i32,
    /// A member silent this long is dropped from its group (Kafka's minimum
    /// is 6 s); short so a crashed consumer's partitions move quickly.
    pub session_timeout: Duration,
    /// Offsets are committed in batches: a subscription's `commit` stores
    /// the offset in librdkafka, and every `commit_every` stores the stored
    /// offsets are committed asynchronously (also on revoke and close).
    /// After a crash up to that many records per partition are delivered
    /// again, so handlers must deduplicate. `1` (or `0`) commits every
    /// record synchronously before `commit` returns instead: the setting for
    /// a handler that is not idempotent, at one round trip to the group
    /// coordinator per record.
    pub commit_every: usize,
    /// With batched commits, stored offsets are also committed this often
    /// (librdkafka's `auto.commit.interval.ms`), so a slow or quiet
    /// partition does not wait for a full batch; zero turns the timer off.
    /// Revoked partitions and `close` always commit what was stored.
    pub commit_interval: Duration,
    /// How often librdkafka reports statistics (consumer lag among them);
    /// zero turns the reports off.
    pub stats_interval: Duration,
    /// Any further librdkafka properties, applied last.
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            max_record_bytes: domain_core::bus::DEFAULT_MAX_RECORD_BYTES,
            // Latency first: a saga crosses the bus three times, and 5 ms
            // of linger each way was most of its time at moderate rates.
            // librdkafka still batches what queues while a request is out.
            linger: Duration::ZERO,
            replication: 1,
            session_timeout: Duration::from_secs(10),
            commit_every: 500,
            commit_interval: Duration::from_millis(100),
            stats_interval: Duration::from_secs(2),
            extra: Vec::new(),
        }
    }

    /// Reads `KAFKA_BOOTSTRAP`.
    pub fn from_env() -> Result<Self> {
        match std::env::var("KAFKA_BOOTSTRAP") {
            Ok(b) if !b.trim().is_empty() => Ok(Self::new(b.trim())),
            _ => Err(Error::NoBootstrap),
        }
    }

    /// Adds a raw librdkafka property.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_owned(), value.to_owned()));
        self
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", "platform");
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// The producer: idempotent, Java-compatible partitioning, batching.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("message.max.bytes", (self.max_record_bytes + 64 * 1024).to_string())
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "300000");
        self.finish(c)
    }

    /// Whether consumers commit stored offsets in batches rather than
    /// every record synchronously (see [`Self::commit_every`]).
    pub fn batched_commits(&self) -> bool {
        self.commit_every > 1
    }

    /// A consumer of `group`: offsets are only ever stored by the
    /// subscription, after handling (`enable.auto.offset.store=false`);
    /// start at the earliest record.
    ///
    /// With batched commits librdkafka's auto-commit is on: it commits the
    /// *stored* offsets every [`Self::commit_interval`], and those of
    /// partitions being revoked (before the rebalance goes on) or closed.
    /// Otherwise every commit is explicit and synchronous.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", if self.batched_commits() { "true" } else { "false" })
            .set("auto.commit.interval.ms", self.commit_interval.as_millis().min(86_400_000).to_string())
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", self.session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", (self.session_timeout.as_millis() / 4).max(500).to_string())
            .set("fetch.wait.max.ms", "50")
            .set("statistics.interval.ms", self.stats_interval.as_millis().min(86_400_000).to_string())
            .set("fetch.message.max.bytes", (self.max_record_bytes + 64 * 1024).to_string());
        self.finish(c)
    }
}
