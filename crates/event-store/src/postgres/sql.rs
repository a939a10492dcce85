//! The schema of one PostgreSQL event store (its tables, its idempotent
//! migration) and the statements every pooled connection prepares.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::{Error, Result};

/// Longest schema name accepted; the NOTIFY channel `<schema>_es_head` must
/// stay within PostgreSQL's 63-byte identifiers.
pub const MAX_SCHEMA_LEN: usize = 48;

/// Constraint names the adapter recognises in unique violations.
pub const EVENT_ID_UNIQUE: &str = "events_event_id_unique";
pub const STREAM_VERSION_UNIQUE: &str = "events_stream_version_unique";

/// A validated schema name and the names derived from it.
#[derive(Debug, Clone)]
pub struct Names {
    pub schema: String,
    /// The LISTEN/NOTIFY channel carrying the new head after each append.
    pub channel: String,
    /// `pg_advisory_xact_lock` key serialising position assignment.
    pub append_lock: i64,
    /// `pg_advisory_xact_lock` key serialising migrations.
    pub migrate_lock: i64,
}

impl Names {
    /// Accepts lowercase identifiers only (`[a-z_][a-z0-9_]*`, at most 48
    /// bytes), so names never need escaping and never fold differently.
    pub fn new(schema: &str) -> Result<Self> {
        if !super::is_schema_name(schema, MAX_SCHEMA_LEN) {
            return Err(Error::Database(format!(
                "invalid schema name `{schema}`: use [a-z_][a-z0-9_]*, at most {MAX_SCHEMA_LEN} bytes, not pg_*"
            )));
        }
        Ok(Self {
            schema: schema.to_owned(),
            channel: format!("{schema}_es_head"),
            append_lock: lock_key("event-store append", schema),
            migrate_lock: lock_key("event-store migrate", schema),
        })
    }
}

/// A stable 64-bit key (FNV-1a) so every process derives the same lock.
fn lock_key(purpose: &str, schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes().chain([0]).chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Creates the schema and its tables if missing. Runs under an advisory lock
/// so that concurrent `connect`s on one schema do not race on the catalog.
pub fn migration(n: &Names) -> String {
    let s = &n.schema;
    format!(
        r#"
BEGIN;
SELECT pg_advisory_xact_lock({lock});
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".events (
    position    bigint      NOT NULL CONSTRAINT events_pkey PRIMARY KEY,
    stream      text        NOT NULL,
    version     bigint      NOT NULL,
    event_id    uuid        NOT NULL CONSTRAINT {EVENT_ID_UNIQUE} UNIQUE,
    body        bytea       NOT NULL,
    recorded_at timestamptz NOT NULL,
    CONSTRAINT {STREAM_VERSION_UNIQUE} UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS "{s}".streams (
    stream  text    NOT NULL PRIMARY KEY,
    version bigint  NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS "{s}".snapshots (
    stream         text        NOT NULL PRIMARY KEY,
    aggregate_type text        NOT NULL,
    schema_version bigint      NOT NULL,
    version        bigint      NOT NULL,
    state          text        NOT NULL,
    taken_at       timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS "{s}".checkpoints (
    name     text   NOT NULL PRIMARY KEY,
    position bigint NOT NULL
);
COMMIT;
"#,
        lock = n.migrate_lock,
    )
}

/// Every statement the adapter runs, prepared once per connection.
#[derive(Debug)]
pub struct Statements {
    /// Creates the stream row if missing and locks it until the transaction
    /// ends; returns `(version, deleted)` of the latest committed row.
    pub lock_stream: Statement,
    pub lookup_ids: Statement,
    pub append_lock: Statement,
    pub head: Statement,
    pub insert: Statement,
    pub mark_deleted: Statement,
    pub stream_state: Statement,
    pub read_stream: Statement,
    pub read_all: Statement,
    pub save_snapshot: Statement,
    pub load_snapshot: Statement,
    pub save_checkpoint: Statement,
    pub load_checkpoint: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client, n: &Names) -> Result<Self> {
        let s = &n.schema;
        let p = |sql: String, types: &'static [Type]| async move {
            client.prepare_typed(&sql, types).await.map_err(|e| super::db("preparing a statement", &e))
        };
        let (lock_stream, lookup_ids, append_lock, head, insert, mark_deleted, stream_state) = tokio::try_join!(
            p(
                format!(
                    r#"INSERT INTO "{s}".streams AS t (stream, version, deleted) VALUES ($1, 0, false)
                       ON CONFLICT (stream) DO UPDATE SET version = t.version
                       RETURNING version, deleted"#
                ),
                &[Type::TEXT]
            ),
            p(
                format!(
                    r#"SELECT event_id, stream, version, position, body FROM "{s}".events WHERE event_id = ANY($1)"#
                ),
                &[Type::UUID_ARRAY]
            ),
            p("SELECT pg_advisory_xact_lock($1)".to_owned(), &[Type::INT8]),
            p(format!(r#"SELECT coalesce(max(position), 0)::bigint FROM "{s}".events"#), &[]),
            p(
                format!(
                    r#"WITH ins AS (
                         INSERT INTO "{s}".events (position, stream, version, event_id, body, recorded_at)
                         SELECT $1 + t.i - 1, $2, $3 + t.i - 1, t.id, t.body, now()
                         FROM unnest($4::uuid[], $5::bytea[]) WITH ORDINALITY AS t(id, body, i)
                       ), upd AS (
                         UPDATE "{s}".streams SET version = $6 WHERE stream = $2
                       )
                       SELECT pg_notify($7, $8)"#
                ),
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::INT8,
                    Type::UUID_ARRAY,
                    Type::BYTEA_ARRAY,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT
                ]
            ),
            p(format!(r#"UPDATE "{s}".streams SET deleted = true WHERE stream = $1"#), &[Type::TEXT]),
            p(format!(r#"SELECT version, deleted FROM "{s}".streams WHERE stream = $1"#), &[Type::TEXT]),
        )?;
        let (read_stream, read_all, save_snapshot, load_snapshot, save_checkpoint, load_checkpoint) = tokio::try_join!(
            p(
                format!(
                    r#"SELECT position, version, body, recorded_at FROM "{s}".events
                       WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"#
                ),
                &[Type::TEXT, Type::INT8, Type::INT8]
            ),
            p(
                format!(
                    r#"SELECT position, stream, version, body, recorded_at FROM "{s}".events
                       WHERE position >= $1 ORDER BY position LIMIT $2"#
                ),
                &[Type::INT8, Type::INT8]
            ),
            p(
                format!(
                    r#"INSERT INTO "{s}".snapshots AS t (stream, aggregate_type, schema_version, version, state, taken_at)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT (stream) DO UPDATE SET aggregate_type = excluded.aggregate_type,
                         schema_version = excluded.schema_version, version = excluded.version,
                         state = excluded.state, taken_at = excluded.taken_at
                       WHERE t.version < excluded.version"#
                ),
                &[Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::TEXT, Type::TIMESTAMPTZ]
            ),
            p(
                format!(
                    r#"SELECT aggregate_type, schema_version, version, state, taken_at
                       FROM "{s}".snapshots WHERE stream = $1"#
                ),
                &[Type::TEXT]
            ),
            p(
                format!(
                    r#"INSERT INTO "{s}".checkpoints (name, position) VALUES ($1, $2)
                       ON CONFLICT (name) DO UPDATE SET position = excluded.position"#
                ),
                &[Type::TEXT, Type::INT8]
            ),
            p(format!(r#"SELECT position FROM "{s}".checkpoints WHERE name = $1"#), &[Type::TEXT]),
        )?;
        Ok(Self {
            lock_stream,
            lookup_ids,
            append_lock,
            head,
            insert,
            mark_deleted,
            stream_state,
            read_stream,
            read_all,
            save_snapshot,
            load_snapshot,
            save_checkpoint,
            load_checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(Names::new("accounts").is_ok());
        assert!(Names::new("es_test_0192abc").is_ok());
        for bad in ["", "Accounts", "1x", "a-b", "a\"b", "pg_catalog", &"x".repeat(49)] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_keys_differ_by_schema_and_purpose() {
        let (a, b) = (Names::new("a").expect("valid"), Names::new("b").expect("valid"));
        assert_ne!(a.append_lock, b.append_lock);
        assert_ne!(a.append_lock, a.migrate_lock);
        assert_eq!(a.append_lock, Names::new("a").expect("valid").append_lock, "stable");
    }
}
