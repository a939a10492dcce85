//! The append rules every adapter applies, as pure functions: batch
//! validation, expected-version checks and idempotent retries.

use std::collections::HashSet;

use domain_core::{Envelope, codec};
use uuid::Uuid;

use crate::id_hash::{IdHash, IdSet};
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

/// An event's id and the digest of its stored bytes: what an adapter needs
/// to recognise a retried append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKey {
    pub id: Uuid,
    pub digest: u64,
}

/// A checked batch in the binary record form (see [`crate::record`]), laid
/// out as the event part of an embedded log frame: per event
/// `[id 16][digest u64][len u32][record]`. One buffer for the whole batch
/// keeps encoding to a single allocation.
#[derive(Debug, Default)]
pub struct EncodedBatch {
    pub keys: Vec<EventKey>,
    pub body: Vec<u8>,
}

/// Bytes in front of each record in [`EncodedBatch::body`].
pub const RECORD_PREFIX: usize = 16 + 8 + 4;

/// Checks a batch and encodes it; runs in the caller, before the writer
/// decides where the events go, so callers encode in parallel.
pub fn encode_batch(stream: &StreamId, events: &[Envelope], max_event_bytes: usize) -> Result<EncodedBatch> {
    if events.is_empty() {
        return Err(Error::EmptyAppend { stream: stream.to_string() });
    }
    let mut ids = IdSet::with_capacity_and_hasher(events.len(), IdHash::default());
    let mut out = EncodedBatch {
        keys: Vec::with_capacity(events.len()),
        body: Vec::with_capacity(events.len() * (RECORD_PREFIX + 384)),
    };
    let mut types = crate::record::TypeNames::default();
    for e in events {
        if !ids.insert(e.id) {
            return Err(Error::DuplicateInBatch { id: e.id });
        }
        let at = out.body.len();
        out.body.extend_from_slice(e.id.as_bytes());
        out.body.extend_from_slice(&[0; 12]);
        crate::record::encode_into(&mut out.body, e, &mut types)?;
        let record = &out.body[at + RECORD_PREFIX..];
        if record.len() > max_event_bytes {
            return Err(Error::EventTooLarge { id: e.id, size: record.len(), max: max_event_bytes });
        }
        let (digest, len) = (digest(record), record.len() as u32);
        out.body[at + 16..at + 24].copy_from_slice(&digest.to_le_bytes());
        out.body[at + 24..at + RECORD_PREFIX].copy_from_slice(&len.to_le_bytes());
        out.keys.push(EventKey { id: e.id, digest });
    }
    Ok(out)
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
    new: &[EventKey],
    stored: &[Option<StoredId>],
) -> Result<Option<AppendResult>> {
    let (Some(Some(first)), Some(Some(last))) = (stored.first(), stored.last()) else {
        return match stored.iter().zip(new).find(|(s, _)| s.is_some()) {
            Some((_, key)) => Err(Error::IdempotencyConflict { id: key.id }),
            None => Ok(None),
        };
    };
    for (i, (key, found)) in new.iter().zip(stored).enumerate() {
        let same = found.as_ref().is_some_and(|f| {
            &f.stream == stream
                && f.version == first.version + i as u64
                && f.position == first.position + i as u64
                && f.digest == key.digest
        });
        if !same {
            return Err(Error::IdempotencyConflict { id: key.id });
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
    let new: Vec<EventKey> = prepare(stream, events, at.max(1), max_event_bytes)?
        .iter()
        .map(|(e, b)| EventKey { id: e.id, digest: digest(b) })
        .collect();
    already_stored(stream, &new, stored)
}
