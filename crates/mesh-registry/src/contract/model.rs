//! The typed ODCS v3.1.0 document.
//!
//! One Rust type per object of the standard's JSON Schema. Objects the schema
//! closes (`additionalProperties` / `unevaluatedProperties: false`) refuse
//! unknown keys; the only open object, `description`, keeps unknown keys in
//! [`Description::extra`]. Optional keys are `Option`s and lists default to
//! empty; an empty list is written as an absent key (the one normalisation a
//! round trip makes). Free-form JSON (`serde_json::Value`) appears only where
//! the standard allows any type: custom property values, examples, quality
//! `arguments` and `mustBe`/`mustNotBe`, and custom `implementation`.
//!
//! Where the standard switches the allowed keys on a discriminator (server
//! `type`, quality `type`, `logicalType` for `logicalTypeOptions`), the type
//! here holds the union of the keys and [`Contract::lint`](super::Contract::lint)
//! checks that the keys fit the discriminator.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Number, Value};

use super::data_quality::{DataQuality, Metric};

/// The ODCS versions the registry reads.
///
/// v3.2.0 documents are accepted as long as they use only keys of v3.1.0:
/// the tools of the ecosystem (datacontract-cli 1.2) write v3.2.0 and cannot
/// be told otherwise, and v3.2.0 is a superset of v3.1.0. A key that only
/// v3.2.0 has is refused with an error that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ApiVersion {
    #[serde(rename = "v3.0.0")]
    V3_0_0,
    #[serde(rename = "v3.0.1")]
    V3_0_1,
    #[serde(rename = "v3.0.2")]
    V3_0_2,
    #[serde(rename = "v3.1.0")]
    V3_1_0,
    #[serde(rename = "v3.2.0")]
    V3_2_0,
}

impl ApiVersion {
    /// The version the registry writes for new contracts.
    pub const CURRENT: ApiVersion = ApiVersion::V3_1_0;

    /// As written in documents (`v3.1.0`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V3_0_0 => "v3.0.0",
            ApiVersion::V3_0_1 => "v3.0.1",
            ApiVersion::V3_0_2 => "v3.0.2",
            ApiVersion::V3_1_0 => "v3.1.0",
            ApiVersion::V3_2_0 => "v3.2.0",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The document kind; ODCS knows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Kind {
    #[default]
    DataContract,
}

/// An ODCS data contract (the document's root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Contract {
    pub api_version: ApiVersion,
    pub kind: Kind,
    /// Unique identifier of the contract (stable across versions).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Semantic version of this contract document (`1.2.0`).
    pub version: String,
    /// `proposed`, `draft`, `active`, `deprecated`, `retired`, ...
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_product: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<SchemaObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub support: Vec<SupportItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Pricing>,
    /// Deprecated since v3.1 (use `element` on each SLA property).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_default_element: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla_properties: Vec<SlaProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    /// RFC 3339 UTC timestamp of creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_created_ts: Option<String>,
}

/// High-level description of the data set. The standard leaves this object
/// open, so keys it does not name are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitations: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    /// Keys the standard does not name (it allows them here).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The kinds of server ODCS v3.1 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    Api,
    Athena,
    Azure,
    BigQuery,
    ClickHouse,
    Databricks,
    Denodo,
    Dremio,
    DuckDb,
    Glue,
    CloudSql,
    Db2,
    Hive,
    Impala,
    Informix,
    Kafka,
    Kinesis,
    Local,
    MySql,
    Oracle,
    PostgreSql,
    Postgres,
    Presto,
    PubSub,
    Redshift,
    S3,
    Sftp,
    Snowflake,
    SqlServer,
    Synapse,
    Trino,
    Vertica,
    Zen,
    Custom,
}

impl ServerType {
    /// As written in documents (`kafka`).
    pub fn as_str(self) -> &'static str {
        use ServerType::*;
        match self {
            Api => "api",
            Athena => "athena",
            Azure => "azure",
            BigQuery => "bigquery",
            ClickHouse => "clickhouse",
            Databricks => "databricks",
            Denodo => "denodo",
            Dremio => "dremio",
            DuckDb => "duckdb",
            Glue => "glue",
            CloudSql => "cloudsql",
            Db2 => "db2",
            Hive => "hive",
            Impala => "impala",
            Informix => "informix",
            Kafka => "kafka",
            Kinesis => "kinesis",
            Local => "local",
            MySql => "mysql",
            Oracle => "oracle",
            PostgreSql => "postgresql",
            Postgres => "postgres",
            Presto => "presto",
            PubSub => "pubsub",
            Redshift => "redshift",
            S3 => "s3",
            Sftp => "sftp",
            Snowflake => "snowflake",
            SqlServer => "sqlserver",
            Synapse => "synapse",
            Trino => "trino",
            Vertica => "vertica",
            Zen => "zen",
            Custom => "custom",
        }
    }

    /// The type-specific keys this server type takes, and which of them it
    /// requires (camelCase, as in documents).
    pub fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        use ServerType::*;
        const HOST_PORT_DB: &[&str] = &["host", "port", "database"];
        const HOST_PORT_DB_SCHEMA: &[&str] = &["host", "port", "database", "schema"];
        match self {
            Api => (&["location"], &["location"]),
            Athena => (&["stagingDir", "schema", "catalog", "regionName"], &["stagingDir", "schema"]),
            Azure => (&["location", "format", "delimiter"], &["location", "format"]),
            BigQuery => (&["project", "dataset"], &["project", "dataset"]),
            ClickHouse => (HOST_PORT_DB, HOST_PORT_DB),
            Databricks => (&["host", "catalog", "schema"], &["catalog", "schema"]),
            Denodo => (HOST_PORT_DB, &["host", "port"]),
            Dremio => (&["host", "port", "schema"], &["host", "port"]),
            DuckDb => (&["database", "schema"], &["database"]),
            Glue => (&["account", "database", "location", "format"], &["account", "database"]),
            CloudSql => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB_SCHEMA),
            Db2 => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB),
            Hive | Impala | Informix | Zen => (HOST_PORT_DB, &["host", "database"]),
            Kafka => (&["host", "format"], &["host"]),
            Kinesis => (&["region", "format"], &[]),
            Local => (&["path", "format"], &["path", "format"]),
            MySql | Synapse => (HOST_PORT_DB, HOST_PORT_DB),
            Oracle => (&["host", "port", "serviceName"], &["host", "port", "serviceName"]),
            PostgreSql | Postgres | Vertica => (HOST_PORT_DB_SCHEMA, HOST_PORT_DB_SCHEMA),
            Presto => (&["host", "catalog", "schema"], &["host"]),
            PubSub => (&["project"], &["project"]),
            Redshift => (&["host", "database", "schema", "region", "account"], &["database", "schema"]),
            S3 => (&["location", "endpointUrl", "format", "delimiter"], &["location"]),
            Sftp => (&["location", "format", "delimiter"], &["location"]),
            Snowflake => {
                (&["host", "port", "account", "database", "schema", "warehouse"], &["account", "database", "schema"])
            }
            SqlServer => (HOST_PORT_DB_SCHEMA, &["host", "database", "schema"]),
            Trino => (&["host", "port", "catalog", "schema"], &["host", "port", "catalog", "schema"]),
            Custom => (
                &[
                    "account",
                    "catalog",
                    "database",
                    "dataset",
                    "delimiter",
                    "endpointUrl",
                    "format",
                    "host",
                    "location",
                    "path",
                    "port",
                    "project",
                    "region",
                    "regionName",
                    "schema",
                    "serviceName",
                    "stagingDir",
                    "warehouse",
                    "stream",
                ],
                &[],
            ),
        }
    }
}

impl fmt::Display for ServerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the data physically lives. The type-specific keys of every server
/// type are fields here; [`ServerType::keys`] says which fit which type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The server's name within the contract (`production`).
    pub server: String,
    #[serde(rename = "type")]
    pub server_type: ServerType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

impl Server {
    /// The topic of a Kafka server. ODCS v3.1 has no key for it;
    /// datacontract-cli keeps it in the custom property `topic`, and so do
    /// we (a schema object's `physicalName` may name it too).
    pub fn topic(&self) -> Option<&str> {
        self.custom_properties.iter().find(|p| p.property == "topic").and_then(|p| p.value.as_str())
    }

    /// The type-specific keys that are set, with their values as text
    /// (camelCase names, in declaration order).
    pub fn type_keys(&self) -> Vec<(&'static str, String)> {
        let text = |name: &'static str, v: &Option<String>| v.as_ref().map(|v| (name, v.clone()));
        [
            text("host", &self.host),
            self.port.map(|p| ("port", p.to_string())),
            text("database", &self.database),
            text("schema", &self.schema),
            text("catalog", &self.catalog),
            text("project", &self.project),
            text("dataset", &self.dataset),
            text("account", &self.account),
            text("warehouse", &self.warehouse),
            text("location", &self.location),
            text("endpointUrl", &self.endpoint_url),
            text("path", &self.path),
            text("format", &self.format),
            text("delimiter", &self.delimiter),
            text("stagingDir", &self.staging_dir),
            text("region", &self.region),
            text("regionName", &self.region_name),
            text("serviceName", &self.service_name),
            text("stream", &self.stream),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The logical type of a schema object (`logicalType` at object level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Object,
    Blob,
}

/// One element of `schema`: a table, topic, file, ...
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchemaObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_name: Option<String>,
    /// `table`, `view`, `topic`, `file`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_type: Option<ObjectType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_granularity_description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<SchemaProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<DataQuality>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

impl SchemaObject {
    /// The property called `name`, at the top level of the object.
    pub fn property(&self, name: &str) -> Option<&SchemaProperty> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// The logical type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    String,
    Date,
    Timestamp,
    Time,
    Number,
    Integer,
    Object,
    Array,
    Boolean,
}

impl LogicalType {
    /// As written in documents (`timestamp`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogicalType::String => "string",
            LogicalType::Date => "date",
            LogicalType::Timestamp => "timestamp",
            LogicalType::Time => "time",
            LogicalType::Number => "number",
            LogicalType::Integer => "integer",
            LogicalType::Object => "object",
            LogicalType::Array => "array",
            LogicalType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A property of a schema object (a column, a field), or the `items` of an
/// array property. Properties must have a `name`; array items need not, so
/// `name` may be empty here and the lint requires it where the standard does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchemaProperty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_type: Option<LogicalType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_type_options: Option<LogicalTypeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Not null (ODCS: "indicates if the element may contain Null values").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<bool>,
    /// 1-based position in a composite primary key (`-1`: not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key_position: Option<i64>,
    /// `public`, `restricted`, `confidential`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_data_element: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform_source_objects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_logic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Nested properties (only with `logicalType: object`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<SchemaProperty>,
    /// The element type (only with `logicalType: array`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<SchemaProperty>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<DataQuality>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

impl SchemaProperty {
    /// A property with a name and a logical type, nothing else.
    pub fn new(name: impl Into<String>, logical_type: LogicalType) -> Self {
        SchemaProperty { name: name.into(), logical_type: Some(logical_type), ..SchemaProperty::default() }
    }

    /// Whether the value must be present and not null.
    pub fn is_required(&self) -> bool {
        self.required == Some(true)
    }

    /// The nested property called `name`.
    pub fn property(&self, name: &str) -> Option<&SchemaProperty> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The values a record may hold, when a quality rule restricts them
    /// record by record: `metric: invalidValues` with `arguments.validValues`
    /// and no invalid value tolerated (`mustBe: 0`).
    pub fn valid_values(&self) -> Option<&[Value]> {
        self.quality.iter().filter(|q| q.is_strict(Metric::InvalidValues)).find_map(|q| {
            match q.argument("validValues") {
                Some(Value::Array(values)) => Some(values.as_slice()),
                _ => None,
            }
        })
    }
}

/// A bound in `logicalTypeOptions`: a number for numeric types, a date or
/// time string for temporal types.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(Number),
    Text(String),
}

impl Bound {
    /// The bound as a float, when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Bound::Number(n) => n.as_f64(),
            Bound::Text(_) => None,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Number(n) => write!(f, "{n}"),
            Bound::Text(s) => write!(f, "{s}"),
        }
    }
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Bound::Number(n) => n.serialize(serializer),
            Bound::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundVisitor;
        impl Visitor<'_> for BoundVisitor {
            type Value = Bound;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or a date/time string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bound, E> {
                Ok(Bound::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bound, E> {
                Ok(Bound::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bound, E> {
                Number::from_f64(v).map(Bound::Number).ok_or_else(|| E::custom(format!("{v} is not a finite number")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bound, E> {
                Ok(Bound::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(BoundVisitor)
    }
}

/// `logicalTypeOptions`: the union of the options of every logical type.
/// Which keys fit which `logicalType` is checked by the lint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogicalTypeOptions {
    /// string: `email`, `uuid`, `uri`, ...; date/time: a JDK
    /// DateTimeFormatter pattern (`yyyy-MM-dd`); integer: `i8`..`u128`;
    /// number: `f32`, `f64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// An ECMA-262 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_minimum: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_maximum: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_of: Option<Number>,
    /// timestamp/time: whether values carry a time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_items: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_properties: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_properties: Option<u64>,
    /// object: names of nested properties that must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
}

impl LogicalTypeOptions {
    /// The keys that are set (camelCase, as in documents).
    pub fn keys(&self) -> Vec<&'static str> {
        let flags = [
            ("format", self.format.is_some()),
            ("minLength", self.min_length.is_some()),
            ("maxLength", self.max_length.is_some()),
            ("pattern", self.pattern.is_some()),
            ("minimum", self.minimum.is_some()),
            ("maximum", self.maximum.is_some()),
            ("exclusiveMinimum", self.exclusive_minimum.is_some()),
            ("exclusiveMaximum", self.exclusive_maximum.is_some()),
            ("multipleOf", self.multiple_of.is_some()),
            ("timezone", self.timezone.is_some()),
            ("defaultTimezone", self.default_timezone.is_some()),
            ("minItems", self.min_items.is_some()),
            ("maxItems", self.max_items.is_some()),
            ("uniqueItems", self.unique_items.is_some()),
            ("minProperties", self.min_properties.is_some()),
            ("maxProperties", self.max_properties.is_some()),
            ("required", !self.required.is_empty()),
        ];
        flags.into_iter().filter(|(_, set)| *set).map(|(k, _)| k).collect()
    }
}

/// A foreign key. At schema level both `from` and `to` are given; at
/// property level only `to` (`from` is the property itself).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Relationship {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<RelationshipType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<References>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<References>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

/// The one relationship type ODCS v3.1 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RelationshipType {
    #[default]
    #[serde(rename = "foreignKey")]
    ForeignKey,
}

/// One property reference (`table.column` or `schema/id/properties/id`), or
/// several for a composite key.
#[derive(Debug, Clone, PartialEq)]
pub enum References {
    One(String),
    Many(Vec<String>),
}

impl References {
    /// The references as a slice-like list.
    pub fn to_vec(&self) -> Vec<&str> {
        match self {
            References::One(r) => vec![r.as_str()],
            References::Many(rs) => rs.iter().map(String::as_str).collect(),
        }
    }
}

impl Serialize for References {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            References::One(r) => serializer.serialize_str(r),
            References::Many(rs) => rs.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for References {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = References;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property reference or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<References, E> {
                Ok(References::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<References, A::Error> {
                Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(References::Many)
            }
        }
        deserializer.deserialize_any(RefVisitor)
    }
}

/// `team`: the v3.1 object with members, or the deprecated v3.0 list of
/// members (both are valid v3.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Team {
    Object(TeamObject),
    Members(Vec<TeamMember>),
}

impl Team {
    /// The members, in either shape.
    pub fn members(&self) -> &[TeamMember] {
        match self {
            Team::Object(team) => &team.members,
            Team::Members(members) => members,
        }
    }
}

impl<'de> Deserialize<'de> for Team {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TeamVisitor;
        impl<'de> Visitor<'de> for TeamVisitor {
            type Value = Team;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a team object (with `members`) or a list of team members")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Team, A::Error> {
                TeamObject::deserialize(MapAccessDeserializer::new(map)).map(Team::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Team, A::Error> {
                Vec::<TeamMember>::deserialize(SeqAccessDeserializer::new(seq)).map(Team::Members)
            }
        }
        deserializer.deserialize_any(TeamVisitor)
    }
}

/// The team that owns the contract (v3.1 shape).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeamObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<TeamMember>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
}

/// A member of the team.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeamMember {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// User name or e-mail address.
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `owner`, `data steward`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by_username: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
}

/// An IAM role that grants access.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_level_approvers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_level_approvers: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

/// A support channel.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SupportItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `email`, `slack`, `teams`, `discord`, `ticket`, `googlechat`, `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `interactive`, `announcements`, `issues`, `notifications`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

/// The price of a subscription.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_amount: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_unit: Option<String>,
}

/// One service-level agreement (`slaProperties`): availability, latency,
/// frequency, retention, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlaProperty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub property: String,
    /// A string, number, boolean or null.
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_ext: Option<Value>,
    /// `d`, `day`, `h`, `ms`, `percent`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Element path(s) it is measured on (`customers.registration_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// `regulatory`, `analytics`, `operational`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A link to where an element is defined or explained.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthoritativeDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub url: String,
    /// `businessDefinition`, `transformationImplementation`, `videoTutorial`, ...
    #[serde(rename = "type")]
    pub definition_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A key/value pair outside the standard's own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomProperty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub property: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
