//! The orders side of the payment saga: payment outcomes published by the
//! accounts context on `accounts.events`, read with this crate's own
//! tolerant types (orders never depends on the accounts crate).
//!
//! | accounts event (any version) | payload read | command |
//! | --- | --- | --- |
//! | `PaymentCaptured` | `order_id`, `amount` | [`OrderCommand::MarkPaid`] |
//! | `PaymentRejected` | `order_id`, `reason` | [`OrderCommand::RecordPaymentRejected`] |
//! | `RefundIssued` | `order_id`, `amount` | [`OrderCommand::RecordRefund`] |
//!
//! Unknown fields are ignored and every other event is skipped. Redelivery
//! is harmless because these three commands are idempotent in the
//! aggregate: a repeat finds the order already paid, cancelled or refunded
//! and records nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain_core::bus::{Delivery, Handler, SharedHandler};
use domain_core::{Envelope, Money};
use event_store::{EventStore, Repository};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::repository::event_repository;
use crate::{Order, OrderCommand, OrderError};

/// The context whose events this handler reads.
const ACCOUNTS: &str = "accounts";

#[derive(Deserialize)]
struct Captured {
    order_id: String,
    amount: Money,
}

#[derive(Deserialize)]
struct Rejected {
    order_id: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Refunded {
    order_id: String,
    amount: Money,
}

/// Turns payment outcomes into order commands, executed through the orders
/// event store with the outcome as the cause (same correlation id).
#[derive(Debug)]
pub struct PaymentOutcomeHandler {
    repository: Repository<Order>,
    conflict_retries: u32,
    /// Outcomes that found the order already paid, rejected or refunded.
    repeats: AtomicU64,
}

impl PaymentOutcomeHandler {
    /// Load-decide-append cycles tried again after a version conflict.
    pub const DEFAULT_CONFLICT_RETRIES: u32 = 20;

    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            repository: event_repository(store),
            conflict_retries: Self::DEFAULT_CONFLICT_RETRIES,
            repeats: AtomicU64::new(0),
        }
    }

    pub fn with_conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }
}

/// The order command an accounts event asks for: `None` for events this
/// side of the saga does not care about, `Rejected` for a payload it
/// cannot read.
pub(crate) fn command_for(event: &Envelope) -> domain_core::Result<Option<(String, OrderCommand)>> {
    if event.event_type.context() != ACCOUNTS {
        return Ok(None);
    }
    let (order_id, command) = match event.event_type.name() {
        "PaymentCaptured" => {
            let Captured { order_id, amount } = read(event)?;
            (order_id, OrderCommand::MarkPaid { amount })
        }
        "PaymentRejected" => {
            let Rejected { order_id, reason } = read(event)?;
            let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "unspecified".to_owned());
            (order_id, OrderCommand::RecordPaymentRejected { reason })
        }
        "RefundIssued" => {
            let Refunded { order_id, amount } = read(event)?;
            (order_id, OrderCommand::RecordRefund { amount })
        }
        _ => return Ok(None),
    };
    if order_id.trim().is_empty() {
        return Err(domain_core::Error::Rejected(format!("{} has an empty order_id", event.event_type)));
    }
    Ok(Some((order_id, command)))
}

fn read<T: DeserializeOwned>(event: &Envelope) -> domain_core::Result<T> {
    T::deserialize(&event.data)
        .map_err(|e| domain_core::Error::Rejected(format!("{} {} is unreadable: {e}", event.event_type, event.id)))
}

/// Store failures are worth retrying, except those about the input itself.
pub(crate) fn store_failure(order_id: &str, error: event_store::Error) -> domain_core::Error {
    match error {
        event_store::Error::InvalidStream { .. } | event_store::Error::StreamDeleted(_) => {
            domain_core::Error::Rejected(format!("order `{order_id}`: {error}"))
        }
        other => domain_core::Error::Transient(format!("order `{order_id}`: {other}")),
    }
}

/// A decision of the aggregate that is not an idempotent no-op: the event
/// will never apply, so it is dead-lettered.
fn refused(order_id: &str, error: &OrderError) -> domain_core::Error {
    match error {
        OrderError::NotCreated => domain_core::Error::Rejected(format!("order `{order_id}` does not exist")),
        other => domain_core::Error::Rejected(format!("order `{order_id}`: {other}")),
    }
}

impl PaymentOutcomeHandler {
    /// Applies one payment outcome to its order.
    pub async fn apply(&self, event: &Envelope) -> domain_core::Result<()> {
        let Some((order_id, command)) = command_for(event)? else { return Ok(()) };
        let outcome = self.repository.execute(&order_id, || command.clone(), Some(event), self.conflict_retries).await;
        match outcome {
            Ok(Ok((root, appended))) => {
                if appended.is_none() {
                    self.repeats.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(order_id, event = %event.event_type, status = %root.state().status(),
                    changed = appended.is_some(), "payment outcome applied");
                Ok(())
            }
            Ok(Err(error)) => Err(refused(&order_id, &error)),
            Err(error) => Err(store_failure(&order_id, error)),
        }
    }
}

#[async_trait]
impl Handler for PaymentOutcomeHandler {
    async fn handle(&mut self, event: &Envelope, _delivery: &Delivery) -> domain_core::Result<()> {
        self.apply(event).await
    }
}

/// Outcomes of different orders are independent, whatever account's record
/// (the key on the bus) carried them: ordered per order, not per account.
#[async_trait]
impl SharedHandler for PaymentOutcomeHandler {
    async fn handle(&self, event: &Envelope, _delivery: &Delivery) -> domain_core::Result<()> {
        self.apply(event).await
    }

    fn wants(&self, event_type: &str) -> bool {
        let name = event_type.rsplit_once(".v").map_or(event_type, |(name, _)| name);
        matches!(name, "accounts.PaymentCaptured" | "accounts.PaymentRejected" | "accounts.RefundIssued")
    }

    fn duplicates(&self) -> u64 {
        self.repeats.load(Ordering::Relaxed)
    }

    fn ordering_key(&self, event: &Envelope, delivery: &Delivery) -> Option<Vec<u8>> {
        match event.data.get("order_id").and_then(serde_json::Value::as_str) {
            Some(order) => Some(order.as_bytes().to_vec()),
            None => delivery.record.key.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
