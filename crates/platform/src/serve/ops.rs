//! What every service answers besides its API: `/healthz` (the process
//! runs), `/readyz` (the bus and every context's storage answer now, and
//! no consumer or relay task has failed), `/metrics` (Prometheus text),
//! `/openapi.json` (the checked-in document of the API) and `/projections`
//! (status, rebuild and resume of the read models' projections).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain_core::bus::EventBus;
use event_store::EventStore;
use serde_json::{Value, json};

use super::Contexts;
use super::config::ServeConfig;
use super::http::ApiResult;
use super::metrics::{GroupSample, Metrics, RelaySample};
use crate::node::Live;
use crate::projections::{Projections, rebuilt_json, status_json};

/// The OpenAPI document, checked in at `docs/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// How long one readiness check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage a readiness probe reads.
#[derive(Debug)]
enum Probe {
    Store(&'static str, Arc<dyn EventStore>),
    Registry(Arc<mesh_registry::registry::Registry>),
    Lake(lake::Lake),
    Timeseries(Arc<timeseries::Engine>),
}

#[derive(Debug)]
pub struct Ops {
    pub metrics: Arc<Metrics>,
    bus: Arc<dyn EventBus>,
    live: Arc<Live>,
    probes: Vec<Probe>,
    contexts: Vec<&'static str>,
    pub projections: Projections,
}

impl Ops {
    pub fn new(bus: Arc<dyn EventBus>, live: Arc<Live>, c: &Contexts, config: &ServeConfig) -> Self {
        let mut probes = Vec::new();
        let mut runners = Vec::new();
        if let Some(o) = &c.orders {
            probes.push(Probe::Store("orders", Arc::clone(o.orders.store())));
            runners.push(o.orders.projector().runner().clone());
        }
        if let Some(a) = &c.accounts {
            probes.push(Probe::Store("accounts", Arc::clone(a.accounts.store())));
            runners.push(a.statements.runner().clone());
        }
        if let Some(r) = &c.registry {
            probes.push(Probe::Registry(Arc::clone(&r.registry)));
        }
        if let Some(l) = &c.lake {
            probes.push(Probe::Lake(l.lake.clone()));
        }
        if let Some(t) = &c.timeseries {
            probes.push(Probe::Timeseries(Arc::clone(&t.engine)));
        }
        let contexts = config.contexts.iter().map(|c| c.as_str()).collect();
        Self { metrics: Arc::default(), bus, live, probes, contexts, projections: Projections::new(runners) }
    }
}

type Shared = State<Arc<Ops>>;

pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/projections", get(projection_list))
        .route("/projections/{name}", get(projection_status))
        .route("/projections/{name}/rebuild", post(projection_rebuild))
        .route("/projections/{name}/resume", post(projection_resume))
        .with_state(ops)
}

/// Every projection's status.
async fn projection_list(State(ops): Shared) -> ApiResult<Json<Value>> {
    let statuses = ops.projections.statuses(None).await?;
    Ok(Json(Value::Array(statuses.iter().map(status_json).collect())))
}

async fn projection_status(State(ops): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let statuses = ops.projections.statuses(Some(&name)).await?;
    Ok(Json(statuses.first().map(status_json).unwrap_or(Value::Null)))
}

/// Rebuilds into a fresh copy while the current one answers; returns
/// once switched over.
async fn projection_rebuild(State(ops): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let runner = ops.projections.get(&name)?;
    let rebuilt = runner.rebuild().await.map_err(crate::Error::from)?;
    Ok(Json(rebuilt_json(&rebuilt)))
}

async fn projection_resume(State(ops): Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let runner = ops.projections.get(&name)?;
    let position = runner.resume().await.map_err(crate::Error::from)?;
    Ok(Json(json!({ "name": name, "position": position })))
}

async fn healthz(State(ops): Shared) -> Json<Value> {
    Json(json!({ "status": "ok", "contexts": ops.contexts }))
}

/// Reads from the probe's storage; the error stays typed until the answer
/// renders it.
async fn check(probe: &Probe) -> crate::Result<()> {
    match probe {
        Probe::Store(_, s) => s.head_position().await.map(|_| ())?,
        Probe::Registry(r) => r.ping().await?,
        Probe::Lake(l) => l.tables().await.map(|_| ())?,
        Probe::Timeseries(t) => {
            let _ = t.stats();
        }
    }
    Ok(())
}

fn name(probe: &Probe) -> &'static str {
    match probe {
        Probe::Store(n, _) => n,
        Probe::Registry(_) => "registry",
        Probe::Lake(_) => "lake",
        Probe::Timeseries(_) => "timeseries",
    }
}

async fn readyz(State(ops): Shared) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let mut record = |what: &str, failure: Option<String>| {
        ready &= failure.is_none();
        let check = failure.map_or_else(|| json!({ "ok": true }), |e| json!({ "ok": false, "error": e }));
        checks.insert(what.to_owned(), check);
    };
    let timed_out = || Some("timed out".to_owned());
    match tokio::time::timeout(PROBE_TIMEOUT, ops.bus.ping()).await {
        Ok(r) => record("bus", r.err().map(|e| e.to_string())),
        Err(_) => record("bus", timed_out()),
    }
    for p in &ops.probes {
        match tokio::time::timeout(PROBE_TIMEOUT, check(p)).await {
            Ok(r) => record(name(p), r.err().map(|e| e.to_string())),
            Err(_) => record(name(p), timed_out()),
        }
    }
    record("workers", ops.live.failure());
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready, "checks": checks })))
}

async fn metrics(State(ops): Shared) -> impl IntoResponse {
    let groups: Vec<GroupSample> = ops
        .live
        .groups()
        .into_iter()
        .map(|(group, g)| GroupSample {
            group,
            handled: g.stats.handled,
            failed: g.stats.retries + g.stats.dead_lettered,
            dead_lettered: g.stats.dead_lettered,
            deduplicated: g.duplicates,
            lag: g.lag,
        })
        .collect();
    let relays: Vec<RelaySample> = ops
        .live
        .relays()
        .into_iter()
        .map(|(name, r)| RelaySample {
            // `outbox.<context>.<bus>`
            context: name.split('.').nth(1).unwrap_or(&name).to_owned(),
            published: r.stats.published,
            failed_attempts: r.stats.failed_attempts,
            lag: r.lag,
        })
        .collect();
    let mut text = ops.metrics.render(&groups, &relays);
    // A projection whose status cannot be read now is left out of this scrape.
    match ops.projections.statuses(None).await {
        Ok(statuses) => text.push_str(&super::metrics::projections(&statuses)),
        Err(error) => tracing::warn!(%error, "projection status unavailable for /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(METHOD, /path)` of every route the routers declare, read from
    /// their source, so a route added without a line in the document fails.
    fn declared() -> BTreeSet<(String, String)> {
        let sources = [
            include_str!("ops.rs"),
            include_str!("orders_api.rs"),
            include_str!("accounts_api.rs"),
            include_str!("registry_api.rs"),
            include_str!("lake_api.rs"),
            include_str!("ts_api.rs"),
        ];
        let mut out = BTreeSet::new();
        for src in sources {
            for line in src.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
                // axum's catch-all `{*rest}` is OpenAPI's `{rest}`.
                let path =
                    line.trim_start_matches(".route(\"").split('"').next().unwrap_or_default().replace("{*", "{");
                let methods = line.split(", ").nth(1).unwrap_or_default();
                for m in ["get", "post", "put", "delete"] {
                    if methods.starts_with(&format!("{m}(")) || methods.contains(&format!(".{m}(")) {
                        out.insert((m.to_uppercase(), path.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_document_lists_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("docs/openapi.json parses");
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "delete"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
                let op = &item[method];
                assert!(op["responses"].is_object(), "{method} {path} documents its responses");
            }
        }
        let declared = declared();
        assert!(declared.len() > 30, "the source scan found the routes: {declared:?}");
        let missing: Vec<_> = declared.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&declared).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(stale.is_empty(), "documented but not served: {stale:?}");
    }
}
