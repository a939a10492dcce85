//! Tests of the contract model: YAML in and out, errors with positions,
//! the lint, and the JSON Schema compile.

use serde_json::{Value, json};

use super::*;
use crate::error::Error;

pub(crate) const CUSTOMER: &str = include_str!("../../tests/contracts/customer_master.odcs.yaml");
pub(crate) const ORDER_EVENTS: &str = include_str!("../../tests/contracts/order_events.odcs.yaml");
pub(crate) const PAYMENTS_V302: &str = include_str!("../../tests/contracts/payments_v302.odcs.yaml");

const FIXTURES: &[(&str, &str)] = &[
    ("customer_data_v1.odcs.yaml", CUSTOMER),
    ("order_events.odcs.yaml", ORDER_EVENTS),
    ("payments_v302.odcs.yaml", PAYMENTS_V302),
];

pub(crate) fn customer() -> Contract {
    Contract::from_yaml("customer_data_v1.odcs.yaml", CUSTOMER).expect("the customer fixture parses")
}

fn order_events() -> Contract {
    Contract::from_yaml("order_events.odcs.yaml", ORDER_EVENTS).expect("the order events fixture parses")
}

fn yaml_error(text: &str) -> (usize, usize, String) {
    match Contract::from_yaml("doc.yaml", text) {
        Err(Error::Yaml { document, line, column, message }) => {
            assert_eq!(document, "doc.yaml");
            (line, column, message)
        }
        other => panic!("expected a YAML error, got {other:?}"),
    }
}

/// A minimal valid document plus `extra` lines at the end.
fn minimal(extra: &str) -> String {
    format!("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: draft\n{extra}")
}

#[test]
fn fixtures_round_trip_without_loss() {
    for (name, text) in FIXTURES {
        let contract = Contract::from_yaml(name, text).expect("fixture parses");
        assert_eq!(contract.lint(), Vec::<Problem>::new(), "{name} lints clean");
        contract.validate().expect("fixture validates");
        let written = contract.to_yaml().expect("fixture writes");
        let again = Contract::from_yaml(name, &written).expect("written fixture parses");
        assert_eq!(again, contract, "{name}: parse -> to_yaml -> parse");
        let source: Value = serde_norway::from_str(text).expect("fixture is YAML");
        let model = contract.to_json_value().expect("fixture as JSON");
        assert_eq!(model, source, "{name}: the model keeps every key and value");
        let from_json = Contract::from_json_value(name, model).expect("fixture from JSON");
        assert_eq!(from_json, contract);
    }
}

#[test]
fn the_customer_contract_is_the_seed_product() {
    let c = customer();
    assert_eq!(c.id, "customer_data_v1");
    assert_eq!(c.name.as_deref(), Some("Customer Master Data"));
    assert_eq!(c.api_version, ApiVersion::V3_1_0);
    assert_eq!(c.tags, ["customer", "master_data", "core"]);
    let members = c.team.as_ref().map(Team::members).unwrap_or_default();
    assert_eq!(members[0].username, "customer_team@company.com");
    let kafka = &c.servers[0];
    assert_eq!((kafka.server_type, kafka.host.as_deref()), (ServerType::Kafka, Some("127.0.0.1:9092")));
    assert_eq!(kafka.topic(), Some("orders.events"));
    let customers = c.object("customers").expect("customers object");
    assert_eq!(customers.physical_name.as_deref(), Some("orders.events"));
    let names: Vec<&str> = customers.properties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "name", "email", "registration_date", "status", "segment"]);
    let required: Vec<&str> =
        customers.properties.iter().filter(|p| p.is_required()).map(|p| p.name.as_str()).collect();
    assert_eq!(required, ["customer_id", "name", "email"]);
    assert_eq!(customers.property("registration_date").and_then(|p| p.logical_type), Some(LogicalType::Date));
    let sla: Vec<(&str, &Value)> = c.sla_properties.iter().map(|s| (s.property.as_str(), &s.value)).collect();
    assert_eq!(sla, [("availability", &json!("99%")), ("latency", &json!(100)), ("freshness", &json!(1))]);
    assert_eq!(
        customers.property("status").and_then(SchemaProperty::valid_values),
        Some(&[json!("active"), json!("inactive")][..])
    );
}

#[test]
fn written_yaml_starts_with_the_identifying_keys() {
    let written = customer().to_yaml().expect("writes");
    let first: Vec<&str> = written.lines().take(6).map(|l| l.split(':').next().unwrap_or_default()).collect();
    assert_eq!(first, ["apiVersion", "kind", "id", "name", "version", "status"]);
}

#[test]
fn unknown_top_level_key_is_refused_with_its_position() {
    let (line, column, message) = yaml_error(&minimal("owner: me\n"));
    assert_eq!((line, column), (6, 1));
    assert!(message.starts_with("unknown key `owner`"), "{message}");
}

#[test]
fn unknown_nested_key_names_its_path_and_a_suggestion() {
    let text = minimal(
        "schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: string\n        \
         logicalTypeOptions:\n          maxLenght: 3\n",
    );
    let (line, column, message) = yaml_error(&text);
    assert_eq!((line, column), (12, 11));
    assert_eq!(
        message,
        "schema[0].properties[0].logicalTypeOptions: unknown key `maxLenght` (did you mean `maxLength`?)"
    );
}

#[test]
fn unknown_key_in_a_server_and_in_a_quality_rule() {
    let (line, _, message) =
        yaml_error(&minimal("servers:\n  - server: k\n    type: kafka\n    host: h\n    topic: t\n"));
    assert_eq!(line, 10);
    assert!(message.starts_with("servers[0]: unknown key `topic`"), "{message}");
    let (line, _, message) = yaml_error(&minimal(
        "schema:\n  - name: t\n    quality:\n      - type: library\n        metric: rowCount\n        mustBee: 1\n",
    ));
    assert_eq!(line, 11);
    assert_eq!(message, "schema[0].quality[0]: unknown key `mustBee` (did you mean `mustBe`?)");
}

#[test]
fn description_keeps_keys_the_standard_leaves_open() {
    let c = Contract::from_yaml("d", &minimal("description:\n  purpose: p\n  audience: analysts\n")).expect("parses");
    let d = c.description.as_ref().expect("description");
    assert_eq!(d.extra.get("audience"), Some(&json!("analysts")));
    assert!(c.to_yaml().expect("writes").contains("audience: analysts"));
}

#[test]
fn bad_yaml_reports_line_and_column() {
    let (line, column, message) =
        yaml_error("apiVersion: v3.1.0\nkind: DataContract\nschema:\n  - name: a\n   bad: [\n");
    assert_eq!((line, column), (5, 4));
    assert!(message.contains("did not find expected"), "{message}");
    assert!(!message.contains("at line 5 column 4"), "the position is not repeated: {message}");
    let (line, column, message) = yaml_error("apiVersion: v3.1.0\n\tkind: DataContract\n");
    assert!(message.contains("tab"), "{message}");
    assert_eq!((line, column), (2, 1));
}

#[test]
fn wrong_types_and_missing_keys_are_yaml_errors() {
    let (line, column, message) =
        yaml_error(&minimal("schema:\n  - name: t\n    properties:\n      - name: a\n        required: yes\n"));
    assert_eq!((line, column), (10, 19));
    assert!(
        message.starts_with("schema[0].properties[0].required: invalid type: string \"yes\", expected a boolean"),
        "{message}"
    );
    let (_, _, message) = yaml_error("apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\n");
    assert!(message.contains("missing field `status`"), "{message}");
    let (_, _, message) = yaml_error(&minimal("schema:\n  - properties: []\n"));
    assert!(message.starts_with("schema[0]: missing field `name`"), "{message}");
    let (_, _, message) =
        yaml_error(&minimal("schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: text\n"));
    assert!(message.contains("unknown variant `text`"), "{message}");
    let (_, _, message) = yaml_error(&minimal("servers:\n  - server: s\n    type: kafka\n    port: 99999\n"));
    assert!(message.starts_with("servers[0].port: invalid value"), "{message}");
}

#[test]
fn api_versions_three_zero_to_three_two_are_read_and_others_refused() {
    for v in ["v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0"] {
        let text = minimal("").replace("v3.1.0", v);
        let c = Contract::from_yaml("d", &text).expect("supported apiVersion");
        assert_eq!(c.api_version.as_str(), v);
        assert!(c.to_yaml().expect("writes").starts_with(&format!("apiVersion: {v}\n")));
    }
    for v in ["v2.2.2", "v3.3.0", "3.1.0"] {
        let (line, column, message) = yaml_error(&minimal("").replace("v3.1.0", v));
        assert_eq!((line, column), (1, 13));
        assert!(
            message.starts_with(&format!("apiVersion: unknown variant `{v}`, expected one of `v3.0.0`")),
            "{message}"
        );
    }
    let (_, _, message) = yaml_error(&minimal("").replace("DataContract", "DataProduct"));
    assert!(message.starts_with("kind: unknown variant `DataProduct`"), "{message}");
}

#[test]
fn v3_2_only_keys_are_refused_with_a_hint() {
    let text = minimal(
        "schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: string\n        enum: [x]\n",
    )
    .replace("v3.1.0", "v3.2.0");
    let (line, _, message) = yaml_error(&text);
    assert_eq!(line, 11);
    assert!(message.starts_with("schema[0].properties[0]: unknown key `enum` (an ODCS v3.2 key"), "{message}");
}

#[test]
fn team_takes_both_shapes_and_reports_errors_inside() {
    let obj =
        Contract::from_yaml("d", &minimal("team:\n  name: t\n  members:\n    - username: a\n")).expect("object team");
    assert!(matches!(obj.team, Some(Team::Object(_))));
    let list = Contract::from_yaml("d", &minimal("team:\n  - username: a\n    role: owner\n")).expect("list team");
    assert!(matches!(list.team, Some(Team::Members(ref m)) if m[0].role.as_deref() == Some("owner")));
    let (line, _, message) = yaml_error(&minimal("team:\n  - username: a\n    rol: owner\n"));
    assert_eq!(line, 8);
    assert!(message.starts_with("team[0]: unknown key `rol` (did you mean `role`?)"), "{message}");
    let (_, _, message) = yaml_error(&minimal("team: owners\n"));
    assert!(message.contains("expected a team object (with `members`) or a list of team members"), "{message}");
}

#[test]
fn bad_semver_is_a_lint_problem_and_an_invalid_version_error() {
    let mut c = customer();
    c.version = "1.0".into();
    let problems = c.lint();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "version");
    assert!(problems[0].message.starts_with("`1.0` is not a semantic version"), "{}", problems[0]);
    match c.validate() {
        Err(Error::InvalidVersion { value, .. }) => assert_eq!(value, "1.0"),
        other => panic!("expected InvalidVersion, got {other:?}"),
    }
    assert!(matches!(c.semver(), Err(Error::InvalidVersion { .. })));
    c.version = "2.1.0-rc.1".into();
    assert_eq!(c.semver().expect("pre-release is semver"), semver::Version::parse("2.1.0-rc.1").expect("semver"));
}

/// Lints `c` and expects a problem at `path` whose message contains `fragment`.
#[track_caller]
fn expect_problem(c: &Contract, path: &str, fragment: &str) {
    let problems = c.lint();
    assert!(
        problems.iter().any(|p| p.path == path && p.message.contains(fragment)),
        "expected `{path}: ...{fragment}...` among {problems:#?}"
    );
}

fn prop<'c>(c: &'c mut Contract, name: &str) -> &'c mut SchemaProperty {
    c.schema[0].properties.iter_mut().find(|p| p.name == name).expect("property exists")
}

fn library(metric: Metric) -> DataQuality {
    DataQuality { quality_type: Some(QualityType::Library), metric: Some(metric), ..DataQuality::default() }
}

#[test]
fn lint_identity_and_names() {
    let mut c = customer();
    c.id = " ".into();
    c.status = String::new();
    c.contract_created_ts = Some("yesterday".into());
    expect_problem(&c, "id", "must not be empty");
    expect_problem(&c, "status", "must not be empty");
    expect_problem(&c, "contractCreatedTs", "not an RFC 3339 date-time");

    let mut c = customer();
    c.schema[0].properties[3].name = "email".into();
    expect_problem(&c, "schema[0].properties[3].name", "`email` is already the name of schema[0].properties[2]");
    let extra = c.schema[0].clone();
    c.schema.push(extra);
    expect_problem(&c, "schema[1].name", "`customers` is already the name of schema[0]");
    c.schema[1].properties[0].name = String::new();
    expect_problem(&c, "schema[1].properties[0]", "a property needs a `name`");
    c.custom_properties.push(c.custom_properties[0].clone());
    expect_problem(&c, "customProperties[2].property", "`endpoints` is already set by customProperties[0]");
    c.servers[0].id = Some("has space".into());
    expect_problem(&c, "servers[0].id", "not a stable id");
}

#[test]
fn lint_keys() {
    let mut c = customer();
    prop(&mut c, "name").primary_key_position = Some(2);
    expect_problem(&c, "schema[0].properties[1].primaryKeyPosition", "only a primary key has a position");
    prop(&mut c, "customer_id").primary_key_position = Some(0);
    expect_problem(&c, "schema[0].properties[0].primaryKeyPosition", "0: positions start at 1");
    let mut c = customer();
    prop(&mut c, "name").primary_key = Some(true);
    prop(&mut c, "name").primary_key_position = Some(1);
    expect_problem(
        &c,
        "schema[0].properties[1].primaryKeyPosition",
        "position 1 is already taken by schema[0].properties[0]",
    );
    let mut c = customer();
    prop(&mut c, "segment").partition_key_position = Some(1);
    expect_problem(&c, "schema[0].properties[5].partitionKeyPosition", "only a partition column has a position");
    prop(&mut c, "segment").primary_key_position = Some(-1);
    assert!(!c.lint().iter().any(|p| p.path.ends_with("primaryKeyPosition")), "-1 means unset");
}

#[test]
fn lint_logical_type_options_fit_the_type() {
    let mut c = customer();
    let reg = prop(&mut c, "registration_date");
    reg.logical_type_options = Some(LogicalTypeOptions { min_length: Some(1), ..LogicalTypeOptions::default() });
    expect_problem(&c, "schema[0].properties[3].logicalTypeOptions.minLength", "does not apply to logicalType `date`");

    let mut c = customer();
    let name = prop(&mut c, "name");
    name.logical_type_options =
        Some(LogicalTypeOptions { min_length: Some(10), max_length: Some(5), ..LogicalTypeOptions::default() });
    expect_problem(&c, "schema[0].properties[1].logicalTypeOptions.maxLength", "5 is less than minLength 10");

    let mut c = customer();
    let mut age = SchemaProperty::new("age", LogicalType::Integer);
    age.logical_type_options = Some(LogicalTypeOptions {
        minimum: Some(Bound::Text("zero".into())),
        maximum: Some(Bound::Number((-1).into())),
        multiple_of: Some(0.into()),
        format: Some("i33".into()),
        pattern: Some("x".into()),
        ..LogicalTypeOptions::default()
    });
    c.schema[0].properties.push(age);
    let at = "schema[0].properties[6].logicalTypeOptions";
    expect_problem(&c, &format!("{at}.minimum"), "`zero` is not a number");
    expect_problem(&c, &format!("{at}.multipleOf"), "0 is not greater than 0");
    expect_problem(&c, &format!("{at}.format"), "`i33` is not one of i8, i16");
    expect_problem(&c, &format!("{at}.pattern"), "does not apply to logicalType `integer` (it takes: multipleOf");

    let mut c = customer();
    let reg = prop(&mut c, "registration_date");
    reg.logical_type_options = Some(LogicalTypeOptions {
        minimum: Some(Bound::Number(2020.into())),
        maximum: Some(Bound::Text("2020-02-30".into())),
        ..LogicalTypeOptions::default()
    });
    expect_problem(&c, "schema[0].properties[3].logicalTypeOptions.minimum", "2020 is not a date/time string");
    expect_problem(&c, "schema[0].properties[3].logicalTypeOptions.maximum", "`2020-02-30` is not an ISO 8601 date");
    prop(&mut c, "registration_date").logical_type_options =
        Some(LogicalTypeOptions { format: Some("dd.MM.yyyy QQ".into()), ..LogicalTypeOptions::default() });
    expect_problem(
        &c,
        "schema[0].properties[3].logicalTypeOptions.format",
        "not a date/time pattern the registry can check",
    );

    let mut c = customer();
    prop(&mut c, "segment").logical_type = Some(LogicalType::Boolean);
    prop(&mut c, "segment").logical_type_options =
        Some(LogicalTypeOptions { unique_items: Some(true), ..LogicalTypeOptions::default() });
    expect_problem(
        &c,
        "schema[0].properties[5].logicalTypeOptions.uniqueItems",
        "logicalType `boolean` takes no options",
    );
    expect_problem(&c, "schema[0].properties[5].examples[0]", "\"premium\" is not a value of logicalType `boolean`");
}

#[test]
fn lint_nesting_fits_the_type() {
    let mut c = customer();
    prop(&mut c, "segment").properties.push(SchemaProperty::new("x", LogicalType::String));
    prop(&mut c, "name").items = Some(Box::new(SchemaProperty::new("", LogicalType::String)));
    expect_problem(
        &c,
        "schema[0].properties[5].properties",
        "only a property with `logicalType: object` has nested properties",
    );
    expect_problem(&c, "schema[0].properties[1].items", "only a property with `logicalType: array` has `items`");

    let mut c = order_events();
    let customer = c.schema[0].properties.iter_mut().find(|p| p.name == "customer").expect("customer");
    customer.logical_type_options.as_mut().expect("options").required.push("phone".into());
    customer.properties[2].properties[0].name = "postal_code".into();
    expect_problem(&c, "schema[0].properties[9].logicalTypeOptions.required[1]", "`phone` is not a nested property");
    expect_problem(&c, "schema[0].properties[9].properties[2].properties[1].name", "`postal_code` is already the name");
}

#[test]
fn lint_quality_rules() {
    let mut c = customer();
    let mut two = library(Metric::NullValues);
    two.must_be = Some(json!(0));
    two.must_be_less_than = Some(1.into());
    prop(&mut c, "segment").quality.push(two);
    expect_problem(&c, "schema[0].properties[5].quality[0]", "needs exactly one of mustBe, mustNotBe");
    expect_problem(&c, "schema[0].properties[5].quality[0]", "it has mustBe, mustBeLessThan");

    let mut c = customer();
    prop(&mut c, "segment").quality.push(library(Metric::NullValues));
    expect_problem(&c, "schema[0].properties[5].quality[0]", "it has none");

    let mut c = customer();
    let mut between = library(Metric::NullValues);
    between.must_be_between = Some(vec![5.into(), 1.into()]);
    let mut short = library(Metric::NullValues);
    short.must_not_be_between = Some(vec![5.into()]);
    let mut text_must_be = library(Metric::NullValues);
    text_must_be.must_be = Some(json!("none"));
    let mut percent = library(Metric::NullValues);
    percent.unit = Some("percent".into());
    percent.must_be_less_than = Some(150.into());
    prop(&mut c, "segment").quality.extend([between, short, text_must_be, percent]);
    let at = "schema[0].properties[5].quality";
    expect_problem(&c, &format!("{at}[0].mustBeBetween"), "[5, 1]: the first number must be smaller than the second");
    expect_problem(&c, &format!("{at}[1].mustNotBeBetween"), "needs exactly two numbers [low, high]; it has 1");
    expect_problem(&c, &format!("{at}[2].mustBe"), "\"none\" is not a number");
    expect_problem(&c, &format!("{at}[3].mustBeLessThan"), "150 is not a percentage");

    let mut c = customer();
    let mut row_count = library(Metric::RowCount);
    row_count.must_be_greater_than = Some(0.into());
    prop(&mut c, "segment").quality.push(row_count);
    let mut nulls = library(Metric::NullValues);
    nulls.must_be = Some(json!(0));
    c.schema[0].quality.push(nulls);
    expect_problem(&c, "schema[0].properties[5].quality[0].metric", "rowCount is measured on a schema object");
    expect_problem(&c, "schema[0].quality[1].metric", "nullValues is measured on a property");

    let mut c = customer();
    let mut invalid = library(Metric::InvalidValues);
    invalid.must_be = Some(json!(0));
    invalid.query = Some("SELECT 1".into());
    prop(&mut c, "segment").quality.push(invalid);
    let sql = DataQuality { quality_type: Some(QualityType::Sql), must_be: Some(json!(0)), ..DataQuality::default() };
    let custom = DataQuality {
        quality_type: Some(QualityType::Custom),
        engine: Some("soda".into()),
        must_be: Some(json!(1)),
        ..DataQuality::default()
    };
    let text = DataQuality { quality_type: Some(QualityType::Text), ..DataQuality::default() };
    let untyped = DataQuality { query: Some("SELECT 1".into()), ..DataQuality::default() };
    c.schema[0].quality.extend([sql, custom, text, untyped]);
    expect_problem(&c, "schema[0].properties[5].quality[0].arguments", "needs `validValues` (a list) or `pattern`");
    expect_problem(
        &c,
        "schema[0].properties[5].quality[0].query",
        "`query` does not apply to a library rule (use `type: sql`)",
    );
    expect_problem(&c, "schema[0].quality[1]", "an sql rule needs a `query`");
    expect_problem(&c, "schema[0].quality[2]", "a custom rule needs an `implementation`");
    expect_problem(&c, "schema[0].quality[2].mustBe", "a custom rule has no threshold");
    expect_problem(&c, "schema[0].quality[3]", "a text rule needs a `description`");
    expect_problem(
        &c,
        "schema[0].quality[4].query",
        "`query` does not apply to a rule without `type` (use `type: sql`)",
    );

    let mut c = customer();
    let mut dup = library(Metric::DuplicateValues);
    dup.must_be = Some(json!(0));
    dup.arguments = Some(serde_json::Map::from_iter([("properties".to_string(), json!(["customer_id", "phone"]))]));
    c.schema[0].quality.push(dup);
    expect_problem(&c, "schema[0].quality[1].arguments.properties[1]", "\"phone\" is not a property of this object");
}

#[test]
fn lint_servers() {
    let mut c = customer();
    c.servers[0].database = Some("orders".into());
    expect_problem(&c, "servers[0].database", "not a key of a `kafka` server (it takes: host, format)");
    let postgres: Server = serde_json::from_value(json!({
        "server": "local", "type": "postgres", "host": "localhost", "database": "db", "location": "not a uri"
    }))
    .expect("server");
    c.servers.push(postgres);
    expect_problem(&c, "servers[1].server", "`local` is already the name of servers[0]");
    expect_problem(&c, "servers[1]", "a `postgres` server needs `port`");
    expect_problem(&c, "servers[1]", "a `postgres` server needs `schema`");
    expect_problem(&c, "servers[1].location", "not a key of a `postgres` server");
    c.servers[1].server_type = ServerType::Custom;
    expect_problem(&c, "servers[1].location", "`not a uri` is not a URI");
}

#[test]
fn lint_relationships_team_sla_and_api_version() {
    let mut c = customer();
    prop(&mut c, "email").relationships.push(Relationship {
        from: Some(References::One("customers.email".into())),
        to: Some(References::One("not a ref".into())),
        ..Relationship::default()
    });
    c.schema[0].relationships.push(Relationship {
        from: Some(References::Many(vec!["a.b".into(), "a.c".into()])),
        to: Some(References::Many(vec!["d.e".into()])),
        ..Relationship::default()
    });
    expect_problem(&c, "schema[0].properties[2].relationships[0].from", "has no `from`");
    expect_problem(&c, "schema[0].properties[2].relationships[0].to", "`not a ref` is neither `object.property`");
    expect_problem(&c, "schema[0].relationships[0]", "`from` has 2 references and `to` 1");

    let mut c = customer();
    if let Some(Team::Object(team)) = &mut c.team {
        team.members[0].date_in = Some("2024-02-30".into());
    }
    c.sla_properties[0].element = Some("customers.phone".into());
    c.sla_properties[1].value = json!([100]);
    expect_problem(&c, "team.members[0].dateIn", "`2024-02-30` is not a date");
    expect_problem(&c, "slaProperties[0].element", "`customers.phone` names no schema object or property");
    expect_problem(&c, "slaProperties[1].value", "must be a string, number, boolean or null");

    let mut c = customer();
    c.api_version = ApiVersion::V3_0_2;
    prop(&mut c, "registration_date").logical_type = Some(LogicalType::Timestamp);
    expect_problem(
        &c,
        "schema[0].properties[3].logicalType",
        "logicalType `timestamp` needs apiVersion v3.1.0 or later",
    );
    expect_problem(&c, "team", "a team object (`members`) needs apiVersion v3.1.0 or later");
    expect_problem(&c, "schema[0].quality[0].metric", "`metric` needs apiVersion v3.1.0");
}

#[test]
fn validate_returns_the_first_problem_as_invalid_contract() {
    let mut c = customer();
    c.servers[0].port = Some(5432);
    c.servers[0].database = Some("x".into());
    match c.validate() {
        Err(Error::InvalidContract { contract, path, reason }) => {
            assert_eq!((contract.as_str(), path.as_str()), ("customer_data_v1", "servers[0].port"));
            assert!(reason.starts_with("not a key of a `kafka` server"), "{reason}");
        }
        other => panic!("expected InvalidContract, got {other:?}"),
    }
}

fn compiled_customers() -> CompiledSchema {
    let mut compiled = customer().compile().expect("compiles");
    assert_eq!(compiled.len(), 1);
    compiled.remove(0)
}

fn seed_customer() -> Value {
    json!({
        "customer_id": "cust_001",
        "name": "张三",
        "email": "zhangsan@example.com",
        "registration_date": "2023-01-01",
        "status": "active",
        "segment": "premium"
    })
}

#[test]
fn customer_schema_compiles_to_the_expected_json_schema() {
    let schema = customer().schema[0].to_json_schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["customer_id", "name", "email"]));
    let p = &schema["properties"];
    assert_eq!(
        p["customer_id"],
        json!({"type": "string", "minLength": 1, "maxLength": 64, "description": "Stable customer identifier."})
    );
    assert_eq!(p["email"]["format"], "email");
    assert_eq!(p["registration_date"]["type"], json!(["string", "null"]));
    assert_eq!(p["registration_date"]["format"], "date");
    assert_eq!(p["status"]["enum"], json!(["active", "inactive", null]));
    assert!(schema.get("additionalProperties").is_none(), "unknown fields are allowed");
    let compiled = compiled_customers();
    assert_eq!((compiled.contract(), compiled.object()), ("customer_data_v1", "customers"));
    assert_eq!(compiled.physical_name(), Some("orders.events"));
    assert_eq!(compiled.required(), ["customer_id", "name", "email"]);
    assert_eq!(compiled.json_schema(), &schema);
}

#[test]
fn customer_records_are_validated() {
    let compiled = compiled_customers();
    let good = seed_customer();
    assert!(compiled.is_valid(&good));
    assert!(compiled.errors(&good, 10).is_empty());

    let mut optional_absent = seed_customer();
    optional_absent
        .as_object_mut()
        .expect("object")
        .retain(|k, _| ["customer_id", "name", "email"].contains(&k.as_str()));
    optional_absent["loyalty_points"] = json!(12);
    assert!(compiled.is_valid(&optional_absent), "optional fields may be absent, unknown ones present");
    let mut nulls = seed_customer();
    nulls["status"] = Value::Null;
    nulls["registration_date"] = Value::Null;
    assert!(compiled.is_valid(&nulls), "optional fields may be null");

    let cases: [(&str, Value, &str); 6] = [
        ("email", Value::Null, "/email"),
        ("name", json!(5), "/name"),
        ("registration_date", json!("2023-13-01"), "/registration_date"),
        ("email", json!("not-an-email"), "/email"),
        ("status", json!("deleted"), "/status"),
        ("customer_id", json!(""), "/customer_id"),
    ];
    for (field, value, pointer) in cases {
        let mut bad = seed_customer();
        bad[field] = value.clone();
        assert!(!compiled.is_valid(&bad), "{field} = {value} is refused");
        let errors = compiled.errors(&bad, 5);
        assert!(errors.iter().any(|e| e.starts_with(&format!("{pointer}: "))), "{field} = {value}: {errors:?}");
    }
    let mut missing = seed_customer();
    missing.as_object_mut().expect("object").remove("email");
    assert!(!compiled.is_valid(&missing));
    assert_eq!(compiled.errors(&missing, 5), ["/: \"email\" is a required property"]);
    assert!(!compiled.is_valid(&json!(["not", "an", "object"])));

    let mut many = json!({"name": 1, "email": 2, "status": 3});
    assert_eq!(compiled.errors(&many, 2).len(), 2, "errors stop at the limit");
    many["customer_id"] = json!("c");
    assert!(compiled.errors(&many, 100).len() >= 3);
}

#[test]
fn order_event_records_are_validated() {
    let compiled = order_events().compile().expect("compiles");
    let event = &compiled[0];
    let good = json!({
        "event_id": "0190f5e4-7c4b-7a3e-9d1e-1f2a3b4c5d6e",
        "order_id": "ord_0a1b2c3d",
        "type": "OrderPaid",
        "occurred_at": "2024-05-01T12:00:00Z",
        "business_day": "2024-05-01",
        "delivery_window_start": "09:30:00",
        "total_minor": 39997,
        "discount_rate": 0.15,
        "gift": false,
        "customer": {"customer_id": "cust_001", "email": null, "address": {"city": "Berlin", "postal_code": "10115"}},
        "lines": [{"sku": "A-1", "quantity": 2}],
        "labels": ["gift"]
    });
    assert!(event.is_valid(&good), "{:?}", event.errors(&good, 10));
    let cases: [(&str, Value); 12] = [
        ("/event_id", json!("not-a-uuid")),
        ("/order_id", json!("ord_XYZ")),
        ("/type", json!("OrderLost")),
        ("/occurred_at", json!("2024-05-01 12:00")),
        ("/business_day", json!("01.05.2024")),
        ("/delivery_window_start", json!("25:00:00")),
        ("/total_minor", json!(-1)),
        ("/total_minor", json!(1.5)),
        ("/discount_rate", json!(1.0)),
        ("/customer/customer_id", Value::Null),
        ("/lines", json!([])),
        ("/labels", json!(["a", "a"])),
    ];
    for (pointer, value) in cases {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).expect("pointer exists") = value.clone();
        assert!(!event.is_valid(&bad), "{pointer} = {value} is refused");
        let errors = event.errors(&bad, 5);
        assert!(errors.iter().any(|e| e.starts_with(pointer)), "{pointer} = {value}: {errors:?}");
    }
    let mut no_sku = good.clone();
    no_sku["lines"][0].as_object_mut().expect("line").remove("sku");
    assert!(!event.is_valid(&no_sku));
    let mut no_customer_id = good.clone();
    no_customer_id["customer"].as_object_mut().expect("customer").remove("customer_id");
    assert!(!event.is_valid(&no_customer_id));
}

#[test]
fn temporal_options_compile_to_formats_and_patterns() {
    let mut object = SchemaObject { name: "t".into(), ..SchemaObject::default() };
    let with = |name: &str, lt, options: LogicalTypeOptions| SchemaProperty {
        logical_type_options: Some(options),
        required: Some(true),
        ..SchemaProperty::new(name, lt)
    };
    let none = LogicalTypeOptions::default;
    object.properties = vec![
        with("local_ts", LogicalType::Timestamp, LogicalTypeOptions { timezone: Some(false), ..none() }),
        with(
            "custom_ts",
            LogicalType::Timestamp,
            LogicalTypeOptions { format: Some("yyyy-MM-dd HH:mm:ss".into()), ..none() },
        ),
        with("zoned_time", LogicalType::Time, LogicalTypeOptions { timezone: Some(true), ..none() }),
        with("small", LogicalType::Integer, LogicalTypeOptions { format: Some("u8".into()), ..none() }),
        with("single", LogicalType::Number, LogicalTypeOptions { format: Some("f32".into()), ..none() }),
    ];
    let compiled = CompiledSchema::compile("c", &object).expect("compiles");
    let good = json!({
        "local_ts": "2024-05-01T10:00:00.123",
        "custom_ts": "2024-05-01 10:00:00",
        "zoned_time": "10:00:00+02:00",
        "small": 255,
        "single": 1.5
    });
    assert!(compiled.is_valid(&good), "{:?}", compiled.errors(&good, 10));
    for (field, value) in [
        ("local_ts", json!("2024-05-01T10:00:00Z")),
        ("custom_ts", json!("2024-05-01T10:00:00")),
        ("zoned_time", json!("10:00:00")),
        ("small", json!(256)),
        ("single", json!(1e39)),
    ] {
        let mut bad = good.clone();
        bad[field] = value.clone();
        assert!(!compiled.is_valid(&bad), "{field} = {value}");
    }
}

#[test]
fn strict_quality_rules_compile_to_record_constraints() {
    let mut c = customer();
    let mut pattern = library(Metric::InvalidValues);
    pattern.must_be = Some(json!(0));
    pattern.arguments = Some(serde_json::Map::from_iter([("pattern".to_string(), json!("^[a-z]+$"))]));
    let mut missing = library(Metric::MissingValues);
    missing.must_be = Some(json!(0));
    missing.arguments = Some(serde_json::Map::from_iter([("missingValues".to_string(), json!(["n/a", null]))]));
    prop(&mut c, "segment").quality.extend([pattern, missing]);
    let compiled = c.compile().expect("compiles").remove(0);
    let mut record = seed_customer();
    assert!(compiled.is_valid(&record));
    for value in [json!("Premium"), json!("n/a"), Value::Null] {
        record["segment"] = value.clone();
        assert!(!compiled.is_valid(&record), "segment = {value}");
    }
    // A tolerant rule (up to 5% missing) is measured over the stream, not per record.
    let mut email = seed_customer();
    email["email"] = json!("");
    assert!(!compiled.is_valid(&email), "but the email format still refuses an empty string");
}

#[test]
fn a_required_property_without_a_type_refuses_null_only() {
    let object = SchemaObject {
        name: "t".into(),
        properties: vec![
            SchemaProperty { name: "any".into(), required: Some(true), ..SchemaProperty::default() },
            SchemaProperty { name: "maybe".into(), ..SchemaProperty::default() },
        ],
        ..SchemaObject::default()
    };
    let compiled = CompiledSchema::compile("c", &object).expect("compiles");
    for value in [json!(1), json!("x"), json!({"a": [1]})] {
        assert!(compiled.is_valid(&json!({"any": value, "maybe": null})));
    }
    assert!(!compiled.is_valid(&json!({"any": null})));
    assert!(!compiled.is_valid(&json!({"maybe": 1})));
}

#[test]
fn an_invalid_pattern_is_a_schema_compile_error() {
    let mut c = customer();
    prop(&mut c, "segment").logical_type_options =
        Some(LogicalTypeOptions { pattern: Some("[a-".into()), ..LogicalTypeOptions::default() });
    assert!(c.lint().is_empty(), "the lint leaves patterns to the compiler");
    match c.compile() {
        Err(Error::SchemaCompile { contract, object, reason }) => {
            assert_eq!((contract.as_str(), object.as_str()), ("customer_data_v1", "customers"));
            assert!(reason.contains("[a-"), "{reason}");
        }
        other => panic!("expected SchemaCompile, got {other:?}"),
    }
}

#[test]
fn jdk_patterns_translate_to_anchored_regexes() {
    let re = |p: &str| regex::Regex::new(&jdk_pattern_to_regex(p).expect("translates")).expect("valid regex");
    let iso = re("yyyy-MM-dd'T'HH:mm:ss.SSSXXX");
    assert!(iso.is_match("2024-05-01T10:00:00.123+02:00"));
    assert!(iso.is_match("2024-05-01T10:00:00.123Z"));
    assert!(!iso.is_match("2024-05-01T10:00:00+02:00"));
    let german = re("dd.MM.yyyy");
    assert!(german.is_match("01.05.2024") && !german.is_match("01-05-2024") && !german.is_match("32.05.2024"));
    let quoted = re("'at' h:mm a, 'o''clock'");
    assert!(quoted.is_match("at 9:05 PM, o'clock"));
    assert_eq!(jdk_pattern_to_regex("yyyy-QQ"), None);
    assert_eq!(jdk_pattern_to_regex("'open"), None);
    assert_eq!(jdk_pattern_to_regex("dddd"), None);
}
