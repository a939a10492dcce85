//! `cargo xtask test`: every test of every workspace member against real Kafka and
//! PostgreSQL.

use std::time::Instant;

use crate::error::Result;
use crate::services::Services;
use crate::{clippy, datacontract, interrupt, kafka, paths, pg, process, pylake};

/// Runs `cargo test --workspace <extra>` with `KAFKA_BOOTSTRAP` and `DATABASE_URL` set,
/// starting the servers that are not given and stopping them afterwards, and with
/// `DATACONTRACT_CLI` naming datacontract-cli for the registry's interoperability tests,
/// `LAKE_PYTHON` a Python with deltalake and DuckDB, and `LAKE_S3_ENDPOINT` an S3 server.
pub fn run(extra: &[String]) -> Result<()> {
    let started = Instant::now();
    // Before any server starts, so a failed install leaves nothing running.
    let datacontract_cli = datacontract::ensure()?;
    let lake_python = pylake::ensure()?;
    let mut services = Services::new();
    let bootstrap = services.kafka()?;
    let database_url = services.postgres()?;
    let s3 = services.s3()?;
    // Fault tests run a private broker of their own (stopped and restarted
    // on purpose), so they need the jars even when KAFKA_BOOTSTRAP is given.
    kafka::ensure_jars()?;
    // `--workspace` also covers the members outside default-members (xtask,
    // integration-tests). Without arguments: every test target, then the
    // doc tests; the examples (bench harnesses) are not linked here, only
    // by `lint`, which builds every target. Members compile through clippy
    // (see `clippy`), so `lint` reuses this build instead of type-checking
    // every dependency once more.
    let phases: Vec<Vec<String>> = if extra.is_empty() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        vec![args(&["test", "--workspace", "--lib", "--bins", "--tests"]), args(&["test", "--workspace", "--doc"])]
    } else {
        vec![["test".to_owned(), "--workspace".to_owned()].into_iter().chain(extra.iter().cloned()).collect()]
    };
    let mut outcome = Ok(std::process::ExitStatus::default());
    for phase in &phases {
        let mut cargo = process::cargo_command();
        clippy::apply(&mut cargo);
        outcome = process::status(
            cargo
                .args(phase)
                .env(kafka::BOOTSTRAP_ENV, &bootstrap)
                .env(pg::URL_ENV, &database_url)
                .env(kafka::LIBS_ENV, kafka::libs_dir())
                .env(datacontract::BIN_ENV, &datacontract_cli)
                .env(pylake::PYTHON_ENV, &lake_python)
                .env(pylake::S3_ENV, &s3)
                .current_dir(paths::workspace_root()),
        );
        if !outcome.as_ref().is_ok_and(std::process::ExitStatus::success) || interrupt::requested() {
            break;
        }
    }
    let servers = services.describe();
    let stopped = services.stop();
    let secs = started.elapsed().as_secs();
    let verdict = match (&outcome, interrupt::requested()) {
        (_, true) => Err("interrupted (Ctrl-C)".to_string()),
        (Ok(status), false) if status.success() => Ok(()),
        (Ok(status), false) => Err(format!("tests failed ({status})")),
        (Err(e), false) => Err(e.clone()),
    };
    let line = match &verdict {
        Ok(()) => "PASSED".to_string(),
        Err(e) => format!("FAILED: {e}"),
    };
    println!("xtask test: {line} in {secs} s (Kafka at {bootstrap}; {servers})");
    verdict?;
    stopped
}
