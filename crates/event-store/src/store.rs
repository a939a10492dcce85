//! The `EventStore` port.

use std::time::Duration;

use async_trait::async_trait;
use domain_core::Envelope;

use crate::{AppendResult, ExpectedVersion, RecordedEvent, RecordedText, Result, Snapshot, StreamId};

/// Durable, ordered storage of event streams with a global log.
///
/// Versions start at 1 within a stream; positions start at 1 in the global
/// log and are contiguous: a reader that has seen position `p` has seen
/// every event at positions below `p` (no later position becomes visible
/// before an earlier one).
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Appends `events` atomically if `expected` holds; each is stored with
    /// `aggregate_version` set to its version in the stream. Appending events
    /// that are already stored (same ids, same content) returns the original
    /// result and writes nothing, so a caller unsure whether an append went
    /// through (a timeout, a dropped connection) sends the same slice again.
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: &[Envelope]) -> Result<AppendResult>;

    /// Up to `max` events of `stream` from version `from` (inclusive).
    async fn read_stream(&self, stream: &StreamId, from: u64, max: usize) -> Result<Vec<RecordedEvent>>;

    /// The stream's last version, 0 when it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64>;

    /// Up to `max` events of the global log from position `from` (inclusive).
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>>;

    /// [`EventStore::read_all`] with each payload left as its JSON text, for
    /// readers that decode every payload into a typed event (projections):
    /// parsing the text once into the event costs a fraction of parsing it
    /// into a `Value` and decoding that.
    async fn read_all_text(&self, from: u64, max: usize) -> Result<Vec<RecordedText>>;

    /// The last position of the global log, 0 when empty.
    async fn head_position(&self) -> Result<u64>;

    /// Returns the head as soon as it is at least `position`, or the current
    /// head after `timeout`.
    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64>;

    /// Tombstones a stream: later appends and reads get `StreamDeleted`.
    /// Its events stay in the global log.
    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()>;

    /// Keeps the snapshot if it is newer than the stored one.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()>;

    /// The newest snapshot of the stream.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>>;

    /// The position a named reader (subscription, relay) will read next.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>>;

    async fn save_checkpoint(&self, name: &str, next_position: u64) -> Result<()>;
}

/// Events per read of [`read_whole_stream`].
const WHOLE_STREAM_PAGE: usize = 1024;

/// Every event of `stream`, oldest first, read page by page.
pub async fn read_whole_stream(store: &dyn EventStore, stream: &StreamId) -> Result<Vec<RecordedEvent>> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let page = store.read_stream(stream, out.len() as u64 + 1, WHOLE_STREAM_PAGE).await?;
        let done = page.len() < WHOLE_STREAM_PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}
