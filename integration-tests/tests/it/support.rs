//! Shared helpers: the broker address, unique names, sample events, and
//! (from the package's library) waiting for a condition with a deadline.

use domain_core::{Envelope, EventType};
use kafka_bus::KafkaBus;
use serde_json::json;

pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP")
        .unwrap_or_else(|_| panic!("KAFKA_BOOTSTRAP is not set: run `cargo xtask test`, which starts Kafka"))
}

pub fn bus() -> KafkaBus {
    KafkaBus::from_env().unwrap_or_else(|e| panic!("{e}"))
}

pub use integration_tests::wait::{eventually, wait_until, wait_until_async};

/// Held by the tests that load both cores for a minute or more (the sagas
/// end to end, the services as processes, the SASL_SSL broker), so they do
/// not run at once and starve each other past their deadlines (an async
/// lock: each test has a runtime of its own, and a panic does not poison it).
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

pub fn unique(prefix: &str) -> String {
    format!("it.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

pub fn counted(subject: &str, version: u64, n: i64) -> Envelope {
    let ty: EventType = "accounts.MoneyDeposited.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    Envelope::raw("accounts", ty, subject, version, json!({ "n": n, "holder": "张三" }))
}

/// Runs a writer process, hands each complete acknowledgement line
/// (`ok ... .`, split on spaces) to `on_ack` until `wanted` arrived, then
/// kills it with SIGKILL and reaps it.
pub fn run_then_kill(bin: &str, args: &[String], wanted: usize, mut on_ack: impl FnMut(&[&str])) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split(' ').collect();
        // A line cut short by the kill lacks the final "." and is ignored.
        if parts.first() == Some(&"ok") && parts.last() == Some(&".") {
            on_ack(&parts[1..parts.len() - 1]);
            seen += 1;
        }
        if seen >= wanted {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}
