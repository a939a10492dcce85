//! The lake as a whole (the seed's `DataLakeManager`): which tables exist,
//! their statistics, and SQL over all of them.
//!
//! SQL names a table by layer and name, `silver.orders`, as Spark and
//! DuckDB name a schema's table; every table is read at its current version.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::{DeltaTableBuilder, Path};
use futures::TryStreamExt;

use crate::location::{LakeLocation, Layer, TableId, is_plain_name};
use crate::table::{LakeTable, TableStats};
use crate::{Error, Result};

/// A lake: its location and the tables under it.
#[derive(Debug, Clone)]
pub struct Lake {
    location: LakeLocation,
}

impl Lake {
    pub fn new(location: LakeLocation) -> Self {
        Self { location }
    }

    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// Every Delta table under the root, by layer then name.
    pub async fn tables(&self) -> Result<Vec<TableId>> {
        let store = DeltaTableBuilder::from_url(self.location.root().clone())
            .map_err(|e| Error::delta("(lake root)", e))?
            .with_storage_options(self.location.options().clone())
            .with_allow_http(self.location.options().get("AWS_ALLOW_HTTP").is_some_and(|v| v == "true"))
            .build_storage()
            .map_err(|e| Error::delta("(lake root)", e))?
            .object_store(None);
        let mut out = Vec::new();
        for layer in Layer::ALL {
            let listing = store.list_with_delimiter(Some(&Path::from(layer.as_str()))).await;
            let listing = match listing {
                Ok(l) => l,
                Err(deltalake::ObjectStoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for prefix in listing.common_prefixes {
                let Some(name) = prefix.filename() else { continue };
                if !is_plain_name(name) {
                    continue;
                }
                let log = prefix.clone().join("_delta_log");
                let has_log = store.list(Some(&log)).try_next().await?.is_some();
                if has_log {
                    out.push(TableId { layer, name: name.to_owned() });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens a table by id, or says which tables there are.
    pub async fn table(&self, id: &TableId) -> Result<LakeTable> {
        match LakeTable::open(&self.location, id).await? {
            Some(t) => Ok(t),
            None => Err(self.unknown(&id.to_string()).await),
        }
    }

    /// Opens a table by its name as text (`silver.orders`).
    pub async fn table_named(&self, name: &str) -> Result<LakeTable> {
        let id: TableId = name.parse().map_err(|_| Error::InvalidTableName(name.to_owned()))?;
        self.table(&id).await
    }

    async fn unknown(&self, name: &str) -> Error {
        let known = match self.tables().await {
            Ok(t) if t.is_empty() => "none yet (ingest something first: `platform lake ingest`)".to_owned(),
            Ok(t) => t.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            Err(e) => format!("(could not list: {e})"),
        };
        Error::UnknownTable { name: name.to_owned(), known }
    }

    /// Statistics of every table.
    pub async fn stats(&self) -> Result<Vec<TableStats>> {
        let mut out = Vec::new();
        for id in self.tables().await? {
            out.push(self.table(&id).await?.stats()?);
        }
        Ok(out)
    }

    /// A DataFusion session with every table registered as `<layer>.<name>`.
    pub async fn session(&self) -> Result<SessionContext> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx.catalog("datafusion").ok_or_else(|| Error::InvalidLocation {
            location: self.location.root().to_string(),
            reason: "DataFusion has no default catalog".into(),
        })?;
        let mut schemas = Vec::new();
        for layer in Layer::ALL {
            let schema = Arc::new(MemorySchemaProvider::new());
            catalog.register_schema(layer.as_str(), schema.clone())?;
            schemas.push((layer, schema));
        }
        for id in self.tables().await? {
            let table = self.table(&id).await?;
            let provider = table.provider().await?;
            if let Some((_, schema)) = schemas.iter().find(|(l, _)| *l == id.layer) {
                schema.register_table(id.name.clone(), provider)?;
            }
        }
        Ok(ctx)
    }

    /// Runs one SQL query over the lake's tables.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.session().await?;
        let frame = ctx.sql(query).await?;
        Ok(frame.collect().await?)
    }
}
