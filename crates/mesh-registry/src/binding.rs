//! What the registry takes from a contract: whether it may be registered,
//! how it is stored, what search indexes of it, and the [`Expectations`]
//! an enforcer holds records to.

use std::time::Duration;

use serde_json::Value;

pub use crate::contract::Contract;
use crate::contract::{DataQuality, Metric as OdcsMetric, Operator as OdcsOperator, SchemaObject, SchemaProperty};
use crate::diff::{Change, Refusal};
use crate::quality::{Expectations, Metric, Operator, Rule};
use crate::{Error, Result};

/// The `kind` of a YAML document, without reading the rest.
pub fn kind_of(document: &str, text: &str) -> Result<Option<String>> {
    let value: serde_norway::Value = crate::document::from_yaml(document, text)?;
    Ok(value.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
}

/// Reads a contract and refuses it unless it lints clean and every schema
/// object compiles.
pub fn parse_contract(document: &str, text: &str) -> Result<Contract> {
    let contract = Contract::from_yaml(document, text)?;
    contract.validate()?;
    contract.compile()?;
    Ok(contract)
}

pub fn id_and_version(contract: &Contract) -> (&str, &str) {
    (&contract.id, &contract.version)
}

/// The stored (and exported) form: the canonical YAML.
pub fn export(contract: &Contract) -> Result<String> {
    contract.to_yaml()
}

/// The semver gate: the changes from `old` to `new`, or why `new` may not
/// follow `old`.
pub fn gate(old: &Contract, new: &Contract) -> std::result::Result<Vec<Change>, Refusal> {
    crate::diff::gate(old, new)
}

/// Every property name, nested ones as `parent.child`, for search.
pub fn field_names(contract: &Contract) -> Vec<String> {
    fn walk(prefix: &str, props: &[SchemaProperty], out: &mut Vec<String>) {
        for p in props {
            let name = if prefix.is_empty() { p.name.clone() } else { format!("{prefix}.{}", p.name) };
            walk(&name, &p.properties, out);
            out.push(name);
        }
    }
    let mut out = Vec::new();
    for object in &contract.schema {
        walk("", &object.properties, &mut out);
    }
    out
}

/// The schema object a port's records follow: the one whose
/// `physicalName` is the topic, else the first.
pub fn object_for<'c>(contract: &'c Contract, topic: Option<&str>) -> Option<&'c SchemaObject> {
    topic
        .and_then(|t| contract.schema.iter().find(|o| o.physical_name.as_deref() == Some(t)))
        .or_else(|| contract.schema.first())
}

/// What an enforcer holds a port's records to (see [`crate::quality`]).
pub fn expectations(contract: &Contract, topic: Option<&str>) -> Result<Expectations> {
    let object = object_for(contract, topic);
    let (required, schema, mut rules) = match object {
        None => (Vec::new(), None, Vec::new()),
        Some(o) => {
            let required = o.properties.iter().filter(|p| p.is_required()).map(|p| p.name.clone()).collect();
            let compiled = crate::contract::CompiledSchema::compile(&contract.id, o)?;
            let mut rules = Vec::new();
            for (i, q) in o.quality.iter().enumerate() {
                rules.extend(rule(&format!("{}.quality[{i}]", o.name), None, q));
            }
            for p in &o.properties {
                for (i, q) in p.quality.iter().enumerate() {
                    rules.extend(rule(&format!("{}.{}.quality[{i}]", o.name, p.name), Some(&p.name), q));
                }
            }
            (required, Some(compiled), rules)
        }
    };
    rules.retain(|r| !(matches!(r.metric, Metric::RowCount) && r.percent));
    let sla = |name: &str| contract.sla_properties.iter().find(|s| s.property.eq_ignore_ascii_case(name));
    let freshness = sla("freshness").or_else(|| sla("latency")).and_then(|s| duration(&s.value, s.unit.as_deref()));
    let min_throughput = sla("throughput").and_then(|s| number(&s.value)).filter(|n| *n > 0.0);
    Expectations::new(required, schema, rules, freshness, min_throughput).map_err(|(rule, e)| Error::InvalidContract {
        contract: contract.id.clone(),
        path: rule,
        reason: format!("pattern does not compile: {e}"),
    })
}

/// A library rule the enforcer can count; other rule types (sql, custom,
/// text) need an engine the bus does not have and are left to the lake.
fn rule(name: &str, field: Option<&str>, q: &DataQuality) -> Option<Rule> {
    let metric = q.metric?;
    let field = field.map(str::to_owned);
    let arg = |k: &str| q.arguments.as_ref().and_then(|a| a.get(k));
    let metric = match (metric, field) {
        (OdcsMetric::RowCount, _) => Metric::RowCount,
        (OdcsMetric::NullValues, Some(field)) => Metric::NullValues { field },
        (OdcsMetric::MissingValues, Some(field)) => Metric::MissingValues {
            field,
            missing: match arg("missingValues") {
                Some(Value::Array(v)) => v.clone(),
                _ => vec![Value::Null],
            },
        },
        (OdcsMetric::InvalidValues, Some(field)) => Metric::InvalidValues {
            field,
            valid: match arg("validValues") {
                Some(Value::Array(v)) => v.clone(),
                _ => Vec::new(),
            },
            pattern: arg("pattern").and_then(Value::as_str).map(str::to_owned),
        },
        (OdcsMetric::DuplicateValues, Some(field)) => Metric::DuplicateValues { field },
        _ => return None,
    };
    let operator = match q.operator()? {
        OdcsOperator::MustBe(v) => Operator::MustBe(v.as_f64()?),
        OdcsOperator::MustNotBe(v) => Operator::MustNotBe(v.as_f64()?),
        OdcsOperator::MustBeGreaterThan(n) => Operator::MustBeGreaterThan(n.as_f64()?),
        OdcsOperator::MustBeGreaterOrEqualTo(n) => Operator::MustBeGreaterOrEqualTo(n.as_f64()?),
        OdcsOperator::MustBeLessThan(n) => Operator::MustBeLessThan(n.as_f64()?),
        OdcsOperator::MustBeLessOrEqualTo(n) => Operator::MustBeLessOrEqualTo(n.as_f64()?),
        OdcsOperator::MustBeBetween([lo, hi]) => Operator::MustBeBetween(lo.as_f64()?, hi.as_f64()?),
        OdcsOperator::MustNotBeBetween([lo, hi]) => Operator::MustNotBeBetween(lo.as_f64()?, hi.as_f64()?),
        _ => return None,
    };
    let percent = q.unit.as_deref().is_some_and(|u| u.eq_ignore_ascii_case("percent") || u == "%");
    Some(Rule { name: name.to_owned(), metric, operator, percent })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

/// An SLA duration: a number with a unit (`1` + `h`), or text such as
/// `"1h"` or `"30 min"`.
pub fn duration(value: &Value, unit: Option<&str>) -> Option<Duration> {
    let (n, unit) = match (value, unit) {
        (Value::Number(n), u) => (n.as_f64()?, u.unwrap_or("s").to_owned()),
        (Value::String(s), u) => {
            let s = s.trim();
            let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
            let (num, rest) = s.split_at(split);
            let rest = rest.trim();
            (num.parse().ok()?, if rest.is_empty() { u.unwrap_or("s").to_owned() } else { rest.to_owned() })
        }
        _ => return None,
    };
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => n / 1000.0,
        "s" | "sec" | "second" | "seconds" => n,
        "m" | "min" | "minute" | "minutes" => n * 60.0,
        "h" | "hr" | "hour" | "hours" => n * 3600.0,
        "d" | "day" | "days" => n * 86_400.0,
        "w" | "week" | "weeks" => n * 7.0 * 86_400.0,
        "y" | "yr" | "year" | "years" => n * 365.0 * 86_400.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_durations_read_numbers_with_units_and_text() {
        assert_eq!(duration(&serde_json::json!(1), Some("h")), Some(Duration::from_secs(3600)));
        assert_eq!(duration(&serde_json::json!("30 min"), None), Some(Duration::from_secs(1800)));
        assert_eq!(duration(&serde_json::json!("250ms"), None), Some(Duration::from_millis(250)));
        assert_eq!(duration(&serde_json::json!("soon"), None), None);
        assert_eq!(duration(&serde_json::json!(2), Some("fortnights")), None);
        assert_eq!(duration(&serde_json::json!(-1), Some("h")), None);
    }
}
