//! In-memory bookkeeping shared by the in-memory and embedded adapters:
//! the write side decides appends; the read side finds events by stream and
//! position. The embedded adapter publishes to the read side only after the
//! log is fsynced, so readers never see an event that could still be lost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use std::hash::BuildHasher;

use crate::id_hash::{IdFilter, IdMap};
use crate::rules::{self, EventKey, StoredId, StreamState};
use crate::{AppendResult, Error, ExpectedVersion, Result, StreamId};

/// Where an accepted append goes: its stream, first version and position.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub stream: StreamId,
    pub first_version: u64,
    pub first_position: u64,
    pub recorded_at: DateTime<Utc>,
    pub count: u64,
}

impl Placement {
    pub fn result(&self) -> AppendResult {
        AppendResult {
            first_version: self.first_version,
            last_version: self.first_version + self.count - 1,
            first_position: self.first_position,
            last_position: self.first_position + self.count - 1,
        }
    }
}

/// The outcome of planning an append.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A retry of events already stored: nothing to write.
    Existing(AppendResult),
    New(Placement),
}

/// Where an event id is, compactly (the stream as an index into `names`).
#[derive(Debug, Clone, Copy)]
struct IdSlot {
    stream: u32,
    version: u64,
    position: u64,
    digest: u64,
}

/// Stream versions, tombstones and event ids: all an append decision needs.
#[derive(Debug, Default)]
pub(crate) struct WriteSide {
    streams: HashMap<StreamId, (u32, StreamState)>,
    names: Vec<StreamId>,
    ids: IdMap<IdSlot>,
    /// Answers "surely not stored" for most new ids without touching `ids`.
    filter: IdFilter,
    /// Ids of applied appends not yet in `ids` (see [`WriteSide::apply_deferred`]).
    unindexed: Vec<(u32, Placement, Vec<EventKey>)>,
    head: u64,
}

impl WriteSide {
    pub fn state(&self, stream: &StreamId) -> StreamState {
        self.streams.get(stream).map(|(_, s)| *s).unwrap_or_default()
    }

    fn stored(&self, id: &Uuid) -> Option<StoredId> {
        let slot = self.ids.get(id)?;
        Some(StoredId {
            stream: self.names.get(slot.stream as usize)?.clone(),
            version: slot.version,
            position: slot.position,
            digest: slot.digest,
        })
    }

    /// Changes the stream's state, creating its slot on first use; returns
    /// the slot index.
    fn update(&mut self, stream: &StreamId, change: impl FnOnce(&mut StreamState)) -> u32 {
        if let Some((i, s)) = self.streams.get_mut(stream) {
            change(s);
            return *i;
        }
        let i = self.names.len() as u32;
        let mut s = StreamState::default();
        change(&mut s);
        self.streams.insert(stream.clone(), (i, s));
        self.names.push(stream.clone());
        i
    }

    /// Decides an append of an encoded batch without changing anything
    /// (but indexing ids deferred earlier, which the decision needs).
    pub fn plan(&mut self, stream: &StreamId, expected: ExpectedVersion, keys: &[EventKey]) -> Result<Plan> {
        self.index_deferred();
        // Most appends carry new ids only: the filter settles most of them.
        let hasher = self.ids.hasher().clone();
        if keys.iter().any(|k| self.filter.may_contain(hasher.hash_one(k.id)) && self.ids.contains_key(&k.id)) {
            let stored: Vec<Option<StoredId>> = keys.iter().map(|k| self.stored(&k.id)).collect();
            if let Some(done) = rules::already_stored(stream, keys, &stored)? {
                return Ok(Plan::Existing(done));
            }
        }
        let state = self.state(stream);
        rules::check_expected(stream, state, expected)?;
        Ok(Plan::New(Placement {
            stream: stream.clone(),
            first_version: state.version + 1,
            first_position: self.head + 1,
            recorded_at: Utc::now(),
            count: keys.len() as u64,
        }))
    }

    /// Records a planned append as done.
    pub fn apply(&mut self, placed: &Placement, keys: &[EventKey]) {
        self.restore_batch(&placed.stream, placed.first_version, placed.first_position, keys.iter().copied());
    }

    /// [`WriteSide::apply`] that leaves the id index for
    /// [`WriteSide::index_deferred`]: a writer answers its callers first and
    /// indexes while they prepare their next append. Stream versions and the
    /// head move at once; the next `plan` indexes before it decides.
    pub fn apply_deferred(&mut self, placed: Placement, keys: Vec<EventKey>) {
        let last_version = placed.first_version + placed.count - 1;
        let idx = self.update(&placed.stream, |s| s.version = s.version.max(last_version));
        self.head = self.head.max(placed.first_position + placed.count - 1);
        self.unindexed.push((idx, placed, keys));
    }

    /// Indexes the ids of deferred appends.
    pub fn index_deferred(&mut self) {
        for (idx, placed, keys) in std::mem::take(&mut self.unindexed) {
            self.index_ids(idx, placed.first_version, placed.first_position, keys.into_iter());
        }
    }

    /// Records stored events of one stream at consecutive versions and
    /// positions (on open, or from `apply`).
    pub fn restore_batch(
        &mut self,
        stream: &StreamId,
        first_version: u64,
        first_position: u64,
        events: impl ExactSizeIterator<Item = EventKey>,
    ) {
        let n = events.len() as u64;
        if n == 0 {
            return;
        }
        let idx = self.update(stream, |s| s.version = s.version.max(first_version + n - 1));
        self.head = self.head.max(first_position + n - 1);
        self.index_ids(idx, first_version, first_position, events);
    }

    fn index_ids(
        &mut self,
        stream: u32,
        first_version: u64,
        first_position: u64,
        keys: impl ExactSizeIterator<Item = EventKey>,
    ) {
        self.ids.reserve(keys.len());
        let hasher = self.ids.hasher().clone();
        let mut full = false;
        for (i, key) in keys.enumerate() {
            let (version, position) = (first_version + i as u64, first_position + i as u64);
            self.ids.insert(key.id, IdSlot { stream, version, position, digest: key.digest });
            full |= !self.filter.insert(hasher.hash_one(key.id));
        }
        if full {
            self.filter = IdFilter::with_room_for(2 * self.ids.len());
            for id in self.ids.keys() {
                let _ = self.filter.insert(hasher.hash_one(id));
            }
        }
    }

    /// Checks a tombstone request.
    pub fn check_delete(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        rules::check_expected(stream, self.state(stream), expected)
    }

    pub fn mark_deleted(&mut self, stream: &StreamId) {
        self.update(stream, |s| s.deleted = true);
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

    /// Adds events of one stream at the next positions.
    pub fn push_many(&mut self, stream: &StreamId, entries: impl IntoIterator<Item = T>) {
        let positions = match self.streams.get_mut(stream) {
            Some((p, _)) => p,
            None => &mut self.streams.entry(stream.clone()).or_default().0,
        };
        for entry in entries {
            self.entries.push(entry);
            positions.push(self.entries.len() as u64);
        }
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
