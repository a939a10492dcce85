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
//! Generations ([`PostgresGenerations`]): generation 0 is `order_summaries`
//! with the checkpoint row `orders_by_customer`, a later one
//! `order_summaries_g<N>` with `orders_by_customer_g<N>`, and the row of
//! `read_model_generations` names the one that serves. Removing a
//! generation drops its table and checkpoint row in one transaction.
//!
//! Money is stored as `numeric` (written and read as decimal text, never a
//! float) beside its currency; `updated_at` keeps PostgreSQL's microseconds,
//! the envelope's own precision. Order and customer ids are `COLLATE "C"`,
//! so `by_customer` comes back in byte order, as in the other adapters.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::{Currency, Money};
use event_store::RecordedText;
use event_store::projection_rules::unapplied;
use rust_decimal::Decimal;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row, Statement};

use chrono::NaiveDate;

use super::projection::{Days, decode_batch, order_id};
use super::{DailyOrders, Generations, OrderSummary, ReadModel};
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
    names: Names,
    writer: Link,
    reader: Link,
}

/// The schema, table, index and checkpoint row of one generation.
#[derive(Debug, Clone)]
struct Names {
    schema: String,
    table: String,
    index: String,
    daily: String,
    checkpoint: String,
}

impl Names {
    fn of(schema: &str, generation: u64) -> Self {
        let suffix = match generation {
            0 => String::new(),
            n => format!("_g{n}"),
        };
        Self {
            schema: schema.to_owned(),
            table: format!("order_summaries{suffix}"),
            index: format!("order_summaries{suffix}_by_customer"),
            daily: format!("daily_orders{suffix}"),
            checkpoint: format!("{PROJECTION}{suffix}"),
        }
    }
}

impl PostgresReadModel {
    /// Connects, creates `schema` and its tables if missing (safe to run
    /// from several processes at once) and prepares the statements.
    ///
    /// `schema` must be a lowercase identifier (`[a-z_][a-z0-9_]*`, at most
    /// 63 bytes, not `pg_*`), so it never needs quoting rules or case
    /// folding; anything else is [`Error::InvalidSchema`].
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        Self::connect_generation(url, schema, 0).await
    }

    /// [`PostgresReadModel::connect`] to the tables of `generation` (see
    /// [`PostgresGenerations`]).
    pub async fn connect_generation(url: &str, schema: &str, generation: u64) -> Result<Self> {
        check_schema(schema)?;
        let names = Names::of(schema, generation);
        let first = open(url).await?;
        first.batch_execute(&migration(&names)).await?;
        let writer = Conn::prepare(first, &names).await?;
        let reader = Conn::open(url, &names).await?;
        Ok(Self { writer: Link::new(url, &names, writer), reader: Link::new(url, &names, reader), names })
    }

    /// The schema this read model owns.
    pub fn schema(&self) -> &str {
        &self.names.schema
    }

    /// Drops the schema with everything in it, the event store's tables
    /// too if they share it (test and benchmark cleanup). Drop the read
    /// model afterwards: every later call fails.
    pub async fn drop_schema(&self) -> Result<()> {
        let conn = self.writer.exclusive().await?;
        conn.client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.names.schema)).await?;
        Ok(())
    }
}

#[async_trait]
impl ReadModel for PostgresReadModel {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        let mut ids: Vec<&str> = batch.iter().filter_map(order_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut conn = self.writer.exclusive().await?;
        let Conn { client, st } = &mut *conn;
        let tx = client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await?;
        // Pipelined: the server runs them in order, so the rows are read in
        // a snapshot taken after the checkpoint lock was granted.
        let name = self.names.checkpoint.as_str();
        let (lock_params, rows_params): ([&Param<'_>; 1], [&Param<'_>; 1]) = ([&name], [&ids]);
        let (checkpoint, stored) =
            tokio::try_join!(tx.query_one(&st.lock_checkpoint, &lock_params), tx.query(&st.rows_of, &rows_params))?;
        let new = unapplied(position(&checkpoint)?, batch, next_position)?;
        if new.is_empty() {
            return Ok(()); // dropping `tx` rolls back and releases the lock
        }
        let mut stored: HashMap<String, OrderSummary> =
            stored.iter().map(summary).map(|r| r.map(|s| (s.order_id.clone(), s))).collect::<Result<_>>()?;
        let mut changed: HashMap<String, OrderSummary> = HashMap::new();
        let mut days = Days::default();
        for change in decode_batch(new)? {
            let id = change.order_id;
            let current = changed.remove(id).or_else(|| stored.remove(id));
            changed.insert(id.to_owned(), days.evolve(current, change)?);
        }
        let columns = Columns::of(changed.values());
        let day_columns = DayColumns::of(days.into_deltas());
        let next = i64::try_from(next_position).map_err(|_| Error::InvalidValue {
            column: "next_position",
            key: name.into(),
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
        let checkpoint_params: [&Param<'_>; 2] = [&name, &next];
        let add_days = async {
            if day_columns.day.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &st.add_days,
                &[
                    &day_columns.day,
                    &day_columns.currency,
                    &day_columns.created,
                    &day_columns.paid,
                    &day_columns.cancelled,
                    &day_columns.paid_amount,
                ],
            )
            .await
        };
        tokio::try_join!(upsert, add_days, tx.execute(&st.set_checkpoint, &checkpoint_params))?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        let conn = self.reader.shared().await?;
        position(&conn.client.query_one(&conn.st.checkpoint, &[&self.names.checkpoint]).await?)
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        let conn = self.reader.shared().await?;
        conn.client.query(&conn.st.by_customer, &[&customer_id]).await?.iter().map(summary).collect()
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        let conn = self.reader.shared().await?;
        conn.client.query_opt(&conn.st.get, &[&order_id]).await?.as_ref().map(summary).transpose()
    }

    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        let conn = self.reader.shared().await?;
        conn.client.query(&conn.st.days, &[&from, &to]).await?.iter().map(day).collect()
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
fn migration(names: &Names) -> String {
    let Names { schema: s, table, index, daily, checkpoint } = names;
    let common = common_migration(s);
    format!(
        r#"
BEGIN;
{common}
CREATE TABLE IF NOT EXISTS "{s}".{table} (
    order_id    text COLLATE "C" NOT NULL PRIMARY KEY,
    customer_id text COLLATE "C" NOT NULL,
    status      text        NOT NULL,
    total       numeric     NOT NULL,
    currency    text        NOT NULL,
    item_count  bigint      NOT NULL CHECK (item_count BETWEEN 0 AND 4294967295),
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {index} ON "{s}".{table} (customer_id, order_id);
CREATE TABLE IF NOT EXISTS "{s}".{daily} (
    day         date    NOT NULL,
    currency    text    NOT NULL,
    created     bigint  NOT NULL,
    paid        bigint  NOT NULL,
    cancelled   bigint  NOT NULL,
    paid_amount numeric NOT NULL,
    PRIMARY KEY (day, currency)
);
INSERT INTO "{s}".projection_checkpoints (name, next_position) VALUES ('{checkpoint}', 1)
    ON CONFLICT (name) DO NOTHING;
COMMIT;
"#
    )
}

/// What every generation shares, run inside a migration's transaction: the
/// lock, the schema, the checkpoints and the generation pointer.
fn common_migration(s: &str) -> String {
    format!(
        r#"
SELECT pg_advisory_xact_lock(hashtextextended('orders read model migration {s}', 0));
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".projection_checkpoints (
    name          text   NOT NULL PRIMARY KEY,
    next_position bigint NOT NULL CHECK (next_position >= 1)
);
CREATE TABLE IF NOT EXISTS "{s}".read_model_generations (
    name   text   NOT NULL PRIMARY KEY,
    active bigint NOT NULL CHECK (active >= 0)
);
INSERT INTO "{s}".read_model_generations (name, active) VALUES ('{PROJECTION}', 0)
    ON CONFLICT (name) DO NOTHING;
"#
    )
}

/// The generations of the read model in one schema: see the module doc.
/// Each call opens a connection of its own (they are rare: open, rebuild).
#[derive(Debug, Clone)]
pub struct PostgresGenerations {
    url: String,
    schema: String,
}

impl PostgresGenerations {
    /// Checks the schema name and creates the schema's shared tables.
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        open(url).await?.batch_execute(&format!("BEGIN;{}COMMIT;", common_migration(schema))).await?;
        Ok(Self { url: url.to_owned(), schema: schema.to_owned() })
    }
}

#[async_trait]
impl Generations for PostgresGenerations {
    type Model = dyn ReadModel;
    type Error = crate::Error;

    async fn active(&self) -> Result<u64> {
        let s = &self.schema;
        let row = open(&self.url)
            .await?
            .query_one(&format!(r#"SELECT active FROM "{s}".read_model_generations WHERE name = $1"#), &[&PROJECTION])
            .await?;
        let v: i64 = row.try_get(0)?;
        u64::try_from(v).map_err(|_| Error::InvalidValue {
            column: "active",
            key: PROJECTION.into(),
            value: v.to_string(),
        })
    }

    async fn open(&self, generation: u64, _fresh: bool) -> Result<Arc<dyn ReadModel>> {
        Ok(Arc::new(PostgresReadModel::connect_generation(&self.url, &self.schema, generation).await?))
    }

    async fn activate(&self, generation: u64) -> Result<()> {
        let s = &self.schema;
        let v = i64::try_from(generation).map_err(|_| Error::InvalidValue {
            column: "active",
            key: PROJECTION.into(),
            value: generation.to_string(),
        })?;
        open(&self.url)
            .await?
            .execute(
                &format!(r#"UPDATE "{s}".read_model_generations SET active = $2 WHERE name = $1"#),
                &[&PROJECTION, &v],
            )
            .await?;
        Ok(())
    }

    async fn remove(&self, generation: u64) -> Result<()> {
        let Names { schema: s, table, daily, checkpoint, .. } = Names::of(&self.schema, generation);
        open(&self.url)
            .await?
            .batch_execute(&format!(
                r#"BEGIN;
DROP TABLE IF EXISTS "{s}".{table};
DROP TABLE IF EXISTS "{s}".{daily};
DELETE FROM "{s}".projection_checkpoints WHERE name = '{checkpoint}';
COMMIT;"#
            ))
            .await?;
        Ok(())
    }
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
    add_days: Statement,
    days: Statement,
}

/// The columns of a row, in `summary`'s order.
const COLUMNS: &str = "order_id, customer_id, status, total::text, currency, item_count, updated_at";

impl Conn {
    async fn open(url: &str, names: &Names) -> Result<Self> {
        Self::prepare(open(url).await?, names).await
    }

    async fn prepare(client: Client, names: &Names) -> Result<Self> {
        let Names { schema: s, table, daily, .. } = names;
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
            p(format!(r#"SELECT {COLUMNS} FROM "{s}".{table} WHERE order_id = ANY($1)"#), &[Type::TEXT_ARRAY]),
            p(
                format!(
                    r#"INSERT INTO "{s}".{table}
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
                format!(r#"SELECT {COLUMNS} FROM "{s}".{table} WHERE customer_id = $1 ORDER BY order_id"#),
                &[Type::TEXT]
            ),
            p(format!(r#"SELECT {COLUMNS} FROM "{s}".{table} WHERE order_id = $1"#), &[Type::TEXT]),
        )?;
        let (add_days, days) = tokio::try_join!(
            p(
                format!(
                    r#"INSERT INTO "{s}".{daily} AS d (day, currency, created, paid, cancelled, paid_amount)
                       SELECT u.day, u.currency, u.created, u.paid, u.cancelled, u.paid_amount::numeric
                       FROM unnest($1::date[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[])
                         AS u(day, currency, created, paid, cancelled, paid_amount)
                       ON CONFLICT (day, currency) DO UPDATE SET created = d.created + excluded.created,
                         paid = d.paid + excluded.paid, cancelled = d.cancelled + excluded.cancelled,
                         paid_amount = d.paid_amount + excluded.paid_amount"#
                ),
                &[
                    Type::DATE_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::INT8_ARRAY,
                    Type::INT8_ARRAY,
                    Type::INT8_ARRAY,
                    Type::TEXT_ARRAY
                ]
            ),
            p(
                format!(
                    r#"SELECT day, currency, created, paid, cancelled, paid_amount::text FROM "{s}".{daily}
                       WHERE day BETWEEN $1 AND $2 ORDER BY day, currency"#
                ),
                &[Type::DATE, Type::DATE]
            ),
        )?;
        let st = Statements {
            lock_checkpoint,
            checkpoint,
            set_checkpoint,
            rows_of,
            upsert,
            by_customer,
            get,
            add_days,
            days,
        };
        Ok(Self { client, st })
    }
}

/// One connection, reopened (with its statements) when found closed.
#[derive(Debug)]
struct Link {
    url: String,
    names: Names,
    conn: RwLock<Conn>,
}

impl Link {
    fn new(url: &str, names: &Names, conn: Conn) -> Self {
        Self { url: url.to_owned(), names: names.clone(), conn: RwLock::new(conn) }
    }

    /// The connection for one caller alone (a transaction needs `&mut`).
    async fn exclusive(&self) -> Result<RwLockWriteGuard<'_, Conn>> {
        let mut conn = self.conn.write().await;
        if conn.client.is_closed() {
            tracing::info!(schema = %self.names.schema, table = %self.names.table, "reopening a closed read-model connection");
            *conn = Conn::open(&self.url, &self.names).await?;
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

/// Changed days as one array per column, for `unnest`.
#[derive(Default)]
struct DayColumns {
    day: Vec<NaiveDate>,
    currency: Vec<String>,
    created: Vec<i64>,
    paid: Vec<i64>,
    cancelled: Vec<i64>,
    paid_amount: Vec<String>,
}

impl DayColumns {
    fn of(days: impl Iterator<Item = DailyOrders>) -> Self {
        let mut c = Self::default();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for d in days {
            c.day.push(d.date);
            c.currency.push(d.currency.to_string());
            c.created.push(count(d.created));
            c.paid.push(count(d.paid));
            c.cancelled.push(count(d.cancelled));
            c.paid_amount.push(d.paid_amount.amount.to_string());
        }
        c
    }
}

/// A stored day back (columns as in the `days` statement).
fn day(row: &Row) -> Result<DailyOrders> {
    let date: NaiveDate = row.try_get(0)?;
    let key = date.to_string();
    let bad = |column, value: &dyn ToString| Error::InvalidValue { column, key: key.clone(), value: value.to_string() };
    let currency: &str = row.try_get(1)?;
    let currency = Currency::from_str(currency).map_err(|_| bad("currency", &currency))?;
    let count = |i: usize, column| -> Result<u64> {
        let v: i64 = row.try_get(i)?;
        u64::try_from(v).map_err(|_| bad(column, &v))
    };
    let amount: &str = row.try_get(5)?;
    let paid_amount = Money::new(Decimal::from_str(amount).map_err(|_| bad("paid_amount", &amount))?, currency);
    Ok(DailyOrders {
        date,
        currency,
        created: count(2, "created")?,
        paid: count(3, "paid")?,
        cancelled: count(4, "cancelled")?,
        paid_amount,
    })
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
