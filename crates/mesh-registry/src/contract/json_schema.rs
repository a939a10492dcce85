//! A schema object as a JSON Schema (draft 2020-12), and its compiled
//! validator.
//!
//! Mapping, per property:
//!
//! | ODCS | JSON Schema |
//! | --- | --- |
//! | `logicalType: string` | `type: string`, `minLength`, `maxLength`, `pattern`, `format` (JSON Schema formats such as `email`, `uuid`, `uri`, `date-time`; others are not checked) |
//! | `date` | `format: date`, or a `pattern` from a JDK `format` such as `dd.MM.yyyy` |
//! | `timestamp` | `format: date-time` (RFC 3339); a local date-time pattern with `timezone: false`; a `pattern` from a JDK `format` |
//! | `time` | `HH:mm:ss[.fff]` with an optional offset (`format: time` with `timezone: true`) |
//! | `integer`, `number` | `type`, `minimum`, `maximum`, `exclusive*`, `multipleOf`; `format: i32` etc. add the type's range |
//! | `boolean` | `type: boolean` |
//! | `array` | `type: array`, `items`, `minItems`, `maxItems`, `uniqueItems` |
//! | `object` | `type: object`, `properties`, `required`, `minProperties`, `maxProperties` |
//! | no `logicalType` | any value |
//! | `required: true` | listed in the parent's `required` and not `null` (ODCS: "may contain Null values") |
//! | `required` absent or false | may be absent or `null` |
//! | quality `invalidValues` with `validValues`, tolerating none | `enum` |
//! | quality `invalidValues` with `pattern`, tolerating none | `pattern` |
//! | quality `missingValues` / `nullValues`, tolerating none | the listed values (or `null`) are refused |
//!
//! Unknown keys in records are allowed (`additionalProperties` stays true):
//! a contract says what must be there, not what must not. Date and time
//! bounds (`minimum: 2020-01-01`) are not compiled: JSON Schema cannot
//! compare strings.

use std::fmt;

use jsonschema::{Draft, Validator};
use serde_json::{Map, Number, Value, json};

use super::data_quality::*;
use super::model::*;
use crate::error::{Error, Result};

/// JSON Schema string formats the validator checks; other ODCS string
/// formats (`password`, `byte`, `binary`) are documentation only.
const JSON_SCHEMA_FORMATS: &[&str] = &[
    "date",
    "date-time",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

const TIME_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$";
const LOCAL_TIMESTAMP_PATTERN: &str =
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?$";

impl SchemaObject {
    /// The JSON Schema (draft 2020-12) a record of this object must satisfy.
    pub fn to_json_schema(&self) -> Value {
        let mut schema = object_schema(&self.properties, None, false);
        schema.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        schema.insert("title".into(), json!(self.name));
        if let Some(d) = &self.description {
            schema.insert("description".into(), json!(d));
        }
        Value::Object(schema)
    }
}

fn object_schema(
    properties: &[SchemaProperty],
    options: Option<&LogicalTypeOptions>,
    nullable: bool,
) -> Map<String, Value> {
    let mut s = Map::new();
    s.insert("type".into(), type_of("object", nullable));
    let mut props = Map::new();
    let mut required: Vec<String> = Vec::new();
    for p in properties {
        props.insert(p.name.clone(), property_schema(p));
        if p.is_required() {
            required.push(p.name.clone());
        }
    }
    if let Some(o) = options {
        for name in &o.required {
            if !required.contains(name) {
                required.push(name.clone());
            }
        }
        put_u64(&mut s, "minProperties", o.min_properties);
        put_u64(&mut s, "maxProperties", o.max_properties);
    }
    if !props.is_empty() {
        s.insert("properties".into(), Value::Object(props));
    }
    if !required.is_empty() {
        s.insert("required".into(), json!(required));
    }
    s
}

/// The JSON Schema of one property's value.
fn property_schema(p: &SchemaProperty) -> Value {
    let strict_nulls = p.quality.iter().any(|q| q.is_strict(Metric::NullValues));
    let nullable = !p.is_required() && !strict_nulls;
    let default_options = LogicalTypeOptions::default();
    let o = p.logical_type_options.as_ref().unwrap_or(&default_options);
    let mut s = match p.logical_type {
        None => Map::new(),
        Some(LogicalType::Object) => object_schema(&p.properties, Some(o), nullable),
        Some(lt) => {
            let mut s = Map::new();
            scalar(&mut s, lt, o, p, nullable);
            s
        }
    };
    let mut all_of = Vec::new();
    for q in &p.quality {
        if q.is_strict(Metric::InvalidValues) {
            if let Some(Value::Array(valid)) = q.argument("validValues") {
                let mut values = valid.clone();
                if nullable && !values.contains(&Value::Null) {
                    values.push(Value::Null);
                }
                all_of.push(json!({ "enum": values }));
            }
            if let Some(Value::String(pattern)) = q.argument("pattern") {
                all_of.push(json!({ "pattern": pattern }));
            }
        }
        if q.is_strict(Metric::MissingValues) {
            let missing = match q.argument("missingValues") {
                Some(Value::Array(values)) => values.clone(),
                _ => vec![Value::Null],
            };
            all_of.push(json!({ "not": { "enum": missing } }));
        }
    }
    if !nullable && p.logical_type.is_none() {
        all_of.push(json!({ "not": { "type": "null" } }));
    }
    match all_of.len() {
        0 => {}
        1 if !s.contains_key("enum") && !s.contains_key("pattern") && !s.contains_key("not") => {
            if let Some(Value::Object(only)) = all_of.pop() {
                s.extend(only);
            }
        }
        _ => {
            s.insert("allOf".into(), Value::Array(all_of));
        }
    }
    if let Some(d) = &p.description {
        s.insert("description".into(), json!(d));
    }
    Value::Object(s)
}

fn scalar(s: &mut Map<String, Value>, lt: LogicalType, o: &LogicalTypeOptions, p: &SchemaProperty, nullable: bool) {
    match lt {
        LogicalType::String => {
            s.insert("type".into(), type_of("string", nullable));
            put_u64(s, "minLength", o.min_length);
            put_u64(s, "maxLength", o.max_length);
            if let Some(pattern) = &o.pattern {
                s.insert("pattern".into(), json!(pattern));
            }
            if let Some(f) = &o.format
                && JSON_SCHEMA_FORMATS.contains(&f.as_str())
            {
                s.insert("format".into(), json!(f));
            }
        }
        LogicalType::Date => {
            s.insert("type".into(), type_of("string", nullable));
            match o.format.as_deref() {
                None | Some("yyyy-MM-dd" | "uuuu-MM-dd") => {
                    s.insert("format".into(), json!("date"));
                }
                Some(f) => put_pattern(s, f),
            }
        }
        LogicalType::Timestamp => {
            s.insert("type".into(), type_of("string", nullable));
            match (o.format.as_deref(), o.timezone) {
                (Some(f), _) => put_pattern(s, f),
                (None, Some(false)) => {
                    s.insert("pattern".into(), json!(LOCAL_TIMESTAMP_PATTERN));
                }
                (None, _) => {
                    s.insert("format".into(), json!("date-time"));
                }
            }
        }
        LogicalType::Time => {
            s.insert("type".into(), type_of("string", nullable));
            match (o.format.as_deref(), o.timezone) {
                (Some(f), _) => put_pattern(s, f),
                (None, Some(true)) => {
                    s.insert("format".into(), json!("time"));
                }
                (None, _) => {
                    s.insert("pattern".into(), json!(TIME_PATTERN));
                }
            }
        }
        LogicalType::Integer | LogicalType::Number => {
            let name = if lt == LogicalType::Integer { "integer" } else { "number" };
            s.insert("type".into(), type_of(name, nullable));
            let (implied_min, implied_max) = o.format.as_deref().map_or((None, None), format_range);
            put_bound(s, "minimum", o.minimum.as_ref(), implied_min);
            put_bound(s, "maximum", o.maximum.as_ref(), implied_max);
            put_bound(s, "exclusiveMinimum", o.exclusive_minimum.as_ref(), None);
            put_bound(s, "exclusiveMaximum", o.exclusive_maximum.as_ref(), None);
            if let Some(m) = &o.multiple_of {
                s.insert("multipleOf".into(), Value::Number(m.clone()));
            }
        }
        LogicalType::Boolean => {
            s.insert("type".into(), type_of("boolean", nullable));
        }
        LogicalType::Array => {
            s.insert("type".into(), type_of("array", nullable));
            if let Some(items) = &p.items {
                s.insert("items".into(), item_schema(items));
            }
            put_u64(s, "minItems", o.min_items);
            put_u64(s, "maxItems", o.max_items);
            if o.unique_items == Some(true) {
                s.insert("uniqueItems".into(), json!(true));
            }
        }
        LogicalType::Object => {}
    }
}

/// Array items: elements of a list are values, so an item is nullable only
/// when it says so (`required: false` is the default for properties, but an
/// item without `required` is taken as a present value).
fn item_schema(items: &SchemaProperty) -> Value {
    if items.required.is_none() {
        let mut strict = items.clone();
        strict.required = Some(true);
        property_schema(&strict)
    } else {
        property_schema(items)
    }
}

fn type_of(name: &str, nullable: bool) -> Value {
    if nullable { json!([name, "null"]) } else { json!(name) }
}

fn put_u64(s: &mut Map<String, Value>, key: &str, v: Option<u64>) {
    if let Some(v) = v {
        s.insert(key.into(), json!(v));
    }
}

fn put_pattern(s: &mut Map<String, Value>, jdk: &str) {
    if let Some(re) = jdk_pattern_to_regex(jdk) {
        s.insert("pattern".into(), json!(re));
    }
}

/// Sets a numeric bound: the explicit one, else the one a `format` implies.
fn put_bound(s: &mut Map<String, Value>, key: &str, explicit: Option<&Bound>, implied: Option<Number>) {
    match explicit {
        Some(Bound::Number(n)) => {
            s.insert(key.into(), Value::Number(n.clone()));
        }
        Some(Bound::Text(_)) => {}
        None => {
            if let Some(n) = implied {
                s.insert(key.into(), Value::Number(n));
            }
        }
    }
}

/// The value range an integer or number `format` implies.
fn format_range(format: &str) -> (Option<Number>, Option<Number>) {
    let int = |lo: i64, hi: i64| (Some(Number::from(lo)), Some(Number::from(hi)));
    match format {
        "i8" => int(i8::MIN.into(), i8::MAX.into()),
        "i16" => int(i16::MIN.into(), i16::MAX.into()),
        "i32" => int(i32::MIN.into(), i32::MAX.into()),
        "i64" => int(i64::MIN, i64::MAX),
        "u8" => int(0, u8::MAX.into()),
        "u16" => int(0, u16::MAX.into()),
        "u32" => int(0, u32::MAX.into()),
        "u64" => (Some(Number::from(0)), Some(Number::from(u64::MAX))),
        "u128" => (Some(Number::from(0)), None),
        "f32" => (Number::from_f64(-f64::from(f32::MAX)), Number::from_f64(f64::from(f32::MAX))),
        _ => (None, None),
    }
}

/// Translates a JDK `DateTimeFormatter` pattern (`yyyy-MM-dd'T'HH:mm:ss`)
/// into an anchored regular expression, or `None` when it uses a letter the
/// registry does not translate (or an unterminated quote).
///
/// Letters: `y`/`u` year (`yy`: two digits), `M` month (`MMM`+: name), `d`
/// day, `D` day of year, `H`/`k` hour of day, `h`/`K` hour of half-day, `m`
/// minute, `s` second, `S` fraction digits, `a` AM/PM, `E` day name,
/// `X`/`x`/`Z` offsets. Other non-letters are literal; text in single
/// quotes is literal (`''` is a quote).
pub fn jdk_pattern_to_regex(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            let mut literal = String::new();
            loop {
                match chars.get(j) {
                    None => return None,
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        literal.push('\'');
                        j += 2;
                    }
                    Some('\'') => {
                        j += 1;
                        break;
                    }
                    Some(ch) => {
                        literal.push(*ch);
                        j += 1;
                    }
                }
            }
            literal.chars().for_each(|ch| push_literal(&mut out, ch));
            i = j;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let part = match (c, n) {
            ('y' | 'u', 2) => r"[0-9]{2}".to_string(),
            ('y' | 'u', _) => r"[0-9]{4}".to_string(),
            ('M', 1) => "(0?[1-9]|1[0-2])".to_string(),
            ('M', 2) => "(0[1-9]|1[0-2])".to_string(),
            ('M', _) | ('E', _) => "[A-Za-z]+".to_string(),
            ('d', 1) => "(0?[1-9]|[12][0-9]|3[01])".to_string(),
            ('d', 2) => "(0[1-9]|[12][0-9]|3[01])".to_string(),
            ('D', 1..=3) => "[0-9]{1,3}".to_string(),
            ('H', 1) => "([01]?[0-9]|2[0-3])".to_string(),
            ('H', 2) => "([01][0-9]|2[0-3])".to_string(),
            ('k', 1 | 2) => "([01]?[0-9]|2[0-4])".to_string(),
            ('h', 1) => "(0?[1-9]|1[0-2])".to_string(),
            ('h', 2) => "(0[1-9]|1[0-2])".to_string(),
            ('K', 1 | 2) => "(0?[0-9]|1[01])".to_string(),
            ('m' | 's', 1) => "[0-5]?[0-9]".to_string(),
            ('m' | 's', 2) => "[0-5][0-9]".to_string(),
            ('S', n) => format!("[0-9]{{{n}}}"),
            ('a', 1) => "(AM|PM|am|pm)".to_string(),
            ('X', 1..=5) => "(Z|[+-][0-9]{2}(:?[0-9]{2})?)".to_string(),
            ('x', 1..=5) => "[+-][0-9]{2}(:?[0-9]{2})?".to_string(),
            ('Z', 1..=5) => "(Z|[+-][0-9]{2}:?[0-9]{2})".to_string(),
            _ => return None,
        };
        out.push_str(&part);
        i += n;
    }
    out.push('$');
    Some(out)
}

fn push_literal(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$/".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// A schema object compiled for validating records: cheap to clone, safe to
/// share between threads.
#[derive(Clone)]
pub struct CompiledSchema {
    contract: String,
    object: String,
    physical_name: Option<String>,
    required: Vec<String>,
    schema: Value,
    validator: Validator,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("contract", &self.contract)
            .field("object", &self.object)
            .field("physical_name", &self.physical_name)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles one schema object of contract `contract`.
    ///
    /// # Errors
    /// [`Error::SchemaCompile`] when the validator refuses the JSON Schema
    /// (an invalid regular expression in a `pattern`, for example).
    pub fn compile(contract: &str, object: &SchemaObject) -> Result<CompiledSchema> {
        let schema = object.to_json_schema();
        let validator =
            jsonschema::options().with_draft(Draft::Draft202012).should_validate_formats(true).build(&schema).map_err(
                |e| Error::SchemaCompile {
                    contract: contract.to_string(),
                    object: object.name.clone(),
                    reason: describe_compile_error(&e),
                },
            )?;
        Ok(CompiledSchema {
            contract: contract.to_string(),
            object: object.name.clone(),
            physical_name: object.physical_name.clone(),
            required: object.properties.iter().filter(|p| p.is_required()).map(|p| p.name.clone()).collect(),
            schema,
            validator,
        })
    }

    /// The contract's id.
    pub fn contract(&self) -> &str {
        &self.contract
    }

    /// The schema object's name.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The schema object's `physicalName` (a table, a topic), if given.
    pub fn physical_name(&self) -> Option<&str> {
        self.physical_name.as_deref()
    }

    /// The top-level properties that must be present and not null.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// The JSON Schema it was compiled from.
    pub fn json_schema(&self) -> &Value {
        &self.schema
    }

    /// Whether `record` satisfies the contract (the fast path: no error is
    /// built).
    #[inline]
    pub fn is_valid(&self, record: &Value) -> bool {
        self.validator.is_valid(record)
    }

    /// Up to `limit` reasons why `record` does not satisfy the contract,
    /// each as `<JSON pointer>: <reason>` (`/email: "x" is not a "email"`);
    /// empty when it does.
    pub fn errors(&self, record: &Value, limit: usize) -> Vec<String> {
        self.validator
            .iter_errors(record)
            .take(limit)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { at.as_str() })
            })
            .collect()
    }
}

fn describe_compile_error(e: &jsonschema::ValidationError<'_>) -> String {
    let at = e.instance_path().to_string();
    if at.is_empty() { e.to_string() } else { format!("{e} (at {at} in the generated JSON Schema)") }
}
