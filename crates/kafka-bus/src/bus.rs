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

    /// Fails with `UnknownTopic` unless the broker knows `topic`.
    pub(crate) async fn ensure_exists(&self, topic: &str) -> domain_core::Result<()> {
        validate_topic(topic)?;
        if self.known_topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(topic) {
            return Ok(());
        }
        let producer = self.producer.clone();
        let name = topic.to_owned();
        let exists = tokio::task::spawn_blocking(move || {
            let md = producer.client().fetch_metadata(Some(&name), Timeout::After(ADMIN_TIMEOUT))?;
            Ok::<bool, KafkaError>(
                md.topics().iter().any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty()),
            )
        })
        .await
        .map_err(|e| domain_core::Error::Bus(e.to_string()))?
        .map_err(|e| bus_error("metadata", e))?;
        if !exists {
            return Err(domain_core::Error::UnknownTopic(topic.to_owned()));
        }
        self.known_topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(topic.to_owned());
        Ok(())
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
        // The controller has the topics; wait until this broker's metadata does.
        for (name, _) in &wanted {
            let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
            while let Err(e) = self.ensure_exists(name).await {
                if tokio::time::Instant::now() > deadline {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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
