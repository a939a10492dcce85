//! Helpers shared by the integration tests and the benches of this
//! package: what talks to a running service from outside.

pub mod http_client;
pub mod wait;
