//! The silver layer: typed tables per kind of event, deduplicated by event
//! id, with expectations whose failing rows go to `silver.quarantine`.

pub mod expectations;
pub mod model;
mod pipeline;
mod rows;

pub use expectations::{Action, Check, Counts, Expectation, ExpectationSet};
pub use pipeline::{SilverPipeline, SilverReport, TableReport};
