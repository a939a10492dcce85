//! The bronze layer: what arrived, as it arrived.

pub mod avro;
pub mod bus;
pub mod files;

pub use bus::{BronzeConfig, BronzeIngester, IngestStats};
