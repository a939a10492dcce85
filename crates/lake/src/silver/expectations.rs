//! Expectations on silver rows, after Delta Live Tables: each names a
//! column, a check and what to do with a row that fails it (`warn` keeps
//! it, `drop` drops it, `quarantine` moves it to `silver.quarantine` with
//! the reason, `fail` refuses the whole run). Pass and fail counts are kept
//! per expectation.
//!
//! Where they come from, later overriding earlier by name: the lake's
//! defaults, the local config (`expectations.json` beside the tables), and
//! the data contracts published on `mesh.events` (ODCS: `required`,
//! `logicalTypeOptions` minimum/maximum/minLength/maxLength/pattern/format,
//! and `invalidValues` rules with `validValues`), matched to a silver table
//! by the contract's schema object name.

use std::collections::BTreeMap;

use regex::Regex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::silver::model::{self, SilverTable};
use crate::{Error, Result};

/// What happens to a row that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Warn,
    Drop,
    Quarantine,
    Fail,
}

/// A check on one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    NotNull,
    OneOf(Vec<String>),
    /// Inclusive bounds on a number.
    Range {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<Decimal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Decimal>,
    },
    /// Character count bounds on a text.
    Length {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
    },
    /// The whole text matches the regular expression.
    Pattern(String),
}

/// One expectation as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    pub name: String,
    pub column: String,
    pub check: Check,
    pub action: Action,
    /// `default`, `config` or `contract <id> <version>`.
    #[serde(default = "default_origin")]
    pub origin: String,
}

fn default_origin() -> String {
    "config".into()
}

/// A value as the checks see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Text(&'a str),
    Number(Decimal),
    Float(f64),
    Bool(bool),
}

/// An expectation ready to run.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub spec: Expectation,
    pattern: Option<Regex>,
}

impl Compiled {
    pub fn new(spec: Expectation) -> Result<Self> {
        let pattern = match &spec.check {
            Check::Pattern(p) => Some(Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                Error::InvalidExpectations(format!("expectation `{}`: bad pattern `{p}`: {e}", spec.name))
            })?),
            _ => None,
        };
        Ok(Self { spec, pattern })
    }

    /// `None` when the value passes; the reason otherwise.
    pub fn check(&self, value: &Value<'_>) -> Option<String> {
        let column = &self.spec.column;
        match (&self.spec.check, value) {
            (Check::NotNull, Value::Null) => Some(format!("`{column}` is missing")),
            (Check::NotNull, Value::Text(t)) if t.trim().is_empty() => Some(format!("`{column}` is empty")),
            (_, Value::Null) | (Check::NotNull, _) => None,
            (Check::OneOf(allowed), v) => {
                let text = render(v);
                (!allowed.contains(&text)).then(|| format!("`{column}` is `{text}`, not one of {}", allowed.join(", ")))
            }
            (Check::Range { min, max }, v) => {
                let n = match v {
                    Value::Number(n) => *n,
                    Value::Float(f) => match Decimal::try_from(*f) {
                        Ok(n) => n,
                        Err(_) => return Some(format!("`{column}` is {f}, not a finite number")),
                    },
                    other => return Some(format!("`{column}` is `{}`, not a number", render(other))),
                };
                if let Some(min) = min
                    && n < *min
                {
                    return Some(format!("`{column}` is {n}, below the minimum {min}"));
                }
                if let Some(max) = max
                    && n > *max
                {
                    return Some(format!("`{column}` is {n}, above the maximum {max}"));
                }
                None
            }
            (Check::Length { min, max }, v) => {
                let text = render(v);
                let len = text.chars().count();
                if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                    Some(format!(
                        "`{column}` has {len} characters, outside {}..{}",
                        min.map_or(String::new(), |m| m.to_string()),
                        max.map_or(String::new(), |m| m.to_string())
                    ))
                } else {
                    None
                }
            }
            (Check::Pattern(p), v) => {
                let text = render(v);
                let ok = self.pattern.as_ref().is_some_and(|r| r.is_match(&text));
                (!ok).then(|| format!("`{column}` is `{text}`, which does not match `{p}`"))
            }
        }
    }
}

fn render(v: &Value<'_>) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Text(t) => (*t).to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

/// Pass and fail counts of one expectation over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub action: Option<Action>,
    pub passed: u64,
    pub failed: u64,
}

/// The expectations of every silver table.
#[derive(Debug, Clone, Default)]
pub struct ExpectationSet {
    by_table: BTreeMap<String, BTreeMap<String, Expectation>>,
}

/// The local config file's shape: `{"tables": {"orders": [ ... ]}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    tables: BTreeMap<String, Vec<Expectation>>,
}

fn e(name: &str, column: &str, check: Check, action: Action) -> Expectation {
    Expectation { name: name.into(), column: column.into(), check, action, origin: "default".into() }
}

fn non_negative() -> Check {
    Check::Range { min: Some(Decimal::ZERO), max: None }
}

impl ExpectationSet {
    /// The lake's own expectations: what any order, item, ledger entry,
    /// point or customer must satisfy to be usable downstream.
    pub fn defaults() -> Self {
        use Action::*;
        let currency = || Check::Pattern("[A-Z]{3}".into());
        let mut set = Self::default();
        let statuses = model::ORDER_STATUSES.iter().map(|s| (*s).to_owned()).collect();
        for x in [
            e("order_id_present", "order_id", Check::NotNull, Quarantine),
            e("status_known", "status", Check::OneOf(statuses), Quarantine),
            e("currency_iso", "currency", currency(), Quarantine),
            e("total_amount_non_negative", "total_amount", non_negative(), Quarantine),
            e("amount_non_negative", "amount", non_negative(), Quarantine),
        ] {
            set.insert("orders", x);
        }
        for x in [
            e("product_id_present", "product_id", Check::NotNull, Quarantine),
            e("quantity_present", "quantity", Check::NotNull, Quarantine),
            e(
                "quantity_in_range",
                "quantity",
                Check::Range { min: Some(Decimal::ONE), max: Some(Decimal::from(10_000)) },
                Quarantine,
            ),
            e("unit_price_present", "unit_price", Check::NotNull, Quarantine),
            e("unit_price_non_negative", "unit_price", non_negative(), Quarantine),
            e("currency_iso", "currency", currency(), Quarantine),
        ] {
            set.insert("order_items", x);
        }
        for x in [
            e("account_id_present", "account_id", Check::NotNull, Quarantine),
            e("amount_present", "amount", Check::NotNull, Quarantine),
            e("amount_non_negative", "amount", non_negative(), Quarantine),
            e("new_balance_present", "new_balance", Check::NotNull, Quarantine),
            e("currency_iso", "currency", currency(), Quarantine),
        ] {
            set.insert("account_ledger", x);
        }
        for x in [
            e("series_present", "series", Check::NotNull, Quarantine),
            e("value_present", "value", Check::NotNull, Quarantine),
            e("quality_known", "quality", Check::OneOf(vec!["good".into(), "uncertain".into(), "bad".into()]), Warn),
        ] {
            set.insert("telemetry", x);
        }
        for x in [
            e("customer_id_present", "customer_id", Check::NotNull, Quarantine),
            e("name_present", "name", Check::NotNull, Quarantine),
            e("email_valid", "email", Check::Pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+".into()), Quarantine),
        ] {
            set.insert("customers", x);
        }
        set
    }

    pub fn insert(&mut self, table: &str, expectation: Expectation) {
        self.by_table.entry(table.to_owned()).or_default().insert(expectation.name.clone(), expectation);
    }

    /// Adds (or replaces by name) the expectations of a local config file.
    pub fn apply_config(&mut self, json: &str) -> Result<()> {
        let config: ConfigFile =
            serde_json::from_str(json).map_err(|e| Error::InvalidExpectations(format!("expectations config: {e}")))?;
        for (table, list) in config.tables {
            let Some(silver) = model::TABLES.iter().find(|t| t.name == table) else {
                return Err(Error::InvalidExpectations(format!(
                    "expectations config names table `{table}`; silver tables are {}",
                    model::TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                )));
            };
            for x in list {
                check_column(silver, &x)?;
                Compiled::new(x.clone())?;
                self.insert(&table, x);
            }
        }
        Ok(())
    }

    /// Adds the expectations one ODCS contract document states for the
    /// silver tables its schema objects name. Returns how many were added.
    pub fn apply_contract(&mut self, yaml: &str) -> Result<usize> {
        let doc: serde_json::Value = serde_norway::from_str(yaml)
            .map_err(|e| Error::InvalidExpectations(format!("contract is not YAML: {e}")))?;
        if doc.get("kind").and_then(|k| k.as_str()) != Some("DataContract") {
            return Ok(0);
        }
        let id = doc.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        let version = doc.get("version").and_then(|v| v.as_str()).unwrap_or("?");
        let origin = format!("contract {id} {version}");
        let mut added = 0;
        for object in doc.get("schema").and_then(|s| s.as_array()).into_iter().flatten() {
            let Some(name) = object.get("name").and_then(|n| n.as_str()) else { continue };
            let Some(table) = model::TABLES.iter().find(|t| t.name == name) else { continue };
            for prop in object.get("properties").and_then(|p| p.as_array()).into_iter().flatten() {
                let Some(column) = prop.get("name").and_then(|n| n.as_str()) else { continue };
                if table.column(column).is_none() {
                    continue;
                }
                for x in contract_expectations(column, prop, &origin) {
                    Compiled::new(x.clone())?;
                    self.insert(table.name, x);
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// The expectations of one table, compiled, in name order.
    pub fn compiled(&self, table: &str) -> Result<Vec<Compiled>> {
        self.by_table.get(table).into_iter().flat_map(|m| m.values()).cloned().map(Compiled::new).collect()
    }

    pub fn of(&self, table: &str) -> Vec<&Expectation> {
        self.by_table.get(table).into_iter().flat_map(|m| m.values()).collect()
    }
}

fn check_column(table: &SilverTable, x: &Expectation) -> Result<()> {
    if table.column(&x.column).is_none() {
        return Err(Error::InvalidExpectations(format!(
            "expectation `{}` checks column `{}`, which silver.{} does not have",
            x.name, x.column, table.name
        )));
    }
    Ok(())
}

fn decimal(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn contract_expectations(column: &str, prop: &serde_json::Value, origin: &str) -> Vec<Expectation> {
    let mut out = Vec::new();
    let x = |suffix: &str, check: Check| Expectation {
        name: format!("{column}_{suffix}"),
        column: column.to_owned(),
        check,
        action: Action::Quarantine,
        origin: origin.to_owned(),
    };
    if prop.get("required").and_then(|r| r.as_bool()) == Some(true) {
        out.push(x("present", Check::NotNull));
    }
    if let Some(options) = prop.get("logicalTypeOptions") {
        let min = options.get("minimum").and_then(decimal);
        let max = options.get("maximum").and_then(decimal);
        if min.is_some() || max.is_some() {
            out.push(x("in_range", Check::Range { min, max }));
        }
        let min_len = options.get("minLength").and_then(|v| v.as_u64()).map(|v| v as usize);
        let max_len = options.get("maxLength").and_then(|v| v.as_u64()).map(|v| v as usize);
        if min_len.is_some() || max_len.is_some() {
            out.push(x("length", Check::Length { min: min_len, max: max_len }));
        }
        if let Some(p) = options.get("pattern").and_then(|v| v.as_str()) {
            out.push(x("pattern", Check::Pattern(p.to_owned())));
        }
        if options.get("format").and_then(|v| v.as_str()) == Some("email") {
            out.push(x("valid", Check::Pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+".into())));
        }
    }
    for rule in prop.get("quality").and_then(|q| q.as_array()).into_iter().flatten() {
        let metric = rule.get("metric").and_then(|m| m.as_str());
        let valid = rule.pointer("/arguments/validValues").and_then(|v| v.as_array());
        if metric == Some("invalidValues")
            && let Some(valid) = valid
        {
            let values = valid.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
            out.push(x("valid_values", Check::OneOf(values)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_give_reasons() {
        let range =
            Compiled::new(e("q", "quantity", Check::Range { min: Some(Decimal::ONE), max: None }, Action::Drop))
                .expect("compiles");
        assert_eq!(range.check(&Value::Number(Decimal::ZERO)).as_deref(), Some("`quantity` is 0, below the minimum 1"));
        assert_eq!(range.check(&Value::Number(Decimal::ONE)), None);
        assert_eq!(range.check(&Value::Null), None, "null is for not_null to judge");
        let present = Compiled::new(e("p", "product_id", Check::NotNull, Action::Quarantine)).expect("compiles");
        assert_eq!(present.check(&Value::Null).as_deref(), Some("`product_id` is missing"));
        assert_eq!(present.check(&Value::Text(" ")).as_deref(), Some("`product_id` is empty"));
        let email = Compiled::new(e("m", "email", Check::Pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+".into()), Action::Warn))
            .expect("compiles");
        assert!(email.check(&Value::Text("zhangsan@example.com")).is_none());
        assert!(email.check(&Value::Text("zhangsan")).is_some());
    }

    #[test]
    fn contracts_and_config_override_defaults_by_name() {
        let mut set = ExpectationSet::defaults();
        let contract = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: customers\n    properties:\n      - name: customer_id\n        required: true\n        logicalTypeOptions: {minLength: 1}\n      - name: status\n        quality:\n          - {type: library, metric: invalidValues, arguments: {validValues: [active, inactive]}, mustBe: 0}\n      - name: not_a_column\n        required: true\n";
        assert_eq!(set.apply_contract(contract).expect("applies"), 3);
        let names: Vec<_> = set.of("customers").iter().map(|x| (x.name.clone(), x.origin.clone())).collect();
        assert!(names.contains(&("customer_id_present".into(), "contract c 1.0.0".into())), "{names:?}");
        assert!(names.contains(&("status_valid_values".into(), "contract c 1.0.0".into())), "{names:?}");

        let config = r#"{"tables": {"orders": [{"name": "status_known", "column": "status", "check": {"one_of": ["paid"]}, "action": "warn"}]}}"#;
        set.apply_config(config).expect("config");
        let status = set.of("orders").into_iter().find(|x| x.name == "status_known").expect("kept");
        assert_eq!(status.action, Action::Warn);
        let bad = r#"{"tables": {"orders": [{"name": "x", "column": "nope", "check": "not_null", "action": "drop"}]}}"#;
        assert!(matches!(set.apply_config(bad), Err(Error::InvalidExpectations(m)) if m.contains("`nope`")));
        let unknown = r#"{"tables": {"shipments": []}}"#;
        assert!(matches!(set.apply_config(unknown), Err(Error::InvalidExpectations(m)) if m.contains("shipments")));
    }
}
