//! What contract and product documents share: YAML in and out, with
//! 1-based line and column on every refusal.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The registry's error for a YAML (or JSON) document that does not parse
/// or does not fit its model.
pub fn yaml_error(document: &str, e: &serde_norway::Error) -> Error {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.to_string();
    // The parser repeats the location at the end; the error names it once.
    if let Some(cut) = message.rfind(" at line ")
        && message[cut..].contains(" column ")
    {
        message.truncate(cut);
    }
    Error::Yaml { document: document.to_owned(), line, column, message }
}

/// Reads `text` as `T`.
pub fn from_yaml<T: DeserializeOwned>(document: &str, text: &str) -> Result<T> {
    serde_norway::from_str(text).map_err(|e| yaml_error(document, &e))
}

/// Writes `value` as YAML.
pub fn to_yaml<T: Serialize>(document: &str, value: &T) -> Result<String> {
    serde_norway::to_string(value).map_err(|e| yaml_error(document, &e))
}
