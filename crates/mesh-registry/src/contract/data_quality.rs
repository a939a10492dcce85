//! ODCS data quality rules (`quality` on a schema object or property):
//! their type, the library metrics, the dimensions and the mustBe*
//! operators.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::model::{AuthoritativeDefinition, CustomProperty};

/// `type` of a quality rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityType {
    Text,
    Library,
    Sql,
    Custom,
}

/// The predefined metrics of library quality rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    NullValues,
    MissingValues,
    InvalidValues,
    DuplicateValues,
    RowCount,
}

impl Metric {
    /// As written in documents (`nullValues`).
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::NullValues => "nullValues",
            Metric::MissingValues => "missingValues",
            Metric::InvalidValues => "invalidValues",
            Metric::DuplicateValues => "duplicateValues",
            Metric::RowCount => "rowCount",
        }
    }
}

/// The data-quality dimension a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Accuracy,
    Completeness,
    Conformity,
    Consistency,
    Coverage,
    Timeliness,
    Uniqueness,
}

/// A comparison of a measured value with the rule's threshold.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator<'a> {
    MustBe(&'a Value),
    MustNotBe(&'a Value),
    MustBeGreaterThan(&'a Number),
    MustBeGreaterOrEqualTo(&'a Number),
    MustBeLessThan(&'a Number),
    MustBeLessOrEqualTo(&'a Number),
    MustBeBetween(&'a [Number]),
    MustNotBeBetween(&'a [Number]),
}

impl Operator<'_> {
    /// The key of the operator in documents (`mustBeBetween`).
    pub fn key(&self) -> &'static str {
        match self {
            Operator::MustBe(_) => "mustBe",
            Operator::MustNotBe(_) => "mustNotBe",
            Operator::MustBeGreaterThan(_) => "mustBeGreaterThan",
            Operator::MustBeGreaterOrEqualTo(_) => "mustBeGreaterOrEqualTo",
            Operator::MustBeLessThan(_) => "mustBeLessThan",
            Operator::MustBeLessOrEqualTo(_) => "mustBeLessOrEqualTo",
            Operator::MustBeBetween(_) => "mustBeBetween",
            Operator::MustNotBeBetween(_) => "mustNotBeBetween",
        }
    }

    /// Whether `measured` passes the comparison; `None` when the operator's
    /// operand is not numeric.
    pub fn accepts(&self, measured: f64) -> Option<bool> {
        let num = |n: &Number| n.as_f64();
        let pair = |ns: &[Number]| match ns {
            [lo, hi] => Some((lo.as_f64()?, hi.as_f64()?)),
            _ => None,
        };
        Some(match self {
            Operator::MustBe(v) => v.as_f64()? == measured,
            Operator::MustNotBe(v) => v.as_f64()? != measured,
            Operator::MustBeGreaterThan(n) => measured > num(n)?,
            Operator::MustBeGreaterOrEqualTo(n) => measured >= num(n)?,
            Operator::MustBeLessThan(n) => measured < num(n)?,
            Operator::MustBeLessOrEqualTo(n) => measured <= num(n)?,
            Operator::MustBeBetween(ns) => {
                let (lo, hi) = pair(ns)?;
                (lo..=hi).contains(&measured)
            }
            Operator::MustNotBeBetween(ns) => {
                let (lo, hi) = pair(ns)?;
                !(lo..=hi).contains(&measured)
            }
        })
    }
}

impl fmt::Display for Operator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ns: &[Number]| ns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Operator::MustBe(v) => write!(f, "= {v}"),
            Operator::MustNotBe(v) => write!(f, "!= {v}"),
            Operator::MustBeGreaterThan(n) => write!(f, "> {n}"),
            Operator::MustBeGreaterOrEqualTo(n) => write!(f, ">= {n}"),
            Operator::MustBeLessThan(n) => write!(f, "< {n}"),
            Operator::MustBeLessOrEqualTo(n) => write!(f, "<= {n}"),
            Operator::MustBeBetween(ns) => write!(f, "between [{}]", list(ns)),
            Operator::MustNotBeBetween(ns) => write!(f, "not between [{}]", list(ns)),
        }
    }
}

/// A data-quality rule (`quality` of an object or a property). The keys of
/// every rule type are fields here; the lint checks that they fit `type`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataQuality {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub quality_type: Option<QualityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<Dimension>,
    /// library: the predefined metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// library: deprecated spelling of the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// library: the metric's arguments (`validValues`, `missingValues`,
    /// `pattern`, `properties`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Map<String, Value>>,
    /// sql: the query whose single value is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// custom: the engine (`soda`, `great-expectations`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// custom: the engine's rule (text or object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_not_be: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be_greater_than: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be_greater_or_equal_to: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be_less_than: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be_less_or_equal_to: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be_between: Option<Vec<Number>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_not_be_between: Option<Vec<Number>>,
    /// `rows` or `percent` (any value is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// `info`, `warning`, `error`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_impact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
}

impl DataQuality {
    /// The rule's type as the standard reads it: the given `type`, else
    /// `library` when a metric is named, else none (a bare description).
    pub fn effective_type(&self) -> Option<QualityType> {
        self.quality_type.or(if self.metric.is_some() { Some(QualityType::Library) } else { None })
    }

    /// Every comparison operator that is set.
    pub fn operators(&self) -> Vec<Operator<'_>> {
        let mut ops = Vec::new();
        if let Some(v) = &self.must_be {
            ops.push(Operator::MustBe(v));
        }
        if let Some(v) = &self.must_not_be {
            ops.push(Operator::MustNotBe(v));
        }
        if let Some(n) = &self.must_be_greater_than {
            ops.push(Operator::MustBeGreaterThan(n));
        }
        if let Some(n) = &self.must_be_greater_or_equal_to {
            ops.push(Operator::MustBeGreaterOrEqualTo(n));
        }
        if let Some(n) = &self.must_be_less_than {
            ops.push(Operator::MustBeLessThan(n));
        }
        if let Some(n) = &self.must_be_less_or_equal_to {
            ops.push(Operator::MustBeLessOrEqualTo(n));
        }
        if let Some(ns) = &self.must_be_between {
            ops.push(Operator::MustBeBetween(ns));
        }
        if let Some(ns) = &self.must_not_be_between {
            ops.push(Operator::MustNotBeBetween(ns));
        }
        ops
    }

    /// The single operator, when there is exactly one.
    pub fn operator(&self) -> Option<Operator<'_>> {
        let mut ops = self.operators();
        if ops.len() == 1 { ops.pop() } else { None }
    }

    /// Whether this is a library rule for `metric` that tolerates no
    /// failing record (`mustBe: 0`, `mustBeLessOrEqualTo: 0`, or
    /// `mustBeLessThan: 1` counted in rows), so it holds record by record.
    pub fn is_strict(&self, metric: Metric) -> bool {
        if self.effective_type() != Some(QualityType::Library) || self.metric != Some(metric) {
            return false;
        }
        let zero = |n: Option<f64>| n == Some(0.0);
        match self.operator() {
            Some(Operator::MustBe(v)) => zero(v.as_f64()),
            Some(Operator::MustBeLessOrEqualTo(n)) => zero(n.as_f64()),
            Some(Operator::MustBeLessThan(n)) => n.as_f64() == Some(1.0) && self.unit.as_deref() != Some("percent"),
            _ => false,
        }
    }

    /// One of the rule's `arguments`.
    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments.as_ref()?.get(name)
    }
}
