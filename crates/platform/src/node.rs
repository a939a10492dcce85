//! A node: the contexts of one process wired to one bus. Each context has
//! its own event store under `DIR/<context>`, an outbox relay from that
//! store to `<context>.events`, and its consumers.
//!
//! [`Node::settle`] runs relays and consumers until every event relayed in
//! this process has been seen by every consumer group subscribed to its
//! topic (and whatever those steps appended has been relayed and seen in
//! turn), so a CLI command returns after the sagas it started have settled.
//! On the in-process bus the relays' checkpoints are deferred until then:
//! that bus forgets everything when the process ends, so an event counts
//! as delivered only once its consumers handled it (a run killed halfway
//! relays it again and the idempotent consumers absorb the repeat).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain_core::Envelope;
use domain_core::bus::{
    Consumer, ConsumerStats, Delivery, EventBus, InProcessBus, RetryPolicy, SharedHandler, TopicSpec, topics,
};
use event_store::outbox::RelayConfig;
use event_store::{EmbeddedEventStore, EventStore, OutboxRelay};
use uuid::Uuid;

use crate::error::{Error, Result};

/// How often a relay task refreshes its outbox lag in [`Live`].
const LIVE_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Partitions of the topics a node creates.
pub const PARTITIONS: u32 = 3;
/// Records a consumer takes at once: records of different keys are handled
/// concurrently (so the stores' group commit has company), those of one key
/// in order.
pub const BATCH: usize = 512;
/// The first wait before a failed consumer group joins again (doubling to 10 s).
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);

/// Which bus a node talks on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusChoice {
    InProcess,
    Kafka(String),
}

impl BusChoice {
    /// `--kafka` on the command line: `None` = in-process, `Some("")` =
    /// $KAFKA_BOOTSTRAP or 127.0.0.1:9092, `Some(addr)` = that broker.
    pub fn from_flag(flag: Option<&str>) -> Self {
        match flag {
            None => BusChoice::InProcess,
            Some("") => {
                BusChoice::Kafka(std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned()))
            }
            Some(a) => BusChoice::Kafka(a.to_owned()),
        }
    }

    pub fn connect(&self) -> Result<Arc<dyn EventBus>> {
        Ok(match self {
            BusChoice::InProcess => Arc::new(InProcessBus::new()),
            BusChoice::Kafka(addr) => {
                Arc::new(kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(addr.as_str()))?)
            }
        })
    }

    pub fn describe(&self) -> String {
        match self {
            BusChoice::InProcess => "in-process".to_owned(),
            BusChoice::Kafka(a) => format!("kafka {a}"),
        }
    }
}

/// Opens the embedded event store of a context under the data root.
pub fn open_store(data: &Path, context: &str) -> Result<Arc<dyn EventStore>> {
    let dir = data.join(context);
    std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
    Ok(Arc::new(EmbeddedEventStore::open(&dir)?))
}

/// Ids a consumer group still has to see.
type Pending = Arc<Mutex<HashSet<Uuid>>>;

/// Marks each event as seen by its group once handled.
struct Seen<H> {
    inner: H,
    pending: Pending,
}

#[async_trait]
impl<H: SharedHandler> SharedHandler for Seen<H> {
    fn ordering_key(&self, event: &Envelope, delivery: &Delivery) -> Option<Vec<u8>> {
        self.inner.ordering_key(event, delivery)
    }

    fn wants(&self, event_type: &str) -> bool {
        self.inner.wants(event_type)
    }

    fn duplicates(&self) -> u64 {
        self.inner.duplicates()
    }

    async fn handle(&self, event: &Envelope, delivery: &Delivery) -> domain_core::Result<()> {
        let result = self.inner.handle(event, delivery).await;
        // Seen once handled or refused for good; a retryable failure is
        // seen again on the next attempt.
        if !matches!(&result, Err(e) if e.is_retryable()) {
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&event.id);
        }
        result
    }
}

/// One consumer group of the node.
struct Worker {
    group: String,
    /// The group's name on the bus (with the group prefix).
    bus_group: String,
    /// Full topic names (with the prefix).
    topics: Vec<String>,
    consumer: Consumer,
    handler: Box<dyn SharedHandler>,
    pending: Pending,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("group", &self.group).field("topics", &self.topics).finish_non_exhaustive()
    }
}

/// A consumer group's counters and lag, as its task last saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupLive {
    pub stats: ConsumerStats,
    pub lag: Option<u64>,
    /// Deliveries the handler absorbed as repeats.
    pub duplicates: u64,
}

/// A relay's counters and outbox lag, as its task last saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayLive {
    pub stats: event_store::outbox::RelayStats,
    pub lag: u64,
}

/// What the node's tasks report while [`Node::run`] serves: read by
/// `/metrics` and `/readyz` without stopping them.
#[derive(Debug, Default)]
pub struct Live {
    groups: Mutex<BTreeMap<String, GroupLive>>,
    relays: Mutex<BTreeMap<String, RelayLive>>,
    /// Set once a task failed for good (the service is not ready).
    failed: Mutex<Option<String>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    pub fn groups(&self) -> BTreeMap<String, GroupLive> {
        locked(&self.groups).clone()
    }

    pub fn relays(&self) -> BTreeMap<String, RelayLive> {
        locked(&self.relays).clone()
    }

    /// Why a relay or consumer task stopped, if one did.
    pub fn failure(&self) -> Option<String> {
        locked(&self.failed).clone()
    }
}

/// What a settle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleStats {
    pub relayed: u64,
    pub handled: u64,
    pub dead_lettered: u64,
}

/// The contexts of one process on one bus.
#[derive(Debug)]
pub struct Node {
    bus: Arc<dyn EventBus>,
    choice: BusChoice,
    relays: Vec<OutboxRelay>,
    workers: Vec<Worker>,
    per_topic: BTreeMap<String, u64>,
    /// In front of every topic name (empty for the platform's own).
    prefix: String,
    /// In front of every consumer group name.
    group_prefix: String,
    live: Arc<Live>,
}

impl Node {
    /// Connects to the bus and creates the platform's topics.
    pub async fn connect(choice: BusChoice) -> Result<Self> {
        let bus = choice.connect()?;
        Self::on_bus(bus, choice, "").await
    }

    /// On a bus connected already, with `prefix` in front of every topic
    /// and group name (so tests and demo runs on one broker stay apart).
    pub async fn on_bus(bus: Arc<dyn EventBus>, choice: BusChoice, prefix: &str) -> Result<Self> {
        Self::on_bus_with_groups(bus, choice, prefix, prefix).await
    }

    /// [`Node::on_bus`] with a group prefix of its own: fresh groups on the
    /// same topics read them again from the start (a replay).
    pub async fn on_bus_with_groups(
        bus: Arc<dyn EventBus>,
        choice: BusChoice,
        prefix: &str,
        group_prefix: &str,
    ) -> Result<Self> {
        let specs: Vec<_> = topics::ALL.iter().map(|t| TopicSpec::new(format!("{prefix}{t}"), PARTITIONS)).collect();
        bus.create_topics(&specs).await?;
        Ok(Self {
            bus,
            choice,
            relays: Vec::new(),
            workers: Vec::new(),
            per_topic: BTreeMap::new(),
            prefix: prefix.to_owned(),
            group_prefix: group_prefix.to_owned(),
            live: Arc::default(),
        })
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    pub fn choice(&self) -> &BusChoice {
        &self.choice
    }

    /// What the tasks of [`Node::run`] report as they go.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// Relays a context's store to `<context>.events`.
    pub fn relay(&mut self, context: &str, store: Arc<dyn EventStore>) {
        let name = match self.choice {
            BusChoice::InProcess => format!("outbox.{context}.in-process"),
            BusChoice::Kafka(_) => format!("outbox.{context}.kafka"),
        };
        let config = match self.choice {
            BusChoice::InProcess => RelayConfig::new(name).deferred(),
            BusChoice::Kafka(_) => RelayConfig::new(name),
        }
        .with_topic_prefix(self.prefix.clone());
        self.relays.push(OutboxRelay::new(store, Arc::clone(&self.bus), config));
    }

    /// Joins consumer group `group` on `topics` with `handler`.
    pub async fn consume(
        &mut self,
        group: &str,
        topics: &[&'static str],
        handler: impl SharedHandler + 'static,
    ) -> Result<()> {
        let names: Vec<String> = topics.iter().map(|t| format!("{}{t}", self.prefix)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let bus_group = format!("{}{group}", self.group_prefix);
        let sub = self.bus.subscribe(&bus_group, &refs).await?;
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
        };
        let pending: Pending = Arc::default();
        let consumer = Consumer::new(sub, policy).with_max_record_bytes(self.bus.max_record_bytes());
        let handler = Box::new(Seen { inner: handler, pending: Arc::clone(&pending) });
        self.workers.push(Worker { group: group.to_owned(), bus_group, topics: names, consumer, handler, pending });
        Ok(())
    }

    /// Relays and consumes until every event relayed here was seen by each
    /// group subscribed to its topic, and nothing new is pending; gives up
    /// after `timeout` with [`Error::NotSettled`].
    pub async fn settle(&mut self, timeout: Duration) -> Result<SettleStats> {
        let deadline = tokio::time::Instant::now() + timeout;
        let poll = match self.choice {
            BusChoice::InProcess => Duration::from_millis(2),
            BusChoice::Kafka(_) => Duration::from_millis(100),
        };
        let mut stats = SettleStats::default();
        loop {
            let mut relayed = 0;
            for relay in &mut self.relays {
                // A group waits only for what it handles: records of types
                // its handler does not want are committed unread.
                let groups: Vec<(&[String], &Pending, &dyn SharedHandler)> =
                    self.workers.iter().map(|w| (w.topics.as_slice(), &w.pending, w.handler.as_ref())).collect();
                let per_topic = &mut self.per_topic;
                let prefix = &self.prefix;
                relayed += relay
                    .publish_pending_with(|e| {
                        let topic = format!("{prefix}{}", topics::of_context(&e.envelope.source));
                        *per_topic.entry(topic.clone()).or_default() += 1;
                        let ty = e.envelope.event_type.to_string();
                        for (_, pending, _) in groups.iter().filter(|(ts, _, h)| ts.contains(&topic) && h.wants(&ty)) {
                            pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(e.envelope.id);
                        }
                    })
                    .await?;
            }
            stats.relayed += relayed as u64;
            let mut handled = 0;
            for w in &mut self.workers {
                loop {
                    let before = w.consumer.stats();
                    match w.consumer.poll_batch(w.handler.as_ref(), BATCH, poll).await? {
                        0 => break,
                        n => handled += n as u64,
                    }
                    let after = w.consumer.stats();
                    stats.dead_lettered += after.dead_lettered - before.dead_lettered;
                }
            }
            stats.handled += handled;
            let waiting: usize = self
                .workers
                .iter()
                .map(|w| w.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len())
                .sum();
            if relayed == 0 && handled == 0 && waiting == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotSettled { waiting, seconds: timeout.as_secs() });
            }
        }
        for relay in &mut self.relays {
            relay.save_checkpoint().await?;
        }
        Ok(stats)
    }

    /// Consumes until `done` says each group has seen enough (its name and
    /// its counters), or fails after `timeout`. Relays run too.
    pub async fn drain_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&str, &ConsumerStats) -> bool,
    ) -> Result<SettleStats> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stats = SettleStats::default();
        loop {
            for relay in &mut self.relays {
                stats.relayed += relay.publish_pending().await? as u64;
            }
            for w in &mut self.workers {
                loop {
                    match w.consumer.poll_batch(w.handler.as_ref(), BATCH, Duration::from_millis(50)).await? {
                        0 => break,
                        n => stats.handled += n as u64,
                    }
                }
            }
            if self.workers.iter().all(|w| done(&w.group, &w.consumer.stats())) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotSettled { waiting: 0, seconds: timeout.as_secs() });
            }
        }
        for relay in &mut self.relays {
            relay.save_checkpoint().await?;
        }
        Ok(stats)
    }

    /// Counters of each consumer group, by group name.
    pub fn consumer_stats(&self) -> BTreeMap<String, ConsumerStats> {
        self.workers.iter().map(|w| (w.group.clone(), w.consumer.stats())).collect()
    }

    /// Serves until `stop` resolves: every relay and every consumer group
    /// runs in a task of its own, so the stages of a saga overlap (one
    /// group's appends wait for their fsync while another's are decided).
    /// Each task looks at the stop flag between batches, so none is cut off
    /// halfway. Returns the totals. On the in-process bus the relays'
    /// deferred checkpoints stay where they were: [`Node::settle`] moves them.
    pub async fn run(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<SettleStats> {
        // A watch rather than a flag: a task waiting out a backoff wakes
        // when the node stops instead of finishing the wait first.
        let (stop_all, stopping) = tokio::sync::watch::channel(false);
        let halted = |s: &tokio::sync::watch::Receiver<bool>| *s.borrow();
        let mut relays = Vec::new();
        for mut relay in std::mem::take(&mut self.relays) {
            let stopping = stopping.clone();
            let live = Arc::clone(&self.live);
            relays.push(tokio::spawn(async move {
                let mut relayed = 0u64;
                let mut failed_attempts = 0u64;
                let mut sampled: Option<tokio::time::Instant> = None;
                while !halted(&stopping) {
                    let round = relay.publish_pending().await;
                    // The lag costs two store reads: sampled at most once a
                    // second, not on every 50 ms round.
                    if sampled.is_none_or(|t| t.elapsed() >= LIVE_SAMPLE_EVERY) {
                        sampled = Some(tokio::time::Instant::now());
                        let lag = relay.lag().await.unwrap_or(0);
                        let mut stats = relay.stats();
                        stats.failed_attempts += failed_attempts;
                        locked(&live.relays).insert(relay.name().to_owned(), RelayLive { stats, lag });
                    }
                    match round {
                        Ok(0) => relay.wait_for_new(Duration::from_millis(50)).await,
                        Ok(n) => relayed += n as u64,
                        Err(e) => {
                            failed_attempts += 1;
                            tracing::warn!(error = %e, "relay round failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                (relay, relayed)
            }));
        }
        let mut workers = Vec::new();
        for mut w in std::mem::take(&mut self.workers) {
            let stopping = stopping.clone();
            let live = Arc::clone(&self.live);
            let bus = Arc::clone(&self.bus);
            workers.push(tokio::spawn(async move {
                let mut handled = 0u64;
                let mut backoff = RESUBSCRIBE_BACKOFF;
                let mine = format!("consumer group {}:", w.group);
                while !halted(&stopping) {
                    let polled = w.consumer.poll_batch(w.handler.as_ref(), BATCH, Duration::from_millis(50)).await;
                    let sample = GroupLive {
                        stats: w.consumer.stats(),
                        lag: w.consumer.lag(),
                        duplicates: w.handler.duplicates(),
                    };
                    locked(&live.groups).insert(w.group.clone(), sample);
                    match polled {
                        Ok(n) => {
                            handled += n as u64;
                            backoff = RESUBSCRIBE_BACKOFF;
                            let mut failed = locked(&live.failed);
                            if failed.as_deref().is_some_and(|f| f.starts_with(&mine)) {
                                *failed = None;
                            }
                        }
                        // The bus went away (a broker restart) or a batch
                        // could not finish: join the group again, which
                        // resumes at its committed offsets, so what the
                        // failed batch fetched is delivered again, not
                        // skipped. Readiness reports the failure meanwhile.
                        Err(e) => {
                            tracing::warn!(group = %w.group, error = %e, "consumer failed; joining the group again in {backoff:?}");
                            *locked(&live.failed) = Some(format!("{mine} {e}"));
                            let mut stopped = stopping.clone();
                            tokio::select! {
                                _ = stopped.wait_for(|s| *s) => break,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            let refs: Vec<&str> = w.topics.iter().map(String::as_str).collect();
                            match bus.subscribe(&w.bus_group, &refs).await {
                                Ok(fresh) => {
                                    let old = w.consumer.replace_subscription(fresh);
                                    if let Err(e) = old.close().await {
                                        tracing::debug!(group = %w.group, error = %e, "closing the failed subscription");
                                    }
                                }
                                Err(e) => tracing::warn!(group = %w.group, error = %e, "joining the group again failed"),
                            }
                        }
                    }
                }
                (w, handled)
            }));
        }
        stop.await;
        stop_all.send_replace(true);
        let mut stats = SettleStats::default();
        for task in relays {
            let (relay, relayed) = task.await?;
            stats.relayed += relayed;
            self.relays.push(relay);
        }
        for task in workers {
            let (w, handled) = task.await?;
            stats.dead_lettered += w.consumer.stats().dead_lettered;
            stats.handled += handled;
            self.workers.push(w);
        }
        Ok(stats)
    }

    /// Leaves the consumer groups (commits made durable).
    pub async fn close(self) -> Result<()> {
        for w in self.workers {
            w.consumer.close().await?;
        }
        Ok(())
    }

    /// Events relayed by this node so far, per topic.
    pub fn relayed_per_topic(&self) -> &BTreeMap<String, u64> {
        &self.per_topic
    }
}
