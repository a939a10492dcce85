//! The statements in memory (tests, demos, a process that rebuilds on
//! start). A batch is applied under one lock, all or nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::projection_rules::unapplied;

use super::fold::{account_id, evolve};
use super::{LinePage, Statement, StatementHeader, StatementLine, StatementReadModel};
use crate::Result;

#[derive(Debug, Default)]
pub struct MemoryStatements {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_position: u64,
    accounts: HashMap<String, (StatementHeader, BTreeMap<u64, StatementLine>)>,
}

impl MemoryStatements {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StatementReadModel for MemoryStatements {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let checkpoint = state.next_position.max(1);
        let new = unapplied(checkpoint, batch, next_position)?;
        if new.is_empty() {
            return Ok(());
        }
        // Decide every line first, so a refused event leaves nothing behind.
        let mut headers: HashMap<&str, StatementHeader> = HashMap::new();
        let mut lines: Vec<(&str, StatementLine)> = Vec::new();
        for event in new {
            let Some(id) = account_id(event) else { continue };
            let current = match headers.remove(id) {
                Some(h) => Some(h),
                None => state.accounts.get(id).map(|(h, _)| h.clone()),
            };
            let (header, line) = evolve(current, id, event)?;
            headers.insert(id, header);
            lines.push((id, line));
        }
        for (id, header) in headers {
            match state.accounts.get_mut(id) {
                Some((stored, _)) => *stored = header,
                None => {
                    state.accounts.insert(id.to_owned(), (header, BTreeMap::new()));
                }
            }
        }
        for (id, line) in lines {
            if let Some((_, stored)) = state.accounts.get_mut(id) {
                stored.insert(line.version, line);
            }
        }
        state.next_position = next_position;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        Ok(self.state.lock().unwrap_or_else(PoisonError::into_inner).next_position.max(1))
    }

    async fn statement(&self, account_id: &str, page: LinePage) -> Result<Option<Statement>> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(state.accounts.get(account_id).map(|(header, lines)| Statement {
            header: header.clone(),
            lines: lines.range(page.from..page.end()).map(|(_, l)| l.clone()).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStatements;

    crate::statement::contract::statement_contract_tests!(((), MemoryStatements::new()));
}
