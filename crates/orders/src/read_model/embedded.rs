//! The embedded read model: `orders.redb` in the context's data directory.
//!
//! One redb write transaction per batch holds the rows, the by-customer
//! index and the checkpoint, so they commit (durably: redb syncs on commit)
//! or vanish together. redb is synchronous; its calls run on tokio's
//! blocking pool.
//!
//! Generations ([`RedbGenerations`]): generation 0 is `orders.redb`, a later
//! one `orders.g<N>.redb`, and `orders.generation` names the one that
//! serves (written to a temporary file, synced, renamed over, directory
//! synced). A copy being rebuilt commits without syncing; its
//! [`ReadModel::sync`] is one durable commit, which redb makes cover every
//! commit before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::generations::GenerationFiles;
use event_store::projection_rules::unapplied;
use event_store::redb_file::RedbFile;
use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use chrono::NaiveDate;

use super::projection::{Days, add_day, order_id};
use super::{DailyOrders, Generations, OrderSummary, ReadModel, ServingReadModel};
use crate::{Error, Result};

/// Order id → `OrderSummary` as JSON.
const ROWS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("orders");
/// Customer id → order ids.
const BY_CUSTOMER: MultimapTableDefinition<'static, &'static str, &'static str> =
    MultimapTableDefinition::new("orders_by_customer");
/// `YYYY-MM-DD CUR` → `DailyOrders` as JSON (keys sort by date).
const DAILY: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("daily_orders");
/// The projection's own bookkeeping.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("projection");
const CHECKPOINT: &str = "next_position";

/// The read model in a redb file. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbReadModel {
    file: RedbFile,
}

impl RedbReadModel {
    pub const FILE_NAME: &'static str = "orders.redb";

    /// Opens (or creates) `dir/orders.redb`. A second open of the same file
    /// while one is open fails (`DatabaseAlreadyOpen`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Self::open_file(dir.join(Self::FILE_NAME), false)
    }

    /// Opens (or creates) the read model in `path`; `relaxed` commits
    /// without syncing until [`ReadModel::sync`].
    pub fn open_file(path: PathBuf, relaxed: bool) -> Result<Self> {
        let file = RedbFile::open(path, relaxed, |txn| {
            txn.open_table(ROWS)?;
            txn.open_multimap_table(BY_CUSTOMER)?;
            txn.open_table(DAILY)?;
            txn.open_table(META)?;
            Ok::<_, Error>(())
        })?;
        Ok(Self { file })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        self.file.blocking(f).await
    }
}

/// Writes the batch into `txn`; `false` when the checkpoint already covers it.
fn write_batch(txn: &WriteTransaction, batch: &[RecordedText], next_position: u64) -> Result<bool> {
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
    let mut days = Days::default();
    for event in new {
        let Some(id) = order_id(event) else { continue };
        match at.get(id) {
            Some(&i) => {
                let row = touched[i].1.take();
                touched[i].1 = Some(days.evolve(row, id, event)?);
            }
            None => {
                let current: Option<OrderSummary> = match rows.get(id)? {
                    Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
                    None => None,
                };
                let created = current.is_none();
                at.insert(id, touched.len());
                touched.push((id, Some(days.evolve(current, id, event)?), created));
            }
        }
    }
    let mut daily = txn.open_table(DAILY)?;
    for delta in days.into_deltas() {
        let key = day_key(delta.date, &delta.currency.to_string());
        let day = match daily.get(key.as_str())? {
            Some(bytes) => {
                let mut day: DailyOrders = serde_json::from_slice(bytes.value())?;
                add_day(&mut day, &delta, next_position)?;
                day
            }
            None => delta,
        };
        daily.insert(key.as_str(), serde_json::to_vec(&day)?.as_slice())?;
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

fn day_key(date: NaiveDate, currency: &str) -> String {
    format!("{date} {currency}")
}

#[async_trait]
impl ReadModel for RedbReadModel {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        self.file.apply(batch, move |txn, batch| write_batch(txn, batch, next_position)).await
    }

    async fn sync(&self) -> Result<()> {
        self.file.sync().await
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

    async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
        // `~` sorts after every currency code, so the range takes all of `to`.
        let (low, high) = (day_key(from, ""), day_key(to, "~"));
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let daily = txn.open_table(DAILY)?;
            let mut out = Vec::new();
            for entry in daily.range(low.as_str()..=high.as_str())? {
                let (_, bytes) = entry?;
                out.push(serde_json::from_slice(bytes.value())?);
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

/// Generations of the redb read model in one directory: see the module doc.
#[derive(Debug, Clone)]
pub struct RedbGenerations {
    files: GenerationFiles,
}

impl RedbGenerations {
    /// The file naming the generation that serves.
    pub const POINTER: &'static str = "orders.generation";

    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self { files: GenerationFiles::new(dir, "orders", "redb")? })
    }

    /// The serving read model of `dir`, opened without a runtime (what
    /// [`ServingReadModel::open`] does, synchronously).
    pub fn open_serving(dir: impl AsRef<Path>) -> Result<ServingReadModel> {
        let generations = Self::new(dir)?;
        let active = generations.files.tidy()?;
        let model = Arc::new(RedbReadModel::open_file(generations.file(active), false)?);
        Ok(ServingReadModel::serving(Arc::new(generations), active, model))
    }

    /// The file of `generation`.
    pub fn file(&self, generation: u64) -> PathBuf {
        self.files.file(generation)
    }
}

#[async_trait]
impl Generations for RedbGenerations {
    type Model = dyn ReadModel;
    type Error = Error;

    async fn active(&self) -> Result<u64> {
        Ok(self.files.active()?)
    }

    async fn open(&self, generation: u64, fresh: bool) -> Result<Arc<dyn ReadModel>> {
        let path = self.file(generation);
        let model = tokio::task::spawn_blocking(move || RedbReadModel::open_file(path, fresh)).await??;
        Ok(Arc::new(model))
    }

    async fn activate(&self, generation: u64) -> Result<()> {
        let files = self.files.clone();
        Ok(tokio::task::spawn_blocking(move || files.activate(generation)).await??)
    }

    async fn remove(&self, generation: u64) -> Result<()> {
        Ok(self.files.remove(generation)?)
    }
}

#[cfg(test)]
mod tests;
