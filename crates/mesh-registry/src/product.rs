//! Data products (ODPS-shaped): who owns what data, where it flows out,
//! under which contract, and where it stands in its lifecycle.
//!
//! Every field of the seed's `DataProduct` is here: `id`, `name`,
//! `description`, `owner`, `version`, `sla`, `dependencies`, `tags`; its
//! `schema` is the contract an output port points at; its `endpoints` are
//! the output ports' named queries; its `quality_metrics` are never stored
//! here, only measured (see [`crate::quality`]).
//!
//! The document (YAML or JSON) is `kind: DataProduct` with camelCase keys;
//! unknown keys are refused, as in a contract.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a product stands. Draft → active → deprecated → retired; a draft
/// may also be retired unreleased. Nothing goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Draft,
    Active,
    Deprecated,
    Retired,
}

impl ProductStatus {
    pub const ALL: [ProductStatus; 4] = [Self::Draft, Self::Active, Self::Deprecated, Self::Retired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Retired => "retired",
        }
    }

    /// Why `self → to` is refused, or `None` when the lifecycle allows it.
    pub fn refuses(self, to: ProductStatus) -> Option<&'static str> {
        use ProductStatus::*;
        match (self, to) {
            (a, b) if a == b => None,
            (Draft, Active | Retired) | (Active, Deprecated) | (Deprecated, Retired) => None,
            (Active, Retired) => Some("deprecate it first, so its consumers get notice"),
            (Retired, _) => Some("a retired product stays retired"),
            (_, Draft) => Some("a released product cannot become a draft again"),
            (Deprecated, Active) => Some("a deprecated product cannot be reactivated; publish a new product version"),
            (Draft, Deprecated) => Some("a draft was never active; retire it instead"),
            _ => Some("not a lifecycle step"),
        }
    }
}

impl fmt::Display for ProductStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProductStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Error::InvalidQuery(format!("unknown status `{s}`: use draft, active, deprecated or retired"))
        })
    }
}

/// A contract by id and exact version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContractRef {
    pub contract_id: String,
    pub contract_version: String,
}

impl fmt::Display for ContractRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.contract_id, self.contract_version)
    }
}

/// Where a port's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PortLocation {
    /// Events on a Kafka topic. `eventTypes` selects the CloudEvents types
    /// that carry the product's records (all when empty); `key` names the
    /// payload field that identifies a record (the event subject when
    /// absent).
    #[serde(rename_all = "camelCase")]
    Kafka {
        topic: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        event_types: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A table of the lake (`bronze.orders_events`, `gold.daily_revenue`).
    Lake { table: String },
    /// A series of the time-series engine.
    Timeseries { series: String },
}

impl PortLocation {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kafka { .. } => "kafka",
            Self::Lake { .. } => "lake",
            Self::Timeseries { .. } => "timeseries",
        }
    }

    /// Whether an event of `event_type` carries this port's records.
    pub fn carries(&self, event_type: &str) -> bool {
        match self {
            Self::Kafka { event_types, .. } => event_types.is_empty() || event_types.iter().any(|t| t == event_type),
            _ => false,
        }
    }
}

/// A named query an output port answers (the seed's endpoints:
/// `get_customer_by_id`, `get_all_customers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum NamedQuery {
    /// The latest record whose key equals the parameter `param`.
    #[serde(rename_all = "camelCase")]
    ByKey { name: String, param: String },
    /// The latest record of every key, filtered by equality on any of the
    /// record's top-level fields given as parameters.
    #[serde(rename_all = "camelCase")]
    List { name: String },
}

impl NamedQuery {
    pub fn name(&self) -> &str {
        match self {
            Self::ByKey { name, .. } | Self::List { name } => name,
        }
    }
}

/// Data a product serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputPort {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub location: PortLocation,
    #[serde(flatten)]
    pub contract: ContractRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<NamedQuery>,
}

/// Data a product reads: the contract it was written against, which makes
/// it a consumer the semver gate protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InputPort {
    pub name: String,
    #[serde(flatten)]
    pub contract: ContractRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<PortLocation>,
}

/// What a product promises about its service (the seed's `sla`). Every
/// field is optional; `extra` keeps the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sla {
    /// Share of time the product answers, 0..=1 (the seed's 0.99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_freshness_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `kind` every product document carries.
pub const PRODUCT_KIND: &str = "DataProduct";
/// The product document version this registry reads and writes.
pub const PRODUCT_API_VERSION: &str = "v1.0.0";

fn default_kind() -> String {
    PRODUCT_KIND.to_owned()
}

fn default_api_version() -> String {
    PRODUCT_API_VERSION.to_owned()
}

/// A data product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataProduct {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub domain: String,
    /// The owning team or person (the seed's `owner`).
    pub owner: String,
    pub version: String,
    pub status: ProductStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub sla: Sla,
    /// Other products or services this one needs (the seed's
    /// `dependencies`), by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_ports: Vec<InputPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_ports: Vec<OutputPort>,
}

impl DataProduct {
    /// Reads a product document (YAML, of which JSON is a subset).
    pub fn from_yaml(document: &str, text: &str) -> Result<Self> {
        let product: DataProduct = crate::document::from_yaml(document, text)?;
        product.check()?;
        Ok(product)
    }

    pub fn to_yaml(&self) -> Result<String> {
        crate::document::to_yaml(&self.id, self)
    }

    /// The seed's `endpoints`: every named query of every output port.
    pub fn endpoints(&self) -> Vec<&str> {
        self.output_ports.iter().flat_map(|p| p.queries.iter().map(NamedQuery::name)).collect()
    }

    /// The output port answering `endpoint`, with the query.
    pub fn endpoint(&self, endpoint: &str) -> Option<(&OutputPort, &NamedQuery)> {
        self.output_ports.iter().find_map(|p| p.queries.iter().find(|q| q.name() == endpoint).map(|q| (p, q)))
    }

    /// Every contract the product's ports point at.
    pub fn contracts(&self) -> BTreeSet<&ContractRef> {
        self.output_ports.iter().map(|p| &p.contract).chain(self.input_ports.iter().map(|p| &p.contract)).collect()
    }

    /// The rules a product document must keep by itself (references to
    /// contracts are checked by the registry, which knows them).
    pub fn check(&self) -> Result<()> {
        let bad = |path: &str, reason: String| Error::InvalidProduct {
            product: self.id.clone(),
            path: path.to_owned(),
            reason,
        };
        if self.kind != PRODUCT_KIND {
            return Err(bad("kind", format!("must be `{PRODUCT_KIND}`, found `{}`", self.kind)));
        }
        if self.api_version != PRODUCT_API_VERSION {
            return Err(bad("apiVersion", format!("must be `{PRODUCT_API_VERSION}`, found `{}`", self.api_version)));
        }
        check_id(&self.id).map_err(|reason| bad("id", reason))?;
        for (field, value) in [("name", &self.name), ("domain", &self.domain), ("owner", &self.owner)] {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty".into()));
            }
        }
        parse_version(&self.version)?;
        if let Some(a) = self.sla.availability
            && !(0.0..=1.0).contains(&a)
        {
            return Err(bad("sla.availability", format!("{a} is not a share between 0 and 1 (99.9% is 0.999)")));
        }
        if let Some(h) = self.sla.data_freshness_hours
            && !(h.is_finite() && h > 0.0)
        {
            return Err(bad("sla.dataFreshnessHours", format!("{h} is not a positive number of hours")));
        }
        let mut ports = BTreeSet::new();
        let mut endpoints = BTreeSet::new();
        for (i, port) in self.output_ports.iter().enumerate() {
            let path = format!("outputPorts[{i}]");
            if !ports.insert(port.name.as_str()) {
                return Err(bad(&path, format!("port name `{}` is used twice", port.name)));
            }
            check_ref(&port.contract).map_err(|reason| bad(&path, reason))?;
            check_location(&port.location).map_err(|reason| bad(&format!("{path}.location"), reason))?;
            for (j, query) in port.queries.iter().enumerate() {
                if !endpoints.insert(query.name()) {
                    return Err(bad(
                        &format!("{path}.queries[{j}]"),
                        format!("query `{}` is defined twice", query.name()),
                    ));
                }
                if !matches!(port.location, PortLocation::Kafka { .. }) {
                    return Err(bad(
                        &format!("{path}.queries[{j}]"),
                        "named queries are served from Kafka output ports only".into(),
                    ));
                }
                if let NamedQuery::ByKey { param, .. } = query
                    && param.trim().is_empty()
                {
                    return Err(bad(&format!("{path}.queries[{j}].param"), "must name the key parameter".into()));
                }
            }
        }
        for (i, port) in self.input_ports.iter().enumerate() {
            let path = format!("inputPorts[{i}]");
            if !ports.insert(port.name.as_str()) {
                return Err(bad(&path, format!("port name `{}` is used twice", port.name)));
            }
            check_ref(&port.contract).map_err(|reason| bad(&path, reason))?;
            if let Some(location) = &port.location {
                check_location(location).map_err(|reason| bad(&format!("{path}.location"), reason))?;
            }
        }
        if self.status == ProductStatus::Active && self.output_ports.is_empty() {
            return Err(bad("outputPorts", "an active product serves at least one output port".into()));
        }
        Ok(())
    }
}

/// Parses a semantic version, with the registry's typed error.
pub fn parse_version(value: &str) -> Result<semver::Version> {
    semver::Version::parse(value).map_err(|source| Error::InvalidVersion { value: value.to_owned(), source })
}

/// Ids are what topics, keys and URLs can carry: `[A-Za-z0-9._:-]`, 1 to
/// 200 characters.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if id.is_empty() || id.len() > 200 || !id.chars().all(legal) {
        return Err(format!("`{id}` is not an id: use 1 to 200 of A-Z a-z 0-9 . _ - :"));
    }
    Ok(())
}

fn check_ref(r: &ContractRef) -> std::result::Result<(), String> {
    check_id(&r.contract_id)?;
    semver::Version::parse(&r.contract_version)
        .map(|_| ())
        .map_err(|e| format!("contractVersion `{}` is not a semantic version: {e}", r.contract_version))
}

fn check_location(location: &PortLocation) -> std::result::Result<(), String> {
    match location {
        PortLocation::Kafka { topic, event_types, key } => {
            domain_core::bus::validate_topic(topic).map_err(|e| e.to_string())?;
            for t in event_types {
                t.parse::<domain_core::EventType>().map_err(|e| format!("eventTypes: {e}"))?;
            }
            if key.as_ref().is_some_and(|k| k.trim().is_empty()) {
                return Err("key must name a payload field (or be left out to key by event subject)".into());
            }
            Ok(())
        }
        PortLocation::Lake { table } | PortLocation::Timeseries { series: table } if table.trim().is_empty() => {
            Err("must name its table or series".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const CUSTOMERS: &str = r#"
id: customer_data_v1
name: Customer Master Data
description: Core customer information and demographics
domain: orders
owner: customer_team@company.com
version: 1.0.0
status: active
tags: [customer, master_data, core]
sla: { availability: 0.99, responseTimeMs: 100, dataFreshnessHours: 1 }
dependencies: [identity_service]
outputPorts:
  - name: customers
    location: { type: kafka, topic: orders.events, eventTypes: [orders.CustomerRegistered.v1], key: customer_id }
    contractId: customer_data_v1
    contractVersion: 1.0.0
    queries:
      - { kind: byKey, name: get_customer_by_id, param: customer_id }
      - { kind: list, name: get_all_customers }
"#;

    #[test]
    fn the_seed_product_reads_with_every_field_and_writes_back_the_same() {
        let p = DataProduct::from_yaml("customers.yaml", CUSTOMERS).expect("parse");
        assert_eq!(p.endpoints(), ["get_customer_by_id", "get_all_customers"]);
        assert_eq!(p.dependencies, ["identity_service"]);
        assert_eq!(p.sla.response_time_ms, Some(100));
        let again = DataProduct::from_yaml("again", &p.to_yaml().expect("yaml")).expect("parse");
        assert_eq!(again, p);
        assert!(
            matches!(p.endpoint("get_customer_by_id"), Some((_, NamedQuery::ByKey { param, .. })) if param == "customer_id")
        );
        assert!(p.endpoint("nope").is_none());
    }

    #[test]
    fn the_lifecycle_only_moves_forward() {
        use ProductStatus::*;
        assert_eq!(Draft.refuses(Active), None);
        assert_eq!(Draft.refuses(Retired), None);
        assert_eq!(Active.refuses(Deprecated), None);
        assert_eq!(Deprecated.refuses(Retired), None);
        for (from, to) in
            [(Active, Retired), (Retired, Active), (Active, Draft), (Deprecated, Active), (Draft, Deprecated)]
        {
            assert!(from.refuses(to).is_some(), "{from} -> {to}");
        }
    }

    #[test]
    fn bad_documents_name_what_is_wrong() {
        let cases = [
            (CUSTOMERS.replace("version: 1.0.0", "version: one"), "`one` is not a semantic version"),
            (CUSTOMERS.replace("id: customer_data_v1", "id: customer data"), "is not an id"),
            (CUSTOMERS.replace("owner: customer_team@company.com", "owner: ''"), "owner: must not be empty"),
            (CUSTOMERS.replace("availability: 0.99", "availability: 99"), "sla.availability"),
            (CUSTOMERS.replace("topic: orders.events", "topic: 'orders events'"), "outputPorts[0].location"),
            (CUSTOMERS.replace("contractVersion: 1.0.0", "contractVersion: latest"), "contractVersion `latest`"),
            (CUSTOMERS.replace("name: get_all_customers", "name: get_customer_by_id"), "defined twice"),
            (CUSTOMERS.replace("status: active", "status: live"), "unknown variant `live`"),
        ];
        for (doc, expected) in cases {
            let err = DataProduct::from_yaml("p.yaml", &doc).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        let err = DataProduct::from_yaml("p.yaml", &format!("{CUSTOMERS}colour: blue\n")).expect_err("unknown key");
        assert!(matches!(&err, Error::Yaml { line: 20, column: 1, .. }) && err.to_string().contains("colour"), "{err}");
    }
}
