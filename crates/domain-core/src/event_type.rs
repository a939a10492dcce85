//! Versioned event type names: `<context>.<EventName>.v<N>`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{Error, Result};

/// A parsed, validated event type such as `orders.OrderConfirmed.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    // Shared, so the many copies a replay makes cost a reference count.
    context: Arc<str>,
    name: Arc<str>,
    version: u32,
}

impl EventType {
    /// Builds a type from its parts, validating each.
    pub fn new(context: &str, name: &str, version: u32) -> Result<Self> {
        let whole = format!("{context}.{name}.v{version}");
        let bad = |reason| Error::InvalidEventType { value: whole.clone(), reason };
        if !is_context(context) {
            return Err(bad("context must be lower-case letters, digits or '-'"));
        }
        if !is_name(name) {
            return Err(bad("event name must be UpperCamelCase letters and digits"));
        }
        if version == 0 {
            return Err(bad("version starts at 1"));
        }
        Ok(Self { context: context.into(), name: name.into(), version })
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The same event one version later (what an upcaster produces).
    pub fn next_version(&self) -> Self {
        Self { version: self.version + 1, ..self.clone() }
    }

    /// `<context>.<EventName>` without the version, the key upcasters use.
    pub fn unversioned(&self) -> String {
        format!("{}.{}", self.context, self.name)
    }
}

fn is_context(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.v{}", self.context, self.name, self.version)
    }
}

impl FromStr for EventType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidEventType { value: s.to_owned(), reason };
        let mut parts = s.split('.');
        let (Some(context), Some(name), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("needs exactly three dot-separated parts"));
        };
        let version = version
            .strip_prefix('v')
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| bad("version must look like v1"))?;
        EventType::new(context, name, version)
    }
}

impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        let t: EventType = "orders.OrderConfirmed.v2".parse().expect("valid");
        assert_eq!((t.context(), t.name(), t.version()), ("orders", "OrderConfirmed", 2));
        assert_eq!(t.to_string(), "orders.OrderConfirmed.v2");
        assert_eq!(t.next_version().to_string(), "orders.OrderConfirmed.v3");
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "",
            "orders",
            "orders.OrderConfirmed",
            "orders.OrderConfirmed.1",
            "Orders.X.v1",
            "orders.orderConfirmed.v1",
            "orders.X.v0",
            "orders.X.v1.extra",
            "or ders.X.v1",
            "orders.X.vx",
        ] {
            assert!(matches!(bad.parse::<EventType>(), Err(Error::InvalidEventType { .. })), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ctx in "[a-z][a-z0-9-]{0,12}", name in "[A-Z][A-Za-z0-9]{0,20}", v in 1u32..1000) {
            let t = EventType::new(&ctx, &name, v).expect("valid parts");
            prop_assert_eq!(t.to_string().parse::<EventType>().expect("parses"), t);
        }
    }
}
