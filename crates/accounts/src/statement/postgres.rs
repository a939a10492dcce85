//! The PostgreSQL statements: `statement_headers`, `statement_lines` and
//! `projection_checkpoints` in a schema of the deployment's choosing,
//! created by [`PostgresStatements::connect`] if missing.
//!
//! A batch is one READ COMMITTED transaction that first locks the
//! checkpoint row (`SELECT ... FOR UPDATE`), decides from the checkpoint it
//! sees which part of the batch is new, inserts the lines, upserts the
//! headers and moves the checkpoint, then commits. A second projector on
//! the same schema queues on that row lock and then sees the moved
//! checkpoint, so it skips what the first applied; a crash before the
//! commit rolls the whole batch back.
//!
//! Generations ([`PostgresStatementGenerations`]): generation 0 is the
//! tables in the schema itself, a later one the schema `<schema>_g<N>`, and
//! the row of `<schema>.read_model_generations` names the one that serves.
//!
//! Money is `numeric`, written and read as decimal text, never a float;
//! times keep PostgreSQL's microseconds, the envelope's own precision.

use std::collections::HashMap;
use std::str::FromStr;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_store::RecordedText;
use event_store::generations::Generations;
use event_store::projection_rules::unapplied;
use rust_decimal::Decimal;
use tokio::sync::Mutex;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row};

use super::fold::{account_id, evolve};
use super::{LinePage, Statement, StatementHeader, StatementLine, StatementReadModel};
use crate::{AccountStatus, Error, Result};

/// The checkpoint row of this projection.
const PROJECTION: &str = "accounts_statement";
/// PostgreSQL's identifier limit.
const MAX_SCHEMA_LEN: usize = 63;
const STATUSES: [AccountStatus; 4] =
    [AccountStatus::NotOpened, AccountStatus::Active, AccountStatus::Frozen, AccountStatus::Closed];
const HEADER_COLUMNS: &str = "account_id, holder, currency, status, balance::text, version, first_at, updated_at";
const LINE_COLUMNS: &str = "version, position, at, event, change::text, balance::text, detail";

/// The statements in a PostgreSQL schema. Batches run on one connection,
/// queries on another, so a query never waits behind a batch; a connection
/// found closed is reopened on its next use.
#[derive(Debug)]
pub struct PostgresStatements {
    url: String,
    schema: String,
    writer: Mutex<Client>,
    reader: Mutex<Client>,
}

impl PostgresStatements {
    /// Connects and creates `schema` and its tables if missing (safe from
    /// several processes at once). `schema` must be `[a-z_][a-z0-9_]*`, at
    /// most 63 bytes, not `pg_*` ([`Error::InvalidSchema`] otherwise).
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        if !event_store::postgres::is_schema_name(schema, MAX_SCHEMA_LEN) {
            return Err(Error::InvalidSchema(schema.to_owned()));
        }
        let writer = open(url).await?;
        writer.batch_execute(&migration(schema)).await?;
        let reader = open(url).await?;
        Ok(Self {
            url: url.to_owned(),
            schema: schema.to_owned(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema with everything in it (test cleanup); every later
    /// call fails.
    pub async fn drop_schema(&self) -> Result<()> {
        let client = self.link(&self.writer).await?;
        client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema)).await?;
        Ok(())
    }

    /// The connection behind `slot`, reopened if it was closed.
    async fn link<'a>(&self, slot: &'a Mutex<Client>) -> Result<tokio::sync::MutexGuard<'a, Client>> {
        let mut client = slot.lock().await;
        if client.is_closed() {
            *client = open(&self.url).await?;
        }
        Ok(client)
    }
}

fn migration(s: &str) -> String {
    format!(
        r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('accounts statements migration {s}', 0));
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".projection_checkpoints (
    name          text   NOT NULL PRIMARY KEY,
    next_position bigint NOT NULL CHECK (next_position >= 1)
);
CREATE TABLE IF NOT EXISTS "{s}".statement_headers (
    account_id text COLLATE "C" NOT NULL PRIMARY KEY,
    holder     text        NOT NULL,
    currency   text,
    status     text        NOT NULL,
    balance    numeric     NOT NULL,
    version    bigint      NOT NULL,
    first_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS "{s}".statement_lines (
    account_id text COLLATE "C" NOT NULL,
    version    bigint      NOT NULL,
    position   bigint      NOT NULL,
    at         timestamptz NOT NULL,
    event      text        NOT NULL,
    change     numeric,
    balance    numeric     NOT NULL,
    detail     text        NOT NULL,
    PRIMARY KEY (account_id, version)
);
INSERT INTO "{s}".projection_checkpoints (name, next_position) VALUES ('{PROJECTION}', 1)
    ON CONFLICT (name) DO NOTHING;
COMMIT;
"#
    )
}

/// Digits a generation number may add to a schema name (`_g` and up to 8).
const GENERATION_SUFFIX_LEN: usize = 10;

/// The generations of the statements under one schema: see the module
/// doc. Each call opens a connection of its own (they are rare: open,
/// rebuild).
#[derive(Debug, Clone)]
pub struct PostgresStatementGenerations {
    url: String,
    schema: String,
}

impl PostgresStatementGenerations {
    /// Checks the schema name (at most 53 bytes, so a generation's schema
    /// fits PostgreSQL's limit) and creates the schema and its table of
    /// generations if missing.
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        if !event_store::postgres::is_schema_name(schema, MAX_SCHEMA_LEN - GENERATION_SUFFIX_LEN) {
            return Err(Error::InvalidSchema(schema.to_owned()));
        }
        let s = schema;
        open(url)
            .await?
            .batch_execute(&format!(
                r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('accounts statements migration {s}', 0));
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".read_model_generations (
    name   text   NOT NULL PRIMARY KEY,
    active bigint NOT NULL CHECK (active >= 0)
);
INSERT INTO "{s}".read_model_generations (name, active) VALUES ('{PROJECTION}', 0)
    ON CONFLICT (name) DO NOTHING;
COMMIT;
"#
            ))
            .await?;
        Ok(Self { url: url.to_owned(), schema: schema.to_owned() })
    }

    /// The schema of `generation`.
    pub fn schema_of(&self, generation: u64) -> String {
        match generation {
            0 => self.schema.clone(),
            n => format!("{}_g{n}", self.schema),
        }
    }

    /// Drops every generation and the table naming the active one (test
    /// cleanup).
    pub async fn drop_all(&self) -> Result<()> {
        let active = self.active().await?;
        for generation in [active + 1, active] {
            self.remove(generation).await?;
        }
        open(&self.url).await?.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema)).await?;
        Ok(())
    }
}

#[async_trait]
impl Generations for PostgresStatementGenerations {
    type Model = dyn StatementReadModel;
    type Error = Error;

    async fn active(&self) -> Result<u64> {
        let sql = format!(r#"SELECT active FROM "{}".read_model_generations WHERE name = $1"#, self.schema);
        let v: i64 = open(&self.url).await?.query_one(&sql, &[&PROJECTION]).await?.try_get(0)?;
        to_u64("active", PROJECTION, v)
    }

    async fn open(&self, generation: u64, _fresh: bool) -> Result<Arc<dyn StatementReadModel>> {
        Ok(Arc::new(PostgresStatements::connect(&self.url, &self.schema_of(generation)).await?))
    }

    async fn activate(&self, generation: u64) -> Result<()> {
        let sql = format!(r#"UPDATE "{}".read_model_generations SET active = $2 WHERE name = $1"#, self.schema);
        let v = to_i64("active", PROJECTION, generation)?;
        open(&self.url).await?.execute(&sql, &[&PROJECTION, &v]).await?;
        Ok(())
    }

    async fn remove(&self, generation: u64) -> Result<()> {
        let s = &self.schema;
        // Generation 0 shares its schema with the table of generations.
        let sql = match generation {
            0 => format!(
                r#"BEGIN;
DROP TABLE IF EXISTS "{s}".statement_lines;
DROP TABLE IF EXISTS "{s}".statement_headers;
DROP TABLE IF EXISTS "{s}".projection_checkpoints;
COMMIT;"#
            ),
            n => format!(r#"DROP SCHEMA IF EXISTS "{s}_g{n}" CASCADE"#),
        };
        open(&self.url).await?.batch_execute(&sql).await?;
        Ok(())
    }
}

/// Opens a connection and drives it on its own task until the client drops.
async fn open(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(error = %error, "statements PostgreSQL connection ended");
        }
    });
    Ok(client)
}

fn to_i64(column: &'static str, key: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidValue { column, key: key.to_owned(), value: v.to_string() })
}

fn to_u64(column: &'static str, key: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::InvalidValue { column, key: key.to_owned(), value: v.to_string() })
}

fn decimal(column: &'static str, key: &str, text: &str) -> Result<Decimal> {
    Decimal::from_str(text).map_err(|_| Error::InvalidValue { column, key: key.to_owned(), value: text.to_owned() })
}

fn header(row: &Row) -> Result<StatementHeader> {
    let account_id: String = row.try_get(0)?;
    let currency: Option<String> = row.try_get(2)?;
    let currency = match currency {
        Some(c) => Some(c.parse().map_err(|_| Error::InvalidValue {
            column: "currency",
            key: account_id.clone(),
            value: c.clone(),
        })?),
        None => None,
    };
    let status: String = row.try_get(3)?;
    let status = STATUSES.into_iter().find(|s| s.as_str() == status).ok_or_else(|| Error::InvalidValue {
        column: "status",
        key: account_id.clone(),
        value: status.clone(),
    })?;
    let balance: String = row.try_get(4)?;
    Ok(StatementHeader {
        holder: row.try_get(1)?,
        currency,
        status,
        balance: decimal("balance", &account_id, &balance)?,
        version: to_u64("version", &account_id, row.try_get(5)?)?,
        first_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        account_id,
    })
}

fn line(account_id: &str, row: &Row) -> Result<StatementLine> {
    let change: Option<String> = row.try_get(4)?;
    let balance: String = row.try_get(5)?;
    Ok(StatementLine {
        version: to_u64("version", account_id, row.try_get(0)?)?,
        position: to_u64("position", account_id, row.try_get(1)?)?,
        at: row.try_get(2)?,
        event: row.try_get(3)?,
        change: change.map(|c| decimal("change", account_id, &c)).transpose()?,
        balance: decimal("balance", account_id, &balance)?,
        detail: row.try_get(6)?,
    })
}

/// New lines as columns, for one `INSERT ... SELECT FROM UNNEST`.
#[derive(Default)]
struct LineColumns {
    account_id: Vec<String>,
    version: Vec<i64>,
    position: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    event: Vec<String>,
    change: Vec<Option<String>>,
    balance: Vec<String>,
    detail: Vec<String>,
}

impl LineColumns {
    fn push(&mut self, account_id: &str, l: StatementLine) -> Result<()> {
        self.version.push(to_i64("version", account_id, l.version)?);
        self.position.push(to_i64("position", account_id, l.position)?);
        self.account_id.push(account_id.to_owned());
        self.at.push(l.at);
        self.event.push(l.event);
        self.change.push(l.change.map(|c| c.to_string()));
        self.balance.push(l.balance.to_string());
        self.detail.push(l.detail);
        Ok(())
    }
}

#[async_trait]
impl StatementReadModel for PostgresStatements {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        let s = &self.schema;
        let mut ids: Vec<&str> = batch.iter().filter_map(account_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut client = self.link(&self.writer).await?;
        let tx = client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await?;
        let lock = format!(r#"SELECT next_position FROM "{s}".projection_checkpoints WHERE name = $1 FOR UPDATE"#);
        let checkpoint: i64 = tx.query_one(&lock, &[&PROJECTION]).await?.try_get(0)?;
        let new = unapplied(to_u64("next_position", PROJECTION, checkpoint)?, batch, next_position)?;
        if new.is_empty() {
            return Ok(()); // dropping `tx` rolls back and releases the lock
        }
        let read = format!(r#"SELECT {HEADER_COLUMNS} FROM "{s}".statement_headers WHERE account_id = ANY($1)"#);
        let mut stored: HashMap<String, StatementHeader> = HashMap::new();
        for row in tx.query(&read, &[&ids]).await? {
            let h = header(&row)?;
            stored.insert(h.account_id.clone(), h);
        }
        let mut changed: HashMap<&str, StatementHeader> = HashMap::new();
        let mut lines = LineColumns::default();
        for event in new {
            let Some(id) = account_id(event) else { continue };
            let current = changed.remove(id).or_else(|| stored.remove(id));
            let (h, l) = evolve(current, id, event)?;
            lines.push(id, l)?;
            changed.insert(id, h);
        }
        if !changed.is_empty() {
            let insert = format!(
                r#"INSERT INTO "{s}".statement_lines (account_id, version, position, at, event, change, balance, detail)
SELECT a, v, p, t, e, c::numeric, b::numeric, d
FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[])
    AS x(a, v, p, t, e, c, b, d)"#
            );
            tx.execute(
                &insert,
                &[
                    &lines.account_id,
                    &lines.version,
                    &lines.position,
                    &lines.at,
                    &lines.event,
                    &lines.change,
                    &lines.balance,
                    &lines.detail,
                ],
            )
            .await?;
            let changed: Vec<&StatementHeader> = changed.values().collect();
            upsert_headers(&tx, s, &changed).await?;
        }
        let set = format!(r#"UPDATE "{s}".projection_checkpoints SET next_position = $2 WHERE name = $1"#);
        tx.execute(&set, &[&PROJECTION, &to_i64("next_position", PROJECTION, next_position)?]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        let s = &self.schema;
        let client = self.link(&self.reader).await?;
        let sql = format!(r#"SELECT next_position FROM "{s}".projection_checkpoints WHERE name = $1"#);
        let v: i64 = client.query_one(&sql, &[&PROJECTION]).await?.try_get(0)?;
        to_u64("next_position", PROJECTION, v)
    }

    async fn statement(&self, account_id: &str, page: LinePage) -> Result<Option<Statement>> {
        let s = &self.schema;
        let client = self.link(&self.reader).await?;
        // One snapshot for the header and its lines, so they agree.
        let tx_sql = format!(r#"SELECT {HEADER_COLUMNS} FROM "{s}".statement_headers WHERE account_id = $1"#);
        let lines_sql = format!(
            r#"SELECT {LINE_COLUMNS} FROM "{s}".statement_lines
WHERE account_id = $1 AND version >= $2 AND version < $3 ORDER BY version"#
        );
        let (from, end) = (
            to_i64("version", account_id, page.from)?,
            to_i64("version", account_id, page.end().min(i64::MAX as u64))?,
        );
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let result = async {
            let Some(row) = client.query_opt(&tx_sql, &[&account_id]).await? else { return Ok(None) };
            let header = header(&row)?;
            let lines = client
                .query(&lines_sql, &[&account_id, &from, &end])
                .await?
                .iter()
                .map(|r| line(account_id, r))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(Statement { header, lines }))
        }
        .await;
        client.batch_execute("COMMIT").await?;
        result
    }
}

async fn upsert_headers(tx: &tokio_postgres::Transaction<'_>, s: &str, headers: &[&StatementHeader]) -> Result<()> {
    let mut account_id: Vec<&str> = Vec::with_capacity(headers.len());
    let mut holder: Vec<&str> = Vec::with_capacity(headers.len());
    let mut currency: Vec<Option<String>> = Vec::with_capacity(headers.len());
    let mut status: Vec<&str> = Vec::with_capacity(headers.len());
    let mut balance: Vec<String> = Vec::with_capacity(headers.len());
    let mut version: Vec<i64> = Vec::with_capacity(headers.len());
    let (mut first_at, mut updated_at): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = Default::default();
    for h in headers {
        account_id.push(&h.account_id);
        holder.push(&h.holder);
        currency.push(h.currency.map(|c| c.to_string()));
        status.push(h.status.as_str());
        balance.push(h.balance.to_string());
        version.push(to_i64("version", &h.account_id, h.version)?);
        first_at.push(h.first_at);
        updated_at.push(h.updated_at);
    }
    let sql = format!(
        r#"INSERT INTO "{s}".statement_headers (account_id, holder, currency, status, balance, version, first_at, updated_at)
SELECT a, h, c, st, b::numeric, v, f, u
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[], $8::timestamptz[])
    AS x(a, h, c, st, b, v, f, u)
ON CONFLICT (account_id) DO UPDATE SET holder = EXCLUDED.holder, currency = EXCLUDED.currency,
    status = EXCLUDED.status, balance = EXCLUDED.balance, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at"#
    );
    tx.execute(&sql, &[&account_id, &holder, &currency, &status, &balance, &version, &first_at, &updated_at]).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
