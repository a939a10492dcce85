//! The PostgreSQL read model: two tables in a schema of the deployment's
//! choosing (`order_summaries`, indexed by customer, and
//! `projection_checkpoints`), created by [`PostgresReadModel::connect`] if
//! missing. The names do not collide with the event store's tables, so the
//! orders schema can hold both.
//!
//! A batch is one READ COMMITTED transaction that first locks the
//! checkpoint row (`SELECT ... FOR UPDATE`), decides from the checkpoint it
//! sees which part of the batch is new (the rules every adapter shares),
//! upserts the changed rows and moves the checkpoint, then commits. A
//! second projector on the same schema (another process) queues on that
//! row lock and, once the first commits, sees the moved checkpoint and the
//! new rows (READ COMMITTED reads the latest committed row version after a
//! lock wait, and each later statement takes a fresh snapshot), so it skips
//! what the first applied. A crash or a lost connection before the commit
//! rolls the whole batch back; when a commit's outcome is unknown, applying
//! the same batch again is safe.
//!
//! Money is stored as `numeric` (written and read as decimal text, never a
//! float) beside its currency; `updated_at` keeps PostgreSQL's microseconds,
//! the envelope's own precision. Order and customer ids are `COLLATE "C"`,
//! so `by_customer` comes back in byte order, as in the other adapters.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::{Currency, Money};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row, Statement};

use super::projection::{evolve, order_id, unapplied};
use super::{OrderSummary, ReadModel};
use crate::{Error, OrderStatus, Result};

/// A statement parameter.
type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// The checkpoint row of this projection in `projection_checkpoints`.
const PROJECTION: &str = "orders_by_customer";
/// PostgreSQL's identifier limit.
const MAX_SCHEMA_LEN: usize = 63;
/// Every status, to read a stored one back.
const STATUSES: [OrderStatus; 6] = [
    OrderStatus::Pending,
    OrderStatus::Confirmed,
    OrderStatus::Paid,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
    OrderStatus::Cancelled,
];

/// The orders read model in a PostgreSQL schema.
///
/// It holds two connections: batches run on one (one transaction at a
/// time), queries on the other (pipelined, never waiting behind a batch).
/// A connection found closed is reopened on its next use.
#[derive(Debug)]
pub struct PostgresReadModel {
    schema: String,
    writer: Link,
    reader: Link,
}

impl PostgresReadModel {
    /// Connects, creates `schema` and its tables if missing (safe to run
    /// from several processes at once) and prepares the statements.
    ///
    /// `schema` must be a lowercase identifier (`[a-z_][a-z0-9_]*`, at most
    /// 63 bytes, not `pg_*`), so it never needs quoting rules or case
    /// folding; anything else is [`Error::InvalidSchema`].
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        let first = open(url).await?;
        first.batch_execute(&migration(schema)).await?;
        let writer = Conn::prepare(first, schema).await?;
        let reader = Conn::open(url, schema).await?;
        Ok(Self {
            schema: schema.to_owned(),
            writer: Link::new(url, schema, writer),
            reader: Link::new(url, schema, reader),
        })
    }

    /// The schema this read model owns.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema with everything in it, the event store's tables
    /// too if they share it (test and benchmark cleanup). Drop the read
    /// model afterwards: every later call fails.
    pub async fn drop_schema(&self) -> Result<()> {
        let conn = self.writer.exclusive().await?;
        conn.client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema)).await?;
        Ok(())
    }
}

#[async_trait]
impl ReadModel for PostgresReadModel {
    async fn apply(&self, batch: &[RecordedEvent], next_position: u64) -> Result<()> {
        let mut ids: Vec<&str> = batch.iter().filter_map(order_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut conn = self.writer.exclusive().await?;
        let Conn { client, st } = &mut *conn;
        let tx = client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await?;
        // Pipelined: the server runs them in order, so the rows are read in
        // a snapshot taken after the checkpoint lock was granted.
        let (lock_params, rows_params): ([&Param<'_>; 1], [&Param<'_>; 1]) = ([&PROJECTION], [&ids]);
        let (checkpoint, stored) =
            tokio::try_join!(tx.query_one(&st.lock_checkpoint, &lock_params), tx.query(&st.rows_of, &rows_params))?;
        let new = unapplied(position(&checkpoint)?, batch, next_position)?;
        if new.is_empty() {
            return Ok(()); // dropping `tx` rolls back and releases the lock
        }
        let mut stored: HashMap<String, OrderSummary> =
            stored.iter().map(summary).map(|r| r.map(|s| (s.order_id.clone(), s))).collect::<Result<_>>()?;
        let mut changed: HashMap<String, OrderSummary> = HashMap::new();
        for event in new {
            let Some(id) = order_id(event) else { continue };
            let current = changed.remove(id).or_else(|| stored.remove(id));
            changed.insert(id.to_owned(), evolve(current, id, event)?);
        }
        let columns = Columns::of(changed.values());
        let next = i64::try_from(next_position).map_err(|_| Error::InvalidValue {
            column: "next_position",
            key: PROJECTION.into(),
            value: next_position.to_string(),
        })?;
        let upsert = async {
            if columns.order_id.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &st.upsert,
                &[
                    &columns.order_id,
                    &columns.customer_id,
                    &columns.status,
                    &columns.total,
                    &columns.currency,
                    &columns.item_count,
                    &columns.updated_at,
                ],
            )
            .await
        };
        let checkpoint_params: [&Param<'_>; 2] = [&PROJECTION, &next];
        tokio::try_join!(upsert, tx.execute(&st.set_checkpoint, &checkpoint_params))?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        let conn = self.reader.shared().await?;
        position(&conn.client.query_one(&conn.st.checkpoint, &[&PROJECTION]).await?)
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        let conn = self.reader.shared().await?;
        conn.client.query(&conn.st.by_customer, &[&customer_id]).await?.iter().map(summary).collect()
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        let conn = self.reader.shared().await?;
        conn.client.query_opt(&conn.st.get, &[&order_id]).await?.as_ref().map(summary).transpose()
    }
}

/// Accepts `[a-z_][a-z0-9_]*`, at most 63 bytes, not `pg_*`.
fn check_schema(schema: &str) -> Result<()> {
    if event_store::postgres::is_schema_name(schema, MAX_SCHEMA_LEN) {
        Ok(())
    } else {
        Err(Error::InvalidSchema(schema.to_owned()))
    }
}

/// Creates the schema, the tables and the checkpoint row if missing. The
/// advisory lock (keyed by the schema, hashed by the server) keeps
/// concurrent `connect`s from racing on the catalog.
fn migration(s: &str) -> String {
    format!(
        r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('orders read model migration {s}', 0));
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".order_summaries (
    order_id    text COLLATE "C" NOT NULL PRIMARY KEY,
    customer_id text COLLATE "C" NOT NULL,
    status      text        NOT NULL,
    total       numeric     NOT NULL,
    currency    text        NOT NULL,
    item_count  bigint      NOT NULL CHECK (item_count BETWEEN 0 AND 4294967295),
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS order_summaries_by_customer ON "{s}".order_summaries (customer_id, order_id);
CREATE TABLE IF NOT EXISTS "{s}".projection_checkpoints (
    name          text   NOT NULL PRIMARY KEY,
    next_position bigint NOT NULL CHECK (next_position >= 1)
);
INSERT INTO "{s}".projection_checkpoints (name, next_position) VALUES ('{PROJECTION}', 1)
    ON CONFLICT (name) DO NOTHING;
COMMIT;
"#
    )
}

/// Opens a connection and drives it on its own task until the client drops.
async fn open(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(error = %error, "read-model PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// An open connection and its prepared statements.
#[derive(Debug)]
struct Conn {
    client: Client,
    st: Statements,
}

#[derive(Debug)]
struct Statements {
    lock_checkpoint: Statement,
    checkpoint: Statement,
    set_checkpoint: Statement,
    rows_of: Statement,
    upsert: Statement,
    by_customer: Statement,
    get: Statement,
}

/// The columns of a row, in `summary`'s order.
const COLUMNS: &str = "order_id, customer_id, status, total::text, currency, item_count, updated_at";

impl Conn {
    async fn open(url: &str, schema: &str) -> Result<Self> {
        Self::prepare(open(url).await?, schema).await
    }

    async fn prepare(client: Client, s: &str) -> Result<Self> {
        let p = |sql: String, types: &'static [Type]| {
            let client = &client;
            async move { client.prepare_typed(&sql, types).await }
        };
        let (lock_checkpoint, checkpoint, set_checkpoint, rows_of, upsert, by_customer, get) = tokio::try_join!(
            p(
                format!(r#"SELECT next_position FROM "{s}".projection_checkpoints WHERE name = $1 FOR UPDATE"#),
                &[Type::TEXT]
            ),
            p(format!(r#"SELECT next_position FROM "{s}".projection_checkpoints WHERE name = $1"#), &[Type::TEXT]),
            p(
                format!(r#"UPDATE "{s}".projection_checkpoints SET next_position = $2 WHERE name = $1"#),
                &[Type::TEXT, Type::INT8]
            ),
            p(format!(r#"SELECT {COLUMNS} FROM "{s}".order_summaries WHERE order_id = ANY($1)"#), &[Type::TEXT_ARRAY]),
            p(
                format!(
                    r#"INSERT INTO "{s}".order_summaries
                         (order_id, customer_id, status, total, currency, item_count, updated_at)
                       SELECT u.order_id, u.customer_id, u.status, u.total::numeric, u.currency, u.item_count, u.updated_at
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[])
                         AS u(order_id, customer_id, status, total, currency, item_count, updated_at)
                       ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id,
                         status = excluded.status, total = excluded.total, currency = excluded.currency,
                         item_count = excluded.item_count, updated_at = excluded.updated_at"#
                ),
                &[
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::INT8_ARRAY,
                    Type::TIMESTAMPTZ_ARRAY
                ]
            ),
            p(
                format!(r#"SELECT {COLUMNS} FROM "{s}".order_summaries WHERE customer_id = $1 ORDER BY order_id"#),
                &[Type::TEXT]
            ),
            p(format!(r#"SELECT {COLUMNS} FROM "{s}".order_summaries WHERE order_id = $1"#), &[Type::TEXT]),
        )?;
        let st = Statements { lock_checkpoint, checkpoint, set_checkpoint, rows_of, upsert, by_customer, get };
        Ok(Self { client, st })
    }
}

/// One connection, reopened (with its statements) when found closed.
#[derive(Debug)]
struct Link {
    url: String,
    schema: String,
    conn: RwLock<Conn>,
}

impl Link {
    fn new(url: &str, schema: &str, conn: Conn) -> Self {
        Self { url: url.to_owned(), schema: schema.to_owned(), conn: RwLock::new(conn) }
    }

    /// The connection for one caller alone (a transaction needs `&mut`).
    async fn exclusive(&self) -> Result<RwLockWriteGuard<'_, Conn>> {
        let mut conn = self.conn.write().await;
        if conn.client.is_closed() {
            tracing::info!(schema = %self.schema, "reopening a closed read-model connection");
            *conn = Conn::open(&self.url, &self.schema).await?;
        }
        Ok(conn)
    }

    /// The connection shared by concurrent queries.
    async fn shared(&self) -> Result<RwLockReadGuard<'_, Conn>> {
        {
            let conn = self.conn.read().await;
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        Ok(self.exclusive().await?.downgrade())
    }
}

/// Changed rows as one array per column, for `unnest`.
#[derive(Default)]
struct Columns<'a> {
    order_id: Vec<&'a str>,
    customer_id: Vec<&'a str>,
    status: Vec<&'static str>,
    total: Vec<String>,
    currency: Vec<&'a str>,
    item_count: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn of(rows: impl Iterator<Item = &'a OrderSummary>) -> Self {
        let mut c = Self::default();
        for row in rows {
            c.order_id.push(&row.order_id);
            c.customer_id.push(&row.customer_id);
            c.status.push(row.status.as_str());
            // `Decimal`'s text has every digit and its scale, never an exponent.
            c.total.push(row.total.amount.to_string());
            c.currency.push(row.total.currency.as_str());
            c.item_count.push(i64::from(row.item_count));
            c.updated_at.push(row.updated_at);
        }
        c
    }
}

fn position(row: &Row) -> Result<u64> {
    let v: i64 = row.try_get(0)?;
    u64::try_from(v).map_err(|_| Error::InvalidValue {
        column: "next_position",
        key: PROJECTION.into(),
        value: v.to_string(),
    })
}

/// A stored row back as a summary (columns as in [`COLUMNS`]).
fn summary(row: &Row) -> Result<OrderSummary> {
    let order_id: String = row.try_get(0)?;
    let bad =
        |column, value: &dyn ToString| Error::InvalidValue { column, key: order_id.clone(), value: value.to_string() };
    let status: &str = row.try_get(2)?;
    let status = STATUSES.into_iter().find(|s| s.as_str() == status).ok_or_else(|| bad("status", &status))?;
    let total: &str = row.try_get(3)?;
    let amount = Decimal::from_str(total).map_err(|_| bad("total", &total))?;
    let currency: &str = row.try_get(4)?;
    let currency = Currency::from_str(currency).map_err(|_| bad("currency", &currency))?;
    let item_count: i64 = row.try_get(5)?;
    let item_count = u32::try_from(item_count).map_err(|_| bad("item_count", &item_count))?;
    Ok(OrderSummary {
        customer_id: row.try_get(1)?,
        status,
        total: Money::new(amount, currency),
        item_count,
        updated_at: row.try_get(6)?,
        order_id,
    })
}
