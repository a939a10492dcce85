//! The registry: registers contracts and products (all of a document or
//! nothing), keeps them in its [`Catalogue`], indexes them for search,
//! serves products' named queries from what their ports recorded, and
//! reports the quality their enforcers measured.
//!
//! Registration rules, beyond each document's own:
//! - a contract version is lint-clean and its schema compiles; a second
//!   registration of the same id and version must be the same document;
//!   a new version passes the semver gate against the highest version
//!   registered before it, and a refusal names the consumers (products
//!   whose input ports read the contract);
//! - every port of a product points at a contract version that is
//!   registered (before, or in the same registration);
//! - a product registered again moves forward only: its version does not
//!   decrease, the same version carries the same document (its status may
//!   move), and the status follows the lifecycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::binding::{self, Contract};
use crate::catalogue::{Catalogue, Registration, StoredContract, StoredRecord};
use crate::diff::Change;
use crate::enforcer::port_key;
use crate::product::{DataProduct, NamedQuery, PortLocation, ProductStatus, parse_version};
use crate::quality::{Expectations, Measurement, Meter};
use crate::search::{SearchDoc, SearchFilter, SearchIndex, SearchResults};
use crate::{Error, Result};

/// One document of a registration.
#[derive(Debug, Clone)]
pub enum Document {
    Contract(Box<Contract>),
    Product(Box<DataProduct>),
}

/// What a registration did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Registered {
    /// Contract versions newly stored, with their differences from the
    /// previous version.
    pub contracts: Vec<RegisteredContract>,
    /// Products stored (new, or changed).
    pub products: Vec<String>,
    /// Documents that were already registered exactly so.
    pub unchanged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredContract {
    pub id: String,
    pub version: String,
    pub previous: Option<String>,
    pub changes: Vec<Change>,
}

/// A port's quality as its enforcer last checkpointed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortQuality {
    pub port: String,
    pub contract_id: String,
    pub contract_version: String,
    /// `None` until the port's enforcer has read a record.
    pub measurement: Option<Measurement>,
    /// What another context reported about this port (the lake's
    /// `QualityMeasured`), as it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<serde_json::Value>,
}

/// The answer to a named query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    One(serde_json::Value),
    Many(Vec<serde_json::Value>),
}

/// The registry (see the module doc). Share it behind an `Arc`.
pub struct Registry {
    catalogue: Arc<dyn Catalogue>,
    search: SearchIndex,
    /// Registrations of this process, one at a time, so the checks a
    /// registration makes still hold when it commits.
    writing: tokio::sync::Mutex<()>,
    /// Parsed contracts by (id, version).
    contracts: std::sync::RwLock<HashMap<(String, String), Arc<Contract>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("catalogue", &self.catalogue).finish_non_exhaustive()
    }
}

/// Most records a list query returns.
pub const MAX_LIST: usize = 10_000;

impl Registry {
    /// Opens the registry over `catalogue`, indexing every stored product
    /// for search (with its last measured quality).
    pub async fn open(catalogue: Arc<dyn Catalogue>) -> Result<Self> {
        let registry = Self {
            catalogue,
            search: SearchIndex::new()?,
            writing: tokio::sync::Mutex::new(()),
            contracts: std::sync::RwLock::new(HashMap::new()),
        };
        let products = registry.catalogue.products().await?;
        let mut docs = Vec::with_capacity(products.len());
        for p in &products {
            let quality = registry.overall_quality(p).await?;
            docs.push(registry.search_doc(p, quality).await?);
        }
        registry.search.upsert_many(&docs)?;
        Ok(registry)
    }

    pub fn catalogue(&self) -> &Arc<dyn Catalogue> {
        &self.catalogue
    }

    /// Splits a YAML stream (`---` between documents) into contracts and
    /// products, by each document's `kind`.
    pub fn parse(name: &str, text: &str) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        for (line, chunk) in split_documents(text) {
            // Errors inside a later document give lines of the whole file.
            let shift = |e: Error| match e {
                Error::Yaml { document, line: l, column, message } if l > 0 => {
                    Error::Yaml { document, line: l + line - 1, column, message }
                }
                e => e,
            };
            let kind = binding::kind_of(name, chunk).map_err(shift)?;
            match kind.as_deref() {
                Some("DataContract") => {
                    out.push(Document::Contract(Box::new(binding::parse_contract(name, chunk).map_err(shift)?)))
                }
                Some(crate::product::PRODUCT_KIND) => {
                    out.push(Document::Product(Box::new(DataProduct::from_yaml(name, chunk).map_err(shift)?)))
                }
                Some(other) => {
                    return Err(Error::InvalidQuery(format!(
                        "{name}, document at line {line}: kind `{other}` is neither DataContract nor DataProduct"
                    )));
                }
                None => {
                    return Err(Error::InvalidQuery(format!(
                        "{name}, document at line {line}: no `kind` (DataContract or DataProduct)"
                    )));
                }
            }
        }
        if out.is_empty() {
            return Err(Error::InvalidQuery(format!("{name}: no document")));
        }
        Ok(out)
    }

    /// Registers every document, or none (see the module doc).
    pub async fn register(&self, documents: Vec<Document>) -> Result<Registered> {
        let _one_at_a_time = self.writing.lock().await;
        let mut outcome = Registered::default();
        let mut registration = Registration::default();
        // Contracts known to this registration: stored ones plus new ones.
        let mut new_contracts: BTreeMap<(String, String), Arc<Contract>> = BTreeMap::new();
        let mut products: Vec<DataProduct> = Vec::new();
        let mut unchanged: Vec<DataProduct> = Vec::new();
        for d in documents {
            match d {
                Document::Contract(c) => {
                    let (id, version) = binding::id_and_version(&c);
                    let key = (id.to_owned(), version.to_owned());
                    if new_contracts.get(&key).is_some_and(|other| **other != *c) {
                        return Err(Error::Duplicate { kind: "contract", id: key.0, version: key.1 });
                    }
                    new_contracts.insert(key, Arc::new(*c));
                }
                Document::Product(p) => {
                    if products.iter().any(|q| q.id == p.id) {
                        return Err(Error::Duplicate { kind: "product", id: p.id.clone(), version: String::new() });
                    }
                    products.push(*p)
                }
            }
        }
        // The stored versions of this registration's products (all products
        // are read only to name consumers when a change is refused).
        let mut stored_products: BTreeMap<String, DataProduct> = BTreeMap::new();
        for p in &products {
            if let Some(old) = self.catalogue.product(&p.id).await? {
                stored_products.insert(p.id.clone(), old);
            }
        }
        for ((id, version), contract) in &new_contracts {
            let document = binding::export(contract)?;
            let mut versions = self.catalogue.contract_versions(id).await?;
            if let Some(same) = versions.iter().find(|v| &v.version == version) {
                if same.document == document {
                    outcome.unchanged.push(format!("contract {id}@{version}"));
                    continue;
                }
                return Err(Error::Duplicate { kind: "contract", id: id.clone(), version: version.clone() });
            }
            // Gate against the highest version below this one, registered
            // or in this registration.
            for ((other_id, other_version), c) in &new_contracts {
                if other_id == id && other_version != version {
                    versions.push(StoredContract {
                        id: id.clone(),
                        version: other_version.clone(),
                        document: binding::export(c)?,
                        registered_at: Utc::now(),
                    });
                }
            }
            let this = parse_version(version)?;
            let previous = versions
                .iter()
                .filter_map(|v| parse_version(&v.version).ok().map(|sv| (sv, v)))
                .filter(|(sv, _)| *sv < this)
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, v)| v);
            let changes = match previous {
                None => Vec::new(),
                Some(prev) => {
                    let old = binding::parse_contract(&format!("{id}@{}", prev.version), &prev.document)?;
                    match binding::gate(&old, contract) {
                        Ok(changes) => changes,
                        Err(refusal) => {
                            let mut all: BTreeMap<String, DataProduct> =
                                self.catalogue.products().await?.into_iter().map(|p| (p.id.clone(), p)).collect();
                            all.extend(products.iter().map(|p| (p.id.clone(), p.clone())));
                            return Err(refusal.into_error(consumers(all.values(), id)));
                        }
                    }
                }
            };
            outcome.contracts.push(RegisteredContract {
                id: id.clone(),
                version: version.clone(),
                previous: previous.map(|p| p.version.clone()),
                changes,
            });
            registration.contracts.push(StoredContract {
                id: id.clone(),
                version: version.clone(),
                document,
                registered_at: Utc::now(),
            });
        }
        for p in products {
            for r in p.contracts() {
                let known = new_contracts.contains_key(&(r.contract_id.clone(), r.contract_version.clone()))
                    || self
                        .catalogue
                        .contract_versions(&r.contract_id)
                        .await?
                        .iter()
                        .any(|v| v.version == r.contract_version);
                if !known {
                    return Err(Error::InvalidProduct {
                        product: p.id.clone(),
                        path: "ports".into(),
                        reason: format!(
                            "points at contract {r}, which is not registered (register the contract first, or in the same file)"
                        ),
                    });
                }
            }
            if let Some(old) = stored_products.get(&p.id) {
                if old == &p {
                    outcome.unchanged.push(format!("product {}", p.id));
                    // Another instance may have stored it: index it here too.
                    unchanged.push(p);
                    continue;
                }
                check_successor(old, &p)?;
            }
            outcome.products.push(p.id.clone());
            registration.products.push(p);
        }
        if !registration.contracts.is_empty() || !registration.products.is_empty() {
            self.catalogue.register(&registration).await?;
        }
        {
            let mut cache = self.contracts.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, c) in new_contracts {
                cache.insert(k, c);
            }
        }
        // Queued: the next search commits them, so a burst of
        // registrations pays for one index commit, not one each.
        for p in registration.products.iter().chain(&unchanged) {
            let quality = self.overall_quality(p).await?;
            self.search.upsert(&self.search_doc(p, quality).await?)?;
        }
        Ok(outcome)
    }

    /// Parses and registers a YAML stream (see [`Registry::parse`]).
    pub async fn register_text(&self, name: &str, text: &str) -> Result<Registered> {
        self.register(Self::parse(name, text)?).await
    }

    pub async fn product(&self, id: &str) -> Result<DataProduct> {
        self.catalogue.product(id).await?.ok_or_else(|| Error::NotFound { kind: "product", id: id.to_owned() })
    }

    pub async fn products(&self) -> Result<Vec<DataProduct>> {
        self.catalogue.products().await
    }

    /// Whether the catalogue answers: one point lookup, whatever the
    /// number of products (a readiness probe must not scan them all).
    pub async fn ping(&self) -> Result<()> {
        self.catalogue.product("").await.map(|_| ())
    }

    /// A contract version, or the highest one when `version` is `None`.
    pub async fn contract(&self, id: &str, version: Option<&str>) -> Result<Arc<Contract>> {
        let versions = self.catalogue.contract_versions(id).await?;
        let stored = match version {
            Some(v) => versions.iter().find(|c| c.version == v),
            None => versions.last(),
        };
        let Some(stored) = stored else {
            let id = match version {
                Some(v) => format!("{id}@{v}"),
                None => id.to_owned(),
            };
            return Err(Error::NotFound { kind: "contract", id });
        };
        let key = (stored.id.clone(), stored.version.clone());
        if let Some(c) = self.contracts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(binding::parse_contract(&format!("{}@{}", stored.id, stored.version), &stored.document)?);
        self.contracts.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, Arc::clone(&c));
        Ok(c)
    }

    /// The contract as ODCS YAML (highest version unless one is given).
    pub async fn export(&self, id: &str, version: Option<&str>) -> Result<String> {
        binding::export(&*self.contract(id, version).await?)
    }

    /// The products whose input ports read `contract_id`.
    pub async fn consumers_of(&self, contract_id: &str) -> Result<Vec<String>> {
        Ok(consumers(self.catalogue.products().await?.iter(), contract_id))
    }

    /// Ranked discovery (see [`crate::search`]).
    pub fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<SearchResults> {
        self.search.search(query, filter, limit)
    }

    /// What the enforcer of a port has to hold records to.
    pub async fn expectations(&self, contract_id: &str, version: &str, topic: Option<&str>) -> Result<Expectations> {
        binding::expectations(&*self.contract(contract_id, Some(version)).await?, topic)
    }

    /// The quality of each of a product's Kafka output ports, from their
    /// enforcers' last checkpoints.
    pub async fn quality(&self, product_id: &str) -> Result<Vec<PortQuality>> {
        let product = self.product(product_id).await?;
        self.port_quality(&product).await
    }

    async fn port_quality(&self, product: &DataProduct) -> Result<Vec<PortQuality>> {
        let mut out = Vec::new();
        for port in &product.output_ports {
            let PortLocation::Kafka { topic, .. } = &port.location else { continue };
            let checkpoint = self.catalogue.checkpoint(&port_key(&product.id, &port.name)).await?;
            let measurement = match checkpoint.and_then(|c| c.state.get("meter").cloned()) {
                Some(meter) => {
                    let meter: Meter = serde_json::from_value(meter)?;
                    let expectations = self
                        .expectations(&port.contract.contract_id, &port.contract.contract_version, Some(topic))
                        .await?;
                    Some(meter.measure(&expectations, crate::quality::DEFAULT_WINDOW, Utc::now()))
                }
                None => None,
            };
            out.push(PortQuality {
                port: port.name.clone(),
                contract_id: port.contract.contract_id.clone(),
                contract_version: port.contract.contract_version.clone(),
                measurement,
                reported: None,
            });
        }
        for port in &product.output_ports {
            if matches!(port.location, PortLocation::Kafka { .. }) {
                continue;
            }
            let reported = self.catalogue.checkpoint(&port_key(&product.id, &port.name)).await?.map(|c| c.state);
            if reported.is_some() {
                out.push(PortQuality {
                    port: port.name.clone(),
                    contract_id: port.contract.contract_id.clone(),
                    contract_version: port.contract.contract_version.clone(),
                    measurement: None,
                    reported,
                });
            }
        }
        Ok(out)
    }

    async fn overall_quality(&self, product: &DataProduct) -> Result<Option<f64>> {
        let ports = self.port_quality(product).await?;
        let scores: Vec<f64> = ports.iter().filter_map(|p| p.measurement.as_ref()?.totals.overall()).collect();
        Ok((!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64))
    }

    /// Keeps what another context measured on one of a product's ports
    /// that the registry cannot read itself (a lake table), and ranks the
    /// product by its `quality` (0..=1) when given.
    pub async fn record_reported_quality(&self, product_id: &str, port: &str, report: serde_json::Value) -> Result<()> {
        let product = self.product(product_id).await?;
        let Some(p) = product.output_ports.iter().find(|p| p.name == port) else {
            return Err(Error::NotFound { kind: "port", id: format!("{product_id}.{port}") });
        };
        if matches!(p.location, PortLocation::Kafka { .. }) {
            return Err(Error::InvalidQuery(format!(
                "{product_id}.{port} is a Kafka port: the registry measures it itself"
            )));
        }
        let quality = report.get("quality").and_then(serde_json::Value::as_f64);
        let checkpoint = crate::catalogue::PortCheckpoint { next_offsets: BTreeMap::new(), state: report };
        self.catalogue.advance(&port_key(product_id, port), &checkpoint, &[]).await?;
        if let Some(q) = quality {
            self.note_quality(product_id, q)?;
        }
        Ok(())
    }

    /// Re-ranks a product by the quality its ports' checkpoints hold now.
    pub async fn refresh_quality(&self, product_id: &str) -> Result<Option<f64>> {
        let product = self.product(product_id).await?;
        let quality = self.overall_quality(&product).await?;
        if let Some(q) = quality {
            self.note_quality(product_id, q)?;
        }
        Ok(quality)
    }

    /// Tells search a product's newly measured quality.
    pub fn note_quality(&self, product_id: &str, quality: f64) -> Result<()> {
        self.search.set_quality(product_id, quality)
    }

    /// Serves a product's named query (the seed's `query_data_product`):
    /// `ByKey` needs its parameter and answers one record; `List` filters
    /// on the parameters given.
    pub async fn query(&self, product_id: &str, endpoint: &str, params: &BTreeMap<String, String>) -> Result<Answer> {
        let product = self.product(product_id).await?;
        let Some((port, query)) = product.endpoint(endpoint) else {
            let known = product.endpoints();
            if known.is_empty() {
                return Err(Error::NotFound { kind: "endpoint", id: format!("{product_id}.{endpoint}") });
            }
            return Err(Error::InvalidQuery(format!(
                "{product_id} has no endpoint `{endpoint}`; it answers: {}",
                known.join(", ")
            )));
        };
        let key = port_key(&product.id, &port.name);
        match query {
            NamedQuery::ByKey { param, .. } => {
                let Some(value) = params.get(param) else {
                    return Err(Error::InvalidQuery(format!("{endpoint} needs {param}=VALUE")));
                };
                if let Some(extra) = params.keys().find(|k| *k != param) {
                    return Err(Error::InvalidQuery(format!("{endpoint} takes only {param}, not {extra}")));
                }
                let record = self.catalogue.record(&key, value).await?;
                record
                    .map(|r| Answer::One(r.value))
                    .ok_or_else(|| Error::NotFound { kind: "record", id: format!("{product_id}: {param}={value}") })
            }
            NamedQuery::List { .. } => {
                let filter = params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
                let records: Vec<StoredRecord> = self.catalogue.records(&key, &filter, MAX_LIST).await?;
                Ok(Answer::Many(records.into_iter().map(|r| r.value).collect()))
            }
        }
    }

    async fn search_doc(&self, p: &DataProduct, quality: Option<f64>) -> Result<SearchDoc> {
        let mut fields = Vec::new();
        for r in p.output_ports.iter().map(|o| &o.contract) {
            if let Ok(c) = self.contract(&r.contract_id, Some(&r.contract_version)).await {
                fields.extend(binding::field_names(&c));
            }
        }
        fields.sort();
        fields.dedup();
        Ok(SearchDoc {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            domain: p.domain.clone(),
            owner: p.owner.clone(),
            status: p.status.as_str().to_owned(),
            tags: p.tags.clone(),
            fields,
            quality,
        })
    }
}

fn consumers<'a>(products: impl Iterator<Item = &'a DataProduct>, contract_id: &str) -> Vec<String> {
    let mut out: Vec<String> = products
        .filter(|p| p.status != ProductStatus::Retired)
        .filter(|p| p.input_ports.iter().any(|i| i.contract.contract_id == contract_id))
        .map(|p| p.id.clone())
        .collect();
    out.sort();
    out
}

/// Whether `new` may replace `old` (same id).
fn check_successor(old: &DataProduct, new: &DataProduct) -> Result<()> {
    let (ov, nv) = (parse_version(&old.version)?, parse_version(&new.version)?);
    if nv < ov {
        return Err(Error::InvalidProduct {
            product: new.id.clone(),
            path: "version".into(),
            reason: format!("{} is older than the registered {}", new.version, old.version),
        });
    }
    if nv == ov {
        let mut same_but_status = new.clone();
        same_but_status.status = old.status;
        if &same_but_status != old {
            return Err(Error::Duplicate { kind: "product", id: new.id.clone(), version: new.version.clone() });
        }
    }
    if let Some(reason) = old.status.refuses(new.status) {
        return Err(Error::Lifecycle {
            product: new.id.clone(),
            from: old.status.to_string(),
            to: new.status.to_string(),
            reason,
        });
    }
    Ok(())
}

/// The documents of a YAML stream, split at `---` lines, each with the
/// line it starts on.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut start, mut start_line, mut pos) = (0, 1, 0);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            if !text[start..pos].trim().is_empty() {
                out.push((start_line, &text[start..pos]));
            }
            start = pos + line.len();
            start_line = n + 2;
        }
        pos += line.len();
    }
    if !text[start..].trim().is_empty() {
        out.push((start_line, &text[start..]));
    }
    out
}
