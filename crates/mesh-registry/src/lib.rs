//! Data-mesh registry (seed section 3.1: `DataProduct`,
//! `DataProductContract`, `DataProductRegistry`, `DataMeshPlatform`,
//! `demo_data_mesh`).
//!
//! It owns:
//! - data contracts in the Open Data Contract Standard v3.1
//!   ([`contract`]): a strict typed model read from and written to YAML,
//!   linted, compiled to a JSON Schema validator, and a semver gate
//!   ([`diff`]) that refuses a breaking change without a major bump and
//!   names the consumers it would break;
//! - data products ([`product`], ODPS-shaped): owner, version, lifecycle
//!   status (forward only), SLA, tags, dependencies, and input and output
//!   ports that point at contracts by id and version;
//! - the [`registry`]: all-or-nothing registration, the products' named
//!   queries (the seed's `query_data_product`) and their quality;
//! - its storage, the [`catalogue`] port (redb by default, PostgreSQL so
//!   instances share one), and ranked discovery ([`search`], tantivy, with
//!   facets and live quality in the score);
//! - enforcement on the bus ([`enforcer`], [`quality`]): every active Kafka
//!   output port is read in a group of its own, each record validated and
//!   measured (completeness, accuracy, timeliness, consistency, the
//!   contract's rules and SLA) with exactly-once counting across crashes,
//!   and `mesh.QualityMeasured`, `mesh.ContractViolated` (with samples) and
//!   `mesh.SlaBreached` published;
//! - the way in from other contexts ([`service`]): announcements on
//!   `mesh.events`.
//!
//! It must never: depend on another bounded context's crate (products and
//! contracts arrive as events on `mesh.events`), report a quality figure it
//! did not measure, or register part of a refused document.

pub mod binding;
pub mod catalogue;
pub mod contract;
pub mod diff;
pub mod document;
pub mod enforcer;
pub mod error;
pub mod product;
pub mod quality;
pub mod registry;
pub mod search;
pub mod service;

pub use error::{Error, Result};
