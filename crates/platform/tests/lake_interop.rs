//! The demo's Delta tables are readable by other engines: the Python
//! `deltalake` package opens every table at the version `platform lake
//! tables` reports with the same row counts, and DuckDB reading the
//! Parquet files of the gold tables' current versions computes the same
//! numbers as `platform lake sql`. (`LAKE_PYTHON` names a Python with
//! deltalake and duckdb; `cargo xtask test` provides one.)

use std::process::Command;

use serde_json::Value;

fn platform(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_platform")).args(args).output().expect("platform runs");
    assert!(out.status.success(), "platform {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn other_engines_read_the_demo_tables_and_agree() {
    let python = std::env::var("LAKE_PYTHON").unwrap_or_else(|_| {
        panic!("LAKE_PYTHON is not set: run the tests with `cargo xtask test`, which installs deltalake and duckdb")
    });
    let out = std::env::temp_dir().join(format!("lake-interop-{}", uuid::Uuid::now_v7().simple()));
    let out_s = out.display().to_string();
    platform(&["demo", "--out", &out_s, "--format", "json"]);
    let data = out.join("data");
    let data_s = data.display().to_string();
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary")).expect("json");
    let dl = &summary["scenarios"]["demo_data_lake_modeling"];
    assert_eq!(dl["total_objects"], 3, "{dl}");
    assert_eq!(dl["total_partitions"], 3, "{dl}");
    assert_eq!(dl["gold_statistics"]["total_records"], 3, "{dl}");
    assert_eq!(dl["gold_layer_objects"].as_array().map(Vec::len), Some(1));

    let tables_text = platform(&["lake", "tables", "--format", "json", "--data", &data_s]);
    let tables: Value = serde_json::from_str(&tables_text).expect("tables json");
    let names: Vec<&str> = tables.as_array().expect("list").iter().filter_map(|t| t["table"].as_str()).collect();
    for wanted in [
        "bronze.events",
        "bronze.customers",
        "silver.orders",
        "silver.order_items",
        "silver.account_ledger",
        "silver.telemetry",
        "silver.quarantine",
        "gold.revenue_per_product_day",
        "gold.orders_by_status_day",
        "gold.account_balances_day",
        "gold.lake_statistics",
        "gold.customer_statistics",
    ] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    let tables_file = out.join("tables.json");
    std::fs::write(&tables_file, &tables_text).expect("write");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake_interop.py");
    let run = Command::new(&python).arg(script).arg(data.join("lake")).arg(&tables_file).output().expect("python runs");
    assert!(run.status.success(), "python: {}", String::from_utf8_lossy(&run.stderr));
    let seen: Value = serde_json::from_slice(&run.stdout).expect("python json");
    for t in tables.as_array().expect("list") {
        let name = t["table"].as_str().expect("name");
        assert_eq!(seen["rows"][name], t["rows"], "{name}: rows by deltalake (Python) vs platform lake tables");
    }
    let bronze_rows = tables.as_array().expect("list").iter().find(|t| t["table"] == "bronze.events").expect("bronze")
        ["rows"]
        .as_u64()
        .expect("n");
    assert!(bronze_rows > 1_000, "the demo's events reached bronze ({bronze_rows})");

    // Gold numbers: DuckDB over the Parquet files vs DataFusion over the Delta tables.
    for (name, figures) in seen["gold"].as_object().expect("gold") {
        let columns: Vec<&String> = figures.as_object().expect("figures").keys().filter(|k| *k != "count").collect();
        let sums: Vec<String> = columns.iter().map(|c| format!("CAST(SUM(\"{c}\") AS DOUBLE) AS \"{c}\"")).collect();
        let sql = format!(
            "SELECT COUNT(*) AS count{}{} FROM {name}",
            if sums.is_empty() { "" } else { ", " },
            sums.join(", ")
        );
        let ours: Value =
            serde_json::from_str(&platform(&["lake", "sql", &sql, "--format", "json", "--data", &data_s]))
                .expect("sql json");
        let row = &ours[0];
        assert_eq!(row["count"].as_f64(), figures["count"].as_f64(), "{name}: row count");
        for c in columns {
            let (a, b) = (row[c.as_str()].as_f64(), figures[c.as_str()].as_f64());
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{name}.{c}: ours {a}, DuckDB {b}")
                }
                (a, b) => assert_eq!(a, b, "{name}.{c}"),
            }
        }
    }
    std::fs::remove_dir_all(&out).ok();
}
