//! The seed's registry, time-series and lake scenarios against the
//! services, through their HTTP APIs only; each ends in the same summary
//! code the in-process demo uses.

use std::time::Duration;

use mesh_registry::product::DataProduct;
use mesh_registry::registry::PortQuality;
use orders::customers;
use serde_json::{Value, json};
use timeseries::query::{Query, QueryResult};

use super::Endpoint;
use crate::error::{Error, Result};

/// How long a scenario waits for the services to see what flowed.
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

fn path_id(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Polls `step` until it gives a value, for at most [`WAIT`].
async fn eventually<T>(what: &str, mut step: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = step().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Usage(format!("{what} did not happen within {} s", WAIT.as_secs())));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn product(registry: &Endpoint, id: &str) -> Result<DataProduct> {
    let body = registry.call("GET", &format!("/registry/products/{}", path_id(id)), None).await?;
    Ok(serde_json::from_value(body["product"].clone())?)
}

async fn named_query(registry: &Endpoint, endpoint: &str, params: &str) -> Result<Value> {
    let path = format!("/registry/products/{}/query/{endpoint}{params}", customers::PRODUCT_ID);
    registry.call("GET", &path, None).await
}

/// `demo_data_mesh` on the services: the orders service announces the
/// customer product when it starts and owns the seed's customers (written
/// here with `PUT /customers/{id}`); the registry service registers the
/// announcement, measures the records on `orders.events` against the
/// contract, and answers the query, the search and the quality.
pub async fn data_mesh(orders: &Endpoint, registry: &Endpoint) -> Result<Value> {
    let product_path = format!("/registry/products/{}", customers::PRODUCT_ID);
    eventually("the registry registering the customer product", async || {
        Ok((registry.send("GET", &product_path, None).await?.status == 200).then_some(()))
    })
    .await?;
    let seed = customers::seed_customers();
    for p in &seed {
        let body = json!({
            "name": p.name,
            "email": p.email,
            "registration_date": p.registration_date,
            "status": p.status,
            "segment": p.segment,
        });
        orders.call("PUT", &format!("/customers/{}", path_id(&p.customer_id)), Some(&body)).await?;
    }
    let quality_path = format!("{product_path}/quality");
    let measured = eventually("the registry measuring the seed's customers", async || {
        let ports: Vec<PortQuality> = serde_json::from_value(registry.call("GET", &quality_path, None).await?)?;
        Ok(ports.into_iter().find_map(|p| p.measurement).filter(|m| m.totals.records >= seed.len() as u64))
    })
    .await?;
    let customer = named_query(registry, "get_customer_by_id", "?customer_id=cust_001").await?;
    let customer = match customer {
        Value::Array(mut vs) => vs.pop().unwrap_or(Value::Null),
        one => one,
    };
    let all = match named_query(registry, "get_all_customers", "").await? {
        Value::Array(vs) => vs,
        one => vec![one],
    };
    let found = registry.call("GET", "/registry/search?q=customer&limit=10", None).await?;
    let mut search_results = Vec::new();
    for hit in found["hits"].as_array().into_iter().flatten() {
        let id = hit["id"].as_str().unwrap_or_default();
        let p = product(registry, id).await?;
        search_results.push(json!({ "id": p.id, "name": p.name, "description": p.description, "score": hit["score"] }));
    }
    let mut products = Vec::new();
    for row in registry.call("GET", "/registry/products", None).await?.as_array().into_iter().flatten() {
        products.push(product(registry, row["id"].as_str().unwrap_or_default()).await?);
    }
    let registered = product(registry, customers::PRODUCT_ID).await?;
    Ok(crate::mesh::summary(&registered, customer, all, search_results, &measured, &products))
}

/// The query string of `q` for `GET /ts/query`.
fn query_string(q: &Query) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    params
        .append_pair("series", &q.series)
        .append_pair("from", &q.from.to_string())
        .append_pair("to", &q.to.to_string());
    let matchers: Vec<String> = q.matchers.iter().map(ToString::to_string).collect();
    if !matchers.is_empty() {
        params.append_pair("where", &matchers.join(";"));
    }
    if let Some(every) = q.every {
        params.append_pair("every", &every.to_string());
        let aggs: Vec<String> = q.aggs.iter().map(ToString::to_string).collect();
        params.append_pair("agg", &aggs.join(","));
    }
    if !q.group_by.is_empty() {
        params.append_pair("group_by", &q.group_by.join(","));
    }
    params.finish()
}

async fn ts_query(ts: &Endpoint, q: &Query) -> Result<QueryResult> {
    Ok(serde_json::from_value(ts.call("GET", &format!("/ts/query?{}", query_string(q)), None).await?)?)
}

/// The seed's points as InfluxDB line protocol (nanosecond timestamps).
fn line_protocol(points: &[timeseries::model::Point]) -> String {
    let mut out = String::new();
    for p in points {
        out.push_str(&p.series);
        for (k, v) in &p.tags {
            out.push_str(&format!(",{k}={v}"));
        }
        out.push_str(&format!(" value={:?} {}\n", p.value, p.timestamp));
    }
    out
}

/// `demo_time_series_modeling` on the time-series service: the seed's
/// points written as line protocol (the series is created by its first
/// write, as InfluxDB creates a measurement), then the seed's two queries.
pub async fn time_series(ts: &Endpoint) -> Result<timeseries::scenario::Report> {
    let points = timeseries::scenario::points();
    let body = line_protocol(&points);
    let reply = ts.send_bytes("POST", "/write?precision=ns", "text/plain; charset=utf-8", body.as_bytes()).await?;
    if reply.status != 204 {
        return Err(ts.refused("POST", "/write", &reply));
    }
    let (raw, aggregated) = timeseries::scenario::queries();
    let (raw, aggregated) = (ts_query(ts, &raw).await?, ts_query(ts, &aggregated).await?);
    Ok(timeseries::scenario::report(points.len(), &raw, &aggregated))
}

/// The report's temperature per city, from the time-series service.
pub async fn per_city(ts: &Endpoint) -> Result<Vec<timeseries::scenario::CityHours>> {
    Ok(timeseries::scenario::per_city(&ts_query(ts, &timeseries::scenario::per_city_query()).await?))
}
