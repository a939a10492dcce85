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
use domain_core::bus::{Consumer, Delivery, EventBus, Handler, InProcessBus, RetryPolicy, TopicSpec, topics};
use domain_core::Envelope;
use event_store::outbox::RelayConfig;
use event_store::{EmbeddedEventStore, EventStore, OutboxRelay};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Partitions of the topics a node creates.
pub const PARTITIONS: u32 = 3;

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
            BusChoice::Kafka(addr) => Arc::new(kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(addr.as_str()))?),
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

/// Marks each event as seen by its group before handling it.
struct Seen<H> {
    inner: H,
    pending: Pending,
}

#[async_trait]
impl<H: Handler> Handler for Seen<H> {
    async fn handle(&mut self, event: &Envelope, delivery: &Delivery) -> domain_core::Result<()> {
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
    topics: Vec<&'static str>,
    consumer: Consumer,
    handler: Box<dyn Handler>,
    pending: Pending,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("group", &self.group).field("topics", &self.topics).finish_non_exhaustive()
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
}

impl Node {
    /// Connects to the bus and creates the platform's topics.
    pub async fn connect(choice: BusChoice) -> Result<Self> {
        let bus = choice.connect()?;
        let specs: Vec<_> = topics::ALL.iter().map(|t| TopicSpec::new(*t, PARTITIONS)).collect();
        bus.create_topics(&specs).await?;
        Ok(Self { bus, choice, relays: Vec::new(), workers: Vec::new(), per_topic: BTreeMap::new() })
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    pub fn choice(&self) -> &BusChoice {
        &self.choice
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
        };
        self.relays.push(OutboxRelay::new(store, Arc::clone(&self.bus), config));
    }

    /// Joins consumer group `group` on `topics` with `handler`.
    pub async fn consume(
        &mut self,
        group: &str,
        topics: &[&'static str],
        handler: impl Handler + 'static,
    ) -> Result<()> {
        let sub = self.bus.subscribe(group, topics).await?;
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
        };
        let pending: Pending = Arc::default();
        let consumer = Consumer::new(sub, policy).with_max_record_bytes(self.bus.max_record_bytes());
        let handler = Box::new(Seen { inner: handler, pending: Arc::clone(&pending) });
        self.workers.push(Worker { group: group.to_owned(), topics: topics.to_vec(), consumer, handler, pending });
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
                let groups: Vec<(Vec<&'static str>, Pending)> =
                    self.workers.iter().map(|w| (w.topics.clone(), Arc::clone(&w.pending))).collect();
                let per_topic = &mut self.per_topic;
                relayed += relay
                    .publish_pending_with(|e| {
                        let topic = topics::of_context(&e.envelope.source);
                        *per_topic.entry(topic.clone()).or_default() += 1;
                        for (_, pending) in groups.iter().filter(|(ts, _)| ts.iter().any(|t| *t == topic)) {
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
                    match w.consumer.poll_once(w.handler.as_mut(), poll).await? {
                        Some(_) => handled += 1,
                        None => break,
                    }
                    let after = w.consumer.stats();
                    stats.dead_lettered += after.dead_lettered - before.dead_lettered;
                }
            }
            stats.handled += handled;
            let waiting: usize =
                self.workers.iter().map(|w| w.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum();
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
