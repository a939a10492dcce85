//! The lake service's HTTP API: tables with their statistics, a table's
//! commit history, read-only SQL (anything that would write is refused
//! before it runs), and a refinement run on demand with the last one's report.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use lake::Lake;
use lake::bronze::files::FileOutcome;
use lake::port::{LakePort, LocalLake, Pipeline};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{ApiError, ApiResult, Body, Params};

/// Rows one SQL answer carries at most; more are cut and flagged.
pub const MAX_ROWS: usize = 10_000;

#[derive(Debug)]
pub struct LakeApi {
    pub lake: Lake,
    /// Uploads, pipelines and objects: the seed's step-by-step calls.
    pub port: LocalLake,
    pub refiner: Arc<super::refine::Refiner>,
}

type Shared = State<Arc<LakeApi>>;

pub fn router(api: Arc<LakeApi>) -> Router {
    Router::new()
        .route("/lake/tables", get(tables))
        .route("/lake/tables/{table}/history", get(history))
        .route("/lake/tables/{table}/objects", get(objects))
        .route("/lake/sql", post(sql))
        .route("/lake/landing/{*path}", post(upload))
        .route("/lake/pipelines", post(pipeline))
        .route("/lake/refine", post(refine).get(last_refined))
        .with_state(api)
}

async fn tables(State(api): Shared) -> ApiResult<Json<Value>> {
    let stats = api.lake.stats().await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(stats).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<usize>,
}

async fn history(State(api): Shared, Path(table): Path<String>, Params(l): Params<Limit>) -> ApiResult<Json<Value>> {
    let t = api.lake.table_named(&table).await.map_err(crate::Error::from)?;
    let entries = t.history(l.limit).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(entries).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sql {
    sql: String,
}

async fn sql(State(api): Shared, Body(q): Body<Sql>) -> ApiResult<Json<Value>> {
    if q.sql.trim().is_empty() {
        return Err(ApiError::field("sql", "give a query: {\"sql\": \"SELECT ...\"}"));
    }
    let batches = api.lake.query(&q.sql).await.map_err(crate::Error::from)?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut kept = Vec::new();
    let mut left = MAX_ROWS;
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        kept.push(b.slice(0, take));
        left -= take;
    }
    let rows = lake::rows_json(&kept).map_err(crate::Error::from)?;
    Ok(Json(json!({ "rows": rows, "row_count": total, "truncated": total > MAX_ROWS })))
}

/// Runs bronze -> silver -> gold now and answers with what it did.
async fn refine(State(api): Shared) -> ApiResult<Json<Value>> {
    let done = api.refiner.run_once().await?;
    Ok(Json(serde_json::to_value(done).map_err(crate::Error::from)?))
}

/// The last refinement that succeeded, and the run counts.
async fn last_refined(State(api): Shared) -> ApiResult<Json<Value>> {
    let (runs, failures) = api.refiner.counts();
    Ok(Json(json!({ "runs": runs, "failures": failures, "last": api.refiner.last() })))
}

/// The seed's `upload_object`: the body lands at `path` in the landing
/// folder and is ingested into bronze. 201 ingested, 200 already ingested
/// (same file, same bytes), 422 refused (the file is kept in `rejected/`).
async fn upload(State(api): Shared, Path(path): Path<String>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let outcome = api.port.upload(&path, &body).await.map_err(crate::Error::from)?;
    let answer = serde_json::to_value(&outcome).map_err(crate::Error::from)?;
    match &outcome {
        FileOutcome::Ingested { .. } => Ok((StatusCode::CREATED, Json(answer))),
        FileOutcome::AlreadyIngested { .. } => Ok((StatusCode::OK, Json(answer))),
        FileOutcome::Rejected { reason, .. } => {
            let error = json!({ "code": "rejected", "message": format!("{path}: {reason}"), "field": "body" });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": error, "outcome": answer }))))
        }
    }
}

/// The seed's `DataPipeline`: a query that replaces a silver or gold
/// partition in one commit.
async fn pipeline(State(api): Shared, Body(p): Body<Pipeline>) -> ApiResult<Json<Value>> {
    if p.sql.trim().is_empty() {
        return Err(ApiError::field("sql", "give the query that computes the target's rows"));
    }
    let run = api.port.run_pipeline(&p).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(run).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partition {
    /// `key=value`, e.g. `date=2023-01-01`.
    partition: Option<String>,
}

/// The seed's `get_objects_by_partition`.
async fn objects(
    State(api): Shared,
    Path(table): Path<String>,
    Params(p): Params<Partition>,
) -> ApiResult<Json<Value>> {
    let id: lake::TableId =
        table.parse().map_err(|_| crate::Error::from(lake::Error::InvalidTableName(table.clone())))?;
    let partition = match p.partition.as_deref() {
        None => None,
        Some(text) => Some(
            text.split_once('=')
                .ok_or_else(|| ApiError::field("partition", format!("`{text}` is not key=value (date=2023-01-01)")))?,
        ),
    };
    let objects = api.port.objects(&id, partition).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(objects).map_err(crate::Error::from)?))
}
