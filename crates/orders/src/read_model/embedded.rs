//! The embedded read model: `orders.redb` in the context's data directory.
//!
//! One redb write transaction per batch holds the rows, the by-customer
//! index and the checkpoint, so they commit (durably: redb syncs on commit)
//! or vanish together. redb is synchronous; its calls run on tokio's
//! blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use event_store::RecordedEvent;
use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::projection::{evolve, order_id, unapplied};
use super::{OrderSummary, ReadModel};
use crate::{Error, Result};

/// Order id → `OrderSummary` as JSON.
const ROWS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("orders");
/// Customer id → order ids.
const BY_CUSTOMER: MultimapTableDefinition<'static, &'static str, &'static str> =
    MultimapTableDefinition::new("orders_by_customer");
/// The projection's own bookkeeping.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("projection");
const CHECKPOINT: &str = "next_position";

/// The read model in a redb file. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbReadModel {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbReadModel {
    pub const FILE_NAME: &'static str = "orders.redb";

    /// Opens (or creates) `dir/orders.redb`. A second open of the same file
    /// while one is open fails (`DatabaseAlreadyOpen`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let path = dir.join(Self::FILE_NAME);
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(ROWS)?;
            txn.open_multimap_table(BY_CUSTOMER)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await?
    }
}

fn apply_blocking(db: &Database, batch: &[RecordedEvent], next_position: u64) -> Result<()> {
    let txn = db.begin_write()?;
    match write_batch(&txn, batch, next_position) {
        Ok(true) => Ok(txn.commit()?),
        Ok(false) => Ok(txn.abort()?),
        Err(e) => {
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, "aborting a failed read-model batch failed too");
            }
            Err(e)
        }
    }
}

/// Writes the batch into `txn`; `false` when the checkpoint already covers it.
fn write_batch(txn: &WriteTransaction, batch: &[RecordedEvent], next_position: u64) -> Result<bool> {
    let mut meta = txn.open_table(META)?;
    let checkpoint = meta.get(CHECKPOINT)?.map_or(1, |v| v.value());
    let new = unapplied(checkpoint, batch, next_position)?;
    if new.is_empty() {
        return Ok(false);
    }
    let mut rows = txn.open_table(ROWS)?;
    let mut index = txn.open_multimap_table(BY_CUSTOMER)?;
    // An order's events usually sit in one batch: each row is read once,
    // evolved in memory through all of them and written once.
    let mut touched: Vec<(&str, Option<OrderSummary>, bool)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for event in new {
        let Some(id) = order_id(event) else { continue };
        match at.get(id) {
            Some(&i) => {
                let row = touched[i].1.take();
                touched[i].1 = Some(evolve(row, id, event)?);
            }
            None => {
                let current: Option<OrderSummary> = match rows.get(id)? {
                    Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
                    None => None,
                };
                let created = current.is_none();
                at.insert(id, touched.len());
                touched.push((id, Some(evolve(current, id, event)?), created));
            }
        }
    }
    for (id, row, created) in touched {
        let Some(row) = row else { continue };
        rows.insert(id, serde_json::to_vec(&row)?.as_slice())?;
        if created {
            index.insert(row.customer_id.as_str(), id)?;
        }
    }
    meta.insert(CHECKPOINT, next_position)?;
    Ok(true)
}

#[async_trait]
impl ReadModel for RedbReadModel {
    async fn apply(&self, batch: &[RecordedEvent], next_position: u64) -> Result<()> {
        let batch = batch.to_vec();
        self.blocking(move |db| apply_blocking(db, &batch, next_position)).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get(CHECKPOINT)?.map_or(1, |v| v.value()))
        })
        .await
    }

    async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
        let customer_id = customer_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let index = txn.open_multimap_table(BY_CUSTOMER)?;
            let rows = txn.open_table(ROWS)?;
            let mut out = Vec::new();
            for id in index.get(customer_id.as_str())? {
                if let Some(bytes) = rows.get(id?.value())? {
                    out.push(serde_json::from_slice(bytes.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
        let order_id = order_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let rows = txn.open_table(ROWS)?;
            match rows.get(order_id.as_str())? {
                Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests;
