//! Integration tests on a real Apache Kafka broker (`KAFKA_BOOTSTRAP`, which
//! `cargo xtask test` starts) and real files. One binary, one module per concern.

mod broker;
mod demo_services;
mod e2e;
mod event_store_crash;
mod http;
mod kcat_interop;
mod outbox_relay;
mod redelivery_after_kill;
mod saga_crash;
mod saga_properties;
mod sagas;
mod scale_out;
mod secure_bus;
mod serve;
mod support;
mod timeseries_crash;
