//! The outbox relay: the event log itself is the outbox. The relay follows
//! the global log from a stored checkpoint and publishes each event to its
//! context's topic (`<source>.events`, key = aggregate id, event id in
//! `ce_id`), then advances the checkpoint.
//!
//! Appends never wait on the bus. When the bus is down the relay retries
//! with backoff from its checkpoint, so nothing is skipped; events published
//! just before a failure may be published again, which consumers absorb by
//! deduplicating on the event id.

use std::sync::Arc;
use std::time::Duration;

use domain_core::bus::{EventBus, topics};

use crate::subscription::LogSubscription;
use crate::{EventStore, RecordedEvent, Result};

/// Settings of an [`OutboxRelay`].
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Checkpoint name in the store.
    pub name: String,
    /// Events per publish round.
    pub batch: usize,
    /// Wait between attempts while the bus fails, doubling up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Keep progress in memory until [`OutboxRelay::save_checkpoint`].
    /// For a bus whose records do not outlive the process (the in-process
    /// bus): the checkpoint may only move once the consumers have handled
    /// what was relayed, or a crash in between would lose those events.
    pub defer_checkpoint: bool,
    /// Put in front of every topic name (`<prefix><source>.events`), so
    /// several platforms, or test runs, share one cluster apart.
    pub topic_prefix: String,
}

impl RelayConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch: 500,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            defer_checkpoint: false,
            topic_prefix: String::new(),
        }
    }

    /// See [`RelayConfig::topic_prefix`].
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// See [`RelayConfig::defer_checkpoint`].
    pub fn deferred(mut self) -> Self {
        self.defer_checkpoint = true;
        self
    }
}

/// Counters of a relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub published: u64,
    pub failed_attempts: u64,
}

/// Follows a store's global log onto a bus.
#[derive(Debug)]
pub struct OutboxRelay {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
    stats: RelayStats,
    /// With a deferred checkpoint: the next position to publish.
    pending: Option<u64>,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn EventBus>, config: RelayConfig) -> Self {
        Self { store, bus, config, stats: RelayStats::default(), pending: None }
    }

    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Publishes what is stored now, in log order, and advances the
    /// checkpoint. Returns how many events went out. An error leaves the
    /// checkpoint where it was.
    pub async fn publish_pending(&mut self) -> Result<usize> {
        self.publish_pending_with(|_| {}).await
    }

    /// [`OutboxRelay::publish_pending`], calling `published` for each event
    /// once the bus acknowledged it (to wait for its consumers, say).
    pub async fn publish_pending_with(&mut self, mut published: impl FnMut(&RecordedEvent) + Send) -> Result<usize> {
        let mut sub = match self.pending {
            Some(next) => LogSubscription::from_position(Arc::clone(&self.store), next),
            None => LogSubscription::from_checkpoint(Arc::clone(&self.store), &self.config.name).await?,
        };
        let mut total = 0;
        loop {
            let batch = sub.next_batch(self.config.batch).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            self.publish_in_order(&batch).await?;
            batch.iter().for_each(&mut published);
            if self.config.defer_checkpoint {
                self.pending = Some(sub.position());
            } else {
                sub.save_checkpoint().await?;
            }
            total += batch.len();
            self.stats.published += batch.len() as u64;
        }
    }

    /// Events stored but not yet published (the outbox lag).
    pub async fn lag(&self) -> Result<u64> {
        let next = match self.pending {
            Some(next) => next,
            None => self.store.load_checkpoint(&self.config.name).await?.unwrap_or(1),
        };
        Ok((self.store.head_position().await? + 1).saturating_sub(next))
    }

    /// The context whose events this relay publishes (its checkpoint name).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Waits up to `timeout` for an event after what was published so far.
    pub async fn wait_for_new(&self, timeout: Duration) {
        let next = match self.pending {
            Some(next) => next,
            None => self.store.load_checkpoint(&self.config.name).await.ok().flatten().unwrap_or(1),
        };
        let _ = self.store.wait_for(next, timeout).await;
    }

    /// Stores a deferred checkpoint: everything published so far counts as
    /// delivered. Does nothing when checkpoints are not deferred.
    pub async fn save_checkpoint(&mut self) -> Result<()> {
        match self.pending {
            Some(next) if self.config.defer_checkpoint => self.store.save_checkpoint(&self.config.name, next).await,
            _ => Ok(()),
        }
    }

    /// Publishes consecutive runs of the same topic, one run after another,
    /// so every stream's events reach the bus in stream order.
    async fn publish_in_order(&self, batch: &[RecordedEvent]) -> Result<()> {
        let mut start = 0;
        while start < batch.len() {
            let source = &batch[start].envelope.source;
            let topic = format!("{}{}", self.config.topic_prefix, topics::of_context(source));
            let end =
                batch[start..].iter().position(|e| &e.envelope.source != source).map_or(batch.len(), |k| start + k);
            let run: Vec<_> = batch[start..end].iter().map(|e| e.envelope.clone()).collect();
            self.bus.publish(&topic, &run).await?;
            start = end;
        }
        Ok(())
    }

    /// Relays until `stop` resolves: publishes what is pending, waits for new
    /// appends, backs off while the bus fails. Returns the counters.
    pub async fn run(&mut self, stop: impl std::future::Future<Output = ()>) -> RelayStats {
        tokio::pin!(stop);
        let mut backoff = self.config.initial_backoff;
        loop {
            let wait = match self.publish_pending().await {
                Ok(_) => {
                    backoff = self.config.initial_backoff;
                    None
                }
                Err(e) => {
                    self.stats.failed_attempts += 1;
                    tracing::warn!(relay = %self.config.name, error = %e, ?backoff, "relay attempt failed; will retry from the checkpoint");
                    let w = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    Some(w)
                }
            };
            let next = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => {
                        let head = self.store.head_position().await.unwrap_or(0);
                        let _ = self.store.wait_for(head + 1, Duration::from_secs(1)).await;
                    }
                }
            };
            tokio::select! {
                () = &mut stop => return self.stats,
                () = next => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{event, stream};
    use crate::{ExpectedVersion, InMemoryEventStore};
    use domain_core::bus::{InProcessBus, TopicSpec};

    #[tokio::test]
    async fn relays_in_stream_order_and_resumes_from_the_checkpoint() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let bus = InProcessBus::new();
        let s = stream("acct");
        store
            .append(&s, ExpectedVersion::Any, &(1..=5).map(|i| event(s.as_str(), i)).collect::<Vec<_>>())
            .await
            .expect("append");
        // The topic does not exist yet: the bus refuses, nothing is lost.
        let mut relay = OutboxRelay::new(Arc::clone(&store), Arc::new(bus.clone()), RelayConfig::new("relay"));
        assert!(relay.publish_pending().await.is_err());
        assert_eq!(store.load_checkpoint("relay").await.expect("load"), None);
        assert_eq!(relay.lag().await.expect("lag"), 5, "all five wait for the bus");

        bus.create_topics(&[TopicSpec::new(topics::ACCOUNTS, 3)]).await.expect("create");
        assert_eq!(relay.publish_pending().await.expect("publish"), 5);
        assert_eq!(relay.lag().await.expect("lag"), 0);
        store.append(&s, ExpectedVersion::Exact(5), &[event(s.as_str(), 6)]).await.expect("append");
        assert_eq!(relay.lag().await.expect("lag"), 1);
        let mut again = OutboxRelay::new(Arc::clone(&store), Arc::new(bus.clone()), RelayConfig::new("relay"));
        assert_eq!(again.publish_pending().await.expect("publish"), 1, "resumes after the checkpoint");

        let mut sub = bus.subscribe("check", &[topics::ACCOUNTS]).await.expect("subscribe");
        let got = domain_core::bus::contract::collect(sub.as_mut(), 6).await;
        let versions: Vec<u64> =
            got.iter().map(|d| d.envelope(usize::MAX).expect("decode").aggregate_version).collect();
        assert_eq!(versions, (1..=6).collect::<Vec<_>>());
        assert!(got.iter().all(|d| d.record.key.as_deref() == Some(s.as_str().as_bytes())));
    }

    #[tokio::test]
    async fn a_deferred_checkpoint_moves_only_when_saved() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let bus = InProcessBus::new();
        bus.create_topics(&[TopicSpec::new(topics::ACCOUNTS, 3)]).await.expect("create");
        let s = stream("acct");
        let batch: Vec<_> = (1..=3).map(|i| event(s.as_str(), i)).collect();
        store.append(&s, ExpectedVersion::Any, &batch).await.expect("append");
        let config = RelayConfig::new("deferred").deferred();
        let mut relay = OutboxRelay::new(Arc::clone(&store), Arc::new(bus.clone()), config.clone());
        assert_eq!(relay.publish_pending().await.expect("publish"), 3);
        assert_eq!(relay.publish_pending().await.expect("publish"), 0, "progress is kept in memory");
        assert_eq!(relay.lag().await.expect("lag"), 0, "the lag counts from the progress in memory");
        assert_eq!(store.load_checkpoint("deferred").await.expect("load"), None, "not saved yet");
        // A crash now: a new relay starts over, so nothing relayed is lost.
        let mut again = OutboxRelay::new(Arc::clone(&store), Arc::new(bus.clone()), config);
        assert_eq!(again.publish_pending().await.expect("publish"), 3);
        again.save_checkpoint().await.expect("save");
        assert_eq!(store.load_checkpoint("deferred").await.expect("load"), Some(4));
    }
}
