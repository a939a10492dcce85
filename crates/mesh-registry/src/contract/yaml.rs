//! Reading and writing contracts as YAML, and turning parser errors into
//! [`Error::Yaml`] with a 1-based line and column and a readable message.

use super::model::Contract;
use crate::error::{Error, Result};

/// Keys that only ODCS v3.2 has. A v3.2.0 document is read as long as it
/// sticks to v3.1 keys; one of these gets a hint instead of a bare "unknown
/// field".
const V3_2_ONLY_KEYS: &[&str] = &[
    "context",
    "enum",
    "semanticType",
    "synonyms",
    "deprecated",
    "map",
    "vendor",
    "encoding",
    "workgroup",
    "catalogUrl",
    "namespace",
    "dimensions",
    "distanceMetric",
    "elementType",
    "embeddingModel",
    "embeddingModelVersion",
    "normalized",
];

pub(super) fn from_yaml(document: &str, text: &str) -> Result<Contract> {
    serde_norway::from_str::<Contract>(text).map_err(|e| yaml_error(document, text, &e))
}

pub(super) fn to_yaml(contract: &Contract) -> Result<String> {
    serde_norway::to_string(contract).map_err(|e| Error::InvalidContract {
        contract: contract.id.clone(),
        path: ".".to_string(),
        reason: format!("cannot be written as YAML: {e}"),
    })
}

/// Maps a serde_norway error to [`Error::Yaml`].
pub(crate) fn yaml_error(document: &str, text: &str, e: &serde_norway::Error) -> Error {
    let (line, column) = match e.location() {
        Some(at) => (at.line(), at.column()),
        // Errors without a mark are about the document as a whole (it ended
        // early, it holds several documents): point at its end.
        None => (text.lines().count().max(1), 1),
    };
    let full = e.to_string();
    // The position is in the variant's fields; drop the copy in the text.
    let message = full.replacen(&format!(" at line {line} column {column}"), "", 1);
    Error::Yaml { document: document.to_string(), line, column, message: readable(&message) }
}

/// Shortens serde's "unknown field `x`, expected one of `a`, `b`, ..."
/// to the unknown key plus a suggestion, and explains v3.2-only keys.
fn readable(message: &str) -> String {
    let Some(start) = message.find("unknown field `") else {
        return message.to_string();
    };
    let rest = &message[start + "unknown field `".len()..];
    let Some(end) = rest.find('`') else {
        return message.to_string();
    };
    let key = &rest[..end];
    let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
    let mut out = format!("{}unknown key `{key}`", &message[..start]);
    if V3_2_ONLY_KEYS.contains(&key) {
        out.push_str(
            " (an ODCS v3.2 key; the registry reads the v3.1 model, so a v3.2.0 document must use v3.1 keys only)",
        );
    } else if let Some(near) = expected.iter().copied().filter(|k| close(k, key)).min_by_key(|k| distance(k, key)) {
        out.push_str(&format!(" (did you mean `{near}`?)"));
    } else if !expected.is_empty() && expected.len() <= 8 {
        out.push_str(&format!(
            ", expected one of {}",
            expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

fn close(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || distance(a, b) <= (a.len().max(b.len()) / 4).max(1)
}

/// Levenshtein distance over chars (keys are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let msg = readable("schema[0]: unknown field `physicalNme`, expected one of `id`, `name`, `physicalName`");
        assert_eq!(msg, "schema[0]: unknown key `physicalNme` (did you mean `physicalName`?)");
        let msg = readable("unknown field `zzz`, expected `a` or `b`");
        assert_eq!(msg, "unknown key `zzz`, expected one of `a`, `b`");
        let msg = readable("schema[0].properties[1]: unknown field `enum`, expected one of `id`");
        assert!(msg.starts_with("schema[0].properties[1]: unknown key `enum` (an ODCS v3.2 key"), "{msg}");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("same", "same"), 0);
    }
}
