//! `cargo xtask`: developer automation for the event data platform workspace.
//!
//! Local Apache Kafka and PostgreSQL for development and CI, the full test run, lint
//! (rustfmt, clippy, cargo-deny, boundary check), the demo and benches. Run
//! `cargo xtask --help` for the commands.

mod bench;
mod boundary;
mod clippy;
mod datacontract;
mod demo;
mod error;
mod interrupt;
mod kafka;
mod lint;
mod paths;
mod pg;
mod process;
mod pylake;
mod screenshot;
mod services;
mod test;
mod venv;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;

/// Developer automation for the event data platform.
///
/// Servers started here (Kafka, PostgreSQL) keep their files under $EDP_CACHE or
/// ~/.cache/edp, listen on 127.0.0.1 only, and are stopped by the command that started
/// them (`test`, `demo`, `bench`), or by `kafka down` / `pg down`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a local single-node Apache Kafka 4.1 broker (KRaft) on 127.0.0.1:9092.
    ///
    /// The jars come from Maven Central once (needs Java 17+ and Maven) and are cached.
    Kafka {
        #[command(subcommand)]
        action: Action,
    },
    /// Run a local PostgreSQL server on 127.0.0.1:5433 (trust auth, user postgres).
    ///
    /// Uses the newest /usr/lib/postgresql/<version>. The URL is
    /// postgres://postgres@127.0.0.1:5433/postgres.
    Pg {
        #[command(subcommand)]
        action: Action,
    },
    /// Run every test of every workspace member against real Kafka and PostgreSQL.
    ///
    /// Starts what is missing (unless KAFKA_BOOTSTRAP / DATABASE_URL name servers to
    /// use), runs `cargo test --workspace` with both variables set, and stops what it
    /// started, also when tests fail or on Ctrl-C. datacontract-cli (PyPI) is installed
    /// once into a venv in the cache and passed as DATACONTRACT_CLI.
    Test {
        /// Extra arguments for `cargo test`, after `--` (e.g. `-- -p orders -- --nocapture`).
        #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
        args: Vec<String>,
    },
    /// Check formatting, clippy (-D warnings), cargo-deny and the boundary rule.
    ///
    /// Stops at the first failing step. Installs cargo-deny once if it is missing.
    Lint,
    /// Check that no bounded context (orders, accounts, mesh-registry, lake,
    /// timeseries) depends on another.
    Boundary,
    /// Run every seed scenario end to end and write summary.json and report.html.
    Demo {
        /// Use a real Kafka broker: ADDR, or else $KAFKA_BOOTSTRAP, or else a local broker
        /// started (and stopped again) for the demo. Without it, the in-process bus.
        #[arg(long, value_name = "ADDR", num_args = 0..=1)]
        kafka: Option<Option<String>>,
        /// Output folder [default: target/demo in the workspace].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Also render report.html in headless Chromium into FILE [default:
        /// <out>/report.png] and check the picture is not blank. Installs Debian's
        /// chromium and fonts-noto-cjk when missing (as root).
        #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
        screenshot: Option<PathBuf>,
    },
    /// Run a benchmark; figures go to target/bench/<NAME>.json.
    #[command(after_help = bench_help())]
    Bench {
        /// Which bench (see the list below).
        name: String,
        /// The small size of the same bench (under a minute).
        #[arg(long)]
        quick: bool,
        /// Extra arguments for the bench program, after `--`.
        #[arg(last = true, value_name = "BENCH_ARGS")]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Action {
    /// Start it unless it is already running (waits until it answers).
    Up,
    /// Stop it (only the process xtask started).
    Down,
    /// Say whether it is running and how to reach it.
    Status,
}

fn bench_help() -> String {
    format!("Benches:\n{}", bench::list())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::watch();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if interrupt::requested() { ExitCode::from(130) } else { ExitCode::FAILURE }
        }
    }
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Kafka { action } => match action {
            Action::Up => kafka::up(),
            Action::Down => kafka::down(),
            Action::Status => kafka::status(),
        },
        Cmd::Pg { action } => match action {
            Action::Up => pg::up(),
            Action::Down => pg::down(),
            Action::Status => pg::status(),
        },
        Cmd::Test { args } => test::run(&args),
        Cmd::Lint => lint::run(),
        Cmd::Boundary => boundary::run(),
        Cmd::Demo { kafka, out, screenshot } => demo::run(kafka, out.as_deref(), screenshot.as_deref()),
        Cmd::Bench { name, quick, args } => bench::run(&name, quick, &args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_kafka_takes_an_optional_address() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).expect("parse").command {
            Cmd::Demo { kafka, .. } => kafka,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(parse(&["x", "demo"]), None);
        assert_eq!(parse(&["x", "demo", "--kafka"]), Some(None));
        assert_eq!(parse(&["x", "demo", "--kafka", "10.0.0.1:9092"]), Some(Some("10.0.0.1:9092".to_string())));
    }

    #[test]
    fn test_passes_everything_after_the_separator() {
        let cli = Cli::try_parse_from(["x", "test", "--", "-p", "orders", "--", "--nocapture"]).expect("parse");
        match cli.command {
            Cmd::Test { args } => assert_eq!(args, ["-p", "orders", "--", "--nocapture"]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
