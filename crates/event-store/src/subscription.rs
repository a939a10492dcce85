//! Catch-up subscriptions to the global log: read what is stored from a
//! position, then follow new events live, with a named checkpoint.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain_core::UpcasterRegistry;

use crate::{EventStore, RecordedEvent, Result};

/// Events read per round trip to the store.
const BATCH: usize = 512;

/// Follows the global log from a position; never skips one (the store's
/// positions are gap-safe) and hands out events in position order.
#[derive(Debug)]
pub struct LogSubscription {
    store: Arc<dyn EventStore>,
    name: Option<String>,
    next: u64,
    buffer: VecDeque<RecordedEvent>,
    upcasters: Option<Arc<UpcasterRegistry>>,
}

impl LogSubscription {
    /// Starts at `next_position` (1 = the beginning).
    pub fn from_position(store: Arc<dyn EventStore>, next_position: u64) -> Self {
        Self { store, name: None, next: next_position.max(1), buffer: VecDeque::new(), upcasters: None }
    }

    /// Starts where the named checkpoint says (the beginning if none);
    /// [`LogSubscription::save_checkpoint`] stores progress under that name.
    pub async fn from_checkpoint(store: Arc<dyn EventStore>, name: &str) -> Result<Self> {
        let next = store.load_checkpoint(name).await?.unwrap_or(1);
        Ok(Self { name: Some(name.to_owned()), ..Self::from_position(store, next) })
    }

    /// Upcasts old event versions before handing them out.
    pub fn with_upcasters(mut self, upcasters: Arc<UpcasterRegistry>) -> Self {
        self.upcasters = Some(upcasters);
        self
    }

    /// The position of the next event to hand out.
    pub fn position(&self) -> u64 {
        self.buffer.front().map_or(self.next, |e| e.position)
    }

    /// The next event, waiting up to `timeout` for one to be appended.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>> {
        if self.buffer.is_empty() {
            self.fill().await?;
            if self.buffer.is_empty() {
                self.store.wait_for(self.next, timeout).await?;
                self.fill().await?;
            }
        }
        let Some(mut e) = self.buffer.pop_front() else { return Ok(None) };
        if let Some(u) = &self.upcasters {
            e.envelope = u.upcast(e.envelope)?;
        }
        Ok(Some(e))
    }

    /// Up to `max` events already stored, without waiting.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        let n = max.min(self.buffer.len());
        let mut out: Vec<RecordedEvent> = self.buffer.drain(..n).collect();
        if let Some(u) = &self.upcasters {
            for e in &mut out {
                e.envelope = u.upcast(e.envelope.clone())?;
            }
        }
        Ok(out)
    }

    async fn fill(&mut self) -> Result<()> {
        let batch = self.store.read_all(self.next, BATCH).await?;
        if let Some(last) = batch.last() {
            self.next = last.position + 1;
        }
        self.buffer.extend(batch);
        Ok(())
    }

    /// Stores "everything before [`LogSubscription::position`] is handled".
    pub async fn save_checkpoint(&self) -> Result<()> {
        match &self.name {
            Some(name) => self.store.save_checkpoint(name, self.position()).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{event, stream};
    use crate::{ExpectedVersion, InMemoryEventStore};

    #[tokio::test]
    async fn catches_up_then_follows_live_and_resumes_from_its_checkpoint() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let s = stream("acct");
        store
            .append(&s, ExpectedVersion::Any, &(1..=3).map(|i| event(s.as_str(), i)).collect::<Vec<_>>())
            .await
            .expect("append");
        let mut sub = LogSubscription::from_checkpoint(Arc::clone(&store), "projector").await.expect("subscribe");
        for p in 1..=3 {
            assert_eq!(sub.next(Duration::from_secs(1)).await.expect("next").map(|e| e.position), Some(p));
        }
        let writer = {
            let (store, s) = (Arc::clone(&store), s.clone());
            tokio::spawn(async move { store.append(&s, ExpectedVersion::Exact(3), &[event(s.as_str(), 4)]).await })
        };
        assert_eq!(sub.next(Duration::from_secs(5)).await.expect("next").map(|e| e.position), Some(4), "live");
        writer.await.expect("join").expect("append");
        sub.save_checkpoint().await.expect("checkpoint");
        assert!(sub.next(Duration::from_millis(50)).await.expect("next").is_none());

        store.append(&s, ExpectedVersion::Exact(4), &[event(s.as_str(), 5)]).await.expect("append");
        let mut resumed = LogSubscription::from_checkpoint(store, "projector").await.expect("subscribe");
        assert_eq!(resumed.next(Duration::from_secs(1)).await.expect("next").map(|e| e.position), Some(5));
    }
}
