//! The values the port speaks in.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain_core::Envelope;
use domain_core::json::JsonText;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Largest stream name accepted.
pub const MAX_STREAM_LEN: usize = 200;
/// Largest stored event (structured JSON) accepted by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// A validated stream name: usually `<AggregateType>-<id>` or the aggregate id.
/// Cheap to clone (shared).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let bad = |reason| Error::InvalidStream { name: name.clone(), reason };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.len() > MAX_STREAM_LEN {
            return Err(bad("longer than 200 bytes"));
        }
        if name.starts_with('$') {
            return Err(bad("names starting with `$` are reserved"));
        }
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("contains whitespace or control characters"));
        }
        Ok(Self(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0.to_string()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the writer believes about the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's last version must be exactly this (0 = no events).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Stream version of the first and last appended event (versions start at 1).
    pub first_version: u64,
    pub last_version: u64,
    /// Global log positions of the first and last event (positions start at 1).
    pub first_position: u64,
    pub last_position: u64,
}

/// An event as stored: its envelope plus where it sits. The payload is a
/// parsed [`Value`] by default, or its JSON text
/// ([`RecordedText`], what [`crate::EventStore::read_all_text`] gives).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent<D = Value> {
    pub stream: StreamId,
    /// 1-based version within the stream.
    pub version: u64,
    /// 1-based position in the global log; contiguous, never reordered.
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
    pub envelope: Envelope<D>,
}

/// A recorded event whose payload is still its JSON text: what projections
/// read, each decoding the text once, straight into its typed event.
pub type RecordedText = RecordedEvent<JsonText>;

impl RecordedEvent {
    /// The event with its payload as JSON text.
    pub fn into_text(self) -> RecordedText {
        RecordedEvent {
            stream: self.stream,
            version: self.version,
            position: self.position,
            recorded_at: self.recorded_at,
            envelope: self.envelope.into_json_text(),
        }
    }
}

/// Saved aggregate state at a stream version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream: StreamId,
    pub aggregate_type: String,
    /// Bumped when the state's shape changes; older snapshots are ignored.
    pub schema_version: u32,
    pub version: u64,
    pub state: Value,
    pub taken_at: DateTime<Utc>,
}
