//! Rebuilds without downtime for the orders read model: its generations
//! ([`event_store::generations`]) behind the [`ReadModel`] port.
//!
//! Each adapter keeps its generations where its rows live:
//! [`MemoryGenerations`](super::MemoryGenerations),
//! [`RedbGenerations`](super::RedbGenerations) (one file per generation and
//! a pointer file), [`PostgresGenerations`](super::PostgresGenerations) (one
//! table per generation and a row naming the active one).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use event_store::RecordedText;
use event_store::generations::{DynGenerations, Serving};

use super::{DailyOrders, OrderSummary, ReadModel};
use crate::{Error, Result};

/// Where the orders read model keeps its generations.
pub type OrderGenerations = DynGenerations<dyn ReadModel, Error>;

/// The orders read model answered from its serving generation, with a
/// copy beside it while a rebuild runs. Implements [`ReadModel`], so it
/// goes wherever a read model goes.
#[derive(Debug)]
pub struct ServingReadModel {
    inner: Serving<dyn ReadModel, Error>,
}

impl ServingReadModel {
    /// Opens the generation that serves and removes what is left of the
    /// generations around it.
    pub async fn open(generations: Arc<OrderGenerations>) -> Result<Self> {
        Ok(Self { inner: Serving::open(generations).await? })
    }

    /// Serves `model`, generation `number` of `generations` (opened and
    /// tidied by the caller).
    pub(crate) fn serving(generations: Arc<OrderGenerations>, number: u64, model: Arc<dyn ReadModel>) -> Self {
        Self { inner: Serving::with_serving(generations, number, model) }
    }

    /// The number of the generation that serves.
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }
}

#[async_trait]
impl ReadModel for ServingReadModel {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        self.inner.current().apply(batch, next_position).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        self.inner.current().checkpoint().await
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        self.inner.current().by_customer(customer_id).await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        self.inner.current().get(order_id).await
    }

    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        self.inner.current().daily(from, to).await
    }

    async fn fresh_copy(&self) -> Result<Arc<dyn ReadModel>> {
        self.inner.fresh_copy().await
    }

    async fn switch_to_copy(&self) -> Result<()> {
        let switched = self.inner.switch_to_copy(|copy| async move { copy.sync().await }).await?;
        if switched { Ok(()) } else { Err(Error::NoCopy) }
    }
}
