//! The `platform` command line as a process the tests start and signal:
//! the very `platform::cli::main` the `platform` binary runs (a package's
//! tests cannot name another package's binaries).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::cli::main().await
}
