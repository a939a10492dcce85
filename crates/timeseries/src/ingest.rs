//! Turning line protocol into points: each numeric field of a line becomes
//! one point of the series `<measurement>_<field>` (or `<measurement>` for
//! a field named `value`), carrying the line's tags and timestamp.

use std::collections::BTreeMap;
use std::io::BufRead;

use crate::line_protocol::{BatchMode, FieldValue, LineReader, ParsedLine, Precision};
use crate::model::Point;
use crate::{Engine, Error, Result, WriteReport};

/// The series name a field of a measurement is stored under.
pub fn series_name(measurement: &str, field: &str) -> String {
    if field == "value" { measurement.to_owned() } else { format!("{measurement}_{field}") }
}

/// Points of one parsed line; `now` stands in for a missing timestamp.
/// String fields are refused (a time series holds numbers).
pub fn points_of(line: &ParsedLine, now: i64) -> Result<Vec<Point>> {
    let tags: BTreeMap<String, String> = line.tags.iter().cloned().collect();
    let ts = line.timestamp.unwrap_or(now);
    line.fields
        .iter()
        .map(|(field, value)| {
            let v = match value {
                FieldValue::Float(f) => *f,
                FieldValue::Int(i) => *i as f64,
                FieldValue::UInt(u) => *u as f64,
                FieldValue::Bool(b) => f64::from(u8::from(*b)),
                FieldValue::Str(_) => {
                    return Err(Error::StringField { measurement: line.measurement.clone(), field: field.clone() });
                }
            };
            Ok(Point {
                series: series_name(&line.measurement, field),
                tags: tags.clone(),
                timestamp: ts,
                value: v,
                quality: Default::default(),
                unit: None,
            })
        })
        .collect()
}

/// What a line-protocol load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub lines: usize,
    pub written: WriteReport,
    /// Lines refused in lenient mode, with line and column.
    pub rejected: Vec<String>,
}

/// Reads line protocol from `input` in chunks and writes each chunk as one
/// batch. Strict mode stops at the first bad line (earlier chunks stay
/// written); lenient mode writes the good lines and reports every bad one.
///
/// Parsing the next chunk overlaps writing the one before it: the caller's
/// thread parses, a scoped thread writes, with at most one parsed chunk
/// waiting between them.
pub fn load(
    engine: &Engine,
    input: impl BufRead,
    precision: Precision,
    mode: BatchMode,
    chunk: usize,
) -> Result<LoadReport> {
    let mut reader = LineReader::new(input, precision);
    let mut report = LoadReport::default();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (parsed, written) = std::thread::scope(|scope| {
        let (chunks, to_write) = std::sync::mpsc::sync_channel::<Vec<Point>>(1);
        // Written chunks go back to be freed by the thread that allocated
        // them: freeing on another thread costs the allocator more.
        let (done, to_free) = std::sync::mpsc::channel::<Vec<Point>>();
        let writer = scope.spawn(move || -> Result<WriteReport> {
            let mut total = WriteReport::default();
            for points in to_write {
                let w = engine.write(&points)?;
                total.accepted += w.accepted;
                total.dropped += w.dropped;
                total.new_series += w.new_series;
                let _ = done.send(points);
            }
            Ok(total)
        });
        let parsed = (|| -> Result<()> {
            while let Some(outcome) = reader.read_chunk(chunk.max(1), mode)? {
                report.rejected.extend(outcome.rejected.iter().map(ToString::to_string));
                let mut points = Vec::new();
                for line in &outcome.lines {
                    report.lines += 1;
                    points.extend(points_of(line, now)?);
                }
                // A closed channel means the writer failed; its error is returned below.
                if chunks.send(points).is_err() {
                    break;
                }
                to_free.try_iter().for_each(drop);
            }
            Ok(())
        })();
        drop(chunks);
        (parsed, writer.join())
    });
    // A write error stopped the parsing; a parse error let the writer finish
    // the chunks before it.
    report.written = written.map_err(|_| Error::Failed("the writing thread panicked".into()))??;
    parsed?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SeriesSchema;

    #[test]
    fn tsbs_lines_become_one_point_per_field() {
        let dir = std::env::temp_dir().join(format!("ts-ingest-{}", std::process::id()));
        let engine = Engine::open(&dir).expect("open");
        for f in ["usage_user", "usage_idle"] {
            engine
                .create_series(SeriesSchema::new(
                    &format!("cpu_{f}"),
                    &["hostname", "region"],
                    "percent",
                    30,
                    &["raw", "1min"],
                ))
                .expect("create");
        }
        let input = "# comment\ncpu,hostname=host_0,region=eu-west-1 usage_user=58i,usage_idle=24i 1451606400000000000\n\
                     cpu,hostname=host_1,region=eu-west-1 usage_user=1.5,usage_idle=2u 1451606410000000000\n";
        let r = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).expect("load");
        assert_eq!((r.lines, r.written.accepted, r.written.new_series), (2, 4, 4));
        let bad = "cpu,hostname=h usage_user=\"text\" 1451606420000000000\n";
        assert!(load(&engine, bad.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).is_err());
        let broken = "cpu,hostname=host_2 usage_user=1 1451606420000000000\ncpu usage_user=\n";
        assert!(load(&engine, broken.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).is_err());
        let r = load(&engine, broken.as_bytes(), Precision::Ns, BatchMode::Lenient, 1000).expect("lenient");
        assert_eq!((r.written.accepted, r.rejected.len()), (1, 1));
        assert!(r.rejected[0].contains("line 2"), "{:?}", r.rejected);
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn line(host: usize, t: usize) -> String {
        format!(
            "cpu,hostname=host_{host} usage_user={t} {}\n",
            1_451_606_400_000_000_000i64 + t as i64 * 10_000_000_000
        )
    }

    #[test]
    fn a_strict_load_keeps_the_chunks_before_a_bad_line_and_stops_on_write_errors() {
        let dir = std::env::temp_dir().join(format!("ts-ingest-chunks-{}", std::process::id()));
        let engine = Engine::open(&dir).expect("open");
        engine
            .create_series(SeriesSchema::new("cpu_usage_user", &["hostname"], "percent", 30, &["raw"]))
            .expect("create");
        // Chunks of 10 lines; the bad line is in the fourth chunk.
        let mut input: String = (0..35).map(|t| line(t % 3, t)).collect();
        input.push_str("cpu,hostname=host_0 usage_user=\n");
        input.extend((35..60).map(|t| line(0, t)));
        let err = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Strict, 10).expect_err("bad line");
        assert!(err.to_string().contains("line 36"), "{err}");
        assert_eq!(engine.stats().points, 30, "the three chunks before the bad one are written");
        // A write error (a series without a schema) stops the load and is the error returned.
        let unknown: String =
            (0..50).map(|t| format!("mem,hostname=h used={t} {}\n", 1_451_606_400_000_000_000i64 + t)).collect();
        let err = load(&engine, unknown.as_bytes(), Precision::Ns, BatchMode::Strict, 10).expect_err("unknown series");
        assert!(matches!(err, Error::UnknownSeries(ref s) if s == "mem_used"), "{err}");
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
}
