//! The read side (CQRS): orders by customer with status and total, and the
//! orders of each day, kept by a projection of the orders event store's
//! global log.
//!
//! A [`ReadModel`] applies a batch of recorded events and moves its
//! checkpoint ("next global position") in one atomic write, so a crash at
//! any moment neither skips nor double-applies an event: what the
//! checkpoint covers is exactly what the rows contain. A batch (or the part
//! of it) the checkpoint already covers is skipped, so two projectors racing
//! over the same log, or a replayed batch, cannot count an event twice.

mod embedded;
mod generations;
mod memory;
mod postgres;
mod projection;

#[cfg(test)]
pub(crate) mod contract;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain_core::Money;
use event_store::RecordedText;
use serde::{Deserialize, Serialize};

use crate::{OrderStatus, Result};
pub use embedded::{RedbGenerations, RedbReadModel};
pub use event_store::generations::Generations;
pub use generations::{OrderGenerations, ServingReadModel};
pub use memory::{MemoryGenerations, MemoryReadModel};
pub use postgres::{PostgresGenerations, PostgresReadModel};

/// One row of the read model: what `find_by_customer` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    /// The sum of the items, with the currency's minor-unit digits.
    pub total: Money,
    /// Item lines, as in `OrderConfirmed`.
    pub item_count: u32,
    /// Time of the last event applied to the row (event time, UTC).
    pub updated_at: DateTime<Utc>,
}

/// Orders of one day (UTC, the day each event happened) in one currency:
/// orders created, paid and cancelled that day, and what was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyOrders {
    pub date: NaiveDate,
    pub currency: domain_core::Currency,
    pub created: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub paid_amount: Money,
}

/// Storage of the orders read model.
#[async_trait]
pub trait ReadModel: Send + Sync + std::fmt::Debug {
    /// Applies `batch` (contiguous global-log positions, as read from the
    /// store) and sets the checkpoint to `next_position` (the position after
    /// the batch's last event), all or nothing. Events the checkpoint
    /// already covers are skipped; a batch that does not reach back to the
    /// checkpoint is refused with [`crate::Error::Gap`].
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()>;

    /// The next global-log position to apply (1 when nothing was applied).
    async fn checkpoint(&self) -> Result<u64>;

    /// The customer's orders, by order id.
    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>>;

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>>;

    /// The daily counts from `from` to `to` (both included), by date and
    /// currency; days without orders are absent.
    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>>;

    /// A fresh, empty copy beside this one, for a rebuild without downtime
    /// ([`ServingReadModel`]); a single-generation adapter has none
    /// ([`crate::Error::NoCopy`]).
    async fn fresh_copy(&self) -> Result<Arc<dyn ReadModel>> {
        Err(crate::Error::NoCopy)
    }

    /// Makes the copy from [`ReadModel::fresh_copy`] the one that answers,
    /// and drops the old one.
    async fn switch_to_copy(&self) -> Result<()> {
        Err(crate::Error::NoCopy)
    }

    /// Makes every applied batch durable (a fresh copy may commit without
    /// syncing until then).
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}
