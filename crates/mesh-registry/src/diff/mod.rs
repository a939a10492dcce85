//! The semver gate: what changed between two versions of a contract, which
//! changes break consumers, and whether the new version number allows them.
//!
//! # What counts as breaking
//!
//! A contract is a promise about data the producer writes and consumers
//! read. A change is **breaking** when
//!
//! 1. data valid under the old contract may be invalid under the new one
//!    (a tightening: the producer's existing data, replays of history and
//!    consumers' fixtures must still pass), or
//! 2. something a reader may rely on disappears: a field, its presence
//!    (`required`, which in ODCS also means not null), its kind (its
//!    logical type), its identity (primary key, uniqueness), or where the
//!    data lives (physical name, server).
//!
//! Loosening a value range **within** a field's kind is not breaking:
//! consumers must tolerate values that still fit the declared kind (a longer
//! string, a value added to an enumeration, a larger number). Integer to
//! number counts as such a widening.
//!
//! | change | breaking |
//! | --- | --- |
//! | schema object removed | yes |
//! | schema object added | no |
//! | property removed | yes |
//! | property added, optional | no |
//! | property added, required | yes (old records lack it) |
//! | `logicalType` changed (also to or from none) | yes |
//! | `logicalType` integer → number | no (widening) |
//! | property becomes required / not null | yes |
//! | required property becomes optional / nullable | yes (readers relied on it) |
//! | `primaryKey`, `primaryKeyPosition`, `unique` changed | yes |
//! | `physicalName` changed or dropped (object or property) | yes |
//! | `physicalType` changed | no (the logical type is the contract) |
//! | string `format` added or changed | yes (format tightened) |
//! | string `format` removed | no |
//! | date/time `format`, `timezone` changed | yes (another representation) |
//! | integer/number `format` narrower (i64 → i32) / wider | yes / no |
//! | `minLength`, `minimum`, `minItems`, ... raised or added | yes |
//! | `maxLength`, `maximum`, `maxItems`, ... lowered or added | yes |
//! | those bounds relaxed or removed | no |
//! | `pattern` added or changed / removed | yes / no |
//! | `multipleOf` added or changed (unless the new one divides the old) / removed | yes / no |
//! | `uniqueItems` turned on / off | yes / no |
//! | enumeration narrowed (a value removed, or values restricted) | yes |
//! | enumeration widened (values added, or restriction removed) | no |
//! | per-record quality rules (`invalidValues` with `pattern`, `missingValues`, `nullValues` tolerating none) added / removed | yes / no |
//! | other quality rules (row counts, duplicates, SQL, thresholds) | no (measured on the data set, not per record) |
//! | server removed, or its type, location or format changed | yes |
//! | server added | no |
//! | description, tags, team, roles, support, price, SLA, status, custom properties, examples, classification | no |
//!
//! Enumerations are the values of an `invalidValues` quality rule with
//! `arguments.validValues` that tolerates no invalid value (ODCS v3.1 has
//! no `enum` key).
//!
//! # The gate
//!
//! [`gate`] accepts a new version when its `version` is a greater semver
//! than the old one and, if any change is breaking, its major version is
//! greater (for `0.x`, the minor version, as cargo does). Otherwise it
//! returns a [`Refusal`]; the registry turns a refusal into
//! [`Error::BreakingChange`] with the consumers it would break
//! ([`Refusal::into_error`]), whose message [`describe_refusal`] writes.

use std::collections::BTreeSet;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{Bound, Contract, LogicalType, LogicalTypeOptions, Metric, SchemaObject, SchemaProperty, Server};
use crate::error::Error;

/// What kind of difference a [`Change`] is; [`ChangeKind::is_breaking`]
/// is the classification table of the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    ObjectRemoved,
    ObjectAdded,
    PropertyRemoved,
    OptionalPropertyAdded,
    RequiredPropertyAdded,
    TypeChanged,
    TypeWidened,
    BecameRequired,
    BecameOptional,
    KeyChanged,
    PhysicalNameChanged,
    PhysicalTypeChanged,
    FormatTightened,
    FormatChanged,
    FormatLoosened,
    ConstraintTightened,
    ConstraintLoosened,
    EnumNarrowed,
    EnumWidened,
    ServerRemoved,
    ServerAdded,
    ServerChanged,
    QualityChanged,
    Metadata,
}

impl ChangeKind {
    /// Whether a change of this kind breaks consumers (see the module docs).
    pub fn is_breaking(self) -> bool {
        use ChangeKind::*;
        match self {
            ObjectRemoved
            | PropertyRemoved
            | RequiredPropertyAdded
            | TypeChanged
            | BecameRequired
            | BecameOptional
            | KeyChanged
            | PhysicalNameChanged
            | FormatTightened
            | FormatChanged
            | ConstraintTightened
            | EnumNarrowed
            | ServerRemoved
            | ServerChanged => true,
            ObjectAdded
            | OptionalPropertyAdded
            | TypeWidened
            | PhysicalTypeChanged
            | FormatLoosened
            | ConstraintLoosened
            | EnumWidened
            | ServerAdded
            | QualityChanged
            | Metadata => false,
        }
    }
}

/// One difference between two contract versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Where: `customers.email`, `customers.address.city`,
    /// `orders.lines[].sku` (array items), `servers.production.host`,
    /// `description`.
    pub path: String,
    pub kind: ChangeKind,
    /// `kind.is_breaking()`, kept for readers of the serialized form.
    pub breaking: bool,
    /// What changed, for people: `maxLength 320 -> 100`.
    pub detail: String,
}

impl Change {
    /// A change whose `breaking` follows from its kind.
    pub fn new(path: impl Into<String>, kind: ChangeKind, detail: impl Into<String>) -> Change {
        Change { path: path.into(), kind, breaking: kind.is_breaking(), detail: detail.into() }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// Every difference between `old` and `new`, classified.
pub fn diff(old: &Contract, new: &Contract) -> Vec<Change> {
    let mut d = Differ { changes: Vec::new() };
    d.metadata("", old, new, &["schema", "servers", "version"]);
    d.servers(&old.servers, &new.servers);
    d.objects(&old.schema, &new.schema);
    d.changes
}

/// Why [`gate`] refuses a new version.
#[derive(Debug)]
pub enum Refusal {
    /// The two documents are different contracts.
    DifferentContract { old: String, new: String },
    /// A `version` is not semver.
    InvalidVersion { value: String, source: semver::Error },
    /// The new version is not greater than the old one.
    NotNewer { contract: String, from: String, to: String },
    /// Breaking changes without a major version bump; `changes` holds the
    /// breaking ones.
    Breaking { contract: String, from: String, to: String, changes: Vec<Change> },
}

impl Refusal {
    /// The crate error for this refusal; `consumers` are the products whose
    /// input ports read the contract (named by [`Refusal::Breaking`]'s
    /// [`Error::BreakingChange`]).
    pub fn into_error(self, consumers: Vec<String>) -> Error {
        match self {
            Refusal::DifferentContract { old, new } => Error::InvalidContract {
                reason: format!("`{new}` is not `{old}`: a new version keeps the contract's id"),
                contract: new,
                path: "id".to_string(),
            },
            Refusal::InvalidVersion { value, source } => Error::InvalidVersion { value, source },
            Refusal::NotNewer { contract, from, to } => Error::InvalidContract {
                contract,
                path: "version".to_string(),
                reason: format!("{to} is not greater than the registered version {from}"),
            },
            Refusal::Breaking { contract, from, to, changes } => {
                Error::BreakingChange { contract, from, to, changes, consumers }
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DifferentContract { old, new } => {
                write!(f, "`{new}` is not `{old}`: a new version keeps the contract's id")
            }
            Refusal::InvalidVersion { value, source } => write!(f, "`{value}` is not a semantic version: {source}"),
            Refusal::NotNewer { contract, from, to } => {
                write!(f, "contract `{contract}`: {to} is not greater than the registered version {from}")
            }
            Refusal::Breaking { contract, from, to, changes } => {
                f.write_str(&refusal_body(contract, from, to, changes))
            }
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::InvalidVersion { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks that `new` may follow `old`, and returns every change (breaking
/// ones included when the major version allows them).
///
/// # Errors
/// A [`Refusal`]: different ids, a version that is not semver or not
/// greater, or breaking changes without a major bump.
pub fn gate(old: &Contract, new: &Contract) -> Result<Vec<Change>, Refusal> {
    if old.id != new.id {
        return Err(Refusal::DifferentContract { old: old.id.clone(), new: new.id.clone() });
    }
    let parse = |v: &str| Version::parse(v).map_err(|source| Refusal::InvalidVersion { value: v.to_string(), source });
    let from = parse(&old.version)?;
    let to = parse(&new.version)?;
    if to <= from {
        return Err(Refusal::NotNewer { contract: new.id.clone(), from: old.version.clone(), to: new.version.clone() });
    }
    let changes = diff(old, new);
    if !is_major_bump(&from, &to) {
        let breaking: Vec<Change> = changes.iter().filter(|c| c.breaking).cloned().collect();
        if !breaking.is_empty() {
            return Err(Refusal::Breaking {
                contract: new.id.clone(),
                from: old.version.clone(),
                to: new.version.clone(),
                changes: breaking,
            });
        }
    }
    Ok(changes)
}

/// Whether `to` may break `from`'s consumers: a greater major version, or
/// for `0.x` a greater minor version (as cargo reads semver).
pub fn is_major_bump(from: &Version, to: &Version) -> bool {
    if from.major == 0 && to.major == 0 { to.minor > from.minor } else { to.major > from.major }
}

/// The smallest version that may carry breaking changes after `from`.
pub fn next_major(from: &Version) -> Version {
    if from.major == 0 { Version::new(0, from.minor + 1, 0) } else { Version::new(from.major + 1, 0, 0) }
}

/// The message of [`crate::Error::BreakingChange`]: one line per breaking
/// change, then the consumers it would break.
pub fn describe_refusal(contract: &str, from: &str, to: &str, changes: &[Change], consumers: &[String]) -> String {
    let mut out = refusal_body(contract, from, to, changes);
    out.push('\n');
    if consumers.is_empty() {
        out.push_str("no registered consumers");
    } else {
        out.push_str("would break: ");
        out.push_str(&consumers.join(", "));
    }
    out
}

fn refusal_body(contract: &str, from: &str, to: &str, changes: &[Change]) -> String {
    let needed = Version::parse(from).map(|v| format!(" ({} or later)", next_major(&v))).unwrap_or_default();
    let count = match changes.len() {
        1 => "1 breaking change needs".to_string(),
        n => format!("{n} breaking changes need"),
    };
    let mut out = format!("contract `{contract}` {from} -> {to}: {count} a new major version{needed}:");
    for c in changes {
        out.push_str(&format!("\n  - {c}"));
    }
    out
}

struct Differ {
    changes: Vec<Change>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 60 && !s.contains('\n') => format!("`{s}`"),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        _ => "…".to_string(),
    }
}

fn type_name(lt: Option<LogicalType>) -> &'static str {
    lt.map_or("(any)", LogicalType::as_str)
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "(none)".to_string(), |v| v.to_string())
}

impl Differ {
    fn push(&mut self, path: impl Into<String>, kind: ChangeKind, detail: impl Into<String>) {
        self.changes.push(Change::new(path, kind, detail));
    }

    /// One [`ChangeKind::Metadata`] change per top-level key of the
    /// serialized values that differs, except `skip`.
    fn metadata<T: Serialize>(&mut self, path: &str, old: &T, new: &T, skip: &[&str]) {
        let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (serde_json::to_value(old), serde_json::to_value(new))
        else {
            return;
        };
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            if skip.contains(&key.as_str()) {
                continue;
            }
            let detail = match (a.get(key), b.get(key)) {
                (x, y) if x == y => continue,
                (None, Some(_)) => "added".to_string(),
                (Some(_), None) => "removed".to_string(),
                (Some(x), Some(y)) => match (show(x), show(y)) {
                    (sx, sy) if sx != "…" && sy != "…" => format!("{sx} -> {sy}"),
                    _ => "changed".to_string(),
                },
                (None, None) => continue,
            };
            self.push(join(path, key), ChangeKind::Metadata, detail);
        }
    }

    fn servers(&mut self, old: &[Server], new: &[Server]) {
        for o in old {
            let path = format!("servers.{}", o.server);
            let Some(n) = new.iter().find(|n| n.server == o.server) else {
                self.push(
                    path,
                    ChangeKind::ServerRemoved,
                    format!("server `{}` ({}) removed", o.server, o.server_type),
                );
                continue;
            };
            if o.server_type != n.server_type {
                self.push(
                    join(&path, "type"),
                    ChangeKind::ServerChanged,
                    format!("type {} -> {}", o.server_type, n.server_type),
                );
            }
            let (ok, nk) = (o.type_keys(), n.type_keys());
            let keys: BTreeSet<&str> = ok.iter().chain(nk.iter()).map(|(k, _)| *k).collect();
            for key in &keys {
                let get = |list: &[(&'static str, String)]| list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                let (a, b) = (get(&ok), get(&nk));
                if a != b {
                    self.push(join(&path, key), ChangeKind::ServerChanged, format!("{key} {} -> {}", opt(a), opt(b)));
                }
            }
            if o.topic() != n.topic() {
                self.push(
                    join(&path, "topic"),
                    ChangeKind::ServerChanged,
                    format!("topic {} -> {}", opt(o.topic()), opt(n.topic())),
                );
            }
            let mut skip: Vec<&str> = vec!["server", "type"];
            skip.extend(keys.iter().copied());
            // The topic (a custom property) was compared above.
            let without_topic = |s: &Server| {
                let mut s = s.clone();
                s.custom_properties.retain(|p| p.property != "topic");
                s
            };
            self.metadata(&path, &without_topic(o), &without_topic(n), &skip);
        }
        for n in new.iter().filter(|n| !old.iter().any(|o| o.server == n.server)) {
            self.push(
                format!("servers.{}", n.server),
                ChangeKind::ServerAdded,
                format!("server `{}` ({}) added", n.server, n.server_type),
            );
        }
    }

    fn objects(&mut self, old: &[SchemaObject], new: &[SchemaObject]) {
        for o in old {
            match new.iter().find(|n| n.name == o.name) {
                None => self.push(o.name.clone(), ChangeKind::ObjectRemoved, "schema object removed"),
                Some(n) => self.object(o, n),
            }
        }
        for n in new.iter().filter(|n| !old.iter().any(|o| o.name == n.name)) {
            self.push(n.name.clone(), ChangeKind::ObjectAdded, "schema object added");
        }
    }

    fn object(&mut self, o: &SchemaObject, n: &SchemaObject) {
        let path = o.name.as_str();
        self.physical_name(path, o.physical_name.as_deref(), n.physical_name.as_deref());
        if o.logical_type != n.logical_type {
            let name = |t: Option<crate::contract::ObjectType>| {
                t.map_or("(none)".to_string(), |t| format!("{t:?}").to_lowercase())
            };
            self.push(
                join(path, "logicalType"),
                ChangeKind::TypeChanged,
                format!("logicalType {} -> {}", name(o.logical_type), name(n.logical_type)),
            );
        }
        if o.physical_type != n.physical_type {
            self.push(
                join(path, "physicalType"),
                ChangeKind::PhysicalTypeChanged,
                format!("physicalType {} -> {}", opt(o.physical_type.as_deref()), opt(n.physical_type.as_deref())),
            );
        }
        self.properties(path, &o.properties, &n.properties);
        if o.quality != n.quality {
            self.push(join(path, "quality"), ChangeKind::QualityChanged, "quality rules changed");
        }
        self.metadata(path, o, n, &["name", "physicalName", "logicalType", "physicalType", "properties", "quality"]);
    }

    fn physical_name(&mut self, path: &str, o: Option<&str>, n: Option<&str>) {
        match (o, n) {
            (a, b) if a == b => {}
            (None, Some(b)) => {
                self.push(join(path, "physicalName"), ChangeKind::Metadata, format!("physicalName `{b}` declared"))
            }
            (a, b) => self.push(
                join(path, "physicalName"),
                ChangeKind::PhysicalNameChanged,
                format!("physicalName {} -> {}", opt(a), opt(b)),
            ),
        }
    }

    fn properties(&mut self, path: &str, old: &[SchemaProperty], new: &[SchemaProperty]) {
        for o in old {
            let here = join(path, &o.name);
            match new.iter().find(|n| n.name == o.name) {
                None => {
                    let required = if non_null(o) { ", required" } else { "" };
                    self.push(
                        here,
                        ChangeKind::PropertyRemoved,
                        format!("property removed (was {}{required})", type_name(o.logical_type)),
                    );
                }
                Some(n) => self.property(&here, o, n),
            }
        }
        for n in new.iter().filter(|n| !old.iter().any(|o| o.name == n.name)) {
            let here = join(path, &n.name);
            if non_null(n) {
                self.push(
                    here,
                    ChangeKind::RequiredPropertyAdded,
                    format!("required property added ({}); old records lack it", type_name(n.logical_type)),
                );
            } else {
                self.push(
                    here,
                    ChangeKind::OptionalPropertyAdded,
                    format!("optional property added ({})", type_name(n.logical_type)),
                );
            }
        }
    }

    fn property(&mut self, path: &str, o: &SchemaProperty, n: &SchemaProperty) {
        self.physical_name(path, o.physical_name.as_deref(), n.physical_name.as_deref());
        if o.physical_type != n.physical_type {
            self.push(
                path,
                ChangeKind::PhysicalTypeChanged,
                format!("physicalType {} -> {}", opt(o.physical_type.as_deref()), opt(n.physical_type.as_deref())),
            );
        }
        let same_kind = match (o.logical_type, n.logical_type) {
            (a, b) if a == b => true,
            (Some(LogicalType::Integer), Some(LogicalType::Number)) => {
                self.push(path, ChangeKind::TypeWidened, "logicalType integer -> number (widened)");
                true
            }
            (a, b) => {
                self.push(path, ChangeKind::TypeChanged, format!("logicalType {} -> {}", type_name(a), type_name(b)));
                false
            }
        };
        match (non_null(o), non_null(n)) {
            (false, true) => {
                self.push(path, ChangeKind::BecameRequired, "became required (old records may lack it or hold null)")
            }
            (true, false) => {
                self.push(path, ChangeKind::BecameOptional, "no longer required (readers relied on it being present)")
            }
            _ => {}
        }
        let flag = |v: Option<bool>| v == Some(true);
        if flag(o.unique) != flag(n.unique) {
            let what = if flag(n.unique) { "unique added" } else { "unique removed" };
            self.push(path, ChangeKind::KeyChanged, what);
        }
        if flag(o.primary_key) != flag(n.primary_key) {
            let what = if flag(n.primary_key) {
                "became part of the primary key"
            } else {
                "no longer part of the primary key"
            };
            self.push(path, ChangeKind::KeyChanged, what);
        } else if flag(o.primary_key) && o.primary_key_position != n.primary_key_position {
            self.push(
                path,
                ChangeKind::KeyChanged,
                format!("primaryKeyPosition {} -> {}", opt(o.primary_key_position), opt(n.primary_key_position)),
            );
        }
        if same_kind {
            let default = LogicalTypeOptions::default();
            let oo = o.logical_type_options.as_ref().unwrap_or(&default);
            let no = n.logical_type_options.as_ref().unwrap_or(&default);
            self.options(path, n.logical_type, o.logical_type, oo, no);
            self.enumeration(path, o, n);
            self.record_rules(path, o, n);
            match (&o.items, &n.items) {
                (Some(a), Some(b)) => self.property(&format!("{path}[]"), a, b),
                (None, Some(_)) => self.push(path, ChangeKind::ConstraintTightened, "array items declared"),
                (Some(_), None) => self.push(path, ChangeKind::TypeChanged, "array items no longer declared"),
                (None, None) => {}
            }
            self.properties(path, &o.properties, &n.properties);
        }
        if other_quality(o) != other_quality(n) {
            self.push(join(path, "quality"), ChangeKind::QualityChanged, "quality rules changed");
        }
        self.metadata(
            path,
            o,
            n,
            &[
                "name",
                "physicalName",
                "physicalType",
                "logicalType",
                "logicalTypeOptions",
                "required",
                "unique",
                "primaryKey",
                "primaryKeyPosition",
                "properties",
                "items",
                "quality",
            ],
        );
    }

    fn options(
        &mut self,
        path: &str,
        lt: Option<LogicalType>,
        old_lt: Option<LogicalType>,
        o: &LogicalTypeOptions,
        n: &LogicalTypeOptions,
    ) {
        use ChangeKind::*;
        match lt {
            Some(LogicalType::String) => match (&o.format, &n.format) {
                (a, b) if a == b => {}
                (None, Some(b)) => self.push(path, FormatTightened, format!("format `{b}` added")),
                (Some(a), None) => self.push(path, FormatLoosened, format!("format `{a}` removed")),
                (a, b) => {
                    self.push(path, FormatTightened, format!("format {} -> {}", opt(a.as_deref()), opt(b.as_deref())))
                }
            },
            Some(LogicalType::Date | LogicalType::Timestamp | LogicalType::Time) => {
                if o.format != n.format {
                    self.push(
                        path,
                        FormatChanged,
                        format!("format {} -> {}", opt(o.format.as_deref()), opt(n.format.as_deref())),
                    );
                }
                if o.timezone != n.timezone || o.default_timezone != n.default_timezone {
                    self.push(path, FormatChanged, "time zone handling changed");
                }
            }
            Some(LogicalType::Integer | LogicalType::Number) => {
                // Widening integer -> number keeps the old width meaningful.
                let (a, b) = (width(old_lt, o.format.as_deref()), width(lt, n.format.as_deref()));
                if o.format != n.format {
                    let detail = format!("format {} -> {}", opt(o.format.as_deref()), opt(n.format.as_deref()));
                    let kind = if b.0 >= a.0 && b.1 <= a.1 {
                        FormatTightened
                    } else if b.0 <= a.0 && b.1 >= a.1 {
                        FormatLoosened
                    } else {
                        FormatChanged
                    };
                    self.push(path, kind, detail);
                }
            }
            _ => {}
        }
        self.lower_count(path, "minLength", o.min_length, n.min_length);
        self.upper_count(path, "maxLength", o.max_length, n.max_length);
        self.lower_count(path, "minItems", o.min_items, n.min_items);
        self.upper_count(path, "maxItems", o.max_items, n.max_items);
        self.lower_count(path, "minProperties", o.min_properties, n.min_properties);
        self.upper_count(path, "maxProperties", o.max_properties, n.max_properties);
        match (&o.pattern, &n.pattern) {
            (a, b) if a == b => {}
            (None, Some(b)) => self.push(path, ConstraintTightened, format!("pattern `{b}` added")),
            (Some(a), None) => self.push(path, ConstraintLoosened, format!("pattern `{a}` removed")),
            (Some(a), Some(b)) => self.push(path, ConstraintTightened, format!("pattern `{a}` -> `{b}`")),
            (None, None) => {}
        }
        self.bound(path, "minimum", o.minimum.as_ref(), n.minimum.as_ref(), true);
        self.bound(path, "exclusiveMinimum", o.exclusive_minimum.as_ref(), n.exclusive_minimum.as_ref(), true);
        self.bound(path, "maximum", o.maximum.as_ref(), n.maximum.as_ref(), false);
        self.bound(path, "exclusiveMaximum", o.exclusive_maximum.as_ref(), n.exclusive_maximum.as_ref(), false);
        match (&o.multiple_of, &n.multiple_of) {
            (a, b) if a == b => {}
            (None, Some(b)) => self.push(path, ConstraintTightened, format!("multipleOf {b} added")),
            (Some(a), None) => self.push(path, ConstraintLoosened, format!("multipleOf {a} removed")),
            (Some(a), Some(b)) => {
                let divides = a.as_f64().zip(b.as_f64()).is_some_and(|(a, b)| b != 0.0 && (a / b).fract() == 0.0);
                let kind = if divides { ConstraintLoosened } else { ConstraintTightened };
                self.push(path, kind, format!("multipleOf {a} -> {b}"));
            }
            (None, None) => {}
        }
        match (o.unique_items == Some(true), n.unique_items == Some(true)) {
            (false, true) => self.push(path, ConstraintTightened, "uniqueItems turned on"),
            (true, false) => self.push(path, ConstraintLoosened, "uniqueItems turned off"),
            _ => {}
        }
        for name in n.required.iter().filter(|r| !o.required.contains(r)) {
            self.push(join(path, name), BecameRequired, "listed in logicalTypeOptions.required");
        }
        for name in o.required.iter().filter(|r| !n.required.contains(r)) {
            self.push(join(path, name), BecameOptional, "no longer listed in logicalTypeOptions.required");
        }
    }

    fn lower_count(&mut self, path: &str, key: &str, o: Option<u64>, n: Option<u64>) {
        let (a, b) = (o.unwrap_or(0), n.unwrap_or(0));
        if o != n {
            let kind = if b > a { ChangeKind::ConstraintTightened } else { ChangeKind::ConstraintLoosened };
            self.push(path, kind, format!("{key} {} -> {}", opt(o), opt(n)));
        }
    }

    fn upper_count(&mut self, path: &str, key: &str, o: Option<u64>, n: Option<u64>) {
        let (a, b) = (o.unwrap_or(u64::MAX), n.unwrap_or(u64::MAX));
        if o != n {
            let kind = if b < a { ChangeKind::ConstraintTightened } else { ChangeKind::ConstraintLoosened };
            self.push(path, kind, format!("{key} {} -> {}", opt(o), opt(n)));
        }
    }

    /// A lower (`lower`) or upper bound; text bounds (ISO dates) compare as
    /// text, and bounds that cannot be compared count as tightened.
    fn bound(&mut self, path: &str, key: &str, o: Option<&Bound>, n: Option<&Bound>, lower: bool) {
        use std::cmp::Ordering;
        let ordering = match (o, n) {
            (a, b) if a == b => return,
            (None, Some(_)) => Some(if lower { Ordering::Greater } else { Ordering::Less }),
            (Some(_), None) => Some(if lower { Ordering::Less } else { Ordering::Greater }),
            (Some(Bound::Number(a)), Some(Bound::Number(b))) => {
                a.as_f64().zip(b.as_f64()).and_then(|(a, b)| b.partial_cmp(&a))
            }
            (Some(Bound::Text(a)), Some(Bound::Text(b))) => Some(b.cmp(a)),
            _ => None,
        };
        let tightened = match ordering {
            Some(Ordering::Greater) => lower,
            Some(Ordering::Less) => !lower,
            Some(Ordering::Equal) => return,
            None => true,
        };
        let kind = if tightened { ChangeKind::ConstraintTightened } else { ChangeKind::ConstraintLoosened };
        self.push(path, kind, format!("{key} {} -> {}", opt(o), opt(n)));
    }

    fn enumeration(&mut self, path: &str, o: &SchemaProperty, n: &SchemaProperty) {
        let list = |vs: &[Value]| vs.iter().map(show).collect::<Vec<_>>().join(", ");
        match (o.valid_values(), n.valid_values()) {
            (None, None) => {}
            (None, Some(b)) => self.push(path, ChangeKind::EnumNarrowed, format!("values restricted to [{}]", list(b))),
            (Some(_), None) => self.push(path, ChangeKind::EnumWidened, "value restriction removed"),
            (Some(a), Some(b)) => {
                let removed: Vec<Value> = a.iter().filter(|v| !b.contains(v)).cloned().collect();
                let added: Vec<Value> = b.iter().filter(|v| !a.contains(v)).cloned().collect();
                if !removed.is_empty() {
                    let also = if added.is_empty() { String::new() } else { format!(" (added: {})", list(&added)) };
                    self.push(path, ChangeKind::EnumNarrowed, format!("values removed: {}{also}", list(&removed)));
                } else if !added.is_empty() {
                    self.push(path, ChangeKind::EnumWidened, format!("values added: {}", list(&added)));
                }
            }
        }
    }

    /// Strict `invalidValues` patterns and `missingValues` lists: per-record
    /// rules, so they tighten or loosen like options do.
    fn record_rules(&mut self, path: &str, o: &SchemaProperty, n: &SchemaProperty) {
        let patterns = |p: &SchemaProperty| -> BTreeSet<String> {
            p.quality
                .iter()
                .filter(|q| q.is_strict(Metric::InvalidValues))
                .filter_map(|q| q.argument("pattern").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        let missing = |p: &SchemaProperty| -> BTreeSet<String> {
            p.quality
                .iter()
                .filter(|q| q.is_strict(Metric::MissingValues))
                .flat_map(|q| match q.argument("missingValues") {
                    Some(Value::Array(vs)) => vs.iter().map(Value::to_string).collect::<Vec<_>>(),
                    _ => vec!["null".to_string()],
                })
                .collect()
        };
        let (op, np) = (patterns(o), patterns(n));
        for p in np.difference(&op) {
            self.push(path, ChangeKind::ConstraintTightened, format!("quality pattern `{p}` added"));
        }
        for p in op.difference(&np) {
            self.push(path, ChangeKind::ConstraintLoosened, format!("quality pattern `{p}` removed"));
        }
        let (om, nm) = (missing(o), missing(n));
        for v in nm.difference(&om) {
            self.push(path, ChangeKind::ConstraintTightened, format!("{v} now refused as a missing value"));
        }
        for v in om.difference(&nm) {
            self.push(path, ChangeKind::ConstraintLoosened, format!("{v} no longer refused as a missing value"));
        }
    }
}

/// Required, or refused when null by a strict `nullValues` rule.
fn non_null(p: &SchemaProperty) -> bool {
    p.is_required() || p.quality.iter().any(|q| q.is_strict(Metric::NullValues))
}

/// The quality rules that are not per-record rules (those are diffed as
/// constraints).
fn other_quality(p: &SchemaProperty) -> Vec<&crate::contract::DataQuality> {
    p.quality
        .iter()
        .filter(|q| ![Metric::InvalidValues, Metric::MissingValues, Metric::NullValues].iter().any(|m| q.is_strict(*m)))
        .collect()
}

/// The value range of an integer/number format (unbounded without one).
fn width(lt: Option<LogicalType>, format: Option<&str>) -> (f64, f64) {
    let range = |lo: f64, hi: f64| (lo, hi);
    match (lt, format) {
        (_, Some("i8")) => range(-128.0, 127.0),
        (_, Some("i16")) => range(-32768.0, 32767.0),
        (_, Some("i32")) => range(f64::from(i32::MIN), f64::from(i32::MAX)),
        (_, Some("i64")) => range(-9.223_372_036_854_776e18, 9.223_372_036_854_776e18),
        (_, Some("i128")) => range(-1.7e38, 1.7e38),
        (_, Some("u8")) => range(0.0, 255.0),
        (_, Some("u16")) => range(0.0, 65535.0),
        (_, Some("u32")) => range(0.0, f64::from(u32::MAX)),
        (_, Some("u64")) => range(0.0, 1.844_674_407_370_955_2e19),
        (_, Some("u128")) => range(0.0, 3.4e38),
        (_, Some("f32")) => range(-f64::from(f32::MAX), f64::from(f32::MAX)),
        _ => range(f64::NEG_INFINITY, f64::INFINITY),
    }
}

#[cfg(test)]
mod tests;
