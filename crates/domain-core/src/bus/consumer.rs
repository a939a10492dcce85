//! The consumer loop shared by every bus: decode, handle with retries and
//! backoff, dead-letter what still fails, commit, move on.
//!
//! A poison record therefore costs at most `max_attempts` handler calls and
//! never blocks its partition.

use std::time::Duration;

use async_trait::async_trait;

use crate::bus::{DEFAULT_MAX_RECORD_BYTES, Delivery, Subscription};
use crate::{Envelope, Error, Result};

/// How often and how patiently a failing record is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Handler calls per record before it is dead-lettered (at least 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Exponential backoff before attempt `attempt + 1` (attempts count from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Application logic run for each decoded event.
///
/// Return [`Error::Transient`] for failures worth retrying (a database
/// briefly down) and any other error for a record that will never succeed.
#[async_trait]
pub trait Handler: Send {
    async fn handle(&mut self, event: &Envelope, delivery: &Delivery) -> Result<()>;
}

/// Application logic that can run for several records at once: records of
/// different keys concurrently, records of one key in order (see
/// [`Consumer::poll_batch`]). It takes `&self`, so it keeps its state where
/// concurrent calls can share it (a store).
#[async_trait]
pub trait SharedHandler: Send + Sync {
    async fn handle(&self, event: &Envelope, delivery: &Delivery) -> Result<()>;

    /// What must be handled in order: by default the record key (the
    /// producing aggregate). A handler whose effects are keyed otherwise
    /// (an order id inside the payload) says so, and records of one key on
    /// the bus then run concurrently when they concern different things.
    fn ordering_key(&self, _event: &Envelope, delivery: &Delivery) -> Option<Vec<u8>> {
        delivery.record.key.clone()
    }

    /// Whether events of this type (`<context>.<Name>.v<N>`, from the
    /// record's `ce_type` header) concern the handler at all. Records it
    /// does not want are committed without being decoded: most of what a
    /// saga consumer reads is other steps' news.
    fn wants(&self, _event_type: &str) -> bool {
        true
    }

    /// Deliveries so far that changed nothing because their effect was
    /// already there (a redelivery after a crash, a duplicate on the bus):
    /// absorbed by the handler's idempotence, counted for `/metrics`.
    fn duplicates(&self) -> u64 {
        0
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled { attempts: u32 },
    DeadLettered { attempts: u32, error: Error },
}

/// Running totals of a consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    pub handled: u64,
    pub retries: u64,
    pub dead_lettered: u64,
}

/// A subscription driven by a handler under a retry policy.
#[derive(Debug)]
pub struct Consumer {
    subscription: Box<dyn Subscription>,
    policy: RetryPolicy,
    max_record_bytes: usize,
    stats: ConsumerStats,
}

impl Consumer {
    pub fn new(subscription: Box<dyn Subscription>, policy: RetryPolicy) -> Self {
        Self { subscription, policy, max_record_bytes: DEFAULT_MAX_RECORD_BYTES, stats: ConsumerStats::default() }
    }

    /// Records larger than this are dead-lettered unread.
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    pub fn stats(&self) -> ConsumerStats {
        self.stats
    }

    /// Swaps in a fresh subscription (the same group, after a failure),
    /// keeping the totals; returns the old one to be closed. A fresh
    /// subscription starts at the group's committed offsets, so records a
    /// failed batch fetched but never committed are delivered again.
    pub fn replace_subscription(&mut self, subscription: Box<dyn Subscription>) -> Box<dyn Subscription> {
        std::mem::replace(&mut self.subscription, subscription)
    }

    /// The subscription's consumer lag, when the bus reports one.
    pub fn lag(&self) -> Option<u64> {
        self.subscription.lag()
    }

    /// Waits up to `timeout` for one record and processes it completely.
    /// Returns `None` when nothing arrived.
    pub async fn poll_once(&mut self, handler: &mut dyn Handler, timeout: Duration) -> Result<Option<Outcome>> {
        let Some(delivery) = self.subscription.next(timeout).await? else {
            return Ok(None);
        };
        let outcome = self.process(handler, &delivery).await?;
        Ok(Some(outcome))
    }

    /// Processes records until `stop` says so or `idle` passes with nothing new.
    pub async fn run(
        &mut self,
        handler: &mut dyn Handler,
        idle: Duration,
        mut stop: impl FnMut(&ConsumerStats) -> bool + Send,
    ) -> Result<ConsumerStats> {
        while !stop(&self.stats) {
            if self.poll_once(handler, idle).await?.is_none() {
                break;
            }
        }
        Ok(self.stats)
    }

    /// Takes the records that are ready, up to `max` (waiting up to `timeout`
    /// for the first), handles the records of each key in order and the
    /// keys concurrently, then dead-letters what failed for good and commits
    /// every partition up to its last record. Returns how many records it
    /// took (0 when none arrived).
    ///
    /// A batch ends before the next one starts, so per-key order holds across
    /// batches too; a crash before the commit redelivers the whole batch,
    /// which idempotent handlers absorb.
    pub async fn poll_batch(&mut self, handler: &dyn SharedHandler, max: usize, timeout: Duration) -> Result<usize> {
        let Some(first) = self.subscription.next(timeout).await? else { return Ok(0) };
        let mut batch = vec![first];
        while batch.len() < max.max(1) {
            match self.subscription.next(Duration::from_millis(1)).await? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        // Groups by key, in arrival order within each.
        let mut groups: Vec<Vec<(usize, Envelope)>> = Vec::new();
        let mut by_key: std::collections::HashMap<(&str, Option<Vec<u8>>), usize> = Default::default();
        let mut failed: Vec<(usize, Error)> = Vec::new();
        for (i, d) in batch.iter().enumerate() {
            let unwanted = d
                .record
                .header(crate::codec::headers::TYPE)
                .and_then(|t| std::str::from_utf8(t).ok())
                .is_some_and(|t| !handler.wants(t));
            if unwanted {
                self.stats.handled += 1;
                continue;
            }
            match d.envelope(self.max_record_bytes) {
                Ok(env) => {
                    let key = handler.ordering_key(&env, d);
                    let g = *by_key.entry((d.topic.as_str(), key)).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[g].push((i, env));
                }
                Err(e) => failed.push((i, e)),
            }
        }
        let policy = self.policy;
        let batch_ref = &batch;
        let runs = groups.iter().map(|group| async move {
            let mut out = Vec::with_capacity(group.len());
            for (i, env) in group {
                out.push((*i, handle_with_retries(handler, env, &batch_ref[*i], policy).await));
            }
            out
        });
        for (i, (result, retries)) in futures::future::join_all(runs).await.into_iter().flatten() {
            self.stats.retries += u64::from(retries);
            match result {
                Ok(()) => self.stats.handled += 1,
                Err(e) => failed.push((i, e)),
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        for (i, error) in failed {
            self.dead_letter(&batch[i], error, 0).await?;
        }
        let mut last: std::collections::HashMap<(&str, i32), usize> = Default::default();
        for (i, d) in batch.iter().enumerate() {
            last.insert((d.topic.as_str(), d.partition), i);
        }
        for i in last.into_values() {
            self.subscription.commit(&batch[i]).await?;
        }
        Ok(batch.len())
    }

    async fn process(&mut self, handler: &mut dyn Handler, delivery: &Delivery) -> Result<Outcome> {
        let envelope = match delivery.envelope(self.max_record_bytes) {
            Ok(e) => e,
            Err(error) => return self.dead_letter(delivery, error, 0).await,
        };
        let mut attempt = 1;
        loop {
            match handler.handle(&envelope, delivery).await {
                Ok(()) => {
                    self.subscription.commit(delivery).await?;
                    self.stats.handled += 1;
                    return Ok(Outcome::Handled { attempts: attempt });
                }
                Err(error) if error.is_retryable() && attempt < self.policy.max_attempts.max(1) => {
                    tracing::warn!(topic = %delivery.topic, offset = delivery.offset, attempt, %error, "retrying");
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    self.stats.retries += 1;
                    attempt += 1;
                }
                Err(error) => return self.dead_letter(delivery, error, attempt).await,
            }
        }
    }

    async fn dead_letter(&mut self, delivery: &Delivery, error: Error, attempts: u32) -> Result<Outcome> {
        tracing::warn!(topic = %delivery.topic, partition = delivery.partition, offset = delivery.offset, %error, "dead-lettering record");
        self.subscription.dead_letter(delivery, &error).await?;
        self.stats.dead_lettered += 1;
        Ok(Outcome::DeadLettered { attempts, error })
    }

    /// Leaves the group, making commits durable.
    pub async fn close(self) -> Result<()> {
        self.subscription.close().await
    }
}

/// Runs a shared handler on one event under the retry policy; returns the
/// result and how many retries it took.
async fn handle_with_retries(
    handler: &dyn SharedHandler,
    envelope: &Envelope,
    delivery: &Delivery,
    policy: RetryPolicy,
) -> (Result<()>, u32) {
    let mut attempt = 1;
    loop {
        match handler.handle(envelope, delivery).await {
            Ok(()) => return (Ok(()), attempt - 1),
            Err(error) if error.is_retryable() && attempt < policy.max_attempts.max(1) => {
                tracing::warn!(topic = %delivery.topic, offset = delivery.offset, attempt, %error, "retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
            }
            Err(error) => return (Err(error), attempt - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bus::{EventBus, InProcessBus, TopicSpec};
    use crate::{EventType, codec};
    use std::sync::Mutex;

    /// Records what it handled, per key, and how many ran at once.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(String, u64)>>,
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl SharedHandler for Recorder {
        async fn handle(&self, event: &Envelope, _d: &Delivery) -> Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.running.fetch_sub(1, SeqCst);
            if event.data["poison"] == true {
                return Err(Error::Rejected("poison".into()));
            }
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((event.subject.clone(), event.aggregate_version));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_keeps_per_key_order_runs_keys_at_once_dead_letters_and_commits() {
        let bus = InProcessBus::new();
        bus.create_topics(&[TopicSpec::new("batch.t", 3)]).await.expect("create");
        let ty: EventType = "test.Counted.v1".parse().expect("type");
        let mut events = Vec::new();
        for v in 1..=20u64 {
            for key in ["a", "b", "c", "d"] {
                let poison = key == "c" && v == 7;
                events.push(Envelope::raw("test", ty.clone(), key, v, serde_json::json!({ "poison": poison })));
            }
        }
        bus.publish("batch.t", &events).await.expect("publish");
        let mut bad = codec::encode(&events[0]).expect("encode");
        bad.value = Some(b"{not json".to_vec());
        bus.publish_records("batch.t", vec![bad]).await.expect("publish");

        let recorder = Recorder::default();
        let mut consumer =
            Consumer::new(bus.subscribe("g", &["batch.t"]).await.expect("subscribe"), RetryPolicy::default());
        let mut taken = 0;
        while taken < 81 {
            let n = consumer.poll_batch(&recorder, 64, Duration::from_secs(1)).await.expect("batch");
            assert!(n > 0, "records are waiting");
            taken += n;
        }
        let seen = recorder.seen.lock().expect("lock").clone();
        for key in ["a", "b", "c", "d"] {
            let versions: Vec<u64> = seen.iter().filter(|(k, _)| k == key).map(|(_, v)| *v).collect();
            let expected: Vec<u64> = (1..=20).filter(|v| key != "c" || *v != 7).collect();
            assert_eq!(versions, expected, "order of key {key}");
        }
        assert!(recorder.most.load(std::sync::atomic::Ordering::SeqCst) > 1, "keys ran at once");
        assert_eq!((consumer.stats().handled, consumer.stats().dead_lettered), (79, 2));
        assert_eq!(bus.len("batch.t.dlq"), 2, "the poison and the unreadable record");
        consumer.close().await.expect("close");
        let mut again = bus.subscribe("g", &["batch.t"]).await.expect("subscribe");
        assert!(again.next(Duration::from_millis(50)).await.expect("next").is_none(), "everything was committed");
    }

    /// Wants only `test.Wanted` events; counts what it was given.
    #[derive(Default)]
    struct Picky {
        handled: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl SharedHandler for Picky {
        async fn handle(&self, _event: &Envelope, _d: &Delivery) -> Result<()> {
            self.handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }

        fn wants(&self, event_type: &str) -> bool {
            event_type.starts_with("test.Wanted.")
        }
    }

    #[tokio::test]
    async fn unwanted_types_are_committed_unread() {
        let bus = InProcessBus::new();
        bus.create_topics(&[TopicSpec::new("picky.t", 1)]).await.expect("create");
        let wanted: EventType = "test.Wanted.v1".parse().expect("type");
        let other: EventType = "test.Other.v1".parse().expect("type");
        let events: Vec<Envelope> = (1..=10u64)
            .map(|v| {
                Envelope::raw(
                    "test",
                    if v % 2 == 0 { wanted.clone() } else { other.clone() },
                    "k",
                    v,
                    serde_json::json!({}),
                )
            })
            .collect();
        bus.publish("picky.t", &events).await.expect("publish");
        // An unreadable record of an unwanted type is not this handler's
        // business: committed, not dead-lettered.
        let mut bad = codec::encode(&events[0]).expect("encode");
        bad.value = Some(b"{not json".to_vec());
        bus.publish_records("picky.t", vec![bad]).await.expect("publish");
        let picky = Picky::default();
        let mut consumer =
            Consumer::new(bus.subscribe("g", &["picky.t"]).await.expect("subscribe"), RetryPolicy::default());
        let mut taken = 0;
        while taken < 11 {
            taken += consumer.poll_batch(&picky, 64, Duration::from_secs(1)).await.expect("batch");
        }
        assert_eq!(picky.handled.load(std::sync::atomic::Ordering::SeqCst), 5);
        assert_eq!((consumer.stats().handled, consumer.stats().dead_lettered), (11, 0));
        assert!(bus.is_empty("picky.t.dlq"));
    }

    #[test]
    fn backoff_grows_then_caps() {
        let p = RetryPolicy {
            max_attempts: 9,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        let waits: Vec<_> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 50, 50]);
    }
}
