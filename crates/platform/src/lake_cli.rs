//! `platform lake ...`: the medallion lake from the command line, on
//! `DIR/lake` (or `--lake s3://bucket/prefix` with the `AWS_*` settings in
//! the environment).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use domain_core::bus::{EventBus, topics};
use lake::bronze::files::{FileOutcome, Landing};
use lake::bronze::{BronzeConfig, BronzeIngester};
use lake::deltalake::arrow::array::RecordBatch;
use lake::deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use lake::gold::GoldPipeline;
use lake::silver::SilverPipeline;
use lake::{Lake, LakeLocation};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::outln;
use crate::output::{Format, table};

/// Where the lake is.
#[derive(Debug, Clone, clap::Args)]
pub struct LakeArgs {
    /// The lake's root: a directory or `s3://bucket/prefix` (S3 settings
    /// from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP). Default: DIR/lake.
    #[arg(long, env = "LAKE_LOCATION", value_name = "DIR|URL", global = true)]
    pub lake: Option<String>,
    /// Kafka bootstrap servers (for `ingest --bus` and `refine --publish`).
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092", value_name = "ADDR", global = true)]
    pub kafka: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum LakeCommand {
    /// Every table: name, layer, version, files, rows, bytes.
    Tables,
    /// Run a SQL query over every table (`SELECT * FROM silver.orders`).
    Sql { query: String },
    /// Ingest landing files (JSON, CSV, Parquet, Avro) into bronze tables;
    /// FILE|DIR defaults to DIR/lake/landing. With --bus, ingest the
    /// platform's topics from Kafka into bronze.events instead.
    Ingest {
        path: Option<PathBuf>,
        /// Ingest from Kafka (the bus) rather than from files.
        #[arg(long)]
        bus: bool,
        /// With --bus: stop after this many seconds without a record (default: run until Ctrl-C).
        /// After a crash, make it longer than the session timeout (10 s): the dead member's
        /// partitions come to this one only once its session expired.
        #[arg(long, value_name = "SECONDS")]
        until_idle: Option<u64>,
        /// With --bus: most records per Delta commit.
        #[arg(long, default_value_t = 50_000)]
        batch_rows: usize,
        /// With --bus: longest a record waits for its commit, in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        batch_wait_ms: u64,
        /// With --bus: the consumer group's prefix (the table's id completes it) and of the offsets kept in the table.
        #[arg(long, default_value = "lake.bronze")]
        group: String,
        /// With --bus: a prefix of every topic name (`t1.` reads `t1.orders.events`, ...).
        #[arg(long, default_value = "")]
        topic_prefix: String,
    },
    /// Bronze to silver, then silver to gold, over what is new since the last run.
    Refine {
        /// Publish lake.QualityMeasured.v1 and lake.GoldUpdated.v1 on lake.events.
        #[arg(long)]
        publish: bool,
    },
    /// Compact small files into files of about --target-mb (one partition with --partition KEY=VALUE).
    Optimize {
        table: String,
        #[arg(long, value_name = "KEY=VALUE")]
        partition: Option<String>,
        #[arg(long, default_value_t = 128)]
        target_mb: u64,
    },
    /// Delete files no version younger than --retention-hours needs.
    Vacuum {
        table: String,
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// A table's commits, newest first.
    History {
        table: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A table's data files (the seed's objects), optionally of one partition.
    Objects {
        table: String,
        #[arg(long, value_name = "KEY=VALUE")]
        partition: Option<String>,
    },
}

/// The lake's location from `--lake` or `DIR/lake`.
pub fn location(args: &LakeArgs, data: &Path) -> Result<LakeLocation> {
    location_of(args.lake.as_deref(), data)
}

/// A lake location (a directory or `s3://...`, with the `AWS_*` settings
/// of the environment), or `DIR/lake` when none is given.
pub fn location_of(lake: Option<&str>, data: &Path) -> Result<LakeLocation> {
    match lake {
        Some(l) => {
            let options: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
            Ok(LakeLocation::parse(l, options)?)
        }
        None => Ok(LakeLocation::local(data.join("lake"))?),
    }
}

fn key_value(text: &str) -> Result<(String, String)> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| Error::Usage(format!("`{text}` is not KEY=VALUE (for example date=2023-01-01)")))
}

/// Runs one lake command.
pub async fn run(command: LakeCommand, args: &LakeArgs, data: &Path, format: Format) -> Result<()> {
    let location = location(args, data)?;
    let lake = Lake::new(location.clone());
    match command {
        LakeCommand::Tables => tables(&lake, format).await,
        LakeCommand::Sql { query } => {
            let batches = lake.sql(&query).await?;
            print_batches(&batches, format)
        }
        LakeCommand::Ingest { path, bus: false, .. } => {
            let root = data.join("lake").join("landing");
            let path = path.unwrap_or_else(|| root.clone());
            if !path.exists() {
                return Err(Error::Usage(format!(
                    "{} does not exist; drop files into {} or name a file or folder",
                    path.display(),
                    root.display()
                )));
            }
            // Files outside the landing folder are named from their own folder.
            let landing_root = if path.starts_with(&root) {
                root
            } else if path.is_dir() {
                path.clone()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            ingest_files(Landing::new(landing_root, location), &path, format).await
        }
        LakeCommand::Ingest { bus: true, until_idle, batch_rows, batch_wait_ms, group, topic_prefix, .. } => {
            let config = BronzeConfig {
                group,
                max_rows: batch_rows.max(1),
                max_wait: Duration::from_millis(batch_wait_ms),
                ..BronzeConfig::default()
            };
            let topics: Vec<String> = topics::ALL.iter().map(|t| format!("{topic_prefix}{t}")).collect();
            ingest_bus(&location, &args.kafka, &topics, config, until_idle.map(Duration::from_secs), format).await
        }
        LakeCommand::Refine { publish } => refine(&location, publish.then_some(args.kafka.as_str()), format).await,
        LakeCommand::Optimize { table: name, partition, target_mb } => {
            let mut t = lake.table_named(&name).await?;
            let partition = partition.as_deref().map(key_value).transpose()?;
            let spinner = spinner(format, &format!("optimizing {name}"));
            let report = t
                .optimize(partition.as_ref().map(|(k, v)| (k.as_str(), v.as_str())), target_mb.max(1) * 1024 * 1024)
                .await?;
            spinner.finish_and_clear();
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
                _ => outln!(
                    "{name}: {} files ({} bytes) compacted into {} ({} bytes) in {} partition(s); version {}",
                    report.files_removed,
                    report.bytes_removed,
                    report.files_added,
                    report.bytes_added,
                    report.partitions_optimized,
                    report.version
                ),
            }
            Ok(())
        }
        LakeCommand::Vacuum { table: name, retention_hours, dry_run } => {
            let mut t = lake.table_named(&name).await?;
            let report = t.vacuum(Duration::from_secs(retention_hours * 3600), dry_run).await?;
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
                _ => {
                    let verb = if dry_run { "would delete" } else { "deleted" };
                    outln!("{name}: {verb} {} file(s) older than {retention_hours} h", report.files_deleted.len());
                    for f in &report.files_deleted {
                        outln!("  {f}");
                    }
                }
            }
            Ok(())
        }
        LakeCommand::History { table: name, limit } => {
            let t = lake.table_named(&name).await?;
            let history = t.history(Some(limit)).await?;
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&history)?),
                _ => {
                    let rows: Vec<Vec<String>> = history
                        .iter()
                        .map(|h| {
                            vec![
                                h.version.map_or("-".into(), |v| v.to_string()),
                                h.timestamp.map_or("-".into(), |t| t.to_rfc3339()),
                                h.operation.clone().unwrap_or_default(),
                                h.info.get("lake.writer").and_then(Value::as_str).unwrap_or("").to_owned(),
                                h.info.get("lake.rows").map_or(String::new(), Value::to_string),
                            ]
                        })
                        .collect();
                    outln!("{}", table(&["version", "time", "operation", "writer", "rows"], &rows));
                }
            }
            Ok(())
        }
        LakeCommand::Objects { table: name, partition } => {
            let t = lake.table_named(&name).await?;
            let partition = partition.as_deref().map(key_value).transpose()?;
            let objects = t.objects(partition.as_ref().map(|(k, v)| (k.as_str(), v.as_str())))?;
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&objects)?),
                _ => {
                    let rows: Vec<Vec<String>> = objects
                        .iter()
                        .map(|o| {
                            vec![
                                o.path.clone(),
                                o.size_bytes.to_string(),
                                o.record_count.map_or("-".into(), |n| n.to_string()),
                            ]
                        })
                        .collect();
                    outln!("{}", table(&["path", "bytes", "rows"], &rows));
                }
            }
            Ok(())
        }
    }
}

async fn tables(lake: &Lake, format: Format) -> Result<()> {
    let stats = lake.stats().await?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&stats)?),
        _ => {
            if stats.is_empty() {
                outln!(
                    "no tables yet; `platform lake ingest` takes landing files, `platform lake ingest --bus` the bus"
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = stats
                .iter()
                .map(|s| {
                    vec![
                        s.table.clone(),
                        s.layer.clone(),
                        s.version.to_string(),
                        s.files.to_string(),
                        s.rows.to_string(),
                        s.bytes.to_string(),
                        s.partition_columns.join(","),
                    ]
                })
                .collect();
            outln!("{}", table(&["table", "layer", "version", "files", "rows", "bytes", "partitioned by"], &rows));
        }
    }
    Ok(())
}

fn spinner(format: Format, message: &str) -> indicatif::ProgressBar {
    if format == Format::Json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn ingest_files(landing: Landing, path: &Path, format: Format) -> Result<()> {
    let files = landing.files(path)?;
    let bar = if format == Format::Json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files {msg}") {
            bar.set_style(style);
        }
        bar
    };
    let outcomes = landing
        .ingest(path, |o| {
            bar.inc(1);
            if let FileOutcome::Ingested { file, .. } = o {
                bar.set_message(file.clone());
            }
        })
        .await?;
    bar.finish_and_clear();
    let rejected = outcomes.iter().filter(|o| matches!(o, FileOutcome::Rejected { .. })).count();
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&outcomes)?),
        _ => {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .map(|o| match o {
                    FileOutcome::Ingested { file, table, rows, version, new_columns } => vec![
                        file.clone(),
                        "ingested".into(),
                        table.clone(),
                        rows.to_string(),
                        format!(
                            "version {version}{}",
                            if new_columns.is_empty() {
                                String::new()
                            } else {
                                format!("; new columns {}", new_columns.join(", "))
                            }
                        ),
                    ],
                    FileOutcome::AlreadyIngested { file, table } => {
                        vec![file.clone(), "already ingested".into(), table.clone(), "0".into(), String::new()]
                    }
                    FileOutcome::Rejected { file, moved_to, reason } => {
                        vec![
                            file.clone(),
                            "rejected".into(),
                            "-".into(),
                            "0".into(),
                            format!("{reason} (moved to {moved_to})"),
                        ]
                    }
                })
                .collect();
            outln!("{}", table(&["file", "status", "table", "rows", "detail"], &rows));
            if rejected > 0 {
                outln!("{rejected} file(s) rejected: fix them and drop them in the landing folder again");
            }
        }
    }
    Ok(())
}

async fn ingest_bus(
    location: &LakeLocation,
    kafka: &str,
    topic_names: &[String],
    config: BronzeConfig,
    idle: Option<Duration>,
    format: Format,
) -> Result<()> {
    let bus = kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(kafka))?;
    let mut ingester = BronzeIngester::open(location, config).await?;
    let group = ingester.group();
    let names: Vec<&str> = topic_names.iter().map(String::as_str).collect();
    let mut sub = bus.subscribe(&group, &names).await?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stats = ingester.run(sub.as_mut(), idle, stop).await?;
    sub.close().await?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&stats)?),
        _ => outln!(
            "bronze.events: {} record(s) written in {} commit(s), {} already there; version {}",
            stats.rows,
            stats.commits,
            stats.skipped,
            ingester.table().version()
        ),
    }
    Ok(())
}

async fn refine(location: &LakeLocation, publish: Option<&str>, format: Format) -> Result<()> {
    let silver = SilverPipeline::new(location.clone())?.run().await?;
    let gold = GoldPipeline::new(location.clone()).run().await?;
    if let Some(kafka) = publish {
        let bus = kafka_bus::KafkaBus::connect(kafka_bus::KafkaConfig::new(kafka))?;
        let mut events = silver.quality_events()?;
        events.extend(gold.lineage_events()?);
        bus.publish(topics::LAKE, &events).await?;
    }
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&json!({"silver": silver, "gold": gold}))?),
        _ => {
            outln!(
                "bronze.events version {}: {} record(s) read, {} not modelled, {} not readable",
                silver.bronze_version,
                silver.bronze_rows,
                silver.unmodelled,
                silver.invalid
            );
            let rows: Vec<Vec<String>> = silver
                .tables
                .iter()
                .map(|t| {
                    vec![
                        t.table.clone(),
                        t.rows_in.to_string(),
                        t.written.to_string(),
                        t.quarantined.to_string(),
                        t.dropped.to_string(),
                        t.duplicates.to_string(),
                        format!("{:.4}", t.quality_score()),
                    ]
                })
                .collect();
            outln!(
                "{}",
                table(&["silver table", "in", "written", "quarantined", "dropped", "duplicates", "quality"], &rows)
            );
            let rows: Vec<Vec<String>> = gold
                .tables
                .iter()
                .map(|t| {
                    vec![
                        t.table.clone(),
                        t.days_recomputed.len().to_string(),
                        t.rows.to_string(),
                        t.version.to_string(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                outln!("{}", table(&["gold table", "days recomputed", "rows", "version"], &rows));
            }
        }
    }
    Ok(())
}

/// Prints query results as a table, JSON rows or CSV.
pub fn print_batches(batches: &[RecordBatch], format: Format) -> Result<()> {
    let Some(first) = batches.first() else {
        if format == Format::Json {
            outln!("[]");
        } else {
            outln!("(no rows)");
        }
        return Ok(());
    };
    let schema = first.schema();
    let headers: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let options = FormatOptions::default().with_null("null");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(lake::Error::from)?;
        for i in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    match format {
        Format::Table => outln!("{}", table(&headers, &rows)),
        Format::Csv => {
            outln!("{}", headers.join(","));
            for r in rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|c| {
                        if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
                    })
                    .collect();
                outln!("{}", cells.join(","));
            }
        }
        Format::Json => outln!("{}", serde_json::to_string(&lake::rows_json(batches)?)?),
    }
    Ok(())
}
