//! Compact JSON output for payloads on hot paths (the event store's log,
//! Kafka record values). Byte for byte what `serde_json::to_vec` writes, but
//! strings are scanned for characters to escape eight bytes at a time: a
//! typical payload is mostly string bytes, and serde_json looks at each one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// Appends `v` as compact JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Writing a number into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// `v` as compact JSON.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, v);
    out
}

/// A JSON document kept as its text and read into a type only when asked:
/// a reader that wants a typed event parses the text once, straight into
/// it, instead of building a [`Value`] first (which costs more than the
/// typed parse and is thrown away after it).
///
/// The text is not validated when wrapped ([`JsonText::from_trusted`] is for
/// bytes this platform wrote); malformed text fails when it is read, with
/// the same typed errors a [`Value`] payload gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// Wraps text this platform wrote as JSON (a store's own records).
    pub fn from_trusted(text: impl Into<Box<str>>) -> Self {
        Self(text.into())
    }

    /// The compact JSON text of `v`.
    pub fn from_value(v: &Value) -> Self {
        // `write_value` writes only UTF-8: JSON text of UTF-8 strings.
        Self(String::from_utf8_lossy(&to_vec(v)).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document as a [`Value`].
    pub fn to_value(&self) -> serde_json::Result<Value> {
        serde_json::from_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Self(raw.into()))
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes is a control character, `"` or `\`.
fn any_to_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    (below_space | zero_in(quote) | zero_in(backslash)) != 0
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut clean_from, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !any_to_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[clean_from..i]);
            escape(out, b);
            clean_from = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            // Control characters, quotes, backslashes and multi-byte text at every offset.
            "[\\x00-\\x1f\"\\\\a-z\u{7f}é中😀]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\\\n]{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(v in value()) {
            prop_assert_eq!(to_vec(&v), serde_json::to_vec(&v).expect("serialize"));
        }

        #[test]
        fn json_text_holds_the_value_and_travels_inside_a_document(v in value()) {
            let text = JsonText::from_value(&v);
            // What any JSON text of `v` parses to (floats re-parse to within serde_json's precision).
            let reparsed: Value = serde_json::from_slice(&to_vec(&v)).expect("parses");
            prop_assert_eq!(text.to_value().expect("parses"), reparsed);
            let mut doc = std::collections::BTreeMap::new();
            doc.insert("data", text.clone());
            let doc = serde_json::to_string(&doc).expect("serialize");
            let back: std::collections::BTreeMap<String, JsonText> = serde_json::from_str(&doc).expect("parse");
            prop_assert_eq!(&back["data"], &text);
        }
    }

    #[test]
    fn the_word_scan_finds_every_byte_to_escape() {
        for b in 0u8..=255 {
            let mut w = [b'a'; 8];
            for at in 0..8 {
                w[at] = b;
                let expected = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(any_to_escape(u64::from_le_bytes(w)), expected, "byte {b:#x} at {at}");
                w[at] = b'a';
            }
        }
    }
}
