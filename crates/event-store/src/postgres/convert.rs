//! Conversions between the driver's rows and errors and the crate's types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain_core::codec;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::rules::{self, StoredId, StreamState};
use crate::{Error, RecordedEvent, Result, StreamId};

/// A driver error as the crate's error, with the server's message if any.
pub fn db(context: &str, e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(d) => Error::Database(format!("{context}: {} ({})", d.message(), d.code().code())),
        None => {
            let mut text = format!("{context}: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            Error::Database(text)
        }
    }
}

/// Whether `e` is a unique violation of `constraint`.
pub fn violates(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION) && e.as_db_error().and_then(|d| d.constraint()) == Some(constraint)
}

pub fn corrupt(what: &str) -> Error {
    Error::Database(format!("stored {what} is out of range"))
}

pub fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| db(&format!("decoding column {i}"), &e))
}

pub fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(what))
}

pub fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Database(format!("{v} does not fit a PostgreSQL bigint")))
}

/// A position, version or count as a bigint bound, saturating.
pub fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn stream_id(name: String) -> Result<StreamId> {
    StreamId::new(name).map_err(|e| Error::Database(format!("stored stream name: {e}")))
}

pub fn stream_state(row: &Row) -> Result<StreamState> {
    Ok(StreamState { version: to_u64(get(row, 0)?, "stream version")?, deleted: get(row, 1)? })
}

/// Where each already-stored id of a batch is, from `lookup_ids` rows.
pub fn stored_ids(rows: &[Row]) -> Result<HashMap<Uuid, StoredId>> {
    rows.iter()
        .map(|r| {
            let body: &[u8] = get(r, 4)?;
            let id = StoredId {
                stream: stream_id(get(r, 1)?)?,
                version: to_u64(get(r, 2)?, "version")?,
                position: to_u64(get(r, 3)?, "position")?,
                digest: rules::digest(body),
            };
            Ok((get(r, 0)?, id))
        })
        .collect()
}

pub fn recorded<D: serde::de::DeserializeOwned>(
    stream: StreamId,
    position: u64,
    version: i64,
    body: &[u8],
    recorded_at: DateTime<Utc>,
) -> Result<RecordedEvent<D>> {
    Ok(RecordedEvent {
        stream,
        version: to_u64(version, "version")?,
        position,
        recorded_at,
        envelope: codec::from_json(body)?,
    })
}
