//! The read side (CQRS): orders by customer with status and total, kept by a
//! projection of the orders event store's global log.
//!
//! A [`ReadModel`] applies a batch of recorded events and moves its
//! checkpoint ("next global position") in one atomic write, so a crash at
//! any moment neither skips nor double-applies an event: what the
//! checkpoint covers is exactly what the rows contain. A batch (or the part
//! of it) the checkpoint already covers is skipped, so two projectors racing
//! over the same log, or a replayed batch, cannot count an event twice.

mod embedded;
mod memory;
mod postgres;
mod projection;

#[cfg(test)]
pub(crate) mod contract;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::Money;
use event_store::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::{OrderStatus, Result};
pub use embedded::RedbReadModel;
pub use memory::MemoryReadModel;
pub use postgres::PostgresReadModel;

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

/// Storage of the orders read model.
#[async_trait]
pub trait ReadModel: Send + Sync + std::fmt::Debug {
    /// Applies `batch` (contiguous global-log positions, as read from the
    /// store) and sets the checkpoint to `next_position` (the position after
    /// the batch's last event), all or nothing. Events the checkpoint
    /// already covers are skipped; a batch that does not reach back to the
    /// checkpoint is refused with [`crate::Error::Gap`].
    async fn apply(&self, batch: &[RecordedEvent], next_position: u64) -> Result<()>;

    /// The next global-log position to apply (1 when nothing was applied).
    async fn checkpoint(&self) -> Result<u64>;

    /// The customer's orders, by order id.
    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>>;

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>>;
}
