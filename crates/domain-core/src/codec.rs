//! Wire codecs: the CloudEvents Kafka protocol binding in binary content
//! mode (attributes as `ce_*` headers, JSON payload as the value, key = the
//! aggregate id) and the JSON structured mode used for storage.
//!
//! Both buses and the event store share this one codec, so an event looks
//! the same wherever it is read.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::{CONTENT_TYPE, SPEC_VERSION};
use crate::{Envelope, Error, EventType, Result};

/// A record as a bus carries it: key, headers and value, all bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Bytes this record occupies (key, headers and value).
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}

/// Header names of the binary content mode.
pub mod headers {
    pub const SPEC_VERSION: &str = "ce_specversion";
    pub const ID: &str = "ce_id";
    pub const SOURCE: &str = "ce_source";
    pub const TYPE: &str = "ce_type";
    pub const SUBJECT: &str = "ce_subject";
    pub const TIME: &str = "ce_time";
    pub const AGGREGATE_VERSION: &str = "ce_aggregateversion";
    pub const CORRELATION_ID: &str = "ce_correlationid";
    pub const CAUSATION_ID: &str = "ce_causationid";
    pub const CONTENT_TYPE: &str = "content-type";
}

/// Encodes an envelope in binary content mode.
pub fn encode(env: &Envelope) -> Result<Record> {
    let value = crate::json::to_vec(&env.data);
    let mut hs: Vec<(String, Vec<u8>)> = vec![
        (headers::SPEC_VERSION.into(), SPEC_VERSION.into()),
        (headers::ID.into(), env.id.to_string().into_bytes()),
        (headers::SOURCE.into(), env.source.clone().into_bytes()),
        (headers::TYPE.into(), env.event_type.to_string().into_bytes()),
        (headers::SUBJECT.into(), env.subject.clone().into_bytes()),
        (headers::TIME.into(), env.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into_bytes()),
        (headers::AGGREGATE_VERSION.into(), env.aggregate_version.to_string().into_bytes()),
        (headers::CORRELATION_ID.into(), env.correlation_id.to_string().into_bytes()),
        (headers::CONTENT_TYPE.into(), CONTENT_TYPE.into()),
    ];
    if let Some(c) = env.causation_id {
        hs.push((headers::CAUSATION_ID.into(), c.to_string().into_bytes()));
    }
    Ok(Record { key: Some(env.subject.clone().into_bytes()), headers: hs, value: Some(value) })
}

/// Decodes a binary-content-mode record, checking every attribute.
pub fn decode(record: &Record) -> Result<Envelope> {
    let spec = text(record, headers::SPEC_VERSION)?;
    if spec != SPEC_VERSION {
        return Err(invalid(headers::SPEC_VERSION, format!("unsupported specversion `{spec}`")));
    }
    if let Some(ct) = record.header(headers::CONTENT_TYPE) {
        let ct = std::str::from_utf8(ct).map_err(|_| invalid(headers::CONTENT_TYPE, "not UTF-8".into()))?;
        if !ct.starts_with(CONTENT_TYPE) {
            return Err(invalid(headers::CONTENT_TYPE, format!("`{ct}` is not {CONTENT_TYPE}")));
        }
    }
    let event_type: EventType =
        text(record, headers::TYPE)?.parse().map_err(|e: Error| invalid(headers::TYPE, e.to_string()))?;
    let time = DateTime::parse_from_rfc3339(text(record, headers::TIME)?)
        .map_err(|e| invalid(headers::TIME, e.to_string()))?
        .with_timezone(&Utc);
    let causation_id = match record.header(headers::CAUSATION_ID) {
        Some(_) => Some(uuid(record, headers::CAUSATION_ID)?),
        None => None,
    };
    let value = record.value.as_deref().ok_or(Error::MissingValue)?;
    let data = serde_json::from_slice(value).map_err(|e| Error::InvalidPayload(e.to_string()))?;
    let subject = text(record, headers::SUBJECT)?.to_owned();
    if let Some(key) = &record.key
        && key.as_slice() != subject.as_bytes()
    {
        return Err(invalid(headers::SUBJECT, "differs from the record key".into()));
    }
    Ok(Envelope {
        id: uuid(record, headers::ID)?,
        source: non_empty(record, headers::SOURCE)?.to_owned(),
        event_type,
        subject,
        time,
        aggregate_version: text(record, headers::AGGREGATE_VERSION)?
            .parse()
            .map_err(|_| invalid(headers::AGGREGATE_VERSION, "not an unsigned integer".into()))?,
        correlation_id: uuid(record, headers::CORRELATION_ID)?,
        causation_id,
        data,
    })
}

/// Encodes an envelope as one CloudEvents JSON document (structured mode).
pub fn to_json(env: &Envelope) -> Result<Vec<u8>> {
    let mut doc = serde_json::to_value(env).map_err(|e| Error::InvalidPayload(e.to_string()))?;
    if let Some(map) = doc.as_object_mut() {
        map.insert("specversion".into(), SPEC_VERSION.into());
        map.insert("datacontenttype".into(), CONTENT_TYPE.into());
    }
    serde_json::to_vec(&doc).map_err(|e| Error::InvalidPayload(e.to_string()))
}

/// Decodes a CloudEvents JSON document (structured mode), its payload
/// parsed (`Envelope`) or kept as text (`Envelope<JsonText>`).
pub fn from_json<D: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<D>> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidPayload(e.to_string()))
}

fn invalid(name: &str, reason: String) -> Error {
    Error::InvalidHeader { name: name.to_owned(), reason }
}

fn text<'r>(record: &'r Record, name: &'static str) -> Result<&'r str> {
    let raw = record.header(name).ok_or(Error::MissingHeader(name))?;
    std::str::from_utf8(raw).map_err(|_| invalid(name, "not UTF-8".into()))
}

fn non_empty<'r>(record: &'r Record, name: &'static str) -> Result<&'r str> {
    let t = text(record, name)?;
    if t.is_empty() {
        return Err(invalid(name, "empty".into()));
    }
    Ok(t)
}

fn uuid(record: &Record, name: &'static str) -> Result<Uuid> {
    Uuid::parse_str(text(record, name)?).map_err(|e| invalid(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample::CounterEvent;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope::new("counter-1", 7, &CounterEvent::Incremented { by: 2 }).expect("encodes")
    }

    #[test]
    fn binary_mode_round_trip_keeps_every_attribute() {
        let cause = sample();
        let env = sample().caused_by(&cause);
        let record = encode(&env).expect("encodes");
        assert_eq!(record.key.as_deref(), Some(b"counter-1".as_slice()));
        assert_eq!(record.header(headers::TYPE), Some(b"counter.Incremented.v2".as_slice()));
        assert_eq!(record.header(headers::CONTENT_TYPE), Some(b"application/json".as_slice()));
        assert_eq!(decode(&record).expect("decodes"), env);
    }

    #[test]
    fn structured_mode_round_trip() {
        let env = sample();
        let doc: serde_json::Value = serde_json::from_slice(&to_json(&env).expect("encodes")).expect("json");
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["type"], "counter.Incremented.v2");
        assert_eq!(from_json(&to_json(&env).expect("encodes")).expect("decodes"), env);
    }

    #[test]
    fn each_malformed_part_has_its_own_error() {
        let good = encode(&sample()).expect("encodes");
        let with = |name: &str, value: &[u8]| {
            let mut r = good.clone();
            r.headers.retain(|(n, _)| n != name);
            r.headers.push((name.to_owned(), value.to_vec()));
            r
        };
        let without = |name: &str| {
            let mut r = good.clone();
            r.headers.retain(|(n, _)| n != name);
            r
        };
        assert_eq!(decode(&without(headers::ID)), Err(Error::MissingHeader(headers::ID)));
        assert!(
            matches!(decode(&with(headers::ID, b"nope")), Err(Error::InvalidHeader { name, .. }) if name == headers::ID)
        );
        assert!(
            matches!(decode(&with(headers::TYPE, b"garbage")), Err(Error::InvalidHeader { name, .. }) if name == headers::TYPE)
        );
        assert!(matches!(decode(&with(headers::TIME, b"yesterday")), Err(Error::InvalidHeader { .. })));
        assert!(matches!(decode(&with(headers::SPEC_VERSION, b"0.3")), Err(Error::InvalidHeader { .. })));
        assert!(matches!(decode(&with(headers::CONTENT_TYPE, b"text/xml")), Err(Error::InvalidHeader { .. })));
        assert!(matches!(decode(&with(headers::SUBJECT, &[0xff, 0xfe])), Err(Error::InvalidHeader { .. })));
        assert!(matches!(decode(&with(headers::AGGREGATE_VERSION, b"-1")), Err(Error::InvalidHeader { .. })));
        let mut not_json = good.clone();
        not_json.value = Some(b"{not json".to_vec());
        assert!(matches!(decode(&not_json), Err(Error::InvalidPayload(_))));
        let mut no_value = good.clone();
        no_value.value = None;
        assert_eq!(decode(&no_value), Err(Error::MissingValue));
        let mut wrong_key = good;
        wrong_key.key = Some(b"other".to_vec());
        assert!(matches!(decode(&wrong_key), Err(Error::InvalidHeader { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_records_never_panic(key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            headers in proptest::collection::vec(("ce_[a-z]{2,14}", proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
            let _ = decode(&Record { key, headers, value });
        }

        #[test]
        fn payloads_round_trip(subject in "[a-z0-9_-]{1,20}", n in any::<i64>(), s in ".{0,30}") {
            let ty: EventType = "demo.Thing.v1".parse().expect("valid");
            let env = Envelope::raw("demo", ty, subject, 1, serde_json::json!({"n": n, "s": s}));
            prop_assert_eq!(decode(&encode(&env).expect("encodes")).expect("decodes"), env);
        }
    }
}
