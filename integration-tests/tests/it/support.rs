//! Shared helpers: the broker address, unique names, sample events.

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

pub fn unique(prefix: &str) -> String {
    format!("it.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

pub fn counted(subject: &str, version: u64, n: i64) -> Envelope {
    let ty: EventType = "accounts.MoneyDeposited.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    Envelope::raw("accounts", ty, subject, version, json!({ "n": n, "holder": "张三" }))
}
