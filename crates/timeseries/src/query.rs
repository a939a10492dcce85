//! Queries: series selection through the tag index, raw points, bucketed
//! aggregates (from the coarsest rollup level that answers exactly, else
//! from raw points), group by tag, and the last value per series.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Agg, BucketAgg, Interval};
use crate::engine::{Engine, SchemaState, State};
use crate::index::KeyRef;
use crate::model::{Matcher, Quality};
use crate::{Error, Result};

/// Most buckets one query may produce.
pub const MAX_BUCKETS: i64 = 100_000;

/// A query over one metric and a half-open time range `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub series: String,
    pub from: i64,
    pub to: i64,
    pub matchers: Vec<Matcher>,
    /// Bucket width; `None` returns raw points.
    pub every: Option<Interval>,
    pub aggs: Vec<Agg>,
    pub group_by: Vec<String>,
}

impl Query {
    pub fn raw(series: &str, from: i64, to: i64, matchers: Vec<Matcher>) -> Self {
        Self { series: series.to_owned(), from, to, matchers, every: None, aggs: Vec::new(), group_by: Vec::new() }
    }

    pub fn aggregate(
        series: &str,
        from: i64,
        to: i64,
        matchers: Vec<Matcher>,
        every: Interval,
        aggs: Vec<Agg>,
    ) -> Self {
        Self { series: series.to_owned(), from, to, matchers, every: Some(every), aggs, group_by: Vec::new() }
    }
}

/// Raw points of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoints {
    pub tags: Vec<(String, String)>,
    pub points: Vec<(i64, f64)>,
    /// The points whose quality is not good, by timestamp (most are good,
    /// so only the exceptions are listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualities: Vec<(i64, Quality)>,
}

impl SeriesPoints {
    /// The quality of the point at `t` (good unless listed).
    pub fn quality_at(&self, t: i64) -> Quality {
        self.qualities.binary_search_by_key(&t, |(at, _)| *at).map_or(Quality::Good, |i| self.qualities[i].1)
    }
}

/// One bucket: its start and one value per requested aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: i64,
    pub count: u64,
    pub values: Vec<Option<f64>>,
}

/// Buckets of one group (the group's tag values, empty without group-by).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupBuckets {
    pub group: Vec<(String, String)>,
    pub buckets: Vec<Bucket>,
}

/// The newest point of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastPoint {
    pub tags: Vec<(String, String)>,
    pub time: i64,
    pub value: f64,
}

/// What a query returns, and which rollup level answered it. On the wire:
/// `{"raw": [{"tags", "points": [[time, value]]}]}` or `{"buckets": {"level", "groups"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryResult {
    Raw(Vec<SeriesPoints>),
    Buckets { level: Option<String>, groups: Vec<GroupBuckets> },
}

impl Engine {
    /// Runs a query; expired data (older than the retention) is never returned.
    pub fn query(&self, q: &Query) -> Result<QueryResult> {
        if q.from > q.to {
            return Err(Error::InvertedRange { from: q.from, to: q.to });
        }
        let state = self.read();
        let schema = state.schemas.get(&q.series).ok_or_else(|| Error::UnknownSeries(q.series.clone()))?;
        let from = q.from.max(schema.retention_cutoff());
        let ids = state.index.select(&q.series, &q.matchers)?;
        let Some(every) = q.every else {
            let mut out = Vec::new();
            for id in &ids {
                let Some(key) = state.index.key(id) else { continue };
                let (points, qualities) = series_points(&state, schema, id, from, q.to)?;
                if !points.is_empty() {
                    out.push(SeriesPoints { tags: key.tag_pairs(), points, qualities });
                }
            }
            return Ok(QueryResult::Raw(out));
        };
        let width = every.nanos();
        let buckets = (q.to.saturating_sub(from)) / width;
        if buckets > MAX_BUCKETS {
            return Err(Error::TooManyBuckets { buckets, limit: MAX_BUCKETS });
        }
        let level = coarsest_exact_level(schema, from, q.to, width);
        let mut groups: BTreeMap<Vec<(String, String)>, BTreeMap<i64, BucketAgg>> = BTreeMap::new();
        for id in &ids {
            let Some(key) = state.index.key(id) else { continue };
            let group = group_key(key, &q.group_by);
            let target = groups.entry(group).or_default();
            match level {
                Some(l) => {
                    let level = schema.levels[l];
                    let n = level.nanos();
                    for p in schema.partitions.values().filter(|p| p.end > from && p.start < q.to) {
                        let Some(data) = p.read(id)? else { continue };
                        // Stored buckets are complete inside their partition;
                        // they answer where the query covers them whole.
                        let (lo, hi) = (from.max(p.start), q.to.min(p.end));
                        if p.stores(level) && lo.rem_euclid(n) == 0 && hi.rem_euclid(n) == 0 {
                            for (start, agg) in data.rollups.get(l).into_iter().flatten() {
                                if (lo..hi).contains(start) {
                                    target.entry(every.bucket_start(*start, 0)).or_default().merge(agg)?;
                                }
                            }
                        } else {
                            let lo = data.points.partition_point(|(t, _)| *t < from);
                            let hi = data.points.partition_point(|(t, _)| *t < q.to);
                            add_points(target, every, &data.points[lo..hi]);
                        }
                    }
                    if let Some(head) = state.series.get(id as usize) {
                        add_points(target, every, &head.points.range(from, q.to)?);
                    }
                }
                None => {
                    add_points(target, every, &series_points(&state, schema, id, from, q.to)?.0);
                }
            }
        }
        let groups = groups
            .into_iter()
            .map(|(group, buckets)| GroupBuckets {
                group,
                buckets: buckets
                    .into_iter()
                    .map(|(start, agg)| Bucket {
                        start,
                        count: agg.count(),
                        values: q.aggs.iter().map(|a| agg.value(*a)).collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok(QueryResult::Buckets { level: level.map(|l| schema.levels[l].to_string()), groups })
    }

    /// The tags of every series of `series` the matchers select, by id
    /// (the order series were first written in).
    pub fn series(&self, series: &str, matchers: &[Matcher]) -> Result<Vec<Vec<(String, String)>>> {
        let state = self.read();
        if !state.schemas.contains_key(series) {
            return Err(Error::UnknownSeries(series.to_owned()));
        }
        let ids = state.index.select(series, matchers)?;
        Ok(ids.iter().filter_map(|id| state.index.key(id)).map(|k| k.tag_pairs()).collect())
    }

    /// The newest point of every matching series (served from memory).
    pub fn last(&self, series: &str, matchers: &[Matcher]) -> Result<Vec<LastPoint>> {
        let state = self.read();
        let schema = state.schemas.get(series).ok_or_else(|| Error::UnknownSeries(series.to_owned()))?;
        let cutoff = schema.retention_cutoff();
        let ids = state.index.select(series, matchers)?;
        let mut out = Vec::new();
        for id in &ids {
            let Some(key) = state.index.key(id) else { continue };
            let head = state.series.get(id as usize).and_then(|d| d.points.last());
            let last = match head {
                Some(p) => Some(p),
                // Only sealed data: the newest partition holding the series.
                None => {
                    let mut found = None;
                    for p in schema.partitions.values().rev().filter(|p| p.contains(id)) {
                        if let Some(d) = p.read(id)? {
                            found = d.points.last().copied();
                            break;
                        }
                    }
                    found
                }
            };
            if let Some((time, value)) = last.filter(|(t, _)| *t >= cutoff) {
                out.push(LastPoint { tags: key.tag_pairs(), time, value });
            }
        }
        Ok(out)
    }
}

/// Points of one series in `[from, to)`: sealed partitions, then the head.
/// A series' points in `[from, to)` and the qualities that are not good.
type RawPoints = (Vec<(i64, f64)>, Vec<(i64, Quality)>);

fn series_points(state: &State, schema: &SchemaState, id: u32, from: i64, to: i64) -> Result<RawPoints> {
    let (mut out, mut qualities) = (Vec::new(), Vec::new());
    for p in schema.partitions.values().filter(|p| p.end > from && p.start < to && p.contains(id)) {
        if let Some(d) = p.read(id)? {
            out.extend(d.points.into_iter().filter(|(t, _)| (from..to).contains(t)));
            qualities.extend(d.qualities.into_iter().filter(|(t, _)| (from..to).contains(t)));
        }
    }
    if let Some(data) = state.series.get(id as usize) {
        out.extend(data.points.range(from, to)?);
        if from < to {
            qualities.extend(data.qualities.range(from..to).map(|(t, q)| (*t, *q)));
        }
    }
    Ok((out, qualities))
}

/// Adds sorted points to their buckets, looking each bucket up once per
/// run of points in it. Non-finite values never reach the engine's data.
fn add_points(target: &mut BTreeMap<i64, BucketAgg>, every: Interval, points: &[(i64, f64)]) {
    for run in points.chunk_by(|a, b| every.bucket_start(a.0, 0) == every.bucket_start(b.0, 0)) {
        let agg = target.entry(every.bucket_start(run[0].0, 0)).or_default();
        for (t, v) in run {
            let _ = agg.add(*t, *v);
        }
    }
}

/// The index of the coarsest rollup level whose buckets tile both the
/// query's buckets and its range exactly.
fn coarsest_exact_level(schema: &SchemaState, from: i64, to: i64, width: i64) -> Option<usize> {
    schema.levels.iter().enumerate().rev().find_map(|(i, l)| {
        let n = l.nanos();
        (width % n == 0 && from.rem_euclid(n) == 0 && to.rem_euclid(n) == 0).then_some(i)
    })
}

fn group_key(key: KeyRef<'_>, group_by: &[String]) -> Vec<(String, String)> {
    group_by.iter().map(|g| (g.clone(), key.tag(g).unwrap_or_default().to_owned())).collect()
}
