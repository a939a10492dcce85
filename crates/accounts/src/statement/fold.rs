//! What every statement adapter shares: which events belong to an account,
//! and how one event becomes a line and changes the header. Adapters only
//! supply the storage and the transaction around these.

use domain_core::{Aggregate, DomainEvent};

use event_store::RecordedText;
use rust_decimal::Decimal;

use super::{StatementHeader, StatementLine};
use crate::{Account, AccountEvent, AccountStatus, Error, Result, TransferPurpose};

/// The account a recorded event belongs to, or `None` for an event of
/// another aggregate type or context (it moves the checkpoint, no line).
pub(crate) fn account_id(event: &RecordedText) -> Option<&str> {
    if event.envelope.source != AccountEvent::CONTEXT {
        return None;
    }
    event.stream.as_str().strip_prefix(Account::TYPE)?.strip_prefix('-')
}

/// The header after `event` and the event's line. `current` is the header
/// before it (`None`: the account's first event).
pub(crate) fn evolve(
    current: Option<StatementHeader>,
    account_id: &str,
    event: &RecordedText,
) -> Result<(StatementHeader, StatementLine)> {
    let position = event.position;
    let decoded: AccountEvent = event.envelope.decode().map_err(|source| Error::Decode { position, source })?;
    let inconsistent = |reason: String| Error::Inconsistent { position, account_id: account_id.to_owned(), reason };
    let at = event.envelope.time;
    let mut header = current.unwrap_or_else(|| StatementHeader {
        account_id: account_id.to_owned(),
        holder: String::new(),
        currency: None,
        status: AccountStatus::NotOpened,
        balance: Decimal::ZERO,
        version: 0,
        first_at: at,
        updated_at: at,
    });
    if event.version != header.version + 1 {
        return Err(inconsistent(format!(
            "version {} follows version {} of the statement",
            event.version, header.version
        )));
    }
    // A balance-moving event says what the balance was; it must be what the
    // statement shows, or the statement would print a wrong figure.
    let moved = |old: Decimal, new: Decimal| -> Result<Option<Decimal>> {
        if old != header.balance {
            return Err(inconsistent(format!(
                "the event's old balance {old} is not the statement's {}",
                header.balance
            )));
        }
        Ok(Some(new - old))
    };
    let (change, detail) = match &decoded {
        AccountEvent::AccountCreated { account_holder, initial_balance } => {
            if header.status != AccountStatus::NotOpened {
                return Err(inconsistent("the account was opened twice".to_owned()));
            }
            header.holder.clone_from(account_holder);
            header.currency = Some(initial_balance.currency);
            header.status = AccountStatus::Active;
            let change = moved(header.balance, header.balance + initial_balance.amount)?;
            (change, format!("opened for {account_holder}"))
        }
        AccountEvent::MoneyDeposited { description, old_balance, new_balance, .. }
        | AccountEvent::MoneyWithdrawn { description, old_balance, new_balance, .. } => {
            (moved(*old_balance, *new_balance)?, description.clone())
        }
        AccountEvent::MoneyTransferredOut {
            target_account_id, description, purpose, old_balance, new_balance, ..
        } => {
            (moved(*old_balance, *new_balance)?, with_purpose(format!("to {target_account_id}"), purpose, description))
        }
        AccountEvent::MoneyTransferredIn {
            source_account_id, description, purpose, old_balance, new_balance, ..
        } => (
            moved(*old_balance, *new_balance)?,
            with_purpose(format!("from {source_account_id}"), purpose, description),
        ),
        AccountEvent::TransferFailed { transfer_id, target_account_id, reason, .. } => {
            (None, format!("transfer {transfer_id} to {target_account_id} failed: {reason}"))
        }
        AccountEvent::TransferRefunded { transfer_id, old_balance, new_balance, .. } => {
            (moved(*old_balance, *new_balance)?, format!("transfer {transfer_id} paid back"))
        }
        AccountEvent::PaymentCaptured { order_id, payer_account_id, .. } => {
            (None, format!("payment of order {order_id} by {payer_account_id}"))
        }
        AccountEvent::PaymentRejected { order_id, amount, reason } => {
            (None, format!("payment of {amount} for order {order_id} rejected: {reason}"))
        }
        AccountEvent::RefundRequested { order_id, amount, merchant_account_id } => {
            (None, format!("refund of {amount} for order {order_id} asked of {merchant_account_id}"))
        }
        AccountEvent::RefundIssued { order_id, .. } => (None, format!("refund for order {order_id}")),
        AccountEvent::RefundFailed { order_id, reason, .. } => {
            (None, format!("refund for order {order_id} failed: {reason}"))
        }
        AccountEvent::AccountFrozen { reason } => {
            header.status = AccountStatus::Frozen;
            (None, reason.clone())
        }
        AccountEvent::AccountUnfrozen {} => {
            header.status = AccountStatus::Active;
            (None, String::new())
        }
        AccountEvent::AccountClosed {} => {
            header.status = AccountStatus::Closed;
            (None, String::new())
        }
    };
    if let Some(change) = change {
        header.balance += change;
    }
    header.version = event.version;
    header.updated_at = at;
    let line = StatementLine {
        version: event.version,
        position,
        at,
        event: event.envelope.event_type.name().to_owned(),
        change,
        balance: header.balance,
        detail,
    };
    Ok((header, line))
}

fn with_purpose(counterparty: String, purpose: &TransferPurpose, description: &str) -> String {
    let mut detail = match purpose {
        TransferPurpose::Transfer => counterparty,
        TransferPurpose::Payment { order_id } => format!("{counterparty}, payment of order {order_id}"),
        TransferPurpose::Refund { order_id } => format!("{counterparty}, refund of order {order_id}"),
    };
    if !description.is_empty() {
        detail.push_str(": ");
        detail.push_str(description);
    }
    detail
}
