//! A consumer-group member that commits only what was handled.
//!
//! By default offsets are committed in batches (`KafkaConfig::commit_every`
//! records, `KafkaConfig::commit_interval`):
//!
//! - `commit(delivery)` *stores* the offset after `delivery` in librdkafka
//!   (`enable.auto.offset.store=false`, so nothing else ever stores one);
//!   every `commit_every` stores it asks for an asynchronous commit of the
//!   stored offsets, and librdkafka's auto-commit timer commits them every
//!   `commit_interval` as well. Only stored offsets are ever committed, so an
//!   offset is never committed for a record that was not yet handled.
//! - A partition being revoked in a rebalance has its stored offset
//!   committed before the rebalance proceeds (librdkafka waits for that
//!   commit before it rejoins), so the next owner starts right after what
//!   this member handled.
//! - `close`, and dropping the subscription, leave the group after
//!   committing the stored offsets; `close` does it synchronously and
//!   reports a failure.
//! - A crash (the process killed, the member expelled after its session
//!   timed out) loses the offsets stored since the last commit that landed:
//!   those records are delivered again to the partitions' next owners, about
//!   `commit_every` records or `commit_interval` of handling (twice that if
//!   the crash also catches a commit in flight). That is at-least-once with
//!   bounded redelivery, and handlers must deduplicate (the platform's
//!   inbox).
//! - A record whose partition was revoked while it was being handled can no
//!   longer be stored; `commit` returns `Ok` and the partition's new owner
//!   reads the record again.
//! - `dead_letter` stores the offset only after the dead-letter record was
//!   acknowledged by the broker.
//!
//! `commit_every: 1` restores one synchronous commit per record (a round
//! trip to the group coordinator each, off the async executor): after a
//! crash only the record in hand comes back. Use it for a handler that is
//! not idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain_core::bus::{Delivery, Record, Subscription, dead_letter, topics};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaBus;
use crate::error::bus_error;

/// The consumer's librdkafka context: reports commits that failed.
///
/// Asynchronous and timed commits have no caller to return an error to; a
/// failed one only means the records after the last successful commit may
/// be delivered again, so it is logged, and the next commit carries the
/// same stored offsets again.
///
/// It also keeps the group member's consumer lag from librdkafka's
/// statistics (every `statistics.interval.ms`): the records between the
/// committed offset and the high watermark, summed over the partitions
/// this member fetches; `-1` until the first report.
#[derive(Debug)]
pub(crate) struct CommitContext {
    lag: Arc<AtomicI64>,
}

impl Default for CommitContext {
    fn default() -> Self {
        Self { lag: Arc::new(AtomicI64::new(-1)) }
    }
}

impl ClientContext for CommitContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            // Partition -1 is librdkafka's internal "unassigned" one.
            .filter(|p| p.partition >= 0 && p.fetch_state == "active" && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for CommitContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(
                %error,
                partitions = offsets.count(),
                "offset commit failed; records after the last committed offset may be delivered again"
            ),
        }
    }
}

/// The longest a wait for a record goes without polling the queue again.
const RECV_SLICE: Duration = Duration::from_millis(100);

/// The consumer type every subscription uses.
pub(crate) type GroupConsumer = StreamConsumer<CommitContext>;

/// One member of a consumer group on Kafka.
pub(crate) struct KafkaSubscription {
    consumer: Arc<GroupConsumer>,
    bus: KafkaBus,
    /// Stored offsets per commit request; 1 means commit synchronously.
    commit_every: usize,
    /// Offsets stored since the last commit request.
    stored: usize,
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription").field("commit_every", &self.commit_every).finish_non_exhaustive()
    }
}

impl KafkaSubscription {
    /// The consumer lag librdkafka last reported, if it did.
    pub(crate) fn reported_lag(&self) -> Option<u64> {
        u64::try_from(self.consumer.context().lag.load(Ordering::Relaxed)).ok()
    }

    pub(crate) fn new(consumer: GroupConsumer, bus: KafkaBus) -> Self {
        let commit_every = bus.config().commit_every.max(1);
        Self { consumer: Arc::new(consumer), bus, commit_every, stored: 0 }
    }

    fn batched(&self) -> bool {
        self.commit_every > 1
    }

    /// One synchronous commit of exactly this record's offset.
    async fn commit_sync(&self, delivery: &Delivery) -> domain_core::Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&delivery.topic, delivery.partition, Offset::Offset(delivery.offset + 1))
            .map_err(|e| bus_error("commit", e))?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| domain_core::Error::Bus(e.to_string()))?
            .map_err(|e| bus_error("commit", e))
    }

    /// Stores the offset after `delivery`; every `commit_every` stores,
    /// asks for an asynchronous commit of all stored offsets.
    fn store(&mut self, delivery: &Delivery) -> domain_core::Result<()> {
        // `store_offset` stores `offset + 1`: the next record to read.
        match self.consumer.store_offset(&delivery.topic, delivery.partition, delivery.offset) {
            Ok(()) => {}
            // The partition was revoked while the record was being handled:
            // its new owner reads it again from the last commit.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
                tracing::debug!(topic = %delivery.topic, partition = delivery.partition, offset = delivery.offset,
                    "partition no longer assigned; its new owner gets the record again");
                return Ok(());
            }
            Err(e) => return Err(bus_error("store offset", e)),
        }
        self.stored += 1;
        if self.stored >= self.commit_every {
            self.stored = 0;
            match self.consumer.commit_consumer_state(CommitMode::Async) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => return Err(bus_error("commit", e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self, timeout: Duration) -> domain_core::Result<Option<Delivery>> {
        // The wait is cut into slices, each a fresh poll of the queue:
        // librdkafka wakes a waiting `recv` only when its queue goes from
        // empty to non-empty, so a record queued behind a statistics event
        // that a poll served would otherwise wait for the next record
        // (rust-rdkafka issue 665; seen here as records missing for a minute).
        let deadline = tokio::time::Instant::now() + timeout;
        let msg = loop {
            let slice = deadline.saturating_duration_since(tokio::time::Instant::now()).min(RECV_SLICE);
            match tokio::time::timeout(slice, self.consumer.recv()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(None),
                Err(_) => continue,
                // librdkafka reconnects by itself; these say it is trying.
                // Returned as errors they queued up during an outage and
                // were served one per caller retry long after the broker
                // was back, stalling the consumer for minutes.
                Ok(Err(e)) if is_connection_news(&e) => {
                    tracing::debug!(error = %e, "consumer connection news");
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Ok(Err(e)) => return Err(bus_error("receive", e)),
                Ok(Ok(m)) => break m,
            }
        };
        let mut headers = Vec::new();
        if let Some(hs) = msg.headers() {
            headers.reserve_exact(hs.count());
            headers.extend(hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())));
        }
        Ok(Some(Delivery {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            record: Record { key: msg.key().map(<[u8]>::to_vec), headers, value: msg.payload().map(<[u8]>::to_vec) },
        }))
    }

    /// Stores the offset (batched mode) or commits it synchronously
    /// (`commit_every: 1`); see the module documentation.
    async fn commit(&mut self, delivery: &Delivery) -> domain_core::Result<()> {
        if self.batched() { self.store(delivery) } else { self.commit_sync(delivery).await }
    }

    async fn dead_letter(&mut self, delivery: &Delivery, error: &domain_core::Error) -> domain_core::Result<()> {
        let record = dead_letter::record_for(delivery, error);
        // Acknowledged by the broker before the offset is stored.
        self.bus.send_all(&topics::dlq(&delivery.topic), [Ok(record)]).await?;
        self.commit(delivery).await
    }

    fn lag(&self) -> Option<u64> {
        self.reported_lag()
    }

    async fn close(self: Box<Self>) -> domain_core::Result<()> {
        let consumer = Arc::clone(&self.consumer);
        let batched = self.batched();
        drop(self);
        // Committing and leaving the group block while the coordinator answers.
        tokio::task::spawn_blocking(move || {
            let committed = if batched {
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                    Err(e) => Err(bus_error("commit on close", e)),
                }
            } else {
                Ok(())
            };
            consumer.unsubscribe();
            drop(consumer);
            committed
        })
        .await
        .map_err(|e| domain_core::Error::Bus(e.to_string()))?
    }
}

/// Errors librdkafka reports while it recovers on its own (brokers down or
/// unreachable, a coordinator moving): no record was lost, none skipped.
fn is_connection_news(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
        )
    )
}
