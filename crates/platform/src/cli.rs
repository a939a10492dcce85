//! The `platform` command line: the demo, `serve`, and a command per
//! context. The binary's `main` is [`main`]; the integration tests run the
//! same function as a process of their own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::output::Format;
use crate::{accounts_cli, demo, lake_cli, orders_cli, projections, registry_cli, serve, ts};

/// Event-driven data platform: orders, accounts, data mesh, lake, time series.
#[derive(Debug, Parser)]
#[command(name = "platform", version, about, long_about = None)]
struct Cli {
    /// Root directory for storage; each context keeps its data in DIR/<context>.
    #[arg(long, global = true, default_value = "./data", value_name = "DIR")]
    data: PathBuf,
    /// Output for people (table) or machines (json).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send sample events of every context through the bus and print them
    /// after the round trip; writes summary.json and report.html to --out.
    Demo(demo::DemoArgs),
    /// The time-series engine: create-series, write, query, last, stats.
    #[command(subcommand)]
    Ts(ts::TsCommand),
    /// Orders: create, add-item, confirm, ship, deliver, cancel, show, by-customer, daily.
    Orders {
        #[command(flatten)]
        bus: accounts_cli::BusArgs,
        #[command(subcommand)]
        command: orders_cli::OrdersCommand,
    },
    /// Accounts: open, deposit, withdraw, transfer, freeze, unfreeze, close, show, history, statement.
    Accounts {
        #[command(flatten)]
        bus: accounts_cli::BusArgs,
        #[command(subcommand)]
        command: accounts_cli::AccountsCommand,
    },
    /// The data-mesh registry: products, show, search, query, lint, diff, register, export, quality.
    Registry {
        #[command(flatten)]
        store: registry_cli::StoreArgs,
        #[command(subcommand)]
        command: registry_cli::RegistryCommand,
    },
    /// Run contexts as services: an HTTP API per context, their consumers
    /// and outbox relays on the bus, /healthz, /readyz, /metrics.
    Serve(serve::ServeArgs),
    /// The read models' projections: status, rebuild (without downtime), resume.
    Projections {
        #[command(flatten)]
        args: projections::ProjectionsArgs,
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// The medallion lake: tables, sql, ingest, refine, optimize, vacuum, history, objects.
    Lake {
        #[command(flatten)]
        lake: lake_cli::LakeArgs,
        #[command(subcommand)]
        command: lake_cli::LakeCommand,
    },
}

/// `$PLATFORM_LOG` (default `warn`). The Delta kernel logs every table
/// snapshot at INFO, so it stays at `warn` unless the filter names it.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let mut spec = std::env::var("PLATFORM_LOG").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "warn".into());
    for quiet in ["buoyant_kernel", "deltalake_core"] {
        if !spec.contains(quiet) {
            spec.push_str(&format!(",{quiet}=warn"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|_| "warn".into())
}

/// Parses the arguments, runs the command, prints the error and its hint.
pub async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr).init();
    let matches = Cli::command().get_matches();
    let data_given = matches.value_source("data") == Some(ValueSource::CommandLine);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, data_given.then(|| cli.data.clone())).await,
        Command::Demo(args) => demo::run(args, &cli.data, cli.format).await,
        Command::Ts(cmd) => ts::run(cmd, &cli.data, cli.format),
        Command::Orders { bus, command } => orders_cli::run(command, &bus, &cli.data, cli.format).await,
        Command::Accounts { bus, command } => accounts_cli::run(command, &bus, &cli.data, cli.format).await,
        Command::Registry { store, command } => registry_cli::run(command, &store, &cli.data, cli.format).await,
        Command::Lake { lake, command } => lake_cli::run(command, &lake, &cli.data, cli.format).await,
        Command::Projections { args, command } => projections::run(command, &args, &cli.data, cli.format).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
