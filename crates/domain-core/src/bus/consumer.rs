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

#[cfg(test)]
mod tests {
    use super::*;

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
