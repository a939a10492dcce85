//! `cargo xtask bench <name>`: benchmarks that need servers or a release build.
//!
//! Each bench is a cargo example that takes `--bootstrap ADDR` when it needs Kafka,
//! `--database-url URL` when it needs PostgreSQL and `--quick` for the small size, and
//! prints one `BENCH {...}` line per figure; xtask collects them into
//! `target/bench/<name>.json`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::error::{Context, Result};
use crate::services::Services;
use crate::{interrupt, paths, process};

/// One bench: which example of which package runs it and what servers it needs.
#[derive(Debug)]
pub struct Bench {
    /// The name on the command line.
    pub name: &'static str,
    /// The package holding the example.
    pub package: &'static str,
    /// The example to run.
    pub example: &'static str,
    /// One line for the help text.
    pub about: &'static str,
    /// Pass `--bootstrap ADDR` of a running Kafka.
    pub needs_kafka: bool,
    /// Pass `--database-url URL` of a running PostgreSQL.
    pub needs_postgres: bool,
}

/// All benches. Add new ones here.
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "bus",
        package: "kafka-bus",
        example: "bench_bus",
        about: "kafka-bus publish throughput against raw rdkafka on the same broker; in-process bus rates",
        needs_kafka: true,
        needs_postgres: false,
    },
    Bench {
        name: "event-store",
        package: "event-store",
        example: "bench_event_store",
        about: "embedded appends vs raw fsync, group commit, aggregate replay, PostgreSQL vs plain INSERT",
        needs_kafka: false,
        needs_postgres: true,
    },
    Bench {
        name: "sagas",
        package: "platform",
        example: "bench_sagas",
        about: "orders placed -> paid end to end: in-process and Kafka throughput, confirm -> paid latency at 200/s",
        needs_kafka: true,
        needs_postgres: false,
    },
    Bench {
        name: "projections",
        package: "orders",
        example: "bench_projections",
        about: "orders-by-customer read model: rebuild of 1M events (memory, redb) vs reading them, find_by_customer p50/p99",
        needs_kafka: false,
        needs_postgres: false,
    },
    Bench {
        name: "registry",
        package: "mesh-registry",
        example: "bench_registry",
        about: "registry: search over 50k products (p50/p99 per query kind vs the seed's scan), contract validation per core, registering 10,000 products",
        needs_kafka: false,
        needs_postgres: false,
    },
    Bench {
        name: "lake",
        package: "lake",
        example: "bench_lake",
        about: "lake: bronze ingest from Kafka vs a raw Parquet write, silver/gold rows/s, gold queries vs DuckDB, optimize of 1,000 small files",
        needs_kafka: true,
        needs_postgres: false,
    },
    Bench {
        name: "serve",
        package: "integration-tests",
        example: "bench_serve",
        about: "services: p50/p99 of each context's main read and write endpoint at a fixed rate vs the library call",
        needs_kafka: false,
        needs_postgres: false,
    },
    Bench {
        name: "e2e",
        package: "integration-tests",
        example: "bench_e2e",
        about: "five services over Kafka: highest order rate with create -> paid p99 < 100 ms, 60 s at it, lag, RSS",
        needs_kafka: true,
        needs_postgres: false,
    },
    Bench {
        name: "timeseries",
        package: "timeseries",
        example: "bench_timeseries",
        about: "TSBS-like cpu-only ingest, bytes/point, query latency; VictoriaMetrics side by side (--hosts N)",
        needs_kafka: false,
        needs_postgres: false,
    },
];

/// The list of known benches for help and error texts.
pub fn list() -> String {
    BENCHES.iter().map(|b| format!("  {:<12} {}", b.name, b.about)).collect::<Vec<_>>().join("\n")
}

/// Runs one bench by name.
pub fn run(name: &str, quick: bool, extra: &[String]) -> Result<()> {
    let bench = BENCHES
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| format!("unknown bench `{name}`; known benches:\n{}", list()))?;
    let root = paths::workspace_root();
    let out_dir = root.join("target").join("bench");
    fs::create_dir_all(&out_dir).context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join(format!("{}.json", bench.name));

    let mut services = Services::new();
    let mut cmd = process::cargo_command();
    cmd.args(["run", "--release", "-p", bench.package, "--example", bench.example, "--"]).current_dir(&root);
    if bench.needs_kafka {
        cmd.arg("--bootstrap").arg(services.kafka()?);
    }
    if bench.needs_postgres {
        cmd.arg("--database-url").arg(services.postgres()?);
    }
    if quick {
        cmd.arg("--quick");
    }
    if bench.name == "lake" {
        // DuckDB, the lake's query baseline, from the lake's venv.
        cmd.env(crate::pylake::PYTHON_ENV, crate::pylake::ensure()?);
    }
    cmd.args(extra);
    let result = run_collecting(&mut cmd);
    let stopped = services.stop();
    let figures = result?;
    stopped?;
    let json = serde_json::to_vec_pretty(&figures).map_err(|e| e.to_string())?;
    fs::write(&out, json).context(|| format!("writing {}", out.display()))?;
    println!("bench {}: {} figures in {}", bench.name, figures.len(), out.display());
    Ok(())
}

/// Runs a bench, passing its output through, and returns the figures of
/// its `BENCH {json}` lines (the benches print them; writing the file is
/// done here, once for all of them).
fn run_collecting(cmd: &mut Command) -> Result<Vec<serde_json::Value>> {
    println!("$ {}", process::describe(cmd));
    let mut child =
        cmd.stdout(Stdio::piped()).spawn().context(|| format!("cannot run `{}`", process::describe(cmd)))?;
    let mut figures = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context(|| "reading the bench's output".to_owned())?;
            println!("{line}");
            if let Some(json) = line.strip_prefix("BENCH ") {
                figures.push(serde_json::from_str(json).map_err(|e| format!("bad BENCH line `{json}`: {e}"))?);
            }
        }
    }
    let status = child.wait().context(|| "waiting for the bench".to_owned())?;
    interrupt::check()?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", process::describe(cmd)));
    }
    if figures.is_empty() {
        return Err("the bench printed no BENCH lines".into());
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_names_are_unique_and_listed() {
        for (i, bench) in BENCHES.iter().enumerate() {
            assert!(BENCHES[i + 1..].iter().all(|b| b.name != bench.name));
            assert!(list().contains(bench.name));
        }
    }

    #[test]
    fn an_unknown_bench_names_the_known_ones() {
        let err = run("nope", true, &[]).expect_err("unknown");
        assert!(err.contains("unknown bench `nope`"), "{err}");
        assert!(err.contains("bus"), "{err}");
    }
}
