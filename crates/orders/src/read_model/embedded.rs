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
//! synced). A copy being rebuilt is fed in memory and written in stages
//! by a writer thread, committing without syncing (`staged`); its
//! [`ReadModel::sync`] is one durable commit, which redb makes cover every
//! commit before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::generations::GenerationFiles;
use event_store::projection_rules::unapplied;
use event_store::redb_file::RedbFile;
use redb::{Database, MultimapTableHandle, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use chrono::NaiveDate;

use super::projection::{Days, add_day, decode_batch};
use super::{DailyOrders, Generations, OrderSummary, ReadModel, ServingReadModel};
use crate::{Error, Result};
use staged::{STAGED_MAX, Stager};

/// Order id → `OrderSummary` as JSON.
const ROWS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("orders");
/// `customer id NUL order id` (see [`index_key`]), one entry per order: a
/// customer's orders are one key range. A plain table, not a multimap, and
/// one string key, not a tuple: the index takes one insert per order, and
/// a plain byte-compared key is the cheapest insert redb has.
const BY_CUSTOMER: TableDefinition<'static, &'static str, ()> = TableDefinition::new("orders_customer_index");
/// The customer index of the first layout (a multimap): a file that has it
/// is emptied on open and projected again from position 1.
const BY_CUSTOMER_MULTIMAP: &str = "orders_by_customer";
/// `YYYY-MM-DD CUR` → `DailyOrders` as JSON (keys sort by date).
const DAILY: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("daily_orders");
/// The projection's own bookkeeping.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("projection");
const CHECKPOINT: &str = "next_position";

/// The read model in a redb file. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbReadModel {
    file: RedbFile,
    /// What a copy being rebuilt holds outside the file.
    stager: Stager,
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
        let shown = path.display().to_string();
        let file = RedbFile::open(path, relaxed, |txn| {
            if txn.list_multimap_tables()?.any(|t| t.name() == BY_CUSTOMER_MULTIMAP) {
                tracing::warn!(file = %shown, "read model of an earlier layout: emptied, it is projected again from the start");
                txn.delete_multimap_table(redb::MultimapTableDefinition::<&str, &str>::new(BY_CUSTOMER_MULTIMAP))?;
                for table in txn.list_tables()?.collect::<Vec<_>>() {
                    txn.delete_table(table)?;
                }
            }
            txn.open_table(ROWS)?;
            txn.open_table(BY_CUSTOMER)?;
            txn.open_table(DAILY)?;
            txn.open_table(META)?;
            Ok::<_, Error>(())
        })?;
        Ok(Self { file, stager: Stager::new(STAGED_MAX) })
    }

    /// Stages at most `limit` rows, so a test sees the stage written often.
    #[cfg(test)]
    pub(crate) fn with_stage_limit(mut self, limit: usize) -> Self {
        self.stager = Stager::new(limit);
        self
    }

    /// Writes what is staged now (without syncing), as a full stage is.
    #[cfg(test)]
    pub(crate) async fn write_stage(&self) -> Result<()> {
        let (stager, db) = (self.stager.clone(), Arc::clone(self.file.database()));
        tokio::task::spawn_blocking(move || stager.write_now(&db)).await?
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
    // An order's events usually sit in one batch: each row is read once,
    // evolved in memory through all of them and written once.
    let mut touched: Vec<(&str, Option<OrderSummary>, bool)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut days = Days::default();
    for change in decode_batch(new)? {
        let id = change.order_id;
        match at.get(id) {
            Some(&i) => {
                let row = touched[i].1.take();
                touched[i].1 = Some(days.evolve(row, change)?);
            }
            None => {
                let current = stored_row(&rows, id)?;
                let created = current.is_none();
                at.insert(id, touched.len());
                touched.push((id, Some(days.evolve(current, change)?), created));
            }
        }
    }
    write_days(txn, days, next_position)?;
    let mut created = Vec::new();
    for (id, row, new_row) in touched {
        let Some(row) = row else { continue };
        rows.insert(id, serde_json::to_vec(&row)?.as_slice())?;
        if new_row {
            created.push(index_key(&row.customer_id, id));
        }
    }
    insert_sorted(&mut txn.open_table(BY_CUSTOMER)?, &mut created)?;
    meta.insert(CHECKPOINT, next_position)?;
    Ok(true)
}

fn stored_row(rows: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<OrderSummary>> {
    match rows.get(id)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value())?)),
        None => Ok(None),
    }
}

/// Adds the counts of `days` to the stored days.
fn write_days(txn: &WriteTransaction, days: Days, position: u64) -> Result<()> {
    let mut daily = txn.open_table(DAILY)?;
    for delta in days.into_deltas() {
        let key = day_key(delta.date, &delta.currency.to_string());
        let day = match daily.get(key.as_str())? {
            Some(bytes) => {
                let mut day: DailyOrders = serde_json::from_slice(bytes.value())?;
                add_day(&mut day, &delta, position)?;
                day
            }
            None => delta,
        };
        daily.insert(key.as_str(), serde_json::to_vec(&day)?.as_slice())?;
    }
    Ok(())
}

/// Inserts customer-index entries, sorted first: neighbouring keys share
/// B-tree pages.
fn insert_sorted(index: &mut Table<'_, &str, ()>, entries: &mut [String]) -> Result<()> {
    entries.sort_unstable();
    for key in entries.iter() {
        index.insert(key.as_str(), ())?;
    }
    Ok(())
}

/// The customer-index key of an order. Customer ids hold no control
/// characters, so NUL ends the customer part and every key of a customer
/// sorts between `customer NUL` and `customer SOH`.
fn index_key(customer_id: &str, order_id: &str) -> String {
    let mut key = String::with_capacity(customer_id.len() + 1 + order_id.len());
    key.push_str(customer_id);
    key.push('\0');
    key.push_str(order_id);
    key
}

fn day_key(date: NaiveDate, currency: &str) -> String {
    format!("{date} {currency}")
}

#[async_trait]
impl ReadModel for RedbReadModel {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        if !self.file.is_relaxed() {
            return self.file.apply(batch, move |txn, batch| write_batch(txn, batch, next_position)).await;
        }
        let (stager, db) = (self.stager.clone(), Arc::clone(self.file.database()));
        self.file.in_place(batch, move |_, batch| stager.apply(&db, batch, next_position)).await
    }

    async fn sync(&self) -> Result<()> {
        let stager = self.stager.clone();
        self.blocking(move |_| stager.finish_in_flight()).await?;
        let stager = self.stager.clone();
        self.file.sync(move |txn| stager.write_rest(txn)).await?;
        self.stager.synced();
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64> {
        if let Some(position) = self.stager.checkpoint()? {
            return Ok(position);
        }
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
            let index = txn.open_table(BY_CUSTOMER)?;
            let rows = txn.open_table(ROWS)?;
            let mut out = Vec::new();
            let (low, high) = (index_key(&customer_id, ""), format!("{customer_id}\u{1}"));
            for entry in index.range(low.as_str()..high.as_str())? {
                let (key, _) = entry?;
                let key = key.value();
                let order_id = &key[low.len()..];
                if let Some(bytes) = rows.get(order_id)? {
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

mod staged;

#[cfg(test)]
mod tests;
