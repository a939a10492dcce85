//! [`CommercePort`] on the orders and accounts services: each command is
//! the HTTP call a client of those services makes, each read a replay of
//! the events the service returns, and "settled" is read from the
//! services' own metrics.

use std::time::Duration;

use accounts::AccountCommand;
use accounts::ledger::Audit;
use async_trait::async_trait;
use domain_core::Money;
use orders::OrderCommand;
use serde_json::{Value, json};

use super::Endpoint;
use crate::commerce::{CommercePort, Recorded};
use crate::error::{Error, Result};
use crate::serve::exposition::sum;

/// How often settling reads the metrics.
const POLL: Duration = Duration::from_millis(250);
/// How long nothing may move before the sagas count as settled: longer
/// than librdkafka's statistics interval (2 s), which the consumer lag in
/// `/metrics` comes from, so a lag of 0 is one measured after the last
/// record was relayed.
const QUIET: Duration = Duration::from_millis(2_500);

/// The orders and accounts services.
#[derive(Debug, Clone)]
pub struct RemoteCommerce {
    pub orders: Endpoint,
    pub accounts: Endpoint,
}

fn path_id(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The rows of an `/events` answer as recorded events.
fn recorded(rows: &Value) -> Result<Vec<Recorded>> {
    let bad = |why: &str| Error::Usage(format!("an event history row {why}: {rows}"));
    let mut out = Vec::new();
    for row in rows.as_array().ok_or_else(|| bad("list is not an array"))? {
        let time = row["timestamp"].as_str().ok_or_else(|| bad("has no timestamp"))?;
        out.push(Recorded {
            version: row["version"].as_u64().ok_or_else(|| bad("has no version"))?,
            time: chrono::DateTime::parse_from_rfc3339(time)
                .map_err(|e| bad(&format!("has a bad timestamp ({e})")))?
                .to_utc(),
            event_type: row["type"].as_str().ok_or_else(|| bad("has no type"))?.parse()?,
            data: row["data"].clone(),
        });
    }
    Ok(out)
}

impl RemoteCommerce {
    async fn history(endpoint: &Endpoint, path: &str) -> Result<Vec<Recorded>> {
        let reply = endpoint.send("GET", path, None).await?;
        match reply.status {
            404 => Ok(Vec::new()),
            s if (200..300).contains(&s) => recorded(&reply.json()?),
            _ => Err(endpoint.refused("GET", path, &reply)),
        }
    }

    /// What moves while the sagas work: events handled, relayed and
    /// waiting, summed over both services.
    async fn activity(&self) -> Result<(f64, f64, f64)> {
        let (mut handled, mut relayed, mut waiting) = (0.0, 0.0, 0.0);
        for endpoint in [&self.orders, &self.accounts] {
            let m = endpoint.metrics().await?;
            handled += sum(&m, "platform_events_handled_total", &[]);
            relayed += sum(&m, "platform_outbox_published_total", &[]);
            waiting += sum(&m, "platform_outbox_lag_events", &[]) + sum(&m, "platform_consumer_lag_records", &[]);
        }
        Ok((handled, relayed, waiting))
    }
}

#[async_trait]
impl CommercePort for RemoteCommerce {
    async fn open_account(&mut self, id: &str, holder: &str, initial: Money) -> Result<()> {
        let body = json!({
            "account_id": id,
            "holder": holder,
            "currency": initial.currency.to_string(),
            "initial_balance": initial.to_minor_string(),
        });
        self.accounts.call("POST", "/accounts", Some(&body)).await.map(drop)
    }

    async fn run_account(&mut self, id: &str, command: AccountCommand) -> Result<()> {
        let (action, body) = match command {
            AccountCommand::Deposit { amount, description } => {
                ("deposit", json!({ "amount": amount.to_minor_string(), "description": description }))
            }
            AccountCommand::Withdraw { amount, description } => {
                ("withdraw", json!({ "amount": amount.to_minor_string(), "description": description }))
            }
            AccountCommand::Freeze { reason } => ("freeze", json!({ "reason": reason })),
            AccountCommand::Unfreeze => ("unfreeze", json!({})),
            AccountCommand::Close => ("close", json!({})),
            other => return Err(Error::Usage(format!("the accounts API has no call for {other:?}"))),
        };
        let path = format!("/accounts/{}/{action}", path_id(id));
        self.accounts.call("POST", &path, Some(&body)).await.map(drop)
    }

    async fn start_transfer(&mut self, from: &str, to: &str, amount: Money, description: &str) -> Result<bool> {
        let path = format!("/accounts/{}/transfer", path_id(from));
        let body = json!({ "to": to, "amount": amount.to_minor_string(), "description": description });
        let reply = self.accounts.send("POST", &path, Some(&body)).await?;
        match reply.status {
            s if (200..300).contains(&s) => Ok(true),
            // Not opened, refused by a rule (frozen, funds), or invalid
            // for it (currency): what the in-process port calls a
            // refusal of the account.
            404 | 409 | 422 => Ok(false),
            _ => Err(self.accounts.refused("POST", &path, &reply)),
        }
    }

    async fn account_history(&mut self, id: &str) -> Result<Vec<Recorded>> {
        Self::history(&self.accounts, &format!("/accounts/{}/events", path_id(id))).await
    }

    async fn run_order(&mut self, id: &str, command: OrderCommand) -> Result<()> {
        let at = |action: &str| format!("/orders/{}/{action}", path_id(id));
        let (path, body) = match command {
            OrderCommand::Create { customer, currency } => (
                "/orders".to_owned(),
                json!({
                    "order_id": id,
                    "customer_id": customer.customer_id(),
                    "name": customer.name(),
                    "email": customer.email(),
                    "phone": customer.phone(),
                    "currency": currency.to_string(),
                }),
            ),
            OrderCommand::AddItem { product_id, quantity, unit_price } => (
                at("items"),
                json!({ "product_id": product_id, "quantity": quantity, "unit_price": unit_price.to_minor_string() }),
            ),
            OrderCommand::Confirm { payment_account_id } => {
                (at("confirm"), json!({ "payment_account_id": payment_account_id }))
            }
            OrderCommand::Ship { shipping_address } => (at("ship"), json!({ "address": shipping_address })),
            OrderCommand::Deliver => (at("deliver"), json!({})),
            OrderCommand::Cancel { reason } => (at("cancel"), json!({ "reason": reason })),
            other => return Err(Error::Usage(format!("the orders API has no call for {other:?}"))),
        };
        self.orders.call("POST", &path, Some(&body)).await.map(drop)
    }

    async fn order_history(&mut self, id: &str) -> Result<Vec<Recorded>> {
        Self::history(&self.orders, &format!("/orders/{}/events", path_id(id))).await
    }

    async fn wait_settled(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = self.activity().await?;
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let now = self.activity().await?;
            if now != last || now.2 > 0.0 {
                last = now;
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotSettled { waiting: now.2 as usize, seconds: timeout.as_secs() });
            }
        }
    }

    async fn audit(&mut self) -> Result<Audit> {
        let body = self.accounts.call("GET", "/ledger/audit", None).await?;
        Ok(serde_json::from_value(body)?)
    }
}
