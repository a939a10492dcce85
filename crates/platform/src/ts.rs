//! `platform ts`: the time-series engine from the command line.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;
use timeseries::aggregate::{Agg, Interval};
use timeseries::line_protocol::{BatchMode, Precision};
use timeseries::model::{Matcher, NanPolicy, SeriesSchema};
use timeseries::query::{Query, QueryResult};
use timeseries::{Engine, ingest};

use crate::error::{Error, Result, io};
use crate::output::{Format, table};

#[derive(Debug, Subcommand)]
pub enum TsCommand {
    /// Create a series schema (metric, tag keys, unit, retention, rollups).
    CreateSeries(CreateArgs),
    /// Write InfluxDB line protocol from a file or stdin (`-`).
    Write(WriteArgs),
    /// Query raw points or bucketed aggregates.
    Query(QueryArgs),
    /// The newest point of each matching series.
    Last(LastArgs),
    /// Series, points, bytes on disk and bytes per point.
    Stats,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Metric name, e.g. sensor_temperature.
    #[arg(long)]
    name: String,
    /// Allowed tag keys, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long)]
    unit: String,
    #[arg(long, default_value_t = 365)]
    retention_days: u32,
    /// Rollup levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "raw,1min,1hour,1day")]
    levels: Vec<String>,
    /// Store sealed blocks uncompressed.
    #[arg(long)]
    no_compression: bool,
    /// Drop NaN and infinite values instead of refusing the batch.
    #[arg(long)]
    drop_nan: bool,
    /// How late a point may arrive behind the newest, in seconds.
    #[arg(long, default_value_t = 3600)]
    out_of_order_secs: u32,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Line-protocol file, or `-` for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Timestamp precision of the input: ns, us, ms or s.
    #[arg(long, default_value = "ns")]
    precision: String,
    /// Write every good line and list each refused one (line number and reason: it did not parse,
    /// or failed the schema) instead of stopping at the first; exits with 3 when any was refused.
    #[arg(long)]
    lenient: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    series: String,
    /// Start (inclusive): RFC 3339 such as 2023-01-01T12:00:00Z, or nanoseconds.
    #[arg(long)]
    from: String,
    /// End (exclusive), same forms as --from.
    #[arg(long)]
    to: String,
    /// Tag matcher k=v, k!=v, k=~regex, k!~regex or k=in(a|b); repeatable.
    #[arg(long = "where")]
    matchers: Vec<String>,
    /// Bucket width such as 1min, 1h, 1d; without it raw points are returned.
    #[arg(long)]
    every: Option<String>,
    /// Aggregations, comma-separated: count,min,max,avg,sum,first,last,p95,...
    #[arg(long, value_delimiter = ',', default_value = "count,avg,min,max")]
    agg: Vec<String>,
    /// Tag keys to group buckets by, comma-separated.
    #[arg(long, value_delimiter = ',')]
    group_by: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LastArgs {
    #[arg(long)]
    series: String,
    #[arg(long = "where")]
    matchers: Vec<String>,
}

/// Where the engine keeps its files under the data root.
pub fn dir(data: &Path) -> PathBuf {
    data.join("timeseries")
}

/// RFC 3339 or nanoseconds since the epoch (the CLI's and the service's times).
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| Error::Usage(format!("time `{s}`: {e} (use RFC 3339 or nanoseconds)")))?;
    t.with_timezone(&Utc).timestamp_nanos_opt().ok_or_else(|| Error::Usage(format!("time `{s}` is out of range")))
}

fn rfc3339(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub fn run(cmd: TsCommand, data: &Path, format: Format) -> Result<()> {
    let dir = dir(data);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let engine = Engine::open(&dir)?;
    match cmd {
        TsCommand::CreateSeries(a) => {
            let mut schema = SeriesSchema::new(
                &a.name,
                &a.tags.iter().map(String::as_str).collect::<Vec<_>>(),
                &a.unit,
                a.retention_days,
                &a.levels.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            schema.compression = !a.no_compression;
            schema.nan_policy = if a.drop_nan { NanPolicy::Drop } else { NanPolicy::Reject };
            schema.out_of_order_secs = a.out_of_order_secs;
            let created = engine.create_series(schema.clone())?;
            match format {
                Format::Json => crate::outln!("{}", json!({ "created": created, "schema": schema })),
                _ => crate::outln!(
                    "{} series `{}` in {}",
                    if created { "created" } else { "already had" },
                    a.name,
                    dir.display()
                ),
            }
        }
        TsCommand::Write(a) => {
            let precision: Precision = a.precision.parse().map_err(|e| Error::Usage(format!("{e}")))?;
            let mode = if a.lenient { BatchMode::Lenient } else { BatchMode::Strict };
            let report = if a.input.as_os_str() == "-" {
                ingest::load(&engine, std::io::stdin().lock(), precision, mode, 10_000)?
            } else {
                let f = std::fs::File::open(&a.input).map_err(io(&a.input))?;
                ingest::load(&engine, std::io::BufReader::with_capacity(1 << 20, f), precision, mode, 10_000)?
            };
            // A bulk load ends compact: back-filled points merged into their
            // partitions, the log rewritten as one checkpoint.
            engine.flush()?;
            match format {
                Format::Json => crate::outln!(
                    "{}",
                    json!({ "lines": report.lines, "points": report.written.accepted, "dropped": report.written.dropped,
                        "duplicates": report.written.duplicates, "new_series": report.written.new_series,
                        "rejected": report.rejected })
                ),
                _ => {
                    crate::outln!(
                        "wrote {} points from {} lines ({} new series)",
                        report.written.accepted,
                        report.lines,
                        report.written.new_series
                    );
                    if report.written.duplicates > 0 {
                        crate::outln!(
                            "{} points were already stored, exactly, and were left as they were",
                            report.written.duplicates
                        );
                    }
                    for r in &report.rejected {
                        eprintln!("rejected: {r}");
                    }
                }
            }
            if !report.rejected.is_empty() {
                return Err(Error::LinesRefused { refused: report.rejected.len(), lines: report.lines });
            }
        }
        TsCommand::Query(a) => query(&engine, a, format)?,
        TsCommand::Last(a) => {
            let matchers = a.matchers.iter().map(|m| Matcher::parse(m)).collect::<timeseries::Result<Vec<_>>>()?;
            let rows = engine.last(&a.series, &matchers)?;
            match format {
                Format::Json => crate::outln!(
                    "{}",
                    serde_json::Value::Array(
                        rows.iter()
                            .map(|r| json!({ "tags": r.tags, "time": rfc3339(r.time), "value": r.value }))
                            .collect()
                    )
                ),
                _ => {
                    let rows: Vec<Vec<String>> =
                        rows.iter().map(|r| vec![tag_text(&r.tags), rfc3339(r.time), r.value.to_string()]).collect();
                    crate::outln!("{}", table(&["series", "time", "value"], &rows));
                }
            }
        }
        TsCommand::Stats => {
            let s = engine.stats();
            match format {
                Format::Json => crate::outln!("{}", serde_json::to_string(&s)?),
                _ => crate::outln!(
                    "{}",
                    table(
                        &["series", "points", "bytes on disk", "bytes/point"],
                        &[vec![
                            s.series.to_string(),
                            s.points.to_string(),
                            s.disk_bytes.to_string(),
                            format!("{:.2}", s.bytes_per_point)
                        ]]
                    )
                ),
            }
        }
    }
    Ok(())
}

fn tag_text(tags: &[(String, String)]) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn query(engine: &Engine, a: QueryArgs, format: Format) -> Result<()> {
    let matchers = a.matchers.iter().map(|m| Matcher::parse(m)).collect::<timeseries::Result<Vec<_>>>()?;
    let (from, to) = (parse_time(&a.from)?, parse_time(&a.to)?);
    let aggs =
        a.agg.iter().map(|s| s.parse::<Agg>()).collect::<Result<Vec<_>, _>>().map_err(timeseries::Error::from)?;
    let every = a.every.as_deref().map(str::parse::<Interval>).transpose().map_err(timeseries::Error::from)?;
    let q = Query { series: a.series, from, to, matchers, every, aggs: aggs.clone(), group_by: a.group_by };
    let result = engine.query(&q)?;
    let (headers, rows): (Vec<String>, Vec<Vec<String>>) = match &result {
        QueryResult::Raw(series) => (
            vec!["series".into(), "time".into(), "value".into(), "quality".into()],
            series
                .iter()
                .flat_map(|s| {
                    s.points
                        .iter()
                        .map(|(t, v)| vec![tag_text(&s.tags), rfc3339(*t), v.to_string(), s.quality_at(*t).to_string()])
                })
                .collect(),
        ),
        QueryResult::Buckets { groups, .. } => {
            let mut headers = vec!["group".to_owned(), "bucket".to_owned()];
            headers.extend(aggs.iter().map(ToString::to_string));
            let rows = groups
                .iter()
                .flat_map(|g| {
                    g.buckets.iter().map(|b| {
                        let mut row = vec![tag_text(&g.group), rfc3339(b.start)];
                        row.extend(b.values.iter().zip(&aggs).map(|(v, agg)| match (v, agg) {
                            (None, _) => "-".to_owned(),
                            (Some(x), Agg::Count) => format!("{x:.0}"),
                            (Some(x), _) => format!("{x:.4}"),
                        }));
                        row
                    })
                })
                .collect();
            (headers, rows)
        }
    };
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string(&result)?),
        Format::Csv => {
            crate::outln!("{}", headers.join(","));
            for r in rows {
                crate::outln!("{}", r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
            }
        }
        Format::Table => {
            if let QueryResult::Buckets { level, .. } = &result {
                eprintln!("answered from: {}", level.as_deref().unwrap_or("raw points"));
            }
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            crate::outln!("{}", table(&h, &rows));
        }
    }
    Ok(())
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.to_owned() }
}
