//! Bronze from the bus: every record of the platform's topics, as it
//! arrived, in `bronze.events`, exactly once.
//!
//! Exactly-once works the way kafka-delta-ingest does it: each commit to
//! the table carries one `txn` action per topic-partition it holds records
//! of, with app id `<group>:<topic>:<partition>` and the partition's last
//! offset as the version, in the same atomic log entry as the data. The
//! Kafka offset is committed only after the Delta commit. After a crash the
//! group redelivers from its committed offset, which is never ahead of the
//! table's, and records at or below the table's offset are skipped. Two
//! ingesters that raced for a partition in a rebalance cannot both commit
//! the same offsets: delta-rs refuses the second commit that carries the
//! same app id (`ConcurrentTransaction`), and the loser reloads the offsets
//! and writes only what is still missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use domain_core::bus::{Delivery, Subscription};
use domain_core::codec::headers;

use crate::location::{LakeLocation, Layer, TableId};
use crate::table::{Commit, LakeTable};
use crate::{Error, Result};

/// Name of the bronze table of bus records.
pub const EVENTS_TABLE: &str = "events";

/// The least an idle-bounded run waits for its first record.
pub const JOIN_GRACE: Duration = Duration::from_secs(30);

/// How the bus ingester batches.
#[derive(Debug, Clone)]
pub struct BronzeConfig {
    /// Prefix of the consumer group and of the `txn` app ids. The group
    /// the ingester joins is this plus the table's id ([`BronzeIngester::group`]).
    pub group: String,
    /// A batch is written when it holds this many records ...
    pub max_rows: usize,
    /// ... or this many bytes of records ...
    pub max_bytes: usize,
    /// ... or its first record has waited this long.
    pub max_wait: Duration,
}

impl Default for BronzeConfig {
    fn default() -> Self {
        Self {
            group: "lake.bronze".into(),
            max_rows: 50_000,
            max_bytes: 64 * 1024 * 1024,
            max_wait: Duration::from_secs(1),
        }
    }
}

/// The bronze table's columns: the envelope's attributes as text (bronze
/// keeps what arrived; silver types and validates), the raw payload, where
/// the record came from, and when it was ingested.
pub fn events_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("event_source", DataType::Utf8, true),
        Field::new("subject", DataType::Utf8, true),
        Field::new("event_time", ts.clone(), true),
        Field::new("aggregate_version", DataType::Int64, true),
        Field::new("correlation_id", DataType::Utf8, true),
        Field::new("causation_id", DataType::Utf8, true),
        Field::new("payload", DataType::Utf8, true),
        Field::new("headers", DataType::Utf8, false),
        Field::new("ingested_at", ts, false),
        Field::new("ingest_date", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]))
}

/// Partition columns of `bronze.events`.
pub const EVENTS_PARTITIONS: [&str; 2] = ["ingest_date", "source"];

pub fn events_table() -> TableId {
    TableId { layer: Layer::Bronze, name: EVENTS_TABLE.to_owned() }
}

/// The context a topic belongs to (`orders.events` -> `orders`; a test
/// prefix such as `t42.orders.events` is skipped).
pub fn source_of(topic: &str) -> &str {
    let mut parts = topic.rsplit('.');
    let last = parts.next().unwrap_or(topic);
    parts.next().unwrap_or(last)
}

/// Bytes as text; `None` when they are not UTF-8.
fn text(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}

/// Turns deliveries into one bronze batch.
pub fn to_batch(deliveries: &[Delivery], ingested_at: DateTime<Utc>) -> Result<RecordBatch> {
    let n = deliveries.len();
    let mut topic = StringBuilder::with_capacity(n, n * 16);
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut key = StringBuilder::with_capacity(n, n * 16);
    let mut id = StringBuilder::with_capacity(n, n * 36);
    let mut event_type = StringBuilder::with_capacity(n, n * 32);
    let mut source = StringBuilder::with_capacity(n, n * 16);
    let mut subject = StringBuilder::with_capacity(n, n * 16);
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut version = Int64Builder::with_capacity(n);
    let mut correlation = StringBuilder::with_capacity(n, n * 36);
    let mut causation = StringBuilder::with_capacity(n, n * 36);
    let mut payload = StringBuilder::with_capacity(n, deliveries.iter().map(|d| d.record.size()).sum());
    let mut header_text = StringBuilder::with_capacity(n, n * 64);
    let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut date = StringBuilder::with_capacity(n, n * 10);
    let mut context = StringBuilder::with_capacity(n, n * 8);
    let day = ingested_at.format("%Y-%m-%d").to_string();
    for d in deliveries {
        let r = &d.record;
        topic.append_value(&d.topic);
        partition.append_value(d.partition);
        offset.append_value(d.offset);
        key.append_option(text(r.key.as_deref()));
        id.append_option(text(r.header(headers::ID)));
        event_type.append_option(text(r.header(headers::TYPE)));
        source.append_option(text(r.header(headers::SOURCE)));
        subject.append_option(text(r.header(headers::SUBJECT)));
        time.append_option(
            text(r.header(headers::TIME))
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc).timestamp_micros()),
        );
        version.append_option(text(r.header(headers::AGGREGATE_VERSION)).and_then(|v| v.parse::<i64>().ok()));
        correlation.append_option(text(r.header(headers::CORRELATION_ID)));
        causation.append_option(text(r.header(headers::CAUSATION_ID)));
        payload.append_option(text(r.value.as_deref()));
        let all: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(String::from_utf8_lossy(v).into_owned())))
            .collect();
        header_text.append_value(serde_json::Value::Object(all).to_string());
        ingested.append_value(ingested_at.timestamp_micros());
        date.append_value(&day);
        context.append_value(source_of(&d.topic));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(key.finish()),
        Arc::new(id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(source.finish()),
        Arc::new(subject.finish()),
        Arc::new(time.finish()),
        Arc::new(version.finish()),
        Arc::new(correlation.finish()),
        Arc::new(causation.finish()),
        Arc::new(payload.finish()),
        Arc::new(header_text.finish()),
        Arc::new(ingested.finish()),
        Arc::new(date.finish()),
        Arc::new(context.finish()),
    ];
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}

/// What an ingester has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    /// Records written to the table.
    pub rows: u64,
    /// Records skipped because the table already held their offset.
    pub skipped: u64,
    /// Delta commits made.
    pub commits: u64,
    /// Commits retried after losing a race for a partition's offsets.
    pub retries: u64,
}

/// Ingests the bus into `bronze.events`.
#[derive(Debug)]
pub struct BronzeIngester {
    table: LakeTable,
    config: BronzeConfig,
    /// Last offset in the table per topic and partition, as far as known
    /// (by topic first, so a record's lookup allocates nothing).
    offsets: HashMap<String, HashMap<i32, i64>>,
    pending: Vec<Delivery>,
    pending_bytes: usize,
    first_pending: Option<Instant>,
    stats: IngestStats,
}

impl BronzeIngester {
    pub async fn open(location: &LakeLocation, config: BronzeConfig) -> Result<Self> {
        let table = LakeTable::open_or_create(location, &events_table(), events_schema(), &EVENTS_PARTITIONS).await?;
        Ok(Self {
            table,
            config,
            offsets: HashMap::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            first_pending: None,
            stats: IngestStats::default(),
        })
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The consumer group to subscribe with: the configured prefix and the
    /// table's Delta id. A table created afresh (a new `--data`, a deleted
    /// table) gets a group of its own, which starts at the earliest record,
    /// so the group's committed offsets are never ahead of the table's.
    pub fn group(&self) -> String {
        let id = self.table.delta().snapshot().map(|s| s.metadata().id().to_owned()).unwrap_or_default();
        let short: String = id.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
        format!("{}.{short}", self.config.group)
    }

    pub fn table(&self) -> &LakeTable {
        &self.table
    }

    fn app_id(&self, topic: &str, partition: i32) -> String {
        format!("{}:{topic}:{partition}", self.config.group)
    }

    /// The table's last offset of a partition (`-1` when it holds none).
    async fn table_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        if let Some(o) = self.offsets.get(topic).and_then(|p| p.get(&partition)) {
            return Ok(*o);
        }
        let o = self.table.transaction_version(&self.app_id(topic, partition)).await?.unwrap_or(-1);
        self.remember(topic, partition, o);
        Ok(o)
    }

    fn remember(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.offsets.get_mut(topic) {
            Some(p) => {
                p.insert(partition, offset);
            }
            None => {
                self.offsets.insert(topic.to_owned(), HashMap::from([(partition, offset)]));
            }
        }
    }

    /// Takes one delivery; writes a batch when a bound is reached.
    pub async fn push(&mut self, sub: &mut dyn Subscription, delivery: Delivery) -> Result<()> {
        let known = self.table_offset(&delivery.topic, delivery.partition).await?;
        if delivery.offset <= known {
            self.stats.skipped += 1;
            // Already in the table: tell the group, so it does not come back.
            sub.commit(&delivery).await?;
            return Ok(());
        }
        self.pending_bytes += delivery.record.size();
        self.pending.push(delivery);
        self.first_pending.get_or_insert_with(Instant::now);
        if self.pending.len() >= self.config.max_rows || self.pending_bytes >= self.config.max_bytes {
            self.flush(sub).await?;
        }
        Ok(())
    }

    /// Whether the oldest pending record has waited `max_wait`.
    pub fn due(&self) -> bool {
        self.first_pending.is_some_and(|t| t.elapsed() >= self.config.max_wait)
    }

    /// Writes what is pending in one Delta commit, then commits the offsets on the bus.
    pub async fn flush(&mut self, sub: &mut dyn Subscription) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.first_pending = None;
        loop {
            // Each partition's newest record: its offset is the partition's
            // `txn` version, and committing it on the bus covers the ones before.
            let newest = newest_per_partition(&batch);
            let mut commit =
                Commit::default().with_info("lake.writer", "bronze.bus").with_info("lake.rows", batch.len() as u64);
            for ((topic, partition), d) in &newest {
                commit = commit.with_transaction(self.app_id(topic, *partition), d.offset);
            }
            let rows = to_batch(&batch, Utc::now())?;
            match self.table.append(vec![rows], &commit).await {
                Ok(_) => {
                    self.stats.rows += batch.len() as u64;
                    self.stats.commits += 1;
                    for ((topic, partition), d) in &newest {
                        self.remember(topic, *partition, d.offset);
                    }
                    for d in newest.values() {
                        sub.commit(d).await?;
                    }
                    return Ok(());
                }
                Err(Error::Delta { source, .. }) if is_transaction_conflict(&source) => {
                    // Another ingester committed some of these partitions
                    // first: keep only what the table still lacks.
                    self.stats.retries += 1;
                    self.table.refresh().await?;
                    self.offsets.clear();
                    let mut keep = Vec::with_capacity(batch.len());
                    for d in batch {
                        if d.offset > self.table_offset(&d.topic, d.partition).await? {
                            keep.push(d);
                        } else {
                            self.stats.skipped += 1;
                        }
                    }
                    batch = keep;
                    if batch.is_empty() {
                        return Ok(());
                    }
                }
                // Nothing was committed on the bus; the group redelivers.
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs until `stop` resolves or nothing arrived for `idle` (when set),
    /// writing a batch whenever a bound is reached; flushes before returning.
    /// Before the first record the wait is at least [`JOIN_GRACE`]: joining
    /// a group whose last member was killed takes a session timeout.
    pub async fn run(
        &mut self,
        sub: &mut dyn Subscription,
        idle: Option<Duration>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<IngestStats> {
        tokio::pin!(stop);
        let mut last_record = Instant::now();
        let mut seen_any = false;
        loop {
            let wait = if self.pending.is_empty() {
                Duration::from_millis(200)
            } else {
                self.config.max_wait.saturating_sub(self.first_pending.map_or(Duration::ZERO, |t| t.elapsed()))
            };
            let next = tokio::select! {
                () = &mut stop => break,
                next = sub.next(wait.max(Duration::from_millis(1))) => next?,
            };
            match next {
                Some(delivery) => {
                    last_record = Instant::now();
                    seen_any = true;
                    self.push(sub, delivery).await?;
                }
                None => {
                    let limit = |idle: Duration| if seen_any { idle } else { idle.max(JOIN_GRACE) };
                    if idle.is_some_and(|idle| last_record.elapsed() >= limit(idle)) {
                        break;
                    }
                }
            }
            if self.due() {
                self.flush(sub).await?;
            }
        }
        self.flush(sub).await?;
        Ok(self.stats.clone())
    }
}

/// The newest record of each topic-partition in a batch.
fn newest_per_partition(batch: &[Delivery]) -> HashMap<(&str, i32), &Delivery> {
    let mut newest: HashMap<(&str, i32), &Delivery> = HashMap::new();
    for d in batch {
        let slot = newest.entry((d.topic.as_str(), d.partition)).or_insert(d);
        if d.offset > slot.offset {
            *slot = d;
        }
    }
    newest
}

/// Whether a commit lost a race on one of its `txn` app ids.
fn is_transaction_conflict(e: &deltalake::DeltaTableError) -> bool {
    use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
    matches!(
        e,
        deltalake::DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
        }
    )
}
