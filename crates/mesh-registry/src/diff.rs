//! The semver gate (placeholder, being written).

/// One difference between two contract versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub detail: String,
    pub breaking: bool,
}

/// The message of [`crate::Error::BreakingChange`].
pub fn describe_refusal(contract: &str, from: &str, to: &str, changes: &[Change], consumers: &[String]) -> String {
    format!("contract `{contract}` {from} -> {to}: {} breaking change(s) need a major version bump; consumers: {consumers:?}", changes.len())
}
