//! The accounts sagas, driven from the bus by one consumer on
//! `accounts.events` and `orders.events`.
//!
//! - Transfer: `MoneyTransferredOut` on the source → `ReceiveTransfer` on
//!   the target; when the target refuses (missing, closed, frozen, another
//!   currency) → `CompensateTransfer` on the source (`TransferFailed`, then
//!   `TransferRefunded`).
//! - Payment: `orders.OrderConfirmed` → `CapturePayment` on the payer (a
//!   `MoneyTransferredOut` to the merchant, or `PaymentRejected`); the
//!   transfer step above credits the merchant with `PaymentCaptured`.
//! - Refund: `orders.OrderCancelled` → `RequestRefund` on the payer;
//!   `RefundRequested` → `PayRefund` on the merchant (a transfer back, or
//!   `RefundFailed`); its credit on the payer carries `RefundIssued`.
//!
//! Every step is idempotent in the aggregate, so a redelivered event
//! changes nothing; the steps of one event run in an order that keeps a
//! repeat from deciding differently the second time (the source is asked
//! whether it was already paid back before the target is asked again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain_core::bus::{Delivery, Handler, SharedHandler};
use domain_core::{Envelope, Money};
use serde::Deserialize;

use crate::account::validate_account_id;
use crate::{AccountCommand, AccountEvent, Accounts, Cause, Error, PaymentStage, RejectionReason, TransferPurpose};

/// Settings of the sagas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaConfig {
    /// The account order payments are credited to.
    pub merchant_account_id: String,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self { merchant_account_id: "merchant".to_owned() }
    }
}

/// `orders.OrderConfirmed` as accounts reads it (unknown fields ignored).
#[derive(Debug, Deserialize)]
struct OrderConfirmed {
    customer_id: String,
    #[serde(default)]
    payment_account_id: Option<String>,
    total_amount: Money,
}

/// `orders.OrderCancelled` as accounts reads it.
#[derive(Debug, Deserialize)]
struct OrderCancelled {
    #[serde(default)]
    payment_account_id: Option<String>,
}

/// The handler of the accounts saga consumer.
#[derive(Debug, Clone)]
pub struct AccountSagas {
    accounts: Accounts,
    config: SagaConfig,
    /// Steps that found their effect already there ([`Step::Repeat`]).
    repeats: Arc<AtomicU64>,
}

/// What one delivery did, for counters and tests. (The step of an event
/// type not listed in [`wanted`] is always [`Step::Ignored`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ignored,
    /// Already handled before: nothing changed.
    Repeat,
    Credited,
    Compensated,
    PaymentStarted,
    PaymentRejected,
    RefundRequested,
    RefundPaid,
    RefundFailed,
}

fn to_bus(e: Error) -> domain_core::Error {
    if e.is_transient() {
        domain_core::Error::Transient(e.to_string())
    } else {
        domain_core::Error::Rejected(e.to_string())
    }
}

fn payload<T: serde::de::DeserializeOwned>(env: &Envelope) -> domain_core::Result<T> {
    serde_json::from_value(env.data.clone()).map_err(|e| domain_core::Error::SchemaMismatch {
        event_type: env.event_type.to_string(),
        reason: e.to_string(),
    })
}

impl AccountSagas {
    pub fn new(accounts: Accounts, config: SagaConfig) -> Self {
        Self { accounts, config, repeats: Arc::default() }
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Handles one event; the bus [`Handler`] calls this.
    pub async fn step(&self, env: &Envelope) -> domain_core::Result<Step> {
        let ty = &env.event_type;
        match (ty.context(), ty.name()) {
            ("accounts", "MoneyTransferredOut") => match env.decode::<AccountEvent>()? {
                AccountEvent::MoneyTransferredOut {
                    transfer_id,
                    target_account_id,
                    amount,
                    description,
                    purpose,
                    ..
                } => self.credit(env, transfer_id, target_account_id, amount, description, purpose).await,
                _ => Ok(Step::Ignored),
            },
            ("accounts", "RefundRequested") => match env.decode::<AccountEvent>()? {
                AccountEvent::RefundRequested { order_id, amount, merchant_account_id } => {
                    self.pay_refund(env, order_id, amount, merchant_account_id).await
                }
                _ => Ok(Step::Ignored),
            },
            ("orders", "OrderConfirmed") => {
                let confirmed: OrderConfirmed = payload(env)?;
                let payer = confirmed.payment_account_id.unwrap_or(confirmed.customer_id);
                let command = AccountCommand::CapturePayment {
                    order_id: env.subject.clone(),
                    amount: confirmed.total_amount,
                    merchant_account_id: self.config.merchant_account_id.clone(),
                };
                let events = self.accounts.execute(&payer, command, Some(env)).await.map_err(to_bus)?;
                Ok(match events.first() {
                    None => Step::Repeat,
                    Some(AccountEvent::PaymentRejected { .. }) => Step::PaymentRejected,
                    Some(_) => Step::PaymentStarted,
                })
            }
            ("orders", "OrderCancelled") => {
                let cancelled: OrderCancelled = payload(env)?;
                // Never confirmed: nothing was paid.
                let Some(payer) = cancelled.payment_account_id else { return Ok(Step::Ignored) };
                let command = AccountCommand::RequestRefund { order_id: env.subject.clone() };
                let events = self.accounts.execute(&payer, command, Some(env)).await.map_err(to_bus)?;
                Ok(if events.is_empty() { Step::Repeat } else { Step::RefundRequested })
            }
            _ => Ok(Step::Ignored),
        }
    }

    async fn credit(
        &self,
        env: &Envelope,
        transfer_id: String,
        target: String,
        amount: Money,
        description: String,
        purpose: TransferPurpose,
    ) -> domain_core::Result<Step> {
        let source = env.subject.clone();
        // Paid back already? Then the target must not be asked again: it
        // might accept now.
        let source_state = self.accounts.load(&source).await.map_err(to_bus)?;
        if source_state.state().compensated.contains(&transfer_id) {
            return Ok(Step::Repeat);
        }
        let refusal = if validate_account_id(&target).is_err() {
            RejectionReason::AccountNotFound
        } else {
            let command = AccountCommand::ReceiveTransfer {
                transfer_id: transfer_id.clone(),
                source_account_id: source.clone(),
                cause: Cause { account_id: source.clone(), version: env.aggregate_version },
                amount,
                description,
                purpose: purpose.clone(),
            };
            match self.accounts.execute(&target, command, Some(env)).await {
                Ok(events) => return Ok(if events.is_empty() { Step::Repeat } else { Step::Credited }),
                Err(Error::Account(e)) => match e.rejection_reason() {
                    Some(reason) => reason,
                    None => return Err(domain_core::Error::Rejected(e.to_string())),
                },
                Err(e) => return Err(to_bus(e)),
            }
        };
        let command = AccountCommand::CompensateTransfer {
            transfer_id,
            target_account_id: target,
            amount,
            reason: refusal,
            purpose,
        };
        let events = self.accounts.execute(&source, command, Some(env)).await.map_err(to_bus)?;
        Ok(if events.is_empty() { Step::Repeat } else { Step::Compensated })
    }

    async fn pay_refund(
        &self,
        env: &Envelope,
        order_id: String,
        amount: Money,
        merchant: String,
    ) -> domain_core::Result<Step> {
        let payer = env.subject.clone();
        // A payment the merchant's account refused was paid back already.
        let payer_state = self.accounts.load(&payer).await.map_err(to_bus)?;
        let still_due =
            payer_state.state().payments.get(&order_id).is_some_and(|p| p.stage == PaymentStage::RefundRequested);
        if !still_due {
            return Ok(Step::Repeat);
        }
        let command = AccountCommand::PayRefund {
            order_id,
            payer_account_id: payer.clone(),
            amount,
            cause: Cause { account_id: payer, version: env.aggregate_version },
        };
        let events = self.accounts.execute(&merchant, command, Some(env)).await.map_err(to_bus)?;
        Ok(match events.first() {
            None => Step::Repeat,
            Some(AccountEvent::RefundFailed { .. }) => Step::RefundFailed,
            Some(_) => Step::RefundPaid,
        })
    }
}

#[async_trait]
impl Handler for AccountSagas {
    async fn handle(&mut self, event: &Envelope, _delivery: &Delivery) -> domain_core::Result<()> {
        let step = self.step(event).await?;
        if step == Step::Repeat {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(event = %event.event_type, subject = %event.subject, ?step, "accounts saga step");
        Ok(())
    }
}

#[async_trait]
impl SharedHandler for AccountSagas {
    async fn handle(&self, event: &Envelope, _delivery: &Delivery) -> domain_core::Result<()> {
        if self.step(event).await? == Step::Repeat {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn wants(&self, event_type: &str) -> bool {
        wanted(event_type)
    }

    fn duplicates(&self) -> u64 {
        self.repeats.load(Ordering::Relaxed)
    }
}

/// The event types a saga step starts from (any version).
fn wanted(event_type: &str) -> bool {
    let name = event_type.rsplit_once(".v").map_or(event_type, |(name, _)| name);
    matches!(
        name,
        "accounts.MoneyTransferredOut" | "accounts.RefundRequested" | "orders.OrderConfirmed" | "orders.OrderCancelled"
    )
}
