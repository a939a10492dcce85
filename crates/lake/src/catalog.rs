//! The lake as a whole (the seed's `DataLakeManager`): which tables exist,
//! their statistics, and SQL over all of them.
//!
//! SQL names a table by layer and name, `silver.orders`, as Spark and
//! DuckDB name a schema's table; every table is read at its current version.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::{DeltaTableBuilder, Path};
use futures::TryStreamExt;

use crate::location::{LakeLocation, Layer, TableId, is_plain_name};
use crate::table::{LakeTable, TableStats};
use crate::{Error, Result};

/// A session with an empty schema per name (`silver`, `changes`, ...) in
/// its default catalog, returned in the order given.
pub(crate) fn session_with_schemas(names: &[&str]) -> Result<(SessionContext, Vec<Arc<MemorySchemaProvider>>)> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    let catalog = ctx.catalog("datafusion").ok_or_else(|| {
        deltalake::datafusion::error::DataFusionError::Internal("the session has no default catalog".into())
    })?;
    let mut schemas = Vec::with_capacity(names.len());
    for name in names {
        let schema = Arc::new(MemorySchemaProvider::new());
        catalog.register_schema(name, schema.clone())?;
        schemas.push(schema);
    }
    Ok((ctx, schemas))
}

/// The non-null values of the first column of query results, as text.
pub(crate) fn first_column_text(batches: &[RecordBatch]) -> Result<Vec<String>> {
    use deltalake::arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let column = deltalake::arrow::compute::cast(b.column(0), &deltalake::arrow::datatypes::DataType::Utf8)?;
        let column = column.as_string::<i32>();
        out.extend((0..column.len()).filter(|i| column.is_valid(*i)).map(|i| column.value(i).to_owned()));
    }
    Ok(out)
}

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
        let (ctx, schemas) = session_with_schemas(&Layer::ALL.map(Layer::as_str))?;
        for id in self.tables().await? {
            let table = self.table(&id).await?;
            let provider = table.provider().await?;
            let layer = Layer::ALL.iter().position(|l| *l == id.layer).unwrap_or_default();
            schemas[layer].register_table(id.name.clone(), provider)?;
        }
        Ok(ctx)
    }

    /// Runs one SQL query over the lake's tables.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.session().await?;
        let frame = ctx.sql(query).await?;
        Ok(frame.collect().await?)
    }

    /// Runs one SQL statement that only reads: DDL (`CREATE`, `DROP`), DML
    /// (`INSERT`, `DELETE`, `UPDATE`, `COPY`) and statements (`SET`) are
    /// refused with [`Error::NotAQuery`] before anything runs. What a
    /// service offers to callers it does not trust with the tables.
    pub async fn query(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.session().await?;
        let plan = ctx.state().create_logical_plan(query).await?;
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        if let Err(e) = read_only.verify_plan(&plan) {
            return Err(Error::NotAQuery(e.strip_backtrace()));
        }
        Ok(ctx.execute_logical_plan(plan).await?.collect().await?)
    }
}
