//! Data-mesh registry (seed section 3.1: `DataProduct`,
//! `DataProductContract`, `DataProductRegistry`, `DataMeshPlatform`,
//! `demo_data_mesh`).
//!
//! It owns:
//! - data contracts in the Open Data Contract Standard v3.1
//!   ([`contract`]): a strict typed model read from and written to YAML,
//!   compiled to a JSON Schema validator, and a semver gate ([`diff`]) that
//!   refuses a breaking change without a major bump and names the
//!   consumers it would break;
//! - data products ([`product`], ODPS-shaped): owner, version, lifecycle
//!   status, SLA, tags, dependencies, and input and output ports that point
//!   at contracts by id and version;
//! - ranked discovery ([`search`]) over products, with facets;
//!
//! It must never: depend on another bounded context's crate (products and
//! contracts arrive as events on `mesh.events`), report a quality figure it
//! did not measure, or register part of a refused document.

pub mod contract;
pub mod diff;
pub mod document;
pub mod enforcer;
pub mod error;
pub mod binding;
pub mod catalogue;
pub mod product;
pub mod quality;
pub mod registry;
pub mod search;
pub mod service;

pub use error::{Error, Result};
