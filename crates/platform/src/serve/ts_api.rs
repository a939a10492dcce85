//! The time-series service's HTTP API: InfluxDB-compatible writes
//! (`POST /write` and `/api/v2/write`: line protocol, `precision`, gzip
//! bodies; a partial write answers which lines were refused) and queries.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use timeseries::aggregate::{Agg, Interval};
use timeseries::line_protocol::{BatchMode, Precision, parse_batch};
use timeseries::model::{Matcher, SeriesSchema};
use timeseries::query::Query;
use timeseries::{Engine, ingest};

use super::http::{ApiError, ApiResult, Params};

/// A gzip body may inflate to at most this many times the body limit.
const MAX_INFLATION: usize = 16;

#[derive(Debug)]
pub struct TsApi {
    pub engine: Arc<Engine>,
    pub body_limit: usize,
}

type Shared = State<Arc<TsApi>>;

pub fn router(api: Arc<TsApi>) -> Router {
    Router::new()
        .route("/write", post(write))
        .route("/api/v2/write", post(write))
        .route("/ts/query", get(query))
        .route("/ts/series/{series}/last", get(last))
        .route("/ts/stats", get(stats))
        .with_state(api)
}

#[derive(Debug, Deserialize)]
struct WriteParams {
    precision: Option<String>,
    /// InfluxDB 1.x names the database, 2.x the bucket and org; one engine
    /// serves them all, so they are accepted and not used.
    #[allow(dead_code)]
    db: Option<String>,
    #[allow(dead_code)]
    bucket: Option<String>,
    #[allow(dead_code)]
    org: Option<String>,
    #[allow(dead_code)]
    rp: Option<String>,
}

/// InfluxDB's precision names: `n`/`ns`, `u`/`us`, `ms`, `s`.
fn precision(p: Option<&str>) -> ApiResult<Precision> {
    let p = match p.unwrap_or("ns") {
        "n" => "ns",
        "u" => "us",
        other => other,
    };
    p.parse().map_err(|e| ApiError::field("precision", format!("{e}; use ns, us, ms or s")))
}

fn inflate(body: &Bytes, headers: &HeaderMap, limit: usize) -> ApiResult<Vec<u8>> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    match encoding.trim() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" => {
            let cap = limit.saturating_mul(MAX_INFLATION);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("the gzip body does not inflate: {e}")))?;
            if out.len() > cap {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the gzip body inflates past {cap} bytes"),
                ));
            }
            Ok(out)
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding `{other}`: send identity or gzip"),
        )),
    }
}

/// 204 when every line was written; 400 with the refused lines (and how
/// many points the good ones wrote) otherwise, as InfluxDB answers a
/// partial write. A series written for the first time is created, as
/// InfluxDB creates a measurement, with the tag keys of its first lines.
async fn write(
    State(api): Shared,
    Params(p): Params<WriteParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let precision = precision(p.precision.as_deref())?;
    let raw = inflate(&body, &headers, api.body_limit)?;
    let text = String::from_utf8(raw).map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
    let engine = Arc::clone(&api.engine);
    let outcome = tokio::task::spawn_blocking(move || write_lines(&engine, &text, precision))
        .await
        .map_err(crate::Error::from)?
        .map_err(crate::Error::from)?;
    if outcome.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body = json!({
        "error": {
            "code": "partial_write",
            "message": format!(
                "partial write: {} line(s) refused, {} point(s) written",
                outcome.rejected.len(),
                outcome.points
            ),
        },
        "rejected": outcome.rejected,
        "lines_written": outcome.lines,
        "points_written": outcome.points,
    });
    Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

/// What one write request did.
#[derive(Debug, Default)]
struct Written {
    lines: usize,
    points: usize,
    rejected: Vec<String>,
}

/// Parses every line (bad ones are listed, not fatal), creates the series
/// that do not exist yet, and writes the points the schemas accept as one
/// durable batch (the refused ones are listed too).
fn write_lines(engine: &Engine, text: &str, precision: Precision) -> timeseries::Result<Written> {
    let parsed =
        parse_batch(text, precision, BatchMode::Lenient).map_err(|e| timeseries::Error::Failed(e.to_string()))?;
    let mut out = Written { rejected: parsed.rejected.iter().map(ToString::to_string).collect(), ..Written::default() };
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let mut points = Vec::new();
    let mut new_series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &parsed.lines {
        match ingest::points_of(line, now) {
            Ok(ps) => {
                out.lines += 1;
                for p in &ps {
                    if engine.schema(&p.series).is_none() {
                        new_series.entry(p.series.clone()).or_default().extend(p.tags.keys().cloned());
                    }
                }
                points.extend(ps);
            }
            Err(e) => out.rejected.push(e.to_string()),
        }
    }
    for (name, tags) in new_series {
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        engine.create_series(SeriesSchema::new(&name, &tags, "", 365, &["raw", "1min", "1hour", "1day"]))?;
    }
    // A point the schema refuses (a tag key it does not list, a point too
    // late, NaN refused) is listed like a bad line; the others are written.
    let (written, refused) = engine.write_lenient(&points)?;
    out.points = written.accepted;
    out.rejected.extend(refused.into_iter().map(|r| r.error.to_string()));
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryParams {
    series: String,
    from: String,
    to: String,
    /// `k=v`, `k!=v`, `k=~re`, `k!~re`, `k=in(a|b)`; several joined by `;`.
    #[serde(rename = "where")]
    matchers: Option<String>,
    every: Option<String>,
    /// Comma-separated: count,min,max,avg,sum,first,last,p95...
    agg: Option<String>,
    /// Comma-separated tag keys.
    group_by: Option<String>,
}

fn time(field: &str, s: &str) -> ApiResult<i64> {
    crate::ts::parse_time(s).map_err(|e| ApiError::field(field, e.to_string()))
}

fn matchers(text: Option<&str>) -> ApiResult<Vec<Matcher>> {
    text.unwrap_or("")
        .split(';')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| Matcher::parse(m).map_err(|e| ApiError::field("where", e.to_string())))
        .collect()
}

fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

async fn query(State(api): Shared, Params(q): Params<QueryParams>) -> ApiResult<Json<Value>> {
    let (from, to) = (time("from", &q.from)?, time("to", &q.to)?);
    let aggs = list(q.agg.as_deref().or(Some("count,avg,min,max")))
        .iter()
        .map(|a| a.parse::<Agg>().map_err(|e| ApiError::field("agg", e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    let every = q
        .every
        .as_deref()
        .map(|e| e.parse::<Interval>().map_err(|err| ApiError::field("every", err.to_string())))
        .transpose()?;
    let query = Query {
        series: q.series,
        from,
        to,
        matchers: matchers(q.matchers.as_deref())?,
        every,
        aggs,
        group_by: list(q.group_by.as_deref()),
    };
    let engine = Arc::clone(&api.engine);
    let result = tokio::task::spawn_blocking(move || engine.query(&query))
        .await
        .map_err(crate::Error::from)?
        .map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(result).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastParams {
    #[serde(rename = "where")]
    matchers: Option<String>,
}

async fn last(State(api): Shared, Path(series): Path<String>, Params(p): Params<LastParams>) -> ApiResult<Json<Value>> {
    let matchers = matchers(p.matchers.as_deref())?;
    let engine = Arc::clone(&api.engine);
    let rows = tokio::task::spawn_blocking(move || engine.last(&series, &matchers))
        .await
        .map_err(crate::Error::from)?
        .map_err(crate::Error::from)?;
    let rows: Vec<Value> = rows.iter().map(|r| json!({ "tags": r.tags, "time": r.time, "value": r.value })).collect();
    Ok(Json(Value::Array(rows)))
}

async fn stats(State(api): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(serde_json::to_value(api.engine.stats()).map_err(crate::Error::from)?))
}
