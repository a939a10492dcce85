//! The `platform` binary: runs the demo, and (in later issues) serves each
//! bounded context as a Kafka-connected process and inspects their data.
//!
//! It owns: composition (which bus, which storage root), the command line,
//! and output for people (tables) and machines (`--format json`).
//!
//! It must never: hold domain logic of its own; it wires crates together.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use platform::output::Format;
use platform::{accounts_cli, demo, lake_cli, orders_cli, registry_cli, ts};

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
    /// Orders: create, add-item, confirm, ship, deliver, cancel, show, by-customer.
    Orders {
        #[command(flatten)]
        bus: accounts_cli::BusArgs,
        #[command(subcommand)]
        command: orders_cli::OrdersCommand,
    },
    /// Accounts: open, deposit, withdraw, transfer, freeze, unfreeze, close, show, history.
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
    /// The medallion lake: tables, sql, ingest, refine, optimize, vacuum, history, objects.
    Lake {
        #[command(flatten)]
        lake: lake_cli::LakeArgs,
        #[command(subcommand)]
        command: lake_cli::LakeCommand,
    },
}

/// mimalloc instead of glibc malloc: the stores allocate and free many small
/// objects per event or point, and glibc's heap trimming and consolidation
/// made replay 2.5x slower in a fresh process (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PLATFORM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args, &cli.data, cli.format).await,
        Command::Ts(cmd) => ts::run(cmd, &cli.data, cli.format),
        Command::Orders { bus, command } => orders_cli::run(command, &bus, &cli.data, cli.format).await,
        Command::Accounts { bus, command } => accounts_cli::run(command, &bus, &cli.data, cli.format).await,
        Command::Registry { store, command } => registry_cli::run(command, &store, &cli.data, cli.format).await,
        Command::Lake { lake, command } => lake_cli::run(command, &lake, &cli.data, cli.format).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
