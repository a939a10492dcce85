//! Integration tests on a real Apache Kafka broker (`KAFKA_BOOTSTRAP`, which
//! `cargo xtask test` starts). One binary, one module per concern.

mod kcat_interop;
mod redelivery_after_kill;
mod support;
