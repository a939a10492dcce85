//! `platform lake` as a user runs it on a fresh `--data`: files in, a bad
//! file rejected without failing the run, history, objects, optimize and
//! vacuum as JSON, and precise errors for unknown tables and bad SQL.

use std::process::{Command, Output};

use serde_json::Value;

fn platform(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platform")).args(args).arg("--data").arg(data).output().expect("platform runs")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn the_lake_cli_ingests_inspects_compacts_and_explains_errors() {
    let data = std::env::temp_dir().join(format!("lake-cli-{}", uuid::Uuid::now_v7().simple()));
    let landing = data.join("lake/landing/sales");
    std::fs::create_dir_all(&landing).expect("dirs");
    for day in 1..=3 {
        std::fs::write(landing.join(format!("day{day}.csv")), format!("order,amount\n{day},1{day}.50\n"))
            .expect("write");
    }
    std::fs::write(landing.join("broken.csv"), "order,amount\n1,2,3,4\n").expect("write");

    let outcomes = json(&platform(&data, &["lake", "ingest", "--format", "json"]));
    let statuses: Vec<&str> = outcomes.as_array().expect("list").iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "ingested").count(), 3, "{outcomes}");
    assert_eq!(statuses.iter().filter(|s| **s == "rejected").count(), 1, "{outcomes}");
    assert!(data.join("lake/landing/rejected/sales/broken.csv.reason.json").exists());

    let history = json(&platform(&data, &["lake", "history", "bronze.sales", "--format", "json"]));
    assert_eq!(history.as_array().map(Vec::len), Some(4), "creation and three writes: {history}");
    let objects = json(&platform(&data, &["lake", "objects", "bronze.sales", "--format", "json"]));
    assert_eq!(objects.as_array().map(Vec::len), Some(3));

    let optimized = json(&platform(&data, &["lake", "optimize", "bronze.sales", "--format", "json"]));
    assert_eq!((optimized["files_removed"].as_u64(), optimized["files_added"].as_u64()), (Some(3), Some(1)));
    let dry = json(&platform(
        &data,
        &["lake", "vacuum", "bronze.sales", "--retention-hours", "0", "--dry-run", "--format", "json"],
    ));
    assert_eq!(dry["files_deleted"].as_array().map(Vec::len), Some(3), "{dry}");
    let total = json(&platform(
        &data,
        &["lake", "sql", "SELECT CAST(SUM(amount) AS DOUBLE) AS total FROM bronze.sales", "--format", "json"],
    ));
    assert_eq!(total[0]["total"].as_f64(), Some(11.5 + 12.5 + 13.5));

    let unknown = platform(&data, &["lake", "history", "silver.nope"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("unknown table `silver.nope`; known tables: bronze.sales"), "{err}");
    assert!(err.contains("hint: `platform lake tables`"), "{err}");
    let bad = platform(&data, &["lake", "sql", "SELEC 1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).starts_with("error: sql:"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::remove_dir_all(&data).ok();
}
