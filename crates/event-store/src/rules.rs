//! The append rules every adapter applies, as pure functions: batch
//! validation, expected-version checks and idempotent retries.

use std::collections::HashSet;

use domain_core::{Envelope, codec};

use crate::{AppendResult, Error, ExpectedVersion, Result, StreamId};

/// What an adapter knows about a stream before an append.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Last version (0 = no events).
    pub version: u64,
    pub deleted: bool,
}

/// Checks a batch on its own and returns each event encoded for storage
/// (structured JSON), numbered from `first_version`.
pub fn prepare(
    stream: &StreamId,
    events: &[Envelope],
    first_version: u64,
    max_event_bytes: usize,
) -> Result<Vec<(Envelope, Vec<u8>)>> {
    if events.is_empty() {
        return Err(Error::EmptyAppend { stream: stream.to_string() });
    }
    let mut ids = HashSet::with_capacity(events.len());
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if !ids.insert(e.id) {
            return Err(Error::DuplicateInBatch { id: e.id });
        }
        let mut e = e.clone();
        e.aggregate_version = first_version + i as u64;
        let bytes = codec::to_json(&e)?;
        if bytes.len() > max_event_bytes {
            return Err(Error::EventTooLarge { id: e.id, size: bytes.len(), max: max_event_bytes });
        }
        out.push((e, bytes));
    }
    Ok(out)
}

/// Checks the writer's expectation against the stream's state.
pub fn check_expected(stream: &StreamId, state: StreamState, expected: ExpectedVersion) -> Result<()> {
    if state.deleted {
        return Err(Error::StreamDeleted(stream.to_string()));
    }
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => state.version == 0,
        ExpectedVersion::Exists => state.version > 0,
        ExpectedVersion::Exact(v) => state.version == v,
    };
    if ok {
        return Ok(());
    }
    let actual = if state.version == 0 { "no stream".to_owned() } else { format!("version {}", state.version) };
    Err(Error::Conflict {
        stream: stream.to_string(),
        expected: expected.to_string(),
        actual,
        actual_version: Some(state.version),
    })
}

/// A 64-bit digest of a stored event's bytes, to recognise a retried append
/// without reading the event back.
pub fn digest(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Where an event id is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredId {
    pub stream: StreamId,
    pub version: u64,
    pub position: u64,
    pub digest: u64,
}

/// Decides whether an append is a retry of one already stored.
///
/// `stored[i]` is where `events[i].id` is stored, if anywhere. Returns the
/// original result when every event is stored in this stream, contiguously
/// and with the same content; `None` when none is stored; an error for
/// anything in between.
pub fn already_appended(
    stream: &StreamId,
    events: &[Envelope],
    stored: &[Option<StoredId>],
    max_event_bytes: usize,
) -> Result<Option<AppendResult>> {
    let (Some(Some(first)), Some(Some(last))) = (stored.first(), stored.last()) else {
        return match stored.iter().zip(events).find(|(s, _)| s.is_some()) {
            Some((_, e)) => Err(Error::IdempotencyConflict { id: e.id }),
            None => Ok(None),
        };
    };
    // Re-encode as it would have been stored, at the stored versions.
    let prepared = prepare(stream, events, first.version, max_event_bytes)?;
    for (i, ((event, bytes), found)) in prepared.iter().zip(stored).enumerate() {
        let same = found.as_ref().is_some_and(|f| {
            &f.stream == stream
                && f.version == first.version + i as u64
                && f.position == first.position + i as u64
                && f.digest == digest(bytes)
        });
        if !same {
            return Err(Error::IdempotencyConflict { id: event.id });
        }
    }
    Ok(Some(AppendResult {
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
    }))
}
