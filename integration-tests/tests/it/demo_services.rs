//! `platform demo --kafka` runs the seed's scenarios on five service
//! processes (one per context, talking only through the broker) and its
//! summary agrees with the in-process demo's on every seed figure.

use std::path::Path;
use std::process::Command;

use platform::demo::services::seed_figures;
use serde_json::Value;

fn demo(out: &Path, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_platform-cli"))
        .arg("demo")
        .arg("--out")
        .arg(out)
        .args(["--format", "json", "--orders", "200"])
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("PLATFORM_TOKENS")
        .output()
        .expect("platform-cli runs");
    assert!(
        output.status.success(),
        "platform demo {extra:?} failed: {}\nservice logs in {}",
        String::from_utf8_lossy(&output.stderr),
        out.join("logs").display()
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The paths where two JSON values differ.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                differences(&x[k.as_str()].clone(), y.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: in-process {a} / services {b}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_on_five_services_agrees_with_the_in_process_demo() {
    let _heavy = super::support::heavy().await;
    let root = std::env::temp_dir().join(format!("demo-services-{}", uuid::Uuid::now_v7().simple()));
    let (embedded, services) = tokio::task::block_in_place(|| {
        let embedded = demo(&root.join("in-process"), &[]);
        let services = demo(&root.join("services"), &["--kafka", &super::support::bootstrap()]);
        (embedded, services)
    });
    let (a, b) = (seed_figures(&embedded), seed_figures(&services));
    let mut diff = Vec::new();
    differences(&a, &b, "scenarios", &mut diff);
    assert!(diff.is_empty(), "the summaries differ:\n{}", diff.join("\n"));
    // The figures compared are the seed's, not empty ones.
    assert_eq!(a["demo_domain_driven_modeling"]["order_status"], "shipped");
    assert_eq!(a["demo_event_sourcing"]["balance"], "1000.00");
    assert_eq!(a["demo_data_mesh"]["records_measured"], 3);
    assert_eq!(a["demo_time_series_modeling"]["inserted_data_points"], 1000);
    assert_eq!(a["demo_data_lake_modeling"]["total_records"], 3);
    // The services demo ran where it says, and its workload ended well.
    let ran: Vec<&str> = services["platform"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["context"].as_str())
        .collect();
    assert_eq!(ran, ["orders", "accounts", "registry", "lake", "timeseries"]);
    let w = &services["platform"]["sagas"];
    assert_eq!((w["money_conserved"].as_bool(), w["orders_not_terminal"].as_u64()), (Some(true), Some(0)), "{w}");
    let bronze = services["platform"]["lake"]["bronze_rows"].as_u64().unwrap_or(0);
    assert!(bronze >= services["platform"]["commerce_events_relayed"].as_u64().unwrap_or(u64::MAX), "bronze {bronze}");
    let _ = std::fs::remove_dir_all(&root);
}
