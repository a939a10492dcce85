//! The seed's `demo_time_series_modeling`, run on the real engine: the
//! `sensor_temperature` schema, 1000 points every 5 minutes from 2023-01-01
//! over three devices and three cities (fixed-seed random values 15-25),
//! the Beijing query 12:00-18:00 and its 1-hour aggregation.

use serde::Serialize;

use crate::aggregate::{Agg, Interval};
use crate::model::{Matcher, NANOS_PER_SEC, Point, SeriesSchema};
use crate::query::{Query, QueryResult};
use crate::{Engine, Result};

/// 2023-01-01T00:00:00Z.
pub const BASE_TIME: i64 = 1_672_531_200 * NANOS_PER_SEC;
const MINUTE: i64 = 60 * NANOS_PER_SEC;
/// The fixed seed of the demo's random values.
pub const SEED: u64 = 42;

/// The demo's generator (kept here under its old path for the bench).
pub use domain_core::seeded::SplitMix64;

/// The seed's `temperature_schema`.
pub fn schema() -> SeriesSchema {
    SeriesSchema::new(
        "sensor_temperature",
        &["device_id", "location", "sensor_type"],
        "celsius",
        365,
        &["raw", "1min", "1hour", "1day"],
    )
}

/// The seed's 1000 data points.
pub fn points() -> Vec<Point> {
    let mut rng = SplitMix64(SEED);
    (0..1000)
        .map(|i| {
            let device = *rng.pick(&["device_001", "device_002", "device_003"]);
            let location = *rng.pick(&["beijing", "shanghai", "guangzhou"]);
            let value = 20.0 + rng.uniform(-5.0, 5.0);
            let mut p = Point::new(
                "sensor_temperature",
                &[("device_id", device), ("location", location), ("sensor_type", "temperature")],
                BASE_TIME + i * 5 * MINUTE,
                value,
            );
            p.unit = Some("celsius".into());
            p
        })
        .collect()
}

/// One aggregated bucket as the seed prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketSummary {
    pub timestamp: String,
    pub count: u64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
    pub p99: f64,
}

/// What the seed function prints, computed by the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub created_time_series: String,
    pub inserted_data_points: usize,
    pub query_results: usize,
    pub aggregated_data: usize,
    /// The first three buckets (the seed prints those).
    pub buckets: Vec<BucketSummary>,
    /// Which rollup level answered the aggregation.
    pub answered_from: String,
}

/// Runs the scenario on `engine` (creating the series if needed).
pub fn run(engine: &Engine) -> Result<Report> {
    let schema = schema();
    engine.create_series(schema.clone())?;
    let inserted = engine.write(&points())?.accepted;
    let (raw, aggregated) = queries();
    Ok(report(inserted, &engine.query(&raw)?, &engine.query(&aggregated)?))
}

/// The seed's two queries: Beijing's points 12:00-18:00, and their 1-hour
/// count, avg, min, max, p95 and p99.
pub fn queries() -> (Query, Query) {
    let series = schema().series_name;
    let (from, to) = (BASE_TIME + 12 * 60 * MINUTE, BASE_TIME + 18 * 60 * MINUTE);
    let beijing = vec![Matcher::eq("location", "beijing")];
    let aggs = vec![Agg::Count, Agg::Avg, Agg::Min, Agg::Max, Agg::Percentile(0.95), Agg::Percentile(0.99)];
    let aggregated = Query::aggregate(&series, from, to, beijing.clone(), Interval::HOUR, aggs);
    (Query::raw(&series, from, to, beijing), aggregated)
}

/// What the seed prints, from the answers to [`queries`] (by this engine
/// or by the time-series service over HTTP).
pub fn report(inserted: usize, raw: &QueryResult, aggregated: &QueryResult) -> Report {
    let query_results = match raw {
        QueryResult::Raw(series) => series.iter().map(|s| s.points.len()).sum(),
        QueryResult::Buckets { .. } => 0,
    };
    let (level, groups) = match aggregated {
        QueryResult::Buckets { level, groups } => (level.clone(), groups.as_slice()),
        QueryResult::Raw(_) => (None, &[][..]),
    };
    let all: Vec<_> = groups.iter().flat_map(|g| g.buckets.iter()).collect();
    let round = |v: Option<f64>| v.map_or(f64::NAN, |x| (x * 100.0).round() / 100.0);
    let buckets = all
        .iter()
        .take(3)
        .map(|b| BucketSummary {
            timestamp: chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(b.start).to_rfc3339(),
            count: b.count,
            avg: round(b.values[1]),
            min: round(b.values[2]),
            max: round(b.values[3]),
            p95: round(b.values[4]),
            p99: round(b.values[5]),
        })
        .collect();
    Report {
        created_time_series: schema().series_name,
        inserted_data_points: inserted,
        query_results,
        aggregated_data: all.len(),
        buckets,
        answered_from: level.unwrap_or_else(|| "raw".into()),
    }
}

/// One city's hourly figures over the whole scenario, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CityHours {
    pub location: String,
    /// `(bucket start as RFC 3339, avg, p95)`, oldest first.
    pub hours: Vec<(String, f64, f64)>,
}

/// The scenario's series per city: 1-hour average and p95 over every
/// point written (not only the seed's Beijing window).
pub fn hourly_by_city(engine: &Engine) -> Result<Vec<CityHours>> {
    Ok(per_city(&engine.query(&per_city_query())?))
}

/// The query [`hourly_by_city`] runs: every point, 1-hour avg and p95 by city.
pub fn per_city_query() -> Query {
    let to = BASE_TIME + 1000 * 5 * MINUTE;
    let mut q = Query::aggregate(
        &schema().series_name,
        BASE_TIME,
        to,
        Vec::new(),
        Interval::HOUR,
        vec![Agg::Avg, Agg::Percentile(0.95)],
    );
    q.group_by = vec!["location".to_owned()];
    q
}

/// [`hourly_by_city`] from the answer to [`per_city_query`].
pub fn per_city(answer: &QueryResult) -> Vec<CityHours> {
    let groups = match answer {
        QueryResult::Buckets { groups, .. } => groups.as_slice(),
        QueryResult::Raw(_) => &[],
    };
    let round = |v: f64| (v * 100.0).round() / 100.0;
    groups
        .iter()
        .map(|g| CityHours {
            location: g.group.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).unwrap_or_default(),
            hours: g
                .buckets
                .iter()
                .filter_map(|b| {
                    let avg = b.values.first().copied().flatten()?;
                    let p95 = b.values.get(1).copied().flatten()?;
                    let start = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(b.start).to_rfc3339();
                    Some((start, round(avg), round(p95)))
                })
                .collect(),
        })
        .collect()
}
