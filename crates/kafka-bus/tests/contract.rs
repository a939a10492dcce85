//! The EventBus contract suite against a real Apache Kafka broker
//! (`KAFKA_BOOTSTRAP`, started by `cargo xtask test`).

use kafka_bus::KafkaBus;

fn kafka() -> KafkaBus {
    KafkaBus::from_env().unwrap_or_else(|e| panic!("{e}"))
}

domain_core::bus_contract_tests!(kafka());
