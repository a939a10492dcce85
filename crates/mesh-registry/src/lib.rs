//! Data-mesh registry (seed section 3).
//!
//! It will own: data products with input and output ports, ODCS data
//! contracts, contract validation on the bus, discovery search, and quality
//! and SLA figures computed from the live event streams.
//!
//! It must never: depend on another bounded context's crate, or report a
//! quality figure it did not measure.
