//! The engine on the bus: points arriving on `telemetry.points`, business
//! metrics derived from other contexts' events by configuration (read as
//! generic JSON, never through the producer's crate), and announcements of
//! the engine's series as data products on `mesh.events`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use domain_core::bus::{Delivery, Handler, SharedHandler, topics};
use domain_core::{Envelope, EventType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Point, Quality, SeriesSchema};
use crate::{Engine, Error};

/// The payload of a `*.PointWritten.v1` event on `telemetry.points`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PointEvent {
    pub series: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub value: f64,
    /// Nanoseconds; the event's `time` when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub quality: Quality,
}

/// Turns one kind of domain event into a point, e.g. order totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeriveRule {
    /// `<context>.<Event>.v<N>` to listen for, e.g. `orders.OrderConfirmed.v1`.
    pub event_type: String,
    /// The series the point goes to.
    pub series: String,
    /// JSON pointer to the value in the payload, e.g. `/total_amount`; a
    /// number or a decimal string.
    pub value: String,
    /// Tag key -> JSON pointer in the payload; `@subject` means the aggregate id.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Events carry their time to the microsecond, so two aggregates'
    /// events in the same microsecond would land on one point (the second
    /// overwriting the first). With this set, the nanosecond digits hold
    /// a hash of the subject: distinct aggregates stay distinct points
    /// (but for a 1-in-1000 clash within one microsecond), a redelivered
    /// event still lands on its own point, and no tag per aggregate makes
    /// the series count grow with the traffic.
    #[serde(default)]
    pub spread_by_subject: bool,
}

impl DeriveRule {
    fn point(&self, env: &Envelope) -> domain_core::Result<Point> {
        let reject = |why: String| domain_core::Error::Rejected(format!("{}: {why}", self.event_type));
        let raw = env.data.pointer(&self.value).ok_or_else(|| reject(format!("no value at {}", self.value)))?;
        let value = match raw {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| reject(format!("value at {} is not a number", self.value)))?;
        let mut tags = BTreeMap::new();
        for (key, pointer) in &self.tags {
            let v = if pointer == "@subject" {
                env.subject.clone()
            } else {
                match env.data.pointer(pointer) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => continue,
                }
            };
            tags.insert(key.clone(), v);
        }
        let mut timestamp = nanos(env);
        if self.spread_by_subject {
            timestamp = timestamp - timestamp.rem_euclid(1000) + subject_nanos(&env.subject);
        }
        Ok(Point { series: self.series.clone(), tags, timestamp, value, quality: Quality::Good, unit: None })
    }
}

/// 0..1000 from the subject (FNV-1a: stable across builds and machines).
fn subject_nanos(subject: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subject.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % 1000) as i64
}

fn nanos(env: &Envelope) -> i64 {
    env.time.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A bus handler writing telemetry and derived points into the engine.
#[derive(Debug)]
pub struct TelemetryHandler {
    engine: Arc<Engine>,
    rules: Vec<DeriveRule>,
}

impl TelemetryHandler {
    pub fn new(engine: Arc<Engine>, rules: Vec<DeriveRule>) -> Self {
        Self { engine, rules }
    }

    /// The points an event stands for (none if it is not for us).
    pub fn points(&self, env: &Envelope) -> domain_core::Result<Vec<Point>> {
        if env.event_type.name() == "PointWritten" {
            let p: PointEvent = serde_json::from_value(env.data.clone()).map_err(|e| {
                domain_core::Error::SchemaMismatch { event_type: env.event_type.to_string(), reason: e.to_string() }
            })?;
            return Ok(vec![Point {
                series: p.series,
                tags: p.tags,
                timestamp: p.timestamp.unwrap_or_else(|| nanos(env)),
                value: p.value,
                quality: p.quality,
                unit: p.unit,
            }]);
        }
        let ty = env.event_type.to_string();
        self.rules.iter().filter(|r| r.event_type == ty).map(|r| r.point(env)).collect()
    }
}

impl TelemetryHandler {
    /// Writes the event's points; a bad point is a rejection (to the DLQ),
    /// a failing disk a transient error (retried).
    async fn store(&self, event: &Envelope) -> domain_core::Result<()> {
        let points = self.points(event)?;
        if points.is_empty() {
            return Ok(());
        }
        let engine = Arc::clone(&self.engine);
        // The write waits for an fsync: keep it off the async workers.
        let written = tokio::task::spawn_blocking(move || engine.write(&points))
            .await
            .map_err(|e| domain_core::Error::Transient(e.to_string()))?;
        match written {
            Ok(_) => Ok(()),
            // A failed disk may recover; bad points never will.
            Err(e @ (Error::Io { .. } | Error::Failed(_) | Error::Closed)) => {
                Err(domain_core::Error::Transient(e.to_string()))
            }
            Err(e) => Err(domain_core::Error::Rejected(e.to_string())),
        }
    }
}

#[async_trait]
impl Handler for TelemetryHandler {
    async fn handle(&mut self, event: &Envelope, _: &Delivery) -> domain_core::Result<()> {
        self.store(event).await
    }
}

/// The same writes from a service's consumer group; events neither a
/// `PointWritten` nor named by a rule are committed unread.
#[async_trait]
impl SharedHandler for TelemetryHandler {
    async fn handle(&self, event: &Envelope, _: &Delivery) -> domain_core::Result<()> {
        self.store(event).await
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type.split('.').nth(1) == Some("PointWritten") || self.rules.iter().any(|r| r.event_type == event_type)
    }
}

/// The event announcing a series as a data product, for `mesh.events`:
/// a YAML stream of its ODCS contract (a point: timestamp, value, one
/// string per tag key) and the product, whose output port is the series.
pub fn announcement(schema: &SeriesSchema) -> domain_core::Result<Envelope> {
    let ty = EventType::new("timeseries", "DataProductAnnounced", 1)?;
    let product = format!("timeseries.{}", schema.series_name);
    Ok(Envelope::raw(
        "timeseries",
        ty,
        product.clone(),
        1,
        json!({ "product_id": product, "format": "yaml", "documents": product_documents(schema) }),
    ))
}

/// The contract and product documents of a series (JSON strings are valid
/// YAML scalars, so names are quoted that way).
pub fn product_documents(schema: &SeriesSchema) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let id = q(&format!("timeseries.{}", schema.series_name));
    let series = q(&schema.series_name);
    let mut tags = String::new();
    for t in &schema.tags {
        tags.push_str(&format!("      - name: {}\n        logicalType: string\n        required: true\n", q(t)));
    }
    let levels: Vec<String> = schema.aggregation_levels.iter().map(|l| q(l)).collect();
    format!(
        "apiVersion: v3.1.0
kind: DataContract
id: {id}
name: {series}
version: 1.0.0
status: active
domain: timeseries
description:
  purpose: {purpose}
tags: [timeseries, metrics]
schema:
  - name: {series}
    physicalType: series
    properties:
      - name: timestamp
        logicalType: timestamp
        required: true
      - name: value
        logicalType: number
        required: true
{tags}slaProperties:
  - property: retention
    value: {retention}
    unit: d
---
apiVersion: v1.0.0
kind: DataProduct
id: {id}
name: {series}
description: {purpose}
domain: timeseries
owner: timeseries
version: 1.0.0
status: active
tags: [timeseries, metrics]
outputPorts:
  - name: series
    description: {levels_text}
    location: {{ type: timeseries, series: {series} }}
    contractId: {id}
    contractVersion: 1.0.0
",
        purpose = q(&format!("{} in {}, kept {} days", schema.series_name, schema.unit, schema.retention_period_days)),
        retention = schema.retention_period_days,
        levels_text = q(&format!("rollups: {}", levels.join(", ").replace('"', ""))),
    )
}

/// The topic announcements go to.
pub const ANNOUNCE_TOPIC: &str = topics::MESH;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain_core::bus::{Consumer, EventBus, InProcessBus, Outcome, RetryPolicy, TopicSpec};

    use super::*;
    use crate::query::{Query, QueryResult};

    fn point_event(device: &str, v: f64, ts: i64) -> Envelope {
        let ty = EventType::new("devices", "PointWritten", 1).expect("type");
        let data = json!({ "series": "sensor_temperature", "tags": { "device_id": device, "location": "beijing" }, "value": v, "timestamp": ts });
        Envelope::raw("devices", ty, device, 1, data)
    }

    #[test]
    fn spreading_by_subject_keeps_same_microsecond_events_apart_and_redeliveries_together() {
        let paid = |order: &str| {
            let mut e = Envelope::raw(
                "orders",
                EventType::new("orders", "OrderPaid", 1).expect("type"),
                order,
                3,
                json!({ "amount": { "amount": "19.99", "currency": "CNY" } }),
            );
            e.time = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
            e
        };
        let mut rule = DeriveRule {
            event_type: "orders.OrderPaid.v1".into(),
            series: "order_paid_amount".into(),
            value: "/amount/amount".into(),
            tags: [("currency".to_owned(), "/amount/currency".to_owned())].into(),
            spread_by_subject: false,
        };
        let at = |rule: &DeriveRule, order: &str| rule.point(&paid(order)).expect("point").timestamp;
        assert_eq!(at(&rule, "order_1"), at(&rule, "order_2"), "without spreading they collide");
        rule.spread_by_subject = true;
        let (a, b) = (at(&rule, "order_1"), at(&rule, "order_2"));
        assert_ne!(a, b, "spread: two points");
        assert_eq!(a, at(&rule, "order_1"), "a redelivery lands on its own point");
        assert_eq!(a / 1000, 1_700_000_000_123_456, "still within the event's microsecond");
        let p = rule.point(&paid("order_1")).expect("point");
        assert!((p.value - 19.99).abs() < 1e-9);
        assert_eq!(p.tags.get("currency").map(String::as_str), Some("CNY"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn telemetry_and_derived_points_land_once_and_bad_ones_go_to_the_dlq() {
        let dir = std::env::temp_dir().join(format!("ts-bus-{}", uuid::Uuid::now_v7().simple()));
        let engine = Arc::new(Engine::open(&dir).expect("open"));
        engine.create_series(crate::scenario::schema()).expect("schema");
        engine
            .create_series(SeriesSchema::new(
                "order_total",
                &["currency", "order_id"],
                "CNY",
                365,
                &["raw", "1min", "1hour"],
            ))
            .expect("schema");
        let bus = InProcessBus::new();
        bus.create_topics(&[TopicSpec::new(topics::TELEMETRY, 3), TopicSpec::new(topics::ORDERS, 3)])
            .await
            .expect("topics");
        let t0 = crate::scenario::BASE_TIME;
        let points: Vec<Envelope> =
            (0..5).map(|i| point_event("device_001", 20.0 + i as f64, t0 + i * 1_000_000_000)).collect();
        bus.publish(topics::TELEMETRY, &points).await.expect("publish");
        // Redelivered copies of the same events change nothing.
        bus.publish(topics::TELEMETRY, &points[..2]).await.expect("publish");
        let confirmed = Envelope::raw(
            "orders",
            EventType::new("orders", "OrderConfirmed", 1).expect("type"),
            "order_001",
            4,
            json!({ "total_amount": "399.97", "currency": "CNY" }),
        );
        let ignored = Envelope::raw(
            "orders",
            EventType::new("orders", "OrderShipped", 1).expect("type"),
            "order_001",
            5,
            json!({}),
        );
        bus.publish(topics::ORDERS, &[confirmed, ignored]).await.expect("publish");
        let mut bad = point_event("device_002", 1.0, t0);
        bad.data = json!({ "series": "sensor_temperature", "value": "hot" });
        let mut unknown_tag = point_event("device_003", 1.0, t0);
        unknown_tag.data["tags"]["colour"] = json!("red");
        bus.publish(topics::TELEMETRY, &[bad, unknown_tag]).await.expect("publish");

        let rule = DeriveRule {
            event_type: "orders.OrderConfirmed.v1".into(),
            series: "order_total".into(),
            value: "/total_amount".into(),
            tags: [("currency".to_owned(), "/currency".to_owned()), ("order_id".to_owned(), "@subject".to_owned())]
                .into(),
            spread_by_subject: false,
        };
        let mut handler = TelemetryHandler::new(Arc::clone(&engine), vec![rule]);
        let sub = bus.subscribe("timeseries", &[topics::TELEMETRY, topics::ORDERS]).await.expect("subscribe");
        let policy = RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        };
        let mut consumer = Consumer::new(sub, policy);
        let mut outcomes = Vec::new();
        while let Some(o) = consumer.poll_once(&mut handler, Duration::from_millis(300)).await.expect("poll") {
            outcomes.push(o);
        }
        assert_eq!(outcomes.len(), 11);
        assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::DeadLettered { .. })).count(), 2, "{outcomes:?}");

        let q = Query::raw("sensor_temperature", t0, t0 + 10_000_000_000, vec![]);
        let QueryResult::Raw(series) = engine.query(&q).expect("query") else { panic!("raw") };
        assert_eq!(series.iter().map(|s| s.points.len()).sum::<usize>(), 5, "each point once");
        let last = engine.last("order_total", &[]).expect("last");
        assert_eq!(last.len(), 1);
        assert!((last[0].value - 399.97).abs() < 1e-9);
        assert!(last[0].tags.contains(&("order_id".to_owned(), "order_001".to_owned())));

        let ann = announcement(&crate::scenario::schema()).expect("announce");
        assert_eq!(ann.event_type.to_string(), "timeseries.DataProductAnnounced.v1");
        let documents = ann.data["documents"].as_str().expect("documents");
        assert!(documents.contains("kind: DataContract") && documents.contains("series: \"sensor_temperature\""));
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
}
