//! The in-memory read model: the reference semantics, for tests and
//! single-process runs that rebuild the projection on start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::projection_rules::unapplied;

use chrono::NaiveDate;
use domain_core::Currency;

use super::projection::{Days, add_day, decode_batch};
use super::{DailyOrders, Generations, OrderSummary, ReadModel};
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
    daily: BTreeMap<(NaiveDate, Currency), DailyOrders>,
}

impl Default for State {
    fn default() -> Self {
        Self { next_position: 1, rows: HashMap::new(), by_customer: HashMap::new(), daily: BTreeMap::new() }
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
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        let mut state = self.state();
        let new = unapplied(state.next_position, batch, next_position)?;
        if new.is_empty() {
            return Ok(());
        }
        let mut changed: HashMap<String, OrderSummary> = HashMap::new();
        let mut days = Days::default();
        for change in decode_batch(new)? {
            let id = change.order_id;
            let current = changed.remove(id).or_else(|| state.rows.get(id).cloned());
            changed.insert(id.to_owned(), days.evolve(current, change)?);
        }
        let mut merged = Vec::new();
        for delta in days.into_deltas() {
            let key = (delta.date, delta.currency);
            merged.push(match state.daily.get(&key) {
                Some(day) => {
                    let mut day = day.clone();
                    add_day(&mut day, &delta, next_position)?;
                    day
                }
                None => delta,
            });
        }
        for day in merged {
            state.daily.insert((day.date, day.currency), day);
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

    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        Ok(self.state().daily.values().filter(|d| d.date >= from && d.date <= to).cloned().collect())
    }
}

/// Generations in memory: for tests and single-process runs.
#[derive(Debug, Default)]
pub struct MemoryGenerations {
    inner: Mutex<MemoryGenerationsInner>,
}

#[derive(Debug, Default)]
struct MemoryGenerationsInner {
    active: u64,
    models: BTreeMap<u64, Arc<MemoryReadModel>>,
}

impl MemoryGenerations {
    pub fn new() -> Self {
        Self::default()
    }

    /// The generations that hold storage now.
    pub fn stored(&self) -> Vec<u64> {
        self.lock().models.keys().copied().collect()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryGenerationsInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Generations for MemoryGenerations {
    type Model = dyn ReadModel;
    type Error = crate::Error;

    async fn active(&self) -> Result<u64> {
        Ok(self.lock().active)
    }

    async fn open(&self, generation: u64, _fresh: bool) -> Result<Arc<dyn ReadModel>> {
        let model = Arc::clone(self.lock().models.entry(generation).or_default());
        Ok(model)
    }

    async fn activate(&self, generation: u64) -> Result<()> {
        self.lock().active = generation;
        Ok(())
    }

    async fn remove(&self, generation: u64) -> Result<()> {
        self.lock().models.remove(&generation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::read_model::contract::read_model_contract_tests!(((), crate::MemoryReadModel::new()));

    mod serving {
        use std::sync::Arc;

        use crate::{MemoryGenerations, ServingReadModel};

        // A serving read model is a read model like any other.
        crate::read_model::contract::read_model_contract_tests!((
            (),
            ServingReadModel::open(Arc::new(MemoryGenerations::new())).await.expect("open")
        ));
    }

    crate::read_model::contract::generations_contract_tests!((
        (),
        std::sync::Arc::new(crate::MemoryGenerations::new()) as std::sync::Arc<crate::OrderGenerations>
    ));
}
