//! Rebuilds without downtime: a read model kept as numbered generations.
//!
//! [`ServingReadModel`] answers from the generation that serves. A rebuild
//! ([`event_store::ProjectionRunner::rebuild`]) asks it for a fresh copy,
//! the next generation, which is fed from position 1 beside the serving
//! one; at the switch-over the copy is made durable, recorded as the one
//! that serves, and swapped in under one pointer write, so a query answers
//! either from the old, whole model or from the new, whole model. The old
//! generation's storage is dropped after. A rebuild cut short (a crash, a
//! poison event) leaves a generation that never served; opening or the
//! next rebuild removes it.
//!
//! Each adapter keeps its generations where its rows live:
//! [`MemoryGenerations`], [`RedbGenerations`] (one file per generation
//! and a pointer file), [`PostgresGenerations`] (one table per generation
//! and a row naming the active one).

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::NaiveDate;
use event_store::RecordedEvent;

use super::{DailyOrders, OrderSummary, ReadModel};
use crate::{Error, Result};

/// Where a read model keeps its generations: the one that serves and,
/// during a rebuild, the next one beside it. Numbers only grow.
#[async_trait]
pub trait Generations: Send + Sync + Debug {
    /// The generation that serves (0 before the first rebuild).
    async fn active(&self) -> Result<u64>;

    /// Opens generation `generation`, creating it empty if missing. A
    /// `fresh` one is being built by a rebuild and may commit without
    /// syncing until [`ReadModel::sync`]: nothing reads it before then,
    /// and a crash before then only loses a copy that never served.
    async fn open(&self, generation: u64, fresh: bool) -> Result<Arc<dyn ReadModel>>;

    /// Durably records `generation` as the one that serves.
    async fn activate(&self, generation: u64) -> Result<()>;

    /// Drops the storage of `generation` (nothing if there is none).
    async fn remove(&self, generation: u64) -> Result<()>;
}

/// A read model answered from its serving generation, with a copy beside
/// it while a rebuild runs. Implements [`ReadModel`], so it goes wherever
/// a read model goes.
#[derive(Debug)]
pub struct ServingReadModel {
    generations: Arc<dyn Generations>,
    serving: RwLock<Generation>,
    pending: Mutex<Option<Generation>>,
}

#[derive(Debug, Clone)]
struct Generation {
    number: u64,
    model: Arc<dyn ReadModel>,
}

impl ServingReadModel {
    /// Opens the generation that serves and removes what is left of the
    /// generations around it (a rebuild that never switched over, an old
    /// copy whose removal failed).
    pub async fn open(generations: Arc<dyn Generations>) -> Result<Self> {
        let active = generations.active().await?;
        generations.remove(active + 1).await?;
        if let Some(previous) = active.checked_sub(1) {
            generations.remove(previous).await?;
        }
        let model = generations.open(active, false).await?;
        Ok(Self::serving(generations, active, model))
    }

    /// Serves `model`, generation `number` of `generations` (opened and
    /// tidied by the caller).
    pub(crate) fn serving(generations: Arc<dyn Generations>, number: u64, model: Arc<dyn ReadModel>) -> Self {
        Self { generations, serving: RwLock::new(Generation { number, model }), pending: Mutex::new(None) }
    }

    /// The number of the generation that serves.
    pub fn generation(&self) -> u64 {
        self.current().number
    }

    fn current(&self) -> Generation {
        self.serving.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn pending(&self) -> MutexGuard<'_, Option<Generation>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ReadModel for ServingReadModel {
    async fn apply(&self, batch: &[RecordedEvent], next_position: u64) -> Result<()> {
        self.current().model.apply(batch, next_position).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        self.current().model.checkpoint().await
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        self.current().model.by_customer(customer_id).await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        self.current().model.get(order_id).await
    }

    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        self.current().model.daily(from, to).await
    }

    async fn fresh_copy(&self) -> Result<Arc<dyn ReadModel>> {
        let number = self.generation() + 1;
        // Drop the leftovers of an earlier attempt first.
        self.pending().take();
        self.generations.remove(number).await?;
        let model = self.generations.open(number, true).await?;
        *self.pending() = Some(Generation { number, model: Arc::clone(&model) });
        Ok(model)
    }

    async fn switch_to_copy(&self) -> Result<()> {
        let copy = self.pending().take().ok_or(Error::NoCopy)?;
        copy.model.sync().await?;
        self.generations.activate(copy.number).await?;
        let old = std::mem::replace(&mut *self.serving.write().unwrap_or_else(PoisonError::into_inner), copy);
        let number = old.number;
        drop(old);
        // The switch is done; an old copy that cannot be removed now is
        // only disk space, and the next open removes it.
        if let Err(error) = self.generations.remove(number).await {
            tracing::warn!(generation = number, %error, "the old read-model generation was not removed");
        }
        Ok(())
    }
}
