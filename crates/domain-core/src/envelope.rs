//! The CloudEvents 1.0 envelope every event travels in.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{from_wire, from_wire_json, to_wire};
use crate::json::JsonText;
use crate::{DomainEvent, EventType, Result};

/// CloudEvents `specversion` this crate speaks.
pub const SPEC_VERSION: &str = "1.0";
/// The only data content type used on the wire.
pub const CONTENT_TYPE: &str = "application/json";

/// An event with its CloudEvents attributes and the platform extensions.
///
/// Serialized as a CloudEvents JSON (structured mode) document; on Kafka the
/// attributes travel as `ce_*` headers instead (see [`crate::codec`]).
///
/// The payload `D` is a parsed [`Value`] by default; a reader that decodes
/// every payload into a typed event (a projection) reads envelopes with a
/// [`JsonText`] payload instead and parses each one once, straight into the
/// event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D = Value> {
    /// Unique event id, a UUIDv7 (time-ordered).
    pub id: Uuid,
    /// The producing bounded context, e.g. `orders`.
    pub source: String,
    /// `<context>.<EventName>.v<N>`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The aggregate id; also the Kafka record key.
    pub subject: String,
    /// When the event happened, UTC, microsecond precision.
    pub time: DateTime<Utc>,
    /// Version of the aggregate after this event (1 for the first).
    #[serde(rename = "aggregateversion")]
    pub aggregate_version: u64,
    /// Id shared by every event of one business flow.
    #[serde(rename = "correlationid")]
    pub correlation_id: Uuid,
    /// Id of the event that caused this one, if any.
    #[serde(rename = "causationid", default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The JSON payload.
    pub data: D,
}

impl<D> Envelope<D> {
    /// Marks this event as a consequence of `cause`: same correlation id,
    /// causation id = the cause's id.
    pub fn caused_by<C>(mut self, cause: &Envelope<C>) -> Self {
        self.correlation_id = cause.correlation_id;
        self.causation_id = Some(cause.id);
        self
    }

    /// The same envelope with its payload mapped by `f`.
    pub fn map_data<T>(self, f: impl FnOnce(D) -> T) -> Envelope<T> {
        Envelope {
            id: self.id,
            source: self.source,
            event_type: self.event_type,
            subject: self.subject,
            time: self.time,
            aggregate_version: self.aggregate_version,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data: f(self.data),
        }
    }
}

impl Envelope<JsonText> {
    /// Decodes the payload text straight into a context's event enum.
    pub fn decode<E: DomainEvent>(&self) -> Result<E> {
        from_wire_json(&self.event_type, self.data.as_str())
    }

    /// The envelope with its payload parsed.
    pub fn into_parsed(self) -> Result<Envelope> {
        let value = self.data.to_value().map_err(|e| crate::Error::InvalidPayload(e.to_string()))?;
        Ok(self.map_data(|_| value))
    }
}

impl Envelope {
    /// Wraps a typed domain event. It starts its own correlation chain; call
    /// [`Envelope::caused_by`] to join an existing one.
    pub fn new<E: DomainEvent>(subject: impl Into<String>, aggregate_version: u64, event: &E) -> Result<Self> {
        let (event_type, data) = to_wire(event)?;
        Ok(Self::raw(E::CONTEXT, event_type, subject, aggregate_version, data))
    }

    /// Wraps an untyped payload (for tools and tolerant consumers).
    pub fn raw(
        source: impl Into<String>,
        event_type: EventType,
        subject: impl Into<String>,
        aggregate_version: u64,
        data: Value,
    ) -> Self {
        let id = Uuid::now_v7();
        Self {
            id,
            source: source.into(),
            event_type,
            subject: subject.into(),
            time: Utc::now().trunc_subsecs(6),
            aggregate_version,
            correlation_id: id,
            causation_id: None,
            data,
        }
    }

    /// The envelope with its payload as JSON text.
    pub fn into_json_text(self) -> Envelope<JsonText> {
        let raw = JsonText::from_value(&self.data);
        self.map_data(|_| raw)
    }

    /// Decodes the payload into a context's event enum.
    pub fn decode<E: DomainEvent>(&self) -> Result<E> {
        from_wire(&self.event_type, &self.data)
    }

    /// Like [`Envelope::decode`], consuming the envelope (no payload copy).
    pub fn into_event<E: DomainEvent>(self) -> Result<E> {
        crate::event::from_wire_owned(&self.event_type, self.data)
    }
}
