//! Publishing and topic administration.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain_core::bus::{EventBus, Record, Subscription, TopicSpec, topics, validate_topic};
use domain_core::{Envelope, codec};
use futures::future::try_join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::error::bus_error;
use crate::subscription::{CommitContext, GroupConsumer, KafkaSubscription};
use crate::{Error, KafkaConfig, Result};

/// How long metadata and admin calls may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new topic may take to be served by all its leaders.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one partition's leader may take to answer a ListOffsets probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a readiness probe waits for the brokers.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// An [`EventBus`] on Apache Kafka. Cheap to clone; the last clone dropped
/// flushes the producer.
#[derive(Clone)]
pub struct KafkaBus {
    config: Arc<KafkaConfig>,
    producer: FutureProducer,
    admin: Arc<AdminClient<DefaultClientContext>>,
    known_topics: Arc<Mutex<HashSet<String>>>,
    _flush_on_drop: Arc<FlushOnDrop>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus").field("bootstrap", &self.config.bootstrap).finish_non_exhaustive()
    }
}

struct FlushOnDrop(FutureProducer);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.flush(Timeout::After(Duration::from_secs(30))) {
            tracing::error!(error = %e, "producer flush on shutdown failed; unsent records were lost");
        }
    }
}

/// What the brokers say of a topic.
enum Readiness {
    /// No such topic (or no partitions yet).
    Unknown,
    /// Named, but a partition's leader does not serve it yet.
    Loading,
    /// Every partition's leader answers for it.
    Ready,
}

impl KafkaBus {
    /// Creates the clients; connecting happens lazily on first use.
    pub fn connect(config: KafkaConfig) -> Result<Self> {
        let client_err = |source| Error::Client { bootstrap: config.bootstrap.clone(), source };
        let producer: FutureProducer = config.producer().create().map_err(client_err)?;
        let admin: AdminClient<DefaultClientContext> = config.producer().create().map_err(client_err)?;
        Ok(Self {
            config: Arc::new(config),
            _flush_on_drop: Arc::new(FlushOnDrop(producer.clone())),
            producer,
            admin: Arc::new(admin),
            known_topics: Arc::default(),
        })
    }

    /// Connects to `KAFKA_BOOTSTRAP`.
    pub fn from_env() -> Result<Self> {
        Self::connect(KafkaConfig::from_env()?)
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Waits until every record handed to the producer is acknowledged.
    /// (Also the bus's [`EventBus::flush`].)
    pub async fn flush(&self) -> domain_core::Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(ADMIN_TIMEOUT)))
            .await
            .map_err(|e| domain_core::Error::Bus(e.to_string()))?
            .map_err(|e| bus_error("flush", e))
    }

    /// Fails with `UnknownTopic` unless the broker knows `topic`, and
    /// returns only once every partition's leader serves it.
    ///
    /// Metadata can name a partition before its leader has loaded it. An
    /// idempotent producer's first two requests to such a partition can
    /// then be handled out of order: the first is refused as "not leader",
    /// the second lands, and a broker before Kafka 4.5 (KAFKA-15591)
    /// accepts it as the first sequence, so every retry of the first is
    /// out of order and its records are lost while librdkafka reports them
    /// delivered. Seen here as the first record of a fresh partition
    /// missing. A ListOffsets answer comes from the leader's own replica
    /// state, the same check a produce passes, so once every partition
    /// answers one, no produce can race the partition's creation.
    pub(crate) async fn ensure_exists(&self, topic: &str) -> domain_core::Result<()> {
        validate_topic(topic)?;
        self.wait_served(topic, false).await
    }

    /// Waits (up to [`READY_TIMEOUT`]) until every partition's leader
    /// serves `topic`, then remembers it. A topic this bus `just_created`
    /// may be missing from the metadata for a while and a look may fail
    /// while the brokers settle: both are tried again; otherwise an
    /// unknown topic or a failed look is returned at once.
    async fn wait_served(&self, topic: &str, just_created: bool) -> domain_core::Result<()> {
        if self.known_topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(topic) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let pending = match self.readiness(topic).await {
                Ok(Readiness::Ready) => break,
                Ok(Readiness::Unknown) if !just_created => {
                    return Err(domain_core::Error::UnknownTopic(topic.to_owned()));
                }
                Ok(_) => domain_core::Error::Bus(format!(
                    "topic {topic}: not served by every partition's leader within {READY_TIMEOUT:?}"
                )),
                Err(e) if just_created => e,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(pending);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.known_topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(topic.to_owned());
        Ok(())
    }

    /// One look at `topic`: its metadata, then a ListOffsets to each
    /// partition's leader.
    async fn readiness(&self, topic: &str) -> domain_core::Result<Readiness> {
        let producer = self.producer.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            // A broker busy loading partitions can be slow to answer; a
            // timed-out look is one more try within the caller's deadline.
            let md = match producer.client().fetch_metadata(Some(&name), Timeout::After(PROBE_TIMEOUT)) {
                Ok(md) => md,
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::OperationTimedOut) => {
                    return Ok(Readiness::Loading);
                }
                Err(e) => return Err(e),
            };
            let Some(t) = md.topics().iter().find(|t| t.name() == name && t.error().is_none()) else {
                return Ok::<_, KafkaError>(Readiness::Unknown);
            };
            if t.partitions().is_empty() {
                return Ok(Readiness::Unknown);
            }
            for p in t.partitions() {
                if p.leader() < 0 || producer.client().fetch_watermarks(&name, p.id(), PROBE_TIMEOUT).is_err() {
                    return Ok(Readiness::Loading);
                }
            }
            Ok(Readiness::Ready)
        })
        .await
        .map_err(|e| domain_core::Error::Bus(e.to_string()))?
        .map_err(|e| bus_error("metadata", e))
    }

    /// Sends records with many in flight and waits for every acknowledgement.
    ///
    /// Records are enqueued as they are produced by the iterator, so
    /// librdkafka starts batching while the caller is still encoding.
    pub(crate) async fn send_all(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = domain_core::Result<Record>>,
    ) -> domain_core::Result<()> {
        let max = self.config.max_record_bytes;
        let mut pending = Vec::new();
        for r in records {
            let r = r?;
            if r.size() > max {
                return Err(domain_core::Error::RecordTooLarge { size: r.size(), max });
            }
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                fr = fr.payload(v.as_slice());
            }
            loop {
                match self.producer.send_result(fr) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        fr = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(bus_error("enqueue", e)),
                }
            }
        }
        try_join_all(pending.into_iter().map(|f| async move {
            match f.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(bus_error("delivery", e)),
                Err(_) => Err(domain_core::Error::Bus("producer dropped before delivery".into())),
            }
        }))
        .await?;
        Ok(())
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn create_topics(&self, specs: &[TopicSpec]) -> domain_core::Result<()> {
        let mut wanted = Vec::new();
        for s in specs {
            validate_topic(&s.name)?;
            if s.partitions == 0 {
                return Err(domain_core::Error::InvalidTopic(format!("{} (0 partitions)", s.name)));
            }
            wanted.push((s.name.clone(), s.partitions as i32));
            wanted.push((topics::dlq(&s.name), 1));
        }
        let new: Vec<NewTopic<'_>> = wanted
            .iter()
            .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(self.config.replication)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self.admin.create_topics(&new, &opts).await.map_err(|e| bus_error("create topics", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(domain_core::Error::Bus(format!("create topic {name}: {code}"))),
            }
        }
        // The controller has the topics; wait until their leaders serve them.
        for (name, _) in &wanted {
            self.wait_served(name, true).await?;
        }
        Ok(())
    }

    async fn publish_records(&self, topic: &str, records: Vec<Record>) -> domain_core::Result<()> {
        self.ensure_exists(topic).await?;
        let max = self.config.max_record_bytes;
        if let Some(r) = records.iter().find(|r| r.size() > max) {
            return Err(domain_core::Error::RecordTooLarge { size: r.size(), max });
        }
        self.send_all(topic, records.into_iter().map(Ok)).await
    }

    async fn publish(&self, topic: &str, events: &[Envelope]) -> domain_core::Result<()> {
        self.ensure_exists(topic).await?;
        // Encoding interleaves with sending so librdkafka batches meanwhile.
        // Like any non-transactional Kafka produce, a batch that fails part
        // way (say, an oversize event) may leave the records before it sent;
        // consumers dedupe by event id.
        self.send_all(topic, events.iter().map(codec::encode)).await
    }

    async fn subscribe(&self, group: &str, topic_names: &[&str]) -> domain_core::Result<Box<dyn Subscription>> {
        for t in topic_names {
            self.ensure_exists(t).await?;
        }
        let consumer: GroupConsumer = self
            .config
            .consumer(group)
            .create_with_context(CommitContext::default())
            .map_err(|e| bus_error("create consumer", e))?;
        consumer.subscribe(topic_names).map_err(|e| bus_error("subscribe", e))?;
        Ok(Box::new(KafkaSubscription::new(consumer, self.clone())))
    }

    fn max_record_bytes(&self) -> usize {
        self.config.max_record_bytes
    }

    async fn ping(&self) -> domain_core::Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, Timeout::After(PING_TIMEOUT)))
            .await
            .map_err(|e| domain_core::Error::Bus(e.to_string()))?
            .map(|_| ())
            .map_err(|e| bus_error("metadata", e))
    }

    async fn flush(&self) -> domain_core::Result<()> {
        KafkaBus::flush(self).await
    }
}
