//! The mesh registry's HTTP API: products, ranked search, a product's
//! named queries, contracts (upload ODCS YAML, export, diff) and quality.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_registry::contract::Contract;
use mesh_registry::product::ProductStatus;
use mesh_registry::registry::Registry;
use mesh_registry::search::SearchFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{ApiError, ApiResult, Body, Params};
use crate::registry_cli::{diff_json, product_row_json, products_with_quality, search_json};

#[derive(Debug)]
pub struct RegistryApi {
    pub registry: Arc<Registry>,
}

type Shared = State<Arc<RegistryApi>>;

pub fn router(api: Arc<RegistryApi>) -> Router {
    Router::new()
        .route("/registry/products", get(products))
        .route("/registry/products/{id}", get(product))
        .route("/registry/products/{id}/quality", get(quality))
        .route("/registry/products/{id}/query/{endpoint}", get(query))
        .route("/registry/search", get(search))
        .route("/registry/contracts", post(register))
        .route("/registry/contracts/{id}", get(export))
        .route("/registry/diff", post(diff))
        .with_state(api)
}

fn text(bytes: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))
}

async fn products(State(api): Shared) -> ApiResult<Json<Value>> {
    let rows = products_with_quality(&api.registry).await?;
    Ok(Json(Value::Array(rows.iter().map(|(p, q)| product_row_json(p, *q)).collect())))
}

async fn product(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let p = api.registry.product(&id).await.map_err(crate::Error::from)?;
    let quality = api.registry.quality(&id).await.map_err(crate::Error::from)?;
    Ok(Json(json!({ "product": p, "endpoints": p.endpoints(), "quality": quality })))
}

async fn quality(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let quality = api.registry.quality(&id).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(quality).map_err(crate::Error::from)?))
}

/// The query string is the named query's parameters.
async fn query(
    State(api): Shared,
    Path((id, endpoint)): Path<(String, String)>,
    Params(params): Params<BTreeMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let answer = api.registry.query(&id, &endpoint, &params).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(answer).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    q: Option<String>,
    domain: Option<String>,
    tag: Option<String>,
    owner: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn search(State(api): Shared, Params(s): Params<Search>) -> ApiResult<Json<Value>> {
    let q =
        s.q.filter(|q| !q.trim().is_empty())
            .ok_or_else(|| ApiError::field("q", "give the words to search for: ?q=customer"))?;
    if let Some(status) = &s.status {
        status.parse::<ProductStatus>().map_err(|e| ApiError::field("status", e.to_string()))?;
    }
    let limit = s.limit.unwrap_or(10);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "limit is 1 to 1000"));
    }
    let filter = SearchFilter { domain: s.domain, owner: s.owner, tag: s.tag, status: s.status };
    let results = api.registry.search(&q, &filter, limit).map_err(crate::Error::from)?;
    Ok(Json(search_json(&q, &results)))
}

/// A YAML stream of contracts and products; all of it registers or none.
async fn register(State(api): Shared, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let done = api.registry.register_text("request body", text(&body)?).await.map_err(crate::Error::from)?;
    let status =
        if done.contracts.is_empty() && done.products.is_empty() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(serde_json::to_value(done).map_err(crate::Error::from)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Version {
    version: Option<String>,
}

async fn export(
    State(api): Shared,
    Path(id): Path<String>,
    Params(v): Params<Version>,
) -> ApiResult<impl IntoResponse> {
    let yaml = api.registry.export(&id, v.version.as_deref()).await.map_err(crate::Error::from)?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], yaml))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Diff {
    /// The old contract, ODCS YAML.
    old: String,
    /// The new contract, ODCS YAML.
    new: String,
}

async fn diff(Body(d): Body<Diff>) -> ApiResult<Json<Value>> {
    let a = Contract::from_yaml("old", &d.old)
        .map_err(|e| ApiError { field: Some("old".into()), ..crate::Error::from(e).into() })?;
    let b = Contract::from_yaml("new", &d.new)
        .map_err(|e| ApiError { field: Some("new".into()), ..crate::Error::from(e).into() })?;
    Ok(Json(diff_json(&a, &b)))
}
