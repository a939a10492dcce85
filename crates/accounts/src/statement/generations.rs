//! Rebuilds without downtime for the statements: their generations
//! ([`event_store::generations`]) behind the [`StatementReadModel`] port.

use std::sync::Arc;

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::generations::{DynGenerations, Serving};

use super::{LinePage, Statement, StatementReadModel};
use crate::{Error, Result};

/// Where the statements keep their generations.
pub type StatementGenerations = DynGenerations<dyn StatementReadModel, Error>;

/// The statements answered from their serving generation, with a copy
/// beside it while a rebuild runs.
#[derive(Debug)]
pub struct ServingStatements {
    inner: Serving<dyn StatementReadModel, Error>,
}

impl ServingStatements {
    /// Opens the generation that serves and removes what is left of the
    /// generations around it.
    pub async fn open(generations: Arc<StatementGenerations>) -> Result<Self> {
        Ok(Self { inner: Serving::open(generations).await? })
    }

    /// Serves `model`, generation `number` of `generations` (opened and
    /// tidied by the caller).
    pub(crate) fn serving(
        generations: Arc<StatementGenerations>,
        number: u64,
        model: Arc<dyn StatementReadModel>,
    ) -> Self {
        Self { inner: Serving::with_serving(generations, number, model) }
    }

    /// The number of the generation that serves.
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }
}

#[async_trait]
impl StatementReadModel for ServingStatements {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        self.inner.current().apply(batch, next_position).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        self.inner.current().checkpoint().await
    }

    async fn statement(&self, account_id: &str, page: LinePage) -> Result<Option<Statement>> {
        self.inner.current().statement(account_id, page).await
    }

    async fn fresh_copy(&self) -> Result<Arc<dyn StatementReadModel>> {
        self.inner.fresh_copy().await
    }

    async fn switch_to_copy(&self) -> Result<()> {
        let switched = self.inner.switch_to_copy(|copy| async move { copy.sync().await }).await?;
        if switched { Ok(()) } else { Err(Error::NoCopy) }
    }
}
