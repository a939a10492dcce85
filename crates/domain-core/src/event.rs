//! Domain events: what an aggregate emits, typed per bounded context.
//!
//! A context's events are one serde enum in the externally tagged form
//! (serde's default). The variant name is the event name on the wire and the
//! variant's fields are the JSON payload, so no per-event boilerplate is
//! needed and an unknown name fails to decode with a typed error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, EventType, Result};

/// An event enum of one bounded context.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The producing context, e.g. `orders`; also the CloudEvents `source`.
    const CONTEXT: &'static str;

    /// The current schema version of the named event. Bump it when a payload
    /// changes shape and register an upcaster for the old version.
    fn schema_version(_name: &str) -> u32 {
        1
    }
}

/// Splits an event into its wire type and JSON payload.
pub fn to_wire<E: DomainEvent>(event: &E) -> Result<(EventType, Value)> {
    let value = serde_json::to_value(event).map_err(|e| Error::InvalidPayload(e.to_string()))?;
    let (name, data) = match value {
        Value::Object(map) if map.len() == 1 => map.into_iter().next().ok_or(Error::MissingValue)?,
        Value::String(name) => (name, Value::Object(Default::default())),
        other => {
            return Err(Error::InvalidPayload(format!(
                "a domain event must serialize as an externally tagged enum, got {other}"
            )));
        }
    };
    let ty = EventType::new(E::CONTEXT, &name, E::schema_version(&name))?;
    Ok((ty, data))
}

/// Rebuilds a typed event from its wire type and payload.
///
/// The type must belong to `E`'s context and be at the current version
/// (upcast older versions first).
pub fn from_wire<E: DomainEvent>(ty: &EventType, data: &Value) -> Result<E> {
    // `&Value` is a deserializer of its own: the payload is read in place,
    // not copied (a projection decodes every event it is handed by reference).
    decode_tagged(ty, data)
}

/// [`from_wire`] reading the payload from its JSON text: one parse, straight
/// into the event, with no [`Value`] in between.
pub fn from_wire_json<E: DomainEvent>(ty: &EventType, json: &str) -> Result<E> {
    let mut de = serde_json::Deserializer::from_str(json);
    let event = decode_tagged(ty, &mut de)?;
    de.end().map_err(|e| Error::SchemaMismatch { event_type: ty.to_string(), reason: e.to_string() })?;
    Ok(event)
}

/// [`from_wire`] taking the payload by value.
pub fn from_wire_owned<E: DomainEvent>(ty: &EventType, data: Value) -> Result<E> {
    decode_tagged(ty, data)
}

fn decode_tagged<'de, E, D>(ty: &EventType, data: D) -> Result<E>
where
    E: DomainEvent,
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    if ty.context() != E::CONTEXT {
        return Err(Error::UnknownEventType(ty.to_string()));
    }
    if ty.version() != E::schema_version(ty.name()) {
        return Err(Error::SchemaMismatch {
            event_type: ty.to_string(),
            reason: format!("this consumer reads version {}; register an upcaster", E::schema_version(ty.name())),
        });
    }
    E::deserialize(Tagged { name: ty.name(), data }).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown variant") {
            Error::UnknownEventType(ty.to_string())
        } else {
            Error::SchemaMismatch { event_type: ty.to_string(), reason: msg }
        }
    })
}

/// Presents `(variant name, payload)` to serde as an externally tagged enum,
/// without building the `{name: payload}` map first. The payload is any
/// JSON deserializer: an owned `Value` or a borrowed `&Value`.
struct Tagged<'a, D> {
    name: &'a str,
    data: D,
}

impl<'de, D: serde::Deserializer<'de, Error = serde_json::Error>> serde::Deserializer<'de> for Tagged<'_, D> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de, D: serde::Deserializer<'de, Error = serde_json::Error>> serde::de::EnumAccess<'de> for Tagged<'_, D> {
    type Error = serde_json::Error;
    type Variant = Payload<D>;

    fn variant_seed<S: serde::de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> std::result::Result<(S::Value, Payload<D>), Self::Error> {
        use serde::de::IntoDeserializer;
        let variant = seed.deserialize(self.name.into_deserializer())?;
        Ok((variant, Payload(self.data)))
    }
}

/// The payload of a tagged event.
struct Payload<D>(D);

impl<'de, D: serde::Deserializer<'de, Error = serde_json::Error>> serde::de::VariantAccess<'de> for Payload<D> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> std::result::Result<(), Self::Error> {
        // A unit event's payload is `{}`; read past it, so a text payload
        // ends where the document does.
        serde::de::IgnoredAny::deserialize(self.0).map(|_| ())
    }

    fn newtype_variant_seed<S: serde::de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> std::result::Result<S::Value, Self::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.0.deserialize_seq(visitor)
    }

    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! A tiny event enum used by this crate's tests.
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum CounterEvent {
        Incremented { by: u32 },
        Reset {},
        Stopped,
    }

    impl super::DomainEvent for CounterEvent {
        const CONTEXT: &'static str = "counter";
        fn schema_version(name: &str) -> u32 {
            if name == "Incremented" { 2 } else { 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::CounterEvent;
    use super::*;

    #[test]
    fn round_trips_through_the_wire_form() {
        let e = CounterEvent::Incremented { by: 3 };
        let (ty, data) = to_wire(&e).expect("encodes");
        assert_eq!(ty.to_string(), "counter.Incremented.v2");
        assert_eq!(data, serde_json::json!({"by": 3}));
        assert_eq!(from_wire::<CounterEvent>(&ty, &data).expect("decodes"), e);
    }

    #[test]
    fn typed_errors_for_foreign_unknown_and_misshapen_events() {
        let data = serde_json::json!({"by": 1});
        let foreign: EventType = "orders.Incremented.v2".parse().expect("valid");
        assert!(matches!(from_wire::<CounterEvent>(&foreign, &data), Err(Error::UnknownEventType(_))));
        let unknown: EventType = "counter.Exploded.v1".parse().expect("valid");
        assert!(matches!(from_wire::<CounterEvent>(&unknown, &data), Err(Error::UnknownEventType(_))));
        let old: EventType = "counter.Incremented.v1".parse().expect("valid");
        assert!(matches!(from_wire::<CounterEvent>(&old, &data), Err(Error::SchemaMismatch { .. })));
        let current: EventType = "counter.Incremented.v2".parse().expect("valid");
        let bad = serde_json::json!({"by": "three"});
        assert!(matches!(from_wire::<CounterEvent>(&current, &bad), Err(Error::SchemaMismatch { .. })));
    }

    #[test]
    fn the_json_text_decodes_as_its_parsed_value_does() {
        for e in [CounterEvent::Incremented { by: 7 }, CounterEvent::Reset {}, CounterEvent::Stopped] {
            let (ty, data) = to_wire(&e).expect("encodes");
            let text = serde_json::to_string(&data).expect("text");
            assert_eq!(from_wire_json::<CounterEvent>(&ty, &text).expect("decodes"), e);
            assert_eq!(from_wire::<CounterEvent>(&ty, &data).expect("decodes"), e);
        }
        let current: EventType = "counter.Incremented.v2".parse().expect("valid");
        let unknown: EventType = "counter.Exploded.v1".parse().expect("valid");
        assert!(matches!(from_wire_json::<CounterEvent>(&unknown, r#"{"by":1}"#), Err(Error::UnknownEventType(_))));
        for bad in [r#"{"by":"three"}"#, r#"{"by":1"#, r#"{"by":1} trailing"#, "", "not json"] {
            let got = from_wire_json::<CounterEvent>(&current, bad);
            assert!(matches!(got, Err(Error::SchemaMismatch { .. })), "{bad:?} gave {got:?}");
        }
    }
}
