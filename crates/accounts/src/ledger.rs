//! The audit that proves money is conserved, computed from the store.
//!
//! Money enters the system only by opening and depositing and leaves only
//! by withdrawing. A transfer's debit puts the amount in flight; its credit
//! or its refund takes it out of flight. So at every position of the log,
//! per currency: sum of balances + money in flight = money brought in −
//! money taken out. [`Ledger`] folds the log and checks that after every
//! event; [`audit`] also sums the balances of every account as loaded from
//! the store (snapshot + tail), which is what a reader sees.

use std::collections::BTreeMap;

use domain_core::{Currency, Money};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{AccountEvent, AccountStatus, Accounts, Result, TransferPurpose};

/// Totals of one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyTotals {
    /// Sum of the balances of every account.
    pub balances: Decimal,
    /// Debited by a transfer, not yet credited or paid back.
    pub in_flight: Decimal,
    /// Opened with + deposited − withdrawn.
    pub brought_in: Decimal,
}

impl CurrencyTotals {
    pub fn conserved(&self) -> bool {
        self.balances + self.in_flight == self.brought_in
    }
}

/// Counts of saga outcomes seen in the log. Transfers are the ones holders
/// asked for; payments and refunds move money by the same two steps and are
/// counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaCounts {
    pub transfers_started: u64,
    pub transfers_completed: u64,
    pub transfers_compensated: u64,
    /// Compensated transfers by reason are in [`Ledger::compensations`].
    pub payment_transfers_compensated: u64,
    pub payments_captured: u64,
    pub payments_rejected: u64,
    pub refunds_issued: u64,
    pub refunds_failed: u64,
}

/// A fold over the accounts log, checking conservation after every event.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    balances: BTreeMap<String, Money>,
    totals: BTreeMap<Currency, CurrencyTotals>,
    counts: SagaCounts,
    checked: u64,
    /// Holder transfers (not payments or refunds), by transfer id.
    holder_transfers: std::collections::HashSet<String>,
    compensations: BTreeMap<crate::RejectionReason, u64>,
}

/// Where conservation broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "money not conserved at position {position} ({event}): {currency} balances {balances} + in flight {in_flight} != brought in {brought_in}"
)]
pub struct Imbalance {
    pub position: u64,
    pub event: String,
    pub currency: Currency,
    pub balances: Decimal,
    pub in_flight: Decimal,
    pub brought_in: Decimal,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one stored event and checks the invariant for its currency.
    /// Events of other contexts or types are skipped.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> std::result::Result<(), Imbalance> {
        let Ok(event) = recorded.envelope.decode::<AccountEvent>() else { return Ok(()) };
        let account = recorded.envelope.subject.clone();
        use AccountEvent as E;
        let currency = match &event {
            E::AccountCreated { initial_balance, .. } => {
                self.set_balance(&account, *initial_balance);
                self.total(initial_balance.currency).brought_in += initial_balance.amount;
                initial_balance.currency
            }
            E::MoneyDeposited { amount, new_balance, .. } => {
                self.set_balance(&account, Money::new(*new_balance, amount.currency));
                self.total(amount.currency).brought_in += amount.amount;
                amount.currency
            }
            E::MoneyWithdrawn { amount, new_balance, .. } => {
                self.set_balance(&account, Money::new(*new_balance, amount.currency));
                self.total(amount.currency).brought_in -= amount.amount;
                amount.currency
            }
            E::MoneyTransferredOut { amount, new_balance, purpose, transfer_id, .. } => {
                self.set_balance(&account, Money::new(*new_balance, amount.currency));
                self.total(amount.currency).in_flight += amount.amount;
                if *purpose == TransferPurpose::Transfer {
                    self.counts.transfers_started += 1;
                    self.holder_transfers.insert(transfer_id.clone());
                }
                amount.currency
            }
            E::MoneyTransferredIn { amount, new_balance, purpose, .. } => {
                self.set_balance(&account, Money::new(*new_balance, amount.currency));
                self.total(amount.currency).in_flight -= amount.amount;
                if *purpose == TransferPurpose::Transfer {
                    self.counts.transfers_completed += 1;
                }
                amount.currency
            }
            E::TransferFailed { transfer_id, reason, .. } => {
                if self.holder_transfers.contains(transfer_id) {
                    *self.compensations.entry(*reason).or_default() += 1;
                }
                return Ok(());
            }
            E::TransferRefunded { amount, new_balance, transfer_id, .. } => {
                self.set_balance(&account, Money::new(*new_balance, amount.currency));
                self.total(amount.currency).in_flight -= amount.amount;
                if self.holder_transfers.contains(transfer_id) {
                    self.counts.transfers_compensated += 1;
                } else {
                    self.counts.payment_transfers_compensated += 1;
                }
                amount.currency
            }
            E::PaymentCaptured { .. } => {
                self.counts.payments_captured += 1;
                return Ok(());
            }
            E::PaymentRejected { .. } => {
                self.counts.payments_rejected += 1;
                return Ok(());
            }
            E::RefundIssued { .. } => {
                self.counts.refunds_issued += 1;
                return Ok(());
            }
            E::RefundFailed { .. } => {
                self.counts.refunds_failed += 1;
                return Ok(());
            }
            _ => return Ok(()),
        };
        self.checked += 1;
        let t = self.totals.get(&currency).copied().unwrap_or_default();
        if !t.conserved() {
            return Err(Imbalance {
                position: recorded.position,
                event: recorded.envelope.event_type.to_string(),
                currency,
                balances: t.balances,
                in_flight: t.in_flight,
                brought_in: t.brought_in,
            });
        }
        Ok(())
    }

    fn total(&mut self, c: Currency) -> &mut CurrencyTotals {
        self.totals.entry(c).or_default()
    }

    fn set_balance(&mut self, account: &str, balance: Money) {
        let old = self.balances.insert(account.to_owned(), balance);
        let t = self.total(balance.currency);
        t.balances += balance.amount - old.map_or(Decimal::ZERO, |m| m.amount);
    }

    pub fn totals(&self) -> &BTreeMap<Currency, CurrencyTotals> {
        &self.totals
    }

    pub fn counts(&self) -> SagaCounts {
        self.counts
    }

    /// Compensated holder transfers per reason.
    pub fn compensations(&self) -> &BTreeMap<crate::RejectionReason, u64> {
        &self.compensations
    }

    /// Money events checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Balances as the events say, by account.
    pub fn balances(&self) -> &BTreeMap<String, Money> {
        &self.balances
    }
}

/// The result of [`audit`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Audit {
    pub accounts: usize,
    /// Per currency, balances summed from the accounts as loaded.
    pub currencies: BTreeMap<String, CurrencyTotals>,
    pub counts: SagaCounts,
    /// Compensated holder transfers per reason.
    pub compensations: BTreeMap<String, u64>,
    /// Every currency balances at every position and at the end.
    pub money_conserved: bool,
    /// The first position where it did not, if any.
    pub first_imbalance: Option<String>,
    pub frozen: usize,
    pub closed: usize,
}

/// Reads the whole log (conservation after every event), then loads every
/// account through the repository and sums the balances.
pub async fn audit(accounts: &Accounts) -> Result<Audit> {
    let store = accounts.store();
    let mut ledger = Ledger::new();
    let mut first_imbalance = None;
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4096).await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for e in &page {
            if let Err(imbalance) = ledger.apply(e)
                && first_imbalance.is_none()
            {
                first_imbalance = Some(imbalance.to_string());
            }
        }
    }
    let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
    let (mut n, mut frozen, mut closed) = (0, 0, 0);
    for id in accounts.ids().await? {
        let root = accounts.load(&id).await?;
        let state = root.state();
        match state.status {
            AccountStatus::NotOpened => continue,
            AccountStatus::Frozen => frozen += 1,
            AccountStatus::Closed => closed += 1,
            AccountStatus::Active => {}
        }
        n += 1;
        if let Some(m) = state.balance_money() {
            *sums.entry(m.currency).or_default() += m.amount;
        }
    }
    let mut currencies = BTreeMap::new();
    let mut conserved = first_imbalance.is_none();
    for (c, t) in ledger.totals() {
        let loaded = CurrencyTotals { balances: sums.get(c).copied().unwrap_or_default(), ..*t };
        conserved &= loaded.conserved() && loaded.balances == t.balances;
        currencies.insert(c.to_string(), loaded);
    }
    Ok(Audit {
        accounts: n,
        currencies,
        counts: ledger.counts(),
        compensations: ledger.compensations().iter().map(|(r, n)| (r.as_str().to_owned(), *n)).collect(),
        money_conserved: conserved,
        first_imbalance,
        frozen,
        closed,
    })
}
