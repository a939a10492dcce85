//! In-memory bookkeeping shared by the in-memory and embedded adapters:
//! the write side decides appends; the read side finds events by stream and
//! position. The embedded adapter publishes to the read side only after the
//! log is fsynced, so readers never see an event that could still be lost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::rules::{self, Encoded, StoredId, StreamState};
use crate::{AppendResult, Error, ExpectedVersion, Result, StreamId};

/// Events accepted for appending, encoded, numbered and positioned.
#[derive(Debug, Clone)]
pub(crate) struct NewEvents {
    pub stream: StreamId,
    pub first_version: u64,
    pub first_position: u64,
    pub recorded_at: DateTime<Utc>,
    /// Each with `aggregate_version` set to the version it is stored at.
    pub events: Vec<Encoded>,
}

impl NewEvents {
    pub fn result(&self) -> AppendResult {
        let n = self.events.len() as u64;
        AppendResult {
            first_version: self.first_version,
            last_version: self.first_version + n - 1,
            first_position: self.first_position,
            last_position: self.first_position + n - 1,
        }
    }
}

/// The outcome of planning an append.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A retry of events already stored: nothing to write.
    Existing(AppendResult),
    New(NewEvents),
}

/// Stream versions, tombstones and event ids: all an append decision needs.
#[derive(Debug, Default)]
pub(crate) struct WriteSide {
    streams: HashMap<StreamId, StreamState>,
    ids: HashMap<Uuid, StoredId>,
    head: u64,
}

impl WriteSide {
    pub fn state(&self, stream: &StreamId) -> StreamState {
        self.streams.get(stream).copied().unwrap_or_default()
    }

    /// Decides an append of an encoded batch without changing anything.
    pub fn plan(&self, stream: &StreamId, expected: ExpectedVersion, mut events: Vec<Encoded>) -> Result<Plan> {
        let new: Vec<(Uuid, u64)> = events.iter().map(|e| (e.envelope.id, e.digest)).collect();
        let stored: Vec<Option<StoredId>> = new.iter().map(|(id, _)| self.ids.get(id).cloned()).collect();
        if let Some(done) = rules::already_stored(stream, &new, &stored)? {
            return Ok(Plan::Existing(done));
        }
        let state = self.state(stream);
        rules::check_expected(stream, state, expected)?;
        for (i, e) in events.iter_mut().enumerate() {
            e.envelope.aggregate_version = state.version + 1 + i as u64;
        }
        Ok(Plan::New(NewEvents {
            stream: stream.clone(),
            first_version: state.version + 1,
            first_position: self.head + 1,
            recorded_at: Utc::now(),
            events,
        }))
    }

    /// Records a planned append as done.
    pub fn apply(&mut self, new: &NewEvents) {
        for (i, e) in new.events.iter().enumerate() {
            let (version, position) = (new.first_version + i as u64, new.first_position + i as u64);
            self.restore(&new.stream, version, position, e.envelope.id, e.digest);
        }
    }

    /// Records one stored event (on open, or from `apply`).
    pub fn restore(&mut self, stream: &StreamId, version: u64, position: u64, id: Uuid, digest: u64) {
        let s = self.streams.entry(stream.clone()).or_default();
        s.version = s.version.max(version);
        self.head = self.head.max(position);
        self.ids.insert(id, StoredId { stream: stream.clone(), version, position, digest });
    }

    /// Checks a tombstone request.
    pub fn check_delete(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        rules::check_expected(stream, self.state(stream), expected)
    }

    pub fn mark_deleted(&mut self, stream: &StreamId) {
        self.streams.entry(stream.clone()).or_default().deleted = true;
    }
}

/// Events by global position and per-stream position lists.
#[derive(Debug)]
pub(crate) struct ReadSide<T> {
    entries: Vec<T>,
    streams: HashMap<StreamId, (Vec<u64>, bool)>,
}

impl<T> Default for ReadSide<T> {
    fn default() -> Self {
        Self { entries: Vec::new(), streams: HashMap::new() }
    }
}

impl<T> ReadSide<T> {
    pub fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Adds the event at the next position.
    pub fn push(&mut self, stream: &StreamId, entry: T) {
        self.entries.push(entry);
        let position = self.entries.len() as u64;
        self.streams.entry(stream.clone()).or_default().0.push(position);
    }

    pub fn mark_deleted(&mut self, stream: &StreamId) {
        self.streams.entry(stream.clone()).or_default().1 = true;
    }

    pub fn get(&self, position: u64) -> Option<&T> {
        position.checked_sub(1).and_then(|i| self.entries.get(i as usize))
    }

    /// Entries of a stream from version `from` (1-based), at most `max`.
    pub fn stream(&self, stream: &StreamId, from: u64, max: usize) -> Result<Vec<(u64, u64, &T)>> {
        let Some((positions, deleted)) = self.streams.get(stream) else { return Ok(Vec::new()) };
        if *deleted {
            return Err(Error::StreamDeleted(stream.to_string()));
        }
        let skip = from.max(1) as usize - 1;
        Ok(positions
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .filter_map(|(i, p)| self.get(*p).map(|e| (i as u64 + 1, *p, e)))
            .collect())
    }

    /// Number of events in a stream (its last version), 0 if unknown.
    pub fn stream_version(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(0, |(p, _)| p.len() as u64)
    }

    /// Entries of the global log from position `from` (1-based), at most `max`.
    pub fn all(&self, from: u64, max: usize) -> impl Iterator<Item = (u64, &T)> {
        let skip = from.max(1) as usize - 1;
        self.entries.iter().enumerate().skip(skip).take(max).map(|(i, e)| (i as u64 + 1, e))
    }
}
