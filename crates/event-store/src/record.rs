//! The compact binary form the embedded and in-memory adapters store an
//! event in: fixed-size attributes, then the JSON payload. The stream
//! version is not part of it (the store keeps it beside the bytes), so an
//! event can be encoded before the writer decides where it goes.

use chrono::{DateTime, Utc};
use domain_core::{Envelope, EventType};
use uuid::Uuid;

use crate::{Error, Result};

/// Encodes an envelope (all but `aggregate_version`).
pub fn encode(e: &Envelope) -> Result<Vec<u8>> {
    let data = serde_json::to_vec(&e.data).map_err(|err| Error::Codec(err.to_string()))?;
    let ty = e.event_type.to_string();
    let mut out = Vec::with_capacity(16 * 3 + 9 + 6 + e.source.len() + ty.len() + e.subject.len() + data.len());
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
    for s in [e.source.as_str(), ty.as_str(), e.subject.as_str()] {
        let len =
            u16::try_from(s.len()).map_err(|_| Error::Codec(format!("attribute of {} bytes is too long", s.len())))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&data);
    Ok(out)
}

/// Decodes what [`encode`] wrote, attaching the stored version.
pub fn decode(bytes: &[u8], aggregate_version: u64) -> Result<Envelope> {
    let mut r = Reader(bytes);
    let id = r.uuid()?;
    let correlation_id = r.uuid()?;
    let causation_id = match r.take(1)?[0] {
        0 => None,
        _ => Some(r.uuid()?),
    };
    let micros = i64::from_le_bytes(r.array()?);
    let time =
        DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| Error::Codec(format!("bad time {micros}")))?;
    let source = r.str()?.to_owned();
    let event_type: EventType = r.str()?.parse()?;
    let subject = r.str()?.to_owned();
    let data = serde_json::from_slice(r.0).map_err(|e| Error::Codec(e.to_string()))?;
    Ok(Envelope { id, source, event_type, subject, time, aggregate_version, correlation_id, causation_id, data })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Codec("stored event is cut short".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn uuid(&mut self) -> Result<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a str> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(n)?).map_err(|e| Error::Codec(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_attribute_and_refuses_short_input() {
        let cause = crate::testkit::event("acct-1", 1);
        let mut e = crate::testkit::event("acct-1", 2).caused_by(&cause);
        e.aggregate_version = 9;
        let bytes = encode(&e).expect("encode");
        assert_eq!(decode(&bytes, 9).expect("decode"), e);
        for cut in [0, 10, 40, 60] {
            assert!(decode(&bytes[..cut], 1).is_err());
        }
    }
}
