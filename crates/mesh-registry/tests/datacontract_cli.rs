//! Interoperability with datacontract-cli (PyPI), the reference tool of the
//! ODCS ecosystem: contracts the registry exports pass `datacontract lint`,
//! a broken export fails it, and contracts the CLI writes are read and
//! written back by the registry without loss.
//!
//! `cargo xtask test` installs the CLI (pinned) into a venv in the cache and
//! sets `DATACONTRACT_CLI`; these tests refuse to run without it rather than
//! pass silently.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_registry::Error;
use mesh_registry::contract::Contract;
use serde_json::Value;

fn cli() -> PathBuf {
    match std::env::var_os("DATACONTRACT_CLI") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("DATACONTRACT_CLI not set: run `cargo xtask test`"),
    }
}

/// A fresh directory for one test's files.
fn workdir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("datacontract_cli").join(test);
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("clearing the work directory");
    }
    fs::create_dir_all(&dir).expect("creating the work directory");
    dir
}

/// Runs the CLI in `dir`; wide, plain output so messages are not wrapped.
fn datacontract(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli())
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "250")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli().display()))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `datacontract lint FILE`: whether it passed, and what it printed.
fn lint(dir: &Path, file: &str) -> (bool, String) {
    let out = datacontract(dir, &["lint", file]);
    let printed = text(&out);
    let valid = printed.contains("Data contract is valid");
    assert_eq!(out.status.success(), valid, "exit status and verdict agree: {printed}");
    (valid, printed)
}

/// The contract the orders context announces (the first document of its
/// product file), and the registry's test contracts.
fn fixtures() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let announced = fs::read_to_string(root.join("../orders/contracts/customer_data_v1.yaml")).expect("orders' file");
    let announced = announced.split("\n---\n").next().expect("the contract document").to_owned();
    let mut files = Vec::new();
    let mut tests: Vec<PathBuf> = fs::read_dir(root.join("tests/contracts"))
        .expect("tests/contracts")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".odcs.yaml"))
        .collect();
    tests.sort();
    files.extend(tests);
    let mut out = vec![("orders_customer_data_v1.odcs.yaml".to_owned(), announced)];
    out.extend(files.into_iter().map(|p| {
        let name = p.file_name().expect("file name").to_string_lossy().into_owned();
        (name, fs::read_to_string(&p).expect("fixture readable"))
    }));
    out
}

/// Reads `text` with the registry, writes it back, and checks that nothing
/// was lost: the written document holds the same tree as the source, and
/// reads back as the same contract.
fn assert_round_trip(name: &str, text: &str) -> Contract {
    let contract = Contract::from_yaml(name, text).unwrap_or_else(|e| panic!("{name}: the registry reads it: {e}"));
    let written = contract.to_yaml().expect("writes");
    let source: Value = serde_norway::from_str(text).expect("source is YAML");
    let exported: Value = serde_norway::from_str(&written).expect("export is YAML");
    assert_eq!(exported, source, "{name}: the export holds every key and value of the source\n{written}");
    let again = Contract::from_yaml(name, &written).expect("the export reads back");
    assert_eq!(again, contract, "{name}: read -> write -> read");
    contract
}

#[test]
fn exported_fixtures_pass_datacontract_lint() {
    let dir = workdir("exported_fixtures");
    let fixtures = fixtures();
    assert!(fixtures.len() >= 3, "{} fixtures", fixtures.len());
    std::thread::scope(|scope| {
        for (name, source) in &fixtures {
            let dir = &dir;
            scope.spawn(move || {
                let contract = Contract::from_yaml(name, source).expect("fixture parses");
                assert_eq!(contract.lint(), Vec::new(), "{name} lints clean in the registry");
                fs::write(dir.join(name), contract.to_yaml().expect("writes")).expect("export written");
                let (valid, printed) = lint(dir, name);
                assert!(valid, "{name}: datacontract lint refused the export:\n{printed}");
                let schema = format!("against ODCS {}", contract.api_version);
                assert!(printed.contains(&schema), "{name}: linted {schema}:\n{printed}");
            });
        }
    });
}

#[test]
fn broken_exports_fail_datacontract_lint_and_the_registry() {
    let dir = workdir("broken_exports");
    let fixtures = fixtures();
    let source =
        &fixtures.iter().find(|(n, _)| n == "customer_master.odcs.yaml").expect("the customer master fixture").1;
    let good = Contract::from_yaml("customer", source).expect("fixture parses").to_yaml().expect("writes");
    // What YAML parsing already refuses, and what only the lint refuses. (The CLI
    // drops `unevaluatedProperties` from the schema, so it accepts keys of another
    // server type, such as `database` on a kafka server; the registry's lint does not.)
    let parse_errors = [
        ("unknown_key.yaml", format!("{good}owner: customer_team\n"), "owner"),
        ("bad_type.yaml", good.replacen("logicalType: date", "logicalType: datum", 1), "datum"),
        ("no_status.yaml", good.replacen("status: active\n", "", 1), "status"),
    ];
    let lint_errors = [
        (
            "between_one_number.yaml",
            good.replacen("    mustBeGreaterThan: 0\n", "    mustBeBetween:\n    - 1\n", 1),
            "schema[0].quality[0].mustBeBetween",
        ),
        (
            "two_operators.yaml",
            good.replacen("    mustBeGreaterThan: 0\n", "    mustBeGreaterThan: 0\n    mustBeLessThan: 10\n", 1),
            "schema[0].quality[0]",
        ),
    ];
    for (file, text, _) in parse_errors.iter().chain(&lint_errors) {
        assert_ne!(text, &good, "{file}: the edit applied");
        fs::write(dir.join(file), text).expect("broken export written");
    }
    std::thread::scope(|scope| {
        for (file, text, key) in &parse_errors {
            let dir = &dir;
            scope.spawn(move || {
                match Contract::from_yaml(file, text) {
                    Err(Error::Yaml { message, .. }) => assert!(message.contains(key), "{file}: {message}"),
                    other => panic!("{file}: expected a YAML error, got {other:?}"),
                }
                let (valid, printed) = lint(dir, file);
                assert!(!valid, "{file}: datacontract lint accepted a broken contract:\n{printed}");
                assert!(printed.contains(key), "{file}: the CLI names `{key}`:\n{printed}");
            });
        }
        for (file, text, path) in &lint_errors {
            let dir = &dir;
            scope.spawn(move || {
                let contract = Contract::from_yaml(file, text).expect("fits the model");
                let problems = contract.lint();
                assert!(
                    problems.iter().any(|p| p.path == *path),
                    "{file}: the registry lint flags {path}: {problems:?}"
                );
                let (valid, printed) = lint(dir, file);
                assert!(!valid, "{file}: datacontract lint accepted a broken contract:\n{printed}");
            });
        }
    });
}

const SQL_DDL: &str = "\
CREATE TABLE customers (
  customer_id VARCHAR(64) NOT NULL PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  email VARCHAR(320) NOT NULL,
  registration_date DATE,
  status VARCHAR(16),
  segment TEXT,
  lifetime_value DECIMAL(12, 2),
  visits INTEGER,
  vip BOOLEAN,
  updated_at TIMESTAMP
);
CREATE TABLE customer_notes (
  note_id BIGINT NOT NULL,
  customer_id VARCHAR(64) NOT NULL,
  body TEXT,
  PRIMARY KEY (note_id, customer_id)
);
";

const JSON_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OrderPlaced",
  "description": "An order was placed.",
  "type": "object",
  "properties": {
    "order_id": {"type": "string", "format": "uuid", "description": "The order."},
    "customer_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "total": {"type": "number", "minimum": 0},
    "items": {"type": "integer", "minimum": 1, "maximum": 500},
    "placed_at": {"type": "string", "format": "date-time"},
    "note": {"type": "string", "pattern": "^[^<>]*$"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "shipping_address": {
      "type": "object",
      "properties": {"city": {"type": "string"}, "postal_code": {"type": "string", "maxLength": 10}},
      "required": ["city"]
    }
  },
  "required": ["order_id", "customer_id", "total"]
}"#;

const JSON_SAMPLE: &str = r#"{"reading_id": "r-1", "sensor": "temp-01", "value": 21.5, "count": 3, "ok": true,
"day": "2024-05-01", "location": {"room": "lab"}, "labels": ["indoor"]}"#;

/// A contract in datacontract.com's older format (DCS), for `export odcs`.
const DCS: &str = "\
dataContractSpecification: 1.2.1
id: shipments
info:
  title: Shipments
  version: 1.4.0
  status: active
  owner: logistics
  description: Shipments of orders.
servers:
  production:
    type: kafka
    host: 127.0.0.1:9092
    topic: logistics.shipments
    format: json
terms:
  usage: Internal analytics.
models:
  shipments:
    description: One shipment.
    type: table
    fields:
      shipment_id:
        type: string
        format: uuid
        required: true
        primaryKey: true
      weight_grams:
        type: integer
        minimum: 1
      shipped_at:
        type: timestamp
        required: true
      parcels:
        type: array
        items:
          type: string
    quality:
      - type: sql
        description: No shipment weighs nothing.
        query: SELECT COUNT(*) FROM shipments WHERE weight_grams = 0
        mustBe: 0
servicelevels:
  freshness:
    threshold: 1h
    timestampField: shipments.shipped_at
";

#[test]
fn contracts_written_by_datacontract_cli_import_and_export_without_loss() {
    let dir = workdir("cli_written");
    fs::write(dir.join("customers.sql"), SQL_DDL).expect("ddl");
    fs::write(dir.join("order_placed.schema.json"), JSON_SCHEMA).expect("json schema");
    fs::write(dir.join("reading.json"), JSON_SAMPLE).expect("json sample");
    fs::write(dir.join("shipments.dcs.yaml"), DCS).expect("dcs");
    // The registry's own export, as the CLI reads and rewrites it.
    let order_events = fixtures().into_iter().find(|(n, _)| n == "order_events.odcs.yaml").expect("fixture").1;
    let exported =
        Contract::from_yaml("order_events", &order_events).expect("fixture parses").to_yaml().expect("writes");
    fs::write(dir.join("order_events.odcs.yaml"), exported).expect("export written");
    let sources: [(&str, Vec<&str>); 6] = [
        (
            "sql.yaml",
            vec!["import", "sql", "--source", "customers.sql", "--dialect", "postgres", "--output", "sql.yaml"],
        ),
        (
            "jsonschema.yaml",
            vec!["import", "jsonschema", "--source", "order_placed.schema.json", "--output", "jsonschema.yaml"],
        ),
        ("json.yaml", vec!["import", "json", "--source", "reading.json", "--output", "json.yaml"]),
        ("init.yaml", vec!["init", "init.yaml"]),
        ("from_dcs.yaml", vec!["export", "odcs", "shipments.dcs.yaml", "--output", "from_dcs.yaml"]),
        ("from_registry.yaml", vec!["export", "odcs", "order_events.odcs.yaml", "--output", "from_registry.yaml"]),
    ];
    std::thread::scope(|scope| {
        for (file, args) in &sources {
            let dir = &dir;
            scope.spawn(move || {
                let out = datacontract(dir, args);
                assert!(out.status.success(), "datacontract {}: {}", args.join(" "), text(&out));
                let written = fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
                let contract = assert_round_trip(file, &written);
                assert!(!contract.id.is_empty());
                let problems = contract.lint();
                assert_eq!(problems, Vec::new(), "{file}: the registry lint accepts what the CLI writes");
                contract.compile().unwrap_or_else(|e| panic!("{file}: compiles: {e}"));
                // The registry's export of it still passes the CLI.
                let again = format!("again_{file}");
                fs::write(dir.join(&again), contract.to_yaml().expect("writes")).expect("re-export");
                let (valid, printed) = lint(dir, &again);
                assert!(valid, "{again}: {printed}");
            });
        }
    });
    // What each import produced, as the registry reads it.
    let read = |file: &str| {
        let text = fs::read_to_string(dir.join(file)).expect("written");
        Contract::from_yaml(file, &text).expect("reads")
    };
    let sql = read("sql.yaml");
    let customers = sql.object("customers").expect("customers table");
    let required: Vec<&str> =
        customers.properties.iter().filter(|p| p.is_required()).map(|p| p.name.as_str()).collect();
    assert_eq!(required, ["customer_id", "name", "email"]);
    assert!(
        sql.object("customer_notes").is_some_and(|o| o
            .properties
            .iter()
            .filter(|p| p.primary_key == Some(true))
            .count()
            == 2)
    );
    let registry = read("from_registry.yaml");
    let original =
        Contract::from_yaml("order_events", &fs::read_to_string(dir.join("order_events.odcs.yaml")).expect("copy"))
            .expect("reads");
    assert_eq!(registry, original, "the CLI's rewrite of the registry's export is the same contract");
    let shipments = read("from_dcs.yaml");
    assert_eq!(shipments.servers[0].topic(), Some("logistics.shipments"));
}

#[test]
fn v3_2_keys_the_cli_writes_are_refused_precisely() {
    let dir = workdir("v3_2_keys");
    let dcs = DCS.replace(
        "      weight_grams:\n",
        "      carrier:\n        type: string\n        enum: [dhl, ups]\n      weight_grams:\n",
    );
    fs::write(dir.join("enum.dcs.yaml"), dcs).expect("dcs");
    let out = datacontract(&dir, &["export", "odcs", "enum.dcs.yaml", "--output", "enum.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let written = fs::read_to_string(dir.join("enum.yaml")).expect("written");
    assert!(written.contains("apiVersion: v3.2.0") && written.contains("enum:"), "{written}");
    match Contract::from_yaml("enum.yaml", &written) {
        Err(Error::Yaml { line, message, .. }) => {
            assert_eq!(written.lines().nth(line - 1).map(str::trim), Some("enum:"), "the line of the key");
            assert!(message.contains("unknown key `enum` (an ODCS v3.2 key"), "{message}");
        }
        other => panic!("expected a YAML error naming `enum`, got {other:?}"),
    }
}
