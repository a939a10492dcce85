//! The `Account` aggregate: the seed's `AccountAggregate` with exact money,
//! a currency per account, freeze and close, and the account's side of the
//! transfer and payment sagas.
//!
//! Saga steps arrive here as commands and are idempotent by themselves, so a
//! redelivered event changes nothing (see ARCHITECTURE.md, "Exactly-once
//! effects"): the record that a cause was handled is part of the aggregate's
//! state and is written by the same append as the effect.
//! - An effect caused by another account's event carries a [`Cause`] (that
//!   account and the causing event's version). Events of one account reach
//!   the saga consumer in version order (record key = account id), so one
//!   high-water mark per counterparty is enough: bounded by the number of
//!   counterparties, not of transfers.
//! - A payment is keyed by its order id (one payment per order); the
//!   payer's `payments` map is its statement of order payments.
//! - A compensated transfer is remembered by id (failures are rare).

use std::collections::{BTreeMap, BTreeSet};

use domain_core::{Aggregate, Currency, DomainEvent, Money};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{AccountError, RejectionReason};

/// Longest account id accepted (it is part of the stream name).
pub const MAX_ACCOUNT_ID_LEN: usize = 100;

/// Checks an account id: 1 to 100 characters, no whitespace or control
/// characters, not starting with `$`.
pub fn validate_account_id(id: &str) -> Result<(), AccountError> {
    let bad = id.is_empty()
        || id.chars().count() > MAX_ACCOUNT_ID_LEN
        || id.starts_with('$')
        || id.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(AccountError::InvalidAccountId(id.to_owned()));
    }
    Ok(())
}

/// Whether an account takes part in business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// No `AccountCreated` yet (the stream may hold rejected payments).
    #[default]
    NotOpened,
    Active,
    Frozen,
    Closed,
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::NotOpened => "not_opened",
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }
}

/// Why money moves between two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferPurpose {
    /// A transfer a holder asked for.
    Transfer,
    /// The payment of an order, payer to merchant.
    Payment { order_id: String },
    /// The refund of a cancelled order, merchant to payer.
    Refund { order_id: String },
}

/// The event of another account that caused an effect on this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub account_id: String,
    /// The causing event's version in that account's stream.
    pub version: u64,
}

/// Where the payment of one order stands, seen from the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStage {
    /// Debited here; on its way to the merchant or already there.
    Debited,
    /// Refused, or refused by the merchant's account and paid back.
    Rejected,
    RefundRequested,
    Refunded,
}

/// One order payment in the payer's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub amount: Money,
    pub merchant_account_id: String,
    pub stage: PaymentStage,
}

/// State of one account, rebuilt from its events (and snapshotted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub status: AccountStatus,
    pub account_holder: String,
    /// Set when opened.
    pub currency: Option<Currency>,
    pub balance: Decimal,
    /// Order payments this account made, by order id.
    pub payments: BTreeMap<String, PaymentRecord>,
    /// Per counterparty account, the newest of its event versions whose
    /// effect on this account is applied.
    pub applied_from: BTreeMap<String, u64>,
    /// Outgoing transfers that failed and were paid back.
    pub compensated: BTreeSet<String>,
}

/// What can be asked of an account. The last five are saga steps.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Open {
        account_holder: String,
        initial_balance: Money,
    },
    Deposit {
        amount: Money,
        description: String,
    },
    Withdraw {
        amount: Money,
        description: String,
    },
    /// Debits this account; the target is credited by the saga.
    Transfer {
        transfer_id: String,
        target_account_id: String,
        amount: Money,
        description: String,
    },
    Freeze {
        reason: String,
    },
    Unfreeze,
    /// Only at a zero balance.
    Close,
    /// Credit of another account's `MoneyTransferredOut`.
    ReceiveTransfer {
        transfer_id: String,
        source_account_id: String,
        cause: Cause,
        amount: Money,
        description: String,
        purpose: TransferPurpose,
    },
    /// Pays a failed outgoing transfer back.
    CompensateTransfer {
        transfer_id: String,
        target_account_id: String,
        amount: Money,
        reason: RejectionReason,
        purpose: TransferPurpose,
    },
    /// Pays an order (on `orders.OrderConfirmed`): debits this account
    /// towards the merchant, or records why not.
    CapturePayment {
        order_id: String,
        amount: Money,
        merchant_account_id: String,
    },
    /// On `orders.OrderCancelled`: asks the merchant for the money back if
    /// this account paid the order.
    RequestRefund {
        order_id: String,
    },
    /// On the payer's `RefundRequested` (this is the merchant).
    PayRefund {
        order_id: String,
        payer_account_id: String,
        amount: Money,
        cause: Cause,
    },
}

/// The events of the accounts context (`accounts.<Name>.v1`). Balances are
/// the account's, in its currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    AccountCreated {
        account_holder: String,
        initial_balance: Money,
    },
    MoneyDeposited {
        amount: Money,
        description: String,
        old_balance: Decimal,
        new_balance: Decimal,
    },
    MoneyWithdrawn {
        amount: Money,
        description: String,
        old_balance: Decimal,
        new_balance: Decimal,
    },
    /// The seed's `MoneyTransferred`: the debit half of a transfer; the
    /// money is in flight until `MoneyTransferredIn` or `TransferRefunded`.
    MoneyTransferredOut {
        transfer_id: String,
        target_account_id: String,
        amount: Money,
        description: String,
        purpose: TransferPurpose,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
        old_balance: Decimal,
        new_balance: Decimal,
    },
    MoneyTransferredIn {
        transfer_id: String,
        source_account_id: String,
        amount: Money,
        description: String,
        purpose: TransferPurpose,
        cause: Cause,
        old_balance: Decimal,
        new_balance: Decimal,
    },
    TransferFailed {
        transfer_id: String,
        target_account_id: String,
        amount: Money,
        reason: RejectionReason,
    },
    /// The money of a failed transfer back on the source.
    TransferRefunded {
        transfer_id: String,
        amount: Money,
        old_balance: Decimal,
        new_balance: Decimal,
    },
    /// On the merchant (the event's subject), beside the
    /// `MoneyTransferredIn` of the payment.
    PaymentCaptured {
        order_id: String,
        amount: Money,
        payer_account_id: String,
    },
    /// On the payer: nothing was taken, or it was paid back.
    PaymentRejected {
        order_id: String,
        amount: Money,
        reason: RejectionReason,
    },
    RefundRequested {
        order_id: String,
        amount: Money,
        merchant_account_id: String,
    },
    /// On the payer, beside the `MoneyTransferredIn` of the refund.
    RefundIssued {
        order_id: String,
        amount: Money,
    },
    /// On the merchant: the refund could not be paid.
    RefundFailed {
        order_id: String,
        amount: Money,
        reason: RejectionReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    AccountFrozen {
        reason: String,
    },
    AccountUnfrozen {},
    AccountClosed {},
}

impl DomainEvent for AccountEvent {
    const CONTEXT: &'static str = "accounts";
}

impl AccountEvent {
    /// The variant name, which is also the event name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            AccountEvent::AccountCreated { .. } => "AccountCreated",
            AccountEvent::MoneyDeposited { .. } => "MoneyDeposited",
            AccountEvent::MoneyWithdrawn { .. } => "MoneyWithdrawn",
            AccountEvent::MoneyTransferredOut { .. } => "MoneyTransferredOut",
            AccountEvent::MoneyTransferredIn { .. } => "MoneyTransferredIn",
            AccountEvent::TransferFailed { .. } => "TransferFailed",
            AccountEvent::TransferRefunded { .. } => "TransferRefunded",
            AccountEvent::PaymentCaptured { .. } => "PaymentCaptured",
            AccountEvent::PaymentRejected { .. } => "PaymentRejected",
            AccountEvent::RefundRequested { .. } => "RefundRequested",
            AccountEvent::RefundIssued { .. } => "RefundIssued",
            AccountEvent::RefundFailed { .. } => "RefundFailed",
            AccountEvent::AccountFrozen { .. } => "AccountFrozen",
            AccountEvent::AccountUnfrozen {} => "AccountUnfrozen",
            AccountEvent::AccountClosed {} => "AccountClosed",
        }
    }
}

impl Account {
    /// The balance as money (zero in no currency before opening).
    pub fn balance_money(&self) -> Option<Money> {
        self.currency.map(|c| Money::new(self.balance, c))
    }

    fn currency_of(&self) -> Result<Currency, AccountError> {
        match (self.status, self.currency) {
            (AccountStatus::NotOpened, _) | (_, None) => Err(AccountError::NotOpened),
            (_, Some(c)) => Ok(c),
        }
    }

    /// Checks an amount for this account: positive, in its currency, within
    /// the currency's minor unit.
    fn check_amount(&self, amount: &Money) -> Result<(), AccountError> {
        let currency = self.currency_of()?;
        amount.ensure_payable()?;
        if amount.currency != currency {
            return Err(AccountError::CurrencyMismatch { account: currency, amount: amount.currency });
        }
        Ok(())
    }

    /// The holder may move money: open and neither frozen nor closed.
    fn ensure_usable(&self) -> Result<(), AccountError> {
        match self.status {
            AccountStatus::NotOpened => Err(AccountError::NotOpened),
            AccountStatus::Frozen => Err(AccountError::Frozen),
            AccountStatus::Closed => Err(AccountError::Closed),
            AccountStatus::Active => Ok(()),
        }
    }

    fn debit(&self, amount: &Money) -> Result<(Decimal, Decimal), AccountError> {
        self.ensure_usable()?;
        self.check_amount(amount)?;
        if self.balance < amount.amount {
            return Err(AccountError::InsufficientFunds { balance: self.balance, requested: amount.amount });
        }
        Ok((self.balance, self.balance - amount.amount))
    }

    fn credit(&self, amount: &Money) -> Result<(Decimal, Decimal), AccountError> {
        let new = self.balance.checked_add(amount.amount).ok_or(domain_core::Error::AmountOverflow)?;
        Ok((self.balance, new))
    }

    fn already_applied(&self, cause: &Cause) -> bool {
        self.applied_from.get(&cause.account_id).is_some_and(|v| *v >= cause.version)
    }

    /// Why a payment from this account cannot be taken now, if it cannot.
    fn payment_refusal(&self, amount: &Money) -> Option<RejectionReason> {
        match self.debit(amount) {
            Ok(_) => None,
            Err(e) => Some(e.rejection_reason().unwrap_or(RejectionReason::InvalidAmount)),
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        match command {
            C::Open { account_holder, initial_balance } => {
                if self.status != AccountStatus::NotOpened {
                    return Err(AccountError::AlreadyOpened);
                }
                let account_holder = account_holder.trim().to_owned();
                if account_holder.is_empty() {
                    return Err(AccountError::EmptyHolder);
                }
                if initial_balance.amount < Decimal::ZERO {
                    return Err(AccountError::NegativeInitialBalance(initial_balance.amount));
                }
                initial_balance.ensure_minor_units()?;
                Ok(vec![E::AccountCreated { account_holder, initial_balance }])
            }
            C::Deposit { amount, description } => {
                self.ensure_usable()?;
                self.check_amount(&amount)?;
                let (old_balance, new_balance) = self.credit(&amount)?;
                Ok(vec![E::MoneyDeposited { amount, description, old_balance, new_balance }])
            }
            C::Withdraw { amount, description } => {
                let (old_balance, new_balance) = self.debit(&amount)?;
                Ok(vec![E::MoneyWithdrawn { amount, description, old_balance, new_balance }])
            }
            C::Transfer { transfer_id, target_account_id, amount, description } => {
                validate_account_id(&target_account_id)?;
                if transfer_id.trim().is_empty() {
                    return Err(AccountError::EmptyTransferId);
                }
                let (old_balance, new_balance) = self.debit(&amount)?;
                Ok(vec![E::MoneyTransferredOut {
                    transfer_id,
                    target_account_id,
                    amount,
                    description,
                    purpose: TransferPurpose::Transfer,
                    cause: None,
                    old_balance,
                    new_balance,
                }])
            }
            C::Freeze { reason } => match self.status {
                AccountStatus::Active => Ok(vec![E::AccountFrozen { reason }]),
                AccountStatus::Frozen => Ok(vec![]),
                AccountStatus::NotOpened => Err(AccountError::NotOpened),
                AccountStatus::Closed => Err(AccountError::Closed),
            },
            C::Unfreeze => match self.status {
                AccountStatus::Frozen => Ok(vec![E::AccountUnfrozen {}]),
                AccountStatus::Active => Ok(vec![]),
                AccountStatus::NotOpened => Err(AccountError::NotOpened),
                AccountStatus::Closed => Err(AccountError::Closed),
            },
            C::Close => match self.status {
                AccountStatus::NotOpened => Err(AccountError::NotOpened),
                AccountStatus::Closed => Ok(vec![]),
                _ if !self.balance.is_zero() => Err(AccountError::BalanceNotZero(self.balance)),
                _ => Ok(vec![E::AccountClosed {}]),
            },
            C::ReceiveTransfer { transfer_id, source_account_id, cause, amount, description, purpose } => {
                if self.already_applied(&cause) {
                    return Ok(vec![]);
                }
                self.ensure_usable()?;
                self.check_amount(&amount)?;
                let (old_balance, new_balance) = self.credit(&amount)?;
                let mut out = vec![E::MoneyTransferredIn {
                    transfer_id,
                    source_account_id: source_account_id.clone(),
                    amount,
                    description,
                    purpose: purpose.clone(),
                    cause,
                    old_balance,
                    new_balance,
                }];
                match purpose {
                    TransferPurpose::Transfer => {}
                    TransferPurpose::Payment { order_id } => {
                        out.push(E::PaymentCaptured { order_id, amount, payer_account_id: source_account_id })
                    }
                    TransferPurpose::Refund { order_id } => out.push(E::RefundIssued { order_id, amount }),
                }
                Ok(out)
            }
            C::CompensateTransfer { transfer_id, target_account_id, amount, reason, purpose } => {
                if self.compensated.contains(&transfer_id) {
                    return Ok(vec![]);
                }
                // The money was this account's: it comes back even to a
                // frozen or closed account.
                self.currency_of()?;
                let (old_balance, new_balance) = self.credit(&amount)?;
                let mut out = vec![
                    E::TransferFailed { transfer_id: transfer_id.clone(), target_account_id, amount, reason },
                    E::TransferRefunded { transfer_id, amount, old_balance, new_balance },
                ];
                match purpose {
                    TransferPurpose::Transfer => {}
                    TransferPurpose::Payment { order_id } => out.push(E::PaymentRejected { order_id, amount, reason }),
                    TransferPurpose::Refund { order_id } => {
                        out.push(E::RefundFailed { order_id, amount, reason, cause: None })
                    }
                }
                Ok(out)
            }
            C::CapturePayment { order_id, amount, merchant_account_id } => {
                if self.payments.contains_key(&order_id) {
                    return Ok(vec![]);
                }
                if order_id.trim().is_empty() {
                    return Err(AccountError::EmptyOrderId);
                }
                validate_account_id(&merchant_account_id)?;
                amount.ensure_payable()?;
                if let Some(reason) = self.payment_refusal(&amount) {
                    return Ok(vec![E::PaymentRejected { order_id, amount, reason }]);
                }
                let old_balance = self.balance;
                Ok(vec![E::MoneyTransferredOut {
                    transfer_id: format!("payment-{order_id}"),
                    target_account_id: merchant_account_id,
                    amount,
                    description: format!("payment of order {order_id}"),
                    purpose: TransferPurpose::Payment { order_id },
                    cause: None,
                    old_balance,
                    new_balance: old_balance - amount.amount,
                }])
            }
            C::RequestRefund { order_id } => match self.payments.get(&order_id) {
                Some(p) if p.stage == PaymentStage::Debited => Ok(vec![E::RefundRequested {
                    order_id,
                    amount: p.amount,
                    merchant_account_id: p.merchant_account_id.clone(),
                }]),
                _ => Ok(vec![]),
            },
            C::PayRefund { order_id, payer_account_id, amount, cause } => {
                if self.already_applied(&cause) {
                    return Ok(vec![]);
                }
                amount.ensure_payable()?;
                if let Some(reason) = self.payment_refusal(&amount) {
                    return Ok(vec![E::RefundFailed { order_id, amount, reason, cause: Some(cause) }]);
                }
                let old_balance = self.balance;
                Ok(vec![E::MoneyTransferredOut {
                    transfer_id: format!("refund-{order_id}"),
                    target_account_id: payer_account_id,
                    amount,
                    description: format!("refund of order {order_id}"),
                    purpose: TransferPurpose::Refund { order_id },
                    cause: Some(cause),
                    old_balance,
                    new_balance: old_balance - amount.amount,
                }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        use AccountEvent as E;
        match event {
            E::AccountCreated { account_holder, initial_balance } => {
                self.status = AccountStatus::Active;
                self.account_holder = account_holder.clone();
                self.currency = Some(initial_balance.currency);
                self.balance = initial_balance.amount;
            }
            E::MoneyDeposited { new_balance, .. } | E::MoneyWithdrawn { new_balance, .. } => {
                self.balance = *new_balance;
            }
            E::MoneyTransferredOut { new_balance, purpose, cause, amount, target_account_id, .. } => {
                self.balance = *new_balance;
                if let TransferPurpose::Payment { order_id } = purpose {
                    self.payments.insert(
                        order_id.clone(),
                        PaymentRecord {
                            amount: *amount,
                            merchant_account_id: target_account_id.clone(),
                            stage: PaymentStage::Debited,
                        },
                    );
                }
                if let Some(c) = cause {
                    self.note_applied(c);
                }
            }
            E::MoneyTransferredIn { new_balance, cause, .. } => {
                self.balance = *new_balance;
                self.note_applied(cause);
            }
            E::TransferFailed { .. } => {}
            E::TransferRefunded { transfer_id, new_balance, .. } => {
                self.balance = *new_balance;
                self.compensated.insert(transfer_id.clone());
            }
            E::PaymentCaptured { .. } => {}
            E::PaymentRejected { order_id, amount, .. } => {
                let record = self.payments.entry(order_id.clone()).or_insert_with(|| PaymentRecord {
                    amount: *amount,
                    merchant_account_id: String::new(),
                    stage: PaymentStage::Rejected,
                });
                record.stage = PaymentStage::Rejected;
            }
            E::RefundRequested { order_id, .. } => self.set_stage(order_id, PaymentStage::RefundRequested),
            E::RefundIssued { order_id, .. } => self.set_stage(order_id, PaymentStage::Refunded),
            E::RefundFailed { cause, .. } => {
                if let Some(c) = cause {
                    self.note_applied(c);
                }
            }
            E::AccountFrozen { .. } => self.status = AccountStatus::Frozen,
            E::AccountUnfrozen {} => self.status = AccountStatus::Active,
            E::AccountClosed {} => self.status = AccountStatus::Closed,
        }
    }
}

impl Account {
    fn note_applied(&mut self, cause: &Cause) {
        let mark = self.applied_from.entry(cause.account_id.clone()).or_insert(0);
        *mark = (*mark).max(cause.version);
    }

    fn set_stage(&mut self, order_id: &str, stage: PaymentStage) {
        if let Some(p) = self.payments.get_mut(order_id) {
            p.stage = stage;
        }
    }
}
