//! The in-memory read model: the reference semantics, for tests and
//! single-process runs that rebuild the projection on start.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use event_store::RecordedEvent;

use super::projection::{evolve, order_id, unapplied};
use super::{OrderSummary, ReadModel};
use crate::Result;

/// Rows and checkpoint behind one lock; a batch is computed aside and
/// swapped in only when every event of it applied.
#[derive(Debug, Default)]
pub struct MemoryReadModel {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next_position: u64,
    rows: HashMap<String, OrderSummary>,
    by_customer: HashMap<String, BTreeSet<String>>,
}

impl Default for State {
    fn default() -> Self {
        Self { next_position: 1, rows: HashMap::new(), by_customer: HashMap::new() }
    }
}

impl MemoryReadModel {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics between taking the lock and the final swap, so a
        // poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ReadModel for MemoryReadModel {
    async fn apply(&self, batch: &[RecordedEvent], next_position: u64) -> Result<()> {
        let mut state = self.state();
        let new = unapplied(state.next_position, batch, next_position)?;
        if new.is_empty() {
            return Ok(());
        }
        let mut changed: HashMap<String, OrderSummary> = HashMap::new();
        for event in new {
            let Some(id) = order_id(event) else { continue };
            let current = changed.remove(id).or_else(|| state.rows.get(id).cloned());
            changed.insert(id.to_owned(), evolve(current, id, event)?);
        }
        for (id, row) in changed {
            state.by_customer.entry(row.customer_id.clone()).or_default().insert(id.clone());
            state.rows.insert(id, row);
        }
        state.next_position = next_position;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        Ok(self.state().next_position)
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        let state = self.state();
        let ids = state.by_customer.get(customer_id).into_iter().flatten();
        Ok(ids.filter_map(|id| state.rows.get(id).cloned()).collect())
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        Ok(self.state().rows.get(order_id).cloned())
    }
}

#[cfg(test)]
mod tests {
    crate::read_model::contract::read_model_contract_tests!(((), crate::MemoryReadModel::new()));
}
