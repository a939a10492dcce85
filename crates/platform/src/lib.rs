//! The composition crate of the platform: the `platform` binary's commands,
//! and [`node::Node`], which wires contexts to a bus (used by the binary and
//! by the integration tests, so both run the same wiring).
//!
//! It owns: composition (which bus, which storage root), the command line,
//! and output for people (tables) and machines (`--format json`).
//!
//! It must never: hold domain logic of its own; it wires crates together.

pub mod accounts_cli;
pub mod cli;
pub mod commerce;
pub mod demo;
pub mod error;
pub mod http_client;
pub mod lake_cli;
pub mod lake_demo;
pub mod mesh;
pub mod node;
pub mod orders_cli;
pub mod output;
pub mod projections;
pub mod registry_cli;
pub mod remote;
pub mod report;
pub mod scenarios;
pub mod serve;
pub mod ts;

pub use error::{Error, Result};
