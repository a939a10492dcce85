//! The compact binary form the embedded and in-memory adapters store an
//! event in: fixed-size attributes, then the JSON payload. The stream
//! version is not part of it (the store keeps it beside the bytes), so an
//! event can be encoded before the writer decides where it goes.

use chrono::{DateTime, Utc};
use domain_core::json::JsonText;
use domain_core::{Envelope, EventType};
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, Result};

/// Remembers the wire name of the last event type encoded: a batch mostly
/// repeats one type, and formatting it costs more than comparing it.
#[derive(Debug, Default)]
pub struct TypeNames(Option<(EventType, String)>);

impl TypeNames {
    fn name(&mut self, ty: &EventType) -> &str {
        if self.0.as_ref().is_none_or(|(cached, _)| cached != ty) {
            self.0 = Some((ty.clone(), format!("{}.{}.v{}", ty.context(), ty.name(), ty.version())));
        }
        self.0.as_ref().map_or("", |(_, name)| name.as_str())
    }
}

/// Appends the encoding of `e` (all but `aggregate_version`) to `out`.
pub fn encode_into(out: &mut Vec<u8>, e: &Envelope, types: &mut TypeNames) -> Result<()> {
    out.extend_from_slice(e.id.as_bytes());
    out.extend_from_slice(e.correlation_id.as_bytes());
    match e.causation_id {
        Some(c) => {
            out.push(1);
            out.extend_from_slice(c.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&e.time.timestamp_micros().to_le_bytes());
    for s in [e.source.as_str(), types.name(&e.event_type), e.subject.as_str()] {
        let len =
            u16::try_from(s.len()).map_err(|_| Error::Codec(format!("attribute of {} bytes is too long", s.len())))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    domain_core::json::write_value(out, &e.data);
    Ok(())
}

/// Remembers the event types decoded in a batch: a log interleaves a few
/// types (an order's five events are five), and parsing one costs more than
/// comparing bytes. Bounded, so a log of many types stays cheap.
#[derive(Debug, Default)]
pub struct TypeCache(Vec<(Box<str>, EventType)>);

/// Types a [`TypeCache`] keeps; past it, the oldest is replaced.
const TYPE_CACHE_SIZE: usize = 16;

impl TypeCache {
    fn get(&mut self, raw: &str) -> Result<EventType> {
        if let Some((_, ty)) = self.0.iter().find(|(name, _)| name.as_ref() == raw) {
            return Ok(ty.clone());
        }
        let ty: EventType = raw.parse()?;
        if self.0.len() == TYPE_CACHE_SIZE {
            self.0.remove(0);
        }
        self.0.push((raw.into(), ty.clone()));
        Ok(ty)
    }
}

/// The forms a stored payload is read into.
pub trait StoredPayload: Sized {
    fn from_stored(json: &[u8]) -> Result<Self>;
}

impl StoredPayload for Value {
    fn from_stored(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::Codec(e.to_string()))
    }
}

impl StoredPayload for JsonText {
    fn from_stored(json: &[u8]) -> Result<Self> {
        // The store wrote this text as JSON; only its encoding is checked
        // here, the JSON when a reader decodes it.
        let text = std::str::from_utf8(json).map_err(|e| Error::Codec(e.to_string()))?;
        Ok(JsonText::from_trusted(text))
    }
}

/// Decodes what [`encode_into`] wrote, attaching the stored version.
pub fn decode(bytes: &[u8], aggregate_version: u64) -> Result<Envelope> {
    decode_with(bytes, aggregate_version, &mut TypeCache::default())
}

/// [`decode`] with a type cache shared across a batch of events.
pub fn decode_with<D: StoredPayload>(
    bytes: &[u8],
    aggregate_version: u64,
    types: &mut TypeCache,
) -> Result<Envelope<D>> {
    let mut r = disk_format::ByteReader::new(bytes, "stored event");
    let id = Uuid::from_bytes(r.array()?);
    let correlation_id = Uuid::from_bytes(r.array()?);
    let causation_id = match r.u8()? {
        0 => None,
        _ => Some(Uuid::from_bytes(r.array()?)),
    };
    let micros = i64::from_le_bytes(r.array()?);
    let time =
        DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| Error::Codec(format!("bad time {micros}")))?;
    let source = r.str16()?.to_owned();
    let event_type = types.get(r.str16()?)?;
    let subject = r.str16()?.to_owned();
    let data = D::from_stored(r.rest().1)?;
    Ok(Envelope { id, source, event_type, subject, time, aggregate_version, correlation_id, causation_id, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_attribute_and_refuses_short_input() {
        let cause = crate::testkit::event("acct-1", 1);
        let mut e = crate::testkit::event("acct-1", 2).caused_by(&cause);
        e.aggregate_version = 9;
        let mut bytes = Vec::new();
        encode_into(&mut bytes, &e, &mut TypeNames::default()).expect("encode");
        assert_eq!(decode(&bytes, 9).expect("decode"), e);
        let text: Envelope<JsonText> = decode_with(&bytes, 9, &mut TypeCache::default()).expect("decode");
        assert_eq!(text, e.clone().into_json_text());
        for cut in [0, 10, 40, 60] {
            assert!(decode(&bytes[..cut], 1).is_err());
        }
    }

    #[test]
    fn the_type_cache_answers_each_name_with_its_own_type_past_its_size() {
        let mut cache = TypeCache::default();
        let names: Vec<String> = (0..TYPE_CACHE_SIZE + 4).map(|i| format!("ctx.Event{i}.v1")).collect();
        for _ in 0..2 {
            for name in &names {
                assert_eq!(cache.get(name).expect("parses").to_string(), *name);
            }
        }
        assert_eq!(cache.0.len(), TYPE_CACHE_SIZE);
        assert!(cache.get("not a type").is_err());
    }
}
