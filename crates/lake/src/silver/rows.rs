//! One bronze record read as an event, its columns extracted for a silver
//! table, and rows turned into arrow columns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::SchemaRef;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::Result;
use crate::silver::expectations::Value;
use crate::silver::model::{self, Column, Kind, MONEY_PRECISION, MONEY_SCALE, SilverTable, Source};

/// A bronze record's envelope, as far as silver needs it.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub topic: &'a str,
    pub id: &'a str,
    pub event_type: &'a str,
    pub context: &'a str,
    pub name: &'a str,
    pub subject: &'a str,
    pub time: DateTime<Utc>,
    pub version: Option<i64>,
    pub payload: Json,
}

/// Reads the envelope attributes and payload; the error is the reason.
#[allow(clippy::too_many_arguments)]
pub fn event<'a>(
    topic: &'a str,
    id: Option<&'a str>,
    event_type: Option<&'a str>,
    subject: Option<&'a str>,
    time: Option<i64>,
    version: Option<i64>,
    payload: Option<&'a str>,
) -> std::result::Result<Event<'a>, String> {
    let id = id.filter(|s| !s.is_empty()).ok_or("the record has no event id (ce_id)")?;
    let event_type = event_type.ok_or("the record has no event type (ce_type)")?;
    let mut parts = event_type.split('.');
    let (Some(context), Some(name), Some(v), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!("event type `{event_type}` is not `<context>.<Event>.v<N>`"));
    };
    if v.strip_prefix('v').is_none_or(|n| n.parse::<u32>().is_err()) {
        return Err(format!("event type `{event_type}` has no version `v<N>`"));
    }
    let subject = subject.ok_or("the record has no subject (ce_subject)")?;
    let time = time.and_then(DateTime::from_timestamp_micros).ok_or("the record has no valid event time (ce_time)")?;
    let payload = payload.ok_or("the record has no UTF-8 payload")?;
    let payload: Json = serde_json::from_str(payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
    if !payload.is_object() {
        return Err("the payload is not a JSON object".into());
    }
    Ok(Event { topic, id, event_type, context, name, subject, time, version, payload })
}

/// One extracted value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Money(Decimal),
    Time(i64),
    Bool(bool),
}

impl Cell {
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Cell::Null => Value::Null,
            Cell::Text(t) => Value::Text(t),
            Cell::Int(i) => Value::Number(Decimal::from(*i)),
            Cell::Float(f) => Value::Float(*f),
            Cell::Money(m) => Value::Number(*m),
            Cell::Time(t) => Value::Number(Decimal::from(*t)),
            Cell::Bool(b) => Value::Bool(*b),
        }
    }
}

fn pointer<'a>(payload: &'a Json, pointers: &[&str]) -> Option<&'a Json> {
    pointers.iter().find_map(|p| payload.pointer(p)).filter(|v| !v.is_null())
}

fn money(v: &Json) -> std::result::Result<Decimal, String> {
    let d = match v {
        Json::String(s) => s.trim().parse::<Decimal>().map_err(|_| format!("`{s}` is not a decimal amount"))?,
        Json::Number(n) if n.is_i64() || n.is_u64() => {
            n.to_string().parse::<Decimal>().map_err(|_| format!("{n} is not a decimal amount"))?
        }
        // A float may already have been rounded by whoever wrote it.
        Json::Number(n) => return Err(format!("{n} is a JSON float; amounts travel as decimal strings")),
        other => return Err(format!("{other} is not an amount")),
    };
    if d.scale() > MONEY_SCALE as u32 {
        return Err(format!("{d} has more than {MONEY_SCALE} decimal places"));
    }
    Ok(d)
}

fn typed(kind: Kind, v: &Json) -> std::result::Result<Cell, String> {
    Ok(match kind {
        Kind::Text => match v {
            Json::String(s) => Cell::Text(s.clone()),
            Json::Number(n) => Cell::Text(n.to_string()),
            Json::Bool(b) => Cell::Text(b.to_string()),
            other => return Err(format!("{other} is not text")),
        },
        Kind::Json => Cell::Text(v.to_string()),
        Kind::Int => match v.as_i64() {
            Some(i) => Cell::Int(i),
            None => return Err(format!("{v} is not an integer")),
        },
        Kind::Float => match v {
            Json::Number(n) => Cell::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?),
            Json::String(s) => Cell::Float(s.parse().map_err(|_| format!("`{s}` is not a number"))?),
            other => return Err(format!("{other} is not a number")),
        },
        Kind::Money => Cell::Money(money(v)?),
        Kind::Time => match v {
            Json::String(s) => Cell::Time(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))?
                    .timestamp_micros(),
            ),
            other => return Err(format!("{other} is not a time")),
        },
        Kind::Bool => match v {
            Json::Bool(b) => Cell::Bool(*b),
            other => return Err(format!("{other} is not a boolean")),
        },
    })
}

/// The value of one column for an event; the error names the column.
pub fn extract(column: &Column, event: &Event<'_>) -> std::result::Result<Cell, String> {
    let cell = match column.source {
        Source::Id => Cell::Text(event.id.to_owned()),
        Source::Subject => Cell::Text(event.subject.to_owned()),
        Source::Name => Cell::Text(event.name.to_owned()),
        Source::Type => Cell::Text(event.event_type.to_owned()),
        Source::Time => Cell::Time(event.time.timestamp_micros()),
        Source::Date => Cell::Text(event.time.format("%Y-%m-%d").to_string()),
        Source::Version => event.version.map_or(Cell::Null, Cell::Int),
        Source::OrderStatus => model::order_status(event.name).map_or(Cell::Null, |s| Cell::Text(s.to_owned())),
        Source::Pointer(pointers) => match pointer(&event.payload, pointers) {
            None => Cell::Null,
            Some(v) => typed(column.kind, v).map_err(|e| format!("`{}`: {e}", column.name))?,
        },
        Source::LineAmount => {
            let q = pointer(&event.payload, &["/quantity"]).and_then(Json::as_i64);
            let p = pointer(&event.payload, &["/unit_price/amount"]).map(money).transpose().ok().flatten();
            match (q, p) {
                (Some(q), Some(p)) => Cell::Money(p * Decimal::from(q)),
                _ => Cell::Null,
            }
        }
        Source::BalanceChange => {
            let new = pointer(&event.payload, &["/new_balance", "/initial_balance/amount"])
                .map(money)
                .transpose()
                .map_err(|e| format!("`new_balance`: {e}"))?;
            let old = pointer(&event.payload, &["/old_balance"])
                .map(money)
                .transpose()
                .map_err(|e| format!("`old_balance`: {e}"))?
                .unwrap_or(Decimal::ZERO);
            new.map_or(Cell::Null, |n| Cell::Money(n - old))
        }
        Source::PointTime => match pointer(&event.payload, &["/timestamp"]) {
            Some(v) => match v.as_i64() {
                Some(ns) => Cell::Time(ns.div_euclid(1_000)),
                None => return Err(format!("`{}`: {v} is not nanoseconds", column.name)),
            },
            None => Cell::Time(event.time.timestamp_micros()),
        },
    };
    Ok(cell)
}

/// All columns of a table for one event.
pub fn extract_row(table: &SilverTable, event: &Event<'_>) -> std::result::Result<Vec<Cell>, String> {
    table.columns.iter().map(|c| extract(c, event)).collect()
}

/// Where a silver row came from in bronze: topic, partition, offset.
pub type Origin = (String, i32, i64);

/// A silver row and its bronze origin.
pub type Row = (Vec<Cell>, Origin);

/// Rows of a silver table (with their bronze coordinates) as one batch.
pub fn to_batch(schema: &SchemaRef, kinds: &[Kind], rows: &[Row]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(kinds.len() + 3);
    for (i, kind) in kinds.iter().enumerate() {
        let cells = rows.iter().map(|(r, _)| &r[i]);
        let array: ArrayRef = match kind {
            Kind::Text | Kind::Json => {
                let mut b = StringBuilder::new();
                for c in cells {
                    match c {
                        Cell::Text(t) => b.append_value(t),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Int => {
                let mut b = Int64Builder::new();
                cells.for_each(|c| b.append_option(if let Cell::Int(i) = c { Some(*i) } else { None }));
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::new();
                cells.for_each(|c| b.append_option(if let Cell::Float(f) = c { Some(*f) } else { None }));
                Arc::new(b.finish())
            }
            Kind::Money => {
                let mut b = Decimal128Builder::new();
                for c in cells {
                    b.append_option(if let Cell::Money(m) = c { Some(mantissa(*m)) } else { None });
                }
                Arc::new(b.finish().with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?)
            }
            Kind::Time => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                cells.for_each(|c| b.append_option(if let Cell::Time(t) = c { Some(*t) } else { None }));
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                cells.for_each(|c| b.append_option(if let Cell::Bool(v) = c { Some(*v) } else { None }));
                Arc::new(b.finish())
            }
        };
        columns.push(array);
    }
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    for (_, (t, p, o)) in rows {
        topic.append_value(t);
        partition.append_value(*p);
        offset.append_value(*o);
    }
    columns.push(Arc::new(topic.finish()));
    columns.push(Arc::new(partition.finish()));
    columns.push(Arc::new(offset.finish()));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A decimal at the money scale, as arrow's i128 mantissa.
pub fn mantissa(d: Decimal) -> i128 {
    let mut d = d;
    d.rescale(MONEY_SCALE as u32);
    d.mantissa()
}
