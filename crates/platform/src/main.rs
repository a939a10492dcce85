//! The `platform` binary: runs the demo, serves each bounded context as a
//! Kafka-connected process, and inspects their data (see [`platform::cli`]).
//!
//! It owns: composition (which bus, which storage root), the command line,
//! and output for people (tables) and machines (`--format json`).
//!
//! It must never: hold domain logic of its own; it wires crates together.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the stores allocate and free many small
/// objects per event or point, and glibc's heap trimming and consolidation
/// made replay 2.5x slower in a fresh process (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    platform::cli::main().await
}
