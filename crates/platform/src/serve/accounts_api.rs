//! The accounts service's HTTP API: open, deposit, withdraw, transfer,
//! freeze, unfreeze, close, balance, event history and the statement
//! (balance after every event, from the `accounts.statement` read model). A transfer answers
//! 202 once the debit is stored; the saga credits the target over the bus.

use std::sync::Arc;

use accounts::{AccountCommand, Accounts, LinePage, Statements};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain_core::{Currency, Money};
use serde::Deserialize;
use serde_json::Value;

use super::http::{ApiError, ApiResult, Body};
use crate::accounts_cli::{account_json, history_json, statement_json};

#[derive(Debug)]
pub struct AccountsApi {
    pub accounts: Accounts,
    pub statements: Statements,
}

type Shared = State<Arc<AccountsApi>>;

pub fn router(api: Arc<AccountsApi>) -> Router {
    Router::new()
        .route("/accounts", post(open))
        .route("/accounts/{id}", get(show))
        .route("/accounts/{id}/events", get(events))
        .route("/accounts/{id}/statement", get(statement))
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}/withdraw", post(withdraw))
        .route("/accounts/{id}/transfer", post(transfer))
        .route("/accounts/{id}/freeze", post(freeze))
        .route("/accounts/{id}/unfreeze", post(unfreeze))
        .route("/accounts/{id}/close", post(close))
        .route("/ledger/audit", get(audit))
        .with_state(api)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Open {
    account_id: String,
    holder: String,
    #[serde(default)]
    currency: Option<String>,
    /// A decimal string; "0" when absent.
    #[serde(default)]
    initial_balance: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Movement {
    /// A decimal string in the account's currency ("500", "500.00").
    amount: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    to: String,
    amount: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Freeze {
    #[serde(default)]
    reason: String,
}

fn money(field: &str, text: &str, currency: Currency) -> ApiResult<Money> {
    Money::parse(text, currency).map_err(|e| ApiError::field(field, e.to_string()))
}

/// The account's currency, or 404 when it was never opened.
async fn currency_of(api: &AccountsApi, id: &str) -> ApiResult<Currency> {
    let account = api.accounts.get_by_id(id).await.map_err(crate::Error::from)?;
    account.state().currency.ok_or_else(|| ApiError::not_found(format!("account `{id}` has no currency")))
}

async fn command(api: &AccountsApi, id: &str, command: AccountCommand) -> ApiResult<Json<Value>> {
    api.accounts.execute(id, command, None).await.map_err(crate::Error::from)?;
    let root = api.accounts.load(id).await.map_err(crate::Error::from)?;
    Ok(Json(account_json(&root)))
}

async fn open(State(api): Shared, Body(b): Body<Open>) -> ApiResult<(StatusCode, Json<Value>)> {
    let currency: Currency = match b.currency.as_deref() {
        None => Currency::CNY,
        Some(c) => c.parse().map_err(|e: domain_core::Error| ApiError::field("currency", e.to_string()))?,
    };
    let initial = money("initial_balance", b.initial_balance.as_deref().unwrap_or("0"), currency)?;
    let root = api.accounts.open(&b.account_id, &b.holder, initial).await.map_err(crate::Error::from)?;
    Ok((StatusCode::CREATED, Json(account_json(&root))))
}

async fn deposit(State(api): Shared, Path(id): Path<String>, Body(b): Body<Movement>) -> ApiResult<Json<Value>> {
    let amount = money("amount", &b.amount, currency_of(&api, &id).await?)?;
    command(&api, &id, AccountCommand::Deposit { amount, description: b.description }).await
}

async fn withdraw(State(api): Shared, Path(id): Path<String>, Body(b): Body<Movement>) -> ApiResult<Json<Value>> {
    let amount = money("amount", &b.amount, currency_of(&api, &id).await?)?;
    command(&api, &id, AccountCommand::Withdraw { amount, description: b.description }).await
}

async fn transfer(
    State(api): Shared,
    Path(id): Path<String>,
    Body(b): Body<Transfer>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let amount = money("amount", &b.amount, currency_of(&api, &id).await?)?;
    let (root, transfer_id) =
        api.accounts.transfer(&id, &b.to, amount, &b.description).await.map_err(crate::Error::from)?;
    let mut body = account_json(&root);
    body["transfer_id"] = Value::String(transfer_id);
    Ok((StatusCode::ACCEPTED, Json(body)))
}

async fn freeze(State(api): Shared, Path(id): Path<String>, Body(b): Body<Freeze>) -> ApiResult<Json<Value>> {
    command(&api, &id, AccountCommand::Freeze { reason: b.reason }).await
}

async fn unfreeze(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    command(&api, &id, AccountCommand::Unfreeze).await
}

async fn close(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    command(&api, &id, AccountCommand::Close).await
}

async fn show(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let root = api.accounts.get_by_id(&id).await.map_err(crate::Error::from)?;
    Ok(Json(account_json(&root)))
}

async fn events(State(api): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let rows = history_json(&api.accounts, &id).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("account `{id}` does not exist")));
    }
    Ok(Json(Value::Array(rows)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    /// The first line's version (1 when absent).
    from: Option<u64>,
    /// Lines to return (100 when absent, at most 10,000).
    limit: Option<usize>,
}

async fn statement(State(api): Shared, Path(id): Path<String>, Query(q): Query<Page>) -> ApiResult<Json<Value>> {
    let first = LinePage::first();
    let page =
        LinePage::new(q.from.unwrap_or(first.from), q.limit.unwrap_or(first.limit)).map_err(crate::Error::from)?;
    let statement = api.statements.statement(&id, page).await.map_err(crate::Error::from)?;
    Ok(Json(statement_json(&statement)))
}

/// The ledger audit: balances per currency, money in flight, saga counts,
/// and whether money was conserved at every position of the log.
async fn audit(State(api): Shared) -> ApiResult<Json<Value>> {
    let audit = accounts::ledger::audit(&api.accounts).await.map_err(crate::Error::from)?;
    Ok(Json(serde_json::to_value(audit).map_err(crate::Error::from)?))
}
