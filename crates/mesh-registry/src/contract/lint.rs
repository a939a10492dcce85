//! The contract lint: rules the ODCS JSON Schema cannot express, rules the
//! typed model leaves to a check (which keys fit which discriminator), and
//! the registry's own rules.
//!
//! Each problem carries the path of the offending key in the document, such
//! as `schema[0].properties[2].logicalTypeOptions.minLength`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::data_quality::*;
use super::json_schema::jdk_pattern_to_regex;
use super::model::*;

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// Where, e.g. `schema[0].properties[2].logicalTypeOptions.minLength`.
    pub path: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

static STABLE_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]+$").expect("constant regex"));
static SHORTHAND_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$").expect("constant regex"));
static QUALIFIED_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:https?://)?[A-Za-z0-9._\-/]+\.yaml#)?/?[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+(?:/[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_-]+)*$",
    )
    .expect("constant regex")
});
static URI: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$").expect("constant regex"));
static ELEMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$").expect("constant regex"));

const INTEGER_FORMATS: &[&str] = &["i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128"];
const NUMBER_FORMATS: &[&str] = &["f32", "f64"];
const OPERATOR_KEYS: &str = "mustBe, mustNotBe, mustBeGreaterThan, mustBeGreaterOrEqualTo, mustBeLessThan, \
                             mustBeLessOrEqualTo, mustBeBetween, mustNotBeBetween";

/// The `logicalTypeOptions` keys each logical type takes.
pub(crate) fn option_keys(logical_type: Option<LogicalType>) -> &'static [&'static str] {
    const TEMPORAL: &[&str] = &["format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
    match logical_type {
        Some(LogicalType::String) => &["minLength", "maxLength", "pattern", "format"],
        Some(LogicalType::Date) => TEMPORAL,
        Some(LogicalType::Timestamp | LogicalType::Time) => {
            &["format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "timezone", "defaultTimezone"]
        }
        Some(LogicalType::Integer | LogicalType::Number) => {
            &["multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format"]
        }
        Some(LogicalType::Object) => &["minProperties", "maxProperties", "required"],
        Some(LogicalType::Array) => &["minItems", "maxItems", "uniqueItems"],
        Some(LogicalType::Boolean) | None => &[],
    }
}

/// Where a quality rule sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Object,
    Property,
}

pub(super) fn lint(contract: &Contract) -> Vec<Problem> {
    let mut l = Linter { contract, problems: Vec::new() };
    l.top();
    l.problems
}

struct Linter<'c> {
    contract: &'c Contract,
    problems: Vec<Problem>,
}

impl Linter<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    /// A key the document's `apiVersion` does not have yet.
    fn needs_3_1(&mut self, path: impl Into<String>, what: &str) {
        if self.contract.api_version < ApiVersion::V3_1_0 {
            let version = self.contract.api_version;
            self.push(path, format!("{what} needs apiVersion v3.1.0 or later (the document says {version})"));
        }
    }

    fn top(&mut self) {
        let c = self.contract;
        if c.id.trim().is_empty() {
            self.push("id", "must not be empty");
        }
        if let Err(e) = semver::Version::parse(&c.version) {
            self.push("version", format!("`{}` is not a semantic version (MAJOR.MINOR.PATCH): {e}", c.version));
        }
        if c.status.trim().is_empty() {
            self.push("status", "must not be empty");
        }
        if let Some(ts) = &c.contract_created_ts
            && chrono::DateTime::parse_from_rfc3339(ts).is_err()
        {
            self.push("contractCreatedTs", format!("`{ts}` is not an RFC 3339 date-time (2024-05-01T12:00:00Z)"));
        }
        self.tags("tags", &c.tags);
        if let Some(d) = &c.description {
            self.definitions("description.authoritativeDefinitions", &d.authoritative_definitions);
            self.custom("description.customProperties", &d.custom_properties);
        }
        self.servers();
        self.schema();
        self.team();
        for (i, role) in c.roles.iter().enumerate() {
            self.role(&format!("roles[{i}]"), role);
        }
        for (i, s) in c.support.iter().enumerate() {
            let path = format!("support[{i}]");
            self.id(&path, &s.id);
            if s.channel.trim().is_empty() {
                self.push(format!("{path}.channel"), "must not be empty");
            }
            self.custom(&format!("{path}.customProperties"), &s.custom_properties);
        }
        if let Some(price) = &c.price {
            self.id("price", &price.id);
            if price.price_amount.as_ref().and_then(serde_json::Number::as_f64).is_some_and(|a| a < 0.0) {
                self.push("price.priceAmount", "must not be negative");
            }
        }
        self.sla();
        self.definitions("authoritativeDefinitions", &c.authoritative_definitions);
        self.custom("customProperties", &c.custom_properties);
    }

    fn id(&mut self, path: &str, id: &Option<String>) {
        if let Some(id) = id {
            if !STABLE_ID.is_match(id) {
                self.push(format!("{path}.id"), format!("`{id}` is not a stable id (letters, digits, `_`, `-`)"));
            }
            self.needs_3_1(format!("{path}.id"), "`id`");
        }
    }

    fn tags(&mut self, path: &str, tags: &[String]) {
        for (i, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() {
                self.push(format!("{path}[{i}]"), "an empty tag");
            }
        }
    }

    fn definitions(&mut self, path: &str, defs: &[AuthoritativeDefinition]) {
        for (i, d) in defs.iter().enumerate() {
            let path = format!("{path}[{i}]");
            self.id(&path, &d.id);
            if d.url.trim().is_empty() {
                self.push(format!("{path}.url"), "must not be empty");
            }
            if d.description.is_some() {
                self.needs_3_1(format!("{path}.description"), "`description`");
            }
        }
    }

    fn custom(&mut self, path: &str, props: &[CustomProperty]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, p) in props.iter().enumerate() {
            let item = format!("{path}[{i}]");
            self.id(&item, &p.id);
            if p.property.trim().is_empty() {
                self.push(format!("{item}.property"), "must not be empty");
            } else if let Some(first) = seen.insert(&p.property, i) {
                self.push(format!("{item}.property"), format!("`{}` is already set by {path}[{first}]", p.property));
            }
            if p.description.is_some() {
                self.needs_3_1(format!("{item}.description"), "`description`");
            }
        }
    }

    fn role(&mut self, path: &str, role: &Role) {
        self.id(path, &role.id);
        if role.role.trim().is_empty() {
            self.push(format!("{path}.role"), "must not be empty");
        }
        self.custom(&format!("{path}.customProperties"), &role.custom_properties);
    }

    fn servers(&mut self) {
        let c = self.contract;
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, s) in c.servers.iter().enumerate() {
            let path = format!("servers[{i}]");
            self.id(&path, &s.id);
            if s.server.trim().is_empty() {
                self.push(format!("{path}.server"), "must not be empty");
            } else if let Some(first) = names.insert(&s.server, i) {
                self.push(format!("{path}.server"), format!("`{}` is already the name of servers[{first}]", s.server));
            }
            let (allowed, required) = s.server_type.keys();
            let set = s.type_keys();
            for (key, value) in &set {
                if !allowed.contains(key) {
                    self.push(
                        format!("{path}.{key}"),
                        format!("not a key of a `{}` server (it takes: {})", s.server_type, allowed.join(", ")),
                    );
                    continue;
                }
                let uri_key = matches!(*key, "location" | "endpointUrl")
                    || (*key == "stagingDir" && s.server_type == ServerType::Athena);
                if uri_key && !URI.is_match(value) {
                    self.push(format!("{path}.{key}"), format!("`{value}` is not a URI (scheme://...)"));
                }
                if *key == "location" && s.server_type == ServerType::Sftp && !value.starts_with("sftp://") {
                    self.push(format!("{path}.location"), "an sftp location starts with `sftp://`");
                }
            }
            for key in required {
                if !set.iter().any(|(k, _)| k == key) {
                    self.push(path.clone(), format!("a `{}` server needs `{key}`", s.server_type));
                }
            }
            for (j, role) in s.roles.iter().enumerate() {
                self.role(&format!("{path}.roles[{j}]"), role);
            }
            self.custom(&format!("{path}.customProperties"), &s.custom_properties);
        }
    }

    fn schema(&mut self) {
        let c = self.contract;
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, o) in c.schema.iter().enumerate() {
            let path = format!("schema[{i}]");
            self.id(&path, &o.id);
            if o.name.trim().is_empty() {
                self.push(format!("{path}.name"), "must not be empty");
            } else if let Some(first) = names.insert(&o.name, i) {
                self.push(format!("{path}.name"), format!("`{}` is already the name of schema[{first}]", o.name));
            }
            self.tags(&format!("{path}.tags"), &o.tags);
            self.properties(&format!("{path}.properties"), &o.properties);
            for (j, r) in o.relationships.iter().enumerate() {
                self.relationship(&format!("{path}.relationships[{j}]"), r, Level::Object);
            }
            for (j, q) in o.quality.iter().enumerate() {
                self.quality(&format!("{path}.quality[{j}]"), q, Level::Object, &o.properties);
            }
            self.definitions(&format!("{path}.authoritativeDefinitions"), &o.authoritative_definitions);
            self.custom(&format!("{path}.customProperties"), &o.custom_properties);
        }
    }

    fn properties(&mut self, path: &str, props: &[SchemaProperty]) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut positions: BTreeMap<i64, usize> = BTreeMap::new();
        for (i, p) in props.iter().enumerate() {
            let item = format!("{path}[{i}]");
            if p.name.trim().is_empty() {
                self.push(item.clone(), "a property needs a `name`");
            } else if let Some(first) = names.insert(&p.name, i) {
                self.push(format!("{item}.name"), format!("`{}` is already the name of {path}[{first}]", p.name));
            }
            if let Some(pos) = p.primary_key_position
                && pos >= 1
                && p.primary_key == Some(true)
                && let Some(first) = positions.insert(pos, i)
            {
                self.push(
                    format!("{item}.primaryKeyPosition"),
                    format!("position {pos} is already taken by {path}[{first}]"),
                );
            }
            self.property(&item, p, false);
        }
    }

    fn property(&mut self, path: &str, p: &SchemaProperty, is_items: bool) {
        self.id(path, &p.id);
        if let Some(pos) = p.primary_key_position
            && pos != -1
        {
            if p.primary_key != Some(true) {
                self.push(
                    format!("{path}.primaryKeyPosition"),
                    "only a primary key has a position (set `primaryKey: true`)",
                );
            } else if pos < 1 {
                self.push(format!("{path}.primaryKeyPosition"), format!("{pos}: positions start at 1"));
            }
        }
        if let Some(pos) = p.partition_key_position
            && pos != -1
        {
            if p.partitioned != Some(true) {
                self.push(
                    format!("{path}.partitionKeyPosition"),
                    "only a partition column has a position (set `partitioned: true`)",
                );
            } else if pos < 1 {
                self.push(format!("{path}.partitionKeyPosition"), format!("{pos}: positions start at 1"));
            }
        }
        let lt = p.logical_type;
        if matches!(lt, Some(LogicalType::Timestamp | LogicalType::Time)) {
            self.needs_3_1(
                format!("{path}.logicalType"),
                &format!("logicalType `{}`", lt.map_or("", LogicalType::as_str)),
            );
        }
        if let Some(options) = &p.logical_type_options {
            self.options(&format!("{path}.logicalTypeOptions"), p, options);
        }
        if !p.properties.is_empty() {
            let fits = lt == Some(LogicalType::Object) || (is_items && lt.is_none());
            if !fits {
                self.push(
                    format!("{path}.properties"),
                    "only a property with `logicalType: object` has nested properties",
                );
            }
            self.properties(&format!("{path}.properties"), &p.properties);
        }
        if let Some(items) = &p.items {
            if lt != Some(LogicalType::Array) {
                self.push(format!("{path}.items"), "only a property with `logicalType: array` has `items`");
            }
            self.property(&format!("{path}.items"), items, true);
        }
        for (i, example) in p.examples.iter().enumerate() {
            // An array's examples may also be single elements (datacontract-cli
            // writes them so).
            let element = |v: &Value| {
                p.items.as_ref().is_some_and(|items| items.logical_type.is_none_or(|lt| example_fits(lt, v)))
            };
            if let Some(lt) = lt
                && !example_fits(lt, example)
                && !(lt == LogicalType::Array && element(example))
            {
                self.push(format!("{path}.examples[{i}]"), format!("{example} is not a value of logicalType `{lt}`"));
            }
        }
        for (i, r) in p.relationships.iter().enumerate() {
            self.relationship(&format!("{path}.relationships[{i}]"), r, Level::Property);
        }
        for (i, q) in p.quality.iter().enumerate() {
            self.quality(&format!("{path}.quality[{i}]"), q, Level::Property, &p.properties);
        }
        self.tags(&format!("{path}.tags"), &p.tags);
        self.definitions(&format!("{path}.authoritativeDefinitions"), &p.authoritative_definitions);
        self.custom(&format!("{path}.customProperties"), &p.custom_properties);
    }

    fn options(&mut self, path: &str, p: &SchemaProperty, o: &LogicalTypeOptions) {
        let lt = p.logical_type;
        let allowed = option_keys(lt);
        for key in o.keys() {
            if allowed.contains(&key) {
                continue;
            }
            let message = match lt {
                None => format!("`{key}` needs a `logicalType` that takes it"),
                Some(lt) if allowed.is_empty() => format!("logicalType `{lt}` takes no options"),
                Some(lt) => format!("`{key}` does not apply to logicalType `{lt}` (it takes: {})", allowed.join(", ")),
            };
            self.push(format!("{path}.{key}"), message);
        }
        if let (Some(min), Some(max)) = (o.min_length, o.max_length)
            && max < min
        {
            self.push(format!("{path}.maxLength"), format!("{max} is less than minLength {min}"));
        }
        if let (Some(min), Some(max)) = (o.min_items, o.max_items)
            && max < min
        {
            self.push(format!("{path}.maxItems"), format!("{max} is less than minItems {min}"));
        }
        if let (Some(min), Some(max)) = (o.min_properties, o.max_properties)
            && max < min
        {
            self.push(format!("{path}.maxProperties"), format!("{max} is less than minProperties {min}"));
        }
        if let Some(m) = &o.multiple_of
            && m.as_f64().is_none_or(|m| m <= 0.0)
        {
            self.push(format!("{path}.multipleOf"), format!("{m} is not greater than 0"));
        }
        let numeric = matches!(lt, Some(LogicalType::Integer | LogicalType::Number));
        let temporal = matches!(lt, Some(LogicalType::Date | LogicalType::Timestamp | LogicalType::Time));
        let bounds = [
            ("minimum", &o.minimum),
            ("maximum", &o.maximum),
            ("exclusiveMinimum", &o.exclusive_minimum),
            ("exclusiveMaximum", &o.exclusive_maximum),
        ];
        for (key, bound) in bounds {
            match (bound, lt) {
                (Some(Bound::Text(t)), _) if numeric => {
                    self.push(format!("{path}.{key}"), format!("`{t}` is not a number"));
                }
                (Some(Bound::Number(n)), _) if temporal => {
                    self.push(format!("{path}.{key}"), format!("{n} is not a date/time string"));
                }
                (Some(Bound::Text(t)), Some(lt)) if temporal && o.format.is_none() && !temporal_fits(lt, t) => {
                    self.push(format!("{path}.{key}"), format!("`{t}` is not an ISO 8601 {lt}"));
                }
                _ => {}
            }
        }
        let low = o.minimum.as_ref().or(o.exclusive_minimum.as_ref());
        let high = o.maximum.as_ref().or(o.exclusive_maximum.as_ref());
        if let (Some(lo), Some(hi)) = (low, high) {
            let inverted = match (lo, hi) {
                (Bound::Number(lo), Bound::Number(hi)) => lo.as_f64().zip(hi.as_f64()).is_some_and(|(lo, hi)| hi < lo),
                (Bound::Text(lo), Bound::Text(hi)) => o.format.is_none() && hi < lo,
                _ => false,
            };
            if inverted {
                self.push(path.to_string(), format!("the upper bound {hi} is below the lower bound {lo}"));
            }
        }
        if let Some(format) = &o.format {
            match lt {
                Some(LogicalType::Integer) if !INTEGER_FORMATS.contains(&format.as_str()) => {
                    self.push(
                        format!("{path}.format"),
                        format!("`{format}` is not one of {}", INTEGER_FORMATS.join(", ")),
                    );
                }
                Some(LogicalType::Number) if !NUMBER_FORMATS.contains(&format.as_str()) => {
                    self.push(
                        format!("{path}.format"),
                        format!("`{format}` is not one of {}", NUMBER_FORMATS.join(", ")),
                    );
                }
                Some(LogicalType::Date | LogicalType::Timestamp | LogicalType::Time)
                    if jdk_pattern_to_regex(format).is_none() =>
                {
                    self.push(
                        format!("{path}.format"),
                        format!(
                            "`{format}` is not a date/time pattern the registry can check (letters y u M d D H h k K \
                             m s S a E X x Z, other text in single quotes)"
                        ),
                    );
                }
                _ => {}
            }
        }
        if o.timezone.is_some() || o.default_timezone.is_some() {
            self.needs_3_1(path.to_string(), "`timezone` / `defaultTimezone`");
        }
        let mut seen = Vec::new();
        for (i, name) in o.required.iter().enumerate() {
            if seen.contains(&name) {
                self.push(format!("{path}.required[{i}]"), format!("`{name}` is listed twice"));
            } else if p.property(name).is_none() {
                self.push(format!("{path}.required[{i}]"), format!("`{name}` is not a nested property"));
            }
            seen.push(name);
        }
    }

    fn relationship(&mut self, path: &str, r: &Relationship, level: Level) {
        self.needs_3_1(path.to_string(), "`relationships`");
        match level {
            Level::Object => match (&r.from, &r.to) {
                (None, _) => self.push(path.to_string(), "a schema-level relationship needs `from`"),
                (_, None) => self.push(path.to_string(), "a schema-level relationship needs `to`"),
                (Some(References::One(_)), Some(References::Many(_)))
                | (Some(References::Many(_)), Some(References::One(_))) => {
                    self.push(path.to_string(), "`from` and `to` must both be one reference or both be lists")
                }
                (Some(References::Many(f)), Some(References::Many(t))) if f.len() != t.len() || f.is_empty() => {
                    self.push(path.to_string(), format!("`from` has {} references and `to` {}", f.len(), t.len()))
                }
                _ => {}
            },
            Level::Property => {
                if r.from.is_some() {
                    self.push(
                        format!("{path}.from"),
                        "a property-level relationship has no `from` (it is the property)",
                    );
                }
                if r.to.is_none() {
                    self.push(path.to_string(), "a relationship needs `to`");
                }
            }
        }
        for (key, refs) in [("from", &r.from), ("to", &r.to)] {
            for reference in refs.iter().flat_map(References::to_vec) {
                if !SHORTHAND_REF.is_match(reference) && !QUALIFIED_REF.is_match(reference) {
                    self.push(
                        format!("{path}.{key}"),
                        format!(
                            "`{reference}` is neither `object.property` nor a `schema/<id>/properties/<id>` reference"
                        ),
                    );
                }
            }
        }
        self.custom(&format!("{path}.customProperties"), &r.custom_properties);
    }

    fn quality(&mut self, path: &str, q: &DataQuality, level: Level, properties: &[SchemaProperty]) {
        self.id(path, &q.id);
        let ty = q.effective_type();
        let ops = q.operators();
        let specific = [
            ("metric", q.metric.is_some()),
            ("rule", q.rule.is_some()),
            ("arguments", q.arguments.is_some()),
            ("query", q.query.is_some()),
            ("engine", q.engine.is_some()),
            ("implementation", q.implementation.is_some()),
        ];
        let takes: &[&str] = match ty {
            Some(QualityType::Library) => &["metric", "rule", "arguments"],
            Some(QualityType::Sql) => &["query"],
            Some(QualityType::Custom) => &["engine", "implementation"],
            Some(QualityType::Text) | None => &[],
        };
        let type_name = |ty: Option<QualityType>| match ty {
            Some(QualityType::Library) => "a library rule",
            Some(QualityType::Sql) => "an sql rule",
            Some(QualityType::Custom) => "a custom rule",
            Some(QualityType::Text) => "a text rule",
            None => "a rule without `type`",
        };
        for (key, set) in specific {
            if set && !takes.contains(&key) {
                let hint = match key {
                    "query" => " (use `type: sql`)",
                    "engine" | "implementation" => " (use `type: custom`)",
                    _ => "",
                };
                self.push(format!("{path}.{key}"), format!("`{key}` does not apply to {}{hint}", type_name(ty)));
            }
        }
        let takes_operators = matches!(ty, Some(QualityType::Library | QualityType::Sql));
        if !takes_operators {
            for op in &ops {
                self.push(
                    format!("{path}.{}", op.key()),
                    format!("{} has no threshold (operators belong to library and sql rules)", type_name(ty)),
                );
            }
        } else if ops.len() != 1 {
            let has = if ops.is_empty() {
                "none".to_string()
            } else {
                ops.iter().map(Operator::key).collect::<Vec<_>>().join(", ")
            };
            self.push(
                path.to_string(),
                format!("{} needs exactly one of {OPERATOR_KEYS}; it has {has}", type_name(ty)),
            );
        }
        if takes_operators {
            self.operators(path, q, &ops);
        }
        match ty {
            Some(QualityType::Library) => self.library(path, q, level, properties),
            Some(QualityType::Sql) if q.query.as_deref().is_none_or(|s| s.trim().is_empty()) => {
                self.push(path.to_string(), "an sql rule needs a `query`");
            }
            Some(QualityType::Custom) => {
                if q.engine.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    self.push(path.to_string(), "a custom rule needs an `engine`");
                }
                if q.implementation.is_none() {
                    self.push(path.to_string(), "a custom rule needs an `implementation`");
                }
                if let Some(imp) = &q.implementation
                    && !(imp.is_string() || imp.is_object())
                {
                    self.push(format!("{path}.implementation"), "must be text or an object");
                }
            }
            Some(QualityType::Text) if q.description.as_deref().is_none_or(|s| s.trim().is_empty()) => {
                self.push(path.to_string(), "a text rule needs a `description`");
            }
            _ => {}
        }
        self.tags(&format!("{path}.tags"), &q.tags);
        self.definitions(&format!("{path}.authoritativeDefinitions"), &q.authoritative_definitions);
        self.custom(&format!("{path}.customProperties"), &q.custom_properties);
    }

    fn operators(&mut self, path: &str, q: &DataQuality, ops: &[Operator<'_>]) {
        let library = q.effective_type() == Some(QualityType::Library);
        let percent = q.unit.as_deref() == Some("percent");
        for op in ops {
            let key = format!("{path}.{}", op.key());
            match op {
                Operator::MustBe(v) | Operator::MustNotBe(v) => {
                    if library && !v.is_number() {
                        self.push(key, format!("{v} is not a number (a library metric counts rows or a percentage)"));
                    } else if percent && v.as_f64().is_some_and(|x| !(0.0..=100.0).contains(&x)) {
                        self.push(key, format!("{v} is not a percentage (0 to 100)"));
                    }
                }
                Operator::MustBeBetween(ns) | Operator::MustNotBeBetween(ns) => match ns {
                    [lo, hi] => match (lo.as_f64(), hi.as_f64()) {
                        (Some(l), Some(h)) if l >= h => {
                            self.push(key, format!("[{lo}, {hi}]: the first number must be smaller than the second"));
                        }
                        (Some(l), Some(h)) if percent && (l < 0.0 || h > 100.0) => {
                            self.push(key, format!("[{lo}, {hi}] is not a range of percentages (0 to 100)"));
                        }
                        _ => {}
                    },
                    _ => self.push(key, format!("needs exactly two numbers [low, high]; it has {}", ns.len())),
                },
                Operator::MustBeGreaterThan(n)
                | Operator::MustBeGreaterOrEqualTo(n)
                | Operator::MustBeLessThan(n)
                | Operator::MustBeLessOrEqualTo(n) => {
                    if percent && n.as_f64().is_some_and(|x| !(0.0..=100.0).contains(&x)) {
                        self.push(key, format!("{n} is not a percentage (0 to 100)"));
                    }
                }
            }
        }
    }

    fn library(&mut self, path: &str, q: &DataQuality, level: Level, properties: &[SchemaProperty]) {
        let Some(metric) = q.metric else {
            let hint = if q.rule.is_some() { " (`rule` is the deprecated spelling)" } else { "" };
            self.push(path.to_string(), format!("a library rule needs a `metric`{hint}"));
            return;
        };
        self.needs_3_1(format!("{path}.metric"), "`metric`");
        if let Some(u) = &q.unit
            && u != "rows"
            && u != "percent"
        {
            self.push(format!("{path}.unit"), format!("`{u}`: a library metric is counted in `rows` or `percent`"));
        }
        match (metric, level) {
            (Metric::RowCount, Level::Property) => {
                self.push(format!("{path}.metric"), "rowCount is measured on a schema object, not on a property");
            }
            (Metric::NullValues | Metric::MissingValues | Metric::InvalidValues, Level::Object) => {
                self.push(
                    format!("{path}.metric"),
                    format!("{} is measured on a property; move the rule to the property", metric.as_str()),
                );
            }
            _ => {}
        }
        if metric == Metric::RowCount && q.unit.as_deref() == Some("percent") {
            self.push(format!("{path}.unit"), "rowCount is counted in rows");
        }
        match metric {
            Metric::InvalidValues => {
                let valid = q.argument("validValues");
                let pattern = q.argument("pattern");
                match (valid, pattern) {
                    (None, None) => self.push(
                        format!("{path}.arguments"),
                        "an invalidValues rule needs `validValues` (a list) or `pattern` (a regular expression)",
                    ),
                    (Some(v), _) if v.as_array().is_none_or(Vec::is_empty) => {
                        self.push(format!("{path}.arguments.validValues"), "must be a non-empty list")
                    }
                    (_, Some(p)) if !p.is_string() => {
                        self.push(format!("{path}.arguments.pattern"), "must be a regular expression (text)")
                    }
                    _ => {}
                }
            }
            Metric::MissingValues => {
                if let Some(v) = q.argument("missingValues")
                    && !v.is_array()
                {
                    self.push(
                        format!("{path}.arguments.missingValues"),
                        "must be a list of values that count as missing",
                    );
                }
            }
            Metric::DuplicateValues if level == Level::Object => {
                if let Some(v) = q.argument("properties") {
                    match v.as_array() {
                        Some(names) if !names.is_empty() => {
                            for (i, name) in names.iter().enumerate() {
                                let known = name.as_str().is_some_and(|n| properties.iter().any(|p| p.name == n));
                                if !known {
                                    self.push(
                                        format!("{path}.arguments.properties[{i}]"),
                                        format!("{name} is not a property of this object"),
                                    );
                                }
                            }
                        }
                        _ => self
                            .push(format!("{path}.arguments.properties"), "must be a non-empty list of property names"),
                    }
                }
            }
            _ => {}
        }
    }

    fn team(&mut self) {
        let Some(team) = &self.contract.team else { return };
        if let Team::Object(t) = team {
            self.needs_3_1("team", "a team object (`members`)");
            self.id("team", &t.id);
            self.tags("team.tags", &t.tags);
            self.custom("team.customProperties", &t.custom_properties);
            self.definitions("team.authoritativeDefinitions", &t.authoritative_definitions);
        }
        let base = if matches!(team, Team::Object(_)) { "team.members" } else { "team" };
        for (i, m) in team.members().iter().enumerate() {
            let path = format!("{base}[{i}]");
            self.id(&path, &m.id);
            if m.username.trim().is_empty() {
                self.push(format!("{path}.username"), "must not be empty");
            }
            let date_in = m.date_in.as_deref().map(|d| (d, chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")));
            let date_out = m.date_out.as_deref().map(|d| (d, chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")));
            for (key, parsed) in [("dateIn", &date_in), ("dateOut", &date_out)] {
                if let Some((text, Err(_))) = parsed {
                    self.push(format!("{path}.{key}"), format!("`{text}` is not a date (YYYY-MM-DD)"));
                }
            }
            if let (Some((_, Ok(a))), Some((_, Ok(b)))) = (&date_in, &date_out)
                && b < a
            {
                self.push(format!("{path}.dateOut"), "is before dateIn");
            }
            self.tags(&format!("{path}.tags"), &m.tags);
            self.custom(&format!("{path}.customProperties"), &m.custom_properties);
            self.definitions(&format!("{path}.authoritativeDefinitions"), &m.authoritative_definitions);
        }
    }

    fn sla(&mut self) {
        let c = self.contract;
        for (i, s) in c.sla_properties.iter().enumerate() {
            let path = format!("slaProperties[{i}]");
            self.id(&path, &s.id);
            if s.property.trim().is_empty() {
                self.push(format!("{path}.property"), "must not be empty");
            }
            for (key, value) in [("value", Some(&s.value)), ("valueExt", s.value_ext.as_ref())] {
                if let Some(v) = value
                    && (v.is_array() || v.is_object())
                {
                    self.push(format!("{path}.{key}"), "must be a string, number, boolean or null");
                }
            }
            if s.description.is_some() || s.scheduler.is_some() || s.schedule.is_some() {
                self.needs_3_1(path.clone(), "`description`, `scheduler` and `schedule`");
            }
            if let Some(element) = &s.element {
                for part in element.split(',').map(str::trim) {
                    if !ELEMENT.is_match(part) {
                        continue;
                    }
                    let mut names = part.split('.');
                    let object = names.next().and_then(|o| c.object(o));
                    let found = match object {
                        None => false,
                        Some(o) => {
                            let mut props = &o.properties;
                            names.all(|n| match props.iter().find(|p| p.name == n) {
                                Some(p) => {
                                    props = &p.properties;
                                    true
                                }
                                None => false,
                            })
                        }
                    };
                    if !found {
                        self.push(format!("{path}.element"), format!("`{part}` names no schema object or property"));
                    }
                }
            }
        }
    }
}

/// Whether an example value has the JSON type of the logical type.
fn example_fits(lt: LogicalType, v: &Value) -> bool {
    match lt {
        LogicalType::String | LogicalType::Date | LogicalType::Timestamp | LogicalType::Time => v.is_string(),
        LogicalType::Number => v.is_number(),
        LogicalType::Integer => v.is_i64() || v.is_u64(),
        LogicalType::Boolean => v.is_boolean(),
        LogicalType::Object => v.is_object(),
        LogicalType::Array => v.is_array(),
    }
}

/// Whether `text` is an ISO 8601 value of a temporal logical type.
fn temporal_fits(lt: LogicalType, text: &str) -> bool {
    match lt {
        LogicalType::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        LogicalType::Timestamp => {
            chrono::DateTime::parse_from_rfc3339(text).is_ok()
                || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        }
        LogicalType::Time => chrono::NaiveTime::parse_from_str(text, "%H:%M:%S%.f").is_ok(),
        _ => true,
    }
}
