//! The lake service's HTTP API: tables with their statistics, a table's
//! commit history, read-only SQL (anything that would write is refused
//! before it runs), and a refinement run on demand with the last one's report.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use lake::Lake;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{ApiError, ApiResult, Body, Params};

/// Rows one SQL answer carries at most; more are cut and flagged.
pub const MAX_ROWS: usize = 10_000;

#[derive(Debug)]
pub struct LakeApi {
    pub lake: Lake,
    pub refiner: Arc<super::refine::Refiner>,
}

type Shared = State<Arc<LakeApi>>;

pub fn router(api: Arc<LakeApi>) -> Router {
    Router::new()
        .route("/lake/tables", get(tables))
        .route("/lake/tables/{table}/history", get(history))
        .route("/lake/sql", post(sql))
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
