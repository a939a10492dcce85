//! The data model: series schemas, points, tag matchers and queries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::Interval;
use crate::{Error, Result};

/// Nanoseconds in common units.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// What to do with NaN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NanPolicy {
    /// Refuse the point with a typed error.
    #[default]
    Reject,
    /// Accept the write but leave the point out, counting it.
    Drop,
}

/// A metric and the rules its points follow (seed: `TimeSeriesSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSchema {
    /// The metric name, e.g. `sensor_temperature`.
    pub series_name: String,
    /// Tag keys a point may carry; any other key is refused.
    pub tags: Vec<String>,
    pub unit: String,
    pub retention_period_days: u32,
    /// Rollup levels kept besides raw, e.g. `["raw", "1min", "1hour", "1day"]`.
    pub aggregation_levels: Vec<String>,
    /// Compress sealed blocks with pco (true) or store plain columns.
    #[serde(default = "yes")]
    pub compression: bool,
    #[serde(default)]
    pub nan_policy: NanPolicy,
    /// How late a point may arrive, in seconds, behind the newest one.
    #[serde(default = "default_out_of_order_secs")]
    pub out_of_order_secs: u32,
}

fn yes() -> bool {
    true
}

fn default_out_of_order_secs() -> u32 {
    3600
}

impl SeriesSchema {
    /// A schema with the defaults; fields can be adjusted before creating it.
    pub fn new(series_name: &str, tags: &[&str], unit: &str, retention_period_days: u32, levels: &[&str]) -> Self {
        Self {
            series_name: series_name.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            unit: unit.to_owned(),
            retention_period_days,
            aggregation_levels: levels.iter().map(|l| (*l).to_owned()).collect(),
            compression: true,
            nan_policy: NanPolicy::Reject,
            out_of_order_secs: default_out_of_order_secs(),
        }
    }

    /// Checks names, tag keys, retention and levels.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidSchema { series: self.series_name.clone(), reason });
        if !valid_name(&self.series_name) {
            return bad("series name must be 1-128 letters, digits, '_', '-', '.' or ':'".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.tags {
            if !valid_name(t) {
                return bad(format!("tag key `{t}` must be 1-128 letters, digits, '_', '-', '.' or ':'"));
            }
            if !seen.insert(t) {
                return bad(format!("tag key `{t}` is listed twice"));
            }
        }
        if self.retention_period_days == 0 {
            return bad("retention must be at least one day".into());
        }
        if self.unit.len() > 64 {
            return bad("unit is longer than 64 bytes".into());
        }
        self.rollup_intervals()?;
        Ok(())
    }

    /// The rollup intervals, ascending ("raw" excluded).
    pub fn rollup_intervals(&self) -> Result<Vec<Interval>> {
        let mut out = Vec::new();
        for level in &self.aggregation_levels {
            if level == "raw" {
                continue;
            }
            let interval: Interval = level.parse().map_err(|_| Error::InvalidSchema {
                series: self.series_name.clone(),
                reason: format!("aggregation level `{level}` is not raw or an interval like 1min, 5min, 1hour, 1day"),
            })?;
            out.push(interval);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub fn retention_ns(&self) -> i64 {
        i64::from(self.retention_period_days) * NANOS_PER_DAY
    }

    pub fn out_of_order_ns(&self) -> i64 {
        i64::from(self.out_of_order_secs) * NANOS_PER_SEC
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Measurement quality (seed: good, suspect, bad).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    #[default]
    Good,
    Suspect,
    Bad,
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quality::Good => "good",
            Quality::Suspect => "suspect",
            Quality::Bad => "bad",
        })
    }
}

/// One value of one series at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub series: String,
    pub tags: BTreeMap<String, String>,
    /// Nanoseconds since the Unix epoch, UTC.
    pub timestamp: i64,
    pub value: f64,
    #[serde(default)]
    pub quality: Quality,
    /// If given, must equal the schema's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Point {
    pub fn new(series: &str, tags: &[(&str, &str)], timestamp: i64, value: f64) -> Self {
        Self {
            series: series.to_owned(),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            timestamp,
            value,
            quality: Quality::Good,
            unit: None,
        }
    }
}

/// How a tag is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOp {
    Eq(String),
    Ne(String),
    /// Anchored regular expression (the whole value must match).
    Regex(String),
    NotRegex(String),
    In(Vec<String>),
}

/// A condition on one tag key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub key: String,
    pub op: MatchOp,
}

/// The text [`Matcher::parse`] reads back.
impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        match &self.op {
            MatchOp::Eq(v) => write!(f, "{key}={v}"),
            MatchOp::Ne(v) => write!(f, "{key}!={v}"),
            MatchOp::Regex(v) => write!(f, "{key}=~{v}"),
            MatchOp::NotRegex(v) => write!(f, "{key}!~{v}"),
            MatchOp::In(vs) => write!(f, "{key}=in({})", vs.join("|")),
        }
    }
}

impl Matcher {
    pub fn eq(key: &str, value: &str) -> Self {
        Self { key: key.to_owned(), op: MatchOp::Eq(value.to_owned()) }
    }

    /// Parses `k=v`, `k!=v`, `k=~re`, `k!~re`, `k=in(a|b|c)`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidMatcher(s.to_owned());
        let (key, op) = if let Some((k, v)) = s.split_once("!=") {
            (k, MatchOp::Ne(v.to_owned()))
        } else if let Some((k, v)) = s.split_once("=~") {
            (k, MatchOp::Regex(v.to_owned()))
        } else if let Some((k, v)) = s.split_once("!~") {
            (k, MatchOp::NotRegex(v.to_owned()))
        } else if let Some((k, v)) = s.split_once('=') {
            match v.strip_prefix("in(").and_then(|r| r.strip_suffix(')')) {
                Some(list) => (k, MatchOp::In(list.split('|').map(str::to_owned).collect())),
                None => (k, MatchOp::Eq(v.to_owned())),
            }
        } else {
            return Err(bad());
        };
        if key.is_empty() {
            return Err(bad());
        }
        Ok(Self { key: key.to_owned(), op })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_print_what_they_parse_from() {
        for text in ["location=beijing", "location!=beijing", "device_id=~dev.*", "device_id!~x", "location=in(a|b)"] {
            let m = Matcher::parse(text).expect("parses");
            assert_eq!(m.to_string(), text);
            assert_eq!(Matcher::parse(&m.to_string()).expect("parses again"), m);
        }
    }

    #[test]
    fn schemas_are_checked() {
        let ok = SeriesSchema::new(
            "sensor_temperature",
            &["device_id", "location"],
            "celsius",
            365,
            &["raw", "1min", "1hour"],
        );
        ok.validate().expect("valid");
        assert_eq!(ok.rollup_intervals().expect("levels"), vec![Interval::MINUTE, Interval::HOUR]);
        let mut bad = ok.clone();
        bad.series_name = "bad name".into();
        assert!(matches!(bad.validate(), Err(Error::InvalidSchema { .. })));
        let mut bad = ok.clone();
        bad.aggregation_levels.push("2fortnights".into());
        assert!(matches!(bad.validate(), Err(Error::InvalidSchema { .. })));
        let mut bad = ok.clone();
        bad.tags.push("device_id".into());
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.retention_period_days = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn matchers_parse() {
        assert_eq!(Matcher::parse("location=beijing").expect("ok"), Matcher::eq("location", "beijing"));
        assert!(matches!(Matcher::parse("a!=b").expect("ok").op, MatchOp::Ne(_)));
        assert!(matches!(Matcher::parse("a=~b.*").expect("ok").op, MatchOp::Regex(_)));
        assert!(matches!(Matcher::parse("a!~b.*").expect("ok").op, MatchOp::NotRegex(_)));
        assert_eq!(Matcher::parse("a=in(x|y)").expect("ok").op, MatchOp::In(vec!["x".into(), "y".into()]));
        assert!(Matcher::parse("novalue").is_err());
        assert!(Matcher::parse("=x").is_err());
    }
}
