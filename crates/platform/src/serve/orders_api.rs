//! The orders service's HTTP API: the order's life cycle, the seed's
//! `find_by_customer`, and the customer master data the orders context owns
//! (each change is a `CustomerRegistered`/`CustomerUpdated` event on
//! `orders.events`, the `customer_data_v1` product's port). A command answers once its events are stored; the
//! payment and refund sagas go on over the bus (`confirm` and `cancel`
//! answer 202 with the order as it is then).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain_core::{Currency, Money};
use orders::customers::{CustomerProfile, CustomerStatus, Customers};
use orders::{CustomerInfo, EventSourcedOrders, OrderCommand, OrderRepository};
use serde::Deserialize;
use serde_json::Value;

use super::http::{ApiError, ApiResult, Body, Params};
use crate::orders_cli::order_json;

/// Conflict retries of one command.
const RETRIES: u32 = 50;

#[derive(Debug)]
pub struct OrdersApi {
    pub orders: EventSourcedOrders,
    pub customers: Customers,
}

type Shared = State<Arc<OrdersApi>>;

pub fn router(api: Arc<OrdersApi>) -> Router {
    Router::new()
        .route("/orders", post(create).get(by_customer))
        .route("/orders/{id}", get(show))
        .route("/orders/{id}/events", get(events))
        .route("/orders/{id}/items", post(add_item))
        .route("/orders/{id}/confirm", post(confirm))
        .route("/orders/{id}/ship", post(ship))
        .route("/orders/{id}/deliver", post(deliver))
        .route("/orders/{id}/cancel", post(cancel))
        .route("/customers/{id}", get(customer).put(put_customer))
        .route("/daily-orders", get(daily_orders))
        .with_state(api)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    order_id: Option<String>,
    customer_id: String,
    name: String,
    email: String,
    phone: String,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItem {
    product_id: String,
    quantity: u32,
    /// A decimal string ("99.99"): money never travels as a float.
    unit_price: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Confirm {
    payment_account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ship {
    address: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Cancel {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ByCustomer {
    customer_id: Option<String>,
}

async fn run(api: &OrdersApi, id: &str, command: OrderCommand) -> ApiResult<Value> {
    let root = api.orders.execute(id, command, None, RETRIES).await.map_err(crate::Error::from)?;
    Ok(order_json(&root))
}

async fn create(State(api): Shared, Body(b): Body<Create>) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = b.order_id.unwrap_or_else(|| format!("order_{}", uuid::Uuid::now_v7().simple()));
    let currency: Currency = match b.currency.as_deref() {
        None => Currency::CNY,
        Some(c) => c.parse().map_err(|e: domain_core::Error| ApiError::field("currency", e.to_string()))?,
    };
    let customer = CustomerInfo::new(b.customer_id, b.name, b.email, b.phone).map_err(crate::Error::from)?;
    let order = run(&api, &id, OrderCommand::Create { customer, currency }).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn add_item(State(api): Shared, Path(id): Path<String>, Body(b): Body<AddItem>) -> ApiResult<Json<Value>> {
    let current = api.orders.get_by_id(&id).await.map_err(crate::Error::from)?;
    let currency = current
        .as_ref()
        .and_then(|o| o.state().currency())
        .ok_or_else(|| ApiError::not_found(format!("order `{id}` does not exist")))?;
    let unit_price = Money::parse(&b.unit_price, currency).map_err(|e| ApiError::field("unit_price", e.to_string()))?;
    let command = OrderCommand::AddItem { product_id: b.product_id, quantity: b.quantity, unit_price };
    Ok(Json(run(&api, &id, command).await?))
}

async fn confirm(
    State(api): Shared,
    Path(id): Path<String>,
    Body(b): Body<Confirm>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let order = run(&api, &id, OrderCommand::Confirm { payment_account_id: b.payment_account_id }).await?;
    Ok((StatusCode::ACCEPTED, Json(order)))
}

async fn ship(State(api): Shared, Path(id): Path<String>, Body(b): Body<Ship>) -> ApiResult<Json<Value>> {
    Ok(Json(run(&api, &id, OrderCommand::Ship { shipping_address: b.address }).await?))
}

async fn deliver(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(run(&api, &id, OrderCommand::Deliver).await?))
}

async fn cancel(
    State(api): Shared,
    Path(id): Path<String>,
    Body(b): Body<Cancel>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let reason = b.reason.unwrap_or_else(|| "cancelled by the customer".to_owned());
    let order = run(&api, &id, OrderCommand::Cancel { reason }).await?;
    Ok((StatusCode::ACCEPTED, Json(order)))
}

async fn show(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match api.orders.get_by_id(&id).await.map_err(crate::Error::from)? {
        Some(root) => Ok(Json(order_json(&root))),
        None => Err(ApiError::not_found(format!("order `{id}` does not exist"))),
    }
}

/// Every stored event of the order, oldest first (as the accounts' history).
async fn events(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let rows: Vec<Value> = api
        .orders
        .history(&id)
        .await
        .map_err(crate::Error::from)?
        .iter()
        .map(crate::accounts_cli::recorded_json)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("order `{id}` does not exist")));
    }
    Ok(Json(Value::Array(rows)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayRange {
    from: Option<String>,
    to: Option<String>,
}

/// A `YYYY-MM-DD` query parameter.
fn date(field: &str, text: Option<&str>) -> ApiResult<Option<chrono::NaiveDate>> {
    text.map(|t| {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map_err(|_| ApiError::field(field, format!("`{t}` is not a date: use YYYY-MM-DD, e.g. 2026-12-01")))
    })
    .transpose()
}

/// Orders per day (UTC): `?from=YYYY-MM-DD&to=YYYY-MM-DD`, by default the
/// 30 days up to today.
async fn daily_orders(State(api): Shared, Params(q): Params<DayRange>) -> ApiResult<Json<Value>> {
    let to = date("to", q.to.as_deref())?.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = date("from", q.from.as_deref())?.unwrap_or_else(|| to - chrono::Days::new(29));
    if from > to {
        return Err(ApiError::field("from", format!("{from} is after to ({to})")));
    }
    let days = api.orders.daily_orders(from, to).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(days).map_err(crate::Error::from)?))
}

async fn by_customer(State(api): Shared, Query(q): Query<ByCustomer>) -> ApiResult<Json<Value>> {
    let customer = q
        .customer_id
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::field("customer_id", "give the customer: GET /orders?customer_id=cust_123"))?;
    let rows = api.orders.find_by_customer(&customer).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(rows).map_err(crate::Error::from)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    name: String,
    email: String,
    /// `YYYY-MM-DD`; today (UTC) when absent.
    registration_date: Option<chrono::NaiveDate>,
    status: Option<CustomerStatus>,
    segment: String,
}

/// Registers the customer or replaces its profile (the same profile again
/// changes nothing, so a retried PUT is harmless).
async fn put_customer(State(api): Shared, Path(id): Path<String>, Body(p): Body<Profile>) -> ApiResult<Json<Value>> {
    let date = p.registration_date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let profile =
        CustomerProfile::new(id, p.name, p.email, date, p.status.unwrap_or(CustomerStatus::Active), p.segment)
            .map_err(|e| crate::Error::from(orders::Error::from(e)))?;
    let answer = serde_json::to_value(&profile).map_err(crate::Error::from)?;
    api.customers.upsert(profile).await.map_err(crate::Error::from)?;
    Ok(Json(answer))
}

async fn customer(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match api.customers.get(&id).await.map_err(crate::Error::from)? {
        Some(p) => Ok(Json(serde_json::to_value(p).map_err(crate::Error::from)?)),
        None => Err(ApiError::not_found(format!("customer `{id}` is not registered"))),
    }
}
