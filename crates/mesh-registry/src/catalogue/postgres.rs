//! The PostgreSQL catalogue: four tables in a schema of its own (default
//! `mesh_registry`), created by [`PostgresCatalogue::connect`] if missing,
//! so several registry instances share one catalogue. Documents are JSON
//! text; ids and keys are `COLLATE "C"`, so listings come back in byte
//! order as in the embedded adapter.
//!
//! A registration is one transaction: a contract version already stored
//! with another document aborts it, so nothing of it is written. A
//! checkpoint and its records are one transaction too.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{Catalogue, PortCheckpoint, Registration, StoredContract, StoredRecord, by_semver, matches_filter};
use crate::product::DataProduct;
use crate::{Error, Result};

/// PostgreSQL's identifier limit.
const MAX_SCHEMA_LEN: usize = 63;

/// The catalogue in a PostgreSQL schema, over one connection (reopened
/// when found closed).
#[derive(Debug)]
pub struct PostgresCatalogue {
    url: String,
    schema: String,
    client: Mutex<Client>,
}

async fn open(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "catalogue PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Accepts `[a-z_][a-z0-9_]*`, at most 63 bytes, not `pg_*`.
fn check_schema(schema: &str) -> Result<()> {
    if event_store::postgres::is_schema_name(schema, MAX_SCHEMA_LEN) {
        Ok(())
    } else {
        Err(Error::InvalidSchema(schema.to_owned()))
    }
}

fn migration(s: &str) -> String {
    format!(
        r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('mesh registry migration {s}', 0));
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".contracts (
    id text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    document text NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS "{s}".products (id text COLLATE "C" PRIMARY KEY, document text NOT NULL);
CREATE TABLE IF NOT EXISTS "{s}".checkpoints (port text COLLATE "C" PRIMARY KEY, document text NOT NULL);
CREATE TABLE IF NOT EXISTS "{s}".records (
    port text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    document text NOT NULL,
    PRIMARY KEY (port, key)
);
COMMIT;
"#
    )
}

impl PostgresCatalogue {
    pub const DEFAULT_SCHEMA: &'static str = "mesh_registry";

    /// Connects and creates `schema` and its tables if missing (safe from
    /// several processes at once).
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        let client = open(url).await?;
        client.batch_execute(&migration(schema)).await?;
        Ok(Self { url: url.to_owned(), schema: schema.to_owned(), client: Mutex::new(client) })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema with everything in it (test cleanup).
    pub async fn drop_schema(&self) -> Result<()> {
        let client = self.client().await?;
        client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema)).await?;
        Ok(())
    }

    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            *client = open(&self.url).await?;
        }
        Ok(client)
    }

    fn table(&self, name: &str) -> String {
        format!(r#""{}".{name}"#, self.schema)
    }
}

#[async_trait]
impl Catalogue for PostgresCatalogue {
    async fn register(&self, registration: &Registration) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = format!(
            "INSERT INTO {} (id, version, document) VALUES ($1, $2, $3) ON CONFLICT (id, version) DO NOTHING",
            self.table("contracts")
        );
        let existing = format!("SELECT document FROM {} WHERE id = $1 AND version = $2", self.table("contracts"));
        for c in &registration.contracts {
            let doc = serde_json::to_string(c)?;
            if tx.execute(&insert, &[&c.id, &c.version, &doc]).await? == 0 {
                let row = tx.query_one(&existing, &[&c.id, &c.version]).await?;
                let old: StoredContract = serde_json::from_str(row.get::<_, &str>(0))?;
                if old.document != c.document {
                    // Dropping `tx` rolls everything back.
                    return Err(Error::Duplicate { kind: "contract", id: c.id.clone(), version: c.version.clone() });
                }
            }
        }
        let upsert = format!(
            "INSERT INTO {} (id, document) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document",
            self.table("products")
        );
        for p in &registration.products {
            tx.execute(&upsert, &[&p.id, &serde_json::to_string(p)?]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn contract_versions(&self, id: &str) -> Result<Vec<StoredContract>> {
        let client = self.client().await?;
        let rows =
            client.query(&format!("SELECT document FROM {} WHERE id = $1", self.table("contracts")), &[&id]).await?;
        let mut out =
            rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0))).collect::<serde_json::Result<Vec<_>>>()?;
        by_semver(&mut out);
        Ok(out)
    }

    async fn contracts(&self) -> Result<Vec<StoredContract>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT document FROM {} ORDER BY id", self.table("contracts")), &[]).await?;
        let all: Vec<StoredContract> =
            rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0))).collect::<serde_json::Result<_>>()?;
        let mut sorted = Vec::with_capacity(all.len());
        for chunk in all.chunk_by(|a, b| a.id == b.id) {
            let mut chunk = chunk.to_vec();
            by_semver(&mut chunk);
            sorted.extend(chunk);
        }
        Ok(sorted)
    }

    async fn product(&self, id: &str) -> Result<Option<DataProduct>> {
        let client = self.client().await?;
        let row =
            client.query_opt(&format!("SELECT document FROM {} WHERE id = $1", self.table("products")), &[&id]).await?;
        Ok(row.map(|r| serde_json::from_str(r.get::<_, &str>(0))).transpose()?)
    }

    async fn products(&self) -> Result<Vec<DataProduct>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT document FROM {} ORDER BY id", self.table("products")), &[]).await?;
        Ok(rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0))).collect::<serde_json::Result<_>>()?)
    }

    async fn checkpoint(&self, port: &str) -> Result<Option<PortCheckpoint>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT document FROM {} WHERE port = $1", self.table("checkpoints")), &[&port])
            .await?;
        Ok(row.map(|r| serde_json::from_str(r.get::<_, &str>(0))).transpose()?)
    }

    async fn advance(&self, port: &str, checkpoint: &PortCheckpoint, records: &[StoredRecord]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !records.is_empty() {
            let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
            let docs: Vec<String> = records.iter().map(serde_json::to_string).collect::<serde_json::Result<_>>()?;
            // One statement for the batch; a key twice in one batch keeps
            // the last (DISTINCT ON over the input order).
            tx.execute(
                &format!(
                    "INSERT INTO {} (port, key, document)
                     SELECT DISTINCT ON (k) $1::text, k, d
                     FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(k, d, n)
                     ORDER BY k, n DESC
                     ON CONFLICT (port, key) DO UPDATE SET document = EXCLUDED.document",
                    self.table("records")
                ),
                &[&port, &keys, &docs],
            )
            .await?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (port, document) VALUES ($1, $2) ON CONFLICT (port) DO UPDATE SET document = EXCLUDED.document",
                self.table("checkpoints")
            ),
            &[&port, &serde_json::to_string(checkpoint)?],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, port: &str, key: &str) -> Result<Option<StoredRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT document FROM {} WHERE port = $1 AND key = $2", self.table("records")),
                &[&port, &key],
            )
            .await?;
        Ok(row.map(|r| serde_json::from_str(r.get::<_, &str>(0))).transpose()?)
    }

    async fn records(
        &self,
        port: &str,
        filter: &BTreeMap<String, serde_json::Value>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT document FROM {} WHERE port = $1 ORDER BY key", self.table("records")), &[&port])
            .await?;
        let mut out = Vec::new();
        for row in rows {
            if out.len() >= limit {
                break;
            }
            let record: StoredRecord = serde_json::from_str(row.get::<_, &str>(0))?;
            if matches_filter(&record.value, filter) {
                out.push(record);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> String {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
    }

    /// A catalogue in a schema of its own; the suite's tests drop it.
    async fn fresh() -> PostgresCatalogue {
        let schema = format!("mesh_cat_test_{}", uuid::Uuid::now_v7().simple());
        PostgresCatalogue::connect(&url(), &schema).await.expect("connect")
    }

    crate::catalogue_suite!(fresh().await, |c: PostgresCatalogue| async move { c.drop_schema().await.expect("drop") });

    #[tokio::test]
    async fn a_schema_name_that_would_need_quoting_is_refused() {
        let err = PostgresCatalogue::connect(&url(), "Mesh; DROP").await.expect_err("refused");
        assert!(matches!(err, Error::InvalidSchema(_)), "{err}");
    }
}
