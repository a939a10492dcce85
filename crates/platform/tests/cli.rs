//! `platform` as a user runs it on a fresh `--data`. The lake: files in, a
//! bad file rejected without failing the run, history, objects, optimize
//! and vacuum as JSON, and precise errors for unknown tables and bad SQL.
//! The orders read model: daily counts, and its projection's status,
//! rebuild and resume, with precise errors for unknown names and for a
//! resume of a projection that is not parked. The time-series store: a
//! lenient write of a file with bad lines writes the good ones, lists each
//! refused one and exits with 3.

use std::process::{Command, Output};

use serde_json::{Value, json};

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

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn projections_rebuild_resume_and_daily_counts_from_the_command_line() {
    let data = std::env::temp_dir().join(format!("projections-cli-{}", uuid::Uuid::now_v7().simple()));
    let run = |args: &[&str]| platform(&data, args);
    let refused = failure(&run(&["projections", "status"]));
    assert!(refused.contains("holds no orders or accounts yet"), "{refused}");

    json(&run(&["accounts", "open", "cust_123", "--holder", "张三", "--initial", "1000", "--format", "json"]));
    json(&run(&["accounts", "open", "merchant", "--holder", "商家", "--format", "json"]));
    for id in ["order_001", "order_002"] {
        let create = ["orders", "create", id, "--customer-id", "cust_123", "--name", "张三"];
        json(&run(
            &[&create[..], &["--email", "zhangsan@example.com", "--phone", "13800138000", "--format", "json"]].concat()
        ));
        json(&run(&["orders", "add-item", id, "product_001", "2", "99.99", "--format", "json"]));
    }
    json(&run(&["orders", "confirm", "order_001", "--format", "json"]));

    let status = json(&run(&["projections", "status", "--format", "json"]));
    let names: Vec<_> = status.as_array().expect("list").iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["orders.by_customer", "accounts.statement"], "{status}");
    let status = &status.as_array().expect("list")[0];
    assert_eq!((status["lag_events"].as_u64(), status["parked"].is_null()), (Some(0), true), "{status}");
    let position = status["position"].as_u64().expect("position");
    assert_eq!(position, 7, "two orders created with an item each, one confirmed and paid: {status}");

    let today = chrono::Utc::now().date_naive().to_string();
    let days = json(&run(&["orders", "daily", "--from", &today, "--format", "json"]));
    let day = &days.as_array().expect("list")[0];
    assert_eq!((day["created"].as_u64(), day["paid"].as_u64(), day["cancelled"].as_u64()), (Some(2), Some(1), Some(0)));
    assert_eq!(day["paid_amount"]["amount"], "199.98", "{day}");
    let bad = failure(&run(&["orders", "daily", "--from", "2026-13-01"]));
    assert!(bad.contains("`2026-13-01` is not a date"), "{bad}");
    let backwards = failure(&run(&["orders", "daily", "--from", "2026-12-02", "--to", "2026-12-01"]));
    assert!(backwards.contains("after its end"), "{backwards}");

    let before = json(&run(&["orders", "by-customer", "cust_123", "--format", "json"]));
    let rebuilt = json(&run(&["projections", "rebuild", "orders.by_customer", "--format", "json"]));
    assert_eq!(rebuilt["position"].as_u64(), Some(position), "{rebuilt}");
    assert_eq!(rebuilt["events"].as_u64(), Some(position - 1), "{rebuilt}");
    assert!(data.join("orders/orders.g1.redb").exists() && !data.join("orders/orders.redb").exists());
    assert_eq!(json(&run(&["orders", "by-customer", "cust_123", "--format", "json"])), before, "the same answers");
    assert_eq!(json(&run(&["orders", "daily", "--from", &today, "--format", "json"])), days);

    let not_parked = failure(&run(&["projections", "resume", "orders.by_customer"]));
    assert!(not_parked.contains("projection `orders.by_customer` is not parked"), "{not_parked}");
    let unknown = failure(&run(&["projections", "rebuild", "orders.nope"]));
    assert!(
        unknown.contains("no projection is named `orders.nope` (known: orders.by_customer, accounts.statement)"),
        "{unknown}"
    );
    assert!(unknown.contains("hint: `platform projections status` lists the projections"), "{unknown}");

    // The payment of order_001 is on the customer's statement, line by line.
    let statement = json(&run(&["accounts", "statement", "cust_123", "--format", "json"]));
    let lines = statement["lines"].as_array().expect("lines");
    assert_eq!(statement["balance"], "800.02", "1000 opened, 199.98 paid: {statement}");
    assert_eq!(statement["version"].as_u64(), Some(lines.len() as u64), "every event is a line: {statement}");
    assert_eq!((lines[0]["change"].as_str(), lines[0]["balance"].as_str()), (Some("1000.00"), Some("1000.00")));
    assert_eq!(lines.last().map(|l| l["balance"].clone()), Some(statement["balance"].clone()), "{statement}");
    let page = json(&run(&["accounts", "statement", "cust_123", "--from", "2", "--limit", "1", "--format", "json"]));
    assert_eq!(page["lines"].as_array().map(|l| l[0]["version"].clone()), Some(json!(2)), "{page}");
    let more = if lines.len() > 2 { json!(3) } else { Value::Null };
    assert_eq!(page["next_from"], more, "{page}");
    let zero = failure(&run(&["accounts", "statement", "cust_123", "--limit", "0"]));
    assert!(zero.contains("1 to 10000"), "{zero}");
    let nobody = failure(&run(&["accounts", "statement", "nobody"]));
    assert!(nobody.contains("nobody"), "{nobody}");
    let rebuilt = json(&run(&["projections", "rebuild", "accounts.statement", "--format", "json"]));
    let status = json(&run(&["projections", "status", "accounts.statement", "--format", "json"]));
    assert_eq!(rebuilt["position"], status[0]["position"], "{rebuilt}");
    assert!(data.join("accounts/statements.g1.redb").exists() && !data.join("accounts/statements.redb").exists());
    assert_eq!(json(&run(&["accounts", "statement", "cust_123", "--format", "json"])), statement, "the same after it");

    let url = failure(&run(&["projections", "status", "--url", "https://example.com"]));
    assert!(url.contains("plain-HTTP address"), "{url}");
    let table = run(&["projections", "status"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success() && text.contains("orders.by_customer") && text.contains("running"), "{text}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_lenient_ts_write_writes_the_good_lines_lists_the_refused_and_exits_with_3() {
    let data = std::env::temp_dir().join(format!("ts-cli-{}", uuid::Uuid::now_v7().simple()));
    let run = |args: &[&str]| platform(&data, args);
    let created =
        run(&["ts", "create-series", "--name", "sensor_temperature", "--tags", "device_id", "--unit", "celsius"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let file = data.join("points.lp");
    std::fs::write(
        &file,
        "sensor,device_id=d1 temperature=21.5 1764547200000000000\n\
         sensor,device_id=d1,room=r2 temperature=22 1764547210000000000\n\
         sensor,device_id=d1 temperature=\"warm\" 1764547220000000000\n\
         sensor,device_id=d1 temperature= 1764547230000000000\n\
         sensor,device_id=d2 temperature=19.0 1764547240000000000\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    let out = run(&["--format", "json", "ts", "write", "--lenient", path]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((report["lines"].clone(), report["points"].clone()), (json!(5), json!(2)));
    let lines: Vec<u64> =
        report["rejected"].as_array().expect("list").iter().map(|r| r["line"].as_u64().expect("line")).collect();
    assert_eq!(lines, [2, 3, 4], "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 5 lines were refused"));
    let stats = json(&run(&["--format", "json", "ts", "stats"]));
    assert_eq!(stats["points"], json!(2), "{stats}");
    let strict = run(&["ts", "write", path]);
    assert_eq!(strict.status.code(), Some(1), "a strict write stops at the first bad line");
    std::fs::remove_dir_all(&data).ok();
}
