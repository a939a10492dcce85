//! Serializer: [`to_line`] / [`write_line`], the inverse of [`super::parse_line`].

use std::fmt::Write as _;

use super::{FieldValue, ParsedLine};

/// Serializes `line` as one line of line protocol, without a trailing newline. Timestamps are
/// written in nanoseconds, so parse the output with [`super::Precision::Ns`].
///
/// Every backslash is written as `\\`, and the characters special to each element are escaped, so
/// `parse_line(&to_line(&l), _, Precision::Ns)` gives back `l` for every line the parser can
/// produce. Values the protocol cannot represent yield text that fails to parse rather than a
/// different point: a `\n` anywhere, an empty measurement, key or tag value, no fields, a
/// non-finite float, duplicate keys, or a measurement starting with `#` or a tab.
pub fn to_line(line: &ParsedLine) -> String {
    let mut out = String::with_capacity(estimate_len(line));
    write_line(line, &mut out);
    out
}

/// Appends the serialized `line` (see [`to_line`]) to `out`, without a trailing newline.
pub fn write_line(line: &ParsedLine, out: &mut String) {
    push_escaped(out, &line.measurement, is_measurement_special);
    for (key, value) in &line.tags {
        out.push(',');
        push_escaped(out, key, is_key_special);
        out.push('=');
        push_escaped(out, value, is_key_special);
    }
    for (i, (key, value)) in line.fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        push_escaped(out, key, is_key_special);
        out.push('=');
        push_field_value(out, value);
    }
    if let Some(ts) = line.timestamp {
        // Writing to a String cannot fail.
        let _ = write!(out, " {ts}");
    }
}

fn estimate_len(line: &ParsedLine) -> usize {
    let tags: usize = line.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let fields: usize =
        line.fields.iter().map(|(k, v)| k.len() + 2 + if let FieldValue::Str(s) = v { s.len() + 2 } else { 20 }).sum();
    line.measurement.len() + tags + fields + 21
}

fn is_measurement_special(b: u8) -> bool {
    matches!(b, b',' | b' ' | b'\\')
}

fn is_key_special(b: u8) -> bool {
    matches!(b, b',' | b'=' | b' ' | b'\\')
}

fn is_string_special(b: u8) -> bool {
    matches!(b, b'"' | b'\\')
}

/// Appends `s` with a backslash before every byte for which `special` is true (all ASCII).
fn push_escaped(out: &mut String, s: &str, special: fn(u8) -> bool) {
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        if special(b) {
            out.push_str(&s[copied..i]);
            out.push('\\');
            out.push(char::from(b));
            copied = i + 1;
        }
    }
    out.push_str(&s[copied..]);
}

fn push_field_value(out: &mut String, value: &FieldValue) {
    // Writing to a String cannot fail.
    let _ = match value {
        // `{:?}` is the shortest text that parses back to the same bits, with an exponent for very
        // large or small magnitudes (`1e300`, `5e-324`), which the parser accepts.
        FieldValue::Float(v) => write!(out, "{v:?}"),
        FieldValue::Int(v) => write!(out, "{v}i"),
        FieldValue::UInt(v) => write!(out, "{v}u"),
        FieldValue::Bool(v) => {
            out.push_str(if *v { "true" } else { "false" });
            Ok(())
        }
        FieldValue::Str(s) => {
            out.push('"');
            push_escaped(out, s, is_string_special);
            out.push('"');
            Ok(())
        }
    };
}
