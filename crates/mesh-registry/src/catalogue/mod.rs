//! The `Catalogue` port: where the registry keeps what it knows, durably.
//!
//! It holds registered contracts (by id and version, as the canonical YAML
//! the registry exported), products (their latest document), and for each
//! enforced output port a checkpoint (the next Kafka offset per partition
//! and the measurements so far) together with the latest record per key
//! that the port's named queries serve. A checkpoint and the records it
//! covers are written in one transaction, so after a crash the enforcer
//! resumes exactly where its last write left it: no event is counted twice
//! and none is lost.
//!
//! Adapters: [`RedbCatalogue`] (`DIR/mesh-registry/catalogue.redb`, the
//! default) and [`PostgresCatalogue`] (a schema of its own, so several
//! registry instances share one catalogue). One suite (`catalogue::contract`, test builds) runs
//! against both.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::product::DataProduct;

#[cfg(test)]
pub(crate) mod contract;
mod embedded;
mod postgres;

pub use embedded::RedbCatalogue;
pub use postgres::PostgresCatalogue;

/// A registered contract version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredContract {
    pub id: String,
    pub version: String,
    /// The contract as ODCS YAML, as the registry writes it.
    pub document: String,
    pub registered_at: DateTime<Utc>,
}

/// What one registration writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    pub contracts: Vec<StoredContract>,
    pub products: Vec<DataProduct>,
}

/// Where an enforced port stands: the next offset to read per partition of
/// its topic, and the enforcer's measurements (opaque here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortCheckpoint {
    pub next_offsets: BTreeMap<i32, i64>,
    pub state: serde_json::Value,
}

/// The latest record of one key on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub key: String,
    pub value: serde_json::Value,
    /// The producing aggregate's version, when the event carried one.
    pub version: u64,
    /// Where it was read.
    pub partition: i32,
    pub offset: i64,
    pub time: DateTime<Utc>,
}

/// The registry's storage.
#[async_trait]
pub trait Catalogue: Send + Sync + std::fmt::Debug {
    /// Writes every contract and product of `registration` in one
    /// transaction. A contract id and version already stored with another
    /// document is refused ([`crate::Error::Duplicate`]) and nothing is
    /// written; the same document again is a no-op. Products replace their
    /// previous document.
    async fn register(&self, registration: &Registration) -> Result<()>;

    /// Every version of a contract, oldest first by semantic version.
    async fn contract_versions(&self, id: &str) -> Result<Vec<StoredContract>>;

    /// Every contract version of every contract.
    async fn contracts(&self) -> Result<Vec<StoredContract>>;

    async fn product(&self, id: &str) -> Result<Option<DataProduct>>;

    /// Every product, by id.
    async fn products(&self) -> Result<Vec<DataProduct>>;

    async fn checkpoint(&self, port: &str) -> Result<Option<PortCheckpoint>>;

    /// Stores `checkpoint` and upserts `records` in one transaction.
    async fn advance(&self, port: &str, checkpoint: &PortCheckpoint, records: &[StoredRecord]) -> Result<()>;

    async fn record(&self, port: &str, key: &str) -> Result<Option<StoredRecord>>;

    /// The latest record of every key whose value has every field of
    /// `filter` equal to the given JSON value, by key, at most `limit`.
    async fn records(
        &self,
        port: &str,
        filter: &BTreeMap<String, serde_json::Value>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>>;
}

/// Whether a record's value matches an equality filter on its top-level
/// fields (a string filter also matches the same number or boolean
/// written as text, as query parameters arrive as text).
pub fn matches_filter(value: &serde_json::Value, filter: &BTreeMap<String, serde_json::Value>) -> bool {
    filter.iter().all(|(field, wanted)| match (value.get(field), wanted) {
        (Some(v), w) if v == w => true,
        (Some(serde_json::Value::Number(n)), serde_json::Value::String(w)) => {
            w.trim().parse::<f64>().ok().is_some_and(|x| Some(x) == n.as_f64())
        }
        (Some(serde_json::Value::Bool(b)), serde_json::Value::String(w)) => w.trim().parse::<bool>().ok() == Some(*b),
        _ => false,
    })
}

/// Sorts contract versions by semantic version (unparseable ones first, by
/// text, though the registry never stores one).
pub(crate) fn by_semver(contracts: &mut [StoredContract]) {
    contracts.sort_by(|a, b| match (semver::Version::parse(&a.version), semver::Version::parse(&b.version)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.version.cmp(&b.version),
    });
}
