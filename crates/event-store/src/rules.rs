//! The append rules every adapter applies, as pure functions: batch
//! validation, expected-version checks and idempotent retries.

use std::collections::HashSet;

use domain_core::{Envelope, codec};
use uuid::Uuid;

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

/// A 64-bit digest of an event's stored bytes (length and CRC-32), to
/// recognise a retried append without reading the event back. Two different
/// payloads under one event id collide with odds of 2^-32 at most.
pub fn digest(bytes: &[u8]) -> u64 {
    ((bytes.len() as u64) << 32) | u64::from(crc32fast::hash(bytes))
}

/// An event encoded for storage, independent of the version it will get.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub id: Uuid,
    /// Kept only by adapters that hand envelopes back from memory.
    pub envelope: Option<Envelope>,
    pub bytes: Vec<u8>,
    pub digest: u64,
}

/// Checks a batch and encodes it in the binary record form (see
/// [`crate::record`]); runs in the caller, before the writer decides.
pub fn encode_batch(stream: &StreamId, events: Vec<Envelope>, max_event_bytes: usize) -> Result<Vec<Encoded>> {
    if events.is_empty() {
        return Err(Error::EmptyAppend { stream: stream.to_string() });
    }
    let mut ids = HashSet::with_capacity(events.len());
    if let Some(e) = events.iter().find(|e| !ids.insert(e.id)) {
        return Err(Error::DuplicateInBatch { id: e.id });
    }
    let encode_one = |envelope: Envelope| -> Result<Encoded> {
        let bytes = crate::record::encode(&envelope)?;
        if bytes.len() > max_event_bytes {
            return Err(Error::EventTooLarge { id: envelope.id, size: bytes.len(), max: max_event_bytes });
        }
        let digest = digest(&bytes);
        Ok(Encoded { id: envelope.id, envelope: Some(envelope), bytes, digest })
    };
    events.into_iter().map(encode_one).collect()
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
/// `new[i]` is the id and digest of the i-th event, `stored[i]` where that id
/// is stored, if anywhere. Returns the original result when every event is
/// stored in this stream, contiguously and with the same content; `None`
/// when none is stored; an error for anything in between.
pub fn already_stored(
    stream: &StreamId,
    new: &[(Uuid, u64)],
    stored: &[Option<StoredId>],
) -> Result<Option<AppendResult>> {
    let (Some(Some(first)), Some(Some(last))) = (stored.first(), stored.last()) else {
        return match stored.iter().zip(new).find(|(s, _)| s.is_some()) {
            Some((_, (id, _))) => Err(Error::IdempotencyConflict { id: *id }),
            None => Ok(None),
        };
    };
    for (i, ((id, digest), found)) in new.iter().zip(stored).enumerate() {
        let same = found.as_ref().is_some_and(|f| {
            &f.stream == stream
                && f.version == first.version + i as u64
                && f.position == first.position + i as u64
                && f.digest == *digest
        });
        if !same {
            return Err(Error::IdempotencyConflict { id: *id });
        }
    }
    Ok(Some(AppendResult {
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
    }))
}

/// [`already_stored`] for adapters that store the structured JSON of
/// [`prepare`] (the version is inside, so digests are taken at the stored one).
pub fn already_appended(
    stream: &StreamId,
    events: &[Envelope],
    stored: &[Option<StoredId>],
    max_event_bytes: usize,
) -> Result<Option<AppendResult>> {
    let Some(first) = stored.iter().flatten().next() else { return Ok(None) };
    let at = first.version.saturating_sub(stored.iter().position(Option::is_some).unwrap_or(0) as u64);
    let new: Vec<(Uuid, u64)> =
        prepare(stream, events, at.max(1), max_event_bytes)?.iter().map(|(e, b)| (e.id, digest(b))).collect();
    already_stored(stream, &new, stored)
}
