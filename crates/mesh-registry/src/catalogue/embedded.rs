//! The embedded catalogue: `catalogue.redb` in the registry's data
//! directory. redb commits durably (fsync) and atomically; its calls run on
//! tokio's blocking pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Catalogue, PortCheckpoint, Registration, StoredContract, StoredRecord, by_semver, matches_filter};
use crate::product::DataProduct;
use crate::{Error, Result};

/// `contract id \0 version` → `StoredContract` as JSON.
const CONTRACTS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("contracts");
/// Product id → `DataProduct` as JSON.
const PRODUCTS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("products");
/// Port → `PortCheckpoint` as JSON.
const CHECKPOINTS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("checkpoints");
/// `port \0 key` → `StoredRecord` as JSON.
const RECORDS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("records");

/// Keys join their parts with NUL, which no id contains, so a prefix scan
/// of `a\0` never meets `ab\0`.
fn joined(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

/// The catalogue in a redb file. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbCatalogue {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbCatalogue {
    pub const FILE_NAME: &'static str = "catalogue.redb";

    /// Opens (or creates) `dir/catalogue.redb`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let path = dir.join(Self::FILE_NAME);
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(CONTRACTS)?;
            txn.open_table(PRODUCTS)?;
            txn.open_table(CHECKPOINTS)?;
            txn.open_table(RECORDS)?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await?
    }
}

fn prefix_scan<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<T>> {
    let txn = db.begin_read()?;
    let t = txn.open_table(table)?;
    let mut out = Vec::new();
    for row in t.range(prefix..)? {
        let (k, v) = row?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

#[async_trait]
impl Catalogue for RedbCatalogue {
    async fn register(&self, registration: &Registration) -> Result<()> {
        let registration = registration.clone();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut contracts = txn.open_table(CONTRACTS)?;
                for c in &registration.contracts {
                    let key = joined(&c.id, &c.version);
                    if let Some(old) = contracts.get(key.as_str())? {
                        let old: StoredContract = serde_json::from_slice(old.value())?;
                        if old.document != c.document {
                            // Dropping the transaction uncommitted writes nothing.
                            return Err(Error::Duplicate {
                                kind: "contract",
                                id: c.id.clone(),
                                version: c.version.clone(),
                            });
                        }
                        continue;
                    }
                    contracts.insert(key.as_str(), serde_json::to_vec(c)?.as_slice())?;
                }
                let mut products = txn.open_table(PRODUCTS)?;
                for p in &registration.products {
                    products.insert(p.id.as_str(), serde_json::to_vec(p)?.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn contract_versions(&self, id: &str) -> Result<Vec<StoredContract>> {
        let prefix = joined(id, "");
        let mut out: Vec<StoredContract> = self.blocking(move |db| prefix_scan(db, CONTRACTS, &prefix)).await?;
        by_semver(&mut out);
        Ok(out)
    }

    async fn contracts(&self) -> Result<Vec<StoredContract>> {
        let mut out: Vec<StoredContract> = self.blocking(|db| prefix_scan(db, CONTRACTS, "")).await?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        // Stable sort by id keeps each id's versions together; order them.
        let mut sorted = Vec::with_capacity(out.len());
        for chunk in out.chunk_by(|a, b| a.id == b.id) {
            let mut chunk = chunk.to_vec();
            by_semver(&mut chunk);
            sorted.extend(chunk);
        }
        Ok(sorted)
    }

    async fn product(&self, id: &str) -> Result<Option<DataProduct>> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(PRODUCTS)?;
            Ok(match t.get(id.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
        .await
    }

    async fn products(&self) -> Result<Vec<DataProduct>> {
        self.blocking(|db| prefix_scan(db, PRODUCTS, "")).await
    }

    async fn checkpoint(&self, port: &str) -> Result<Option<PortCheckpoint>> {
        let port = port.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(CHECKPOINTS)?;
            Ok(match t.get(port.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
        .await
    }

    async fn advance(&self, port: &str, checkpoint: &PortCheckpoint, records: &[StoredRecord]) -> Result<()> {
        let port = port.to_owned();
        let checkpoint = serde_json::to_vec(checkpoint)?;
        let rows: Vec<(String, Vec<u8>)> =
            records.iter().map(|r| Ok((joined(&port, &r.key), serde_json::to_vec(r)?))).collect::<Result<_>>()?;
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(RECORDS)?;
                for (k, v) in &rows {
                    t.insert(k.as_str(), v.as_slice())?;
                }
                txn.open_table(CHECKPOINTS)?.insert(port.as_str(), checkpoint.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn record(&self, port: &str, key: &str) -> Result<Option<StoredRecord>> {
        let key = joined(port, key);
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(RECORDS)?;
            Ok(match t.get(key.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
        .await
    }

    async fn records(
        &self,
        port: &str,
        filter: &BTreeMap<String, serde_json::Value>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let prefix = joined(port, "");
        let filter = filter.clone();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(RECORDS)?;
            let mut out = Vec::new();
            for row in t.range(prefix.as_str()..)? {
                let (k, v) = row?;
                if !k.value().starts_with(prefix.as_str()) || out.len() >= limit {
                    break;
                }
                let record: StoredRecord = serde_json::from_slice(v.value())?;
                if matches_filter(&record.value, &filter) {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (RedbCatalogue, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mesh-cat-{}", uuid::Uuid::now_v7().simple()));
        (RedbCatalogue::open(&dir).expect("open"), dir)
    }

    crate::catalogue_suite!(fresh().0);

    #[tokio::test]
    async fn what_was_written_is_there_after_reopening() {
        let (cat, dir) = fresh();
        super::super::contract::write_sample(&cat).await;
        drop(cat);
        let cat = RedbCatalogue::open(&dir).expect("reopen");
        super::super::contract::sample_is_there(&cat).await;
        std::fs::remove_dir_all(dir).ok();
    }
}
