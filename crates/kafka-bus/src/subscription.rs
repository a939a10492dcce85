//! A consumer-group member with manual, synchronous commits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain_core::bus::{Delivery, Record, Subscription, dead_letter, topics};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaBus;
use crate::error::bus_error;

/// One member of a consumer group on Kafka.
pub(crate) struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    bus: KafkaBus,
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription").finish_non_exhaustive()
    }
}

impl KafkaSubscription {
    pub(crate) fn new(consumer: StreamConsumer, bus: KafkaBus) -> Self {
        Self { consumer: Arc::new(consumer), bus }
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self, timeout: Duration) -> domain_core::Result<Option<Delivery>> {
        let msg = match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(bus_error("receive", e)),
            Ok(Ok(m)) => m,
        };
        let headers = msg
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        Ok(Some(Delivery {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            record: Record { key: msg.key().map(<[u8]>::to_vec), headers, value: msg.payload().map(<[u8]>::to_vec) },
        }))
    }

    async fn commit(&mut self, delivery: &Delivery) -> domain_core::Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&delivery.topic, delivery.partition, Offset::Offset(delivery.offset + 1))
            .map_err(|e| bus_error("commit", e))?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| domain_core::Error::Bus(e.to_string()))?
            .map_err(|e| bus_error("commit", e))
    }

    async fn dead_letter(&mut self, delivery: &Delivery, error: &domain_core::Error) -> domain_core::Result<()> {
        let record = dead_letter::record_for(delivery, error);
        self.bus.send_all(&topics::dlq(&delivery.topic), [Ok(record)]).await?;
        self.commit(delivery).await
    }

    async fn close(self: Box<Self>) -> domain_core::Result<()> {
        let consumer = Arc::clone(&self.consumer);
        drop(self);
        // Leaving the group blocks while the coordinator is told.
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        })
        .await
        .map_err(|e| domain_core::Error::Bus(e.to_string()))
    }
}
