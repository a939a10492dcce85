//! The PostgreSQL adapter of the [`EventStore`] port.
//!
//! Each store owns one schema (`events`, `streams`, `snapshots`,
//! `checkpoints`), created by [`PostgresEventStore::connect`] if missing.
//! Events are stored as exactly the bytes [`rules::prepare`] produced
//! (`bytea`), so an idempotent retry compares digests of the stored bytes.
//! An append is one transaction and is acknowledged only after PostgreSQL's
//! commit (durable with the default `synchronous_commit = on`). When the
//! connection fails during the commit, the outcome is unknown: retrying the
//! same events is safe, it returns the original result if they were stored.
//! Stored timestamps (`recorded_at`, a snapshot's `taken_at`) keep
//! PostgreSQL's microsecond precision; the envelope's own bytes are exact.
//!
//! # Gap-safe global positions
//!
//! Positions must become visible in order: a reader that sees position
//! `p + 1` must already be able to see `p`, or it would checkpoint past `p`
//! and never deliver it. A sequence does not give that: transaction A takes
//! `p`, transaction B takes `p + 1`, B commits first, and a reader sees `p +
//! 1` while `p` is still in flight (or is rolled back, leaving a gap forever).
//!
//! So an append takes a transaction-level advisory lock (one key per schema)
//! right before assigning positions, assigns `max(position) + 1 ..` with no
//! sequence, and holds the lock until its commit. PostgreSQL makes a commit
//! visible before it releases the transaction's locks, and under READ
//! COMMITTED the next writer's `max(position)` runs in a fresh snapshot taken
//! after it got the lock; positions are thus contiguous and assigned in
//! commit order. A rolled-back append frees its positions for the next one.
//! The cost: appends to one schema commit one at a time (batches amortise it).
//!
//! # Expected versions
//!
//! The append first upserts and locks the stream's row in `streams`, so
//! writers of one stream queue there and each sees the version its
//! predecessor committed: a stale expectation is a typed
//! [`Error::Conflict`] with the actual version. `UNIQUE (stream, version)`
//! and `UNIQUE (event_id)` back this up; a unique violation on the event id
//! (a concurrent retry of the same events) makes the append start over, so
//! it ends with the original result or an [`Error::IdempotencyConflict`].

mod convert;
mod listener;
mod pool;
mod sql;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain_core::Envelope;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use crate::head::HeadWatch;
use crate::model::DEFAULT_MAX_EVENT_BYTES;
use crate::rules::{self, StoredId};
use crate::{
    AppendResult, Error, EventStore, ExpectedVersion, RecordedEvent, RecordedText, Result, Snapshot, StreamId,
};
use convert::{clamp, corrupt, get, recorded, stored_ids, stream_id, stream_state, to_i64, violates};
pub(crate) use convert::{db, to_u64};
use listener::AbortOnDrop;
use pool::{Lease, Pool};
use sql::Names;

/// How many times an append starts over after a concurrent insert of one of
/// its event ids.
const ID_RACE_ATTEMPTS: u32 = 3;

/// A statement parameter.
type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// Tuning of a [`PostgresEventStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections opened at most (lazily, as concurrency demands).
    pub pool_size: usize,
    /// Largest stored event accepted.
    pub max_event_bytes: usize,
    /// How often `wait_for`'s listener polls the head besides LISTEN/NOTIFY.
    pub fallback_poll: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { pool_size: 8, max_event_bytes: DEFAULT_MAX_EVENT_BYTES, fallback_poll: Duration::from_millis(500) }
    }
}

/// Event store in a PostgreSQL schema.
#[derive(Debug)]
pub struct PostgresEventStore {
    names: Arc<Names>,
    pool: Pool,
    head: Arc<HeadWatch>,
    max_event_bytes: usize,
    /// True while the head listener's LISTEN is in effect.
    listening: tokio::sync::watch::Receiver<bool>,
    _listener: AbortOnDrop,
}

/// Why one append attempt did not commit.
/// Starts a read-committed transaction: the stream row lock, not the
/// isolation level, is what orders writers of one stream.
async fn begin<'c>(client: &'c mut tokio_postgres::Client, what: &str) -> Result<tokio_postgres::Transaction<'c>> {
    client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await.map_err(|e| db(what, &e))
}

enum Failed {
    /// A concurrent transaction stored one of the event ids first.
    IdTaken,
    /// `UNIQUE (stream, version)` fired: a writer bypassed the stream lock.
    VersionTaken,
    Other(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Other(e)
    }
}

impl PostgresEventStore {
    /// Connects with default options; see [`Self::connect_with`].
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(url, schema, PostgresOptions::default()).await
    }

    /// Opens one connection, creates `schema` and its tables if missing, and
    /// starts the head listener in the background. Further pool connections
    /// open when concurrent calls need them.
    pub async fn connect_with(url: &str, schema: &str, options: PostgresOptions) -> Result<Self> {
        let names = Arc::new(Names::new(schema)?);
        let client = pool::open(url).await?;
        client
            .batch_execute(&sql::migration(&names))
            .await
            .map_err(|e| db(&format!("migrating schema {schema}"), &e))?;
        let st = sql::Statements::prepare(&client, &names).await?;
        let row = client.query_one(&st.head, &[]).await.map_err(|e| db("reading the head", &e))?;
        let head = Arc::new(HeadWatch::new(to_u64(get(&row, 0)?, "head")?));
        let (listening_tx, listening) = tokio::sync::watch::channel(false);
        let listener =
            listener::spawn(url.to_owned(), Arc::clone(&names), Arc::clone(&head), options.fallback_poll, listening_tx);
        Ok(Self {
            pool: Pool::new(url, Arc::clone(&names), options.pool_size, pool::Conn { client, st }),
            names,
            head,
            max_event_bytes: options.max_event_bytes,
            listening,
            _listener: listener,
        })
    }

    /// Waits until appends from other processes wake `wait_for` through
    /// NOTIFY (rather than the fallback poll); false after `timeout`.
    pub async fn wait_listening(&self, timeout: Duration) -> bool {
        let mut rx = self.listening.clone();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|l| *l)).await, Ok(Ok(_)))
    }

    /// The schema this store owns.
    pub fn schema(&self) -> &str {
        &self.names.schema
    }

    /// Drops the schema with everything in it (benchmark and test cleanup).
    /// Drop the store afterwards: every later call fails.
    pub async fn drop_schema(&self) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.names.schema))
            .await
            .map_err(|e| db(&format!("dropping schema {}", self.names.schema), &e))
    }

    /// One append transaction.
    async fn try_append(
        &self,
        conn: &mut Lease<'_>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Envelope],
        ids: &[Uuid],
    ) -> Result<AppendResult, Failed> {
        let conn = &mut **conn;
        let st = &conn.st;
        let tx = begin(&mut conn.client, "starting an append").await?;
        // Pipelined; the lookup's snapshot is taken after the stream row lock.
        let name = stream.as_str();
        let (lock_params, lookup_params): ([&Param<'_>; 1], [&Param<'_>; 1]) = ([&name], [&ids]);
        let (row, found) =
            tokio::try_join!(tx.query_one(&st.lock_stream, &lock_params), tx.query(&st.lookup_ids, &lookup_params))
                .map_err(|e| db("locking the stream", &e))?;
        let state = stream_state(&row)?;
        let stored = stored_ids(&found)?;
        let stored: Vec<Option<StoredId>> = ids.iter().map(|id| stored.get(id).cloned()).collect();
        if let Some(done) = rules::already_appended(stream, events, &stored, self.max_event_bytes)? {
            return Ok(done); // dropping `tx` rolls back: nothing was written
        }
        rules::check_expected(stream, state, expected)?;
        let prepared = rules::prepare(stream, events, state.version + 1, self.max_event_bytes)?;
        // Gap safety (module docs): lock, then read the head in a new snapshot.
        let key: [&Param<'_>; 1] = [&self.names.append_lock];
        let (_, head) = tokio::try_join!(tx.execute(&st.append_lock, &key), tx.query_one(&st.head, &[]))
            .map_err(|e| db("locking the global log", &e))?;
        let (n, head) = (prepared.len() as u64, to_u64(get(&head, 0)?, "head")?);
        let result = AppendResult {
            first_version: state.version + 1,
            last_version: state.version + n,
            first_position: head + 1,
            last_position: head + n,
        };
        let bodies: Vec<&[u8]> = prepared.iter().map(|(_, b)| b.as_slice()).collect();
        let inserted = tx
            .execute(
                &st.insert,
                &[
                    &to_i64(result.first_position)?,
                    &stream.as_str(),
                    &to_i64(result.first_version)?,
                    &ids,
                    &bodies,
                    &to_i64(result.last_version)?,
                    &self.names.channel,
                    &result.last_position.to_string(),
                ],
            )
            .await;
        match inserted {
            Err(e) if violates(&e, sql::EVENT_ID_UNIQUE) => return Err(Failed::IdTaken),
            Err(e) if violates(&e, sql::STREAM_VERSION_UNIQUE) => return Err(Failed::VersionTaken),
            Err(e) => return Err(db("inserting events", &e).into()),
            Ok(_) => {}
        }
        tx.commit().await.map_err(|e| db("committing an append", &e))?;
        Ok(result)
    }

    /// Up to `max` events of the global log from `from`, the payload in the form `D`.
    async fn read_log<D: serde::de::DeserializeOwned>(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent<D>>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .client
            .query(&conn.st.read_all, &[&clamp(from), &clamp(max as u64)])
            .await
            .map_err(|e| db("reading the global log", &e))?;
        rows.iter()
            .map(|r| {
                let stream = stream_id(get(r, 1)?)?;
                recorded(stream, to_u64(get(r, 0)?, "position")?, get(r, 2)?, get(r, 3)?, get(r, 4)?)
            })
            .collect()
    }

    async fn conflict(&self, stream: &StreamId, expected: ExpectedVersion) -> Error {
        match self.stream_version(stream).await {
            Err(e) => e,
            Ok(v) => Error::Conflict {
                stream: stream.to_string(),
                expected: expected.to_string(),
                actual: if v == 0 { "no stream".to_owned() } else { format!("version {v}") },
                actual_version: Some(v),
            },
        }
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: &[Envelope]) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::EmptyAppend { stream: stream.to_string() });
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let mut attempt = 1;
        loop {
            let mut conn = self.pool.get().await?;
            match self.try_append(&mut conn, stream, expected, events, &ids).await {
                Ok(result) => {
                    drop(conn);
                    self.head.advance(result.last_position);
                    return Ok(result);
                }
                Err(Failed::IdTaken) if attempt < ID_RACE_ATTEMPTS => attempt += 1,
                Err(Failed::IdTaken) => return Err(Error::IdempotencyConflict { id: ids[0] }),
                Err(Failed::VersionTaken) => {
                    drop(conn);
                    return Err(self.conflict(stream, expected).await);
                }
                Err(Failed::Other(e)) => return Err(e),
            }
        }
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        let conn = self.pool.get().await?;
        let (name, from, max) = (stream.as_str(), clamp(from), clamp(max as u64));
        let (state_params, read_params): ([&Param<'_>; 1], [&Param<'_>; 3]) = ([&name], [&name, &from, &max]);
        let (state, rows) = tokio::try_join!(
            conn.client.query_opt(&conn.st.stream_state, &state_params),
            conn.client.query(&conn.st.read_stream, &read_params),
        )
        .map_err(|e| db("reading a stream", &e))?;
        if state.as_ref().map(stream_state).transpose()?.is_some_and(|s| s.deleted) {
            return Err(Error::StreamDeleted(stream.to_string()));
        }
        rows.iter()
            .map(|r| recorded(stream.clone(), to_u64(get(r, 0)?, "position")?, get(r, 1)?, get(r, 2)?, get(r, 3)?))
            .collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(&conn.st.stream_state, &[&stream.as_str()])
            .await
            .map_err(|e| db("reading a stream version", &e))?;
        Ok(row.as_ref().map(stream_state).transpose()?.unwrap_or_default().version)
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.read_log(from, max).await
    }

    async fn read_all_text(&self, from: u64, max: usize) -> Result<Vec<RecordedText>> {
        self.read_log(from, max).await
    }

    async fn head_position(&self) -> Result<u64> {
        let conn = self.pool.get().await?;
        let row = conn.client.query_one(&conn.st.head, &[]).await.map_err(|e| db("reading the head", &e))?;
        let head = to_u64(get(&row, 0)?, "head")?;
        self.head.advance(head);
        Ok(head)
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64> {
        // Exact on entry; then notifications (or the fallback poll) wake us.
        let head = self.head_position().await?;
        if head >= position {
            return Ok(head);
        }
        Ok(self.head.wait_for(position, timeout).await)
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let conn = &mut *conn;
        let tx = begin(&mut conn.client, "starting a delete").await?;
        let row =
            tx.query_one(&conn.st.lock_stream, &[&stream.as_str()]).await.map_err(|e| db("locking the stream", &e))?;
        rules::check_expected(stream, stream_state(&row)?, expected)?;
        tx.execute(&conn.st.mark_deleted, &[&stream.as_str()]).await.map_err(|e| db("deleting a stream", &e))?;
        tx.commit().await.map_err(|e| db("committing a delete", &e))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let state = serde_json::to_string(&snapshot.state).map_err(|e| Error::Codec(e.to_string()))?;
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &conn.st.save_snapshot,
                &[
                    &snapshot.stream.as_str(),
                    &snapshot.aggregate_type,
                    &i64::from(snapshot.schema_version),
                    &to_i64(snapshot.version)?,
                    &state,
                    &snapshot.taken_at,
                ],
            )
            .await
            .map_err(|e| db("saving a snapshot", &e))?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(&conn.st.load_snapshot, &[&stream.as_str()])
            .await
            .map_err(|e| db("loading a snapshot", &e))?;
        let Some(row) = row else { return Ok(None) };
        let schema_version: i64 = get(&row, 1)?;
        let state: String = get(&row, 3)?;
        Ok(Some(Snapshot {
            stream: stream.clone(),
            aggregate_type: get(&row, 0)?,
            schema_version: u32::try_from(schema_version).map_err(|_| corrupt("snapshot schema version"))?,
            version: to_u64(get(&row, 2)?, "snapshot version")?,
            state: serde_json::from_str(&state).map_err(|e| Error::Codec(format!("stored snapshot state: {e}")))?,
            taken_at: get(&row, 4)?,
        }))
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(&conn.st.load_checkpoint, &[&name])
            .await
            .map_err(|e| db("loading a checkpoint", &e))?;
        row.map(|r| to_u64(get(&r, 0)?, "checkpoint")).transpose()
    }

    async fn save_checkpoint(&self, name: &str, next_position: u64) -> Result<()> {
        let position = to_i64(next_position)?;
        let conn = self.pool.get().await?;
        conn.client
            .execute(&conn.st.save_checkpoint, &[&name, &position])
            .await
            .map_err(|e| db("saving a checkpoint", &e))?;
        Ok(())
    }
}

/// Whether `schema` is a schema name every PostgreSQL adapter of the
/// workspace accepts: `[a-z_][a-z0-9_]*`, at most `max_len` bytes, not
/// `pg_*`, so it never needs quoting rules or case folding.
pub fn is_schema_name(schema: &str, max_len: usize) -> bool {
    let first_ok = schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let rest_ok = schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    first_ok && rest_ok && schema.len() <= max_len && !schema.starts_with("pg_")
}
