//! An in-memory adapter: the reference semantics, for tests and demos.
//! Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use domain_core::Envelope;

use crate::head::HeadWatch;
use crate::index::{Plan, ReadSide, WriteSide};
use crate::model::DEFAULT_MAX_EVENT_BYTES;
use crate::{AppendResult, EventStore, ExpectedVersion, RecordedEvent, RecordedText, Result, Snapshot, StreamId};

#[derive(Debug, Default)]
struct State {
    write: WriteSide,
    read: ReadSide<RecordedEvent>,
    snapshots: HashMap<StreamId, Snapshot>,
    checkpoints: HashMap<String, u64>,
}

/// Event store in memory.
#[derive(Debug)]
pub struct InMemoryEventStore {
    state: Mutex<State>,
    head: HeadWatch,
    max_event_bytes: usize,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self { state: Mutex::default(), head: HeadWatch::new(0), max_event_bytes: DEFAULT_MAX_EVENT_BYTES }
    }
}

impl InMemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes before the guard drops, so a poisoned
        // lock still guards consistent state.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: &[Envelope]) -> Result<AppendResult> {
        let batch = crate::rules::encode_batch(stream, events, self.max_event_bytes)?;
        let mut state = self.lock();
        let placed = match state.write.plan(stream, expected, &batch.keys)? {
            Plan::Existing(done) => return Ok(done),
            Plan::New(placed) => placed,
        };
        state.write.apply(&placed, &batch.keys);
        let result = placed.result();
        let recorded = events.iter().cloned().enumerate().map(|(i, mut envelope)| {
            envelope.aggregate_version = placed.first_version + i as u64;
            RecordedEvent {
                stream: stream.clone(),
                version: placed.first_version + i as u64,
                position: placed.first_position + i as u64,
                recorded_at: placed.recorded_at,
                envelope,
            }
        });
        state.read.push_many(stream, recorded);
        let head = state.read.head();
        drop(state);
        self.head.advance(head);
        Ok(result)
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        Ok(self.lock().read.stream(stream, from, max)?.into_iter().map(|(_, _, e)| e.clone()).collect())
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        Ok(self.lock().write.state(stream).version)
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        Ok(self.lock().read.all(from, max).map(|(_, e)| e.clone()).collect())
    }

    async fn read_all_text(&self, from: u64, max: usize) -> Result<Vec<RecordedText>> {
        Ok(self.lock().read.all(from, max).map(|(_, e)| e.clone().into_text()).collect())
    }

    async fn head_position(&self) -> Result<u64> {
        Ok(self.lock().read.head())
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64> {
        Ok(self.head.wait_for(position, timeout).await)
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let mut state = self.lock();
        state.write.check_delete(stream, expected)?;
        state.write.mark_deleted(stream);
        state.read.mark_deleted(stream);
        Ok(())
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let mut state = self.lock();
        let newer = state.snapshots.get(&snapshot.stream).is_none_or(|s| s.version < snapshot.version);
        if newer {
            state.snapshots.insert(snapshot.stream.clone(), snapshot.clone());
        }
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        Ok(self.lock().snapshots.get(stream).cloned())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.lock().checkpoints.get(name).copied())
    }

    async fn save_checkpoint(&self, name: &str, next_position: u64) -> Result<()> {
        self.lock().checkpoints.insert(name.to_owned(), next_position);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::event_store_contract_tests!(async { super::super::InMemoryEventStore::new() });
}
