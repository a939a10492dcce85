//! Quality measured from the records that really flow on a port.
//!
//! The seed's four metrics, each a share of the records read:
//! - **completeness**: every required field present and not null;
//! - **accuracy**: valid against the contract's JSON Schema and its
//!   record-level quality rules (missing and invalid values);
//! - **timeliness**: the event's time within the freshness SLA of when it
//!   was read (not measured, `None`, when the contract promises none);
//! - **consistency**: no duplicate or conflicting record per key: the same
//!   key at a version already seen, or at an older version than the
//!   latest, is inconsistent.
//!
//! A record that does not even decode counts as read, incomplete,
//! inaccurate and inconsistent. Besides the totals since the port was first
//! enforced, the same counters are kept per 10-second bucket, so each
//! figure also exists over a sliding window (default 5 minutes). The
//! contract's library quality rules (nullValues, missingValues,
//! invalidValues, duplicateValues, rowCount with the mustBe* operators) are
//! evaluated over the same counts.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Width of one window bucket.
pub const BUCKET_SECONDS: i64 = 10;
/// The default sliding window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Distinct values remembered per duplicateValues rule; beyond it the
/// rule stops counting new duplicates (and says so in its result).
pub const MAX_REMEMBERED_VALUES: usize = 200_000;

/// What a rule counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "metric")]
pub enum Metric {
    /// Records whose field is null or absent.
    NullValues { field: String },
    /// Records whose field is absent, null, or one of `missing` (say `""`
    /// or `"N/A"`).
    MissingValues { field: String, missing: Vec<Value> },
    /// Records whose (present) field is not one of `valid`, or does not
    /// match `pattern`.
    InvalidValues {
        field: String,
        #[serde(default)]
        valid: Vec<Value>,
        #[serde(default)]
        pattern: Option<String>,
    },
    /// Records whose field repeats a value an earlier record had.
    DuplicateValues { field: String },
    /// Records read.
    RowCount,
}

/// The comparison a rule's figure must pass (ODCS's mustBe* operators).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    MustBe(f64),
    MustNotBe(f64),
    MustBeGreaterThan(f64),
    MustBeGreaterOrEqualTo(f64),
    MustBeLessThan(f64),
    MustBeLessOrEqualTo(f64),
    MustBeBetween(f64, f64),
    MustNotBeBetween(f64, f64),
}

impl Operator {
    pub fn passes(&self, x: f64) -> bool {
        match *self {
            Self::MustBe(v) => x == v,
            Self::MustNotBe(v) => x != v,
            Self::MustBeGreaterThan(v) => x > v,
            Self::MustBeGreaterOrEqualTo(v) => x >= v,
            Self::MustBeLessThan(v) => x < v,
            Self::MustBeLessOrEqualTo(v) => x <= v,
            Self::MustBeBetween(lo, hi) => (lo..=hi).contains(&x),
            Self::MustNotBeBetween(lo, hi) => !(lo..=hi).contains(&x),
        }
    }
}

/// A quality rule of a contract, ready to count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Where the rule sits in the contract, for messages
    /// (`schema[0].properties[2].quality[0]`).
    pub name: String,
    pub metric: Metric,
    pub operator: Operator,
    /// Compare a percentage of the records read rather than a count.
    pub percent: bool,
}

/// What a port's contract expects, compiled.
#[derive(Debug)]
pub struct Expectations {
    /// Fields completeness requires.
    pub required: Vec<String>,
    pub schema: Option<crate::contract::CompiledSchema>,
    pub rules: Vec<Rule>,
    patterns: Vec<Option<regex::Regex>>,
    /// The freshness promise: how old a record may be when read.
    pub freshness: Option<Duration>,
    /// The least records per second over the window, if promised.
    pub min_throughput: Option<f64>,
}

impl Expectations {
    /// Compiles the rules' patterns; a bad one is refused with the rule's
    /// name.
    pub fn new(
        required: Vec<String>,
        schema: Option<crate::contract::CompiledSchema>,
        rules: Vec<Rule>,
        freshness: Option<Duration>,
        min_throughput: Option<f64>,
    ) -> Result<Self, (String, regex::Error)> {
        let patterns = rules
            .iter()
            .map(|r| match &r.metric {
                Metric::InvalidValues { pattern: Some(p), .. } => {
                    regex::Regex::new(p).map(Some).map_err(|e| (r.name.clone(), e))
                }
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { required, schema, rules, patterns, freshness, min_throughput })
    }

    /// Why `value` is inaccurate: schema errors (at most `max`) and the
    /// record-level rules it fails. Empty when the record is accurate.
    pub fn violations(&self, value: &Value, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = &self.schema
            && !schema.is_valid(value)
        {
            out.extend(schema.errors(value, max));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if out.len() >= max {
                break;
            }
            if self.offends(i, value)
                && matches!(rule.metric, Metric::MissingValues { .. } | Metric::InvalidValues { .. })
            {
                out.push(format!("{}: {}", rule.name, describe(&rule.metric)));
            }
        }
        out
    }

    /// Whether the record counts against rule `i` (duplicates and row
    /// counts are decided by the tally, which remembers).
    fn offends(&self, i: usize, value: &Value) -> bool {
        match &self.rules[i].metric {
            Metric::NullValues { field } => value.get(field).is_none_or(Value::is_null),
            Metric::MissingValues { field, missing } => {
                value.get(field).is_none_or(|v| v.is_null() || missing.contains(v))
            }
            Metric::InvalidValues { field, valid, .. } => match value.get(field) {
                None | Some(Value::Null) => false,
                Some(v) => {
                    (!valid.is_empty() && !valid.contains(v))
                        || self.patterns[i].as_ref().is_some_and(|re| v.as_str().is_none_or(|s| !re.is_match(s)))
                }
            },
            Metric::DuplicateValues { .. } | Metric::RowCount => false,
        }
    }

    fn complete(&self, value: &Value) -> bool {
        self.required.iter().all(|f| value.get(f).is_some_and(|v| !v.is_null()))
    }
}

fn describe(metric: &Metric) -> String {
    match metric {
        Metric::NullValues { field } => format!("`{field}` is null"),
        Metric::MissingValues { field, .. } => format!("`{field}` is missing"),
        Metric::InvalidValues { field, .. } => format!("`{field}` has an invalid value"),
        Metric::DuplicateValues { field } => format!("`{field}` repeats a value"),
        Metric::RowCount => "row count".into(),
    }
}

/// Counters of one stretch of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub records: u64,
    pub undecodable: u64,
    pub complete: u64,
    pub accurate: u64,
    pub timely: u64,
    pub consistent: u64,
    /// Offending records per rule, in rule order.
    pub offending: Vec<u64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.records += other.records;
        self.undecodable += other.undecodable;
        self.complete += other.complete;
        self.accurate += other.accurate;
        self.timely += other.timely;
        self.consistent += other.consistent;
        if self.offending.len() < other.offending.len() {
            self.offending.resize(other.offending.len(), 0);
        }
        for (a, b) in self.offending.iter_mut().zip(&other.offending) {
            *a += b;
        }
    }
}

/// The four metrics (shares 0..=1) of a tally, `None` where nothing was
/// read or nothing was promised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub records: u64,
    pub invalid: u64,
    pub completeness: Option<f64>,
    pub accuracy: Option<f64>,
    pub timeliness: Option<f64>,
    pub consistency: Option<f64>,
}

impl Scores {
    /// The mean of the measured metrics: the quality signal search ranks
    /// by.
    pub fn overall(&self) -> Option<f64> {
        let xs: Vec<f64> =
            [self.completeness, self.accuracy, self.timeliness, self.consistency].into_iter().flatten().collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// A rule's figure and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    pub name: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub passed: bool,
}

/// What one measurement reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub window_seconds: u64,
    pub window: Scores,
    pub totals: Scores,
    pub rules: Vec<RuleResult>,
    /// Seconds since the newest record's event time (freshness as
    /// observed), if any record was read.
    pub staleness_seconds: Option<f64>,
    pub throughput_per_second: f64,
}

/// The last record of a key, as consistency needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub version: u64,
    pub hash: u64,
}

/// The measuring state of one port; serialisable, as it goes into the
/// port's checkpoint with the offsets it covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    pub totals: Tally,
    /// (bucket start in seconds since the epoch, its tally), oldest first.
    pub buckets: VecDeque<(i64, Tally)>,
    /// Per duplicateValues rule: hashes of the values seen.
    pub remembered: BTreeMap<usize, HashSet<u64>>,
    pub newest_event_time: Option<DateTime<Utc>>,
}

/// What the meter decided about one decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub complete: bool,
    pub accurate: bool,
    pub timely: bool,
    pub consistent: bool,
    /// Why it is inaccurate or incomplete (for violation samples).
    pub errors: Vec<String>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.complete && self.accurate && self.consistent
    }
}

/// A stable hash of a JSON value (serde_json prints maps in key order).
pub fn value_hash(value: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

impl Meter {
    fn bucket(&mut self, now: DateTime<Utc>, rules: usize) -> &mut Tally {
        let start = now.timestamp().div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS;
        if self.buckets.back().is_none_or(|(s, _)| *s < start) {
            self.buckets.push_back((start, Tally { offending: vec![0; rules], ..Tally::default() }));
        }
        // Keep an hour at most; windows are shorter.
        while self.buckets.front().is_some_and(|(s, _)| *s < start - 3600) {
            self.buckets.pop_front();
        }
        let last = self.buckets.len() - 1;
        &mut self.buckets[last].1
    }

    fn count(&mut self, now: DateTime<Utc>, rules: usize, f: impl Fn(&mut Tally)) {
        if self.totals.offending.len() < rules {
            self.totals.offending.resize(rules, 0);
        }
        f(&mut self.totals);
        f(self.bucket(now, rules));
    }

    /// Counts a record that did not decode.
    pub fn undecodable(&mut self, expectations: &Expectations, now: DateTime<Utc>) {
        let rules = expectations.rules.len();
        let timely = expectations.freshness.is_none();
        self.count(now, rules, |t| {
            t.records += 1;
            t.undecodable += 1;
            t.timely += u64::from(timely);
        });
    }

    /// Measures one decoded record. `previous` is the key's last record
    /// (version and hash), `event_time` the event's own time.
    pub fn observe(
        &mut self,
        expectations: &Expectations,
        value: &Value,
        version: u64,
        previous: Option<Seen>,
        event_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Verdict {
        let mut errors = expectations.violations(value, 5);
        let complete = expectations.complete(value);
        // A record missing a required field is invalid too, whether or not
        // a schema says so.
        let accurate = errors.is_empty() && complete;
        if !complete && expectations.schema.is_none() {
            let missing: Vec<&str> = expectations
                .required
                .iter()
                .filter(|f| value.get(f.as_str()).is_none_or(Value::is_null))
                .map(String::as_str)
                .collect();
            errors.push(format!("required field(s) missing: {}", missing.join(", ")));
        }
        let timely = expectations
            .freshness
            .is_none_or(|f| now.signed_duration_since(event_time).to_std().map_or(true, |age| age <= f));
        let hash = value_hash(value);
        let consistent = match previous {
            None => true,
            Some(p) if version == 0 => p.hash != hash,
            Some(p) => version > p.version,
        };
        if !consistent {
            errors.push(match previous {
                Some(p) if p.hash == hash => "duplicate of the key's previous record".to_owned(),
                Some(p) => format!("conflicts with the key's record at version {} (this one is {version})", p.version),
                None => String::new(),
            });
        }
        let rules = expectations.rules.len();
        let mut offending = vec![false; rules];
        for (i, rule) in expectations.rules.iter().enumerate() {
            offending[i] = match &rule.metric {
                Metric::DuplicateValues { field } => match value.get(field) {
                    None | Some(Value::Null) => false,
                    Some(v) => {
                        let seen = self.remembered.entry(i).or_default();
                        let h = value_hash(v);
                        if seen.contains(&h) {
                            true
                        } else {
                            if seen.len() < MAX_REMEMBERED_VALUES {
                                seen.insert(h);
                            }
                            false
                        }
                    }
                },
                _ => expectations.offends(i, value),
            };
        }
        if self.newest_event_time.is_none_or(|t| t < event_time) {
            self.newest_event_time = Some(event_time);
        }
        self.count(now, rules, |t| {
            t.records += 1;
            t.complete += u64::from(complete);
            t.accurate += u64::from(accurate);
            t.timely += u64::from(timely);
            t.consistent += u64::from(consistent);
            for (c, o) in t.offending.iter_mut().zip(&offending) {
                *c += u64::from(*o);
            }
        });
        Verdict { complete, accurate, timely, consistent, errors }
    }

    /// The measurement at `now` over `window`.
    pub fn measure(&self, expectations: &Expectations, window: Duration, now: DateTime<Utc>) -> Measurement {
        let from = now.timestamp() - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let mut in_window = Tally::default();
        for (start, t) in &self.buckets {
            if *start + BUCKET_SECONDS > from {
                in_window.add(t);
            }
        }
        let scores = |t: &Tally| {
            let share = |n: u64| (t.records > 0).then(|| n as f64 / t.records as f64);
            Scores {
                records: t.records,
                invalid: t.records - t.accurate.min(t.records),
                completeness: share(t.complete),
                accuracy: share(t.accurate),
                timeliness: if expectations.freshness.is_some() { share(t.timely) } else { None },
                consistency: share(t.consistent),
            }
        };
        let rules = expectations
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let count = if matches!(rule.metric, Metric::RowCount) {
                    self.totals.records
                } else {
                    self.totals.offending.get(i).copied().unwrap_or(0)
                };
                let value = if rule.percent && self.totals.records > 0 {
                    100.0 * count as f64 / self.totals.records as f64
                } else {
                    count as f64
                };
                RuleResult {
                    name: rule.name.clone(),
                    metric: metric_name(&rule.metric).to_owned(),
                    value,
                    unit: if rule.percent { "percent" } else { "rows" }.to_owned(),
                    passed: rule.operator.passes(value),
                }
            })
            .collect();
        let staleness_seconds =
            self.newest_event_time.map(|t| now.signed_duration_since(t).num_milliseconds().max(0) as f64 / 1000.0);
        Measurement {
            window_seconds: window.as_secs(),
            window: scores(&in_window),
            totals: scores(&self.totals),
            rules,
            staleness_seconds,
            throughput_per_second: in_window.records as f64 / window.as_secs_f64().max(1.0),
        }
    }
}

pub fn metric_name(metric: &Metric) -> &'static str {
    match metric {
        Metric::NullValues { .. } => "nullValues",
        Metric::MissingValues { .. } => "missingValues",
        Metric::InvalidValues { .. } => "invalidValues",
        Metric::DuplicateValues { .. } => "duplicateValues",
        Metric::RowCount => "rowCount",
    }
}
